//! The monitor's CSV files, one schema and one codec (the `csv` crate) for
//! every writer and reader: the live monitor (`herd monitor`, `herd
//! coordinator`), the simulator, the report, the forecaster (which reads
//! them by these column names) and the fuzz target.
//!
//! Each file has one row type; its `COLUMNS` are every column the file can
//! have, the required ones first, in this order. A writer picks which
//! columns it writes (the monitor writes all it measures, the simulator what
//! it models); readers find every column by its header name, so a file
//! without an optional column or with unknown extra columns still reads.
//!
//! | file | row | required columns | optional columns |
//! |---|---|---|---|
//! | hosts.csv | [`HostRow`] | `time,host,cpu_user_ratio,cpu_system_ratio,cpu_iowait_ratio,load1,memory_used_bytes,major_faults_per_second,disk_ops_per_second,disk_busy_ratio,net_rx_bytes_per_second,net_tx_bytes_per_second` | `cpu_idle_ratio,load5,load15,runnable_tasks,context_switches_per_second,interrupts_per_second,softirqs_per_second,memory_total_bytes,memory_available_bytes,disk_read_bytes_per_second,disk_write_bytes_per_second,psi_cpu_some_avg10,psi_memory_some_avg10,psi_io_some_avg10,cores` |
//! | containers.csv | [`ContainerRow`] | `time,host,container,cpu_usage_cores,memory_bytes,major_faults_per_second,io_read_ops_per_second,io_write_ops_per_second,pids,ops_per_second` | `cpu_throttled_ratio,cpu_throttled_seconds_per_second,io_read_bytes_per_second,io_write_bytes_per_second,psi_cpu_some_avg10,psi_memory_some_avg10,psi_io_some_avg10,kind` (cpu, mem, io, oltp) |
//! | migrations.csv | [`MigrationRow`] | `time,container,from,to,event,count` | `frozen_seconds` |
//! | decisions.csv | [`DecisionRow`] | `time,policy,container,from,to,reason,outcome` | |
//!
//! `time` is in seconds with millisecond decimals (unix time in live runs,
//! seconds since the start in simulated ones). Ratios are 0..1 of the host
//! (CPU ratios normalised by cores) with 4 decimals; `cpu_usage_cores` is
//! not normalised (two busy threads = 2.0); rates have 3 decimals, loads and
//! PSI 2. An empty field means "unknown" (`ops_per_second` of a workload
//! that prints no ops, `from` of an `added` event, PSI on a cgroup v1 host,
//! a column the writer does not know). Fields holding a comma, a quote or a
//! line break are quoted as in RFC 4180. Fixed decimals make a run write the
//! same bytes every time.

use std::collections::HashMap;
use std::fmt::Write as _;
use std::io::{Read, Write};
use std::path::{Path, PathBuf};

use herd_wire::monitor::{ContainerSample, HostSample};

/// What went wrong reading or writing a CSV file.
#[derive(Debug, thiserror::Error)]
pub enum CsvError {
    #[error("{path}: {source}")]
    Io {
        path: PathBuf,
        source: std::io::Error,
    },
    #[error("{path}: {source}")]
    Csv { path: PathBuf, source: csv::Error },
    #[error("{path}: missing column {column:?} in the header")]
    MissingColumn {
        path: PathBuf,
        column: &'static str,
        /// The header as read (empty for a writer's column list).
        header: String,
    },
    #[error("{path}:{line}: {error}")]
    Cell {
        path: PathBuf,
        line: usize,
        error: RowError,
    },
    #[error("{path}:{line}: {msg}")]
    Bad {
        path: PathBuf,
        line: usize,
        msg: String,
    },
}

/// Why a line's cells do not make a row.
#[derive(Debug, Clone, PartialEq, thiserror::Error)]
pub enum RowError {
    #[error("{column} is empty")]
    Empty { column: String },
    #[error("{column}: {value:?} is not a {expected}")]
    NotA {
        column: String,
        value: String,
        expected: &'static str,
    },
    #[error("{0}")]
    Other(String),
}

/// One row type of one file.
pub trait CsvRow: Sized {
    /// The file's usual name (`hosts.csv`, ...).
    const FILE: &'static str;
    /// Every column of the file, the required ones first.
    const COLUMNS: &'static [&'static str];
    /// How many of [`COLUMNS`](Self::COLUMNS) are required.
    const REQUIRED: usize;
    /// The columns [`CsvWriter::new`] writes (the simulator's choice).
    const WRITTEN: &'static [&'static str];
    /// Appends the cell of `COLUMNS[col]` to `out`.
    fn write_cell(&self, col: usize, out: &mut String);
    fn from_fields(f: &Fields<'_>) -> Result<Self, RowError>;
}

pub const HOSTS_COLUMNS: &[&str] = &[
    "time",
    "host",
    "cpu_user_ratio",
    "cpu_system_ratio",
    "cpu_iowait_ratio",
    "load1",
    "memory_used_bytes",
    "major_faults_per_second",
    "disk_ops_per_second",
    "disk_busy_ratio",
    "net_rx_bytes_per_second",
    "net_tx_bytes_per_second",
    "cpu_idle_ratio",
    "load5",
    "load15",
    "runnable_tasks",
    "context_switches_per_second",
    "interrupts_per_second",
    "softirqs_per_second",
    "memory_total_bytes",
    "memory_available_bytes",
    "disk_read_bytes_per_second",
    "disk_write_bytes_per_second",
    "psi_cpu_some_avg10",
    "psi_memory_some_avg10",
    "psi_io_some_avg10",
    "cores",
];
pub const CONTAINERS_COLUMNS: &[&str] = &[
    "time",
    "host",
    "container",
    "cpu_usage_cores",
    "memory_bytes",
    "major_faults_per_second",
    "io_read_ops_per_second",
    "io_write_ops_per_second",
    "pids",
    "ops_per_second",
    "cpu_throttled_ratio",
    "cpu_throttled_seconds_per_second",
    "io_read_bytes_per_second",
    "io_write_bytes_per_second",
    "psi_cpu_some_avg10",
    "psi_memory_some_avg10",
    "psi_io_some_avg10",
    "kind",
];
pub const MIGRATIONS_COLUMNS: &[&str] = &[
    "time",
    "container",
    "from",
    "to",
    "event",
    "count",
    "frozen_seconds",
];
pub const DECISIONS_COLUMNS: &[&str] = &[
    "time",
    "policy",
    "container",
    "from",
    "to",
    "reason",
    "outcome",
];

/// One host sample (a line of hosts.csv).
#[derive(Debug, Clone, PartialEq, Default)]
pub struct HostRow {
    pub time: f64,
    pub host: String,
    pub cpu_user_ratio: f64,
    pub cpu_system_ratio: f64,
    pub cpu_iowait_ratio: f64,
    pub load1: f64,
    pub memory_used_bytes: u64,
    pub major_faults_per_second: f64,
    pub disk_ops_per_second: f64,
    pub disk_busy_ratio: f64,
    pub net_rx_bytes_per_second: f64,
    pub net_tx_bytes_per_second: f64,
    pub cpu_idle_ratio: Option<f64>,
    pub load5: Option<f64>,
    pub load15: Option<f64>,
    /// Threads runnable at the sample (not smoothed like load1).
    pub runnable_tasks: Option<f64>,
    pub context_switches_per_second: Option<f64>,
    pub interrupts_per_second: Option<f64>,
    pub softirqs_per_second: Option<f64>,
    pub memory_total_bytes: Option<u64>,
    pub memory_available_bytes: Option<u64>,
    pub disk_read_bytes_per_second: Option<f64>,
    pub disk_write_bytes_per_second: Option<f64>,
    pub psi_cpu_some_avg10: Option<f64>,
    pub psi_memory_some_avg10: Option<f64>,
    pub psi_io_some_avg10: Option<f64>,
    /// The host's CPU count, when the writer knows it.
    pub cores: Option<f64>,
}

/// One container sample (a line of containers.csv).
#[derive(Debug, Clone, PartialEq, Default)]
pub struct ContainerRow {
    pub time: f64,
    pub host: String,
    pub container: String,
    pub cpu_usage_cores: f64,
    pub memory_bytes: u64,
    pub major_faults_per_second: f64,
    pub io_read_ops_per_second: f64,
    pub io_write_ops_per_second: f64,
    pub pids: u32,
    pub ops_per_second: Option<f64>,
    pub cpu_throttled_ratio: Option<f64>,
    pub cpu_throttled_seconds_per_second: Option<f64>,
    pub io_read_bytes_per_second: Option<f64>,
    pub io_write_bytes_per_second: Option<f64>,
    pub psi_cpu_some_avg10: Option<f64>,
    pub psi_memory_some_avg10: Option<f64>,
    pub psi_io_some_avg10: Option<f64>,
    /// The workload kind (cpu, mem, io, oltp) when known.
    pub kind: Option<String>,
}

/// Migration events tracked per container.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum MigrationEvent {
    /// The container appeared on `to`.
    Added,
    /// The container left the cluster (it was on `from`).
    Removed,
    /// The container moved from `from` to `to`.
    Moved,
}

impl MigrationEvent {
    pub fn as_str(self) -> &'static str {
        match self {
            MigrationEvent::Added => "added",
            MigrationEvent::Removed => "removed",
            MigrationEvent::Moved => "moved",
        }
    }
}

impl std::str::FromStr for MigrationEvent {
    type Err = String;
    fn from_str(s: &str) -> Result<Self, String> {
        match s {
            "added" => Ok(MigrationEvent::Added),
            "removed" => Ok(MigrationEvent::Removed),
            "moved" => Ok(MigrationEvent::Moved),
            _ => Err(format!("unknown event {s:?} (added, removed, moved)")),
        }
    }
}

/// One migration event (a line of migrations.csv). `count` is the number of
/// moves of this container so far, this one included.
#[derive(Debug, Clone, PartialEq)]
pub struct MigrationRow {
    pub time: f64,
    pub container: String,
    pub from: String,
    pub to: String,
    pub event: MigrationEvent,
    pub count: u32,
    /// How long the container was frozen (moves only).
    pub frozen_seconds: Option<f64>,
}

/// One placement decision (a line of decisions.csv).
#[derive(Debug, Clone, PartialEq, Default)]
pub struct DecisionRow {
    pub time: f64,
    pub policy: String,
    pub container: String,
    pub from: String,
    pub to: String,
    pub reason: String,
    /// `ok: moved, ...` or `failed: <outcome>: <why>` (outcome `rolled_back`,
    /// `untouched` or `pending`), as the executor saw it.
    pub outcome: String,
}

/// Unix nanoseconds (the agents' clock) as the `time` column's seconds.
pub fn secs(ns: u64) -> f64 {
    // Whole seconds apart, so the fraction rounds like the written decimals.
    (ns / 1_000_000_000) as f64 + (ns % 1_000_000_000) as f64 / 1e9
}

impl From<&HostSample> for HostRow {
    /// The monitor's row of an agent's sample (per-device detail is not in
    /// the CSV).
    fn from(h: &HostSample) -> HostRow {
        HostRow {
            time: secs(h.time_ns),
            host: h.host.clone(),
            cpu_user_ratio: h.cpu_user_ratio,
            cpu_system_ratio: h.cpu_system_ratio,
            cpu_iowait_ratio: h.cpu_iowait_ratio,
            load1: h.load1,
            memory_used_bytes: h.memory_used_bytes,
            major_faults_per_second: h.major_faults_per_second,
            disk_ops_per_second: h.disk_ops_per_second,
            disk_busy_ratio: h.disk_busy_ratio,
            net_rx_bytes_per_second: h.net_rx_bytes_per_second,
            net_tx_bytes_per_second: h.net_tx_bytes_per_second,
            cpu_idle_ratio: Some(h.cpu_idle_ratio),
            load5: Some(h.load5),
            load15: Some(h.load15),
            runnable_tasks: Some(h.runnable_tasks as f64),
            context_switches_per_second: Some(h.context_switches_per_second),
            interrupts_per_second: Some(h.interrupts_per_second),
            softirqs_per_second: Some(h.softirqs_per_second),
            memory_total_bytes: Some(h.memory_total_bytes),
            memory_available_bytes: Some(h.memory_available_bytes),
            disk_read_bytes_per_second: Some(h.disk_read_bytes_per_second),
            disk_write_bytes_per_second: Some(h.disk_write_bytes_per_second),
            psi_cpu_some_avg10: h.psi_cpu_some_avg10,
            psi_memory_some_avg10: h.psi_memory_some_avg10,
            psi_io_some_avg10: h.psi_io_some_avg10,
            cores: Some(h.cores),
        }
    }
}

impl HostRow {
    /// The required metrics, in hosts.csv's column order (the forecaster's
    /// `HOST_METRICS`): what a window or a bucket averages per host.
    pub fn metrics(&self) -> [f64; 10] {
        [
            self.cpu_user_ratio,
            self.cpu_system_ratio,
            self.cpu_iowait_ratio,
            self.load1,
            self.memory_used_bytes as f64,
            self.major_faults_per_second,
            self.disk_ops_per_second,
            self.disk_busy_ratio,
            self.net_rx_bytes_per_second,
            self.net_tx_bytes_per_second,
        ]
    }
}

impl ContainerRow {
    /// The metrics in containers.csv's column order (the forecaster's
    /// `CONTAINER_METRICS`): what a window or a bucket averages per container.
    pub fn metrics(&self) -> [f64; 6] {
        [
            self.cpu_usage_cores,
            self.memory_bytes as f64,
            self.major_faults_per_second,
            self.io_read_ops_per_second,
            self.io_write_ops_per_second,
            self.pids as f64,
        ]
    }

    /// The monitor's row of an agent's sample; `kind` is known to scenario
    /// runs only.
    pub fn from_sample(c: &ContainerSample, kind: Option<&str>) -> ContainerRow {
        ContainerRow {
            time: secs(c.time_ns),
            host: c.host.clone(),
            container: c.container.clone(),
            cpu_usage_cores: c.cpu_usage_cores,
            memory_bytes: c.memory_bytes,
            major_faults_per_second: c.major_faults_per_second,
            io_read_ops_per_second: c.io_read_ops_per_second,
            io_write_ops_per_second: c.io_write_ops_per_second,
            pids: c.pids.min(u32::MAX as u64) as u32,
            ops_per_second: c.ops_per_second,
            cpu_throttled_ratio: Some(c.cpu_throttled_ratio),
            cpu_throttled_seconds_per_second: Some(c.cpu_throttled_seconds_per_second),
            io_read_bytes_per_second: Some(c.io_read_bytes_per_second),
            io_write_bytes_per_second: Some(c.io_write_bytes_per_second),
            psi_cpu_some_avg10: c.psi_cpu_some_avg10,
            psi_memory_some_avg10: c.psi_memory_some_avg10,
            psi_io_some_avg10: c.psi_io_some_avg10,
            kind: kind.map(str::to_string),
        }
    }
}

/// A parsed line with its header, for [`CsvRow::from_fields`].
pub struct Fields<'a> {
    index: &'a HashMap<String, usize>,
    values: &'a csv::StringRecord,
}

impl Fields<'_> {
    /// The raw value of `column`, empty when the file has no such column.
    pub fn raw(&self, column: &str) -> &str {
        self.index
            .get(column)
            .and_then(|&i| self.values.get(i))
            .unwrap_or("")
    }
    pub fn string(&self, column: &str) -> String {
        self.raw(column).to_string()
    }
    /// A finite number; an empty cell is [`RowError::Empty`].
    pub fn f64(&self, column: &str) -> Result<f64, RowError> {
        let v = self.raw(column).trim();
        if v.is_empty() {
            return Err(RowError::Empty {
                column: column.into(),
            });
        }
        match v.parse::<f64>() {
            Ok(x) if x.is_finite() => Ok(x),
            _ => Err(self.not_a(column, "number")),
        }
    }
    /// A required metric: an empty cell is unknown (NaN), like an absent
    /// optional column; anything else must be a finite number.
    pub fn metric(&self, column: &str) -> Result<f64, RowError> {
        if self.raw(column).trim().is_empty() {
            Ok(f64::NAN)
        } else {
            self.f64(column)
        }
    }
    pub fn opt_f64(&self, column: &str) -> Result<Option<f64>, RowError> {
        if self.raw(column).trim().is_empty() {
            Ok(None)
        } else {
            self.f64(column).map(Some)
        }
    }
    pub fn u64(&self, column: &str) -> Result<u64, RowError> {
        let v = self.raw(column).trim();
        if v.is_empty() {
            return Err(RowError::Empty {
                column: column.into(),
            });
        }
        // Accept "123.0" from writers that print every number as a float.
        v.parse::<u64>().or_else(|_| match v.parse::<f64>() {
            Ok(x) if x >= 0.0 && x.fract() == 0.0 && x < 1.8e19 => Ok(x as u64),
            _ => Err(self.not_a(column, "non-negative integer")),
        })
    }
    pub fn opt_u64(&self, column: &str) -> Result<Option<u64>, RowError> {
        if self.raw(column).trim().is_empty() {
            Ok(None)
        } else {
            self.u64(column).map(Some)
        }
    }
    fn not_a(&self, column: &str, expected: &'static str) -> RowError {
        RowError::NotA {
            column: column.into(),
            value: self.raw(column).into(),
            expected,
        }
    }
    pub fn opt_string(&self, column: &str) -> Option<String> {
        let v = self.raw(column);
        (!v.is_empty()).then(|| v.to_string())
    }
}

/// A number of no fixed precision (`cores`, `runnable_tasks`,
/// `frozen_seconds`): integers without a decimal point, others rounded to 4
/// decimals with trailing zeros dropped.
pub fn fmt_num(x: f64) -> String {
    if !x.is_finite() {
        return String::new();
    }
    if x.fract() == 0.0 && x.abs() < 1e15 {
        return format!("{}", x as i64);
    }
    let mut s = format!("{x:.4}");
    while s.ends_with('0') {
        s.pop();
    }
    if s.ends_with('.') {
        s.pop();
    }
    if s == "-0" {
        s = "0".into();
    }
    s
}

// Cell writers: `d` decimals, fixed.
fn fixed(out: &mut String, x: f64, d: usize) {
    let _ = write!(out, "{x:.d$}");
}
fn opt_fixed(out: &mut String, x: Option<f64>, d: usize) {
    if let Some(x) = x {
        fixed(out, x, d);
    }
}
fn short(out: &mut String, x: Option<f64>) {
    if let Some(x) = x {
        out.push_str(&fmt_num(x));
    }
}
fn int(out: &mut String, x: impl std::fmt::Display) {
    let _ = write!(out, "{x}");
}
fn opt_int(out: &mut String, x: Option<u64>) {
    if let Some(x) = x {
        int(out, x);
    }
}
/// `time`: seconds, milliseconds decimals.
fn time(out: &mut String, t: f64) {
    fixed(out, t, 3);
}

impl CsvRow for HostRow {
    const FILE: &'static str = "hosts.csv";
    const COLUMNS: &'static [&'static str] = HOSTS_COLUMNS;
    const REQUIRED: usize = 12;
    const WRITTEN: &'static [&'static str] = &[
        "time",
        "host",
        "cpu_user_ratio",
        "cpu_system_ratio",
        "cpu_iowait_ratio",
        "load1",
        "memory_used_bytes",
        "major_faults_per_second",
        "disk_ops_per_second",
        "disk_busy_ratio",
        "net_rx_bytes_per_second",
        "net_tx_bytes_per_second",
        "cores",
        "runnable_tasks",
    ];
    fn write_cell(&self, col: usize, o: &mut String) {
        match col {
            0 => time(o, self.time),
            1 => o.push_str(&self.host),
            2 => fixed(o, self.cpu_user_ratio, 4),
            3 => fixed(o, self.cpu_system_ratio, 4),
            4 => fixed(o, self.cpu_iowait_ratio, 4),
            5 => fixed(o, self.load1, 2),
            6 => int(o, self.memory_used_bytes),
            7 => fixed(o, self.major_faults_per_second, 3),
            8 => fixed(o, self.disk_ops_per_second, 3),
            9 => fixed(o, self.disk_busy_ratio, 4),
            10 => fixed(o, self.net_rx_bytes_per_second, 3),
            11 => fixed(o, self.net_tx_bytes_per_second, 3),
            12 => opt_fixed(o, self.cpu_idle_ratio, 4),
            13 => opt_fixed(o, self.load5, 2),
            14 => opt_fixed(o, self.load15, 2),
            15 => short(o, self.runnable_tasks),
            16 => opt_fixed(o, self.context_switches_per_second, 3),
            17 => opt_fixed(o, self.interrupts_per_second, 3),
            18 => opt_fixed(o, self.softirqs_per_second, 3),
            19 => opt_int(o, self.memory_total_bytes),
            20 => opt_int(o, self.memory_available_bytes),
            21 => opt_fixed(o, self.disk_read_bytes_per_second, 3),
            22 => opt_fixed(o, self.disk_write_bytes_per_second, 3),
            23 => opt_fixed(o, self.psi_cpu_some_avg10, 2),
            24 => opt_fixed(o, self.psi_memory_some_avg10, 2),
            25 => opt_fixed(o, self.psi_io_some_avg10, 2),
            26 => short(o, self.cores),
            _ => {}
        }
    }
    fn from_fields(f: &Fields<'_>) -> Result<Self, RowError> {
        Ok(HostRow {
            time: f.f64("time")?,
            host: f.string("host"),
            cpu_user_ratio: f.metric("cpu_user_ratio")?,
            cpu_system_ratio: f.metric("cpu_system_ratio")?,
            cpu_iowait_ratio: f.metric("cpu_iowait_ratio")?,
            load1: f.metric("load1")?,
            memory_used_bytes: f.u64("memory_used_bytes")?,
            major_faults_per_second: f.metric("major_faults_per_second")?,
            disk_ops_per_second: f.metric("disk_ops_per_second")?,
            disk_busy_ratio: f.metric("disk_busy_ratio")?,
            net_rx_bytes_per_second: f.metric("net_rx_bytes_per_second")?,
            net_tx_bytes_per_second: f.metric("net_tx_bytes_per_second")?,
            cpu_idle_ratio: f.opt_f64("cpu_idle_ratio")?,
            load5: f.opt_f64("load5")?,
            load15: f.opt_f64("load15")?,
            runnable_tasks: f.opt_f64("runnable_tasks")?,
            context_switches_per_second: f.opt_f64("context_switches_per_second")?,
            interrupts_per_second: f.opt_f64("interrupts_per_second")?,
            softirqs_per_second: f.opt_f64("softirqs_per_second")?,
            memory_total_bytes: f.opt_u64("memory_total_bytes")?,
            memory_available_bytes: f.opt_u64("memory_available_bytes")?,
            disk_read_bytes_per_second: f.opt_f64("disk_read_bytes_per_second")?,
            disk_write_bytes_per_second: f.opt_f64("disk_write_bytes_per_second")?,
            psi_cpu_some_avg10: f.opt_f64("psi_cpu_some_avg10")?,
            psi_memory_some_avg10: f.opt_f64("psi_memory_some_avg10")?,
            psi_io_some_avg10: f.opt_f64("psi_io_some_avg10")?,
            cores: f.opt_f64("cores")?,
        })
    }
}

impl CsvRow for ContainerRow {
    const FILE: &'static str = "containers.csv";
    const COLUMNS: &'static [&'static str] = CONTAINERS_COLUMNS;
    const REQUIRED: usize = 10;
    const WRITTEN: &'static [&'static str] = &[
        "time",
        "host",
        "container",
        "cpu_usage_cores",
        "memory_bytes",
        "major_faults_per_second",
        "io_read_ops_per_second",
        "io_write_ops_per_second",
        "pids",
        "ops_per_second",
        "kind",
    ];
    fn write_cell(&self, col: usize, o: &mut String) {
        match col {
            0 => time(o, self.time),
            1 => o.push_str(&self.host),
            2 => o.push_str(&self.container),
            3 => fixed(o, self.cpu_usage_cores, 4),
            4 => int(o, self.memory_bytes),
            5 => fixed(o, self.major_faults_per_second, 3),
            6 => fixed(o, self.io_read_ops_per_second, 3),
            7 => fixed(o, self.io_write_ops_per_second, 3),
            8 => int(o, self.pids),
            9 => opt_fixed(o, self.ops_per_second, 2),
            10 => opt_fixed(o, self.cpu_throttled_ratio, 4),
            11 => opt_fixed(o, self.cpu_throttled_seconds_per_second, 4),
            12 => opt_fixed(o, self.io_read_bytes_per_second, 3),
            13 => opt_fixed(o, self.io_write_bytes_per_second, 3),
            14 => opt_fixed(o, self.psi_cpu_some_avg10, 2),
            15 => opt_fixed(o, self.psi_memory_some_avg10, 2),
            16 => opt_fixed(o, self.psi_io_some_avg10, 2),
            17 => o.push_str(self.kind.as_deref().unwrap_or("")),
            _ => {}
        }
    }
    fn from_fields(f: &Fields<'_>) -> Result<Self, RowError> {
        let pids = f.u64("pids")?;
        Ok(ContainerRow {
            time: f.f64("time")?,
            host: f.string("host"),
            container: f.string("container"),
            cpu_usage_cores: f.metric("cpu_usage_cores")?,
            memory_bytes: f.u64("memory_bytes")?,
            major_faults_per_second: f.metric("major_faults_per_second")?,
            io_read_ops_per_second: f.metric("io_read_ops_per_second")?,
            io_write_ops_per_second: f.metric("io_write_ops_per_second")?,
            pids: u32::try_from(pids)
                .map_err(|_| RowError::Other(format!("pids: {pids} is too large")))?,
            ops_per_second: f.opt_f64("ops_per_second")?,
            cpu_throttled_ratio: f.opt_f64("cpu_throttled_ratio")?,
            cpu_throttled_seconds_per_second: f.opt_f64("cpu_throttled_seconds_per_second")?,
            io_read_bytes_per_second: f.opt_f64("io_read_bytes_per_second")?,
            io_write_bytes_per_second: f.opt_f64("io_write_bytes_per_second")?,
            psi_cpu_some_avg10: f.opt_f64("psi_cpu_some_avg10")?,
            psi_memory_some_avg10: f.opt_f64("psi_memory_some_avg10")?,
            psi_io_some_avg10: f.opt_f64("psi_io_some_avg10")?,
            kind: f.opt_string("kind"),
        })
    }
}

impl CsvRow for MigrationRow {
    const FILE: &'static str = "migrations.csv";
    const COLUMNS: &'static [&'static str] = MIGRATIONS_COLUMNS;
    const REQUIRED: usize = 6;
    const WRITTEN: &'static [&'static str] = MIGRATIONS_COLUMNS;
    fn write_cell(&self, col: usize, o: &mut String) {
        match col {
            0 => time(o, self.time),
            1 => o.push_str(&self.container),
            2 => o.push_str(&self.from),
            3 => o.push_str(&self.to),
            4 => o.push_str(self.event.as_str()),
            5 => int(o, self.count),
            6 => short(o, self.frozen_seconds),
            _ => {}
        }
    }
    fn from_fields(f: &Fields<'_>) -> Result<Self, RowError> {
        let count = f.u64("count")?;
        Ok(MigrationRow {
            time: f.f64("time")?,
            container: f.string("container"),
            from: f.string("from"),
            to: f.string("to"),
            event: f.raw("event").parse().map_err(RowError::Other)?,
            count: u32::try_from(count)
                .map_err(|_| RowError::Other(format!("count: {count} is too large")))?,
            frozen_seconds: f.opt_f64("frozen_seconds")?,
        })
    }
}

impl CsvRow for DecisionRow {
    const FILE: &'static str = "decisions.csv";
    const COLUMNS: &'static [&'static str] = DECISIONS_COLUMNS;
    const REQUIRED: usize = 7;
    const WRITTEN: &'static [&'static str] = DECISIONS_COLUMNS;
    fn write_cell(&self, col: usize, o: &mut String) {
        match col {
            0 => time(o, self.time),
            1 => o.push_str(&self.policy),
            2 => o.push_str(&self.container),
            3 => o.push_str(&self.from),
            4 => o.push_str(&self.to),
            5 => o.push_str(&self.reason),
            6 => o.push_str(&self.outcome),
            _ => {}
        }
    }
    fn from_fields(f: &Fields<'_>) -> Result<Self, RowError> {
        Ok(DecisionRow {
            time: f.f64("time")?,
            policy: f.string("policy"),
            container: f.string("container"),
            from: f.string("from"),
            to: f.string("to"),
            reason: f.string("reason"),
            outcome: f.string("outcome"),
        })
    }
}

/// The required columns of `R`'s file.
pub fn required<R: CsvRow>() -> &'static [&'static str] {
    &R::COLUMNS[..R::REQUIRED]
}

/// Writes one file: the header on creation, then one line per row.
pub struct CsvWriter<W: Write, R: CsvRow> {
    out: csv::Writer<W>,
    path: PathBuf,
    /// Indexes into `R::COLUMNS`, in the order written.
    columns: Vec<usize>,
    cells: Vec<String>,
    _row: std::marker::PhantomData<R>,
}

impl<R: CsvRow> CsvWriter<std::io::BufWriter<std::fs::File>, R> {
    /// Creates (truncates) `dir/R::FILE` and writes the header of
    /// `R::WRITTEN`.
    pub fn create_in(dir: &Path) -> Result<Self, CsvError> {
        Self::create_with(dir, R::WRITTEN)
    }

    /// Creates (truncates) `dir/R::FILE` with these columns (names of
    /// `R::COLUMNS`).
    pub fn create_with(dir: &Path, columns: &[&str]) -> Result<Self, CsvError> {
        let path = dir.join(R::FILE);
        let f = std::fs::File::create(&path).map_err(|source| CsvError::Io {
            path: path.clone(),
            source,
        })?;
        Self::with_columns(std::io::BufWriter::new(f), path, columns)
    }
}

impl<W: Write, R: CsvRow> CsvWriter<W, R> {
    /// Wraps `out` (named `path` in errors) and writes the header of
    /// `R::WRITTEN`.
    pub fn new(out: W, path: PathBuf) -> Result<Self, CsvError> {
        Self::with_columns(out, path, R::WRITTEN)
    }

    /// [`new`](Self::new) with these columns: every required one, then any
    /// of the optional ones, by name.
    pub fn with_columns(out: W, path: PathBuf, names: &[&str]) -> Result<Self, CsvError> {
        let mut columns = Vec::with_capacity(names.len());
        for n in names {
            match R::COLUMNS.iter().position(|c| c == n) {
                Some(i) => columns.push(i),
                None => {
                    return Err(CsvError::Bad {
                        path,
                        line: 1,
                        msg: format!("{n:?} is not a column of {}", R::FILE),
                    })
                }
            }
        }
        for (i, c) in required::<R>().iter().enumerate() {
            if !columns.contains(&i) {
                return Err(CsvError::MissingColumn {
                    path,
                    column: c,
                    header: String::new(),
                });
            }
        }
        let mut w = CsvWriter {
            out: csv::WriterBuilder::new()
                .terminator(csv::Terminator::Any(b'\n'))
                .from_writer(out),
            path,
            cells: vec![String::new(); columns.len()],
            columns,
            _row: std::marker::PhantomData,
        };
        let header: Vec<&str> = w.columns.iter().map(|&i| R::COLUMNS[i]).collect();
        w.out.write_record(&header).map_err(|e| w.err(e))?;
        Ok(w)
    }

    fn err(&self, source: csv::Error) -> CsvError {
        CsvError::Csv {
            path: self.path.clone(),
            source,
        }
    }

    pub fn write(&mut self, row: &R) -> Result<(), CsvError> {
        for (cell, &col) in self.cells.iter_mut().zip(&self.columns) {
            cell.clear();
            row.write_cell(col, cell);
        }
        self.out
            .write_record(&self.cells)
            .map_err(|e| CsvError::Csv {
                path: self.path.clone(),
                source: e,
            })
    }

    pub fn flush(&mut self) -> Result<(), CsvError> {
        self.out.flush().map_err(|source| CsvError::Io {
            path: self.path.clone(),
            source,
        })
    }

    /// Flushes and hands back the inner writer.
    pub fn into_inner(self) -> Result<W, CsvError> {
        let path = self.path;
        self.out.into_inner().map_err(|e| CsvError::Io {
            path,
            source: std::io::Error::other(e.to_string()),
        })
    }
}

/// Reads every row of `path`.
pub fn read_file<R: CsvRow>(path: &Path) -> Result<Vec<R>, CsvError> {
    let mut rows = Vec::new();
    scan_file(path, &[], |r| {
        rows.push(r);
        Ok(())
    })?;
    Ok(rows)
}

/// Reads `dir/R::FILE`.
pub fn read_in<R: CsvRow>(dir: &Path) -> Result<Vec<R>, CsvError> {
    read_file(&dir.join(R::FILE))
}

/// Reads rows from `input` (named `path` in errors). The header must hold
/// every required column; other columns are ignored unless known.
pub fn read_from<R: CsvRow>(input: impl Read, path: &Path) -> Result<Vec<R>, CsvError> {
    let mut rows = Vec::new();
    scan_from(input, path, &[], |r| {
        rows.push(r);
        Ok(())
    })?;
    Ok(rows)
}

/// Streams the rows of `path` into `each` without holding the file (large
/// runs), with `also` required beside `R`'s required columns. Returns the
/// header as read, so a reader can tell an absent optional column from
/// empty cells.
pub fn scan_file<R: CsvRow, E: From<CsvError>>(
    path: &Path,
    also: &[&'static str],
    each: impl FnMut(R) -> Result<(), E>,
) -> Result<Vec<String>, E> {
    let f = std::fs::File::open(path).map_err(|source| CsvError::Io {
        path: path.to_path_buf(),
        source,
    })?;
    scan_from(std::io::BufReader::new(f), path, also, each)
}

/// [`scan_file`] over any reader.
pub fn scan_from<R: CsvRow, E: From<CsvError>>(
    input: impl Read,
    path: &Path,
    also: &[&'static str],
    mut each: impl FnMut(R) -> Result<(), E>,
) -> Result<Vec<String>, E> {
    let mut r = csv::ReaderBuilder::new()
        .flexible(true)
        .has_headers(false)
        .from_reader(input);
    let bad = |line: u64, msg: String| CsvError::Bad {
        path: path.to_path_buf(),
        line: line as usize,
        msg,
    };
    let csv_err = |e: csv::Error| match e.position() {
        Some(p) => bad(p.line(), e.to_string()),
        None => CsvError::Csv {
            path: path.to_path_buf(),
            source: e,
        },
    };
    let mut rec = csv::StringRecord::new();
    if !r.read_record(&mut rec).map_err(csv_err)? {
        return Err(bad(1, "empty file (no header)".into()).into());
    }
    let header: Vec<String> = rec.iter().map(|n| n.trim().to_string()).collect();
    let index: HashMap<String, usize> = header
        .iter()
        .enumerate()
        .map(|(i, n)| (n.clone(), i))
        .collect();
    for c in required::<R>().iter().chain(also) {
        if !index.contains_key(*c) {
            return Err(CsvError::MissingColumn {
                path: path.to_path_buf(),
                column: c,
                header: header.join(","),
            }
            .into());
        }
    }
    while r.read_record(&mut rec).map_err(csv_err)? {
        let line = rec.position().map_or(0, |p| p.line());
        if rec.len() == 1 && rec.get(0).is_some_and(|f| f.trim().is_empty()) {
            continue;
        }
        if rec.len() < R::REQUIRED {
            return Err(bad(
                line,
                format!("{} fields, expected at least {}", rec.len(), R::REQUIRED),
            )
            .into());
        }
        let f = Fields {
            index: &index,
            values: &rec,
        };
        let row = R::from_fields(&f).map_err(|error| CsvError::Cell {
            path: path.to_path_buf(),
            line: line as usize,
            error,
        })?;
        each(row)?;
    }
    Ok(header)
}

/// Formats a row the way [`CsvWriter::new`] would (for logs and tests).
pub fn to_line<R: CsvRow>(row: &R) -> String {
    to_line_with(row, R::WRITTEN)
}

/// Formats a row the way [`CsvWriter::with_columns`] would.
pub fn to_line_with<R: CsvRow>(row: &R, columns: &[&str]) -> String {
    let Ok(mut w) = CsvWriter::<Vec<u8>, R>::with_columns(Vec::new(), PathBuf::new(), columns)
    else {
        return String::new();
    };
    if w.write(row).is_err() {
        return String::new();
    }
    let bytes = w.into_inner().unwrap_or_default();
    let text = String::from_utf8_lossy(&bytes);
    // Drop the header line and the terminator.
    text.split_once('\n')
        .map(|(_, l)| l.trim_end_matches('\n').to_string())
        .unwrap_or_default()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn headers_are_the_monitor_columns() {
        let mut w: CsvWriter<Vec<u8>, HostRow> = CsvWriter::new(Vec::new(), "h".into()).unwrap();
        w.write(&HostRow::default()).unwrap();
        let s = String::from_utf8(w.into_inner().unwrap()).unwrap();
        assert!(s.starts_with("time,host,cpu_user_ratio,cpu_system_ratio,cpu_iowait_ratio,load1,memory_used_bytes,major_faults_per_second,disk_ops_per_second,disk_busy_ratio,net_rx_bytes_per_second,net_tx_bytes_per_second,cores,runnable_tasks\n"));
        let w: CsvWriter<Vec<u8>, ContainerRow> = CsvWriter::new(Vec::new(), "c".into()).unwrap();
        let s = String::from_utf8(w.into_inner().unwrap()).unwrap();
        assert_eq!(s, "time,host,container,cpu_usage_cores,memory_bytes,major_faults_per_second,io_read_ops_per_second,io_write_ops_per_second,pids,ops_per_second,kind\n");
        let w: CsvWriter<Vec<u8>, MigrationRow> = CsvWriter::new(Vec::new(), "m".into()).unwrap();
        let s = String::from_utf8(w.into_inner().unwrap()).unwrap();
        assert_eq!(s, "time,container,from,to,event,count,frozen_seconds\n");
    }

    #[test]
    fn rows_round_trip_with_quoting_and_extra_columns() {
        let rows = vec![
            ContainerRow {
                time: 12.5,
                host: "n1".into(),
                container: "c,\"x\"".into(),
                cpu_usage_cores: 1.23456,
                memory_bytes: 1 << 30,
                pids: 5,
                ops_per_second: None,
                kind: Some("cpu".into()),
                ..Default::default()
            },
            ContainerRow {
                time: 13.0,
                host: "n2".into(),
                container: "b".into(),
                ops_per_second: Some(99.5),
                ..Default::default()
            },
        ];
        let mut w = CsvWriter::new(Vec::new(), "c".into()).unwrap();
        for r in &rows {
            w.write(r).unwrap();
        }
        let bytes = w.into_inner().unwrap();
        let back: Vec<ContainerRow> = read_from(&bytes[..], Path::new("c")).unwrap();
        assert_eq!(back[0].container, "c,\"x\"");
        assert_eq!(back[0].cpu_usage_cores, 1.2346);
        assert_eq!(back[0].ops_per_second, None);
        assert_eq!(back[0].kind.as_deref(), Some("cpu"));
        assert_eq!(back[1], rows[1]);
    }

    #[test]
    fn monitor_files_without_extras_and_with_unknown_columns_read() {
        let text = "time,host,container,cpu_usage_cores,memory_bytes,major_faults_per_second,io_read_ops_per_second,io_write_ops_per_second,pids,ops_per_second,psi_some\n1700000000.5,n1,web,0.5,1000,0,1,2,3,40,0.1\n";
        let rows: Vec<ContainerRow> = read_from(text.as_bytes(), Path::new("c")).unwrap();
        assert_eq!(rows.len(), 1);
        assert_eq!(rows[0].kind, None);
        assert_eq!(rows[0].ops_per_second, Some(40.0));
    }

    #[test]
    fn bad_input_names_file_line_and_column() {
        let text = "time,host\n1,n1\n";
        let e = read_from::<HostRow>(text.as_bytes(), Path::new("hosts.csv")).unwrap_err();
        assert!(
            e.to_string().contains("missing column \"cpu_user_ratio\""),
            "{e}"
        );
        let text =
            "time,container,from,to,event,count\n1,a,n1,n2,moved,1\n2,a,n2,n1,teleported,2\n";
        let e = read_from::<MigrationRow>(text.as_bytes(), Path::new("m.csv")).unwrap_err();
        assert!(e.to_string().starts_with("m.csv:3: unknown event"), "{e}");
        let text = "time,container,from,to,event,count\nx,a,n1,n2,moved,1\n";
        let e = read_from::<MigrationRow>(text.as_bytes(), Path::new("m.csv")).unwrap_err();
        assert!(e.to_string().contains("m.csv:2: time"), "{e}");
        let e = read_from::<MigrationRow>("".as_bytes(), Path::new("m.csv")).unwrap_err();
        assert!(e.to_string().contains("empty file"), "{e}");
    }

    #[test]
    fn numbers_are_written_stably() {
        assert_eq!(fmt_num(1.0), "1");
        assert_eq!(fmt_num(0.123456), "0.1235");
        assert_eq!(fmt_num(2.5), "2.5");
        assert_eq!(fmt_num(-0.00001), "0");
        assert_eq!(fmt_num(f64::NAN), "");
    }

    // Ported from herd-metrics' CSV tests: the monitor's rows (all columns).
    use herd_wire::monitor::{ContainerSample, HostSample};

    fn one<R: CsvRow>(line: &str) -> Result<R, CsvError> {
        let text = format!("{}\n{line}\n", R::COLUMNS.join(","));
        let mut v = read_from::<R>(text.as_bytes(), Path::new(R::FILE))?;
        Ok(v.remove(0))
    }

    #[test]
    fn monitor_rows_round_trip_and_headers_match() {
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
        let h = HostRow::from(&h);
        let row = to_line_with(&h, HostRow::COLUMNS);
        assert!(row.starts_with("1700000000.123,n1,0.2500,"));
        assert_eq!(row.split(',').count(), HostRow::COLUMNS.len(), "{row}");
        assert_eq!(one::<HostRow>(&row).unwrap(), h);
        let c = ContainerSample {
            time_ns: 5_000_000,
            host: "n2".into(),
            container: "c,1".into(),
            cpu_usage_cores: 2.0,
            pids: 3,
            ops_per_second: Some(10.0),
            ..Default::default()
        };
        let c = ContainerRow::from_sample(&c, None);
        let row = to_line_with(&c, ContainerRow::COLUMNS);
        let back: ContainerRow = one(&row).unwrap();
        assert_eq!(back, c);
        let m = MigrationRow {
            time: 2.0,
            container: "c1".into(),
            from: "n1".into(),
            to: "n2".into(),
            event: MigrationEvent::Moved,
            count: 3,
            frozen_seconds: None,
        };
        let line = to_line_with(&m, required::<MigrationRow>());
        assert_eq!(line, "2.000,c1,n1,n2,moved,3");
        assert_eq!(one::<MigrationRow>(&line).unwrap(), m);
    }

    #[test]
    fn issue_columns_come_first_in_order() {
        assert!(HOSTS_COLUMNS.join(",").starts_with(
            "time,host,cpu_user_ratio,cpu_system_ratio,cpu_iowait_ratio,load1,memory_used_bytes,\
major_faults_per_second,disk_ops_per_second,disk_busy_ratio,net_rx_bytes_per_second,\
net_tx_bytes_per_second"
        ));
        assert!(CONTAINERS_COLUMNS.join(",").starts_with(
            "time,host,container,cpu_usage_cores,memory_bytes,major_faults_per_second,\
io_read_ops_per_second,io_write_ops_per_second,pids,ops_per_second"
        ));
    }

    #[test]
    fn bad_monitor_rows_are_clear_errors() {
        assert!(one::<HostRow>("1.0,n1").is_err());
        let e = one::<MigrationRow>("1.0,c,a,b,teleported,1").unwrap_err();
        assert!(e.to_string().contains("teleported"), "{e}");
        let e = one::<MigrationRow>("x,c,a,b,moved,1").unwrap_err();
        assert!(e.to_string().contains("time"), "{e}");
    }
}
