//! `herd bench sim`: the simulator at scale.
//!
//! ```text
//! herd bench sim [--hosts 10000] [--containers 100000]
//! ```
//!
//! `herd bench sim` builds a cluster of `--hosts` hosts and `--containers`
//! containers (all running), fills a 30 s decision window with 30 ticks, and
//! times one tick (the baseline: the simulator stepping without deciding),
//! building the view from the window, and each policy's decision. It prints
//! the tick, view and decision times, the step-with-decision total and its
//! ratio to the baseline tick.

use std::time::Instant;

use anyhow::{bail, Result};
use clap::Args;
use herd_coordinator::policy;
use herd_coordinator::scenario::{Rng, Scenario, ScenarioContainer, ScenarioKind, WorkloadKind};
use herd_coordinator::sim::{Sim, SimConfig};

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
