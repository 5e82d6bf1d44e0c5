//! Herd between real hosts: a VM lab of QEMU guests with Debian's own
//! kernels (n1: bookworm 6.1, n2: trixie 6.12), systemd, pure cgroup v2 and
//! the agent as the shipped systemd unit. One lab serves every test (a boot
//! under TCG costs minutes); `herd lab down` is checked last.
//!
//! Its own harness (`harness = false`): the lab is made once before the
//! tests and removed after them, and each test's time is printed.
//! `cargo test --test vm -- NAME` runs the tests whose name contains NAME;
//! `HERD_VM_TESTS=0` skips the suite (loudly). n1 has a disk capacity of
//! [`DISK_IOPS`] for every test (`lab up --disk-iops`); `HERD_VM_SLOW=1`
//! adds PostgreSQL under pgbench (tens of minutes under TCG).

mod common;

use std::io::Write;
use std::net::{Ipv4Addr, SocketAddr, TcpStream};
use std::panic::AssertUnwindSafe;
use std::time::{Duration, Instant};

use common::disk::{assert_limited, host_disk, mean, ops_lines, rates, run_io};
use common::{counter_counts, import_busybox_with_work, text, wait_for, Lab, Pinger};
use serde_json::Value;

/// n1's disk capacity for its containers (`lab up --disk-iops`); n2 has none.
const DISK_IOPS: u64 = 25;

struct Vm {
    lab: Lab,
    /// Node names by kernel: the bookworm (6.1) and the trixie (6.12) guest.
    old: &'static str,
    new: &'static str,
}

impl Vm {
    /// `sh -c script` as root in a guest; its stdout. Panics when it fails.
    fn guest(&self, node: &str, script: &str) -> String {
        let out = self
            .lab
            .herd(&["lab", "guest", node, "--", "sh", "-c", script]);
        assert!(
            out.status.success(),
            "in guest {node}: `{script}` failed:\n{}",
            text(&out)
        );
        String::from_utf8_lossy(&out.stdout).into_owned()
    }

    fn migrate(&self, name: &str, to: &str) -> Value {
        let out = self.lab.ok(&["migrate", name, "--to", to, "--json"]);
        let v: Value =
            serde_json::from_str(&out).unwrap_or_else(|e| panic!("migrate --json: {e}: {out}"));
        eprintln!(
            "    migrate {name} -> {to}: total {} ms, frozen {} ms (CRIU {} ms); prepare {} / pre-send {} / dump {} / transfer {} (restore {}) / cleanup {} ms; {} bytes",
            v["total_ms"], v["frozen_ms"], v["criu_frozen_ms"], v["prepare_ms"], v["presend_ms"],
            v["dump_ms"], v["transfer_ms"], v["restore_ms"], v["cleanup_ms"], v["bytes"]
        );
        v
    }

    fn node_of(&self, name: &str) -> String {
        self.lab
            .container(name)
            .and_then(|c| c["node"].as_str().map(str::to_string))
            .unwrap_or_else(|| panic!("{name} not listed"))
    }

    fn counts(&self, name: &str) -> Vec<u64> {
        counter_counts(&self.lab.ok(&["logs", name]))
    }

    /// Wait until the counter's log grows past `n` lines; returns the counts.
    fn counts_past(&self, name: &str, n: usize) -> Vec<u64> {
        wait_for(120, || {
            let c = self.counts(name);
            (c.len() > n).then_some(c)
        })
        .unwrap_or_else(|| {
            panic!(
                "{name}'s log stopped growing at {n} lines:\n{}",
                self.lab.ok(&["logs", name])
            )
        })
    }
}

fn assert_consecutive(c: &[u64], what: &str) {
    assert!(!c.is_empty(), "{what}: no count lines");
    for w in c.windows(2) {
        assert_eq!(
            w[1],
            w[0] + 1,
            "{what}: counts jump {} -> {}: {c:?}",
            w[0],
            w[1]
        );
    }
}

/// Each guest: the kernel of its suite, only cgroup2 mounted, systemd as
/// PID 1, the agent running from the shipped unit and its config file,
/// CRIU from the copied prefix with dirty-memory tracking.
fn guests_run_stock_kernels_pure_v2_and_the_shipped_unit(vm: &Vm) {
    let unit =
        std::fs::read_to_string(herd_testkit::workspace_root().join("dist/herd-agent.service"))
            .expect("dist/herd-agent.service");
    for (node, major) in [(vm.old, "6.1."), (vm.new, "6.12.")] {
        let k = vm.guest(node, "uname -r");
        assert!(k.starts_with(major), "{node} runs kernel {k}");
        let mounts = vm.guest(node, "awk '$3 ~ /^cgroup/ {print $2, $3}' /proc/mounts");
        assert_eq!(mounts.trim(), "/sys/fs/cgroup cgroup2", "{node}: {mounts}");
        let ctrl = vm.guest(node, "cat /sys/fs/cgroup/cgroup.controllers");
        for c in ["cpu", "memory", "pids", "io"] {
            assert!(ctrl.split_whitespace().any(|x| x == c), "{node}: {ctrl}");
        }
        assert_eq!(vm.guest(node, "cat /proc/1/comm").trim(), "systemd");
        assert_eq!(
            vm.guest(node, "systemctl is-active herd-agent.service")
                .trim(),
            "active"
        );
        assert_eq!(
            vm.guest(node, "cat /etc/systemd/system/herd-agent.service"),
            unit,
            "{node} runs another unit than dist/herd-agent.service"
        );
        let cmdline = vm.guest(
            node,
            "tr '\\0' ' ' </proc/$(systemctl show -p MainPID --value herd-agent)/cmdline",
        );
        assert_eq!(
            cmdline.trim(),
            "/usr/local/bin/herd-agent --config /etc/herd/agent.toml"
        );
        let toml = vm.guest(node, "cat /etc/herd/agent.toml");
        assert!(toml.contains(&format!("node = \"{node}\"")), "{toml}");
        // The agent's own cgroup is the unit's, under systemd's tree.
        let cg = vm.guest(
            node,
            "cat /proc/$(systemctl show -p MainPID --value herd-agent)/cgroup",
        );
        assert_eq!(cg.trim(), "0::/system.slice/herd-agent.service");
        vm.guest(
            node,
            "/opt/herd/criu/bin/criu check >/dev/null 2>&1 && /opt/herd/criu/bin/criu check --feature mem_dirty_track",
        );
    }
    let st = vm.lab.ok(&["lab", "status"]);
    assert!(
        st.contains("6.1.") && st.contains("6.12.") && st.matches("v2 (").count() == 2,
        "{st}"
    );
    assert_eq!(st.matches("herd-agent.service active").count(), 2, "{st}");
}

/// The demo's path between two kernels: run, logs, exec, checkpoint and
/// restore, migrate 6.1 -> 6.12 and back, pong; the counter never skips
/// or repeats and a file written before the moves is still there.
fn demo_path_across_kernels_keeps_the_counter(vm: &Vm) {
    let lab = &vm.lab;
    lab.ok(&[
        "run",
        "--node",
        vm.old,
        "--name",
        "tick",
        "--memory",
        "64m",
        "busybox",
        "--",
        "/bin/herd-work",
        "counter",
        "--mib",
        "16",
        "--interval-ms",
        "200",
    ]);
    let c = vm.counts_past("tick", 3);
    assert_eq!(c[0], 1);
    assert!(!lab
        .ok(&["exec", "tick", "--", "hostname"])
        .trim()
        .is_empty());
    lab.ok(&[
        "exec",
        "tick",
        "--",
        "sh",
        "-c",
        "echo written-on-6.1 > /root/note",
    ]);
    lab.ok(&["checkpoint", "tick"]);
    let at_ckpt = vm.counts("tick").len();
    lab.ok(&["restore", "tick"]);
    vm.counts_past("tick", at_ckpt + 2);
    for to in [vm.new, vm.old] {
        let n = vm.counts("tick").len();
        vm.migrate("tick", to);
        assert_eq!(vm.node_of("tick"), to);
        vm.counts_past("tick", n + 2);
    }
    assert_eq!(
        lab.ok(&["exec", "tick", "--", "cat", "/root/note"]).trim(),
        "written-on-6.1"
    );
    let hosts = format!("{},{}", vm.new, vm.old);
    lab.ok(&[
        "pong", "tick", "--hosts", &hosts, "--count", "2", "--dwell", "0.5",
    ]);
    let n = vm.counts("tick").len();
    let c = vm.counts_past("tick", n + 2);
    assert_consecutive(&c, "tick across 2 checkpoints and 4 moves");
    lab.ok(&["stop", "-t", "1", "tick"]);
    lab.ok(&["rm", "tick"]);
}

/// One TCP connection from the host to a container, a line every 50 ms,
/// each echoed: it survives the moves 6.1 -> 6.12 -> 6.1 with no reset,
/// no line lost or out of order, and the server never sees a reconnect.
fn tcp_connection_survives_moves_between_guests(vm: &Vm) {
    let lab = &vm.lab;
    lab.ok(&[
        "run",
        "--node",
        vm.old,
        "--name",
        "echo",
        "--net",
        "lab",
        "busybox",
        "--",
        "/bin/herd-work",
        "echo",
        "--port",
        "7000",
    ]);
    let ip: Ipv4Addr = lab
        .container("echo")
        .and_then(|c| c["ip"].as_str().and_then(|s| s.parse().ok()))
        .expect("echo has an ip");
    let to = SocketAddr::from((ip, 7000));
    // Generous: a move under TCG freezes the container for seconds.
    let pinger = Pinger::start_with(to, 120, 2, 120, 120);
    let wait_more = |k: u64| pinger.wait_more(k);
    wait_more(10);
    for node in [vm.new, vm.old] {
        vm.migrate("echo", node);
        assert_eq!(vm.node_of("echo"), node);
        wait_more(10);
    }
    let (lines, gap) = pinger.finish();
    eprintln!(
        "    tcp: {lines} lines echoed in order over 2 moves; longest gap {} ms",
        gap.as_millis()
    );
    let log = lab.ok(&["logs", "echo"]);
    assert_eq!(log.matches("accepted").count(), 1, "{log}");
    lab.ok(&["rm", "-f", "echo"]);
}

/// A Prometheus sample of one container's metric family (the cAdvisor
/// names: `container_cpu_usage_seconds_total`, ...), from a guest agent's
/// /metrics over the lab's bridge.
fn metric(vm: &Vm, node: &str, family: &str, container: &str) -> f64 {
    let cl: Value = serde_json::from_slice(
        &std::fs::read(vm.lab.dir().join("cluster.json")).expect("cluster.json"),
    )
    .expect("cluster.json is JSON");
    let addr = cl["nodes"]
        .as_array()
        .and_then(|a| a.iter().find(|n| n["name"] == node))
        .and_then(|n| n["addr"].as_str())
        .and_then(|a| a.parse::<SocketAddr>().ok())
        .unwrap_or_else(|| panic!("no address of {node} in cluster.json"));
    let to = SocketAddr::new(addr.ip(), 9100);
    let mut s = TcpStream::connect_timeout(&to, Duration::from_secs(10))
        .unwrap_or_else(|e| panic!("{to}: {e}"));
    s.set_read_timeout(Some(Duration::from_secs(60))).ok();
    write!(s, "GET /metrics HTTP/1.1\r\nHost: x\r\n\r\n").expect("send");
    let mut page = String::new();
    std::io::Read::read_to_string(&mut s, &mut page).expect("read /metrics");
    let (name, at) = (format!("name=\"{container}\""), format!("node=\"{node}\""));
    page.lines()
        .filter_map(|l| l.strip_prefix(family)?.strip_prefix('{'))
        .filter_map(|l| l.split_once("} "))
        .find(|(labels, _)| labels.split(',').any(|x| x == name) && labels.contains(&at))
        .and_then(|(_, v)| v.trim().parse().ok())
        .unwrap_or_else(|| panic!("no {family}{{{name},{at}}} in {node}'s metrics:\n{page}"))
}

/// A counter just after the agent's sampler moved it: scraped every 200 ms
/// until it changes, so its value is at most one poll old (the agent
/// samples every second). The value and when it was seen.
fn fresh_counter(vm: &Vm, node: &str, family: &str, container: &str) -> (f64, Instant) {
    let first = metric(vm, node, family, container);
    let t0 = Instant::now();
    loop {
        let v = metric(vm, node, family, container);
        if v != first {
            return (v, Instant::now());
        }
        assert!(
            t0.elapsed() < Duration::from_secs(30),
            "{family} of {container} on {node} stayed at {first} for 30 s"
        );
        std::thread::sleep(Duration::from_millis(200));
    }
}

/// The agent's cgroup v2 readings against the guest kernel's own files read
/// by the test at the same time: CPU of 2 busy threads (about 2.0 when the
/// guest had the cores), memory within 10% of memory.current and of what
/// the workload touched.
fn monitor_reads_the_guests_cgroup_v2_files(vm: &Vm) {
    let lab = &vm.lab;
    let node = vm.new;
    lab.ok(&[
        "run",
        "--node",
        node,
        "--name",
        "cpu2",
        "busybox",
        "--",
        "/bin/herd-work",
        "cpu",
        "--threads",
        "2",
    ]);
    lab.ok(&[
        "run",
        "--node",
        node,
        "--name",
        "mem",
        "busybox",
        "--",
        "/bin/herd-work",
        "mem",
        "--mib",
        "128",
    ]);
    for c in ["cpu2", "mem"] {
        assert!(
            wait_for(120, || lab.ok(&["logs", c]).contains("ops=").then_some(())).is_some(),
            "{c} printed no ops line"
        );
    }
    // The cgroup the agent made for each, found from the guest's side.
    let cg = |c: &str| {
        let pid = lab
            .container(c)
            .and_then(|v| v["pid"].as_i64())
            .unwrap_or_else(|| panic!("{c} has no pid"));
        let line = vm.guest(node, &format!("cat /proc/{pid}/cgroup"));
        let path = line
            .trim()
            .strip_prefix("0::")
            .unwrap_or_else(|| panic!("{c}: not a pure cgroup v2 membership: {line}"));
        format!("/sys/fs/cgroup{path}")
    };
    let (cpu_cg, mem_cg) = (cg("cpu2"), cg("mem"));
    // Kernel's CPU time of the cgroup and the guest's busy time, over a window
    // the agent samples too (its rate is over its last 1 s interval).
    let read = |s: &str| -> (f64, f64, f64) {
        let out = vm.guest(
            node,
            &format!(
                "cat /proc/uptime; awk '$1 == \"usage_usec\" {{print $2}}' {s}/cpu.stat; \
                 awk '$1 == \"cpu\" {{print $2 + $3 + $4 + $7 + $8}}' /proc/stat"
            ),
        );
        let v: Vec<f64> = out
            .split_whitespace()
            .filter_map(|x| x.parse().ok())
            .collect();
        (v[0], v[2] / 1e6, v[3] / 100.0)
    };
    // The agent's counter is CPU seconds: its rate over about 20 s, each
    // end taken just after a sample, against the kernel's over the same time.
    let fam = "container_cpu_usage_seconds_total";
    let (c0, w0) = fresh_counter(vm, node, fam, "cpu2");
    let (t0, u0, busy0) = read(&cpu_cg);
    std::thread::sleep(Duration::from_secs(20));
    let (c1, w1) = fresh_counter(vm, node, fam, "cpu2");
    let (t1, u1, busy1) = read(&cpu_cg);
    let kernel_cores = (u1 - u0) / (t1 - t0);
    let guest_busy = (busy1 - busy0) / (t1 - t0);
    let agent = (c1 - c0) / (w1 - w0).as_secs_f64();
    eprintln!(
        "    cpu2 on {node}: agent rate({fam}) {agent:.3} cores ({c0:.2} -> {c1:.2} s), cgroup cpu.stat {kernel_cores:.3}, guest busy {guest_busy:.3} of 2 vCPUs"
    );
    assert!(
        c1 <= u1 + 0.01,
        "the agent's {c1:.3} CPU seconds are ahead of the kernel's {u1:.3}"
    );
    assert!(
        (agent / kernel_cores - 1.0).abs() <= 0.15,
        "agent {agent:.3} cores vs the guest kernel's {kernel_cores:.3}"
    );
    if kernel_cores >= 1.8 {
        assert!(
            (agent - 2.0).abs() <= 0.25,
            "2 busy threads read {agent:.3} cores"
        );
    } else {
        eprintln!(
            "    (the guest did not get 2 full cores from the host: {kernel_cores:.2}; 2.0 not asserted)"
        );
    }
    let m_agent = metric(vm, node, "container_memory_working_set_bytes", "mem");
    let m_kernel: f64 = vm
        .guest(node, &format!("cat {mem_cg}/memory.current"))
        .trim()
        .parse()
        .expect("memory.current");
    let touched = 128.0 * (1u64 << 20) as f64;
    eprintln!(
        "    mem on {node}: agent {m_agent} bytes, memory.current {m_kernel}, touched {touched}"
    );
    assert!(
        (m_agent / m_kernel - 1.0).abs() <= 0.10,
        "agent {m_agent} vs memory.current {m_kernel}"
    );
    assert!(
        (m_agent / touched - 1.0).abs() <= 0.10,
        "agent {m_agent} vs 128 MiB touched"
    );
    let pids = metric(vm, node, "container_threads", "cpu2");
    assert_eq!(pids, 3.0, "herd-work and its 2 threads");
    lab.ok(&["rm", "-f", "cpu2"]);
    lab.ok(&["rm", "-f", "mem"]);
}

/// `systemctl kill --kill-whom=main --signal=SIGKILL herd-agent` (a crash):
/// systemd starts the agent again (Restart=always), the new process
/// re-adopts the running container (same pid, log goes on unbroken), and
/// the container can still be moved.
fn agent_killed_by_systemctl_is_restarted_and_readopts(vm: &Vm) {
    let lab = &vm.lab;
    let node = vm.old;
    lab.ok(&[
        "run",
        "--node",
        node,
        "--name",
        "keep",
        "busybox",
        "--",
        "/bin/herd-work",
        "counter",
        "--interval-ms",
        "200",
    ]);
    let before = vm.counts_past("keep", 2).len();
    let pid = lab.container("keep").and_then(|c| c["pid"].as_i64());
    let main_pid = vm.guest(node, "systemctl show -p MainPID --value herd-agent");
    vm.guest(
        node,
        "systemctl kill --kill-whom=main --signal=SIGKILL herd-agent.service",
    );
    let new_main = wait_for(300, || {
        let out = lab.herd(&[
            "lab", "guest", node, "--", "sh", "-c",
            "[ \"$(systemctl is-active herd-agent)\" = active ] && systemctl show -p MainPID --value herd-agent",
        ]);
        let p = String::from_utf8_lossy(&out.stdout).trim().to_string();
        (out.status.success() && !p.is_empty() && p != "0" && p != main_pid.trim()).then_some(p)
    })
    .expect("systemd did not start the agent again");
    let restarts = vm.guest(node, "systemctl show -p NRestarts --value herd-agent");
    eprintln!(
        "    agent main pid {} -> {new_main}, NRestarts={}",
        main_pid.trim(),
        restarts.trim()
    );
    assert!(restarts.trim().parse::<u32>().unwrap_or(0) >= 1);
    let c = wait_for(120, || {
        lab.container("keep").filter(|c| {
            c["status"]
                .as_str()
                .is_some_and(|s| s.eq_ignore_ascii_case("running"))
        })
    })
    .expect("keep is not listed as running after the restart");
    assert_eq!(c["pid"].as_i64(), pid, "the same process, re-adopted");
    let counts = vm.counts_past("keep", before + 3);
    assert_consecutive(&counts, "keep across an agent crash");
    vm.migrate("keep", vm.new);
    let n = vm.counts("keep").len();
    assert_consecutive(&vm.counts_past("keep", n + 2), "keep after the move");
    lab.ok(&["rm", "-f", "keep"]);
}

/// Running (not stopped) `herd-work` processes in a guest (by their
/// command name: the `sh -c` around it names it in its arguments too).
fn running_counters(vm: &Vm, node: &str) -> usize {
    vm.guest(node, "ps -eo stat=,comm= || true")
        .lines()
        .filter_map(|l| l.split_once(char::is_whitespace))
        .filter(|(stat, comm)| comm.trim() == "herd-work" && !stat.starts_with('T'))
        .count()
}

/// `--memory-mode pre` between the guests (their kernels track dirty
/// memory): a container holding 48 MiB of pseudo-random pattern it checks
/// every second (herd-work's counter, its count in memory only) piped into
/// an appended file, and two shell loops counting into files of their own,
/// moved 6.1 -> 6.12 -> 6.1 -> 6.12. Each move reports its pre-dump rounds
/// (the first one carries the pattern), and after each exactly one counter
/// process runs, on the target; at the end every count is gapless.
fn pre_copy_moves_keep_state_with_one_copy(vm: &Vm) {
    let lab = &vm.lab;
    let loops = "for f in /t1.log /t2.log; do \
                 (i=0; while :; do i=$((i+1)); echo $i >> $f; sleep 1; done) & done; \
                 /bin/herd-work counter --mib 48 --interval-ms 1000 | tee -a /data.log";
    lab.ok(&[
        "run", "--node", vm.old, "--name", "pre", "busybox", "--", "sh", "-c", loops,
    ]);
    vm.counts_past("pre", 2);
    let mut at = vm.old;
    for to in [vm.new, vm.old, vm.new] {
        let n = vm.counts("pre").len();
        let out = lab.ok(&[
            "migrate",
            "pre",
            "--to",
            to,
            "--memory-mode",
            "pre",
            "--json",
        ]);
        let r: Value = serde_json::from_str(&out).unwrap_or_else(|e| panic!("{e}: {out}"));
        eprintln!(
            "    pre {at} -> {to}: pre_rounds {} ({}), frozen {} ms (CRIU {} ms), dump {} ms, pages in the frozen dump {} bytes, total {} ms",
            r["pre_rounds"], r["pre_stop"], r["frozen_ms"], r["criu_frozen_ms"], r["dump_ms"],
            r["page_bytes"], r["total_ms"]
        );
        assert_eq!(r["outcome"], "moved", "{r}");
        assert_eq!(r["memory_mode"], "pre", "{r}");
        let rounds: Vec<u64> = r["pre_rounds"]
            .as_array()
            .map(|a| a.iter().filter_map(Value::as_u64).collect())
            .unwrap_or_default();
        assert!(!rounds.is_empty(), "no pre-dump round: {r}");
        assert!(
            rounds[0] >= (48 << 20) / 4096,
            "the first round did not carry the 48 MiB pattern: {r}"
        );
        assert!(r["pre_stop"].as_str().is_some_and(|w| !w.is_empty()), "{r}");
        assert_eq!(vm.node_of("pre"), to);
        vm.counts_past("pre", n + 2);
        assert_eq!(running_counters(vm, to), 1, "one counter on {to}");
        assert_eq!(running_counters(vm, at), 0, "no counter left on {at}");
        at = to;
    }
    let log = lab.ok(&["logs", "pre"]);
    assert!(!log.contains("CORRUPT"), "{log}");
    let c = vm.counts("pre");
    assert_consecutive(&c, "pre's counter across 3 pre-copy moves");
    let data = counter_counts(&lab.ok(&["exec", "pre", "--", "cat", "/data.log"]));
    assert_consecutive(&data, "/data.log across 3 pre-copy moves");
    for f in ["/t1.log", "/t2.log"] {
        let t = counter_counts(&lab.ok(&["exec", "pre", "--", "cat", f]));
        assert!(t.len() >= 3, "{f}: {t:?}");
        assert_eq!(t[0], 1, "{f}");
        assert_consecutive(&t, f);
    }
    lab.ok(&["rm", "-f", "pre"]);
}

/// n1's disk capacity (`lab up --disk-iops`, [`DISK_IOPS`]) on a pure v2
/// host: `io.max` on its container parent for the guest's root disk, n2
/// unlimited. The same synchronous-write workload (herd-work `io`: write 4
/// KiB, fsync, read back) runs at most about the limit on n1 and clearly
/// faster on n2 at the same time; n1's own disk figures (hosts.csv, read
/// from the parent's io.stat) are its containers' IO near the limit; moved
/// to n2, the same process speeds up.
fn disk_limit_is_io_max_on_v2_and_a_move_lifts_it(vm: &Vm) {
    let lab = &vm.lab;
    // Absent where no controller was enabled: no limit either.
    let io_max = |node: &str| {
        vm.guest(
            node,
            &format!("cat /sys/fs/cgroup/herd/{node}/io.max 2>/dev/null || true"),
        )
    };
    let n1_max = io_max(vm.old);
    assert!(
        n1_max.contains(&format!("riops={DISK_IOPS} wiops={DISK_IOPS}")),
        "n1's container parent has no io.max of {DISK_IOPS} IOPS: {n1_max:?}"
    );
    let disk = vm.guest(vm.old, "mountpoint -d /");
    assert!(
        n1_max.starts_with(&format!("{} ", disk.trim())),
        "io.max is not on the disk of the state dir ({}): {n1_max:?}",
        disk.trim()
    );
    assert!(
        io_max(vm.new).trim().is_empty(),
        "n2 should be unlimited: {:?}",
        io_max(vm.new)
    );
    run_io(lab, "slow", vm.old);
    run_io(lab, "fast", vm.new);
    let slow = rates(lab, "slow", 0, 5, 120);
    let fast = rates(lab, "fast", 0, 5, 120);
    lab.ok(&["rm", "-f", "fast"]);
    // Under TCG the workload is CPU-bound too: on a loaded machine the
    // unlimited guest may itself do no more than the limit (24 ops/s in one
    // run with four guests on two cores). The limit is always checked; the
    // comparison (and the lift after the move) only where n2 has headroom.
    let headroom = mean(&fast) >= 2.0 * DISK_IOPS as f64;
    let s = if headroom {
        assert_limited(&slow, &fast, DISK_IOPS, 2.0).0
    } else {
        eprintln!(
            "\n*** n2 did {:.1} ops/s unlimited, under twice n1's limit: this machine is too \
             loaded to compare; only the limit is checked ***\n",
            mean(&fast)
        );
        mean(&slow)
    };
    assert!(s > 0.0, "no progress on the limited host: {slow:?}");
    assert!(
        s <= DISK_IOPS as f64 * 1.5,
        "{s:.1} ops/s on a host limited to {DISK_IOPS} IOPS: {slow:?}"
    );
    let n1 = host_disk(lab, vm.old, "6s");
    eprintln!("    n1 (disk ops/s, busy): {n1:?}");
    assert!(!n1.is_empty(), "no n1 samples in hosts.csv");
    assert!(
        n1.iter()
            .all(|(o, b)| *o > 0.0 && *o <= 2.0 * DISK_IOPS as f64 + 5.0 && *b > 0.3),
        "n1's disk figures are not its containers' IO against {DISK_IOPS} IOPS: {n1:?}"
    );
    let before = ops_lines(lab, "slow");
    vm.migrate("slow", vm.new);
    assert_eq!(vm.node_of("slow"), vm.new);
    // Past the first seconds after the restore (pages coming back in under
    // TCG run at the old rate whatever the disk).
    let moved = rates(lab, "slow", before + 3, 5, 120);
    let m = mean(&moved);
    eprintln!("    after the move to n2: {m:.1} ops/s {moved:?}");
    // Above what the limit allows: under TCG the rate after a move is CPU-
    // bound and noisy (2.6x the limited rate in one run, where a fresh
    // container on n2 did 6x), so the bar is the limit, not the fresh rate.
    assert!(
        !headroom || m > 1.5 * DISK_IOPS as f64,
        "the move to the unlimited host did not lift it over n1's {DISK_IOPS} IOPS: {m:.1} ops/s (n1: {s:.1})"
    );
    let log = lab.ok(&["logs", "slow"]);
    assert!(!log.contains("CORRUPT"), "{log}");
    lab.ok(&["rm", "-f", "slow"]);
}

/// PostgreSQL from Debian's packages (`image import --debian postgresql`),
/// running as its own user `postgres` (CRIU needs root's
/// CAP_SYS_RESOURCE for that, which the guests' root has), moved 6.1 ->
/// 6.12 -> 6.1 -> 6.12 while `pgbench` (TPC-B-like, 4 clients) runs against
/// it from a container of its own over the lab network (on n1; the image
/// is imported there only, the first move carries it to n2). Opt-in
/// (`HERD_VM_SLOW=1`): it costs 15-25 minutes under TCG. The client sees no
/// error, and the data adds up afterwards: the balances of accounts,
/// tellers and branches and the history's deltas have one sum, and the
/// history has one row per transaction pgbench saw committed (none lost,
/// none doubled).
fn postgres_moves_between_guests_under_pgbench_with_balances_intact(vm: &Vm) {
    let lab = &vm.lab;
    if std::env::var("HERD_VM_SLOW").as_deref() != Ok("1") {
        eprintln!(
            "\n*** SKIPPED postgres under pgbench: it adds about 15-25 min under TCG \
             (a 392 MiB image into a guest, moves of tens of seconds); HERD_VM_SLOW=1 runs it ***\n"
        );
        return;
    }
    // Into n1 only: the first move carries the image to n2, as it would to
    // a host that never had it.
    let t = Instant::now();
    let built = lab.ok(&[
        "image",
        "import",
        "pg",
        "--debian",
        "postgresql",
        "--node",
        vm.old,
    ]);
    eprintln!(
        "    image: {} ({:.1} s with the import into n1)",
        built
            .lines()
            .find(|l| l.starts_with("built "))
            .unwrap_or("?"),
        t.elapsed().as_secs_f64()
    );
    let bin = "PATH=$(echo /usr/lib/postgresql/*/bin):$PATH";
    let server = format!(
        "{bin}; initdb -D /tmp/pg -U postgres -A trust >/tmp/initdb.log && \
         echo 'host all all 0.0.0.0/0 trust' >> /tmp/pg/pg_hba.conf && \
         exec postgres -D /tmp/pg -c listen_addresses='*' -c unix_socket_directories=/tmp \
         -c shared_buffers=16MB"
    );
    lab.ok(&[
        "run", "--node", vm.old, "--name", "pg", "--net", "lab", "-u", "postgres", "-w", "/tmp",
        "pg", "--", "sh", "-c", &server,
    ]);
    let ip = lab
        .container("pg")
        .and_then(|c| c["ip"].as_str().map(str::to_string))
        .expect("pg has an ip");
    // A shell command in the server's container, with PostgreSQL's tools on PATH.
    let pg_sh = |cmd: &str| lab.herd(&["exec", "pg", "--", "sh", "-c", &format!("{bin}; {cmd}")]);
    let psql = |sql: &str| -> String {
        let o = pg_sh(&format!(
            "psql -h /tmp -U postgres -d postgres -tAc \"{sql}\""
        ));
        assert!(o.status.success(), "psql {sql}: {}", text(&o));
        String::from_utf8_lossy(&o.stdout).trim().to_string()
    };
    wait_for(180, || {
        pg_sh("pg_isready -h /tmp").status.success().then_some(())
    })
    .unwrap_or_else(|| panic!("postgres never got ready:\n{}", lab.ok(&["logs", "pg"])));
    let uid = lab.ok(&["exec", "pg", "--", "id", "-u", "postgres"]);
    let uids = vm.guest(
        vm.old,
        "ps -eo uid=,comm= | awk '$2==\"postgres\"{print $1}' | sort -u",
    );
    assert!(uid.trim() != "0", "postgres is root in the image");
    assert_eq!(uids.trim(), uid.trim(), "the server runs as postgres");
    let init = pg_sh("pgbench -i -s 1 -q -h /tmp -U postgres postgres");
    assert!(init.status.success(), "pgbench -i: {}", text(&init));
    psql("create table herd_mark(v text); insert into herd_mark values ('before the moves')");

    // The client: pgbench runs of 100 transactions per client (a count,
    // not a time: a timed run may end on a commit it never counted) back to
    // back until told to stop, without pgbench's vacuum (it empties the
    // history), each transaction logged: the longest latency is the
    // client's longest stall.
    let client = format!(
        "{bin}; cd /tmp; while [ ! -e /tmp/stop ]; do \
         pgbench -n -h {ip} -U postgres -c 4 -j 2 -t 100 -l postgres; echo \"rc=$?\"; done; \
         awk '{{if ($3 > m) m = $3}} END {{print \"max_latency_us=\" m}}' pgbench_log.*"
    );
    lab.ok(&[
        "run", "--node", vm.old, "--name", "pgc", "--net", "lab", "-u", "postgres", "pg", "--",
        "sh", "-c", &client,
    ]);
    let runs = || lab.ok(&["logs", "pgc"]).matches("rc=").count();
    let next_run = |n: usize| {
        wait_for(300, || (runs() > n).then_some(()))
            .unwrap_or_else(|| panic!("pgbench stopped:\n{}", lab.ok(&["logs", "pgc"])))
    };
    next_run(0);
    let mut moves = Vec::new();
    for to in [vm.new, vm.old, vm.new] {
        let r = vm.migrate("pg", to);
        assert_eq!(r["outcome"], "moved", "{r}");
        assert_eq!(vm.node_of("pg"), to);
        // A whole run after each move: the client goes on against the target.
        next_run(runs() + 1);
        moves.push(r);
    }
    lab.ok(&["exec", "pgc", "--", "touch", "/tmp/stop"]);
    let code = lab.ok(&["wait", "pgc"]);
    let log = lab.ok(&["logs", "pgc"]);
    assert_eq!(code.trim(), "0", "the client failed:\n{log}");
    let each = |key: &str| -> Vec<u64> {
        log.lines()
            .filter_map(|l| l.trim().strip_prefix(key))
            .map(|v| {
                // "400/400" for the processed count
                v.split(|c: char| c.is_whitespace() || c == '/')
                    .find(|x| !x.is_empty())
                    .and_then(|x| x.parse().ok())
                    .unwrap_or_else(|| panic!("{key}{v}: not a number in:\n{log}"))
            })
            .collect()
    };
    let rcs = each("rc=");
    assert!(rcs.len() >= 4, "{log}");
    assert!(
        rcs.iter().all(|rc| *rc == 0),
        "a pgbench run failed:\n{log}"
    );
    let processed = each("number of transactions actually processed:");
    let failed = each("number of failed transactions:");
    assert_eq!(processed.len(), rcs.len(), "{log}");
    assert!(failed.iter().all(|f| *f == 0), "{log}");
    let done: u64 = processed.iter().sum();
    let stall_us = each("max_latency_us=")
        .first()
        .copied()
        .unwrap_or_else(|| panic!("{log}"));
    assert!(done > 0, "{log}");
    let sums = psql(
        "select (select sum(abalance) from pgbench_accounts) || ' ' || \
         (select sum(bbalance) from pgbench_branches) || ' ' || \
         (select sum(tbalance) from pgbench_tellers) || ' ' || \
         (select sum(delta) from pgbench_history) || ' ' || \
         (select count(*) from pgbench_history)",
    );
    let v: Vec<i64> = sums
        .split_whitespace()
        .map(|x| {
            x.parse()
                .unwrap_or_else(|e| panic!("{x:?}: {e} in {sums:?}"))
        })
        .collect();
    assert_eq!(v.len(), 5, "{sums:?}");
    assert!(
        v[0] == v[1] && v[1] == v[2] && v[2] == v[3],
        "balances do not add up (accounts, branches, tellers, history deltas): {sums}"
    );
    assert_eq!(
        v[4] as u64, done,
        "history rows against the transactions pgbench saw committed"
    );
    assert_eq!(psql("select v from herd_mark"), "before the moves");
    let frozen: Vec<String> = moves.iter().map(|r| r["frozen_ms"].to_string()).collect();
    let bytes: Vec<String> = moves.iter().map(|r| r["bytes"].to_string()).collect();
    eprintln!(
        "    postgres under pgbench -c 4: {} runs, {done} transactions, 0 failed, sums {sums}; \
         longest transaction {} ms; frozen {} ms; bytes moved {}",
        rcs.len(),
        stall_us / 1000,
        frozen.join(" / "),
        bytes.join(" / ")
    );
    lab.ok(&["rm", "-f", "pgc", "pg"]);
}

type Test = (&'static str, fn(&Vm));

const TESTS: &[Test] = &[
    (
        "guests_run_stock_kernels_pure_v2_and_the_shipped_unit",
        guests_run_stock_kernels_pure_v2_and_the_shipped_unit,
    ),
    (
        "demo_path_across_kernels_keeps_the_counter",
        demo_path_across_kernels_keeps_the_counter,
    ),
    (
        "tcp_connection_survives_moves_between_guests",
        tcp_connection_survives_moves_between_guests,
    ),
    (
        "monitor_reads_the_guests_cgroup_v2_files",
        monitor_reads_the_guests_cgroup_v2_files,
    ),
    (
        "agent_killed_by_systemctl_is_restarted_and_readopts",
        agent_killed_by_systemctl_is_restarted_and_readopts,
    ),
    (
        "pre_copy_moves_keep_state_with_one_copy",
        pre_copy_moves_keep_state_with_one_copy,
    ),
    (
        "disk_limit_is_io_max_on_v2_and_a_move_lifts_it",
        disk_limit_is_io_max_on_v2_and_a_move_lifts_it,
    ),
    (
        "postgres_moves_between_guests_under_pgbench_with_balances_intact",
        postgres_moves_between_guests_under_pgbench_with_balances_intact,
    ),
];
const DOWN: &str = "lab_down_leaves_nothing_on_the_host";

/// What a VM lab could leave on the host: QEMU processes, links, mounts, files.
fn vm_leftovers(lab: &Lab) -> Vec<String> {
    let mut v = common::leftovers(&lab.name, &lab.dir());
    let tag = format!("herd-{}-", lab.name);
    if let Ok(rd) = std::fs::read_dir("/proc") {
        for e in rd.flatten() {
            let cmd = std::fs::read(e.path().join("cmdline")).unwrap_or_default();
            let cmd = String::from_utf8_lossy(&cmd).replace('\0', " ");
            if cmd.contains("qemu-system") && cmd.contains(&tag) {
                v.push(format!(
                    "process {}: {cmd}",
                    e.file_name().to_string_lossy()
                ));
            }
        }
    }
    v
}

fn main() {
    let args: Vec<String> = std::env::args().skip(1).collect();
    let names: Vec<&str> = TESTS.iter().map(|t| t.0).chain([DOWN]).collect();
    if args.iter().any(|a| a == "--list") {
        if !args.iter().any(|a| a == "--ignored") {
            for n in &names {
                println!("{n}: test");
            }
        }
        return;
    }
    if args.iter().any(|a| a == "--ignored") {
        println!("running 0 tests (none is ignored)");
        return;
    }
    let filters: Vec<&String> = args.iter().filter(|a| !a.starts_with('-')).collect();
    let exact = args.iter().any(|a| a == "--exact");
    let chosen = |n: &str| {
        filters.is_empty()
            || filters.iter().any(|f| {
                if exact {
                    n == f.as_str()
                } else {
                    n.contains(f.as_str())
                }
            })
    };
    let selected: Vec<&Test> = TESTS.iter().filter(|t| chosen(t.0)).collect();
    if selected.is_empty() && !chosen(DOWN) {
        println!("running 0 tests");
        return;
    }
    if std::env::var("HERD_VM_TESTS").as_deref() == Ok("0") {
        eprintln!("\n*** SKIPPED the VM suite: HERD_VM_TESTS=0 ***\n");
        return;
    }
    if !herd_testkit::require_root("vm") {
        return;
    }
    if std::process::Command::new("qemu-system-x86_64")
        .arg("--version")
        .output()
        .map(|o| !o.status.success())
        .unwrap_or(true)
    {
        herd_testkit::unmet(
            "vm",
            "qemu-system-x86_64 missing (scripts/setup installs it)",
        );
        return;
    }
    let n = selected.len() + usize::from(chosen(DOWN));
    println!("\nrunning {n} tests on one VM lab");
    let t0 = Instant::now();
    let up = std::panic::catch_unwind(|| {
        let iops = format!("{DISK_IOPS},max");
        let lab = Lab::up_with(
            "vm",
            "lab",
            2,
            &["--vm", "--kernel", "both", "--disk-iops", &iops],
        )
        .expect("the VM suite cannot run here");
        import_busybox_with_work(&lab);
        lab
    });
    let lab = match up {
        Ok(l) => l,
        Err(_) => {
            println!("test result: FAILED. the VM lab did not come up");
            std::process::exit(1);
        }
    };
    println!(
        "lab up (2 guests, bookworm 6.1 + trixie 6.12, image build included) and image import: {:.1} s",
        t0.elapsed().as_secs_f64()
    );
    let vm = Vm {
        lab,
        old: "n1",
        new: "n2",
    };
    let mut failed = Vec::new();
    for (name, f) in selected {
        let t = Instant::now();
        let r = std::panic::catch_unwind(AssertUnwindSafe(|| f(&vm)));
        let secs = t.elapsed().as_secs_f64();
        match r {
            Ok(()) => println!("test {name} ... ok ({secs:.1} s)"),
            Err(_) => {
                println!("test {name} ... FAILED ({secs:.1} s)");
                failed.push(name.to_string());
                // Whatever it left would disturb the next test.
                for c in ["tick", "echo", "cpu2", "mem", "keep", "pre"] {
                    let _ = vm.lab.herd(&["rm", "-f", c]);
                }
            }
        }
    }
    if chosen(DOWN) {
        let t = Instant::now();
        let r = std::panic::catch_unwind(AssertUnwindSafe(|| {
            vm.lab.ok(&["lab", "down"]);
            let left = vm_leftovers(&vm.lab);
            assert!(left.is_empty(), "lab down left: {left:?}");
        }));
        let secs = t.elapsed().as_secs_f64();
        match r {
            Ok(()) => println!("test {DOWN} ... ok ({secs:.1} s)"),
            Err(_) => {
                println!("test {DOWN} ... FAILED ({secs:.1} s)");
                failed.push(DOWN.to_string());
            }
        }
    }
    drop(vm);
    println!(
        "\ntest result: {}. {} passed; {} failed; finished in {:.1} s",
        if failed.is_empty() { "ok" } else { "FAILED" },
        n - failed.len(),
        failed.len(),
        t0.elapsed().as_secs_f64()
    );
    if !failed.is_empty() {
        for f in &failed {
            println!("    {f}");
        }
        std::process::exit(1);
    }
}
