//! Integration tests: real files, real tars, real overlay mounts (as root).

use std::collections::BTreeMap;
use std::ffi::CString;
use std::fs;
use std::io::Write;
use std::os::unix::ffi::OsStrExt;
use std::os::unix::fs::{FileTypeExt, MetadataExt, PermissionsExt};
use std::path::{Path, PathBuf};

use herd_overlay::{
    apply_upper, capture_upper, capture_upper_since, is_mount_point, ContainerFs, Error, ImageStore,
};
use sha2::{Digest, Sha256};

// ---------- helpers ----------

fn set_xattr(p: &Path, k: &str, v: &[u8]) {
    let cp = CString::new(p.as_os_str().as_bytes()).unwrap();
    let ck = CString::new(k).unwrap();
    // SAFETY: valid C strings and buffer.
    let r = unsafe { libc::lsetxattr(cp.as_ptr(), ck.as_ptr(), v.as_ptr().cast(), v.len(), 0) };
    assert_eq!(
        r,
        0,
        "setxattr {k} on {}: {}",
        p.display(),
        std::io::Error::last_os_error()
    );
}

fn get_xattrs(p: &Path) -> Vec<(String, Vec<u8>)> {
    let cp = CString::new(p.as_os_str().as_bytes()).unwrap();
    let mut buf = vec![0u8; 4096];
    // SAFETY: buffer valid for its length.
    let n = unsafe { libc::llistxattr(cp.as_ptr(), buf.as_mut_ptr().cast(), buf.len()) };
    if n <= 0 {
        return Vec::new();
    }
    buf.truncate(n as usize);
    let mut out = Vec::new();
    for k in buf.split(|b| *b == 0).filter(|s| !s.is_empty()) {
        let ck = CString::new(k).unwrap();
        let mut v = vec![0u8; 4096];
        // SAFETY: buffer valid.
        let m =
            unsafe { libc::lgetxattr(cp.as_ptr(), ck.as_ptr(), v.as_mut_ptr().cast(), v.len()) };
        if m >= 0 {
            v.truncate(m as usize);
            out.push((String::from_utf8_lossy(k).into_owned(), v));
        }
    }
    out.sort();
    out
}

fn is_whiteout(p: &Path) -> bool {
    fs::symlink_metadata(p)
        .map(|m| m.file_type().is_char_device() && m.rdev() == 0)
        .unwrap_or(false)
}

/// A description of every entry under `root` (kind, mode, owner, content,
/// target, xattrs; mtimes of non-directories; hard-link groups).
fn describe(root: &Path, with_dir_mtime: bool) -> BTreeMap<String, String> {
    let mut out = BTreeMap::new();
    let mut inodes: BTreeMap<u64, String> = BTreeMap::new();
    fn walk(
        root: &Path,
        rel: &Path,
        out: &mut BTreeMap<String, String>,
        inodes: &mut BTreeMap<u64, String>,
        dm: bool,
    ) {
        let p = root.join(rel);
        let m = fs::symlink_metadata(&p).unwrap();
        let ft = m.file_type();
        let xattrs: Vec<String> = get_xattrs(&p)
            .into_iter()
            .filter(|(k, _)| {
                !k.starts_with("trusted.overlay.origin")
                    && !k.starts_with("trusted.overlay.impure")
                    && k != "trusted.overlay.uuid"
                    && !k.starts_with("security.")
            })
            .map(|(k, v)| format!("{k}={}", String::from_utf8_lossy(&v)))
            .collect();
        let mut d = format!(
            "mode={:o} uid={} gid={} x={:?}",
            m.mode(),
            m.uid(),
            m.gid(),
            xattrs
        );
        if ft.is_dir() {
            if dm {
                d += &format!(" mtime={}", m.mtime());
            }
        } else {
            d += &format!(" mtime={}", m.mtime());
        }
        if ft.is_file() {
            let data = fs::read(&p).unwrap();
            d += &format!(" file={}", hex::encode(Sha256::digest(&data)));
            if m.nlink() > 1 {
                let first = inodes
                    .entry(m.ino())
                    .or_insert_with(|| rel.display().to_string());
                d += &format!(" link-group={first}");
            }
        } else if ft.is_symlink() {
            d += &format!(" symlink={}", fs::read_link(&p).unwrap().display());
        } else if ft.is_char_device() {
            d += &format!(" char={}", m.rdev());
        }
        out.insert(
            if rel.as_os_str().is_empty() {
                ".".into()
            } else {
                rel.display().to_string()
            },
            d,
        );
        if ft.is_dir() {
            let mut names: Vec<_> = fs::read_dir(&p)
                .unwrap()
                .map(|e| e.unwrap().file_name())
                .collect();
            names.sort();
            for n in names {
                walk(root, &rel.join(n), out, inodes, dm);
            }
        }
    }
    walk(root, Path::new(""), &mut out, &mut inodes, with_dir_mtime);
    out
}

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

fn add_file(b: &mut tar::Builder<Vec<u8>>, path: &str, data: &[u8]) {
    let mut h = header(tar::EntryType::Regular, 0o644, data.len() as u64);
    b.append_data(&mut h, path, data).unwrap();
}

fn add_dir(b: &mut tar::Builder<Vec<u8>>, path: &str) {
    let mut h = header(tar::EntryType::Directory, 0o755, 0);
    b.append_data(&mut h, path, std::io::empty()).unwrap();
}

fn add_symlink(b: &mut tar::Builder<Vec<u8>>, path: &str, target: &str) {
    let mut h = header(tar::EntryType::Symlink, 0o777, 0);
    b.append_link(&mut h, path, target).unwrap();
}

/// An entry with raw name/link bytes, bypassing the tar crate's own checks
/// (that is how a hostile archive looks).
fn add_raw(
    b: &mut tar::Builder<Vec<u8>>,
    kind: tar::EntryType,
    path: &[u8],
    link: Option<&[u8]>,
    data: &[u8],
) {
    let mut h = header(kind, 0o644, data.len() as u64);
    {
        let gnu = h.as_gnu_mut().unwrap();
        gnu.name[..path.len()].copy_from_slice(path);
        if let Some(l) = link {
            gnu.linkname[..l.len()].copy_from_slice(l);
        }
    }
    h.set_cksum();
    b.append(&h, data).unwrap();
}

fn finish(b: tar::Builder<Vec<u8>>) -> Vec<u8> {
    b.into_inner().unwrap()
}

fn gzip(data: &[u8]) -> Vec<u8> {
    let mut e = flate2::write::GzEncoder::new(Vec::new(), flate2::Compression::default());
    e.write_all(data).unwrap();
    e.finish().unwrap()
}

fn sha(data: &[u8]) -> String {
    format!("sha256:{}", hex::encode(Sha256::digest(data)))
}

fn dir_names(p: &Path) -> Vec<String> {
    let mut v: Vec<String> = match fs::read_dir(p) {
        Ok(rd) => rd
            .map(|e| e.unwrap().file_name().to_string_lossy().into_owned())
            .collect(),
        Err(_) => Vec::new(),
    };
    v.sort();
    v
}

/// Writes an OCI image layout with the given layer tars (bottom first), the
/// first gzip'ed, the others zstd'ed. Returns the layer diff ids.
fn write_oci_layout(dir: &Path, layers: &[Vec<u8>]) -> Vec<String> {
    let blobs = dir.join("blobs/sha256");
    fs::create_dir_all(&blobs).unwrap();
    let put = |data: &[u8]| -> String {
        let d = sha(data);
        fs::write(blobs.join(d.trim_start_matches("sha256:")), data).unwrap();
        d
    };
    let mut diff_ids = Vec::new();
    let mut descs = Vec::new();
    for (i, l) in layers.iter().enumerate() {
        diff_ids.push(sha(l));
        let (blob, mt) = if i == 0 {
            (gzip(l), "application/vnd.oci.image.layer.v1.tar+gzip")
        } else {
            (
                zstd::encode_all(&l[..], 3).unwrap(),
                "application/vnd.oci.image.layer.v1.tar+zstd",
            )
        };
        let d = put(&blob);
        descs.push(serde_json::json!({"mediaType": mt, "digest": d, "size": blob.len()}));
    }
    let config = serde_json::json!({
        "architecture": "amd64", "os": "linux",
        "config": {"Env": ["PATH=/bin", "A=1"], "Cmd": ["/bin/sh", "-c", "echo hi"], "WorkingDir": "/srv"},
        "rootfs": {"type": "layers", "diff_ids": diff_ids},
    });
    let config = serde_json::to_vec(&config).unwrap();
    let cd = put(&config);
    let manifest = serde_json::to_vec(&serde_json::json!({
        "schemaVersion": 2,
        "mediaType": "application/vnd.oci.image.manifest.v1+json",
        "config": {"mediaType": "application/vnd.oci.image.config.v1+json", "digest": cd, "size": config.len()},
        "layers": descs,
    }))
    .unwrap();
    let md = put(&manifest);
    fs::write(
        dir.join("index.json"),
        serde_json::to_vec(&serde_json::json!({
            "schemaVersion": 2,
            "manifests": [{"mediaType": "application/vnd.oci.image.manifest.v1+json", "digest": md, "size": manifest.len(),
                           "platform": {"os": "linux", "architecture": "amd64"}}],
        }))
        .unwrap(),
    )
    .unwrap();
    fs::write(dir.join("oci-layout"), br#"{"imageLayoutVersion":"1.0.0"}"#).unwrap();
    diff_ids
}

/// Two layers: the second deletes etc/gone (whiteout) and makes opq/ opaque.
fn two_layers() -> (Vec<u8>, Vec<u8>) {
    let mut b = tar::Builder::new(Vec::new());
    add_dir(&mut b, "etc");
    add_file(&mut b, "etc/keep", b"kept");
    add_file(&mut b, "etc/gone", b"to be deleted");
    add_dir(&mut b, "opq");
    add_file(&mut b, "opq/a", b"a");
    add_file(&mut b, "opq/b", b"b");
    add_dir(&mut b, "bin");
    add_file(&mut b, "bin/tool", b"#!/bin/sh\n");
    let l1 = finish(b);
    let mut b = tar::Builder::new(Vec::new());
    add_dir(&mut b, "etc");
    add_file(&mut b, "etc/.wh.gone", b"");
    add_dir(&mut b, "opq");
    add_file(&mut b, "opq/.wh..wh..opq", b"");
    add_file(&mut b, "opq/c", b"c");
    let l2 = finish(b);
    (l1, l2)
}

fn state(store: &ImageStore) -> (Vec<herd_overlay::ImageInfo>, Vec<String>, Vec<String>) {
    (
        store.list().unwrap(),
        dir_names(&store.root().join("layers")),
        dir_names(&store.root().join("tmp")),
    )
}

/// Detaches the overlay at the path if a test panics while it is mounted.
struct MountGuard(PathBuf);

impl Drop for MountGuard {
    fn drop(&mut self) {
        if is_mount_point(&self.0).unwrap_or(false) {
            let _ = nix::mount::umount2(&self.0, nix::mount::MntFlags::MNT_DETACH);
        }
    }
}

// ---------- image store ----------

#[test]
fn import_rootfs_dir() {
    let t = tempfile::tempdir().unwrap();
    let src = t.path().join("rootfs");
    fs::create_dir_all(src.join("bin")).unwrap();
    fs::write(src.join("bin/hello"), b"hello").unwrap();
    fs::set_permissions(src.join("bin/hello"), fs::Permissions::from_mode(0o755)).unwrap();
    std::os::unix::fs::symlink("bin/hello", src.join("hi")).unwrap();
    fs::hard_link(src.join("bin/hello"), src.join("bin/hello2")).unwrap();
    fs::create_dir(src.join("empty")).unwrap();

    let store = ImageStore::open(t.path().join("store")).unwrap();
    let info = store.import("local/hello:1", &src).unwrap();
    assert_eq!(info.layers.len(), 1);
    assert!(info.id.starts_with("sha256:"));
    assert_eq!(info.size_bytes, 10);
    assert!(info.config.is_none());
    let layer = store.layer_dir(&info.layers[0]);
    assert!(store.has_layer(&info.layers[0]));
    assert_eq!(describe(&layer, false), describe(&src, false));
    assert_eq!(store.lower_dirs(&info), vec![layer.clone()]);
    assert!(store.root().join("images/local/hello:1.json").is_file());
    assert_eq!(store.get("local/hello:1").unwrap(), info);

    // Same content: same layer, reused; the second name shares it.
    let again = store.import("other", &src).unwrap();
    assert_eq!(again.layers, info.layers);
    assert_eq!(dir_names(&store.root().join("layers")).len(), 1);
    assert_eq!(store.list().unwrap().len(), 2);
    // Re-import under an existing name replaces the record.
    fs::write(src.join("new"), b"new").unwrap();
    let replaced = store.import("other", &src).unwrap();
    assert_ne!(replaced.layers, info.layers);
    assert_eq!(store.get("other").unwrap().layers, replaced.layers);
    assert_eq!(store.list().unwrap().len(), 2);
    assert_eq!(dir_names(&store.root().join("layers")).len(), 2);
}

#[test]
fn import_plain_gzip_zstd_tars_share_the_layer() {
    let t = tempfile::tempdir().unwrap();
    let mut b = tar::Builder::new(Vec::new());
    add_dir(&mut b, "etc");
    add_file(&mut b, "etc/os-release", b"ID=herd\n");
    add_symlink(&mut b, "etc/link", "os-release");
    add_file(&mut b, "deep/implicit/parent", b"x"); // parents not in the tar
    let plain = finish(b);
    fs::write(t.path().join("r.tar"), &plain).unwrap();
    fs::write(t.path().join("r.tar.gz"), gzip(&plain)).unwrap();
    fs::write(
        t.path().join("r.tar.zst"),
        zstd::encode_all(&plain[..], 3).unwrap(),
    )
    .unwrap();

    let store = ImageStore::open(t.path().join("store")).unwrap();
    let a = store.import("plain", &t.path().join("r.tar")).unwrap();
    let g = store.import("gz", &t.path().join("r.tar.gz")).unwrap();
    let z = store.import("zst", &t.path().join("r.tar.zst")).unwrap();
    assert_eq!(a.layers, vec![sha(&plain)]);
    assert_eq!(g.layers, a.layers);
    assert_eq!(z.layers, a.layers);
    assert_eq!(dir_names(&store.root().join("layers")).len(), 1);
    let l = store.layer_dir(&a.layers[0]);
    assert_eq!(fs::read(l.join("etc/os-release")).unwrap(), b"ID=herd\n");
    assert_eq!(
        fs::read_link(l.join("etc/link")).unwrap(),
        Path::new("os-release")
    );
    assert_eq!(fs::read(l.join("deep/implicit/parent")).unwrap(), b"x");
    let m = fs::metadata(l.join("etc/os-release")).unwrap();
    assert_eq!(m.mtime(), 1_600_000_000);
    assert_eq!(m.mode() & 0o7777, 0o644);
    let names: Vec<String> = store.list().unwrap().into_iter().map(|i| i.name).collect();
    assert_eq!(names, ["gz", "plain", "zst"]);
}

#[test]
fn invalid_names_and_not_found() {
    let t = tempfile::tempdir().unwrap();
    let store = ImageStore::open(t.path()).unwrap();
    for bad in [
        "",
        "a/../b",
        "..",
        "/abs",
        "a//b",
        "sp ace",
        "x;y",
        &"a".repeat(129),
    ] {
        assert!(
            matches!(store.get(bad), Err(Error::InvalidName { .. })),
            "{bad:?}"
        );
        assert!(
            matches!(store.import(bad, t.path()), Err(Error::InvalidName { .. })),
            "{bad:?}"
        );
    }
    assert!(matches!(store.get("nope:1"), Err(Error::NotFound(n)) if n == "nope:1"));
    assert!(matches!(store.remove("nope"), Err(Error::NotFound(_))));
}

fn check_oci_layers(store: &ImageStore, info: &herd_overlay::ImageInfo, diff_ids: &[String]) {
    assert_eq!(info.layers, diff_ids);
    let cfg = info.config.as_ref().expect("config");
    assert_eq!(cfg.env, ["PATH=/bin", "A=1"]);
    assert_eq!(
        cfg.cmd.as_deref(),
        Some(&["/bin/sh".to_string(), "-c".into(), "echo hi".into()][..])
    );
    assert_eq!(cfg.entrypoint, None);
    assert_eq!(cfg.working_dir.as_deref(), Some("/srv"));
    let top = store.layer_dir(&diff_ids[1]);
    assert!(is_whiteout(&top.join("etc/gone")), "whiteout in top layer");
    assert!(!top.join("etc/.wh.gone").exists());
    assert!(!top.join("opq/.wh..wh..opq").exists());
    let x = get_xattrs(&top.join("opq"));
    assert!(
        x.contains(&("trusted.overlay.opaque".to_string(), b"y".to_vec())),
        "{x:?}"
    );
    assert_eq!(
        store.lower_dirs(info),
        vec![top, store.layer_dir(&diff_ids[0])]
    );
}

#[test]
fn import_oci_layout_dir_and_tar_and_mount() {
    if !herd_testkit::require_root("import_oci_layout_dir_and_tar_and_mount") {
        return;
    }
    let t = tempfile::tempdir().unwrap();
    let (l1, l2) = two_layers();
    let layout = t.path().join("oci");
    let diff_ids = write_oci_layout(&layout, &[l1, l2]);
    let store = ImageStore::open(t.path().join("store")).unwrap();
    let info = store.import("oci/img:latest", &layout).unwrap();
    check_oci_layers(&store, &info, &diff_ids);
    assert_eq!(info.id, {
        let idx: serde_json::Value =
            serde_json::from_slice(&fs::read(layout.join("index.json")).unwrap()).unwrap();
        let md = idx["manifests"][0]["digest"].as_str().unwrap().to_string();
        let m: serde_json::Value = serde_json::from_slice(
            &fs::read(
                layout
                    .join("blobs/sha256")
                    .join(md.trim_start_matches("sha256:")),
            )
            .unwrap(),
        )
        .unwrap();
        m["config"]["digest"].as_str().unwrap().to_string()
    });

    // The same layout as a tar: layers reused, nothing new in layers/.
    let mut b = tar::Builder::new(Vec::new());
    b.append_dir_all(".", &layout).unwrap();
    fs::write(t.path().join("oci.tar"), finish(b)).unwrap();
    let before = dir_names(&store.root().join("layers"));
    let info2 = store
        .import("oci/from-tar", &t.path().join("oci.tar"))
        .unwrap();
    check_oci_layers(&store, &info2, &diff_ids);
    assert_eq!(dir_names(&store.root().join("layers")), before);
    assert!(dir_names(&store.root().join("tmp")).is_empty());

    // A fresh store importing from the tar unpacks the layers itself.
    let store2 = ImageStore::open(t.path().join("store2")).unwrap();
    let info3 = store2.import("x", &t.path().join("oci.tar")).unwrap();
    check_oci_layers(&store2, &info3, &diff_ids);

    // Stack the layers under a container: the view is right.
    let c = ContainerFs::create(&t.path().join("c1"), store.lower_dirs(&info)).unwrap();
    let _guard = MountGuard(c.merged().to_path_buf());
    c.mount().unwrap();
    assert!(c.is_mounted().unwrap());
    let m = c.merged();
    assert_eq!(fs::read(m.join("etc/keep")).unwrap(), b"kept");
    assert!(
        !m.join("etc/gone").exists(),
        "whiteout hides the lower file"
    );
    assert_eq!(
        dir_names(&m.join("opq")),
        ["c"],
        "opaque dir hides lower content"
    );
    assert_eq!(fs::read(m.join("bin/tool")).unwrap(), b"#!/bin/sh\n");
    c.remove().unwrap();
}

#[test]
fn oci_blob_digest_is_checked() {
    let t = tempfile::tempdir().unwrap();
    let (l1, l2) = two_layers();
    let layout = t.path().join("oci");
    let diff_ids = write_oci_layout(&layout, &[l1, l2.clone()]);
    // Corrupt the second layer blob (keep it valid zstd).
    let blobs = layout.join("blobs/sha256");
    let mut found = false;
    for e in fs::read_dir(&blobs).unwrap() {
        let p = e.unwrap().path();
        let data = fs::read(&p).unwrap();
        if data.starts_with(&[0x28, 0xb5, 0x2f, 0xfd]) {
            fs::write(&p, zstd::encode_all(&l2[..], 19).unwrap()).unwrap();
            found = true;
        }
    }
    assert!(found);
    let store = ImageStore::open(t.path().join("store")).unwrap();
    let err = store.import("bad", &layout).unwrap_err();
    assert!(matches!(err, Error::DigestMismatch { .. }), "{err}");
    assert!(store.list().unwrap().is_empty());
    assert!(dir_names(&store.root().join("layers")).is_empty());
    assert!(dir_names(&store.root().join("tmp")).is_empty());
    assert!(!store.has_layer(&diff_ids[0]));
}

#[test]
fn hostile_tars_are_refused_and_leave_the_store_unchanged() {
    let t = tempfile::tempdir().unwrap();
    let store = ImageStore::open(t.path().join("store")).unwrap();
    // Something already in the store.
    let mut b = tar::Builder::new(Vec::new());
    add_file(&mut b, "ok", b"ok");
    fs::write(t.path().join("ok.tar"), finish(b)).unwrap();
    store.import("ok", &t.path().join("ok.tar")).unwrap();

    let outside = t.path().join("outside");
    fs::create_dir(&outside).unwrap();
    let outside_s = outside.to_str().unwrap().to_string();

    type Build = Box<dyn Fn(&mut tar::Builder<Vec<u8>>)>;
    let cases: Vec<(&str, &str, Build)> = vec![
        (
            "dotdot",
            "../x",
            Box::new(|b| add_raw(b, tar::EntryType::Regular, b"../x", None, b"evil")),
        ),
        (
            "dotdot-inner",
            "a/../../x",
            Box::new(|b| add_raw(b, tar::EntryType::Regular, b"a/../../x", None, b"evil")),
        ),
        (
            "absolute",
            "/etc/x",
            Box::new(|b| add_raw(b, tar::EntryType::Regular, b"/etc/x", None, b"evil")),
        ),
        (
            "symlink-out",
            "link/passwd",
            Box::new(move |b| {
                add_raw(
                    b,
                    tar::EntryType::Symlink,
                    b"link",
                    Some(outside_s.as_bytes()),
                    b"",
                );
                add_raw(b, tar::EntryType::Regular, b"link/passwd", None, b"evil");
            }),
        ),
        (
            "symlink-out-dir",
            "link/sub/",
            Box::new(|b| {
                add_raw(b, tar::EntryType::Symlink, b"link", Some(b"/"), b"");
                add_raw(b, tar::EntryType::Directory, b"link/sub/", None, b"");
            }),
        ),
        (
            "hardlink-out",
            "pw",
            Box::new(|b| add_raw(b, tar::EntryType::Link, b"pw", Some(b"/etc/passwd"), b"")),
        ),
        (
            "hardlink-dotdot",
            "pw2",
            Box::new(|b| {
                add_raw(
                    b,
                    tar::EntryType::Link,
                    b"pw2",
                    Some(b"../../etc/passwd"),
                    b"",
                )
            }),
        ),
    ];
    for (label, entry, build) in cases {
        let mut b = tar::Builder::new(Vec::new());
        // Good content first, so the failure happens mid-unpack.
        add_dir(&mut b, "usr");
        add_file(&mut b, "usr/good", label.as_bytes());
        build(&mut b);
        let tar = finish(b);
        for (suffix, data) in [("tar", tar.clone()), ("tar.gz", gzip(&tar))] {
            let p = t.path().join(format!("{label}.{suffix}"));
            fs::write(&p, &data).unwrap();
            let before = state(&store);
            let err = store.import(label, &p).unwrap_err();
            match &err {
                Error::UnsafeEntry { entry: e, .. } => assert_eq!(e, entry, "{label}: {err}"),
                other => panic!("{label}: expected UnsafeEntry, got {other}"),
            }
            assert!(err.to_string().contains(entry), "{err}");
            assert_eq!(state(&store), before, "{label}: store changed");
            assert!(matches!(store.get(label), Err(Error::NotFound(_))));
        }
    }
    assert!(dir_names(&outside).is_empty(), "nothing written outside");
    // The OCI-layout path refuses the same way (hostile layer inside a layout).
    let mut b = tar::Builder::new(Vec::new());
    add_raw(&mut b, tar::EntryType::Regular, b"../escape", None, b"evil");
    let evil = finish(b);
    let layout = t.path().join("evil-oci");
    write_oci_layout(&layout, &[evil]);
    let before = state(&store);
    let err = store.import("evil-oci", &layout).unwrap_err();
    assert!(
        matches!(&err, Error::UnsafeEntry { entry, .. } if entry == "../escape"),
        "{err}"
    );
    assert_eq!(state(&store), before);
}

#[test]
fn remove_collects_unshared_layers_only() {
    if !herd_testkit::require_root("remove_collects_unshared_layers_only") {
        return;
    }
    let t = tempfile::tempdir().unwrap();
    let (l1, l2) = two_layers();
    let mut b = tar::Builder::new(Vec::new());
    add_file(&mut b, "third", b"3");
    let l3 = finish(b);
    let a = write_oci_layout(&t.path().join("a"), &[l1.clone(), l2]);
    let bb = write_oci_layout(&t.path().join("b"), &[l1, l3]);
    assert_eq!(a[0], bb[0]);
    let store = ImageStore::open(t.path().join("store")).unwrap();
    store.import("a", &t.path().join("a")).unwrap();
    store.import("b", &t.path().join("b")).unwrap();
    assert_eq!(dir_names(&store.root().join("layers")).len(), 3);

    store.remove("a").unwrap();
    assert!(matches!(store.get("a"), Err(Error::NotFound(_))));
    assert!(store.has_layer(&a[0]), "shared layer kept");
    assert!(!store.has_layer(&a[1]), "unshared layer collected");
    assert!(store.has_layer(&bb[1]));
    assert!(matches!(store.remove("a"), Err(Error::NotFound(_))));

    store.remove("b").unwrap();
    assert!(dir_names(&store.root().join("layers")).is_empty());
    assert!(store.list().unwrap().is_empty());
    assert!(store.gc().unwrap().is_empty());
}

// ---------- container fs, capture and apply ----------

fn mountinfo_mentions(p: &Path) -> bool {
    fs::read_to_string("/proc/self/mountinfo")
        .unwrap()
        .contains(p.to_str().unwrap())
}

#[test]
fn container_fs_mount_unmount_remove() {
    if !herd_testkit::require_root("container_fs_mount_unmount_remove") {
        return;
    }
    let t = tempfile::tempdir().unwrap();
    let lower = t.path().join("lower");
    fs::create_dir(&lower).unwrap();
    fs::write(lower.join("f"), b"lower").unwrap();
    let dir = t.path().join("ctr");
    let c = ContainerFs::create(&dir, vec![lower.clone()]).unwrap();
    let _guard = MountGuard(c.merged().to_path_buf());
    assert!(!c.is_mounted().unwrap());
    c.unmount().unwrap(); // not mounted: fine
    c.mount().unwrap();
    c.mount().unwrap(); // idempotent
    assert!(c.is_mounted().unwrap());
    assert!(is_mount_point(c.merged()).unwrap());
    fs::write(c.merged().join("new"), b"upper").unwrap();
    assert_eq!(fs::read(c.upper().join("new")).unwrap(), b"upper");
    assert_eq!(fs::read(c.merged().join("f")).unwrap(), b"lower");

    // An agent restart adopts it.
    let again = ContainerFs::open(&dir, vec![lower.clone()]).unwrap();
    assert!(again.is_mounted().unwrap());
    // Keep a file open: lazy detach still succeeds.
    let busy = fs::File::open(c.merged().join("f")).unwrap();
    again.unmount().unwrap();
    again.unmount().unwrap();
    assert!(!c.is_mounted().unwrap());
    drop(busy);
    c.mount().unwrap();
    let canon = c.dir().to_path_buf();
    c.remove().unwrap();
    assert!(
        !mountinfo_mentions(&canon),
        "nothing of the container left mounted"
    );
    assert!(!canon.exists());
    assert_eq!(
        fs::read(lower.join("f")).unwrap(),
        b"lower",
        "lower untouched"
    );
    assert!(ContainerFs::create(&t.path().join("none"), Vec::new()).is_err());
}

#[test]
fn mount_with_many_long_lower_paths() {
    if !herd_testkit::require_root("mount_with_many_long_lower_paths") {
        return;
    }
    let t = tempfile::tempdir().unwrap();
    let mut lowers = Vec::new();
    for i in 0..120 {
        let d = t.path().join(format!(
            "a-rather-long-layer-directory-name-to-overflow-the-page-{i:04}"
        ));
        fs::create_dir(&d).unwrap();
        fs::write(d.join(format!("f{i}")), i.to_string()).unwrap();
        lowers.push(d);
    }
    lowers.reverse(); // top first
    let total: usize = lowers.iter().map(|p| p.as_os_str().len() + 1).sum();
    assert!(total > 4096);
    let c = ContainerFs::create(&t.path().join("c,with:odd"), lowers).unwrap();
    let _guard = MountGuard(c.merged().to_path_buf());
    c.mount().unwrap();
    assert_eq!(fs::read_to_string(c.merged().join("f0")).unwrap(), "0");
    assert_eq!(fs::read_to_string(c.merged().join("f119")).unwrap(), "119");
    let d = c.dir().to_path_buf();
    c.remove().unwrap();
    assert!(!d.exists());
}

/// Source container: lower layer, writes through the overlay that produce
/// every kind of upper entry. Returns (lower, container).
fn busy_container(t: &Path) -> (PathBuf, ContainerFs) {
    let lower = t.join("lower");
    fs::create_dir_all(lower.join("etc")).unwrap();
    fs::write(lower.join("etc/passwd"), b"root:x:0:0").unwrap();
    fs::write(lower.join("etc/hosts"), b"127.0.0.1").unwrap();
    fs::create_dir_all(lower.join("var/cache")).unwrap();
    fs::write(lower.join("var/cache/old1"), b"1").unwrap();
    fs::write(lower.join("var/cache/old2"), b"2").unwrap();
    let c = ContainerFs::create(&t.join("src"), vec![lower.clone()]).unwrap();
    c.mount().unwrap();
    let m = c.merged();
    fs::remove_file(m.join("etc/hosts")).unwrap(); // whiteout
    fs::remove_dir_all(m.join("var/cache")).unwrap();
    fs::create_dir(m.join("var/cache")).unwrap(); // opaque dir
    fs::write(m.join("var/cache/new"), b"fresh").unwrap();
    fs::create_dir(m.join("data")).unwrap();
    fs::write(m.join("data/file"), b"payload").unwrap();
    fs::hard_link(m.join("data/file"), m.join("data/file.link")).unwrap();
    std::os::unix::fs::symlink("/data/file", m.join("data/sym")).unwrap();
    set_xattr(&m.join("data/file"), "user.herd", b"value");
    fs::set_permissions(m.join("data/file"), fs::Permissions::from_mode(0o640)).unwrap();
    std::os::unix::fs::chown(m.join("data/file"), Some(1000), Some(1001)).unwrap();
    fs::write(m.join("etc/passwd"), b"root:x:0:0\nherd:x:1000:1000").unwrap(); // copy-up
    fs::write(m.join("upper-only"), b"temp").unwrap();
    (lower, c)
}

#[test]
fn capture_apply_round_trip_and_delta() {
    if !herd_testkit::require_root("capture_apply_round_trip_and_delta") {
        return;
    }
    let t = tempfile::tempdir().unwrap();
    let (lower, src) = busy_container(t.path());
    let _g1 = MountGuard(src.merged().to_path_buf());
    let up = src.upper();
    assert!(is_whiteout(&up.join("etc/hosts")));
    assert!(get_xattrs(&up.join("var/cache"))
        .contains(&("trusted.overlay.opaque".into(), b"y".to_vec())));

    // Full capture while running, then apply on a fresh target upper.
    let mut full = Vec::new();
    let since = std::time::SystemTime::now();
    let cs = capture_upper(up, &mut full).unwrap();
    assert!(
        cs.whiteouts >= 1 && cs.opaque_dirs >= 1 && cs.symlinks == 1 && cs.hardlinks == 1,
        "{cs:?}"
    );
    let dst = ContainerFs::create(&t.path().join("dst"), vec![lower.clone()]).unwrap();
    let _g2 = MountGuard(dst.merged().to_path_buf());
    let st = apply_upper(dst.upper(), &full[..]).unwrap();
    assert_eq!(st.hardlinks, 1);
    assert!(st.whiteouts >= 1);
    assert_eq!(describe(dst.upper(), true), describe(up, true));
    let f = dst.upper().join("data/file");
    assert_eq!(
        get_xattrs(&f),
        vec![("user.herd".to_string(), b"value".to_vec())]
    );
    assert_eq!(
        fs::metadata(&f).unwrap().ino(),
        fs::metadata(dst.upper().join("data/file.link"))
            .unwrap()
            .ino()
    );

    // The container keeps writing; then a delta (as after the freeze).
    std::thread::sleep(std::time::Duration::from_millis(20));
    let m = src.merged();
    fs::write(m.join("data/later"), b"later").unwrap();
    fs::remove_file(m.join("upper-only")).unwrap(); // no whiteout: only the listing tells
    fs::remove_file(m.join("etc/passwd")).unwrap(); // whiteout over the lower file
    fs::write(m.join("var/cache/new"), b"fresher").unwrap();
    src.unmount().unwrap();
    let mut delta = Vec::new();
    let ds = capture_upper_since(up, since, &mut delta).unwrap();
    assert!(ds.files < cs.files + 2, "{ds:?}");
    assert_eq!(
        ds.hardlinks, 0,
        "unchanged hard-linked file not resent: {ds:?}"
    );
    assert!(delta.len() < full.len() + 4096);
    let st = apply_upper(dst.upper(), &delta[..]).unwrap();
    assert_eq!(st.removed, 1, "{st:?}");
    assert_eq!(describe(dst.upper(), true), describe(up, true));

    // Both mounted views agree.
    src.mount().unwrap();
    dst.mount().unwrap();
    assert_eq!(describe(dst.merged(), false), describe(src.merged(), false));
    assert!(!dst.merged().join("etc/passwd").exists());
    assert!(!dst.merged().join("etc/hosts").exists());
    assert_eq!(dir_names(&dst.merged().join("var/cache")), ["new"]);
    assert_eq!(
        fs::read(dst.merged().join("var/cache/new")).unwrap(),
        b"fresher"
    );
    let (sd, dd) = (src.dir().to_path_buf(), dst.dir().to_path_buf());
    src.remove().unwrap();
    dst.remove().unwrap();
    assert!(!mountinfo_mentions(&sd) && !mountinfo_mentions(&dd));
}

#[test]
fn apply_refuses_hostile_streams() {
    let t = tempfile::tempdir().unwrap();
    let upper = t.path().join("upper");
    fs::create_dir(&upper).unwrap();
    let outside = t.path().join("outside");
    fs::create_dir(&outside).unwrap();
    let mut b = tar::Builder::new(Vec::new());
    add_raw(
        &mut b,
        tar::EntryType::Symlink,
        b"esc",
        Some(outside.to_str().unwrap().as_bytes()),
        b"",
    );
    add_raw(&mut b, tar::EntryType::Regular, b"esc/owned", None, b"evil");
    let err = apply_upper(&upper, &finish(b)[..]).unwrap_err();
    assert!(
        matches!(&err, Error::UnsafeEntry { entry, .. } if entry == "esc/owned"),
        "{err}"
    );
    assert!(dir_names(&outside).is_empty());

    let mut b = tar::Builder::new(Vec::new());
    add_raw(
        &mut b,
        tar::EntryType::Link,
        b"h",
        Some(b"/etc/shadow"),
        b"",
    );
    let err = apply_upper(&upper, &finish(b)[..]).unwrap_err();
    assert!(
        matches!(&err, Error::UnsafeEntry { entry, .. } if entry == "h"),
        "{err}"
    );
}
