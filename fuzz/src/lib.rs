//! Fuzz targets for everything Herd reads from outside: each is a plain
//! `fn(&[u8])` that must never panic, hang or grow without bound, whatever
//! the bytes. The same functions serve two drivers:
//!
//! * `herd-fuzz` (this crate's binary, stable toolchain): a mutation driver
//!   over the seed corpus of [`seeds`] plus any files in
//!   `fuzz/corpus/<target>/`; it runs every seed, then mutates them
//!   (bit flips, byte sets, interesting integers, chunk insert / delete /
//!   duplicate, splices of two inputs) for a given time, with a fixed RNG
//!   seed so a run can be repeated. A panic is a finding: the input is
//!   written to `fuzz/artifacts/<target>/` and the run fails.
//!   `scripts/test` runs it briefly (`HERD_FUZZ_SECONDS`, default 60 in all).
//! * cargo-fuzz (libFuzzer, nightly): `fuzz/cargo-fuzz/` has one
//!   `fuzz_target!` per target calling the same function
//!   (`cargo +nightly fuzz run --fuzz-dir fuzz/cargo-fuzz frame` from the
//!   repository root; without `--fuzz-dir` cargo-fuzz looks for `fuzz/fuzz/`); seed it with
//!   `herd-fuzz --write-corpus DIR`.
//!
//! | target | what it feeds |
//! |---|---|
//! | `frame` | a frame header's length check, then the body as a request `Envelope` and as a `Response` (herd-wire framing) |
//! | `migrate` | the body as each migration message: `Prepare`, `MigrateMsg`, `MigrateReport`, the handoff `Query` |
//! | `archive` | the bytes as a checkpoint archive (`herd restore --import`), plain or zstd, through the agent's reader |
//! | `layer` | the bytes as an image layer tar (plain, gzip or zstd) imported into a fresh image store |
//! | `upper` | the bytes as an upper-layer tar applied onto a directory (what a migration or an archive carries) |
//! | `csv` | the bytes as each monitor CSV file (hosts, containers, migrations, decisions) and as a scenario file |
//!
//! Unpacking targets run under small [`herd_overlay::Limits`] so a mutated
//! size field cannot make one input write gigabytes.

use std::io::Write;

use herd_wire::frame;

/// A fuzz target.
pub type Target = fn(&[u8]);

/// Every target, by name.
pub const TARGETS: &[(&str, Target)] = &[
    ("frame", frame_target),
    ("migrate", migrate_target),
    ("archive", archive_target),
    ("layer", layer_target),
    ("upper", upper_target),
    ("csv", csv_target),
];

fn small_limits() -> herd_overlay::Limits {
    herd_overlay::Limits {
        max_bytes: 8 << 20,
        max_entries: 2000,
    }
}

/// A frame: 4-byte length header, then the body.
pub fn frame_target(data: &[u8]) {
    let Some((head, body)) = data.split_first_chunk::<{ frame::HEADER_LEN }>() else {
        return;
    };
    if let Ok(n) = frame::body_len(*head, frame::MAX_FRAME) {
        let body = &body[..n.min(body.len())];
        let _ = frame::decode::<herd_wire::Envelope>(body);
        let _ = frame::decode::<herd_wire::Response>(body);
    }
    let _ = frame::decode::<herd_wire::Envelope>(data);
}

/// Every message of the migration protocol.
pub fn migrate_target(data: &[u8]) {
    use herd_wire::migrate::{MigrateMsg, MigrateReport, Prepare};
    let _ = frame::decode::<Prepare>(data);
    let _ = frame::decode::<MigrateMsg>(data);
    let _ = frame::decode::<MigrateReport>(data);
    let _ = frame::decode::<herd_wire::handoff::Query>(data);
    // As the agent sees them: inside a request envelope.
    let _ = frame::decode::<herd_wire::Envelope>(data);
}

/// The checkpoint archive reader.
pub fn archive_target(data: &[u8]) {
    let Ok(dir) = tempfile::tempdir() else { return };
    let path = dir.path().join("in.tar");
    if std::fs::write(&path, data).is_err() {
        return;
    }
    let staging = dir.path().join("staging");
    if let Ok(staged) = herd_agent::export::read(&path, &staging, &small_limits()) {
        // What passed must be what the manifest listed.
        for f in &staged.manifest.files {
            let p = staged.dir.join(&f.path);
            let len = std::fs::metadata(&p).map(|m| m.len()).unwrap_or(u64::MAX);
            assert_eq!(len, f.size, "{} staged with another size", f.path);
        }
    }
}

/// An image layer tar into a fresh store.
pub fn layer_target(data: &[u8]) {
    let Ok(dir) = tempfile::tempdir() else { return };
    let path = dir.path().join("layer.tar");
    if std::fs::write(&path, data).is_err() {
        return;
    }
    let Ok(store) = herd_overlay::ImageStore::open(dir.path().join("store")) else {
        return;
    };
    let store = store.with_limits(small_limits());
    match store.import("fuzz", &path) {
        Ok(info) => assert!(!info.layers.is_empty()),
        Err(_) => {
            // A failed import leaves the store as it was.
            let tmp = std::fs::read_dir(store.root().join("tmp"))
                .map(|r| r.count())
                .unwrap_or(0);
            assert_eq!(tmp, 0, "staging left behind");
            assert!(store.list().map(|l| l.is_empty()).unwrap_or(true));
        }
    }
}

/// An upper-layer tar applied onto an empty directory.
pub fn upper_target(data: &[u8]) {
    let Ok(dir) = tempfile::tempdir() else { return };
    let upper = dir.path().join("upper");
    if std::fs::create_dir(&upper).is_err() {
        return;
    }
    let _ = herd_overlay::apply_upper_limited(&upper, data, small_limits());
    // Nothing may appear next to the upper directory.
    let names: Vec<_> = std::fs::read_dir(dir.path())
        .map(|r| r.flatten().map(|e| e.file_name()).collect())
        .unwrap_or_default();
    assert_eq!(
        names,
        vec![std::ffi::OsString::from("upper")],
        "wrote outside the root"
    );
}

/// The monitor CSV readers and the scenario reader.
pub fn csv_target(data: &[u8]) {
    use herd_coordinator::csv::{read_from, ContainerRow, DecisionRow, HostRow, MigrationRow};
    let p = std::path::Path::new("fuzz.csv");
    let _ = read_from::<HostRow>(data, p);
    let _ = read_from::<ContainerRow>(data, p);
    let _ = read_from::<MigrationRow>(data, p);
    let _ = read_from::<DecisionRow>(data, p);
    if let Ok(text) = std::str::from_utf8(data) {
        let _ = herd_coordinator::scenario::Scenario::parse(text, "fuzz.scenario");
    }
}

// ---------- seeds: real, valid inputs of each kind ----------

fn tar_of(entries: &[(&str, &[u8])]) -> Vec<u8> {
    let mut b = tar::Builder::new(Vec::new());
    for (p, d) in entries {
        let mut h = tar::Header::new_gnu();
        h.set_size(d.len() as u64);
        h.set_mode(0o644);
        h.set_mtime(1_600_000_000);
        h.set_entry_type(tar::EntryType::Regular);
        let _ = b.append_data(&mut h, p, *d);
    }
    b.into_inner().unwrap_or_default()
}

fn rich_tar() -> Vec<u8> {
    let mut b = tar::Builder::new(Vec::new());
    let mut dir = tar::Header::new_gnu();
    dir.set_entry_type(tar::EntryType::Directory);
    dir.set_mode(0o755);
    dir.set_size(0);
    let _ = b.append_data(&mut dir.clone(), "etc/", std::io::empty());
    let mut f = tar::Header::new_gnu();
    f.set_entry_type(tar::EntryType::Regular);
    f.set_mode(0o4755);
    f.set_size(5);
    let _ = b.append_data(&mut f, "etc/passwd", &b"root:"[..]);
    let mut l = tar::Header::new_gnu();
    l.set_entry_type(tar::EntryType::Symlink);
    l.set_size(0);
    let _ = b.append_link(&mut l, "etc/link", "passwd");
    let mut h = tar::Header::new_gnu();
    h.set_entry_type(tar::EntryType::Link);
    h.set_size(0);
    let _ = b.append_link(&mut h, "etc/hard", "etc/passwd");
    let mut w = tar::Header::new_gnu();
    w.set_entry_type(tar::EntryType::Regular);
    w.set_size(0);
    let _ = b.append_data(&mut w, "etc/.wh.gone", std::io::empty());
    let _ = b.append_data(&mut w.clone(), "etc/.wh..wh..opq", std::io::empty());
    let mut c = tar::Header::new_gnu();
    c.set_entry_type(tar::EntryType::Char);
    c.set_mode(0o666);
    c.set_size(0);
    let _ = c.set_device_major(1);
    let _ = c.set_device_minor(3);
    let _ = b.append_data(&mut c, "null", std::io::empty());
    b.into_inner().unwrap_or_default()
}

fn archive_seed() -> Vec<u8> {
    use sha2::Digest;
    let config = br#"{"ociVersion":"1.0.2"}"#.to_vec();
    let img = b"CRIU image".to_vec();
    let upper = tar_of(&[("a", b"upper file")]);
    let files: Vec<(&str, &[u8])> = vec![
        ("config.json", &config),
        ("upper.tar", &upper),
        ("checkpoint/pages-1.img", &img),
    ];
    let manifest = serde_json::json!({
        "format": 1,
        "spec": {"name": "c1", "image": "busybox"},
        "image": "busybox",
        "layers": [format!("sha256:{}", "ab".repeat(32))],
        "node": "n1",
        "files": files.iter().map(|(p, d)| serde_json::json!({
            "path": p, "size": d.len(), "sha256": hex::encode(sha2::Sha256::digest(d)),
        })).collect::<Vec<_>>(),
    });
    let m = serde_json::to_vec(&manifest).unwrap_or_default();
    let mut all: Vec<(&str, &[u8])> = vec![("herd-export.json", &m)];
    all.extend(files);
    tar_of(&all)
}

fn gzip(data: &[u8]) -> Vec<u8> {
    let mut e = flate2::write::GzEncoder::new(Vec::new(), flate2::Compression::fast());
    let _ = e.write_all(data);
    e.finish().unwrap_or_default()
}

fn zstd(data: &[u8]) -> Vec<u8> {
    zstd::encode_all(data, 3).unwrap_or_default()
}

fn framed<T: serde::Serialize>(m: &T) -> Vec<u8> {
    frame::encode(m).unwrap_or_default()
}

fn body<T: serde::Serialize>(m: &T) -> Vec<u8> {
    let f = framed(m);
    f.get(frame::HEADER_LEN..)
        .map(<[u8]>::to_vec)
        .unwrap_or_default()
}

/// Built-in seed inputs of a target: valid examples of what it reads.
pub fn seeds(target: &str) -> Vec<Vec<u8>> {
    use herd_wire::migrate::{FsMode, MigrateMsg, Prepare, MIGRATE_VERSION};
    use herd_wire::{Envelope, Request, Response, RunSpec};
    let prepare = Prepare {
        version: MIGRATE_VERSION,
        spec: RunSpec {
            name: "c1".into(),
            image: "busybox".into(),
            cmd: vec!["sleep".into(), "1".into()],
            ..Default::default()
        },
        oci_spec: br#"{"ociVersion":"1.0.2"}"#.to_vec(),
        image: "busybox".into(),
        layers: vec![format!("sha256:{}", "ab".repeat(32))],
        arch: "x86_64".into(),
        fs: FsMode::Diff,
        source_node: "n1".into(),
        id: "n1.c1.1".into(),
        memory: herd_wire::migrate::MemoryMode::Stop,
    };
    match target {
        "frame" => vec![
            framed(&Envelope::new(Request::Ping)),
            framed(&Envelope::new(Request::List)),
            framed(&Envelope::new(Request::Logs {
                name: "c1".into(),
                follow: true,
                tail: Some(10),
            })),
            framed(&Envelope::new(Request::Run(prepare.spec.clone()))),
            framed(&Response::Ok),
            framed(&Response::error(herd_wire::ErrorKind::Unauthorized, "no")),
        ],
        "migrate" => vec![
            body(&prepare),
            body(&Envelope::new(Request::MigrateIn(prepare.clone()))),
            body(&MigrateMsg::File {
                path: "checkpoint/pages-1.img".into(),
            }),
            body(&MigrateMsg::Data {
                zstd: true,
                bytes: zstd(b"pages pages pages"),
            }),
            body(&MigrateMsg::FileEnd {
                size: 17,
                sha256: "00".repeat(32),
            }),
            body(&MigrateMsg::Commit),
            body(&herd_wire::handoff::Query::Decide {
                id: "n1.c1.1".into(),
                decision: herd_wire::handoff::Decision::Go,
            }),
            body(&herd_wire::handoff::Query::Forget {
                id: "n1.c1.1".into(),
            }),
        ],
        "archive" => {
            let a = archive_seed();
            vec![zstd(&a), a]
        }
        "layer" => {
            let t = rich_tar();
            vec![gzip(&t), zstd(&t), t, tar_of(&[("bin/sh", b"#!")])]
        }
        "upper" => vec![rich_tar(), tar_of(&[("a/b", b"x"), ("c", b"")])],
        "csv" => vec![
            b"time,host,cpu_user_ratio,cpu_system_ratio,cpu_iowait_ratio,load1,memory_used_bytes,major_faults_per_second,disk_ops_per_second,disk_busy_ratio,net_rx_bytes_per_second,net_tx_bytes_per_second,cores\n1.5,n1,0.5,0.1,0,1.2,1000,0,3,0.1,10,20,2\n".to_vec(),
            b"time,host,container,cpu_usage_cores,memory_bytes,major_faults_per_second,io_read_ops_per_second,io_write_ops_per_second,pids,ops_per_second,kind\n1,n1,c1,2.0,100,0,1,1,3,,cpu\n".to_vec(),
            b"time,container,from,to,event,count,frozen_seconds\n1,c1,,n1,added,1,\n2,c1,n1,n2,moved,2,0.1\n".to_vec(),
            b"time,policy,container,from,to,reason,outcome\n3,cpu-greedy,c1,n1,n2,\"busy, very\",moved\n".to_vec(),
            herd_coordinator::scenario::generate(&herd_coordinator::scenario::GenParams {
                containers: 5,
                ..Default::default()
            })
            .map(|s| s.to_text().into_bytes())
            .unwrap_or_default(),
        ],
        _ => Vec::new(),
    }
}
