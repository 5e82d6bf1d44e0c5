//! [`Decider`]: the decision loop around a policy, shared by the simulator
//! and the live coordinator: it owns the sample [`Window`], the
//! [`MigrationTracker`] and the schedule, so a runner only feeds it samples
//! and migration events and carries out the plans it hands back.
//!
//! ```text
//! runner                               Decider
//!   set_host / set_threads  ------->   hosts (cores), oracle knowledge
//!   every sample: push_host/_container (ignored before the window opens)
//!   every migrations.csv event: record  (cooldowns, in-flight moves)
//!   due(now)? --yes--> decide(now) --> (view, plans); the window re-opens
//!                                       at next decision - window_s
//!   for each plan: started(plan, now), then the executor's answer:
//!     moved: record(moved event) | failed: failed(container, now)
//! ```
//!
//! Times are seconds on the runner's clock (unix time live, seconds since
//! the start in the simulator). The first decision comes `delay_s` after
//! `start`, then one every `period_s`; each looks at the samples of the
//! last `window_s` seconds.

use crate::csv::{ContainerRow, HostRow, MigrationRow};
use crate::policy::{PlacementConfig, Plan, Policy};
use crate::tracker::MigrationTracker;
use crate::view::{ClusterView, HostInfo, Window};

/// The decision loop of one policy.
pub struct Decider {
    cfg: PlacementConfig,
    policy: Box<dyn Policy>,
    window: Window,
    tracker: MigrationTracker,
    next: f64,
}

/// What went wrong configuring a decider.
#[derive(Debug, thiserror::Error)]
#[error("window {window} s, period {period} s, delay {delay} s: need window >= 1, period >= 1, delay >= 0, window <= delay + period")]
pub struct ScheduleError {
    pub window: f64,
    pub period: f64,
    pub delay: f64,
}

impl Decider {
    /// A decider for `policy`, expecting a sample every `sample_period_s`,
    /// started at `start`.
    pub fn new(
        policy: Box<dyn Policy>,
        cfg: PlacementConfig,
        sample_period_s: f64,
        start: f64,
    ) -> Result<Self, ScheduleError> {
        let (w, p, d) = (cfg.window_s, cfg.period_s, cfg.delay_s);
        let ok = w >= 1.0 && p >= 1.0 && d >= 0.0 && w <= d + p && (w + p + d).is_finite();
        if !ok {
            return Err(ScheduleError {
                window: w,
                period: p,
                delay: d,
            });
        }
        let next = start + d;
        let mut window = Window::new(sample_period_s);
        window.begin(next - w);
        Ok(Decider {
            cfg,
            policy,
            window,
            tracker: MigrationTracker::default(),
            next,
        })
    }

    pub fn policy_name(&self) -> &str {
        self.policy.name()
    }
    pub fn config(&self) -> &PlacementConfig {
        &self.cfg
    }
    pub fn set_host(&mut self, name: &str, info: HostInfo) {
        self.window.set_host(name, info);
    }
    pub fn set_threads(&mut self, container: &str, threads: u32) {
        self.window.set_threads(container, threads);
    }
    /// Whether a sample taken at `t` would count (lets a runner skip
    /// building rows nobody reads).
    pub fn wants_samples_at(&self, t: f64) -> bool {
        t >= self.window.start()
    }
    pub fn push_host(&mut self, r: &HostRow) {
        self.window.push_host(r);
    }
    pub fn push_container(&mut self, r: &ContainerRow) {
        self.window.push_container(r);
    }
    /// A migration event (from migrations.csv or the executor).
    pub fn record(&mut self, ev: &MigrationRow) {
        self.tracker.record(ev);
    }
    /// The move of `plan` was handed to the executor at `now`.
    pub fn started(&mut self, plan: &Plan, now: f64) {
        self.tracker.started(&plan.container, now);
    }
    /// The executor gave up on `container`'s move at `now`.
    pub fn failed(&mut self, container: &str, now: f64) {
        self.tracker.failed(container, now);
    }
    /// When the next decision is due.
    pub fn next_decision(&self) -> f64 {
        self.next
    }
    pub fn due(&self, now: f64) -> bool {
        now >= self.next
    }
    /// The view the policy would see at `now`.
    pub fn view(&self, now: f64) -> ClusterView {
        self.window.view(now, &self.tracker)
    }
    /// Decides at `now`, schedules the next decision (skipping any that
    /// were missed) and re-opens the window.
    pub fn decide(&mut self, now: f64) -> (ClusterView, Vec<Plan>) {
        let view = self.view(now);
        let plans = self.policy.decide(&view);
        while self.next <= now {
            self.next += self.cfg.period_s;
        }
        self.window.begin(self.next - self.cfg.window_s);
        (view, plans)
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::csv::MigrationEvent;
    use crate::policy::build;

    fn row(t: f64, host: &str, c: &str, cpu: f64) -> ContainerRow {
        ContainerRow {
            time: t,
            host: host.into(),
            container: c.into(),
            cpu_usage_cores: cpu,
            pids: 2,
            ..Default::default()
        }
    }

    #[test]
    fn schedule_window_and_cooldown_across_decisions() {
        let cfg = PlacementConfig {
            window_s: 10.0,
            period_s: 20.0,
            delay_s: 30.0,
            ..Default::default()
        };
        let mut d = Decider::new(build("cpu-greedy", &cfg).unwrap(), cfg, 1.0, 100.0).unwrap();
        d.set_host("n1", HostInfo { cores: 2.0 });
        d.set_host("n2", HostInfo { cores: 2.0 });
        assert!(!d.wants_samples_at(119.0) && d.wants_samples_at(120.0));
        for t in 100..=130 {
            let t = t as f64;
            if d.wants_samples_at(t) {
                d.push_host(&HostRow {
                    time: t,
                    host: "n1".into(),
                    cpu_user_ratio: 1.0,
                    ..Default::default()
                });
                d.push_host(&HostRow {
                    time: t,
                    host: "n2".into(),
                    ..Default::default()
                });
                d.push_container(&row(t, "n1", "a", 0.5));
                d.push_container(&row(t, "n1", "b", 1.5));
            }
        }
        assert!(!d.due(129.0) && d.due(130.0));
        let (view, plans) = d.decide(130.0);
        assert_eq!(view.containers[0].samples, 11);
        assert_eq!(plans.len(), 1);
        assert_eq!(plans[0].container, "a");
        d.started(&plans[0], 130.0);
        assert_eq!(d.next_decision(), 150.0);
        assert!(d.view(130.0).containers.is_empty(), "the window re-opened");
        for t in 140..=150 {
            let t = t as f64;
            d.push_host(&HostRow {
                time: t,
                host: "n1".into(),
                cpu_user_ratio: 1.0,
                ..Default::default()
            });
            d.push_container(&row(t, "n1", "a", 0.5));
            d.push_container(&row(t, "n1", "b", 1.0));
        }
        // a is moving: the next decision would pick b even though a is cheaper
        assert!(d.view(150.0).container("a").is_some_and(|c| c.migrating));
        // the move finished at 131: a is no longer moving but cooling down
        d.record(&MigrationRow {
            time: 131.0,
            container: "a".into(),
            from: "n1".into(),
            to: "n2".into(),
            event: MigrationEvent::Moved,
            count: 1,
            frozen_seconds: Some(0.6),
        });
        let v = d.view(150.0);
        assert_eq!(v.container("a").map(|c| c.last_moved), Some(Some(131.0)));
        let (_, plans) = d.decide(150.0);
        assert_eq!(plans[0].container, "b");
        // a missed decision is skipped, not replayed
        d.decide(500.0);
        assert_eq!(d.next_decision(), 510.0);
    }

    #[test]
    fn bad_schedules_are_refused() {
        let cfg = PlacementConfig {
            window_s: 400.0,
            ..Default::default()
        };
        let e = Decider::new(build("none", &cfg).unwrap(), cfg, 1.0, 0.0)
            .err()
            .unwrap();
        assert!(e.to_string().contains("window 400 s"));
    }
}
