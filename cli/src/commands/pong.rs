//! `herd pong`: hop a container across hosts and summarise the hops.

use std::time::Duration;

use anyhow::{bail, Result};
use clap::Args;

use crate::context::GlobalArgs;
use crate::migrate::{failure_json, migrate_with, report_json};
use crate::ui::percentile;

#[derive(Args, Debug)]
pub struct PongArgs {
    pub name: String,
    /// Hosts to hop across, e.g. n1,n2,n3.
    #[arg(long, value_delimiter = ',', required = true)]
    pub hosts: Vec<String>,
    /// Number of hops.
    #[arg(long, default_value_t = 10)]
    pub count: usize,
    /// How long to stay on each host: seconds or a duration (500ms, 1s, 2m30s).
    #[arg(long, default_value = "1", value_parser = crate::args::seconds)]
    pub dwell: f64,
    /// Pick the next host at random (never the current one).
    #[arg(long)]
    pub random: bool,
    #[arg(long, default_value_t = 1)]
    pub seed: u64,
    #[arg(long, default_value = "diff")]
    pub fs: herd_wire::migrate::FsMode,
    /// How memory moves: stop (stop-and-copy), stream (CRIU's page server
    /// through the agents' QUIC link), pre (rounds of pre-dumps while it
    /// runs, the same way, then a frozen dump of what changed; needs the
    /// kernel's dirty-memory tracking, refused without it), post
    /// (post-copy: it would run on the target at once and pull its pages
    /// from the source; its risk: if the source dies before the last page
    /// arrived, the container is LOST), auto (the best this pair supports
    /// for the container's size, said in the report: from 64 MiB of memory
    /// pre where dirty memory is tracked, else stream; below it stop).
    /// post is refused with the reason before anything freezes (CRIU's
    /// lazy page server fails on the hosts it was tried on).
    #[arg(long, default_value = "auto")]
    pub memory_mode: herd_wire::migrate::MemoryMode,
    #[arg(long)]
    pub json: bool,
}

pub async fn run(g: &GlobalArgs, args: &PongArgs) -> Result<i32> {
    let PongArgs {
        name,
        hosts,
        count,
        dwell,
        random,
        seed,
        fs,
        memory_mode,
        json,
    } = args;
    let (count, dwell, random, seed, fs, json) = (*count, *dwell, *random, *seed, *fs, *json);
    if hosts.len() < 2 {
        bail!("--hosts needs at least two nodes");
    }
    if !(0.0..=3600.0).contains(&dwell) {
        bail!("--dwell must be between 0 and 3600 seconds");
    }
    let mut c = g.client()?;
    for h in hosts {
        c.cluster.node(h)?;
    }
    let mut at = c.locate(name).await?;
    let mut rng = seed
        .wrapping_mul(6364136223846793005)
        .wrapping_add(1442695040888963407);
    let mut reports = Vec::new();
    let mut failures = Vec::new();
    // Every hop tried, in order, as `migrate --json` reports it.
    let mut hop_reports = Vec::new();
    for hop in 0..count {
        let candidates: Vec<&String> = hosts.iter().filter(|h| **h != at).collect();
        let next = if random {
            rng = rng
                .wrapping_mul(6364136223846793005)
                .wrapping_add(1442695040888963407);
            candidates[((rng >> 33) as usize) % candidates.len()].clone()
        } else {
            let i = hosts
                .iter()
                .position(|h| *h == at)
                .map(|i| i + 1)
                .unwrap_or(0);
            let mut n = hosts[i % hosts.len()].clone();
            if n == at {
                n = hosts[(i + 1) % hosts.len()].clone();
            }
            n
        };
        match migrate_with(&mut c, name, &next, fs, false, *memory_mode, false).await {
            Ok(r) => {
                if !json {
                    println!(
                        "hop {:>3}: {} -> {}  total {:>6.0} ms  frozen {:>6.0} ms",
                        hop + 1,
                        r.from,
                        r.to,
                        r.total_ms,
                        r.frozen_ms
                    );
                }
                at = next;
                let mut v = report_json(&r);
                v["hop"] = (hop + 1).into();
                hop_reports.push(v);
                reports.push(r);
            }
            Err(e) => {
                if !json {
                    println!("hop {:>3}: {at} -> {next}  FAILED: {e:#}", hop + 1);
                }
                failures.push(format!("{e:#}"));
                let mut v = failure_json(&e, name, Some(&at), &next);
                v["hop"] = (hop + 1).into();
                hop_reports.push(v);
                at = c.locate(name).await?;
            }
        }
        if hop + 1 < count {
            tokio::time::sleep(Duration::from_secs_f64(dwell)).await;
        }
    }
    let mut frozen: Vec<f64> = reports.iter().map(|r| r.frozen_ms).collect();
    let mut total: Vec<f64> = reports.iter().map(|r| r.total_ms).collect();
    let summary = serde_json::json!({
        "container": name,
        "hops": reports.len(),
        "failures": failures.len(),
        "frozen_ms_median": percentile(&mut frozen, 50.0),
        "frozen_ms_p95": percentile(&mut frozen, 95.0),
        "total_ms_median": percentile(&mut total, 50.0),
        "total_ms_p95": percentile(&mut total, 95.0),
        "ends_on": at,
        "errors": failures,
        "hop_reports": hop_reports,
    });
    if json {
        println!("{}", serde_json::to_string_pretty(&summary)?);
    } else {
        println!(
            "pong {name}: {} hops, {} failures; frozen median {:.0} ms p95 {:.0} ms; total median {:.0} ms p95 {:.0} ms; now on {at}",
            reports.len(),
            failures.len(),
            summary["frozen_ms_median"].as_f64().unwrap_or(0.0),
            summary["frozen_ms_p95"].as_f64().unwrap_or(0.0),
            summary["total_ms_median"].as_f64().unwrap_or(0.0),
            summary["total_ms_p95"].as_f64().unwrap_or(0.0),
        );
    }
    Ok(if failures.is_empty() {
        0
    } else {
        crate::exit::HERD_ERROR
    })
}
