//! Thin, safe wrappers over the `*at` system calls the unpacker and the
//! capture need. Every call that takes a name takes ONE path component
//! relative to a directory file descriptor and never follows a symlink in
//! that last component (`O_NOFOLLOW`, `AT_SYMLINK_NOFOLLOW`); walking down a
//! tree is done component by component with [`open_dir_at`], which refuses
//! symlinks. That is how nothing here can be tricked into writing outside
//! the root it was given.

use std::ffi::{CStr, CString};
use std::fs::File;
use std::io;
use std::os::fd::{AsRawFd, FromRawFd, OwnedFd, RawFd};
use std::os::unix::ffi::OsStrExt;
use std::path::Path;

fn cstr(b: &[u8]) -> io::Result<CString> {
    CString::new(b).map_err(|_| io::Error::new(io::ErrorKind::InvalidInput, "NUL byte in name"))
}

fn cvt(r: libc::c_int) -> io::Result<libc::c_int> {
    if r < 0 {
        Err(io::Error::last_os_error())
    } else {
        Ok(r)
    }
}

fn cvt_ssize(r: libc::ssize_t) -> io::Result<usize> {
    if r < 0 {
        Err(io::Error::last_os_error())
    } else {
        Ok(r as usize)
    }
}

/// Opens a directory by path (the last component must not be a symlink).
pub(crate) fn open_dir(path: &Path) -> io::Result<OwnedFd> {
    let c = cstr(path.as_os_str().as_bytes())?;
    // SAFETY: c is a valid NUL-terminated string; the returned fd is owned.
    let fd = cvt(unsafe {
        libc::open(
            c.as_ptr(),
            libc::O_RDONLY | libc::O_DIRECTORY | libc::O_NOFOLLOW | libc::O_CLOEXEC,
        )
    })?;
    // SAFETY: fd was just returned by open and is owned by nobody else.
    Ok(unsafe { OwnedFd::from_raw_fd(fd) })
}

/// Opens the directory `name` inside `dir`; fails with ELOOP/ENOTDIR when
/// `name` is a symlink or not a directory.
pub(crate) fn open_dir_at(dir: RawFd, name: &[u8]) -> io::Result<OwnedFd> {
    let c = cstr(name)?;
    // SAFETY: valid C string, dir is a live fd owned by the caller.
    let fd = cvt(unsafe {
        libc::openat(
            dir,
            c.as_ptr(),
            libc::O_RDONLY | libc::O_DIRECTORY | libc::O_NOFOLLOW | libc::O_CLOEXEC,
        )
    })?;
    // SAFETY: fresh fd.
    Ok(unsafe { OwnedFd::from_raw_fd(fd) })
}

/// Opens an existing regular file `name` in `dir` for reading, refusing symlinks.
pub(crate) fn open_file_at(dir: RawFd, name: &[u8]) -> io::Result<File> {
    let c = cstr(name)?;
    // SAFETY: valid C string, live dir fd.
    let fd = cvt(unsafe {
        libc::openat(
            dir,
            c.as_ptr(),
            libc::O_RDONLY | libc::O_NOFOLLOW | libc::O_CLOEXEC,
        )
    })?;
    // SAFETY: fresh fd.
    Ok(unsafe { File::from_raw_fd(fd) })
}

/// Creates a new regular file `name` in `dir` (must not exist, not a symlink).
pub(crate) fn create_file_at(dir: RawFd, name: &[u8], mode: u32) -> io::Result<File> {
    let c = cstr(name)?;
    // SAFETY: valid C string, live dir fd.
    let fd = cvt(unsafe {
        libc::openat(
            dir,
            c.as_ptr(),
            libc::O_WRONLY | libc::O_CREAT | libc::O_EXCL | libc::O_NOFOLLOW | libc::O_CLOEXEC,
            mode as libc::c_uint,
        )
    })?;
    // SAFETY: fresh fd.
    Ok(unsafe { File::from_raw_fd(fd) })
}

/// lstat of `name` in `dir`; `None` when it does not exist.
pub(crate) fn lstat_at(dir: RawFd, name: &[u8]) -> io::Result<Option<libc::stat>> {
    let c = cstr(name)?;
    let mut st = std::mem::MaybeUninit::<libc::stat>::uninit();
    // SAFETY: st points to writable memory of the right size.
    let r = unsafe { libc::fstatat(dir, c.as_ptr(), st.as_mut_ptr(), libc::AT_SYMLINK_NOFOLLOW) };
    if r < 0 {
        let e = io::Error::last_os_error();
        if e.raw_os_error() == Some(libc::ENOENT) {
            return Ok(None);
        }
        return Err(e);
    }
    // SAFETY: fstatat succeeded and filled st.
    Ok(Some(unsafe { st.assume_init() }))
}

pub(crate) fn mkdir_at(dir: RawFd, name: &[u8], mode: u32) -> io::Result<()> {
    let c = cstr(name)?;
    // SAFETY: valid C string.
    cvt(unsafe { libc::mkdirat(dir, c.as_ptr(), mode as libc::mode_t) }).map(drop)
}

pub(crate) fn symlink_at(target: &[u8], dir: RawFd, name: &[u8]) -> io::Result<()> {
    let t = cstr(target)?;
    let c = cstr(name)?;
    // SAFETY: valid C strings.
    cvt(unsafe { libc::symlinkat(t.as_ptr(), dir, c.as_ptr()) }).map(drop)
}

/// Hard link (never follows a symlink target: links the symlink itself).
pub(crate) fn link_at(odir: RawFd, oname: &[u8], ndir: RawFd, nname: &[u8]) -> io::Result<()> {
    let o = cstr(oname)?;
    let n = cstr(nname)?;
    // SAFETY: valid C strings; flags 0 = do not follow.
    cvt(unsafe { libc::linkat(odir, o.as_ptr(), ndir, n.as_ptr(), 0) }).map(drop)
}

pub(crate) fn mknod_at(
    dir: RawFd,
    name: &[u8],
    mode: u32,
    major: u32,
    minor: u32,
) -> io::Result<()> {
    let c = cstr(name)?;
    let dev = libc::makedev(major, minor);
    // SAFETY: valid C string.
    cvt(unsafe { libc::mknodat(dir, c.as_ptr(), mode as libc::mode_t, dev) }).map(drop)
}

pub(crate) fn unlink_at(dir: RawFd, name: &[u8], is_dir: bool) -> io::Result<()> {
    let c = cstr(name)?;
    let flags = if is_dir { libc::AT_REMOVEDIR } else { 0 };
    // SAFETY: valid C string.
    cvt(unsafe { libc::unlinkat(dir, c.as_ptr(), flags) }).map(drop)
}

/// chown of `name` itself (symlinks are not followed).
pub(crate) fn chown_at(dir: RawFd, name: &[u8], uid: u32, gid: u32) -> io::Result<()> {
    let c = cstr(name)?;
    // SAFETY: valid C string.
    cvt(unsafe { libc::fchownat(dir, c.as_ptr(), uid, gid, libc::AT_SYMLINK_NOFOLLOW) }).map(drop)
}

/// chmod of `name`; only call it on something known not to be a symlink.
pub(crate) fn chmod_at(dir: RawFd, name: &[u8], mode: u32) -> io::Result<()> {
    let c = cstr(name)?;
    // SAFETY: valid C string.
    cvt(unsafe { libc::fchmodat(dir, c.as_ptr(), mode as libc::mode_t, 0) }).map(drop)
}

pub(crate) fn fchown(fd: RawFd, uid: u32, gid: u32) -> io::Result<()> {
    // SAFETY: plain syscall on a live fd.
    cvt(unsafe { libc::fchown(fd, uid, gid) }).map(drop)
}

pub(crate) fn fchmod(fd: RawFd, mode: u32) -> io::Result<()> {
    // SAFETY: plain syscall on a live fd.
    cvt(unsafe { libc::fchmod(fd, mode as libc::mode_t) }).map(drop)
}

fn times(secs: i64) -> [libc::timespec; 2] {
    let ts = libc::timespec {
        tv_sec: secs as libc::time_t,
        tv_nsec: 0,
    };
    [ts, ts]
}

/// Sets atime and mtime of an open file.
pub(crate) fn futimes(fd: RawFd, secs: i64) -> io::Result<()> {
    let t = times(secs);
    // SAFETY: t is a valid array of two timespecs.
    cvt(unsafe { libc::futimens(fd, t.as_ptr()) }).map(drop)
}

/// Sets atime and mtime of `name` itself (symlinks are not followed).
pub(crate) fn utimes_at(dir: RawFd, name: &[u8], secs: i64) -> io::Result<()> {
    let c = cstr(name)?;
    let t = times(secs);
    // SAFETY: valid C string and timespec array.
    cvt(unsafe { libc::utimensat(dir, c.as_ptr(), t.as_ptr(), libc::AT_SYMLINK_NOFOLLOW) })
        .map(drop)
}

pub(crate) fn fsetxattr(fd: RawFd, name: &[u8], value: &[u8]) -> io::Result<()> {
    let n = cstr(name)?;
    // SAFETY: valid C string, value slice valid for its length.
    cvt(unsafe { libc::fsetxattr(fd, n.as_ptr(), value.as_ptr().cast(), value.len(), 0) }).map(drop)
}

/// `/proc/self/fd/<dir>/<name>`: a path naming `name` inside the directory
/// `dir` without resolving any component of the original path again. With
/// the `l*xattr` calls the last component is not followed.
fn proc_path(dir: RawFd, name: &[u8]) -> io::Result<CString> {
    let mut p = format!("/proc/self/fd/{dir}/").into_bytes();
    p.extend_from_slice(name);
    cstr(&p)
}

pub(crate) fn lsetxattr_at(dir: RawFd, name: &[u8], key: &[u8], value: &[u8]) -> io::Result<()> {
    let p = proc_path(dir, name)?;
    let k = cstr(key)?;
    // SAFETY: valid C strings and value slice.
    cvt(unsafe {
        libc::lsetxattr(
            p.as_ptr(),
            k.as_ptr(),
            value.as_ptr().cast(),
            value.len(),
            0,
        )
    })
    .map(drop)
}

fn llistxattr_c(p: &CStr) -> io::Result<Vec<Vec<u8>>> {
    loop {
        // SAFETY: null buffer with size 0 asks for the needed size.
        let need = match cvt_ssize(unsafe { libc::llistxattr(p.as_ptr(), std::ptr::null_mut(), 0) })
        {
            Ok(n) => n,
            Err(e) if e.raw_os_error() == Some(libc::ENOTSUP) => return Ok(Vec::new()),
            Err(e) => return Err(e),
        };
        if need == 0 {
            return Ok(Vec::new());
        }
        let mut buf = vec![0u8; need];
        // SAFETY: buf is writable for its length.
        match cvt_ssize(unsafe { libc::llistxattr(p.as_ptr(), buf.as_mut_ptr().cast(), buf.len()) })
        {
            Ok(n) => {
                buf.truncate(n);
                return Ok(buf
                    .split(|b| *b == 0)
                    .filter(|s| !s.is_empty())
                    .map(<[u8]>::to_vec)
                    .collect());
            }
            Err(e) if e.raw_os_error() == Some(libc::ERANGE) => continue,
            Err(e) => return Err(e),
        }
    }
}

fn lgetxattr_c(p: &CStr, key: &[u8]) -> io::Result<Option<Vec<u8>>> {
    let k = cstr(key)?;
    loop {
        // SAFETY: size query.
        let need = match cvt_ssize(unsafe {
            libc::lgetxattr(p.as_ptr(), k.as_ptr(), std::ptr::null_mut(), 0)
        }) {
            Ok(n) => n,
            Err(e) if e.raw_os_error() == Some(libc::ENODATA) => return Ok(None),
            Err(e) => return Err(e),
        };
        let mut buf = vec![0u8; need];
        // SAFETY: buf is writable for its length.
        match cvt_ssize(unsafe {
            libc::lgetxattr(p.as_ptr(), k.as_ptr(), buf.as_mut_ptr().cast(), buf.len())
        }) {
            Ok(n) => {
                buf.truncate(n);
                return Ok(Some(buf));
            }
            Err(e) if e.raw_os_error() == Some(libc::ERANGE) => continue,
            Err(e) if e.raw_os_error() == Some(libc::ENODATA) => return Ok(None),
            Err(e) => return Err(e),
        }
    }
}

/// All extended attributes of `path` itself (not followed), as (name, value).
pub(crate) fn xattrs_of(path: &Path) -> io::Result<Vec<(Vec<u8>, Vec<u8>)>> {
    let p = cstr(path.as_os_str().as_bytes())?;
    let mut out = Vec::new();
    for k in llistxattr_c(&p)? {
        if let Some(v) = lgetxattr_c(&p, &k)? {
            out.push((k, v));
        }
    }
    out.sort();
    Ok(out)
}

/// All extended attributes of `name` inside `dir`.
pub(crate) fn xattrs_at(dir: RawFd, name: &[u8]) -> io::Result<Vec<(Vec<u8>, Vec<u8>)>> {
    let p = proc_path(dir, name)?;
    let mut out = Vec::new();
    for k in llistxattr_c(&p)? {
        if let Some(v) = lgetxattr_c(&p, &k)? {
            out.push((k, v));
        }
    }
    Ok(out)
}

pub(crate) fn lremovexattr_at(dir: RawFd, name: &[u8], key: &[u8]) -> io::Result<()> {
    let p = proc_path(dir, name)?;
    let k = cstr(key)?;
    // SAFETY: valid C strings.
    cvt(unsafe { libc::lremovexattr(p.as_ptr(), k.as_ptr()) }).map(drop)
}

/// Names in the directory `dir` (without `.` and `..`).
pub(crate) fn read_dir_names(dir: RawFd) -> io::Result<Vec<Vec<u8>>> {
    // Work on a fresh fd of the same directory so closedir does not close
    // the caller's fd and the read position starts at 0.
    let own = open_dir_at(dir, b".")?;
    let raw = own.as_raw_fd();
    // SAFETY: raw is a valid directory fd; fdopendir takes ownership on success.
    let d = unsafe { libc::fdopendir(raw) };
    if d.is_null() {
        return Err(io::Error::last_os_error());
    }
    std::mem::forget(own);
    let mut names = Vec::new();
    let result = loop {
        // SAFETY: errno is thread local; reset it to tell end from error.
        unsafe { *libc::__errno_location() = 0 };
        // SAFETY: d is a valid DIR*.
        let ent = unsafe { libc::readdir64(d) };
        if ent.is_null() {
            let e = io::Error::last_os_error();
            break if e.raw_os_error().unwrap_or(0) == 0 {
                Ok(())
            } else {
                Err(e)
            };
        }
        // SAFETY: d_name is NUL-terminated within the dirent.
        let name = unsafe { CStr::from_ptr((*ent).d_name.as_ptr()) }.to_bytes();
        if name != b"." && name != b".." {
            names.push(name.to_vec());
        }
    };
    // SAFETY: d is valid and closed once.
    unsafe { libc::closedir(d) };
    result.map(|()| names)
}

/// Removes `name` from `dir`, recursively when it is a directory, without
/// following any symlink. Missing is fine.
pub(crate) fn remove_at(dir: RawFd, name: &[u8]) -> io::Result<()> {
    let Some(st) = lstat_at(dir, name)? else {
        return Ok(());
    };
    if st.st_mode & libc::S_IFMT == libc::S_IFDIR {
        let sub = open_dir_at(dir, name)?;
        for child in read_dir_names(sub.as_raw_fd())? {
            remove_at(sub.as_raw_fd(), &child)?;
        }
        drop(sub);
        unlink_at(dir, name, true)
    } else {
        unlink_at(dir, name, false)
    }
}

pub(crate) fn is_kind(st: &libc::stat, kind: libc::mode_t) -> bool {
    st.st_mode & libc::S_IFMT == kind
}
