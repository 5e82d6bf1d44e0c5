//! `herd forecast` end to end on synthetic runs (no root, no lab): synth,
//! train, eval (with its plot), importance, export; and a clear error on a
//! bad CSV.

mod common;

use common::{herd, herd_ok as ok, path_arg as p};

#[test]
fn train_eval_importance_export() {
    let t = tempfile::tempdir().unwrap();
    let (train, test) = (t.path().join("train"), t.path().join("test"));
    let small = ["--hosts", "3", "--containers", "8", "--seconds", "150"];
    ok(&[
        &[
            "forecast",
            "synth",
            "--out",
            p(&train),
            "--runs",
            "4",
            "--seed",
            "1",
        ][..],
        &small,
    ]
    .concat());
    ok(&[
        &[
            "forecast",
            "synth",
            "--out",
            p(&test),
            "--runs",
            "1",
            "--seed",
            "2",
        ][..],
        &small,
    ]
    .concat());

    let model = t.path().join("model.json");
    let out = ok(&[
        "forecast",
        "train",
        "--data",
        p(&train),
        "--out",
        p(&model),
        "--trees",
        "80",
        "--json",
    ]);
    let v: serde_json::Value = serde_json::from_str(&out).unwrap();
    assert_eq!(v["valid_runs"].as_array().unwrap().len(), 1);
    assert!(v["trees_kept"].as_u64().unwrap() >= 1);
    let held_out = v["valid"]["overall"]["mae"].as_f64().unwrap();
    let mean = v["valid_mean_predictor"]["overall"]["mae"]
        .as_f64()
        .unwrap();
    assert!(held_out < mean, "{held_out} vs mean predictor {mean}");

    let plot = t.path().join("eval.svg");
    let out = ok(&[
        "forecast",
        "eval",
        "--model",
        p(&model),
        "--data",
        p(&test),
        "--plot",
        p(&plot),
    ]);
    for k in ["cpu", "mem", "io", "oltp", "all", "MAPE"] {
        assert!(out.contains(k), "{k} missing from:\n{out}");
    }
    let svg = std::fs::read_to_string(&plot).unwrap();
    assert!(
        svg.starts_with("<svg") && svg.contains("predicted"),
        "not the plot"
    );

    let out = ok(&["forecast", "importance", "--model", p(&model), "--json"]);
    let imp: Vec<serde_json::Value> = serde_json::from_str(&out).unwrap();
    assert_eq!(imp.len(), 24, "one entry per feature");
    assert!(imp[0]["permutation_mae_increase"].as_f64().unwrap() > 0.0);

    let csv = t.path().join("dataset.csv");
    ok(&["forecast", "export", "--data", p(&train), "--out", p(&csv)]);
    let text = std::fs::read_to_string(&csv).unwrap();
    let header = text.lines().next().unwrap();
    assert!(header.starts_with("run,time,host,container,kind,split,c_kind,"));
    assert!(header.ends_with(",ops_per_second"));
    assert!(text.contains(",valid,") && text.contains(",train,"));
}

#[test]
fn a_bad_csv_is_a_clear_error() {
    let t = tempfile::tempdir().unwrap();
    let run = t.path().join("run");
    ok(&[
        "forecast",
        "synth",
        "--out",
        p(t.path()),
        "--runs",
        "1",
        "--seconds",
        "20",
    ]);
    std::fs::rename(t.path().join("run-00"), &run).unwrap();
    let hosts = run.join("hosts.csv");
    let s = std::fs::read_to_string(&hosts).unwrap();
    std::fs::write(&hosts, s.replacen("load1", "load", 1)).unwrap();
    let model = t.path().join("m.json");
    let o = herd(&["forecast", "train", "--data", p(&run), "--out", p(&model)]);
    assert_eq!(o.status.code(), Some(125));
    let err = String::from_utf8_lossy(&o.stderr);
    assert!(err.contains("hosts.csv: missing column `load1`"), "{err}");
    assert!(!model.exists(), "no model written");

    let o = herd(&["forecast", "eval", "--model", p(&model), "--data", p(&run)]);
    assert_eq!(o.status.code(), Some(125));
    assert!(String::from_utf8_lossy(&o.stderr).contains("m.json"));
}
