//! `herd monitor --out DIR`: subscribe to every agent of the cluster and
//! write `hosts.csv`, `containers.csv`, `migrations.csv` and
//! `logs/<container>.log` (rows and columns in `herd_coordinator::csv`).
//!
//! ```text
//!  one task per node: connect -> Subscribe{logs, log_since} -> forward every
//!    message to the writer; on a broken stream, Lagged or a restarted agent:
//!    wait 0.5 s and subscribe again, with log_since = the newest line the
//!    writer has of each container
//!  writer: samples -> CSV rows; Present/Event -> MigrationTracker -> rows;
//!    Logs -> per-container dedup -> logs/<container>.log
//! ```
//!
//! Log de-duplication: a container's lines come from whichever host runs it,
//! and again in a backfill after a reconnect or after a migration (its log
//! file moves with it). Each batch is sorted by timestamp; a line is written
//! unless its `(time_ns, stream, text)` is among those written in the last
//! [`DEDUP_WINDOW_NS`], or it is older than that window (so it was written
//! long ago). Log files hold `<unix_ns> <o|e> <line>`, as the agents' logs.

use std::collections::{HashMap, HashSet};
use std::fs::File;
use std::hash::{Hash, Hasher};
use std::io::{BufWriter, Write};
use std::net::SocketAddr;
use std::path::{Path, PathBuf};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use anyhow::{Context, Result};
use herd_coordinator::csv::{self, ContainerRow, CsvRow, CsvWriter, HostRow, MigrationRow};
use herd_coordinator::tracker::MigrationTracker;
use herd_wire::monitor::{MonitorMsg, Sample, Subscribe};
use herd_wire::{Envelope, LogLine, LogStream, Request, Response};
use tokio::sync::mpsc;

use crate::cluster::Cluster;

/// Lines newer than (newest written - this) are checked one by one.
pub const DEDUP_WINDOW_NS: u64 = 30_000_000_000;

/// What a node task tells the writer.
pub enum Feed {
    Msg(String, MonitorMsg),
    Connected(String),
    Disconnected(String, String),
}

/// Newest log line written, per container (read by the node tasks when they
/// subscribe again).
pub type LogMarks = Arc<Mutex<HashMap<String, u64>>>;

/// Start one subscription task per node; messages arrive on the receiver.
pub fn subscribe_all(
    cluster: &Cluster,
    logs: bool,
    marks: LogMarks,
) -> Result<mpsc::Receiver<Feed>> {
    let (tx, rx) = mpsc::channel(1024);
    let first = cluster
        .nodes
        .first()
        .map(|n| n.addr)
        .unwrap_or_else(|| SocketAddr::from(([0, 0, 0, 0], 0)));
    let ep = herd_quic::endpoint::client_for(&cluster.tls_files(), first)
        .context("cannot set up the QUIC client (certificates)")?;
    for n in &cluster.nodes {
        let (ep, tx, marks) = (ep.clone(), tx.clone(), marks.clone());
        let (name, addr) = (n.name.clone(), n.addr);
        tokio::spawn(async move {
            loop {
                let r = follow(&ep, &name, addr, logs, &marks, &tx).await;
                if tx.is_closed() {
                    return;
                }
                let why = match r {
                    Ok(()) => "stream ended".to_string(),
                    Err(e) => format!("{e:#}"),
                };
                let _ = tx.send(Feed::Disconnected(name.clone(), why)).await;
                tokio::time::sleep(Duration::from_millis(500)).await;
            }
        });
    }
    Ok(rx)
}

async fn follow(
    ep: &quinn::Endpoint,
    node: &str,
    addr: SocketAddr,
    logs: bool,
    marks: &LogMarks,
    tx: &mpsc::Sender<Feed>,
) -> Result<()> {
    let conn = herd_quic::endpoint::connect(ep, addr, node).await?;
    let (mut send, mut recv) = conn.open_bi().await.context("open stream")?;
    let log_since: Vec<(String, u64)> = marks
        .lock()
        .map(|m| m.iter().map(|(k, v)| (k.clone(), *v)).collect())
        .unwrap_or_default();
    let req = Request::Subscribe(Subscribe { logs, log_since });
    herd_quic::rpc::send_msg(&mut send, &Envelope::new(req)).await?;
    let _ = send.finish();
    let _ = tx.send(Feed::Connected(node.to_string())).await;
    // A killed agent sends no close and a restarted one cannot reset our
    // connection: silence longer than a few sampling intervals means it is gone.
    let mut stall = Duration::from_secs(3);
    loop {
        let msg: Option<Response> = match tokio::time::timeout(
            stall,
            herd_quic::rpc::recv_msg(&mut recv, herd_wire::frame::MAX_FRAME),
        )
        .await
        {
            Ok(m) => m?,
            Err(_) => {
                conn.close(0u32.into(), b"silent");
                anyhow::bail!("no sample for {:.1} s", stall.as_secs_f64());
            }
        };
        if let Some(Response::Monitor(MonitorMsg::Hello { interval_ms, .. })) = &msg {
            stall =
                Duration::from_millis(interval_ms.saturating_mul(3)).max(Duration::from_secs(3));
        }
        match msg {
            Some(Response::Monitor(MonitorMsg::Lagged { missed })) => {
                // Subscribe again: the backfill brings the missed log lines.
                anyhow::bail!("fell behind by {missed} messages");
            }
            Some(Response::Monitor(m)) => {
                if tx.send(Feed::Msg(node.to_string(), m)).await.is_err() {
                    conn.close(0u32.into(), b"done");
                    return Ok(());
                }
            }
            Some(Response::Error(e)) => anyhow::bail!("{node}: {e}"),
            Some(other) => anyhow::bail!("{node}: unexpected answer {other:?}"),
            None => return Ok(()),
        }
    }
}

/// Per-container log de-duplication (see the module docs).
#[derive(Default)]
pub struct LogDedup {
    newest: u64,
    recent: HashSet<(u64, u64)>,
}

fn line_key(l: &LogLine) -> (u64, u64) {
    let mut h = std::collections::hash_map::DefaultHasher::new();
    matches!(l.stream, LogStream::Stderr).hash(&mut h);
    l.line.hash(&mut h);
    (l.time_ns, h.finish())
}

impl LogDedup {
    /// The lines of `batch` not written before, in timestamp order.
    pub fn fresh(&mut self, mut batch: Vec<LogLine>) -> Vec<LogLine> {
        batch.sort_by_key(|l| l.time_ns);
        let mut out = Vec::new();
        for l in batch {
            let floor = self.newest.saturating_sub(DEDUP_WINDOW_NS);
            if l.time_ns < floor || !self.recent.insert(line_key(&l)) {
                continue;
            }
            self.newest = self.newest.max(l.time_ns);
            out.push(l);
        }
        if self.recent.len() > 4096 {
            let floor = self.newest.saturating_sub(DEDUP_WINDOW_NS);
            self.recent.retain(|(t, _)| *t >= floor);
        }
        out
    }

    pub fn newest(&self) -> u64 {
        self.newest
    }
}

/// The monitor's output files.
pub struct Writer {
    dir: PathBuf,
    hosts: CsvWriter<BufWriter<File>, HostRow>,
    containers: CsvWriter<BufWriter<File>, ContainerRow>,
    migrations: CsvWriter<BufWriter<File>, MigrationRow>,
    logs: HashMap<String, (BufWriter<File>, LogDedup)>,
    tracker: MigrationTracker,
    marks: LogMarks,
    /// Latest sample per host (for /metrics and the dropped-sample report).
    pub latest: Arc<Mutex<HashMap<String, Sample>>>,
    pub rows: u64,
    /// Workload kind per container, for containers.csv's `kind` column
    /// (known to a scenario run; empty otherwise).
    pub kinds: HashMap<String, String>,
}

impl Writer {
    pub fn create(dir: &Path, marks: LogMarks) -> Result<Writer> {
        std::fs::create_dir_all(dir.join("logs"))
            .with_context(|| format!("cannot create {}", dir.join("logs").display()))?;
        Ok(Writer {
            dir: dir.to_path_buf(),
            // Every column an agent measures; migrations without
            // `frozen_seconds` (the events do not carry it).
            hosts: CsvWriter::create_with(dir, HostRow::COLUMNS)?,
            containers: CsvWriter::create_with(dir, ContainerRow::COLUMNS)?,
            migrations: CsvWriter::create_with(dir, csv::required::<MigrationRow>())?,
            logs: HashMap::new(),
            tracker: MigrationTracker::default(),
            marks,
            latest: Arc::new(Mutex::new(HashMap::new())),
            rows: 0,
            kinds: HashMap::new(),
        })
    }

    /// Write what `msg` says; returns the migrations.csv rows it made.
    pub fn handle(&mut self, node: &str, msg: MonitorMsg) -> Result<Vec<MigrationRow>> {
        let mut out = Vec::new();
        match msg {
            MonitorMsg::Sample(s) => {
                if let Some(h) = &s.host {
                    self.hosts.write(&HostRow::from(h))?;
                }
                for c in &s.containers {
                    let kind = self.kinds.get(&c.container).map(String::as_str);
                    self.containers.write(&ContainerRow::from_sample(c, kind))?;
                    self.rows += 1;
                }
                if let Ok(mut l) = self.latest.lock() {
                    l.insert(node.to_string(), *s);
                }
            }
            MonitorMsg::Present { containers } => {
                let now = crate::process::now_ns();
                for r in self.tracker.present(now, node, &containers) {
                    self.migrations.write(&r)?;
                    out.push(r);
                }
            }
            MonitorMsg::Event(ev) => {
                if let Some(r) = self.tracker.event(&ev) {
                    self.migrations.write(&r)?;
                    out.push(r);
                }
            }
            MonitorMsg::Logs { container, lines } => self.logs(&container, lines)?,
            MonitorMsg::Hello { .. } | MonitorMsg::Lagged { .. } => {}
        }
        Ok(out)
    }

    fn logs(&mut self, container: &str, lines: Vec<LogLine>) -> Result<()> {
        if container.contains(['/', '\0']) || container.starts_with('.') {
            return Ok(()); // not a container name an agent accepts
        }
        if !self.logs.contains_key(container) {
            let p = self.dir.join("logs").join(format!("{container}.log"));
            let f = File::create(&p).with_context(|| format!("cannot create {}", p.display()))?;
            self.logs.insert(
                container.to_string(),
                (BufWriter::new(f), LogDedup::default()),
            );
        }
        let (f, dedup) = self.logs.get_mut(container).expect("inserted above");
        for l in dedup.fresh(lines) {
            let tag = if l.stream == LogStream::Stderr {
                'e'
            } else {
                'o'
            };
            writeln!(f, "{} {tag} {}", l.time_ns, l.line)?;
        }
        if let Ok(mut m) = self.marks.lock() {
            m.insert(container.to_string(), dedup.newest());
        }
        Ok(())
    }

    pub fn flush(&mut self) -> Result<()> {
        self.hosts.flush()?;
        self.containers.flush()?;
        self.migrations.flush()?;
        for (f, _) in self.logs.values_mut() {
            f.flush()?;
        }
        Ok(())
    }
}

/// Serve the latest sample of every host as Prometheus text.
pub fn spawn_metrics(addr: SocketAddr, latest: Arc<Mutex<HashMap<String, Sample>>>) -> Result<()> {
    let std_listener =
        std::net::TcpListener::bind(addr).with_context(|| format!("cannot listen on {addr}"))?;
    std_listener.set_nonblocking(true)?;
    let listener = tokio::net::TcpListener::from_std(std_listener)?;
    tokio::spawn(herd_metrics::http::serve_on(listener, move || {
        let latest = latest.clone();
        async move {
            let map = latest.lock().map(|m| m.clone()).unwrap_or_default();
            let mut v: Vec<(&String, &Sample)> = map.iter().collect();
            v.sort_by_key(|(k, _)| k.as_str());
            let refs: Vec<&Sample> = v.into_iter().map(|(_, s)| s).collect();
            herd_metrics::prometheus::prometheus_text(&refs)
        }
    }));
    Ok(())
}

/// `herd monitor`.
pub async fn run(
    cluster: Cluster,
    out: &Path,
    duration: Option<Duration>,
    metrics: Option<SocketAddr>,
) -> Result<()> {
    let marks: LogMarks = Arc::new(Mutex::new(HashMap::new()));
    let mut w = Writer::create(out, marks.clone())?;
    if let Some(a) = metrics {
        spawn_metrics(a, w.latest.clone())?;
    }
    let mut rx = subscribe_all(&cluster, true, marks)?;
    let t0 = Instant::now();
    let deadline = duration.map(|d| tokio::time::Instant::now() + d);
    eprintln!(
        "herd: monitoring {} node(s) into {}{}",
        cluster.nodes.len(),
        out.display(),
        duration
            .map(|d| format!(" for {:.0} s", d.as_secs_f64()))
            .unwrap_or_default()
    );
    let mut flush = tokio::time::interval(Duration::from_secs(1));
    loop {
        let sleep = async {
            match deadline {
                Some(d) => tokio::time::sleep_until(d).await,
                None => std::future::pending().await,
            }
        };
        tokio::select! {
            m = rx.recv() => match m {
                Some(Feed::Msg(node, msg)) => {
                    w.handle(&node, msg)?;
                }
                Some(Feed::Connected(node)) => tracing::info!(%node, "subscribed"),
                Some(Feed::Disconnected(node, why)) => {
                    eprintln!("herd: {node}: {why}; subscribing again");
                }
                None => break,
            },
            _ = flush.tick() => w.flush()?,
            _ = sleep => break,
            _ = tokio::signal::ctrl_c() => break,
        }
    }
    w.flush()?;
    let dropped: Vec<String> = w
        .latest
        .lock()
        .map(|m| {
            let mut v: Vec<String> = m
                .iter()
                .map(|(h, s)| format!("{h} {}", s.dropped_total))
                .collect();
            v.sort();
            v
        })
        .unwrap_or_default();
    eprintln!(
        "herd: {} container rows in {:.0} s; samples dropped for a counter going back, per agent since its start: {}",
        w.rows,
        t0.elapsed().as_secs_f64(),
        if dropped.is_empty() { "-".to_string() } else { dropped.join(", ") }
    );
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    fn l(t: u64, s: &str) -> LogLine {
        LogLine {
            time_ns: t,
            stream: LogStream::Stdout,
            line: s.into(),
        }
    }

    #[test]
    fn dedup_drops_repeats_and_keeps_order() {
        let mut d = LogDedup::default();
        let got = d.fresh(vec![l(2, "b"), l(1, "a")]);
        assert_eq!(got, vec![l(1, "a"), l(2, "b")]);
        // A backfill after a reconnect or migration: history plus new lines.
        let got = d.fresh(vec![l(1, "a"), l(2, "b"), l(3, "c")]);
        assert_eq!(got, vec![l(3, "c")]);
        // Same timestamp, different text: both are real lines.
        assert_eq!(d.fresh(vec![l(3, "c2")]), vec![l(3, "c2")]);
        // Far older than the window: written long ago.
        let mut d = LogDedup::default();
        d.fresh(vec![l(100 * DEDUP_WINDOW_NS, "x")]);
        assert!(d.fresh(vec![l(1, "a")]).is_empty());
    }
}
