//! `cpu-greedy-threads`: demand balancing ([`super::balance`]) with each
//! container's CPU demand estimated from what the monitor sees.
//!
//! A container has `threads = max(pids - idle_pids, 1)` threads that can
//! work. On a host where `r` runnable threads share `cores` cores, a
//! CPU-bound thread gets `fair = cores / max(r, cores)` of a core, with `r`
//! the window's mean runnable count when the monitor gives it, else
//! `load1` (which lags a minute behind a change). The
//! container is CPU-bound when its usage is at least half of
//! `threads * fair`; then its demand is `threads` cores (what it would use
//! on a free host), else its usage (threads that mostly wait on the disk or
//! sleep do not need cores). That is what lets it move a 4-thread container
//! that looks like a 1-core one on a crowded host.

use super::{balance::balance, PlacementConfig, Plan, Policy};
use crate::view::{ClusterView, ContainerView, HostView};

pub struct CpuGreedyThreads {
    cfg: PlacementConfig,
}

impl CpuGreedyThreads {
    pub fn new(cfg: PlacementConfig) -> Self {
        CpuGreedyThreads { cfg }
    }
}

/// The demand estimate from pids, usage and the host's load.
pub fn thread_demand(c: &ContainerView, h: &HostView, idle_pids: f64) -> f64 {
    let threads = (c.pids - idle_pids).max(1.0);
    let runnable = h.runnable.unwrap_or(h.load1);
    let fair = h.cores / runnable.max(h.cores).max(1e-9);
    if c.cpu_usage_cores >= 0.5 * threads * fair {
        threads.max(c.cpu_usage_cores)
    } else {
        c.cpu_usage_cores
    }
}

impl Policy for CpuGreedyThreads {
    fn name(&self) -> &str {
        "cpu-greedy-threads"
    }
    fn decide(&self, view: &ClusterView) -> Vec<Plan> {
        let idle = self.cfg.idle_pids;
        balance(view, &self.cfg, &|c, h| thread_demand(c, h, idle), "pids")
    }
}

#[cfg(test)]
mod tests {
    use super::super::testutil::*;
    use super::*;

    #[test]
    fn moves_the_multi_threaded_container_that_cpu_greedy_would_not() {
        // n1: 2 cores, load 7: a 4-thread container (pids 5) and three
        // 1-thread ones (pids 2) share it; n2: 4 idle cores.
        let mut n1 = host("n1", 2.0, 1.0);
        n1.load1 = 7.0;
        let v = view(
            vec![n1, host("n2", 4.0, 0.0)],
            vec![
                ctr("wide", 0, 4.0 * 2.0 / 7.0, 5.0),
                ctr("a", 0, 2.0 / 7.0, 2.0),
                ctr("b", 0, 2.0 / 7.0, 2.0),
                ctr("c", 0, 2.0 / 7.0, 2.0),
            ],
        );
        let p = CpuGreedyThreads::new(PlacementConfig::default()).decide(&v);
        assert_eq!(p.len(), 1);
        assert_eq!((p[0].container.as_str(), p[0].to.as_str()), ("wide", "n2"));
        let g = super::super::cpu_greedy::CpuGreedy::new(PlacementConfig::default()).decide(&v);
        assert_ne!(g[0].container, "wide");
    }

    #[test]
    fn the_present_runnable_count_wins_over_a_lagging_load1() {
        // Two 1-thread workloads just started on a half-core host: load1
        // has not caught up (0.4), but two threads are runnable.
        let mut n1 = host("n1", 0.5, 1.0);
        n1.load1 = 0.4;
        let v = |n1: &HostView| {
            view(
                vec![n1.clone(), host("n2", 0.5, 0.0)],
                vec![ctr("a", 0, 0.25, 2.0), ctr("b", 0, 0.25, 2.0)],
            )
        };
        let p = CpuGreedyThreads::new(PlacementConfig::default());
        assert!(p.decide(&v(&n1)).is_empty(), "load1 alone hides the demand");
        n1.runnable = Some(2.0);
        let plans = p.decide(&v(&n1));
        assert_eq!(plans.len(), 1);
        assert_eq!(plans[0].to, "n2");
    }

    #[test]
    fn small_hosts_move_for_a_gain_below_half_a_core() {
        // An 0.8-core host running two 2-thread workloads, an idle 0.4-core
        // one: the best move serves 0.4 more cores, all the target has.
        let mut n1 = host("n1", 0.8, 1.0);
        n1.runnable = Some(4.0);
        let v = view(
            vec![n1, host("n2", 0.4, 0.0)],
            vec![ctr("a", 0, 0.4, 3.0), ctr("b", 0, 0.4, 3.0)],
        );
        let p = CpuGreedyThreads::new(PlacementConfig::default()).decide(&v);
        assert_eq!(p.len(), 1, "{p:?}");
        assert!(
            p[0].reason.ends_with("+0.40 cores served"),
            "{}",
            p[0].reason
        );
    }

    #[test]
    fn threads_that_wait_on_disk_are_not_cpu_demand() {
        let mut n1 = host("n1", 2.0, 0.3);
        n1.load1 = 1.0;
        // 8 io threads using 0.4 cores in all: demand 0.4, not 8.
        let io = ctr("io", 0, 0.4, 9.0);
        assert!((thread_demand(&io, &n1, 1.0) - 0.4).abs() < 1e-9);
        let v = view(vec![n1, host("n2", 4.0, 0.0)], vec![io]);
        assert!(CpuGreedyThreads::new(PlacementConfig::default())
            .decide(&v)
            .is_empty());
    }

    #[test]
    fn no_move_without_enough_gain_or_when_cooling_down() {
        // n1 over by 1 core, but the only candidate is cooling down.
        let mut n1 = host("n1", 2.0, 1.0);
        n1.load1 = 3.0;
        let mut a = ctr("a", 0, 2.0 * 2.0 / 3.0, 3.0);
        a.last_moved = Some(800.0);
        let mut b = ctr("b", 0, 2.0 / 3.0, 2.0);
        b.samples = 2;
        let v = view(
            vec![n1.clone(), host("n2", 2.0, 0.0)],
            vec![a.clone(), b.clone()],
        );
        assert!(CpuGreedyThreads::new(PlacementConfig::default())
            .decide(&v)
            .is_empty());
        // cooled down: the move happens
        a.last_moved = Some(100.0);
        let v = view(vec![n1, host("n2", 2.0, 0.0)], vec![a, b]);
        let p = CpuGreedyThreads::new(PlacementConfig::default()).decide(&v);
        assert_eq!(p.len(), 1);
        assert_eq!(p[0].container, "a");
    }
}
