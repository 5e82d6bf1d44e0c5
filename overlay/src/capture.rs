//! Capture of an overlayfs upper directory as a tar stream, and its apply on
//! another host.
//!
//! # Format
//! A plain POSIX/GNU tar, entries in sorted (byte) order, parents before
//! children, the upper's root first as `./`. Whiteouts are char devices 0:0,
//! exactly as overlayfs keeps them; xattrs travel as `SCHILY.xattr.NAME`
//! PAX records (so GNU tar and bsdtar can read them too), including
//! `trusted.overlay.opaque`, `trusted.overlay.redirect` and
//! `trusted.overlay.metacopy`. Overlay xattrs that only make sense on the
//! host that wrote them (`origin`, `impure`, `nlink`, `uuid`, which hold file
//! handles and counters of the local filesystem) are left out. Hard links are
//! kept (the second name is a link entry to the first); whiteouts are never
//! written as hard links even though the kernel shares one whiteout inode
//! among them. Sockets cannot be archived and are skipped (counted in
//! [`CaptureStats::skipped`]).
//!
//! Every directory entry carries a `HERD.children` PAX record: the
//! NUL-separated names of all its children at capture time, whether they are
//! in this tar or not.
//!
//! # Deltas and deletions
//! [`capture_upper_since`] writes only what changed since a point in time:
//! entries whose mtime or ctime is at or after `since`, every whiteout,
//! every opaque directory, and the directories on the path to any of them.
//! Deletions reach the target two ways: a deleted file that existed in a
//! lower layer leaves a whiteout in the upper (always sent); a deleted file
//! that existed only in the upper leaves no trace in it, but its directory's
//! mtime/ctime changed, so that directory is sent with its `HERD.children`
//! list and [`apply_upper`] removes whatever the list no longer names.
//! Renames work the same way (the new name is a changed entry, the old
//! directory lost a child). File contents are sent whole.
//!
//! A capture of a live container is not a consistent snapshot (files may
//! change while read; a file that shrinks is padded with zeros to the size
//! announced in its header). The migration protocol captures once while the
//! container runs, then captures the delta after the freeze, which is exact.

use std::collections::HashMap;
use std::io::{self, Read, Write};
use std::os::unix::ffi::OsStrExt;
use std::os::unix::fs::{MetadataExt, OpenOptionsExt};
use std::path::{Path, PathBuf};
use std::time::{SystemTime, UNIX_EPOCH};

use crate::error::{Error, Result};
use crate::sys;
use crate::unpack::{self, ApplyStats, Budget, Limits, Opts, Whiteouts, CHILDREN_KEY};

/// What a capture wrote.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct CaptureStats {
    /// Tar entries written (extension headers excluded).
    pub entries: u64,
    /// Regular files written whole.
    pub files: u64,
    /// Directories written.
    pub dirs: u64,
    /// Symlinks written.
    pub symlinks: u64,
    /// Second and later names of hard-linked files.
    pub hardlinks: u64,
    /// Overlayfs whiteouts (char 0:0).
    pub whiteouts: u64,
    /// Directories with `trusted.overlay.opaque=y`.
    pub opaque_dirs: u64,
    /// Device nodes and fifos (whiteouts excluded).
    pub specials: u64,
    /// Bytes of regular-file content.
    pub bytes: u64,
    /// Entries that cannot be archived (sockets) or vanished while reading.
    pub skipped: u64,
}

/// Writes a tar of the whole upper directory `upper` to `out`.
pub fn capture_upper<W: Write>(upper: &Path, out: W) -> Result<CaptureStats> {
    capture_tree(upper, None, out).map(|(s, _)| s)
}

/// Writes a tar of what changed in `upper` since `since` (see the module
/// docs for what "changed" includes and how deletions travel).
pub fn capture_upper_since<W: Write>(
    upper: &Path,
    since: SystemTime,
    out: W,
) -> Result<CaptureStats> {
    capture_tree(upper, Some(since), out).map(|(s, _)| s)
}

/// Unpacks a tar written by [`capture_upper`] / [`capture_upper_since`] onto
/// the upper directory `upper` (which must exist and must not be in use by a
/// mounted overlay), with the same path safety rules as image import.
/// Existing entries are replaced; directories listed in the stream end up
/// with exactly the children the source had.
pub fn apply_upper<R: Read>(upper: &Path, input: R) -> Result<ApplyStats> {
    apply_upper_limited(upper, input, Limits::default())
}

/// [`apply_upper`] within `limits` (a migration or a checkpoint archive
/// from another host is as untrusted as an image).
pub fn apply_upper_limited<R: Read>(upper: &Path, input: R, limits: Limits) -> Result<ApplyStats> {
    let mut budget = Budget::new(limits, format!("upper layer for {}", upper.display()));
    let mut input = budget.limit_stream(input);
    let r = unpack::unpack(
        upper,
        &mut input,
        Opts {
            whiteouts: Whiteouts::Overlay,
            mirror: true,
        },
        &mut budget,
    );
    match r {
        Ok(stats) => budget.absorb(&input, Ok(())).map(|()| stats),
        Err(e) => budget
            .absorb(&input, Err(e))
            .map(|()| ApplyStats::default()),
    }
}

fn keep_xattr(name: &[u8]) -> bool {
    !unpack::host_local_xattr(name)
}

struct Node {
    rel: PathBuf,
    meta: std::fs::Metadata,
    xattrs: Vec<(Vec<u8>, Vec<u8>)>,
    children: Vec<Node>,
    names: Vec<Vec<u8>>,
    include: bool,
}

fn is_whiteout(m: &std::fs::Metadata) -> bool {
    use std::os::unix::fs::FileTypeExt;
    m.file_type().is_char_device() && m.rdev() == 0
}

fn changed(m: &std::fs::Metadata, since: Option<(i64, i64)>) -> bool {
    match since {
        None => true,
        Some(s) => (m.mtime(), m.mtime_nsec()) >= s || (m.ctime(), m.ctime_nsec()) >= s,
    }
}

fn scan(
    root: &Path,
    rel: PathBuf,
    meta: std::fs::Metadata,
    since: Option<(i64, i64)>,
    stats: &mut CaptureStats,
) -> Result<Node> {
    let path = root.join(&rel);
    let xattrs: Vec<_> = sys::xattrs_of(&path)
        .map_err(Error::io("read xattrs of", &path))?
        .into_iter()
        .filter(|(k, _)| keep_xattr(k))
        .collect();
    let opaque = xattrs
        .iter()
        .any(|(k, v)| k == b"trusted.overlay.opaque" && v == b"y");
    let mut node = Node {
        include: changed(&meta, since)
            || is_whiteout(&meta)
            || opaque
            || rel.as_os_str().is_empty(),
        rel,
        meta,
        xattrs,
        children: Vec::new(),
        names: Vec::new(),
    };
    if node.meta.is_dir() {
        let mut names: Vec<Vec<u8>> = Vec::new();
        for e in std::fs::read_dir(&path).map_err(Error::io("read directory", &path))? {
            let e = e.map_err(Error::io("read directory", &path))?;
            names.push(e.file_name().as_bytes().to_vec());
        }
        names.sort();
        for n in &names {
            let crel = node.rel.join(std::ffi::OsStr::from_bytes(n));
            let cpath = root.join(&crel);
            let cmeta = match std::fs::symlink_metadata(&cpath) {
                Ok(m) => m,
                Err(e) if e.kind() == io::ErrorKind::NotFound => {
                    stats.skipped += 1;
                    continue;
                }
                Err(e) => return Err(Error::io("lstat", cpath)(e)),
            };
            let child = scan(root, crel, cmeta, since, stats)?;
            node.include |= child.include;
            node.children.push(child);
        }
        node.names = names;
    }
    Ok(node)
}

/// Walks `root` (never following symlinks) and writes the tar; returns the
/// writer so callers can recover a hashing wrapper.
pub(crate) fn capture_tree<W: Write>(
    root: &Path,
    since: Option<SystemTime>,
    out: W,
) -> Result<(CaptureStats, W)> {
    let since = since.map(|t| match t.duration_since(UNIX_EPOCH) {
        Ok(d) => (d.as_secs() as i64, i64::from(d.subsec_nanos())),
        Err(_) => (i64::MIN, 0),
    });
    let mut stats = CaptureStats::default();
    let meta = std::fs::symlink_metadata(root).map_err(Error::io("lstat", root))?;
    if !meta.is_dir() {
        return Err(Error::io("capture", root)(io::Error::new(
            io::ErrorKind::InvalidInput,
            "not a directory",
        )));
    }
    let tree = scan(root, PathBuf::new(), meta, since, &mut stats)?;
    let mut b = tar::Builder::new(out);
    let mut links = HashMap::new();
    emit(root, &tree, &mut b, &mut links, &mut stats)?;
    b.finish().map_err(Error::io("write tar of", root))?;
    let w = b.into_inner().map_err(Error::io("write tar of", root))?;
    Ok((stats, w))
}

fn emit<W: Write>(
    root: &Path,
    node: &Node,
    b: &mut tar::Builder<W>,
    links: &mut HashMap<(u64, u64), PathBuf>,
    stats: &mut CaptureStats,
) -> Result<()> {
    use std::os::unix::fs::FileTypeExt;
    if !node.include {
        return Ok(());
    }
    let path = root.join(&node.rel);
    let werr = |e: io::Error| Error::io("write tar entry for", &path)(e);
    let m = &node.meta;
    let ft = m.file_type();
    let name: PathBuf = if node.rel.as_os_str().is_empty() {
        PathBuf::from("./")
    } else {
        node.rel.clone()
    };

    let mut h = tar::Header::new_gnu();
    h.set_mode(m.mode() & 0o7777);
    h.set_uid(u64::from(m.uid()));
    h.set_gid(u64::from(m.gid()));
    h.set_mtime(m.mtime().max(0) as u64);
    h.set_size(0);

    let mut pax: Vec<(String, Vec<u8>)> = Vec::new();
    for (k, v) in &node.xattrs {
        match std::str::from_utf8(k) {
            Ok(k) => pax.push((format!("SCHILY.xattr.{k}"), v.clone())),
            Err(_) => {
                tracing::warn!(path = %path.display(), "skipping xattr with a non-UTF-8 name")
            }
        }
    }
    if ft.is_dir() {
        pax.push((CHILDREN_KEY.to_string(), node.names.join(&0u8)));
    }

    if ft.is_socket() {
        tracing::warn!(path = %path.display(), "skipping socket");
        stats.skipped += 1;
        return Ok(());
    }
    let hardlink = !ft.is_dir() && m.nlink() > 1 && !is_whiteout(m);
    if hardlink {
        if let Some(first) = links.get(&(m.dev(), m.ino())) {
            write_pax(b, &pax).map_err(werr)?;
            h.set_entry_type(tar::EntryType::Link);
            b.append_link(&mut h, &name, first).map_err(werr)?;
            stats.hardlinks += 1;
            stats.entries += 1;
            return Ok(());
        }
    }

    if ft.is_dir() {
        h.set_entry_type(tar::EntryType::Directory);
        write_pax(b, &pax).map_err(werr)?;
        b.append_data(&mut h, &name, io::empty()).map_err(werr)?;
        stats.dirs += 1;
        if node
            .xattrs
            .iter()
            .any(|(k, v)| k == b"trusted.overlay.opaque" && v == b"y")
        {
            stats.opaque_dirs += 1;
        }
        stats.entries += 1;
        for c in &node.children {
            emit(root, c, b, links, stats)?;
        }
        return Ok(());
    }
    if ft.is_file() {
        let f = match std::fs::OpenOptions::new()
            .read(true)
            .custom_flags(libc::O_NOFOLLOW)
            .open(&path)
        {
            Ok(f) => f,
            Err(e) if e.kind() == io::ErrorKind::NotFound => {
                stats.skipped += 1;
                return Ok(());
            }
            Err(e) => return Err(Error::io("open", &path)(e)),
        };
        let size = m.len();
        h.set_entry_type(tar::EntryType::Regular);
        h.set_size(size);
        write_pax(b, &pax).map_err(werr)?;
        // A file that shrinks while read is padded to the announced size.
        let data = f.take(size).chain(io::repeat(0)).take(size);
        b.append_data(&mut h, &name, data).map_err(werr)?;
        stats.files += 1;
        stats.bytes += size;
    } else if ft.is_symlink() {
        let target = std::fs::read_link(&path).map_err(Error::io("readlink", &path))?;
        h.set_entry_type(tar::EntryType::Symlink);
        write_pax(b, &pax).map_err(werr)?;
        b.append_link(&mut h, &name, &target).map_err(werr)?;
        stats.symlinks += 1;
    } else if ft.is_char_device() || ft.is_block_device() || ft.is_fifo() {
        let kind = if ft.is_char_device() {
            tar::EntryType::Char
        } else if ft.is_block_device() {
            tar::EntryType::Block
        } else {
            tar::EntryType::Fifo
        };
        h.set_entry_type(kind);
        if !ft.is_fifo() {
            let rdev = m.rdev();
            h.set_device_major(libc::major(rdev)).map_err(werr)?;
            h.set_device_minor(libc::minor(rdev)).map_err(werr)?;
        }
        write_pax(b, &pax).map_err(werr)?;
        b.append_data(&mut h, &name, io::empty()).map_err(werr)?;
        if is_whiteout(m) {
            stats.whiteouts += 1;
        } else {
            stats.specials += 1;
        }
    } else {
        stats.skipped += 1;
        return Ok(());
    }
    stats.entries += 1;
    if hardlink {
        links.insert((m.dev(), m.ino()), name);
    }
    Ok(())
}

fn write_pax<W: Write>(b: &mut tar::Builder<W>, pax: &[(String, Vec<u8>)]) -> io::Result<()> {
    if pax.is_empty() {
        return Ok(());
    }
    b.append_pax_extensions(pax.iter().map(|(k, v)| (k.as_str(), v.as_slice())))
}
