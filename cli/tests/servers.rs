//! Real servers under their own clients, moved between lab hosts (the
//! redis-server / nginx tests are still to come).
//!
//! Here now: a container whose process runs as another user than root is
//! refused before anything is frozen where root lacks CAP_SYS_RESOURCE (this
//! machine kind), and checkpointed where root has it.
//!
//! The servers run as root inside their containers: on this machine CRIU
//! cannot dump a process of another user (see the refusal test), so
//! PostgreSQL (user postgres) is not in this suite.

mod common;

use common::{counter_counts, import_busybox_with_work, text, wait_for, Lab};

// ---------------------------------------------------------------- helpers

fn where_is(lab: &Lab, name: &str) -> (String, String, i64) {
    let c = lab
        .container(name)
        .unwrap_or_else(|| panic!("{name} not in ps: {}", lab.ps_json()));
    assert_eq!(c["status"], "Running", "{c}");
    (
        c["node"].as_str().unwrap_or_default().to_string(),
        c["ip"].as_str().unwrap_or_default().to_string(),
        c["pid"].as_i64().unwrap_or_default(),
    )
}

// ---------------------------------------------------------------- non-root

fn cap_sys_resource() -> bool {
    let s = std::fs::read_to_string("/proc/self/status").expect("read /proc/self/status");
    let eff = s
        .lines()
        .find_map(|l| l.strip_prefix("CapEff:"))
        .and_then(|v| u64::from_str_radix(v.trim(), 16).ok())
        .expect("CapEff in /proc/self/status");
    eff & (1 << 24) != 0
}

#[test]
fn a_container_of_another_user_is_refused_before_the_freeze_without_cap_sys_resource() {
    let test = "servers_non_root";
    let Some(lab) = Lab::up(test, "svuid", 2) else {
        return;
    };
    import_busybox_with_work(&lab);
    lab.ok(&[
        "run",
        "--node",
        "n1",
        "--name",
        "nob",
        "busybox",
        "--",
        "su",
        "-s",
        "/bin/sh",
        "nobody",
        "-c",
        "exec herd-work counter --interval-ms 100",
    ]);
    let counts = |lab: &Lab| counter_counts(&lab.ok(&["logs", "nob"]));
    let grown = |lab: &Lab, n: usize| {
        wait_for(20, || {
            let c = counts(lab);
            (c.len() >= n).then_some(c)
        })
        .unwrap_or_else(|| panic!("the counter stopped: {:?}", counts(lab)))
    };
    grown(&lab, 5);
    let (_, _, pid) = where_is(&lab, "nob");
    let st = std::fs::read_to_string(format!("/proc/{pid}/status")).expect("container status");
    let uid_line = st.lines().find(|l| l.starts_with("Uid:")).unwrap_or("");
    assert!(
        uid_line.split_whitespace().skip(1).all(|u| u == "65534"),
        "the container's process should run as nobody: {uid_line}"
    );

    if cap_sys_resource() {
        // Users' hosts: nothing to refuse, the dump and restore work.
        lab.ok(&["checkpoint", "nob"]);
        lab.ok(&["restore", "nob"]);
        let before = counts(&lab).len();
        let after = grown(&lab, before + 5);
        assert!(after.windows(2).all(|w| w[1] == w[0] + 1), "{after:?}");
        return;
    }

    for (verb, args) in [
        ("checkpoint", vec!["checkpoint", "nob"]),
        ("migrate", vec!["migrate", "nob", "--to", "n2"]),
    ] {
        let out = lab.herd(&args);
        assert!(
            !out.status.success(),
            "{verb} should be refused:\n{}",
            text(&out)
        );
        let err = String::from_utf8_lossy(&out.stderr);
        for want in [
            "CAP_SYS_RESOURCE",
            "uid 65534",
            &format!("{pid} (herd-work)"),
            "nothing was frozen",
            "VM lab",
        ] {
            assert!(err.contains(want), "{verb}: no {want:?} in:\n{err}");
        }
        assert!(
            !err.contains("Can't get rlimit"),
            "{verb}: CRIU ran (its rlimit error):\n{err}"
        );
        // Untouched: same process, still counting, on n1 only.
        let (node, _, pid2) = where_is(&lab, "nob");
        assert_eq!((node.as_str(), pid2), ("n1", pid), "{verb}");
        assert_eq!(
            lab.ps_json().as_array().map(|a| a.len()),
            Some(1),
            "{verb} left a copy: {}",
            lab.ps_json()
        );
        let before = counts(&lab).len();
        let after = grown(&lab, before + 5);
        assert_eq!(after[0], 1, "{after:?}");
        assert!(
            after.windows(2).all(|w| w[1] == w[0] + 1),
            "{verb}: {after:?}"
        );
    }
    let images = lab.dir().join("n1/state/containers/nob/checkpoint");
    assert!(
        !images.exists(),
        "a refused checkpoint made {}",
        images.display()
    );
}
