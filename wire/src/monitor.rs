//! Monitoring: the samples an agent takes and the stream that carries them
//! to subscribers.
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
//! twice, by two agents, in either order; the migration tracker
//! (`herd_coordinator::tracker::MigrationTracker`) turns the facts into one
//! `moved` row per move with the container's running count.
//! While a container is frozen between hosts neither agent samples it, so
//! it is never counted on two hosts.
//!
//! The CSV rows made of these samples live in `herd_coordinator::csv`, the
//! Prometheus text in the `herd-metrics` crate.

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
