//! Container metrics from cgroup v1 and v2 files, opened once per
//! container and re-read with pread.
//!
//! | metric | v1 | v2 |
//! |---|---|---|
//! | CPU (ns) | `cpuacct.usage` | `cpu.stat` usage_usec |
//! | throttling | `cpu.stat` nr_periods, nr_throttled, throttled_time | `cpu.stat` nr_periods, nr_throttled, throttled_usec |
//! | memory | `memory.usage_in_bytes` − total_inactive_file | `memory.current` − inactive_file |
//! | major faults | `memory.stat` total_pgmajfault | `memory.stat` pgmajfault |
//! | IO | `/proc/<pid>/io` of `cgroup.procs` (syscr, syscw, read_bytes, write_bytes) | `io.stat` rios, wios, rbytes, wbytes |
//! | pids | `pids.current` | `pids.current` |
//! | PSI | the cgroup2 hierarchy's `*.pressure` if the container is in one | `*.pressure` |
//!
//! v1 IO is counted per task because v1 does not charge buffered
//! writeback to the cgroup that dirtied the pages (blkio shows zero for a
//! write+fsync workload here): its ops are the tasks' read/write calls.
//! On a host with a disk limit (`--disk-iops`) the ops are block IO
//! instead ([`CgroupReader::with_block_ops`]), the unit of the host's
//! own disk figures there.
//! On a hybrid host the container also sits in the cgroup2 hierarchy (the
//! agent joins it there), which gives PSI and, if the v1 cpuacct is
//! missing, CPU time.
//!
//! An idle container costs one read: if its CPU time did not move since the
//! last sample, nothing else can have (no syscalls, faults or forks without
//! CPU time), and the previous counters are reused, for at most
//! [`FULL_READ_EVERY`] samples. The sampler skips the container's
//! `/proc/<pid>/net/dev` then too (the most expensive file here, about
//! 4-10 us): what the kernel receives or retransmits for a container that
//! does not run shows within those samples.

use std::collections::HashMap;
use std::path::{Path, PathBuf};

use procfs::FromRead;

use super::pfile::{kv, psi_some_avg10, psi_some_total_seconds, PFile};
use super::procfs::{thread_cpu_ns, use_crate, ProcRead};

/// Idle containers are read fully at least every this many samples (the
/// kernel may reclaim their memory without them running). At 10 these
/// reads were about a third of an idle container's cost (benches/README).
pub const FULL_READ_EVERY: u32 = 30;

const V1_CONTROLLERS: &[&str] = &[
    "cpu",
    "cpuacct",
    "cpuset",
    "memory",
    "devices",
    "freezer",
    "net_cls",
    "blkio",
    "perf_event",
    "net_prio",
    "hugetlb",
    "pids",
    "rdma",
    "misc",
];

/// Where each hierarchy is mounted.
#[derive(Debug, Clone, Default)]
pub struct Layout {
    /// v1 controller (or `name=systemd`) -> mount point.
    pub v1: HashMap<String, PathBuf>,
    pub v2: Option<PathBuf>,
}

impl Layout {
    pub fn detect() -> Layout {
        Layout::from_mounts(&crate::mountinfo::mounts())
    }

    /// The layout a `/proc/PID/mountinfo` text describes.
    pub fn from_mountinfo(text: &str) -> Layout {
        Layout::from_mounts(&crate::mountinfo::parse(text))
    }

    pub fn from_mounts(mounts: &[crate::mountinfo::Mount]) -> Layout {
        let mut l = Layout::default();
        for m in mounts {
            match m.fs_type.as_str() {
                "cgroup2" => l.v2 = Some(m.point.clone()),
                "cgroup" => {
                    for o in &m.super_options {
                        if V1_CONTROLLERS.contains(&o.as_str()) || o.starts_with("name=") {
                            l.v1.entry(o.clone()).or_insert_with(|| m.point.clone());
                        }
                    }
                }
                _ => {}
            }
        }
        l
    }

    /// "v1", "v2", "hybrid" or "none".
    pub fn kind(&self) -> &'static str {
        match (
            self.v1.contains_key("cpu") || self.v1.contains_key("memory"),
            &self.v2,
        ) {
            (true, Some(_)) => "hybrid",
            (true, None) => "v1",
            (false, Some(_)) => "v2",
            (false, None) => "none",
        }
    }

    /// Open the files of the cgroup at `path` (e.g. `/herd/n1/c1`).
    pub fn open(&self, path: &str) -> CgroupReader {
        let rel = path.trim_start_matches('/');
        let v2 = self.v2.as_ref().map(|m| m.join(rel));
        let v1 = |ctrl: &str, file: &str| -> Option<PFile> {
            PFile::open(&self.v1.get(ctrl)?.join(rel).join(file))
        };
        if self.v1.contains_key("cpu") || self.v1.contains_key("memory") {
            let mut r = CgroupReader {
                cpu_usage: v1("cpuacct", "cpuacct.usage"),
                cpu_stat: v1("cpu", "cpu.stat"),
                mem_current: v1("memory", "memory.usage_in_bytes"),
                mem_stat: v1("memory", "memory.stat"),
                pids: v1("pids", "pids.current"),
                procs: v1("pids", "cgroup.procs").or_else(|| v1("cpu", "cgroup.procs")),
                v1: true,
                ..Default::default()
            };
            if let Some(d) = v2 {
                r.psi = psi_files(&d);
                if r.cpu_usage.is_none() {
                    r.v2_cpu = PFile::open(&d.join("cpu.stat"));
                }
            }
            r
        } else if let Some(d) = v2 {
            CgroupReader::open_v2(&d)
        } else {
            CgroupReader::default()
        }
    }
}

fn psi_files(dir: &Path) -> [Option<PFile>; 3] {
    [
        PFile::open(&dir.join("cpu.pressure")),
        PFile::open(&dir.join("memory.pressure")),
        PFile::open(&dir.join("io.pressure")),
    ]
}

/// Raw counters of one container reading.
#[derive(Debug, Clone, Default, PartialEq)]
pub struct CgRaw {
    pub cpu_ns: u64,
    pub periods: u64,
    pub throttled_periods: u64,
    pub throttled_ns: u64,
    pub memory_bytes: u64,
    pub pgmajfault: u64,
    /// read ops, write ops, read bytes, write bytes
    pub io: [u64; 4],
    pub pids: u64,
    pub psi: [Option<f64>; 3],
    /// PSI `some` total stall (seconds) of cpu, memory, io.
    pub psi_total: [Option<f64>; 3],
}

/// A cgroup's CPU time (ns) and, on v2, the `cpu.stat` text it is from.
pub type CpuRead = (u64, Option<String>);

#[derive(Default)]
pub struct CgroupReader {
    v1: bool,
    cpu_usage: Option<PFile>,
    /// v2 cpu.stat, or the cgroup2 one of a hybrid host without cpuacct.
    v2_cpu: Option<PFile>,
    cpu_stat: Option<PFile>,
    mem_current: Option<PFile>,
    mem_stat: Option<PFile>,
    io_stat: Option<PFile>,
    pids: Option<PFile>,
    procs: Option<PFile>,
    psi: [Option<PFile>; 3],
    /// v1 `blkio.throttle.io_serviced_recursive`: block ops instead of
    /// the tasks' read/write calls (see [`CgroupReader::with_block_ops`]).
    block_ops: Option<PFile>,
    /// v1: /proc/<pid>/io of the cgroup's processes, kept open.
    proc_io: HashMap<u32, Option<PFile>>,
    io_last: HashMap<u32, [u64; 4]>,
    /// Counts of processes that left: their IO stays in the totals.
    gone_io: [u64; 4],
    last: Option<CgRaw>,
    since_full: u32,
    /// The last read reused the previous counters (the container was idle).
    idle: bool,
    /// The last read found the CPU time moved (or was the first).
    moved: bool,
    /// CPU time spent in `/proc/<pid>/io` reads and their count, when
    /// counted (bench).
    proc_io_cost: Option<(u64, u64)>,
}

impl CgroupReader {
    /// A pure cgroup v2 directory.
    pub fn open_v2(dir: &Path) -> CgroupReader {
        let f = |n: &str| PFile::open(&dir.join(n));
        CgroupReader {
            v2_cpu: f("cpu.stat"),
            mem_current: f("memory.current"),
            mem_stat: f("memory.stat"),
            io_stat: f("io.stat"),
            pids: f("pids.current"),
            psi: psi_files(dir),
            ..Default::default()
        }
    }

    /// v1: count the block IO the cgroup's tasks submitted (blkio's
    /// throttle counters: direct IO, fsync, reads; what a disk limit
    /// throttles) as its read and write ops, not their read/write calls.
    /// A disk-limited host reports its own disk in those ops, and
    /// `oltp-disk` compares a container's ops with its host's: a
    /// database's socket reads and writes are no disk ops. v2 already
    /// counts block IO (io.stat).
    pub fn with_block_ops(mut self, layout: &Layout, path: &str) -> Self {
        if self.v1 {
            let rel = path.trim_start_matches('/');
            self.block_ops = layout.v1.get("blkio").and_then(|m| {
                PFile::open(&m.join(rel).join("blkio.throttle.io_serviced_recursive"))
            });
        }
        self
    }

    /// Count the CPU time of the `/proc/<pid>/io` reads (for `herd bench monitor`).
    pub fn with_cost(mut self) -> Self {
        self.proc_io_cost = Some((0, 0));
        self
    }

    /// (ns, reads) of the `/proc/<pid>/io` reads, when counted.
    pub fn proc_io_cost(&self) -> Option<(u64, u64)> {
        self.proc_io_cost
    }

    /// Whether the last [`read`](Self::read) reused the previous counters.
    pub fn was_idle(&self) -> bool {
        self.idle
    }

    /// Whether the last read found the CPU time moved (or was the first):
    /// unlike [`was_idle`](Self::was_idle), a periodic full read of an
    /// idle container is not a move.
    pub fn moved(&self) -> bool {
        self.moved
    }

    /// True if the CPU-time file could be opened (the cgroup exists).
    pub fn is_open(&self) -> bool {
        self.cpu_usage.is_some() || self.v2_cpu.is_some()
    }

    /// The cgroup's CPU time (ns), one read, and on v2 the `cpu.stat` text
    /// it came from (the rest of a read parses it again).
    pub fn cpu(&self, buf: &mut Vec<u8>) -> Option<CpuRead> {
        if let Some(f) = &self.cpu_usage {
            return Some((f.read_u64(buf)?, None));
        }
        let t = self.v2_cpu.as_ref()?.read(buf).ok()?;
        Some((kv(t, "usage_usec")? * 1000, Some(t.to_string())))
    }

    /// [`read`](Self::read) for a container the sampler knows did not run
    /// since its last read (see the sampler's module docs): the previous
    /// counters without a syscall, unless a full read is due.
    pub fn read_known_idle(&mut self, buf: &mut Vec<u8>) -> Option<CgRaw> {
        match &self.last {
            Some(last) if self.since_full < FULL_READ_EVERY => {
                self.since_full += 1;
                self.idle = true;
                self.moved = false;
                Some(last.clone())
            }
            _ => self.read(buf),
        }
    }

    /// Read the counters. `None` if the cgroup is gone.
    pub fn read(&mut self, buf: &mut Vec<u8>) -> Option<CgRaw> {
        let cpu = self.cpu(buf)?;
        self.read_after(cpu, buf)
    }

    /// [`read`](Self::read) with the CPU time already read by [`cpu`](Self::cpu).
    pub fn read_after(&mut self, cpu: CpuRead, buf: &mut Vec<u8>) -> Option<CgRaw> {
        let (cpu_ns, v2_stat) = cpu;
        self.moved = self.last.as_ref().is_none_or(|l| l.cpu_ns != cpu_ns);
        if let Some(last) = &self.last {
            if last.cpu_ns == cpu_ns && self.since_full < FULL_READ_EVERY {
                self.since_full += 1;
                self.idle = true;
                return Some(last.clone());
            }
        }
        self.since_full = 0;
        self.idle = false;
        let mut r = CgRaw {
            cpu_ns,
            ..Default::default()
        };
        // Throttling: v1 cpu.stat, or v2 cpu.stat (already read above).
        let stat = match (&self.cpu_stat, v2_stat) {
            (Some(f), _) => f.read(buf).ok().map(str::to_string),
            (None, s) => s,
        };
        if let Some(t) = stat {
            r.periods = kv(&t, "nr_periods").unwrap_or(0);
            r.throttled_periods = kv(&t, "nr_throttled").unwrap_or(0);
            r.throttled_ns = kv(&t, "throttled_time")
                .or_else(|| kv(&t, "throttled_usec").map(|u| u * 1000))
                .unwrap_or(0);
        }
        let current = self.mem_current.as_ref().and_then(|f| f.read_u64(buf));
        if let Some(t) = self.mem_stat.as_ref().and_then(|f| f.read(buf).ok()) {
            let (inactive, faults) = if self.v1 {
                (kv(t, "total_inactive_file"), kv(t, "total_pgmajfault"))
            } else {
                (kv(t, "inactive_file"), kv(t, "pgmajfault"))
            };
            r.pgmajfault = faults.unwrap_or(0);
            r.memory_bytes = current.unwrap_or(0).saturating_sub(inactive.unwrap_or(0));
        } else {
            r.memory_bytes = current.unwrap_or(0);
        }
        r.pids = self
            .pids
            .as_ref()
            .and_then(|f| f.read_u64(buf))
            .unwrap_or(0);
        if self.v1 {
            r.io = self.proc_io(buf);
            if let Some(t) = self.block_ops.as_ref().and_then(|f| f.read(buf).ok()) {
                [r.io[0], r.io[1]] = blkio_ops(t);
            }
        } else if let Some(t) = self.io_stat.as_ref().and_then(|f| f.read(buf).ok()) {
            r.io = parse_io_stat(t);
        }
        for (i, f) in self.psi.iter().enumerate() {
            if let Some(t) = f.as_ref().and_then(|f| f.read(buf).ok()) {
                r.psi[i] = psi_some_avg10(t);
                r.psi_total[i] = psi_some_total_seconds(t);
            }
        }
        self.last = Some(r.clone());
        Some(r)
    }

    /// Sum of the cgroup's processes' `/proc/<pid>/io`; the files of
    /// processes that stay are kept open, those that left keep their last
    /// counts in `gone_io` so the total does not fall.
    fn proc_io(&mut self, buf: &mut Vec<u8>) -> [u64; 4] {
        let Some(procs) = self.procs.as_ref().and_then(|f| f.read(buf).ok()) else {
            return [0; 4];
        };
        let pids: Vec<u32> = procs
            .split_whitespace()
            .filter_map(|p| p.parse().ok())
            .collect();
        let mut last_counts = std::mem::take(&mut self.io_last);
        self.proc_io.retain(|p, _| pids.contains(p));
        let by_crate = use_crate(ProcRead::ProcIo);
        for p in pids {
            let t0 = self.proc_io_cost.map(|_| thread_cpu_ns());
            let f = self
                .proc_io
                .entry(p)
                .or_insert_with(|| PFile::open(Path::new(&format!("/proc/{p}/io"))));
            let counts = f.as_ref().and_then(|f| f.read(buf).ok()).and_then(|t| {
                if by_crate {
                    let i = procfs::process::Io::from_read(t.as_bytes()).ok()?;
                    Some([i.syscr, i.syscw, i.read_bytes, i.write_bytes])
                } else {
                    Some(parse_proc_io(t))
                }
            });
            if let (Some((ns, n)), Some(t0)) = (&mut self.proc_io_cost, t0) {
                *ns += thread_cpu_ns().saturating_sub(t0);
                *n += 1;
            }
            if let Some(c) = counts {
                self.io_last.insert(p, c);
                last_counts.remove(&p);
            }
        }
        // Processes that left (or vanished between the two reads): their
        // last counts stay in the total.
        for c in last_counts.values() {
            self.gone_io.iter_mut().zip(c).for_each(|(g, v)| *g += v);
        }
        let mut sum = self.gone_io;
        for c in self.io_last.values() {
            sum.iter_mut().zip(c).for_each(|(s, v)| *s += v);
        }
        sum
    }
}

impl CgRaw {
    /// The cumulative counters of this reading, in base units.
    pub fn counters(&self) -> herd_wire::monitor::ContainerCounters {
        herd_wire::monitor::ContainerCounters {
            cpu_seconds: self.cpu_ns as f64 / 1e9,
            cfs_periods: self.periods,
            cfs_throttled_periods: self.throttled_periods,
            cfs_throttled_seconds: self.throttled_ns as f64 / 1e9,
            major_faults: self.pgmajfault,
            fs_reads: self.io[0],
            fs_writes: self.io[1],
            fs_read_bytes: self.io[2],
            fs_write_bytes: self.io[3],
            pressure_seconds: self.psi_total.map(|v| v.unwrap_or(0.0)),
            ..Default::default()
        }
    }
}

/// Read and Write ops summed over the devices of a v1 blkio
/// `io_serviced` file (`MAJ:MIN Read N` lines).
pub fn blkio_ops(text: &str) -> [u64; 2] {
    let mut v = [0u64; 2];
    for l in text.lines() {
        let mut f = l.split_whitespace();
        let (Some(_dev), Some(op), Some(n)) = (f.next(), f.next(), f.next()) else {
            continue;
        };
        let i = match op {
            "Read" => 0,
            "Write" => 1,
            _ => continue,
        };
        v[i] += n.parse::<u64>().unwrap_or(0);
    }
    v
}

/// `rios`, `wios`, `rbytes`, `wbytes` summed over the devices of `io.stat`.
pub fn parse_io_stat(text: &str) -> [u64; 4] {
    let mut v = [0u64; 4];
    for line in text.lines() {
        for field in line.split_whitespace().skip(1) {
            let Some((k, n)) = field.split_once('=') else {
                continue;
            };
            let i = match k {
                "rios" => 0,
                "wios" => 1,
                "rbytes" => 2,
                "wbytes" => 3,
                _ => continue,
            };
            v[i] += n.parse::<u64>().unwrap_or(0);
        }
    }
    v
}

/// `syscr`, `syscw`, `read_bytes`, `write_bytes` of `/proc/<pid>/io`.
pub fn parse_proc_io(text: &str) -> [u64; 4] {
    let g = |k: &str| {
        text.lines()
            .find_map(|l| l.strip_prefix(k)?.strip_prefix(": ")?.trim().parse().ok())
            .unwrap_or(0)
    };
    [g("syscr"), g("syscw"), g("read_bytes"), g("write_bytes")]
}

#[cfg(test)]
mod tests {
    #[test]
    fn blkio_ops_sum_reads_and_writes_over_devices() {
        let t = "254:0 Read 7\n254:0 Write 153\n254:0 Sync 209\n254:0 Async 0\n\
                 254:0 Discard 49\n254:0 Total 209\n8:0 Read 1\n8:0 Write 2\nTotal 212\n";
        assert_eq!(super::blkio_ops(t), [8, 155]);
    }
}
