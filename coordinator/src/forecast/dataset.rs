//! Dataset builder: monitor CSVs -> resampled, joined, feature rows.
//!
//! A run is a directory holding `hosts.csv` and `containers.csv`; `--data DIR`
//! names a run or a directory whose subdirectories are runs. The files are
//! read by the monitor's own codec and row types ([`crate::csv`]): columns
//! are found by name (extra columns are ignored, a missing one is an error
//! naming it and the header); an empty metric cell is a missing value (the
//! trees route it on their missing branch), an unparsable one is an error
//! with its line. Only `ops_per_second` is required here beyond the schema.
//!
//! Workload kind: the `kind` column of containers.csv when the file has it,
//! otherwise inferred from the container name's words (`cpu-3`, `w1_mem` ...),
//! and [`Dataset::notes`] says which was used.

use std::collections::{BTreeMap, BTreeSet, HashMap};
use std::path::{Path, PathBuf};

use serde::{Deserialize, Serialize};

use super::{ForecastError, Result};
use crate::csv::{scan_file, ContainerRow, CsvRow, HostRow};

/// Default resampling window, seconds.
pub const DEFAULT_WINDOW_S: f64 = 5.0;

// Files and column names are the schema's (crate::csv).
pub const HOSTS_FILE: &str = <HostRow as CsvRow>::FILE;
pub const CONTAINERS_FILE: &str = <ContainerRow as CsvRow>::FILE;

/// Metric columns of hosts.csv after `time,host`.
pub const HOST_METRICS: [&str; 10] = [
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

/// Optional host columns (written by the monitor and the simulator after the
/// required ones); missing values when a file has no such column.
pub const HOST_OPTIONAL: [&str; 1] = ["cores"];

/// Metric columns of containers.csv after `time,host,container`, before the target.
pub const CONTAINER_METRICS: [&str; 6] = [
    "cpu_usage_cores",
    "memory_bytes",
    "major_faults_per_second",
    "io_read_ops_per_second",
    "io_write_ops_per_second",
    "pids",
];

pub const TARGET: &str = "ops_per_second";

/// Workload kinds with a fixed feature code; anything else is `other`.
pub const KINDS: [&str; 6] = ["cpu", "mem", "io", "mixed", "oltp", "counter"];

/// The model's inputs, in order. `c_` the container, `h_` its host, `n_` the
/// other containers on that host. The last two are derived: the host's cores
/// per container and per process on it (the container included), the fair
/// share a CPU-bound container can expect, which trees cannot form from
/// `h_cores` and the counts themselves (they split on one feature at a time).
/// Models made before them (22 features) still load and ignore them.
pub const FEATURE_NAMES: [&str; 24] = [
    "c_kind",
    "c_cpu_usage_cores",
    "c_memory_mib",
    "c_major_faults_per_second",
    "c_io_read_ops_per_second",
    "c_io_write_ops_per_second",
    "c_pids",
    "h_cpu_user_ratio",
    "h_cpu_system_ratio",
    "h_cpu_iowait_ratio",
    "h_load1",
    "h_memory_used_gib",
    "h_major_faults_per_second",
    "h_disk_ops_per_second",
    "h_disk_busy_ratio",
    "h_net_rx_bytes_per_second",
    "h_net_tx_bytes_per_second",
    "h_cores",
    "n_containers",
    "n_cpu_usage_cores",
    "n_pids",
    "n_io_ops_per_second",
    "h_cores_per_container",
    "h_cores_per_pid",
];

/// One host's metrics over a window (NaN: not measured).
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub struct HostMetrics {
    /// In the order of [`HOST_METRICS`], then [`HOST_OPTIONAL`].
    pub values: [f64; 11],
}

/// One container's metrics over a window (NaN: not measured).
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub struct ContainerMetrics {
    pub kind: String,
    /// In the order of [`CONTAINER_METRICS`].
    pub values: [f64; 6],
}

/// The other containers on the same host in the same window.
#[derive(Clone, Debug, Default, PartialEq, Serialize, Deserialize)]
pub struct Neighbours {
    pub containers: f64,
    pub cpu_usage_cores: f64,
    pub pids: f64,
    pub io_ops_per_second: f64,
}

impl Neighbours {
    /// The sum of `others`' metrics (NaN cells count as 0).
    pub fn of<'a>(others: impl IntoIterator<Item = &'a ContainerMetrics>) -> Neighbours {
        let mut n = Neighbours::default();
        for c in others {
            n.add(c);
        }
        n
    }

    /// `c` joins them.
    pub fn add(&mut self, c: &ContainerMetrics) {
        let z = |v: f64| if v.is_finite() { v } else { 0.0 };
        self.containers += 1.0;
        self.cpu_usage_cores += z(c.values[0]);
        self.pids += z(c.values[5]);
        self.io_ops_per_second += z(c.values[3]) + z(c.values[4]);
    }
}

/// Feature code of a workload kind (trees split on it like on any number).
pub fn kind_code(kind: &str) -> f32 {
    KINDS
        .iter()
        .position(|k| *k == kind)
        .map_or(KINDS.len() as f32, |i| i as f32)
}

/// Normalised kind from a `kind` cell: lower case, `memory` -> `mem`, `disk` -> `io`.
pub fn normalise_kind(kind: &str) -> String {
    let k = kind.trim().to_ascii_lowercase();
    match k.as_str() {
        "memory" => "mem".into(),
        "disk" => "io".into(),
        _ => k,
    }
}

/// Kind from a container name: its first word that names a kind, else `other`.
pub fn kind_from_name(name: &str) -> String {
    for word in name
        .split(|c: char| !c.is_ascii_alphanumeric())
        .map(|w| w.trim_matches(|c: char| c.is_ascii_digit()))
    {
        let k = normalise_kind(word);
        if KINDS.contains(&k.as_str()) {
            return k;
        }
    }
    "other".into()
}

/// The feature vector of `container` running on `host` next to `neighbours`,
/// in the order of [`FEATURE_NAMES`]. Missing values become gbdt's missing marker.
pub fn features(c: &ContainerMetrics, h: &HostMetrics, n: &Neighbours) -> Vec<f32> {
    const MIB: f64 = 1024.0 * 1024.0;
    const GIB: f64 = MIB * 1024.0;
    let mut f = Vec::with_capacity(FEATURE_NAMES.len());
    f.push(kind_code(&c.kind) as f64);
    for (i, v) in c.values.iter().enumerate() {
        f.push(if i == 1 { v / MIB } else { *v });
    }
    for (i, v) in h.values.iter().enumerate() {
        f.push(if i == 4 { v / GIB } else { *v });
    }
    f.extend([n.containers, n.cpu_usage_cores, n.pids, n.io_ops_per_second]);
    let cores = h.values[10];
    let pids = if c.values[5].is_finite() {
        c.values[5]
    } else {
        1.0
    } + n.pids;
    f.extend([cores / (1.0 + n.containers), cores / pids.max(1.0)]);
    f.into_iter().map(to_feature).collect()
}

fn to_feature(v: f64) -> f32 {
    if v.is_finite() {
        v as f32
    } else {
        gbdt::decision_tree::VALUE_TYPE_UNKNOWN
    }
}

/// One container over one window, joined with its host.
#[derive(Clone, Debug, PartialEq)]
pub struct Row {
    pub run: String,
    /// Window start, unix seconds.
    pub time: f64,
    pub host: String,
    pub container: String,
    pub kind: String,
    pub features: Vec<f32>,
    /// Target: the container's ops per second over the window.
    pub ops: f64,
}

/// Rows of one or more runs.
#[derive(Clone, Debug, Default)]
pub struct Dataset {
    pub window_s: f64,
    pub rows: Vec<Row>,
    /// What the builder decided on the way (kind source, dropped rows).
    pub notes: Vec<String>,
}

impl Dataset {
    /// Run names, sorted.
    pub fn runs(&self) -> Vec<String> {
        let s: BTreeSet<&str> = self.rows.iter().map(|r| r.run.as_str()).collect();
        s.into_iter().map(String::from).collect()
    }

    pub fn extend(&mut self, other: Dataset) {
        self.rows.extend(other.rows);
        self.notes.extend(other.notes);
    }

    /// Writes the rows as CSV: `run,time,host,container,kind,split,<features>,ops_per_second`.
    /// `split` labels each run (e.g. train / valid); missing features are empty cells.
    pub fn export_csv(&self, path: &Path, split: &dyn Fn(&str) -> String) -> Result<()> {
        let csv_err = |source| ForecastError::Csv {
            path: path.to_path_buf(),
            source,
        };
        let mut w = csv::Writer::from_path(path).map_err(csv_err)?;
        let mut header = vec!["run", "time", "host", "container", "kind", "split"];
        header.extend(FEATURE_NAMES);
        header.push(TARGET);
        w.write_record(&header).map_err(csv_err)?;
        for r in &self.rows {
            let mut rec = vec![
                r.run.clone(),
                r.time.to_string(),
                r.host.clone(),
                r.container.clone(),
                r.kind.clone(),
                split(&r.run),
            ];
            rec.extend(r.features.iter().map(|&v| {
                if v == gbdt::decision_tree::VALUE_TYPE_UNKNOWN {
                    String::new()
                } else {
                    v.to_string()
                }
            }));
            rec.push(r.ops.to_string());
            w.write_record(&rec).map_err(csv_err)?;
        }
        w.flush().map_err(|source| ForecastError::Io {
            path: path.to_path_buf(),
            source,
        })
    }
}

/// The run directories under `dir`: itself if it holds hosts.csv, else its
/// subdirectories that do (sorted).
pub fn run_dirs(dir: &Path) -> Result<Vec<PathBuf>> {
    if dir.join(HOSTS_FILE).exists() || dir.join(CONTAINERS_FILE).exists() {
        return Ok(vec![dir.to_path_buf()]);
    }
    let io_err = |source| ForecastError::Io {
        path: dir.to_path_buf(),
        source,
    };
    let mut runs = Vec::new();
    for e in std::fs::read_dir(dir).map_err(io_err)? {
        let p = e.map_err(io_err)?.path();
        if p.join(HOSTS_FILE).exists() || p.join(CONTAINERS_FILE).exists() {
            runs.push(p);
        }
    }
    if runs.is_empty() {
        return Err(ForecastError::NoRuns(dir.to_path_buf()));
    }
    runs.sort();
    Ok(runs)
}

/// Container name -> workload kind, from scenario files.
pub type ScenarioKinds = BTreeMap<String, String>;

/// Reads the `name` and `kind` columns of scenario files (`herd scenario
/// gen`: a `#` metadata line, then `name,start_s,kind,...`).
pub fn scenario_kinds(files: &[PathBuf]) -> Result<ScenarioKinds> {
    let mut kinds = ScenarioKinds::new();
    for f in files {
        let mut reader = csv::ReaderBuilder::new()
            .trim(csv::Trim::All)
            .comment(Some(b'#'))
            .from_path(f)
            .map_err(|source| ForecastError::Csv {
                path: f.clone(),
                source,
            })?;
        let header: Vec<String> = reader
            .headers()
            .map_err(|source| ForecastError::Csv {
                path: f.clone(),
                source,
            })?
            .iter()
            .map(String::from)
            .collect();
        let col = |name: &str| {
            header
                .iter()
                .position(|h| h == name)
                .ok_or_else(|| ForecastError::MissingColumn {
                    path: f.clone(),
                    column: name.into(),
                    header: header.join(","),
                })
        };
        let (ni, ki) = (col("name")?, col("kind")?);
        for rec in reader.records() {
            let rec = rec.map_err(|source| ForecastError::Csv {
                path: f.clone(),
                source,
            })?;
            if let (Some(n), Some(k)) = (rec.get(ni), rec.get(ki)) {
                if !n.is_empty() && !k.is_empty() {
                    kinds.insert(n.to_string(), normalise_kind(k));
                }
            }
        }
    }
    Ok(kinds)
}

/// Loads every run under each of `dirs` (see [`run_dirs`]).
pub fn load_dirs(dirs: &[PathBuf], window_s: f64) -> Result<Dataset> {
    load_dirs_with(dirs, window_s, &ScenarioKinds::new())
}

/// [`load_dirs`], with workload kinds from scenario files for containers
/// whose rows carry none.
pub fn load_dirs_with(dirs: &[PathBuf], window_s: f64, kinds: &ScenarioKinds) -> Result<Dataset> {
    let mut ds = Dataset {
        window_s,
        ..Default::default()
    };
    for d in dirs {
        for run in run_dirs(d)? {
            ds.extend(load_run_with(&run, window_s, kinds)?);
        }
    }
    if ds.rows.is_empty() {
        return Err(ForecastError::Empty(format!(
            "no container row with ops_per_second joined to a host row in {}",
            dirs.iter()
                .map(|d| d.display().to_string())
                .collect::<Vec<_>>()
                .join(", ")
        )));
    }
    Ok(ds)
}

/// Per-window means of a set of columns (NaN cells ignored).
#[derive(Clone)]
struct Acc<const N: usize> {
    sum: [f64; N],
    n: [u32; N],
}

impl<const N: usize> Acc<N> {
    fn new() -> Self {
        Acc {
            sum: [0.0; N],
            n: [0; N],
        }
    }
    fn add(&mut self, v: &[f64; N]) {
        for ((s, n), x) in self.sum.iter_mut().zip(&mut self.n).zip(v) {
            if x.is_finite() {
                *s += x;
                *n += 1;
            }
        }
    }
    fn mean(&self) -> [f64; N] {
        std::array::from_fn(|i| {
            if self.n[i] == 0 {
                f64::NAN
            } else {
                self.sum[i] / self.n[i] as f64
            }
        })
    }
}

/// hosts.csv's metrics in the order of [`HOST_METRICS`], then [`HOST_OPTIONAL`].
fn host_values(r: &HostRow) -> [f64; 11] {
    let mut v = [f64::NAN; 11];
    v[..HOST_METRICS.len()].copy_from_slice(&r.metrics());
    v[HOST_METRICS.len()] = r.cores.unwrap_or(f64::NAN);
    v
}

/// Loads one run directory; the run is named by the directory's path.
pub fn load_run(dir: &Path, window_s: f64) -> Result<Dataset> {
    load_run_with(dir, window_s, &ScenarioKinds::new())
}

/// [`load_run`] with scenario kinds: a row's kind is its `kind` cell, else
/// the scenario's kind for that container name, else the name's words.
pub fn load_run_with(dir: &Path, window_s: f64, kinds: &ScenarioKinds) -> Result<Dataset> {
    if !(window_s.is_finite() && window_s > 0.0) {
        return Err(ForecastError::Invalid(format!(
            "window must be a positive number of seconds, not {window_s}"
        )));
    }
    let run = dir.display().to_string();
    let bucket = |t: f64| (t / window_s).floor() as i64;

    // hosts.csv
    let mut hosts: HashMap<(String, i64), Acc<11>> = HashMap::new();
    scan_file(&dir.join(HOSTS_FILE), &[], |r: HostRow| {
        hosts
            .entry((r.host.clone(), bucket(r.time)))
            .or_insert_with(Acc::new)
            .add(&host_values(&r));
        Ok::<_, ForecastError>(())
    })?;

    // containers.csv
    // (host, bucket, container) -> (kind, metrics, ops)
    let mut conts: BTreeMap<(String, i64, String), (String, Acc<6>, Acc<1>)> = BTreeMap::new();
    let (mut inferred, mut from_scenario) = (0usize, 0usize);
    let header = scan_file(&dir.join(CONTAINERS_FILE), &[TARGET], |r: ContainerRow| {
        let e = conts
            .entry((r.host.clone(), bucket(r.time), r.container.clone()))
            .or_insert_with(|| {
                let kind = r
                    .kind
                    .as_deref()
                    .map(normalise_kind)
                    .or_else(|| {
                        let k = kinds.get(&r.container).cloned();
                        from_scenario += k.is_some() as usize;
                        k
                    })
                    .unwrap_or_else(|| {
                        inferred += 1;
                        kind_from_name(&r.container)
                    });
                (kind, Acc::new(), Acc::new())
            });
        e.1.add(&r.metrics());
        e.2.add(&[r.ops_per_second.unwrap_or(f64::NAN)]);
        Ok::<_, ForecastError>(())
    })?;
    let has_kind = header.iter().any(|h| h == "kind");

    let mut sources = Vec::new();
    let total = conts.len();
    let from_column = total - from_scenario - inferred;
    if from_column > 0 {
        sources.push(format!("the `kind` column ({from_column})"));
    }
    if from_scenario > 0 {
        sources.push(format!("the scenario file ({from_scenario})"));
    }
    if inferred > 0 {
        sources.push(format!("the container name ({inferred})"));
    }
    let mut notes = vec![format!(
        "{run}: workload kind from {} (container windows){}",
        sources.join(", "),
        if !has_kind {
            "; containers.csv has no `kind` column"
        } else {
            ""
        }
    )];

    // Window means, then neighbours per (host, bucket).
    let means: Vec<((String, i64, String), ContainerMetrics, f64)> = conts
        .into_iter()
        .map(|(k, (kind, acc, ops))| {
            let cm = ContainerMetrics {
                kind,
                values: acc.mean(),
            };
            (k, cm, ops.mean()[0])
        })
        .collect();
    let mut by_host: HashMap<(&str, i64), Vec<usize>> = HashMap::new();
    for (i, ((h, b, _), _, _)) in means.iter().enumerate() {
        by_host.entry((h.as_str(), *b)).or_default().push(i);
    }

    let mut rows = Vec::new();
    let (mut no_host, mut no_ops) = (0usize, 0usize);
    for (i, ((host, b, name), cm, ops)) in means.iter().enumerate() {
        if !ops.is_finite() {
            no_ops += 1;
            continue;
        }
        let Some(h) = hosts.get(&(host.clone(), *b)) else {
            no_host += 1;
            continue;
        };
        let hm = HostMetrics { values: h.mean() };
        let others = by_host[&(host.as_str(), *b)]
            .iter()
            .filter(|&&j| j != i)
            .map(|&j| &means[j].1);
        let n = Neighbours::of(others);
        rows.push(Row {
            run: run.clone(),
            time: *b as f64 * window_s,
            host: host.clone(),
            container: name.clone(),
            kind: cm.kind.clone(),
            features: features(cm, &hm, &n),
            ops: *ops,
        });
    }
    if no_host > 0 {
        notes.push(format!(
            "{run}: {no_host} container windows dropped: no host row in that window"
        ));
    }
    if no_ops > 0 {
        notes.push(format!(
            "{run}: {no_ops} container windows without ops_per_second (not targets; still neighbours)"
        ));
    }
    rows.sort_by(|a, b| {
        (a.time, &a.container)
            .partial_cmp(&(b.time, &b.container))
            .unwrap_or(std::cmp::Ordering::Equal)
    });
    Ok(Dataset {
        window_s,
        rows,
        notes,
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn feature_columns_are_the_schemas() {
        use crate::csv::{CONTAINERS_COLUMNS, HOSTS_COLUMNS};
        for c in HOST_METRICS.iter().chain(&HOST_OPTIONAL) {
            assert!(HOSTS_COLUMNS.contains(c), "{c}");
        }
        for c in CONTAINER_METRICS.iter().chain([&TARGET]) {
            assert!(CONTAINERS_COLUMNS.contains(c), "{c}");
        }
    }

    #[test]
    fn kind_from_names() {
        assert_eq!(kind_from_name("cpu-3"), "cpu");
        assert_eq!(kind_from_name("w1_mem2"), "mem");
        assert_eq!(kind_from_name("web-io"), "io");
        assert_eq!(kind_from_name("memory-hog"), "mem");
        assert_eq!(kind_from_name("nginx"), "other");
        assert_eq!(kind_code("cpu"), 0.0);
        assert_eq!(kind_code("whatever"), KINDS.len() as f32);
    }

    #[test]
    fn features_follow_names_and_mark_missing() {
        let c = ContainerMetrics {
            kind: "io".into(),
            values: [0.5, 2.0 * 1024.0 * 1024.0, 0.0, 10.0, 20.0, f64::NAN],
        };
        let h = HostMetrics { values: [0.1; 11] };
        let f = features(&c, &h, &Neighbours::default());
        assert_eq!(f.len(), FEATURE_NAMES.len());
        assert_eq!(f[0], 2.0);
        assert_eq!(f[2], 2.0);
        assert_eq!(f[6], gbdt::decision_tree::VALUE_TYPE_UNKNOWN);
        // Cores per container and per process: 2 cores, two neighbours with
        // 3 processes in all, the container's own count unknown (one).
        let mut h = HostMetrics { values: [0.1; 11] };
        h.values[10] = 2.0;
        let n = Neighbours {
            containers: 2.0,
            pids: 3.0,
            ..Default::default()
        };
        let f = features(&c, &h, &n);
        let at = |name| FEATURE_NAMES.iter().position(|f| *f == name).unwrap();
        assert_eq!(f[at("h_cores_per_container")], 2.0 / 3.0);
        assert_eq!(f[at("h_cores_per_pid")], 2.0 / 4.0);
        h.values[10] = f64::NAN;
        let f = features(&c, &h, &n);
        assert_eq!(
            f[at("h_cores_per_pid")],
            gbdt::decision_tree::VALUE_TYPE_UNKNOWN
        );
    }
}
