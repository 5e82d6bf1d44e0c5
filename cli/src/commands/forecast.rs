//! `herd forecast ...`: build the dataset from monitor CSVs, train, evaluate
//! and inspect the ops/s model (herd-coordinator's `forecast` module).

use std::path::{Path, PathBuf};

use anyhow::{Context, Result};
use clap::{Args, Subcommand};
use herd_coordinator::forecast::dataset::{self, Dataset, Row, DEFAULT_WINDOW_S};
use herd_coordinator::forecast::metrics::Report;
use herd_coordinator::forecast::model::{
    split_runs, split_single_run, Learner, Model, TrainParams,
};
use herd_coordinator::forecast::policy::placement_training_excluded;
use herd_coordinator::forecast::{cost, plot, synth};

#[derive(Subcommand, Debug)]
pub enum ForecastCmd {
    /// Train a model on monitor CSVs; whole runs are held out for early stopping and the report.
    Train {
        #[command(flatten)]
        data: DataArgs,
        /// Where to write the model (JSON).
        #[arg(long)]
        out: PathBuf,
        #[command(flatten)]
        params: ParamArgs,
        #[arg(long)]
        json: bool,
    },
    /// MAE and MAPE of a model on runs, overall and per workload kind, and a plot.
    Eval {
        #[arg(long)]
        model: PathBuf,
        #[arg(long = "data", required = true)]
        data: Vec<PathBuf>,
        #[command(flatten)]
        scenario: ScenarioArgs,
        /// Plot of predicted vs actual ops over time (default: MODEL with .eval.svg).
        #[arg(long)]
        plot: Option<PathBuf>,
        #[arg(long)]
        json: bool,
    },
    /// Feature importance: permutation (held-out MAE increase) and split counts.
    Importance {
        #[arg(long)]
        model: PathBuf,
        /// Measure on these runs instead of the ones held out at training.
        #[arg(long = "data")]
        data: Vec<PathBuf>,
        #[command(flatten)]
        scenario: ScenarioArgs,
        #[arg(long, default_value_t = 1)]
        seed: u64,
        #[arg(long)]
        json: bool,
    },
    /// Write the dataset the model trains on as one CSV (with the train/valid split).
    Export {
        #[command(flatten)]
        data: DataArgs,
        #[arg(long)]
        out: PathBuf,
        /// Fraction of runs marked `valid` (as `train` would hold out).
        #[arg(long, default_value_t = 0.25)]
        valid_fraction: f64,
        #[arg(long, default_value_t = 1)]
        seed: u64,
    },
    /// Write synthetic runs (hosts.csv + containers.csv each) for trying things out.
    Synth {
        #[arg(long)]
        out: PathBuf,
        #[arg(long, default_value_t = 4)]
        runs: usize,
        #[arg(long, default_value_t = 3)]
        hosts: usize,
        #[arg(long, default_value_t = 12)]
        containers: usize,
        #[arg(long, default_value_t = 300)]
        seconds: usize,
        #[arg(long, default_value_t = 1)]
        seed: u64,
    },
}

#[derive(Args, Debug)]
pub struct DataArgs {
    /// A run directory (hosts.csv + containers.csv) or a directory of runs (repeatable).
    #[arg(long = "data", required = true)]
    data: Vec<PathBuf>,
    /// Resampling window, seconds.
    #[arg(long, default_value_t = DEFAULT_WINDOW_S)]
    window: f64,
    #[command(flatten)]
    scenario: ScenarioArgs,
}

#[derive(Args, Debug)]
pub struct ScenarioArgs {
    /// Scenario file(s) (`herd scenario gen`) giving the workload kind of
    /// containers whose rows have no `kind` (repeatable).
    #[arg(long = "scenario")]
    scenario: Vec<PathBuf>,
}

impl ScenarioArgs {
    fn kinds(&self) -> Result<dataset::ScenarioKinds> {
        Ok(dataset::scenario_kinds(&self.scenario)?)
    }
}

#[derive(Args, Debug)]
pub struct ParamArgs {
    /// Most trees; early stopping usually keeps fewer.
    #[arg(long, default_value_t = 500)]
    trees: usize,
    #[arg(long, default_value_t = 6)]
    depth: u32,
    #[arg(long, default_value_t = 0.1)]
    eta: f64,
    #[arg(long, default_value_t = 5)]
    min_leaf: usize,
    /// Rounds without a better held-out loss before stopping.
    #[arg(long, default_value_t = 30)]
    patience: usize,
    /// Tree learner: hist (histogram, fast, threads) or gbdt (the gbdt crate's exact greedy trees).
    #[arg(long, default_value = "hist")]
    learner: Learner,
    /// Quantile bins per feature (hist: at most 256, 0 = 256; gbdt: 0 = raw values).
    #[arg(long, default_value_t = 0)]
    bins: usize,
    /// L2 penalty on leaf values (hist only).
    #[arg(long, default_value_t = 1.0)]
    lambda: f64,
    /// Training threads (hist only; 0 = every core); the model is the same for any count.
    #[arg(long, default_value_t = 1)]
    threads: usize,
    /// Fraction of rows per tree.
    #[arg(long, default_value_t = 1.0)]
    subsample: f64,
    /// Fraction of runs held out.
    #[arg(long, default_value_t = 0.25)]
    valid_fraction: f64,
    #[arg(long, default_value_t = 1)]
    seed: u64,
    /// Fit ops directly instead of ln(1 + ops).
    #[arg(long)]
    linear_target: bool,
    /// Features not to use, e.g. c_cpu_usage_cores (comma-separated or repeated).
    #[arg(long, value_delimiter = ',')]
    exclude: Vec<String>,
    /// A model for the forecast policy: exclude the container's achieved rates
    /// (CPU usage, faults, IO ops), which only say how it runs where it is,
    /// the host's load figures, which the policy can only guess for a host
    /// after a move, and the network rates the placement view lacks.
    #[arg(long)]
    for_placement: bool,
}

impl ParamArgs {
    fn params(&self) -> TrainParams {
        TrainParams {
            max_trees: self.trees,
            max_depth: self.depth,
            eta: self.eta,
            min_leaf: self.min_leaf,
            patience: self.patience,
            bins: self.bins,
            learner: self.learner,
            lambda: self.lambda,
            threads: self.threads,
            subsample: self.subsample,
            valid_fraction: self.valid_fraction,
            seed: self.seed,
            log_target: !self.linear_target,
            exclude: {
                let mut x = self.exclude.clone();
                if self.for_placement {
                    x.extend(placement_training_excluded());
                }
                x.sort();
                x.dedup();
                x
            },
        }
    }
}

fn load(dirs: &[PathBuf], window: f64, scenario: &ScenarioArgs) -> Result<Dataset> {
    Ok(dataset::load_dirs_with(dirs, window, &scenario.kinds()?)?)
}

fn load_model(path: &Path) -> Result<Model> {
    Ok(Model::load(path)?)
}

fn print_json(v: &impl serde::Serialize) -> Result<()> {
    println!("{}", serde_json::to_string_pretty(v)?);
    Ok(())
}

pub fn run(cmd: &ForecastCmd) -> Result<i32> {
    match cmd {
        ForecastCmd::Train {
            data,
            out,
            params,
            json,
        } => {
            let ds = load(&data.data, data.window, &data.scenario)?;
            let mut model = Model::train(&ds, &params.params())?;
            model.summary.migration_cost = cost::measure(&data.data)?;
            model
                .save(out)
                .with_context(|| format!("saving the model to {}", out.display()))?;
            let s = &model.summary;
            if *json {
                print_json(&serde_json::json!({
                    "model": out,
                    "learner": model.learner().as_str(),
                    "train_runs": s.train_runs,
                    "valid_runs": s.valid_runs,
                    "train_rows": s.train_rows,
                    "valid_rows": s.valid_rows,
                    "trees_trained": s.trees_trained,
                    "trees_kept": s.trees_kept,
                    "train_seconds": s.train_seconds,
                    "valid": s.valid_report,
                    "valid_mean_predictor": s.valid_mean_predictor,
                    "migration_cost": s.migration_cost,
                    "notes": s.notes,
                }))?;
                return Ok(0);
            }
            for n in &s.notes {
                println!("note: {n}");
            }
            println!(
                "trained on {} runs ({} rows), held out {} runs ({} rows)",
                s.train_runs.len(),
                s.train_rows,
                s.valid_runs.len(),
                s.valid_rows
            );
            println!(
                "{} trees: {} trained, {} kept (early stopping, patience {}); boosting took {:.2} s",
                model.learner().as_str(),
                s.trees_trained,
                s.trees_kept,
                params.patience,
                s.train_seconds
            );
            if let (Some(r), Some(m)) = (&s.valid_report, &s.valid_mean_predictor) {
                println!("held-out runs: {}", s.valid_runs.join(", "));
                print!("{}", r.table());
                println!(
                    "mean predictor on the same rows: MAE {:.2}, MAPE {:.2} %",
                    m.overall.mae, m.overall.mape
                );
            } else {
                println!("no run held out: no early stopping, no held-out report");
            }
            if let Some(c) = &s.migration_cost {
                println!(
                    "moves on these runs: {}, {:.1} s without output each (frozen {})",
                    c.moves,
                    c.mean_lost_s,
                    c.mean_frozen_s
                        .map_or("unknown".into(), |f| format!("{f:.1} s"))
                );
            }
            println!("model written to {}", out.display());
        }
        ForecastCmd::Eval {
            model,
            data,
            scenario,
            plot: plot_path,
            json,
        } => {
            let m = load_model(model)?;
            let ds = load(data, m.window_s, scenario)?;
            let rows: Vec<&Row> = ds.rows.iter().collect();
            let pred = m.predict_rows(&rows);
            let kinds: Vec<&str> = rows.iter().map(|r| r.kind.as_str()).collect();
            let actual: Vec<f64> = rows.iter().map(|r| r.ops).collect();
            let report = Report::of(&kinds, &actual, &pred);
            let plot_path = plot_path
                .clone()
                .unwrap_or_else(|| model.with_extension("eval.svg"));
            plot::predicted_vs_actual(&plot_path, &rows, &pred)?;
            if *json {
                print_json(&serde_json::json!({
                    "runs": ds.runs(),
                    "report": report,
                    "plot": plot_path,
                    "notes": ds.notes,
                }))?;
                return Ok(0);
            }
            for n in &ds.notes {
                println!("note: {n}");
            }
            println!("{} runs, {} rows", ds.runs().len(), rows.len());
            print!("{}", report.table());
            println!("plot written to {}", plot_path.display());
        }
        ForecastCmd::Importance {
            model,
            data,
            scenario,
            seed,
            json,
        } => {
            let m = load_model(model)?;
            let imp = if data.is_empty() {
                m.summary.importance.clone()
            } else {
                let ds = load(data, m.window_s, scenario)?;
                let rows: Vec<&Row> = ds.rows.iter().collect();
                m.permutation_importance(&rows, 3, *seed)?
            };
            if *json {
                return print_json(&imp).map(|_| 0);
            }
            println!("{:<28} {:>16} {:>8}", "feature", "MAE increase", "splits");
            for i in &imp {
                println!(
                    "{:<28} {:>16.3} {:>8}",
                    i.feature, i.permutation_mae_increase, i.splits
                );
            }
        }
        ForecastCmd::Export {
            data,
            out,
            valid_fraction,
            seed,
        } => {
            let mut ds = load(&data.data, data.window, &data.scenario)?;
            split_single_run(&mut ds, *valid_fraction);
            let (_, valid) = split_runs(&ds.runs(), *valid_fraction, *seed);
            ds.export_csv(out, &|run| {
                if valid.iter().any(|v| v == run) {
                    "valid".into()
                } else {
                    "train".into()
                }
            })?;
            for n in &ds.notes {
                eprintln!("note: {n}");
            }
            println!(
                "{} rows of {} runs written to {}",
                ds.rows.len(),
                ds.runs().len(),
                out.display()
            );
        }
        ForecastCmd::Synth {
            out,
            runs,
            hosts,
            containers,
            seconds,
            seed,
        } => {
            for i in 0..*runs {
                let dir = out.join(format!("run-{i:02}"));
                synth::write_run(
                    &dir,
                    &synth::SynthParams {
                        hosts: *hosts,
                        containers: *containers,
                        seconds: *seconds,
                        migrations: containers / 3,
                        seed: seed.wrapping_mul(1000).wrapping_add(i as u64),
                        ..Default::default()
                    },
                )?;
            }
            println!("{runs} synthetic runs written under {}", out.display());
        }
    }
    Ok(0)
}
