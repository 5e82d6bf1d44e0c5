//! Host metrics from /proc, read through [`PFile`]s (see
//! [`super::pfile`]).
//!
//! Which parser reads each /proc file is chosen per file ([`Reads`]): the
//! `procfs` crate where it costs no more than 10% over the hand-written
//! parser (measured by `herd bench monitor`, README "Dependencies"), the
//! hand-written one where the crate is slower or lacks the field. Both see
//! the same text: the file stays open and is re-read with one pread, the
//! crate parses the bytes (`FromRead` over a slice). Both parsers stay so
//! the bench can keep measuring them side by side
//! (`herd-agent __sampler-bench`, [`super::bench`]).

use std::collections::HashMap;
use std::path::{Path, PathBuf};
use std::sync::atomic::{AtomicU16, Ordering};
use std::time::Instant;

use herd_wire::monitor::{DiskSample, HostSample, NetSample};
use procfs::{FromRead, FromReadSI};

use super::pfile::{kv, psi_some_avg10, psi_some_total_seconds, PFile};

/// The /proc reads that can go through the `procfs` crate, one bit each.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
#[repr(u16)]
pub enum ProcRead {
    /// /proc/stat (the crate has no intr/softirq totals: those by hand)
    Stat = 1,
    Meminfo = 1 << 1,
    Vmstat = 1 << 2,
    Diskstats = 1 << 3,
    /// /proc/self/net/dev (host) and /proc/<pid>/net/dev (containers)
    NetDev = 1 << 4,
    Loadavg = 1 << 5,
    /// /proc/pressure/{cpu,memory,io}
    Pressure = 1 << 6,
    /// /proc/<pid>/io of a cgroup v1 container's processes
    ProcIo = 1 << 7,
    /// /proc/<tid>/stat of a `--cpus` slice's threads (runnable count)
    ThreadStat = 1 << 8,
    /// /proc/self/mountinfo, once at start (cgroup layout)
    Mountinfo = 1 << 9,
}

impl ProcRead {
    pub const ALL: [ProcRead; 10] = [
        ProcRead::Stat,
        ProcRead::Meminfo,
        ProcRead::Vmstat,
        ProcRead::Diskstats,
        ProcRead::NetDev,
        ProcRead::Loadavg,
        ProcRead::Pressure,
        ProcRead::ProcIo,
        ProcRead::ThreadStat,
        ProcRead::Mountinfo,
    ];

    pub fn name(self) -> &'static str {
        match self {
            ProcRead::Stat => "/proc/stat",
            ProcRead::Meminfo => "/proc/meminfo",
            ProcRead::Vmstat => "/proc/vmstat",
            ProcRead::Diskstats => "/proc/diskstats",
            ProcRead::NetDev => "/proc/*/net/dev",
            ProcRead::Loadavg => "/proc/loadavg",
            ProcRead::Pressure => "/proc/pressure/*",
            ProcRead::ProcIo => "/proc/<pid>/io",
            ProcRead::ThreadStat => "/proc/<tid>/stat",
            ProcRead::Mountinfo => "/proc/self/mountinfo",
        }
    }

    fn index(self) -> usize {
        (self as u16).trailing_zeros() as usize
    }
}

/// Which reads use the `procfs` crate (a set of [`ProcRead`] bits).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Reads(pub u16);

impl Reads {
    /// Every read hand-written.
    pub const HAND: Reads = Reads(0);
    /// Every read through the crate.
    pub const CRATE: Reads = Reads(0x3ff);
    /// What the agent uses: the crate where it was measured at no more than
    /// 10% over the hand-written parser (README "Dependencies").
    pub const DEFAULT: Reads = Reads(
        ProcRead::Diskstats as u16
            | ProcRead::NetDev as u16
            | ProcRead::Loadavg as u16
            | ProcRead::Pressure as u16
            | ProcRead::ProcIo as u16
            | ProcRead::ThreadStat as u16
            | ProcRead::Mountinfo as u16,
    );

    pub fn uses_crate(self, r: ProcRead) -> bool {
        self.0 & r as u16 != 0
    }
}

static READS: AtomicU16 = AtomicU16::new(Reads::DEFAULT.0);

/// The parsers of this process (set once before sampling: the bench runs
/// one process per setting).
pub fn set_reads(r: Reads) {
    READS.store(r.0, Ordering::Relaxed);
}

pub fn reads() -> Reads {
    Reads(READS.load(Ordering::Relaxed))
}

pub(crate) fn use_crate(r: ProcRead) -> bool {
    reads().uses_crate(r)
}

/// A load or PSI average: the crate gives f32, the kernel prints two
/// decimals; back to those so 0.28 stays 0.28 and not 0.2800000011920929.
fn avg(x: f32) -> f64 {
    (x as f64 * 100.0).round() / 100.0
}

/// CPU time of the calling thread, ns.
pub fn thread_cpu_ns() -> u64 {
    let mut t = libc::timespec {
        tv_sec: 0,
        tv_nsec: 0,
    };
    // SAFETY: clock_gettime fills the local struct.
    unsafe { libc::clock_gettime(libc::CLOCK_THREAD_CPUTIME_ID, &mut t) };
    t.tv_sec as u64 * 1_000_000_000 + t.tv_nsec as u64
}

/// Per-[`ProcRead`] CPU time of this thread (ns) and reads, when the
/// bench asks for it.
#[derive(Debug, Clone, Default)]
pub struct ReadCost {
    pub ns: [u64; ProcRead::ALL.len()],
    pub reads: [u64; ProcRead::ALL.len()],
}

impl ReadCost {
    /// Charge the time since `t0` (from [`thread_cpu_ns`]) to `r`.
    pub fn add(cost: &mut Option<ReadCost>, r: ProcRead, t0: u64) {
        if let Some(c) = cost {
            c.ns[r.index()] += thread_cpu_ns().saturating_sub(t0);
            c.reads[r.index()] += 1;
        }
    }

    /// Clock only when counting.
    pub fn start(cost: &Option<ReadCost>) -> u64 {
        if cost.is_some() {
            thread_cpu_ns()
        } else {
            0
        }
    }
}

/// (rx, tx) bytes of a `net/dev` text summed over its interfaces (loopback
/// left out), by the crate or by hand as [`reads`] says.
pub fn net_dev_totals(text: &str) -> (u64, u64) {
    if use_crate(ProcRead::NetDev) {
        procfs::net::InterfaceDeviceStatus::from_read(text.as_bytes())
            .map(|d| {
                d.0.iter()
                    .filter(|(n, _)| n.as_str() != "lo")
                    .fold((0, 0), |(r, t), (_, d)| {
                        (r + d.recv_bytes, t + d.sent_bytes)
                    })
            })
            .unwrap_or_default()
    } else {
        net_dev(text).fold((0, 0), |(r, t), (_, rx, tx)| (r + rx, t + tx))
    }
}

/// Runnable-or-not of one `/proc/<tid>/stat` text.
fn thread_state(st: &str) -> Option<char> {
    if use_crate(ProcRead::ThreadStat) {
        procfs::process::Stat::from_read(st.as_bytes())
            .ok()
            .map(|s| s.state)
    } else {
        // The state follows the last ')': comm may hold anything.
        st.rsplit_once(')')
            .and_then(|(_, r)| r.trim_start().chars().next())
    }
}

/// Raw counters of one host reading.
#[derive(Debug, Clone, Default)]
struct HostRaw {
    /// user+nice, system+irq+softirq, idle, iowait, total (USER_HZ ticks).
    cpu: [u64; 5],
    ctxt: u64,
    intr: u64,
    softirq: u64,
    runnable: u64,
    pgmajfault: u64,
    /// device -> (reads, writes, read sectors, write sectors, io ms)
    disks: HashMap<String, [u64; 5]>,
    /// interface -> (rx bytes, tx bytes)
    nets: HashMap<String, [u64; 2]>,
    /// A `--cpus` slice's (user ns, system ns).
    slice: Option<(u64, u64)>,
}

/// A host confined to a slice of the machine (`herd-agent --cpus`): its
/// CPU figures are those of its containers' parent cgroup over its quota,
/// its runnable threads and load averages those of the threads in it; the
/// rest (memory, disks, faults, network) stay the machine's.
struct CpuSlice {
    cores: f64,
    /// v1 `cpuacct.usage_user`, `cpuacct.usage_sys` (ns).
    v1: Option<(PFile, PFile)>,
    /// v2 `cpu.stat` (user_usec, system_usec).
    v2: Option<PFile>,
    /// The parent's dir in the hierarchy listing threads (v1 cpu `tasks`,
    /// v2 `cgroup.threads`), and the file's name.
    threads: Option<(PathBuf, &'static str)>,
    /// load1, load5, load15 of the slice, and when they were last updated.
    load: [f64; 3],
    load_at: Option<Instant>,
}

/// Threads in state R under `dir` (every cgroup below it, recursively).
fn runnable_under(dir: &Path, file: &str) -> u64 {
    let mut n = 0;
    if let Ok(t) = std::fs::read_to_string(dir.join(file)) {
        for tid in t.split_whitespace() {
            if let Ok(st) = std::fs::read_to_string(format!("/proc/{tid}/stat")) {
                if thread_state(&st) == Some('R') {
                    n += 1;
                }
            }
        }
    }
    if let Ok(rd) = std::fs::read_dir(dir) {
        for e in rd.flatten() {
            if e.file_type().is_ok_and(|t| t.is_dir()) {
                n += runnable_under(&e.path(), file);
            }
        }
    }
    n
}

/// A host with a disk capacity of its own (`herd-agent --disk-iops`,
/// `--disk-bps`): its disk figures are the IO its containers' parent
/// cgroup did on the throttled disk (v1 `blkio.throttle.io_serviced` and
/// `io_service_bytes`, recursive; v2 `io.stat`), and its busy ratio that
/// IO over the limit (the busiest direction), not the machine's disks.
struct DiskSlice {
    dev: crate::blockdev::Dev,
    /// The disk's name in /sys (`vda`), for the sample.
    name: String,
    limit: crate::cgroup::DiskLimit,
    v1: Option<(PFile, PFile)>,
    v2: Option<PFile>,
}

impl DiskSlice {
    /// [reads, writes, read sectors, written sectors, 0] (diskstats' order).
    fn read(&self, buf: &mut Vec<u8>) -> Option<[u64; 5]> {
        let dev = format!("{} ", self.dev);
        if let Some((ops, bytes)) = &self.v1 {
            let pick = |t: &str, what: &str| {
                t.lines()
                    .filter_map(|l| l.strip_prefix(&dev))
                    .find_map(|l| l.strip_prefix(what)?.trim().parse::<u64>().ok())
                    .unwrap_or(0)
            };
            let t = ops.read(buf).ok()?;
            let (r, w) = (pick(t, "Read "), pick(t, "Write "));
            let t = bytes.read(buf).ok()?;
            return Some([r, w, pick(t, "Read ") / 512, pick(t, "Write ") / 512, 0]);
        }
        let t = self.v2.as_ref()?.read(buf).ok()?;
        let line = t.lines().find_map(|l| l.strip_prefix(&dev)).unwrap_or("");
        let f = |k: &str| kv_inline(line, k).unwrap_or(0);
        Some([
            f("rios"),
            f("wios"),
            f("rbytes") / 512,
            f("wbytes") / 512,
            0,
        ])
    }

    /// The busiest direction's use of its limit, 0..1.
    fn busy(&self, d: &DiskSample) -> f64 {
        let mut b: f64 = 0.0;
        if let Some(n) = self.limit.iops {
            b = b.max(d.read_ops_per_second.max(d.write_ops_per_second) / n as f64);
        }
        if let Some(n) = self.limit.bps {
            b = b.max(d.read_bytes_per_second.max(d.write_bytes_per_second) / n as f64);
        }
        b.min(1.0)
    }
}

/// `key=N` in one line of space-separated pairs (v2 `io.stat`).
fn kv_inline(line: &str, key: &str) -> Option<u64> {
    line.split_whitespace()
        .find_map(|p| p.strip_prefix(key)?.strip_prefix('=')?.parse().ok())
}

impl CpuSlice {
    /// Count the slice's runnable threads and fold them into its load
    /// averages, as the kernel does for the whole machine (exponential, 1,
    /// 5 and 15 minutes), over the time since the last update.
    fn update_load(&mut self, now: Instant) -> Option<u64> {
        let (dir, file) = self.threads.as_ref()?;
        let n = runnable_under(dir, file);
        if let Some(t0) = self.load_at {
            let dt = now.duration_since(t0).as_secs_f64();
            for (l, period) in self.load.iter_mut().zip([60.0, 300.0, 900.0]) {
                let e = (-dt / period).exp();
                *l = *l * e + n as f64 * (1.0 - e);
            }
        }
        self.load_at = Some(now);
        Some(n)
    }

    fn read(&self, buf: &mut Vec<u8>) -> Option<(u64, u64)> {
        if let Some((u, s)) = &self.v1 {
            return Some((u.read_u64(buf)?, s.read_u64(buf)?));
        }
        let t = self.v2.as_ref()?.read(buf).ok()?;
        Some((kv(t, "user_usec")? * 1000, kv(t, "system_usec")? * 1000))
    }
}

/// Samples the host: every file opened once at start.
pub struct HostSampler {
    node: String,
    cores: u32,
    stat: Option<PFile>,
    loadavg: Option<PFile>,
    meminfo: Option<PFile>,
    vmstat: Option<PFile>,
    diskstats: Option<PFile>,
    netdev: Option<PFile>,
    psi: [Option<PFile>; 3],
    whole_disk: HashMap<String, bool>,
    prev: Option<(Instant, HostRaw)>,
    buf: Vec<u8>,
    slice: Option<CpuSlice>,
    disk_slice: Option<DiskSlice>,
    cost: Option<ReadCost>,
}

impl HostSampler {
    pub fn new(node: &str) -> Self {
        let p = |s: &str| PFile::open(Path::new(s));
        HostSampler {
            node: node.to_string(),
            cores: std::thread::available_parallelism()
                .map(|n| n.get() as u32)
                .unwrap_or(1),
            stat: p("/proc/stat"),
            loadavg: p("/proc/loadavg"),
            meminfo: p("/proc/meminfo"),
            vmstat: p("/proc/vmstat"),
            diskstats: p("/proc/diskstats"),
            // /proc/self/net: this agent's network namespace (a lab node's own).
            netdev: p("/proc/self/net/dev"),
            psi: [
                p("/proc/pressure/cpu"),
                p("/proc/pressure/memory"),
                p("/proc/pressure/io"),
            ],
            whole_disk: HashMap::new(),
            prev: None,
            buf: Vec::with_capacity(16 << 10),
            slice: None,
            disk_slice: None,
            cost: None,
        }
    }

    /// Report the disk IO of cgroup `parent` on `dev` against `limit`
    /// instead of the machine's /proc/diskstats (see [`DiskSlice`]).
    pub fn with_disk_slice(
        mut self,
        layout: &super::cgroups::Layout,
        parent: &str,
        dev: crate::blockdev::Dev,
        limit: crate::cgroup::DiskLimit,
    ) -> Self {
        let rel = parent.trim_start_matches('/');
        let v1 = layout.v1.get("blkio").and_then(|m| {
            let d = m.join(rel);
            Some((
                PFile::open(&d.join("blkio.throttle.io_serviced_recursive"))?,
                PFile::open(&d.join("blkio.throttle.io_service_bytes_recursive"))?,
            ))
        });
        let v2 = match v1 {
            Some(_) => None,
            None => layout
                .v2
                .as_ref()
                .and_then(|m| PFile::open(&m.join(rel).join("io.stat"))),
        };
        if v1.is_none() && v2.is_none() {
            tracing::warn!(%parent, "no IO accounting for the disk limit: host disk stays the machine's");
            return self;
        }
        let name = std::fs::read_to_string(format!("/sys/dev/block/{dev}/uevent"))
            .ok()
            .and_then(|t| {
                t.lines()
                    .find_map(|l| l.strip_prefix("DEVNAME="))
                    .map(str::to_string)
            })
            .unwrap_or_else(|| dev.to_string());
        self.disk_slice = Some(DiskSlice {
            dev,
            name,
            limit,
            v1,
            v2,
        });
        self
    }

    /// Count the CPU time of each /proc read (for `herd bench monitor`).
    pub fn with_cost(mut self) -> Self {
        self.cost = Some(ReadCost::default());
        self
    }

    pub fn cost(&self) -> Option<&ReadCost> {
        self.cost.as_ref()
    }

    /// Report a slice of `cores` CPUs: the CPU of cgroup `parent` (e.g.
    /// `/herd/n1`) over `cores`, instead of the machine's /proc/stat.
    pub fn with_slice(mut self, layout: &super::cgroups::Layout, parent: &str, cores: f64) -> Self {
        let rel = parent.trim_start_matches('/');
        let v1 = layout.v1.get("cpuacct").and_then(|m| {
            let d = m.join(rel);
            Some((
                PFile::open(&d.join("cpuacct.usage_user"))?,
                PFile::open(&d.join("cpuacct.usage_sys"))?,
            ))
        });
        let v2 = match v1 {
            Some(_) => None,
            None => layout
                .v2
                .as_ref()
                .and_then(|m| PFile::open(&m.join(rel).join("cpu.stat"))),
        };
        if v1.is_none() && v2.is_none() {
            tracing::warn!(%parent, "no CPU accounting for the --cpus slice: host CPU stays the machine's");
        }
        let threads = match layout.v1.get("cpu") {
            Some(m) => Some((m.join(rel), "tasks")),
            None => layout.v2.as_ref().map(|m| (m.join(rel), "cgroup.threads")),
        };
        self.slice = Some(CpuSlice {
            cores,
            v1,
            v2,
            threads,
            load: [0.0; 3],
            load_at: None,
        });
        self
    }

    /// CPU capacity reported as the host's cores.
    pub fn cores(&self) -> f64 {
        match &self.slice {
            Some(s) => s.cores,
            None => self.cores as f64,
        }
    }

    /// One sample; rates need a previous reading, so the first call gives
    /// rates of zero. `None` if a counter went backwards (sample dropped).
    pub fn sample(&mut self, time_ns: u64) -> Option<HostSample> {
        let now = Instant::now();
        let raw = self.read_raw();
        let mut s = HostSample {
            time_ns,
            host: self.node.clone(),
            cores: self.cores(),
            ..Default::default()
        };
        self.gauges(&mut s);
        s.runnable_tasks = raw.runnable;
        // /proc/stat counts in USER_HZ, which Linux fixes at 100 for userspace.
        let tick = |i: usize| raw.cpu[i] as f64 / 100.0;
        s.counters.cpu_seconds = match raw.slice {
            Some((u, y)) => [u as f64 / 1e9, y as f64 / 1e9, 0.0, 0.0],
            None => [tick(0), tick(1), tick(2), tick(3)],
        };
        s.counters.context_switches = raw.ctxt;
        s.counters.interrupts = raw.intr;
        s.counters.softirqs = raw.softirq;
        s.counters.major_faults = raw.pgmajfault;
        if let Some(sl) = &mut self.slice {
            // The slice's own threads, not the machine's.
            let t0 = ReadCost::start(&self.cost);
            let counted = sl.update_load(now);
            if counted.is_some() {
                ReadCost::add(&mut self.cost, ProcRead::ThreadStat, t0);
            }
            if let Some(n) = counted {
                s.runnable_tasks = n;
                [s.load1, s.load5, s.load15] = sl.load;
            }
        }
        let prev = self.prev.replace((now, raw.clone()));
        let Some((t0, p)) = prev else {
            return Some(s);
        };
        let dt = now.duration_since(t0).as_secs_f64();
        if dt <= 0.0 {
            return Some(s);
        }
        let d = |a: u64, b: u64| a.checked_sub(b);
        let total = d(raw.cpu[4], p.cpu[4])?;
        if total > 0 {
            let r = |i: usize| d(raw.cpu[i], p.cpu[i]).map(|x| x as f64 / total as f64);
            s.cpu_user_ratio = r(0)?;
            s.cpu_system_ratio = r(1)?;
            s.cpu_idle_ratio = r(2)?;
            s.cpu_iowait_ratio = r(3)?;
        }
        if let (Some(sl), Some((u, y)), Some((pu, py))) = (&self.slice, raw.slice, p.slice) {
            let cap = sl.cores * dt * 1e9;
            s.cpu_user_ratio = (d(u, pu)? as f64 / cap).min(1.0);
            s.cpu_system_ratio = (d(y, py)? as f64 / cap).min(1.0 - s.cpu_user_ratio);
            s.cpu_idle_ratio = 1.0 - s.cpu_user_ratio - s.cpu_system_ratio;
            s.cpu_iowait_ratio = 0.0;
        }
        s.context_switches_per_second = d(raw.ctxt, p.ctxt)? as f64 / dt;
        s.interrupts_per_second = d(raw.intr, p.intr)? as f64 / dt;
        s.softirqs_per_second = d(raw.softirq, p.softirq)? as f64 / dt;
        s.major_faults_per_second = d(raw.pgmajfault, p.pgmajfault)? as f64 / dt;
        let mut names: Vec<&String> = raw.disks.keys().collect();
        names.sort();
        for name in names {
            let (c, Some(o)) = (raw.disks[name], p.disks.get(name)) else {
                continue;
            };
            let mut v = [0f64; 5];
            for i in 0..5 {
                v[i] = d(c[i], o[i])? as f64;
            }
            let disk = DiskSample {
                device: name.clone(),
                read_ops_per_second: v[0] / dt,
                write_ops_per_second: v[1] / dt,
                read_bytes_per_second: v[2] * 512.0 / dt,
                write_bytes_per_second: v[3] * 512.0 / dt,
                busy_ratio: (v[4] / 1e3 / dt).min(1.0),
                reads_total: c[0],
                writes_total: c[1],
                read_bytes_total: c[2] * 512,
                written_bytes_total: c[3] * 512,
                io_time_seconds_total: c[4] as f64 / 1e3,
            };
            let disk = match &self.disk_slice {
                Some(sl) => DiskSample {
                    busy_ratio: sl.busy(&disk),
                    io_time_seconds_total: 0.0,
                    ..disk
                },
                None => disk,
            };
            s.disk_ops_per_second += disk.read_ops_per_second + disk.write_ops_per_second;
            s.disk_read_bytes_per_second += disk.read_bytes_per_second;
            s.disk_write_bytes_per_second += disk.write_bytes_per_second;
            s.disk_busy_ratio = s.disk_busy_ratio.max(disk.busy_ratio);
            s.disks.push(disk);
        }
        let mut names: Vec<&String> = raw.nets.keys().collect();
        names.sort();
        for name in names {
            let (c, Some(o)) = (raw.nets[name], p.nets.get(name)) else {
                continue;
            };
            let n = NetSample {
                interface: name.clone(),
                rx_bytes_per_second: d(c[0], o[0])? as f64 / dt,
                tx_bytes_per_second: d(c[1], o[1])? as f64 / dt,
                rx_bytes_total: c[0],
                tx_bytes_total: c[1],
            };
            s.net_rx_bytes_per_second += n.rx_bytes_per_second;
            s.net_tx_bytes_per_second += n.tx_bytes_per_second;
            s.nets.push(n);
        }
        Some(s)
    }

    fn gauges(&mut self, s: &mut HostSample) {
        let (buf, cost) = (&mut self.buf, &mut self.cost);
        let t0 = ReadCost::start(cost);
        if let Some(t) = self.loadavg.as_ref().and_then(|f| f.read(buf).ok()) {
            if use_crate(ProcRead::Loadavg) {
                if let Ok(l) = procfs::LoadAverage::from_read(t.as_bytes()) {
                    [s.load1, s.load5, s.load15] = [avg(l.one), avg(l.five), avg(l.fifteen)];
                }
            } else {
                let f: Vec<&str> = t.split_whitespace().collect();
                let num = |i: usize| f.get(i).and_then(|x| x.parse().ok()).unwrap_or(0.0);
                s.load1 = num(0);
                s.load5 = num(1);
                s.load15 = num(2);
            }
            ReadCost::add(cost, ProcRead::Loadavg, t0);
        }
        let t0 = ReadCost::start(cost);
        if let Some(t) = self.meminfo.as_ref().and_then(|f| f.read(buf).ok()) {
            if use_crate(ProcRead::Meminfo) {
                if let Ok(m) = procfs::Meminfo::from_read(t.as_bytes()) {
                    s.memory_total_bytes = m.mem_total;
                    s.memory_available_bytes = m.mem_available.unwrap_or(0);
                }
            } else {
                let kib = |k: &str| {
                    t.lines()
                        .find_map(|l| l.strip_prefix(k))
                        .and_then(|r| r.trim_start_matches(':').split_whitespace().next())
                        .and_then(|v| v.parse::<u64>().ok())
                        .map(|v| v * 1024)
                };
                s.memory_total_bytes = kib("MemTotal").unwrap_or(0);
                s.memory_available_bytes = kib("MemAvailable").unwrap_or(0);
            }
            s.memory_used_bytes = s
                .memory_total_bytes
                .saturating_sub(s.memory_available_bytes);
            ReadCost::add(cost, ProcRead::Meminfo, t0);
        }
        let mut psi = [None; 3];
        let by_crate = use_crate(ProcRead::Pressure);
        for (i, f) in self.psi.iter().enumerate() {
            let t0 = ReadCost::start(cost);
            let Some(t) = f.as_ref().and_then(|f| f.read(buf).ok()) else {
                continue;
            };
            if by_crate {
                // The three files share one format; the crate has a type each.
                let some = match i {
                    0 => procfs::CpuPressure::from_read(t.as_bytes()).map(|p| p.some),
                    1 => procfs::MemoryPressure::from_read(t.as_bytes()).map(|p| p.some),
                    _ => procfs::IoPressure::from_read(t.as_bytes()).map(|p| p.some),
                };
                if let Ok(r) = some {
                    psi[i] = Some(avg(r.avg10));
                    s.counters.pressure_seconds[i] = Some(r.total as f64 / 1e6);
                }
            } else {
                psi[i] = psi_some_avg10(t);
                s.counters.pressure_seconds[i] = psi_some_total_seconds(t);
            }
            ReadCost::add(cost, ProcRead::Pressure, t0);
        }
        [
            s.psi_cpu_some_avg10,
            s.psi_memory_some_avg10,
            s.psi_io_some_avg10,
        ] = psi;
    }

    fn read_raw(&mut self) -> HostRaw {
        let mut r = HostRaw::default();
        let (buf, cost) = (&mut self.buf, &mut self.cost);
        r.slice = self.slice.as_ref().and_then(|s| s.read(buf));
        let t0 = ReadCost::start(cost);
        if let Some(t) = self.stat.as_ref().and_then(|f| f.read(buf).ok()) {
            let by_crate = if use_crate(ProcRead::Stat) {
                procfs::KernelStats::from_read(t.as_bytes(), procfs::current_system_info()).ok()
            } else {
                None
            };
            if let Some(k) = &by_crate {
                let c = &k.total;
                let (iowait, irq, softirq, steal) = (
                    c.iowait.unwrap_or(0),
                    c.irq.unwrap_or(0),
                    c.softirq.unwrap_or(0),
                    c.steal.unwrap_or(0),
                );
                r.cpu = [
                    c.user + c.nice,
                    c.system + irq + softirq,
                    c.idle,
                    iowait,
                    c.user + c.nice + c.system + c.idle + iowait + irq + softirq + steal,
                ];
                r.ctxt = k.ctxt;
                r.runnable = k.procs_running.unwrap_or(0) as u64;
            }
            for l in t.lines() {
                let mut it = l.split_whitespace();
                let key = it.next().unwrap_or("");
                let first = |it: &mut std::str::SplitWhitespace| {
                    it.next().and_then(|v| v.parse().ok()).unwrap_or(0)
                };
                match key {
                    "cpu" if by_crate.is_none() => {
                        let v: Vec<u64> = it.map(|x| x.parse().unwrap_or(0)).collect();
                        let g = |i: usize| v.get(i).copied().unwrap_or(0);
                        // user nice system idle iowait irq softirq steal (guest is in user)
                        r.cpu = [
                            g(0) + g(1),
                            g(2) + g(5) + g(6),
                            g(3),
                            g(4),
                            (0..8).map(g).sum(),
                        ];
                    }
                    "ctxt" if by_crate.is_none() => r.ctxt = first(&mut it),
                    "procs_running" if by_crate.is_none() => r.runnable = first(&mut it),
                    // Not in the crate's KernelStats.
                    "intr" => r.intr = first(&mut it),
                    "softirq" => r.softirq = first(&mut it),
                    _ => {}
                }
            }
            ReadCost::add(cost, ProcRead::Stat, t0);
        }
        let t0 = ReadCost::start(cost);
        if let Some(t) = self.vmstat.as_ref().and_then(|f| f.read(buf).ok()) {
            r.pgmajfault = if use_crate(ProcRead::Vmstat) {
                procfs::VmStat::from_read(t.as_bytes())
                    .ok()
                    .and_then(|v| v.0.get("pgmajfault").copied())
                    .map_or(0, |v| v.max(0) as u64)
            } else {
                kv(t, "pgmajfault").unwrap_or(0)
            };
            ReadCost::add(cost, ProcRead::Vmstat, t0);
        }
        let t0 = ReadCost::start(cost);
        let whole_disk = &mut self.whole_disk;
        let mut whole = |name: &str| {
            *whole_disk
                .entry(name.to_string())
                .or_insert_with(|| is_disk(name))
        };
        if let Some(sl) = &self.disk_slice {
            if let Some(v) = sl.read(buf) {
                r.disks.insert(sl.name.clone(), v);
            }
        } else if let Some(t) = self.diskstats.as_ref().and_then(|f| f.read(buf).ok()) {
            if use_crate(ProcRead::Diskstats) {
                let disks = procfs::DiskStats::from_read(t.as_bytes()).map(|d| d.0);
                for d in disks.unwrap_or_default() {
                    if whole(&d.name) {
                        let v = [
                            d.reads,
                            d.writes,
                            d.sectors_read,
                            d.sectors_written,
                            d.time_in_progress,
                        ];
                        r.disks.insert(d.name, v);
                    }
                }
            } else {
                for l in t.lines() {
                    let f: Vec<&str> = l.split_whitespace().collect();
                    if f.len() < 14 || !whole(f[2]) {
                        continue;
                    }
                    let n = |i: usize| f[i].parse::<u64>().unwrap_or(0);
                    r.disks
                        .insert(f[2].to_string(), [n(3), n(7), n(5), n(9), n(12)]);
                }
            }
            ReadCost::add(cost, ProcRead::Diskstats, t0);
        }
        let t0 = ReadCost::start(cost);
        if let Some(t) = self.netdev.as_ref().and_then(|f| f.read(buf).ok()) {
            if use_crate(ProcRead::NetDev) {
                let devs = procfs::net::InterfaceDeviceStatus::from_read(t.as_bytes());
                for (name, d) in devs.map(|d| d.0).unwrap_or_default() {
                    if name != "lo" {
                        r.nets.insert(name, [d.recv_bytes, d.sent_bytes]);
                    }
                }
            } else {
                for (name, rx, tx) in net_dev(t) {
                    r.nets.insert(name.to_string(), [rx, tx]);
                }
            }
            ReadCost::add(cost, ProcRead::NetDev, t0);
        }
        r
    }
}

/// (interface, rx bytes, tx bytes) of a `/proc/<pid>/net/dev`, loopback left out.
pub fn net_dev(text: &str) -> impl Iterator<Item = (&str, u64, u64)> {
    text.lines().skip(2).filter_map(|l| {
        let (name, rest) = l.split_once(':')?;
        let name = name.trim();
        if name == "lo" {
            return None;
        }
        let mut f = rest.split_whitespace().map(|x| x.parse().unwrap_or(0));
        let rx = f.next()?;
        let tx = f.nth(7)?;
        Some((name, rx, tx))
    })
}

/// A whole disk (in /sys/block), not a partition, loop or ram device.
fn is_disk(name: &str) -> bool {
    !name.starts_with("loop")
        && !name.starts_with("ram")
        && !name.starts_with("zram")
        && Path::new("/sys/block").join(name).exists()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn host_sample_from_this_machine_is_sane() {
        let mut h = HostSampler::new("t");
        let _ = h.sample(1).expect("first sample");
        // Burn some CPU so the ratios have something to show.
        let t0 = Instant::now();
        let mut x = 0u64;
        while t0.elapsed().as_millis() < 200 {
            x = x.wrapping_mul(6364136223846793005).wrapping_add(1);
        }
        std::hint::black_box(x);
        let s = h.sample(2).expect("second sample");
        let sum = s.cpu_user_ratio + s.cpu_system_ratio + s.cpu_idle_ratio + s.cpu_iowait_ratio;
        assert!(sum > 0.9 && sum <= 1.0001, "ratios sum to {sum}: {s:?}");
        assert!(s.cpu_user_ratio > 0.0, "{s:?}");
        assert!(s.memory_total_bytes > s.memory_used_bytes && s.memory_used_bytes > 0);
        assert!(s.context_switches_per_second > 0.0);
        assert!(s.interrupts_per_second > 0.0);
        assert!(s.load1 >= 0.0);
        assert!(!s.disks.is_empty(), "no disk found in /proc/diskstats");
        assert!(s.disks.iter().all(|d| !d.device.starts_with("loop")));
        assert_eq!(
            s.cores as usize,
            std::thread::available_parallelism().unwrap().get()
        );
        // This kernel has PSI.
        assert!(s.psi_cpu_some_avg10.is_some());
    }
}
