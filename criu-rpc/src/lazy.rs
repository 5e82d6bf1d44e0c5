//! The `criu lazy-pages` daemon (post-copy restore). CRIU has no RPC
//! request for it, so it runs as a command; readiness comes through
//! `--status-fd`, a pipe whose write end is passed into the daemon.

use std::fs::File;
use std::io::Read;
use std::os::fd::{AsFd, AsRawFd, RawFd};
use std::os::unix::process::CommandExt;
use std::path::{Path, PathBuf};
use std::process::{Child, Command, ExitStatus, Stdio};
use std::time::Instant;

use nix::poll::{poll, PollFd, PollFlags, PollTimeout};

use crate::error::{Error, LogTail, Result};
use crate::opts::{DirRef, LazyPagesOpts};
use crate::swrk::{log_tail, LogLocation};

/// A running `criu lazy-pages` daemon, our child. Dropping it kills and
/// reaps it; [`LazyPagesDaemon::wait`] waits for its normal end (after the
/// restored tree has received all its pages).
#[derive(Debug)]
pub struct LazyPagesDaemon {
    child: Option<Child>,
    log: LogLocation,
}

impl LazyPagesDaemon {
    /// The daemon's pid.
    pub fn pid(&self) -> Option<u32> {
        self.child.as_ref().map(|c| c.id())
    }

    /// Waits for the daemon to exit; an unsuccessful exit is an error with
    /// its log tail.
    pub fn wait(mut self) -> Result<()> {
        let Some(mut c) = self.child.take() else {
            return Ok(());
        };
        let status = c.wait().map_err(|source| Error::Io {
            op: "lazy-pages",
            what: "waiting for the daemon".into(),
            source,
        })?;
        self.check_exit(status)
    }

    /// Kills and reaps the daemon.
    pub fn kill(mut self) -> Result<()> {
        self.stop();
        Ok(())
    }

    fn check_exit(&self, status: ExitStatus) -> Result<()> {
        if status.success() {
            return Ok(());
        }
        Err(Error::LazyPages {
            reason: format!("exited with {status}"),
            tail: self.tail(),
        })
    }

    fn tail(&self) -> LogTail {
        file_tail(&self.log)
    }

    fn stop(&mut self) {
        if let Some(mut c) = self.child.take() {
            let _ = c.kill();
            let _ = c.wait();
        }
    }
}

impl Drop for LazyPagesDaemon {
    fn drop(&mut self) {
        self.stop();
    }
}

fn file_tail(log: &LogLocation) -> LogTail {
    log_tail(Some(log), None)
}

fn dir_arg(d: &DirRef) -> PathBuf {
    match d {
        DirRef::Path(p) => p.clone(),
        DirRef::Fd(fd) => PathBuf::from(format!("/proc/{}/fd/{fd}", std::process::id())),
    }
}

pub(crate) fn start(bin: &Path, opts: &LazyPagesOpts) -> Result<LazyPagesDaemon> {
    let io_err = |what: &str, source: std::io::Error| Error::Io {
        op: "lazy-pages",
        what: what.into(),
        source,
    };
    if matches!(&opts.images_dir, DirRef::Path(p) if p.as_os_str().is_empty()) {
        return Err(Error::InvalidOption(
            "lazy-pages: images_dir is required".into(),
        ));
    }
    let log_file = opts.log_file.as_deref().unwrap_or("lazy-pages.log");
    if log_file.contains('/') {
        return Err(Error::InvalidOption(format!(
            "log file {log_file:?}: must be a plain file name"
        )));
    }
    let images = dir_arg(&opts.images_dir);
    let work = opts.work_dir.as_ref().map(dir_arg);
    let log_dir = work.clone().unwrap_or_else(|| images.clone());
    let log = LogLocation {
        shown: log_dir.join(log_file).display().to_string(),
        readable: log_dir.join(log_file),
    };

    let (r, w) =
        nix::unistd::pipe2(nix::fcntl::OFlag::O_CLOEXEC).map_err(|e| io_err("pipe", e.into()))?;
    let wfd: RawFd = w.as_raw_fd();
    let mut cmd = Command::new(bin);
    cmd.arg("lazy-pages")
        .arg("-D")
        .arg(&images)
        .arg("-o")
        .arg(log_file)
        .arg(format!("-v{}", opts.log_level.min(4)))
        .arg("--status-fd")
        .arg(wfd.to_string());
    if let Some(w) = &work {
        cmd.arg("-W").arg(w);
    }
    if let Some(ps) = &opts.page_server {
        cmd.arg("--page-server")
            .arg("--address")
            .arg(&ps.address)
            .arg("--port")
            .arg(ps.port.to_string());
    }
    cmd.stdin(Stdio::null())
        .stdout(Stdio::null())
        .stderr(Stdio::null());
    // SAFETY: only fcntl(2), async-signal-safe, on a copied fd number.
    unsafe {
        cmd.pre_exec(move || {
            let flags = libc::fcntl(wfd, libc::F_GETFD);
            if flags < 0 || libc::fcntl(wfd, libc::F_SETFD, flags & !libc::FD_CLOEXEC) < 0 {
                return Err(std::io::Error::last_os_error());
            }
            Ok(())
        });
    }
    let child = cmd.spawn().map_err(|source| Error::Spawn {
        bin: bin.to_path_buf(),
        source,
    })?;
    drop(w);
    let mut daemon = LazyPagesDaemon {
        child: Some(child),
        log,
    };

    // Wait for one byte (ready) or EOF (it died) within the timeout.
    let deadline = Instant::now() + opts.ready_timeout;
    loop {
        let left = deadline.saturating_duration_since(Instant::now());
        if left.is_zero() {
            let tail = daemon.tail();
            daemon.stop();
            return Err(Error::LazyPages {
                reason: format!("not ready after {:?}", opts.ready_timeout),
                tail,
            });
        }
        let ms = u16::try_from(left.as_millis()).unwrap_or(u16::MAX);
        let mut fds = [PollFd::new(r.as_fd(), PollFlags::POLLIN)];
        match poll(&mut fds, PollTimeout::from(ms)) {
            Ok(0) => continue,
            Ok(_) => break,
            Err(nix::errno::Errno::EINTR) => continue,
            Err(e) => {
                daemon.stop();
                return Err(io_err("poll", e.into()));
            }
        }
    }
    let mut byte = [0u8; 1];
    let mut rf = File::from(r);
    let n = rf
        .read(&mut byte)
        .map_err(|e| io_err("read status fd", e))?;
    if n == 0 {
        // EOF: the daemon exited before it was ready.
        let status = daemon
            .child
            .take()
            .map(|mut c| c.wait().map(|s| s.to_string()).unwrap_or_default())
            .unwrap_or_default();
        return Err(Error::LazyPages {
            reason: format!("exited before it was ready ({status})"),
            tail: daemon.tail(),
        });
    }
    Ok(daemon)
}
