//! The fenced, journalled handoff (herd-wire's `handoff` module) under real
//! faults on real labs: links cut with `ip link set <node's veth> down` at
//! each phase and healed after 40 s (longer than QUIC's 30 s idle timeout
//! and every handoff timeout), agents killed with SIGKILL and restarted,
//! operations on a container while it migrates, and many random moves with
//! link flaps.
//!
//! Copies are counted as PROCESSES: the tasks in the container's cgroup on
//! each node (`/sys/fs/cgroup/pids/herd/<lab>/<node>/<name>/cgroup.procs`)
//! that are not stopped (a held copy on the target is SIGSTOPped and
//! fenced, a frozen one is gone). During every fault at most one node has a
//! running copy; afterwards exactly one does, the workload's counter goes
//! on without a gap, its memory pattern checks out, the file it appends to
//! is whole, nothing is left on the other node, and another move works.
//!
//! `HERD_FAULT=pause-<point>` on an agent stops a migration at exactly one
//! phase boundary (the agent waits for a `resume-<point>` file) so that the
//! real cut or the real kill happens there; the faults themselves are real.

mod common;

use std::process::{Child, Stdio};
use std::time::{Duration, Instant};

use common::moves::*;
use common::{
    agent_pid, import_busybox_with_work, restart_with_fault, run_sh, stderr_of, text, wait_for, Lab,
};
use serde_json::Value;

/// How long a cut lasts: longer than QUIC's idle timeout (30 s) and the
/// handoff's query and pending timeouts.
const HEAL_AFTER: Duration = Duration::from_secs(40);

/// Sample the running copies for `d`; the most seen at once.
fn watch_copies(lab: &Lab, nodes: &[&str], name: &str, d: Duration) -> usize {
    let t0 = Instant::now();
    let mut most = 0;
    while t0.elapsed() < d {
        let on = copies(lab, nodes, name);
        assert!(on.len() <= 1, "{name} runs on {on:?} at once");
        most = most.max(on.len());
        std::thread::sleep(Duration::from_millis(250));
    }
    most
}

/// Wait until the handoff is over: one running copy, nothing `Migrating`.
/// Returns the node and how long it took.
fn wait_resolved(lab: &Lab, nodes: &[&str], name: &str, secs: u64) -> (String, Duration) {
    let t0 = Instant::now();
    let node = wait_for(secs, || {
        let on = copies(lab, nodes, name);
        assert!(on.len() <= 1, "{name} runs on {on:?} at once");
        let e = entries(lab, name);
        (on.len() == 1 && e.len() == 1 && e[0]["status"] == "running").then(|| on[0].clone())
    })
    .unwrap_or_else(|| {
        panic!(
            "{name} not resolved after {secs} s: copies {:?}, ps {:?}",
            copies(lab, nodes, name),
            entries(lab, name)
        )
    });
    (node, t0.elapsed())
}

fn report(case: &str, outcome: &str, during: usize, after: usize, resolve: Duration) {
    eprintln!(
        "[handoff] {case:<34} outcome {outcome:<12} copies during {during}, after {after}, \
         resolved {:.1} s after the heal",
        resolve.as_secs_f64()
    );
}

/// A later move of the same container works and leaves nothing behind.
fn move_again(lab: &Lab, nodes: &[&str], name: &str, from: &str, to: &str) {
    let o = lab.herd(&["migrate", name, "--to", to, "--json"]);
    assert!(o.status.success(), "move again:\n{}", text(&o));
    let r = outcome_of(&o);
    assert_eq!(r["outcome"], "moved", "{r}");
    assert_eq!(r["runs_on"], to, "{r}");
    let (node, _) = wait_resolved(lab, nodes, name, 30);
    assert_eq!(node, to);
    assert_one_intact(lab, nodes, name, to);
    assert_clean(lab, from, name);
}

const N: [&str; 2] = ["n1", "n2"];

/// The reported bug: the target restored and ran the container, its answer
/// was lost, the source resumed its own copy: two copies. Now the target
/// holds its copy stopped and fenced; cut right after Commit and healed
/// after 40 s, the source's journalled Abort reaches it, it drops its copy,
/// and only then does the source resume.
#[test]
fn link_cut_right_after_commit_rolls_back_with_one_copy() {
    let Some(lab) = lab_with_work("handoff_cut_commit", "cutc", &[], COUNTER_TEE) else {
        return;
    };
    restart_with_fault(&lab, "n1", "pause-after-commit");
    let mut child = spawn_migrate(&lab, "c", "n2");
    wait_paused(&lab, "n1", "after-commit", &mut child);
    let cut = LinkDown::cut(&lab, "n2");
    resume(&lab, "n1", "after-commit");
    // The container is listed as migrating, with both nodes.
    let e = wait_for(10, || {
        entries(&lab, "c")
            .into_iter()
            .find(|c| c["status"] == "migrating")
    })
    .expect("c listed as Migrating during the cut");
    assert_eq!(e["migration"]["from"], "n1", "{e}");
    assert_eq!(e["migration"]["to"], "n2", "{e}");
    let during = watch_copies(&lab, &N, "c", HEAL_AFTER);
    drop(cut);
    let healed = Instant::now();
    let o = child.wait_with_output().unwrap();
    let r = outcome_of(&o);
    eprintln!("[handoff] after-commit: {} {r}", stderr_of(&o));
    // T's Ready may have reached S before the cut (then Go is decided and
    // the move completes after the heal) or not (Abort: rolled back).
    let outcome = r["outcome"].as_str().unwrap_or("").to_string();
    assert!(
        ["rolled_back", "pending", "moved"].contains(&outcome.as_str()),
        "{r}"
    );
    if outcome != "moved" {
        assert!(!o.status.success(), "{}", text(&o));
        assert!(r["phase"].is_string() && r["reason"].is_string(), "{r}");
    }
    let (node, _) = wait_resolved(&lab, &N, "c", 60);
    let took = healed.elapsed();
    let (other, what) = if node == "n1" {
        ("n2", "rolled_back")
    } else {
        ("n1", "moved")
    };
    report("link cut right after Commit", what, during, 1, took);
    assert_one_intact(&lab, &N, "c", &node);
    assert_clean(&lab, other, "c");
    restart_with_fault(&lab, "n1", "");
    move_again(&lab, &N, "c", &node, other);
}

/// Cut after the target restored (held) but before it answered Ready.
#[test]
fn link_cut_before_the_targets_vote_rolls_back_with_one_copy() {
    let Some(lab) = lab_with_work("handoff_cut_vote", "cutv", &[], COUNTER_TEE) else {
        return;
    };
    restart_with_fault(&lab, "n2", "pause-before-ready");
    let mut child = spawn_migrate(&lab, "c", "n2");
    wait_paused(&lab, "n2", "before-ready", &mut child);
    // Restored on n2, but stopped: nothing runs anywhere.
    assert!(
        copies(&lab, &N, "c").is_empty(),
        "{:?}",
        copies(&lab, &N, "c")
    );
    let cut = LinkDown::cut(&lab, "n2");
    resume(&lab, "n2", "before-ready");
    let during = watch_copies(&lab, &N, "c", HEAL_AFTER);
    drop(cut);
    let healed = Instant::now();
    let o = child.wait_with_output().unwrap();
    assert!(!o.status.success(), "{}", text(&o));
    let r = outcome_of(&o);
    assert!(
        r["outcome"] == "rolled_back" || r["outcome"] == "pending",
        "{r}"
    );
    let (node, _) = wait_resolved(&lab, &N, "c", 60);
    report(
        "link cut before the target's Ready",
        "rolled_back",
        during,
        1,
        healed.elapsed(),
    );
    assert_eq!(node, "n1");
    assert_one_intact(&lab, &N, "c", "n1");
    assert_clean(&lab, "n2", "c");
    restart_with_fault(&lab, "n2", "");
    move_again(&lab, &N, "c", "n1", "n2");
}

/// Go reached the target and its copy runs, but the answer is lost: the
/// source never resumes, asks again after the heal and deletes its copy.
#[test]
fn link_cut_after_go_moves_with_one_copy() {
    let Some(lab) = lab_with_work("handoff_cut_go", "cutg", &[], COUNTER_TEE) else {
        return;
    };
    restart_with_fault(&lab, "n2", "pause-after-go");
    let mut child = spawn_migrate(&lab, "c", "n2");
    wait_paused(&lab, "n2", "after-go", &mut child);
    let cut = LinkDown::cut(&lab, "n2");
    resume(&lab, "n2", "after-go");
    let during = watch_copies(&lab, &N, "c", HEAL_AFTER);
    drop(cut);
    let healed = Instant::now();
    let o = child.wait_with_output().unwrap();
    let r = outcome_of(&o);
    assert!(r["outcome"] == "moved" || r["outcome"] == "pending", "{r}");
    let (node, _) = wait_resolved(&lab, &N, "c", 60);
    report(
        "link cut after Go, answer lost",
        "moved",
        during,
        1,
        healed.elapsed(),
    );
    assert_eq!(node, "n2");
    assert_one_intact(&lab, &N, "c", "n2");
    assert_clean(&lab, "n1", "c");
    restart_with_fault(&lab, "n2", "");
    move_again(&lab, &N, "c", "n2", "n1");
}

/// kill -9 of the source agent mid-transfer (the container is checkpointed
/// there), then `herd lab restart`: the restarted agent resolves its
/// journal, the target drops its staging, the container runs again where
/// it was, with no user action.
#[test]
fn source_agent_killed_mid_transfer_restores_itself_after_restart() {
    let Some(lab) = lab_with_work("handoff_kill_src", "kills", &[], COUNTER_TEE) else {
        return;
    };
    restart_with_fault(&lab, "n1", "pause-mid-transfer");
    let mut child = spawn_migrate(&lab, "c", "n2");
    wait_paused(&lab, "n1", "mid-transfer", &mut child);
    kill9(agent_pid(&lab, "n1"));
    let during = watch_copies(&lab, &N, "c", Duration::from_secs(3));
    let t0 = Instant::now();
    lab.ok(&["lab", "restart", "n1"]);
    let o = child.wait_with_output().unwrap();
    assert!(!o.status.success(), "{}", text(&o));
    let (node, _) = wait_resolved(&lab, &N, "c", 90);
    report(
        "kill -9 source mid-transfer",
        "rolled_back",
        during,
        1,
        t0.elapsed(),
    );
    assert_eq!(node, "n1");
    assert_one_intact(&lab, &N, "c", "n1");
    assert_clean(&lab, "n2", "c");
    move_again(&lab, &N, "c", "n1", "n2");
}

/// kill -9 of the target agent after it voted (its copy held, stopped and
/// fenced) while the source has journalled Go: the restarted target
/// re-adopts the held copy, the source's Go reaches it, it runs there.
#[test]
fn target_agent_killed_after_its_vote_moves_after_restart() {
    let Some(lab) = lab_with_work("handoff_kill_tgt", "killt", &[], COUNTER_TEE) else {
        return;
    };
    restart_with_fault(&lab, "n1", "pause-before-go");
    let mut child = spawn_migrate(&lab, "c", "n2");
    wait_paused(&lab, "n1", "before-go", &mut child);
    assert!(
        copies(&lab, &N, "c").is_empty(),
        "{:?}",
        copies(&lab, &N, "c")
    );
    kill9(agent_pid(&lab, "n2"));
    resume(&lab, "n1", "before-go");
    let during = watch_copies(&lab, &N, "c", Duration::from_secs(5));
    let t0 = Instant::now();
    lab.ok(&["lab", "restart", "n2"]);
    let o = child.wait_with_output().unwrap();
    let r = outcome_of(&o);
    assert!(r["outcome"] == "moved" || r["outcome"] == "pending", "{r}");
    let (node, _) = wait_resolved(&lab, &N, "c", 90);
    report(
        "kill -9 target after its vote",
        "moved",
        during,
        1,
        t0.elapsed(),
    );
    assert_eq!(node, "n2");
    assert_one_intact(&lab, &N, "c", "n2");
    assert_clean(&lab, "n1", "c");
    restart_with_fault(&lab, "n1", "");
    move_again(&lab, &N, "c", "n2", "n1");
}

/// stop, kill, rm -f, restore, checkpoint, exec and a second migrate while
/// a migration runs: one clear line each and a non-zero exit, never a
/// false success; the migration then completes.
#[test]
fn operations_during_a_migration_are_refused_clearly() {
    let Some(lab) = lab_with_work("handoff_ops", "ops", &[], COUNTER_TEE) else {
        return;
    };
    restart_with_fault(&lab, "n1", "pause-before-dump");
    let mut child = spawn_migrate(&lab, "c", "n2");
    wait_paused(&lab, "n1", "before-dump", &mut child);
    for args in [
        vec!["stop", "-t", "1", "c"],
        vec!["kill", "c"],
        vec!["rm", "-f", "c"],
        vec!["restore", "c"],
        vec!["checkpoint", "c"],
        vec!["exec", "c", "--", "true"],
        vec!["migrate", "c", "--to", "n2"],
    ] {
        let o = lab.herd(&args);
        let err = stderr_of(&o);
        eprintln!("[handoff] herd {}: {err}", args.join(" "));
        assert!(
            !o.status.success(),
            "herd {args:?} succeeded:\n{}",
            text(&o)
        );
        assert_eq!(err.lines().count(), 1, "not one line: {err}");
        assert!(
            err.contains("c is migrating to n2") && err.contains("retry when it ends"),
            "{args:?}: {err}"
        );
    }
    resume(&lab, "n1", "before-dump");
    let o = child.wait_with_output().unwrap();
    assert!(o.status.success(), "{}", text(&o));
    let r = outcome_of(&o);
    assert_eq!(r["outcome"], "moved", "{r}");
    let (node, _) = wait_resolved(&lab, &N, "c", 30);
    assert_eq!(node, "n2");
    assert_one_intact(&lab, &N, "c", "n2");
    assert_clean(&lab, "n1", "c");
}

/// Random moves of several stateful containers in parallel across three
/// nodes while a link flaps. `HERD_HANDOFF_STRESS_HOPS` hops per container
/// (default 8), `HERD_HANDOFF_STRESS_CONTAINERS` containers (default 3).
#[test]
fn random_migrations_with_link_flaps_lose_and_duplicate_nothing() {
    let hops: usize = std::env::var("HERD_HANDOFF_STRESS_HOPS")
        .ok()
        .and_then(|v| v.parse().ok())
        .unwrap_or(8);
    let n: usize = std::env::var("HERD_HANDOFF_STRESS_CONTAINERS")
        .ok()
        .and_then(|v| v.parse().ok())
        .unwrap_or(3);
    let Some(lab) = Lab::up("handoff_stress", "stress", 3) else {
        return;
    };
    let nodes = ["n1", "n2", "n3"];
    import_busybox_with_work(&lab);
    let names: Vec<String> = (0..n).map(|i| format!("s{i}")).collect();
    for (i, c) in names.iter().enumerate() {
        run_sh(&lab, c, nodes[i % 3], &[], COUNTER_TEE);
    }
    for c in &names {
        wait_lines(&lab, c, 3, 60);
    }
    let stop = std::sync::Arc::new(std::sync::atomic::AtomicBool::new(false));
    let flaps = std::sync::Arc::new(std::sync::atomic::AtomicUsize::new(0));
    let flapper = {
        let (stop, flaps) = (stop.clone(), flaps.clone());
        let link = format!("{}-n3", lab.name);
        std::thread::spawn(move || {
            let mut k = 0u64;
            while !stop.load(std::sync::atomic::Ordering::Relaxed) {
                std::thread::sleep(Duration::from_secs(7 + k % 5));
                k += 1;
                set_link(&link, false);
                std::thread::sleep(Duration::from_millis(1500));
                set_link(&link, true);
                flaps.fetch_add(1, std::sync::atomic::Ordering::Relaxed);
            }
        })
    };
    let t0 = Instant::now();
    let mut runs: Vec<Child> = names
        .iter()
        .enumerate()
        .map(|(i, c)| {
            let count = hops.to_string();
            let seed = (i + 1).to_string();
            lab.cmd()
                .args([
                    "pong", c, "--hosts", "n1,n2,n3", "--count", &count, "--random", "--seed",
                    &seed, "--dwell", "0.2", "--json",
                ])
                .stdout(Stdio::piped())
                .stderr(Stdio::piped())
                .spawn()
                .expect("spawn pong")
        })
        .collect();
    // Never two copies of any container while they move.
    let mut most = 0;
    while runs
        .iter_mut()
        .any(|c| c.try_wait().ok().flatten().is_none())
    {
        for c in &names {
            let on = copies(&lab, &nodes, c);
            assert!(on.len() <= 1, "{c} runs on {on:?} at once");
            most = most.max(on.len());
        }
        std::thread::sleep(Duration::from_millis(300));
    }
    stop.store(true, std::sync::atomic::Ordering::Relaxed);
    flapper.join().expect("flapper");
    let (mut moved, mut failed) = (0u64, 0u64);
    for (c, child) in names.iter().zip(runs) {
        let o = child.wait_with_output().unwrap();
        let v: Value = serde_json::from_slice(&o.stdout)
            .unwrap_or_else(|e| panic!("pong {c} --json ({e}):\n{}", text(&o)));
        moved += v["hops"].as_u64().unwrap_or(0);
        failed += v["failures"].as_u64().unwrap_or(0);
    }
    let mut lost = 0;
    for c in &names {
        let (node, _) = wait_resolved(&lab, &nodes, c, 120);
        assert_one_intact(&lab, &nodes, c, &node);
        if copies(&lab, &nodes, c).len() != 1 {
            lost += 1;
        }
    }
    eprintln!(
        "[handoff] stress: {n} containers x {hops} hops in {:.0} s: {moved} moved, {failed} \
         failed (rolled back or untouched), {} link flaps, {lost} lost, 0 duplicated \
         (at most {most} copy of each at any sample)",
        t0.elapsed().as_secs_f64(),
        flaps.load(std::sync::atomic::Ordering::Relaxed)
    );
    assert_eq!(lost, 0);
    assert!(moved > 0, "no move succeeded");
}

/// The `criu` processes that `pid` started (its `criu swrk` children).
fn criu_children(pid: i32) -> Vec<i32> {
    let mut v = Vec::new();
    for e in std::fs::read_dir("/proc").into_iter().flatten().flatten() {
        let Ok(p) = e.file_name().to_string_lossy().parse::<i32>() else {
            continue;
        };
        let stat = std::fs::read_to_string(format!("/proc/{p}/stat")).unwrap_or_default();
        let (Some(a), Some(b)) = (stat.find('('), stat.rfind(')')) else {
            continue;
        };
        let ppid = stat[b + 1..]
            .split_whitespace()
            .nth(1)
            .and_then(|s| s.parse::<i32>().ok());
        // scripts/setup's criu execs the dynamic loader of its private
        // prefix, so the command name is the loader's: match the cmdline.
        let cmdline = std::fs::read(format!("/proc/{p}/cmdline")).unwrap_or_default();
        let cmdline = String::from_utf8_lossy(&cmdline);
        // A restoring CRIU renames itself (`criu: restore --rpc`).
        let is_criu = &stat[a + 1..b] == "criu"
            || cmdline.contains("criu\0swrk")
            || cmdline.contains("criu: ");
        if is_criu && ppid == Some(pid) {
            v.push(p);
        }
    }
    v
}

/// Wait (polling every 2 ms, at most `secs`) for a CRIU child of `pid`
/// and kill it: the real CRIU, killed in the middle of its work.
fn kill_criu_of(pid: i32, secs: u64) -> bool {
    let t0 = Instant::now();
    while t0.elapsed() < Duration::from_secs(secs) {
        let found = criu_children(pid);
        if !found.is_empty() {
            for p in found {
                let _ = nix::sys::signal::kill(
                    nix::unistd::Pid::from_raw(p),
                    nix::sys::signal::Signal::SIGKILL,
                );
            }
            return true;
        }
        std::thread::sleep(Duration::from_millis(2));
    }
    false
}

/// The container's init (pid 1 of its pid namespace) on `node`.
fn init_pid(lab: &Lab, node: &str, name: &str) -> Option<i32> {
    container_procs(lab, node, name).into_iter().find(|p| {
        std::fs::read_to_string(format!("/proc/{p}/status"))
            .unwrap_or_default()
            .lines()
            .find(|l| l.starts_with("NSpid:"))
            .and_then(|l| l.split_whitespace().last())
            == Some("1")
    })
}

/// A link cut while the source is paused at `point`, healed after 40 s:
/// the container must end on `expect`, one copy, intact.
fn cut_case(test: &str, lab_name: &str, point: &str, expect: &str, label: &str) {
    let Some(lab) = lab_with_work(test, lab_name, &[], COUNTER_TEE) else {
        return;
    };
    restart_with_fault(&lab, "n1", &format!("pause-{point}"));
    let mut child = spawn_migrate(&lab, "c", "n2");
    wait_paused(&lab, "n1", point, &mut child);
    let cut = LinkDown::cut(&lab, "n2");
    resume(&lab, "n1", point);
    let during = watch_copies(&lab, &N, "c", HEAL_AFTER);
    drop(cut);
    let healed = Instant::now();
    let o = child.wait_with_output().unwrap();
    let r = outcome_of(&o);
    eprintln!("[handoff] {point}: {} {r}", stderr_of(&o));
    let (node, _) = wait_resolved(&lab, &N, "c", 90);
    let outcome = if node == "n1" { "rolled_back" } else { "moved" };
    report(label, outcome, during, 1, healed.elapsed());
    assert_eq!(node, expect, "{r}");
    if node == "n1" {
        assert!(!o.status.success(), "{}", text(&o));
        assert_eq!(r["outcome"], "rolled_back", "{r}");
        assert!(r["phase"].is_string() && r["reason"].is_string(), "{r}");
        assert_eq!(r["runs_on"], "n1", "{r}");
    }
    let other = if node == "n1" { "n2" } else { "n1" };
    assert_one_intact(&lab, &N, "c", &node);
    assert_clean(&lab, other, "c");
    restart_with_fault(&lab, "n1", "");
    move_again(&lab, &N, "c", &node, other);
}

/// The link to the target cut after Prepare, just before the dump: the
/// dump happens, the transfer cannot: rolled back on the source.
#[test]
fn link_cut_before_the_dump_rolls_back_with_one_copy() {
    cut_case(
        "handoff_cut_dump",
        "cutd",
        "before-dump",
        "n1",
        "link cut before the dump",
    );
}

/// Cut in the middle of the transfer (checkpoint files half sent).
#[test]
fn link_cut_mid_transfer_rolls_back_with_one_copy() {
    cut_case(
        "handoff_cut_xfer",
        "cutx",
        "mid-transfer",
        "n1",
        "link cut mid-transfer",
    );
}

/// kill -9 of `victim`'s agent while `paused_on` waits at `point`, then
/// `herd lab restart <victim>`: resolved with no user action, on `expect`.
fn kill_case(
    test: &str,
    lab_name: &str,
    paused_on: &str,
    point: &str,
    victim: &str,
    expect: &str,
    label: &str,
) {
    let Some(lab) = lab_with_work(test, lab_name, &[], COUNTER_TEE) else {
        return;
    };
    restart_with_fault(&lab, paused_on, &format!("pause-{point}"));
    let mut child = spawn_migrate(&lab, "c", "n2");
    wait_paused(&lab, paused_on, point, &mut child);
    kill9(agent_pid(&lab, victim));
    if victim != paused_on {
        resume(&lab, paused_on, point);
    } else {
        let _ = std::fs::remove_file(paused(&lab, paused_on, point));
    }
    let during = watch_copies(&lab, &N, "c", Duration::from_secs(5));
    let t0 = Instant::now();
    restart_with_fault(&lab, victim, "");
    let o = child.wait_with_output().unwrap();
    eprintln!("[handoff] kill {victim} at {point}: {}", stderr_of(&o));
    let (node, _) = wait_resolved(&lab, &N, "c", 120);
    let outcome = if node == "n1" { "rolled_back" } else { "moved" };
    report(label, outcome, during, 1, t0.elapsed());
    assert_eq!(node, expect);
    let other = if node == "n1" { "n2" } else { "n1" };
    assert_one_intact(&lab, &N, "c", &node);
    assert_clean(&lab, other, "c");
    // The container is no longer migrating: `herd migrate` takes it again.
    restart_with_fault(&lab, paused_on, "");
    move_again(&lab, &N, "c", &node, other);
}

/// The source killed after it journalled Committed and sent Commit, before
/// any vote: the restarted source decides Abort, the target drops its
/// copy, the source's own copy runs again.
#[test]
fn source_agent_killed_after_commit_rolls_back_after_restart() {
    kill_case(
        "handoff_kill_src_commit",
        "killsc",
        "n1",
        "after-commit",
        "n1",
        "n1",
        "kill -9 source after Commit",
    );
}

/// The source killed after it journalled Go (just before sending it): the
/// decision survives the crash; the restarted source sends Go again and
/// the target's held copy runs.
#[test]
fn source_agent_killed_after_deciding_go_moves_after_restart() {
    kill_case(
        "handoff_kill_src_go",
        "killsg",
        "n1",
        "before-go",
        "n1",
        "n2",
        "kill -9 source after deciding Go",
    );
}

/// The target killed mid-transfer: its staging goes, the source's copy
/// comes back.
#[test]
fn target_agent_killed_mid_transfer_rolls_back() {
    kill_case(
        "handoff_kill_tgt_xfer",
        "killtx",
        "n1",
        "mid-transfer",
        "n2",
        "n1",
        "kill -9 target mid-transfer",
    );
}

/// The target killed after its held restore, before it voted: the
/// restarted target discards the unvoted copy; the source rolls back.
#[test]
fn target_agent_killed_before_its_vote_rolls_back_after_restart() {
    kill_case(
        "handoff_kill_tgt_vote",
        "killtv",
        "n2",
        "before-ready",
        "n2",
        "n1",
        "kill -9 target before its vote",
    );
}

/// CRIU killed on the source during the dump: the container is not moved
/// and runs on the source (thawed or restored), never on both.
#[test]
fn criu_killed_during_the_dump_leaves_the_container_running_on_the_source() {
    let Some(lab) = lab_with_work("handoff_criu_dump", "criud", &[], COUNTER_TEE) else {
        return;
    };
    restart_with_fault(&lab, "n1", "pause-before-dump");
    let mut child = spawn_migrate(&lab, "c", "n2");
    wait_paused(&lab, "n1", "before-dump", &mut child);
    let agent = agent_pid(&lab, "n1");
    resume(&lab, "n1", "before-dump");
    let killed = kill_criu_of(agent, 30);
    let o = child.wait_with_output().unwrap();
    let r = outcome_of(&o);
    eprintln!(
        "[handoff] criu killed in dump ({killed}): {} {r}",
        stderr_of(&o)
    );
    assert!(
        killed,
        "no criu process of the source's agent seen during the dump"
    );
    assert!(!o.status.success(), "{}", text(&o));
    assert!(
        r["outcome"] == "untouched" || r["outcome"] == "rolled_back",
        "{r}"
    );
    assert_eq!(r["runs_on"], "n1", "{r}");
    let (node, t) = wait_resolved(&lab, &N, "c", 60);
    report(
        "CRIU killed during the dump",
        r["outcome"].as_str().unwrap_or("?"),
        1,
        1,
        t,
    );
    assert_eq!(node, "n1");
    assert_one_intact(&lab, &N, "c", "n1");
    assert_clean(&lab, "n2", "c");
    restart_with_fault(&lab, "n1", "");
    move_again(&lab, &N, "c", "n1", "n2");
}

/// CRIU killed on the target during its held restore (its tasks made, not
/// yet resumed: the agent pauses in CRIU's `post-restore` notification):
/// the target's half restored copy is removed, the source's copy runs again.
#[test]
fn criu_killed_during_the_targets_restore_rolls_back() {
    let Some(lab) = lab_with_work("handoff_criu_rst", "criur", &[], COUNTER_TEE) else {
        return;
    };
    restart_with_fault(&lab, "n2", "pause-in-restore");
    let mut child = spawn_migrate(&lab, "c", "n2");
    wait_paused(&lab, "n2", "in-restore", &mut child);
    let agent = agent_pid(&lab, "n2");
    let killed = kill_criu_of(agent, 10);
    resume(&lab, "n2", "in-restore");
    let o = child.wait_with_output().unwrap();
    let r = outcome_of(&o);
    eprintln!(
        "[handoff] criu killed in restore ({killed}): {} {r}",
        stderr_of(&o)
    );
    assert!(
        killed,
        "no criu process of the target's agent while it was paused in the restore"
    );
    let (node, t) = wait_resolved(&lab, &N, "c", 90);
    report(
        "CRIU killed during the target's restore",
        r["outcome"].as_str().unwrap_or("?"),
        1,
        1,
        t,
    );
    assert_eq!(node, "n1", "{r}");
    assert_eq!(r["outcome"], "rolled_back", "{r}");
    assert_one_intact(&lab, &N, "c", "n1");
    assert_clean(&lab, "n2", "c");
    restart_with_fault(&lab, "n2", "");
    move_again(&lab, &N, "c", "n1", "n2");
}

/// A source speaking the previous migration protocol: the target refuses
/// at Prepare, naming both versions, before anything freezes; the container
/// never stopped (same process, counter without a gap) and n2 has nothing.
#[test]
fn a_peer_of_another_protocol_version_is_refused_before_the_freeze() {
    let Some(lab) = lab_with_work("handoff_version", "vers", &[], COUNTER_TEE) else {
        return;
    };
    let pid = init_pid(&lab, "n1", "c").expect("the container's init on n1");
    restart_with_fault(&lab, "n1", "old-protocol");
    let o = lab.herd(&["migrate", "c", "--to", "n2", "--json"]);
    assert!(!o.status.success(), "migrate succeeded:\n{}", text(&o));
    let err = stderr_of(&o);
    let v = herd_wire::migrate::MIGRATE_VERSION;
    assert!(
        err.contains(&format!("version {}", v - 1)) && err.contains(&format!("version {v}")),
        "the refusal names both versions: {err}"
    );
    let r = outcome_of(&o);
    assert_eq!(r["outcome"], "untouched", "{r}");
    assert_eq!(
        init_pid(&lab, "n1", "c"),
        Some(pid),
        "the same process runs"
    );
    assert_one_intact(&lab, &N, "c", "n1");
    assert_clean(&lab, "n2", "c");
    restart_with_fault(&lab, "n1", "");
    move_again(&lab, &N, "c", "n1", "n2");
}

/// The container's init killed while CRIU dumps it: the container is dead
/// (its user's doing), so no copy may run anywhere; nothing is left on the
/// target and the source lists it as not running.
#[test]
fn init_killed_during_the_dump_runs_nowhere_and_leaves_nothing() {
    let Some(lab) = lab_with_work("handoff_init_dump", "initd", &[], COUNTER_TEE) else {
        return;
    };
    restart_with_fault(&lab, "n1", "pause-before-dump");
    let mut child = spawn_migrate(&lab, "c", "n2");
    wait_paused(&lab, "n1", "before-dump", &mut child);
    let agent = agent_pid(&lab, "n1");
    let init = init_pid(&lab, "n1", "c").expect("the container's init on n1");
    resume(&lab, "n1", "before-dump");
    let t0 = Instant::now();
    let mut seen = false;
    while t0.elapsed() < Duration::from_secs(30) {
        if !criu_children(agent).is_empty() {
            seen = true;
            break;
        }
        std::thread::sleep(Duration::from_millis(2));
    }
    let _ = nix::sys::signal::kill(
        nix::unistd::Pid::from_raw(init),
        nix::sys::signal::Signal::SIGKILL,
    );
    let o = child.wait_with_output().unwrap();
    let r = outcome_of(&o);
    eprintln!(
        "[handoff] init killed in dump (criu seen {seen}): {} {r}",
        stderr_of(&o)
    );
    assert!(
        seen,
        "no criu process of the source's agent seen during the dump"
    );
    if r["outcome"] == "moved" {
        // The dump finished before the kill reached init: a normal move.
        wait_resolved(&lab, &N, "c", 60);
        assert_one_intact(&lab, &N, "c", "n2");
        assert_clean(&lab, "n1", "c");
        return;
    }
    assert!(!o.status.success(), "{}", text(&o));
    let stable = wait_for(60, || {
        let e = entries(&lab, "c");
        (e.len() == 1 && e[0]["status"] != "migrating").then_some(e)
    })
    .expect("c listed once and not migrating");
    assert_eq!(stable[0]["node"], "n1", "{stable:?}");
    assert_ne!(stable[0]["status"], "running", "{stable:?}");
    assert!(
        copies(&lab, &N, "c").is_empty(),
        "{:?}",
        copies(&lab, &N, "c")
    );
    assert_clean(&lab, "n2", "c");
    report(
        "init killed during the dump",
        "untouched (dead)",
        0,
        0,
        t0.elapsed(),
    );
}
