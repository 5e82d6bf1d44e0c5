//! The Foundation, end to end: real agents in real network namespaces,
//! real containers through libcontainer, driven through the `herd` binary
//! exactly as a user types it.

mod common;

use common::{agent_pid, text, wait_for, Lab};

#[test]
fn lab_up_and_down_twice_leaves_nothing_behind() {
    for round in 0..2 {
        let Some(lab) = Lab::up("lab_up_and_down_twice", "hfa", 2) else {
            return;
        };
        let status = lab.ok(&["lab", "status"]);
        assert_eq!(
            status.matches(" up, ").count(),
            2,
            "round {round}: {status}"
        );
        // A container, so down has something real to remove.
        lab.import_busybox();
        lab.ok(&[
            "run", "--node", "n2", "--name", "sleeper", "busybox", "--", "sleep", "1000",
        ]);
        let out = lab.ok(&["lab", "down"]);
        assert!(out.contains("is down"), "{out}");
        let left = lab.leftovers();
        assert!(left.is_empty(), "round {round}: lab down left {left:?}");
    }
}

#[test]
fn container_lifecycle_logs_exec_stop_rm() {
    let Some(lab) = Lab::up("container_lifecycle", "hfb", 1) else {
        return;
    };
    lab.import_busybox();
    let images = lab.ok(&["image", "ls"]);
    assert!(images.contains("busybox"), "{images}");

    lab.ok(&[
        "run", "--name", "ticker", "--memory", "32m", "--cpus", "0.5", "-e", "GREETING=hi",
        "busybox", "--", "sh", "-c",
        "i=0; while true; do i=$((i+1)); echo \"$GREETING $i\"; echo \"err $i\" >&2; sleep 0.1; done",
    ]);
    let c = lab.container("ticker").expect("ticker in ps");
    assert_eq!(c["status"], "running", "{c}");
    assert_eq!(c["node"], "n1");
    assert_eq!(c["memory_bytes"], 32 << 20);
    let pid = c["pid"].as_i64().expect("pid") as i32;
    assert!(std::path::Path::new(&format!("/proc/{pid}")).exists());

    // Output reaches `herd logs`, stdout and stderr apart, in order.
    let logs = wait_for(10, || {
        let o = lab.herd(&["logs", "ticker"]);
        let s = String::from_utf8_lossy(&o.stdout).into_owned();
        (s.lines().count() >= 5).then_some((s, String::from_utf8_lossy(&o.stderr).into_owned()))
    })
    .expect("5 log lines within 10 s");
    let nums: Vec<u64> = logs
        .0
        .lines()
        .map(|l| {
            l.strip_prefix("hi ")
                .expect("stdout line")
                .parse()
                .expect("number")
        })
        .collect();
    assert_eq!(nums[0], 1);
    assert!(nums.windows(2).all(|w| w[1] == w[0] + 1), "{nums:?}");
    assert!(logs.1.contains("err 1"), "stderr lines: {}", logs.1);
    // --tail counts lines of both streams, as podman's does.
    let tail = lab.herd(&["logs", "--tail", "4", "ticker"]);
    let (out, err) = (
        String::from_utf8_lossy(&tail.stdout),
        String::from_utf8_lossy(&tail.stderr),
    );
    assert_eq!(
        out.lines().count() + err.lines().count(),
        4,
        "{}",
        text(&tail)
    );
    assert!(
        out.lines().count() >= 1 && err.lines().count() >= 1,
        "{}",
        text(&tail)
    );

    // exec runs inside the container: its hostname, its pid namespace, its env.
    assert_eq!(
        lab.ok(&["exec", "ticker", "--", "hostname"]).trim(),
        "ticker"
    );
    let cmdline = lab.ok(&["exec", "ticker", "--", "cat", "/proc/1/cmdline"]);
    assert!(cmdline.starts_with("sh\0-c"), "{cmdline:?}");
    let code = lab.herd(&["exec", "ticker", "--", "sh", "-c", "exit 7"]);
    assert_eq!(code.status.code(), Some(7), "{}", text(&code));
    // An exec that cannot start is a clear error, and leaves nothing that
    // would keep the container from stopping (checked by the stop below).
    let bad = lab.herd(&["exec", "ticker", "--", "/no/such/program"]);
    assert_eq!(bad.status.code(), Some(127), "{}", text(&bad));
    assert!(text(&bad).contains("/no/such/program"), "{}", text(&bad));

    // The cgroup limit is applied (cgroup v1 here; v2 reads memory.max).
    let cg = std::fs::read_to_string(format!("/proc/{pid}/cgroup")).unwrap();
    assert!(
        cg.contains(&format!("/herd/{}/n1/ticker", lab.name)),
        "{cg}"
    );

    // rm without -f refuses a running container and changes nothing.
    let o = lab.herd(&["rm", "ticker"]);
    assert!(!o.status.success());
    assert!(
        String::from_utf8_lossy(&o.stderr).contains("stop it first"),
        "{}",
        text(&o)
    );

    // sh as pid 1 ignores SIGTERM: stop escalates to SIGKILL after -t.
    lab.ok(&["stop", "-t", "1", "ticker"]);
    let c = lab.container("ticker").unwrap();
    assert_eq!(c["status"], "stopped", "{c}");
    assert_eq!(c["exit_code"], 137, "{c}");
    assert!(!std::path::Path::new(&format!("/proc/{pid}")).exists() || is_zombie_free(pid));
    lab.ok(&["rm", "ticker"]);
    assert!(lab.container("ticker").is_none());

    // Nothing of the container is left: netns, mounts, cgroups, dir.
    let ns = "/run/netns/hfb-n1-ticker";
    assert!(!std::path::Path::new(ns).exists(), "{ns} left");
    let mi = std::fs::read_to_string("/proc/self/mountinfo").unwrap();
    assert!(!mi.contains("containers/ticker"), "overlay mount left");
    for ctrl in ["memory", "cpu", "pids"] {
        let p = format!("/sys/fs/cgroup/{ctrl}/herd/{}/n1/ticker", lab.name);
        assert!(!std::path::Path::new(&p).exists(), "{p} left");
    }

    // A container that exits by itself is seen as exited with its code.
    lab.ok(&[
        "run",
        "--name",
        "oneshot",
        "busybox",
        "--",
        "sh",
        "-c",
        "echo done; exit 3",
    ]);
    let c = wait_for(10, || {
        lab.container("oneshot")
            .filter(|c| c["status"] == "stopped")
    })
    .expect("oneshot stops");
    assert_eq!(c["exit_code"], 3);
    assert_eq!(lab.ok(&["logs", "oneshot"]).trim(), "done");
    lab.ok(&["rm", "oneshot"]);
}

fn is_zombie_free(pid: i32) -> bool {
    std::fs::read_to_string(format!("/proc/{pid}/stat"))
        .map(|s| !s.contains(") Z"))
        .unwrap_or(true)
}

#[test]
fn bad_input_gives_one_clear_line_and_nonzero_exit() {
    let Some(lab) = Lab::up("bad_input", "hfc", 1) else {
        return;
    };
    let cases: &[(&[&str], &str)] = &[
        (
            &["run", "--name", "x", "nosuchimage", "--", "true"],
            "nosuchimage",
        ),
        (&["logs", "nosuch"], "no such container: nosuch"),
        (&["stop", "nosuch"], "no such container"),
        (&["exec", "nosuch", "--", "true"], "no such container"),
        (
            &["run", "--node", "n9", "busybox", "--", "true"],
            "no node named n9",
        ),
        (
            &["run", "--memory", "lots", "busybox", "--", "true"],
            "--memory",
        ),
        (
            &["run", "--name", "bad/name", "busybox", "--", "true"],
            "container name",
        ),
        (&["image", "rm", "nosuch"], "nosuch"),
        (
            &["image", "import", "x", "/nonexistent/path"],
            "/nonexistent/path",
        ),
    ];
    lab.import_busybox();
    for (args, want) in cases {
        let o = lab.herd(args);
        let err = String::from_utf8_lossy(&o.stderr);
        assert_eq!(o.status.code(), Some(125), "herd {args:?}: {err}");
        assert!(
            err.contains(want),
            "herd {args:?}: stderr lacks {want:?}:\n{err}"
        );
        assert!(
            err.trim().lines().count() == 1,
            "herd {args:?}: not one line:\n{err}"
        );
    }
    let o = lab.herd(&["run", "--no-such-flag"]);
    assert_eq!(o.status.code(), Some(125), "{}", text(&o));
    // Nothing was created by the failures.
    let ps = lab.ps_json();
    assert_eq!(ps.as_array().unwrap().len(), 0, "{ps}");

    // An unreachable agent: a clear error naming the node.
    let o = lab
        .cmd()
        .args(["ps"])
        .env("HERD_LAB", "nolab")
        .output()
        .unwrap();
    assert!(!o.status.success());
    assert!(
        String::from_utf8_lossy(&o.stderr).contains("herd lab up"),
        "{}",
        text(&o)
    );
}

#[test]
fn agent_restart_readopts_a_running_container() {
    let Some(lab) = Lab::up("agent_restart", "hfd", 1) else {
        return;
    };
    lab.import_busybox();
    lab.ok(&[
        "run",
        "--name",
        "survivor",
        "busybox",
        "--",
        "sh",
        "-c",
        "i=0; while true; do i=$((i+1)); echo $i; sleep 0.1; done",
    ]);
    lab.ok(&["run", "--name", "victim", "busybox", "--", "sleep", "1000"]);
    let before = lab.container("survivor").unwrap();
    let victim_pid = lab.container("victim").unwrap()["pid"].as_i64().unwrap() as i32;

    // The agent dies; one container dies while it is gone.
    let agent_pid = agent_pid(&lab, "n1");
    nix::sys::signal::kill(
        nix::unistd::Pid::from_raw(agent_pid),
        nix::sys::signal::Signal::SIGKILL,
    )
    .unwrap();
    nix::sys::signal::kill(
        nix::unistd::Pid::from_raw(victim_pid),
        nix::sys::signal::Signal::SIGKILL,
    )
    .unwrap();
    let lines_before = lab.dir().join("n1/state/containers/survivor/log");
    std::thread::sleep(std::time::Duration::from_millis(500));
    let n0 = std::fs::read_to_string(&lines_before)
        .unwrap()
        .lines()
        .count();
    lab.ok(&["lab", "restart", "n1"]);

    let after = lab.container("survivor").expect("survivor re-adopted");
    assert_eq!(after["status"], "running");
    assert_eq!(after["pid"], before["pid"], "same process, not a new one");
    let victim = lab.container("victim").expect("victim still listed");
    assert_eq!(victim["status"], "stopped", "{victim}");
    // Its output kept flowing while the agent was away, with no gap.
    // (A quick restart may come back before the next line: wait for it.)
    let grown = wait_for(10, || {
        let logs = lab.ok(&["logs", "survivor"]);
        (logs.lines().count() > n0).then_some(logs)
    });
    let logs = grown.unwrap_or_else(|| lab.ok(&["logs", "survivor"]));
    let nums: Vec<u64> = logs.lines().map(|l| l.parse().unwrap()).collect();
    assert!(nums.len() > n0, "log grew: {} -> {}", n0, nums.len());
    assert!(
        nums.windows(2).all(|w| w[1] == w[0] + 1),
        "no line lost: {nums:?}"
    );
    // The adopted container can still be managed.
    assert_eq!(
        lab.ok(&["exec", "survivor", "--", "echo", "hi"]).trim(),
        "hi"
    );
    lab.ok(&["stop", "-t", "1", "survivor"]);
    assert_eq!(lab.container("survivor").unwrap()["status"], "stopped");
    lab.ok(&["rm", "survivor", "victim"]);
}
