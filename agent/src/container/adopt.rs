//! Re-adoption after an agent restart, and the per-container exit watcher.

use std::os::fd::{AsFd, FromRawFd, OwnedFd};
use std::sync::Arc;

use herd_wire::ContainerStatus;
use nix::sys::wait::{waitpid, WaitStatus};
use nix::unistd::Pid;

use super::{lock, Agent, Entry};
use crate::error::{IoContext, Result};
use crate::state::{pid_start_time, ContainerRecord};

impl Agent {
    /// Load every record; running ones whose process is still the same are
    /// adopted, the others are marked stopped.
    pub(crate) fn adopt_all(self: &Arc<Self>) -> Result<()> {
        let dir = self.state.containers();
        let rd = std::fs::read_dir(&dir).ctx(|| format!("read {}", dir.display()))?;
        for ent in rd.flatten() {
            let path = ent.path().join("record.json");
            if !path.exists() {
                // A run or an incoming migration that died half-way.
                let name = ent.file_name().to_string_lossy().into_owned();
                tracing::warn!(container = %name, "half-made container: removing it");
                self.remove_orphan(&name);
                continue;
            }
            let mut rec = match ContainerRecord::load(&path) {
                Ok(r) => r,
                Err(e) => {
                    tracing::error!("{e}");
                    continue;
                }
            };
            let name = rec.spec.name.clone();
            let alive = match (rec.status, rec.pid) {
                (ContainerStatus::Running, Some(pid)) => {
                    pid_start_time(pid).is_some() && pid_start_time(pid) == rec.pid_start
                }
                _ => false,
            };
            if !alive && rec.status == ContainerStatus::Running {
                tracing::warn!(container = %name, "was running, is gone: marking stopped");
                rec.status = ContainerStatus::Stopped;
                rec.exit_code = None;
                self.save(&rec)?;
            }
            let pid = rec.pid;
            let gone_rm = rec.spec.auto_remove && rec.status == ContainerStatus::Stopped;
            let entry = Entry::new(rec);
            lock(&self.containers).insert(name.clone(), entry.clone());
            if alive {
                if let Some(pid) = pid {
                    tracing::info!(container = %name, pid, "re-adopted");
                    self.watch(entry, pid, false);
                }
            }
            if gone_rm {
                // `run --rm` whose process ended while the agent was down.
                if let Err(e) = self.remove(&name, false) {
                    tracing::error!(container = %name, "--rm: remove: {e}");
                }
            }
        }
        Ok(())
    }

    /// Remove what a container that never got a record may have left.
    pub(crate) fn remove_orphan(&self, name: &str) {
        let cg = self.cgroup_path(name);
        for p in crate::cgroup::procs(&cg) {
            let _ = nix::sys::signal::kill(
                nix::unistd::Pid::from_raw(p),
                nix::sys::signal::Signal::SIGKILL,
            );
        }
        super::run::destroy_runtime(&self.state.runtime(), name);
        crate::cgroup::remove(&cg);
        // Its overlay, and whatever a CRIU killed with the agent left mounted.
        super::remove::unmount_below(&self.state.container(name).dir);
        let ns = self.netns_name(name);
        if herd_netlink::netns::exists(&ns) {
            let _ = herd_netlink::netns::delete_with_links(&ns);
        }
        let _ = std::fs::remove_dir_all(&self.state.container(name).dir);
    }

    /// Staging dirs of imports and incoming migrations a dead agent left.
    pub(crate) fn remove_stale_staging(&self) {
        if let Ok(rd) = std::fs::read_dir(self.state.root()) {
            for e in rd.flatten() {
                let n = e.file_name().to_string_lossy().into_owned();
                if n.starts_with("import-") || n.starts_with("migrate-in-") {
                    tracing::info!(dir = %n, "removing stale staging dir");
                    let _ = std::fs::remove_dir_all(e.path());
                }
            }
        }
    }

    /// Watch a container's init and record its exit. `child`: it is our
    /// child (we can reap it and learn its exit code).
    pub(crate) fn watch(self: &Arc<Self>, entry: Arc<Entry>, pid: i32, child: bool) {
        let me = self.clone();
        std::thread::spawn(move || {
            let code = if child {
                wait_child(pid)
            } else {
                wait_foreign(pid);
                None
            };
            let rec = {
                let mut r = lock(&entry.record);
                if r.pid != Some(pid) {
                    return; // restored elsewhere or replaced meanwhile
                }
                r.status = ContainerStatus::Stopped;
                r.exit_code = code;
                r.clone()
            };
            if me.state.container(&rec.spec.name).dir.exists() {
                if let Err(e) = me.save(&rec) {
                    tracing::error!(container = %rec.spec.name, "save record: {e}");
                }
            }
            entry.exited.notify_all();
            tracing::info!(container = %rec.spec.name, ?code, "exited");
            if rec.spec.auto_remove {
                // `run --rm`: nothing of it stays once its process is gone.
                let name = rec.spec.name.clone();
                match me.remove(&name, false) {
                    Ok(()) => me
                        .monitor
                        .event(&name, herd_wire::monitor::EventKind::Removed),
                    Err(e) => tracing::error!(container = %name, "--rm: remove: {e}"),
                }
            }
        });
    }
}

fn wait_child(pid: i32) -> Option<i32> {
    loop {
        match waitpid(Pid::from_raw(pid), None) {
            Ok(WaitStatus::Exited(_, c)) => return Some(c),
            Ok(WaitStatus::Signaled(_, s, _)) => return Some(128 + s as i32),
            Ok(_) => continue,
            Err(nix::Error::EINTR) => continue,
            Err(_) => {
                // Not our child after all: fall back to watching it.
                wait_foreign(pid);
                return None;
            }
        }
    }
}

/// Block until a process that is not our child exits.
fn wait_foreign(pid: i32) {
    // SAFETY: pidfd_open takes a pid and flags and returns a new fd or -1.
    let fd = unsafe { libc::syscall(libc::SYS_pidfd_open, pid, 0) };
    if fd < 0 {
        return; // already gone
    }
    // SAFETY: fd is a fresh descriptor we own.
    let fd = unsafe { OwnedFd::from_raw_fd(fd as i32) };
    loop {
        let mut fds = [nix::poll::PollFd::new(
            fd.as_fd(),
            nix::poll::PollFlags::POLLIN,
        )];
        match nix::poll::poll(&mut fds, nix::poll::PollTimeout::NONE) {
            Ok(n) if n > 0 => return,
            Err(nix::Error::EINTR) | Ok(_) => continue,
            Err(_) => return,
        }
    }
}
