//! Forecasting: dataset builder on a hand-written fixture, clear errors on bad
//! CSVs, and the real training path of both learners (hist, gbdt) on small
//! synthetic runs (deterministic for a seed and for any thread count, better
//! than the mean on held-out runs, early stopping, save/load, a version 1
//! model file still loading, importance, and the forecast policy with a
//! trained model).

use std::path::{Path, PathBuf};

use gbdt::decision_tree::VALUE_TYPE_UNKNOWN;
use herd_coordinator::forecast::dataset::{self, Dataset, Row, FEATURE_NAMES};
use herd_coordinator::forecast::metrics::Errors;
use herd_coordinator::forecast::model::{Learner, Model, TrainParams};
use herd_coordinator::forecast::policy::{self, ContainerState, HostState, PolicyConfig};
use herd_coordinator::forecast::synth::{write_run, SynthParams};
use herd_coordinator::forecast::ForecastError;

fn fixture() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join("tests/fixtures/tiny")
}

fn feature(r: &Row, name: &str) -> f32 {
    r.features[FEATURE_NAMES.iter().position(|f| *f == name).unwrap()]
}

#[test]
fn fixture_is_resampled_and_joined() {
    let ds = dataset::load_dirs(&[fixture()], 5.0).unwrap();
    let names: Vec<&str> = ds.rows.iter().map(|r| r.container.as_str()).collect();
    // sidecar has no ops (a neighbour, not a target); cpu-9's host n3 has no row.
    assert_eq!(names, ["cpu-1", "io-a", "mem-x"]);
    let cpu = &ds.rows[0];
    assert_eq!(cpu.kind, "cpu");
    assert_eq!(cpu.time, 1000.0);
    assert_eq!(cpu.ops, 150.0, "mean of 100 and 200 in [1000, 1005)");
    assert_eq!(feature(cpu, "c_cpu_usage_cores"), 1.25);
    assert_eq!(feature(cpu, "c_memory_mib"), 10.0);
    assert!((feature(cpu, "h_cpu_user_ratio") - 0.6).abs() < 1e-6);
    assert_eq!(feature(cpu, "h_load1"), 2.5);
    assert_eq!(feature(cpu, "h_memory_used_gib"), 1.0);
    assert_eq!(feature(cpu, "n_containers"), 2.0, "io-a and sidecar");
    assert!((feature(cpu, "n_cpu_usage_cores") - 0.7).abs() < 1e-6);
    assert_eq!(feature(cpu, "n_io_ops_per_second"), 60.0);
    let io = &ds.rows[1];
    assert_eq!(io.kind, "io");
    assert!((feature(io, "n_cpu_usage_cores") - 1.75).abs() < 1e-6);
    let mem = &ds.rows[2];
    assert_eq!(
        (mem.kind.as_str(), mem.time, mem.ops),
        ("mem", 1005.0, 30.0)
    );
    assert_eq!(
        feature(mem, "h_cpu_iowait_ratio"),
        VALUE_TYPE_UNKNOWN,
        "an empty cell is a missing value"
    );
    assert_eq!(feature(mem, "n_containers"), 0.0);
    assert_eq!(
        feature(mem, "h_cores"),
        VALUE_TYPE_UNKNOWN,
        "no `cores` column: unknown"
    );
    let notes = ds.notes.join("\n");
    assert!(notes.contains("no `kind` column"), "{notes}");
    assert!(notes.contains("1 container windows dropped"), "{notes}");
}

fn copy_fixture(dir: &Path) {
    for f in ["hosts.csv", "containers.csv"] {
        std::fs::copy(fixture().join(f), dir.join(f)).unwrap();
    }
}

fn edit(path: &Path, from: &str, to: &str) {
    let s = std::fs::read_to_string(path).unwrap();
    assert!(s.contains(from));
    std::fs::write(path, s.replacen(from, to, 1)).unwrap();
}

#[test]
fn bad_or_missing_columns_are_clear_errors() {
    let t = tempfile::tempdir().unwrap();
    let d = t.path();

    copy_fixture(d);
    edit(&d.join("hosts.csv"), ",disk_busy_ratio", ",disk_busy");
    let e = dataset::load_run(d, 5.0).unwrap_err();
    assert!(matches!(e, ForecastError::MissingColumn { .. }), "{e}");
    let msg = e.to_string();
    assert!(
        msg.contains("hosts.csv") && msg.contains("missing column `disk_busy_ratio`"),
        "{msg}"
    );

    copy_fixture(d);
    edit(
        &d.join("containers.csv"),
        "1003,n1,cpu-1,1.5",
        "1003,n1,cpu-1,lots",
    );
    let msg = dataset::load_run(d, 5.0).unwrap_err().to_string();
    assert!(
        msg.contains("containers.csv:3:")
            && msg.contains("`cpu_usage_cores`")
            && msg.contains("`lots`"),
        "{msg}"
    );

    copy_fixture(d);
    edit(&d.join("containers.csv"), "1003,n1,", ",n1,");
    let msg = dataset::load_run(d, 5.0).unwrap_err().to_string();
    assert!(msg.contains(":3: column `time` is empty"), "{msg}");

    copy_fixture(d);
    edit(&d.join("containers.csv"), ",ops_per_second", ",ops");
    let msg = dataset::load_run(d, 5.0).unwrap_err().to_string();
    assert!(msg.contains("missing column `ops_per_second`"), "{msg}");

    copy_fixture(d);
    std::fs::remove_file(d.join("containers.csv")).unwrap();
    let msg = dataset::load_run(d, 5.0).unwrap_err().to_string();
    assert!(msg.contains("containers.csv"), "{msg}");

    let empty = tempfile::tempdir().unwrap();
    let e = dataset::load_dirs(&[empty.path().to_path_buf()], 5.0).unwrap_err();
    assert!(matches!(e, ForecastError::NoRuns(_)), "{e}");
    assert!(dataset::load_run(&fixture(), 0.0).is_err(), "zero window");
}

#[test]
fn kind_column_wins_over_the_name() {
    let t = tempfile::tempdir().unwrap();
    copy_fixture(t.path());
    let c = t.path().join("containers.csv");
    let s = std::fs::read_to_string(&c).unwrap();
    let mut out = String::new();
    for (i, l) in s.lines().enumerate() {
        out += l;
        out += if i == 0 { ",kind\n" } else { ",oltp\n" };
    }
    std::fs::write(&c, out).unwrap();
    let ds = dataset::load_run(t.path(), 5.0).unwrap();
    assert!(ds.rows.iter().all(|r| r.kind == "oltp"));
    assert!(ds.notes[0].contains("from the `kind` column"));
}

#[test]
fn scenario_file_gives_kinds_the_rows_lack() {
    let t = tempfile::tempdir().unwrap();
    let scen = t.path().join("scenario.csv");
    std::fs::write(
        &scen,
        "# herd-scenario v1 seed=1 kind=random hosts=n1,n2 length_s=100\n\
         name,start_s,kind,threads,memory_bytes,duration_s,first_host\n\
         cpu-1,0,oltp,2,1000,50,n1\n\
         io-a,0,mem,1,1000,50,n1\n",
    )
    .unwrap();
    let kinds = dataset::scenario_kinds(std::slice::from_ref(&scen)).unwrap();
    assert_eq!(kinds["cpu-1"], "oltp");
    let ds = dataset::load_dirs_with(&[fixture()], 5.0, &kinds).unwrap();
    let k: Vec<(&str, &str)> = ds
        .rows
        .iter()
        .map(|r| (r.container.as_str(), r.kind.as_str()))
        .collect();
    // mem-x is not in the scenario: its name decides.
    assert_eq!(k, [("cpu-1", "oltp"), ("io-a", "mem"), ("mem-x", "mem")]);
    let notes = ds.notes.join("\n");
    assert!(
        notes.contains("the scenario file (2)") && notes.contains("the container name ("),
        "{notes}"
    );

    std::fs::write(&scen, "name,start_s,workload\nx,0,cpu\n").unwrap();
    let msg = dataset::scenario_kinds(&[scen]).unwrap_err().to_string();
    assert!(msg.contains("missing column `kind`"), "{msg}");
}

/// Synthetic runs `seeds` under `dir`, loaded as one dataset.
fn synth(dir: &Path, seeds: &[u64]) -> Dataset {
    synth_with(dir, seeds, 10)
}

fn synth_with(dir: &Path, seeds: &[u64], containers: usize) -> Dataset {
    let dirs: Vec<PathBuf> = seeds
        .iter()
        .map(|s| {
            let d = dir.join(format!("run-{s}"));
            write_run(
                &d,
                &SynthParams {
                    hosts: 3,
                    containers,
                    seconds: 200,
                    migrations: 3,
                    seed: *s,
                    ..Default::default()
                },
            )
            .unwrap();
            d
        })
        .collect();
    dataset::load_dirs(&dirs, 5.0).unwrap()
}

fn small() -> TrainParams {
    TrainParams {
        max_trees: 120,
        max_depth: 4,
        eta: 0.2,
        patience: 15,
        ..Default::default()
    }
}

fn predict_all(m: &Model, ds: &Dataset) -> Vec<f64> {
    m.predict_rows(&ds.rows.iter().collect::<Vec<_>>())
}

fn small_with(learner: Learner) -> TrainParams {
    TrainParams { learner, ..small() }
}

#[test]
fn training_is_deterministic_and_round_trips() {
    let t = tempfile::tempdir().unwrap();
    let train = synth(&t.path().join("train"), &[1, 2, 3, 4]);
    let test = synth(&t.path().join("test"), &[9]);
    for learner in [Learner::Hist, Learner::Gbdt] {
        let p = TrainParams {
            subsample: 0.7,
            ..small_with(learner)
        };
        let a = Model::train(&train, &p).unwrap();
        let b = Model::train(&train, &p).unwrap();
        assert_eq!(a.learner(), learner);
        assert_eq!(a.trees(), b.trees());
        assert_eq!(a.summary.valid_curve, b.summary.valid_curve);
        assert_eq!(predict_all(&a, &test), predict_all(&b, &test));
        assert_eq!(a.summary.importance, b.summary.importance);
        // Another seed draws other rows.
        let c = Model::train(
            &train,
            &TrainParams {
                seed: 2,
                ..p.clone()
            },
        )
        .unwrap();
        assert_ne!(
            predict_all(&a, &test),
            predict_all(&c, &test),
            "{learner:?}"
        );

        let path = t.path().join("model.json");
        a.save(&path).unwrap();
        let loaded = Model::load(&path).unwrap();
        assert_eq!(loaded.learner(), learner);
        assert_eq!(loaded.trees(), a.trees());
        assert_eq!(predict_all(&loaded, &test), predict_all(&a, &test));
        assert_eq!(loaded.summary, a.summary);
    }
}

#[test]
fn hist_trees_are_the_same_on_any_thread_count() {
    let t = tempfile::tempdir().unwrap();
    let train = synth(&t.path().join("train"), &[5, 6, 7]);
    let test = synth(&t.path().join("test"), &[8]);
    let p = |threads| TrainParams {
        threads,
        subsample: 0.8,
        ..small_with(Learner::Hist)
    };
    let one = Model::train(&train, &p(1)).unwrap();
    for threads in [2, 3, 0] {
        let m = Model::train(&train, &p(threads)).unwrap();
        assert_eq!(
            m.summary.valid_curve, one.summary.valid_curve,
            "{threads} threads"
        );
        assert_eq!(
            predict_all(&m, &test),
            predict_all(&one, &test),
            "{threads} threads"
        );
    }
    // The model records its settings, threads included; the trees are the same.
    let a = t.path().join("a.json");
    Model::train(&train, &p(3)).unwrap().save(&a).unwrap();
    assert_eq!(Model::load(&a).unwrap().params.threads, 3);
}

#[test]
fn a_version_1_model_file_still_loads() {
    // Saved by the gbdt-only build (format version 1, no `learner`), with
    // its held-out MAE on the tiny fixture as that build computed it.
    let path = Path::new(env!("CARGO_MANIFEST_DIR")).join("tests/fixtures/model-v1.json");
    let m = Model::load(&path).unwrap();
    assert_eq!((m.version, m.learner(), m.trees()), (1, Learner::Gbdt, 4));
    let ds = dataset::load_dirs(&[fixture()], m.window_s).unwrap();
    let actual: Vec<f64> = ds.rows.iter().map(|r| r.ops).collect();
    let e = Errors::of(&actual, &predict_all(&m, &ds));
    assert!((e.mae - 396.0185128564652).abs() < 1e-9, "{e:?}");
    // A file of a newer version is refused, clearly.
    let t = tempfile::tempdir().unwrap();
    let mut v: serde_json::Value =
        serde_json::from_str(&std::fs::read_to_string(&path).unwrap()).unwrap();
    v["version"] = 99.into();
    let newer = t.path().join("v99.json");
    std::fs::write(&newer, v.to_string()).unwrap();
    let msg = Model::load(&newer).err().unwrap().to_string();
    assert!(msg.contains("version Some(Number(99))"), "{msg}");
}

#[test]
fn a_model_made_before_the_derived_features_still_loads() {
    // A hist model saved by the 22-feature build (before h_cores_per_container
    // and h_cores_per_pid), with the MAE that build's `herd forecast eval`
    // printed on the fixture: it predicts the same from the longer rows.
    let path = Path::new(env!("CARGO_MANIFEST_DIR")).join("tests/fixtures/model-v2-22.json");
    let m = Model::load(&path).unwrap();
    assert_eq!((m.version, m.learner()), (2, Learner::Hist));
    assert_eq!(m.feature_names.len(), 22);
    assert!(dataset::FEATURE_NAMES.len() > 22);
    let ds = dataset::load_dirs(&[fixture()], m.window_s).unwrap();
    let actual: Vec<f64> = ds.rows.iter().map(|r| r.ops).collect();
    let e = Errors::of(&actual, &predict_all(&m, &ds));
    assert!((e.mae - 51.46866734221519).abs() < 1e-9, "{e:?}");
    // Feature names that are not a prefix of this build's are refused.
    let t = tempfile::tempdir().unwrap();
    let mut v: serde_json::Value =
        serde_json::from_str(&std::fs::read_to_string(&path).unwrap()).unwrap();
    v["feature_names"][3] = "c_something_else".into();
    let other = t.path().join("other.json");
    std::fs::write(&other, v.to_string()).unwrap();
    let msg = Model::load(&other).err().unwrap().to_string();
    assert!(msg.contains("built for features"), "{msg}");
}

#[test]
fn beats_the_mean_on_held_out_runs_and_stops_early() {
    let t = tempfile::tempdir().unwrap();
    let train = synth(&t.path().join("train"), &[11, 12, 13, 14]);
    let test = synth(&t.path().join("test"), &[21, 22]);
    for learner in [Learner::Hist, Learner::Gbdt] {
        let m = Model::train(&train, &small_with(learner)).unwrap();
        let s = &m.summary;
        assert_eq!(s.valid_runs.len(), 1, "one of four runs held out");
        assert!(!s.train_runs.contains(&s.valid_runs[0]));

        // The kept trees are the best round on the held-out loss.
        let best = s.valid_curve.iter().cloned().fold(f64::INFINITY, f64::min);
        assert_eq!(s.valid_curve[s.trees_kept - 1], best);
        assert!(s.trees_kept <= s.trees_trained);
        if s.trees_trained < 120 {
            assert_eq!(s.trees_trained - s.trees_kept, 15, "stopped after patience");
        }

        let actual: Vec<f64> = test.rows.iter().map(|r| r.ops).collect();
        let model = Errors::of(&actual, &predict_all(&m, &test));
        let mean = train.rows.iter().map(|r| r.ops).sum::<f64>() / train.rows.len() as f64;
        let baseline = Errors::of(&actual, &vec![mean; actual.len()]);
        assert!(
            model.mae < 0.5 * baseline.mae && model.mape < 0.5 * baseline.mape,
            "{learner:?}: model {model:?} vs mean {baseline:?}"
        );
    }
}

#[test]
fn binning_and_exclusion() {
    let t = tempfile::tempdir().unwrap();
    let train = synth(&t.path().join("train"), &[31, 32, 33]);
    let test = synth(&t.path().join("test"), &[34]);
    for learner in [Learner::Hist, Learner::Gbdt] {
        let p = TrainParams {
            bins: 16,
            exclude: vec!["c_cpu_usage_cores".into()],
            ..small_with(learner)
        };
        let m = Model::train(&train, &p).unwrap();
        let path = t.path().join("m.json");
        m.save(&path).unwrap();
        let loaded = Model::load(&path).unwrap();
        assert_eq!(predict_all(&loaded, &test), predict_all(&m, &test));

        let imp = &m.summary.importance;
        assert_eq!(imp.len(), FEATURE_NAMES.len());
        assert!(imp
            .windows(2)
            .all(|w| w[0].permutation_mae_increase >= w[1].permutation_mae_increase));
        let cpu = imp
            .iter()
            .find(|i| i.feature == "c_cpu_usage_cores")
            .unwrap();
        assert_eq!((cpu.splits, cpu.permutation_mae_increase), (0, 0.0));
        assert!(imp[0].permutation_mae_increase > 0.0 && imp[0].splits > 0);
    }

    let e = Model::train(
        &train,
        &TrainParams {
            exclude: vec!["nope".into()],
            ..small()
        },
    )
    .err()
    .unwrap();
    assert!(e.to_string().contains("no feature `nope`"), "{e}");
    for (p, what) in [
        (
            TrainParams {
                bins: 300,
                ..small()
            },
            "bins must be at most 256",
        ),
        (
            TrainParams {
                lambda: -1.0,
                ..small()
            },
            "lambda",
        ),
    ] {
        let e = Model::train(&train, &p).err().unwrap();
        assert!(e.to_string().contains(what), "{e}");
    }
}

#[test]
fn a_damaged_model_file_is_an_error_not_a_panic() {
    let t = tempfile::tempdir().unwrap();
    let train = synth(t.path(), &[41, 42]);
    let m = Model::train(
        &train,
        &TrainParams {
            max_trees: 5,
            ..small_with(Learner::Gbdt)
        },
    )
    .unwrap();
    let path = t.path().join("m.json");
    m.save(&path).unwrap();
    let good = std::fs::read_to_string(&path).unwrap();

    // The hist learner's trees are checked too.
    let h = Model::train(
        &train,
        &TrainParams {
            max_trees: 5,
            ..small()
        },
    )
    .unwrap();
    let hp = t.path().join("h.json");
    h.save(&hp).unwrap();
    let hgood: serde_json::Value =
        serde_json::from_str(&std::fs::read_to_string(&hp).unwrap()).unwrap();
    for (field, value, want) in [
        ("feature", 99, "feature index 99 out of range"),
        ("left", 0, "left child 0 out of range"),
    ] {
        let mut v = hgood.clone();
        let tree = &mut v["hist"]["trees"][0];
        let split = tree["feature"]
            .as_array()
            .unwrap()
            .iter()
            .position(|f| f.as_i64() != Some(-1))
            .unwrap();
        tree[field][split] = value.into();
        std::fs::write(&hp, v.to_string()).unwrap();
        let msg = Model::load(&hp).err().unwrap().to_string();
        assert!(msg.contains("tree 0") && msg.contains(want), "{msg}");
    }
    let mut v = hgood.clone();
    v["hist"] = serde_json::Value::Null;
    std::fs::write(&hp, v.to_string()).unwrap();
    let msg = Model::load(&hp).err().unwrap().to_string();
    assert!(msg.contains("learner hist without its trees"), "{msg}");

    let mut v: serde_json::Value = serde_json::from_str(&good).unwrap();
    let nodes = v["trees"][0]["tree"]["tree"].as_array_mut().unwrap();
    let split = nodes
        .iter_mut()
        .find(|n| n["value"]["is_leaf"] == false)
        .unwrap();
    split["value"]["feature_index"] = 99.into();
    std::fs::write(&path, v.to_string()).unwrap();
    let msg = Model::load(&path).err().unwrap().to_string();
    assert!(
        msg.contains("tree 0") && msg.contains("out of range"),
        "{msg}"
    );

    std::fs::write(&path, &good[..good.len() / 2]).unwrap();
    assert!(Model::load(&path)
        .err()
        .unwrap()
        .to_string()
        .contains("not JSON"));
    std::fs::write(&path, r#"{"format":"something-else"}"#).unwrap();
    assert!(Model::load(&path).is_err());
    assert!(Model::load(&t.path().join("absent.json")).is_err());
}

#[test]
fn forecast_policy_moves_a_starved_container_to_an_idle_host() {
    let t = tempfile::tempdir().unwrap();
    // Crowded hosts, as in the snapshot below.
    let train = synth_with(t.path(), &[51, 52, 53, 54, 55, 56], 20);
    let p = TrainParams {
        exclude: policy::placement_excluded(),
        ..small()
    };
    let m = Model::train(&train, &p).unwrap();
    assert!(policy::placement_ready(&m));

    // Four 4-thread CPU containers share a 4-core host (each gets a core's worth);
    // the other 4-core host is idle.
    let cm = |cpu: f64| dataset::ContainerMetrics {
        kind: "cpu".into(),
        values: [cpu, 32.0 * 1048576.0, 0.0, 0.0, 0.0, 5.0],
    };
    let containers: Vec<ContainerState> = (0..4)
        .map(|i| ContainerState {
            name: format!("cpu-{i}"),
            host: "busy".into(),
            metrics: cm(1.0),
            ops: 1000.0,
            samples: 30,
            last_moved: None,
        })
        .collect();
    let host = |name: &str, cpu: f64, load: f64, mem_gib: f64| HostState {
        name: name.into(),
        metrics: dataset::HostMetrics {
            values: [
                cpu,
                cpu / 8.0,
                0.0,
                load,
                mem_gib * 1073741824.0,
                0.0,
                0.0,
                0.0,
                4000.0,
                3200.0,
                4.0,
            ],
        },
    };
    let hosts = [host("busy", 0.85, 16.0, 0.4), host("idle", 0.0, 0.0, 0.25)];
    let cands = policy::score(
        &m,
        &containers[0],
        &containers,
        &hosts,
        &PolicyConfig::default(),
    );
    assert_eq!(cands.len(), 1);
    assert!(
        cands[0].predicted_ops > 2000.0 && cands[0].predicted_ops > 1.1 * cands[0].predicted_here,
        "alone on 4 cores a 4-thread CPU container runs faster: {cands:?}"
    );
    // Calibrated with the model's own held-out errors: the margin it asks
    // for is the cpu kind's held-out MAPE.
    let mut cfg = PolicyConfig::default();
    cfg.calibrate(&m);
    let cpu_err = m.summary.valid_report.as_ref().unwrap().per_kind["cpu"].mape / 100.0;
    assert_eq!(cfg.kind_error["cpu"], cpu_err);
    assert_eq!(cfg.required_ratio("cpu"), cfg.min_gain_ratio.max(cpu_err));
    let wanted = cands[0].net_ratio > cfg.required_ratio("cpu");
    let moves = policy::decide(&m, &containers, &hosts, 0.0, &cfg);
    assert_eq!(moves.len(), wanted as usize, "{moves:?} {cands:?} {cfg:?}");
    // Trusting the model fully (no error margin), the move is made.
    cfg.error_margin = 0.0;
    cfg.min_gain_ratio = 0.05;
    let moves = policy::decide(&m, &containers, &hosts, 0.0, &cfg);
    assert_eq!(
        moves.len(),
        1,
        "one move into the idle host per round: {moves:?} {cands:?} {cfg:?}"
    );
    assert_eq!(
        (moves[0].from.as_str(), moves[0].to.as_str()),
        ("busy", "idle")
    );
}
