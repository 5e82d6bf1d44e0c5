//! herd-coordinator: the cluster view, placement policies, gbdt
//! forecasting, scenario generator, simulator and reports.
//!
//! * [`csv`]: the monitor's CSV files (hosts, containers, migrations,
//!   decisions): one schema, one codec, one row type per file.
//! * [`tracker`]: the migration tracker (agents' facts -> migrations.csv
//!   rows; moves, cooldowns and in-flight moves per container).
//! * [`view`]: [`view::ClusterView`], what a policy decides on, built from a
//!   window of samples.
//! * [`policy`]: `decide(&ClusterView) -> Vec<Plan>` policies and their
//!   registry.
//! * [`decider`]: the decision loop (window, move tracker, schedule) that
//!   the simulator and the live coordinator both drive.
//! * [`scenario`]: seeded staircase and random scenarios.
//! * [`sim`]: the simulator running a scenario under a policy with the same
//!   policy code, writing the same CSVs as a live run.
//! * [`forecast`]: gbdt ops/s forecasting: dataset, training, model.
//! * [`report`]: the thesis's table and SVG plots over one or more runs.

pub mod csv;
pub mod decider;
pub mod forecast;
pub mod policy;
pub mod report;
pub mod scenario;
pub mod sim;
pub mod tracker;
pub mod view;
