//! Is a container's command there and executable? Checked before run and
//! exec so the user gets Podman's distinction: not found (exit 127) or
//! found but not executable (126), instead of libcontainer's error from
//! inside the container's init.

use std::os::fd::{FromRawFd, OwnedFd};
use std::path::{Path, PathBuf};

use nix::errno::Errno;
use nix::fcntl::{OFlag, OpenHow, ResolveFlag};
use nix::sys::stat::{fstat, SFlag};

use crate::error::{AgentError, Result};

/// The default PATH of a container whose environment has none (Podman's).
pub(crate) const DEFAULT_PATH: &str =
    "/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin";

/// Look `cmd` up as execvp would, inside `root` (a container's root
/// directory: absolute paths and symlinks resolve inside it), with the
/// container's `cwd` and `path_var`.
pub(crate) fn check(
    container: &str,
    root: &Path,
    cwd: &str,
    path_var: &str,
    cmd: &str,
) -> Result<()> {
    let not_found = || AgentError::CommandNotFound {
        container: container.to_string(),
        cmd: cmd.to_string(),
        path: path_var.to_string(),
    };
    if cmd.is_empty() {
        return Err(not_found());
    }
    let rootfd = nix::fcntl::open(
        root,
        OFlag::O_PATH | OFlag::O_DIRECTORY | OFlag::O_CLOEXEC,
        nix::sys::stat::Mode::empty(),
    )
    // SAFETY: open returned a fresh descriptor that nothing else owns.
    .map(|fd| unsafe { OwnedFd::from_raw_fd(fd) })
    .map_err(|e| AgentError::Sys {
        context: format!("open the root of {container} ({})", root.display()),
        source: e,
    })?;
    let candidates: Vec<PathBuf> = if cmd.contains('/') {
        vec![Path::new(cwd).join(cmd)]
    } else {
        path_var
            .split(':')
            .map(|d| if d.is_empty() { cwd } else { d })
            .map(|d| Path::new(d).join(cmd))
            .collect()
    };
    // As execvp: the first executable wins; one that exists but cannot
    // be run is remembered and reported if nothing later can.
    let mut denied: Option<String> = None;
    for c in candidates {
        match stat_in(&rootfd, &c) {
            Ok(st) => {
                let kind = SFlag::from_bits_truncate(st.st_mode) & SFlag::S_IFMT;
                if kind == SFlag::S_IFREG && st.st_mode & 0o111 != 0 {
                    return Ok(());
                }
                denied.get_or_insert_with(|| {
                    if kind == SFlag::S_IFDIR {
                        format!("{} is a directory", c.display())
                    } else if kind != SFlag::S_IFREG {
                        format!("{} is not a regular file", c.display())
                    } else {
                        format!("{} has no execute permission", c.display())
                    }
                });
            }
            Err(Errno::ENOENT | Errno::ENOTDIR) => {}
            Err(e) => {
                denied.get_or_insert_with(|| format!("{}: {e}", c.display()));
            }
        }
    }
    match denied {
        Some(reason) => Err(AgentError::CannotExecute {
            container: container.to_string(),
            cmd: cmd.to_string(),
            reason,
        }),
        None => Err(not_found()),
    }
}

fn stat_in(root: &OwnedFd, p: &Path) -> nix::Result<nix::sys::stat::FileStat> {
    use std::os::fd::AsRawFd;
    let how = OpenHow::new()
        .flags(OFlag::O_PATH | OFlag::O_CLOEXEC)
        .resolve(ResolveFlag::RESOLVE_IN_ROOT);
    let fd = nix::fcntl::openat2(root.as_raw_fd(), p, how)?;
    // SAFETY: openat2 returned a fresh descriptor that nothing else owns.
    let fd = unsafe { OwnedFd::from_raw_fd(fd) };
    fstat(fd.as_raw_fd())
}

/// libcontainer's own refusals, for a command our check passed but its
/// validation did not (e.g. it wants the others' execute bit).
pub(crate) fn classify(container: &str, cmd: &str, msg: String) -> AgentError {
    if msg.contains("not found in $PATH") {
        AgentError::CommandNotFound {
            container: container.to_string(),
            cmd: cmd.to_string(),
            path: msg,
        }
    } else if msg.contains("does not have correct permissions") || msg.contains("EACCES") {
        AgentError::CannotExecute {
            container: container.to_string(),
            cmd: cmd.to_string(),
            reason: msg,
        }
    } else {
        AgentError::Other(msg)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn found_not_found_and_not_executable() {
        let d = tempfile::tempdir().unwrap();
        let r = d.path();
        std::fs::create_dir_all(r.join("bin")).unwrap();
        std::fs::create_dir_all(r.join("data")).unwrap();
        std::fs::write(r.join("bin/tool"), b"#!/bin/sh\n").unwrap();
        std::fs::write(r.join("data/plain"), b"x").unwrap();
        use std::os::unix::fs::PermissionsExt;
        std::fs::set_permissions(r.join("bin/tool"), std::fs::Permissions::from_mode(0o755))
            .unwrap();
        // An absolute symlink resolves inside the root, not on the host.
        std::os::unix::fs::symlink("/bin/tool", r.join("bin/link")).unwrap();
        assert!(check("c", r, "/", "/bin", "tool").is_ok());
        assert!(check("c", r, "/", "/bin", "link").is_ok());
        assert!(check("c", r, "/", "/nope:/bin", "/bin/tool").is_ok());
        assert!(check("c", r, "/bin", "/x", "./tool").is_ok());
        assert!(matches!(
            check("c", r, "/", "/bin", "nothere"),
            Err(AgentError::CommandNotFound { .. })
        ));
        assert!(matches!(
            check("c", r, "/", "/bin", "/data/plain"),
            Err(AgentError::CannotExecute { .. })
        ));
        assert!(matches!(
            check("c", r, "/", "/bin", "/data"),
            Err(AgentError::CannotExecute { .. })
        ));
        // `..` cannot climb out of the root to a host file.
        assert!(matches!(
            check("c", r, "/", "/bin", "/../../../../bin/sh"),
            Err(AgentError::CommandNotFound { .. })
        ));
    }
}
