//! Live placement on a real lab: `herd scenario run` and `herd coordinator`
//! with real herd-work containers, real CRIU migrations, and hosts that
//! each have their own CPU capacity (`herd lab up --cpus`).

mod common;

use std::collections::HashMap;
use std::path::Path;
use std::process::Output;

use common::{import_busybox_with_work, restart_with_fault, text, wait_for, Lab};
use herd_coordinator::csv::{read_in, DecisionRow};

fn decisions(dir: &Path) -> Vec<DecisionRow> {
    read_in(dir).unwrap_or_else(|e| panic!("decisions.csv in {}: {e}", dir.display()))
}

/// Two single-threaded CPU workloads that both start on n1.
const PACKED: &str = "\
# herd-scenario v1 seed=0 kind=staircase hosts=n1,n2 length_s=40
name,start_s,kind,threads,memory_bytes,duration_s,first_host
s1,0,cpu,1,16777216,40,n1
s2,0,cpu,1,16777216,40,n1
";

/// A fast schedule: decide every 10 s on the last 8 s, first after 10 s.
const FAST: &[&str] = &[
    "--window",
    "8s",
    "--period",
    "10s",
    "--delay",
    "10",
    "--min-samples",
    "5",
];

/// Rows of a CSV file as column -> value maps.
fn rows(path: &Path) -> Vec<HashMap<String, String>> {
    let t = std::fs::read_to_string(path).unwrap_or_else(|e| panic!("{}: {e}", path.display()));
    let mut lines = t.lines();
    let header: Vec<String> = lines
        .next()
        .expect("header")
        .split(',')
        .map(str::to_string)
        .collect();
    lines
        .map(|l| {
            // decisions.csv quotes its outcome; nothing read here has commas
            // before the quoted column.
            header
                .iter()
                .cloned()
                .zip(l.split(',').map(str::to_string))
                .collect()
        })
        .collect()
}

fn mean_ops(dir: &Path) -> f64 {
    let v: Vec<f64> = rows(&dir.join("containers.csv"))
        .iter()
        .filter_map(|r| r.get("ops_per_second")?.parse().ok())
        .collect();
    assert!(
        v.len() > 20,
        "too few ops samples in {}: {}",
        dir.display(),
        v.len()
    );
    v.iter().sum::<f64>() / v.len() as f64
}

/// `herd scenario run FILE --policy P --out OUT EXTRA...`.
fn scenario_run(lab: &Lab, file: &Path, policy: &str, out: &Path, extra: &[&str]) -> Output {
    let mut a = vec![
        "scenario",
        "run",
        file.to_str().unwrap(),
        "--policy",
        policy,
        "--out",
        out.to_str().unwrap(),
    ];
    a.extend_from_slice(extra);
    lab.herd(&a)
}

fn run_scenario(lab: &Lab, file: &Path, policy: &str, out: &Path) -> String {
    let o = scenario_run(lab, file, policy, out, FAST);
    assert!(
        o.status.success(),
        "scenario run {policy} failed:\n{}",
        text(&o)
    );
    String::from_utf8_lossy(&o.stdout).into_owned()
}

/// A `scenario run` that must fail, saying `why`.
fn refused(lab: &Lab, file: &Path, out: &Path, extra: &[&str], why: &str) {
    let o = scenario_run(lab, file, "none", out, extra);
    assert!(!o.status.success(), "{}", text(&o));
    assert!(text(&o).contains(why), "{}", text(&o));
}

#[test]
fn cpu_greedy_threads_gets_more_ops_than_control_on_the_lab() {
    let t = "cpu_greedy_threads_gets_more_ops_than_control_on_the_lab";
    let Some(lab) = Lab::up_with(t, "hcoa", 2, &["--cpus", "0.5"]) else {
        return;
    };
    import_busybox_with_work(&lab);
    let tmp = tempfile::tempdir().unwrap();
    let file = tmp.path().join("packed.csv");
    std::fs::write(&file, PACKED).unwrap();
    let (none, cgt) = (tmp.path().join("none"), tmp.path().join("cgt"));
    run_scenario(&lab, &file, "none", &none);
    let table = run_scenario(&lab, &file, "cpu-greedy-threads", &cgt);
    assert!(table.contains("cpu-greedy-threads"), "{table}");

    // Control: nothing moved, both stayed on n1 and shared its half core.
    assert!(decisions(&none).is_empty());
    let ctl = rows(&none.join("containers.csv"));
    assert!(ctl.iter().all(|r| r["host"] == "n1" && r["kind"] == "cpu"));
    // The node's quota holds: together they never get much over 0.5 cores.
    let mut per_time: HashMap<String, f64> = HashMap::new();
    for r in &ctl {
        *per_time.entry(r["time"].clone()).or_default() +=
            r["cpu_usage_cores"].parse::<f64>().unwrap();
    }
    let busiest = per_time.values().cloned().fold(0.0, f64::max);
    assert!(
        busiest < 0.6,
        "n1 has --cpus 0.5 but its containers used {busiest} cores"
    );
    let n1 = rows(&none.join("hosts.csv"));
    assert!(n1.iter().any(|r| r["host"] == "n1" && r["cores"] == "0.5"));

    // The policy moved one of them to n2, through a real migration.
    let d = decisions(&cgt);
    assert!(!d.is_empty(), "no decision was made");
    assert_eq!((d[0].from.as_str(), d[0].to.as_str()), ("n1", "n2"));
    assert_eq!(d[0].policy, "cpu-greedy-threads");
    assert!(d[0].outcome.starts_with("ok: "), "{d:?}");
    let moved = rows(&cgt.join("migrations.csv"));
    assert!(
        moved
            .iter()
            .any(|r| r["event"] == "moved" && r["from"] == "n1" && r["to"] == "n2"),
        "{moved:?}"
    );
    let c = rows(&cgt.join("containers.csv"));
    assert!(c.iter().any(|r| r["host"] == "n2"), "no sample from n2");

    let (ops_none, ops_cgt) = (mean_ops(&none), mean_ops(&cgt));
    eprintln!("mean ops/s: control {ops_none:.0}, cpu-greedy-threads {ops_cgt:.0}");
    assert!(
        ops_cgt > ops_none * 1.2,
        "cpu-greedy-threads {ops_cgt:.0} ops/s vs control {ops_none:.0}"
    );
    for dir in [&none, &cgt] {
        assert!(dir.join("report.md").exists());
        assert!(dir.join("run.json").exists());
    }
    // The runs removed their containers.
    assert_eq!(lab.ps_json().as_array().map(Vec::len), Some(0));
}

#[test]
fn a_failed_move_is_recorded_and_the_container_runs_in_one_place() {
    let t = "a_failed_move_is_recorded_and_the_container_runs_in_one_place";
    let Some(lab) = Lab::up_with(t, "hcob", 2, &["--cpus", "0.5"]) else {
        return;
    };
    import_busybox_with_work(&lab);
    // n2 refuses every restore: each move the policy makes rolls back.
    restart_with_fault(&lab, "n2", "fail-restore");
    for c in ["w1", "w2"] {
        lab.ok(&[
            "run",
            "--node",
            "n1",
            "--name",
            c,
            "busybox",
            "--",
            "herd-work",
            "cpu",
        ]);
    }
    let tmp = tempfile::tempdir().unwrap();
    let out = tmp.path().join("coord");
    let mut a = vec![
        "coordinator",
        "--policy",
        "cpu-greedy-threads",
        "--out",
        out.to_str().unwrap(),
        "--duration",
        "24s",
    ];
    a.extend_from_slice(FAST);
    let o = lab.herd(&a);
    assert!(o.status.success(), "{}", text(&o));
    let d = decisions(&out);
    assert!(!d.is_empty(), "no move was tried");
    for r in &d {
        assert!(
            r.outcome.starts_with("failed: ") && r.outcome.contains("injected fault"),
            "{r:?}"
        );
    }
    // The cooldown applies to a failed move too: each container was tried once.
    let mut tried: Vec<&str> = d.iter().map(|r| r.container.as_str()).collect();
    tried.sort();
    tried.dedup();
    assert_eq!(tried.len(), d.len(), "{d:?}");
    // Both still run, on n1 only, and keep counting.
    let ps = lab.ps_json();
    let list = ps.as_array().unwrap();
    assert_eq!(list.len(), 2, "{ps}");
    for c in list {
        assert_eq!(c["node"], "n1", "{c}");
        assert_eq!(c["status"], "running", "{c}");
    }
    let before = lab.ok(&["logs", "w1"]).lines().count();
    wait_for(10, || {
        (lab.ok(&["logs", "w1"]).lines().count() > before).then_some(())
    })
    .expect("w1 stopped logging after the failed moves");
}

#[test]
fn bad_placement_input_is_refused_before_anything_runs() {
    let herd = |args: &[&str]| {
        std::process::Command::new(env!("CARGO_BIN_EXE_herd"))
            .args(args)
            .env("HERD_LAB_ROOT", "/nonexistent-herd-labs")
            .env_remove("HERD_CLUSTER")
            .output()
            .unwrap()
    };
    let o = herd(&["lab", "up", "--nodes", "2", "--cpus", "1,1,1"]);
    assert!(!o.status.success());
    assert!(text(&o).contains("3 values for 2 nodes"), "{}", text(&o));
    let o = herd(&["lab", "up", "--nodes", "2", "--cpus", "4096"]);
    assert!(!o.status.success());
    assert!(text(&o).contains("--cpus 4096"), "{}", text(&o));

    let Some(lab) = Lab::up(
        "bad_placement_input_is_refused_before_anything_runs",
        "hcoc",
        2,
    ) else {
        return;
    };
    let tmp = tempfile::tempdir().unwrap();
    let out = tmp.path().join("x");
    let o = lab.herd(&[
        "coordinator",
        "--policy",
        "teleport",
        "--out",
        out.to_str().unwrap(),
    ]);
    assert!(!o.status.success());
    assert!(
        text(&o).contains("unknown policy \"teleport\""),
        "{}",
        text(&o)
    );
    assert!(!out.exists(), "a refused run made {}", out.display());

    let file = tmp.path().join("three.csv");
    std::fs::write(
        &file,
        PACKED
            .replace("hosts=n1,n2", "hosts=n1,n2,n3")
            .replace("40,n1\n", "40,n3\n"),
    )
    .unwrap();
    refused(&lab, &file, &out, &[], "host n3 is not a node");
    // A schedule that the time scale makes too short is refused too.
    std::fs::write(&file, PACKED).unwrap();
    refused(
        &lab,
        &file,
        &out,
        &["--time-scale", "0.001"],
        "need window >= 1",
    );
    // A container that cannot start ends the run at once, and the run
    // removes what it started.
    let y = tmp.path().join("y");
    refused(
        &lab,
        &file,
        &y,
        &["--image", "no-such-image"],
        "start s1 on n1",
    );
    assert_eq!(lab.ps_json().as_array().map(Vec::len), Some(0));
}
