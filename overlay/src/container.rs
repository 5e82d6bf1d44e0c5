//! One container's overlay filesystem.
//!
//! ```text
//! <dir>/upper    the container's writes (what migration captures and applies)
//! <dir>/work     overlayfs work dir (same filesystem as upper)
//! <dir>/merged   the mount point: the container's root
//! ```
//!
//! The mount is made with mount(2) and the classic option string
//! `lowerdir=top:...:bottom,upperdir=..,workdir=..`. The kernel reads that
//! string from a single page; when it would not fit (many layers, long
//! paths) or a path holds a character the option syntax cannot carry
//! (`,` `:` `\` `=`), every directory is opened `O_PATH` and named as
//! `/proc/self/fd/<n>` instead (overlayfs resolves the names at mount time,
//! in this process), which keeps each lower at ~17 bytes. This needs no
//! chdir, so it is safe in a multi-threaded agent.

use std::ffi::CString;
use std::fs;
use std::io::{self, BufRead};
use std::os::fd::{AsRawFd, FromRawFd, OwnedFd};
use std::os::unix::ffi::OsStrExt;
use std::path::{Path, PathBuf};

use nix::mount::{mount, umount2, MntFlags, MsFlags};

use crate::error::{Error, Result};

/// The upper/work/merged directories of one container and its lower layers.
#[derive(Debug, Clone)]
pub struct ContainerFs {
    dir: PathBuf,
    lowers: Vec<PathBuf>,
    upper: PathBuf,
    work: PathBuf,
    merged: PathBuf,
}

fn page_size() -> usize {
    // SAFETY: sysconf has no preconditions.
    let n = unsafe { libc::sysconf(libc::_SC_PAGESIZE) };
    if n > 0 {
        n as usize
    } else {
        4096
    }
}

fn open_path(p: &Path) -> io::Result<OwnedFd> {
    let c = CString::new(p.as_os_str().as_bytes())
        .map_err(|_| io::Error::new(io::ErrorKind::InvalidInput, "NUL in path"))?;
    // SAFETY: valid C string; fd is owned on success.
    let fd = unsafe {
        libc::open(
            c.as_ptr(),
            libc::O_PATH | libc::O_DIRECTORY | libc::O_CLOEXEC,
        )
    };
    if fd < 0 {
        return Err(io::Error::last_os_error());
    }
    // SAFETY: fresh fd.
    Ok(unsafe { OwnedFd::from_raw_fd(fd) })
}

/// Undoes the octal escapes (`\040`) of /proc/self/mountinfo fields.
fn unescape(field: &str) -> Vec<u8> {
    let b = field.as_bytes();
    let mut out = Vec::with_capacity(b.len());
    let mut i = 0;
    while i < b.len() {
        if b[i] == b'\\'
            && i + 3 < b.len()
            && b[i + 1..i + 4].iter().all(|c| (b'0'..=b'7').contains(c))
        {
            let v = (b[i + 1] - b'0') * 64 + (b[i + 2] - b'0') * 8 + (b[i + 3] - b'0');
            out.push(v);
            i += 4;
        } else {
            out.push(b[i]);
            i += 1;
        }
    }
    out
}

/// True when `path` is a mount point in /proc/self/mountinfo.
pub fn is_mount_point(path: &Path) -> Result<bool> {
    let mi = Path::new("/proc/self/mountinfo");
    let f = fs::File::open(mi).map_err(Error::io("open", mi))?;
    let want = path.as_os_str().as_bytes();
    for line in io::BufReader::new(f).lines() {
        let line = line.map_err(Error::io("read", mi))?;
        if let Some(mp) = line.split(' ').nth(4) {
            if unescape(mp) == want {
                return Ok(true);
            }
        }
    }
    Ok(false)
}

impl ContainerFs {
    fn paths(dir: &Path, lowers: Vec<PathBuf>) -> Result<Self> {
        if lowers.is_empty() {
            return Err(Error::Layers {
                path: dir.to_path_buf(),
                reason: "at least one lower layer is needed".into(),
            });
        }
        let dir = fs::canonicalize(dir).map_err(Error::io("resolve", dir))?;
        Ok(ContainerFs {
            upper: dir.join("upper"),
            work: dir.join("work"),
            merged: dir.join("merged"),
            dir,
            lowers,
        })
    }

    /// Creates `dir/{upper,work,merged}` (existing empty ones are fine).
    /// `lowers` are the layer directories, top first.
    pub fn create(dir: &Path, lowers: Vec<PathBuf>) -> Result<Self> {
        fs::create_dir_all(dir).map_err(Error::io("create directory", dir))?;
        let c = Self::paths(dir, lowers)?;
        for d in [&c.upper, &c.work, &c.merged] {
            match fs::create_dir(d) {
                Ok(()) => {}
                Err(e) if e.kind() == io::ErrorKind::AlreadyExists && d.is_dir() => {}
                Err(e) => return Err(Error::io("create directory", d)(e)),
            }
        }
        Ok(c)
    }

    /// Adopts an existing container directory (after an agent restart); it
    /// may or may not be mounted.
    pub fn open(dir: &Path, lowers: Vec<PathBuf>) -> Result<Self> {
        let c = Self::paths(dir, lowers)?;
        for d in [&c.upper, &c.work, &c.merged] {
            if !d.is_dir() {
                return Err(Error::io("open container directory", d)(io::Error::new(
                    io::ErrorKind::NotFound,
                    "missing",
                )));
            }
        }
        Ok(c)
    }

    /// The container directory.
    pub fn dir(&self) -> &Path {
        &self.dir
    }
    /// The upper (writable) layer.
    pub fn upper(&self) -> &Path {
        &self.upper
    }
    /// The overlayfs work directory.
    pub fn work(&self) -> &Path {
        &self.work
    }
    /// The mount point, the container's root filesystem.
    pub fn merged(&self) -> &Path {
        &self.merged
    }
    /// The lower layers, top first.
    pub fn lowers(&self) -> &[PathBuf] {
        &self.lowers
    }

    /// Builds the option string, falling back to `/proc/self/fd` names; the
    /// returned fds must stay open until mount(2) returns.
    fn options(&self) -> Result<(String, Vec<OwnedFd>)> {
        let plain_ok = |p: &Path| {
            p.to_str()
                .is_some_and(|s| !s.contains([',', ':', '\\', '=']))
        };
        let all = self.lowers.iter().chain([&self.upper, &self.work]);
        if all.clone().all(|p| plain_ok(p)) {
            let lower: Vec<&str> = self.lowers.iter().filter_map(|p| p.to_str()).collect();
            let o = format!(
                "lowerdir={},upperdir={},workdir={}",
                lower.join(":"),
                self.upper.to_string_lossy(),
                self.work.to_string_lossy()
            );
            if o.len() < page_size() {
                return Ok((o, Vec::new()));
            }
        }
        let mut fds = Vec::new();
        let mut names = Vec::new();
        for p in all {
            let fd = open_path(p).map_err(Error::io("open layer", p))?;
            names.push(format!("/proc/self/fd/{}", fd.as_raw_fd()));
            fds.push(fd);
        }
        let n = self.lowers.len();
        let o = format!(
            "lowerdir={},upperdir={},workdir={}",
            names[..n].join(":"),
            names[n],
            names[n + 1]
        );
        if o.len() >= page_size() {
            return Err(Error::Layers {
                path: self.dir.clone(),
                reason: format!("{n} lower layers do not fit in one mount option page"),
            });
        }
        Ok((o, fds))
    }

    /// Mounts the overlay at `merged` (a no-op when already mounted).
    pub fn mount(&self) -> Result<()> {
        if self.is_mounted()? {
            return Ok(());
        }
        let (options, _fds) = self.options()?;
        mount(
            Some("overlay"),
            &self.merged,
            Some("overlay"),
            MsFlags::empty(),
            Some(options.as_str()),
        )
        .map_err(|source| Error::Mount {
            op: "mount",
            path: self.merged.clone(),
            options: options.clone(),
            source,
        })?;
        tracing::debug!(merged = %self.merged.display(), "mounted overlay");
        Ok(())
    }

    /// True when something is mounted at `merged`.
    pub fn is_mounted(&self) -> Result<bool> {
        is_mount_point(&self.merged)
    }

    /// Detaches the mount (lazily: busy files keep working until closed).
    /// Not mounted is fine; stacked mounts are all detached.
    pub fn unmount(&self) -> Result<()> {
        for _ in 0..16 {
            if !self.is_mounted()? {
                return Ok(());
            }
            match umount2(&self.merged, MntFlags::MNT_DETACH) {
                Ok(()) => {}
                Err(nix::Error::EINVAL) | Err(nix::Error::ENOENT) => return Ok(()),
                Err(source) => {
                    return Err(Error::Mount {
                        op: "unmount",
                        path: self.merged.clone(),
                        options: String::new(),
                        source,
                    })
                }
            }
        }
        Err(Error::StillMounted(self.merged.clone()))
    }

    /// Unmounts, then deletes upper, work and merged, and the container
    /// directory itself when that leaves it empty.
    pub fn remove(self) -> Result<()> {
        self.unmount()?;
        if self.is_mounted()? {
            return Err(Error::StillMounted(self.merged.clone()));
        }
        for d in [&self.upper, &self.work, &self.merged] {
            match fs::remove_dir_all(d) {
                Ok(()) => {}
                Err(e) if e.kind() == io::ErrorKind::NotFound => {}
                Err(e) => return Err(Error::io("remove", d)(e)),
            }
        }
        match fs::remove_dir(&self.dir) {
            Ok(()) => {}
            Err(e) if e.kind() == io::ErrorKind::NotFound => {}
            Err(e) if e.raw_os_error() == Some(libc::ENOTEMPTY) => {}
            Err(e) => return Err(Error::io("remove", &self.dir)(e)),
        }
        Ok(())
    }
}
