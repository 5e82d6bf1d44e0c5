//! The `forecast` placement score, as a pure function of a snapshot.
//!
//! For a container `c` on host `S` and each other host `T`:
//! ```text
//! predicted(c, T) = model(features(c, T as it would be with c on it, T's containers))
//! cost(c)         = ops(c) * migration_cost_s / horizon_s
//! net_gain(c, T)  = predicted(c, T) - ops(c) - cost(c)
//! ```
//! `ops(c)` is the measured current rate; the cost spreads the work lost while
//! moving (downtime and warm-up, `migration_cost_s` seconds of it) over the
//! period the gain is expected to last (`horizon_s`, the evaluation period).
//! A move is proposed when its best net gain exceeds both `min_gain_ops` and
//! `min_gain_ratio * ops(c)`. Anti-bounce, as the other policies: a container
//! needs `min_samples` samples and must not have moved in the last
//! `cooldown_s`; at most one container moves into or out of a host per round
//! (each prediction assumes the hosts as they are now), best gains first, and
//! at most `max_moves` per round.
//!
//! The model for this policy must not see the container's achieved rates
//! ([`ACHIEVED_RATE_FEATURES`]): on a contended host they are what contention
//! left, so a model that uses them predicts the same ops everywhere. Train it
//! with those features excluded (`herd forecast train --for-placement`, which
//! also drops the network rates the cluster view lacks); it then answers from
//! the container's kind, threads (pids) and memory and the host's and
//! neighbours' load. [`placement_ready`] checks that.
//!
//! "As it would be with c on it": when a host's core count is known, the
//! target's CPU ratio, load, memory and disk figures get c's own usage added,
//! since the training rows always include the container in its host's figures.

use std::collections::HashSet;

use serde::{Deserialize, Serialize};

use super::dataset::{features, ContainerMetrics, HostMetrics, Neighbours};
use super::model::Model;

/// The container features that measure what it achieved where it runs now.
pub const ACHIEVED_RATE_FEATURES: [&str; 4] = [
    "c_cpu_usage_cores",
    "c_major_faults_per_second",
    "c_io_read_ops_per_second",
    "c_io_write_ops_per_second",
];

/// Host features the placement engine's cluster view does not carry.
pub const VIEW_MISSING_FEATURES: [&str; 2] =
    ["h_net_rx_bytes_per_second", "h_net_tx_bytes_per_second"];

/// The features a model for this policy is trained without.
pub fn placement_excluded() -> Vec<String> {
    ACHIEVED_RATE_FEATURES
        .iter()
        .chain(&VIEW_MISSING_FEATURES)
        .map(|s| s.to_string())
        .collect()
}

/// Whether `model` was trained without [`placement_excluded`] features.
pub fn placement_ready(model: &Model) -> bool {
    placement_excluded()
        .iter()
        .all(|f| model.params.exclude.contains(f))
}

/// Anything that predicts ops/s from feature vectors (the trained [`Model`]).
pub trait Predictor {
    fn predict(&self, features: &[Vec<f32>]) -> Vec<f64>;
}

impl Predictor for Model {
    fn predict(&self, features: &[Vec<f32>]) -> Vec<f64> {
        Model::predict(self, features)
    }
}

#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub struct PolicyConfig {
    pub min_gain_ops: f64,
    pub min_gain_ratio: f64,
    pub migration_cost_s: f64,
    pub horizon_s: f64,
    pub cooldown_s: f64,
    pub min_samples: usize,
    pub max_moves: usize,
}

impl Default for PolicyConfig {
    fn default() -> Self {
        PolicyConfig {
            min_gain_ops: 1.0,
            min_gain_ratio: 0.10,
            migration_cost_s: 2.0,
            horizon_s: 150.0,
            cooldown_s: 150.0,
            min_samples: 6,
            max_moves: 4,
        }
    }
}

/// A host as the policy sees it.
#[derive(Clone, Debug, PartialEq)]
pub struct HostState {
    pub name: String,
    /// `values[10]`, cores, may be NaN (unknown).
    pub metrics: HostMetrics,
}

/// A container as the policy sees it.
#[derive(Clone, Debug, PartialEq)]
pub struct ContainerState {
    pub name: String,
    pub host: String,
    pub metrics: ContainerMetrics,
    /// Measured ops/s now.
    pub ops: f64,
    pub samples: usize,
    /// When it last moved (seconds, same clock as `now`).
    pub last_moved: Option<f64>,
}

#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub struct Candidate {
    pub host: String,
    pub predicted_ops: f64,
    pub net_gain: f64,
}

#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub struct Move {
    pub container: String,
    pub from: String,
    pub to: String,
    pub current_ops: f64,
    pub predicted_ops: f64,
    pub net_gain: f64,
}

/// `host`'s metrics with `c` added (CPU only when the core count is known).
fn with_newcomer(host: &HostState, c: &ContainerMetrics) -> HostMetrics {
    let mut m = host.metrics.clone();
    let add = |x: f64, d: f64| {
        if x.is_finite() && d.is_finite() {
            x + d
        } else {
            x
        }
    };
    let cv = &c.values;
    let cores = m.values[10];
    if cores.is_finite() && cores > 0.0 {
        m.values[0] = add(m.values[0], cv[0] / cores).min(1.0);
        m.values[3] = add(m.values[3], cv[0]);
    }
    m.values[4] = add(m.values[4], cv[1]);
    m.values[6] = add(m.values[6], cv[3] + cv[4]);
    m
}

/// Predicted ops and net gain of `c` on every other host.
pub fn score(
    model: &dyn Predictor,
    c: &ContainerState,
    containers: &[ContainerState],
    hosts: &[HostState],
    cfg: &PolicyConfig,
) -> Vec<Candidate> {
    let targets: Vec<&HostState> = hosts.iter().filter(|h| h.name != c.host).collect();
    let f: Vec<Vec<f32>> = targets
        .iter()
        .map(|h| {
            let n = Neighbours::of(
                containers
                    .iter()
                    .filter(|o| o.host == h.name && o.name != c.name)
                    .map(|o| &o.metrics),
            );
            features(&c.metrics, &with_newcomer(h, &c.metrics), &n)
        })
        .collect();
    let cost = c.ops * cfg.migration_cost_s / cfg.horizon_s.max(1e-9);
    targets
        .iter()
        .zip(model.predict(&f))
        .map(|(h, p)| Candidate {
            host: h.name.clone(),
            predicted_ops: p,
            net_gain: p - c.ops - cost,
        })
        .collect()
}

/// The moves worth making now (see the module docs).
pub fn decide(
    model: &dyn Predictor,
    containers: &[ContainerState],
    hosts: &[HostState],
    now: f64,
    cfg: &PolicyConfig,
) -> Vec<Move> {
    let mut wanted: Vec<Move> = containers
        .iter()
        .filter(|c| c.samples >= cfg.min_samples && c.ops.is_finite())
        .filter(|c| c.last_moved.is_none_or(|t| now - t >= cfg.cooldown_s))
        .filter_map(|c| {
            let best = score(model, c, containers, hosts, cfg)
                .into_iter()
                .max_by(|a, b| a.net_gain.total_cmp(&b.net_gain))?;
            let threshold = cfg.min_gain_ops.max(cfg.min_gain_ratio * c.ops);
            (best.net_gain > threshold).then(|| Move {
                container: c.name.clone(),
                from: c.host.clone(),
                to: best.host,
                current_ops: c.ops,
                predicted_ops: best.predicted_ops,
                net_gain: best.net_gain,
            })
        })
        .collect();
    wanted.sort_by(|a, b| {
        b.net_gain
            .total_cmp(&a.net_gain)
            .then_with(|| a.container.cmp(&b.container))
    });
    let mut busy: HashSet<String> = HashSet::new();
    let mut out = Vec::new();
    for m in wanted {
        if out.len() >= cfg.max_moves {
            break;
        }
        if busy.contains(&m.from) || busy.contains(&m.to) {
            continue;
        }
        busy.insert(m.from.clone());
        busy.insert(m.to.clone());
        out.push(m);
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    /// Ops = 1000 minus 1000 x the host's CPU user ratio: an idle host is fastest.
    struct IdleIsFast;
    impl Predictor for IdleIsFast {
        fn predict(&self, f: &[Vec<f32>]) -> Vec<f64> {
            f.iter().map(|f| 1000.0 * (1.0 - f[7] as f64)).collect()
        }
    }

    fn host(name: &str, cpu: f64) -> HostState {
        let mut values = [0.0; 11];
        values[0] = cpu;
        values[10] = 4.0;
        HostState {
            name: name.into(),
            metrics: HostMetrics { values },
        }
    }

    fn cont(name: &str, host: &str, ops: f64) -> ContainerState {
        ContainerState {
            name: name.into(),
            host: host.into(),
            metrics: ContainerMetrics {
                kind: "cpu".into(),
                values: [1.0, 0.0, 0.0, 0.0, 0.0, 2.0],
            },
            ops,
            samples: 10,
            last_moved: None,
        }
    }

    #[test]
    fn moves_to_the_best_host_net_of_cost() {
        let hosts = [host("a", 0.9), host("b", 0.5), host("c", 0.0)];
        let cs = [cont("x", "a", 100.0)];
        let cfg = PolicyConfig::default();
        let s = score(&IdleIsFast, &cs[0], &cs, &hosts, &cfg);
        // c with x on it: 0 + 1/4 cores -> 750 predicted; cost 100*2/150.
        let c = s.iter().find(|c| c.host == "c").unwrap();
        assert!((c.predicted_ops - 750.0).abs() < 1e-3);
        assert!((c.net_gain - (750.0 - 100.0 - 100.0 * 2.0 / 150.0)).abs() < 1e-3);
        let m = decide(&IdleIsFast, &cs, &hosts, 0.0, &cfg);
        assert_eq!(m.len(), 1);
        assert_eq!(m[0].to, "c");
    }

    #[test]
    fn threshold_cooldown_and_samples_hold_moves_back() {
        let hosts = [host("a", 0.5), host("b", 0.45)];
        let cfg = PolicyConfig::default();
        // b with x on it: 0.45 + 1/4 -> 300 predicted, vs 400 now: no gain.
        assert!(decide(&IdleIsFast, &[cont("x", "a", 400.0)], &hosts, 0.0, &cfg).is_empty());
        // A gain of 16, under 10 % of 280.
        assert!(decide(&IdleIsFast, &[cont("x", "a", 280.0)], &hosts, 0.0, &cfg).is_empty());
        // Clear gain.
        assert_eq!(
            decide(&IdleIsFast, &[cont("x", "a", 200.0)], &hosts, 0.0, &cfg).len(),
            1
        );
        let mut c = cont("x", "a", 200.0);
        c.last_moved = Some(100.0);
        assert!(decide(&IdleIsFast, &[c.clone()], &hosts, 200.0, &cfg).is_empty());
        assert_eq!(
            decide(&IdleIsFast, &[c.clone()], &hosts, 250.0, &cfg).len(),
            1
        );
        c.last_moved = None;
        c.samples = 2;
        assert!(decide(&IdleIsFast, &[c], &hosts, 0.0, &cfg).is_empty());
    }

    #[test]
    fn one_move_per_host_per_round() {
        let hosts = [host("a", 0.9), host("b", 0.9), host("c", 0.0)];
        let cs = [cont("x", "a", 100.0), cont("y", "b", 50.0)];
        let m = decide(&IdleIsFast, &cs, &hosts, 0.0, &PolicyConfig::default());
        assert_eq!(m.len(), 1);
        assert_eq!(m[0].container, "y", "the larger net gain goes first");
    }
}
