//! `herd stats`: what each container consumes, as Podman's `stats` shows
//! it (CPU %, MEM USAGE / LIMIT, MEM %, NET IO, BLOCK IO, PIDS), from the
//! samples the agents' monitors already take (read through `Subscribe`;
//! the limits through `List`). No sampling of its own.
//!
//! `--no-stream` prints once every reachable node has sent a sample (or
//! after 10 s with what came) and exits; else the table is redrawn on every
//! sample. CPU % is of one core (two busy threads read 200 %, as Podman);
//! the limit is the container's `--memory`, else its host's memory.

use std::collections::{BTreeMap, HashMap};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use anyhow::{bail, Result};
use clap::Args;
use herd_wire::monitor::{ContainerSample, MonitorMsg};
use herd_wire::{Request, Response};
use serde::Serialize;

use crate::context::GlobalArgs;
use crate::monitor::{subscribe_all, Feed};
use crate::ui::human_bytes;

#[derive(Args, Debug)]
pub struct StatsArgs {
    /// Print once and exit.
    #[arg(long)]
    pub no_stream: bool,
    /// JSON: an array of rows (keys in docs/json.md); streaming, one array
    /// a line per sample.
    #[arg(long)]
    pub json: bool,
    /// Only these containers (default: all running ones).
    pub names: Vec<String>,
}

/// One row, in base units.
#[derive(Debug, Serialize)]
pub struct StatsRow {
    pub name: String,
    pub node: String,
    pub cpu_percent: f64,
    pub mem_usage_bytes: u64,
    pub mem_limit_bytes: u64,
    pub mem_percent: f64,
    pub net_rx_bytes: u64,
    pub net_tx_bytes: u64,
    pub block_read_bytes: u64,
    pub block_write_bytes: u64,
    pub pids: u64,
    /// When the agent took the sample (ns since 1970).
    pub time_ns: u64,
}

pub async fn run(g: &GlobalArgs, a: &StatsArgs) -> Result<i32> {
    let cluster = g.load_cluster()?;
    let n_nodes = cluster.nodes.len();
    // The containers' --memory, from the agents' lists.
    let mut limits: HashMap<(String, String), u64> = HashMap::new();
    let mut c = g.client()?;
    for n in c.node_names() {
        if let Ok(Response::Containers(v)) = c.call(&n, Request::List).await {
            for i in v {
                if let Some(m) = i.memory_bytes {
                    limits.insert((i.node.clone(), i.name.clone()), m);
                }
            }
        }
    }
    let marks = Arc::new(Mutex::new(HashMap::new()));
    let mut rx = subscribe_all(&cluster, false, marks)?;
    let mut latest: BTreeMap<String, (u64, Vec<ContainerSample>)> = BTreeMap::new();
    let mut down: BTreeMap<String, String> = BTreeMap::new();
    let t0 = Instant::now();
    loop {
        let f = match tokio::time::timeout(Duration::from_secs(1), rx.recv()).await {
            Ok(Some(f)) => Some(f),
            Ok(None) => break,
            Err(_) => None, // a tick: --no-stream gives up waiting after 10 s
        };
        match f {
            Some(Feed::Msg(node, MonitorMsg::Sample(s))) => {
                down.remove(&node);
                let total = s.host.as_ref().map_or(0, |h| h.memory_total_bytes);
                let total = match latest.get(&node) {
                    Some((t, _)) if total == 0 => *t,
                    _ => total,
                };
                latest.insert(node, (total, s.containers));
            }
            Some(Feed::Disconnected(node, why)) => {
                latest.remove(&node);
                down.insert(node, why);
            }
            Some(_) => continue,
            None if !a.no_stream => continue,
            None => {}
        }
        let rows = rows_of(&latest, &limits, &a.names);
        let all_in = latest.len() + down.len() >= n_nodes;
        if a.no_stream {
            if !all_in && t0.elapsed() < Duration::from_secs(10) {
                continue;
            }
            for n in &a.names {
                if !rows.iter().any(|r| &r.name == n) {
                    bail!("no such running container (or no sample of it yet): {n}");
                }
            }
            print_rows(&rows, a.json, true)?;
            for (node, why) in &down {
                eprintln!("herd: warning: {node}: {why}");
            }
            return Ok(if down.is_empty() && all_in {
                0
            } else {
                crate::exit::HERD_ERROR
            });
        }
        if !a.json {
            print!("\x1b[2J\x1b[H");
        }
        print_rows(&rows, a.json, false)?;
    }
    Ok(0)
}

fn rows_of(
    latest: &BTreeMap<String, (u64, Vec<ContainerSample>)>,
    limits: &HashMap<(String, String), u64>,
    names: &[String],
) -> Vec<StatsRow> {
    let mut rows: Vec<StatsRow> = latest
        .iter()
        .flat_map(|(node, (total, cs))| cs.iter().map(move |c| (node, *total, c)))
        .filter(|(_, _, c)| names.is_empty() || names.contains(&c.container))
        .map(|(node, total, c)| {
            let limit = limits
                .get(&(node.clone(), c.container.clone()))
                .copied()
                .unwrap_or(total);
            StatsRow {
                name: c.container.clone(),
                node: node.clone(),
                cpu_percent: c.cpu_usage_cores * 100.0,
                mem_usage_bytes: c.memory_bytes,
                mem_limit_bytes: limit,
                mem_percent: if limit > 0 {
                    c.memory_bytes as f64 * 100.0 / limit as f64
                } else {
                    0.0
                },
                net_rx_bytes: c.counters.net_rx_bytes,
                net_tx_bytes: c.counters.net_tx_bytes,
                block_read_bytes: c.counters.fs_read_bytes,
                block_write_bytes: c.counters.fs_write_bytes,
                pids: c.pids,
                time_ns: c.time_ns,
            }
        })
        .collect();
    rows.sort_by(|x, y| x.name.cmp(&y.name));
    rows
}

fn print_rows(rows: &[StatsRow], json: bool, pretty: bool) -> Result<()> {
    if json {
        println!(
            "{}",
            if pretty {
                serde_json::to_string_pretty(rows)?
            } else {
                serde_json::to_string(rows)?
            }
        );
        return Ok(());
    }
    println!(
        "{:<16} {:<6} {:>8} {:>23} {:>7} {:>23} {:>23} {:>5}",
        "NAME", "NODE", "CPU %", "MEM USAGE / LIMIT", "MEM %", "NET IO", "BLOCK IO", "PIDS"
    );
    let pair = |a: u64, b: u64| format!("{} / {}", human_bytes(a), human_bytes(b));
    for r in rows {
        println!(
            "{:<16} {:<6} {:>7.2}% {:>23} {:>6.2}% {:>23} {:>23} {:>5}",
            r.name,
            r.node,
            r.cpu_percent,
            pair(r.mem_usage_bytes, r.mem_limit_bytes),
            r.mem_percent,
            pair(r.net_rx_bytes, r.net_tx_bytes),
            pair(r.block_read_bytes, r.block_write_bytes),
            r.pids
        );
    }
    Ok(())
}
