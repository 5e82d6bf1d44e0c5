//! The monitor's CSV files, written and read in one place: the live monitor,
//! the simulator, the report and the forecaster all go through these types.
//!
//! Files and their columns (the required columns come first, in this order;
//! a file may carry more columns after them, and readers find every column
//! by its header name, so extra columns never break a reader):
//!
//! | file | required columns | extra columns written here |
//! |---|---|---|
//! | hosts.csv | `time,host,cpu_user_ratio,cpu_system_ratio,cpu_iowait_ratio,load1,memory_used_bytes,major_faults_per_second,disk_ops_per_second,disk_busy_ratio,net_rx_bytes_per_second,net_tx_bytes_per_second` | `cores` |
//! | containers.csv | `time,host,container,cpu_usage_cores,memory_bytes,major_faults_per_second,io_read_ops_per_second,io_write_ops_per_second,pids,ops_per_second` | `kind` (cpu, mem, io, oltp; empty when unknown) |
//! | migrations.csv | `time,container,from,to,event,count` | `frozen_seconds` |
//! | decisions.csv | `time,policy,container,from,to,reason,outcome` | |
//!
//! `time` is in seconds (unix time in live runs, seconds since the start in
//! simulated ones). Ratios are 0..1 of the host (CPU ratios normalised by
//! cores); `cpu_usage_cores` is not normalised (two busy threads = 2.0). An
//! empty field means "unknown" for optional values (`ops_per_second` of a
//! workload that prints no ops, `from` of an `added` event, `cores`,
//! `kind`). Fields holding a comma, a quote or a line break are quoted as in
//! RFC 4180. Numbers are written with at most 4 decimals, so a run writes
//! the same bytes every time.

use std::collections::HashMap;
use std::io::{BufRead, BufReader, Write};
use std::path::{Path, PathBuf};

/// What went wrong reading or writing a CSV file.
#[derive(Debug, thiserror::Error)]
pub enum CsvError {
    #[error("{path}: {source}")]
    Io {
        path: PathBuf,
        source: std::io::Error,
    },
    #[error("{path}: missing column {column:?} in the header")]
    MissingColumn { path: PathBuf, column: &'static str },
    #[error("{path}:{line}: {msg}")]
    Bad {
        path: PathBuf,
        line: usize,
        msg: String,
    },
}

/// One row type of one file.
pub trait CsvRow: Sized {
    /// The file's usual name (`hosts.csv`, ...).
    const FILE: &'static str;
    /// Required columns, in order.
    const REQUIRED: &'static [&'static str];
    /// Optional columns this crate writes after the required ones.
    const EXTRA: &'static [&'static str];
    fn write_fields(&self, out: &mut Vec<String>);
    fn from_fields(f: &Fields<'_>) -> Result<Self, String>;
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
];
pub const MIGRATIONS_COLUMNS: &[&str] = &["time", "container", "from", "to", "event", "count"];
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
    /// Extra column: the host's CPU count, when the writer knows it.
    pub cores: Option<f64>,
    /// Extra column: threads runnable at the sample (not smoothed like
    /// load1), when the writer knows it.
    pub runnable_tasks: Option<f64>,
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
    /// Extra column: the workload kind (cpu, mem, io, oltp) when known.
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
    /// Extra column: how long the container was frozen (moves only).
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
    /// `ok`, `failed: <why>`, ... as the executor saw it.
    pub outcome: String,
}

/// A parsed line with its header, for [`CsvRow::from_fields`].
pub struct Fields<'a> {
    index: &'a HashMap<String, usize>,
    values: &'a [String],
}

impl Fields<'_> {
    /// The raw value of `column`, empty when the file has no such column.
    pub fn raw(&self, column: &str) -> &str {
        self.index
            .get(column)
            .and_then(|&i| self.values.get(i))
            .map(|s| s.as_str())
            .unwrap_or("")
    }
    pub fn string(&self, column: &str) -> String {
        self.raw(column).to_string()
    }
    pub fn f64(&self, column: &str) -> Result<f64, String> {
        let v = self.raw(column);
        let x: f64 = v
            .trim()
            .parse()
            .map_err(|_| format!("{column}: {v:?} is not a number"))?;
        if x.is_nan() {
            return Err(format!("{column}: NaN"));
        }
        Ok(x)
    }
    pub fn opt_f64(&self, column: &str) -> Result<Option<f64>, String> {
        if self.raw(column).trim().is_empty() {
            Ok(None)
        } else {
            self.f64(column).map(Some)
        }
    }
    pub fn u64(&self, column: &str) -> Result<u64, String> {
        let v = self.raw(column).trim();
        // Accept "123.0" from writers that print every number as a float.
        v.parse::<u64>().or_else(|_| match v.parse::<f64>() {
            Ok(x) if x >= 0.0 && x.fract() == 0.0 && x < 1.8e19 => Ok(x as u64),
            _ => Err(format!("{column}: {v:?} is not a non-negative integer")),
        })
    }
    pub fn opt_string(&self, column: &str) -> Option<String> {
        let v = self.raw(column);
        (!v.is_empty()).then(|| v.to_string())
    }
}

/// A number as written to every file: integers without a decimal point,
/// others rounded to 4 decimals with trailing zeros dropped.
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

fn fmt_opt(x: Option<f64>) -> String {
    x.map(fmt_num).unwrap_or_default()
}

impl CsvRow for HostRow {
    const FILE: &'static str = "hosts.csv";
    const REQUIRED: &'static [&'static str] = HOSTS_COLUMNS;
    const EXTRA: &'static [&'static str] = &["cores", "runnable_tasks"];
    fn write_fields(&self, out: &mut Vec<String>) {
        out.extend([
            fmt_num(self.time),
            self.host.clone(),
            fmt_num(self.cpu_user_ratio),
            fmt_num(self.cpu_system_ratio),
            fmt_num(self.cpu_iowait_ratio),
            fmt_num(self.load1),
            self.memory_used_bytes.to_string(),
            fmt_num(self.major_faults_per_second),
            fmt_num(self.disk_ops_per_second),
            fmt_num(self.disk_busy_ratio),
            fmt_num(self.net_rx_bytes_per_second),
            fmt_num(self.net_tx_bytes_per_second),
            fmt_opt(self.cores),
            fmt_opt(self.runnable_tasks),
        ]);
    }
    fn from_fields(f: &Fields<'_>) -> Result<Self, String> {
        Ok(HostRow {
            time: f.f64("time")?,
            host: f.string("host"),
            cpu_user_ratio: f.f64("cpu_user_ratio")?,
            cpu_system_ratio: f.f64("cpu_system_ratio")?,
            cpu_iowait_ratio: f.f64("cpu_iowait_ratio")?,
            load1: f.f64("load1")?,
            memory_used_bytes: f.u64("memory_used_bytes")?,
            major_faults_per_second: f.f64("major_faults_per_second")?,
            disk_ops_per_second: f.f64("disk_ops_per_second")?,
            disk_busy_ratio: f.f64("disk_busy_ratio")?,
            net_rx_bytes_per_second: f.f64("net_rx_bytes_per_second")?,
            net_tx_bytes_per_second: f.f64("net_tx_bytes_per_second")?,
            cores: f.opt_f64("cores")?,
            runnable_tasks: f.opt_f64("runnable_tasks")?,
        })
    }
}

impl CsvRow for ContainerRow {
    const FILE: &'static str = "containers.csv";
    const REQUIRED: &'static [&'static str] = CONTAINERS_COLUMNS;
    const EXTRA: &'static [&'static str] = &["kind"];
    fn write_fields(&self, out: &mut Vec<String>) {
        out.extend([
            fmt_num(self.time),
            self.host.clone(),
            self.container.clone(),
            fmt_num(self.cpu_usage_cores),
            self.memory_bytes.to_string(),
            fmt_num(self.major_faults_per_second),
            fmt_num(self.io_read_ops_per_second),
            fmt_num(self.io_write_ops_per_second),
            self.pids.to_string(),
            fmt_opt(self.ops_per_second),
            self.kind.clone().unwrap_or_default(),
        ]);
    }
    fn from_fields(f: &Fields<'_>) -> Result<Self, String> {
        let pids = f.u64("pids")?;
        Ok(ContainerRow {
            time: f.f64("time")?,
            host: f.string("host"),
            container: f.string("container"),
            cpu_usage_cores: f.f64("cpu_usage_cores")?,
            memory_bytes: f.u64("memory_bytes")?,
            major_faults_per_second: f.f64("major_faults_per_second")?,
            io_read_ops_per_second: f.f64("io_read_ops_per_second")?,
            io_write_ops_per_second: f.f64("io_write_ops_per_second")?,
            pids: u32::try_from(pids).map_err(|_| format!("pids: {pids} is too large"))?,
            ops_per_second: f.opt_f64("ops_per_second")?,
            kind: f.opt_string("kind"),
        })
    }
}

impl CsvRow for MigrationRow {
    const FILE: &'static str = "migrations.csv";
    const REQUIRED: &'static [&'static str] = MIGRATIONS_COLUMNS;
    const EXTRA: &'static [&'static str] = &["frozen_seconds"];
    fn write_fields(&self, out: &mut Vec<String>) {
        out.extend([
            fmt_num(self.time),
            self.container.clone(),
            self.from.clone(),
            self.to.clone(),
            self.event.as_str().to_string(),
            self.count.to_string(),
            fmt_opt(self.frozen_seconds),
        ]);
    }
    fn from_fields(f: &Fields<'_>) -> Result<Self, String> {
        let count = f.u64("count")?;
        Ok(MigrationRow {
            time: f.f64("time")?,
            container: f.string("container"),
            from: f.string("from"),
            to: f.string("to"),
            event: f.raw("event").parse()?,
            count: u32::try_from(count).map_err(|_| format!("count: {count} is too large"))?,
            frozen_seconds: f.opt_f64("frozen_seconds")?,
        })
    }
}

impl CsvRow for DecisionRow {
    const FILE: &'static str = "decisions.csv";
    const REQUIRED: &'static [&'static str] = DECISIONS_COLUMNS;
    const EXTRA: &'static [&'static str] = &[];
    fn write_fields(&self, out: &mut Vec<String>) {
        out.extend([
            fmt_num(self.time),
            self.policy.clone(),
            self.container.clone(),
            self.from.clone(),
            self.to.clone(),
            self.reason.clone(),
            self.outcome.clone(),
        ]);
    }
    fn from_fields(f: &Fields<'_>) -> Result<Self, String> {
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

fn push_field(line: &mut String, v: &str) {
    if v.contains([',', '"', '\n', '\r']) {
        line.push('"');
        line.push_str(&v.replace('"', "\"\""));
        line.push('"');
    } else {
        line.push_str(v);
    }
}

/// Writes one file: the header on creation, then one line per row.
pub struct CsvWriter<W: Write, R: CsvRow> {
    out: W,
    path: PathBuf,
    line: String,
    fields: Vec<String>,
    _row: std::marker::PhantomData<R>,
}

impl<R: CsvRow> CsvWriter<std::io::BufWriter<std::fs::File>, R> {
    /// Creates (truncates) `dir/R::FILE` and writes the header.
    pub fn create_in(dir: &Path) -> Result<Self, CsvError> {
        let path = dir.join(R::FILE);
        let f = std::fs::File::create(&path).map_err(|source| CsvError::Io {
            path: path.clone(),
            source,
        })?;
        Self::new(std::io::BufWriter::new(f), path)
    }
}

impl<W: Write, R: CsvRow> CsvWriter<W, R> {
    /// Wraps `out` (named `path` in errors) and writes the header.
    pub fn new(out: W, path: PathBuf) -> Result<Self, CsvError> {
        let mut w = CsvWriter {
            out,
            path,
            line: String::new(),
            fields: Vec::new(),
            _row: std::marker::PhantomData,
        };
        let header: Vec<&str> = R::REQUIRED.iter().chain(R::EXTRA).copied().collect();
        w.line = header.join(",");
        w.line.push('\n');
        w.flush_line()?;
        Ok(w)
    }

    pub fn write(&mut self, row: &R) -> Result<(), CsvError> {
        self.fields.clear();
        row.write_fields(&mut self.fields);
        self.line.clear();
        for (i, f) in self.fields.iter().enumerate() {
            if i > 0 {
                self.line.push(',');
            }
            push_field(&mut self.line, f);
        }
        self.line.push('\n');
        self.flush_line()
    }

    fn flush_line(&mut self) -> Result<(), CsvError> {
        self.out
            .write_all(self.line.as_bytes())
            .map_err(|source| CsvError::Io {
                path: self.path.clone(),
                source,
            })
    }

    pub fn flush(&mut self) -> Result<(), CsvError> {
        self.out.flush().map_err(|source| CsvError::Io {
            path: self.path.clone(),
            source,
        })
    }

    /// Flushes and hands back the inner writer.
    pub fn into_inner(mut self) -> Result<W, CsvError> {
        self.flush()?;
        Ok(self.out)
    }
}

/// Splits one CSV line (RFC 4180 quoting). A line break inside a quoted
/// field is not supported: the reader then reports an unterminated field.
fn split_line(line: &str) -> Result<Vec<String>, String> {
    let mut out = Vec::new();
    let mut cur = String::new();
    let mut chars = line.chars().peekable();
    let mut quoted = false;
    let mut at_start = true;
    while let Some(c) = chars.next() {
        if quoted {
            if c == '"' {
                if chars.peek() == Some(&'"') {
                    chars.next();
                    cur.push('"');
                } else {
                    quoted = false;
                }
            } else {
                cur.push(c);
            }
        } else if c == '"' && at_start {
            quoted = true;
            at_start = false;
        } else if c == ',' {
            out.push(std::mem::take(&mut cur));
            at_start = true;
        } else {
            cur.push(c);
            at_start = false;
        }
    }
    if quoted {
        return Err("unterminated quoted field".into());
    }
    out.push(cur);
    Ok(out)
}

/// Reads every row of `path`.
pub fn read_file<R: CsvRow>(path: &Path) -> Result<Vec<R>, CsvError> {
    let f = std::fs::File::open(path).map_err(|source| CsvError::Io {
        path: path.to_path_buf(),
        source,
    })?;
    read_from(BufReader::new(f), path)
}

/// Reads `dir/R::FILE`.
pub fn read_in<R: CsvRow>(dir: &Path) -> Result<Vec<R>, CsvError> {
    read_file(&dir.join(R::FILE))
}

/// Reads rows from `input` (named `path` in errors). The header must hold
/// every required column; other columns are ignored unless known extras.
pub fn read_from<R: CsvRow>(input: impl BufRead, path: &Path) -> Result<Vec<R>, CsvError> {
    let io = |source| CsvError::Io {
        path: path.to_path_buf(),
        source,
    };
    let mut lines = input.lines();
    let header = match lines.next() {
        Some(l) => l.map_err(io)?,
        None => {
            return Err(CsvError::Bad {
                path: path.to_path_buf(),
                line: 1,
                msg: "empty file (no header)".into(),
            })
        }
    };
    let names = split_line(header.trim_end_matches('\r')).map_err(|msg| CsvError::Bad {
        path: path.to_path_buf(),
        line: 1,
        msg,
    })?;
    let index: HashMap<String, usize> = names
        .into_iter()
        .enumerate()
        .map(|(i, n)| (n.trim().to_string(), i))
        .collect();
    for c in R::REQUIRED {
        if !index.contains_key(*c) {
            return Err(CsvError::MissingColumn {
                path: path.to_path_buf(),
                column: c,
            });
        }
    }
    let mut rows = Vec::new();
    for (n, line) in lines.enumerate() {
        let line = line.map_err(io)?;
        let line = line.trim_end_matches('\r');
        if line.is_empty() {
            continue;
        }
        let bad = |msg: String| CsvError::Bad {
            path: path.to_path_buf(),
            line: n + 2,
            msg,
        };
        let values = split_line(line).map_err(bad)?;
        if values.len() < R::REQUIRED.len() {
            return Err(bad(format!(
                "{} fields, expected at least {}",
                values.len(),
                R::REQUIRED.len()
            )));
        }
        let f = Fields {
            index: &index,
            values: &values,
        };
        rows.push(R::from_fields(&f).map_err(bad)?);
    }
    Ok(rows)
}

/// Formats a row the way [`CsvWriter`] would (for logs and tests).
pub fn to_line<R: CsvRow>(row: &R) -> String {
    let mut fields = Vec::new();
    row.write_fields(&mut fields);
    let mut line = String::new();
    for (i, f) in fields.iter().enumerate() {
        if i > 0 {
            line.push(',');
        }
        push_field(&mut line, f);
    }
    line
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
}
