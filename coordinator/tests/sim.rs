//! The simulator end to end: determinism, the CSV files a run leaves, and
//! the direction of the policies' gains on a seeded scenario.

use std::path::Path;

use herd_coordinator::csv::{
    self, ContainerRow, DecisionRow, HostRow, MigrationEvent, MigrationRow,
};
use herd_coordinator::report;
use herd_coordinator::scenario::{generate, GenParams, ScenarioKind};
use herd_coordinator::sim::{simulate, SimConfig};

fn small(seed: u64, kind: ScenarioKind) -> herd_coordinator::scenario::Scenario {
    generate(&GenParams {
        seed,
        kind,
        containers: 60,
        hosts: 4,
        length_s: 6000,
        ..Default::default()
    })
    .unwrap()
}

fn bytes(dir: &Path, f: &str) -> Vec<u8> {
    std::fs::read(dir.join(f)).unwrap()
}

#[test]
fn same_scenario_and_policy_give_the_same_files() {
    let tmp = tempfile::tempdir().unwrap();
    let s = small(3, ScenarioKind::Random);
    let cfg = SimConfig::for_hosts(4);
    for policy in ["cpu-greedy-threads", "oltp-disk"] {
        let a = tmp.path().join(format!("{policy}-a"));
        let b = tmp.path().join(format!("{policy}-b"));
        simulate(&s, None, &cfg, policy, &a).unwrap();
        simulate(&s, None, &cfg, policy, &b).unwrap();
        for f in [
            "hosts.csv",
            "containers.csv",
            "migrations.csv",
            "decisions.csv",
        ] {
            assert!(bytes(&a, f) == bytes(&b, f), "{policy}: {f} differs");
        }
    }
}

#[test]
fn a_run_leaves_monitor_csvs_that_read_back() {
    let tmp = tempfile::tempdir().unwrap();
    let s = small(5, ScenarioKind::Staircase);
    let dir = tmp.path().join("run");
    let totals = simulate(&s, None, &SimConfig::for_hosts(4), "oracle", &dir).unwrap();
    let hosts: Vec<HostRow> = csv::read_in(&dir).unwrap();
    let ctrs: Vec<ContainerRow> = csv::read_in(&dir).unwrap();
    let migs: Vec<MigrationRow> = csv::read_in(&dir).unwrap();
    let decs: Vec<DecisionRow> = csv::read_in(&dir).unwrap();
    let header = String::from_utf8(bytes(&dir, "containers.csv")).unwrap();
    assert!(header.starts_with("time,host,container,cpu_usage_cores,memory_bytes,major_faults_per_second,io_read_ops_per_second,io_write_ops_per_second,pids,ops_per_second,kind\n"));
    assert_eq!(hosts.iter().filter(|h| h.time == 5.0).count(), 4);
    assert!(ctrs
        .iter()
        .all(|c| c.kind.is_some() && c.ops_per_second.is_some()));
    // every container is added once and removed once; moves match the totals
    let added = migs
        .iter()
        .filter(|m| m.event == MigrationEvent::Added)
        .count();
    let removed = migs
        .iter()
        .filter(|m| m.event == MigrationEvent::Removed)
        .count();
    let moved = migs
        .iter()
        .filter(|m| m.event == MigrationEvent::Moved)
        .count();
    assert_eq!((added, removed), (60, 60));
    assert_eq!(moved as u32, totals.migrations);
    assert!(moved > 0, "the oracle moved nothing");
    assert_eq!(decs.iter().filter(|d| d.outcome == "ok").count(), moved);
    assert!(decs.iter().all(|d| d.policy == "oracle"));
    // a moved container's later samples are on its new host
    let m = migs
        .iter()
        .find(|m| m.event == MigrationEvent::Moved)
        .unwrap();
    let after = ctrs
        .iter()
        .find(|c| c.container == m.container && c.time > m.time + 1.0);
    if let Some(c) = after {
        let moved_again = migs.iter().any(|x| {
            x.container == m.container
                && x.event == MigrationEvent::Moved
                && x.time > m.time
                && x.time < c.time
        });
        if !moved_again {
            assert_eq!(c.host, m.to);
        }
    }
    let run = report::load_run(&dir).unwrap();
    assert_eq!(run.policy, "oracle");
    assert_eq!(run.migrations, moved);
}

#[test]
fn policies_beat_control_and_the_oracle_beats_cpu_greedy() {
    let tmp = tempfile::tempdir().unwrap();
    let s = generate(&GenParams {
        seed: 11,
        kind: ScenarioKind::Random,
        containers: 120,
        hosts: 4,
        length_s: 10800,
        ..Default::default()
    })
    .unwrap();
    let cfg = SimConfig::for_hosts(4);
    let mut runs = Vec::new();
    for p in ["none", "cpu-greedy", "oracle"] {
        let d = tmp.path().join(p);
        simulate(&s, None, &cfg, p, &d).unwrap();
        runs.push(report::load_run(&d).unwrap());
    }
    let (none, greedy, oracle) = (&runs[0], &runs[1], &runs[2]);
    assert_eq!(none.migrations, 0);
    assert!(
        oracle.avg_ops > none.avg_ops * 1.03,
        "{} vs {}",
        oracle.avg_ops,
        none.avg_ops
    );
    assert!(
        oracle.avg_ops > greedy.avg_ops,
        "{} vs {}",
        oracle.avg_ops,
        greedy.avg_ops
    );
    assert!(oracle.avg_host_cpu > none.avg_host_cpu);
}
