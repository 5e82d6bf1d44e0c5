//! Monitoring: the samples an agent takes, the stream that carries them to
//! subscribers, and the CSV row layout every Herd tool shares.
//!
//! # Subscribe stream
//!
//! ```text
//! monitor                                        agent
//!   | Envelope{Request::Subscribe(Subscribe)} ----->|
//!   |<------------- Monitor(Hello{host, interval})  |  once
//!   |<------------- Monitor(Present{containers})    |  once: what runs here now
//!   |<------------- Monitor(Logs{container, lines}) |  backfill: lines with time_ns > log_since
//!   |<------------- Monitor(Sample) ...             |  every sampling interval
//!   |<------------- Monitor(Event) ...              |  a container added, removed, moved in/out
//!   |<------------- Monitor(Logs) ...               |  new log lines of running containers
//! ```
//!
//! The stream never ends by itself; the subscriber closes it. A subscriber
//! too slow to keep up gets `Monitor(Lagged{missed})` and the stream goes on
//! with the newest data. Log lines may repeat (backfill overlapping the live
//! tail, a container's log moving with it to another host): subscribers
//! de-duplicate by `(time_ns, stream, line)`; within one container's log
//! the nanosecond timestamps are the order.
//!
//! # Events and the migration count
//!
//! Agents report facts they know: `Added` (run, imported), `Removed` (rm),
//! `MovedOut{to}` (the source, once the target confirmed the restore) and
//! `MovedIn{from}` (the target, after its restore). A move is thus reported
//! twice, by two agents, in either order; [`MigrationTracker`] turns the
//! facts into one `moved` row per move with the container's running count.
//! While a container is frozen between hosts neither agent samples it, so
//! it is never counted on two hosts.
//!
//! # CSV
//!
//! `hosts.csv`, `containers.csv` and `migrations.csv` rows are written and
//! parsed here ([`HOSTS_HEADER`], [`CONTAINERS_HEADER`],
//! [`MIGRATIONS_HEADER`]), so the monitor and the coordinator's simulator
//! agree on them. `time` is Unix seconds with millisecond decimals; an empty
//! cell is a value the host cannot give (e.g. PSI on a cgroup v1 host).

use std::collections::HashMap;

use serde::{Deserialize, Serialize};

use crate::LogLine;

/// What a subscriber asks for.
#[derive(Debug, Clone, Serialize, Deserialize, PartialEq, Default)]
pub struct Subscribe {
    /// Also stream container log lines.
    pub logs: bool,
    /// Per container: only log lines newer than this (ns). A container not
    /// listed gets its whole log.
    pub log_since: Vec<(String, u64)>,
}

/// One message of the subscribe stream (`Response::Monitor`).
#[derive(Debug, Clone, Serialize, Deserialize, PartialEq)]
pub enum MonitorMsg {
    Hello {
        host: String,
        interval_ms: u64,
        /// "v1", "v2" or "hybrid".
        cgroup: String,
        /// CPU capacity for containers (`--cpus`, else the machine's CPUs).
        cores: f64,
    },
    /// Containers running on the host when the subscription began.
    Present {
        containers: Vec<String>,
    },
    Sample(Box<Sample>),
    Event(ContainerEvent),
    Logs {
        container: String,
        lines: Vec<LogLine>,
    },
    /// The subscriber fell behind and this many messages were skipped.
    Lagged {
        missed: u64,
    },
}

/// One sampling tick of one host.
#[derive(Debug, Clone, Serialize, Deserialize, PartialEq, Default)]
pub struct Sample {
    /// None when a host counter went backwards (the host row is dropped).
    pub host: Option<HostSample>,
    pub containers: Vec<ContainerSample>,
    /// Samples dropped since the agent started because a counter went
    /// backwards (a reset, a container whose process was replaced).
    pub dropped_total: u64,
}

#[derive(Debug, Clone, Serialize, Deserialize, PartialEq, Default)]
pub struct HostSample {
    pub time_ns: u64,
    pub host: String,
    /// CPU capacity for containers: the agent's `--cpus`, else the
    /// machine's CPUs. With `--cpus` the CPU ratios below are the
    /// containers' share of that capacity.
    pub cores: f64,
    /// Shares of all cores' time over the interval (sum with idle ~ 1).
    pub cpu_user_ratio: f64,
    pub cpu_system_ratio: f64,
    pub cpu_idle_ratio: f64,
    pub cpu_iowait_ratio: f64,
    pub load1: f64,
    pub load5: f64,
    pub load15: f64,
    pub runnable_tasks: u64,
    pub context_switches_per_second: f64,
    pub interrupts_per_second: f64,
    pub softirqs_per_second: f64,
    pub memory_total_bytes: u64,
    pub memory_used_bytes: u64,
    pub memory_available_bytes: u64,
    pub major_faults_per_second: f64,
    /// Sums over the disks below.
    pub disk_ops_per_second: f64,
    pub disk_read_bytes_per_second: f64,
    pub disk_write_bytes_per_second: f64,
    /// The busiest disk's share of the interval with IO in flight.
    pub disk_busy_ratio: f64,
    /// Sums over the interfaces below (loopback excluded).
    pub net_rx_bytes_per_second: f64,
    pub net_tx_bytes_per_second: f64,
    pub psi_cpu_some_avg10: Option<f64>,
    pub psi_memory_some_avg10: Option<f64>,
    pub psi_io_some_avg10: Option<f64>,
    pub disks: Vec<DiskSample>,
    pub nets: Vec<NetSample>,
}

#[derive(Debug, Clone, Serialize, Deserialize, PartialEq, Default)]
pub struct DiskSample {
    pub device: String,
    pub read_ops_per_second: f64,
    pub write_ops_per_second: f64,
    pub read_bytes_per_second: f64,
    pub write_bytes_per_second: f64,
    pub busy_ratio: f64,
}

#[derive(Debug, Clone, Serialize, Deserialize, PartialEq, Default)]
pub struct NetSample {
    pub interface: String,
    pub rx_bytes_per_second: f64,
    pub tx_bytes_per_second: f64,
}

#[derive(Debug, Clone, Serialize, Deserialize, PartialEq, Default)]
pub struct ContainerSample {
    pub time_ns: u64,
    pub host: String,
    pub container: String,
    /// Not normalised: 2 busy threads read 2.0.
    pub cpu_usage_cores: f64,
    /// Share of CFS periods in which the container was throttled.
    pub cpu_throttled_ratio: f64,
    pub cpu_throttled_seconds_per_second: f64,
    /// Working set: usage minus inactive file cache.
    pub memory_bytes: u64,
    pub major_faults_per_second: f64,
    pub io_read_ops_per_second: f64,
    pub io_write_ops_per_second: f64,
    pub io_read_bytes_per_second: f64,
    pub io_write_bytes_per_second: f64,
    pub pids: u64,
    /// From the workload's own `ops=<n>` lines; None if it prints none.
    pub ops_per_second: Option<f64>,
    pub psi_cpu_some_avg10: Option<f64>,
    pub psi_memory_some_avg10: Option<f64>,
    pub psi_io_some_avg10: Option<f64>,
}

#[derive(Debug, Clone, Serialize, Deserialize, PartialEq, Eq)]
pub struct ContainerEvent {
    pub time_ns: u64,
    /// The reporting agent's node.
    pub host: String,
    pub container: String,
    pub kind: EventKind,
}

#[derive(Debug, Clone, Serialize, Deserialize, PartialEq, Eq)]
pub enum EventKind {
    Added,
    Removed,
    MovedIn { from: String },
    MovedOut { to: String },
}

// ------------------------------------------------------------------ CSV

pub const HOSTS_HEADER: &str = "time,host,cpu_user_ratio,cpu_system_ratio,cpu_iowait_ratio,load1,\
memory_used_bytes,major_faults_per_second,disk_ops_per_second,disk_busy_ratio,\
net_rx_bytes_per_second,net_tx_bytes_per_second,cpu_idle_ratio,load5,load15,runnable_tasks,\
context_switches_per_second,interrupts_per_second,softirqs_per_second,memory_total_bytes,\
memory_available_bytes,disk_read_bytes_per_second,disk_write_bytes_per_second,\
psi_cpu_some_avg10,psi_memory_some_avg10,psi_io_some_avg10,cores";

pub const CONTAINERS_HEADER: &str = "time,host,container,cpu_usage_cores,memory_bytes,\
major_faults_per_second,io_read_ops_per_second,io_write_ops_per_second,pids,ops_per_second,\
cpu_throttled_ratio,cpu_throttled_seconds_per_second,io_read_bytes_per_second,\
io_write_bytes_per_second,psi_cpu_some_avg10,psi_memory_some_avg10,psi_io_some_avg10";

pub const MIGRATIONS_HEADER: &str = "time,container,from,to,event,count";

/// A malformed CSV row.
#[derive(Debug, thiserror::Error, PartialEq)]
#[error("{file} row {row:?}: {reason}")]
pub struct CsvError {
    pub file: &'static str,
    pub row: String,
    pub reason: String,
}

/// `time` column: Unix seconds with millisecond decimals.
pub fn fmt_time(ns: u64) -> String {
    format!(
        "{}.{:03}",
        ns / 1_000_000_000,
        (ns % 1_000_000_000) / 1_000_000
    )
}

fn parse_time(s: &str) -> Option<u64> {
    let (secs, frac) = s.split_once('.').unwrap_or((s, "0"));
    let secs: u64 = secs.parse().ok()?;
    if frac.is_empty() || frac.len() > 9 || !frac.bytes().all(|b| b.is_ascii_digit()) {
        return None;
    }
    let frac: u64 = format!("{frac:0<9}").parse().ok()?;
    secs.checked_mul(1_000_000_000)?.checked_add(frac)
}

/// Rates to 3 decimals and ratios to 4: enough, and rows stay short.
fn f3(v: f64) -> String {
    format!("{v:.3}")
}
fn f4(v: f64) -> String {
    format!("{v:.4}")
}
fn opt(v: Option<f64>) -> String {
    v.map(|v| format!("{v:.2}")).unwrap_or_default()
}

/// Names are node and container names (validated: no commas); quote
/// anything else defensively.
fn cell(s: &str) -> String {
    if s.contains([',', '"', '\n']) {
        format!("\"{}\"", s.replace('"', "\"\""))
    } else {
        s.to_string()
    }
}

/// Split one row on commas, honouring double quotes.
pub fn split_row(row: &str) -> Vec<String> {
    let mut out = Vec::new();
    let mut cur = String::new();
    let mut quoted = false;
    let mut chars = row.chars().peekable();
    while let Some(c) = chars.next() {
        match (c, quoted) {
            ('"', true) if chars.peek() == Some(&'"') => {
                cur.push('"');
                chars.next();
            }
            ('"', _) => quoted = !quoted,
            (',', false) => out.push(std::mem::take(&mut cur)),
            (c, _) => cur.push(c),
        }
    }
    out.push(cur);
    out
}

struct Fields<'a> {
    file: &'static str,
    row: &'a str,
    cells: Vec<String>,
    i: usize,
}

impl<'a> Fields<'a> {
    fn new(file: &'static str, row: &'a str, want: usize) -> Result<Self, CsvError> {
        let cells = split_row(row);
        let f = Fields {
            file,
            row,
            cells,
            i: 0,
        };
        if f.cells.len() < want {
            return Err(f.err(format!("{} columns, expected {want}", f.cells.len())));
        }
        Ok(f)
    }
    fn err(&self, reason: String) -> CsvError {
        CsvError {
            file: self.file,
            row: self.row.to_string(),
            reason,
        }
    }
    fn next(&mut self) -> String {
        self.i += 1;
        self.cells[self.i - 1].clone()
    }
    fn time(&mut self) -> Result<u64, CsvError> {
        let s = self.next();
        parse_time(&s).ok_or_else(|| self.err(format!("bad time {s:?}")))
    }
    fn num<T: std::str::FromStr>(&mut self) -> Result<T, CsvError> {
        let s = self.next();
        s.parse()
            .map_err(|_| self.err(format!("bad number {s:?} in column {}", self.i)))
    }
    fn opt(&mut self) -> Result<Option<f64>, CsvError> {
        if self.cells[self.i].is_empty() {
            self.i += 1;
            return Ok(None);
        }
        self.num().map(Some)
    }
}

impl HostSample {
    /// One `hosts.csv` row (no newline), columns as [`HOSTS_HEADER`].
    pub fn csv_row(&self) -> String {
        [
            fmt_time(self.time_ns),
            cell(&self.host),
            f4(self.cpu_user_ratio),
            f4(self.cpu_system_ratio),
            f4(self.cpu_iowait_ratio),
            format!("{:.2}", self.load1),
            self.memory_used_bytes.to_string(),
            f3(self.major_faults_per_second),
            f3(self.disk_ops_per_second),
            f4(self.disk_busy_ratio),
            f3(self.net_rx_bytes_per_second),
            f3(self.net_tx_bytes_per_second),
            f4(self.cpu_idle_ratio),
            format!("{:.2}", self.load5),
            format!("{:.2}", self.load15),
            self.runnable_tasks.to_string(),
            f3(self.context_switches_per_second),
            f3(self.interrupts_per_second),
            f3(self.softirqs_per_second),
            self.memory_total_bytes.to_string(),
            self.memory_available_bytes.to_string(),
            f3(self.disk_read_bytes_per_second),
            f3(self.disk_write_bytes_per_second),
            opt(self.psi_cpu_some_avg10),
            opt(self.psi_memory_some_avg10),
            opt(self.psi_io_some_avg10),
            self.cores.to_string(),
        ]
        .join(",")
    }

    /// Parse a `hosts.csv` row (per-device detail is not in the CSV).
    pub fn from_csv_row(row: &str) -> Result<Self, CsvError> {
        let mut f = Fields::new("hosts.csv", row, 27)?;
        Ok(HostSample {
            time_ns: f.time()?,
            host: f.next(),
            cpu_user_ratio: f.num()?,
            cpu_system_ratio: f.num()?,
            cpu_iowait_ratio: f.num()?,
            load1: f.num()?,
            memory_used_bytes: f.num()?,
            major_faults_per_second: f.num()?,
            disk_ops_per_second: f.num()?,
            disk_busy_ratio: f.num()?,
            net_rx_bytes_per_second: f.num()?,
            net_tx_bytes_per_second: f.num()?,
            cpu_idle_ratio: f.num()?,
            load5: f.num()?,
            load15: f.num()?,
            runnable_tasks: f.num()?,
            context_switches_per_second: f.num()?,
            interrupts_per_second: f.num()?,
            softirqs_per_second: f.num()?,
            memory_total_bytes: f.num()?,
            memory_available_bytes: f.num()?,
            disk_read_bytes_per_second: f.num()?,
            disk_write_bytes_per_second: f.num()?,
            psi_cpu_some_avg10: f.opt()?,
            psi_memory_some_avg10: f.opt()?,
            psi_io_some_avg10: f.opt()?,
            cores: f.num()?,
            disks: Vec::new(),
            nets: Vec::new(),
        })
    }
}

impl ContainerSample {
    /// One `containers.csv` row (no newline), columns as [`CONTAINERS_HEADER`].
    pub fn csv_row(&self) -> String {
        [
            fmt_time(self.time_ns),
            cell(&self.host),
            cell(&self.container),
            f4(self.cpu_usage_cores),
            self.memory_bytes.to_string(),
            f3(self.major_faults_per_second),
            f3(self.io_read_ops_per_second),
            f3(self.io_write_ops_per_second),
            self.pids.to_string(),
            opt(self.ops_per_second),
            f4(self.cpu_throttled_ratio),
            f4(self.cpu_throttled_seconds_per_second),
            f3(self.io_read_bytes_per_second),
            f3(self.io_write_bytes_per_second),
            opt(self.psi_cpu_some_avg10),
            opt(self.psi_memory_some_avg10),
            opt(self.psi_io_some_avg10),
        ]
        .join(",")
    }

    pub fn from_csv_row(row: &str) -> Result<Self, CsvError> {
        let mut f = Fields::new("containers.csv", row, 17)?;
        Ok(ContainerSample {
            time_ns: f.time()?,
            host: f.next(),
            container: f.next(),
            cpu_usage_cores: f.num()?,
            memory_bytes: f.num()?,
            major_faults_per_second: f.num()?,
            io_read_ops_per_second: f.num()?,
            io_write_ops_per_second: f.num()?,
            pids: f.num()?,
            ops_per_second: f.opt()?,
            cpu_throttled_ratio: f.num()?,
            cpu_throttled_seconds_per_second: f.num()?,
            io_read_bytes_per_second: f.num()?,
            io_write_bytes_per_second: f.num()?,
            psi_cpu_some_avg10: f.opt()?,
            psi_memory_some_avg10: f.opt()?,
            psi_io_some_avg10: f.opt()?,
        })
    }
}

/// The `event` column of `migrations.csv`.
#[derive(Debug, Clone, Copy, Serialize, Deserialize, PartialEq, Eq)]
pub enum Migration {
    Added,
    Removed,
    Moved,
}

impl Migration {
    pub fn as_str(self) -> &'static str {
        match self {
            Migration::Added => "added",
            Migration::Removed => "removed",
            Migration::Moved => "moved",
        }
    }
}

/// One `migrations.csv` row: `from` is empty for `added`, `to` for `removed`;
/// `count` is the container's number of moves so far.
#[derive(Debug, Clone, Serialize, Deserialize, PartialEq, Eq)]
pub struct MigrationRow {
    pub time_ns: u64,
    pub container: String,
    pub from: String,
    pub to: String,
    pub event: Migration,
    pub count: u64,
}

impl MigrationRow {
    pub fn csv_row(&self) -> String {
        [
            fmt_time(self.time_ns),
            cell(&self.container),
            cell(&self.from),
            cell(&self.to),
            self.event.as_str().to_string(),
            self.count.to_string(),
        ]
        .join(",")
    }

    pub fn from_csv_row(row: &str) -> Result<Self, CsvError> {
        let mut f = Fields::new("migrations.csv", row, 6)?;
        let time_ns = f.time()?;
        let (container, from, to) = (f.next(), f.next(), f.next());
        let ev = f.next();
        let event = match ev.as_str() {
            "added" => Migration::Added,
            "removed" => Migration::Removed,
            "moved" => Migration::Moved,
            _ => return Err(f.err(format!("unknown event {ev:?}"))),
        };
        Ok(MigrationRow {
            time_ns,
            container,
            from,
            to,
            event,
            count: f.num()?,
        })
    }
}

/// Turns the agents' facts into `migrations.csv` rows: one `moved` per move
/// (reported by both ends, in either order), `added` the first time a
/// container is seen, `removed` when the host that holds it removes it.
#[derive(Debug, Default)]
pub struct MigrationTracker {
    /// Where each known container is (None: removed).
    at: HashMap<String, Option<String>>,
    moves: HashMap<String, u64>,
}

impl MigrationTracker {
    pub fn location(&self, container: &str) -> Option<&str> {
        self.at.get(container)?.as_deref()
    }

    pub fn moves(&self, container: &str) -> u64 {
        self.moves.get(container).copied().unwrap_or(0)
    }

    /// A host's list of what runs there (subscription start, reconnect).
    /// Containers recorded at that host but missing from the list were
    /// removed (or moved while we were not listening: a later `MovedIn`
    /// elsewhere still counts the move).
    pub fn present(
        &mut self,
        time_ns: u64,
        host: &str,
        containers: &[String],
    ) -> Vec<MigrationRow> {
        let mut out = Vec::new();
        for c in containers {
            if let Some(r) = self.arrive(time_ns, c, None, host) {
                out.push(r);
            }
        }
        let gone: Vec<String> = self
            .at
            .iter()
            .filter(|(c, h)| h.as_deref() == Some(host) && !containers.contains(c))
            .map(|(c, _)| c.clone())
            .collect();
        for c in gone {
            out.extend(self.leave(time_ns, &c, host, None));
        }
        out
    }

    pub fn event(&mut self, ev: &ContainerEvent) -> Option<MigrationRow> {
        let (t, c, h) = (ev.time_ns, ev.container.as_str(), ev.host.as_str());
        match &ev.kind {
            EventKind::Added => self.arrive(t, c, None, h),
            EventKind::MovedIn { from } => self.arrive(t, c, Some(from), h),
            EventKind::Removed => self.leave(t, c, h, None),
            EventKind::MovedOut { to } => self.leave(t, c, h, Some(to)),
        }
    }

    /// `c` is now at `host` (coming from `from`, if it moved).
    fn arrive(&mut self, t: u64, c: &str, from: Option<&str>, host: &str) -> Option<MigrationRow> {
        let prev = self.at.get(c).cloned().flatten();
        if prev.as_deref() == Some(host) {
            return None; // known already (the other end reported the move first)
        }
        self.at.insert(c.to_string(), Some(host.to_string()));
        let from = from.map(str::to_string).or(prev);
        match from {
            Some(from) => Some(self.moved(t, c, from, host.to_string())),
            None => Some(MigrationRow {
                time_ns: t,
                container: c.to_string(),
                from: String::new(),
                to: host.to_string(),
                event: Migration::Added,
                count: self.moves(c),
            }),
        }
    }

    /// `c` left `host` (for `to`, if it moved).
    fn leave(&mut self, t: u64, c: &str, host: &str, to: Option<&str>) -> Option<MigrationRow> {
        let cur = self.at.get(c).cloned().flatten();
        match to {
            Some(to) => {
                if cur.as_deref() == Some(to) {
                    return None; // the target reported it first
                }
                self.at.insert(c.to_string(), Some(to.to_string()));
                Some(self.moved(t, c, host.to_string(), to.to_string()))
            }
            None => {
                if cur.as_deref() != Some(host) {
                    return None; // it is elsewhere: not this host's to remove
                }
                self.at.insert(c.to_string(), None);
                Some(MigrationRow {
                    time_ns: t,
                    container: c.to_string(),
                    from: host.to_string(),
                    to: String::new(),
                    event: Migration::Removed,
                    count: self.moves(c),
                })
            }
        }
    }

    fn moved(&mut self, t: u64, c: &str, from: String, to: String) -> MigrationRow {
        let n = self.moves.entry(c.to_string()).or_insert(0);
        *n += 1;
        MigrationRow {
            time_ns: t,
            container: c.to_string(),
            from,
            to,
            event: Migration::Moved,
            count: *n,
        }
    }
}

// ----------------------------------------------------------- Prometheus

/// The Prometheus text exposition (format 0.0.4) of the latest samples of
/// one or more hosts: `herd_host_*{host}`, `herd_disk_*{host,device}`,
/// `herd_net_*{host,interface}`, `herd_container_*{host,container}`.
pub fn prometheus_text(samples: &[&Sample]) -> String {
    use std::fmt::Write;
    let mut out = String::new();
    let esc = |s: &str| {
        s.replace('\\', "\\\\")
            .replace('"', "\\\"")
            .replace('\n', "\\n")
    };
    type HostGet = fn(&HostSample) -> f64;
    let host_metrics: [(&str, &str, HostGet); 21] = [
        ("cpu_user_ratio", "gauge", |h| h.cpu_user_ratio),
        ("cpu_system_ratio", "gauge", |h| h.cpu_system_ratio),
        ("cpu_idle_ratio", "gauge", |h| h.cpu_idle_ratio),
        ("cpu_iowait_ratio", "gauge", |h| h.cpu_iowait_ratio),
        ("load1", "gauge", |h| h.load1),
        ("load5", "gauge", |h| h.load5),
        ("load15", "gauge", |h| h.load15),
        ("runnable_tasks", "gauge", |h| h.runnable_tasks as f64),
        ("context_switches_per_second", "gauge", |h| {
            h.context_switches_per_second
        }),
        ("interrupts_per_second", "gauge", |h| {
            h.interrupts_per_second
        }),
        ("softirqs_per_second", "gauge", |h| h.softirqs_per_second),
        ("memory_total_bytes", "gauge", |h| {
            h.memory_total_bytes as f64
        }),
        ("memory_used_bytes", "gauge", |h| h.memory_used_bytes as f64),
        ("memory_available_bytes", "gauge", |h| {
            h.memory_available_bytes as f64
        }),
        ("major_faults_per_second", "gauge", |h| {
            h.major_faults_per_second
        }),
        ("disk_ops_per_second", "gauge", |h| h.disk_ops_per_second),
        ("disk_read_bytes_per_second", "gauge", |h| {
            h.disk_read_bytes_per_second
        }),
        ("disk_write_bytes_per_second", "gauge", |h| {
            h.disk_write_bytes_per_second
        }),
        ("disk_busy_ratio", "gauge", |h| h.disk_busy_ratio),
        ("net_rx_bytes_per_second", "gauge", |h| {
            h.net_rx_bytes_per_second
        }),
        ("net_tx_bytes_per_second", "gauge", |h| {
            h.net_tx_bytes_per_second
        }),
    ];
    for (name, kind, get) in host_metrics {
        let _ = writeln!(out, "# TYPE herd_host_{name} {kind}");
        for h in samples.iter().filter_map(|s| s.host.as_ref()) {
            let _ = writeln!(
                out,
                "herd_host_{name}{{host=\"{}\"}} {}",
                esc(&h.host),
                get(h)
            );
        }
    }
    type HostOpt = fn(&HostSample) -> Option<f64>;
    let psi: [(&str, HostOpt); 3] = [
        ("psi_cpu_some_avg10", |h| h.psi_cpu_some_avg10),
        ("psi_memory_some_avg10", |h| h.psi_memory_some_avg10),
        ("psi_io_some_avg10", |h| h.psi_io_some_avg10),
    ];
    for (name, get) in psi {
        let _ = writeln!(out, "# TYPE herd_host_{name} gauge");
        for h in samples.iter().filter_map(|s| s.host.as_ref()) {
            if let Some(v) = get(h) {
                let _ = writeln!(out, "herd_host_{name}{{host=\"{}\"}} {v}", esc(&h.host));
            }
        }
    }
    type DiskGet = fn(&DiskSample) -> f64;
    let disk: [(&str, DiskGet); 5] = [
        ("read_ops_per_second", |d| d.read_ops_per_second),
        ("write_ops_per_second", |d| d.write_ops_per_second),
        ("read_bytes_per_second", |d| d.read_bytes_per_second),
        ("write_bytes_per_second", |d| d.write_bytes_per_second),
        ("busy_ratio", |d| d.busy_ratio),
    ];
    for (name, get) in disk {
        let _ = writeln!(out, "# TYPE herd_disk_{name} gauge");
        for h in samples.iter().filter_map(|s| s.host.as_ref()) {
            for d in &h.disks {
                let _ = writeln!(
                    out,
                    "herd_disk_{name}{{host=\"{}\",device=\"{}\"}} {}",
                    esc(&h.host),
                    esc(&d.device),
                    get(d)
                );
            }
        }
    }
    type NetGet = fn(&NetSample) -> f64;
    let net: [(&str, NetGet); 2] = [
        ("rx_bytes_per_second", |n| n.rx_bytes_per_second),
        ("tx_bytes_per_second", |n| n.tx_bytes_per_second),
    ];
    for (name, get) in net {
        let _ = writeln!(out, "# TYPE herd_net_{name} gauge");
        for h in samples.iter().filter_map(|s| s.host.as_ref()) {
            for n in &h.nets {
                let _ = writeln!(
                    out,
                    "herd_net_{name}{{host=\"{}\",interface=\"{}\"}} {}",
                    esc(&h.host),
                    esc(&n.interface),
                    get(n)
                );
            }
        }
    }
    type CGet = fn(&ContainerSample) -> Option<f64>;
    let cm: [(&str, CGet); 15] = [
        ("cpu_usage_cores", |c| Some(c.cpu_usage_cores)),
        ("cpu_throttled_ratio", |c| Some(c.cpu_throttled_ratio)),
        ("cpu_throttled_seconds_per_second", |c| {
            Some(c.cpu_throttled_seconds_per_second)
        }),
        ("memory_bytes", |c| Some(c.memory_bytes as f64)),
        ("major_faults_per_second", |c| {
            Some(c.major_faults_per_second)
        }),
        ("io_read_ops_per_second", |c| Some(c.io_read_ops_per_second)),
        ("io_write_ops_per_second", |c| {
            Some(c.io_write_ops_per_second)
        }),
        ("io_read_bytes_per_second", |c| {
            Some(c.io_read_bytes_per_second)
        }),
        ("io_write_bytes_per_second", |c| {
            Some(c.io_write_bytes_per_second)
        }),
        ("pids", |c| Some(c.pids as f64)),
        ("ops_per_second", |c| c.ops_per_second),
        ("psi_cpu_some_avg10", |c| c.psi_cpu_some_avg10),
        ("psi_memory_some_avg10", |c| c.psi_memory_some_avg10),
        ("psi_io_some_avg10", |c| c.psi_io_some_avg10),
        ("up", |_| Some(1.0)),
    ];
    for (name, get) in cm {
        let _ = writeln!(out, "# TYPE herd_container_{name} gauge");
        for s in samples {
            for c in &s.containers {
                if let Some(v) = get(c) {
                    let _ = writeln!(
                        out,
                        "herd_container_{name}{{host=\"{}\",container=\"{}\"}} {v}",
                        esc(&c.host),
                        esc(&c.container)
                    );
                }
            }
        }
    }
    let _ = writeln!(out, "# TYPE herd_dropped_samples_total counter");
    for s in samples {
        if let Some(h) = &s.host {
            let _ = writeln!(
                out,
                "herd_dropped_samples_total{{host=\"{}\"}} {}",
                esc(&h.host),
                s.dropped_total
            );
        }
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    fn ev(host: &str, c: &str, kind: EventKind) -> ContainerEvent {
        ContainerEvent {
            time_ns: 1,
            host: host.into(),
            container: c.into(),
            kind,
        }
    }

    #[test]
    fn rows_round_trip_and_headers_match() {
        let h = HostSample {
            time_ns: 1_700_000_000_123_000_000,
            host: "n1".into(),
            cpu_user_ratio: 0.25,
            load1: 1.5,
            memory_used_bytes: 123,
            psi_io_some_avg10: Some(0.5),
            cores: 2.0,
            ..Default::default()
        };
        let row = h.csv_row();
        assert!(row.starts_with("1700000000.123,n1,0.2500,"));
        assert_eq!(
            split_row(&row).len(),
            HOSTS_HEADER.split(',').count(),
            "{row}"
        );
        assert_eq!(HostSample::from_csv_row(&row).unwrap(), h);
        let c = ContainerSample {
            time_ns: 5_000_000,
            host: "n2".into(),
            container: "c,1".into(),
            cpu_usage_cores: 2.0,
            pids: 3,
            ops_per_second: Some(10.0),
            ..Default::default()
        };
        let row = c.csv_row();
        assert_eq!(split_row(&row).len(), CONTAINERS_HEADER.split(',').count());
        assert_eq!(ContainerSample::from_csv_row(&row).unwrap(), c);
        let m = MigrationRow {
            time_ns: 2_000_000_000,
            container: "c1".into(),
            from: "n1".into(),
            to: "n2".into(),
            event: Migration::Moved,
            count: 3,
        };
        assert_eq!(m.csv_row(), "2.000,c1,n1,n2,moved,3");
        assert_eq!(MigrationRow::from_csv_row(&m.csv_row()).unwrap(), m);
    }

    #[test]
    fn issue_columns_come_first_in_order() {
        assert!(HOSTS_HEADER.starts_with(
            "time,host,cpu_user_ratio,cpu_system_ratio,cpu_iowait_ratio,load1,memory_used_bytes,\
major_faults_per_second,disk_ops_per_second,disk_busy_ratio,net_rx_bytes_per_second,\
net_tx_bytes_per_second"
        ));
        assert!(CONTAINERS_HEADER.starts_with(
            "time,host,container,cpu_usage_cores,memory_bytes,major_faults_per_second,\
io_read_ops_per_second,io_write_ops_per_second,pids,ops_per_second"
        ));
    }

    #[test]
    fn prometheus_text_has_typed_labelled_metrics() {
        let s = Sample {
            host: Some(HostSample {
                host: "n1".into(),
                load1: 0.5,
                disks: vec![DiskSample {
                    device: "vda".into(),
                    busy_ratio: 0.25,
                    ..Default::default()
                }],
                ..Default::default()
            }),
            containers: vec![ContainerSample {
                host: "n1".into(),
                container: "c\"1".into(),
                cpu_usage_cores: 2.0,
                ..Default::default()
            }],
            dropped_total: 3,
        };
        let t = prometheus_text(&[&s]);
        assert!(
            t.contains("# TYPE herd_host_load1 gauge\nherd_host_load1{host=\"n1\"} 0.5\n"),
            "{t}"
        );
        assert!(t.contains("herd_disk_busy_ratio{host=\"n1\",device=\"vda\"} 0.25"));
        assert!(t.contains("herd_container_cpu_usage_cores{host=\"n1\",container=\"c\\\"1\"} 2"));
        assert!(t.contains("herd_dropped_samples_total{host=\"n1\"} 3"));
        assert!(
            !t.contains("herd_container_ops_per_second{"),
            "None values are left out"
        );
    }

    #[test]
    fn bad_rows_are_clear_errors() {
        assert!(HostSample::from_csv_row("1.0,n1").is_err());
        let e = MigrationRow::from_csv_row("1.0,c,a,b,teleported,1").unwrap_err();
        assert!(e.reason.contains("teleported"), "{e}");
        let e = MigrationRow::from_csv_row("x,c,a,b,moved,1").unwrap_err();
        assert!(e.reason.contains("time"), "{e}");
    }

    #[test]
    fn a_move_reported_by_both_ends_counts_once_in_either_order() {
        let mut t = MigrationTracker::default();
        let r = t.present(0, "n1", &["c".into()]);
        assert_eq!(r.len(), 1);
        assert_eq!(r[0].event, Migration::Added);
        // Target first, then source.
        let r = t.event(&ev("n2", "c", EventKind::MovedIn { from: "n1".into() }));
        let r = r.unwrap();
        assert_eq!(
            (r.event, r.count, r.from.as_str(), r.to.as_str()),
            (Migration::Moved, 1, "n1", "n2")
        );
        assert!(t
            .event(&ev("n1", "c", EventKind::MovedOut { to: "n2".into() }))
            .is_none());
        // Source first, then target.
        let r = t
            .event(&ev("n2", "c", EventKind::MovedOut { to: "n3".into() }))
            .unwrap();
        assert_eq!((r.count, r.to.as_str()), (2, "n3"));
        assert!(t
            .event(&ev("n3", "c", EventKind::MovedIn { from: "n2".into() }))
            .is_none());
        // The source's list no longer has it: no "removed".
        assert!(t.present(5, "n2", &[]).is_empty());
        assert_eq!(t.location("c"), Some("n3"));
        let r = t.event(&ev("n3", "c", EventKind::Removed)).unwrap();
        assert_eq!(
            (r.event, r.count, r.from.as_str()),
            (Migration::Removed, 2, "n3")
        );
        // A stale remove from another host changes nothing.
        assert!(t.event(&ev("n1", "c", EventKind::Removed)).is_none());
    }
}
