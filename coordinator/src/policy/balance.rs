//! Demand balancing, shared by `cpu-greedy-threads`, `oracle` and the
//! fallback of `oltp-disk`; they differ only in how they estimate a
//! container's CPU demand (cores it would use if it had them).
//!
//! With `D(h)` the summed demand of the containers on host `h` and `C(h)`
//! its cores, a host serves `min(D(h), C(h))` cores of work. Repeated up to
//! `max_moves` times, each host at most once:
//! 1. the source is the host with the largest excess `D - C` (> 0), the
//!    target the other host with the most spare cores `C - D` (> 0);
//! 2. for each container on the source that the anti-bounce rules allow,
//!    the gain of moving it is the served cores after minus before, over
//!    both hosts;
//! 3. the move with the largest gain is planned if the gain is at least
//!    `min_gain_cores`, or half the target's cores on a smaller host (a
//!    move costs frozen time; an edge host of 0.5 cores can never gain 0.5
//!    cores, yet doubles a container's speed); ties go to the move that
//!    leaves the lower peak load (demand / cores), then to the smaller
//!    memory (a cheaper move), then to the name.

use super::{cmp_f64, PlacementConfig, Plan};
use crate::view::{ClusterView, ContainerView, HostView};

/// Plans moves by the demand estimate `demand` (cores).
pub fn balance(
    view: &ClusterView,
    cfg: &PlacementConfig,
    demand: &dyn Fn(&ContainerView, &HostView) -> f64,
    what: &str,
) -> Vec<Plan> {
    balance_excluding(view, cfg, demand, what, &[], cfg.max_moves)
}

/// [`balance`] with some hosts already used this decision and a move budget.
pub fn balance_excluding(
    view: &ClusterView,
    cfg: &PlacementConfig,
    demand: &dyn Fn(&ContainerView, &HostView) -> f64,
    what: &str,
    used_hosts: &[usize],
    max_moves: usize,
) -> Vec<Plan> {
    let n = view.hosts.len();
    let mut d = vec![0.0f64; n];
    let mut cd = vec![0.0f64; view.containers.len()];
    for (i, c) in view.containers.iter().enumerate() {
        let x = demand(c, &view.hosts[c.host]).max(0.0);
        cd[i] = x;
        d[c.host] += x;
    }
    let mut used = vec![false; n];
    for &h in used_hosts {
        if h < n {
            used[h] = true;
        }
    }
    let served = |load: f64, cores: f64| load.min(cores);
    let mut plans = Vec::new();
    while plans.len() < max_moves {
        let excess = |h: usize| d[h] - view.hosts[h].cores;
        let Some(src) = (0..n)
            .filter(|&h| !used[h] && excess(h) > 0.0)
            .max_by(|&a, &b| cmp_f64(excess(a), excess(b)).then(b.cmp(&a)))
        else {
            break;
        };
        let Some(tgt) = (0..n)
            .filter(|&h| h != src && !used[h] && excess(h) < 0.0)
            .min_by(|&a, &b| cmp_f64(excess(a), excess(b)).then(a.cmp(&b)))
        else {
            break;
        };
        let (s, t) = (&view.hosts[src], &view.hosts[tgt]);
        let before = served(d[src], s.cores) + served(d[tgt], t.cores);
        let mut best: Option<(f64, f64, usize)> = None; // (gain, peak, container)
        for &i in view.on_host(src) {
            let c = &view.containers[i];
            let x = cd[i];
            if x <= 0.0 || !cfg.anti_bounce.eligible(c, view.time) {
                continue;
            }
            let gain = served(d[src] - x, s.cores) + served(d[tgt] + x, t.cores) - before;
            let peak = ((d[src] - x) / s.cores.max(1e-9)).max((d[tgt] + x) / t.cores.max(1e-9));
            let better = match best {
                None => true,
                Some((bg, bp, bi)) => {
                    let bc = &view.containers[bi];
                    cmp_f64(gain, bg)
                        .then(cmp_f64(bp, peak))
                        .then(cmp_f64(bc.memory_bytes, c.memory_bytes))
                        .then(bc.name.cmp(&c.name))
                        .is_gt()
                }
            };
            if better {
                best = Some((gain, peak, i));
            }
        }
        let Some((gain, _, i)) = best else {
            used[src] = true;
            continue;
        };
        if gain < cfg.min_gain_cores.min(0.5 * t.cores) {
            used[src] = true;
            continue;
        }
        let c = &view.containers[i];
        plans.push(Plan {
            container: c.name.clone(),
            from: s.name.clone(),
            to: t.name.clone(),
            reason: format!(
                "{what} demand {:.2} cores; host demand {:.2}/{} -> {:.2}/{}; +{:.2} cores served",
                cd[i], d[src], s.cores, d[tgt], t.cores, gain
            ),
        });
        used[src] = true;
        used[tgt] = true;
    }
    plans
}
