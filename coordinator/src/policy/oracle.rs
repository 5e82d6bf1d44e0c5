//! `oracle`: demand balancing ([`super::balance`]) with each workload's real
//! thread count and kind (known only in scenario runs: the simulator and
//! the live runner of a scenario file fill [`ContainerView::threads`]). A
//! container's demand is `threads * kind.cpu_per_thread()`; a container
//! whose threads are unknown falls back to its usage. This is the thesis's
//! ideal placement, the yardstick for the other policies' gains.

use super::{balance::balance, PlacementConfig, Plan, Policy};
use crate::view::{ClusterView, ContainerView, HostView};

pub struct Oracle {
    cfg: PlacementConfig,
}

impl Oracle {
    pub fn new(cfg: PlacementConfig) -> Self {
        Oracle { cfg }
    }
}

pub fn oracle_demand(c: &ContainerView, _: &HostView) -> f64 {
    match (c.threads, c.kind) {
        (Some(t), Some(k)) => t as f64 * k.cpu_per_thread(),
        (Some(t), None) => t as f64,
        _ => c.cpu_usage_cores,
    }
}

impl Policy for Oracle {
    fn name(&self) -> &str {
        "oracle"
    }
    fn decide(&self, view: &ClusterView) -> Vec<Plan> {
        balance(view, &self.cfg, &oracle_demand, "known")
    }
}

#[cfg(test)]
mod tests {
    use super::super::testutil::*;
    use super::*;
    use crate::scenario::WorkloadKind;

    #[test]
    fn uses_the_real_threads_not_the_pids() {
        // "hidden" has 3 real threads but shows pids 1 (e.g. not yet
        // spawned); "noisy" shows many pids but is an io workload.
        let mut n1 = host("n1", 2.0, 1.0);
        n1.load1 = 4.0;
        let mut hidden = ctr("hidden", 0, 0.6, 1.0);
        hidden.threads = Some(3);
        hidden.kind = Some(WorkloadKind::Cpu);
        let mut noisy = ctr("noisy", 0, 0.9, 9.0);
        noisy.threads = Some(8);
        noisy.kind = Some(WorkloadKind::Io);
        let v = view(vec![n1, host("n2", 4.0, 0.0)], vec![hidden, noisy]);
        let p = Oracle::new(PlacementConfig::default()).decide(&v);
        assert_eq!(p.len(), 1);
        assert_eq!(p[0].container, "hidden");
        assert_eq!(p[0].to, "n2");
        // while "hidden" is being moved, the next best move is "noisy"
        let mut v2 = v.clone();
        v2.containers[0].migrating = true;
        let p = Oracle::new(PlacementConfig::default()).decide(&v2);
        assert_eq!(p.len(), 1);
        assert_eq!(p[0].container, "noisy");
        // and with both cooling down, nothing moves
        v2.containers[1].last_moved = Some(v2.time - 10.0);
        assert!(Oracle::new(PlacementConfig::default())
            .decide(&v2)
            .is_empty());
    }
}
