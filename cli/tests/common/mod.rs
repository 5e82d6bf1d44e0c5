//! Helpers for tests that drive the real `herd` binary against a real lab.
#![allow(dead_code)]

use std::path::{Path, PathBuf};
use std::process::{Command, Output};

pub mod disk;
pub mod moves;

pub fn herd_bin() -> PathBuf {
    PathBuf::from(env!("CARGO_BIN_EXE_herd"))
}

/// herd-agent next to herd (scripts/setup and `cargo test --workspace` build it).
pub fn agent_bin() -> PathBuf {
    herd_bin().with_file_name("herd-agent")
}

/// A lab owned by one test: unique name, torn down on drop.
pub struct Lab {
    pub name: String,
    pub root: PathBuf,
}

impl Lab {
    /// `None` (after a loud skip) when the test cannot run here.
    pub fn up(test: &str, name: &str, nodes: usize) -> Option<Lab> {
        Lab::up_with(test, name, nodes, &[])
    }

    /// [`Lab::up`] with more `herd lab up` flags (e.g. `--cpus 0.5`).
    pub fn up_with(test: &str, name: &str, nodes: usize, extra: &[&str]) -> Option<Lab> {
        if !herd_testkit::require_root(test) {
            return None;
        }
        assert!(
            agent_bin().exists(),
            "{} missing: build it with `cargo build --release` (scripts/setup does)",
            agent_bin().display()
        );
        // HERD_TEST_LAB_PREFIX keeps labs of test runs in two checkouts on one
        // machine apart (lab names are at most 10 characters).
        let name = format!(
            "{}{name}",
            std::env::var("HERD_TEST_LAB_PREFIX").unwrap_or_default()
        );
        let root = std::env::temp_dir().join(format!("herd-test-labs-{name}"));
        let lab = Lab { name, root };
        // A previous failed run may have left it behind.
        let _ = lab.herd(&["lab", "down"]);
        let n = nodes.to_string();
        let mut args = vec!["lab", "up", "--nodes", n.as_str()];
        args.extend_from_slice(extra);
        let out = lab.herd(&args);
        assert!(out.status.success(), "lab up failed:\n{}", text(&out));
        Some(lab)
    }

    pub fn cmd(&self) -> Command {
        let mut c = Command::new(herd_bin());
        c.env("HERD_LAB", &self.name)
            .env("HERD_LAB_ROOT", &self.root)
            .env("HERD_AGENT_BIN", agent_bin())
            .env_remove("HERD_CLUSTER");
        c
    }

    pub fn herd(&self, args: &[&str]) -> Output {
        self.cmd().args(args).output().expect("run herd")
    }

    /// Run and require success; returns stdout.
    pub fn ok(&self, args: &[&str]) -> String {
        let out = self.herd(args);
        assert!(
            out.status.success(),
            "herd {} failed:\n{}",
            args.join(" "),
            text(&out)
        );
        String::from_utf8_lossy(&out.stdout).into_owned()
    }

    pub fn dir(&self) -> PathBuf {
        self.root.join(&self.name)
    }

    pub fn import_busybox(&self) {
        self.ok(&["image", "import", "busybox", "--busybox"]);
    }

    pub fn ps_json(&self) -> serde_json::Value {
        serde_json::from_str(&self.ok(&["ps", "--json"])).expect("ps --json is JSON")
    }

    pub fn container(&self, name: &str) -> Option<serde_json::Value> {
        self.ps_json()
            .as_array()
            .expect("array")
            .iter()
            .find(|c| c["name"] == name)
            .cloned()
    }

    /// What this lab left on the machine: netns, links, mounts, cgroups, files.
    pub fn leftovers(&self) -> Vec<String> {
        leftovers(&self.name, &self.dir())
    }
}

impl Drop for Lab {
    fn drop(&mut self) {
        let _ = self.herd(&["lab", "down"]);
        let _ = std::fs::remove_dir_all(&self.root);
    }
}

pub fn text(o: &Output) -> String {
    format!(
        "status {}\nstdout:\n{}\nstderr:\n{}",
        o.status,
        String::from_utf8_lossy(&o.stdout),
        String::from_utf8_lossy(&o.stderr)
    )
}

pub fn leftovers(lab: &str, dir: &Path) -> Vec<String> {
    let mut v = Vec::new();
    let prefix = format!("{lab}-");
    if let Ok(rd) = std::fs::read_dir("/run/netns") {
        for e in rd.flatten() {
            let n = e.file_name().to_string_lossy().into_owned();
            if n.starts_with(&prefix) {
                v.push(format!("netns {n}"));
            }
        }
    }
    if let Ok(rd) = std::fs::read_dir("/sys/class/net") {
        for e in rd.flatten() {
            let n = e.file_name().to_string_lossy().into_owned();
            if n.starts_with(&prefix) {
                v.push(format!("link {n}"));
            }
        }
    }
    let mi = std::fs::read_to_string("/proc/self/mountinfo").unwrap_or_default();
    for l in mi.lines() {
        if let Some(m) = l.split(' ').nth(4) {
            if Path::new(m).starts_with(dir) || m.contains(&format!("/netns/{prefix}")) {
                v.push(format!("mount {m}"));
            }
        }
    }
    for ctrl in [
        "memory", "cpu", "pids", "freezer", "unified", "systemd", "blkio", "cpuset", "devices",
        "cpuacct",
    ] {
        let p = Path::new("/sys/fs/cgroup")
            .join(ctrl)
            .join("herd")
            .join(lab);
        if p.exists() {
            v.push(format!("cgroup {}", p.display()));
        }
    }
    let p = Path::new("/sys/fs/cgroup/herd").join(lab);
    if p.exists() {
        v.push(format!("cgroup {}", p.display()));
    }
    if dir.exists() {
        v.push(format!("dir {}", dir.display()));
    }
    v
}

/// Poll `f` until it returns Some, for at most `secs` seconds.
pub fn wait_for<T>(secs: u64, mut f: impl FnMut() -> Option<T>) -> Option<T> {
    let t0 = std::time::Instant::now();
    loop {
        if let Some(v) = f() {
            return Some(v);
        }
        if t0.elapsed().as_secs() >= secs {
            return None;
        }
        std::thread::sleep(std::time::Duration::from_millis(100));
    }
}

/// herd-work, built static by scripts/setup (target/static/release/herd-work).
pub fn herd_work_bin() -> PathBuf {
    let p = Path::new(env!("CARGO_MANIFEST_DIR")).join("../target/static/release/herd-work");
    assert!(
        p.exists(),
        "{} missing: run scripts/setup (or `cargo rustc --release -p herd-work --bin herd-work \
         --target-dir target/static -- -C target-feature=+crt-static`)",
        p.display()
    );
    p.canonicalize().expect("canonicalize herd-work path")
}

/// Import `busybox` with herd-work in /bin on every node of the lab.
pub fn import_busybox_with_work(lab: &Lab) {
    let w = herd_work_bin();
    lab.ok(&[
        "image",
        "import",
        "busybox",
        "--busybox",
        "--add",
        w.to_str().expect("utf-8 path"),
    ]);
}

/// The counts of a counter log, in order: herd-work's `count=<n>
/// pattern=ok` (anything after the count but `pattern=ok` is damaged memory
/// and fails the test) or a shell counter's bare numbers; any other line
/// fails the test. A last line still being written (no newline yet) is left
/// out.
pub fn counter_counts(log: &str) -> Vec<u64> {
    log.split_inclusive('\n')
        .filter(|l| l.ends_with('\n'))
        .map(|l| l.trim_end_matches('\n'))
        .map(|l| {
            let n = match l.strip_prefix("count=") {
                Some(rest) => {
                    let (n, tail) = rest
                        .split_once(' ')
                        .unwrap_or_else(|| panic!("not a counter line: {l:?}"));
                    assert_eq!(tail, "pattern=ok", "memory damaged: {l:?}\nlog:\n{log}");
                    n
                }
                None => l,
            };
            n.parse()
                .unwrap_or_else(|_| panic!("not a counter line: {l:?}\nlog:\n{log}"))
        })
        .collect()
}

/// A container's log as `herd logs` prints it.
pub fn logs(lab: &Lab, name: &str) -> String {
    lab.ok(&["logs", name])
}

/// The counts of `name`'s log.
pub fn counts(lab: &Lab, name: &str) -> Vec<u64> {
    counter_counts(&logs(lab, name))
}

/// Wait until `name`'s log holds at least `n` complete counter lines;
/// returns their counts.
pub fn wait_lines(lab: &Lab, name: &str, n: usize, secs: u64) -> Vec<u64> {
    wait_for(secs, || {
        let c = counts(lab, name);
        (c.len() >= n).then_some(c)
    })
    .unwrap_or_else(|| {
        panic!(
            "{name}: fewer than {n} log lines after {secs} s:\n{}\nps: {}",
            text(&lab.herd(&["logs", name])),
            text(&lab.herd(&["ps", "-a", "--json"]))
        )
    })
}

/// `herd run [--node N] [flags] --name NAME busybox -- herd-work ARGS...`.
pub fn run_herd_work(lab: &Lab, name: &str, node: Option<&str>, args: &[&str]) {
    let mut a = vec!["run", "--name", name];
    if let Some(n) = node {
        a.extend(["--node", n]);
    }
    a.extend(["busybox", "--", "herd-work"]);
    a.extend_from_slice(args);
    lab.ok(&a);
}

/// `herd-work counter` every 100 ms over `mib` MiB of patterned memory,
/// checked every tick (a damaged restore prints `pattern=CORRUPT`).
pub fn run_counter(lab: &Lab, name: &str, node: Option<&str>, mib: u64) {
    let mib = mib.to_string();
    run_herd_work(
        lab,
        name,
        node,
        &["counter", "--interval-ms", "100", "--mib", &mib],
    );
}

/// `herd run --node N [extra] --name NAME busybox -- sh -c SCRIPT`.
pub fn run_sh(lab: &Lab, name: &str, node: &str, extra: &[&str], script: &str) {
    let mut args = vec!["run", "--node", node, "--name", name];
    args.extend_from_slice(extra);
    args.extend(["busybox", "--", "sh", "-c", script]);
    lab.ok(&args);
}

/// The pid `herd ps` gives for `name`.
pub fn pid_of(lab: &Lab, name: &str) -> i32 {
    let c = lab
        .container(name)
        .unwrap_or_else(|| panic!("{name} not in ps: {}", lab.ps_json()));
    c["pid"]
        .as_i64()
        .unwrap_or_else(|| panic!("{name} has no pid: {c}")) as i32
}

/// `herd migrate NAME --to TO --json`, which must succeed.
pub fn migrate_json(lab: &Lab, name: &str, to: &str) -> serde_json::Value {
    migrate_json_with(lab, name, to, &[])
}

/// [`migrate_json`] with more flags (`--fs whole`, `--memory-mode stop`).
pub fn migrate_json_with(lab: &Lab, name: &str, to: &str, extra: &[&str]) -> serde_json::Value {
    let mut a = vec!["migrate", name, "--to", to, "--json"];
    a.extend_from_slice(extra);
    let out = lab.ok(&a);
    serde_json::from_str(&out).unwrap_or_else(|e| panic!("migrate --json: {e}: {out}"))
}

/// A node's agent log, whole (empty if there is none yet).
pub fn agent_log(lab: &Lab, node: &str) -> String {
    std::fs::read_to_string(lab.dir().join(node).join("agent.log")).unwrap_or_default()
}

/// The last `n` lines of a node's agent log, for failure messages.
pub fn agent_log_tail(lab: &Lab, node: &str, n: usize) -> String {
    let s = agent_log(lab, node);
    let lines: Vec<&str> = s.lines().collect();
    lines[lines.len().saturating_sub(n)..].join("\n")
}

/// Unix time, seconds.
pub fn now_s() -> f64 {
    std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .expect("clock after 1970")
        .as_secs_f64()
}

/// CPU seconds (user + system) a process has used, from /proc.
pub fn proc_cpu_seconds(pid: i32) -> Option<f64> {
    let stat = std::fs::read_to_string(format!("/proc/{pid}/stat")).ok()?;
    let rest = &stat[stat.rfind(')')? + 2..];
    let f: Vec<&str> = rest.split_whitespace().collect();
    let ticks: u64 = f.get(11)?.parse::<u64>().ok()? + f.get(12)?.parse::<u64>().ok()?;
    // SAFETY: sysconf has no preconditions.
    let hz = unsafe { libc::sysconf(libc::_SC_CLK_TCK) } as f64;
    Some(ticks as f64 / hz)
}

/// A shell that opens a 2 MiB file as fd 3, deletes it and then counts:
/// a ghost file CRIU must carry in the image.
pub const GHOST_HOLDER: &str = "dd if=/dev/zero of=/tmp/big bs=1M count=2 2>/dev/null && \
    exec 3</tmp/big && rm /tmp/big && exec herd-work counter --interval-ms 100";

/// `pid`'s fd 3 is open on a deleted file.
pub fn assert_holds_deleted_fd(pid: i32) {
    let fd3 = std::fs::read_link(format!("/proc/{pid}/fd/3")).expect("fd 3");
    assert!(
        fd3.to_string_lossy().ends_with("(deleted)"),
        "fd 3 is {}",
        fd3.display()
    );
}

/// Restart a node's agent with `HERD_FAULT=<fault>` (fault injection for
/// failures that cannot be caused for real on one machine).
pub fn restart_with_fault(lab: &Lab, node: &str, fault: &str) {
    let o = lab
        .cmd()
        .env("HERD_FAULT", fault)
        .args(["lab", "restart", node])
        .output()
        .expect("run herd lab restart");
    assert!(o.status.success(), "lab restart {node}:\n{}", text(&o));
}

/// `herd` without a lab (simulator, forecaster): no cluster from the
/// environment.
pub fn herd(args: &[&str]) -> Output {
    Command::new(herd_bin())
        .args(args)
        .env_remove("HERD_CLUSTER")
        .output()
        .expect("run herd")
}

/// [`herd`] that must succeed; its stdout.
pub fn herd_ok(args: &[&str]) -> String {
    let o = herd(args);
    assert!(
        o.status.success(),
        "herd {args:?} failed:\n{}",
        String::from_utf8_lossy(&o.stderr)
    );
    String::from_utf8_lossy(&o.stdout).into_owned()
}

/// A path as a command-line argument.
pub fn path_arg(path: &Path) -> &str {
    path.to_str().expect("utf-8 path")
}

/// Alive and not a zombie.
pub fn process_alive(pid: i32) -> bool {
    match std::fs::read_to_string(format!("/proc/{pid}/stat")) {
        Ok(s) => !s.contains(") Z"),
        Err(_) => false,
    }
}

/// The lab's cluster.json.
pub fn cluster_json(lab: &Lab) -> serde_json::Value {
    serde_json::from_slice(&std::fs::read(lab.dir().join("cluster.json")).unwrap()).unwrap()
}

/// The pid of `node`'s agent.
pub fn agent_pid(lab: &Lab, node: &str) -> i32 {
    cluster_json(lab)["nodes"]
        .as_array()
        .unwrap()
        .iter()
        .find(|n| n["name"] == node)
        .unwrap_or_else(|| panic!("no {node} in cluster.json"))["pid"]
        .as_i64()
        .unwrap() as i32
}

/// One TCP connection sending `<n>\n` every 50 ms and checking each echo
/// (the echo workload: `herd-work echo`).
pub struct Pinger {
    stop: std::sync::Arc<std::sync::atomic::AtomicBool>,
    answered: std::sync::Arc<std::sync::atomic::AtomicU64>,
    handle: std::thread::JoinHandle<Result<(u64, std::time::Duration), String>>,
    patience_secs: u64,
}

impl Pinger {
    /// Connect (retrying for `connect_secs`, each try `try_secs`), reads
    /// time out after `read_secs`, [`Pinger::wait_more`] waits `patience_secs`.
    pub fn start_with(
        to: std::net::SocketAddr,
        connect_secs: u64,
        try_secs: u64,
        read_secs: u64,
        patience_secs: u64,
    ) -> Pinger {
        use std::io::{BufRead, BufReader, Write};
        use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
        use std::sync::Arc;
        use std::time::{Duration, Instant};
        let stop = Arc::new(AtomicBool::new(false));
        let answered = Arc::new(AtomicU64::new(0));
        let (s, a) = (stop.clone(), answered.clone());
        let handle = std::thread::spawn(move || {
            let conn = wait_for(connect_secs, || {
                std::net::TcpStream::connect_timeout(&to, Duration::from_secs(try_secs)).ok()
            })
            .ok_or(format!("cannot connect to {to}"))?;
            conn.set_read_timeout(Some(Duration::from_secs(read_secs)))
                .ok();
            conn.set_nodelay(true).ok();
            let mut w = conn.try_clone().map_err(|e| e.to_string())?;
            let mut r = BufReader::new(conn);
            let (mut last, mut maxgap) = (Instant::now(), Duration::ZERO);
            let mut line = String::new();
            let mut n = 0u64;
            while !s.load(Ordering::Relaxed) {
                n += 1;
                w.write_all(format!("{n}\n").as_bytes())
                    .map_err(|e| format!("send {n}: {e}"))?;
                line.clear();
                match r.read_line(&mut line) {
                    Ok(0) => return Err(format!("connection closed at {n}")),
                    Err(e) => return Err(format!("read {n}: {e}")),
                    Ok(_) if line.trim() != n.to_string() => {
                        return Err(format!("sent {n}, got {:?}", line.trim()))
                    }
                    Ok(_) => {}
                }
                maxgap = maxgap.max(last.elapsed());
                last = Instant::now();
                a.store(n, Ordering::Relaxed);
                std::thread::sleep(Duration::from_millis(50));
            }
            Ok((n, maxgap))
        });
        Pinger {
            stop,
            answered,
            handle,
            patience_secs,
        }
    }

    /// A lab's pinger: connect within 10 s, 20 s read timeout, 30 s patience.
    pub fn start(to: std::net::SocketAddr) -> Pinger {
        Pinger::start_with(to, 10, 1, 20, 30)
    }

    /// Wait until `k` more answers came than now.
    pub fn wait_more(&self, k: u64) {
        use std::sync::atomic::Ordering;
        let from = self.answered.load(Ordering::Relaxed);
        let ok = wait_for(self.patience_secs, || {
            (self.answered.load(Ordering::Relaxed) >= from + k).then_some(())
        });
        assert!(
            ok.is_some(),
            "the connection stopped answering after {from} lines"
        );
    }

    /// Stop; the lines echoed and the longest gap between two answers.
    pub fn finish(self) -> (u64, std::time::Duration) {
        self.stop.store(true, std::sync::atomic::Ordering::Relaxed);
        match self.handle.join() {
            Ok(Ok(r)) => r,
            Ok(Err(e)) => panic!("the TCP connection broke: {e}"),
            Err(_) => panic!("pinger thread panicked"),
        }
    }
}

/// A command's stderr, trimmed.
pub fn stderr_of(o: &Output) -> String {
    String::from_utf8_lossy(&o.stderr).trim().to_string()
}
