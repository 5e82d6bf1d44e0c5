//! `herd-agent __sampler-bench READS PARENT INTERVAL_MS SECONDS`: the
//! sampler's reads of the host and of every container cgroup under
//! `PARENT` (e.g. `/herd/lab/n1`), at the sampler's rate, with the /proc
//! files parsed as `READS` says (`hand`, `crate` or `default`). `herd bench
//! monitor` runs a `hand` and a `crate` one side by side over its lab's
//! containers; each prints one JSON object: its CPU time per [`ProcRead`]
//! (and how many reads), for the containers and the host in total, and its
//! RSS.
//!
//! Per container it does what the sampler does: the cgroup files (the same
//! code in both: the crate has no cgroup parsers), `/proc/<pid>/io` of a v1
//! container's processes and `/proc/<pid>/net/dev` on a full read (when the
//! container's CPU time moved, or every [`super::cgroups::FULL_READ_EVERY`]
//! samples). The host sampler runs with a `--cpus` slice over `PARENT`, so
//! the slow path (`/proc/<tid>/stat` of every thread under it) is measured
//! too. The mountinfo parse (start-up) is timed over 20 parses.

use std::ffi::OsString;
use std::path::Path;
use std::time::{Duration, Instant};

use super::cgroups::{CgroupReader, Layout};
use super::pfile::PFile;
use super::procfs::{self, thread_cpu_ns, HostSampler, ProcRead, ReadCost, Reads};

/// The argument that selects this mode.
pub const ARG: &str = "__sampler-bench";

/// Runs the bench; the exit code.
pub fn main(args: &[OsString]) -> i32 {
    match run(args) {
        Ok(json) => {
            println!("{json}");
            0
        }
        Err(e) => {
            eprintln!("herd-agent {ARG}: {e}");
            2
        }
    }
}

struct One {
    reader: CgroupReader,
    net: Option<PFile>,
}

fn run(args: &[OsString]) -> Result<serde_json::Value, String> {
    let arg = |i: usize, what: &str| {
        args.get(i)
            .and_then(|a| a.to_str())
            .ok_or_else(|| format!("missing {what}"))
    };
    let reads = match arg(0, "READS")? {
        "hand" => Reads::HAND,
        "crate" => Reads::CRATE,
        "default" => Reads::DEFAULT,
        other => return Err(format!("READS {other:?}: hand, crate or default")),
    };
    let parent = format!("/{}", arg(1, "PARENT")?.trim_matches('/'));
    let num = |i: usize, what: &str| -> Result<u64, String> {
        arg(i, what)?.parse().map_err(|e| format!("{what}: {e}"))
    };
    let interval = Duration::from_millis(num(2, "INTERVAL_MS")?.max(10));
    let seconds = num(3, "SECONDS")?;
    procfs::set_reads(reads);

    let mut cost = Some(ReadCost::default());
    let mountinfo = std::fs::read_to_string("/proc/self/mountinfo")
        .map_err(|e| format!("/proc/self/mountinfo: {e}"))?;
    let mut layout = Layout::default();
    for _ in 0..20 {
        let t0 = thread_cpu_ns();
        layout = Layout::from_mountinfo(&mountinfo);
        ReadCost::add(&mut cost, ProcRead::Mountinfo, t0);
    }
    let rel = parent.trim_start_matches('/');
    let root = layout
        .v1
        .get("cpuacct")
        .or(layout.v1.get("cpu"))
        .or(layout.v2.as_ref())
        .ok_or("no cgroup hierarchy with CPU accounting")?
        .join(rel);
    let mut names: Vec<String> = std::fs::read_dir(&root)
        .map_err(|e| format!("{}: {e}", root.display()))?
        .flatten()
        .filter(|e| e.file_type().is_ok_and(|t| t.is_dir()))
        .filter_map(|e| e.file_name().into_string().ok())
        .collect();
    names.sort();
    let mut conts: Vec<One> = Vec::new();
    for n in &names {
        let reader = layout.open(&format!("{parent}/{n}")).with_cost();
        if !reader.is_open() {
            continue;
        }
        let pid = std::fs::read_to_string(root.join(n).join("cgroup.procs"))
            .ok()
            .and_then(|t| t.split_whitespace().next().map(str::to_string));
        let net = pid.and_then(|p| PFile::open(Path::new(&format!("/proc/{p}/net/dev"))));
        conts.push(One { reader, net });
    }
    let cores = std::thread::available_parallelism().map_or(1.0, |n| n.get() as f64);
    let mut host = HostSampler::new("bench")
        .with_slice(&layout, &parent, cores)
        .with_cost();
    let mut buf = Vec::with_capacity(64 << 10);

    let (mut host_ns, mut containers_ns, mut ticks) = (0u64, 0u64, 0u64);
    let end = Instant::now() + Duration::from_secs(seconds);
    let mut next = Instant::now();
    while Instant::now() < end {
        let t0 = thread_cpu_ns();
        let _ = host.sample(ticks);
        let t1 = thread_cpu_ns();
        for c in &mut conts {
            if c.reader.read(&mut buf).is_none() || c.reader.was_idle() && ticks > 0 {
                continue;
            }
            let t0 = thread_cpu_ns();
            if let Some(t) = c.net.as_ref().and_then(|f| f.read(&mut buf).ok()) {
                std::hint::black_box(procfs::net_dev_totals(t));
                ReadCost::add(&mut cost, ProcRead::NetDev, t0);
            }
        }
        let t2 = thread_cpu_ns();
        host_ns += t1 - t0;
        containers_ns += t2 - t1;
        ticks += 1;
        next += interval;
        std::thread::sleep(next.saturating_duration_since(Instant::now()));
    }
    let mut costs = cost.unwrap_or_default();
    if let Some(h) = host.cost() {
        for i in 0..ProcRead::ALL.len() {
            costs.ns[i] += h.ns[i];
            costs.reads[i] += h.reads[i];
        }
    }
    let io = ProcRead::ALL
        .iter()
        .position(|r| *r == ProcRead::ProcIo)
        .unwrap_or(0);
    for (ns, n) in conts.iter().filter_map(|c| c.reader.proc_io_cost()) {
        costs.ns[io] += ns;
        costs.reads[io] += n;
    }
    let mut per_read = serde_json::Map::new();
    for (i, r) in ProcRead::ALL.iter().enumerate() {
        per_read.insert(
            r.name().to_string(),
            serde_json::json!({
                "crate": reads.uses_crate(*r),
                "ns": costs.ns[i],
                "reads": costs.reads[i],
            }),
        );
    }
    let (rss, hwm) = rss();
    Ok(serde_json::json!({
        "reads": arg(0, "READS")?,
        "containers": conts.len(),
        "ticks": ticks,
        "host_ns": host_ns,
        "containers_ns": containers_ns,
        "per_read": per_read,
        "rss_bytes": rss,
        "rss_peak_bytes": hwm,
    }))
}

/// VmRSS and VmHWM of this process, bytes.
fn rss() -> (u64, u64) {
    let s = std::fs::read_to_string("/proc/self/status").unwrap_or_default();
    let kib = |k: &str| {
        s.lines()
            .find_map(|l| l.strip_prefix(k))
            .and_then(|r| r.split_whitespace().next()?.parse::<u64>().ok())
            .unwrap_or(0)
            * 1024
    };
    (kib("VmRSS:"), kib("VmHWM:"))
}
