//! The ops/s model: gradient boosting with early stopping on held-out runs,
//! permutation importance and save/load. The tree learner is pluggable
//! ([`Learner`]): `hist` (ours, [`super::hist`]: binned features, histogram
//! subtraction, threads; the default) or `gbdt` (the gbdt crate's exact-greedy
//! `DecisionTree`, the first learner; 9-16x slower than XGBoost's `hist` on
//! one thread, benches/README.md).
//!
//! Algorithm (squared error on `y = ln(1 + ops)` when `log_target`):
//! ```text
//! F0 = mean(y_train); for m in 1..=max_trees:
//!     r_i = y_i - F(x_i)                     (residuals = negative gradient)
//!     tree_m = the learner's tree fitted to r (depth <= max_depth)
//!     F += eta * tree_m   on train and on held-out rows
//!     L_m = mean((y_valid - F_valid)^2)
//!     stop when m - argmin L >= patience; keep trees 1..=argmin L
//! ```
//! `hist` bins every feature into at most `bins` (0: 256) quantile bins and
//! leaves get `sum(r) / (rows + lambda)`. For `gbdt`, features can be binned
//! first (`bins` > 0): each feature is replaced by the index of its quantile
//! bin (edges from the training rows), which leaves the exact-greedy learner
//! fewer distinct thresholds; edges are saved with the model and applied to
//! every input; `lambda` does not apply. Nothing is random unless
//! `subsample` < 1 (rows drawn per tree from a generator seeded by `seed`);
//! gbdt's own feature sampling, which uses an unseeded generator, stays off.
//! `threads` changes the speed only: `hist` trees are bit-identical for any
//! thread count (gbdt trains on one).
//!
//! Files: JSON, `format` + `version`. Version 1 (gbdt only, no `learner`)
//! still loads as a gbdt model; version 2 records `params.learner`.

use std::path::Path;
use std::time::Instant;

use gbdt::config::Loss;
use gbdt::decision_tree::{Data, DataVec, DecisionTree, TrainingCache, VALUE_TYPE_UNKNOWN};
use rand::rngs::StdRng;
use rand::seq::SliceRandom;
use rand::SeedableRng;
use serde::{Deserialize, Serialize};

use super::dataset::{Dataset, Row, FEATURE_NAMES};
use super::hist::{self, Cuts, HistParams};
use super::metrics::Report;
use super::{ForecastError, Result};

pub const FORMAT: &str = "herd-forecast-gbdt";
pub const VERSION: u32 = 2;
/// Versions [`Model::load`] reads.
pub const READS: [u32; 2] = [1, 2];

/// Which tree learner the boosting loop uses.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum Learner {
    /// Histogram learner ([`super::hist`]).
    #[default]
    Hist,
    /// The gbdt crate's exact-greedy trees.
    Gbdt,
}

impl Learner {
    /// Version 1 files have no `learner`: they are gbdt's.
    fn legacy() -> Learner {
        Learner::Gbdt
    }

    pub fn as_str(self) -> &'static str {
        match self {
            Learner::Hist => "hist",
            Learner::Gbdt => "gbdt",
        }
    }
}

impl std::str::FromStr for Learner {
    type Err = String;
    fn from_str(s: &str) -> std::result::Result<Self, String> {
        match s {
            "hist" => Ok(Learner::Hist),
            "gbdt" => Ok(Learner::Gbdt),
            _ => Err(format!("learner `{s}`: hist or gbdt")),
        }
    }
}

fn one() -> usize {
    1
}

/// Training knobs. The defaults suit a few thousand rows.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub struct TrainParams {
    pub max_trees: usize,
    pub max_depth: u32,
    pub eta: f64,
    pub min_leaf: usize,
    /// Stop after this many rounds without a better held-out loss.
    pub patience: usize,
    /// Quantile bins per feature; 0 = raw values.
    pub bins: usize,
    /// Fraction of training rows each tree sees (1 = all, deterministic without a seed).
    pub subsample: f64,
    /// Fraction of runs held out for early stopping and the report.
    pub valid_fraction: f64,
    pub seed: u64,
    /// Fit ln(1 + ops) instead of ops.
    pub log_target: bool,
    /// Features the model must not use (always seen as missing).
    #[serde(default)]
    pub exclude: Vec<String>,
    #[serde(default = "Learner::legacy")]
    pub learner: Learner,
    /// L2 penalty on leaf values (`hist` only).
    #[serde(default)]
    pub lambda: f64,
    /// Training threads (`hist` only; 0 = every core). The model is the same for any count.
    #[serde(default = "one")]
    pub threads: usize,
}

impl Default for TrainParams {
    fn default() -> Self {
        TrainParams {
            max_trees: 500,
            max_depth: 6,
            eta: 0.1,
            min_leaf: 5,
            patience: 30,
            bins: 0,
            subsample: 1.0,
            valid_fraction: 0.25,
            seed: 1,
            log_target: true,
            exclude: Vec::new(),
            learner: Learner::Hist,
            lambda: 1.0,
            threads: 1,
        }
    }
}

impl TrainParams {
    fn check(&self) -> Result<()> {
        let bad = |m: &str| Err(ForecastError::Invalid(m.into()));
        if self.max_trees == 0 {
            return bad("max_trees must be at least 1");
        }
        if self.max_depth == 0 {
            return bad("max_depth must be at least 1");
        }
        if !(self.eta > 0.0 && self.eta <= 1.0) {
            return bad("eta must be in (0, 1]");
        }
        if !(self.subsample > 0.0 && self.subsample <= 1.0) {
            return bad("subsample must be in (0, 1]");
        }
        if !(0.0..1.0).contains(&self.valid_fraction) {
            return bad("valid_fraction must be in [0, 1)");
        }
        if self.bins == 1 {
            return bad("bins must be 0 (off) or at least 2");
        }
        if self.learner == Learner::Hist && self.bins > hist::MAX_BINS {
            return Err(ForecastError::Invalid(format!(
                "bins must be at most {} for the hist learner",
                hist::MAX_BINS
            )));
        }
        if !(self.lambda >= 0.0 && self.lambda.is_finite()) {
            return bad("lambda must be a number >= 0");
        }
        if let Some(x) = self
            .exclude
            .iter()
            .find(|x| !FEATURE_NAMES.contains(&x.as_str()))
        {
            return Err(ForecastError::Invalid(format!(
                "no feature `{x}` to exclude (features: {})",
                FEATURE_NAMES.join(", ")
            )));
        }
        Ok(())
    }

    /// Per feature: is it excluded?
    fn mask(&self) -> Vec<bool> {
        FEATURE_NAMES
            .iter()
            .map(|f| self.exclude.iter().any(|x| x == f))
            .collect()
    }
}

/// Quantile bin edges per feature.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub struct Bins {
    pub edges: Vec<Vec<f32>>,
}

impl Bins {
    /// Edges from the rows' values: the distinct values when there are at most
    /// `bins` of them, else `bins - 1` quantiles.
    pub fn fit(rows: &[&[f32]], n_features: usize, bins: usize) -> Bins {
        let edges = (0..n_features)
            .map(|j| {
                let mut v: Vec<f32> = rows
                    .iter()
                    .map(|r| r[j])
                    .filter(|&x| x != VALUE_TYPE_UNKNOWN)
                    .collect();
                v.sort_by(f32::total_cmp);
                v.dedup();
                if v.len() <= bins {
                    return v;
                }
                let mut e: Vec<f32> = (1..bins).map(|k| v[k * v.len() / bins]).collect();
                e.dedup();
                e
            })
            .collect();
        Bins { edges }
    }

    /// Bin index of each value (values above the last edge share one bin).
    pub fn apply(&self, f: &[f32]) -> Vec<f32> {
        f.iter()
            .zip(&self.edges)
            .map(|(&x, e)| {
                if x == VALUE_TYPE_UNKNOWN {
                    x
                } else {
                    e.partition_point(|&edge| edge < x) as f32
                }
            })
            .collect()
    }
}

/// How much a feature matters.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub struct Importance {
    pub feature: String,
    /// Held-out MAE (ops/s) with this feature's column shuffled, minus the MAE without.
    pub permutation_mae_increase: f64,
    /// Splits on this feature over all trees.
    pub splits: usize,
}

/// What training did.
#[derive(Clone, Debug, Default, PartialEq, Serialize, Deserialize)]
pub struct TrainSummary {
    pub train_runs: Vec<String>,
    pub valid_runs: Vec<String>,
    pub train_rows: usize,
    pub valid_rows: usize,
    pub trees_trained: usize,
    pub trees_kept: usize,
    pub best_valid_loss: f64,
    /// Boosting only (dataset building and importance excluded).
    pub train_seconds: f64,
    /// Held-out errors (ops/s) of the kept model, and of the training mean.
    pub valid_report: Option<Report>,
    pub valid_mean_predictor: Option<Report>,
    /// Permutation importance on the held-out rows (training rows when none), sorted.
    pub importance: Vec<Importance>,
    /// Held-out loss after each tree.
    pub valid_curve: Vec<f64>,
    pub notes: Vec<String>,
    /// What a move cost on the training runs (`herd forecast train` measures it).
    #[serde(default)]
    pub migration_cost: Option<super::cost::MigrationCost>,
}

/// A trained model.
#[derive(Serialize, Deserialize)]
pub struct Model {
    pub format: String,
    pub version: u32,
    pub feature_names: Vec<String>,
    pub window_s: f64,
    pub params: TrainParams,
    pub bias: f64,
    /// gbdt's input binning (`bins` > 0).
    pub bins: Option<Bins>,
    /// gbdt's trees (learner `gbdt`; a version 1 file has only these).
    #[serde(default)]
    trees: Vec<DecisionTree>,
    /// The hist learner's cuts and trees (learner `hist`).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    hist: Option<HistForest>,
    pub summary: TrainSummary,
}

/// What the hist learner saves: its cuts (for the record: prediction uses
/// the float thresholds) and trees (eta included in the leaves).
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub struct HistForest {
    pub cuts: Cuts,
    pub trees: Vec<hist::Tree>,
}

/// Runs held out for validation: a seeded shuffle of the sorted run names,
/// `fraction` of them (at least one when there are two or more runs).
pub fn split_runs(runs: &[String], fraction: f64, seed: u64) -> (Vec<String>, Vec<String>) {
    let mut r = runs.to_vec();
    r.sort();
    if r.len() < 2 || fraction <= 0.0 {
        return (r, Vec::new());
    }
    r.shuffle(&mut StdRng::seed_from_u64(seed));
    let n_valid = ((r.len() as f64 * fraction).round() as usize).clamp(1, r.len() - 1);
    let valid = r.split_off(r.len() - n_valid);
    let (mut t, mut v) = (r, valid);
    t.sort();
    v.sort();
    (t, v)
}

/// With a single run there is no whole run to hold out: its last `fraction`
/// of windows becomes a run of its own, `<run>#tail`.
pub fn split_single_run(ds: &mut Dataset, fraction: f64) {
    let runs = ds.runs();
    if runs.len() != 1 || fraction <= 0.0 {
        return;
    }
    let (t0, t1) = ds.rows.iter().fold((f64::MAX, f64::MIN), |(a, b), r| {
        (a.min(r.time), b.max(r.time))
    });
    let cut = t1 - (t1 - t0) * fraction;
    let tail = format!("{}#tail", runs[0]);
    let mut moved = 0;
    for r in ds.rows.iter_mut().filter(|r| r.time > cut) {
        r.run = tail.clone();
        moved += 1;
    }
    if moved > 0 {
        ds.notes.push(format!(
            "one run only: its last {:.0}% of time ({moved} rows) is held out as {tail}",
            fraction * 100.0
        ));
    }
}

/// The learner's input: excluded features set to missing, then binned.
fn prepare(f: &[f32], mask: &[bool], bins: Option<&Bins>) -> Vec<f32> {
    let f: Vec<f32> = f
        .iter()
        .zip(mask)
        .map(|(&v, &m)| if m { VALUE_TYPE_UNKNOWN } else { v })
        .collect();
    match bins {
        Some(b) => b.apply(&f),
        None => f,
    }
}

fn target(ops: f64, log: bool) -> f64 {
    if log {
        ops.max(0.0).ln_1p()
    } else {
        ops
    }
}

fn untarget(y: f64, log: bool) -> f64 {
    if log {
        y.exp_m1().max(0.0)
    } else {
        y
    }
}

fn mse(y: &[f64], p: &[f64]) -> f64 {
    y.iter().zip(p).map(|(a, b)| (a - b) * (a - b)).sum::<f64>() / y.len().max(1) as f64
}

impl Model {
    /// Trains on `ds`, holding out whole runs (see [`split_runs`]) for early
    /// stopping, the report and importance.
    pub fn train(ds: &Dataset, params: &TrainParams) -> Result<Model> {
        params.check()?;
        let mut ds = ds.clone();
        split_single_run(&mut ds, params.valid_fraction);
        let (train_runs, valid_runs) = split_runs(&ds.runs(), params.valid_fraction, params.seed);
        let is_valid = |r: &Row| valid_runs.binary_search(&r.run).is_ok();
        let train: Vec<&Row> = ds.rows.iter().filter(|r| !is_valid(r)).collect();
        let valid: Vec<&Row> = ds.rows.iter().filter(|r| is_valid(r)).collect();
        if train.len() < 2 {
            return Err(ForecastError::Empty(format!(
                "{} training rows: need at least 2",
                train.len()
            )));
        }
        let nf = FEATURE_NAMES.len();
        if let Some(r) = ds.rows.iter().find(|r| r.features.len() != nf) {
            return Err(ForecastError::Invalid(format!(
                "row of {} has {} features, expected {nf}",
                r.container,
                r.features.len()
            )));
        }

        let started = Instant::now();
        let mask = params.mask();
        let bins = (params.learner == Learner::Gbdt && params.bins > 0).then(|| {
            let f: Vec<Vec<f32>> = train
                .iter()
                .map(|r| prepare(&r.features, &mask, None))
                .collect();
            let f: Vec<&[f32]> = f.iter().map(|r| r.as_slice()).collect();
            Bins::fit(&f, nf, params.bins)
        });
        let ty: Vec<f64> = train
            .iter()
            .map(|r| target(r.ops, params.log_target))
            .collect();
        let vy: Vec<f64> = valid
            .iter()
            .map(|r| target(r.ops, params.log_target))
            .collect();
        let tf: Vec<Vec<f32>> = train
            .iter()
            .map(|r| prepare(&r.features, &mask, bins.as_ref()))
            .collect();
        let vf: Vec<Vec<f32>> = valid
            .iter()
            .map(|r| prepare(&r.features, &mask, bins.as_ref()))
            .collect();
        let mut learner: Box<dyn TreeLearner> = match params.learner {
            Learner::Gbdt => Box::new(GbdtLearner::new(params, tf, vf)),
            Learner::Hist => {
                let threads = match params.threads {
                    0 => std::thread::available_parallelism().map_or(1, |n| n.get()),
                    n => n,
                };
                let hp = HistParams {
                    max_depth: params.max_depth,
                    min_leaf: params.min_leaf,
                    lambda: params.lambda,
                    eta: params.eta,
                    threads,
                };
                let max_bins = if params.bins == 0 {
                    hist::MAX_BINS
                } else {
                    params.bins
                };
                let cuts = Cuts::fit(&tf, nf, max_bins);
                Box::new(HistLearner {
                    inner: hist::Learner::new(hp, cuts, &tf, &vf),
                    trees: Vec::new(),
                })
            }
        };

        let n_train = ty.len();
        let bias = ty.iter().sum::<f64>() / n_train as f64;
        let mut tp = vec![bias; n_train];
        let mut vp = vec![bias; vy.len()];
        let mut rng = StdRng::seed_from_u64(params.seed);
        let n_sub = ((n_train as f64 * params.subsample).ceil() as usize).clamp(1, n_train);
        let all: Vec<usize> = (0..n_train).collect();
        let mut resid = vec![0.0; n_train];

        let mut curve = Vec::new();
        let (mut best, mut best_loss) = (0usize, f64::INFINITY);
        let mut trained = 0;
        for m in 0..params.max_trees {
            for (r, (y, p)) in resid.iter_mut().zip(ty.iter().zip(&tp)) {
                *r = y - p;
            }
            let subset = (n_sub < n_train).then(|| {
                let mut s = all.clone();
                s.shuffle(&mut rng);
                s.truncate(n_sub);
                s.sort_unstable();
                s
            });
            let (t_out, v_out) = learner.round(&resid, subset.as_deref());
            trained += 1;
            for (p, v) in tp.iter_mut().zip(t_out) {
                *p += v;
            }
            for (p, v) in vp.iter_mut().zip(v_out) {
                *p += v;
            }
            let loss = if vy.is_empty() {
                mse(&ty, &tp)
            } else {
                mse(&vy, &vp)
            };
            curve.push(loss);
            if loss < best_loss {
                best_loss = loss;
                best = m;
            } else if !vy.is_empty() && m - best >= params.patience {
                break;
            }
        }
        let (trees, hist) = learner.finish(best + 1);
        let train_seconds = started.elapsed().as_secs_f64();

        let mut model = Model {
            format: FORMAT.into(),
            version: VERSION,
            feature_names: FEATURE_NAMES.iter().map(|s| s.to_string()).collect(),
            window_s: ds.window_s,
            params: params.clone(),
            bias,
            bins,
            trees,
            hist,
            summary: TrainSummary {
                train_rows: train.len(),
                valid_rows: valid.len(),
                train_runs,
                valid_runs,
                trees_trained: trained,
                best_valid_loss: best_loss,
                train_seconds,
                valid_curve: curve,
                notes: ds.notes.clone(),
                ..Default::default()
            },
        };
        model.summary.trees_kept = model.trees();

        let scored: &[&Row] = if valid.is_empty() { &train } else { &valid };
        if !valid.is_empty() {
            let pred = model.predict_rows(&valid);
            let kinds: Vec<&str> = valid.iter().map(|r| r.kind.as_str()).collect();
            let actual: Vec<f64> = valid.iter().map(|r| r.ops).collect();
            model.summary.valid_report = Some(Report::of(&kinds, &actual, &pred));
            let mean = train.iter().map(|r| r.ops).sum::<f64>() / train.len() as f64;
            model.summary.valid_mean_predictor =
                Some(Report::of(&kinds, &actual, &vec![mean; actual.len()]));
        }
        model.summary.importance = model.permutation_importance(scored, 3, params.seed)?;
        Ok(model)
    }

    /// Predicted ops/s for feature vectors (in [`FEATURE_NAMES`] order).
    pub fn predict(&self, features: &[Vec<f32>]) -> Vec<f64> {
        let mask = self.params.mask();
        // A model made before the last features were added uses the first ones.
        let nf = self.feature_names.len();
        let prepared = features
            .iter()
            .map(|f| prepare(&f[..nf.min(f.len())], &mask, self.bins.as_ref()));
        let raw: Vec<f64> = match &self.hist {
            Some(h) => prepared
                .map(|f| self.bias + h.trees.iter().map(|t| t.predict(&f)).sum::<f64>())
                .collect(),
            None => {
                let dv: DataVec = prepared.map(|f| Data::new_test_data(f, None)).collect();
                let mut p = vec![self.bias; dv.len()];
                for t in &self.trees {
                    for (p, v) in p.iter_mut().zip(t.predict(&dv)) {
                        *p += self.params.eta * v as f64;
                    }
                }
                p
            }
        };
        raw.into_iter()
            .map(|y| untarget(y, self.params.log_target))
            .collect()
    }

    pub fn predict_rows(&self, rows: &[&Row]) -> Vec<f64> {
        let f: Vec<Vec<f32>> = rows.iter().map(|r| r.features.clone()).collect();
        self.predict(&f)
    }

    pub fn trees(&self) -> usize {
        self.hist
            .as_ref()
            .map_or(self.trees.len(), |h| h.trees.len())
    }

    /// The learner that made this model.
    pub fn learner(&self) -> Learner {
        self.params.learner
    }

    /// Number of splits on each feature over all trees.
    pub fn split_counts(&self) -> Vec<usize> {
        let mut counts = vec![0; self.feature_names.len()];
        if let Some(h) = &self.hist {
            for t in &h.trees {
                t.split_counts(&mut counts);
            }
            return counts;
        }
        for t in &self.trees {
            if let Ok(v) = serde_json::to_value(t) {
                for n in tree_nodes(&v) {
                    if n.get("is_leaf") == Some(&serde_json::Value::Bool(false)) {
                        if let Some(i) = n.get("feature_index").and_then(|i| i.as_u64()) {
                            if let Some(c) = counts.get_mut(i as usize) {
                                *c += 1;
                            }
                        }
                    }
                }
            }
        }
        counts
    }

    /// Permutation importance: for each feature, the mean increase of MAE
    /// (ops/s) over `repeats` seeded shuffles of that feature's column.
    pub fn permutation_importance(
        &self,
        rows: &[&Row],
        repeats: usize,
        seed: u64,
    ) -> Result<Vec<Importance>> {
        if rows.is_empty() {
            return Err(ForecastError::Empty(
                "no rows to measure importance on".into(),
            ));
        }
        let actual: Vec<f64> = rows.iter().map(|r| r.ops).collect();
        let base: Vec<Vec<f32>> = rows.iter().map(|r| r.features.clone()).collect();
        let mae = |p: &[f64]| {
            actual
                .iter()
                .zip(p)
                .map(|(a, b)| (a - b).abs())
                .sum::<f64>()
                / p.len() as f64
        };
        let base_mae = mae(&self.predict(&base));
        let splits = self.split_counts();
        let mut rng = StdRng::seed_from_u64(seed);
        let mut out = Vec::new();
        for (j, name) in self.feature_names.iter().enumerate() {
            let mut inc = 0.0;
            for _ in 0..repeats.max(1) {
                let mut col: Vec<f32> = base.iter().map(|f| f[j]).collect();
                col.shuffle(&mut rng);
                let shuffled: Vec<Vec<f32>> = base
                    .iter()
                    .zip(&col)
                    .map(|(f, &v)| {
                        let mut f = f.clone();
                        f[j] = v;
                        f
                    })
                    .collect();
                inc += mae(&self.predict(&shuffled)) - base_mae;
            }
            out.push(Importance {
                feature: name.clone(),
                permutation_mae_increase: inc / repeats.max(1) as f64,
                splits: splits.get(j).copied().unwrap_or(0),
            });
        }
        out.sort_by(|a, b| {
            b.permutation_mae_increase
                .total_cmp(&a.permutation_mae_increase)
        });
        Ok(out)
    }

    pub fn save(&self, path: &Path) -> Result<()> {
        let json = serde_json::to_vec(self).map_err(|e| ForecastError::Model {
            path: path.to_path_buf(),
            msg: e.to_string(),
        })?;
        std::fs::write(path, json).map_err(|source| ForecastError::Io {
            path: path.to_path_buf(),
            source,
        })
    }

    /// Loads and checks a saved model: its format, version, features and
    /// every tree's structure (a bad index would otherwise panic in gbdt).
    pub fn load(path: &Path) -> Result<Model> {
        let bad = |msg: String| ForecastError::Model {
            path: path.to_path_buf(),
            msg,
        };
        let bytes = std::fs::read(path).map_err(|source| ForecastError::Io {
            path: path.to_path_buf(),
            source,
        })?;
        let v: serde_json::Value =
            serde_json::from_slice(&bytes).map_err(|e| bad(format!("not JSON: {e}")))?;
        if v.get("format").and_then(|f| f.as_str()) != Some(FORMAT) {
            return Err(bad(format!("not a {FORMAT} model")));
        }
        let version = v.get("version").and_then(|f| f.as_u64());
        if !version.is_some_and(|x| READS.iter().any(|&r| r as u64 == x)) {
            return Err(bad(format!(
                "version {:?}, this build reads {READS:?}",
                v.get("version")
            )));
        }
        let nf = FEATURE_NAMES.len();
        if let Some(trees) = v.get("trees").and_then(|t| t.as_array()) {
            for (i, t) in trees.iter().enumerate() {
                check_tree(t, nf).map_err(|m| bad(format!("tree {i}: {m}")))?;
            }
        }
        let m: Model = serde_json::from_value(v).map_err(|e| bad(e.to_string()))?;
        // Features are only ever added at the end: an older model's are a prefix.
        let nf = m.feature_names.len();
        if nf == 0
            || nf > FEATURE_NAMES.len()
            || m.feature_names
                .iter()
                .zip(FEATURE_NAMES)
                .any(|(a, b)| a != b)
        {
            return Err(bad(format!(
                "built for features {:?}, this build has {:?}",
                m.feature_names, FEATURE_NAMES
            )));
        }
        if let Some(b) = &m.bins {
            if b.edges.len() != nf {
                return Err(bad("bins do not match the features".into()));
            }
        }
        match (m.params.learner, &m.hist) {
            (Learner::Hist, Some(h)) => {
                if h.cuts.cuts.len() != nf {
                    return Err(bad("cuts do not match the features".into()));
                }
                for (i, t) in h.trees.iter().enumerate() {
                    t.check(nf).map_err(|e| bad(format!("tree {i}: {e}")))?;
                }
            }
            (Learner::Gbdt, None) => {}
            (l, _) => return Err(bad(format!("learner {} without its trees", l.as_str()))),
        }
        Ok(m)
    }
}

/// The node objects of a serialised gbdt tree (`{"tree":{"tree":[node..]}}`).
fn tree_nodes(t: &serde_json::Value) -> Vec<&serde_json::Value> {
    t.get("tree")
        .and_then(|t| t.get("tree"))
        .and_then(|t| t.as_array())
        .map(|a| a.iter().map(|n| n.get("value").unwrap_or(n)).collect())
        .unwrap_or_default()
}

fn check_tree(t: &serde_json::Value, nf: usize) -> std::result::Result<(), String> {
    let nodes = t
        .get("tree")
        .and_then(|t| t.get("tree"))
        .and_then(|t| t.as_array())
        .ok_or("no nodes")?;
    if nodes.is_empty() {
        return Err("empty".into());
    }
    for (i, n) in nodes.iter().enumerate() {
        let leaf = n
            .pointer("/value/is_leaf")
            .and_then(|l| l.as_bool())
            .ok_or(format!("node {i}: no is_leaf"))?;
        if leaf {
            continue;
        }
        let fi = n.pointer("/value/feature_index").and_then(|x| x.as_u64());
        if fi.is_none_or(|f| f as usize >= nf) {
            return Err(format!("node {i}: feature index {fi:?} out of range"));
        }
        for side in ["left", "right"] {
            let c = n.get(side).and_then(|x| x.as_u64());
            if c.is_none_or(|c| c == 0 || c as usize >= nodes.len()) {
                return Err(format!("node {i}: {side} child {c:?} out of range"));
            }
        }
    }
    Ok(())
}

/// The tree learner of one boosting round.
trait TreeLearner {
    /// Fits a tree to the residuals `r` of the training rows in `subset`
    /// (sorted; all when `None`); returns its output, eta included, on every
    /// training row and every held-out row.
    fn round(&mut self, r: &[f64], subset: Option<&[usize]>) -> (Vec<f64>, Vec<f64>);
    /// The first `keep` trees: gbdt's, or the hist forest.
    fn finish(self: Box<Self>, keep: usize) -> (Vec<DecisionTree>, Option<HistForest>);
}

struct GbdtLearner {
    train: DataVec,
    valid: DataVec,
    cache: TrainingCache,
    params: TrainParams,
    trees: Vec<DecisionTree>,
}

impl GbdtLearner {
    fn new(params: &TrainParams, train: Vec<Vec<f32>>, valid: Vec<Vec<f32>>) -> GbdtLearner {
        let train: DataVec = train
            .into_iter()
            .map(|f| Data::new_training_data(f, 1.0, 0.0, None))
            .collect();
        let valid: DataVec = valid
            .into_iter()
            .map(|f| Data::new_test_data(f, None))
            .collect();
        GbdtLearner {
            cache: TrainingCache::get_cache(FEATURE_NAMES.len(), &train, 2),
            train,
            valid,
            params: params.clone(),
            trees: Vec::new(),
        }
    }
}

impl TreeLearner for GbdtLearner {
    fn round(&mut self, r: &[f64], subset: Option<&[usize]>) -> (Vec<f64>, Vec<f64>) {
        for (d, r) in self.train.iter_mut().zip(r) {
            d.target = *r as f32;
        }
        let mut tree = DecisionTree::new();
        tree.set_feature_size(FEATURE_NAMES.len());
        tree.set_max_depth(self.params.max_depth);
        tree.set_min_leaf_size(self.params.min_leaf);
        tree.set_loss(Loss::SquaredError);
        match subset {
            Some(s) => tree.fit_n(&self.train, s, &mut self.cache),
            None => tree.fit(&self.train, &mut self.cache),
        }
        // Not the cache's predictions: gbdt leaves them stale for rows
        // outside the subset and for rows missing the split feature.
        let eta = self.params.eta;
        let t: Vec<f64> = tree
            .predict(&self.train)
            .into_iter()
            .map(|v| eta * v as f64)
            .collect();
        let v: Vec<f64> = if self.valid.is_empty() {
            Vec::new()
        } else {
            tree.predict(&self.valid)
                .into_iter()
                .map(|v| eta * v as f64)
                .collect()
        };
        self.trees.push(tree);
        (t, v)
    }

    fn finish(self: Box<Self>, keep: usize) -> (Vec<DecisionTree>, Option<HistForest>) {
        let mut t = self.trees;
        t.truncate(keep);
        (t, None)
    }
}

struct HistLearner {
    inner: hist::Learner,
    trees: Vec<hist::Tree>,
}

impl TreeLearner for HistLearner {
    fn round(&mut self, r: &[f64], subset: Option<&[usize]>) -> (Vec<f64>, Vec<f64>) {
        let (tree, t, v) = self.inner.fit(r, subset);
        self.trees.push(tree);
        (t, v)
    }

    fn finish(self: Box<Self>, keep: usize) -> (Vec<DecisionTree>, Option<HistForest>) {
        let mut trees = self.trees;
        trees.truncate(keep);
        let cuts = self.inner.cuts().clone();
        (Vec::new(), Some(HistForest { cuts, trees }))
    }
}
