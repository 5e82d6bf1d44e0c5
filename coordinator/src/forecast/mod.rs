//! Forecasting: how fast would this container run on that host?
//!
//! The data are the monitor's CSV files (`herd monitor --out DIR`, or
//! `herd sim --out DIR`): `hosts.csv` and `containers.csv` of one run.
//!
//! Pipeline:
//! 1. [`dataset`]: each run's host and container rows are resampled to a
//!    window (default 5 s: the mean of every sample whose `time` falls in
//!    `[k*w, (k+1)*w)`), each container window is joined with its host's
//!    window and with the sum of its co-tenants (the other containers on that
//!    host in that window). The features describe the container (kind, CPU,
//!    memory, IO, pids), the host (CPU ratios, load, memory, disk, network)
//!    and the neighbours; the target is the container's `ops_per_second`.
//! 2. [`model`]: gradient-boosted regression trees. The trees are gbdt's
//!    exact-greedy `DecisionTree`s; the boosting loop is ours, because gbdt's
//!    own `GBDT::fit` trains a fixed number of trees and cannot stop early.
//!    Each round fits a tree to the residuals of `ln(1 + ops)` (squared error
//!    on the log is close to minimising relative error, which is what MAPE
//!    measures), adds it with shrinkage `eta`, and scores the held-out runs;
//!    training stops `patience` rounds after the best held-out loss and keeps
//!    the trees up to that round. Features may first be binned to at most
//!    `bins` quantile edges (fewer distinct split points, like a histogram
//!    learner). Importance is permutation importance (seeded) on the held-out
//!    rows, plus the number of splits per feature.
//! 3. [`metrics`]: MAE and MAPE overall and per workload kind.
//! 4. [`policy`]: the `forecast` placement score: predicted ops on each
//!    candidate host minus the current ops, net of the migration cost.
//!
//! Runs are the unit of hold-out: rows of one run are correlated in time, so a
//! random row split would score the model on its own training data.

pub mod cost;
pub mod dataset;
pub mod hist;
pub mod metrics;
pub mod model;
pub mod plot;
pub mod policy;
pub mod synth;

use std::path::PathBuf;

/// Everything that can go wrong while building a dataset or a model.
#[derive(Debug, thiserror::Error)]
pub enum ForecastError {
    #[error("{path}: {source}")]
    Io {
        path: PathBuf,
        #[source]
        source: std::io::Error,
    },
    #[error("{path}: CSV: {source}")]
    Csv {
        path: PathBuf,
        #[source]
        source: csv::Error,
    },
    #[error("{path}: missing column `{column}` (header has: {header})")]
    MissingColumn {
        path: PathBuf,
        column: String,
        header: String,
    },
    #[error("{path}:{line}: column `{column}`: `{value}` is not a number")]
    BadValue {
        path: PathBuf,
        line: u64,
        column: String,
        value: String,
    },
    #[error("{path}:{line}: column `{column}` is empty")]
    EmptyValue {
        path: PathBuf,
        line: u64,
        column: String,
    },
    #[error("{0}: no hosts.csv + containers.csv there nor in its subdirectories")]
    NoRuns(PathBuf),
    #[error("no usable rows: {0}")]
    Empty(String),
    #[error("model {path}: {msg}")]
    Model { path: PathBuf, msg: String },
    #[error("{0}")]
    Invalid(String),
    #[error("plot {path}: {msg}")]
    Plot { path: PathBuf, msg: String },
}

pub type Result<T> = std::result::Result<T, ForecastError>;

/// The monitor files' reader errors, in the forecaster's words (the header
/// it found, the cell that is wrong).
impl From<crate::csv::CsvError> for ForecastError {
    fn from(e: crate::csv::CsvError) -> Self {
        use crate::csv::{CsvError, RowError};
        match e {
            CsvError::Io { path, source } => ForecastError::Io { path, source },
            CsvError::Csv { path, source } => ForecastError::Csv { path, source },
            CsvError::MissingColumn {
                path,
                column,
                header,
            } => ForecastError::MissingColumn {
                path,
                column: column.into(),
                header,
            },
            CsvError::Cell {
                path,
                line,
                error: RowError::Empty { column },
            } => ForecastError::EmptyValue {
                path,
                line: line as u64,
                column,
            },
            CsvError::Cell {
                path,
                line,
                error: RowError::NotA { column, value, .. },
            } => ForecastError::BadValue {
                path,
                line: line as u64,
                column,
                value,
            },
            e @ (CsvError::Cell { .. } | CsvError::Bad { .. }) => {
                ForecastError::Invalid(e.to_string())
            }
        }
    }
}
