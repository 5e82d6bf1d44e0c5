//! Native monitoring: the agent samples its host (/proc) and its running
//! containers (cgroup v1/v2 files, log files) itself and streams the samples
//! to subscribers (protocol in [`herd_wire::monitor`]).
//!
//! ```text
//!  sampler thread, every interval (default 1 s, fixed rate)
//!    host: /proc/{stat,loadavg,meminfo,vmstat,diskstats,pressure/*}, /proc/self/net/dev
//!    containers: the agent's table (no directory listing), Running ones only
//!      new or new pid -> open its cgroup files once (cgroups.rs)
//!      window: parent CPU time, CPU time of every watched container, parent again
//!      every tick     -> pread them (a watched one's CPU time from the window;
//!                        the others not at all when the window shows that
//!                        none of them ran, see below); counters -> rates
//!                        against the previous tick; a counter that went
//!                        backwards drops that sample (counted)
//!      every container's log: pread from the last offset (logtail.rs) -> ops/s, lines
//!        (a running container idle for QUIET_SAMPLES samples: only at its full reads)
//!    -> encode once, broadcast (bounded; a slow subscriber gets Lagged)
//!  Hub::event (run, rm, migration in/out) -> broadcast
//!  subscription: Hello, Present, log backfill, then the broadcast
//! ```
//!
//! Skipping what did not run: the parent cgroup's CPU time (cgroup
//! accounting is hierarchical) is the sum of its containers' plus what is
//! charged to it otherwise (its own tasks, removed children), so the CPU
//! time of everything but the *watched* containers (new ones and those that
//! ran within the last [`HOT_SAMPLES`] samples) is `parent − Σ watched`.
//! The window reads the parent, each watched container, and the parent
//! again; when both parent reads agree (nothing was charged meanwhile, so
//! the sum is exact) and `parent − Σ watched` equals its value at the
//! window of the last tick that read every container (after its window),
//! with the same watched set, then no other container ran since it was read:
//! they are not read (only their periodic full reads, cgroups.rs). Any
//! change of the watched set, a window the kernel charged during, or a
//! difference reads every container again. So with k busy containers a
//! tick costs k + 2 reads instead of n. A container whose cgroup is not
//! `<parent>/<name>` is always read and never counted in the window.
//!
//! A container frozen by a migration is `Checkpointed` on its source and
//! not yet in the target's table, so neither host samples it: it is never
//! counted twice. Its log travels with it; the target reads the whole file
//! and subscribers drop the lines they already have.

pub mod bench;
pub mod cgroups;
pub mod logtail;
pub mod pfile;
pub mod procfs;

use std::collections::HashMap;
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use herd_wire::monitor::{
    ContainerCounters, ContainerEvent, ContainerSample, EventKind, MigrationStats, MonitorMsg,
    Sample, Subscribe,
};
use herd_wire::{ContainerStatus, Response};
use tokio::sync::broadcast;

use crate::lock;
use crate::state::now_ns;
use crate::Agent;
use cgroups::{CgRaw, CgroupReader, Layout};
use logtail::LogTail;
use pfile::PFile;
use procfs::HostSampler;

/// Messages kept for slow subscribers before they lag.
const BACKLOG: usize = 256;
/// Log lines per `Logs` message.
const LINES_PER_MSG: usize = 2000;
/// Samples a running container must have been idle (its CPU time still)
/// before its log is no longer polled every sample: what it wrote before
/// has had that many intervals to pass its log shim. Its log is polled
/// again at its next full read (at most every `FULL_READ_EVERY` samples) or
/// as soon as it runs.
const QUIET_SAMPLES: u32 = 2;
/// Samples a container stays watched (read every tick, in the window)
/// after its CPU time last moved: a container that works every few
/// seconds stays watched instead of changing the set (which costs a tick
/// that reads everyone) each time.
pub const HOT_SAMPLES: u32 = 10;
/// Ticks after the last change of the table before the sampler hands the
/// heap's free pages back (`malloc_trim`), and at most between two trims
/// while it keeps changing: creates and restores run on short-lived
/// threads whose allocations leave free pages in the arenas.
const TRIM_AFTER: u64 = 5;
const TRIM_EVERY: u64 = 60;

/// One encoded frame of the subscribe stream, shared by every subscriber.
pub struct Encoded {
    pub logs: bool,
    pub bytes: Vec<u8>,
}

/// The agent's monitoring hub: latest sample, event and sample broadcast.
pub struct Hub {
    node: String,
    tx: broadcast::Sender<Arc<Encoded>>,
    latest: Mutex<Option<Arc<Sample>>>,
    interval: Mutex<Duration>,
    layout: Layout,
    migrations: Mutex<MigrationStats>,
}

impl Hub {
    pub fn new(node: &str) -> Hub {
        let (tx, _) = broadcast::channel(BACKLOG);
        Hub {
            node: node.to_string(),
            tx,
            latest: Mutex::new(None),
            interval: Mutex::new(Duration::from_secs(1)),
            layout: Layout::detect(),
            migrations: Mutex::new(MigrationStats::default()),
        }
    }

    /// A container moved away and ran on `to` after being frozen `frozen_s`.
    pub fn moved_out(&self, container: &str, to: &str, frozen_s: f64) {
        lock(&self.migrations).moved_out(frozen_s);
        self.event(container, EventKind::MovedOut { to: to.to_string() });
    }

    /// Report a container event to every subscriber.
    pub fn event(&self, container: &str, kind: EventKind) {
        if let EventKind::MovedIn { .. } = kind {
            lock(&self.migrations).in_total += 1;
        }
        let ev = ContainerEvent {
            time_ns: now_ns(),
            host: self.node.clone(),
            container: container.to_string(),
            kind,
        };
        tracing::debug!(?ev, "container event");
        self.publish(false, MonitorMsg::Event(ev));
    }

    /// Encode `msg` once for every subscriber; gives it back.
    fn publish(&self, logs: bool, msg: MonitorMsg) -> MonitorMsg {
        if self.tx.receiver_count() == 0 {
            return msg;
        }
        let r = Response::Monitor(msg);
        match herd_wire::frame::encode(&r) {
            Ok(bytes) => {
                let _ = self.tx.send(Arc::new(Encoded { logs, bytes }));
            }
            Err(e) => tracing::warn!("monitor message not sent: {e}"),
        }
        match r {
            Response::Monitor(m) => m,
            _ => unreachable!("built above"),
        }
    }

    /// The last sample taken, if any.
    pub fn latest(&self) -> Option<Arc<Sample>> {
        lock(&self.latest).clone()
    }

    pub fn interval(&self) -> Duration {
        *lock(&self.interval)
    }
}

/// Per running container: its open cgroup files and last counters.
struct Tracked {
    pid: i32,
    reader: CgroupReader,
    prev: Option<(Instant, CgRaw)>,
    /// `/proc/<pid>/net/dev`: the container's network namespace, and its
    /// last received and sent bytes (kept while the container is idle).
    net: Option<PFile>,
    net_last: Option<(u64, u64)>,
    /// Counts at the dump it was restored from (see [`ContainerCounters`]),
    /// with its start time.
    base: ContainerCounters,
    image: String,
    /// Consecutive samples its cgroup read found it idle.
    quiet: u32,
    /// Samples left in the watched set (see the module docs); 0: not watched.
    hot: u32,
    /// Its cgroup is `<parent>/<name>`: counted in the parent's CPU time.
    under_parent: bool,
    /// CPU time read in this tick's window.
    pre: Option<cgroups::CpuRead>,
}

/// The sampling loop's state (see the module docs).
pub struct Sampler {
    agent: Arc<Agent>,
    host: HostSampler,
    tracked: HashMap<String, Tracked>,
    /// Per container: its creation time (one removed and made again under
    /// the same name within a tick has a new log file) and its log's tail.
    tails: HashMap<String, (u64, LogTail)>,
    dropped: u64,
    ticks: u64,
    buf: Vec<u8>,
    /// The containers' parent cgroup (only its CPU time is read; opened
    /// again while it does not exist).
    parent: CgroupReader,
    /// `parent − Σ watched` at the window of the last tick that read
    /// every container, and whether the watched set changed since.
    others_cpu: Option<u64>,
    watched_changed: bool,
    /// Tick of the last change of the tracked table, and of the last trim.
    table_changed: Option<u64>,
    trimmed: u64,
    /// Ticks that skipped the unwatched containers (logged every 60).
    skipped: u64,
}

impl Sampler {
    pub fn new(agent: Arc<Agent>) -> Sampler {
        Sampler {
            host: {
                let (layout, parent) = (&agent.monitor.layout, agent.cgroup_parent());
                let h = match agent.cpus() {
                    Some(c) => HostSampler::new(agent.node()).with_slice(layout, &parent, c),
                    None => HostSampler::new(agent.node()),
                };
                match agent.disk_limit() {
                    Some((dev, limit)) => h.with_disk_slice(layout, &parent, dev, limit),
                    None => h,
                }
            },
            parent: agent.monitor.layout.open(&agent.cgroup_parent()),
            agent,
            tracked: HashMap::new(),
            tails: HashMap::new(),
            dropped: 0,
            ticks: 0,
            buf: Vec::with_capacity(64 << 10),
            others_cpu: None,
            watched_changed: true,
            table_changed: None,
            trimmed: 0,
            skipped: 0,
        }
    }

    /// The window (module docs): whether no unwatched container ran since
    /// the last tick that read them all. Reads each watched container's
    /// CPU time into its `pre`.
    fn others_idle<E>(&mut self, entries: &[(String, E)]) -> bool {
        if !self.parent.is_open() && !self.tracked.is_empty() {
            // Made with the first container.
            let a = &self.agent;
            self.parent = a.monitor.layout.open(&a.cgroup_parent());
        }
        let before = self.parent.cpu(&mut self.buf).map(|c| c.0);
        let mut watched = Some(0u64);
        for (name, _) in entries {
            let Some(t) = self.tracked.get_mut(name) else {
                continue;
            };
            t.pre = None;
            if t.hot == 0 || !t.under_parent {
                continue;
            }
            t.pre = t.reader.cpu(&mut self.buf);
            watched = match (&t.pre, watched) {
                (Some((ns, _)), Some(w)) => Some(w + ns),
                _ => None,
            };
        }
        let after = self.parent.cpu(&mut self.buf).map(|c| c.0);
        let others = match (before, after, watched) {
            (Some(a), Some(b), Some(w)) if a == b => a.checked_sub(w),
            _ => None,
        };
        let idle = !self.watched_changed && others.is_some() && others == self.others_cpu;
        if !idle {
            // This tick reads every container after the window.
            self.others_cpu = others;
        }
        self.watched_changed = false;
        idle
    }

    /// Hand the heap's free pages back after the table changed (see
    /// [`TRIM_AFTER`]).
    fn trim(&mut self) {
        let Some(at) = self.table_changed else {
            return;
        };
        if self.ticks - at < TRIM_AFTER && self.ticks - self.trimmed < TRIM_EVERY {
            return;
        }
        self.table_changed = None;
        self.trimmed = self.ticks;
        #[cfg(target_env = "gnu")]
        // SAFETY: malloc_trim has no preconditions.
        unsafe {
            libc::malloc_trim(0);
        }
    }

    /// Take one sample, publish it and its new log lines.
    pub fn tick(&mut self) -> Arc<Sample> {
        let agent = self.agent.clone();
        let hub = &agent.monitor;
        let time_ns = now_ns();
        let host = self.host.sample(time_ns);
        if host.is_none() {
            self.dropped += 1;
        }
        let mut entries: Vec<(String, Arc<_>)> = lock(&self.agent.containers)
            .iter()
            .map(|(k, v)| (k.clone(), v.clone()))
            .collect();
        // Sorted here, the rows come out in order: sorting the rows moved
        // ~300 bytes each.
        entries.sort_unstable_by(|a, b| a.0.cmp(&b.0));
        let others_idle = self.others_idle(&entries);
        self.skipped += others_idle as u64;
        if self.ticks % 60 == 59 {
            tracing::debug!(
                "sampler: {} of the last 60 samples read no unwatched container",
                std::mem::take(&mut self.skipped)
            );
        }
        let want_logs = hub.tx.receiver_count() > 0;
        let stale_ns = (hub.interval().as_nanos() as u64).saturating_mul(3) + 1_000_000_000;
        let mut containers = Vec::with_capacity(self.tracked.len());
        let mut logs: Vec<(String, Vec<herd_wire::LogLine>)> = Vec::new();
        for (name, e) in &entries {
            let (status, pid, id) = {
                let r = lock(&e.record);
                (r.status, r.pid, r.created_ns)
            };
            // Logs of every listed container (a stopping one writes last lines).
            // A new creation time: the container was made again under this
            // name (a new log file: follow it), or a migration target set the
            // moved container's own (the same file: keep following it).
            if let Some((i, t)) = self.tails.get_mut(name) {
                if *i != id {
                    let p = self.agent.state_dir().container(name).log();
                    if t.is_file(&p) {
                        *i = id;
                    } else {
                        self.tails.remove(name);
                    }
                }
            }
            let tail = match self.tails.get_mut(name) {
                Some((_, t)) => Some(t),
                None => {
                    let p = self.agent.state_dir().container(name).log();
                    match LogTail::open(&p) {
                        Some(t) => Some(&mut self.tails.entry(name.clone()).or_insert((id, t)).1),
                        None => None,
                    }
                }
            };
            let quiet = status == ContainerStatus::Running
                && self
                    .tracked
                    .get(name)
                    .is_some_and(|t| Some(t.pid) == pid && t.quiet >= QUIET_SAMPLES);
            let (mut ops, mut ops_total) = (None, None);
            if let Some(t) = tail {
                ops_total = t.total;
                if !quiet {
                    let lines = t.poll(want_logs, &mut self.buf);
                    if !lines.is_empty() {
                        logs.push((name.clone(), lines));
                    }
                }
                ops = t.ops_per_second(time_ns, stale_ns);
            }
            let (ContainerStatus::Running, Some(pid)) = (status, pid) else {
                if self.tracked.remove(name).is_some() {
                    self.watched_changed = true;
                    self.table_changed = Some(self.ticks);
                }
                continue;
            };
            let t = match self.tracked.get_mut(name) {
                Some(t) if t.pid == pid => t,
                _ => {
                    let (path, base, image) = {
                        let r = lock(&e.record);
                        let mut base = r.counter_base.unwrap_or_default();
                        base.start_time_seconds = r.created_ns as f64 / 1e9;
                        (r.cgroup_path.clone(), base, r.spec.image.clone())
                    };
                    let mut reader = hub.layout.open(&path);
                    if self.agent.disk_limit().is_some() {
                        reader = reader.with_block_ops(&hub.layout, &path);
                    }
                    let under_parent = path == self.agent.cgroup_path(name);
                    self.watched_changed = true;
                    self.table_changed = Some(self.ticks);
                    self.tracked.insert(
                        name.clone(),
                        Tracked {
                            pid,
                            reader,
                            prev: None,
                            net: PFile::open(std::path::Path::new(&format!("/proc/{pid}/net/dev"))),
                            net_last: None,
                            base,
                            image,
                            quiet: 0,
                            hot: HOT_SAMPLES,
                            under_parent,
                            pre: None,
                        },
                    );
                    self.tracked.get_mut(name).expect("just inserted")
                }
            };
            // Stamped at the read: under load the tick may start late.
            let (now, read_ns) = (Instant::now(), now_ns());
            let read = match t.pre.take() {
                Some(cpu) => t.reader.read_after(cpu, &mut self.buf),
                None if others_idle && t.hot == 0 && t.under_parent => {
                    t.reader.read_known_idle(&mut self.buf)
                }
                None => t.reader.read(&mut self.buf),
            };
            let Some(raw) = read else {
                continue; // cgroup gone (the container is ending)
            };
            t.quiet = match t.reader.was_idle() {
                true => t.quiet.saturating_add(1),
                false => 0,
            };
            let hot = match t.reader.moved() {
                false => t.hot.saturating_sub(1),
                true => HOT_SAMPLES,
            };
            if (hot == 0) != (t.hot == 0) {
                self.watched_changed = true;
            }
            t.hot = hot;
            let prev = t.prev.replace((now, raw.clone()));
            let Some((t0, p)) = prev else { continue };
            match rates(
                self.agent.node(),
                name,
                read_ns,
                now.duration_since(t0),
                &p,
                &raw,
            ) {
                Some(mut s) => {
                    s.ops_per_second = ops;
                    let mut c = raw.counters();
                    if t.net_last.is_none() || !t.reader.was_idle() {
                        if let Some(text) = t.net.as_ref().and_then(|f| f.read(&mut self.buf).ok())
                        {
                            t.net_last = Some(procfs::net_dev_totals(text));
                        }
                    }
                    (c.net_rx_bytes, c.net_tx_bytes) = t.net_last.unwrap_or_default();
                    s.counters = c.plus(&t.base);
                    s.counters.ops = ops_total;
                    s.image = t.image.clone();
                    containers.push(s);
                }
                None => self.dropped += 1,
            }
        }
        // Forget what left the table, every tick: a container that moved
        // away and back must not keep the tail of its old (deleted) log.
        self.ticks += 1;
        {
            let names: std::collections::HashSet<&String> =
                entries.iter().map(|(n, _)| n).collect();
            let n = self.tracked.len();
            self.tracked.retain(|n, _| names.contains(n));
            if self.tracked.len() != n {
                self.watched_changed = true;
                self.table_changed = Some(self.ticks);
            }
            self.tails.retain(|n, _| names.contains(n));
        }
        self.trim();
        // Encoded from the message itself, then moved into the Arc: no copy
        // of every container's row.
        let msg = MonitorMsg::Sample(Box::new(Sample {
            host,
            containers,
            dropped_total: self.dropped,
            migrations: lock(&hub.migrations).clone(),
        }));
        let msg = hub.publish(false, msg);
        let MonitorMsg::Sample(sample) = msg else {
            unreachable!("publish gives the message back")
        };
        let sample: Arc<Sample> = Arc::from(sample);
        *lock(&hub.latest) = Some(sample.clone());
        if hub.tx.receiver_count() > 0 {
            for (container, lines) in logs {
                for chunk in lines.chunks(LINES_PER_MSG) {
                    hub.publish(
                        true,
                        MonitorMsg::Logs {
                            container: container.clone(),
                            lines: chunk.to_vec(),
                        },
                    );
                }
            }
        }
        sample
    }

    pub fn dropped(&self) -> u64 {
        self.dropped
    }
}

/// Counters to rates; None if one went backwards.
fn rates(
    host: &str,
    name: &str,
    time_ns: u64,
    dt: Duration,
    p: &CgRaw,
    c: &CgRaw,
) -> Option<ContainerSample> {
    let secs = dt.as_secs_f64();
    if secs <= 0.0 {
        return None;
    }
    let d = |a: u64, b: u64| a.checked_sub(b);
    let periods = d(c.periods, p.periods)?;
    let throttled = d(c.throttled_periods, p.throttled_periods)?;
    Some(ContainerSample {
        time_ns,
        host: host.to_string(),
        container: name.to_string(),
        cpu_usage_cores: d(c.cpu_ns, p.cpu_ns)? as f64 / 1e9 / secs,
        cpu_throttled_ratio: if periods > 0 {
            throttled as f64 / periods as f64
        } else {
            0.0
        },
        cpu_throttled_seconds_per_second: d(c.throttled_ns, p.throttled_ns)? as f64 / 1e9 / secs,
        memory_bytes: c.memory_bytes,
        major_faults_per_second: d(c.pgmajfault, p.pgmajfault)? as f64 / secs,
        io_read_ops_per_second: d(c.io[0], p.io[0])? as f64 / secs,
        io_write_ops_per_second: d(c.io[1], p.io[1])? as f64 / secs,
        io_read_bytes_per_second: d(c.io[2], p.io[2])? as f64 / secs,
        io_write_bytes_per_second: d(c.io[3], p.io[3])? as f64 / secs,
        pids: c.pids,
        ops_per_second: None,
        psi_cpu_some_avg10: c.psi[0],
        psi_memory_some_avg10: c.psi[1],
        psi_io_some_avg10: c.psi[2],
        ..Default::default()
    })
}

/// A container's counters now (its cgroup's plus the base it was restored
/// with), for the checkpoint's metadata: the restore continues from them.
pub(crate) fn counters_now(
    agent: &Agent,
    rec: &crate::state::ContainerRecord,
) -> ContainerCounters {
    let mut buf = Vec::new();
    let mut c = agent
        .monitor
        .layout
        .open(&rec.cgroup_path)
        .read(&mut buf)
        .map(|r| r.counters())
        .unwrap_or_default();
    if let Some(pid) = rec.pid {
        if let Ok(t) = std::fs::read_to_string(format!("/proc/{pid}/net/dev")) {
            let (rx, tx) = procfs::net_dev_totals(&t);
            c.net_rx_bytes += rx;
            c.net_tx_bytes += tx;
        }
    }
    c.plus(&rec.counter_base.unwrap_or_default())
}

/// What a container's cgroup and network namespace count already before a
/// restore into them (a restore on the host of the dump reuses both).
pub(crate) fn counters_held(
    agent: &Agent,
    cgroup_path: &str,
    netns: &std::path::Path,
) -> ContainerCounters {
    let mut buf = Vec::new();
    let mut c = agent
        .monitor
        .layout
        .open(cgroup_path)
        .read(&mut buf)
        .map(|r| r.counters())
        .unwrap_or_default();
    let net = herd_netlink::netns::run_in(netns, || {
        std::fs::read_to_string("/proc/thread-self/net/dev").map(|t| procfs::net_dev_totals(&t))
    });
    if let Ok(Ok((rx, tx))) = net {
        c.net_rx_bytes = rx;
        c.net_tx_bytes = tx;
    }
    c
}

/// The Prometheus page of this agent: its latest sample.
pub fn prometheus(agent: &Agent) -> String {
    match agent.monitor.latest() {
        Some(s) => herd_metrics::prometheus::prometheus_text(&[&s]),
        None => String::new(),
    }
}

/// Run the sampler on its own thread at a fixed rate until the process ends.
pub fn spawn_sampler(agent: Arc<Agent>, interval: Duration) -> std::io::Result<()> {
    *lock(&agent.monitor.interval) = interval;
    std::thread::Builder::new()
        .name("herd-sampler".into())
        .spawn(move || {
            let mut s = Sampler::new(agent);
            let mut next = Instant::now();
            loop {
                s.tick();
                next += interval;
                let now = Instant::now();
                if next < now {
                    next = now; // fell behind: do not burst
                }
                std::thread::sleep(next - now);
            }
        })
        .map(|_| ())
}

/// Serve one `Subscribe` stream until the subscriber goes away.
/// Ends with an error when the subscriber stopped reading (write timeout).
pub async fn serve_subscribe(
    agent: Arc<Agent>,
    sub: Subscribe,
    send: &mut quinn::SendStream,
) -> Result<(), herd_quic::Error> {
    let hub = &agent.monitor;
    // Subscribe before the backfill: a line is then sent twice rather than never.
    let mut rx = hub.tx.subscribe();
    let running: Vec<String> = agent
        .list()
        .into_iter()
        .filter(|c| c.status == ContainerStatus::Running)
        .map(|c| c.name)
        .collect();
    let hello = MonitorMsg::Hello {
        host: agent.node().to_string(),
        interval_ms: hub.interval().as_millis() as u64,
        cgroup: hub.layout.kind().to_string(),
        cores: agent.cores(),
    };
    let mut first = vec![
        hello,
        MonitorMsg::Present {
            containers: running,
        },
    ];
    if sub.logs {
        let since: HashMap<String, u64> = sub.log_since.into_iter().collect();
        let a = agent.clone();
        let backfill = tokio::task::spawn_blocking(move || {
            let mut out = Vec::new();
            for c in a.list() {
                let after = since.get(&c.name).copied().unwrap_or(0);
                let Ok(path) = a.log_path(&c.name) else {
                    continue;
                };
                let Ok(mut r) = crate::logs::LogReader::open(&path) else {
                    continue;
                };
                let lines: Vec<_> = r
                    .read_new()
                    .unwrap_or_default()
                    .into_iter()
                    .filter(|l| l.time_ns > after)
                    .collect();
                for chunk in lines.chunks(LINES_PER_MSG) {
                    out.push(MonitorMsg::Logs {
                        container: c.name.clone(),
                        lines: chunk.to_vec(),
                    });
                }
            }
            out
        })
        .await
        .unwrap_or_default();
        first.extend(backfill);
    }
    for m in first {
        herd_quic::rpc::send_msg(send, &Response::Monitor(m)).await?;
    }
    loop {
        let bytes = match rx.recv().await {
            Ok(e) if e.logs && !sub.logs => continue,
            Ok(e) => e,
            Err(broadcast::error::RecvError::Lagged(missed)) => {
                let m = Response::Monitor(MonitorMsg::Lagged { missed });
                herd_quic::rpc::send_msg(send, &m).await?;
                continue;
            }
            Err(broadcast::error::RecvError::Closed) => return Ok(()),
        };
        herd_quic::rpc::write_all(send, &bytes.bytes).await?;
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn counters_become_rates_and_a_counter_going_back_drops_the_sample() {
        let p = CgRaw {
            cpu_ns: 1_000_000_000,
            periods: 10,
            throttled_periods: 1,
            memory_bytes: 5,
            io: [10, 20, 4096, 8192],
            pids: 2,
            ..Default::default()
        };
        let c = CgRaw {
            cpu_ns: 5_000_000_000,
            periods: 20,
            throttled_periods: 6,
            memory_bytes: 7,
            io: [30, 60, 8192, 16384],
            pids: 3,
            ..Default::default()
        };
        let s = rates("n1", "c", 9, Duration::from_secs(2), &p, &c).unwrap();
        assert_eq!(s.cpu_usage_cores, 2.0, "not normalised by cores");
        assert_eq!(s.cpu_throttled_ratio, 0.5);
        assert_eq!(
            (s.io_read_ops_per_second, s.io_write_ops_per_second),
            (10.0, 20.0)
        );
        assert_eq!(s.io_write_bytes_per_second, 4096.0);
        assert_eq!((s.memory_bytes, s.pids, s.time_ns), (7, 3, 9));
        // A counter reset (a restored container's new cgroup, a wrap): dropped.
        let reset = CgRaw {
            cpu_ns: 10,
            ..c.clone()
        };
        assert!(rates("n1", "c", 9, Duration::from_secs(1), &c, &reset).is_none());
        let io_back = CgRaw {
            io: [0, 60, 8192, 16384],
            ..c.clone()
        };
        assert!(rates("n1", "c", 9, Duration::from_secs(1), &c, &io_back).is_none());
    }
}
