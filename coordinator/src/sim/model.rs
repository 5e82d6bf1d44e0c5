//! The resource model of one simulated host for one tick (1 s).
//!
//! Per container `i` on the host: `threads`, a kind (per thread it wants
//! `cpu_per_thread` cores and `disk_ops_per_thread` disk ops/s; see
//! [`WorkloadKind`]), resident memory, and `run` = the share of the tick it
//! was not frozen by a migration.
//!
//! 1. **Memory**: `used = base + sum(memory)`. Past the host's RAM every
//!    thread slows by `slow = ram / used` (the kernel reclaims and faults
//!    pages back); a `mem` thread, which touches all of its memory, by
//!    `slow²`. Major faults: 20 per second per MiB over RAM, shared by
//!    memory size, and each one is a disk read.
//! 2. **CPU (CFS)**: each runnable thread wants `cpu_per_thread * slow`
//!    cores; the host's cores are shared max-min fairly among threads
//!    ([`fair_share`]): a thread wanting less than the fair level gets what
//!    it wants, the rest split the remainder equally. So a 4-thread
//!    container on a crowded host gets four shares, as under CFS.
//! 3. **Disk**: the same fair sharing of `disk_ops_capacity` (less the
//!    fault reads) among the disk threads.
//! 4. **Progress** of a thread, 0..1: `cpu` and `mem`: cores got / cores
//!    wanted at full speed; `io` and `oltp`: the smaller of their CPU and
//!    disk fractions (an op needs both). A container makes
//!    `OPS_PER_THREAD * threads * run * progress` ops per second.
//! 5. **Host metrics**: CPU user/system split per kind (cpu, mem 95% user;
//!    io 40%; oltp 70%), iowait = idle share * min(1, waiting disk threads
//!    / cores), load1 smoothed over a minute from the runnable and
//!    disk-waiting threads, disk busy = served disk ops / capacity.

use crate::scenario::WorkloadKind;

/// Ops per second of one thread at full speed (every kind).
pub const OPS_PER_THREAD: f64 = 100.0;
/// Memory every host uses for itself.
pub const HOST_BASE_MEMORY: f64 = 256.0 * 1048576.0;

/// Max-min fair share of `capacity` among groups of `(threads, want per
/// thread)`: writes each group's allocation per thread into `out`.
pub fn fair_share(
    groups: &[(f64, f64)],
    capacity: f64,
    out: &mut Vec<f64>,
    order: &mut Vec<usize>,
) {
    out.clear();
    out.extend(groups.iter().map(|g| g.1.max(0.0)));
    let total: f64 = groups.iter().map(|g| g.0 * g.1.max(0.0)).sum();
    if total <= capacity {
        return;
    }
    order.clear();
    order.extend(0..groups.len());
    order.sort_by(|&a, &b| groups[a].1.total_cmp(&groups[b].1).then(a.cmp(&b)));
    let mut left = capacity.max(0.0);
    let mut threads: f64 = groups.iter().map(|g| g.0).sum();
    for (k, &i) in order.iter().enumerate() {
        let (n, want) = groups[i];
        let level = if threads > 0.0 { left / threads } else { 0.0 };
        if want <= level {
            left -= n * want;
            threads -= n;
        } else {
            for &j in &order[k..] {
                out[j] = level;
            }
            break;
        }
    }
}

/// One container's input to a tick.
#[derive(Debug, Clone, Copy)]
pub struct Load {
    pub kind: WorkloadKind,
    pub threads: f64,
    pub memory_bytes: f64,
    /// 0..1: the share of the tick it ran (not frozen).
    pub run: f64,
}

/// One container's result of a tick.
#[derive(Debug, Clone, Copy, Default, PartialEq)]
pub struct Usage {
    pub cpu_cores: f64,
    pub disk_ops: f64,
    pub ops: f64,
    pub major_faults: f64,
    pub resident_bytes: f64,
}

/// A host's result of a tick (its load1 is kept by the caller).
#[derive(Debug, Clone, Copy, Default, PartialEq)]
pub struct HostTick {
    pub cpu_user_ratio: f64,
    pub cpu_system_ratio: f64,
    pub cpu_iowait_ratio: f64,
    /// Threads running or waiting on the disk (load1's input).
    pub active_threads: f64,
    /// Threads wanting a CPU (each weighted by the share of its time it
    /// computes): what `runnable_tasks` samples on a real host.
    pub runnable_threads: f64,
    pub memory_used_bytes: f64,
    pub major_faults: f64,
    pub disk_ops: f64,
    pub disk_busy_ratio: f64,
}

/// The host's fixed resources.
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct HostSpec {
    pub cores: f64,
    pub memory_bytes: f64,
    pub disk_ops_capacity: f64,
}

/// Scratch buffers reused across ticks (no allocation per tick).
#[derive(Default)]
pub struct Scratch {
    cpu_groups: Vec<(f64, f64)>,
    disk_groups: Vec<(f64, f64)>,
    cpu_alloc: Vec<f64>,
    disk_alloc: Vec<f64>,
    order: Vec<usize>,
    slow: Vec<f64>,
}

fn user_share(k: WorkloadKind) -> f64 {
    match k {
        WorkloadKind::Cpu | WorkloadKind::Mem => 0.95,
        WorkloadKind::Io => 0.4,
        WorkloadKind::Oltp => 0.7,
    }
}

/// Runs one tick of host `spec` with `loads`; writes one [`Usage`] per load.
pub fn tick(spec: &HostSpec, loads: &[Load], s: &mut Scratch, out: &mut Vec<Usage>) -> HostTick {
    out.clear();
    let used: f64 = HOST_BASE_MEMORY + loads.iter().map(|l| l.memory_bytes).sum::<f64>();
    let pressure = (spec.memory_bytes / used).min(1.0);
    let over_mib = ((used - spec.memory_bytes) / 1048576.0).max(0.0);
    let faults_total = 20.0 * over_mib;
    let mem_sum: f64 = loads.iter().map(|l| l.memory_bytes).sum::<f64>().max(1.0);

    s.cpu_groups.clear();
    s.disk_groups.clear();
    s.slow.clear();
    for l in loads {
        let slow = if l.kind == WorkloadKind::Mem {
            pressure * pressure
        } else {
            pressure
        };
        s.slow.push(slow);
        let n = l.threads * l.run;
        s.cpu_groups.push((n, l.kind.cpu_per_thread() * slow));
        s.disk_groups.push((n, l.kind.disk_ops_per_thread() * slow));
    }
    let fault_reads = faults_total.min(spec.disk_ops_capacity);
    fair_share(&s.cpu_groups, spec.cores, &mut s.cpu_alloc, &mut s.order);
    fair_share(
        &s.disk_groups,
        spec.disk_ops_capacity - fault_reads,
        &mut s.disk_alloc,
        &mut s.order,
    );

    let mut h = HostTick {
        memory_used_bytes: used.min(spec.memory_bytes),
        major_faults: faults_total,
        ..Default::default()
    };
    let mut user = 0.0;
    let mut system = 0.0;
    let mut waiting = 0.0;
    for (i, l) in loads.iter().enumerate() {
        let k = l.kind;
        let cpu_frac = s.cpu_alloc[i] / k.cpu_per_thread();
        let progress = match k {
            WorkloadKind::Cpu | WorkloadKind::Mem => cpu_frac,
            WorkloadKind::Io | WorkloadKind::Oltp => {
                cpu_frac.min(s.disk_alloc[i] / k.disk_ops_per_thread())
            }
        }
        .clamp(0.0, 1.0);
        let n = l.threads * l.run;
        let cpu = n * progress * k.cpu_per_thread();
        let disk = n * progress * k.disk_ops_per_thread();
        user += cpu * user_share(k);
        system += cpu * (1.0 - user_share(k));
        if k.disk_ops_per_thread() > 0.0 {
            waiting += n * (1.0 - progress * k.cpu_per_thread());
        }
        h.active_threads += n;
        h.runnable_threads += n * k.cpu_per_thread();
        h.disk_ops += disk;
        let faults = faults_total * l.memory_bytes / mem_sum;
        out.push(Usage {
            cpu_cores: cpu,
            disk_ops: disk,
            ops: OPS_PER_THREAD * n * progress,
            major_faults: faults,
            resident_bytes: l.memory_bytes * pressure,
        });
    }
    h.disk_ops += fault_reads;
    let cores = spec.cores.max(1e-9);
    h.cpu_user_ratio = (user / cores).min(1.0);
    h.cpu_system_ratio = (system / cores).min(1.0 - h.cpu_user_ratio);
    let idle = (1.0 - h.cpu_user_ratio - h.cpu_system_ratio).max(0.0);
    h.cpu_iowait_ratio = idle * (waiting / cores).min(1.0);
    h.disk_busy_ratio = (h.disk_ops / spec.disk_ops_capacity.max(1e-9)).min(1.0);
    h
}

#[cfg(test)]
mod tests {
    use super::*;

    fn spec(cores: f64) -> HostSpec {
        HostSpec {
            cores,
            memory_bytes: 8.0 * 1073741824.0,
            disk_ops_capacity: 10000.0,
        }
    }

    fn load(kind: WorkloadKind, threads: f64) -> Load {
        Load {
            kind,
            threads,
            memory_bytes: 64.0 * 1048576.0,
            run: 1.0,
        }
    }

    #[test]
    fn fair_share_is_max_min() {
        let (mut out, mut order) = (Vec::new(), Vec::new());
        fair_share(
            &[(1.0, 0.1), (4.0, 1.0), (1.0, 1.0)],
            2.0,
            &mut out,
            &mut order,
        );
        // 0.1 fits; the other 5 threads split 1.9
        assert!((out[0] - 0.1).abs() < 1e-12);
        assert!((out[1] - 0.38).abs() < 1e-12 && (out[2] - 0.38).abs() < 1e-12);
        fair_share(&[(1.0, 0.5)], 2.0, &mut out, &mut order);
        assert_eq!(out, vec![0.5]);
    }

    #[test]
    fn cfs_gives_a_wide_container_more_and_ops_follow() {
        let mut s = Scratch::default();
        let mut out = Vec::new();
        let h = tick(
            &spec(2.0),
            &[load(WorkloadKind::Cpu, 3.0), load(WorkloadKind::Cpu, 1.0)],
            &mut s,
            &mut out,
        );
        assert!((out[0].cpu_cores - 1.5).abs() < 1e-9);
        assert!((out[1].cpu_cores - 0.5).abs() < 1e-9);
        assert!((out[0].ops - 150.0).abs() < 1e-9);
        assert!((h.cpu_user_ratio + h.cpu_system_ratio - 1.0).abs() < 1e-9);
        // alone on 4 cores: full speed
        let h = tick(
            &spec(4.0),
            &[load(WorkloadKind::Cpu, 3.0)],
            &mut s,
            &mut out,
        );
        assert!((out[0].ops - 300.0).abs() < 1e-9);
        assert!((h.cpu_user_ratio + h.cpu_system_ratio - 0.75).abs() < 1e-9);
    }

    #[test]
    fn disk_contention_and_memory_pressure_slow_work() {
        let mut s = Scratch::default();
        let mut out = Vec::new();
        let h = tick(&spec(8.0), &[load(WorkloadKind::Io, 4.0)], &mut s, &mut out);
        assert!((out[0].ops - 400.0).abs() < 1e-9);
        assert!((h.disk_ops - 4000.0).abs() < 1e-9);
        // 40 io threads want 40000 ops/s of a 10000 disk: a quarter speed
        let h = tick(
            &spec(8.0),
            &[load(WorkloadKind::Io, 40.0)],
            &mut s,
            &mut out,
        );
        assert!((h.disk_busy_ratio - 1.0).abs() < 1e-9);
        assert!((out[0].ops - 1000.0).abs() < 1e-6);
        // memory: 2 GiB of mem work on a 1 GiB host
        let mut sp = spec(4.0);
        sp.memory_bytes = 1073741824.0;
        let mut m = load(WorkloadKind::Mem, 1.0);
        m.memory_bytes = 2.0 * 1073741824.0;
        let h = tick(&sp, &[m, load(WorkloadKind::Cpu, 1.0)], &mut s, &mut out);
        assert!(out[0].ops < 30.0, "{:?}", out[0]);
        assert!(out[1].ops < 100.0 && out[1].ops > out[0].ops);
        assert!(h.major_faults > 0.0 && out[0].major_faults > out[1].major_faults);
    }

    #[test]
    fn a_frozen_container_does_nothing() {
        let mut s = Scratch::default();
        let mut out = Vec::new();
        let mut l = load(WorkloadKind::Cpu, 2.0);
        l.run = 0.25;
        tick(&spec(4.0), &[l], &mut s, &mut out);
        assert!((out[0].ops - 50.0).abs() < 1e-9);
    }
}
