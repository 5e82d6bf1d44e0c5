//! Lab hosts with a disk capacity of their own (`herd lab up --disk-iops`):
//! the IO controller on each host's container parent (cgroup v1 blkio
//! throttling here, v2 io.max in the VM lab) for the disk under the lab's
//! state dirs.
//!
//! A container doing synchronous writes (herd-work `io`: write 4 KiB,
//! fsync, read back) runs slower on the limited host than on an unlimited
//! one, by a ratio measured in the same test, and its rate lifts when it is
//! moved to the unlimited host. The limited host's own disk figures
//! (`herd monitor`'s hosts.csv) are its containers' IO over its limit.

mod common;

use common::disk::{assert_limited, host_disk, mean, ops_lines, rates, run_io};
use common::{import_busybox_with_work, migrate_json, Lab};

const LIMIT: u64 = 30;

#[test]
fn a_disk_limited_host_runs_synchronous_writes_slower_and_a_move_lifts_them() {
    let iops = format!("{LIMIT},max");
    let Some(lab) = Lab::up_with(
        "a_disk_limited_host_runs_synchronous_writes_slower_and_a_move_lifts_them",
        "disk1",
        2,
        &["--disk-iops", &iops],
    ) else {
        return;
    };
    let cl: serde_json::Value = serde_json::from_str(
        &std::fs::read_to_string(lab.dir().join("cluster.json")).expect("cluster.json"),
    )
    .expect("cluster.json is JSON");
    assert_eq!(cl["nodes"][0]["disk_iops"], LIMIT, "{cl}");
    assert!(cl["nodes"][1].get("disk_iops").is_none(), "{cl}");
    import_busybox_with_work(&lab);
    // The same workload on both hosts at once: one ratio, one load.
    run_io(&lab, "slow", "n1");
    run_io(&lab, "fast", "n2");
    let slow = rates(&lab, "slow", 0, 5, 60);
    let fast = rates(&lab, "fast", 0, 5, 60);
    lab.ok(&["rm", "-f", "fast"]);
    let (s, _) = assert_limited(&slow, &fast, LIMIT, 3.0);

    // The host's own disk figures: its containers' IO, busy near its limit.
    let n1 = host_disk(&lab, "n1", "4s");
    eprintln!("n1 (disk ops/s, busy): {n1:?}");
    assert!(!n1.is_empty(), "no n1 samples in hosts.csv");
    assert!(
        n1.iter()
            .all(|(o, b)| *o > 0.0 && *o <= 2.0 * LIMIT as f64 + 5.0 && *b > 0.3),
        "n1's disk figures are not its containers' IO against {LIMIT} IOPS: {n1:?}"
    );

    // Moved to the unlimited host, the same process speeds up.
    let before = ops_lines(&lab, "slow");
    let r = migrate_json(&lab, "slow", "n2");
    assert_eq!(
        lab.container("slow").expect("slow in ps")["node"],
        "n2",
        "{r}"
    );
    let moved = rates(&lab, "slow", before, 5, 60);
    let m = mean(&moved);
    eprintln!("after the move to n2: {m:.1} ops/s {moved:?}");
    assert!(
        m >= 3.0 * s,
        "the move to the unlimited host did not lift it: {m:.1} vs {s:.1} ops/s"
    );
    let log = lab.ok(&["logs", "slow"]);
    assert!(!log.contains("CORRUPT"), "{log}");
}

#[test]
fn bad_disk_limits_are_refused_with_the_flag_and_the_range() {
    let herd = |args: &[&str]| {
        let out = std::process::Command::new(common::herd_bin())
            .env("HERD_LAB", "diskbad")
            .env(
                "HERD_LAB_ROOT",
                std::env::temp_dir().join("herd-test-labs-diskbad"),
            )
            .args(args)
            .output()
            .expect("run herd");
        assert!(!out.status.success(), "herd {args:?} was accepted");
        String::from_utf8_lossy(&out.stderr).into_owned()
    };
    let e = herd(&["lab", "up", "--nodes", "2", "--disk-iops", "0"]);
    assert!(e.contains("--disk-iops") && e.contains("at least 1"), "{e}");
    let e = herd(&["lab", "up", "--nodes", "2", "--disk-iops", "fast"]);
    assert!(e.contains("--disk-iops") && e.contains("or max"), "{e}");
    let e = herd(&["lab", "up", "--nodes", "3", "--disk-iops", "10,20"]);
    assert!(e.contains("--disk-iops has 2 values for 3 nodes"), "{e}");
    let e = herd(&["lab", "up", "--nodes", "2", "--disk-bps", "1k"]);
    assert!(
        e.contains("--disk-bps") && e.contains("at least 4096"),
        "{e}"
    );
    let e = herd(&["lab", "up", "--nodes", "2", "--disk-bps", "10x"]);
    assert!(e.contains("--disk-bps"), "{e}");
    // The agent refuses on its own too (a hand-started agent, no lab).
    let out = std::process::Command::new(common::agent_bin())
        .args(["--node", "x", "--disk-iops", "0"])
        .output()
        .expect("run herd-agent");
    let e = String::from_utf8_lossy(&out.stderr);
    assert!(!out.status.success() && e.contains("--disk-iops"), "{e}");
}
