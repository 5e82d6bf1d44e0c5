//! Hostile images built by the tests themselves: setuid binaries and device
//! nodes that host users must not reach, and archives that try to expand
//! beyond the unpack limits (gzip/zstd bombs, sparse files, entry floods,
//! trailing data).

use std::fs;
use std::io::{self, Read, Write};
use std::os::unix::fs::{FileTypeExt, MetadataExt, PermissionsExt};
use std::path::{Path, PathBuf};
use std::process::Command;

use herd_overlay::{apply_upper_limited, Error, ImageStore, Limits};

fn header(kind: tar::EntryType, mode: u32, size: u64) -> tar::Header {
    let mut h = tar::Header::new_gnu();
    h.set_entry_type(kind);
    h.set_mode(mode);
    h.set_size(size);
    h.set_mtime(1_600_000_000);
    h.set_uid(0);
    h.set_gid(0);
    h
}

fn add_node<W: Write>(
    b: &mut tar::Builder<W>,
    path: &str,
    kind: tar::EntryType,
    major: u32,
    minor: u32,
) {
    let mut h = header(kind, 0o666, 0);
    h.set_device_major(major).unwrap();
    h.set_device_minor(minor).unwrap();
    b.append_data(&mut h, path, io::empty()).unwrap();
}

fn names(p: &Path) -> Vec<String> {
    let mut v: Vec<String> = fs::read_dir(p)
        .map(|rd| {
            rd.map(|e| e.unwrap().file_name().to_string_lossy().into_owned())
                .collect()
        })
        .unwrap_or_default();
    v.sort();
    v
}

/// The store's visible state: records, layer dirs, staging dirs.
fn state(store: &ImageStore) -> (usize, Vec<String>, Vec<String>) {
    (
        store.list().unwrap().len(),
        names(&store.root().join("layers")),
        names(&store.root().join("tmp")),
    )
}

fn limits(max_bytes: u64, max_entries: u64) -> Limits {
    Limits {
        max_bytes,
        max_entries,
    }
}

/// Runs `argv` as the host user `nobody`, as a login would (runuser drops
/// every capability; `setpriv --reuid` keeps them across its own exec, so
/// it would look up the path with root's powers).
fn as_nobody(argv: &[&str]) -> std::process::Output {
    Command::new("runuser")
        .args(["-u", "nobody", "--"])
        .args(argv)
        .output()
        .expect("run setpriv")
}

fn assert_denied(out: &std::process::Output, what: &str) {
    let err = String::from_utf8_lossy(&out.stderr);
    assert!(
        !out.status.success(),
        "{what}: a host user succeeded: {err}"
    );
    assert!(
        err.contains("Permission denied"),
        "{what}: unexpected failure: {err}"
    );
}

fn static_binary() -> PathBuf {
    // Any small static binary will do: the host's busybox, else herd-work.
    for p in [
        PathBuf::from("/usr/bin/busybox"),
        PathBuf::from("/bin/busybox"),
        herd_testkit::workspace_root().join("target/static/release/herd-work"),
    ] {
        if p.is_file() {
            return p;
        }
    }
    panic!("no static binary found (install busybox-static or build herd-work)");
}

#[test]
fn setuid_files_and_device_nodes_of_a_layer_are_unreachable_for_host_users() {
    let test = "setuid_files_and_device_nodes_of_a_layer_are_unreachable_for_host_users";
    if !herd_testkit::require_root(test) {
        return;
    }
    if Command::new("runuser").arg("--version").output().is_err() {
        herd_testkit::unmet(test, "runuser (util-linux) is missing");
        return;
    }
    let t = tempfile::tempdir().unwrap();
    // The temp dir itself is 0700; open it up so only the store's own
    // permissions stand between a host user and the layers.
    fs::set_permissions(t.path(), fs::Permissions::from_mode(0o755)).unwrap();
    let bin = fs::read(static_binary()).unwrap();
    let mut b = tar::Builder::new(Vec::new());
    let mut h = header(tar::EntryType::Directory, 0o755, 0);
    b.append_data(&mut h, "bin", io::empty()).unwrap();
    let mut h = header(tar::EntryType::Regular, 0o4755, bin.len() as u64);
    b.append_data(&mut h, "bin/rootshell", &bin[..]).unwrap();
    let mut h = header(tar::EntryType::Directory, 0o755, 0);
    b.append_data(&mut h, "dev", io::empty()).unwrap();
    add_node(&mut b, "dev/kmsg", tar::EntryType::Char, 1, 11);
    add_node(&mut b, "dev/disk", tar::EntryType::Block, 8, 0);
    let tarp = t.path().join("evil.tar");
    fs::write(&tarp, b.into_inner().unwrap()).unwrap();

    let root = t.path().join("store");
    let store = ImageStore::open(&root).unwrap();
    let info = store.import("evil", &tarp).unwrap();
    let layer = store.layer_dir(&info.layers[0]);

    // What the layer keeps (the documented choice): the bits and the nodes.
    let m = fs::symlink_metadata(layer.join("bin/rootshell")).unwrap();
    assert_eq!(
        (m.mode() & 0o7777, m.uid()),
        (0o4755, 0),
        "setuid bit and owner kept"
    );
    let k = fs::symlink_metadata(layer.join("dev/kmsg")).unwrap();
    assert!(k.file_type().is_char_device() && k.rdev() == libc::makedev(1, 11));
    assert_eq!(k.mode() & 0o777, 0o666);
    let d = fs::symlink_metadata(layer.join("dev/disk")).unwrap();
    assert!(d.file_type().is_block_device() && d.rdev() == libc::makedev(8, 0));
    for dir in [
        root.clone(),
        root.join("layers"),
        root.join("images"),
        root.join("tmp"),
    ] {
        let mode = fs::metadata(&dir).unwrap().mode() & 0o777;
        assert_eq!(mode, 0o700, "{} is {mode:o}", dir.display());
    }

    let shell = layer.join("bin/rootshell");
    let kmsg = layer.join("dev/kmsg");
    let disk = layer.join("dev/disk");
    let (shell, kmsg, disk) = (
        shell.to_str().unwrap(),
        kmsg.to_str().unwrap(),
        disk.to_str().unwrap(),
    );
    // runuser itself works for that user (the denials below are about the store).
    let ok = as_nobody(&["/usr/bin/busybox", "true"]);
    assert!(
        ok.status.success(),
        "runuser as nobody: {}",
        String::from_utf8_lossy(&ok.stderr)
    );
    let write_kmsg = format!("echo herd-hostile-test > {kmsg}");
    let check = || {
        assert_denied(&as_nobody(&[shell, "true"]), "exec the setuid-root binary");
        assert_denied(
            &as_nobody(&["/usr/bin/busybox", "sh", "-c", &write_kmsg]),
            "write the kmsg node",
        );
        assert_denied(
            &as_nobody(&["/usr/bin/busybox", "head", "-c1", disk]),
            "read the block node",
        );
    };
    check();

    // Control: with the old 0755 directories the same user reaches the node
    // (so the refusal above is the store's doing), and reopening the store
    // locks it down again.
    for dir in [root.clone(), root.join("layers")] {
        fs::set_permissions(&dir, fs::Permissions::from_mode(0o755)).unwrap();
    }
    let open = as_nobody(&["/usr/bin/busybox", "sh", "-c", &write_kmsg]);
    assert!(
        open.status.success(),
        "control: 0666 kmsg node not writable with 0755 dirs: {}",
        String::from_utf8_lossy(&open.stderr)
    );
    let store = ImageStore::open(&root).unwrap();
    assert_eq!(fs::metadata(store.root()).unwrap().mode() & 0o777, 0o700);
    check();
}

/// A tar holding one file of `size` zero bytes, written through `w`.
fn zero_tar<W: Write>(w: W, size: u64) -> W {
    let mut b = tar::Builder::new(w);
    let mut h = header(tar::EntryType::Regular, 0o644, size);
    b.append_data(&mut h, "zeros", io::repeat(0).take(size))
        .unwrap();
    b.into_inner().unwrap()
}

fn expect_too_large(r: herd_overlay::Result<impl std::fmt::Debug>, unit: &str, label: &str) {
    match r {
        Err(e @ Error::TooLarge { .. }) => {
            let msg = e.to_string();
            assert!(msg.contains(unit), "{label}: {msg}");
            assert!(msg.contains("limit"), "{label}: {msg}");
        }
        other => panic!("{label}: expected TooLarge ({unit}), got {other:?}"),
    }
}

#[test]
fn gzip_and_zstd_bombs_stop_at_the_limit_and_leave_the_store_unchanged() {
    let t = tempfile::tempdir().unwrap();
    let store = ImageStore::open(t.path().join("store"))
        .unwrap()
        .with_limits(limits(16 << 20, 1000));
    const BOMB: u64 = 256 << 20;
    let gz = zero_tar(
        flate2::write::GzEncoder::new(Vec::new(), flate2::Compression::best()),
        BOMB,
    )
    .finish()
    .unwrap();
    let zst = zero_tar(zstd::Encoder::new(Vec::new(), 19).unwrap(), BOMB)
        .finish()
        .unwrap();
    for (label, data) in [("gzip", gz), ("zstd", zst)] {
        assert!(
            (data.len() as u64) < BOMB / 100,
            "{label} bomb is {} bytes",
            data.len()
        );
        let p = t.path().join(format!("bomb.{label}"));
        fs::write(&p, &data).unwrap();
        let before = state(&store);
        expect_too_large(store.import(label, &p), "bytes", label);
        assert_eq!(state(&store), before, "{label}: store changed");
    }
    // Within a large enough limit the same kind of archive imports.
    let small = zero_tar(
        flate2::write::GzEncoder::new(Vec::new(), flate2::Compression::fast()),
        1 << 20,
    )
    .finish()
    .unwrap();
    let p = t.path().join("small.gz");
    fs::write(&p, small).unwrap();
    store.import("small", &p).unwrap();
}

#[test]
fn data_after_the_end_of_the_archive_is_bounded_too() {
    let t = tempfile::tempdir().unwrap();
    let store = ImageStore::open(t.path().join("store"))
        .unwrap()
        .with_limits(limits(4 << 20, 100));
    // A tiny valid tar, then 256 MiB of zeros the digest would have to read.
    let mut tar = zero_tar(Vec::new(), 10);
    let mut e = zstd::Encoder::new(Vec::new(), 19).unwrap();
    e.write_all(&tar).unwrap();
    io::copy(&mut io::repeat(0).take(256 << 20), &mut e).unwrap();
    tar = e.finish().unwrap();
    let p = t.path().join("trailing.zst");
    fs::write(&p, tar).unwrap();
    let before = state(&store);
    expect_too_large(
        store.import("trailing", &p),
        "decompressed stream",
        "trailing data",
    );
    assert_eq!(state(&store), before);
}

#[test]
fn an_entry_flood_stops_at_the_entry_limit() {
    let t = tempfile::tempdir().unwrap();
    let store = ImageStore::open(t.path().join("store"))
        .unwrap()
        .with_limits(limits(1 << 30, 1000));
    let mut b = tar::Builder::new(Vec::new());
    for i in 0..5000 {
        let mut h = header(tar::EntryType::Regular, 0o644, 0);
        b.append_data(&mut h, format!("f{i}"), io::empty()).unwrap();
    }
    let p = t.path().join("flood.tar");
    fs::write(&p, b.into_inner().unwrap()).unwrap();
    let before = state(&store);
    expect_too_large(store.import("flood", &p), "entries", "flood");
    assert_eq!(state(&store), before);
    // The same limit holds for an upper layer applied from another host.
    let upper = t.path().join("upper");
    fs::create_dir(&upper).unwrap();
    expect_too_large(
        apply_upper_limited(&upper, fs::File::open(&p).unwrap(), limits(1 << 30, 1000)),
        "entries",
        "apply flood",
    );
}

/// A GNU sparse tar (built by GNU tar) of a file with `size` apparent bytes
/// and one 4 KiB block of data in the middle.
fn sparse_tar(dir: &Path, size: u64) -> Option<PathBuf> {
    let src = dir.join("sparse-src");
    fs::create_dir_all(&src).unwrap();
    let f = fs::File::create(src.join("big")).unwrap();
    f.set_len(size).unwrap();
    use std::os::unix::fs::FileExt;
    f.write_all_at(&[0x5a; 4096], size / 2).unwrap();
    let out = dir.join("sparse.tar");
    let st = Command::new("tar")
        .args(["--sparse", "--format=gnu", "-C"])
        .arg(&src)
        .arg("-cf")
        .arg(&out)
        .arg("big")
        .status()
        .ok()?;
    st.success().then_some(out)
}

#[test]
fn a_sparse_file_counts_at_its_apparent_size_and_is_written_with_holes() {
    let test = "a_sparse_file_counts_at_its_apparent_size_and_is_written_with_holes";
    let t = tempfile::tempdir().unwrap();
    let Some(tarp) = sparse_tar(t.path(), 1 << 30) else {
        herd_testkit::unmet(test, "GNU tar cannot build a sparse archive here");
        return;
    };
    let tar_len = fs::metadata(&tarp).unwrap().len();
    assert!(tar_len < 64 << 10, "sparse tar is {tar_len} bytes");

    // Under a limit smaller than its apparent size: refused, nothing written.
    let store = ImageStore::open(t.path().join("store"))
        .unwrap()
        .with_limits(limits(64 << 20, 1000));
    let before = state(&store);
    expect_too_large(store.import("sparse", &tarp), "bytes", "sparse");
    assert_eq!(state(&store), before);

    // Under the default limits it imports without allocating 1 GiB.
    let store = ImageStore::open(t.path().join("store2")).unwrap();
    assert_eq!(store.limits(), Limits::default());
    let info = store.import("sparse", &tarp).unwrap();
    let m = fs::metadata(store.layer_dir(&info.layers[0]).join("big")).unwrap();
    assert_eq!(m.len(), 1 << 30);
    let allocated = m.blocks() * 512;
    assert!(
        allocated < 1 << 20,
        "1 GiB sparse file allocated {allocated} bytes"
    );
    let mut f = fs::File::open(store.layer_dir(&info.layers[0]).join("big")).unwrap();
    use std::io::Seek;
    f.seek(io::SeekFrom::Start(1 << 29)).unwrap();
    let mut block = [0u8; 4096];
    f.read_exact(&mut block).unwrap();
    assert!(block.iter().all(|b| *b == 0x5a), "data block lost");
}
