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
    /// Migrations this agent took part in since it started.
    pub migrations: MigrationStats,
}

/// Upper bounds (seconds) of the frozen-time histogram's buckets.
pub const FROZEN_BUCKETS: [f64; 9] = [0.05, 0.1, 0.2, 0.5, 1.0, 2.0, 5.0, 10.0, 30.0];

/// Counts of an agent's migrations, for Prometheus (cumulative).
#[derive(Debug, Clone, Serialize, Deserialize, PartialEq, Default)]
pub struct MigrationStats {
    /// Containers that moved away from this host.
    pub out_total: u64,
    /// Containers that moved here and run.
    pub in_total: u64,
    /// Of the moves out: how many were frozen at most each bound of
    /// [`FROZEN_BUCKETS`] (cumulative, as a Prometheus histogram).
    pub frozen_le: Vec<u64>,
    /// Of the moves out: total seconds frozen.
    pub frozen_seconds_sum: f64,
}

impl MigrationStats {
    /// Count a move out of this host that kept the container frozen `frozen_s`.
    pub fn moved_out(&mut self, frozen_s: f64) {
        self.frozen_le.resize(FROZEN_BUCKETS.len(), 0);
        for (n, le) in self.frozen_le.iter_mut().zip(FROZEN_BUCKETS) {
            if frozen_s <= le {
                *n += 1;
            }
        }
        self.out_total += 1;
        self.frozen_seconds_sum += frozen_s;
    }
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
    pub counters: HostCounters,
}

/// A host's cumulative counters in base units (for Prometheus, whose
/// `rate()` makes the rates).
#[derive(Debug, Clone, Serialize, Deserialize, PartialEq, Default)]
pub struct HostCounters {
    /// CPU seconds of all CPUs since boot by mode: user (with nice),
    /// system (with irq, softirq), idle, iowait. With `--cpus` the
    /// slice's user and system time (idle and iowait are then 0).
    pub cpu_seconds: [f64; 4],
    pub context_switches: u64,
    pub interrupts: u64,
    pub softirqs: u64,
    pub major_faults: u64,
    /// PSI: seconds in which some tasks stalled on cpu, memory, io.
    pub pressure_seconds: [Option<f64>; 3],
}

#[derive(Debug, Clone, Serialize, Deserialize, PartialEq, Default)]
pub struct DiskSample {
    pub device: String,
    pub read_ops_per_second: f64,
    pub write_ops_per_second: f64,
    pub read_bytes_per_second: f64,
    pub write_bytes_per_second: f64,
    pub busy_ratio: f64,
    /// Since boot: reads, writes completed; bytes read, written; seconds busy.
    pub reads_total: u64,
    pub writes_total: u64,
    pub read_bytes_total: u64,
    pub written_bytes_total: u64,
    pub io_time_seconds_total: f64,
}

#[derive(Debug, Clone, Serialize, Deserialize, PartialEq, Default)]
pub struct NetSample {
    pub interface: String,
    pub rx_bytes_per_second: f64,
    pub tx_bytes_per_second: f64,
    pub rx_bytes_total: u64,
    pub tx_bytes_total: u64,
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
    /// The image the container was made from.
    pub image: String,
    pub counters: ContainerCounters,
}

/// A container's cumulative counters in base units. They continue across
/// checkpoint/restore and migration: the counts at the dump travel with
/// the images and are the base the restored container's new cgroup (which
/// starts from zero) adds to.
#[derive(Debug, Clone, Copy, Serialize, Deserialize, PartialEq, Default)]
pub struct ContainerCounters {
    pub cpu_seconds: f64,
    pub cfs_periods: u64,
    pub cfs_throttled_periods: u64,
    pub cfs_throttled_seconds: f64,
    pub major_faults: u64,
    /// read calls, write calls (v1: of the tasks; v2: io.stat ios)
    pub fs_reads: u64,
    pub fs_writes: u64,
    pub fs_read_bytes: u64,
    pub fs_write_bytes: u64,
    /// Of the container's network namespace, loopback left out.
    pub net_rx_bytes: u64,
    pub net_tx_bytes: u64,
    /// PSI "some" stall seconds: cpu, memory, io.
    pub pressure_seconds: [f64; 3],
    /// The workload's own `total=` of its ops lines (it survives moves by itself).
    pub ops: Option<u64>,
    /// Wall clock when the container was first made (seconds since 1970).
    pub start_time_seconds: f64,
}

impl ContainerCounters {
    /// `self` (a fresh cgroup's counts) on top of `base` (the counts at the
    /// last dump); ops and start time are not summed.
    pub fn plus(&self, base: &ContainerCounters) -> ContainerCounters {
        let mut p = [0.0; 3];
        for (i, v) in p.iter_mut().enumerate() {
            *v = self.pressure_seconds[i] + base.pressure_seconds[i];
        }
        ContainerCounters {
            cpu_seconds: self.cpu_seconds + base.cpu_seconds,
            cfs_periods: self.cfs_periods + base.cfs_periods,
            cfs_throttled_periods: self.cfs_throttled_periods + base.cfs_throttled_periods,
            cfs_throttled_seconds: self.cfs_throttled_seconds + base.cfs_throttled_seconds,
            major_faults: self.major_faults + base.major_faults,
            fs_reads: self.fs_reads + base.fs_reads,
            fs_writes: self.fs_writes + base.fs_writes,
            fs_read_bytes: self.fs_read_bytes + base.fs_read_bytes,
            fs_write_bytes: self.fs_write_bytes + base.fs_write_bytes,
            net_rx_bytes: self.net_rx_bytes + base.net_rx_bytes,
            net_tx_bytes: self.net_tx_bytes + base.net_tx_bytes,
            pressure_seconds: p,
            ops: self.ops,
            start_time_seconds: self.start_time_seconds,
        }
    }

    /// `self` less what `held` already counts (each count at least 0).
    pub fn minus(&self, held: &ContainerCounters) -> ContainerCounters {
        let f = |a: f64, b: f64| (a - b).max(0.0);
        let mut p = [0.0; 3];
        for (i, v) in p.iter_mut().enumerate() {
            *v = f(self.pressure_seconds[i], held.pressure_seconds[i]);
        }
        ContainerCounters {
            cpu_seconds: f(self.cpu_seconds, held.cpu_seconds),
            cfs_periods: self.cfs_periods.saturating_sub(held.cfs_periods),
            cfs_throttled_periods: self
                .cfs_throttled_periods
                .saturating_sub(held.cfs_throttled_periods),
            cfs_throttled_seconds: f(self.cfs_throttled_seconds, held.cfs_throttled_seconds),
            major_faults: self.major_faults.saturating_sub(held.major_faults),
            fs_reads: self.fs_reads.saturating_sub(held.fs_reads),
            fs_writes: self.fs_writes.saturating_sub(held.fs_writes),
            fs_read_bytes: self.fs_read_bytes.saturating_sub(held.fs_read_bytes),
            fs_write_bytes: self.fs_write_bytes.saturating_sub(held.fs_write_bytes),
            net_rx_bytes: self.net_rx_bytes.saturating_sub(held.net_rx_bytes),
            net_tx_bytes: self.net_tx_bytes.saturating_sub(held.net_tx_bytes),
            pressure_seconds: p,
            ops: self.ops,
            start_time_seconds: self.start_time_seconds,
        }
    }
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
