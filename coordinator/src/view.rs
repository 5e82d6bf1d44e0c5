//! The snapshot a policy decides on: [`ClusterView`], built from a window of
//! monitor samples by [`Window`], with each container's move history from
//! the [`MigrationTracker`] (for the cooldown).
//!
//! A view holds per host and per container the mean of every metric over
//! the samples of the window (the rows of hosts.csv / containers.csv whose
//! time is at or after the window's start), the number of samples and the
//! share of expected samples that are missing. Expected samples are counted
//! from an entity's first sample in the window (or the window's start, for
//! one seen before it) to the view's time at the sampling period, so a
//! container that started late is not "missing" samples; the minimum-samples
//! rule handles young containers instead.
//!
//! The window is tumbling, not sliding: [`Window::begin`] opens a window at
//! a start time and drops what was summed before; samples older than the
//! start are ignored. A coordinator deciding every `period` seconds on the
//! last `window` seconds calls `begin(next_decision - window)` after each
//! decision. Nothing but running sums is kept, so a window over 100,000
//! containers costs a few megabytes.

use std::collections::HashMap;

use crate::csv::{ContainerRow, HostRow};
use crate::scenario::WorkloadKind;
use crate::tracker::MigrationTracker;

/// One host as the window saw it (means over the window).
#[derive(Debug, Clone, PartialEq, Default)]
pub struct HostView {
    pub name: String,
    pub cores: f64,
    pub cpu_user_ratio: f64,
    pub cpu_system_ratio: f64,
    pub cpu_iowait_ratio: f64,
    pub load1: f64,
    /// Mean runnable threads over the window's samples, when the monitor
    /// gives them: the present contention, where load1 still carries the
    /// last minute.
    pub runnable: Option<f64>,
    pub memory_used_bytes: f64,
    pub major_faults_per_second: f64,
    pub disk_ops_per_second: f64,
    pub disk_busy_ratio: f64,
    pub samples: u32,
    /// 0..1: share of the expected samples that never came.
    pub missing_ratio: f64,
}

impl HostView {
    /// User + system CPU, 0..1 of the host.
    pub fn cpu_ratio(&self) -> f64 {
        self.cpu_user_ratio + self.cpu_system_ratio
    }
    /// Idle cores (cores not used by user or system time).
    pub fn free_cores(&self) -> f64 {
        (self.cores * (1.0 - self.cpu_ratio())).max(0.0)
    }
}

/// One container as the window saw it (means over the window).
#[derive(Debug, Clone, PartialEq, Default)]
pub struct ContainerView {
    pub name: String,
    /// Index into [`ClusterView::hosts`] of the host of its latest sample.
    pub host: usize,
    pub kind: Option<WorkloadKind>,
    pub cpu_usage_cores: f64,
    pub memory_bytes: f64,
    pub major_faults_per_second: f64,
    pub io_read_ops_per_second: f64,
    pub io_write_ops_per_second: f64,
    pub pids: f64,
    pub ops_per_second: Option<f64>,
    pub samples: u32,
    pub missing_ratio: f64,
    /// When it last moved (from the tracker), if ever.
    pub last_moved: Option<f64>,
    /// How many times it moved so far.
    pub moves: u32,
    /// A move of it is under way: no policy may touch it.
    pub migrating: bool,
    /// The workload's real thread count, when known (scenario runs): only
    /// the `oracle` policy may use it.
    pub threads: Option<u32>,
}

impl ContainerView {
    pub fn io_ops_per_second(&self) -> f64 {
        self.io_read_ops_per_second + self.io_write_ops_per_second
    }
}

/// What every policy decides on.
#[derive(Debug, Clone, Default)]
pub struct ClusterView {
    /// The view's time (the decision time), seconds.
    pub time: f64,
    pub hosts: Vec<HostView>,
    pub containers: Vec<ContainerView>,
    by_host: Vec<Vec<usize>>,
}

impl ClusterView {
    /// A view from hosts and containers (`ContainerView::host` indexes
    /// `hosts`; a container pointing past them is dropped).
    pub fn new(time: f64, hosts: Vec<HostView>, mut containers: Vec<ContainerView>) -> Self {
        containers.retain(|c| c.host < hosts.len());
        let mut by_host = vec![Vec::new(); hosts.len()];
        for (i, c) in containers.iter().enumerate() {
            by_host[c.host].push(i);
        }
        ClusterView {
            time,
            hosts,
            containers,
            by_host,
        }
    }

    /// Indexes into `containers` of the containers on host `h`.
    pub fn on_host(&self, h: usize) -> &[usize] {
        self.by_host.get(h).map(|v| v.as_slice()).unwrap_or(&[])
    }

    pub fn host_index(&self, name: &str) -> Option<usize> {
        self.hosts.iter().position(|h| h.name == name)
    }

    pub fn container(&self, name: &str) -> Option<&ContainerView> {
        self.containers.iter().find(|c| c.name == name)
    }
}

/// Static facts about a host that samples may not carry.
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct HostInfo {
    pub cores: f64,
}

/// Where a host's runnable count is summed, after [`HostRow::metrics`].
const RUNNABLE: usize = 10;

#[derive(Default, Clone)]
struct HostAcc {
    first: f64,
    n: u32,
    cores: Option<f64>,
    /// [`HostRow::metrics`], then the runnable count at [`RUNNABLE`].
    sums: [f64; RUNNABLE + 1],
    /// Samples with a runnable count.
    nr: u32,
}

#[derive(Default, Clone)]
struct ContainerAcc {
    first: f64,
    last: f64,
    n: u32,
    host: String,
    kind: Option<WorkloadKind>,
    /// [`ContainerRow::metrics`].
    sums: [f64; 6],
    ops_n: u32,
    ops_sum: f64,
}

/// Running sums over one window of samples, turned into a [`ClusterView`].
#[derive(Clone)]
pub struct Window {
    start: f64,
    sample_period_s: f64,
    hosts: HashMap<String, HostAcc>,
    host_order: Vec<String>,
    known_hosts: std::collections::HashSet<String>,
    containers: HashMap<String, ContainerAcc>,
    info: HashMap<String, HostInfo>,
    threads: HashMap<String, u32>,
}

impl Window {
    /// An empty window expecting one sample per `sample_period_s` seconds.
    pub fn new(sample_period_s: f64) -> Self {
        Window {
            start: f64::NEG_INFINITY,
            sample_period_s: sample_period_s.max(1e-3),
            hosts: HashMap::new(),
            host_order: Vec::new(),
            known_hosts: std::collections::HashSet::new(),
            containers: HashMap::new(),
            info: HashMap::new(),
            threads: HashMap::new(),
        }
    }

    /// Declares a host (its order is the views' host order; hosts without
    /// samples still appear, so an empty host can be a target).
    pub fn set_host(&mut self, name: &str, info: HostInfo) {
        if self.known_hosts.insert(name.to_string()) {
            self.host_order.push(name.to_string());
        }
        self.info.insert(name.to_string(), info);
    }

    /// The real thread count of a container's workload (oracle knowledge).
    pub fn set_threads(&mut self, container: &str, threads: u32) {
        self.threads.insert(container.to_string(), threads);
    }

    /// Drops what was summed; samples before `start` are ignored from now on.
    pub fn begin(&mut self, start: f64) {
        self.start = start;
        self.hosts.clear();
        self.containers.clear();
    }

    pub fn start(&self) -> f64 {
        self.start
    }

    pub fn push_host(&mut self, r: &HostRow) {
        if r.time < self.start {
            return;
        }
        if !self.hosts.contains_key(&r.host) {
            if self.known_hosts.insert(r.host.clone()) {
                self.host_order.push(r.host.clone());
            }
            self.hosts.insert(
                r.host.clone(),
                HostAcc {
                    first: r.time,
                    ..Default::default()
                },
            );
        }
        let Some(a) = self.hosts.get_mut(&r.host) else {
            return;
        };
        a.n += 1;
        if r.cores.is_some() {
            a.cores = r.cores;
        }
        let v = r
            .metrics()
            .into_iter()
            .chain([r.runnable_tasks.unwrap_or(0.0)]);
        if r.runnable_tasks.is_some() {
            a.nr += 1;
        }
        for (s, x) in a.sums.iter_mut().zip(v) {
            *s += x;
        }
    }

    pub fn push_container(&mut self, r: &ContainerRow) {
        if r.time < self.start {
            return;
        }
        let a = match self.containers.get_mut(&r.container) {
            Some(a) => a,
            None => self
                .containers
                .entry(r.container.clone())
                .or_insert_with(|| ContainerAcc {
                    first: r.time,
                    ..Default::default()
                }),
        };
        a.n += 1;
        if r.time >= a.last {
            a.last = r.time;
            if a.host != r.host {
                a.host.clone_from(&r.host);
            }
        }
        if let Some(k) = r.kind.as_deref() {
            a.kind = k.parse().ok();
        }
        for (s, x) in a.sums.iter_mut().zip(r.metrics()) {
            *s += x;
        }
        if let Some(o) = r.ops_per_second {
            a.ops_n += 1;
            a.ops_sum += o;
        }
    }

    fn missing(&self, first: f64, n: u32, now: f64) -> f64 {
        let from = if self.start.is_finite() {
            first.max(self.start)
        } else {
            first
        };
        let expected = ((now - from) / self.sample_period_s).floor() + 1.0;
        if expected <= 0.0 {
            return 0.0;
        }
        (1.0 - n as f64 / expected).clamp(0.0, 1.0)
    }

    /// The view at `now` from what was pushed since [`Window::begin`].
    /// Containers whose last sample is older than the window's start (gone)
    /// do not appear. Hosts appear in declaration order, then in order of
    /// first sample; containers sorted by name (views are deterministic).
    pub fn view(&self, now: f64, tracker: &MigrationTracker) -> ClusterView {
        let mut hosts = Vec::with_capacity(self.host_order.len());
        let mut index = HashMap::with_capacity(self.host_order.len());
        for name in &self.host_order {
            let info = self.info.get(name);
            let mut h = HostView {
                name: name.clone(),
                cores: info.map(|i| i.cores).unwrap_or(1.0),
                ..Default::default()
            };
            if let Some(a) = self.hosts.get(name) {
                let n = a.n.max(1) as f64;
                let m: Vec<f64> = a.sums.iter().map(|s| s / n).collect();
                if info.is_none() {
                    h.cores = a.cores.unwrap_or(1.0);
                }
                h.cpu_user_ratio = m[0];
                h.cpu_system_ratio = m[1];
                h.cpu_iowait_ratio = m[2];
                h.load1 = m[3];
                h.memory_used_bytes = m[4];
                h.major_faults_per_second = m[5];
                h.disk_ops_per_second = m[6];
                h.disk_busy_ratio = m[7];
                h.runnable = (a.nr > 0).then(|| a.sums[RUNNABLE] / a.nr as f64);
                h.samples = a.n;
                h.missing_ratio = self.missing(a.first, a.n, now);
            } else {
                h.missing_ratio = 1.0;
            }
            index.insert(name.as_str(), hosts.len());
            hosts.push(h);
        }
        let mut names: Vec<&String> = self.containers.keys().collect();
        names.sort();
        let mut containers = Vec::with_capacity(names.len());
        for name in names {
            let a = &self.containers[name];
            let Some(&host) = index.get(a.host.as_str()) else {
                continue;
            };
            let n = a.n.max(1) as f64;
            let (last_moved, moves) = match tracker.last_moved(name) {
                Some((t, c)) => (Some(t), c),
                None => (None, 0),
            };
            containers.push(ContainerView {
                name: name.clone(),
                host,
                kind: a.kind,
                cpu_usage_cores: a.sums[0] / n,
                memory_bytes: a.sums[1] / n,
                major_faults_per_second: a.sums[2] / n,
                io_read_ops_per_second: a.sums[3] / n,
                io_write_ops_per_second: a.sums[4] / n,
                pids: a.sums[5] / n,
                ops_per_second: (a.ops_n > 0).then(|| a.ops_sum / a.ops_n as f64),
                samples: a.n,
                missing_ratio: self.missing(a.first, a.n, now),
                last_moved,
                moves,
                migrating: tracker.migrating(name),
                threads: self.threads.get(name.as_str()).copied(),
            });
        }
        ClusterView::new(now, hosts, containers)
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::csv::{MigrationEvent, MigrationRow};

    fn host(t: f64, name: &str, user: f64) -> HostRow {
        HostRow {
            time: t,
            host: name.into(),
            cpu_user_ratio: user,
            ..Default::default()
        }
    }

    fn ctr(t: f64, host: &str, name: &str, cpu: f64) -> ContainerRow {
        ContainerRow {
            time: t,
            host: host.into(),
            container: name.into(),
            cpu_usage_cores: cpu,
            pids: 3,
            ops_per_second: Some(10.0 * cpu),
            kind: Some("cpu".into()),
            ..Default::default()
        }
    }

    #[test]
    fn window_means_samples_and_missing() {
        let mut w = Window::new(1.0);
        w.set_host("n1", HostInfo { cores: 4.0 });
        w.set_host("n2", HostInfo { cores: 2.0 });
        w.set_threads("a", 2);
        w.begin(10.0);
        w.push_host(&host(9.0, "n1", 0.9)); // before the window: ignored
        for t in 10..20 {
            w.push_host(&host(t as f64, "n1", 0.5));
            if t % 2 == 0 {
                w.push_container(&ctr(t as f64, "n1", "a", 1.0 + (t % 4) as f64));
            }
        }
        let mut tr = MigrationTracker::default();
        tr.started("a", 18.0);
        let v = w.view(19.0, &tr);
        assert_eq!(v.hosts.len(), 2);
        assert_eq!(v.hosts[0].samples, 10);
        assert!((v.hosts[0].cpu_user_ratio - 0.5).abs() < 1e-9);
        assert_eq!(v.hosts[0].missing_ratio, 0.0);
        assert_eq!(v.hosts[1].missing_ratio, 1.0);
        assert_eq!(v.hosts[1].cores, 2.0);
        let a = &v.containers[0];
        assert_eq!(a.samples, 5);
        assert!((a.missing_ratio - 0.5).abs() < 1e-9);
        assert!(
            (a.cpu_usage_cores - 2.2).abs() < 1e-9,
            "{}",
            a.cpu_usage_cores
        );
        assert_eq!(a.kind, Some(WorkloadKind::Cpu));
        assert_eq!(a.threads, Some(2));
        assert!(a.migrating);
        assert_eq!(v.on_host(0), &[0]);
        assert!(v.on_host(1).is_empty());
    }

    #[test]
    fn a_container_that_moved_is_on_its_latest_host_and_tracked() {
        let mut w = Window::new(1.0);
        w.set_host("n1", HostInfo { cores: 4.0 });
        w.set_host("n2", HostInfo { cores: 4.0 });
        w.begin(0.0);
        w.push_container(&ctr(1.0, "n1", "a", 1.0));
        w.push_container(&ctr(2.0, "n2", "a", 1.0));
        let mut tr = MigrationTracker::default();
        tr.record(&MigrationRow {
            time: 1.5,
            container: "a".into(),
            from: "n1".into(),
            to: "n2".into(),
            event: MigrationEvent::Moved,
            count: 1,
            frozen_seconds: Some(0.5),
        });
        let v = w.view(2.0, &tr);
        assert_eq!(v.containers[0].host, 1);
        assert_eq!(v.containers[0].last_moved, Some(1.5));
        assert_eq!(v.containers[0].moves, 1);
        assert!(!v.containers[0].migrating);
    }

    #[test]
    fn undeclared_hosts_come_from_samples_with_their_cores_column() {
        let mut w = Window::new(1.0);
        w.begin(0.0);
        let mut r = host(1.0, "b", 0.5);
        r.cores = Some(2.0);
        w.push_host(&r);
        w.push_host(&host(1.0, "a", 0.1)); // no cores column: 1
        w.push_host(&r);
        w.push_container(&ctr(1.0, "a", "x", 0.1));
        let v = w.view(1.0, &MigrationTracker::default());
        let names: Vec<(&str, f64)> = v.hosts.iter().map(|h| (h.name.as_str(), h.cores)).collect();
        assert_eq!(names, vec![("b", 2.0), ("a", 1.0)]);
        assert_eq!(v.containers[0].host, 1);
        // a container on a host never seen is left out, not misplaced
        w.push_container(&ctr(1.0, "zz", "y", 0.1));
        assert!(w
            .view(1.0, &MigrationTracker::default())
            .container("y")
            .is_none());
    }
}
