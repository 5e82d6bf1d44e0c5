//! What a Podman user expects (issue #17), end to end on real labs with
//! real containers: one container name per cluster, a demo that keeps to
//! its own lab, OCI image semantics, one parser for durations and sizes.

mod common;

use std::path::{Path, PathBuf};

use common::{pid_of, stderr_of, text, wait_for, Lab};
use serde_json::Value;

/// The containers named `name` in `ps --json`, as (node, status).
fn listed(lab: &Lab, name: &str) -> Vec<(String, String)> {
    let mut v: Vec<(String, String)> = lab
        .ps_json()
        .as_array()
        .expect("ps --json is an array")
        .iter()
        .filter(|c| c["name"] == name)
        .map(|c| {
            (
                c["node"].as_str().unwrap_or("?").to_string(),
                c["status"].as_str().unwrap_or("?").to_string(),
            )
        })
        .collect();
    v.sort();
    v
}

/// A cluster file for the same lab that lists only `node`: a `herd` using
/// it cannot see the other nodes, as a second user whose check ran before
/// the first user's container existed (the race of two `run`s).
fn only_node(lab: &Lab, node: &str, dir: &Path) -> PathBuf {
    let mut c = common::cluster_json(lab);
    let nodes: Vec<Value> = c["nodes"]
        .as_array()
        .expect("nodes")
        .iter()
        .filter(|n| n["name"] == node)
        .cloned()
        .collect();
    assert_eq!(nodes.len(), 1, "no {node} in cluster.json");
    c["nodes"] = Value::Array(nodes);
    let p = dir.join(format!("only-{node}.json"));
    std::fs::write(&p, serde_json::to_vec(&c).unwrap()).unwrap();
    p
}

fn fails(lab: &Lab, args: &[&str]) -> String {
    let o = lab.herd(args);
    assert!(
        !o.status.success(),
        "herd {} succeeded:\n{}",
        args.join(" "),
        text(&o)
    );
    stderr_of(&o)
}

/// Names are unique across the cluster: a second `web` on another node is
/// refused by `run`; two that exist anyway (two runs that raced past the
/// check) are never picked silently by logs/stop/kill/rm/migrate, `--node`
/// says which; an agent refuses a migration in of a name it already has.
#[test]
fn a_second_web_on_another_node_is_refused() {
    let Some(lab) = Lab::up("podman_names", "nm", 2) else {
        return;
    };
    lab.import_busybox();
    lab.ok(&[
        "run", "--node", "n1", "--name", "web", "busybox", "--", "sleep", "1000",
    ]);
    let err = fails(
        &lab,
        &[
            "run", "--node", "n2", "--name", "web", "busybox", "--", "sleep", "1000",
        ],
    );
    assert!(
        err.contains("already in use on n1"),
        "refusal does not name n1: {err}"
    );
    assert_eq!(listed(&lab, "web"), vec![("n1".into(), "running".into())]);

    // The race: a second user whose check could not see n1's web.
    let tmp = tempfile::tempdir().unwrap();
    let n2_only = only_node(&lab, "n2", tmp.path());
    lab.ok(&[
        "--cluster",
        n2_only.to_str().unwrap(),
        "run",
        "--node",
        "n2",
        "--name",
        "web",
        "busybox",
        "--",
        "sleep",
        "1000",
    ]);
    assert_eq!(listed(&lab, "web").len(), 2);
    for args in [
        &["logs", "web"][..],
        &["stop", "-t", "1", "web"],
        &["kill", "web"],
        &["rm", "-f", "web"],
        &["exec", "web", "--", "true"],
        &["migrate", "web", "--to", "n1"],
    ] {
        let err = fails(&lab, args);
        assert!(
            err.contains("exists on 2 nodes (n1, n2)"),
            "herd {args:?} does not name both nodes: {err}"
        );
    }
    // Nothing was acted on: both still run.
    assert_eq!(
        listed(&lab, "web"),
        vec![
            ("n1".into(), "running".into()),
            ("n2".into(), "running".into())
        ]
    );

    // The target agent refuses a migration in of a name it has, whoever asks
    // (here n1 asked directly, past the CLI's own check).
    let err = direct_migrate(&lab, "web", "n1", "n2");
    assert!(
        err.contains("n2 already has a container named web"),
        "the target took it: {err}"
    );
    assert_eq!(listed(&lab, "web").len(), 2);

    // --node says which; the other is untouched.
    lab.ok(&["stop", "-t", "1", "--node", "n2", "web"]);
    lab.ok(&["rm", "--node", "n2", "web"]);
    assert_eq!(listed(&lab, "web"), vec![("n1".into(), "running".into())]);
    let err = fails(&lab, &["stop", "--node", "n2", "web"]);
    assert!(err.contains("no such container on n2: web"), "{err}");
    // With one left, plain names work again.
    lab.ok(&["migrate", "web", "--to", "n2"]);
    assert_eq!(listed(&lab, "web"), vec![("n2".into(), "running".into())]);
    lab.ok(&["rm", "-f", "web"]);
}

/// `Request::Migrate` to `from`'s agent, as the CLI would send it after
/// locating the container there; the agent's error message.
fn direct_migrate(lab: &Lab, name: &str, from: &str, to: &str) -> String {
    let cl = herd::cluster::Cluster::load(&lab.dir().join("cluster.json")).unwrap();
    let to_addr = cl.node(to).unwrap().addr;
    let rt = tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
        .unwrap();
    rt.block_on(async {
        let mut c = herd::client::Client::new(cl).unwrap();
        let r = c
            .call(
                from,
                herd_wire::Request::Migrate {
                    name: name.into(),
                    to: to.into(),
                    to_addr,
                    fs: herd_wire::migrate::FsMode::Diff,
                    compress: false,
                    memory: herd_wire::migrate::MemoryMode::Auto,
                    progress: false,
                },
            )
            .await;
        match r {
            Ok(herd_wire::Response::Error(e)) => e.message,
            Ok(other) => format!("{other:?}"),
            Err(e) => format!("{e:#}"),
        }
    })
}

/// The demo beside a running lab leaves that lab intact, refuses to run in
/// a lab that is already up (and leaves it up), and takes down only its own.
#[test]
fn the_demo_beside_a_running_lab_leaves_it_intact() {
    let Some(lab) = Lab::up("podman_demo", "dm", 1) else {
        return;
    };
    lab.import_busybox();
    lab.ok(&["run", "--name", "keep", "busybox", "--", "sleep", "1000"]);
    let pid_before = lab.container("keep").unwrap()["pid"].clone();

    // In a lab of its own name, beside ours.
    let demo_lab = format!("{}x", lab.name);
    let o = lab.herd(&["lab", "demo", "--name", &demo_lab]);
    assert!(o.status.success(), "demo failed:\n{}", text(&o));
    assert!(
        String::from_utf8_lossy(&o.stdout).contains("demo finished"),
        "{}",
        text(&o)
    );
    assert!(
        !lab.root.join(&demo_lab).join("cluster.json").exists(),
        "the demo left its lab up"
    );
    let keep = lab.container("keep").expect("our container is gone");
    assert_eq!(keep["status"], "running");
    assert_eq!(keep["pid"], pid_before, "our container was restarted");

    // In a lab that is already up (ours): refused, nothing touched.
    let o = lab.herd(&["lab", "demo", "--name", &lab.name]);
    assert!(!o.status.success(), "demo ran in a lab that is up");
    let err = stderr_of(&o);
    assert!(
        err.contains(&format!("lab {} is already up", lab.name)),
        "unclear refusal: {err}"
    );
    assert!(
        lab.dir().join("cluster.json").exists(),
        "the demo took our lab down"
    );
    let keep = wait_for(5, || lab.container("keep")).expect("our container is gone");
    assert_eq!(keep["status"], "running");
    assert_eq!(keep["pid"], pid_before);
    lab.ok(&["lab", "status"]);
}

// ------------------------------------------------- OCI image semantics

/// The script the image's Entrypoint runs: one line of what it sees, then
/// it stays up (exits on SIGTERM).
const REPORT: &str = r#"#!/bin/sh
echo "args=[$*] uid=$(id -u) gid=$(id -g) groups=[$(id -G)] pwd=$(pwd) greeting=$GREETING other=$OTHER home=$HOME"
trap 'exit 0' TERM
while true; do sleep 0.2; done
"#;

/// An OCI image layout built by umoci (Debian's package, offline, from
/// scratch): a static busybox, the report script as Entrypoint, Cmd
/// `from-cmd`, Env GREETING=image, WorkingDir /work, User app (1234, also
/// in group extra 2000). `None` (after a loud skip) without umoci.
fn umoci_image(test: &str, dir: &Path) -> Option<PathBuf> {
    let umoci = ["/usr/bin/umoci", "/usr/local/bin/umoci"]
        .into_iter()
        .map(PathBuf::from)
        .find(|p| p.exists());
    let Some(umoci) = umoci else {
        herd_testkit::unmet(test, "umoci is not installed (scripts/setup installs it)");
        return None;
    };
    let busybox = PathBuf::from("/bin/busybox");
    assert!(busybox.exists(), "no /bin/busybox (busybox-static)");
    let layout = dir.join("layout");
    let bundle = dir.join("bundle");
    let u = |args: &[&str]| {
        let o = std::process::Command::new(&umoci)
            .args(args)
            .output()
            .expect("run umoci");
        assert!(o.status.success(), "umoci {args:?}:\n{}", text(&o));
    };
    let l = layout.to_str().unwrap();
    let img = format!("{l}:t");
    u(&["init", "--layout", l]);
    u(&["new", "--image", &img]);
    u(&["unpack", "--image", &img, bundle.to_str().unwrap()]);
    let root = bundle.join("rootfs");
    for d in ["bin", "etc", "work", "home/app", "tmp"] {
        std::fs::create_dir_all(root.join(d)).unwrap();
    }
    std::fs::copy(&busybox, root.join("bin/busybox")).unwrap();
    for a in ["sh", "id", "pwd", "cat", "echo", "sleep", "env", "true"] {
        std::os::unix::fs::symlink("busybox", root.join("bin").join(a)).unwrap();
    }
    std::fs::write(
        root.join("etc/passwd"),
        "root:x:0:0:root:/root:/bin/sh\napp:x:1234:1234:app:/home/app:/bin/sh\n",
    )
    .unwrap();
    std::fs::write(
        root.join("etc/group"),
        "root:x:0:\napp:x:1234:\nextra:x:2000:app\n",
    )
    .unwrap();
    let report = root.join("bin/report");
    std::fs::write(&report, REPORT).unwrap();
    use std::os::unix::fs::PermissionsExt;
    std::fs::set_permissions(&report, std::fs::Permissions::from_mode(0o755)).unwrap();
    std::fs::set_permissions(root.join("tmp"), std::fs::Permissions::from_mode(0o1777)).unwrap();
    u(&["repack", "--image", &img, bundle.to_str().unwrap()]);
    u(&[
        "config",
        "--image",
        &img,
        "--config.entrypoint",
        "/bin/report",
        "--config.cmd",
        "from-cmd",
        "--config.env",
        "GREETING=image",
        "--config.workingdir",
        "/work",
        "--config.user",
        "app",
    ]);
    Some(layout)
}

/// The report line of container `name` (waits for it).
fn report_of(lab: &Lab, name: &str) -> String {
    wait_for(20, || {
        let l = lab.ok(&["logs", name]);
        l.lines()
            .find(|x| x.starts_with("args="))
            .map(str::to_string)
    })
    .unwrap_or_else(|| panic!("{name} never reported:\n{}", lab.ok(&["logs", name])))
}

/// An image made by a third-party tool, run with and without arguments:
/// Entrypoint + Cmd, arguments replace Cmd only, --entrypoint, User and
/// -u, WorkingDir and -w (run and exec), Env under --env-file under -e;
/// /etc/hostname, /etc/hosts, /etc/resolv.conf there and moving along.
#[test]
fn an_umoci_image_runs_with_podman_semantics() {
    let t = "podman_oci";
    if !herd_testkit::require_root(t) {
        return;
    }
    let tmp = tempfile::tempdir().unwrap();
    let Some(layout) = umoci_image(t, tmp.path()) else {
        return;
    };
    let Some(lab) = Lab::up(t, "oc", 2) else {
        return;
    };
    lab.ok(&["image", "import", "app", layout.to_str().unwrap()]);
    let run = |name: &str, extra: &[&str]| {
        let mut a = vec!["run", "--node", "n1", "--name", name];
        a.extend_from_slice(extra);
        lab.ok(&a);
        report_of(&lab, name)
    };
    let r = run("plain", &["app"]);
    assert_eq!(
        r,
        "args=[from-cmd] uid=1234 gid=1234 groups=[1234 2000] pwd=/work greeting=image other= home=/home/app"
    );
    // Arguments replace Cmd, not Entrypoint; with or without `--`.
    let r = run("args", &["app", "a", "-b"]);
    assert!(r.starts_with("args=[a -b] uid=1234 "), "{r}");
    let r = run("dashes", &["app", "--", "c"]);
    assert!(r.starts_with("args=[c] uid=1234 "), "{r}");
    // -u and -w.
    let r = run("root", &["-u", "0", "-w", "/tmp", "app"]);
    assert!(
        r.contains("uid=0 gid=0 ") && r.contains(" pwd=/tmp "),
        "{r}"
    );
    let r = run("grp", &["-u", "app:extra", "app"]);
    assert!(r.contains("uid=1234 gid=2000 "), "{r}");
    // Env: the image's, under --env-file, under -e.
    let envf = tmp.path().join("env");
    std::fs::write(&envf, "# a comment\n\nGREETING=file\nOTHER=o\n").unwrap();
    let f = envf.to_str().unwrap();
    let r = run("envf", &["--env-file", f, "app"]);
    assert!(r.contains(" greeting=file other=o "), "{r}");
    let r = run("enve", &["--env-file", f, "-e", "GREETING=cli", "app"]);
    assert!(r.contains(" greeting=cli other=o "), "{r}");
    // --entrypoint replaces the Entrypoint and drops the image's Cmd.
    lab.ok(&[
        "run",
        "--node",
        "n1",
        "--name",
        "ep",
        "--entrypoint",
        "/bin/sh",
        "app",
        "-c",
        "echo args=[ep $(id -u)]; sleep 1000",
    ]);
    assert_eq!(report_of(&lab, "ep"), "args=[ep 1234]");
    // A user the image does not have: refused with the reason.
    let o = lab.herd(&["run", "--name", "nouser", "-u", "nobody", "app"]);
    assert!(!o.status.success());
    assert!(
        stderr_of(&o).contains("no user nobody in the image's /etc/passwd"),
        "{}",
        text(&o)
    );
    assert!(lab.container("nouser").is_none());

    // exec: the container's WorkingDir and User.
    assert_eq!(lab.ok(&["exec", "plain", "--", "pwd"]).trim(), "/work");
    assert_eq!(lab.ok(&["exec", "plain", "--", "id", "-u"]).trim(), "1234");
    assert_eq!(lab.ok(&["exec", "root", "--", "pwd"]).trim(), "/tmp");

    // /etc/hostname, /etc/hosts, /etc/resolv.conf, and after a move.
    let etc = |what: &str| lab.ok(&["exec", "plain", "--", "cat", what]);
    assert_eq!(etc("/etc/hostname").trim(), "plain");
    assert!(etc("/etc/hosts").contains("localhost"));
    assert!(
        etc("/etc/hosts")
            .lines()
            .any(|l| l.split_whitespace().nth(1) == Some("plain")),
        "{}",
        etc("/etc/hosts")
    );
    let resolv = etc("/etc/resolv.conf");
    assert!(
        !resolv
            .lines()
            .any(|l| l.starts_with("nameserver 127.") || l.starts_with("nameserver ::1")),
        "a loopback name server the container cannot reach: {resolv}"
    );
    // They move with the container. A root one: on this machine root lacks
    // CAP_SYS_RESOURCE, so CRIU cannot dump another user's processes (the
    // agent refuses that move with the reason; ENVIRONMENT.md).
    lab.ok(&["migrate", "root", "--to", "n2"]);
    let etc = |what: &str| lab.ok(&["exec", "root", "--", "cat", what]);
    assert_eq!(etc("/etc/hostname").trim(), "root");
    assert!(etc("/etc/hosts").contains("root"));
    assert_eq!(lab.ok(&["exec", "root", "--", "pwd"]).trim(), "/tmp");
}

/// A `docker save` archive (no Docker here: written by hand in its format,
/// manifest.json + config + one layer tar) imports with its config and
/// runs; an archive that is neither refuses with one clear line.
#[test]
fn a_docker_save_archive_imports_and_runs() {
    use sha2::Digest;
    let Some(lab) = Lab::up("podman_docker", "dk", 1) else {
        return;
    };
    let tmp = tempfile::tempdir().unwrap();
    // The layer: a static busybox with sh and echo.
    let mut layer = tar::Builder::new(Vec::new());
    let mut add = |path: &str, data: &[u8], mode: u32| {
        let mut h = tar::Header::new_gnu();
        h.set_size(data.len() as u64);
        h.set_mode(mode);
        h.set_uid(0);
        h.set_gid(0);
        h.set_mtime(0);
        h.set_entry_type(tar::EntryType::Regular);
        h.set_cksum();
        layer.append_data(&mut h, path, data).unwrap();
    };
    add(
        "bin/busybox",
        &std::fs::read("/bin/busybox").unwrap(),
        0o755,
    );
    for a in ["sh", "echo", "sleep"] {
        let mut h = tar::Header::new_gnu();
        h.set_entry_type(tar::EntryType::Symlink);
        h.set_size(0);
        h.set_mode(0o777);
        h.set_uid(0);
        h.set_gid(0);
        h.set_mtime(0);
        h.set_cksum();
        layer
            .append_link(&mut h, format!("bin/{a}"), "busybox")
            .unwrap();
    }
    let layer = layer.into_inner().unwrap();
    let diff_id = format!("sha256:{}", hex::encode(sha2::Sha256::digest(&layer)));
    let config = serde_json::json!({
        "architecture": "amd64", "os": "linux",
        "config": {
            "Entrypoint": ["/bin/sh", "-c", "echo docker-save $GREETING $0; sleep 1000"],
            "Cmd": ["from-cmd"],
            "Env": ["GREETING=hello"],
        },
        "rootfs": {"type": "layers", "diff_ids": [diff_id]},
    });
    let config = serde_json::to_vec(&config).unwrap();
    let cid = hex::encode(sha2::Sha256::digest(&config));
    let manifest = serde_json::json!([{
        "Config": format!("{cid}.json"),
        "RepoTags": ["demo:latest"],
        "Layers": ["abc/layer.tar"],
    }]);
    let mut outer = tar::Builder::new(Vec::new());
    let mut put = |path: &str, data: &[u8]| {
        let mut h = tar::Header::new_gnu();
        h.set_size(data.len() as u64);
        h.set_mode(0o644);
        h.set_uid(0);
        h.set_gid(0);
        h.set_mtime(0);
        h.set_cksum();
        outer.append_data(&mut h, path, data).unwrap();
    };
    put("manifest.json", &serde_json::to_vec(&manifest).unwrap());
    put(&format!("{cid}.json"), &config);
    put("abc/layer.tar", &layer);
    let archive = tmp.path().join("saved.tar");
    std::fs::write(&archive, outer.into_inner().unwrap()).unwrap();

    lab.ok(&["image", "import", "saved", archive.to_str().unwrap()]);
    lab.ok(&["run", "--name", "ds", "saved"]);
    let line = wait_for(20, || {
        let l = lab.ok(&["logs", "ds"]);
        l.lines()
            .find(|x| x.starts_with("docker-save"))
            .map(str::to_string)
    })
    .unwrap_or_else(|| panic!("no output:\n{}", lab.ok(&["logs", "ds"])));
    assert_eq!(line, "docker-save hello from-cmd");
    // Not a rootfs as before: no manifest.json at its root.
    assert!(
        lab.herd(&["exec", "ds", "--", "sh", "-c", "test -e /manifest.json"])
            .status
            .code()
            == Some(1)
    );

    // A file that is no image at all.
    let junk = tmp.path().join("junk.bin");
    std::fs::write(&junk, b"this is not an archive\n").unwrap();
    let o = lab.herd(&["image", "import", "junk", junk.to_str().unwrap()]);
    assert!(!o.status.success(), "junk imported:\n{}", text(&o));
    let err = stderr_of(&o);
    assert_eq!(err.trim().lines().count(), 1, "{err}");
}

// ------------------------------------------ one parser for durations, sizes

/// The header line of a scenario file.
fn scenario_header(p: &Path) -> String {
    std::fs::read_to_string(p)
        .unwrap()
        .lines()
        .next()
        .unwrap_or_default()
        .to_string()
}

/// Every duration form on every command that takes a duration, and every
/// size form on `run --memory`; bad forms refused with the same line;
/// `--cpus` above the host's cores refused with the reason.
#[test]
fn every_duration_and_size_form_on_every_command() {
    let tmp = tempfile::tempdir().unwrap();
    // Offline commands first: scenario gen --length, sim's schedule.
    let sc = tmp.path().join("s.txt");
    for (form, secs) in [
        ("1h", 3600),
        ("2h30m", 9000),
        ("5400", 5400),
        ("1.5h", 5400),
    ] {
        let o = common::herd(&[
            "scenario",
            "gen",
            "--containers",
            "4",
            "--hosts",
            "2",
            "--length",
            form,
            "--out",
            sc.to_str().unwrap(),
        ]);
        assert!(o.status.success(), "--length {form}:\n{}", text(&o));
        let h = scenario_header(&sc);
        assert!(
            h.contains(&format!("length_s={secs} ")) || h.ends_with(&format!("length_s={secs}")),
            "--length {form}: {h}"
        );
    }
    for (flag, form) in [
        ("--window", "2m30s"),
        ("--period", "1m"),
        ("--delay", "90"),
        ("--cooldown", "0.5h"),
        ("--sample-every", "10s"),
    ] {
        let out = tmp.path().join(format!("sim{flag}"));
        let o = common::herd(&[
            "sim",
            sc.to_str().unwrap(),
            "--policy",
            "none",
            flag,
            form,
            "--out",
            out.to_str().unwrap(),
        ]);
        assert!(o.status.success(), "sim {flag} {form}:\n{}", text(&o));
    }
    for args in [
        &["scenario", "gen", "--length", "soon", "--out", "x"][..],
        &["sim", "x", "--window", "2parsecs", "--out", "x"],
        &["stop", "-t", "forever", "x"],
        &["pong", "x", "--hosts", "n1,n2", "--dwell", "1y2"],
        &["logs", "--since", "yesterday", "x"],
        &["monitor", "--out", "x", "--duration", "5 apples"],
    ] {
        let o = common::herd(args);
        assert_eq!(o.status.code(), Some(125), "herd {args:?}:\n{}", text(&o));
        let err = stderr_of(&o);
        assert!(
            err.contains("bad duration") || err.contains("bad --since"),
            "herd {args:?}: {err}"
        );
    }

    let Some(lab) = Lab::up("podman_forms", "fm", 2) else {
        return;
    };
    lab.import_busybox();
    // A container that ends on SIGTERM, so stop returns at once.
    let sh = "trap 'exit 0' TERM; echo up; while true; do sleep 0.1; done";
    for (i, (form, bytes)) in [
        ("64m", 64u64 << 20),
        ("1.5g", 3 << 29),
        ("64MiB", 64 << 20),
        ("67108864", 64 << 20),
        ("96MB", 96 << 20),
    ]
    .into_iter()
    .enumerate()
    {
        let name = format!("m{i}");
        lab.ok(&[
            "run", "--name", &name, "--memory", form, "busybox", "sh", "-c", sh,
        ]);
        let c = lab.container(&name).unwrap();
        assert_eq!(c["memory_bytes"], bytes, "--memory {form}");
    }
    let o = lab.herd(&["run", "--name", "bad", "--memory", "64q", "busybox", "true"]);
    assert!(!o.status.success());
    assert!(stderr_of(&o).contains("bad size \"64q\""), "{}", text(&o));
    // stop -t in each form (rounded up to whole seconds on the wire).
    for (i, form) in ["500ms", "1s", "2m30s", "1h", "3"].into_iter().enumerate() {
        let name = format!("m{i}");
        lab.ok(&["stop", "-t", form, &name]);
        assert_eq!(
            lab.container(&name).unwrap()["status"],
            "stopped",
            "stop -t {form}"
        );
    }
    // logs --since: a duration or a time.
    lab.ok(&["run", "--name", "lg", "busybox", "sh", "-c", sh]);
    wait_for(10, || lab.ok(&["logs", "lg"]).contains("up").then_some(()))
        .expect("lg never said up");
    for form in ["1h", "10m", "90", "2m30s", "2000-01-01T00:00:00Z"] {
        assert!(
            lab.ok(&["logs", "--since", form, "lg"]).contains("up"),
            "logs --since {form} lost the line"
        );
    }
    assert_eq!(
        lab.ok(&["logs", "--since", "2999-01-01T00:00:00Z", "lg"]),
        ""
    );
    // pong --dwell in each form: one hop each.
    for form in ["500ms", "1s", "0.2", "1s500ms"] {
        lab.ok(&[
            "pong", "lg", "--hosts", "n1,n2", "--count", "1", "--dwell", form,
        ]);
    }
    // monitor --duration.
    let mon = tmp.path().join("mon");
    lab.ok(&[
        "monitor",
        "--out",
        mon.to_str().unwrap(),
        "--duration",
        "1s500ms",
    ]);
    assert!(mon.join("hosts.csv").exists());
    // --cpus above the host's cores: refused with the reason.
    let cores = std::thread::available_parallelism().unwrap().get();
    let too_many = (cores + 1).to_string();
    let o = lab.herd(&[
        "run", "--name", "cpu", "--cpus", &too_many, "busybox", "true",
    ]);
    assert!(!o.status.success(), "--cpus {too_many} accepted");
    let err = stderr_of(&o);
    assert!(
        err.contains(&format!("more than the {cores} CPU cores")),
        "{err}"
    );
    assert!(lab.container("cpu").is_none());
}

/// The exit status of `herd args`.
fn code(lab: &Lab, args: &[&str]) -> (Option<i32>, String) {
    let o = lab.herd(args);
    (o.status.code(), text(&o))
}

/// Podman's exit codes: 125 for herd's own errors (usage, no such
/// container or image, a dead agent), 126 for a command that cannot be
/// invoked, 127 for one that is not there, else the command's own status.
#[test]
fn exit_codes_are_podmans() {
    let Some(lab) = Lab::up("podman_exit", "ex", 1) else {
        return;
    };
    lab.import_busybox();
    lab.ok(&["run", "--name", "c", "busybox", "--", "sleep", "1000"]);
    // herd's own errors: 125.
    for args in [
        &["run", "--no-such-flag"][..],
        &["exec"],
        &["ps", "--format", "yaml"],
        &["exec", "nosuch", "--", "true"],
        &["stop", "nosuch"],
        &["start", "nosuch"],
        &["restart", "nosuch"],
        &["run", "--name", "x", "nosuchimage", "--", "true"],
        &["exec", "-w", "relative", "c", "--", "true"],
        &["exec", "-u", "nosuchuser", "c", "--", "true"],
    ] {
        let (c, t) = code(&lab, args);
        assert_eq!(c, Some(125), "herd {args:?}:\n{t}");
    }
    // --help and --version are not errors.
    for args in [&["--help"][..], &["--version"], &["run", "--help"]] {
        assert_eq!(code(&lab, args).0, Some(0), "herd {args:?}");
    }
    assert!(
        lab.ok(&["--help"]).contains("127"),
        "--help lacks the exit codes"
    );
    // A dead agent: the cluster file's node at an address nobody serves.
    let tmp = tempfile::tempdir().unwrap();
    let mut cl = common::cluster_json(&lab);
    cl["nodes"][0]["addr"] = Value::String("127.0.0.1:9".into());
    let dead = tmp.path().join("dead.json");
    std::fs::write(&dead, serde_json::to_vec(&cl).unwrap()).unwrap();
    let dead = dead.to_str().unwrap();
    for args in [
        &["--cluster", dead, "ps"][..],
        &["--cluster", dead, "exec", "c", "--", "true"],
    ] {
        let (c, t) = code(&lab, args);
        assert_eq!(c, Some(125), "herd {args:?}:\n{t}");
    }
    // The command's own status, through exec.
    assert_eq!(
        code(&lab, &["exec", "c", "--", "sh", "-c", "exit 3"]).0,
        Some(3)
    );
    assert_eq!(code(&lab, &["exec", "c", "--", "true"]).0, Some(0));
    // Not there: 127; there but not executable: 126 (exec and run alike).
    lab.ok(&["exec", "c", "--", "sh", "-c", "echo x > /tmp/plain"]);
    for (args, want, what) in [
        (
            &["exec", "c", "--", "/no/such/program"][..],
            127,
            "/no/such/program",
        ),
        (&["exec", "c", "--", "nosuchcmd"], 127, "nosuchcmd"),
        (&["exec", "c", "--", "/tmp/plain"], 126, "/tmp/plain"),
        (&["exec", "c", "--", "/tmp"], 126, "/tmp"),
        (
            &["exec", "-w", "/tmp", "c", "--", "./plain"],
            126,
            "./plain",
        ),
        (
            &["run", "--name", "r1", "busybox", "--", "/no/such"],
            127,
            "/no/such",
        ),
        (
            &["run", "--name", "r2", "busybox", "--", "/etc"],
            126,
            "/etc",
        ),
        (
            &[
                "run",
                "--name",
                "r3",
                "--entrypoint",
                "nosuchcmd",
                "busybox",
            ],
            127,
            "nosuchcmd",
        ),
    ] {
        let o = lab.herd(args);
        assert_eq!(o.status.code(), Some(want), "herd {args:?}:\n{}", text(&o));
        let err = stderr_of(&o);
        assert!(err.contains(what), "herd {args:?}: {err}");
        assert_eq!(err.trim().lines().count(), 1, "herd {args:?}: {err}");
    }
    // A run that could not start its command left nothing.
    for n in ["r1", "r2", "r3"] {
        assert!(lab.container(n).is_none(), "{n} left in ps");
        assert!(
            !lab.dir().join("n1/state/containers").join(n).exists(),
            "{n} left its dir"
        );
    }
    // The check is not vacuous: an executable there runs.
    assert_eq!(lab.ok(&["exec", "c", "--", "/bin/echo", "hi"]), "hi\n");
    // wait prints the container's status and exits 0 (as Podman's).
    lab.ok(&["run", "--name", "w", "busybox", "--", "sh", "-c", "exit 5"]);
    let o = lab.herd(&["wait", "w"]);
    assert_eq!(o.status.code(), Some(0), "{}", text(&o));
    assert_eq!(String::from_utf8_lossy(&o.stdout), "5\n");
}

/// The log lines `n <i>` of a counter container, in order.
fn counter_lines(lab: &Lab, name: &str) -> Vec<u64> {
    lab.ok(&["logs", name])
        .lines()
        .filter_map(|l| l.strip_prefix("n "))
        .filter_map(|n| n.trim().parse().ok())
        .collect()
}

/// start, restart, run --rm, exec -u/-w, ps --format json,
/// checkpoint/restore --print-stats.
#[test]
fn start_restart_rm_and_exec_as_podman() {
    let Some(lab) = Lab::up("podman_verbs", "vb", 1) else {
        return;
    };
    lab.import_busybox();
    let counter = "i=0; while true; do i=$((i+1)); echo \"n $i\"; sleep 0.2; done";
    lab.ok(&["run", "--name", "ctr", "busybox", "--", "sh", "-c", counter]);
    let runs_again = |lab: &Lab, starts: usize| {
        wait_for(30, || {
            let v = counter_lines(lab, "ctr");
            // The counter began again `starts` times and went on the last time.
            (v.iter().filter(|&&n| n == 1).count() == starts && v.last() >= Some(&3)).then_some(())
        })
        .unwrap_or_else(|| {
            panic!(
                "counter did not start {starts} times: {:?}",
                counter_lines(lab, "ctr")
            )
        })
    };
    runs_again(&lab, 1);
    let pid1 = pid_of(&lab, "ctr");
    // Files written before survive a restart (same filesystem).
    lab.ok(&["exec", "ctr", "--", "sh", "-c", "echo kept > /root/f"]);

    // restart: a new process, the counter from 1 again.
    assert_eq!(lab.ok(&["restart", "-t", "1", "ctr"]), "ctr\n");
    let c = lab.container("ctr").unwrap();
    assert_eq!(c["status"], "running", "{c}");
    let pid2 = pid_of(&lab, "ctr");
    assert_ne!(pid1, pid2, "restart kept the process");
    assert!(!common::process_alive(pid1), "old process {pid1} alive");
    runs_again(&lab, 2);
    assert_eq!(lab.ok(&["exec", "ctr", "--", "cat", "/root/f"]), "kept\n");

    // stop, then start.
    lab.ok(&["stop", "-t", "1", "ctr"]);
    assert_eq!(lab.container("ctr").unwrap()["status"], "stopped");
    assert_eq!(lab.ok(&["start", "ctr"]), "ctr\n");
    let pid3 = pid_of(&lab, "ctr");
    assert!(pid3 != pid2 && pid3 != pid1);
    runs_again(&lab, 3);
    // start of a running one: nothing changes.
    lab.ok(&["start", "ctr"]);
    assert_eq!(pid_of(&lab, "ctr"), pid3);
    // A checkpointed one is restored, not started. checkpoint/restore
    // --print-stats: Podman's statistics JSON, in microseconds.
    let st: Value = serde_json::from_str(&lab.ok(&["checkpoint", "--print-stats", "ctr"])).unwrap();
    let total = st["podman_checkpoint_duration"].as_u64().unwrap();
    let cs = &st["container_statistics"][0];
    assert_eq!(cs["Name"], "ctr", "{st}");
    let frozen = cs["criu_statistics"]["frozen_time"].as_u64().unwrap();
    assert!(frozen > 0 && frozen <= total, "{st}");
    assert!(
        cs["criu_statistics"]["pages_written"].as_u64().unwrap() > 0,
        "{st}"
    );
    let err = fails(&lab, &["start", "ctr"]);
    assert!(err.contains("restore it instead"), "{err}");
    let st: Value = serde_json::from_str(&lab.ok(&["restore", "--print-stats", "ctr"])).unwrap();
    let total = st["podman_restore_duration"].as_u64().unwrap();
    let crs = &st["container_statistics"][0]["criu_statistics"];
    let restore = crs["restore_time"].as_u64().unwrap();
    assert!(restore > 0 && restore <= total, "{st}");
    assert!(crs["pages_restored"].as_u64().unwrap() > 0, "{st}");
    assert_eq!(lab.container("ctr").unwrap()["status"], "running");
    assert_eq!(
        code(&lab, &["checkpoint", "--print-stats", "--json", "ctr"]).0,
        Some(125)
    );

    // exec -u / -w.
    assert_eq!(
        lab.ok(&[
            "exec",
            "-u",
            "65534:65533",
            "-w",
            "/tmp",
            "ctr",
            "--",
            "sh",
            "-c",
            "id -u; id -g; pwd"
        ]),
        "65534\n65533\n/tmp\n"
    );
    assert_eq!(
        lab.ok(&["exec", "ctr", "--", "sh", "-c", "id -u; pwd"]),
        "0\n/\n"
    );

    // ps --format json: the same containers and keys as ps --json.
    let a: Value = serde_json::from_str(&lab.ok(&["ps", "--format", "json"])).unwrap();
    let b = lab.ps_json();
    let keys = |v: &Value| -> Vec<Vec<String>> {
        v.as_array()
            .unwrap()
            .iter()
            .map(|c| c.as_object().unwrap().keys().cloned().collect())
            .collect()
    };
    assert_eq!(keys(&a), keys(&b));
    assert_eq!(a[0]["name"], "ctr");

    // run --rm: gone, with everything it held, once its process exits.
    let gone = |lab: &Lab, name: &str| {
        let cg = format!("/sys/fs/cgroup/memory/herd/{}/n1/{name}", lab.name);
        let mounted = std::fs::read_to_string("/proc/self/mountinfo")
            .unwrap()
            .lines()
            .any(|l| l.contains(&format!("/containers/{name}/")));
        lab.container(name).is_none()
            && !lab.dir().join("n1/state/containers").join(name).exists()
            && !std::path::Path::new(&cg).exists()
            && !mounted
    };
    lab.ok(&[
        "run",
        "--rm",
        "--name",
        "once",
        "busybox",
        "--",
        "sh",
        "-c",
        "sleep 1; echo bye",
    ]);
    wait_for(30, || gone(&lab, "once").then_some(()))
        .unwrap_or_else(|| panic!("--rm container left: {:?}", lab.container("once")));
    // And when it is stopped.
    lab.ok(&[
        "run", "--rm", "--name", "long", "busybox", "--", "sleep", "1000",
    ]);
    assert_eq!(lab.container("long").unwrap()["status"], "running");
    lab.ok(&["stop", "-t", "1", "long"]);
    wait_for(30, || gone(&lab, "long").then_some(()))
        .unwrap_or_else(|| panic!("stopped --rm container left: {:?}", lab.container("long")));
    // Without --rm a container stays after it exits.
    lab.ok(&["run", "--name", "stays", "busybox", "--", "true"]);
    wait_for(30, || {
        (lab.container("stays").unwrap()["status"] == "stopped").then_some(())
    })
    .expect("stays never stopped");
    assert!(!gone(&lab, "stays"));
    lab.ok(&["rm", "stays"]);
    lab.ok(&["rm", "-f", "ctr"]);
    assert!(lab
        .leftovers()
        .iter()
        .all(|l| !l.contains("once") && !l.contains("long")));
}

/// `-v HOST:CTR[:ro]`: bad specs and a missing host path refused (125,
/// nothing made); writes go through to the host, `:ro` refuses them; the
/// mounts are in inspect. A move to a node without the host path is
/// refused at Prepare and leaves the container running on the source,
/// still writing through its mount; with the path there the move
/// re-binds it on the target, as do checkpoint and restore.
#[test]
fn bind_mounts_with_v_and_their_moves() {
    let Some(lab) = Lab::up("podman_volumes", "vo", 2) else {
        return;
    };
    lab.import_busybox();
    let tmp = tempfile::tempdir().unwrap();
    let rw = tmp.path().join("rw");
    let ro = tmp.path().join("ro");
    std::fs::create_dir(&rw).unwrap();
    std::fs::create_dir(&ro).unwrap();
    std::fs::write(rw.join("from-host"), "hello\n").unwrap();
    std::fs::write(ro.join("r"), "only read\n").unwrap();
    let (rw_s, ro_s) = (rw.to_str().unwrap(), ro.to_str().unwrap());
    let missing = tmp.path().join("missing");
    for (spec, says) in [
        ("data:/data".to_string(), "not absolute"),
        (format!("{rw_s}:/data:rx"), "unknown option"),
        (rw_s.to_string(), "expected HOST:CONTAINER"),
        (format!("{rw_s}:/proc"), "/proc"),
        (format!("{}:/data", missing.display()), "is not there on n1"),
    ] {
        let (c, out) = code(
            &lab,
            &[
                "run", "--name", "bad", "-v", &spec, "busybox", "sleep", "100",
            ],
        );
        assert_eq!(c, Some(125), "-v {spec}: {out}");
        assert!(out.contains(says), "-v {spec} does not say {says:?}: {out}");
        assert!(lab.container("bad").is_none(), "-v {spec} left a container");
    }

    let v_rw = format!("{rw_s}:/data");
    let v_ro = format!("{ro_s}:/ro:ro");
    lab.ok(&[
        "run", "--node", "n1", "--name", "vol", "-v", &v_rw, "-v", &v_ro, "busybox", "sleep",
        "1000",
    ]);
    assert_eq!(
        lab.ok(&["exec", "vol", "cat", "/data/from-host"]),
        "hello\n"
    );
    lab.ok(&["exec", "vol", "sh", "-c", "echo one > /data/w"]);
    assert_eq!(std::fs::read_to_string(rw.join("w")).unwrap(), "one\n");
    let ro_write = lab.herd(&["exec", "vol", "sh", "-c", "echo x > /ro/f"]);
    assert!(!ro_write.status.success(), "write to :ro worked");
    assert!(!ro.join("f").exists());
    assert_eq!(lab.ok(&["exec", "vol", "cat", "/ro/r"]), "only read\n");
    let insp: Value = serde_json::from_str(&lab.ok(&["inspect", "vol"])).unwrap();
    let vols = &insp[0]["volumes"];
    assert_eq!(vols[0]["host"], rw_s, "{insp}");
    assert_eq!(vols[0]["container"], "/data", "{insp}");
    assert_eq!(vols[0]["read_only"], false, "{insp}");
    assert_eq!(vols[1]["read_only"], true, "{insp}");
    assert_eq!(lab.container("vol").unwrap()["volumes"], *vols);

    // The host path missing on the target: refused, the source untouched.
    let pid = pid_of(&lab, "vol");
    let gone = tmp.path().join("rw.elsewhere");
    std::fs::rename(&rw, &gone).unwrap();
    let err = fails(&lab, &["migrate", "vol", "--to", "n2"]);
    assert!(
        err.contains(rw_s) && err.contains("not there on n2"),
        "refusal does not name the path and node: {err}"
    );
    assert_eq!(listed(&lab, "vol"), vec![("n1".into(), "running".into())]);
    assert_eq!(pid_of(&lab, "vol"), pid);
    lab.ok(&["exec", "vol", "sh", "-c", "echo two >> /data/w"]);
    assert_eq!(
        std::fs::read_to_string(gone.join("w")).unwrap(),
        "one\ntwo\n"
    );
    std::fs::rename(&gone, &rw).unwrap();

    // With it there: moved, the same host directory bound on n2.
    lab.ok(&["migrate", "vol", "--to", "n2"]);
    assert_eq!(listed(&lab, "vol"), vec![("n2".into(), "running".into())]);
    assert_eq!(lab.ok(&["exec", "vol", "cat", "/data/w"]), "one\ntwo\n");
    lab.ok(&["exec", "vol", "sh", "-c", "echo three >> /data/w"]);
    assert_eq!(
        std::fs::read_to_string(rw.join("w")).unwrap(),
        "one\ntwo\nthree\n"
    );
    assert!(!lab
        .herd(&["exec", "vol", "sh", "-c", "echo x > /ro/f"])
        .status
        .success());
    assert!(!ro.join("f").exists());

    // checkpoint + restore on n2 bind it again.
    lab.ok(&["checkpoint", "vol"]);
    lab.ok(&["restore", "vol"]);
    lab.ok(&["exec", "vol", "sh", "-c", "echo four >> /data/w"]);
    assert_eq!(
        std::fs::read_to_string(rw.join("w")).unwrap(),
        "one\ntwo\nthree\nfour\n"
    );
    lab.ok(&["rm", "-f", "vol"]);
    // rm leaves the host's data alone.
    assert_eq!(
        std::fs::read_to_string(ro.join("r")).unwrap(),
        "only read\n"
    );
    assert!(rw.join("from-host").exists());
}

/// `herd stats --no-stream --json` rows, or `None` while a name has none.
fn stats_rows(lab: &Lab, names: &[&str]) -> Option<Vec<Value>> {
    let mut args = vec!["stats", "--no-stream", "--json"];
    args.extend_from_slice(names);
    let o = lab.herd(&args);
    if !o.status.success() {
        return None;
    }
    let v: Value = serde_json::from_slice(&o.stdout).ok()?;
    v.as_array().cloned()
}

/// `stats` as Podman's (from the agents' samples), checkpoint's
/// `--compress` and `--tcp-established`, and exec with the container's
/// environment.
#[test]
fn stats_compress_and_exec_env_as_podman() {
    let Some(lab) = Lab::up("podman_stats", "st", 1) else {
        return;
    };
    lab.import_busybox();
    lab.ok(&[
        "run", "--name", "st", "--memory", "64m", "-e", "FOO=bar", "busybox", "sleep", "1000",
    ]);
    lab.ok(&[
        "run",
        "--name",
        "busy",
        "busybox",
        "sh",
        "-c",
        "while :; do :; done",
    ]);

    // exec: the container's environment, exec's -e over it.
    assert_eq!(lab.ok(&["exec", "st", "sh", "-c", "echo $FOO"]), "bar\n");
    assert_eq!(
        lab.ok(&["exec", "-e", "FOO=baz", "st", "sh", "-c", "echo $FOO"]),
        "baz\n"
    );
    assert_eq!(lab.ok(&["exec", "st", "sh", "-c", "echo $HOME"]), "/root\n");

    // stats: a row per container with Podman's columns, in base units.
    let rows = wait_for(60, || {
        stats_rows(&lab, &["st", "busy"])
            .filter(|r| r.len() == 2 && r.iter().any(|c| c["cpu_percent"].as_f64() > Some(10.0)))
    })
    .unwrap_or_else(|| {
        panic!(
            "no stats with the busy loop busy: {:?}",
            stats_rows(&lab, &[])
        )
    });
    let busy = &rows[0];
    let st = &rows[1];
    assert_eq!(
        (busy["name"].as_str(), st["name"].as_str()),
        (Some("busy"), Some("st"))
    );
    assert_eq!(st["node"], "n1");
    assert!(busy["cpu_percent"].as_f64().unwrap() > 10.0, "{busy}");
    assert_eq!(st["mem_limit_bytes"], 64u64 << 20, "{st}");
    let usage = st["mem_usage_bytes"].as_u64().unwrap();
    assert!(usage > 0 && usage < 64 << 20, "{st}");
    let pct = st["mem_percent"].as_f64().unwrap();
    assert!(
        (pct - usage as f64 * 100.0 / (64u64 << 20) as f64).abs() < 1e-6,
        "{st}"
    );
    // Without --memory the limit is the host's memory.
    assert!(
        busy["mem_limit_bytes"].as_u64().unwrap() > 64 << 20,
        "{busy}"
    );
    assert!(st["pids"].as_u64().unwrap() >= 1, "{st}");
    for k in [
        "net_rx_bytes",
        "net_tx_bytes",
        "block_read_bytes",
        "block_write_bytes",
    ] {
        assert!(st[k].is_u64(), "no {k}: {st}");
    }
    let table = lab.ok(&["stats", "--no-stream"]);
    for col in [
        "CPU %",
        "MEM USAGE / LIMIT",
        "MEM %",
        "NET IO",
        "BLOCK IO",
        "PIDS",
    ] {
        assert!(table.contains(col), "no {col} column:\n{table}");
    }
    assert!(table.lines().any(|l| l.starts_with("st ")), "{table}");
    let (c, out) = code(&lab, &["stats", "--no-stream", "nosuch"]);
    assert_eq!(c, Some(125), "{out}");
    assert!(out.contains("nosuch"), "{out}");
    lab.ok(&["rm", "-f", "busy"]);

    // checkpoint --compress: refused when unknown or against the name,
    // and the container keeps running; else the archive is what it says.
    let tmp = tempfile::tempdir().unwrap();
    let tar = tmp.path().join("a.tar");
    let zst = tmp.path().join("a.tar.zst");
    let (tar_s, zst_s) = (tar.to_str().unwrap(), zst.to_str().unwrap());
    for (args, says) in [
        (vec!["--export", tar_s, "--compress", "gzip"], "not gzip"),
        (
            vec!["--export", tar_s, "--compress", "zstd"],
            "must end in .zst",
        ),
        (
            vec!["--export", zst_s, "--compress", "none"],
            "ends in .zst",
        ),
        (vec!["--compress", "zstd"], "--export"),
    ] {
        let mut a = vec!["checkpoint", "-R"];
        a.extend(args.iter().copied());
        a.push("st");
        let (c, out) = code(&lab, &a);
        assert_eq!(c, Some(125), "{a:?}: {out}");
        assert!(out.contains(says), "{a:?} does not say {says:?}: {out}");
        assert_eq!(lab.container("st").unwrap()["status"], "running");
    }
    assert!(!tar.exists() && !zst.exists());
    lab.ok(&[
        "checkpoint",
        "-R",
        "--tcp-established",
        "--export",
        zst_s,
        "--compress",
        "zstd",
        "st",
    ]);
    let head = std::fs::read(&zst).unwrap();
    assert_eq!(&head[..4], &[0x28, 0xb5, 0x2f, 0xfd], "not zstd");
    lab.ok(&["checkpoint", "-R", "--export", tar_s, "-c", "none", "st"]);
    let head = std::fs::read(&tar).unwrap();
    assert_eq!(&head[257..262], b"ustar", "not a tar");
    lab.ok(&["checkpoint", "--tcp-established", "st"]);
    lab.ok(&["restore", "--tcp-established", "st"]);
    assert_eq!(lab.ok(&["exec", "st", "sh", "-c", "echo $FOO"]), "bar\n");
    lab.ok(&["rm", "-f", "st"]);
}

/// `herd ARGS` parsed as JSON (it must succeed).
fn json_of(lab: &Lab, args: &[&str]) -> Value {
    let out = lab.ok(args);
    serde_json::from_str(&out).unwrap_or_else(|e| panic!("herd {args:?}: not JSON ({e}): {out}"))
}

/// JSON format 2 (docs/json.md), each output against what the lab has:
/// `version --json` names the format; status lowercase; `image ls`'s
/// `created_ns`; `lab status`, `top`, `migrate` (compress as the
/// algorithm) and `pong` (a hop list) as JSON; `ps -a -q --format json`.
/// Then a move seen by `ps`: one entry per name, the source's, while the
/// target has staged its copy (held after its build), and the target's
/// once it runs. Last, two `run`s of one name racing on two nodes.
#[test]
fn json_format_2_and_one_entry_per_move() {
    let v: Value = serde_json::from_str(&common::herd_ok(&["version", "--json"])).unwrap();
    assert_eq!(v["json_format"], 2, "{v}");
    assert!(v["protocol"].as_u64().is_some_and(|p| p >= 6), "{v}");
    assert_eq!(v["version"], env!("CARGO_PKG_VERSION"), "{v}");

    let Some(lab) = Lab::up("podman_json", "js", 2) else {
        return;
    };
    lab.import_busybox();
    let t0_ns = (common::now_s() * 1e9) as u64;
    lab.ok(&[
        "run",
        "--node",
        "n1",
        "--name",
        "c",
        "busybox",
        "sh",
        "-c",
        "i=0; while true; do i=$((i+1)); echo \"n $i\"; sleep 0.2; done",
    ]);
    lab.ok(&[
        "run", "--node", "n2", "--name", "done", "busybox", "sh", "-c", "exit 3",
    ]);
    wait_for(30, || {
        (lab.container("done")?["status"] == "stopped").then_some(())
    })
    .expect("done never stopped");

    // Status lowercase in JSON as in the table; ps -a -q --format json is
    // ps --json (JSON wins over -q, as Podman's --format over its -q).
    let ps = lab.ps_json();
    let c = lab.container("c").unwrap();
    assert_eq!(c["status"], "running", "{c}");
    let d = lab.container("done").unwrap();
    assert_eq!(
        (d["status"].as_str(), d["exit_code"].as_i64()),
        (Some("stopped"), Some(3)),
        "{d}"
    );
    let table = lab.ok(&["ps"]);
    assert!(
        table
            .lines()
            .any(|l| l.starts_with("c ") && l.contains(" running ")),
        "{table}"
    );
    assert!(
        table
            .lines()
            .any(|l| l.starts_with("done ") && l.contains(" exited(3) ")),
        "{table}"
    );
    let q: Value = serde_json::from_str(&lab.ok(&["ps", "-a", "-q", "--format", "json"])).unwrap();
    let names = |v: &Value| -> Vec<String> {
        let mut n: Vec<String> = v
            .as_array()
            .unwrap()
            .iter()
            .map(|c| c["name"].as_str().unwrap().to_string())
            .collect();
        n.sort();
        n
    };
    assert_eq!(names(&q), ["c", "done"]);
    assert_eq!(names(&q), names(&ps));
    assert_eq!(lab.ok(&["ps", "-a", "-q"]).lines().count(), 2);

    // image ls --json: created_ns beside format 1's created (seconds).
    let imgs = json_of(&lab, &["image", "ls", "--json"]);
    let imgs = imgs.as_array().unwrap();
    assert_eq!(imgs.len(), 2, "busybox on each node: {imgs:?}");
    for i in imgs {
        let (ns, s) = (
            i["created_ns"].as_u64().unwrap(),
            i["created"].as_u64().unwrap(),
        );
        assert_eq!(ns, s * 1_000_000_000, "{i}");
        assert!(
            ns > 0 && ns <= t0_ns + 1_000_000_000,
            "created in the future: {i}"
        );
        assert_eq!(i["name"], "busybox", "{i}");
    }

    // lab status --json: each node, up, with the containers it holds.
    let cl = common::cluster_json(&lab);
    let st = json_of(&lab, &["lab", "status", "--json"]);
    let st = st.as_array().unwrap();
    assert_eq!(st.len(), 2, "{st:?}");
    for (n, (name, count)) in st.iter().zip([("n1", 1), ("n2", 1)]) {
        assert_eq!(n["name"], name, "{n}");
        assert_eq!(n["up"], true, "{n}");
        assert_eq!(n["containers"], count, "{n}");
        assert!(n["error"].is_null(), "{n}");
        let addr = cl["nodes"]
            .as_array()
            .unwrap()
            .iter()
            .find(|x| x["name"] == name)
            .unwrap()["addr"]
            .clone();
        assert_eq!(n["addr"], addr, "{n}");
    }

    // top --json: one snapshot with both hosts and the running container.
    let snap = wait_for(30, || {
        let v = json_of(&lab, &["top", "--json"]);
        v["containers"]
            .as_array()?
            .iter()
            .any(|c| c["name"] == "c")
            .then_some(v)
    })
    .expect("top --json never showed c");
    let hosts: Vec<&Value> = snap["hosts"].as_array().unwrap().iter().collect();
    assert_eq!(
        hosts
            .iter()
            .map(|h| h["node"].as_str().unwrap())
            .collect::<Vec<_>>(),
        ["n1", "n2"]
    );
    for h in &hosts {
        let (used, total) = (
            h["memory_used_bytes"].as_u64().unwrap(),
            h["memory_total_bytes"].as_u64().unwrap(),
        );
        assert!(used > 0 && used < total, "{h}");
        assert!(h["cores"].as_f64().unwrap() > 0.0, "{h}");
        assert!(h["time_ns"].as_u64().unwrap() >= t0_ns, "{h}");
    }
    let tc = snap["containers"]
        .as_array()
        .unwrap()
        .iter()
        .find(|c| c["name"] == "c")
        .unwrap();
    assert_eq!(
        (tc["node"].as_str(), tc["image"].as_str()),
        (Some("n1"), Some("busybox")),
        "{tc}"
    );
    assert!(
        tc["pids"].as_u64().unwrap() >= 1 && tc["memory_bytes"].as_u64().unwrap() > 0,
        "{tc}"
    );
    assert!(snap["unreachable"].as_array().unwrap().is_empty(), "{snap}");

    // migrate --json: compress names the algorithm.
    let r = json_of(
        &lab,
        &["migrate", "c", "--to", "n2", "--compress", "zstd", "--json"],
    );
    assert_eq!(
        (r["compress"].as_str(), r["outcome"].as_str()),
        (Some("zstd"), Some("moved")),
        "{r}"
    );
    assert_eq!(lab.container("c").unwrap()["node"], "n2");
    // pong --json: every hop, in order, with the migration's keys.
    let p = json_of(
        &lab,
        &[
            "pong", "c", "--hosts", "n1,n2", "--count", "3", "--dwell", "0", "--json",
        ],
    );
    let hops = p["hop_reports"].as_array().unwrap();
    assert_eq!((p["hops"].as_u64(), hops.len()), (Some(3), 3), "{p}");
    for (i, (h, (from, to))) in hops
        .iter()
        .zip([("n2", "n1"), ("n1", "n2"), ("n2", "n1")])
        .enumerate()
    {
        assert_eq!(h["hop"], i + 1, "{h}");
        assert_eq!(
            (h["from"].as_str(), h["to"].as_str()),
            (Some(from), Some(to)),
            "{h}"
        );
        assert_eq!(
            (h["outcome"].as_str(), h["compress"].as_str()),
            (Some("moved"), Some("none")),
            "{h}"
        );
        let (frozen, total) = (
            h["frozen_ms"].as_f64().unwrap(),
            h["total_ms"].as_f64().unwrap(),
        );
        assert!(frozen > 0.0 && frozen <= total, "{h}");
        assert_eq!(h["container"], "c", "{h}");
    }
    assert_eq!(p["ends_on"], "n1", "{p}");
    assert_eq!(lab.container("c").unwrap()["node"], "n1");

    // A move held on the target right after it built (staged) its copy.
    common::restart_with_fault(&lab, "n2", "pause-after-build");
    let mut child = common::moves::spawn_migrate(&lab, "c", "n2");
    common::moves::wait_paused(&lab, "n2", "after-build", &mut child);
    let staged = json_of(&lab, &["ps", "--node", "n2", "--json"]);
    let staged: Vec<&Value> = staged
        .as_array()
        .unwrap()
        .iter()
        .filter(|c| c["name"] == "c")
        .collect();
    assert_eq!(
        staged.len(),
        1,
        "the target has no staged copy to hide: {staged:?}"
    );
    assert_eq!(staged[0]["status"], "migrating", "{staged:?}");
    let during = listed(&lab, "c");
    let one = lab.container("c").unwrap();
    common::moves::resume(&lab, "n2", "after-build");
    assert_eq!(
        during,
        [("n1".to_string(), "migrating".to_string())],
        "ps lists the move more than once"
    );
    assert_eq!(
        (
            one["migration"]["from"].as_str(),
            one["migration"]["to"].as_str()
        ),
        (Some("n1"), Some("n2")),
        "{one}"
    );
    let o = child.wait_with_output().unwrap();
    assert!(o.status.success(), "{}", text(&o));
    assert_eq!(
        listed(&lab, "c"),
        [("n2".to_string(), "running".to_string())]
    );
    common::restart_with_fault(&lab, "n2", "");
    lab.ok(&["rm", "-f", "c", "done"]);

    // Two users racing `run` of one name on two nodes: at most one
    // container survives, and it is the one whose `run` succeeded.
    for round in 0..3 {
        let name = format!("dup{round}");
        let spawn = |node: &str| {
            lab.cmd()
                .args([
                    "run", "--node", node, "--name", &name, "busybox", "sleep", "1000",
                ])
                .output()
        };
        let (a, b) = std::thread::scope(|s| {
            let a = s.spawn(|| spawn("n1").unwrap());
            let b = s.spawn(|| spawn("n2").unwrap());
            (a.join().unwrap(), b.join().unwrap())
        });
        let won: Vec<&str> = [("n1", &a), ("n2", &b)]
            .iter()
            .filter(|(_, o)| o.status.success())
            .map(|(n, _)| *n)
            .collect();
        let left: Vec<String> = listed(&lab, &name).into_iter().map(|(n, _)| n).collect();
        assert!(left.len() <= 1, "round {round}: both survived: {left:?}");
        assert_eq!(
            left,
            won,
            "round {round}: n1: {}\nn2: {}",
            text(&a),
            text(&b)
        );
        for o in [&a, &b].into_iter().filter(|o| !o.status.success()) {
            assert_eq!(o.status.code(), Some(125), "{}", text(o));
        }
        if !left.is_empty() {
            lab.ok(&["rm", "-f", &name]);
        }
    }
}

/// `report --json` and `sim --json`: the table's figures, checked against
/// the run directories the simulator wrote (no lab needed).
#[test]
fn report_and_sim_as_json() {
    let tmp = tempfile::tempdir().unwrap();
    let scen = tmp.path().join("s.json");
    let out = tmp.path().join("out");
    common::herd_ok(&[
        "scenario",
        "gen",
        "--kind",
        "staircase",
        "--containers",
        "20",
        "--length",
        "40m",
        "--out",
        common::path_arg(&scen),
    ]);
    let sim: Value = serde_json::from_str(&common::herd_ok(&[
        "sim",
        common::path_arg(&scen),
        "--policy",
        "none,cpu-greedy",
        "--out",
        common::path_arg(&out),
        "--json",
    ]))
    .unwrap();
    let runs = sim["runs"].as_array().unwrap();
    assert_eq!(
        runs.iter()
            .map(|r| r["policy"].as_str().unwrap())
            .collect::<Vec<_>>(),
        ["none", "cpu-greedy"]
    );
    assert_eq!(sim["report"], out.join("report.md").display().to_string());
    assert!(out.join("report.md").exists());
    for r in runs {
        let dir = Path::new(r["dir"].as_str().unwrap());
        // migrations: the moved rows of the run's migrations.csv.
        let moved = std::fs::read_to_string(dir.join("migrations.csv"))
            .unwrap_or_default()
            .lines()
            .filter(|l| l.contains(",moved,") || l.ends_with(",moved"))
            .count();
        assert_eq!(r["migrations"], moved, "{r}");
        let sim_s = r["simulated_s"].as_u64().unwrap();
        assert!(
            sim_s > 0 && sim_s <= 2400,
            "at most the scenario's length: {r}"
        );
        assert!(
            r["avg_host_cpu_ratio"]
                .as_f64()
                .is_some_and(|x| (0.0..=1.0).contains(&x)),
            "{r}"
        );
        assert!(r["avg_ops_per_second"].as_f64().unwrap() > 0.0, "{r}");
    }
    assert!(
        runs[0]["ops_gain_vs_control_ratio"].is_null(),
        "control has no gain"
    );
    assert!(runs[1]["ops_gain_vs_control_ratio"].is_f64(), "{}", runs[1]);
    // report --json over the same runs: the same figures.
    let dirs: Vec<&str> = runs.iter().map(|r| r["dir"].as_str().unwrap()).collect();
    let mut args = vec!["report"];
    args.extend(&dirs);
    args.extend(["--out", common::path_arg(&out), "--json"]);
    let rep: Value = serde_json::from_str(&common::herd_ok(&args)).unwrap();
    for (a, b) in rep["runs"].as_array().unwrap().iter().zip(runs) {
        for k in [
            "policy",
            "avg_host_cpu_ratio",
            "avg_ops_per_second",
            "ops_gain_vs_control_ratio",
            "migrations",
            "frozen_ms",
        ] {
            assert_eq!(a[k], b[k], "{k}: {a} vs {b}");
        }
        assert!(a.get("simulated_s").is_none(), "{a}");
    }
}
