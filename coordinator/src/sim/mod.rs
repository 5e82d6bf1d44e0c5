//! The simulator: a scenario on simulated hosts, one tick per second, with
//! a placement policy deciding on the same [`ClusterView`] through the same
//! [`Decider`] (window, move tracker, schedule) as a live run, and the same
//! CSV files written.
//!
//! Each tick `[t, t+1)`:
//! 1. containers whose `start_s <= t` start on their first host
//!    (`added` event at `t`);
//! 2. every host runs [`model::tick`] over its containers (CFS-like CPU
//!    sharing, memory pressure, disk contention, frozen time);
//! 3. samples at `t + 1` go to the decision window (every tick, the way
//!    the monitor samples every second) and, every `sample_every_s`
//!    seconds, to hosts.csv and containers.csv;
//! 4. migrations whose frozen time is over complete (`moved` event at the
//!    end of the frozen time); containers whose duration is over leave
//!    (`removed` event);
//! 5. at `delay_s`, then every `period_s`, the policy decides on the view
//!    of the last `window_s` seconds. Each plan is checked (the container
//!    runs on `from`, is not moving, `to` exists) and executed: the
//!    container moves to `to` at once and is frozen for
//!    `frozen_base_s + frozen_per_mib_s * MiB` (defaults 0.55 s and
//!    (2.4 - 0.55) / 256 s, from the migration benchmarks: ~0.55 s for a
//!    small container, ~2.4 s for 256 MiB; this kernel has no soft-dirty
//!    tracking, so no pre-copy: the whole move is frozen). The CPU and
//!    network the transfer itself costs the hosts are not modelled.
//!
//! Durations are wall clock (as `herd-work --duration`): frozen time is
//! lost work, which is the migration's cost. The run ends when the last
//! container leaves. Everything is deterministic: same scenario, policy
//! and options, same bytes in every file.

pub mod model;

use std::collections::HashMap;
use std::path::{Path, PathBuf};

use crate::csv::{
    ContainerRow, CsvError, CsvWriter, DecisionRow, HostRow, MigrationEvent, MigrationRow,
};
use crate::decider::{Decider, ScheduleError};
use crate::policy::{PlacementConfig, Plan, Policy};
use crate::scenario::{Scenario, WorkloadKind};
use crate::view::{ClusterView, HostInfo};
use model::{HostSpec, Load, Scratch, Usage};

/// What went wrong in a simulation.
#[derive(Debug, thiserror::Error)]
pub enum SimError {
    #[error(transparent)]
    Csv(#[from] CsvError),
    #[error("{path}: {source}")]
    Io {
        path: PathBuf,
        source: std::io::Error,
    },
    #[error("{0}")]
    Config(String),
    #[error(transparent)]
    Policy(#[from] crate::policy::PolicyError),
    #[error(transparent)]
    Schedule(#[from] ScheduleError),
}

/// Simulator settings.
#[derive(Debug, Clone, PartialEq)]
pub struct SimConfig {
    /// Cores of each host, in the scenario's host order.
    pub hosts_cores: Vec<f64>,
    /// RAM of each host (default: 1 GiB per core).
    pub hosts_memory_bytes: Vec<f64>,
    /// Disk ops/s each host's disk can serve.
    pub disk_ops_capacity: f64,
    /// Seconds between rows in hosts.csv / containers.csv.
    pub sample_every_s: u64,
    pub frozen_base_s: f64,
    pub frozen_per_mib_s: f64,
    pub placement: PlacementConfig,
}

impl SimConfig {
    /// Defaults for `hosts` hosts: 4,4,2,2 cores for four hosts (the
    /// issue's mix of big and small), else 4 each.
    pub fn for_hosts(hosts: usize) -> Self {
        let cores = if hosts == 4 {
            vec![4.0, 4.0, 2.0, 2.0]
        } else {
            vec![4.0; hosts]
        };
        Self::with_cores(cores)
    }

    pub fn with_cores(cores: Vec<f64>) -> Self {
        SimConfig {
            hosts_memory_bytes: cores.iter().map(|c| c * 1073741824.0).collect(),
            hosts_cores: cores,
            disk_ops_capacity: 10_000.0,
            sample_every_s: 5,
            frozen_base_s: 0.55,
            frozen_per_mib_s: (2.4 - 0.55) / 256.0,
            placement: PlacementConfig::default(),
        }
    }
}

struct Ctr {
    name: String,
    kind: WorkloadKind,
    threads: u32,
    memory: f64,
    start: u64,
    end: u64,
    host: usize,
    frozen_from: f64,
    frozen_until: f64,
    /// A move whose `moved` event is still to be written: (from, frozen s).
    pending: Option<(usize, f64)>,
    moves: u32,
    active: bool,
}

struct Writers {
    hosts: CsvWriter<std::io::BufWriter<std::fs::File>, HostRow>,
    containers: CsvWriter<std::io::BufWriter<std::fs::File>, ContainerRow>,
    migrations: CsvWriter<std::io::BufWriter<std::fs::File>, MigrationRow>,
    decisions: CsvWriter<std::io::BufWriter<std::fs::File>, DecisionRow>,
}

/// Totals of a run (the report recomputes everything from the CSVs; these
/// are for benchmarks and quick checks).
#[derive(Debug, Clone, Default, PartialEq)]
pub struct Totals {
    pub ticks: u64,
    pub ops: f64,
    pub migrations: u32,
    pub decisions: u32,
    pub frozen_s: f64,
}

/// A simulation in progress.
pub struct Sim {
    cfg: SimConfig,
    decider: Decider,
    hosts: Vec<String>,
    specs: Vec<HostSpec>,
    load1: Vec<f64>,
    ctrs: Vec<Ctr>,
    next_arrival: usize,
    on_host: Vec<Vec<usize>>,
    end: u64,
    t: u64,
    out: Option<Writers>,
    totals: Totals,
    scratch: Scratch,
    loads: Vec<Load>,
    usage: Vec<Usage>,
    host_row: HostRow,
    ctr_row: ContainerRow,
}

impl Sim {
    /// A simulation of `scenario` under `policy`, writing the CSV files into
    /// `out_dir` when given (created if missing).
    pub fn new(
        scenario: &Scenario,
        cfg: SimConfig,
        policy: Box<dyn Policy>,
        out_dir: Option<&Path>,
    ) -> Result<Sim, SimError> {
        let n = scenario.hosts.len();
        if cfg.hosts_cores.len() != n || cfg.hosts_memory_bytes.len() != n {
            return Err(SimError::Config(format!(
                "the scenario has {n} hosts but {} core counts were given (--hosts-cores)",
                cfg.hosts_cores.len()
            )));
        }
        if cfg
            .hosts_cores
            .iter()
            .chain(&cfg.hosts_memory_bytes)
            .any(|c| !(c.is_finite() && *c > 0.0))
        {
            return Err(SimError::Config(
                "host cores and memory must be positive".into(),
            ));
        }
        if cfg.sample_every_s == 0 {
            return Err(SimError::Config("--sample-every must be >= 1".into()));
        }
        let index: HashMap<&str, usize> = scenario
            .hosts
            .iter()
            .enumerate()
            .map(|(i, h)| (h.as_str(), i))
            .collect();
        let mut decider = Decider::new(policy, cfg.placement.clone(), 1.0, 0.0)?;
        for (h, c) in scenario.hosts.iter().zip(&cfg.hosts_cores) {
            decider.set_host(h, HostInfo { cores: *c });
        }
        let mut ctrs = Vec::with_capacity(scenario.containers.len());
        for c in &scenario.containers {
            let host = *index.get(c.first_host.as_str()).ok_or_else(|| {
                SimError::Config(format!("{}: unknown host {}", c.name, c.first_host))
            })?;
            decider.set_threads(&c.name, c.threads);
            ctrs.push(Ctr {
                name: c.name.clone(),
                kind: c.kind,
                threads: c.threads,
                memory: c.memory_bytes as f64,
                start: c.start_s,
                end: c.start_s + c.duration_s,
                host,
                frozen_from: 0.0,
                frozen_until: 0.0,
                pending: None,
                moves: 0,
                active: false,
            });
        }
        ctrs.sort_by(|a, b| a.start.cmp(&b.start).then(a.name.cmp(&b.name)));
        let end = ctrs.iter().map(|c| c.end).max().unwrap_or(0);
        let out = match out_dir {
            Some(d) => {
                std::fs::create_dir_all(d).map_err(|source| SimError::Io {
                    path: d.to_path_buf(),
                    source,
                })?;
                Some(Writers {
                    hosts: CsvWriter::create_in(d)?,
                    containers: CsvWriter::create_in(d)?,
                    migrations: CsvWriter::create_in(d)?,
                    decisions: CsvWriter::create_in(d)?,
                })
            }
            None => None,
        };
        let specs = cfg
            .hosts_cores
            .iter()
            .zip(&cfg.hosts_memory_bytes)
            .map(|(&cores, &mem)| HostSpec {
                cores,
                memory_bytes: mem,
                disk_ops_capacity: cfg.disk_ops_capacity,
            })
            .collect();
        Ok(Sim {
            decider,
            hosts: scenario.hosts.clone(),
            specs,
            load1: vec![0.0; n],
            ctrs,
            next_arrival: 0,
            on_host: vec![Vec::new(); n],
            end,
            t: 0,
            out,
            totals: Totals::default(),
            scratch: Scratch::default(),
            loads: Vec::new(),
            usage: Vec::new(),
            host_row: HostRow::default(),
            ctr_row: ContainerRow::default(),
            cfg,
        })
    }

    /// Runs to the end; flushes the files.
    pub fn run(mut self) -> Result<Totals, SimError> {
        while !self.done() {
            self.step()?;
        }
        self.finish()
    }

    pub fn done(&self) -> bool {
        self.t >= self.end
    }

    pub fn time(&self) -> u64 {
        self.t
    }

    /// Flushes the files and returns the totals.
    pub fn finish(mut self) -> Result<Totals, SimError> {
        if let Some(w) = self.out.as_mut() {
            w.hosts.flush()?;
            w.containers.flush()?;
            w.migrations.flush()?;
            w.decisions.flush()?;
        }
        Ok(self.totals)
    }

    /// One tick, and the decision due at its end if any.
    pub fn step(&mut self) -> Result<(), SimError> {
        self.advance()?;
        let now = self.t as f64;
        if self.decider.due(now) {
            let (view, plans) = self.decider.decide(now);
            self.execute(&view, plans)?;
        }
        Ok(())
    }

    /// The view the next decision would see now.
    pub fn view(&self) -> ClusterView {
        self.decider.view(self.t as f64)
    }

    /// The tick without the decision (the bench times both).
    pub fn advance(&mut self) -> Result<(), SimError> {
        let t = self.t;
        let now = t as f64;
        while self.next_arrival < self.ctrs.len() && self.ctrs[self.next_arrival].start <= t {
            let i = self.next_arrival;
            self.next_arrival += 1;
            let c = &mut self.ctrs[i];
            c.active = true;
            self.on_host[c.host].push(i);
            if let Some(w) = self.out.as_mut() {
                w.migrations.write(&MigrationRow {
                    time: now,
                    container: c.name.clone(),
                    from: String::new(),
                    to: self.hosts[c.host].clone(),
                    event: MigrationEvent::Added,
                    count: 0,
                    frozen_seconds: None,
                })?;
            }
        }
        let sample = now + 1.0;
        let in_window = self.decider.wants_samples_at(sample);
        let to_csv = (t + 1).is_multiple_of(self.cfg.sample_every_s) && self.out.is_some();
        let decay = (-1.0f64 / 60.0).exp();
        for h in 0..self.hosts.len() {
            self.loads.clear();
            for &i in &self.on_host[h] {
                let c = &self.ctrs[i];
                let frozen = (c.frozen_until.min(sample) - c.frozen_from.max(now)).max(0.0);
                self.loads.push(Load {
                    kind: c.kind,
                    threads: c.threads as f64,
                    memory_bytes: c.memory,
                    run: 1.0 - frozen,
                });
            }
            let ht = model::tick(
                &self.specs[h],
                &self.loads,
                &mut self.scratch,
                &mut self.usage,
            );
            self.load1[h] = self.load1[h] * decay + ht.active_threads * (1.0 - decay);
            if !(in_window || to_csv) {
                self.totals.ops += self.usage.iter().map(|u| u.ops).sum::<f64>();
                continue;
            }
            let r = &mut self.host_row;
            r.time = sample;
            r.host.clone_from(&self.hosts[h]);
            r.cpu_user_ratio = ht.cpu_user_ratio;
            r.cpu_system_ratio = ht.cpu_system_ratio;
            r.cpu_iowait_ratio = ht.cpu_iowait_ratio;
            r.load1 = self.load1[h];
            r.memory_used_bytes = ht.memory_used_bytes as u64;
            r.major_faults_per_second = ht.major_faults;
            r.disk_ops_per_second = ht.disk_ops;
            r.disk_busy_ratio = ht.disk_busy_ratio;
            r.cores = Some(self.specs[h].cores);
            r.runnable_tasks = Some(ht.runnable_threads);
            if in_window {
                self.decider.push_host(&self.host_row);
            }
            if to_csv {
                if let Some(w) = self.out.as_mut() {
                    w.hosts.write(&self.host_row)?;
                }
            }
            for (k, &i) in self.on_host[h].iter().enumerate() {
                let c = &self.ctrs[i];
                let u = self.usage[k];
                self.totals.ops += u.ops;
                if self.loads[k].run <= 0.0 {
                    continue; // frozen the whole tick: the monitor sees it nowhere
                }
                let r = &mut self.ctr_row;
                r.time = sample;
                r.host.clone_from(&self.hosts[h]);
                r.container.clone_from(&c.name);
                r.cpu_usage_cores = u.cpu_cores;
                r.memory_bytes = u.resident_bytes as u64;
                r.major_faults_per_second = u.major_faults;
                r.io_read_ops_per_second = u.disk_ops * 0.5;
                r.io_write_ops_per_second = u.disk_ops * 0.5;
                r.pids = c.threads + 1; // the workers and the reporting main thread
                r.ops_per_second = Some(u.ops);
                if r.kind.as_deref() != Some(c.kind.as_str()) {
                    r.kind = Some(c.kind.as_str().to_string());
                }
                if in_window {
                    self.decider.push_container(&self.ctr_row);
                }
                if to_csv {
                    if let Some(w) = self.out.as_mut() {
                        w.containers.write(&self.ctr_row)?;
                    }
                }
            }
        }
        self.t += 1;
        self.totals.ticks += 1;
        // completions and departures at the end of the tick
        for h in 0..self.hosts.len() {
            let mut k = 0;
            while k < self.on_host[h].len() {
                let i = self.on_host[h][k];
                let c = &mut self.ctrs[i];
                if let Some((from, frozen)) = c.pending {
                    if c.frozen_until <= sample || c.end <= self.t {
                        c.pending = None;
                        let ev = MigrationRow {
                            time: c.frozen_until,
                            container: c.name.clone(),
                            from: self.hosts[from].clone(),
                            to: self.hosts[c.host].clone(),
                            event: MigrationEvent::Moved,
                            count: c.moves,
                            frozen_seconds: Some(frozen),
                        };
                        self.decider.record(&ev);
                        if let Some(w) = self.out.as_mut() {
                            w.migrations.write(&ev)?;
                        }
                    }
                }
                if c.end <= self.t {
                    c.active = false;
                    if let Some(w) = self.out.as_mut() {
                        w.migrations.write(&MigrationRow {
                            time: self.t as f64,
                            container: c.name.clone(),
                            from: self.hosts[h].clone(),
                            to: String::new(),
                            event: MigrationEvent::Removed,
                            count: c.moves,
                            frozen_seconds: None,
                        })?;
                    }
                    self.decider.record(&MigrationRow {
                        time: self.t as f64,
                        container: c.name.clone(),
                        from: String::new(),
                        to: String::new(),
                        event: MigrationEvent::Removed,
                        count: 0,
                        frozen_seconds: None,
                    });
                    self.on_host[h].swap_remove(k);
                } else {
                    k += 1;
                }
            }
            // keep host order stable for deterministic output
            let ctrs = &self.ctrs;
            self.on_host[h].sort_unstable_by(|&a, &b| ctrs[a].name.cmp(&ctrs[b].name));
        }
        Ok(())
    }

    /// Checks and carries out `plans` decided on `view`; writes decisions.csv.
    fn execute(&mut self, view: &ClusterView, plans: Vec<Plan>) -> Result<(), SimError> {
        let now = self.t as f64;
        self.totals.decisions += 1;
        let mut seen: Vec<String> = Vec::new();
        for p in plans {
            let outcome = self.apply(&p, now, &seen);
            if outcome == "ok" {
                seen.push(p.container.clone());
            }
            if let Some(w) = self.out.as_mut() {
                w.decisions.write(&DecisionRow {
                    time: view.time,
                    policy: self.decider.policy_name().to_string(),
                    container: p.container,
                    from: p.from,
                    to: p.to,
                    reason: p.reason,
                    outcome,
                })?;
            }
        }
        Ok(())
    }

    fn apply(&mut self, p: &Plan, now: f64, seen: &[String]) -> String {
        let Some(to) = self.hosts.iter().position(|h| *h == p.to) else {
            return format!("refused: unknown host {}", p.to);
        };
        let Some(from) = self.hosts.iter().position(|h| *h == p.from) else {
            return format!("refused: unknown host {}", p.from);
        };
        if from == to {
            return "refused: same host".into();
        }
        let Some(k) = self.on_host[from]
            .iter()
            .position(|&i| self.ctrs[i].name == p.container)
        else {
            return format!("refused: {} does not run on {}", p.container, p.from);
        };
        let i = self.on_host[from][k];
        if self.ctrs[i].pending.is_some() || seen.contains(&p.container) {
            return "refused: already moving".into();
        }
        self.on_host[from].remove(k);
        let pos = self.on_host[to]
            .binary_search_by(|&j| self.ctrs[j].name.cmp(&self.ctrs[i].name))
            .unwrap_or_else(|e| e);
        self.on_host[to].insert(pos, i);
        let frozen =
            self.cfg.frozen_base_s + self.cfg.frozen_per_mib_s * self.ctrs[i].memory / 1048576.0;
        let c = &mut self.ctrs[i];
        c.host = to;
        c.frozen_from = now;
        c.frozen_until = now + frozen;
        c.pending = Some((from, frozen));
        c.moves += 1;
        self.decider.started(p, now);
        self.totals.migrations += 1;
        self.totals.frozen_s += frozen;
        "ok".into()
    }
}

/// Writes `run.json` (what was simulated, for the report) into `dir`.
pub fn write_run_info(
    dir: &Path,
    policy: &str,
    scenario: &Scenario,
    scenario_path: Option<&Path>,
    cfg: &SimConfig,
) -> Result<(), SimError> {
    let info = serde_json::json!({
        "policy": policy,
        "source": "sim",
        "scenario": scenario_path.map(|p| p.display().to_string()),
        "scenario_seed": scenario.seed,
        "scenario_kind": scenario.kind.as_str(),
        "containers": scenario.containers.len(),
        "hosts": scenario.hosts,
        "hosts_cores": cfg.hosts_cores,
        "window_s": cfg.placement.window_s,
        "period_s": cfg.placement.period_s,
        "delay_s": cfg.placement.delay_s,
        "sample_every_s": cfg.sample_every_s,
    });
    let path = dir.join("run.json");
    let text = serde_json::to_string_pretty(&info).unwrap_or_default() + "\n";
    std::fs::write(&path, text).map_err(|source| SimError::Io { path, source })
}

/// Simulates `scenario` under the policy called `policy` into `dir`: the
/// CSV files, `run.json`. Returns the totals.
pub fn simulate(
    scenario: &Scenario,
    scenario_path: Option<&Path>,
    cfg: &SimConfig,
    policy: &str,
    dir: &Path,
) -> Result<Totals, SimError> {
    let p = crate::policy::build(policy, &cfg.placement)?;
    let sim = Sim::new(scenario, cfg.clone(), p, Some(dir))?;
    let totals = sim.run()?;
    write_run_info(dir, policy, scenario, scenario_path, cfg)?;
    Ok(totals)
}
