//! herd-coordinator: cluster view, placement policies, gbdt forecasting,
//! scenario generator, simulator and reports.

pub mod forecast;
