//! Monitoring, end to end: real agents sample real containers in a lab and
//! `herd monitor` writes what they saw. Figures are checked against the
//! kernel's own accounting read independently by the test (/proc/<pid>/stat)
//! or against what the workload did (256 MiB touched, ops lines).

mod common;

use std::collections::HashMap;
use std::io::{Read, Write};
use std::path::Path;
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

use common::{
    cluster_json, import_busybox_with_work, now_s, pid_of, proc_cpu_seconds, run_herd_work, text,
    wait_for, Lab,
};
use herd_coordinator::csv::{self, ContainerRow, CsvRow, HostRow, MigrationEvent, MigrationRow};

/// Wait for a container's first `ops=` line (its memory is touched by then).
fn wait_ops(lab: &Lab, name: &str) {
    let ok = wait_for(20, || {
        let out = lab.herd(&["logs", name]);
        String::from_utf8_lossy(&out.stdout)
            .contains("ops=")
            .then_some(())
    });
    assert!(ok.is_some(), "{name} printed no ops line");
}

fn read_csv<R: CsvRow>(dir: &Path, header: &[&str]) -> Vec<R> {
    let file = R::FILE;
    let t = std::fs::read_to_string(dir.join(file)).unwrap_or_else(|e| panic!("{file}: {e}"));
    let header = header.join(",");
    assert_eq!(t.lines().next(), Some(header.as_str()), "{file} header");
    csv::read_in(dir).unwrap_or_else(|e| panic!("{file} rows: {e}"))
}

fn containers(dir: &Path) -> Vec<ContainerRow> {
    // Every column, `kind` (known to scenario runs) after the measured ones.
    read_csv(dir, ContainerRow::COLUMNS)
}

fn http_get(addr: &str, path: &str) -> String {
    let mut s = std::net::TcpStream::connect(addr).unwrap_or_else(|e| panic!("{addr}: {e}"));
    s.set_read_timeout(Some(Duration::from_secs(5))).unwrap();
    write!(s, "GET {path} HTTP/1.1\r\nHost: x\r\n\r\n").unwrap();
    let mut out = String::new();
    s.read_to_string(&mut out).unwrap();
    out
}

fn free_port() -> u16 {
    std::net::TcpListener::bind("127.0.0.1:0")
        .unwrap()
        .local_addr()
        .unwrap()
        .port()
}

fn node_ip(lab: &Lab, node: &str) -> String {
    let cl = cluster_json(lab);
    let n = cl["nodes"]
        .as_array()
        .unwrap()
        .iter()
        .find(|n| n["name"] == node)
        .unwrap();
    let addr = n["addr"].as_str().unwrap();
    addr.rsplit_once(':').unwrap().0.to_string()
}

/// `herd monitor` in the background, stopped with SIGINT (it flushes and exits).
struct Monitor(Child);

impl Monitor {
    fn start(lab: &Lab, out: &Path, extra: &[&str]) -> Monitor {
        let mut c = lab.cmd();
        c.args(["monitor", "--out", out.to_str().unwrap()])
            .args(extra)
            .stdout(Stdio::piped())
            .stderr(Stdio::piped());
        Monitor(c.spawn().expect("start herd monitor"))
    }

    fn stop(mut self) -> String {
        let pid = nix::unistd::Pid::from_raw(self.0.id() as i32);
        let _ = nix::sys::signal::kill(pid, nix::sys::signal::Signal::SIGINT);
        let out = std::mem::replace(&mut self.0, Command::new("true").spawn().unwrap())
            .wait_with_output()
            .unwrap();
        assert!(out.status.success(), "herd monitor failed:\n{}", text(&out));
        String::from_utf8_lossy(&out.stderr).into_owned()
    }
}

impl Drop for Monitor {
    fn drop(&mut self) {
        let _ = self.0.kill();
        let _ = self.0.wait();
    }
}

#[test]
fn monitor_reads_cpu_memory_io_logs_and_serves_metrics() {
    let Some(lab) = Lab::up(
        "monitor_reads_cpu_memory_io_logs_and_serves_metrics",
        "hmona",
        1,
    ) else {
        return;
    };
    import_busybox_with_work(&lab);
    run_herd_work(&lab, "cpu2", Some("n1"), &["cpu", "--threads", "2"]);
    run_herd_work(&lab, "mem", Some("n1"), &["mem", "--mib", "256"]);
    run_herd_work(&lab, "io", Some("n1"), &["io", "--dir", "/tmp"]);
    for c in ["cpu2", "mem", "io"] {
        wait_ops(&lab, c);
    }
    let pid = pid_of(&lab, "cpu2");
    let out = tempfile::tempdir().unwrap();
    let port = free_port();
    let maddr = format!("127.0.0.1:{port}");
    let mon = Monitor::start(&lab, out.path(), &["--metrics-listen", &maddr]);
    // The kernel's own account of the process, every 100 ms, beside the monitor.
    let mut truth: Vec<(f64, f64)> = Vec::new();
    let t0 = Instant::now();
    while t0.elapsed() < Duration::from_secs(7) {
        truth.push((now_s(), proc_cpu_seconds(pid).expect("stat")));
        std::thread::sleep(Duration::from_millis(100));
    }
    let agent_metrics = http_get(&format!("{}:9100", node_ip(&lab, "n1")), "/metrics");
    let mon_metrics = http_get(&maddr, "/metrics");
    let top = lab.ok(&["top", "--once"]);
    mon.stop();

    let rows = containers(out.path());
    let of = |n: &str| -> Vec<&ContainerRow> { rows.iter().filter(|r| r.container == n).collect() };
    // CPU: the readings over the run against the process's own CPU time.
    let all_cpu = of("cpu2");
    let (lo, hi) = (truth[0].0, truth[truth.len() - 1].0);
    let cpu: Vec<&ContainerRow> = all_cpu
        .iter()
        .copied()
        .filter(|r| (lo..=hi).contains(&(r.time)))
        .collect();
    assert!(
        cpu.len() >= 4,
        "rows of cpu2 while the test watched: {all_cpu:?}"
    );
    let (first, last) = (cpu[0].time, cpu[cpu.len() - 1].time);
    let at = |t: f64| {
        truth
            .iter()
            .min_by(|a, b| (a.0 - t).abs().total_cmp(&(b.0 - t).abs()))
            .unwrap()
            .1
    };
    let measured = (at(last) - at(first)) / (last - first);
    // Time-weighted: a tick delayed by the load covers a longer interval.
    let read: f64 = cpu
        .windows(2)
        .map(|w| w[1].cpu_usage_cores * (w[1].time - w[0].time))
        .sum::<f64>()
        / (last - first);
    eprintln!("cpu2: monitor {read:.3} cores, /proc/<pid>/stat {measured:.3} cores");
    assert!(
        (read / measured - 1.0).abs() <= 0.15,
        "monitor {read:.3} cores vs the kernel's {measured:.3} (not normalised by cores)"
    );
    if measured >= 1.7 {
        assert!(
            (read - 2.0).abs() <= 0.3,
            "2 busy threads read {read:.3} cores"
        );
    }
    assert!(
        all_cpu.iter().all(|r| r.pids == 3),
        "herd-work and 2 workers: {all_cpu:?}"
    );
    assert!(all_cpu
        .iter()
        .any(|r| r.ops_per_second.unwrap_or(0.0) > 0.0));
    // Memory: 256 MiB touched, within 10%.
    let mem = of("mem");
    let m = mem.last().expect("rows of mem").memory_bytes as f64;
    let want = 256.0 * (1 << 20) as f64;
    assert!(
        (m / want - 1.0).abs() <= 0.10,
        "mem reads {m} bytes, touched {want}"
    );
    // IO: reads and writes.
    let io = of("io");
    assert!(io.iter().any(|r| r.io_read_ops_per_second > 10.0), "{io:?}");
    assert!(
        io.iter().any(|r| r.io_write_ops_per_second > 10.0),
        "{io:?}"
    );
    // Hosts.
    let hosts: Vec<HostRow> = read_csv(out.path(), HostRow::COLUMNS);
    assert!(hosts.len() >= 4 && hosts.iter().all(|h| h.host == "n1"));
    assert!(hosts
        .iter()
        .any(|h| h.cpu_user_ratio > 0.0 && h.memory_used_bytes > 0));
    assert!(hosts
        .iter()
        .all(|h| h.cpu_user_ratio <= 1.0 && h.cpu_system_ratio <= 1.0));
    // Migrations: each container added once.
    let mig: Vec<MigrationRow> = read_csv(out.path(), csv::required::<MigrationRow>());
    assert_eq!(mig.len(), 3, "{mig:?}");
    assert!(mig
        .iter()
        .all(|m| m.event == MigrationEvent::Added && m.to == "n1"));
    // Logs: the workload's lines, stamped, in order.
    let log = std::fs::read_to_string(out.path().join("logs/cpu2.log")).unwrap();
    assert!(
        log.lines().count() >= 4 && log.lines().all(|l| l.contains(" o ops=")),
        "{log}"
    );
    // Prometheus, on the agent and on the monitor.
    for page in [&agent_metrics, &mon_metrics] {
        assert!(page.starts_with("HTTP/1.1 200 OK"), "{page}");
        assert!(page.contains("container_cpu_usage_seconds_total{name=\"cpu2\",node=\"n1\","));
        assert!(page.contains("node_cpu_seconds_total{node=\"n1\",mode=\"user\"}"));
    }
    // herd top.
    assert!(
        top.contains("cpu2") && top.contains("n1") && top.contains("CORES"),
        "{top}"
    );
}

/// herd-work's `t=` values in a merged log: one per second, none repeated.
fn ticks(log: &str) -> Vec<f64> {
    log.lines()
        .filter_map(|l| l.split(" t=").nth(1))
        .map(|t| t.parse().unwrap())
        .collect()
}

#[test]
fn monitor_follows_a_migration_and_an_agent_restart() {
    let Some(lab) = Lab::up(
        "monitor_follows_a_migration_and_an_agent_restart",
        "hmonb",
        2,
    ) else {
        return;
    };
    if !herd_testkit::require_root_and_criu("monitor_follows_a_migration_and_an_agent_restart") {
        return;
    }
    import_busybox_with_work(&lab);
    run_herd_work(&lab, "w", Some("n1"), &["cpu"]);
    wait_ops(&lab, "w");
    let out = tempfile::tempdir().unwrap();
    let mon = Monitor::start(&lab, out.path(), &[]);
    std::thread::sleep(Duration::from_secs(3));
    let moved_at = now_s();
    lab.ok(&["migrate", "w", "--to", "n2"]);
    std::thread::sleep(Duration::from_secs(3));
    let restart_at = now_s();
    lab.ok(&["lab", "restart", "n2"]);
    // The stall timeout (3 s) plus a few samples from the new agent.
    let ok = wait_for(20, || {
        let rows = containers(out.path());
        (rows
            .iter()
            .filter(|r| r.container == "w" && r.time > restart_at + 1.0)
            .count()
            >= 3)
            .then_some(())
    });
    let err = mon.stop();
    assert!(
        ok.is_some(),
        "no rows after the agent restart; monitor said:\n{err}"
    );

    let rows: Vec<ContainerRow> = containers(out.path())
        .into_iter()
        .filter(|r| r.container == "w")
        .collect();
    let on = |h: &str| -> Vec<f64> {
        rows.iter()
            .filter(|r| r.host == h)
            .map(|r| r.time)
            .collect()
    };
    let (n1, n2) = (on("n1"), on("n2"));
    assert!(!n1.is_empty() && !n2.is_empty(), "{rows:?}");
    // Never on two hosts at once: every n1 row precedes every n2 row.
    let last_n1 = n1.iter().cloned().fold(f64::MIN, f64::max);
    let first_n2 = n2.iter().cloned().fold(f64::MAX, f64::min);
    assert!(last_n1 < first_n2, "rows overlap: {rows:?}");
    assert!(first_n2 > moved_at);
    let mig: Vec<MigrationRow> = read_csv(out.path(), csv::required::<MigrationRow>());
    let moves: Vec<&MigrationRow> = mig
        .iter()
        .filter(|m| m.event == MigrationEvent::Moved)
        .collect();
    assert_eq!(moves.len(), 1, "one move, counted once: {mig:?}");
    assert_eq!(
        (moves[0].from.as_str(), moves[0].to.as_str(), moves[0].count),
        ("n1", "n2", 1)
    );
    assert!(
        !mig.iter().any(|m| m.event == MigrationEvent::Removed),
        "neither the move nor the restart removes it: {mig:?}"
    );
    // The merged log: every tick once, in order, across both hosts and the restart.
    let log = std::fs::read_to_string(out.path().join("logs/w.log")).unwrap();
    let ts: Vec<u64> = log
        .lines()
        .map(|l| l.split(' ').next().unwrap().parse().unwrap())
        .collect();
    assert!(
        ts.windows(2).all(|w| w[0] <= w[1]),
        "not in timestamp order:\n{log}"
    );
    let t = ticks(&log);
    let mut seen = HashMap::new();
    for x in &t {
        *seen.entry(x.to_bits()).or_insert(0) += 1;
    }
    assert!(seen.values().all(|n| *n == 1), "a duplicated line:\n{log}");
    // The workload's own clock: under load one interval reads 0.9 or 1.1
    // (rounded to 0.1 s); a lost line is a step of 2, a repeated one of 0.
    assert!(
        t.windows(2).all(|w| (w[1] - w[0] - 1.0).abs() < 0.5),
        "a missing or repeated tick:\n{log}"
    );
    // The whole history: the first line is the workload's first second
    // (1.0, or 1.1 when the machine is busy), not a later one.
    assert_eq!(
        t.first().map(|x| x.round()),
        Some(1.0),
        "the whole history:\n{log}"
    );
}

/// A container's CPU time in seconds from its own cgroup (v1 cpuacct or v2
/// cpu.stat), the truth the agent's metric is checked against.
fn cgroup_cpu_seconds(lab: &Lab, node: &str, name: &str) -> f64 {
    let v1 = common::moves::cgroup(lab, "cpuacct", node, name).join("cpuacct.usage");
    if let Ok(t) = std::fs::read_to_string(&v1) {
        return t.trim().parse::<f64>().expect("cpuacct.usage") / 1e9;
    }
    let v2 = common::moves::cgroup(lab, "", node, name).join("cpu.stat");
    let t = std::fs::read_to_string(&v2)
        .unwrap_or_else(|e| panic!("neither {} nor {}: {e}", v1.display(), v2.display()));
    t.lines()
        .find_map(|l| l.strip_prefix("usage_usec "))
        .and_then(|v| v.trim().parse::<f64>().ok())
        .expect("usage_usec in cpu.stat")
        / 1e6
}

/// `container_cpu_usage_seconds_total` of `name` on the agent's page.
fn cpu_metric(lab: &Lab, node: &str, name: &str) -> f64 {
    let page = http_get(&format!("{}:9100", node_ip(lab, node)), "/metrics");
    let want = format!("name=\"{name}\"");
    page.lines()
        .filter_map(|l| l.strip_prefix("container_cpu_usage_seconds_total{"))
        .filter_map(|l| l.split_once("} "))
        .find(|(labels, _)| labels.split(',').any(|x| x == want))
        .and_then(|(_, v)| v.trim().parse().ok())
        .unwrap_or_else(|| panic!("no container_cpu_usage_seconds_total of {name}:\n{page}"))
}

/// The sampler does not read containers that did not run lately when the
/// parent cgroup shows none of them ran (agent/src/monitor/mod.rs). One
/// that wakes after a long idle spell must be seen at the next samples,
/// not at its next full read (every 30 samples): its CPU time on the
/// metrics page catches up with its cgroup's own count.
#[test]
fn an_idle_container_that_wakes_up_is_seen_at_once() {
    let Some(lab) = Lab::up(
        "an_idle_container_that_wakes_up_is_seen_at_once",
        "hmonw",
        1,
    ) else {
        return;
    };
    import_busybox_with_work(&lab);
    for c in ["w1", "w2", "w3"] {
        common::run_sh(&lab, c, "n1", &[], "exec sleep 3600");
    }
    // Past HOT_SAMPLES (10) samples without CPU: none of them is watched
    // any more, so the sampler skips all three while the parent is still.
    std::thread::sleep(Duration::from_secs(14));
    let (m0, t0) = (
        cpu_metric(&lab, "n1", "w2"),
        cgroup_cpu_seconds(&lab, "n1", "w2"),
    );
    let busy = lab.herd(&[
        "exec",
        "w2",
        "--",
        "sh",
        "-c",
        "end=$(( $(date +%s) + 2 )); while [ $(date +%s) -lt $end ]; do :; done",
    ]);
    assert!(busy.status.success(), "{}", text(&busy));
    let ran = cgroup_cpu_seconds(&lab, "n1", "w2") - t0;
    assert!(
        ran > 0.2,
        "the busy loop ran only {ran:.3} s of CPU in w2's cgroup"
    );
    // Well inside the 30 samples of a full read (1 s each).
    let seen = wait_for(10, || {
        let d = cpu_metric(&lab, "n1", "w2") - m0;
        (d >= 0.9 * ran).then_some(d)
    });
    let now = cpu_metric(&lab, "n1", "w2") - m0;
    assert!(
        seen.is_some(),
        "w2 ran {ran:.3} s of CPU after an idle spell; 10 s later the agent's metric had moved {now:.3} s"
    );
    // The others stayed idle and are still listed.
    for c in ["w1", "w3"] {
        cpu_metric(&lab, "n1", c);
    }
}
