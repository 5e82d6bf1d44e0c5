//! `oltp-disk`: relieve disk-contended hosts, else `cpu-greedy-threads`.
//!
//! The thesis's section 5.5.2 gives the parameters (defaults here); its text
//! is not at hand, so the six conditions are defined from the parameters'
//! names. A disk move of container `c` from host `h` to host `t` needs all
//! of ([`Rule`], checked in this order by [`OltpDisk::check`]):
//!
//! 1. **samples**: `h`, `t` and `c` each miss at most
//!    `missing_samples_threshold` (0.02) of their expected samples in the
//!    window: a decision on gappy data is skipped;
//! 2. **contended**: `h` does more than
//!    `disk_ops_baseline * (1 + baseline_threshold)` disk ops/s
//!    (8000 * 1.005 = 8040);
//! 3. **disk-active**: `c` does at least `disk_active_threshold` (0.15) of
//!    `h`'s disk ops (its read + write ops over the host's);
//! 4. **target stays uncontended**: `t`'s disk ops plus `c`'s stay at or
//!    under the same contention line;
//! 5. **ops reward**: the source's disk ops exceed the target's after the
//!    move by at least `disk_ops_reward_threshold` (0.35) of the baseline:
//!    `(ops(h) - ops(t) - ops(c)) / baseline >= 0.35`;
//! 6. **busy reward**: the source's disk busy ratio exceeds the target's by
//!    at least `disk_active_reward_threshold` (0.15).
//!
//! The target is the other host with the lowest disk busy ratio (ties: fewer
//! disk ops, then host order). Contended hosts are taken busiest first; on
//! each, the container moved is the one with the most disk ops among those
//! passing every condition and the anti-bounce rules. Each host takes part
//! in one move at most; when the disk moves leave budget (`max_moves`),
//! the remaining hosts go through `cpu-greedy-threads`' balance.

use super::balance::balance_excluding;
use super::cpu_greedy_threads::thread_demand;
use super::{cmp_f64, PlacementConfig, Plan, Policy};
use crate::view::{ClusterView, ContainerView, HostView};

/// The thesis's oltp-disk parameters.
#[derive(Debug, Clone, PartialEq)]
pub struct OltpParams {
    pub disk_ops_baseline: f64,
    pub baseline_threshold: f64,
    pub disk_ops_reward_threshold: f64,
    pub disk_active_threshold: f64,
    pub disk_active_reward_threshold: f64,
    pub missing_samples_threshold: f64,
}

impl Default for OltpParams {
    fn default() -> Self {
        OltpParams {
            disk_ops_baseline: 8000.0,
            baseline_threshold: 0.005,
            disk_ops_reward_threshold: 0.35,
            disk_active_threshold: 0.15,
            disk_active_reward_threshold: 0.15,
            missing_samples_threshold: 0.02,
        }
    }
}

/// The condition that refused a disk move.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Rule {
    MissingSamples,
    NotContended,
    NotDiskActive,
    TargetContended,
    OpsReward,
    BusyReward,
}

pub struct OltpDisk {
    cfg: PlacementConfig,
}

impl OltpDisk {
    pub fn new(cfg: PlacementConfig) -> Self {
        OltpDisk { cfg }
    }

    /// [`OltpDisk::new`] with each [`OltpParams`] field settable by
    /// `--policy-opt NAME=VALUE` (e.g. `disk_ops_baseline=150` for lab
    /// hosts whose disk is limited to a few hundred IOPS).
    pub fn from_options(cfg: &PlacementConfig) -> Result<Self, super::PolicyError> {
        let mut cfg = cfg.clone();
        let p = &mut cfg.oltp;
        for (k, slot) in [
            ("disk_ops_baseline", &mut p.disk_ops_baseline),
            ("baseline_threshold", &mut p.baseline_threshold),
            (
                "disk_ops_reward_threshold",
                &mut p.disk_ops_reward_threshold,
            ),
            ("disk_active_threshold", &mut p.disk_active_threshold),
            (
                "disk_active_reward_threshold",
                &mut p.disk_active_reward_threshold,
            ),
            (
                "missing_samples_threshold",
                &mut p.missing_samples_threshold,
            ),
        ] {
            if let Some(v) = cfg.options.get(k) {
                *slot = v
                    .parse::<f64>()
                    .ok()
                    .filter(|x| x.is_finite() && *x >= 0.0)
                    .ok_or_else(|| super::PolicyError::Config {
                        policy: "oltp-disk".into(),
                        msg: format!("{k}={v:?} is not a number >= 0"),
                    })?;
            }
        }
        if cfg.oltp.disk_ops_baseline <= 0.0 {
            return Err(super::PolicyError::Config {
                policy: "oltp-disk".into(),
                msg: "disk_ops_baseline must be above 0".into(),
            });
        }
        Ok(OltpDisk { cfg })
    }

    fn line(&self) -> f64 {
        let p = &self.cfg.oltp;
        p.disk_ops_baseline * (1.0 + p.baseline_threshold)
    }

    /// The six conditions for moving `c` from `h` to `t`.
    pub fn check(&self, h: &HostView, c: &ContainerView, t: &HostView) -> Result<(), Rule> {
        let p = &self.cfg.oltp;
        let m = p.missing_samples_threshold;
        if h.missing_ratio > m || t.missing_ratio > m || c.missing_ratio > m {
            return Err(Rule::MissingSamples);
        }
        if h.disk_ops_per_second <= self.line() {
            return Err(Rule::NotContended);
        }
        let cops = c.io_ops_per_second();
        if cops / h.disk_ops_per_second < p.disk_active_threshold {
            return Err(Rule::NotDiskActive);
        }
        if t.disk_ops_per_second + cops > self.line() {
            return Err(Rule::TargetContended);
        }
        let reward = (h.disk_ops_per_second - t.disk_ops_per_second - cops) / p.disk_ops_baseline;
        if reward < p.disk_ops_reward_threshold {
            return Err(Rule::OpsReward);
        }
        if h.disk_busy_ratio - t.disk_busy_ratio < p.disk_active_reward_threshold {
            return Err(Rule::BusyReward);
        }
        Ok(())
    }

    fn disk_moves(&self, view: &ClusterView, used: &mut [bool]) -> Vec<Plan> {
        let mut plans = Vec::new();
        let mut sources: Vec<usize> = (0..view.hosts.len())
            .filter(|&h| view.hosts[h].disk_ops_per_second > self.line())
            .collect();
        sources.sort_by(|&a, &b| {
            cmp_f64(
                view.hosts[b].disk_ops_per_second,
                view.hosts[a].disk_ops_per_second,
            )
            .then(a.cmp(&b))
        });
        for src in sources {
            if plans.len() >= self.cfg.max_moves || used[src] {
                continue;
            }
            let Some(tgt) = (0..view.hosts.len())
                .filter(|&t| t != src && !used[t])
                .min_by(|&a, &b| {
                    let (x, y) = (&view.hosts[a], &view.hosts[b]);
                    cmp_f64(x.disk_busy_ratio, y.disk_busy_ratio)
                        .then(cmp_f64(x.disk_ops_per_second, y.disk_ops_per_second))
                        .then(a.cmp(&b))
                })
            else {
                break;
            };
            let (h, t) = (&view.hosts[src], &view.hosts[tgt]);
            let best = view
                .on_host(src)
                .iter()
                .map(|&i| &view.containers[i])
                .filter(|c| self.cfg.anti_bounce.eligible(c, view.time))
                .filter(|c| self.check(h, c, t).is_ok())
                .max_by(|a, b| {
                    cmp_f64(a.io_ops_per_second(), b.io_ops_per_second())
                        .then_with(|| b.name.cmp(&a.name))
                });
            if let Some(c) = best {
                plans.push(Plan {
                    container: c.name.clone(),
                    from: h.name.clone(),
                    to: t.name.clone(),
                    reason: format!(
                        "disk: host {:.0} ops/s busy {:.2} vs {:.0} busy {:.2}; container {:.0} ops/s",
                        h.disk_ops_per_second,
                        h.disk_busy_ratio,
                        t.disk_ops_per_second,
                        t.disk_busy_ratio,
                        c.io_ops_per_second()
                    ),
                });
                used[src] = true;
                used[tgt] = true;
            }
        }
        plans
    }
}

impl Policy for OltpDisk {
    fn name(&self) -> &str {
        "oltp-disk"
    }
    fn decide(&self, view: &ClusterView) -> Vec<Plan> {
        let mut used = vec![false; view.hosts.len()];
        let mut plans = self.disk_moves(view, &mut used);
        let left = self.cfg.max_moves.saturating_sub(plans.len());
        if left > 0 {
            let used: Vec<usize> = (0..used.len()).filter(|&h| used[h]).collect();
            let idle = self.cfg.idle_pids;
            plans.extend(balance_excluding(
                view,
                &self.cfg,
                &|c, h| thread_demand(c, h, idle),
                "pids",
                &used,
                left,
            ));
        }
        plans
    }
}

#[cfg(test)]
mod tests {
    use super::super::testutil::*;
    use super::*;

    fn disk_host(name: &str, ops: f64, busy: f64) -> HostView {
        let mut h = host(name, 4.0, 0.3);
        h.load1 = 1.0;
        h.disk_ops_per_second = ops;
        h.disk_busy_ratio = busy;
        h
    }

    fn disk_ctr(name: &str, host: usize, ops: f64) -> ContainerView {
        let mut c = ctr(name, host, 0.2, 5.0);
        c.io_write_ops_per_second = ops * 0.5;
        c.io_read_ops_per_second = ops * 0.5;
        c
    }

    /// A case that passes all six conditions: n1 does 12000 ops/s (busy
    /// 0.9), db does 4000 of them; n2 does 1000 (busy 0.1).
    fn base() -> (HostView, ContainerView, HostView) {
        (
            disk_host("n1", 12000.0, 0.9),
            disk_ctr("db", 0, 4000.0),
            disk_host("n2", 1000.0, 0.1),
        )
    }

    fn pol() -> OltpDisk {
        OltpDisk::new(PlacementConfig::default())
    }

    #[test]
    fn all_six_conditions_pass_and_the_move_is_planned() {
        let (h, c, t) = base();
        assert_eq!(pol().check(&h, &c, &t), Ok(()));
        let v = view(
            vec![h, disk_host("n3", 3000.0, 0.3), t],
            vec![c, disk_ctr("small", 0, 500.0)],
        );
        let p = pol().decide(&v);
        assert_eq!(p.len(), 1, "{p:?}");
        assert_eq!((p[0].container.as_str(), p[0].to.as_str()), ("db", "n2"));
        assert!(p[0].reason.starts_with("disk:"));
    }

    #[test]
    fn rule_1_missing_samples() {
        let (h, mut c, mut t) = base();
        c.missing_ratio = 0.03;
        assert_eq!(pol().check(&h, &c, &t), Err(Rule::MissingSamples));
        c.missing_ratio = 0.02;
        t.missing_ratio = 0.5;
        assert_eq!(pol().check(&h, &c, &t), Err(Rule::MissingSamples));
    }

    #[test]
    fn rule_2_contended_is_above_baseline_plus_threshold() {
        let (mut h, c, t) = base();
        h.disk_ops_per_second = 8039.0; // under 8000 * 1.005
        assert_eq!(pol().check(&h, &c, &t), Err(Rule::NotContended));
        h.disk_ops_per_second = 8041.0;
        assert_ne!(pol().check(&h, &c, &t), Err(Rule::NotContended));
    }

    #[test]
    fn rule_3_disk_active_share() {
        let (h, mut c, t) = base();
        c.io_read_ops_per_second = 0.0;
        c.io_write_ops_per_second = 0.14 * 12000.0;
        assert_eq!(pol().check(&h, &c, &t), Err(Rule::NotDiskActive));
        c.io_write_ops_per_second = 0.15 * 12000.0;
        assert_eq!(pol().check(&h, &c, &t), Ok(()));
    }

    #[test]
    fn rule_4_target_must_stay_uncontended() {
        let (h, c, mut t) = base();
        t.disk_ops_per_second = 4100.0; // + 4000 > 8040
        assert_eq!(pol().check(&h, &c, &t), Err(Rule::TargetContended));
    }

    #[test]
    fn rule_5_ops_reward() {
        let (mut h, c, mut t) = base();
        // (10000 - 3500 - 4000) / 8000 = 0.31 < 0.35
        h.disk_ops_per_second = 10000.0;
        t.disk_ops_per_second = 3500.0;
        assert_eq!(pol().check(&h, &c, &t), Err(Rule::OpsReward));
        t.disk_ops_per_second = 3000.0; // 0.375
        assert_eq!(pol().check(&h, &c, &t), Ok(()));
    }

    #[test]
    fn rule_6_busy_reward() {
        let (h, c, mut t) = base();
        t.disk_busy_ratio = 0.76;
        assert_eq!(pol().check(&h, &c, &t), Err(Rule::BusyReward));
        t.disk_busy_ratio = 0.75;
        assert_eq!(pol().check(&h, &c, &t), Ok(()));
    }

    #[test]
    fn params_come_from_policy_options() {
        let mut c = PlacementConfig::default();
        c.options.insert("disk_ops_baseline".into(), "150".into());
        let p = OltpDisk::from_options(&c).unwrap();
        assert_eq!(p.cfg.oltp.disk_ops_baseline, 150.0);
        assert_eq!(p.cfg.oltp.disk_active_threshold, 0.15);
        let (mut h, c1, t) = base();
        h.disk_ops_per_second = 200.0;
        let mut c1 = c1;
        (c1.io_read_ops_per_second, c1.io_write_ops_per_second) = (30.0, 40.0);
        let mut t = t;
        t.disk_ops_per_second = 10.0;
        assert_eq!(p.check(&h, &c1, &t), Ok(()));
        for bad in ["x", "-1", "NaN"] {
            let mut c = PlacementConfig::default();
            c.options
                .insert("disk_ops_reward_threshold".into(), bad.into());
            let e = OltpDisk::from_options(&c).err().unwrap().to_string();
            assert!(e.contains("disk_ops_reward_threshold"), "{e}");
        }
    }

    #[test]
    fn cooldown_blocks_the_disk_move_and_cpu_fallback_runs_otherwise() {
        let (h, mut c, t) = base();
        c.last_moved = Some(900.0);
        let v = view(vec![h, t], vec![c]);
        assert!(pol().decide(&v).is_empty());
        // no disk contention, but a CPU over-commit: falls back to threads
        let mut n1 = host("n1", 2.0, 1.0);
        n1.load1 = 6.0;
        let v = view(
            vec![n1, host("n2", 4.0, 0.0)],
            vec![
                ctr("wide", 0, 4.0 * 2.0 / 6.0, 5.0),
                ctr("a", 0, 2.0 / 6.0, 2.0),
            ],
        );
        let p = pol().decide(&v);
        assert_eq!(p.len(), 1);
        assert_eq!(p[0].container, "wide");
        assert!(p[0].reason.starts_with("pids"));
    }
}
