//! Named network namespaces, compatible with iproute2's `ip netns`.
//!
//! A named namespace is a file `/run/netns/NAME` onto which the namespace
//! (`/proc/thread-self/ns/net` of a thread that unshared it) is bind-mounted;
//! the bind mount keeps the namespace alive without any process in it. Like
//! iproute2, [`create`] first makes `/run/netns` a shared mount point (bind
//! mounting it onto itself if it is not a mount point yet) so that the
//! namespace mounts propagate into mount namespaces created later.
//!
//! Nothing here changes the namespace of the calling thread: [`create`] and
//! [`run_in`] do their work in a dedicated thread that exits afterwards.
//! Such a thread shares the process's mount namespace, so `/sys/class/net`
//! still shows the original namespace's links there, while `/proc/sys/net`
//! and every socket it opens belong to the joined namespace.

use std::ffi::OsStr;
use std::fs::File;
use std::os::fd::{AsFd, AsRawFd, BorrowedFd, OwnedFd};
use std::path::{Path, PathBuf};
use std::sync::Mutex;

use nix::errno::Errno;
use nix::mount::{MntFlags, MsFlags};
use nix::sched::CloneFlags;

use crate::{Error, Result};

/// Where iproute2 keeps named network namespaces.
pub const NETNS_RUN_DIR: &str = "/run/netns";

/// `NS_GET_NSTYPE` from linux/nsfs.h: `_IO(0xb7, 0x3)`.
const NS_GET_NSTYPE: libc::c_ulong = 0xb703;

/// Serialises the one-time setup of /run/netns inside this process.
static RUN_DIR_SETUP: Mutex<()> = Mutex::new(());

/// The path of the named namespace `name` (whether or not it exists).
pub fn path(name: &str) -> PathBuf {
    Path::new(NETNS_RUN_DIR).join(name)
}

/// True when `/run/netns/NAME` exists.
pub fn exists(name: &str) -> bool {
    path(name).exists()
}

/// The names under `/run/netns`, sorted; empty when the directory is missing.
pub fn list() -> Result<Vec<String>> {
    let entries = match std::fs::read_dir(NETNS_RUN_DIR) {
        Ok(entries) => entries,
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => return Ok(Vec::new()),
        Err(e) => return Err(Error::io("list netns", NETNS_RUN_DIR, e)),
    };
    let mut names = Vec::new();
    for entry in entries {
        let entry = entry.map_err(|e| Error::io("list netns", NETNS_RUN_DIR, e))?;
        names.push(entry.file_name().to_string_lossy().into_owned());
    }
    names.sort();
    Ok(names)
}

fn validate_name(name: &str) -> Result<()> {
    let invalid = |reason| {
        Err(Error::Invalid {
            what: "netns name",
            value: name.to_string(),
            reason,
        })
    };
    if name.is_empty() || name == "." || name == ".." {
        return invalid("empty, `.` or `..`");
    }
    if name.contains('/') || name.contains('\0') {
        return invalid("contains `/` or NUL");
    }
    if name.len() > 255 {
        return invalid("longer than 255 bytes");
    }
    Ok(())
}

/// Makes /run/netns exist and be a shared mount point, as `ip netns add`
/// does: try `MS_SHARED|MS_REC`; on EINVAL (not a mount point) bind-mount the
/// directory onto itself once and try again.
fn prepare_run_dir() -> Result<()> {
    let _guard = RUN_DIR_SETUP.lock().unwrap_or_else(|p| p.into_inner());
    std::fs::create_dir_all(NETNS_RUN_DIR)
        .map_err(|e| Error::io("create netns dir", NETNS_RUN_DIR, e))?;
    let mut bound = false;
    loop {
        match nix::mount::mount(
            Some(""),
            NETNS_RUN_DIR,
            Some("none"),
            MsFlags::MS_SHARED | MsFlags::MS_REC,
            None::<&str>,
        ) {
            Ok(()) => return Ok(()),
            Err(Errno::EINVAL) if !bound => {
                nix::mount::mount(
                    Some(NETNS_RUN_DIR),
                    NETNS_RUN_DIR,
                    Some("none"),
                    MsFlags::MS_BIND | MsFlags::MS_REC,
                    None::<&str>,
                )
                .map_err(|e| Error::from_errno("bind-mount netns dir", NETNS_RUN_DIR, e, None))?;
                bound = true;
            }
            Err(e) => {
                return Err(Error::from_errno(
                    "make netns dir shared",
                    NETNS_RUN_DIR,
                    e,
                    None,
                ))
            }
        }
    }
}

/// Creates the named namespace `/run/netns/NAME` and returns its path.
///
/// Fails with [`Error::AlreadyExists`] when the name is taken. On any failure
/// after the file was made, the file is removed again.
pub fn create(name: &str) -> Result<PathBuf> {
    validate_name(name)?;
    prepare_run_dir()?;
    let ns_path = path(name);
    let target = ns_path.display().to_string();
    nix::fcntl::open(
        &ns_path,
        nix::fcntl::OFlag::O_RDONLY
            | nix::fcntl::OFlag::O_CREAT
            | nix::fcntl::OFlag::O_EXCL
            | nix::fcntl::OFlag::O_CLOEXEC,
        nix::sys::stat::Mode::empty(),
    )
    .and_then(nix::unistd::close)
    .map_err(|e| Error::from_errno("create netns", target.clone(), e, None))?;

    let mount_path = ns_path.clone();
    let made = std::thread::Builder::new()
        .name("herd-netns-create".into())
        .spawn(move || -> Result<()> {
            nix::sched::unshare(CloneFlags::CLONE_NEWNET).map_err(|e| {
                Error::from_errno(
                    "unshare netns for",
                    mount_path.display().to_string(),
                    e,
                    None,
                )
            })?;
            nix::mount::mount(
                Some("/proc/thread-self/ns/net"),
                &mount_path,
                Some("none"),
                MsFlags::MS_BIND,
                None::<&str>,
            )
            .map_err(|e| {
                Error::from_errno(
                    "bind-mount netns onto",
                    mount_path.display().to_string(),
                    e,
                    None,
                )
            })
        })
        .map_err(|e| Error::io("spawn thread to create netns", target.clone(), e))?
        .join()
        .unwrap_or_else(|panic| std::panic::resume_unwind(panic));
    if let Err(e) = made {
        let _ = std::fs::remove_file(&ns_path);
        return Err(e);
    }
    tracing::debug!(netns = name, "created network namespace");
    Ok(ns_path)
}

/// Deletes the named namespace: lazy unmount, then unlink. A name that does
/// not exist is not an error. The namespace itself lives on while a process
/// or an open descriptor still refers to it.
pub fn delete(name: &str) -> Result<()> {
    validate_name(name)?;
    let ns_path = path(name);
    let target = ns_path.display().to_string();
    match nix::mount::umount2(&ns_path, MntFlags::MNT_DETACH) {
        Ok(()) | Err(Errno::EINVAL) | Err(Errno::ENOENT) => {}
        Err(e) => return Err(Error::from_errno("unmount netns", target, e, None)),
    }
    match std::fs::remove_file(&ns_path) {
        Ok(()) => {
            tracing::debug!(netns = name, "deleted network namespace");
            Ok(())
        }
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => Ok(()),
        Err(e) => Err(Error::io("remove netns file", target, e)),
    }
}

/// [`delete`], after deleting every link of the namespace but loopback.
///
/// The kernel tears a namespace down asynchronously once its last reference
/// goes, and its links (with their MACs and addresses) live on until then:
/// a macvlan made at once with the same MAC on the same parent would fail
/// with EADDRINUSE. Deleting the links first frees them before this returns.
pub fn delete_with_links(name: &str) -> Result<()> {
    validate_name(name)?;
    let ns_path = path(name);
    // Clearing the links is best effort: the namespace file must go in any
    // case, or the name stays taken until the next sweep.
    if ns_path.exists() {
        if let Err(e) = clear_links(&ns_path) {
            tracing::warn!(
                netns = name,
                "could not delete its links before the netns: {e}"
            );
        }
    }
    delete(name)
}

fn clear_links(ns_path: &Path) -> Result<()> {
    let mut h = crate::Handle::in_netns(ns_path)?;
    for link in h.links()? {
        if link.name == "lo" {
            continue;
        }
        match h.delete_link(&link.name) {
            Ok(()) => {}
            // A veth whose peer went first took it along.
            Err(e) if e.is_not_found() => {}
            Err(e) => return Err(e),
        }
    }
    Ok(())
}

/// Opens a network namespace file (`/run/netns/NAME`, `/proc/PID/ns/net`,
/// ...) and checks that it is one.
pub fn open(ns: &Path) -> Result<OwnedFd> {
    let target = ns.display().to_string();
    let fd = OwnedFd::from(File::open(ns).map_err(|e| Error::io("open netns", target.clone(), e))?);
    // SAFETY: NS_GET_NSTYPE takes no argument and only reads the descriptor.
    let kind = unsafe { libc::ioctl(fd.as_raw_fd(), NS_GET_NSTYPE as _) };
    if kind != libc::CLONE_NEWNET {
        return Err(Error::Invalid {
            what: "network namespace file",
            value: target,
            reason: "not a network namespace",
        });
    }
    Ok(fd)
}

/// Opens the network namespace of process `pid` (`/proc/PID/ns/net`).
pub fn open_pid(pid: u32) -> Result<OwnedFd> {
    open(&PathBuf::from(format!("/proc/{pid}/ns/net")))
}

/// Opens the calling thread's network namespace.
pub fn open_current() -> Result<OwnedFd> {
    open(Path::new("/proc/thread-self/ns/net"))
}

/// Runs `f` in a fresh thread that joined the network namespace at `ns`
/// and returns its result; the calling thread never changes namespace. A
/// panic in `f` is resumed in the caller.
pub fn run_in<T: Send>(ns: &Path, f: impl FnOnce() -> T + Send) -> Result<T> {
    let fd = open(ns)?;
    run_in_fd(fd.as_fd(), ns.as_os_str(), f)
}

/// Like [`run_in`], for a namespace already open; `label` names it in errors.
pub fn run_in_fd<T: Send>(
    ns: BorrowedFd<'_>,
    label: &OsStr,
    f: impl FnOnce() -> T + Send,
) -> Result<T> {
    let target = Path::new(label).display().to_string();
    std::thread::scope(|scope| {
        let joined = std::thread::Builder::new()
            .name("herd-netns-run".into())
            .spawn_scoped(scope, move || {
                nix::sched::setns(ns, CloneFlags::CLONE_NEWNET).map(|()| f())
            })
            .map_err(|e| Error::io("spawn thread to enter netns", target.clone(), e))?
            .join()
            .unwrap_or_else(|panic| std::panic::resume_unwind(panic));
        joined.map_err(|e| Error::from_errno("enter netns", target, e, None))
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn names_are_checked() {
        for bad in ["", ".", "..", "a/b", "a\0b"] {
            assert!(
                matches!(validate_name(bad), Err(Error::Invalid { .. })),
                "{bad:?}"
            );
        }
        assert!(validate_name(&"x".repeat(256)).is_err());
        assert!(validate_name("herd-1").is_ok());
        assert_eq!(path("herd-1"), PathBuf::from("/run/netns/herd-1"));
    }

    #[test]
    fn open_refuses_a_file_that_is_no_netns() {
        match open(Path::new("/proc/self/status")) {
            Err(Error::Invalid { .. }) => {}
            other => panic!("expected Invalid, got {other:?}"),
        }
        assert!(open(Path::new("/nonexistent/netns")).is_err_and(|e| e.is_not_found()));
    }
}
