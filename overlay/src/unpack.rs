//! Safe tar unpacking, shared by image import and upper-layer apply.
//!
//! # Safety rules
//! Every entry path is split into components; an absolute path, an empty
//! path or a `..` component is refused with [`Error::UnsafeEntry`] naming the
//! entry. The parent directories are then opened one component at a time
//! from the root's file descriptor with `O_NOFOLLOW | O_DIRECTORY`, so a
//! symlink anywhere on the way (`link -> /etc` then `link/passwd`) makes the
//! entry fail instead of being followed. We refuse *every* write through a
//! symlink, even one that would resolve inside the root: archives produced
//! by real tools never need it, and not resolving symlinks at all is the only
//! rule that cannot be raced. The final component is created with
//! `O_CREAT|O_EXCL|O_NOFOLLOW`, `mknodat`, `symlinkat`, `linkat` (which links
//! a symlink itself, never its target), so nothing outside the root is ever
//! opened for writing. Hard-link targets go through the same checks.
//!
//! # Whiteouts
//! * [`Whiteouts::Oci`] (image layers): `.wh.NAME` becomes an overlayfs
//!   whiteout (a char device 0:0 named NAME) and `.wh..wh..opq` sets
//!   `trusted.overlay.opaque=y` on its directory, so the unpacked layer
//!   directories can be stacked directly as overlayfs lowerdirs. Any
//!   `trusted.overlay.*` xattr carried by the layer itself is dropped: a
//!   hostile image must not be able to plant a `redirect` or `metacopy`.
//! * [`Whiteouts::Overlay`] (upper-layer apply): entries are taken as they
//!   are; a char 0:0 already *is* an overlayfs whiteout and overlay xattrs
//!   are kept. Directory entries may carry a `HERD.children` PAX record
//!   (written by [`crate::capture`]); with `prune` set, children of such a
//!   directory that are not in the list are removed at the end. That is how
//!   deletions of files that lived only in the upper layer (which overlayfs
//!   removes without leaving a whiteout) reach the target.
//!
//! Directory modes and mtimes are applied at the end, after all children
//! were written (writing a child changes the parent's mtime, and a
//! read-only directory mode would stop a non-root unpacker).

use std::collections::HashSet;
use std::io::{self, Read, Seek, Write};
use std::os::fd::{AsRawFd, OwnedFd, RawFd};
use std::path::Path;

use crate::error::{Error, Result};
use crate::sys;

/// How `.wh.` names and overlay xattrs are treated; see the module docs.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum Whiteouts {
    /// OCI image layer conventions.
    Oci,
    /// Overlayfs upper-layer conventions (raw).
    Overlay,
}

/// Options of one unpack run.
#[derive(Debug, Clone, Copy)]
pub(crate) struct Opts {
    pub whiteouts: Whiteouts,
    /// Remove children not listed in a directory's `HERD.children` record,
    /// and drop xattrs of existing directories that the entry does not carry.
    pub mirror: bool,
}

/// Bounds on what one import or apply may create, so a small hostile
/// archive (a gzip or zstd bomb, a sparse file announcing a huge size, a
/// flood of empty entries) cannot fill the host's disk or inode table.
///
/// Regular files count at their *apparent* size, so a sparse entry counts
/// in full even though it is written with holes (runs of zeros are never
/// allocated). The decompressed stream itself is bounded too (content plus
/// tar headers, see [`Limits::stream_bytes`]), so trailing data after the
/// end-of-archive blocks cannot make an import decompress forever.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Limits {
    /// Total bytes of regular-file content (apparent sizes).
    pub max_bytes: u64,
    /// Number of tar entries (files, directories, links, nodes).
    pub max_entries: u64,
}

impl Limits {
    /// Default of [`Limits::max_bytes`]: 16 GiB.
    pub const DEFAULT_MAX_BYTES: u64 = 16 << 30;
    /// Default of [`Limits::max_entries`]: one million.
    pub const DEFAULT_MAX_ENTRIES: u64 = 1_000_000;

    /// Bound on the decompressed stream: the content plus three 512-byte
    /// blocks of headers and padding per entry, plus 1 MiB of slack.
    pub fn stream_bytes(&self) -> u64 {
        self.max_bytes
            .saturating_add(self.max_entries.saturating_mul(3 * 512))
            .saturating_add(1 << 20)
    }
}

impl Default for Limits {
    fn default() -> Self {
        Limits {
            max_bytes: Self::DEFAULT_MAX_BYTES,
            max_entries: Self::DEFAULT_MAX_ENTRIES,
        }
    }
}

/// What one import has used of its [`Limits`] so far (shared by its layers).
#[derive(Debug, Clone)]
pub(crate) struct Budget {
    pub limits: Limits,
    /// What the limits are about, for the error ("image import", ...).
    pub what: String,
    pub bytes: u64,
    pub entries: u64,
    pub stream: u64,
}

impl Budget {
    pub(crate) fn new(limits: Limits, what: impl Into<String>) -> Self {
        Budget {
            limits,
            what: what.into(),
            bytes: 0,
            entries: 0,
            stream: 0,
        }
    }

    fn too_large(&self, limit: u64, unit: &'static str) -> Error {
        Error::TooLarge {
            what: self.what.clone(),
            limit,
            unit,
        }
    }

    fn add_entry(&mut self) -> Result<()> {
        self.entries += 1;
        if self.entries > self.limits.max_entries {
            return Err(self.too_large(self.limits.max_entries, "entries"));
        }
        Ok(())
    }

    fn add_bytes(&mut self, n: u64) -> Result<()> {
        self.bytes = self.bytes.saturating_add(n);
        if self.bytes > self.limits.max_bytes {
            return Err(self.too_large(self.limits.max_bytes, "bytes"));
        }
        Ok(())
    }

    /// Wraps a decompressed stream so that reading past the remaining
    /// stream budget fails (with an error that [`Budget::absorb`] maps back).
    pub(crate) fn limit_stream<R: Read>(&self, inner: R) -> StreamLimit<R> {
        StreamLimit {
            inner,
            left: self.limits.stream_bytes().saturating_sub(self.stream),
            read: 0,
            hit: false,
        }
    }

    /// Accounts what `s` read; turns its overrun into [`Error::TooLarge`].
    pub(crate) fn absorb<R>(&mut self, s: &StreamLimit<R>, r: Result<()>) -> Result<()> {
        self.stream += s.read;
        if s.hit {
            return Err(self.too_large(self.limits.stream_bytes(), "bytes of decompressed stream"));
        }
        r
    }
}

/// See [`Budget::limit_stream`].
pub(crate) struct StreamLimit<R> {
    inner: R,
    left: u64,
    read: u64,
    hit: bool,
}

impl<R: Read> Read for StreamLimit<R> {
    fn read(&mut self, buf: &mut [u8]) -> io::Result<usize> {
        if self.left == 0 {
            // One byte more tells a stream that ends exactly at the bound
            // from one that goes on.
            let mut one = [0u8; 1];
            let n = self.inner.read(&mut one)?;
            if n == 0 {
                return Ok(0);
            }
            self.hit = true;
            return Err(io::Error::other("decompressed stream exceeds its limit"));
        }
        let cap = buf.len().min(self.left.min(usize::MAX as u64) as usize);
        let n = self.inner.read(&mut buf[..cap])?;
        self.left -= n as u64;
        self.read += n as u64;
        Ok(n)
    }
}

/// PAX record naming a directory's children (NUL-separated).
pub(crate) const CHILDREN_KEY: &str = "HERD.children";
const XATTR_PREFIX: &[u8] = b"SCHILY.xattr.";
const OPAQUE_XATTR: &[u8] = b"trusted.overlay.opaque";
const OVERLAY_XATTR_PREFIX: &[u8] = b"trusted.overlay.";

/// Overlay xattrs that name things of the local filesystem only (file
/// handles, counters, the upper's uuid): never captured, never applied,
/// never removed from a target by mirroring.
pub(crate) fn host_local_xattr(name: &[u8]) -> bool {
    matches!(
        name,
        b"trusted.overlay.origin"
            | b"trusted.overlay.impure"
            | b"trusted.overlay.nlink"
            | b"trusted.overlay.uuid"
    )
}

/// What an unpack (an import layer or an [`crate::apply_upper`]) did.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct ApplyStats {
    /// Tar entries processed (extension headers excluded).
    pub entries: u64,
    /// Regular files written.
    pub files: u64,
    /// Directories created or updated.
    pub dirs: u64,
    /// Symlinks created.
    pub symlinks: u64,
    /// Hard links created.
    pub hardlinks: u64,
    /// Overlayfs whiteouts created (char 0:0).
    pub whiteouts: u64,
    /// Directories marked opaque (`.wh..wh..opq` or the xattr).
    pub opaque_dirs: u64,
    /// Device nodes and fifos created (whiteouts excluded).
    pub specials: u64,
    /// Bytes of regular-file content written.
    pub bytes: u64,
    /// Entries removed because a directory listing no longer had them.
    pub removed: u64,
}

struct Meta {
    mode: u32,
    uid: u64,
    gid: u64,
    mtime: i64,
    xattrs: Vec<(Vec<u8>, Vec<u8>)>,
    children: Option<HashSet<Vec<u8>>>,
}

/// Splits an archive path into components, refusing absolute paths and `..`.
/// `.` and empty components are dropped; an empty result names the root.
pub(crate) fn split_path(raw: &[u8]) -> std::result::Result<Vec<Vec<u8>>, &'static str> {
    if raw.is_empty() {
        return Err("empty path");
    }
    if raw[0] == b'/' {
        return Err("absolute path");
    }
    let mut out = Vec::new();
    for c in raw.split(|b| *b == b'/') {
        match c {
            b"" | b"." => {}
            b".." => return Err("path contains '..'"),
            _ => out.push(c.to_vec()),
        }
    }
    Ok(out)
}

/// A path below the root, as components.
type Comps = Vec<Vec<u8>>;

struct Unpacker<'b> {
    rootfd: OwnedFd,
    opts: Opts,
    budget: &'b mut Budget,
    cache: Option<(Comps, OwnedFd)>,
    /// Directories whose mode and mtime are set at the end.
    dirs: Vec<(Comps, u32, i64)>,
    /// Directory listings for mirror mode.
    listings: Vec<(Comps, HashSet<Vec<u8>>)>,
    stats: ApplyStats,
}

/// Unpacks the tar stream `input` into the existing directory `root`,
/// within what is left of `budget`.
pub(crate) fn unpack<R: Read>(
    root: &Path,
    input: R,
    opts: Opts,
    budget: &mut Budget,
) -> Result<ApplyStats> {
    let rootfd = sys::open_dir(root).map_err(Error::io("open directory", root))?;
    let mut u = Unpacker {
        rootfd,
        opts,
        budget,
        cache: None,
        dirs: Vec::new(),
        listings: Vec::new(),
        stats: ApplyStats::default(),
    };
    let mut archive = tar::Archive::new(input);
    let entries = archive
        .entries()
        .map_err(Error::io("read tar stream into", root))?;
    for entry in entries {
        let mut entry = entry.map_err(Error::io("read tar stream into", root))?;
        u.entry(&mut entry)?;
    }
    u.finish()?;
    Ok(u.stats)
}

fn errno(e: &io::Error) -> i32 {
    e.raw_os_error().unwrap_or(0)
}

impl Unpacker<'_> {
    fn entry<R: Read>(&mut self, entry: &mut tar::Entry<'_, R>) -> Result<()> {
        let kind = entry.header().entry_type();
        if kind.is_pax_global_extensions()
            || kind.is_pax_local_extensions()
            || kind.is_gnu_longname()
            || kind.is_gnu_longlink()
        {
            return Ok(());
        }
        let raw = entry.path_bytes().into_owned();
        let name = String::from_utf8_lossy(&raw).into_owned();
        let comps = split_path(&raw).map_err(|r| Error::unsafe_entry(&name, r))?;
        let meta = self.meta(entry, &name)?;
        self.budget.add_entry()?;
        self.stats.entries += 1;

        if comps.is_empty() {
            if !kind.is_dir() {
                return Err(Error::unsafe_entry(
                    &name,
                    "non-directory entry for the root",
                ));
            }
            let fd = self
                .rootfd
                .try_clone()
                .map_err(Error::entry("open root", &name))?;
            return self.finish_dir(&name, comps, fd.as_raw_fd(), meta);
        }
        let Some((last, parents)) = comps.split_last() else {
            return Err(Error::unsafe_entry(&name, "empty path"));
        };
        let last = last.clone();
        let parent = self.parent(parents, &name)?;
        let parent = parent.as_raw_fd();

        if self.opts.whiteouts == Whiteouts::Oci {
            if let Some(target) = last.strip_prefix(b".wh.") {
                if target == b".wh..opq" {
                    sys::fsetxattr(parent, OPAQUE_XATTR, b"y")
                        .map_err(Error::entry("set trusted.overlay.opaque", &name))?;
                    self.stats.opaque_dirs += 1;
                    return Ok(());
                }
                if target.is_empty()
                    || target == b"."
                    || target == b".."
                    || target.starts_with(b".wh.")
                {
                    return Err(Error::unsafe_entry(&name, "malformed whiteout name"));
                }
                self.remove_existing(parent, target, &name)?;
                sys::mknod_at(parent, target, libc::S_IFCHR, 0, 0)
                    .map_err(Error::entry("create whiteout", &name))?;
                self.stats.whiteouts += 1;
                return Ok(());
            }
        }

        let existing = sys::lstat_at(parent, &last).map_err(Error::entry("lstat", &name))?;
        if kind.is_dir() {
            match existing {
                Some(st) if sys::is_kind(&st, libc::S_IFDIR) => {}
                Some(_) => {
                    self.remove_existing(parent, &last, &name)?;
                    sys::mkdir_at(parent, &last, 0o700).map_err(Error::entry("mkdir", &name))?;
                }
                None => {
                    sys::mkdir_at(parent, &last, 0o700).map_err(Error::entry("mkdir", &name))?
                }
            }
            let fd =
                sys::open_dir_at(parent, &last).map_err(Error::entry("open directory", &name))?;
            return self.finish_dir(&name, comps, fd.as_raw_fd(), meta);
        }

        if kind.is_hard_link() {
            return self.hard_link(entry, &name, parent, &last);
        }
        if existing.is_some() {
            self.remove_existing(parent, &last, &name)?;
        }
        if kind.is_file() || kind == tar::EntryType::Continuous || kind.is_gnu_sparse() {
            // Refuse before writing anything when the header alone is too big
            // (for a sparse entry, the tar crate reports the apparent size).
            let left = self
                .budget
                .limits
                .max_bytes
                .saturating_sub(self.budget.bytes);
            if entry.size() > left {
                return Err(self.budget.too_large(self.budget.limits.max_bytes, "bytes"));
            }
            let mut f = sys::create_file_at(parent, &last, 0o600)
                .map_err(Error::entry("create file", &name))?;
            let n = self.write_sparse(entry, &mut f, &name)?;
            self.stats.bytes += n;
            self.stats.files += 1;
            let fd = f.as_raw_fd();
            self.own(sys::fchown(fd, meta.uid as u32, meta.gid as u32), &name)?;
            sys::fchmod(fd, meta.mode).map_err(Error::entry("chmod", &name))?;
            for (k, v) in &meta.xattrs {
                self.xattr_result(sys::fsetxattr(fd, k, v), &name, k)?;
            }
            sys::futimes(fd, meta.mtime).map_err(Error::entry("set mtime", &name))?;
            return Ok(());
        }
        if kind.is_symlink() {
            let target = entry
                .link_name_bytes()
                .ok_or_else(|| Error::unsafe_entry(&name, "symlink without a target"))?
                .into_owned();
            sys::symlink_at(&target, parent, &last)
                .map_err(Error::entry("create symlink", &name))?;
            self.stats.symlinks += 1;
        } else if kind.is_character_special() || kind.is_block_special() || kind.is_fifo() {
            let (fmt, major, minor) = if kind.is_fifo() {
                (libc::S_IFIFO, 0, 0)
            } else {
                let h = entry.header();
                let major = h
                    .device_major()
                    .map_err(Error::entry("read device major", &name))?
                    .unwrap_or(0);
                let minor = h
                    .device_minor()
                    .map_err(Error::entry("read device minor", &name))?
                    .unwrap_or(0);
                let fmt = if kind.is_character_special() {
                    libc::S_IFCHR
                } else {
                    libc::S_IFBLK
                };
                (fmt, major, minor)
            };
            sys::mknod_at(parent, &last, fmt | (meta.mode & 0o777), major, minor)
                .map_err(Error::entry("mknod", &name))?;
            if fmt == libc::S_IFCHR && major == 0 && minor == 0 {
                self.stats.whiteouts += 1;
            } else {
                self.stats.specials += 1;
            }
        } else {
            return Err(Error::Unsupported {
                entry: name,
                kind: format!("{kind:?}"),
            });
        }
        self.own(
            sys::chown_at(parent, &last, meta.uid as u32, meta.gid as u32),
            &name,
        )?;
        if !kind.is_symlink() {
            sys::chmod_at(parent, &last, meta.mode).map_err(Error::entry("chmod", &name))?;
        }
        for (k, v) in &meta.xattrs {
            self.xattr_result(sys::lsetxattr_at(parent, &last, k, v), &name, k)?;
        }
        sys::utimes_at(parent, &last, meta.mtime).map_err(Error::entry("set mtime", &name))?;
        Ok(())
    }

    /// Copies the entry's content into `f`, counting it against the budget,
    /// and leaves holes where whole blocks are zero (a sparse entry's holes
    /// arrive as zeros from the tar reader): nothing is allocated for them.
    fn write_sparse(
        &mut self,
        entry: &mut impl Read,
        f: &mut std::fs::File,
        name: &str,
    ) -> Result<u64> {
        const BLOCK: usize = 64 << 10;
        let mut buf = vec![0u8; BLOCK];
        let mut total = 0u64;
        let mut hole = 0u64;
        loop {
            let n = match entry.read(&mut buf) {
                Ok(0) => break,
                Ok(n) => n,
                Err(e) if e.kind() == io::ErrorKind::Interrupted => continue,
                Err(e) => return Err(Error::entry("write file", name)(e)),
            };
            self.budget.add_bytes(n as u64)?;
            total += n as u64;
            let chunk = &buf[..n];
            if chunk.iter().all(|b| *b == 0) {
                hole += n as u64;
                continue;
            }
            if hole > 0 {
                f.seek(io::SeekFrom::Current(hole as i64))
                    .map_err(Error::entry("seek past a hole", name))?;
                hole = 0;
            }
            f.write_all(chunk)
                .map_err(Error::entry("write file", name))?;
        }
        if hole > 0 {
            f.set_len(total)
                .map_err(Error::entry("extend sparse file", name))?;
        }
        Ok(total)
    }

    fn meta<R: Read>(&self, entry: &mut tar::Entry<'_, R>, name: &str) -> Result<Meta> {
        let h = entry.header();
        let mut m = Meta {
            mode: h.mode().map_err(Error::entry("read mode", name))? & 0o7777,
            uid: h.uid().map_err(Error::entry("read uid", name))?,
            gid: h.gid().map_err(Error::entry("read gid", name))?,
            mtime: h.mtime().map_err(Error::entry("read mtime", name))? as i64,
            xattrs: Vec::new(),
            children: None,
        };
        if let Some(exts) = entry
            .pax_extensions()
            .map_err(Error::entry("read PAX header", name))?
        {
            for ext in exts {
                let ext = ext.map_err(Error::entry("read PAX header", name))?;
                let key = ext.key_bytes();
                let value = ext.value_bytes();
                if let Some(x) = key.strip_prefix(XATTR_PREFIX) {
                    if self.opts.whiteouts == Whiteouts::Oci && x.starts_with(OVERLAY_XATTR_PREFIX)
                    {
                        tracing::warn!(entry = name, xattr = %String::from_utf8_lossy(x), "dropping overlay xattr from image layer");
                        continue;
                    }
                    if host_local_xattr(x) {
                        continue;
                    }
                    m.xattrs.push((x.to_vec(), value.to_vec()));
                } else if key == CHILDREN_KEY.as_bytes() {
                    m.children = Some(
                        value
                            .split(|b| *b == 0)
                            .filter(|s| !s.is_empty())
                            .map(<[u8]>::to_vec)
                            .collect(),
                    );
                } else if key == b"uid" || key == b"gid" || key == b"mtime" {
                    let v = std::str::from_utf8(value)
                        .ok()
                        .and_then(|s| s.split('.').next()?.parse::<i64>().ok());
                    if let Some(v) = v {
                        match key {
                            b"uid" => m.uid = v as u64,
                            b"gid" => m.gid = v as u64,
                            _ => m.mtime = v,
                        }
                    }
                }
            }
        }
        Ok(m)
    }

    fn finish_dir(&mut self, name: &str, comps: Vec<Vec<u8>>, fd: RawFd, meta: Meta) -> Result<()> {
        self.own(sys::fchown(fd, meta.uid as u32, meta.gid as u32), name)?;
        if self.opts.mirror {
            // Drop xattrs the source no longer has (a removexattr is a change too).
            let have = sys::xattrs_at(fd, b".").map_err(Error::entry("list xattrs", name))?;
            for (k, _) in have {
                if !meta.xattrs.iter().any(|(n, _)| *n == k)
                    && !k.starts_with(b"security.")
                    && !host_local_xattr(&k)
                {
                    sys::lremovexattr_at(fd, b".", &k)
                        .map_err(Error::entry("remove xattr", name))?;
                }
            }
        }
        for (k, v) in &meta.xattrs {
            if k == OPAQUE_XATTR {
                self.stats.opaque_dirs += 1;
            }
            self.xattr_result(sys::fsetxattr(fd, k, v), name, k)?;
        }
        self.stats.dirs += 1;
        if let Some(children) = meta.children {
            if self.opts.mirror {
                self.listings.push((comps.clone(), children));
            }
        }
        self.dirs.push((comps, meta.mode, meta.mtime));
        Ok(())
    }

    fn hard_link<R: Read>(
        &mut self,
        entry: &tar::Entry<'_, R>,
        name: &str,
        parent: RawFd,
        last: &[u8],
    ) -> Result<()> {
        let target = entry
            .link_name_bytes()
            .ok_or_else(|| Error::unsafe_entry(name, "hard link without a target"))?
            .into_owned();
        let tcomps = split_path(&target).map_err(|r| {
            Error::unsafe_entry(
                name,
                format!(
                    "hard link target {:?} is outside the root: {r}",
                    String::from_utf8_lossy(&target)
                ),
            )
        })?;
        let Some((tlast, tparents)) = tcomps.split_last() else {
            return Err(Error::unsafe_entry(name, "hard link to the root directory"));
        };
        let tparent = self.walk(tparents, false, name)?;
        let tst = sys::lstat_at(tparent.as_raw_fd(), tlast)
            .map_err(Error::entry("lstat hard link target", name))?
            .ok_or_else(|| {
                Error::unsafe_entry(
                    name,
                    format!(
                        "hard link target {:?} does not exist in the archive",
                        String::from_utf8_lossy(&target)
                    ),
                )
            })?;
        if sys::is_kind(&tst, libc::S_IFDIR) {
            return Err(Error::unsafe_entry(name, "hard link to a directory"));
        }
        if let Some(st) = sys::lstat_at(parent, last).map_err(Error::entry("lstat", name))? {
            if st.st_ino == tst.st_ino && st.st_dev == tst.st_dev {
                self.stats.hardlinks += 1;
                return Ok(());
            }
            self.remove_existing(parent, last, name)?;
        }
        sys::link_at(tparent.as_raw_fd(), tlast, parent, last)
            .map_err(Error::entry("create hard link", name))?;
        self.stats.hardlinks += 1;
        Ok(())
    }

    /// chown failures are tolerated (with a warning) when not root: "keep
    /// owners where possible".
    fn own(&self, r: io::Result<()>, name: &str) -> Result<()> {
        match r {
            Err(e) if errno(&e) == libc::EPERM && !is_root() => {
                tracing::warn!(entry = name, "cannot keep owner (not root)");
                Ok(())
            }
            r => r.map_err(Error::entry("chown", name)),
        }
    }

    /// Xattrs the filesystem cannot hold (ENOTSUP) or that the kind of file
    /// cannot carry (EPERM: `user.*` on a symlink or device) are skipped with
    /// a warning; anything else is an error.
    fn xattr_result(&self, r: io::Result<()>, name: &str, key: &[u8]) -> Result<()> {
        match r {
            Err(e) if errno(&e) == libc::ENOTSUP || errno(&e) == libc::EPERM => {
                tracing::warn!(entry = name, xattr = %String::from_utf8_lossy(key), error = %e, "xattr not kept");
                Ok(())
            }
            r => r.map_err(Error::entry("set xattr", name)),
        }
    }

    fn remove_existing(&mut self, parent: RawFd, last: &[u8], name: &str) -> Result<()> {
        // The cached parent fd might live inside what we remove.
        self.cache = None;
        sys::remove_at(parent, last).map_err(Error::entry("remove existing", name))
    }

    fn parent(&mut self, comps: &[Vec<u8>], name: &str) -> Result<OwnedFd> {
        if let Some((c, fd)) = &self.cache {
            if c.as_slice() == comps {
                return fd
                    .try_clone()
                    .map_err(Error::entry("dup directory fd", name));
            }
        }
        let fd = self.walk(comps, true, name)?;
        let keep = fd
            .try_clone()
            .map_err(Error::entry("dup directory fd", name))?;
        self.cache = Some((comps.to_vec(), keep));
        Ok(fd)
    }

    /// Opens `comps` below the root one component at a time, never following
    /// a symlink; missing directories are created (root:root 0755) when `create`.
    fn walk(&mut self, comps: &[Vec<u8>], create: bool, name: &str) -> Result<OwnedFd> {
        let mut cur = self
            .rootfd
            .try_clone()
            .map_err(Error::entry("dup root fd", name))?;
        for c in comps {
            let next = match sys::open_dir_at(cur.as_raw_fd(), c) {
                Ok(fd) => fd,
                Err(e) if errno(&e) == libc::ENOENT && create => {
                    sys::mkdir_at(cur.as_raw_fd(), c, 0o755)
                        .map_err(Error::entry("mkdir parent", name))?;
                    sys::open_dir_at(cur.as_raw_fd(), c)
                        .map_err(Error::entry("open parent", name))?
                }
                Err(e) if errno(&e) == libc::ELOOP || errno(&e) == libc::ENOTDIR => {
                    let comp = String::from_utf8_lossy(c);
                    let is_link = matches!(sys::lstat_at(cur.as_raw_fd(), c), Ok(Some(st)) if sys::is_kind(&st, libc::S_IFLNK));
                    return Err(Error::unsafe_entry(
                        name,
                        if is_link {
                            format!("path component {comp:?} is a symlink; refusing to write through it")
                        } else {
                            format!("path component {comp:?} is not a directory")
                        },
                    ));
                }
                Err(e) if errno(&e) == libc::ENOENT => {
                    return Err(Error::unsafe_entry(
                        name,
                        format!(
                            "path component {:?} does not exist",
                            String::from_utf8_lossy(c)
                        ),
                    ))
                }
                Err(e) => return Err(Error::entry("open parent", name)(e)),
            };
            cur = next;
        }
        Ok(cur)
    }

    fn finish(&mut self) -> Result<()> {
        self.cache = None;
        let listings = std::mem::take(&mut self.listings);
        for (comps, keep) in listings {
            let label = display(&comps);
            let fd = match self.walk(&comps, false, &label) {
                Ok(fd) => fd,
                // Replaced by a later entry: nothing to prune.
                Err(Error::UnsafeEntry { .. }) => continue,
                Err(e) => return Err(e),
            };
            for child in sys::read_dir_names(fd.as_raw_fd())
                .map_err(Error::entry("list directory", &label))?
            {
                if !keep.contains(&child) {
                    sys::remove_at(fd.as_raw_fd(), &child)
                        .map_err(Error::entry("remove stale entry", &label))?;
                    self.stats.removed += 1;
                }
            }
        }
        let dirs = std::mem::take(&mut self.dirs);
        for (comps, mode, mtime) in dirs.into_iter().rev() {
            let label = display(&comps);
            let fd = match self.walk(&comps, false, &label) {
                Ok(fd) => fd,
                Err(Error::UnsafeEntry { .. }) => continue,
                Err(e) => return Err(e),
            };
            sys::fchmod(fd.as_raw_fd(), mode).map_err(Error::entry("chmod directory", &label))?;
            sys::futimes(fd.as_raw_fd(), mtime)
                .map_err(Error::entry("set directory mtime", &label))?;
        }
        Ok(())
    }
}

fn display(comps: &[Vec<u8>]) -> String {
    if comps.is_empty() {
        return ".".into();
    }
    comps
        .iter()
        .map(|c| String::from_utf8_lossy(c).into_owned())
        .collect::<Vec<_>>()
        .join("/")
}

pub(crate) fn is_root() -> bool {
    nix::unistd::geteuid().is_root()
}

#[cfg(test)]
mod tests {
    use super::split_path;

    #[test]
    fn split_path_rules() {
        assert_eq!(
            split_path(b"./a//b/./c/").unwrap(),
            vec![b"a".to_vec(), b"b".to_vec(), b"c".to_vec()]
        );
        assert!(split_path(b"./").unwrap().is_empty());
        assert!(split_path(b"/etc/passwd").is_err());
        assert!(split_path(b"a/../b").is_err());
        assert!(split_path(b"..").is_err());
        assert!(split_path(b"").is_err());
        assert_eq!(split_path(b"a..b/..c").unwrap().len(), 2);
    }
}
