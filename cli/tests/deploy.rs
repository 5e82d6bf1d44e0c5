//! The operator's path without a lab file: `herd node add|ls|rm` builds a
//! cluster file for hosts from their addresses and certificates (README,
//! "Deploy on your hosts"). The hosts here are a lab's real agents on their
//! own addresses; the file is a new one that knows nothing of the lab.

mod common;

use std::path::Path;
use std::process::{Command, Output};

use common::{herd_bin, path_arg, text, Lab};
use serde_json::Value;

fn herd_with(file: &Path, args: &[&str]) -> Output {
    Command::new(herd_bin())
        .env_remove("HERD_LAB")
        .env_remove("HERD_LAB_ROOT")
        .env_remove("HERD_CLUSTER")
        .arg("--cluster")
        .arg(file)
        .args(args)
        .output()
        .expect("run herd")
}

fn ok_with(file: &Path, args: &[&str]) -> String {
    let o = herd_with(file, args);
    assert!(o.status.success(), "herd {args:?}:\n{}", text(&o));
    String::from_utf8_lossy(&o.stdout).into_owned()
}

#[test]
fn node_add_ls_rm_build_a_cluster_file_that_reaches_real_agents() {
    let Some(lab) = Lab::up("deploy_nodes", "dep", 2) else {
        return;
    };
    lab.import_busybox();
    lab.ok(&[
        "run", "--node", "n2", "--name", "w", "busybox", "--", "sleep", "1000",
    ]);
    let cl = common::cluster_json(&lab);
    let addr = |n: usize| cl["nodes"][n]["addr"].as_str().expect("addr").to_string();
    let pki = lab.dir().join("pki");
    let tmp = tempfile::tempdir().expect("tempdir");
    let file = tmp.path().join("site").join("prod.json");
    let n1_cert = lab.dir().join("n1").join("n1.pem");
    let n2_cert = lab.dir().join("n2").join("n2.pem");

    // The first add needs the user's TLS files; without them, one clear line.
    let o = herd_with(&file, &["node", "add", "n1", &addr(0)]);
    assert!(!o.status.success());
    assert!(
        text(&o).contains("--user-cert"),
        "the first add names what it needs:\n{}",
        text(&o)
    );
    assert!(!file.exists(), "a refused add wrote {}", file.display());

    ok_with(
        &file,
        &[
            "node",
            "add",
            "n1",
            &addr(0),
            "--node-cert",
            path_arg(&n1_cert),
            "--ca",
            path_arg(&pki.join("ca.pem")),
            "--user-cert",
            path_arg(&pki.join("admin.pem")),
            "--user-key",
            path_arg(&pki.join("admin.key")),
        ],
    );
    // Another node's certificate for this name: refused before it is written.
    let o = herd_with(
        &file,
        &[
            "node",
            "add",
            "n2",
            &addr(1),
            "--node-cert",
            path_arg(&n1_cert),
        ],
    );
    assert!(!o.status.success());
    assert!(
        text(&o).contains("not node:n2"),
        "a wrong node certificate is named:\n{}",
        text(&o)
    );
    // The same name twice: refused.
    let o = herd_with(&file, &["node", "add", "n1", &addr(1)]);
    assert!(!o.status.success(), "a second n1 was added");
    ok_with(
        &file,
        &[
            "node",
            "add",
            "n2",
            &addr(1),
            "--node-cert",
            path_arg(&n2_cert),
        ],
    );

    // Both agents answer through the new file, and it drives them.
    let ls: Value =
        serde_json::from_str(&ok_with(&file, &["node", "ls", "--json"])).expect("node ls --json");
    let up: Vec<(&str, bool)> = ls
        .as_array()
        .expect("array")
        .iter()
        .map(|n| (n["name"].as_str().unwrap_or("?"), n["up"] == true))
        .collect();
    assert_eq!(up, vec![("n1", true), ("n2", true)], "{ls}");
    let ps: Value = serde_json::from_str(&ok_with(&file, &["ps", "--json"])).expect("ps --json");
    let names: Vec<(&str, &str)> = ps
        .as_array()
        .expect("array")
        .iter()
        .map(|c| {
            (
                c["name"].as_str().unwrap_or("?"),
                c["node"].as_str().unwrap_or("?"),
            )
        })
        .collect();
    assert_eq!(names, vec![("w", "n2")], "{ps}");

    // A node whose agent is gone: `node ls` says so and exits 125.
    ok_with(&file, &["node", "add", "n9", "10.77.250.9:7700"]);
    let o = herd_with(&file, &["node", "ls"]);
    assert_eq!(o.status.code(), Some(125), "{}", text(&o));
    assert!(text(&o).contains("DOWN"), "{}", text(&o));

    // rm takes it out of the file only; the agents and containers stay.
    ok_with(&file, &["node", "rm", "n9"]);
    ok_with(&file, &["node", "rm", "n2"]);
    let o = herd_with(&file, &["node", "rm", "n2"]);
    assert!(!o.status.success(), "n2 removed twice");
    let ls: Value =
        serde_json::from_str(&ok_with(&file, &["node", "ls", "--json"])).expect("node ls --json");
    assert_eq!(ls.as_array().map(Vec::len), Some(1), "{ls}");
    assert!(
        lab.container("w").is_some_and(|c| c["node"] == "n2"),
        "w still runs on n2"
    );
    // A lab's own file is not edited by node add/rm.
    let o = lab.herd(&["node", "rm", "n1"]);
    assert!(!o.status.success());
    assert!(text(&o).contains("lab"), "{}", text(&o));
    lab.ok(&["rm", "-f", "w"]);
}
