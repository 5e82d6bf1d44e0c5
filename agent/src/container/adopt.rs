//! Re-adoption after an agent restart, and recording a container's exit.

use std::sync::Arc;

use herd_wire::ContainerStatus;

use super::{lock, Agent, Entry};
use crate::error::{IoContext, Result};
use crate::exits::Reap;
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

    /// Watch a container's init and record its exit (on the agent's one
    /// exit waiter, [`crate::exits`]). `child`: it is our child (we can
    /// reap it and learn its exit code).
    pub(crate) fn watch(self: &Arc<Self>, entry: Arc<Entry>, pid: i32, child: bool) {
        let me = self.clone();
        let reap = match child {
            true => Reap::Child,
            false => Reap::Foreign,
        };
        let name = entry.snapshot().spec.name;
        let done = Box::new(move |code| me.exited(&entry, pid, code));
        if let Err(e) = crate::exits::watch(pid, reap, done) {
            tracing::error!(container = %name, pid, "cannot watch its exit: {e}");
        }
    }

    /// Record that the init `pid` of `entry` exited. Runs on the exit
    /// waiter: anything slow goes to a thread of its own.
    fn exited(self: &Arc<Self>, entry: &Entry, pid: i32, code: Option<i32>) {
        let rec = {
            let mut r = lock(&entry.record);
            if r.pid != Some(pid) {
                return; // restored elsewhere or replaced meanwhile
            }
            r.status = ContainerStatus::Stopped;
            r.exit_code = code;
            r.clone()
        };
        if self.state.container(&rec.spec.name).dir.exists() {
            if let Err(e) = self.save(&rec) {
                tracing::error!(container = %rec.spec.name, "save record: {e}");
            }
        }
        entry.exited.notify_all();
        tracing::info!(container = %rec.spec.name, ?code, "exited");
        if rec.spec.auto_remove {
            // `run --rm`: nothing of it stays once its process is gone.
            let (me, name) = (self.clone(), rec.spec.name);
            std::thread::spawn(move || match me.remove(&name, false) {
                Ok(()) => me
                    .monitor
                    .event(&name, herd_wire::monitor::EventKind::Removed),
                Err(e) => tracing::error!(container = %name, "--rm: remove: {e}"),
            });
        }
    }
}
