//! `herd top`: a live table of hosts and containers, redrawn on every sample
//! (the agents' subscribe streams, without logs). `--once` prints one table
//! as soon as every reachable node has sent a sample, and exits.

use std::collections::{BTreeMap, HashMap};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use anyhow::Result;
use herd_wire::monitor::{MonitorMsg, Sample};

use crate::cluster::Cluster;
use crate::monitor::{subscribe_all, Feed};

pub async fn run(cluster: Cluster, once: bool) -> Result<()> {
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
        if once {
            if all_in || t0.elapsed() > Duration::from_secs(10) {
                print!("{}", table(&latest, &down));
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
