//! Strangers, wrong roles and forged requests against a real lab: each test
//! builds its hostile input itself (certificates, frames, archives, bombs).

mod common;

use std::io::Write;
use std::net::SocketAddr;
use std::path::{Path, PathBuf};
use std::time::Duration;

use common::{leftovers, text, Lab};
use herd_quic::pki::{self, Role, TlsFiles};
use herd_wire::migrate::{FsMode, MigrateMsg, Prepare, MIGRATE_VERSION};
use herd_wire::{Envelope, ErrorKind, Request, Response};

/// Limits small enough for the bombs below, passed to this binary's labs'
/// agents through their environment (the agents inherit `herd lab up`'s).
fn small_limits() {
    std::env::set_var("HERD_MAX_UNPACK_BYTES", (64u64 << 20).to_string());
    std::env::set_var("HERD_REQUEST_TIMEOUT_S", "2");
    std::env::set_var("HERD_STREAM_IDLE_TIMEOUT_S", "2");
}

fn node_addr(lab: &Lab, node: &str) -> SocketAddr {
    let c: serde_json::Value =
        serde_json::from_slice(&std::fs::read(lab.dir().join("cluster.json")).unwrap()).unwrap();
    let n = c["nodes"]
        .as_array()
        .unwrap()
        .iter()
        .find(|n| n["name"] == node)
        .unwrap_or_else(|| panic!("no node {node} in cluster.json"));
    n["addr"].as_str().unwrap().parse().unwrap()
}

fn user_tls(lab: &Lab) -> TlsFiles {
    TlsFiles::in_dir(&lab.dir().join("pki"), "admin")
}

fn node_tls(lab: &Lab, node: &str) -> TlsFiles {
    TlsFiles::in_dir(&lab.dir().join(node), node)
}

fn rt() -> tokio::runtime::Runtime {
    tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
        .unwrap()
}

async fn connect(lab: &Lab, tls: &TlsFiles, node: &str) -> quinn::Connection {
    let addr = node_addr(lab, node);
    let ep = herd_quic::endpoint::client_for(tls, addr).unwrap();
    herd_quic::endpoint::connect(&ep, addr, node).await.unwrap()
}

async fn call(lab: &Lab, tls: &TlsFiles, node: &str, req: Request) -> Response {
    let conn = connect(lab, tls, node).await;
    herd_quic::rpc::call(&conn, &Envelope::new(req))
        .await
        .unwrap()
}

fn agent_log(lab: &Lab, node: &str) -> String {
    std::fs::read_to_string(lab.dir().join(node).join("agent.log")).unwrap_or_default()
}

/// The layers of n1's image record (as a migration source would send them).
fn image_layers(lab: &Lab, image: &str) -> Vec<String> {
    let p = lab
        .dir()
        .join("n1/state/images/images")
        .join(format!("{image}.json"));
    let v: serde_json::Value = serde_json::from_slice(&std::fs::read(&p).unwrap()).unwrap();
    v["layers"]
        .as_array()
        .unwrap_or_else(|| panic!("{} has no layers: {v}", p.display()))
        .iter()
        .map(|l| l.as_str().unwrap().to_string())
        .collect()
}

fn prepare(lab: &Lab, name: &str, from: &str) -> Prepare {
    Prepare {
        version: MIGRATE_VERSION,
        spec: herd_wire::RunSpec {
            name: name.into(),
            image: "busybox".into(),
            ..Default::default()
        },
        oci_spec: b"{}".to_vec(),
        image: "busybox".into(),
        layers: image_layers(lab, "busybox"),
        arch: std::env::consts::ARCH.into(),
        fs: FsMode::Diff,
        source_node: from.into(),
        id: format!("hs-{name}-1"),
    }
}

fn expect_unauthorized(r: &Response, what: &str) -> String {
    match r {
        Response::Error(e) if e.kind == ErrorKind::Unauthorized => e.message.clone(),
        other => panic!("{what}: expected Unauthorized, got {other:?}"),
    }
}

/// Whatever the lab still holds of container `name` (netns, links, mounts,
/// cgroups, its directory) plus staging dirs in n1's state dir.
fn traces_of(lab: &Lab, name: &str) -> Vec<String> {
    let mut v: Vec<String> = leftovers(&lab.name, &lab.dir())
        .into_iter()
        // Whole name parts only: the lab's own name may contain `name`.
        .filter(|l| l.split([' ', '-', '/']).any(|part| part == name))
        .collect();
    let state = lab.dir().join("n1/state");
    if state.join("containers").join(name).exists() {
        v.push(format!("container dir {name}"));
    }
    for e in std::fs::read_dir(&state).unwrap().flatten() {
        let n = e.file_name().to_string_lossy().into_owned();
        if n.starts_with("migrate-in-") || n.starts_with("import-") {
            v.push(format!("staging {n}"));
        }
    }
    v
}

#[test]
fn roles_are_enforced_and_a_node_cannot_claim_another_name() {
    small_limits();
    let Some(lab) = Lab::up(
        "roles_are_enforced_and_a_node_cannot_claim_another_name",
        "role",
        2,
    ) else {
        return;
    };
    lab.import_busybox();
    let rt = rt();
    let user = user_tls(&lab);
    let n2 = node_tls(&lab, "n2");

    // The user certificate does user things; the node certificate pings.
    assert!(matches!(
        rt.block_on(call(&lab, &user, "n1", Request::List)),
        Response::Containers(_)
    ));
    assert!(matches!(
        rt.block_on(call(&lab, &n2, "n1", Request::Ping)),
        Response::Pong { .. }
    ));

    // A user certificate sending the agent-to-agent MigrateIn.
    let r = rt.block_on(call(
        &lab,
        &user,
        "n1",
        Request::MigrateIn(prepare(&lab, "sneak", "admin")),
    ));
    let msg = expect_unauthorized(&r, "user sends MigrateIn");
    assert!(
        msg.contains("MigrateIn") && msg.contains("user:admin"),
        "{msg}"
    );

    // A node claiming to be another node.
    let r = rt.block_on(call(
        &lab,
        &n2,
        "n1",
        Request::MigrateIn(prepare(&lab, "sneak", "n3")),
    ));
    let msg = expect_unauthorized(&r, "n2 claims n3");
    assert!(msg.contains("node:n2") && msg.contains("\"n3\""), "{msg}");

    // A node certificate used for user verbs.
    for req in [
        Request::List,
        Request::Run(herd_wire::RunSpec {
            name: "sneak".into(),
            image: "busybox".into(),
            cmd: vec!["sleep".into(), "100".into()],
            ..Default::default()
        }),
    ] {
        let r = rt.block_on(call(&lab, &n2, "n1", req));
        expect_unauthorized(&r, "node cert as user");
    }

    // Each refusal is in n1's log with the peer's certificate.
    let log = agent_log(&lab, "n1");
    for want in ["user:admin", "node:n2"] {
        assert!(
            log.lines()
                .any(|l| l.contains("refused") && l.contains(want)),
            "no refusal naming {want} in n1's log:\n{log}"
        );
    }
    assert!(lab.container("sneak").is_none());
    assert!(
        traces_of(&lab, "sneak").is_empty(),
        "{:?}",
        traces_of(&lab, "sneak")
    );
}

#[test]
fn a_forged_migrate_in_and_commit_with_nothing_staged_leaves_nothing() {
    small_limits();
    let Some(lab) = Lab::up(
        "a_forged_migrate_in_and_commit_with_nothing_staged_leaves_nothing",
        "forge",
        2,
    ) else {
        return;
    };
    lab.import_busybox();
    let rt = rt();
    let n2 = node_tls(&lab, "n2");
    let reply = rt.block_on(async {
        let conn = connect(&lab, &n2, "n1").await;
        let (mut send, mut recv) = conn.open_bi().await.unwrap();
        let env = Envelope::new(Request::MigrateIn(prepare(&lab, "forged", "n2")));
        herd_quic::rpc::send_msg(&mut send, &env).await.unwrap();
        let first: Response = herd_quic::rpc::recv_msg(&mut recv, 1 << 20)
            .await
            .unwrap()
            .unwrap();
        assert!(matches!(first, Response::Ok), "prepare: {first:?}");
        herd_quic::rpc::send_msg(&mut send, &MigrateMsg::Commit)
            .await
            .unwrap();
        let _ = send.finish();
        herd_quic::rpc::recv_msg::<Response>(&mut recv, 1 << 20)
            .await
            .unwrap()
            .unwrap()
    });
    assert!(
        matches!(reply, Response::Error(_)),
        "forged commit: {reply:?}"
    );
    assert!(lab.container("forged").is_none());
    assert_eq!(traces_of(&lab, "forged"), Vec::<String>::new());
}

/// A tar with a Herd export manifest listing `files` (path, content).
fn archive(path: &Path, layers: &[String], files: &[(&str, Vec<u8>)], claim: Option<u64>) {
    use sha2::Digest;
    let entries: Vec<serde_json::Value> = files
        .iter()
        .map(|(p, d)| {
            serde_json::json!({
                "path": p,
                "size": claim.unwrap_or(d.len() as u64),
                "sha256": hex::encode(sha2::Sha256::digest(d)),
            })
        })
        .collect();
    let manifest = serde_json::to_vec(&serde_json::json!({
        "format": 1,
        "spec": serde_json::to_value(herd_wire::RunSpec {
            name: "imp".into(),
            image: "busybox".into(),
            cmd: vec!["sleep".into(), "100".into()],
            ..Default::default()
        })
        .unwrap(),
        "image": "busybox",
        "layers": layers,
        "node": "elsewhere",
        "files": entries,
    }))
    .unwrap();
    let mut b = tar::Builder::new(std::fs::File::create(path).unwrap());
    let mut add = |p: &str, d: &[u8]| {
        let mut h = tar::Header::new_gnu();
        h.set_size(d.len() as u64);
        h.set_mode(0o644);
        h.set_entry_type(tar::EntryType::Regular);
        b.append_data(&mut h, p, d).unwrap();
    };
    add("herd-export.json", &manifest);
    for (p, d) in files {
        add(p, d);
    }
    b.into_inner().unwrap().flush().unwrap();
}

#[test]
fn failed_imports_leave_nothing_and_bombs_stop_at_the_limits() {
    small_limits();
    let Some(lab) = Lab::up(
        "failed_imports_leave_nothing_and_bombs_stop_at_the_limits",
        "imps",
        1,
    ) else {
        return;
    };
    lab.import_busybox();
    let layers = image_layers(&lab, "busybox");
    let t = tempfile::tempdir().unwrap();

    // An archive whose config.json is not an OCI spec.
    let meta = br#"{"created_ns":0,"stdio":[]}"#.to_vec();
    let bad = t.path().join("bad-config.tar");
    archive(
        &bad,
        &layers,
        &[
            ("config.json", b"not a spec".to_vec()),
            ("checkpoint/herd-checkpoint.json", meta.clone()),
        ],
        None,
    );
    let o = lab.herd(&["restore", "--import", bad.to_str().unwrap()]);
    assert!(!o.status.success(), "{}", text(&o));
    assert!(text(&o).contains("OCI spec"), "{}", text(&o));
    assert!(lab.container("imp").is_none());
    assert_eq!(traces_of(&lab, "imp"), Vec::<String>::new());

    // An archive whose manifest announces more than the unpack limit.
    let big = t.path().join("big.tar");
    archive(
        &big,
        &layers,
        &[("config.json", b"{}".to_vec())],
        Some(1 << 30),
    );
    let o = lab.herd(&["restore", "--import", big.to_str().unwrap()]);
    assert!(!o.status.success(), "{}", text(&o));
    assert!(text(&o).contains("limit"), "{}", text(&o));
    assert_eq!(traces_of(&lab, "imp"), Vec::<String>::new());

    // A zstd bomb as an image: 1 GiB of zeros in a few hundred KB.
    let bomb = t.path().join("bomb.tar.zst");
    {
        let f = std::fs::File::create(&bomb).unwrap();
        let enc = zstd::Encoder::new(f, 19).unwrap();
        let mut b = tar::Builder::new(enc);
        let mut h = tar::Header::new_gnu();
        h.set_size(1 << 30);
        h.set_mode(0o644);
        h.set_uid(0);
        h.set_gid(0);
        h.set_mtime(0);
        h.set_entry_type(tar::EntryType::Regular);
        use std::io::Read;
        b.append_data(&mut h, "zeros", std::io::repeat(0).take(1 << 30))
            .unwrap();
        b.into_inner().unwrap().finish().unwrap();
    }
    assert!(std::fs::metadata(&bomb).unwrap().len() < 1 << 20);
    let o = lab.herd(&["image", "import", "bomb", bomb.to_str().unwrap()]);
    assert!(!o.status.success(), "{}", text(&o));
    assert!(text(&o).contains("limit"), "{}", text(&o));
    let images = lab.ok(&["image", "ls"]);
    assert!(!images.contains("bomb"), "{images}");
    let tmp = lab.dir().join("n1/state/images/tmp");
    assert_eq!(
        std::fs::read_dir(&tmp).unwrap().count(),
        0,
        "staging left in {}",
        tmp.display()
    );
}

#[test]
fn stalled_streams_are_closed_after_their_timeout() {
    small_limits();
    let Some(lab) = Lab::up("stalled_streams_are_closed_after_their_timeout", "stall", 2) else {
        return;
    };
    lab.import_busybox();
    let rt = rt();
    let user = user_tls(&lab);
    let n2 = node_tls(&lab, "n2");
    rt.block_on(async {
        // Two bytes of a frame header and no FIN.
        let conn = connect(&lab, &user, "n1").await;
        let (mut send, mut recv) = conn.open_bi().await.unwrap();
        send.write_all(&[0, 0]).await.unwrap();
        // Bound on the test only (the agent's timeout is 2 s); without the
        // timeout the stream stays open forever.
        let r = tokio::time::timeout(
            Duration::from_secs(120),
            herd_quic::rpc::recv_msg::<Response>(&mut recv, 1 << 20),
        )
        .await
        .expect("the agent kept a stalled request stream open");
        match r {
            Ok(Some(Response::Error(e))) => {
                assert!(e.message.contains("no complete request"), "{e}")
            }
            other => panic!("stalled request: {other:?}"),
        }

        // A migration stream that goes quiet in the middle of a frame.
        let (mut send, mut recv) = conn_for(&lab, &n2).await.open_bi().await.unwrap();
        let env = Envelope::new(Request::MigrateIn(prepare(&lab, "quiet", "n2")));
        herd_quic::rpc::send_msg(&mut send, &env).await.unwrap();
        let first: Response = herd_quic::rpc::recv_msg(&mut recv, 1 << 20)
            .await
            .unwrap()
            .unwrap();
        assert!(matches!(first, Response::Ok), "prepare: {first:?}");
        send.write_all(&[0, 0, 1]).await.unwrap();
        let r = tokio::time::timeout(
            Duration::from_secs(120),
            herd_quic::rpc::recv_msg::<Response>(&mut recv, 1 << 20),
        )
        .await
        .expect("the agent kept a stalled migration stream open");
        match r {
            Ok(Some(Response::Error(e))) => assert!(e.message.contains("no frame"), "{e}"),
            other => panic!("stalled migration: {other:?}"),
        }
    });
    assert_eq!(traces_of(&lab, "quiet"), Vec::<String>::new());
}

async fn conn_for(lab: &Lab, tls: &TlsFiles) -> quinn::Connection {
    connect(lab, tls, "n1").await
}

#[test]
fn ps_into_a_closed_pipe_exits_quietly() {
    small_limits();
    let Some(lab) = Lab::up("ps_into_a_closed_pipe_exits_quietly", "pipe", 1) else {
        return;
    };
    // A pipe whose reader is gone before herd writes (`herd ps | head -0`).
    let (r, w) = nix::unistd::pipe().unwrap();
    drop(r);
    let out = lab
        .cmd()
        .args(["ps"])
        .stdout(std::process::Stdio::from(w))
        .stderr(std::process::Stdio::piped())
        .output()
        .unwrap();
    let err = String::from_utf8_lossy(&out.stderr);
    assert!(!err.contains("panicked"), "herd ps panicked: {err}");
    assert!(err.is_empty(), "herd ps printed: {err}");
    use std::os::unix::process::ExitStatusExt;
    assert!(
        out.status.success() || out.status.signal() == Some(libc::SIGPIPE),
        "{:?}",
        out.status
    );
}

/// The agent started with an extra inherited descriptor holding a flock.
#[test]
fn the_agent_does_not_keep_or_pass_on_inherited_descriptors() {
    let test = "the_agent_does_not_keep_or_pass_on_inherited_descriptors";
    if !herd_testkit::require_root(test) {
        return;
    }
    let t = tempfile::tempdir().unwrap();
    let ca = t.path().join("pki");
    pki::init_ca(&ca, "fdtest", true).unwrap();
    pki::issue(&ca, "fd1", Role::Node, &ca, &["127.0.0.1".into()]).unwrap();
    let tls = TlsFiles::in_dir(&ca, "fd1");
    let lock = t.path().join("held.lock");
    let f = std::fs::File::create(&lock).unwrap();
    use std::os::fd::AsRawFd;
    let fd = f.as_raw_fd();
    // SAFETY: flock and fcntl on a live descriptor.
    unsafe {
        assert_eq!(libc::flock(fd, libc::LOCK_EX), 0);
        // Inheritable, as a careless parent would leave it.
        libc::fcntl(fd, libc::F_SETFD, 0);
    }
    let log = t.path().join("agent.log");
    let mut child = std::process::Command::new(common::agent_bin())
        .args(["--node", "fd1", "--listen", "127.0.0.1:0"])
        .arg("--state-dir")
        .arg(t.path().join("state"))
        .arg("--ca")
        .arg(&tls.ca)
        .arg("--cert")
        .arg(&tls.cert)
        .arg("--key")
        .arg(&tls.key)
        .arg("--netns-prefix")
        .arg("hsfd-")
        .arg("--cgroup-parent")
        .arg("/herd/hsfd")
        .stdin(std::process::Stdio::null())
        .stdout(std::fs::File::create(&log).unwrap())
        .stderr(std::fs::File::create(t.path().join("agent.err")).unwrap())
        .spawn()
        .unwrap();
    drop(f); // Only the agent's copy holds the lock now.
    let pid = child.id();
    let ready = common::wait_for(60, || {
        std::fs::read_to_string(t.path().join("agent.err"))
            .ok()
            .filter(|l| l.contains("agent ready"))
    });
    let fds: Vec<(String, PathBuf)> = std::fs::read_dir(format!("/proc/{pid}/fd"))
        .map(|rd| {
            rd.flatten()
                .map(|e| {
                    let target = std::fs::read_link(e.path()).unwrap_or_default();
                    (e.file_name().to_string_lossy().into_owned(), target)
                })
                .collect()
        })
        .unwrap_or_default();
    // The lock is free: nobody else holds that open file.
    let again = std::fs::File::open(&lock).unwrap();
    // SAFETY: flock on a live descriptor.
    let locked = unsafe { libc::flock(again.as_raw_fd(), libc::LOCK_EX | libc::LOCK_NB) };
    let _ = child.kill();
    let _ = child.wait();
    assert!(
        ready.is_some(),
        "agent did not get ready: {:?}",
        std::fs::read_to_string(t.path().join("agent.err"))
    );
    assert!(!fds.is_empty(), "cannot read /proc/{pid}/fd");
    assert!(
        !fds.iter().any(|(_, p)| p == &lock),
        "the agent kept the inherited descriptor: {fds:?}"
    );
    assert_eq!(
        locked,
        0,
        "the inherited lock is still held: {}",
        std::io::Error::last_os_error()
    );
}
