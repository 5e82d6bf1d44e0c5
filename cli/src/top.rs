//! `herd top`: a live table of hosts and containers, redrawn on every sample
//! (the agents' subscribe streams, without logs). `--once` prints one table
//! as soon as every reachable node has sent a sample, and exits; `--json`
//! prints that snapshot as JSON.

use std::collections::{BTreeMap, HashMap};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use anyhow::Result;
use herd_wire::monitor::{MonitorMsg, Sample};

use crate::cluster::Cluster;
use crate::monitor::{subscribe_all, Feed};

/// How `herd top` shows what it sees.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Show {
    Live,
    Once,
    Json,
}

pub async fn run(cluster: Cluster, how: Show) -> Result<()> {
    let marks = Arc::new(Mutex::new(HashMap::new()));
    let mut rx = subscribe_all(&cluster, false, marks)?;
    let mut latest: BTreeMap<String, Sample> = BTreeMap::new();
    let mut down: BTreeMap<String, String> = BTreeMap::new();
    let t0 = Instant::now();
    let mut last_draw = Instant::now() - Duration::from_secs(1);
    while let Some(f) = rx.recv().await {
        match f {
            Feed::Msg(node, MonitorMsg::Sample(s)) => {
                down.remove(&node);
                latest.insert(node, *s);
            }
            Feed::Msg(..) | Feed::Connected(_) => continue,
            Feed::Disconnected(node, why) => {
                latest.remove(&node);
                down.insert(node, why);
            }
        }
        let all_in = latest.len() + down.len() >= cluster.nodes.len();
        if how != Show::Live {
            if all_in || t0.elapsed() > Duration::from_secs(10) {
                match how {
                    Show::Json => println!(
                        "{}",
                        serde_json::to_string_pretty(&snapshot(&latest, &down))?
                    ),
                    _ => print!("{}", table(&latest, &down)),
                }
                return Ok(());
            }
            continue;
        }
        if last_draw.elapsed() >= Duration::from_millis(250) {
            // Clear the screen and home the cursor.
            print!("\x1b[2J\x1b[H{}", table(&latest, &down));
            last_draw = Instant::now();
        }
    }
    Ok(())
}

fn mib(b: u64) -> String {
    format!("{:.1}", b as f64 / (1u64 << 20) as f64)
}

/// The table's snapshot as `top --json` prints it: the table's columns in
/// base units (ratios, bytes, per second), keys as the monitor names them.
pub fn snapshot(
    latest: &BTreeMap<String, Sample>,
    down: &BTreeMap<String, String>,
) -> serde_json::Value {
    let hosts: Vec<_> = latest
        .iter()
        .filter_map(|(node, s)| Some((node, s.host.as_ref()?)))
        .map(|(node, h)| {
            serde_json::json!({
                "node": node,
                "time_ns": h.time_ns,
                "cores": h.cores,
                "cpu_user_ratio": h.cpu_user_ratio,
                "cpu_system_ratio": h.cpu_system_ratio,
                "cpu_iowait_ratio": h.cpu_iowait_ratio,
                "load1": h.load1,
                "memory_used_bytes": h.memory_used_bytes,
                "memory_total_bytes": h.memory_total_bytes,
                "disk_ops_per_second": h.disk_ops_per_second,
                "disk_busy_ratio": h.disk_busy_ratio,
                "net_rx_bytes_per_second": h.net_rx_bytes_per_second,
                "net_tx_bytes_per_second": h.net_tx_bytes_per_second,
            })
        })
        .collect();
    let mut rows: Vec<_> = latest.values().flat_map(|s| s.containers.iter()).collect();
    rows.sort_by(|a, b| a.container.cmp(&b.container));
    let containers: Vec<_> = rows
        .iter()
        .map(|c| {
            serde_json::json!({
                "name": c.container,
                "node": c.host,
                "image": c.image,
                "time_ns": c.time_ns,
                "cpu_usage_cores": c.cpu_usage_cores,
                "memory_bytes": c.memory_bytes,
                "io_read_ops_per_second": c.io_read_ops_per_second,
                "io_write_ops_per_second": c.io_write_ops_per_second,
                "pids": c.pids,
                "ops_per_second": c.ops_per_second,
            })
        })
        .collect();
    let unreachable: Vec<_> = down
        .iter()
        .map(|(node, why)| serde_json::json!({"node": node, "error": why}))
        .collect();
    serde_json::json!({"hosts": hosts, "containers": containers, "unreachable": unreachable})
}

/// The table, as text.
pub fn table(latest: &BTreeMap<String, Sample>, down: &BTreeMap<String, String>) -> String {
    let mut o = String::new();
    o.push_str(&format!(
        "{:<8} {:>6} {:>6} {:>6} {:>6} {:>10} {:>9} {:>6} {:>11} {:>11}\n",
        "HOST",
        "USER%",
        "SYS%",
        "IOWT%",
        "LOAD1",
        "MEM_MIB",
        "DISK_OPS",
        "BUSY%",
        "NET_RX_B/S",
        "NET_TX_B/S"
    ));
    for (node, s) in latest {
        let Some(h) = &s.host else { continue };
        o.push_str(&format!(
            "{:<8} {:>6.1} {:>6.1} {:>6.1} {:>6.2} {:>10} {:>9.1} {:>6.1} {:>11.0} {:>11.0}\n",
            node,
            h.cpu_user_ratio * 100.0,
            h.cpu_system_ratio * 100.0,
            h.cpu_iowait_ratio * 100.0,
            h.load1,
            mib(h.memory_used_bytes),
            h.disk_ops_per_second,
            h.disk_busy_ratio * 100.0,
            h.net_rx_bytes_per_second,
            h.net_tx_bytes_per_second
        ));
    }
    for (node, why) in down {
        o.push_str(&format!("{node:<8} unreachable: {why}\n"));
    }
    o.push('\n');
    o.push_str(&format!(
        "{:<20} {:<8} {:>6} {:>9} {:>8} {:>8} {:>5} {:>9}\n",
        "CONTAINER", "HOST", "CORES", "MEM_MIB", "IO_R/S", "IO_W/S", "PIDS", "OPS/S"
    ));
    let mut rows: Vec<_> = latest.values().flat_map(|s| s.containers.iter()).collect();
    rows.sort_by(|a, b| a.container.cmp(&b.container));
    for c in rows {
        o.push_str(&format!(
            "{:<20} {:<8} {:>6.2} {:>9} {:>8.1} {:>8.1} {:>5} {:>9}\n",
            c.container,
            c.host,
            c.cpu_usage_cores,
            mib(c.memory_bytes),
            c.io_read_ops_per_second,
            c.io_write_ops_per_second,
            c.pids,
            c.ops_per_second
                .map(|v| format!("{v:.1}"))
                .unwrap_or_else(|| "-".into())
        ));
    }
    o
}
