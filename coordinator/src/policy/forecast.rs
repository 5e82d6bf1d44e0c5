//! `forecast`: move the container whose predicted ops/s on another host beat
//! its current ops/s by the most, net of the migration cost. The scoring is
//! [`crate::forecast::policy`] (its module docs carry the rule); this maps the
//! [`ClusterView`] onto it and its moves onto [`Plan`]s.
//!
//! Options (`--policy-opt KEY=VALUE`): `model=PATH` (required: a model from
//! `herd forecast train --for-placement`), `min_gain_ops`, `min_gain_ratio`,
//! `error_margin` (default 1: a gain must beat the model's held-out error for
//! the container's kind), `migration_cost_s` (default: what moves cost on
//! the model's training runs, else 2 s), `horizon_s` (default: the longer of
//! the evaluation period and the cooldown), `neighbours` (default 1: count
//! what a move does to the other containers of both hosts; 0 judges the
//! mover alone). Anti-bounce (min samples,
//! cooldown) and the moves per decision come from the [`PlacementConfig`] as
//! for every policy.

use std::path::Path;

use crate::forecast::dataset::{kind_from_name, ContainerMetrics, HostMetrics};
use crate::forecast::model::Model;
use crate::forecast::policy::{self as fp, ContainerState, HostState, PolicyConfig};
use crate::view::ClusterView;

use super::{PlacementConfig, Plan, Policy, PolicyError};

pub struct Forecast {
    model: Model,
    cfg: PolicyConfig,
}

fn config_err(msg: String) -> PolicyError {
    PolicyError::Config {
        policy: "forecast".into(),
        msg,
    }
}

impl Forecast {
    pub fn new(c: &PlacementConfig) -> Result<Self, PolicyError> {
        let path = c.options.get("model").ok_or_else(|| {
            config_err(
                "needs a model: --policy-opt model=PATH (herd forecast train --for-placement)"
                    .into(),
            )
        })?;
        let model = Model::load(Path::new(path)).map_err(|e| config_err(e.to_string()))?;
        if !fp::placement_ready(&model) {
            return Err(config_err(format!(
                "{path} uses the container's achieved rates or features the view lacks: \
                 train it with --for-placement"
            )));
        }
        let mut cfg = PolicyConfig {
            min_samples: c.anti_bounce.min_samples as usize,
            cooldown_s: c.anti_bounce.cooldown_s,
            // A moved container stays at least the cooldown: its gain lasts that long.
            horizon_s: c.period_s.max(c.anti_bounce.cooldown_s),
            max_moves: c.max_moves,
            ..Default::default()
        };
        cfg.calibrate(&model);
        for (k, slot) in [
            ("min_gain_ops", &mut cfg.min_gain_ops),
            ("min_gain_ratio", &mut cfg.min_gain_ratio),
            ("migration_cost_s", &mut cfg.migration_cost_s),
            ("error_margin", &mut cfg.error_margin),
            ("horizon_s", &mut cfg.horizon_s),
        ] {
            if let Some(v) = c.options.get(k) {
                *slot = v
                    .parse()
                    .map_err(|_| config_err(format!("{k}={v:?} is not a number")))?;
            }
        }
        if let Some(v) = c.options.get("neighbours") {
            cfg.neighbours = match v.as_str() {
                "1" | "true" | "yes" => true,
                "0" | "false" | "no" => false,
                _ => return Err(config_err(format!("neighbours={v:?} is not 0 or 1"))),
            };
        }
        Ok(Forecast { model, cfg })
    }
}

impl Policy for Forecast {
    fn name(&self) -> &str {
        "forecast"
    }

    fn decide(&self, v: &ClusterView) -> Vec<Plan> {
        let hosts: Vec<HostState> = v
            .hosts
            .iter()
            .map(|h| HostState {
                name: h.name.clone(),
                metrics: HostMetrics {
                    values: [
                        h.cpu_user_ratio,
                        h.cpu_system_ratio,
                        h.cpu_iowait_ratio,
                        h.load1,
                        h.memory_used_bytes,
                        h.major_faults_per_second,
                        h.disk_ops_per_second,
                        h.disk_busy_ratio,
                        f64::NAN, // the view has no network rates
                        f64::NAN,
                        if h.cores > 0.0 { h.cores } else { f64::NAN },
                    ],
                },
            })
            .collect();
        let containers: Vec<ContainerState> = v
            .containers
            .iter()
            .map(|c| ContainerState {
                name: c.name.clone(),
                host: v.hosts[c.host].name.clone(),
                metrics: ContainerMetrics {
                    kind: c
                        .kind
                        .map(|k| k.as_str().to_string())
                        .unwrap_or_else(|| kind_from_name(&c.name)),
                    values: [
                        c.cpu_usage_cores,
                        c.memory_bytes,
                        c.major_faults_per_second,
                        c.io_read_ops_per_second,
                        c.io_write_ops_per_second,
                        c.pids,
                    ],
                },
                // No ops (or on the move): a neighbour, never a candidate.
                ops: c.ops_per_second.unwrap_or(f64::NAN),
                samples: if c.migrating { 0 } else { c.samples as usize },
                last_moved: c.last_moved,
            })
            .collect();
        fp::decide(&self.model, &containers, &hosts, v.time, &self.cfg)
            .into_iter()
            .map(|m| Plan {
                reason: format!(
                    "forecast {:.0} -> {:.0} ops/s on {} (now {:.0}; net {:+.0}%, {:+.0} ops/s; \
                     with the neighbours {:+.0} ops/s)",
                    m.predicted_here,
                    m.predicted_ops,
                    m.to,
                    m.current_ops,
                    100.0 * m.net_ratio,
                    m.net_gain,
                    m.cluster_gain
                ),
                container: m.container,
                from: m.from,
                to: m.to,
            })
            .collect()
    }
}
