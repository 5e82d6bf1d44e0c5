//! `herd scenario gen`, `herd sim` and `herd report` as a user runs them (no
//! root, no lab: the simulator only).

mod common;

use common::{herd, herd_ok as ok, path_arg as p};

#[test]
fn scenario_gen_is_byte_for_byte_reproducible() {
    let tmp = tempfile::tempdir().unwrap();
    let (a, b, c) = (
        tmp.path().join("a.csv"),
        tmp.path().join("b.csv"),
        tmp.path().join("c.csv"),
    );
    for (f, seed) in [(&a, "9"), (&b, "9"), (&c, "10")] {
        ok(&[
            "scenario",
            "gen",
            "--seed",
            seed,
            "--kind",
            "staircase",
            "--containers",
            "50",
            "--length",
            "5000",
            "--out",
            p(f),
        ]);
    }
    let (ta, tb, tc) = (
        std::fs::read(&a).unwrap(),
        std::fs::read(&b).unwrap(),
        std::fs::read(&c).unwrap(),
    );
    assert_eq!(ta, tb);
    assert_ne!(ta, tc);
    assert_eq!(String::from_utf8(ta).unwrap().lines().count(), 52);
}

#[test]
fn sim_runs_policies_into_subdirs_with_a_combined_report() {
    let tmp = tempfile::tempdir().unwrap();
    let scen = tmp.path().join("s.csv");
    ok(&[
        "scenario",
        "gen",
        "--seed",
        "4",
        "--containers",
        "40",
        "--length",
        "4000",
        "--out",
        p(&scen),
    ]);
    let out = tmp.path().join("runs");
    let table = ok(&[
        "sim",
        p(&scen),
        "--policy",
        "none,cpu-greedy,oracle",
        "--hosts-cores",
        "4,4,2,2",
        "--out",
        p(&out),
    ]);
    assert!(table.contains("| cpu-greedy |"), "{table}");
    for pol in ["none", "cpu-greedy", "oracle"] {
        for f in [
            "hosts.csv",
            "containers.csv",
            "migrations.csv",
            "decisions.csv",
            "run.json",
        ] {
            assert!(out.join(pol).join(f).is_file(), "{pol}/{f}");
        }
        assert!(out.join(format!("{pol}-host-cpu.svg")).is_file());
    }
    let md = std::fs::read_to_string(out.join("report.md")).unwrap();
    assert!(md.contains("share of oracle's gain") && md.contains("ops.svg"));
    // herd report over the same directories gives the same table
    let again = ok(&[
        "report",
        p(&out.join("none")),
        p(&out.join("cpu-greedy")),
        p(&out.join("oracle")),
        "--out",
        p(&tmp.path().join("rep")),
    ]);
    let rows = |s: &str| -> Vec<String> {
        s.lines()
            .filter(|l| l.starts_with("| "))
            .map(str::to_string)
            .collect()
    };
    assert_eq!(rows(&again), rows(&table));
}

#[test]
fn bad_input_is_refused_with_a_clear_error() {
    let tmp = tempfile::tempdir().unwrap();
    let scen = tmp.path().join("s.csv");
    ok(&[
        "scenario",
        "gen",
        "--containers",
        "10",
        "--length",
        "3000",
        "--out",
        p(&scen),
    ]);
    let out = tmp.path().join("o");
    let cases: &[(&[&str], &str)] = &[
        (&["--policy", "teleport"], "unknown policy \"teleport\""),
        (
            &["--hosts-cores", "4,4"],
            "--hosts-cores gives 2 hosts, the scenario has 4",
        ),
        (&["--window", "500"], "window 500 s"),
    ];
    for (extra, want) in cases {
        let mut args = vec!["sim", p(&scen), "--out", p(&out)];
        args.extend_from_slice(extra);
        let o = herd(&args);
        let err = String::from_utf8_lossy(&o.stderr);
        assert!(
            !o.status.success() && err.contains(want),
            "{extra:?}: {err}"
        );
    }
    let o = herd(&["scenario", "gen", "--kind", "spiral", "--out", p(&scen)]);
    assert!(String::from_utf8_lossy(&o.stderr).contains("unknown scenario kind \"spiral\""));
    // the existing scenario is untouched by the refused generation
    assert!(ok(&["sim", p(&scen), "--policy", "none", "--out", p(&out)]).contains("| none |"));
    let bad = tmp.path().join("bad.csv");
    std::fs::write(&bad, "not a scenario\n").unwrap();
    let o = herd(&["sim", p(&bad), "--out", p(&out)]);
    assert!(String::from_utf8_lossy(&o.stderr).contains("not a scenario file"));
}
