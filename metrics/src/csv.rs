//! `hosts.csv`, `containers.csv` and `migrations.csv` as the monitor writes
//! them: the headers and one row per sample. `time` is Unix seconds with
//! millisecond decimals; an empty cell is a value the host cannot give (e.g.
//! PSI on a cgroup v1 host).

use herd_wire::monitor::{ContainerSample, HostSample};

/// A sample that is one CSV row.
pub trait SampleRow: Sized {
    /// The row, no newline, columns as the file's header.
    fn csv_row(&self) -> String;
    fn from_csv_row(row: &str) -> Result<Self, CsvError>;
}

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

pub(crate) fn parse_time(s: &str) -> Option<u64> {
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
pub(crate) fn cell(s: &str) -> String {
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

pub(crate) struct Fields<'a> {
    file: &'static str,
    row: &'a str,
    cells: Vec<String>,
    i: usize,
}

impl<'a> Fields<'a> {
    pub(crate) fn new(file: &'static str, row: &'a str, want: usize) -> Result<Self, CsvError> {
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
    pub(crate) fn err(&self, reason: String) -> CsvError {
        CsvError {
            file: self.file,
            row: self.row.to_string(),
            reason,
        }
    }
    pub(crate) fn next(&mut self) -> String {
        self.i += 1;
        self.cells[self.i - 1].clone()
    }
    pub(crate) fn time(&mut self) -> Result<u64, CsvError> {
        let s = self.next();
        parse_time(&s).ok_or_else(|| self.err(format!("bad time {s:?}")))
    }
    pub(crate) fn num<T: std::str::FromStr>(&mut self) -> Result<T, CsvError> {
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

impl SampleRow for HostSample {
    /// One `hosts.csv` row (no newline), columns as [`HOSTS_HEADER`].
    fn csv_row(&self) -> String {
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
    fn from_csv_row(row: &str) -> Result<Self, CsvError> {
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

impl SampleRow for ContainerSample {
    /// One `containers.csv` row (no newline), columns as [`CONTAINERS_HEADER`].
    fn csv_row(&self) -> String {
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

    fn from_csv_row(row: &str) -> Result<Self, CsvError> {
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
