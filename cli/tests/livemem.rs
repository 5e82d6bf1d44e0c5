//! Live memory (#22) on real labs with real CRIU: the target builds the
//! container while it still runs on the source (`PreSent` / `Built` of
//! herd-wire's handoff), and every way out of that new phase leaves exactly
//! one running copy and nothing on the target.
//!
//! Copies are counted as processes in the container's pids cgroup on each
//! node that are not stopped (as in handoff.rs); the workload is herd-work's
//! counter (16 MiB of patterned memory checked every tick) appending to a
//! file of its own filesystem.

mod common;

use std::process::{Child, Stdio};

use common::moves::*;
use common::{agent_pid, import_busybox_with_work, restart_with_fault, run_sh, text, Lab};
use serde_json::Value;

const N: [&str; 2] = ["n1", "n2"];

/// The pre-sent file the target must have before the freeze, then
/// herd-work's counter (16 MiB; 96 to be streamed by `auto`) piped into a file.
const PRESEND_WORK: &str =
    "echo pre-sent > /presend.txt; herd-work counter --interval-ms 100 --mib 16 | tee -a /data.log";
const PRESEND_WORK_96: &str =
    "echo pre-sent > /presend.txt; herd-work counter --interval-ms 100 --mib 96 | tee -a /data.log";

/// Exactly one running copy, on `node`, listed once; counter gapless,
/// memory pattern intact, the appended file whole, the pre-sent file there.
fn assert_one_intact_presend(lab: &Lab, name: &str, node: &str) {
    assert_one_intact(lab, &N, name, node);
    let pre = lab.ok(&["exec", name, "--", "cat", "/presend.txt"]);
    assert_eq!(pre.trim(), "pre-sent");
}

fn move_to(lab: &Lab, name: &str, from: &str, to: &str) -> Value {
    let o = lab.herd(&["migrate", name, "--to", to, "--json"]);
    assert!(o.status.success(), "migrate {from} -> {to}:\n{}", text(&o));
    let r = outcome_of(&o);
    assert_eq!(r["outcome"], "moved", "{r}");
    assert_eq!(r["runs_on"], to, "{r}");
    assert_one_intact_presend(lab, name, to);
    assert_clean(lab, from, name);
    r
}

/// The source paused just before its dump (after the target said Built):
/// the container still runs on the source, and on the target its
/// filesystem (with the pre-sent upper layer), its fenced netns with the
/// macvlan and its cgroups already exist, with no process. Then the move
/// completes with the state intact, and twice more.
#[test]
fn the_target_is_built_before_the_freeze_and_state_survives_three_moves() {
    let Some(lab) = lab_with_work("livemem_built", "lmbuilt", &["--net", "lab"], PRESEND_WORK)
    else {
        return;
    };
    restart_with_fault(&lab, "n1", "pause-before-dump");
    let mut child = spawn_migrate(&lab, "c", "n2");
    wait_paused(&lab, "n1", "before-dump", &mut child);
    assert_eq!(
        copies(&lab, &N, "c"),
        vec!["n1".to_string()],
        "runs on the source"
    );
    let cdir = lab.dir().join("n2/state/containers/c");
    let upper = cdir.join("fs/upper/presend.txt");
    assert_eq!(
        std::fs::read_to_string(&upper).ok().as_deref(),
        Some("pre-sent\n"),
        "the pre-sent upper layer is applied on the target before the dump"
    );
    assert!(
        cdir.join("bundle/config.json").exists(),
        "bundle built before the dump"
    );
    assert!(
        netns(&lab, "n2", "c").exists(),
        "netns made before the dump"
    );
    let ns = netns(&lab, "n2", "c");
    let links = std::process::Command::new("ip")
        .args(["-n", &ns.file_name().unwrap().to_string_lossy(), "link"])
        .output()
        .expect("ip link");
    assert!(
        String::from_utf8_lossy(&links.stdout).contains("eth0"),
        "the macvlan is in the netns before the dump: {}",
        text(&links)
    );
    let rules = std::process::Command::new("ip")
        .args(["netns", "exec", &ns.file_name().unwrap().to_string_lossy()])
        .args(["nft", "list", "ruleset"])
        .output();
    if let Ok(r) = rules {
        if r.status.success() {
            assert!(
                String::from_utf8_lossy(&r.stdout).contains("drop"),
                "fenced before the dump: {}",
                text(&r)
            );
        }
    }
    assert!(
        cgroup(&lab, "pids", "n2", "c").exists(),
        "cgroup made before the dump"
    );
    assert!(running_tasks(&lab, "n2", "c").is_empty());
    resume(&lab, "n1", "before-dump");
    let o = child.wait_with_output().expect("migrate");
    assert!(o.status.success(), "{}", text(&o));
    let r = outcome_of(&o);
    assert_eq!(r["outcome"], "moved", "{r}");
    assert!(r["build_ms"].as_f64().unwrap_or(0.0) > 0.0, "{r}");
    assert_one_intact_presend(&lab, "c", "n2");
    assert_clean(&lab, "n1", "c");
    restart_with_fault(&lab, "n1", "");
    move_to(&lab, "c", "n2", "n1");
    move_to(&lab, "c", "n1", "n2");
}

/// The target's build fails (injected): nothing froze, the container runs
/// on the source untouched, nothing is left on the target, and a later
/// move works.
#[test]
fn a_failed_build_leaves_the_container_untouched_and_nothing_on_the_target() {
    let Some(lab) = lab_with_work(
        "livemem_failbuild",
        "lmfail",
        &["--net", "lab"],
        PRESEND_WORK,
    ) else {
        return;
    };
    restart_with_fault(&lab, "n2", "fail-build");
    let o = lab.herd(&["migrate", "c", "--to", "n2", "--json"]);
    let r = outcome_of(&o);
    assert_eq!(r["outcome"], "untouched", "{r}");
    assert_eq!(r["phase"], "pre-send", "{r}");
    assert!(
        r["reason"].as_str().unwrap_or("").contains("fail-build"),
        "{r}"
    );
    assert_one_intact_presend(&lab, "c", "n1");
    assert_clean(&lab, "n2", "c");
    restart_with_fault(&lab, "n2", "");
    move_to(&lab, "c", "n1", "n2");
}

/// The target agent killed (SIGKILL) right after it built the container,
/// before the source froze anything: the source never dumps, the
/// restarted target removes the half-made container, a later move works.
#[test]
fn target_killed_after_building_leaves_one_copy_and_nothing_behind() {
    let Some(lab) = lab_with_work(
        "livemem_killbuilt",
        "lmkill",
        &["--net", "lab"],
        PRESEND_WORK,
    ) else {
        return;
    };
    restart_with_fault(&lab, "n2", "pause-after-build");
    let mut child = spawn_migrate(&lab, "c", "n2");
    wait_paused(&lab, "n2", "after-build", &mut child);
    assert!(
        !traces(&lab, "n2", "c").is_empty(),
        "the target built something"
    );
    nix::sys::signal::kill(
        nix::unistd::Pid::from_raw(agent_pid(&lab, "n2")),
        nix::sys::signal::Signal::SIGKILL,
    )
    .expect("kill -9");
    let _ = std::fs::remove_file(paused(&lab, "n2", "after-build"));
    let o = child.wait_with_output().expect("migrate");
    let r = outcome_of(&o);
    assert_eq!(r["outcome"], "untouched", "{r}");
    restart_with_fault(&lab, "n2", "");
    assert_one_intact_presend(&lab, "c", "n1");
    assert_clean(&lab, "n2", "c");
    move_to(&lab, "c", "n1", "n2");
}

/// Whether CRIU here can track dirty memory (`criu check --feature
/// mem_dirty_track`), asked the way an operator would.
fn kernel_tracks_dirty_memory() -> bool {
    criu_feature("mem_dirty_track")
}

fn criu_feature(f: &str) -> bool {
    std::process::Command::new("criu")
        .args(["check", "--feature", f])
        .output()
        .map(|o| o.status.success())
        .unwrap_or(false)
}

/// The `--json` keys of the modes that did not run: present, empty.
fn assert_no_pre_no_post(r: &Value) {
    assert_eq!(r["pre_rounds"], serde_json::json!([]), "{r}");
    for k in ["post_copy_ms", "lazy_bytes"] {
        assert!(r.get(k).is_some_and(Value::is_null), "{k}: {r}");
    }
}

/// `--memory-mode`: `auto` (the default) says what it picked, `stop`
/// moves (stream has its own tests), and a mode this host or agent cannot do is refused before
/// anything froze (the container runs on, untouched, its counter gapless),
/// `pre` with the kernel's reason where dirty memory is not tracked.
#[test]
fn memory_modes_auto_and_stop_move_and_the_others_are_refused_before_the_freeze() {
    let Some(lab) = lab_with_work("livemem_modes", "lmmodes", &["--net", "lab"], PRESEND_WORK)
    else {
        return;
    };
    let r = move_to(&lab, "c", "n1", "n2");
    assert_eq!(r["memory_mode"], "stop", "{r}");
    let why = r["memory_mode_reason"].as_str().unwrap_or("");
    // 16 MiB of pattern: under auto's streaming size, and it says so.
    assert!(
        why.contains("auto picked stop") && why.contains("MiB"),
        "{r}"
    );
    assert!(why.contains("not post"), "{r}");
    assert_no_pre_no_post(&r);
    let o = lab.herd(&["migrate", "c", "--to", "n1", "--memory-mode", "stop"]);
    assert!(o.status.success(), "{}", text(&o));
    assert!(text(&o).contains("memory: stop"), "{}", text(&o));
    assert_one_intact_presend(&lab, "c", "n1");
    assert_clean(&lab, "n2", "c");
    for mode in ["pre", "post"] {
        let before = counts(&lab, "c").len();
        let o = lab.herd(&[
            "migrate",
            "c",
            "--to",
            "n2",
            "--memory-mode",
            mode,
            "--json",
        ]);
        assert!(!o.status.success(), "{mode} accepted:\n{}", text(&o));
        let r = outcome_of(&o);
        assert_eq!(r["outcome"], "untouched", "{mode}: {r}");
        let reason = r["reason"].as_str().unwrap_or("");
        assert!(reason.contains(&format!("--memory-mode {mode}")), "{r}");
        if mode == "pre" && !kernel_tracks_dirty_memory() {
            assert!(reason.contains("dirty memory"), "{r}");
            assert!(!why.contains("picked pre"), "{why}");
        }
        if mode == "post" {
            // Either no userfaultfd, or CRIU's lazy page server failing.
            let uffd = criu_feature("uffd-noncoop");
            let said = if uffd {
                "lazy page server"
            } else {
                "userfaultfd"
            };
            assert!(reason.contains(said), "{r}");
            assert!(!why.contains("picked post"), "{why}");
        }
        // Nothing froze: the counter went on during the refusal.
        wait_lines(&lab, "c", before + 2, 30);
        assert_one_intact_presend(&lab, "c", "n1");
        assert_clean(&lab, "n2", "c");
    }
    let o = lab.herd(&["migrate", "c", "--to", "n2", "--memory-mode", "bogus"]);
    assert!(!o.status.success());
    assert!(text(&o).contains("memory"), "{}", text(&o));
    // pong takes it too.
    let o = lab.herd(&[
        "pong",
        "c",
        "--hosts",
        "n1,n2",
        "--count",
        "2",
        "--dwell",
        "0",
        "--memory-mode",
        "stop",
    ]);
    assert!(o.status.success(), "{}", text(&o));
    assert_one_intact_presend(&lab, "c", "n1");
}

/// `auto` (the default) on a container of 96 MiB: at least auto's
/// streaming size, so it streams the pages, says why in the report, and
/// the state survives there and back.
#[test]
fn auto_streams_a_large_container_and_says_why() {
    let Some(lab) = Lab::up("livemem_autostream", "lmauto", 2) else {
        return;
    };
    import_busybox_with_work(&lab);
    run_sh(&lab, "c", "n1", &["--net", "lab"], PRESEND_WORK_96);
    wait_lines(&lab, "c", 5, 60);
    for (from, to) in [("n1", "n2"), ("n2", "n1")] {
        let r = move_to(&lab, "c", from, to);
        assert_eq!(r["memory_mode"], "stream", "{r}");
        let why = r["memory_mode_reason"].as_str().unwrap_or("");
        assert!(why.contains("auto picked stream"), "{r}");
        let pages = r["page_bytes"].as_u64().unwrap_or(0);
        assert!(pages >= 96 << 20, "page stream carried {pages} bytes: {r}");
        assert_no_pre_no_post(&r);
    }
}

// ------------------------------------------------------------- stream mode

fn migrate_stream(lab: &Lab, name: &str, to: &str) -> Child {
    lab.cmd()
        .args([
            "migrate",
            name,
            "--to",
            to,
            "--memory-mode",
            "stream",
            "--json",
        ])
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .expect("spawn herd migrate")
}

/// A finished `--memory-mode stream` move: moved, said so, and its pages
/// (at least the workload's 16 MiB pattern) went on the page stream.
fn assert_streamed(o: &std::process::Output, to: &str) -> Value {
    assert!(o.status.success(), "stream migrate to {to}:\n{}", text(o));
    let r = outcome_of(o);
    assert_eq!(r["outcome"], "moved", "{r}");
    assert_eq!(r["runs_on"], to, "{r}");
    assert_eq!(r["memory_mode"], "stream", "{r}");
    let pages = r["page_bytes"].as_u64().unwrap_or(0);
    assert!(pages >= 16 << 20, "page stream carried {pages} bytes: {r}");
    assert!(r["bytes"].as_u64().unwrap_or(0) >= pages, "{r}");
    assert_no_pre_no_post(&r);
    r
}

/// Frozen mid-dump (CRIU's parasite runs in its tasks, so they do not
/// look stopped): its counter stands still.
fn assert_frozen(lab: &Lab, name: &str) {
    std::thread::sleep(std::time::Duration::from_millis(300));
    let a = counts(lab, name).len();
    std::thread::sleep(std::time::Duration::from_millis(1500));
    let b = counts(lab, name).len();
    assert_eq!(a, b, "{name} counts on while its dump is paused");
}

/// The IP address of each node of the lab (from its cluster file).
fn node_ips(lab: &Lab) -> Vec<std::net::IpAddr> {
    common::cluster_json(lab)["nodes"]
        .as_array()
        .expect("nodes")
        .iter()
        .map(|n| {
            n["addr"]
                .as_str()
                .and_then(|a| a.parse::<std::net::SocketAddr>().ok())
                .map(|a| a.ip())
                .unwrap_or_else(|| panic!("node without an address: {n}"))
        })
        .collect()
}

/// `/proc/net/tcp{,6}` of a process's netns: (local ip, remote ip, state).
fn tcp_sockets(pid: i32) -> Vec<(std::net::IpAddr, std::net::IpAddr, String)> {
    fn ip(hex: &str) -> Option<std::net::IpAddr> {
        let (a, _) = hex.split_once(':')?;
        let b = (0..a.len() / 2)
            .map(|i| u8::from_str_radix(&a[2 * i..2 * i + 2], 16).ok())
            .collect::<Option<Vec<u8>>>()?;
        // The kernel prints each 32-bit word in host (little-endian) order.
        let fix: Vec<u8> = b.chunks(4).flat_map(|w| w.iter().rev().copied()).collect();
        match fix.len() {
            4 => Some(std::net::IpAddr::from([fix[0], fix[1], fix[2], fix[3]])),
            16 => {
                let mut o = [0u8; 16];
                o.copy_from_slice(&fix);
                let v6 = std::net::Ipv6Addr::from(o);
                Some(match v6.to_ipv4_mapped() {
                    Some(v4) => std::net::IpAddr::V4(v4),
                    None => std::net::IpAddr::V6(v6),
                })
            }
            _ => None,
        }
    }
    let mut v = Vec::new();
    for f in ["tcp", "tcp6"] {
        let t = std::fs::read_to_string(format!("/proc/{pid}/net/{f}"))
            .unwrap_or_else(|e| panic!("read /proc/{pid}/net/{f}: {e}"));
        for l in t.lines().skip(1) {
            let w: Vec<&str> = l.split_whitespace().collect();
            if let (Some(a), Some(b), Some(st)) = (
                w.get(1).and_then(|x| ip(x)),
                w.get(2).and_then(|x| ip(x)),
                w.get(3),
            ) {
                v.push((a, b, st.to_string()));
            }
        }
    }
    v
}

/// While pages stream (the source paused in its page stream, CRIU in the
/// middle of its dump): no TCP socket joins the two nodes in either node's
/// netns, and none listens there for CRIU; the pages are on the QUIC
/// connection (the agents' UDP). The source's container dir holds no page
/// image. Then the move finishes, and two more, with the state intact.
#[test]
fn stream_sends_no_page_over_tcp_and_state_survives_three_moves() {
    let Some(lab) = lab_with_work(
        "livemem_stream",
        "lmstream",
        &["--net", "lab"],
        PRESEND_WORK,
    ) else {
        return;
    };
    let ips = node_ips(&lab);
    assert_eq!(ips.len(), 2, "{ips:?}");
    restart_with_fault(&lab, "n1", "pause-mid-stream");
    // The agents' own listeners (a metrics endpoint) are there before.
    let listeners = |node: &str| -> Vec<_> {
        tcp_sockets(agent_pid(&lab, node))
            .into_iter()
            .filter(|(_, _, st)| st == "0A")
            .collect()
    };
    let before: Vec<_> = N.iter().map(|n| listeners(n)).collect();
    let mut child = migrate_stream(&lab, "c", "n2");
    wait_paused(&lab, "n1", "mid-stream", &mut child);
    for (i, node) in N.iter().enumerate() {
        let pid = agent_pid(&lab, node);
        let tcp = tcp_sockets(pid);
        let between: Vec<_> = tcp
            .iter()
            .filter(|(a, b, _)| ips.contains(a) && ips.contains(b))
            .collect();
        assert!(
            between.is_empty(),
            "TCP between the nodes in {node}'s netns while pages stream: {between:?}"
        );
        // A page server on TCP would listen (state 0A) on some address.
        let new: Vec<_> = listeners(node)
            .into_iter()
            .filter(|l| !before[i].contains(l))
            .collect();
        assert!(
            new.is_empty(),
            "a new TCP listener in {node}'s netns while pages stream: {new:?}"
        );
    }
    let images = lab.dir().join("n1/state/containers/c/checkpoint");
    let pages_here: Vec<String> = std::fs::read_dir(&images)
        .into_iter()
        .flatten()
        .flatten()
        .map(|e| e.file_name().to_string_lossy().into_owned())
        .filter(|n| n.starts_with("pages-") || n.starts_with("pagemap-"))
        .collect();
    assert!(
        pages_here.is_empty(),
        "page images on the source: {pages_here:?}"
    );
    assert_frozen(&lab, "c");
    resume(&lab, "n1", "mid-stream");
    let o = child.wait_with_output().expect("migrate");
    assert_streamed(&o, "n2");
    assert_one_intact_presend(&lab, "c", "n2");
    assert_clean(&lab, "n1", "c");
    restart_with_fault(&lab, "n1", "");
    for (from, to) in [("n2", "n1"), ("n1", "n2")] {
        let o = migrate_stream(&lab, "c", to)
            .wait_with_output()
            .expect("migrate");
        assert_streamed(&o, to);
        assert_one_intact_presend(&lab, "c", to);
        assert_clean(&lab, from, "c");
    }
}

/// The target agent killed (SIGKILL) while the source's pages stream to
/// it, the container frozen on the source: CRIU's dump fails and resumes
/// the container on the source, exactly one copy runs there with its
/// state intact, the restarted target keeps nothing, and a later stream
/// move works.
#[test]
fn target_killed_while_pages_stream_leaves_one_intact_copy_on_the_source() {
    let Some(lab) = lab_with_work(
        "livemem_streamkill",
        "lmskill",
        &["--net", "lab"],
        PRESEND_WORK,
    ) else {
        return;
    };
    restart_with_fault(&lab, "n1", "pause-mid-stream");
    let mut child = migrate_stream(&lab, "c", "n2");
    wait_paused(&lab, "n1", "mid-stream", &mut child);
    assert_frozen(&lab, "c");
    kill9(agent_pid(&lab, "n2"));
    resume(&lab, "n1", "mid-stream");
    let o = child.wait_with_output().expect("migrate");
    let r = outcome_of(&o);
    assert!(
        matches!(r["outcome"].as_str(), Some("untouched" | "rolled_back")),
        "{r}"
    );
    assert_eq!(r["runs_on"], "n1", "{r}");
    assert_one_intact_presend(&lab, "c", "n1");
    restart_with_fault(&lab, "n2", "");
    restart_with_fault(&lab, "n1", "");
    assert_one_intact_presend(&lab, "c", "n1");
    assert_clean(&lab, "n2", "c");
    let o = migrate_stream(&lab, "c", "n2")
        .wait_with_output()
        .expect("migrate");
    assert_streamed(&o, "n2");
    assert_one_intact_presend(&lab, "c", "n2");
    assert_clean(&lab, "n1", "c");
}

/// A streamed dump several times longer than the target's stream idle
/// limit (`--stream-idle-timeout-s` 2 here) while its pages flow (fault
/// `slow-pages`: the source sends ~2 MiB/s, ~10 s for this workload): the
/// migration stream carries no frame all that time, but page bytes count
/// as the source's sign of life, so the move goes through, there and
/// back: one copy on the target, state intact, nothing left on the source.
#[test]
fn a_page_session_longer_than_the_idle_limit_does_not_end_the_move() {
    let Some(lab) = lab_with_work(
        "livemem_slowpages",
        "lmslow",
        &["--net", "lab"],
        PRESEND_WORK,
    ) else {
        return;
    };
    let idle_ms = 2000.0;
    for node in N {
        let o = lab
            .cmd()
            .env("HERD_FAULT", "slow-pages")
            .env("HERD_STREAM_IDLE_TIMEOUT_S", "2")
            .args(["lab", "restart", node])
            .output()
            .expect("run herd lab restart");
        assert!(o.status.success(), "lab restart {node}:\n{}", text(&o));
    }
    for (from, to) in [("n1", "n2"), ("n2", "n1")] {
        let o = migrate_stream(&lab, "c", to)
            .wait_with_output()
            .expect("migrate");
        let r = assert_streamed(&o, to);
        // Not a speed bound: the case under test needs a long session.
        let dump = r["dump_ms"].as_f64().unwrap_or(0.0);
        assert!(
            dump > 2.0 * idle_ms,
            "the streamed dump took {dump} ms, not over twice the idle limit: {r}"
        );
        assert_one_intact_presend(&lab, "c", to);
        assert_clean(&lab, from, "c");
    }
}
