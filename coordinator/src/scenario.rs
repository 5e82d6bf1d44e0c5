//! Scenarios: which containers start when, where, doing what.
//!
//! A scenario file is a CSV with one comment line of metadata first:
//!
//! ```text
//! # herd-scenario v1 seed=7 kind=random hosts=n1,n2,n3,n4 length_s=36000
//! name,start_s,kind,threads,memory_bytes,duration_s,first_host
//! c0001,12,cpu,2,67108864,640,n3
//! ```
//!
//! `kind` is the workload (`herd-work cpu|mem|io` and `oltp`, a mix of CPU
//! and disk: see [`WorkloadKind`]); `threads` its worker threads;
//! `memory_bytes` what it keeps resident; `duration_s` how long it runs
//! (wall clock, like `herd-work --duration`); `first_host` where it starts.
//! Rows are sorted by start time, then name.
//!
//! Generators ([`generate`]), from a seed through SplitMix64 (no floats
//! from the platform's libm, no hash maps: the same seed gives the same
//! file byte for byte on every machine):
//! * `random`: start times uniform over `[0, length - max duration]`,
//!   durations uniform in 300..=1200 s;
//! * `staircase`: containers start in batches of two, one batch per step,
//!   and each lives four steps, so the load climbs for four steps, stays on
//!   a plateau of eight containers, and falls at the end.
//!
//! Both draw each container's kind (by default cpu 40%, mem 20%, io 20%,
//! oltp 20%; `--mix` changes the weights),
//! threads (cpu 1/2/4, mem 1/2, io 1..=4, oltp 2..=8), memory (mem
//! 256..=1536 MiB, others 16..=128 MiB, in MiB steps) and first host
//! (uniform) from the seed. The default length (36,000 s) keeps about
//! eight containers running at a time: near the 12 cores of the default
//! 4,4,2,2 simulated hosts, so where they start matters.

use std::fmt;
use std::io::Write;
use std::path::Path;

/// What a container's workload does (per thread; see the simulator).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub enum WorkloadKind {
    /// `herd-work cpu`: one core per thread.
    Cpu,
    /// `herd-work mem`: one core per thread over a large resident set.
    Mem,
    /// `herd-work io`: write, fsync, read back: mostly disk.
    Io,
    /// A database-like mix: half a core and disk per thread.
    Oltp,
}

impl WorkloadKind {
    pub const ALL: [WorkloadKind; 4] = [
        WorkloadKind::Cpu,
        WorkloadKind::Mem,
        WorkloadKind::Io,
        WorkloadKind::Oltp,
    ];
    pub fn as_str(self) -> &'static str {
        match self {
            WorkloadKind::Cpu => "cpu",
            WorkloadKind::Mem => "mem",
            WorkloadKind::Io => "io",
            WorkloadKind::Oltp => "oltp",
        }
    }
    /// Cores one thread uses when nothing holds it back.
    pub fn cpu_per_thread(self) -> f64 {
        match self {
            WorkloadKind::Cpu | WorkloadKind::Mem => 1.0,
            WorkloadKind::Io => 0.1,
            WorkloadKind::Oltp => 0.5,
        }
    }
    /// Disk ops/s one thread does when nothing holds it back.
    pub fn disk_ops_per_thread(self) -> f64 {
        match self {
            WorkloadKind::Cpu | WorkloadKind::Mem => 0.0,
            WorkloadKind::Io => 1000.0,
            WorkloadKind::Oltp => 600.0,
        }
    }
}

impl fmt::Display for WorkloadKind {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.as_str())
    }
}

impl std::str::FromStr for WorkloadKind {
    type Err = String;
    fn from_str(s: &str) -> Result<Self, String> {
        match s {
            "cpu" => Ok(WorkloadKind::Cpu),
            "mem" => Ok(WorkloadKind::Mem),
            "io" => Ok(WorkloadKind::Io),
            "oltp" | "oltp-like" => Ok(WorkloadKind::Oltp),
            _ => Err(format!("unknown workload kind {s:?} (cpu, mem, io, oltp)")),
        }
    }
}

/// Which generator.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum ScenarioKind {
    Staircase,
    Random,
}

impl ScenarioKind {
    pub fn as_str(self) -> &'static str {
        match self {
            ScenarioKind::Staircase => "staircase",
            ScenarioKind::Random => "random",
        }
    }
}

impl std::str::FromStr for ScenarioKind {
    type Err = String;
    fn from_str(s: &str) -> Result<Self, String> {
        match s {
            "staircase" => Ok(ScenarioKind::Staircase),
            "random" => Ok(ScenarioKind::Random),
            _ => Err(format!("unknown scenario kind {s:?} (staircase, random)")),
        }
    }
}

/// One container of a scenario.
#[derive(Debug, Clone, PartialEq)]
pub struct ScenarioContainer {
    pub name: String,
    pub start_s: u64,
    pub kind: WorkloadKind,
    pub threads: u32,
    pub memory_bytes: u64,
    pub duration_s: u64,
    pub first_host: String,
}

/// A whole scenario.
#[derive(Debug, Clone, PartialEq)]
pub struct Scenario {
    pub seed: u64,
    pub kind: ScenarioKind,
    pub hosts: Vec<String>,
    pub length_s: u64,
    pub containers: Vec<ScenarioContainer>,
}

/// What can go wrong with a scenario.
#[derive(Debug, thiserror::Error)]
pub enum ScenarioError {
    #[error("{path}: {source}")]
    Io {
        path: String,
        source: std::io::Error,
    },
    #[error("{path}:{line}: {msg}")]
    Bad {
        path: String,
        line: usize,
        msg: String,
    },
    #[error("{0}")]
    Params(String),
}

/// Generator parameters.
#[derive(Debug, Clone, PartialEq)]
pub struct GenParams {
    pub seed: u64,
    pub kind: ScenarioKind,
    pub containers: usize,
    pub hosts: usize,
    pub length_s: u64,
    /// Weights of cpu, mem, io, oltp.
    pub mix: [u64; 4],
}

/// The default workload mix: cpu 40, mem 20, io 20, oltp 20.
pub const DEFAULT_MIX: [u64; 4] = [40, 20, 20, 20];

impl Default for GenParams {
    fn default() -> Self {
        GenParams {
            seed: 1,
            kind: ScenarioKind::Random,
            containers: 400,
            hosts: 4,
            length_s: 36_000,
            mix: DEFAULT_MIX,
        }
    }
}

/// Parses a mix like `cpu=40,mem=20,io=20,oltp=20` (kinds left out weigh 0).
pub fn parse_mix(s: &str) -> Result<[u64; 4], String> {
    let mut mix = [0u64; 4];
    for part in s.split(',') {
        let (k, v) = part
            .split_once('=')
            .ok_or_else(|| format!("{part:?}: expected KIND=WEIGHT"))?;
        let kind: WorkloadKind = k.trim().parse()?;
        let w: u64 = v
            .trim()
            .parse()
            .map_err(|_| format!("{part:?}: weight must be a whole number"))?;
        mix[WorkloadKind::ALL
            .iter()
            .position(|x| *x == kind)
            .unwrap_or(0)] = w;
    }
    if mix.iter().sum::<u64>() == 0 || mix.iter().any(|w| *w > 1_000_000) {
        return Err("the mix weights must sum to more than 0 (each at most 1000000)".into());
    }
    Ok(mix)
}

/// SplitMix64: tiny, fast, and the same sequence everywhere.
#[derive(Debug, Clone)]
pub struct Rng(u64);

impl Rng {
    pub fn new(seed: u64) -> Self {
        Rng(seed)
    }
    pub fn next_u64(&mut self) -> u64 {
        self.0 = self.0.wrapping_add(0x9E37_79B9_7F4A_7C15);
        let mut z = self.0;
        z = (z ^ (z >> 30)).wrapping_mul(0xBF58_476D_1CE4_E5B9);
        z = (z ^ (z >> 27)).wrapping_mul(0x94D0_49BB_1331_11EB);
        z ^ (z >> 31)
    }
    /// Uniform in `lo..=hi` (integers only: no float rounding to differ).
    pub fn range(&mut self, lo: u64, hi: u64) -> u64 {
        if hi <= lo {
            return lo;
        }
        lo + self.next_u64() % (hi - lo + 1)
    }
    /// One of `items` by integer weights.
    pub fn weighted<T: Copy>(&mut self, items: &[(T, u64)]) -> T {
        let total: u64 = items.iter().map(|i| i.1).sum();
        let mut x = self.next_u64() % total.max(1);
        for &(t, w) in items {
            if x < w {
                return t;
            }
            x -= w;
        }
        items[items.len() - 1].0
    }
}

const MIB: u64 = 1 << 20;
const MIN_DURATION: u64 = 300;
const MAX_DURATION: u64 = 1200;

/// Generates a scenario; the same parameters give the same scenario.
pub fn generate(p: &GenParams) -> Result<Scenario, ScenarioError> {
    if p.hosts == 0 || p.hosts > 100_000 {
        return Err(ScenarioError::Params("--hosts must be 1..=100000".into()));
    }
    if p.containers == 0 || p.containers > 10_000_000 {
        return Err(ScenarioError::Params(
            "--containers must be 1..=10000000".into(),
        ));
    }
    if p.mix.iter().sum::<u64>() == 0 {
        return Err(ScenarioError::Params("--mix weights sum to 0".into()));
    }
    if p.length_s < 2 * MAX_DURATION {
        return Err(ScenarioError::Params(format!(
            "--length must be at least {} s (containers run up to {MAX_DURATION} s)",
            2 * MAX_DURATION
        )));
    }
    let hosts: Vec<String> = (1..=p.hosts).map(|i| format!("n{i}")).collect();
    // Separate streams so the mix does not shift when timing rules change.
    let mut timing = Rng::new(p.seed ^ 0x7469_6d69_6e67);
    let mut mix = Rng::new(p.seed ^ 0x006d_6978);
    let width = p.containers.to_string().len().max(4);
    let (batches, step) = {
        let b = p.containers.div_ceil(2) as u64;
        (b, (p.length_s / (b + 4)).max(1))
    };
    let mut containers = Vec::with_capacity(p.containers);
    for i in 0..p.containers {
        let (start_s, duration_s) = match p.kind {
            ScenarioKind::Random => {
                let d = timing.range(MIN_DURATION, MAX_DURATION);
                (timing.range(0, p.length_s - MAX_DURATION), d)
            }
            ScenarioKind::Staircase => {
                let batch = (i / 2) as u64;
                debug_assert!(batch < batches);
                (batch * step + timing.range(0, 5.min(step - 1)), 4 * step)
            }
        };
        let kind = mix.weighted(&[
            (WorkloadKind::Cpu, p.mix[0]),
            (WorkloadKind::Mem, p.mix[1]),
            (WorkloadKind::Io, p.mix[2]),
            (WorkloadKind::Oltp, p.mix[3]),
        ]);
        let threads = match kind {
            WorkloadKind::Cpu => mix.weighted(&[(1, 40), (2, 35), (4, 25)]),
            WorkloadKind::Mem => mix.weighted(&[(1, 50), (2, 50)]),
            WorkloadKind::Io => mix.range(1, 4) as u32,
            WorkloadKind::Oltp => mix.range(2, 8) as u32,
        };
        let memory_bytes = match kind {
            WorkloadKind::Mem => mix.range(256, 1536) * MIB,
            _ => mix.range(16, 128) * MIB,
        };
        let first_host = hosts[mix.range(0, p.hosts as u64 - 1) as usize].clone();
        containers.push(ScenarioContainer {
            name: format!("c{:0width$}", i + 1),
            start_s,
            kind,
            threads,
            memory_bytes,
            duration_s,
            first_host,
        });
    }
    containers.sort_by(|a, b| a.start_s.cmp(&b.start_s).then(a.name.cmp(&b.name)));
    Ok(Scenario {
        seed: p.seed,
        kind: p.kind,
        hosts,
        length_s: p.length_s,
        containers,
    })
}

const MAGIC: &str = "# herd-scenario v1";
const HEADER: &str = "name,start_s,kind,threads,memory_bytes,duration_s,first_host";

impl Scenario {
    /// The file's bytes.
    pub fn to_text(&self) -> String {
        let mut s = format!(
            "{MAGIC} seed={} kind={} hosts={} length_s={}\n{HEADER}\n",
            self.seed,
            self.kind.as_str(),
            self.hosts.join(","),
            self.length_s
        );
        for c in &self.containers {
            s.push_str(&format!(
                "{},{},{},{},{},{},{}\n",
                c.name, c.start_s, c.kind, c.threads, c.memory_bytes, c.duration_s, c.first_host
            ));
        }
        s
    }

    /// Writes the file (through a temporary file and a rename: a failed
    /// write leaves no half scenario behind).
    pub fn write(&self, path: &Path) -> Result<(), ScenarioError> {
        let io = |source| ScenarioError::Io {
            path: path.display().to_string(),
            source,
        };
        let tmp = path.with_extension("tmp-scenario");
        let mut f = std::fs::File::create(&tmp).map_err(io)?;
        f.write_all(self.to_text().as_bytes()).map_err(io)?;
        f.sync_all().map_err(io)?;
        std::fs::rename(&tmp, path).map_err(io)
    }

    pub fn read(path: &Path) -> Result<Scenario, ScenarioError> {
        let text = std::fs::read_to_string(path).map_err(|source| ScenarioError::Io {
            path: path.display().to_string(),
            source,
        })?;
        Scenario::parse(&text, &path.display().to_string())
    }

    /// Parses a scenario file's text (`path` names it in errors).
    pub fn parse(text: &str, path: &str) -> Result<Scenario, ScenarioError> {
        let bad = |line: usize, msg: String| ScenarioError::Bad {
            path: path.to_string(),
            line,
            msg,
        };
        let mut lines = text.lines().enumerate();
        let meta = match lines.next() {
            Some((_, l)) if l.starts_with(MAGIC) => &l[MAGIC.len()..],
            _ => {
                return Err(bad(
                    1,
                    format!("not a scenario file (expected {MAGIC:?} first)"),
                ))
            }
        };
        let (mut seed, mut kind, mut hosts, mut length) = (None, None, None, None);
        for kv in meta.split_whitespace() {
            let (k, v) = kv
                .split_once('=')
                .ok_or_else(|| bad(1, format!("{kv:?}: expected key=value")))?;
            match k {
                "seed" => seed = Some(v.parse().map_err(|_| bad(1, format!("seed {v:?}")))?),
                "kind" => kind = Some(v.parse().map_err(|e: String| bad(1, e))?),
                "hosts" => hosts = Some(v.split(',').map(str::to_string).collect::<Vec<_>>()),
                "length_s" => {
                    length = Some(v.parse().map_err(|_| bad(1, format!("length_s {v:?}")))?)
                }
                _ => {} // newer metadata: ignored
            }
        }
        let hosts: Vec<String> = hosts.ok_or_else(|| bad(1, "no hosts=".into()))?;
        if hosts.iter().any(|h| h.is_empty()) {
            return Err(bad(1, "empty host name in hosts=".into()));
        }
        match lines.next() {
            Some((_, l)) if l.trim_end() == HEADER => {}
            _ => return Err(bad(2, format!("expected the header {HEADER:?}"))),
        }
        let mut containers = Vec::new();
        let mut seen = std::collections::HashSet::new();
        for (n, line) in lines {
            let line = line.trim_end();
            if line.is_empty() || line.starts_with('#') {
                continue;
            }
            let ln = n + 1;
            let f: Vec<&str> = line.split(',').collect();
            if f.len() != 7 {
                return Err(bad(ln, format!("{} fields, expected 7", f.len())));
            }
            let num = |i: usize, what: &str| {
                f[i].parse::<u64>()
                    .map_err(|_| bad(ln, format!("{what}: {:?} is not a whole number", f[i])))
            };
            let name = f[0].to_string();
            if name.is_empty() || !seen.insert(name.clone()) {
                return Err(bad(
                    ln,
                    format!("container name {name:?} is empty or repeated"),
                ));
            }
            let threads = num(3, "threads")?;
            if threads == 0 || threads > 4096 {
                return Err(bad(ln, format!("threads {threads}: must be 1..=4096")));
            }
            let duration_s = num(5, "duration_s")?;
            if duration_s == 0 {
                return Err(bad(ln, "duration_s must be > 0".into()));
            }
            let first_host = f[6].to_string();
            if !hosts.contains(&first_host) {
                return Err(bad(
                    ln,
                    format!("first_host {first_host:?} is not in hosts="),
                ));
            }
            containers.push(ScenarioContainer {
                name,
                start_s: num(1, "start_s")?,
                kind: f[2].parse().map_err(|e: String| bad(ln, e))?,
                threads: threads as u32,
                memory_bytes: num(4, "memory_bytes")?,
                duration_s,
                first_host,
            });
        }
        containers.sort_by(|a, b| a.start_s.cmp(&b.start_s).then(a.name.cmp(&b.name)));
        let end = containers
            .iter()
            .map(|c| c.start_s + c.duration_s)
            .max()
            .unwrap_or(0);
        Ok(Scenario {
            seed: seed.unwrap_or(0),
            kind: kind.unwrap_or(ScenarioKind::Random),
            hosts,
            length_s: length.unwrap_or(end).max(end),
            containers,
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn params(kind: ScenarioKind, seed: u64) -> GenParams {
        GenParams {
            seed,
            kind,
            ..Default::default()
        }
    }

    #[test]
    fn same_seed_same_bytes_other_seed_other_bytes() {
        for kind in [ScenarioKind::Random, ScenarioKind::Staircase] {
            let a = generate(&params(kind, 42)).unwrap().to_text();
            let b = generate(&params(kind, 42)).unwrap().to_text();
            let c = generate(&params(kind, 43)).unwrap().to_text();
            assert_eq!(a, b);
            assert_ne!(a, c);
        }
    }

    #[test]
    fn a_generated_scenario_has_what_was_asked_and_round_trips() {
        let s = generate(&params(ScenarioKind::Random, 7)).unwrap();
        assert_eq!(s.containers.len(), 400);
        assert_eq!(s.hosts, vec!["n1", "n2", "n3", "n4"]);
        for k in WorkloadKind::ALL {
            assert!(s.containers.iter().any(|c| c.kind == k), "no {k}");
        }
        for h in &s.hosts {
            assert!(s.containers.iter().any(|c| &c.first_host == h));
        }
        assert!(s
            .containers
            .iter()
            .all(|c| c.start_s + c.duration_s <= s.length_s));
        assert!(s
            .containers
            .windows(2)
            .all(|w| w[0].start_s <= w[1].start_s));
        let back = Scenario::parse(&s.to_text(), "x").unwrap();
        assert_eq!(back, s);
    }

    #[test]
    fn staircase_climbs_to_a_plateau_of_eight() {
        let s = generate(&params(ScenarioKind::Staircase, 1)).unwrap();
        let running = |t: u64| {
            s.containers
                .iter()
                .filter(|c| c.start_s <= t && t < c.start_s + c.duration_s)
                .count()
        };
        assert!(running(1) <= 2);
        assert_eq!(running(s.length_s / 2), 8);
    }

    #[test]
    fn bad_files_and_params_are_refused_clearly() {
        let e = Scenario::parse("hello\n", "f").unwrap_err().to_string();
        assert!(e.contains("f:1: not a scenario file"), "{e}");
        let head = "# herd-scenario v1 seed=1 kind=random hosts=n1,n2 length_s=100\nname,start_s,kind,threads,memory_bytes,duration_s,first_host\n";
        let e = Scenario::parse(&format!("{head}a,0,gpu,1,1,10,n1\n"), "f")
            .unwrap_err()
            .to_string();
        assert!(e.contains("f:3: unknown workload kind \"gpu\""), "{e}");
        let e = Scenario::parse(&format!("{head}a,0,cpu,1,1,10,n9\n"), "f")
            .unwrap_err()
            .to_string();
        assert!(e.contains("first_host \"n9\""), "{e}");
        let e = Scenario::parse(
            &format!("{head}a,0,cpu,1,1,10,n1\na,5,cpu,1,1,10,n1\n"),
            "f",
        )
        .unwrap_err()
        .to_string();
        assert!(e.contains("f:4: container name \"a\""), "{e}");
        let e = Scenario::parse(&format!("{head}a,-3,cpu,1,1,10,n1\n"), "f")
            .unwrap_err()
            .to_string();
        assert!(e.contains("start_s"), "{e}");
        let e = generate(&GenParams {
            length_s: 100,
            ..Default::default()
        })
        .unwrap_err()
        .to_string();
        assert!(e.contains("--length"), "{e}");
    }
}
