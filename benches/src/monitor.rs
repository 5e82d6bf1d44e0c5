//! `herd bench monitor`: what the agent's sampler costs with many real
//! containers, next to two naive readers of the same containers in the same
//! run.
//!
//! ```text
//! herd bench monitor [--containers 10,50,100,1000] [--seconds 60] [--json] [--keep-lab] [--lab NAME]
//! ```
//!
//! The bench starts its own lab (`hmonbench` unless `--lab`, one node, the agent sampling
//! every 1 s), subscribes to the agent as `herd monitor` does (samples and
//! logs, so encoding and sending are in the cost) and, for each count of
//! `--containers` in increasing order, grows the lab to that many idle
//! busybox containers (`sleep`; each a real container: overlay, netns,
//! cgroups, log shim), lets the sampler open their files, and measures for
//! `--seconds`:
//!
//! * **herd**: CPU time of the agent's `herd-sampler` thread and of the whole
//!   agent (`/proc/<pid>/task/*/schedstat`, ns), the agent's RSS (VmRSS) and
//!   peak RSS (VmHWM);
//! * **naive**: `herd-bench __naive-reader`, started beside it: every
//!   interval it opens, reads, parses and closes the same files the agent
//!   reads for each container (its cgroup files, `/proc/<pid>/io` and
//!   `net/dev`, the PSI files, the log from its last offset), every
//!   container fully each time; its CPU time and RSS;
//! * **python**: a naive `python3` loop reading three files per container
//!   (`cpuacct.usage`, `memory.usage_in_bytes`, `pids.current`, the v2
//!   equivalents on a v2 host) and computing the CPU rate.
//!
//! * **procfs crate vs hand-written** (#21): two `herd-agent __sampler-bench`
//!   processes started beside it, one parsing the sampler's /proc files with
//!   the hand-written parsers, one with the `procfs` crate (both with the
//!   files kept open and re-read with one pread; the crate's `FromRead` over
//!   the bytes), each doing the sampler's reads of the host (with a `--cpus`
//!   slice over the lab node's cgroup, so the slow path is in) and of every
//!   container of the node at the same interval for the same seconds; each
//!   reports its CPU time per /proc file and per container, and its RSS.
//!
//! It prints cores used (CPU seconds per second), microseconds per container
//! per sample, RSS, and the ratios naive / herd and python / herd. Nothing is
//! asserted.
//!
//! * **netdata**, where installed (Debian's `netdata-core`, installed by
//!   scripts/setup): started at each step with a private config, its
//!   cgroups plugin alone at 1 s over the lab node's containers only, and
//!   measured once it charts every container (its whole process and
//!   waited-for children, clock ticks). The config names each cgroup by a
//!   script of the bench's (Debian's netdata-core lacks `cgroup-name.sh`,
//!   and netdata charts no cgroup whose name script fails) and charts zero
//!   metrics (an idle container's CPU ticks are 0).
//! * **PCP**, where installed (Debian's `pcp`, installed by scripts/setup
//!   with its services left stopped): a private pmcd (pmdaproc, pmdalinux;
//!   a private namespace file, port and config) in a private mount
//!   namespace with the empty cgroup2 at `/sys/fs/cgroup/unified` unmounted
//!   (pmdaproc reads no v1 cgroup while it is mounted), and pmlogger logging
//!   the containers' cgroup metrics and the host's at 1 s; measured: pmcd,
//!   its PMDAs and pmlogger (every process, clock ticks), their summed RSS.
//!   They run in the step's directory of the lab (their logs stay there).
//!   Both peers are killed at the end of each step.

use std::fs;
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use anyhow::{bail, Context, Result};
use herd_wire::{Request, Response, RunSpec};

use herd::client::{unexpected, Client};
use herd::cluster::Cluster;
use herd::{lab, monitor};

/// The bench's lab unless `--lab` names another.
pub const LAB: &str = "hmonbench";
/// herd-agent's `monitor::bench::ARG` (herd-bench does not link the agent).
const SAMPLER_BENCH_ARG: &str = "__sampler-bench";
const NODE: &str = "n1";
/// Containers created at the same time (the agent runs each create in its
/// own helper process; 1000 one after the other took too long).
const CREATE_PAR: usize = 4;

const PY_BASELINE: &str = r#"
import os, sys, time
roots, names, interval, seconds = sys.argv[1].split(','), sys.argv[2].split(','), float(sys.argv[3]), float(sys.argv[4])
cpu_root, mem_root, pids_root = roots
v2 = cpu_root == mem_root
files = ("cpu.stat", "memory.current", "pids.current") if v2 else ("cpuacct.usage", "memory.usage_in_bytes", "pids.current")
def read(path):
    with open(path) as f:
        return f.read()
prev, t_end, n = {}, time.monotonic() + seconds, 0
while time.monotonic() < t_end:
    t0 = time.monotonic()
    out = {}
    for c in names:
        try:
            cpu = read(os.path.join(cpu_root, c, files[0]))
            cpu = int(cpu.split()[1]) * 1000 if v2 else int(cpu)
            mem = int(read(os.path.join(mem_root, c, files[1])))
            pids = int(read(os.path.join(pids_root, c, files[2])))
        except (OSError, ValueError, IndexError):
            continue
        p = prev.get(c)
        out[c] = ((cpu - p[0]) / 1e9 / (t0 - p[1]) if p else 0.0, mem, pids)
        prev[c] = (cpu, t0)
    n += 1
    time.sleep(max(0.0, interval - (time.monotonic() - t0)))
print(n, len(out))
"#;

/// `herd bench monitor`: `containers` is a comma-separated list of counts.
pub async fn run(
    containers: &str,
    seconds: u64,
    json: bool,
    keep_lab: bool,
    lab_name: &str,
) -> Result<()> {
    let mut counts = Vec::new();
    for c in containers
        .split(',')
        .map(str::trim)
        .filter(|c| !c.is_empty())
    {
        match c.parse::<usize>() {
            Ok(n) if n > 0 => counts.push(n),
            _ => bail!("--containers: {c:?} is not a count of at least 1 (e.g. 10,50,100)"),
        }
    }
    counts.sort_unstable();
    counts.dedup();
    if counts.is_empty() || seconds == 0 {
        bail!("--containers and --seconds must be at least 1");
    }
    let interval_ms = 1000;
    let cl = lab::up(lab_name, 1, &[]).await.with_context(|| {
        format!(
            "cannot start the bench lab {lab_name} (left behind? herd --lab {lab_name} lab down)"
        )
    })?;
    eprintln!("bench: lab {lab_name} is up");
    let r = measure(&cl, &counts, seconds, interval_ms).await;
    let down = if keep_lab {
        eprintln!("bench: lab {lab_name} kept; remove it with `herd --lab {lab_name} lab down`");
        Ok(())
    } else {
        eprintln!("bench: removing the containers and the lab");
        let r = lab::down(lab_name).await.map(|_| ());
        crate::checkpoint::kill_log_shims(&cl.dir);
        r
    };
    let rows = r?;
    down.context("tear down the bench lab")?;
    if json {
        println!("{}", serde_json::to_string_pretty(&rows)?);
    } else {
        print(&rows);
    }
    Ok(())
}

/// Nanoseconds on CPU of a task (`/proc/<pid>/task/<tid>/schedstat`).
fn schedstat(path: &Path) -> u64 {
    fs::read_to_string(path)
        .ok()
        .and_then(|s| s.split_whitespace().next()?.parse().ok())
        .unwrap_or(0)
}

/// CPU ns of the whole process `pid` (utime+stime: threads that ended
/// included, clock-tick precision) and of its thread named `name` alone
/// (schedstat, ns).
fn proc_cpu(pid: i32, name: &str) -> (u64, u64) {
    let stat = fs::read_to_string(format!("/proc/{pid}/stat")).unwrap_or_default();
    let all = stat
        .rfind(')')
        .map(|i| stat[i + 2..].split_whitespace().collect::<Vec<_>>())
        .and_then(|f| Some(f.get(11)?.parse::<u64>().ok()? + f.get(12)?.parse::<u64>().ok()?))
        .unwrap_or(0);
    // SAFETY: sysconf has no preconditions.
    let hz = unsafe { libc::sysconf(libc::_SC_CLK_TCK) }.max(1) as u64;
    let mut one = 0;
    if let Ok(rd) = fs::read_dir(format!("/proc/{pid}/task")) {
        for t in rd.flatten() {
            let named = fs::read_to_string(t.path().join("comm"))
                .map(|c| c.trim() == name)
                .unwrap_or(false);
            if named {
                one += schedstat(&t.path().join("schedstat"));
            }
        }
    }
    (all * 1_000_000_000 / hz, one)
}

/// SIGKILL the agent's children that are forks of the agent itself (same
/// executable, not a log shim): libcontainer's intermediate processes.
fn kill_stuck_forks(agent: i32) -> usize {
    let exe = fs::read_link(format!("/proc/{agent}/exe")).ok();
    let mut n = 0;
    let Ok(rd) = fs::read_dir("/proc") else {
        return 0;
    };
    for e in rd.flatten() {
        let Some(pid) = e.file_name().to_str().and_then(|s| s.parse::<i32>().ok()) else {
            continue;
        };
        let stat = fs::read_to_string(e.path().join("stat")).unwrap_or_default();
        let ppid = stat
            .rfind(')')
            .and_then(|i| stat[i + 2..].split_whitespace().nth(1)?.parse::<i32>().ok());
        let cmdline = fs::read(e.path().join("cmdline")).unwrap_or_default();
        let shim = cmdline.split(|b| *b == 0).nth(1) == Some(&b"__log-shim"[..]);
        if ppid == Some(agent) && !shim && fs::read_link(e.path().join("exe")).ok() == exe {
            let _ = nix::sys::signal::kill(
                nix::unistd::Pid::from_raw(pid),
                nix::sys::signal::Signal::SIGKILL,
            );
            n += 1;
        }
    }
    n
}

/// VmRSS and VmHWM in bytes.
fn rss(pid: i32) -> (u64, u64) {
    let s = fs::read_to_string(format!("/proc/{pid}/status")).unwrap_or_default();
    let kib = |k: &str| {
        s.lines()
            .find_map(|l| l.strip_prefix(k))
            .and_then(|r| r.split_whitespace().next()?.parse::<u64>().ok())
            .unwrap_or(0)
            * 1024
    };
    (kib("VmRSS:"), kib("VmHWM:"))
}

/// The files the agent reads for one container, found from its process:
/// `/proc/<pid>/cgroup` gives each hierarchy's path.
fn container_files(pid: i32, log: &Path) -> Vec<PathBuf> {
    let root = Path::new("/sys/fs/cgroup");
    let unified = if root.join("unified/cgroup.procs").exists() {
        root.join("unified")
    } else {
        root.to_path_buf()
    };
    let mut v1: std::collections::HashMap<String, PathBuf> = Default::default();
    let mut v2 = None;
    for l in fs::read_to_string(format!("/proc/{pid}/cgroup"))
        .unwrap_or_default()
        .lines()
    {
        let mut f = l.splitn(3, ':');
        let (Some(_), Some(ctrl), Some(path)) = (f.next(), f.next(), f.next()) else {
            continue;
        };
        let rel = path.trim_start_matches('/');
        if ctrl.is_empty() {
            v2 = Some(unified.join(rel));
        }
        for c in ctrl.split(',') {
            v1.insert(c.to_string(), root.join(c).join(rel));
        }
    }
    let mut files = Vec::new();
    if let (Some(cpuacct), Some(mem)) = (v1.get("cpuacct"), v1.get("memory")) {
        files.push(cpuacct.join("cpuacct.usage"));
        if let Some(cpu) = v1.get("cpu") {
            files.push(cpu.join("cpu.stat"));
        }
        files.push(mem.join("memory.usage_in_bytes"));
        files.push(mem.join("memory.stat"));
        if let Some(p) = v1.get("pids") {
            files.push(p.join("pids.current"));
            files.push(p.join("cgroup.procs"));
        }
        files.push(PathBuf::from(format!("/proc/{pid}/io")));
    } else if let Some(d) = &v2 {
        for f in [
            "cpu.stat",
            "memory.current",
            "memory.stat",
            "io.stat",
            "pids.current",
        ] {
            files.push(d.join(f));
        }
    }
    if let Some(d) = &v2 {
        for f in ["cpu.pressure", "memory.pressure", "io.pressure"] {
            files.push(d.join(f));
        }
    }
    files.push(PathBuf::from(format!("/proc/{pid}/net/dev")));
    files.retain(|f| f.exists());
    files.push(log.to_path_buf());
    files
}

/// The cgroup parent of process `pid`'s container (e.g. `/herd/lab/n1`):
/// its CPU-accounting cgroup's parent directory.
fn cgroup_parent(pid: i32) -> Option<String> {
    let text = fs::read_to_string(format!("/proc/{pid}/cgroup")).ok()?;
    let mut v2 = None;
    for l in text.lines() {
        let mut f = l.splitn(3, ':');
        let (Some(_), Some(ctrl), Some(path)) = (f.next(), f.next(), f.next()) else {
            continue;
        };
        let parent = Path::new(path).parent()?.display().to_string();
        if ctrl.split(',').any(|c| c == "cpuacct") {
            return Some(parent);
        }
        if ctrl.is_empty() {
            v2 = Some(parent);
        }
    }
    v2
}

/// The two `__sampler-bench` reports side by side: per sample and per
/// container, per /proc file, and the ratio crate / hand-written.
fn compare_reads(r: &serde_json::Map<String, serde_json::Value>) -> serde_json::Value {
    let get = |who: &str, k: &str| r.get(who).and_then(|v| v[k].as_f64()).unwrap_or(f64::NAN);
    let mut out = serde_json::Map::new();
    for who in ["hand", "crate"] {
        let ticks = get(who, "ticks").max(1.0);
        let n = get(who, "containers").max(1.0);
        out.insert(
            who.to_string(),
            serde_json::json!({
                "containers": get(who, "containers"),
                "samples": ticks,
                "host_us_per_sample": get(who, "host_ns") / 1e3 / ticks,
                "us_per_container_sample": get(who, "containers_ns") / 1e3 / ticks / n,
                "rss_bytes": get(who, "rss_bytes"),
            }),
        );
    }
    let ratio = |k: &str| {
        out["crate"][k].as_f64().unwrap_or(f64::NAN) / out["hand"][k].as_f64().unwrap_or(f64::NAN)
    };
    let ratios = serde_json::json!({
        "host_us_per_sample": ratio("host_us_per_sample"),
        "us_per_container_sample": ratio("us_per_container_sample"),
        "rss_bytes": ratio("rss_bytes"),
    });
    let per = |who: &str| {
        r.get(who)
            .map(|v| v["per_read"].clone())
            .unwrap_or_default()
    };
    let (hand, krate) = (per("hand"), per("crate"));
    let mut files = serde_json::Map::new();
    if let Some(h) = hand.as_object() {
        for (file, hv) in h {
            let us = |v: &serde_json::Value| {
                v["ns"].as_f64().unwrap_or(f64::NAN) / 1e3 / v["reads"].as_f64().unwrap_or(0.0)
            };
            let (hu, cu) = (us(hv), us(&krate[file]));
            files.insert(
                file.clone(),
                serde_json::json!({
                    "hand_us_per_read": hu,
                    "crate_us_per_read": cu,
                    "reads": hv["reads"],
                    "ratio": cu / hu,
                    "agent_uses_crate": cu / hu <= 1.10,
                }),
            );
        }
    }
    out.insert("ratio_crate_over_hand".into(), ratios);
    out.insert("per_file".into(), serde_json::Value::Object(files));
    serde_json::Value::Object(out)
}

/// Sum of the numbers of a pseudo-file (`key value`, `key=value` and bare
/// numbers): as much parsing as the agent does, so reading is compared
/// with reading.
fn numbers(text: &str) -> u64 {
    text.split_whitespace()
        .filter_map(|t| t.rsplit('=').next()?.parse::<u64>().ok())
        .fold(0, u64::wrapping_add)
}

/// `herd-bench __naive-reader LIST INTERVAL_MS SECONDS`: every interval,
/// open, read, parse and close each file of each container (one line of
/// `LIST` per container, tab-separated; the last is its log, read from
/// the last offset), with no file kept open and nothing skipped.
pub fn naive_reader(list: &Path, interval_ms: u64, seconds: f64) -> Result<()> {
    use std::io::{Read, Seek, SeekFrom};
    let text = fs::read_to_string(list).with_context(|| format!("read {}", list.display()))?;
    let conts: Vec<Vec<PathBuf>> = text
        .lines()
        .map(|l| l.split('\t').map(PathBuf::from).collect())
        .collect();
    let mut offsets = vec![0u64; conts.len()];
    let (interval, end) = (
        Duration::from_millis(interval_ms),
        Instant::now() + Duration::from_secs_f64(seconds),
    );
    let (mut passes, mut sum, mut buf) = (0u64, 0u64, String::new());
    while Instant::now() < end {
        let t0 = Instant::now();
        for (files, off) in conts.iter().zip(offsets.iter_mut()) {
            let Some((log, cg)) = files.split_last() else {
                continue;
            };
            for f in cg {
                buf.clear();
                if fs::File::open(f)
                    .and_then(|mut h| h.read_to_string(&mut buf))
                    .is_ok()
                {
                    sum = sum.wrapping_add(numbers(&buf));
                }
            }
            buf.clear();
            if let Ok(mut h) = fs::File::open(log) {
                if h.seek(SeekFrom::Start(*off)).is_ok() {
                    if let Ok(n) = h.read_to_string(&mut buf) {
                        *off += n as u64;
                        sum = sum.wrapping_add(buf.matches("ops=").count() as u64);
                    }
                }
            }
        }
        passes += 1;
        std::thread::sleep(interval.saturating_sub(t0.elapsed()));
    }
    println!("{passes} {} {sum}", conts.len());
    Ok(())
}

/// netdata's private config: only its cgroups plugin (v1 files, as the
/// agent reads here) over the containers under `parent` (e.g.
/// `/herd/hmonbench/n1`), 1 s, RAM only, its API on loopback for the bench
/// to see that it charts every container.
fn netdata_conf(dir: &Path, port: u16, parent: &str) -> String {
    let d = dir.display();
    format!(
        "[global]\n    enable zero metrics = yes\n    update every = 1\n    memory mode = ram\n    history = 120\n    run as user = root\n    \
         hostname = herd-bench\n    config directory = {d}/conf\n    cache directory = {d}/cache\n    \
         lib directory = {d}/lib\n    log directory = {d}/log\n    pid file = {d}/netdata.pid\n\
         [web]\n    mode = static-threaded\n    bind to = 127.0.0.1:{port}\n\
         [health]\n    enabled = no\n[ml]\n    enabled = no\n[registry]\n    enabled = no\n\
         [statsd]\n    enabled = no\n\
         [plugins]\n    enable running new plugins = no\n    proc = no\n    diskspace = no\n    tc = no\n    \
         idlejitter = no\n    checks = no\n    apps = no\n    python.d = no\n    charts.d = no\n    \
         go.d = no\n    statsd = no\n    timex = no\n    ebpf = no\n    cgroups = yes\n\
         [plugin:cgroups]\n    update every = 1\n    check for new cgroups every = 10\n    \
         script to get cgroup names = {d}/cgroup-name.sh\n    \
         use unified cgroups = no\n    enable by default cgroups matching = {parent}/* !*\n    \
         search for cgroups in subpaths matching = *\n    max cgroups to allow = 5000\n    \
         max cgroups depth to monitor = 10\n"
    )
}

/// Starts netdata if it is installed (Debian's `netdata-core`, installed
/// by scripts/setup) and waits until it charts the `n` containers under
/// `parent` or 5 minutes passed; with how many it charts.
async fn start_netdata(dir: &Path, n: usize, parent: &str) -> Option<(Child, usize)> {
    let bin = ["/usr/sbin/netdata", "/usr/bin/netdata"]
        .iter()
        .map(PathBuf::from)
        .find(|p| p.exists())?;
    let _ = fs::remove_dir_all(dir);
    for d in ["conf", "cache", "lib", "log"] {
        fs::create_dir_all(dir.join(d)).ok()?;
    }
    let port = 19000 + (std::process::id() % 900) as u16;
    let conf = dir.join("netdata.conf");
    fs::write(&conf, netdata_conf(dir, port, parent)).ok()?;
    // Names a cgroup by the id netdata made of its path (its 2nd argument).
    let script = dir.join("cgroup-name.sh");
    fs::write(&script, "#!/bin/sh\necho \"$2\"\n").ok()?;
    fs::set_permissions(&script, std::os::unix::fs::PermissionsExt::from_mode(0o755)).ok()?;
    let child = Command::new(bin)
        .arg("-D")
        .arg("-c")
        .arg(&conf)
        .env("DO_NOT_TRACK", "1")
        .stdout(Stdio::null())
        .stderr(fs::File::create(dir.join("log/stderr")).ok()?)
        .spawn()
        .ok()?;
    let t0 = Instant::now();
    let mut charted = 0;
    while t0.elapsed() < Duration::from_secs(300) {
        tokio::time::sleep(Duration::from_secs(2)).await;
        charted = netdata_cgroup_charts(port, parent).unwrap_or(0);
        if charted >= n {
            break;
        }
    }
    eprintln!(
        "bench: netdata charts {charted} of {n} containers after {:.0} s",
        t0.elapsed().as_secs_f64()
    );
    Some((child, charted))
}

/// How many of the bench's containers netdata charts (`cgroup_<path>.*`,
/// the path's `/` as `_`).
fn netdata_cgroup_charts(port: u16, parent: &str) -> Option<usize> {
    use std::io::{Read, Write};
    let mut s = std::net::TcpStream::connect(("127.0.0.1", port)).ok()?;
    s.set_read_timeout(Some(Duration::from_secs(10))).ok()?;
    write!(
        s,
        "GET /api/v1/charts HTTP/1.0\r\nHost: 127.0.0.1\r\nConnection: close\r\n\r\n"
    )
    .ok()?;
    let mut page = Vec::new();
    s.read_to_end(&mut page).ok()?;
    let body = page.windows(4).position(|w| w == b"\r\n\r\n")? + 4;
    let v: serde_json::Value = serde_json::from_slice(&page[body..]).ok()?;
    let lab = format!("cgroup_{}_m", parent.trim_matches('/').replace('/', "_"));
    Some(
        v["charts"]
            .as_object()?
            .keys()
            .filter(|k| k.starts_with(&lab))
            .filter_map(|k| k.split('.').next())
            .collect::<std::collections::HashSet<_>>()
            .len(),
    )
}

/// The private PCP of one step: pmcd (with its PMDAs as children) and pmlogger.
struct Pcp {
    pmcd: Child,
    pmlogger: Child,
}

/// pmlogger's config: what the agent samples, per container and for the host.
const PMLOGGER_CONF: &str = "log mandatory on 1 sec {\n\
    cgroup.cpuacct.usage\n    cgroup.cpusched.periods\n    cgroup.cpusched.throttled\n\
    cgroup.cpusched.throttled_time\n    cgroup.memory.usage\n    cgroup.memory.stat.pgmajfault\n\
    cgroup.memory.stat.total.inactive_file\n    cgroup.blkio.all.io_serviced\n\
    cgroup.blkio.all.io_service_bytes\n    kernel.all.cpu\n    kernel.all.load\n\
    kernel.all.pswitch\n    kernel.all.intr\n    mem.util.available\n    disk.dev.total\n\
    network.interface.in.bytes\n    network.interface.out.bytes\n}\n";

/// Starts PCP if it is installed; None (with the reason printed) if not.
async fn start_pcp(dir: &Path) -> Option<Pcp> {
    let pmcd_bin = Path::new("/usr/lib/pcp/bin/pmcd");
    let pmlogger_bin = Path::new("/usr/lib/pcp/bin/pmlogger");
    let pmns = Path::new("/var/lib/pcp/pmns");
    if !pmcd_bin.exists() || !pmlogger_bin.exists() {
        eprintln!("bench: PCP not installed (pcp: scripts/setup): no PCP column");
        return None;
    }
    let _ = fs::remove_dir_all(dir);
    fs::create_dir_all(dir.join("run")).ok()?;
    let d = dir.display();
    // A private namespace of the three PMDAs: the system's is built by the
    // pmcd service, which is not started here.
    let root = dir.join("root");
    let merged = Command::new("/usr/lib/pcp/bin/pmnsmerge")
        .current_dir(pmns)
        .args(["-a", "root_pmcd", "root_proc", "root_linux"])
        .arg(&root)
        .stdout(Stdio::null())
        .stderr(Stdio::null())
        .status();
    if !merged.is_ok_and(|s| s.success()) {
        eprintln!("bench: pmnsmerge failed: no PCP column");
        return None;
    }
    let conf = dir.join("pmcd.conf");
    fs::write(
        &conf,
        "pmcd\t2\tdso\tpmcd_init\t/var/lib/pcp/pmdas/pmcd/pmda_pmcd.so\n\
         proc\t3\tpipe\tbinary\t/var/lib/pcp/pmdas/proc/pmdaproc -d 3\n\
         linux\t60\tpipe\tbinary\t/var/lib/pcp/pmdas/linux/pmdalinux\n\n\
         [access]\nallow \"local:*\" : all;\n",
    )
    .ok()?;
    fs::write(dir.join("pmlogger.conf"), PMLOGGER_CONF).ok()?;
    let port = 44000 + (std::process::id() % 900) as u16;
    let script = format!(
        "umount /sys/fs/cgroup/unified 2>/dev/null; exec {} -f -U root -n {d}/root -p {port} \
         -s {d}/run/pmcd.socket -c {d}/pmcd.conf -l {d}/pmcd.log",
        pmcd_bin.display()
    );
    let pmcd = Command::new("unshare")
        .current_dir(dir) // its PMDAs log to their working directory
        .args(["-m", "--propagation", "private", "sh", "-c", &script])
        .env("PCP_RUN_DIR", dir.join("run"))
        .env("PCP_LOG_DIR", dir)
        .stdout(Stdio::null())
        .stderr(Stdio::null())
        .spawn()
        .ok()?;
    tokio::time::sleep(Duration::from_secs(3)).await;
    let pmlogger = Command::new(pmlogger_bin)
        .current_dir(dir)
        .args(["-h", "localhost", "-n"])
        .arg(&root)
        .arg("-c")
        .arg(dir.join("pmlogger.conf"))
        .arg("-l")
        .arg(dir.join("pmlogger.log"))
        .arg(dir.join("archive"))
        .env("PMCD_PORT", port.to_string())
        .env("PCP_RUN_DIR", dir.join("run"))
        .env("PCP_LOG_DIR", dir)
        .stdout(Stdio::null())
        .stderr(Stdio::null())
        .spawn();
    let mut pcp = Pcp {
        pmcd,
        pmlogger: match pmlogger {
            Ok(p) => p,
            Err(e) => {
                eprintln!("bench: pmlogger did not start ({e}): no PCP column");
                return None;
            }
        },
    };
    // Its first records: every cgroup found, the archive started.
    tokio::time::sleep(Duration::from_secs(3)).await;
    if let (Ok(None), Ok(None)) = (pcp.pmcd.try_wait(), pcp.pmlogger.try_wait()) {
        Some(pcp)
    } else {
        eprintln!("bench: pmcd or pmlogger exited at start (logs in {d}): no PCP column");
        pcp.stop();
        None
    }
}

impl Pcp {
    /// pmcd, its PMDAs and pmlogger.
    fn pids(&self) -> Vec<i32> {
        let pmcd = self.pmcd.id() as i32;
        let mut v = vec![pmcd, self.pmlogger.id() as i32];
        v.extend(children(pmcd));
        v
    }

    fn stop(&mut self) {
        let kids = children(self.pmcd.id() as i32);
        for c in [&mut self.pmlogger, &mut self.pmcd] {
            let _ = c.kill();
            let _ = c.wait();
        }
        // PMDAs exit when pmcd's pipe closes; make sure.
        for k in kids {
            let _ = nix::sys::signal::kill(
                nix::unistd::Pid::from_raw(k),
                nix::sys::signal::Signal::SIGKILL,
            );
        }
    }
}

/// Processes whose parent is `pid`.
fn children(pid: i32) -> Vec<i32> {
    let mut v = Vec::new();
    let Ok(rd) = fs::read_dir("/proc") else {
        return v;
    };
    for e in rd.flatten() {
        let Some(p) = e.file_name().to_str().and_then(|s| s.parse::<i32>().ok()) else {
            continue;
        };
        let stat = fs::read_to_string(e.path().join("stat")).unwrap_or_default();
        let ppid = stat
            .rfind(')')
            .and_then(|i| stat[i + 2..].split_whitespace().nth(1)?.parse::<i32>().ok());
        if ppid == Some(pid) {
            v.push(p);
        }
    }
    v
}

/// CPU ns of a process and its waited-for children (utime, stime, cutime,
/// cstime: every thread, clock-tick precision).
fn proc_tree_ns(pid: Option<i32>) -> u64 {
    let Some(pid) = pid else { return 0 };
    let stat = fs::read_to_string(format!("/proc/{pid}/stat")).unwrap_or_default();
    let ticks: u64 = stat
        .rfind(')')
        .map(|i| {
            stat[i + 2..]
                .split_whitespace()
                .skip(11)
                .take(4)
                .filter_map(|f| f.parse::<u64>().ok())
                .sum()
        })
        .unwrap_or(0);
    // SAFETY: sysconf has no preconditions.
    let hz = unsafe { libc::sysconf(libc::_SC_CLK_TCK) }.max(1) as u64;
    ticks * 1_000_000_000 / hz
}

/// CPU ns (schedstat) of process `pid`, its main thread: the naive readers
/// are single-threaded.
fn self_ns(pid: Option<i32>) -> u64 {
    pid.map(|p| schedstat(&PathBuf::from(format!("/proc/{p}/schedstat"))))
        .unwrap_or(0)
}

async fn measure(
    cl: &Cluster,
    counts: &[usize],
    seconds: u64,
    interval_ms: u64,
) -> Result<Vec<serde_json::Value>> {
    let agent_pid = cl.nodes[0].pid.context("the lab agent has no pid")?;
    let state = cl.nodes[0]
        .state_dir
        .clone()
        .context("the lab node has no state dir")?;
    let (rss0, _) = rss(agent_pid);
    let mut c = Client::new(cl.clone())?;
    let img = cl.dir.join("bench-rootfs");
    fs::create_dir_all(&img)?;
    herd::rootfs::build_busybox(&img, &[])?;
    match c
        .call(
            NODE,
            Request::ImageImport {
                name: "busybox".into(),
                path: img.to_string_lossy().into_owned(),
            },
        )
        .await?
    {
        Response::Image(_) => {}
        r => return Err(unexpected(r)),
    }
    // A subscriber, as `herd monitor` is: samples, events and logs.
    let marks = Arc::new(Mutex::new(std::collections::HashMap::new()));
    let mut rx = monitor::subscribe_all(cl, true, marks)?;
    let samples = Arc::new(AtomicU64::new(0));
    let rows = Arc::new(AtomicU64::new(0));
    let (s2, r2) = (samples.clone(), rows.clone());
    tokio::spawn(async move {
        while let Some(f) = rx.recv().await {
            if let monitor::Feed::Msg(_, herd_wire::monitor::MonitorMsg::Sample(s)) = f {
                s2.fetch_add(1, Ordering::Relaxed);
                r2.fetch_add(s.containers.len() as u64, Ordering::Relaxed);
            }
        }
    });
    let t0 = Instant::now();
    // name, pid
    let mut made: Vec<(String, i32)> = Vec::new();
    let (mut hung, mut i, mut reported) = (0, 0, 0);
    let mut clients = (0..CREATE_PAR)
        .map(|_| Client::new(cl.clone()))
        .collect::<Result<Vec<_>>>()?;
    let mut out = Vec::new();
    let me = std::env::current_exe().context("own path")?;
    for &n in counts {
        while made.len() < n && hung < 20 {
            // A wave of up to CREATE_PAR creates, each on its own connection.
            let want = (n - made.len()).min(clients.len());
            let mut wave = tokio::task::JoinSet::new();
            for mut cli in clients.drain(..want) {
                i += 1;
                let name = format!("m{i:05}");
                let spec = RunSpec {
                    name: name.clone(),
                    image: "busybox".into(),
                    cmd: vec!["sleep".into(), "1000000".into()],
                    ..Default::default()
                };
                wave.spawn(async move {
                    let call = cli.call(NODE, Request::Run(spec));
                    let r = tokio::time::timeout(Duration::from_secs(60), call).await;
                    (cli, name, r)
                });
            }
            let mut timed_out = Vec::new();
            while let Some(done) = wave.join_next().await {
                let (cli, name, r) = done.context("a create task failed")?;
                clients.push(cli);
                match r {
                    Ok(r) => match r? {
                        Response::Container(info) => match info.pid {
                            Some(p) => made.push((name, p)),
                            None => bail!("{name} runs without a pid"),
                        },
                        r => return Err(unexpected(r)),
                    },
                    Err(_) => timed_out.push(name),
                }
            }
            if !timed_out.is_empty() {
                // Was a known agent bug (libcontainer's forked child of the
                // multi-threaded agent hanging on an inherited lock): kill
                // the agent's stuck forks so its create fails and goes on;
                // skip the names. The wave is over: no other create is cut.
                let k = kill_stuck_forks(agent_pid);
                eprintln!(
                    "bench: warning: creating {} hung; killed {k} stuck fork(s) of the agent",
                    timed_out.join(", ")
                );
                hung += timed_out.len();
            }
            if made.len() / 100 > reported / 100 {
                reported = made.len();
                eprintln!(
                    "bench: {} containers running ({:.0} s)",
                    made.len(),
                    t0.elapsed().as_secs_f64()
                );
            }
        }
        let n = made.len();
        // Let the sampler open every container's files and the subscriber settle.
        tokio::time::sleep(Duration::from_millis(3 * interval_ms + 2000)).await;
        let list = cl.dir.join("bench-naive-files.tsv");
        let mut text = String::new();
        let mut py_roots: Option<String> = None;
        for (name, pid) in &made {
            let log = state.join("containers").join(name).join("log");
            let files = container_files(*pid, &log);
            if py_roots.is_none() {
                // The python loop joins <root>/<name>: the parents of the
                // first container's cgroups.
                let up = |want: &str| -> Option<String> {
                    let f = files.iter().find(|f| f.ends_with(want))?;
                    Some(f.parent()?.parent()?.display().to_string())
                };
                let (cpu, mem, pids) = match up("cpuacct.usage") {
                    Some(c) => (Some(c), up("memory.usage_in_bytes"), up("pids.current")),
                    None => (up("cpu.stat"), up("memory.current"), up("pids.current")),
                };
                if let (Some(a), Some(b), Some(c)) = (cpu, mem, pids) {
                    py_roots = Some(format!("{a},{b},{c}"));
                }
            }
            let line: Vec<String> = files.iter().map(|f| f.display().to_string()).collect();
            text.push_str(&line.join("\t"));
            text.push('\n');
        }
        fs::write(&list, &text).with_context(|| format!("write {}", list.display()))?;
        let files_per = text.matches('\t').count() as f64 / n.max(1) as f64 + 1.0;
        let names: Vec<&str> = made.iter().map(|(n, _)| n.as_str()).collect();
        let run_s = format!("{}", seconds as f64 + 1.0);
        let (mut netdata, mut nd_charted) = (None, None);
        // The containers' cgroup parent (e.g. /herd/hmonbench/n1).
        let parent = made.first().and_then(|(_, p)| cgroup_parent(*p));
        let nd = match &parent {
            Some(parent) => start_netdata(&cl.dir.join("bench-netdata"), n, parent).await,
            None => None,
        };
        match nd {
            None => eprintln!("bench: netdata not found or not started (netdata-core: scripts/setup): no netdata column"),
            Some((mut p, k)) if k < n => {
                // Its cost over containers it does not chart is no figure.
                eprintln!("bench: netdata charts {k} of {n} containers: no netdata figure");
                let _ = p.kill();
                let _ = p.wait();
                nd_charted = Some(k);
            }
            Some((p, k)) => (netdata, nd_charted) = (Some(p), Some(k)),
        }
        let mut pcp = start_pcp(&cl.dir.join("bench-pcp")).await;
        let pcp_pids = pcp.as_ref().map(Pcp::pids).unwrap_or_default();
        let naive: Option<Child> = Command::new(&me)
            .args([
                "__naive-reader",
                &list.to_string_lossy(),
                &interval_ms.to_string(),
                &run_s,
            ])
            .stdout(Stdio::piped())
            .spawn()
            .ok();
        let py: Option<Child> = match &py_roots {
            Some(roots) => Command::new("python3")
                .args([
                    "-c",
                    PY_BASELINE,
                    roots,
                    &names.join(","),
                    &format!("{}", interval_ms as f64 / 1e3),
                    &run_s,
                ])
                .stdout(Stdio::piped())
                .stderr(Stdio::piped())
                .spawn()
                .ok(),
            None => None,
        };
        if py.is_none() {
            eprintln!("bench: python3 not found (or no cgroup found): no python baseline");
        }
        // The same reads with the hand-written parsers and with the procfs crate.
        let mut sampler_benches = Vec::new();
        match &parent {
            Some(parent) => {
                let agent_bin = lab::agent_binary()?;
                for reads in ["hand", "crate"] {
                    let child = Command::new(&agent_bin)
                        .args([
                            SAMPLER_BENCH_ARG,
                            reads,
                            parent,
                            &interval_ms.to_string(),
                            &seconds.to_string(),
                        ])
                        .stdout(Stdio::piped())
                        .stderr(Stdio::piped())
                        .spawn()
                        .with_context(|| {
                            format!("start {} {SAMPLER_BENCH_ARG}", agent_bin.display())
                        })?;
                    sampler_benches.push((reads, child));
                }
            }
            None => eprintln!("bench: no cgroup found for the containers: no procfs comparison"),
        }
        // The loops' first passes fill their tables: skip them like our warm-up.
        tokio::time::sleep(Duration::from_millis(500)).await;
        let py_pid = py.as_ref().map(|p| p.id() as i32);
        let nv_pid = naive.as_ref().map(|p| p.id() as i32);
        let nd_pid = netdata.as_ref().map(|p| p.id() as i32);
        let d0 = proc_tree_ns(nd_pid);
        let c0: u64 = pcp_pids.iter().map(|p| proc_tree_ns(Some(*p))).sum();
        let (a0, s0) = proc_cpu(agent_pid, "herd-sampler");
        let (p0, v0) = (self_ns(py_pid), self_ns(nv_pid));
        let n0 = samples.load(Ordering::Relaxed);
        eprintln!("bench: measuring {n} containers for {seconds} s");
        let w0 = Instant::now();
        tokio::time::sleep(Duration::from_secs(seconds)).await;
        let wall = w0.elapsed().as_secs_f64();
        let (a1, s1) = proc_cpu(agent_pid, "herd-sampler");
        let (p1, v1) = (self_ns(py_pid), self_ns(nv_pid));
        let (py_rss, _) = py_pid.map(rss).unwrap_or((0, 0));
        let (nv_rss, _) = nv_pid.map(rss).unwrap_or((0, 0));
        let d1 = proc_tree_ns(nd_pid);
        let c1: u64 = pcp_pids.iter().map(|p| proc_tree_ns(Some(*p))).sum();
        let pcp_rss: u64 = pcp_pids.iter().map(|p| rss(*p).0).sum();
        if let Some(p) = pcp.as_mut() {
            p.stop();
        }
        let (nd_rss, _) = nd_pid.map(rss).unwrap_or((0, 0));
        if let Some(p) = netdata.as_mut() {
            let _ = p.kill();
            let _ = p.wait();
        }
        let got = samples.load(Ordering::Relaxed) - n0;
        let (rss1, hwm) = rss(agent_pid);
        let wait = |ch: Option<Child>| -> String {
            ch.and_then(|p| p.wait_with_output().ok())
                .map(|o| String::from_utf8_lossy(&o.stdout).trim().to_string())
                .unwrap_or_default()
        };
        let (py_out, nv_out) = (wait(py), wait(naive));
        let mut reads = serde_json::Map::new();
        for (name, child) in sampler_benches {
            let o = child.wait_with_output()?;
            if !o.status.success() {
                bail!(
                    "herd-agent {SAMPLER_BENCH_ARG} {name}: {}",
                    String::from_utf8_lossy(&o.stderr).trim()
                );
            }
            let v: serde_json::Value = serde_json::from_slice(&o.stdout)
                .with_context(|| format!("herd-agent {SAMPLER_BENCH_ARG} {name}: its report"))?;
            reads.insert(name.to_string(), v);
        }
        let ticks = wall * 1e3 / interval_ms as f64;
        let us_per = |ns: u64| ns as f64 / 1e3 / ticks / n as f64;
        let cores = |ns: u64| ns as f64 / 1e9 / wall;
        let (herd, py_ns, nv_ns) = (s1 - s0, p1.saturating_sub(p0), v1.saturating_sub(v0));
        let nd_ns = d1.saturating_sub(d0);
        let pcp_ns = c1.saturating_sub(c0);
        let has_pcp = pcp.is_some().then_some(());
        out.push(serde_json::json!({
            "containers": n,
            "creates_hung": hung,
            "seconds": wall,
            "interval_ms": interval_ms,
            "samples_received": got,
            "container_rows_received": rows.load(Ordering::Relaxed),
            "herd_sampler_cores": cores(herd),
            "herd_agent_cores": cores(a1.saturating_sub(a0)),
            "herd_sampler_us_per_container_sample": us_per(herd),
            "herd_agent_rss_bytes": rss1,
            "herd_agent_rss_peak_bytes": hwm,
            "herd_agent_rss_before_containers_bytes": rss0,
            "naive_files_per_container": files_per,
            "naive_cores": nv_pid.map(|_| cores(nv_ns)),
            "naive_us_per_container_sample": nv_pid.map(|_| us_per(nv_ns)),
            "naive_rss_bytes": nv_pid.map(|_| nv_rss),
            "naive_passes_containers_checksum": nv_out,
            "ratio_naive_over_herd_sampler": nv_pid.map(|_| nv_ns as f64 / herd.max(1) as f64),
            "netdata_charted": nd_charted,
            "netdata_cores": nd_pid.map(|_| cores(nd_ns)),
            "netdata_us_per_container_sample": nd_pid.map(|_| us_per(nd_ns)),
            "netdata_rss_bytes": nd_pid.map(|_| nd_rss),
            "ratio_netdata_over_herd_sampler": nd_pid.map(|_| nd_ns as f64 / herd.max(1) as f64),
            "pcp_cores": has_pcp.map(|_| cores(pcp_ns)),
            "pcp_us_per_container_sample": has_pcp.map(|_| us_per(pcp_ns)),
            "pcp_rss_bytes": has_pcp.map(|_| pcp_rss),
            "ratio_pcp_over_herd_sampler": has_pcp.map(|_| pcp_ns as f64 / herd.max(1) as f64),
            "python_cores": py_pid.map(|_| cores(py_ns)),
            "python_us_per_container_sample": py_pid.map(|_| us_per(py_ns)),
            "python_rss_bytes": py_pid.map(|_| py_rss),
            "python_passes_and_containers": py_out,
            "ratio_python_over_herd_sampler": py_pid.map(|_| py_ns as f64 / herd.max(1) as f64),
            "procfs_vs_hand": (!reads.is_empty()).then(|| compare_reads(&reads)),
        }));
        if made.len() < n {
            break; // too many hung creates
        }
    }
    Ok(out)
}

fn print(rows: &[serde_json::Value]) {
    println!(
        "{:>10} {:>9} | {:>8} {:>8} {:>8} {:>8} | {:>8} {:>8} {:>6} | {:>8} {:>8} {:>6} | {:>8} {:>8} {:>6} | {:>8} {:>8} {:>6}",
        "containers",
        "samples",
        "herd us",
        "cores",
        "agent",
        "RSS MiB",
        "naive us",
        "RSS MiB",
        "x herd",
        "py us",
        "RSS MiB",
        "x herd",
        "netd us",
        "RSS MiB",
        "x herd",
        "pcp us",
        "RSS MiB",
        "x herd"
    );
    for r in rows {
        let f = |k: &str| r[k].as_f64().unwrap_or(f64::NAN);
        let mib = |k: &str| f(k) / (1u64 << 20) as f64;
        // netdata that did not chart every container has no figure: say so.
        let netd = match (r["netdata_charted"].as_u64(), r["containers"].as_u64()) {
            (Some(0), Some(_)) => "no chart".to_string(),
            (Some(k), Some(n)) if k < n => format!("{k}/{n}"),
            _ => format!("{:.2}", f("netdata_us_per_container_sample")),
        };
        println!(
            "{:>10} {:>9} | {:>8.2} {:>8.4} {:>8.4} {:>8.1} | {:>8.2} {:>8.1} {:>6.1} | {:>8.2} {:>8.1} {:>6.1} | {:>8} {:>8.1} {:>6.1} | {:>8.2} {:>8.1} {:>6.1}",
            r["containers"].to_string(),
            r["samples_received"].to_string(),
            f("herd_sampler_us_per_container_sample"),
            f("herd_sampler_cores"),
            f("herd_agent_cores"),
            mib("herd_agent_rss_bytes"),
            f("naive_us_per_container_sample"),
            mib("naive_rss_bytes"),
            f("ratio_naive_over_herd_sampler"),
            f("python_us_per_container_sample"),
            mib("python_rss_bytes"),
            f("ratio_python_over_herd_sampler"),
            netd,
            mib("netdata_rss_bytes"),
            f("ratio_netdata_over_herd_sampler"),
            f("pcp_us_per_container_sample"),
            mib("pcp_rss_bytes"),
            f("ratio_pcp_over_herd_sampler"),
        );
    }
    print_reads(rows);
    if let Some(r) = rows.last() {
        let f = |k: &str| r[k].as_f64().unwrap_or(f64::NAN) / (1u64 << 20) as f64;
        println!(
            "herd us: the agent's sampler thread's CPU per container per sample; cores: that thread and the whole agent; \
             naive: every file the agent reads ({:.0} a container), opened, read and closed each time; \
             py: python3 reading 3 files a container; netd: netdata with only its cgroups plugin (\"no chart\" or k/n: it charted none or only k of the n containers in 300 s, so no figure); pcp: pmcd+pmdaproc+pmdalinux+pmlogger at 1 s (NaN: not installed or not started, the reason is printed above). Agent RSS {:.1} MiB before the containers, {:.1} MiB peak.",
            r["naive_files_per_container"].as_f64().unwrap_or(0.0),
            f("herd_agent_rss_before_containers_bytes"),
            f("herd_agent_rss_peak_bytes"),
        );
    }
}

/// The procfs crate beside the hand-written parsers, per count and per file.
fn print_reads(rows: &[serde_json::Value]) {
    println!();
    println!(
        "the sampler's reads, hand-written parsers vs the procfs crate (same files kept open, same run):"
    );
    println!(
        "{:>10} | {:>10} {:>10} {:>6} | {:>10} {:>10} {:>6} | {:>8} {:>8}",
        "containers",
        "hand us/c",
        "crate us/c",
        "ratio",
        "hand host",
        "crate host",
        "ratio",
        "hand MiB",
        "crate MiB"
    );
    for r in rows {
        let c = &r["procfs_vs_hand"];
        let g = |who: &str, k: &str| c[who][k].as_f64().unwrap_or(f64::NAN);
        println!(
            "{:>10} | {:>10.2} {:>10.2} {:>6.2} | {:>10.1} {:>10.1} {:>6.2} | {:>8.1} {:>8.1}",
            r["containers"].to_string(),
            g("hand", "us_per_container_sample"),
            g("crate", "us_per_container_sample"),
            g("ratio_crate_over_hand", "us_per_container_sample"),
            g("hand", "host_us_per_sample"),
            g("crate", "host_us_per_sample"),
            g("ratio_crate_over_hand", "host_us_per_sample"),
            g("hand", "rss_bytes") / (1u64 << 20) as f64,
            g("crate", "rss_bytes") / (1u64 << 20) as f64,
        );
    }
    let Some(files) = rows
        .last()
        .and_then(|r| r["procfs_vs_hand"]["per_file"].as_object())
    else {
        return;
    };
    println!(
        "{:<22} {:>10} {:>10} {:>10} {:>6}  verdict (crate if ratio <= 1.10)",
        "per file (last count)", "reads", "hand us", "crate us", "ratio"
    );
    for (file, v) in files {
        let f = |k: &str| v[k].as_f64().unwrap_or(f64::NAN);
        println!(
            "{:<22} {:>10} {:>10.2} {:>10.2} {:>6.2}  {}",
            file,
            v["reads"].to_string(),
            f("hand_us_per_read"),
            f("crate_us_per_read"),
            f("ratio"),
            if v["reads"].as_u64() == Some(0) {
                "not read here"
            } else if v["agent_uses_crate"].as_bool() == Some(true) {
                "crate"
            } else {
                "hand"
            }
        );
    }
}
