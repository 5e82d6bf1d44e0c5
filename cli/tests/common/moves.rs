//! Helpers for tests that move a counting workload between nodes and count
//! its copies (handoff.rs, livemem.rs): copies are PROCESSES in the
//! container's pids cgroup on each node that are not stopped; the workload's
//! log and appended file must count on without a gap.

use std::path::PathBuf;
use std::process::{Child, Output, Stdio};

use serde_json::Value;

use super::{counter_counts, text, wait_for, Lab};
pub use super::{counts, wait_lines};

/// herd-work's counter (16 MiB of patterned memory, checked each tick)
/// piped through tee into a file of the container's own filesystem.
pub const COUNTER_TEE: &str = "herd-work counter --interval-ms 100 --mib 16 | tee -a /data.log";

/// A two-node lab with `c` on n1 running `script` (`herd run` gets
/// `extra`), its log already counting.
pub fn lab_with_work(test: &str, name: &str, extra: &[&str], script: &str) -> Option<Lab> {
    let lab = Lab::up(test, name, 2)?;
    super::import_busybox_with_work(&lab);
    super::run_sh(&lab, "c", "n1", extra, script);
    super::wait_lines(&lab, "c", 5, 30);
    Some(lab)
}

pub fn ps_all(lab: &Lab) -> Vec<Value> {
    let o = lab.herd(&["ps", "--json"]);
    serde_json::from_slice::<Value>(&o.stdout)
        .ok()
        .and_then(|v| v.as_array().cloned())
        .unwrap_or_default()
}

pub fn entries(lab: &Lab, name: &str) -> Vec<Value> {
    ps_all(lab)
        .into_iter()
        .filter(|c| c["name"] == name)
        .collect()
}

/// Every task in `name`'s pids cgroup on `node`.
pub fn container_procs(lab: &Lab, node: &str, name: &str) -> Vec<i32> {
    std::fs::read_to_string(cgroup(lab, "pids", node, name).join("cgroup.procs"))
        .unwrap_or_default()
        .lines()
        .filter_map(|l| l.trim().parse::<i32>().ok())
        .collect()
}

/// The tasks of `name` on `node` that run (not stopped, not zombies).
pub fn running_tasks(lab: &Lab, node: &str, name: &str) -> Vec<i32> {
    container_procs(lab, node, name)
        .into_iter()
        .filter(|p| {
            let stat = std::fs::read_to_string(format!("/proc/{p}/stat")).unwrap_or_default();
            let state = stat
                .rfind(')')
                .and_then(|i| stat[i + 1..].split_whitespace().next())
                .unwrap_or("X");
            matches!(state, "R" | "S" | "D")
        })
        .collect()
}

/// Nodes where a copy of `name` runs (by its processes).
pub fn copies(lab: &Lab, nodes: &[&str], name: &str) -> Vec<String> {
    nodes
        .iter()
        .filter(|n| !running_tasks(lab, n, name).is_empty())
        .map(|n| n.to_string())
        .collect()
}

pub fn assert_gapless(c: &[u64], what: &str) {
    assert!(!c.is_empty(), "{what}: empty");
    assert_eq!(c[0], 1, "{what}: does not start at 1: {c:?}");
    if let Some(w) = c.windows(2).find(|w| w[1] != w[0] + 1) {
        panic!(
            "{what}: goes {} then {} (lost, repeated or reset)",
            w[0], w[1]
        );
    }
}

/// Exactly one running copy, on `node`; the counter goes on without a gap,
/// the memory pattern holds, the appended file is whole and matches.
pub fn assert_one_intact(lab: &Lab, nodes: &[&str], name: &str, node: &str) {
    let on = copies(lab, nodes, name);
    assert_eq!(on, vec![node.to_string()], "{name}: running copies");
    let e = entries(lab, name);
    assert_eq!(e.len(), 1, "{name} listed: {e:?}");
    assert_eq!(e[0]["node"], node, "{e:?}");
    assert_eq!(e[0]["status"], "running", "{e:?}");
    let before = counts(lab, name);
    assert_gapless(&before, "log");
    let after = wait_lines(lab, name, before.len() + 3, 30);
    assert_gapless(&after, "log, later");
    let file = lab.ok(&["exec", name, "--", "cat", "/data.log"]);
    let f = counter_counts(&file);
    assert_gapless(&f, "/data.log");
    assert!(
        f.len() + 2 >= before.len(),
        "/data.log has {} lines, the log {}",
        f.len(),
        before.len()
    );
    assert_eq!(copies(lab, nodes, name), vec![node.to_string()]);
}

/// Whether [`traces_with`] counts migration journals (`state/migrations/`).
#[derive(Clone, Copy, PartialEq, Eq, Debug)]
pub enum Journals {
    /// A handoff is over only once both sides dropped their journal
    /// (handoff.rs, livemem.rs).
    Count,
    /// The container's own traces only (migrate.rs: what a failed move
    /// leaves of the container).
    Ignore,
}

/// Everything of `name` on `node`, journals included: see [`traces_with`].
pub fn traces(lab: &Lab, node: &str, name: &str) -> Vec<String> {
    traces_with(lab, node, name, Journals::Count)
}

/// What of `name` is on `node`: its dir, staging dirs of incoming
/// migrations, (with [`Journals::Count`]) migration journals, its netns,
/// mounts under its dir, its cgroup in any hierarchy.
pub fn traces_with(lab: &Lab, node: &str, name: &str, journals: Journals) -> Vec<String> {
    let mut v = Vec::new();
    let state = lab.dir().join(node).join("state");
    let cdir = state.join("containers").join(name);
    if cdir.exists() {
        v.push(format!("dir {}", cdir.display()));
    }
    for s in staging_dirs(lab, node) {
        v.push(format!("staging {}", s.display()));
    }
    if journals == Journals::Count {
        for e in std::fs::read_dir(state.join("migrations"))
            .into_iter()
            .flatten()
            .flatten()
        {
            v.push(format!("journal {}", e.file_name().to_string_lossy()));
        }
    }
    let ns = netns(lab, node, name);
    if ns.exists() {
        v.push(format!("netns {}", ns.display()));
    }
    let mi = std::fs::read_to_string("/proc/self/mountinfo").unwrap_or_default();
    for l in mi.lines() {
        if let Some(m) = l.split(' ').nth(4) {
            if std::path::Path::new(m).starts_with(&cdir) {
                v.push(format!("mount {m}"));
            }
        }
    }
    for root in cgroup_roots() {
        let p = root.join("herd").join(&lab.name).join(node).join(name);
        if p.exists() {
            v.push(format!("cgroup {}", p.display()));
        }
    }
    v
}

/// `<node>/state/migrate-in-*`: staging dirs of incoming migrations.
pub fn staging_dirs(lab: &Lab, node: &str) -> Vec<PathBuf> {
    let state = lab.dir().join(node).join("state");
    std::fs::read_dir(&state)
        .into_iter()
        .flatten()
        .flatten()
        .filter(|e| e.file_name().to_string_lossy().starts_with("migrate-in"))
        .map(|e| e.path())
        .collect()
}

/// Mount points of every cgroup hierarchy (v1 controllers, named v1
/// hierarchies such as `name=systemd`, and cgroup2).
pub fn cgroup_roots() -> Vec<PathBuf> {
    let mi = std::fs::read_to_string("/proc/self/mountinfo").unwrap_or_default();
    mi.lines()
        .filter_map(|l| {
            let parts: Vec<&str> = l.split(' ').collect();
            let sep = parts.iter().position(|p| *p == "-")?;
            let fstype = *parts.get(sep + 1)?;
            (fstype == "cgroup" || fstype == "cgroup2").then(|| PathBuf::from(parts[4]))
        })
        .collect()
}

/// Nothing of `name` (journals left out) is on `node`, at once.
pub fn assert_no_traces(lab: &Lab, node: &str, name: &str) {
    assert_none_within(lab, node, name, Journals::Ignore, 0);
}

/// Nothing of `name` (journals left out) on `node` within 10 s: a
/// target's cleanup after a failure may finish just after the source's
/// answer.
pub fn assert_no_traces_soon(lab: &Lab, node: &str, name: &str) {
    assert_none_within(lab, node, name, Journals::Ignore, 10);
}

/// Nothing of `name`, journals included, on `node` within 45 s: a target
/// whose source died notices at QUIC's idle timeout (30 s).
pub fn assert_clean(lab: &Lab, node: &str, name: &str) {
    assert_none_within(lab, node, name, Journals::Count, 45);
}

fn assert_none_within(lab: &Lab, node: &str, name: &str, journals: Journals, secs: u64) {
    let left = wait_for(secs, || {
        traces_with(lab, node, name, journals)
            .is_empty()
            .then_some(())
    });
    if left.is_none() {
        let log =
            std::fs::read_to_string(lab.dir().join(node).join("agent.log")).unwrap_or_default();
        let warn: Vec<&str> = log
            .lines()
            .filter(|l| l.contains("WARN") || l.contains("ERROR"))
            .collect();
        panic!(
            "{name} left on {node}: {:?}\nwarnings in its agent log:\n{}",
            traces_with(lab, node, name, journals),
            warn.join("\n")
        );
    }
}

pub fn kill9(pid: i32) {
    nix::sys::signal::kill(
        nix::unistd::Pid::from_raw(pid),
        nix::sys::signal::Signal::SIGKILL,
    )
    .expect("kill -9");
}

pub fn paused(lab: &Lab, node: &str, point: &str) -> PathBuf {
    lab.dir()
        .join(node)
        .join("state")
        .join(format!("paused-{point}"))
}

pub fn wait_paused(lab: &Lab, node: &str, point: &str, child: &mut Child) {
    let ok = wait_for(90, || paused(lab, node, point).exists().then_some(()));
    if ok.is_none() {
        let _ = child.kill();
        panic!(
            "{node} never paused at {point}; agent log:\n{}",
            std::fs::read_to_string(lab.dir().join(node).join("agent.log")).unwrap_or_default()
        );
    }
}

pub fn resume(lab: &Lab, node: &str, point: &str) {
    std::fs::write(
        lab.dir()
            .join(node)
            .join("state")
            .join(format!("resume-{point}")),
        b"",
    )
    .expect("write resume file");
}

pub fn spawn_migrate(lab: &Lab, name: &str, to: &str) -> Child {
    lab.cmd()
        .args(["migrate", name, "--to", to, "--json"])
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .expect("spawn herd migrate")
}

/// Brings a link back up even when the test fails.
pub struct LinkDown(String);
impl LinkDown {
    pub fn cut(lab: &Lab, node: &str) -> LinkDown {
        let link = format!("{}-{node}", lab.name);
        set_link(&link, false);
        LinkDown(link)
    }
}
pub fn set_link(link: &str, up: bool) {
    let st = std::process::Command::new("ip")
        .args(["link", "set", link, if up { "up" } else { "down" }])
        .status()
        .expect("run ip");
    assert!(st.success(), "ip link set {link} failed");
}
impl Drop for LinkDown {
    fn drop(&mut self) {
        set_link(&self.0, true);
    }
}

/// `name`'s cgroup directory of controller `ctrl` on `node`.
pub fn cgroup(lab: &Lab, ctrl: &str, node: &str, name: &str) -> PathBuf {
    PathBuf::from("/sys/fs/cgroup")
        .join(ctrl)
        .join("herd")
        .join(&lab.name)
        .join(node)
        .join(name)
}

pub fn netns(lab: &Lab, node: &str, name: &str) -> PathBuf {
    PathBuf::from(format!("/run/netns/{}-{node}-{name}", lab.name))
}

/// The migration's JSON answer (printed on failure too).
pub fn outcome_of(o: &Output) -> Value {
    serde_json::from_slice(&o.stdout)
        .unwrap_or_else(|e| panic!("migrate --json printed no JSON ({e}):\n{}", text(o)))
}
