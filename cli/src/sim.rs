//! `herd sim`, `herd report` and `herd bench sim`: the simulator, reports
//! over run directories, and the simulator's scale benchmark.
//!
//! ```text
//! herd sim FILE --policy P|all|P1,P2 [--hosts-cores 4,4,2,2] --out DIR
//! herd report DIR [DIR...] [--out OUT]
//! herd bench sim [--hosts 10000] [--containers 100000]
//! ```
//!
//! One policy writes its CSVs, `run.json` and `report.md` into DIR; several
//! (`all` is every registered policy, control first) write each into
//! DIR/<policy>/ and the comparison into DIR/report.md.
//!
//! `herd bench sim` builds a cluster of `--hosts` hosts and `--containers`
//! containers (all running), fills a 30 s decision window with 30 ticks, and
//! times one tick (the baseline: the simulator stepping without deciding),
//! building the view from the window, and each policy's decision. It prints
//! the tick, view and decision times, the step-with-decision total and its
//! ratio to the baseline tick.

use std::path::{Path, PathBuf};
use std::time::Instant;

use anyhow::{bail, Context, Result};
use clap::Args;
use herd_coordinator::policy::{self, PlacementConfig};
use herd_coordinator::report;
use herd_coordinator::scenario::{Rng, Scenario, ScenarioContainer, ScenarioKind, WorkloadKind};
use herd_coordinator::sim::{simulate, Sim, SimConfig};

#[derive(Args, Debug)]
pub struct PlacementArgs {
    /// Seconds of samples each decision looks at (30, 30s, 2m ...).
    #[arg(long, default_value = "30", value_parser = seconds)]
    pub window: f64,
    /// Seconds between decisions.
    #[arg(long, default_value = "150", value_parser = seconds)]
    pub period: f64,
    /// Seconds before the first decision.
    #[arg(long, default_value = "150", value_parser = seconds)]
    pub delay: f64,
    /// Seconds a container stays put after a move.
    #[arg(long, default_value = "450", value_parser = seconds)]
    pub cooldown: f64,
    /// Samples a container needs in the window before it may move.
    #[arg(long, default_value_t = 10)]
    pub min_samples: u32,
    /// Moves per decision, at most.
    #[arg(long, default_value_t = 2)]
    pub max_moves: usize,
    /// Policy-specific setting KEY=VALUE (repeatable).
    #[arg(long = "policy-opt")]
    pub policy_opt: Vec<String>,
}

/// Seconds as `30`, `30s`, `2.5m`, `1h` or `500ms`.
fn seconds(s: &str) -> Result<f64, String> {
    crate::monitor::parse_duration(s)
        .map(|d| d.as_secs_f64())
        .map_err(|e| e.to_string())
}

impl PlacementArgs {
    pub fn config(&self) -> Result<PlacementConfig> {
        let mut c = PlacementConfig {
            window_s: self.window,
            period_s: self.period,
            delay_s: self.delay,
            max_moves: self.max_moves,
            ..Default::default()
        };
        c.anti_bounce.cooldown_s = self.cooldown;
        c.anti_bounce.min_samples = self.min_samples;
        for o in &self.policy_opt {
            let (k, v) = o
                .split_once('=')
                .with_context(|| format!("--policy-opt {o:?}: expected KEY=VALUE"))?;
            c.options.insert(k.to_string(), v.to_string());
        }
        if self.cooldown.is_nan() || self.cooldown < 0.0 {
            bail!("--cooldown must be >= 0");
        }
        Ok(c)
    }
}

#[derive(Args, Debug)]
pub struct SimArgs {
    /// Scenario file (`herd scenario gen`).
    file: PathBuf,
    /// A policy, a comma-separated list, or `all`.
    #[arg(long, default_value = "all")]
    policy: String,
    /// Cores of each host, in the scenario's host order (default 4,4,2,2
    /// for four hosts, else 4 each).
    #[arg(long, value_delimiter = ',')]
    hosts_cores: Option<Vec<f64>>,
    /// RAM of each host in GiB (default: 1 GiB per core).
    #[arg(long, value_delimiter = ',')]
    hosts_memory_gib: Option<Vec<f64>>,
    /// Disk ops/s each host's disk serves.
    #[arg(long, default_value_t = 10_000.0)]
    disk_ops: f64,
    /// Seconds between rows of hosts.csv and containers.csv.
    #[arg(long, default_value_t = 5)]
    sample_every: u64,
    #[command(flatten)]
    placement: PlacementArgs,
    /// Output directory: the run for one policy; DIR/<policy>/ per policy
    /// and DIR/report.md for several.
    #[arg(long)]
    out: PathBuf,
}

/// `all` is every policy that can be built as configured: `forecast` only
/// with `--policy-opt model=PATH`.
fn policies(spec: &str, placement: &PlacementArgs) -> Result<Vec<String>> {
    let list: Vec<String> = if spec == "all" {
        let cfg = placement.config()?;
        policy::names()
            .into_iter()
            .filter(|n| *n != "forecast" || cfg.options.contains_key("model"))
            .map(str::to_string)
            .collect()
    } else {
        spec.split(',').map(|s| s.trim().to_string()).collect()
    };
    let known = policy::names();
    for p in &list {
        if !known.contains(&p.as_str()) {
            bail!("unknown policy {p:?} (known: {}, or all)", known.join(", "));
        }
    }
    Ok(list)
}

pub fn run(a: &SimArgs) -> Result<i32> {
    let scenario = Scenario::read(&a.file)?;
    let list = policies(&a.policy, &a.placement)?;
    let n = scenario.hosts.len();
    let mut cfg = match &a.hosts_cores {
        Some(c) => SimConfig::with_cores(c.clone()),
        None => SimConfig::for_hosts(n),
    };
    if cfg.hosts_cores.len() != n {
        bail!(
            "--hosts-cores gives {} hosts, the scenario has {n} ({})",
            cfg.hosts_cores.len(),
            scenario.hosts.join(",")
        );
    }
    if let Some(m) = &a.hosts_memory_gib {
        if m.len() != n {
            bail!(
                "--hosts-memory-gib gives {} hosts, the scenario has {n}",
                m.len()
            );
        }
        cfg.hosts_memory_bytes = m.iter().map(|g| g * 1073741824.0).collect();
    }
    if a.disk_ops.is_nan() || a.disk_ops <= 0.0 {
        bail!("--disk-ops must be > 0");
    }
    cfg.disk_ops_capacity = a.disk_ops;
    cfg.sample_every_s = a.sample_every;
    cfg.placement = a.placement.config()?;
    let single = list.len() == 1;
    let mut runs = Vec::new();
    for p in &list {
        let dir = if single { a.out.clone() } else { a.out.join(p) };
        let t0 = Instant::now();
        let totals = simulate(&scenario, Some(&a.file), &cfg, p, &dir)
            .with_context(|| format!("policy {p}"))?;
        eprintln!(
            "{p}: {} s simulated in {:.2} s, {} decisions, {} migrations ({:.1} s frozen) -> {}",
            totals.ticks,
            t0.elapsed().as_secs_f64(),
            totals.decisions,
            totals.migrations,
            totals.frozen_s,
            dir.display()
        );
        runs.push(report::load_run(&dir)?);
    }
    let title = format!(
        "Simulated {} ({} containers, hosts {})",
        a.file.display(),
        scenario.containers.len(),
        cfg.hosts_cores
            .iter()
            .map(|c| c.to_string())
            .collect::<Vec<_>>()
            .join(",")
    );
    report::write_report(&runs, &a.out, &title)?;
    print!("{}", report::table(&runs));
    println!("report: {}", a.out.join("report.md").display());
    Ok(0)
}

#[derive(Args, Debug)]
pub struct ReportArgs {
    /// Run directories (each with hosts.csv, containers.csv, migrations.csv).
    #[arg(required = true)]
    dirs: Vec<PathBuf>,
    /// Where report.md and the plots go (default: the directory for one
    /// run, the first one's parent for several).
    #[arg(long)]
    out: Option<PathBuf>,
}

pub fn report(a: &ReportArgs) -> Result<i32> {
    let mut runs = Vec::new();
    for d in &a.dirs {
        runs.push(report::load_run(d).with_context(|| format!("reading run {}", d.display()))?);
    }
    let out = match &a.out {
        Some(o) => o.clone(),
        None if a.dirs.len() == 1 => a.dirs[0].clone(),
        None => a.dirs[0]
            .parent()
            .filter(|p| !p.as_os_str().is_empty())
            .unwrap_or(Path::new("."))
            .to_path_buf(),
    };
    report::write_report(&runs, &out, "Placement runs")?;
    print!("{}", report::table(&runs));
    println!("report: {}", out.join("report.md").display());
    Ok(0)
}

#[derive(Args, Debug)]
pub struct BenchSimArgs {
    #[arg(long, default_value_t = 10_000)]
    hosts: usize,
    #[arg(long, default_value_t = 100_000)]
    containers: usize,
    #[arg(long, default_value_t = 1)]
    seed: u64,
    /// Moves per decision, at most (default: hosts / 2, every host in a move).
    #[arg(long)]
    max_moves: Option<usize>,
}

fn big_scenario(hosts: usize, containers: usize, seed: u64) -> Scenario {
    let names: Vec<String> = (1..=hosts).map(|i| format!("n{i}")).collect();
    let mut rng = Rng::new(seed);
    let cs = (0..containers)
        .map(|i| {
            let kind = WorkloadKind::ALL[rng.range(0, 3) as usize];
            ScenarioContainer {
                name: format!("c{:07}", i + 1),
                start_s: 0,
                kind,
                threads: rng.range(1, 4) as u32,
                memory_bytes: rng.range(16, 512) << 20,
                duration_s: 3600,
                // skewed placement so there is work for the policies
                first_host: names
                    [(rng.range(0, hosts as u64 - 1) * rng.range(0, 1000) / 1000) as usize]
                    .clone(),
            }
        })
        .collect();
    Scenario {
        seed,
        kind: ScenarioKind::Random,
        hosts: names,
        length_s: 3600,
        containers: cs,
    }
}

fn ms(d: std::time::Duration) -> f64 {
    d.as_secs_f64() * 1000.0
}

pub fn bench(a: &BenchSimArgs) -> Result<i32> {
    if a.hosts < 2 || a.containers < 1 {
        bail!("--hosts must be >= 2 and --containers >= 1");
    }
    let scenario = big_scenario(a.hosts, a.containers, a.seed);
    let mut cfg = SimConfig::with_cores(
        (0..a.hosts)
            .map(|i| if i % 2 == 0 { 4.0 } else { 2.0 })
            .collect(),
    );
    cfg.placement.delay_s = 30.0;
    cfg.placement.window_s = 30.0;
    cfg.placement.max_moves = a.max_moves.unwrap_or(a.hosts / 2);
    let placement = cfg.placement.clone();
    let t0 = Instant::now();
    let mut sim = Sim::new(&scenario, cfg, policy::build("none", &placement)?, None)?;
    let setup = t0.elapsed();
    let mut ticks = Vec::new();
    for _ in 0..30 {
        let t = Instant::now();
        sim.advance()?;
        ticks.push(ms(t.elapsed()));
    }
    ticks.sort_by(|a, b| a.total_cmp(b));
    let tick = ticks[ticks.len() / 2];
    let t = Instant::now();
    let view = sim.view();
    let view_ms = ms(t.elapsed());
    println!(
        "bench sim: {} hosts, {} containers, {} in the view, up to {} moves per decision; setup {:.0} ms",
        a.hosts,
        a.containers,
        view.containers.len(),
        placement.max_moves,
        ms(setup)
    );
    println!(
        "baseline: one tick without a decision (median of 30): {tick:.1} ms (min {:.1}, max {:.1})",
        ticks[0],
        ticks[ticks.len() - 1]
    );
    println!("view from the 30 s window: {view_ms:.1} ms");
    println!(
        "{:<20} {:>10} {:>6} {:>22} {:>8}",
        "policy", "decide ms", "moves", "tick+view+decide ms", "ratio"
    );
    let mut worst: f64 = 0.0;
    for name in policy::names() {
        let p = match policy::build(name, &placement) {
            Ok(p) => p,
            Err(policy::PolicyError::Config { .. }) if name == "forecast" => {
                println!("{name:<20} (skipped: needs --policy-opt model=PATH)");
                continue;
            }
            Err(e) => return Err(e.into()),
        };
        let t = Instant::now();
        let plans = p.decide(&view);
        let d = ms(t.elapsed());
        let total = tick + view_ms + d;
        worst = worst.max(total);
        println!(
            "{:<20} {:>10.2} {:>6} {:>22.1} {:>7.2}x",
            name,
            d,
            plans.len(),
            total,
            total / tick.max(1e-9)
        );
    }
    println!(
        "slowest step with a decision: {worst:.1} ms ({})",
        if worst < 1000.0 {
            "under a second"
        } else {
            "OVER a second"
        }
    );
    Ok(0)
}
