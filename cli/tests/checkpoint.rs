//! Checkpoint and restore, end to end: real CRIU dumps and restores of real
//! containers in a real lab, driven through the `herd` binary. The workload is
//! `herd-work counter`, whose count lives only in process memory (a restore
//! must continue it, never restart it) and which checks M MiB of patterned
//! memory every interval (a damaged restore exits 3 with `pattern=CORRUPT`).

mod common;

use std::collections::BTreeSet;
use std::path::{Path, PathBuf};
use std::time::Duration;

use common::{
    assert_holds_deleted_fd, counter_counts, counts, import_busybox_with_work, logs, pid_of,
    process_alive, run_counter, stderr_of, text, wait_for, wait_lines, Lab, GHOST_HOLDER,
};
use serde_json::Value;

// ---------------------------------------------------------------- helpers

fn sleep_ms(ms: u64) {
    std::thread::sleep(Duration::from_millis(ms));
}

/// Wait until the log has `more` complete lines beyond `have`.
fn wait_more(lab: &Lab, name: &str, have: usize, more: usize) -> Vec<u64> {
    wait_lines(lab, name, have + more, 15)
}

/// The log of a container that no longer writes to it, once it stops changing
/// (the log shim may still be copying the last lines out of the pipe).
fn settled_counts(lab: &Lab, name: &str) -> Vec<u64> {
    let mut prev = logs(lab, name);
    loop {
        sleep_ms(300);
        let now = logs(lab, name);
        if now == prev {
            return counter_counts(&now);
        }
        prev = now;
    }
}

/// Counts 1, 2, 3, ... with no gap, no duplicate and no reset.
fn assert_consecutive_from(counts: &[u64], first: u64, what: &str) {
    assert!(!counts.is_empty(), "{what}: empty log");
    assert_eq!(counts[0], first, "{what}: first count: {counts:?}");
    if let Some(w) = counts.windows(2).find(|w| w[1] != w[0] + 1) {
        panic!(
            "{what}: counts not strictly +1 ({} then {}): {counts:?}",
            w[0], w[1]
        );
    }
}

fn status(lab: &Lab, name: &str) -> Value {
    lab.container(name)
        .unwrap_or_else(|| panic!("{name} not in ps: {}", lab.ps_json()))
}

/// The pid of `name`, which must be running.
fn running_pid(lab: &Lab, name: &str) -> i32 {
    let c = status(lab, name);
    assert_eq!(c["status"], "running", "{c}");
    pid_of(lab, name)
}

fn checkpoint_json(lab: &Lab, args: &[&str]) -> Value {
    let mut a = vec!["checkpoint", "--json"];
    a.extend_from_slice(args);
    let out = lab.ok(&a);
    serde_json::from_str(&out).unwrap_or_else(|e| panic!("checkpoint --json: {e}: {out}"))
}

fn restore_json(lab: &Lab, args: &[&str]) -> Value {
    let mut a = vec!["restore", "--json"];
    a.extend_from_slice(args);
    let out = lab.ok(&a);
    serde_json::from_str(&out).unwrap_or_else(|e| panic!("restore --json: {e}: {out}"))
}

fn f64_of(v: &Value, k: &str) -> f64 {
    v[k].as_f64()
        .unwrap_or_else(|| panic!("{k} is not a number: {v}"))
}

fn u64_of(v: &Value, k: &str) -> u64 {
    v[k].as_u64()
        .unwrap_or_else(|| panic!("{k} is not an integer: {v}"))
}

/// Checkpoint report sanity: numbers present and coherent, and images of
/// about the container's memory (`mib` of pattern plus a little), not of
/// anything else CRIU might have swept in.
fn check_checkpoint_report(r: &Value, name: &str, node: &str, leave_running: bool, mib: u64) {
    assert_eq!(r["name"], name, "{r}");
    assert_eq!(r["node"], node, "{r}");
    assert_eq!(r["leave_running"], leave_running, "{r}");
    let total = f64_of(r, "total_ms");
    let frozen = f64_of(r, "frozen_ms");
    for k in ["freezing_ms", "memdump_ms", "memwrite_ms"] {
        assert!(f64_of(r, k) >= 0.0, "{k}: {r}");
    }
    assert!(frozen > 0.0, "frozen_ms: {r}");
    assert!(total >= frozen, "total_ms < frozen_ms: {r}");
    assert!(u64_of(r, "pages_written") > 0, "{r}");
    assert!(u64_of(r, "image_bytes") > 0, "{r}");
    assert!(
        u64_of(r, "image_bytes") <= (mib + 24) << 20,
        "images far larger than a {mib} MiB counter: {r}"
    );
}

fn report_restore(what: &str, r: &Value) {
    eprintln!(
        "[figures] {what}: restore total_ms={:.1} criu_restore_ms={:.1} pages_restored={}",
        f64_of(r, "total_ms"),
        f64_of(r, "criu_restore_ms"),
        u64_of(r, "pages_restored")
    );
}

fn report_checkpoint(what: &str, r: &Value) {
    eprintln!(
        "[figures] {what}: checkpoint total_ms={:.1} frozen_ms={:.1} freezing_ms={:.1} \
         memdump_ms={:.1} memwrite_ms={:.1} pages_written={} image_bytes={}",
        f64_of(r, "total_ms"),
        f64_of(r, "frozen_ms"),
        f64_of(r, "freezing_ms"),
        f64_of(r, "memdump_ms"),
        f64_of(r, "memwrite_ms"),
        u64_of(r, "pages_written"),
        u64_of(r, "image_bytes")
    );
}

/// Restore by name and check the report: Running, a live new pid.
fn restore_checked(lab: &Lab, name: &str, old_pid: i32) -> (Value, i32) {
    let r = restore_json(lab, &[name]);
    let c = &r["container"];
    assert_eq!(c["name"], name, "{r}");
    assert_eq!(c["status"], "running", "{r}");
    let pid = c["pid"].as_i64().unwrap_or_else(|| panic!("no pid: {r}")) as i32;
    assert_ne!(pid, old_pid, "restore reports the old pid: {r}");
    assert!(process_alive(pid), "restored pid {pid} is not alive");
    assert!(f64_of(&r, "total_ms") > 0.0, "{r}");
    assert!(u64_of(&r, "pages_restored") > 0, "{r}");
    assert_eq!(
        running_pid(lab, name),
        pid,
        "ps disagrees with the restore report"
    );
    (r, pid)
}

/// Checkpoint without -R and check the container is Checkpointed and its
/// process is gone.
fn checkpoint_stopping(lab: &Lab, name: &str, pid: i32, mib: u64) -> Value {
    let r = checkpoint_json(lab, &[name]);
    check_checkpoint_report(&r, name, "n1", false, mib);
    let c = status(lab, name);
    assert_eq!(c["status"], "checkpointed", "{c}");
    assert!(c["pid"].is_null(), "{c}");
    assert!(
        wait_for(5, || (!process_alive(pid)).then_some(())).is_some(),
        "pid {pid} still alive after checkpoint"
    );
    r
}

/// A container's process sits in its own cgroup, `/herd/<lab>/<node>/<name>`,
/// in every hierarchy (v1 controllers, the named `systemd` one and the
/// unified one of a hybrid host), and nothing sits below that cgroup.
///
/// Why: CRIU dumps, and on restore re-creates under the new path, every
/// cgroup below the one the task is in. A task left at a hierarchy's root
/// makes each dump sweep in the host's whole tree and each restore under
/// another path (an import with a new name or on another node) copy it.
fn assert_own_cgroups(lab: &Lab, node: &str, name: &str, pid: i32) {
    let want = format!("/herd/{}/{node}/{name}", lab.name);
    let cg = std::fs::read_to_string(format!("/proc/{pid}/cgroup")).unwrap();
    let wrong: Vec<&str> = cg.lines().filter(|l| !l.ends_with(&want)).collect();
    assert!(
        wrong.is_empty(),
        "{name} (pid {pid}) is not in {want} in every hierarchy: {wrong:?}"
    );
    assert_no_nested_cgroups(lab);
}

/// No directory below `/herd/<lab>/<node>/<container>` in any hierarchy.
fn assert_no_nested_cgroups(lab: &Lab) {
    let subdirs = |p: &Path| -> Vec<PathBuf> {
        std::fs::read_dir(p)
            .map(|rd| {
                rd.flatten()
                    .filter(|e| e.file_type().map(|t| t.is_dir()).unwrap_or(false))
                    .map(|e| e.path())
                    .collect()
            })
            .unwrap_or_default()
    };
    let mut nested = Vec::new();
    for h in subdirs(Path::new("/sys/fs/cgroup")) {
        for node in subdirs(&h.join("herd").join(&lab.name)) {
            for c in subdirs(&node) {
                nested.extend(subdirs(&c));
            }
        }
    }
    assert!(
        nested.is_empty(),
        "cgroups below a container's own cgroup (copied trees?): {:?}",
        &nested[..nested.len().min(10)]
    );
}

fn netns_of(lab: &str) -> BTreeSet<String> {
    let prefix = format!("{lab}-");
    std::fs::read_dir("/run/netns")
        .map(|rd| {
            rd.flatten()
                .map(|e| e.file_name().to_string_lossy().into_owned())
                .filter(|n| n.starts_with(&prefix))
                .collect()
        })
        .unwrap_or_default()
}

fn dir_names(p: &Path) -> BTreeSet<String> {
    std::fs::read_dir(p)
        .unwrap_or_else(|e| panic!("read {}: {e}", p.display()))
        .flatten()
        .map(|e| e.file_name().to_string_lossy().into_owned())
        .collect()
}

fn ps_names(lab: &Lab) -> BTreeSet<String> {
    lab.ps_json()
        .as_array()
        .expect("array")
        .iter()
        .map(|c| c["name"].as_str().unwrap().to_string())
        .collect()
}

// ------------------------------------------------------------------ tests

#[test]
fn counter_goes_on_after_restore() {
    let Some(lab) = Lab::up("counter_goes_on_after_restore", "hck1", 1) else {
        return;
    };
    import_busybox_with_work(&lab);
    run_counter(&lab, "c", None, 8);
    let pid = running_pid(&lab, "c");
    let before = wait_for(15, || {
        let c = counts(&lab, "c");
        (c.last().copied().unwrap_or(0) >= 5).then_some(c)
    })
    .expect("count reaches 5");
    assert_consecutive_from(&before, 1, "before checkpoint");

    let cp = checkpoint_stopping(&lab, "c", pid, 8);
    report_checkpoint("8 MiB", &cp);
    let at_checkpoint = settled_counts(&lab, "c");
    let last = *at_checkpoint.last().unwrap();
    // Nothing runs while checkpointed: the log does not move.
    sleep_ms(1000);
    assert_eq!(
        counts(&lab, "c"),
        at_checkpoint,
        "log grew while checkpointed"
    );
    assert_eq!(status(&lab, "c")["status"], "checkpointed");

    let (r, new_pid) = restore_checked(&lab, "c", pid);
    report_restore("8 MiB", &r);
    assert_own_cgroups(&lab, "n1", "c", new_pid);
    let after = wait_more(&lab, "c", at_checkpoint.len(), 10);
    // One log across checkpoint/restore: 1, 2, ..., last, last+1, ...
    assert_consecutive_from(&after, 1, "whole log across restore");
    assert!(after.len() > at_checkpoint.len());
    assert_eq!(after[at_checkpoint.len()], last + 1);
    // And it keeps growing.
    let later = wait_more(&lab, "c", after.len(), 5);
    assert_consecutive_from(&later, 1, "whole log later");
    let c = status(&lab, "c");
    assert_eq!(c["status"], "running", "{c}");
    assert_eq!(c["pid"], new_pid, "{c}");

    // The restored container is managed like any other: stop records its exit.
    lab.ok(&["stop", "-t", "5", "c"]);
    let c = status(&lab, "c");
    assert_eq!(c["status"], "stopped", "{c}");
    assert!(
        wait_for(5, || (!process_alive(new_pid)).then_some(())).is_some(),
        "restored pid {new_pid} survives stop"
    );
    lab.ok(&["rm", "c"]);
}

#[test]
fn file_written_before_checkpoint_is_there_after_restore() {
    let Some(lab) = Lab::up("file_written_before_checkpoint", "hck2", 1) else {
        return;
    };
    import_busybox_with_work(&lab);
    run_counter(&lab, "c", None, 0);
    let pid = running_pid(&lab, "c");
    wait_lines(&lab, "c", 2, 15);
    lab.ok(&["exec", "c", "--", "sh", "-c", "echo data > /root/f"]);
    checkpoint_stopping(&lab, "c", pid, 0);
    restore_checked(&lab, "c", pid);
    assert_eq!(lab.ok(&["exec", "c", "--", "cat", "/root/f"]), "data\n");
    // The restored container's filesystem is writable and still its own.
    lab.ok(&["exec", "c", "--", "sh", "-c", "echo more >> /root/f"]);
    assert_eq!(
        lab.ok(&["exec", "c", "--", "cat", "/root/f"]),
        "data\nmore\n"
    );
    // exec sees the restored process as pid 1 of the container.
    let cmdline = lab.ok(&["exec", "c", "--", "cat", "/proc/1/cmdline"]);
    assert!(cmdline.starts_with("herd-work\0counter"), "{cmdline:?}");
}

#[test]
fn memory_of_64_mib_is_intact_after_restore() {
    let Some(lab) = Lab::up("memory_64_mib_intact", "hck3", 1) else {
        return;
    };
    import_busybox_with_work(&lab);
    run_counter(&lab, "c", None, 64);
    let pid = running_pid(&lab, "c");
    wait_lines(&lab, "c", 3, 20);

    let cp = checkpoint_stopping(&lab, "c", pid, 64);
    report_checkpoint("64 MiB", &cp);
    assert!(
        u64_of(&cp, "image_bytes") >= 64 << 20,
        "image_bytes below 64 MiB: {cp}"
    );
    assert!(u64_of(&cp, "pages_written") > 16000, "pages_written: {cp}");
    let at = settled_counts(&lab, "c");

    let (r, new_pid) = restore_checked(&lab, "c", pid);
    report_restore("64 MiB", &r);
    assert!(u64_of(&r, "pages_restored") > 16000, "{r}");
    // counter_counts panics on any line but `pattern=ok` (CORRUPT included).
    let after = wait_more(&lab, "c", at.len(), 8);
    assert_consecutive_from(&after, 1, "64 MiB log");
    let c = status(&lab, "c");
    assert_eq!(c["status"], "running", "{c}");
    assert_eq!(c["pid"], new_pid, "{c}");
    assert!(c["exit_code"].is_null(), "{c}");
    assert!(process_alive(new_pid));
}

#[test]
fn leave_running_keeps_the_original_then_a_real_checkpoint_works() {
    let Some(lab) = Lab::up("leave_running", "hck4", 1) else {
        return;
    };
    import_busybox_with_work(&lab);
    run_counter(&lab, "c", None, 8);
    let pid = running_pid(&lab, "c");
    let before = wait_lines(&lab, "c", 3, 15);

    let cp = checkpoint_json(&lab, &["--leave-running", "c"]);
    check_checkpoint_report(&cp, "c", "n1", true, 8);
    report_checkpoint("8 MiB -R", &cp);
    let c = status(&lab, "c");
    assert_eq!(c["status"], "running", "{c}");
    assert_eq!(c["pid"], pid, "same process after -R: {c}");
    assert!(process_alive(pid));
    let after = wait_more(&lab, "c", before.len(), 5);
    assert_consecutive_from(&after, 1, "log across -R checkpoint");

    // -R twice in a row is fine too.
    let cp2 = checkpoint_json(&lab, &["-R", "c"]);
    check_checkpoint_report(&cp2, "c", "n1", true, 8);
    assert_eq!(running_pid(&lab, "c"), pid);

    // Then a normal checkpoint + restore of the same container.
    checkpoint_stopping(&lab, "c", pid, 8);
    let at = settled_counts(&lab, "c");
    restore_checked(&lab, "c", pid);
    let after = wait_more(&lab, "c", at.len(), 5);
    assert_consecutive_from(&after, 1, "log after -R then checkpoint/restore");
}

#[test]
fn export_then_import_on_another_node() {
    let Some(lab) = Lab::up("export_import", "hck5", 2) else {
        return;
    };
    import_busybox_with_work(&lab); // both nodes
    let tmp = tempfile::tempdir().unwrap();
    let tar = tmp.path().join("c.tar");
    let zst = tmp.path().join("c.tar.zst");
    let (tar_s, zst_s) = (tar.to_str().unwrap(), zst.to_str().unwrap());

    run_counter(&lab, "c", Some("n1"), 8);
    let pid = running_pid(&lab, "c");
    wait_lines(&lab, "c", 3, 15);
    lab.ok(&["exec", "c", "--", "sh", "-c", "echo data > /root/f"]);

    // A plain tar, taken while the container keeps running.
    let seen_before_r = *counts(&lab, "c").last().unwrap();
    let cp_r = checkpoint_json(&lab, &["-R", "--export", tar_s, "c"]);
    let seen_after_r = *counts(&lab, "c").last().unwrap();
    assert_eq!(cp_r["export"], tar_s, "{cp_r}");
    assert_eq!(
        u64_of(&cp_r, "export_bytes"),
        std::fs::metadata(&tar).unwrap().len(),
        "{cp_r}"
    );
    assert_eq!(running_pid(&lab, "c"), pid);
    wait_more(&lab, "c", seen_after_r as usize, 3);

    // A zstd tar, taken by a checkpoint that stops it.
    let cp = checkpoint_json(&lab, &["--export", zst_s, "c"]);
    check_checkpoint_report(&cp, "c", "n1", false, 8);
    assert_eq!(cp["export"], zst_s, "{cp}");
    let zst_len = std::fs::metadata(&zst).unwrap().len();
    assert_eq!(u64_of(&cp, "export_bytes"), zst_len, "{cp}");
    assert!(
        zst_len < u64_of(&cp_r, "export_bytes"),
        "zstd export ({zst_len}) not smaller than the plain tar: {cp_r}"
    );
    assert_eq!(status(&lab, "c")["status"], "checkpointed");
    let last = *settled_counts(&lab, "c").last().unwrap();
    // No partial file is left next to the exports.
    assert_eq!(
        dir_names(tmp.path()),
        ["c.tar", "c.tar.zst"]
            .iter()
            .map(|s| s.to_string())
            .collect(),
    );

    // A fresh state: the original is gone.
    lab.ok(&["rm", "c"]);
    assert!(lab.container("c").is_none());

    let r = restore_json(&lab, &["--import", zst_s, "--name", "c2", "--node", "n2"]);
    report_restore("8 MiB import .tar.zst on n2", &r);
    let c = &r["container"];
    assert_eq!(c["name"], "c2", "{r}");
    assert_eq!(c["node"], "n2", "{r}");
    assert_eq!(c["status"], "running", "{r}");
    let c2 = status(&lab, "c2");
    assert_eq!(c2["node"], "n2", "{c2}");
    assert_eq!(c2["pid"], c["pid"], "{c2}");
    assert_own_cgroups(&lab, "n2", "c2", c2["pid"].as_i64().unwrap() as i32);
    let got = wait_lines(&lab, "c2", 5, 15);
    assert_ne!(got[0], 1, "the counter restarted: {got:?}");
    assert_eq!(
        got[0],
        last + 1,
        "c2 does not continue from the checkpointed count {last}: {got:?}"
    );
    assert_consecutive_from(&got, last + 1, "c2");
    assert_eq!(lab.ok(&["exec", "c2", "--", "cat", "/root/f"]), "data\n");

    // The plain tar, made with -R, imports too and continues from its own count.
    let r3 = restore_json(&lab, &["--import", tar_s, "--name", "c3", "--node", "n2"]);
    report_restore("8 MiB import .tar on n2", &r3);
    assert_eq!(r3["container"]["node"], "n2", "{r3}");
    let got3 = wait_lines(&lab, "c3", 3, 15);
    assert!(
        got3[0] > seen_before_r && got3[0] <= seen_after_r + 1,
        "c3 starts at {} but the -R checkpoint was between counts {seen_before_r} and {seen_after_r}",
        got3[0]
    );
    assert_consecutive_from(&got3, got3[0], "c3");
    assert_eq!(lab.ok(&["exec", "c3", "--", "cat", "/root/f"]), "data\n");
    // The two imports are separate containers that both go on.
    let (n2, n3) = (got.len(), got3.len());
    wait_more(&lab, "c2", n2, 3);
    wait_more(&lab, "c3", n3, 3);
    assert_ne!(running_pid(&lab, "c2"), running_pid(&lab, "c3"));
    assert_own_cgroups(&lab, "n2", "c3", running_pid(&lab, "c3"));
    assert_own_cgroups(&lab, "n2", "c2", running_pid(&lab, "c2"));
}

#[test]
fn corrupt_or_cut_short_archives_are_refused_and_leave_nothing() {
    let Some(lab) = Lab::up("corrupt_archives", "hck6", 1) else {
        return;
    };
    import_busybox_with_work(&lab);
    let tmp = tempfile::tempdir().unwrap();
    let good_tar = tmp.path().join("good.tar");
    let good_zst = tmp.path().join("good.tar.zst");
    run_counter(&lab, "c", None, 8);
    wait_lines(&lab, "c", 2, 15);
    lab.ok(&["exec", "c", "--", "sh", "-c", "echo data > /root/f"]);
    lab.ok(&[
        "checkpoint",
        "-R",
        "--export",
        good_tar.to_str().unwrap(),
        "c",
    ]);
    lab.ok(&[
        "checkpoint",
        "-R",
        "--export",
        good_zst.to_str().unwrap(),
        "c",
    ]);

    let tar = std::fs::read(&good_tar).unwrap();
    let zst = std::fs::read(&good_zst).unwrap();
    // (what, file, content, whether the product gives one line today: see
    // `not_a_tar_error_is_one_clean_line` for the two that do not)
    let mut cases: Vec<(&str, PathBuf, Vec<u8>, bool)> = Vec::new();
    let p = |n: &str| tmp.path().join(n);
    cases.push((
        "tar cut to half",
        p("half.tar"),
        tar[..tar.len() / 2].to_vec(),
        true,
    ));
    cases.push((
        "tar.zst cut to half",
        p("half.tar.zst"),
        zst[..zst.len() / 2].to_vec(),
        true,
    ));
    // Flip bytes in the middle of the plain tar: inside CRIU's page images,
    // so only the manifest's checksums can catch it.
    cases.push((
        "tar with flipped bytes",
        p("flip.tar"),
        flip_middle(&tar),
        true,
    ));
    cases.push((
        "tar.zst with flipped bytes",
        p("flip.tar.zst"),
        flip_middle(&zst),
        true,
    ));
    cases.push(("empty file", p("empty.tar"), Vec::new(), true));
    cases.push(("text file", p("text.tar"), not_a_tar_text(), false));
    cases.push((
        "an ELF binary",
        p("elf.tar"),
        std::fs::read(common::herd_work_bin()).unwrap(),
        false,
    ));

    let state = lab.dir().join("n1/state");
    let names0 = ps_names(&lab);
    let dirs0 = dir_names(&state.join("containers"));
    let runtime0 = dir_names(&state.join("runtime"));
    let netns0 = netns_of(&lab.name);
    for (what, path, data, one_line) in &cases {
        std::fs::write(path, data).unwrap();
        let path_s = path.to_str().unwrap();
        let o = lab.herd(&["restore", "--import", path_s, "--name", "z"]);
        let err = stderr_of(&o);
        assert!(
            !o.status.success(),
            "{what}: import succeeded:\n{}",
            text(&o)
        );
        assert_eq!(o.status.code(), Some(125), "{what}:\n{}", text(&o));
        if *one_line {
            assert_eq!(
                err.trim().lines().count(),
                1,
                "{what}: not one line:\n{err}"
            );
        }
        let first = err.lines().next().unwrap_or("");
        assert!(
            first.contains(&format!("bad archive {path_s}")),
            "{what}: stderr does not name the archive:\n{err}"
        );
        eprintln!("[{what}] {}", err.trim());
        assert_eq!(ps_names(&lab), names0, "{what}: ps changed");
        assert_eq!(
            dir_names(&state.join("containers")),
            dirs0,
            "{what}: container dirs changed"
        );
        assert_eq!(
            dir_names(&state.join("runtime")),
            runtime0,
            "{what}: runtime dirs changed"
        );
        let staging: Vec<_> = dir_names(&state)
            .into_iter()
            .filter(|n| n.starts_with("import-"))
            .collect();
        assert!(staging.is_empty(), "{what}: staging left: {staging:?}");
        assert_eq!(netns_of(&lab.name), netns0, "{what}: netns changed");
    }
    // The same checks are not vacuous: the good archive does import.
    lab.ok(&[
        "restore",
        "--import",
        good_tar.to_str().unwrap(),
        "--name",
        "z",
    ]);
    assert_eq!(lab.ok(&["exec", "z", "--", "cat", "/root/f"]), "data\n");
    assert!(dir_names(&state.join("containers")).contains("z"));
    assert_eq!(netns_of(&lab.name).len(), netns0.len() + 1);
    assert!(
        !dir_names(&state).iter().any(|n| n.starts_with("import-")),
        "staging left after a good import"
    );
    // A good archive under a name that is taken: refused, nothing made.
    let (dirs1, netns1) = (dir_names(&state.join("containers")), netns_of(&lab.name));
    let o = lab.herd(&[
        "restore",
        "--import",
        good_tar.to_str().unwrap(),
        "--name",
        "c",
    ]);
    assert_eq!(o.status.code(), Some(125), "{}", text(&o));
    assert!(
        stderr_of(&o).contains("container c already exists"),
        "{}",
        text(&o)
    );
    assert_eq!(dir_names(&state.join("containers")), dirs1);
    assert_eq!(netns_of(&lab.name), netns1);
    assert!(!dir_names(&state).iter().any(|n| n.starts_with("import-")));
    assert_eq!(status(&lab, "c")["status"], "running");
}

fn flip_middle(data: &[u8]) -> Vec<u8> {
    let mut v = data.to_vec();
    let mid = v.len() / 2;
    for b in &mut v[mid..mid + 16] {
        *b ^= 0xff;
    }
    v
}

fn not_a_tar_text() -> Vec<u8> {
    b"this is not a tar archive\n".repeat(40)
}

#[test]
fn not_a_tar_error_is_one_clean_line() {
    let Some(lab) = Lab::up("not_a_tar_error", "hck6b", 1) else {
        return;
    };
    let tmp = tempfile::tempdir().unwrap();
    let cases = [
        ("text file", tmp.path().join("text.tar"), not_a_tar_text()),
        (
            "an ELF binary",
            tmp.path().join("elf.tar"),
            std::fs::read(common::herd_work_bin()).unwrap(),
        ),
    ];
    for (what, path, data) in &cases {
        std::fs::write(path, data).unwrap();
        let path_s = path.to_str().unwrap();
        let o = lab.herd(&["restore", "--import", path_s]);
        let err = stderr_of(&o);
        assert_eq!(o.status.code(), Some(125), "{what}:\n{}", text(&o));
        assert!(
            err.contains(&format!("bad archive {path_s}")),
            "{what}: {err}"
        );
        assert_eq!(
            err.trim().lines().count(),
            1,
            "{what}: not one line:\n{err}"
        );
        assert!(
            !err.contains("this is not a tar")
                && !err
                    .trim()
                    .chars()
                    .any(|c| c.is_control() || c == '\u{fffd}'),
            "{what}: the file's raw content is in the message:\n{err:?}"
        );
    }
}

/// A container whose init holds an unlinked 2 MiB file open. CRIU copies
/// such "ghost" files into the images only up to its ghost limit (1 MiB by
/// default), so it refuses the dump: "Can't dump ghost file /tmp/big of
/// 2097152 size, increase limit".
fn run_ghost_holder(lab: &Lab) -> (i32, Vec<u64>) {
    import_busybox_with_work(lab);
    lab.ok(&[
        "run",
        "--name",
        "g",
        "busybox",
        "--",
        "sh",
        "-c",
        GHOST_HOLDER,
    ]);
    let pid = running_pid(lab, "g");
    let before = wait_lines(lab, "g", 3, 15);
    // The fd is really there, on a deleted file.
    assert_holds_deleted_fd(pid);
    (pid, before)
}

#[test]
fn criu_refusal_leaves_the_container_running() {
    let Some(lab) = Lab::up("criu_refusal", "hck7", 1) else {
        return;
    };
    let (pid, before) = run_ghost_holder(&lab);
    for args in [&["checkpoint", "g"][..], &["checkpoint", "-R", "g"][..]] {
        let o = lab.herd(args);
        let err = stderr_of(&o);
        eprintln!("[herd {}] {err}", args.join(" "));
        assert!(!o.status.success(), "{args:?} succeeded:\n{}", text(&o));
        assert!(
            err.contains("checkpoint of g failed") && err.contains("still running"),
            "{err}"
        );
        // CRIU's own words, from its log.
        assert!(
            err.contains("CRIU dump failed") && err.contains("Error (criu/"),
            "{err}"
        );
        let c = status(&lab, "g");
        assert_eq!(c["status"], "running", "{c}");
        assert_eq!(c["pid"], pid, "{c}");
        assert!(process_alive(pid));
    }
    let after = wait_more(&lab, "g", before.len(), 5);
    assert_consecutive_from(&after, 1, "log across refused dumps");
    // The failed dump's log is kept for the user to read; nothing else changed.
    let cdir = lab.dir().join("n1/state/containers/g");
    assert!(cdir.join("checkpoint/dump.log").exists());
    // And the container is still managed: stop records its exit.
    lab.ok(&["stop", "-t", "5", "g"]);
    let c = status(&lab, "g");
    assert_eq!(c["status"], "stopped", "{c}");
    assert!(!process_alive(pid));
}

#[test]
fn criu_refusal_error_says_why() {
    let Some(lab) = Lab::up("criu_refusal_why", "hck7b", 1) else {
        return;
    };
    let (_pid, _) = run_ghost_holder(&lab);
    let o = lab.herd(&["checkpoint", "g"]);
    let err = stderr_of(&o);
    assert!(!o.status.success(), "{}", text(&o));
    assert!(
        err.contains("ghost file") && err.contains("/tmp/big"),
        "the cause is missing:\n{err}"
    );
    // Any log file the message points at must still exist.
    for l in err.lines() {
        if let Some(p) = l.trim().strip_prefix("last lines of ") {
            let p = p.trim_end_matches(':');
            assert!(
                Path::new(p).exists(),
                "the error points at {p}, which is gone"
            );
        }
    }
}

#[test]
fn two_checkpoint_restore_cycles_keep_counting() {
    let Some(lab) = Lab::up("two_cycles", "hck8", 1) else {
        return;
    };
    import_busybox_with_work(&lab);
    run_counter(&lab, "c", None, 8);
    let mut pid = running_pid(&lab, "c");
    let mut have = wait_lines(&lab, "c", 3, 15).len();
    let mut pids = vec![pid];
    for cycle in 1..=2 {
        checkpoint_stopping(&lab, "c", pid, 8);
        let at = settled_counts(&lab, "c");
        let (_, new_pid) = restore_checked(&lab, "c", pid);
        assert!(!pids.contains(&new_pid), "cycle {cycle}: pid reused");
        pids.push(new_pid);
        pid = new_pid;
        let after = wait_more(&lab, "c", at.len(), 3);
        assert_consecutive_from(&after, 1, &format!("cycle {cycle}"));
        assert_eq!(after[at.len()], *at.last().unwrap() + 1, "cycle {cycle}");
        assert!(after.len() > have);
        have = after.len();
    }
    let c = status(&lab, "c");
    assert_eq!(c["status"], "running", "{c}");
    assert_eq!(c["pid"], pid, "{c}");
}

#[test]
fn checkpointed_container_survives_an_agent_restart() {
    let Some(lab) = Lab::up("checkpoint_agent_restart", "hck10", 1) else {
        return;
    };
    import_busybox_with_work(&lab);
    run_counter(&lab, "c", None, 8);
    let pid = running_pid(&lab, "c");
    wait_lines(&lab, "c", 3, 15);
    lab.ok(&["exec", "c", "--", "sh", "-c", "echo data > /root/f"]);
    checkpoint_stopping(&lab, "c", pid, 8);
    let at = settled_counts(&lab, "c");
    lab.ok(&["lab", "restart", "n1"]);
    let c = status(&lab, "c");
    assert_eq!(c["status"], "checkpointed", "after the agent restart: {c}");
    restore_checked(&lab, "c", pid);
    let after = wait_more(&lab, "c", at.len(), 5);
    assert_consecutive_from(&after, 1, "log across agent restart + restore");
    assert_eq!(lab.ok(&["exec", "c", "--", "cat", "/root/f"]), "data\n");
}

#[test]
fn bad_input_gives_a_clear_error() {
    let Some(lab) = Lab::up("checkpoint_bad_input", "hck9", 1) else {
        return;
    };
    import_busybox_with_work(&lab);
    run_counter(&lab, "r", None, 0);
    let rpid = running_pid(&lab, "r");
    lab.ok(&["run", "--name", "s", "busybox", "--", "true"]);
    wait_for(10, || {
        lab.container("s").filter(|c| c["status"] == "stopped")
    })
    .expect("s stops");
    let tmp = tempfile::tempdir().unwrap();
    let missing = tmp.path().join("missing.tar");
    let missing_s = missing.to_str().unwrap();

    let cases: &[(&[&str], &[&str])] = &[
        (
            &["checkpoint", "s"],
            &["container s is stopped", "only a running container"],
        ),
        (&["checkpoint", "nosuch"], &["no such container: nosuch"]),
        (
            &["restore", "r"],
            &["container r is running", "only a checkpointed container"],
        ),
        (
            &["restore", "s"],
            &["container s is stopped", "only a checkpointed container"],
        ),
        (&["restore", "nosuch"], &["no such container: nosuch"]),
        (
            &["restore", "--import", missing_s],
            &[missing_s, "no such file"],
        ),
        (
            &["restore", "--import", missing_s, "--node", "n9"],
            &["no node named n9"],
        ),
        (
            &["checkpoint", "--export", "/nonexistent-dir/x.tar", "r"],
            &["export path", "/nonexistent-dir/x.tar"],
        ),
    ];
    for (args, wants) in cases {
        let o = lab.herd(args);
        let err = stderr_of(&o);
        assert_eq!(o.status.code(), Some(125), "herd {args:?}:\n{}", text(&o));
        for w in *wants {
            assert!(err.contains(w), "herd {args:?}: stderr lacks {w:?}:\n{err}");
        }
        assert_eq!(
            err.trim().lines().count(),
            1,
            "herd {args:?}: not one line:\n{err}"
        );
    }
    // No argument at all: a usage error (clap), exit 125 as Podman, naming what is missing.
    let o = lab.herd(&["restore"]);
    assert_eq!(o.status.code(), Some(125), "{}", text(&o));
    let err = stderr_of(&o);
    assert!(
        err.lines().next().unwrap_or("").starts_with("error:") && err.contains("<NAME>"),
        "{err}"
    );

    // None of it touched the running container or made anything.
    let c = status(&lab, "r");
    assert_eq!(c["status"], "running", "{c}");
    assert_eq!(c["pid"], rpid, "{c}");
    assert!(!lab.dir().join("n1/state/containers/r/checkpoint").exists());
    assert_eq!(
        ps_names(&lab),
        ["r", "s"].iter().map(|s| s.to_string()).collect()
    );
    assert!(!Path::new("/nonexistent-dir").exists());
}
