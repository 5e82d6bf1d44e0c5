//! A disk-limited host (`herd lab up --disk-iops`) as the tests see it:
//! herd-work `io`'s rate lines and the host's own disk figures.

use super::{wait_for, Lab};

/// `name` on `node`: herd-work `io` (write 4 KiB, fsync, read back) in
/// /root, the container's upper layer on the host's disk, a rate line a
/// second.
pub fn run_io(lab: &Lab, name: &str, node: &str) {
    lab.ok(&[
        "run",
        "--node",
        node,
        "--name",
        name,
        "busybox",
        "--",
        "herd-work",
        "io",
        "--dir",
        "/root",
        "--interval-ms",
        "1000",
    ]);
}

/// The ops/s lines of a herd-work log from line `from` on, the first one
/// after `from` left out (it may straddle a move or a start).
pub fn ops_after(log: &str, from: usize) -> Vec<f64> {
    log.lines()
        .filter_map(|l| l.strip_prefix("ops="))
        .filter_map(|l| l.split_whitespace().next()?.parse().ok())
        .skip(from + 1)
        .collect()
}

pub fn mean(v: &[f64]) -> f64 {
    v.iter().sum::<f64>() / v.len().max(1) as f64
}

pub fn ops_lines(lab: &Lab, name: &str) -> usize {
    lab.ok(&["logs", name])
        .lines()
        .filter(|l| l.starts_with("ops="))
        .count()
}

/// Wait (at most `secs`) until `name` has `n` more ops lines than `from`;
/// returns their rates.
pub fn rates(lab: &Lab, name: &str, from: usize, n: usize, secs: u64) -> Vec<f64> {
    wait_for(secs, || {
        let r = ops_after(&lab.ok(&["logs", name]), from);
        (r.len() >= n).then(|| r[..n].to_vec())
    })
    .unwrap_or_else(|| {
        panic!(
            "{name}: fewer than {n} ops lines:\n{}",
            lab.ok(&["logs", name])
        )
    })
}

/// `herd monitor` for `duration`: `node`'s (disk_ops_per_second,
/// disk_busy_ratio) samples from hosts.csv, the first one left out.
pub fn host_disk(lab: &Lab, node: &str, duration: &str) -> Vec<(f64, f64)> {
    let out = lab.root.join(format!("mon-{node}"));
    let _ = std::fs::remove_dir_all(&out);
    lab.ok(&[
        "monitor",
        "--out",
        out.to_str().expect("utf-8"),
        "--duration",
        duration,
    ]);
    let hosts = std::fs::read_to_string(out.join("hosts.csv")).expect("hosts.csv");
    let head: Vec<&str> = hosts.lines().next().expect("header").split(',').collect();
    let col = |name: &str| {
        head.iter()
            .position(|c| *c == name)
            .unwrap_or_else(|| panic!("no {name} in hosts.csv"))
    };
    let (h, ops, busy) = (
        col("host"),
        col("disk_ops_per_second"),
        col("disk_busy_ratio"),
    );
    hosts
        .lines()
        .skip(1)
        .map(|l| l.split(',').collect::<Vec<_>>())
        .filter(|f| f[h] == node)
        .map(|f| {
            (
                f[ops].parse().unwrap_or(-1.0),
                f[busy].parse().unwrap_or(-1.0),
            )
        })
        .skip(1)
        .collect()
}

/// The same workload's rates on a host limited to `limit` IOPS and on an
/// unlimited one, measured together: at most about the limit on the first,
/// at least `ratio` times faster on the second. Returns their means.
pub fn assert_limited(slow: &[f64], fast: &[f64], limit: u64, ratio: f64) -> (f64, f64) {
    let (s, f) = (mean(slow), mean(fast));
    eprintln!("    limited host {s:.1} ops/s {slow:?}; unlimited host {f:.1} ops/s {fast:?}");
    assert!(s > 0.0, "no progress on the limited host: {slow:?}");
    // Each op writes and fsyncs at least one block the task submits itself.
    assert!(
        s <= limit as f64 * 1.5,
        "{s:.1} ops/s on a host limited to {limit} IOPS: {slow:?}"
    );
    assert!(
        f >= ratio * s,
        "the unlimited host is not {ratio}x faster: {f:.1} vs {s:.1} ops/s"
    );
    (s, f)
}
