//! Placement policies: pure functions from a [`ClusterView`] to a list of
//! [`Plan`]s. The same code decides live (the coordinator), in the
//! simulator and in unit tests; a policy holds only its configuration, never
//! state between decisions (the move history it needs for the cooldown
//! comes in the view, from the [`MigrationTracker`](crate::tracker::MigrationTracker)).
//!
//! | name | what it does |
//! |---|---|
//! | `none` | nothing (the control run) |
//! | `cpu-greedy` | the thesis's greedy policy: from the host with the highest CPU ratio, move the container using the least CPU (normalised by the host's cores) to the host with the most free cores ([`cpu_greedy`]) |
//! | `cpu-greedy-threads` | estimates each container's CPU demand from its pids count and moves demand from over-committed hosts to hosts with free cores ([`cpu_greedy_threads`], [`balance`]) |
//! | `oltp-disk` | relieves disk-contended hosts (six conditions, the thesis's section 5.5.2 parameters), else falls back to `cpu-greedy-threads` ([`oltp_disk`]) |
//! | `oracle` | the balance of `cpu-greedy-threads` with each workload's real thread count and kind: the thesis's ideal ([`oracle`]) |
//!
//! Every policy goes through the same anti-bounce rules ([`AntiBounce`]): a
//! container is only moved when it has at least `min_samples` samples in
//! the window, is not being moved, and did not move in the last
//! `cooldown_s` seconds. Within one decision each host takes part in at
//! most one move, and a decision makes at most `max_moves` moves.
//!
//! Timing (used by whoever runs the policy, not by the policy): the first
//! decision comes `delay_s` after the start, then one every `period_s`, each
//! on the samples of the last `window_s` seconds.
//!
//! Adding a policy: write a type implementing [`Policy`], add one
//! [`PolicyEntry`] to [`REGISTRY`]. Policy-specific settings go in
//! [`PlacementConfig::options`] (`--policy-opt key=value` on the command
//! line).

pub mod balance;
pub mod cpu_greedy;
pub mod cpu_greedy_threads;
pub mod forecast;
pub mod oltp_disk;
pub mod oracle;

use std::collections::BTreeMap;

use crate::view::{ClusterView, ContainerView};

pub use oltp_disk::OltpParams;

/// One move a policy wants: `container` from host `from` to host `to`.
#[derive(Debug, Clone, PartialEq)]
pub struct Plan {
    pub container: String,
    pub from: String,
    pub to: String,
    /// Why, for decisions.csv (short, no line breaks).
    pub reason: String,
}

/// A placement policy.
pub trait Policy: Send + Sync {
    /// The registry name (`cpu-greedy`, ...).
    fn name(&self) -> &str;
    /// The moves to make now. Must depend on nothing but `view` and the
    /// policy's configuration.
    fn decide(&self, view: &ClusterView) -> Vec<Plan>;
}

/// The anti-bounce rules every policy applies to a candidate container.
#[derive(Debug, Clone, PartialEq)]
pub struct AntiBounce {
    /// Samples the container needs in the window.
    pub min_samples: u32,
    /// Seconds after a move (or a failed attempt) before the next one.
    pub cooldown_s: f64,
}

impl Default for AntiBounce {
    fn default() -> Self {
        AntiBounce {
            min_samples: 10,
            cooldown_s: 450.0,
        }
    }
}

impl AntiBounce {
    /// `Ok` when `c` may move at `now`, else the rule that forbids it.
    pub fn check(&self, c: &ContainerView, now: f64) -> Result<(), &'static str> {
        if c.migrating {
            return Err("being moved");
        }
        if c.samples < self.min_samples {
            return Err("too few samples");
        }
        if let Some(t) = c.last_moved {
            if now - t < self.cooldown_s {
                return Err("cooldown");
            }
        }
        Ok(())
    }
    pub fn eligible(&self, c: &ContainerView, now: f64) -> bool {
        self.check(c, now).is_ok()
    }
}

/// Everything a policy and its runner are configured with.
#[derive(Debug, Clone, PartialEq)]
pub struct PlacementConfig {
    /// Seconds of samples a decision looks at.
    pub window_s: f64,
    /// Seconds between decisions.
    pub period_s: f64,
    /// Seconds before the first decision.
    pub delay_s: f64,
    pub anti_bounce: AntiBounce,
    /// Moves per decision, at most.
    pub max_moves: usize,
    /// `cpu-greedy`: the busiest host's CPU ratio must exceed the target's
    /// by this much.
    pub min_imbalance: f64,
    /// `cpu-greedy`: containers using less CPU than this (cores) are idle,
    /// not candidates.
    pub min_container_cpu: f64,
    /// Demand balancing: a move must add at least this many served cores
    /// (at most half the target's cores).
    pub min_gain_cores: f64,
    /// `cpu-greedy-threads`: threads every container has that do no work
    /// (its init or reporter), subtracted from its pids count.
    pub idle_pids: f64,
    pub oltp: OltpParams,
    /// Policy-specific settings (`key=value`), for policies added later.
    pub options: BTreeMap<String, String>,
}

impl Default for PlacementConfig {
    fn default() -> Self {
        PlacementConfig {
            window_s: 30.0,
            period_s: 150.0,
            delay_s: 150.0,
            anti_bounce: AntiBounce::default(),
            max_moves: 2,
            min_imbalance: 0.2,
            min_container_cpu: 0.05,
            min_gain_cores: 0.5,
            idle_pids: 1.0,
            oltp: OltpParams::default(),
            options: BTreeMap::new(),
        }
    }
}

/// What went wrong building a policy.
#[derive(Debug, thiserror::Error)]
pub enum PolicyError {
    #[error("unknown policy {0:?} (known: {known})", known = names().join(", "))]
    Unknown(String),
    #[error("policy {policy}: {msg}")]
    Config { policy: String, msg: String },
}

/// One registered policy.
pub struct PolicyEntry {
    pub name: &'static str,
    pub about: &'static str,
    pub build: fn(&PlacementConfig) -> Result<Box<dyn Policy>, PolicyError>,
}

/// Every policy, control first, the oracle last (reports keep this order).
pub static REGISTRY: &[PolicyEntry] = &[
    PolicyEntry {
        name: "none",
        about: "no moves (control)",
        build: |_| Ok(Box::new(NoPolicy)),
    },
    PolicyEntry {
        name: "cpu-greedy",
        about: "busiest host's lowest-CPU container to the host with most free CPU",
        build: |c| Ok(Box::new(cpu_greedy::CpuGreedy::new(c.clone()))),
    },
    PolicyEntry {
        name: "cpu-greedy-threads",
        about: "demand from pids, over-committed hosts to free cores",
        build: |c| {
            Ok(Box::new(cpu_greedy_threads::CpuGreedyThreads::new(
                c.clone(),
            )))
        },
    },
    PolicyEntry {
        name: "oltp-disk",
        about: "disk-contended hosts first (thesis 5.5.2), else cpu-greedy-threads",
        build: |c| Ok(Box::new(oltp_disk::OltpDisk::from_options(c)?)),
    },
    PolicyEntry {
        name: "forecast",
        about: "gbdt-predicted ops gain net of the migration cost (--policy-opt model=PATH)",
        build: |c| Ok(Box::new(forecast::Forecast::new(c)?)),
    },
    PolicyEntry {
        name: "oracle",
        about: "demand balance with each workload's real threads and kind",
        build: |c| Ok(Box::new(oracle::Oracle::new(c.clone()))),
    },
];

/// Registered names, in registry order.
pub fn names() -> Vec<&'static str> {
    REGISTRY.iter().map(|e| e.name).collect()
}

/// Builds the policy called `name`.
pub fn build(name: &str, cfg: &PlacementConfig) -> Result<Box<dyn Policy>, PolicyError> {
    match REGISTRY.iter().find(|e| e.name == name) {
        Some(e) => (e.build)(cfg),
        None => Err(PolicyError::Unknown(name.to_string())),
    }
}

/// The control: never moves anything.
pub struct NoPolicy;

impl Policy for NoPolicy {
    fn name(&self) -> &str {
        "none"
    }
    fn decide(&self, _: &ClusterView) -> Vec<Plan> {
        Vec::new()
    }
}

/// Deterministic "largest first" order for floats with a name tie-break.
pub(crate) fn cmp_f64(a: f64, b: f64) -> std::cmp::Ordering {
    a.total_cmp(&b)
}

#[cfg(test)]
pub(crate) mod testutil {
    use crate::view::{ClusterView, ContainerView, HostView};

    pub fn host(name: &str, cores: f64, cpu: f64) -> HostView {
        HostView {
            name: name.into(),
            cores,
            cpu_user_ratio: cpu,
            load1: cpu * cores,
            samples: 30,
            ..Default::default()
        }
    }

    pub fn ctr(name: &str, host: usize, cpu: f64, pids: f64) -> ContainerView {
        ContainerView {
            name: name.into(),
            host,
            cpu_usage_cores: cpu,
            pids,
            samples: 30,
            memory_bytes: 64e6,
            ..Default::default()
        }
    }

    pub fn view(hosts: Vec<HostView>, containers: Vec<ContainerView>) -> ClusterView {
        ClusterView::new(1000.0, hosts, containers)
    }
}

#[cfg(test)]
mod tests {
    use super::testutil::*;
    use super::*;

    #[test]
    fn registry_builds_every_policy_and_refuses_unknown_names() {
        let cfg = PlacementConfig::default();
        for n in names().into_iter().filter(|n| *n != "forecast") {
            assert_eq!(build(n, &cfg).unwrap().name(), n);
        }
        // The forecast policy needs a model, and says how to give one.
        let e = build("forecast", &cfg).err().unwrap().to_string();
        assert!(e.contains("model=PATH"), "{e}");
        let e = build("cpu-greedier", &cfg).err().unwrap().to_string();
        assert!(e.contains("unknown policy \"cpu-greedier\""), "{e}");
        assert!(e.contains("oltp-disk"), "{e}");
    }

    #[test]
    fn anti_bounce_rules() {
        let ab = AntiBounce {
            min_samples: 10,
            cooldown_s: 100.0,
        };
        let mut c = ctr("a", 0, 1.0, 2.0);
        assert_eq!(ab.check(&c, 1000.0), Ok(()));
        c.samples = 9;
        assert_eq!(ab.check(&c, 1000.0), Err("too few samples"));
        c.samples = 10;
        c.last_moved = Some(950.0);
        assert_eq!(ab.check(&c, 1000.0), Err("cooldown"));
        assert_eq!(ab.check(&c, 1050.0), Ok(()));
        c.migrating = true;
        assert_eq!(ab.check(&c, 5000.0), Err("being moved"));
    }

    #[test]
    fn none_never_moves() {
        let v = view(
            vec![host("n1", 2.0, 1.0), host("n2", 2.0, 0.0)],
            vec![ctr("a", 0, 1.0, 2.0), ctr("b", 0, 1.0, 2.0)],
        );
        assert!(NoPolicy.decide(&v).is_empty());
    }
}
