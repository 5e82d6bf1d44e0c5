//! `herd sim`: run a scenario in the simulator under one or more policies.
//!
//! ```text
//! herd sim FILE --policy P|all|P1,P2 [--hosts-cores 4,4,2,2] --out DIR
//! ```
//!
//! One policy writes its CSVs, `run.json` and `report.md` into DIR; several
//! (`all` is every registered policy, control first) write each into
//! DIR/<policy>/ and the comparison into DIR/report.md.

use std::path::PathBuf;
use std::time::Instant;

use anyhow::{bail, Context, Result};
use clap::Args;
use herd_coordinator::policy;
use herd_coordinator::report;
use herd_coordinator::scenario::Scenario;
use herd_coordinator::sim::{simulate, SimConfig};

use crate::args::PlacementArgs;

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
    /// Time between rows of hosts.csv and containers.csv: seconds or a
    /// duration (5, 30s, 1m; whole seconds, rounded up).
    #[arg(long, default_value = "5", value_parser = crate::args::whole_seconds)]
    sample_every: u64,
    #[command(flatten)]
    placement: PlacementArgs,
    /// Output directory: the run for one policy; DIR/<policy>/ per policy
    /// and DIR/report.md for several.
    #[arg(long)]
    out: PathBuf,
    /// The table as JSON on stdout, with each policy's simulated seconds,
    /// decisions and wall time (docs/json.md).
    #[arg(long)]
    json: bool,
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
    let mut extra = Vec::new();
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
        extra.push(serde_json::json!({
            "simulated_s": totals.ticks,
            "decisions": totals.decisions,
            "elapsed_ms": t0.elapsed().as_secs_f64() * 1000.0,
        }));
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
    super::report::print_table(&runs, &a.out, a.json, &extra)?;
    Ok(0)
}
