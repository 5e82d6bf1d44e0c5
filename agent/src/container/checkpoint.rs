//! `checkpoint`: dump a running container through CRIU's RPC, described to
//! CRIU as runc describes a container:
//!
//! * its network namespace is the agent's, declared external
//!   (`net[<inode>]:extRootNetNS`) so a restore can hand in a namespace;
//! * its cgroups are managed by CRIU in soft mode and frozen through the
//!   freezer cgroup (v1) or the unified hierarchy (v2);
//! * its stdio pipes are recorded (`pipe:[inode]`) so a restore can give it
//!   new pipes with `inherit_fd`;
//! * established TCP, external unix sockets and file locks are dumped;
//! * its `-v` bind mounts are external mounts (`volumes.rs`).
//!
//! CRIU calls on one host are serialised (`Agent::criu_lock`): two dumps or
//! restores at once collide on cgroups, pids and the network lock.

use std::fs;
use std::os::unix::fs::{DirBuilderExt, MetadataExt};
use std::path::{Path, PathBuf};
use std::sync::Arc;
use std::time::Instant;

use herd_criu::{CgroupMode, DumpOpts};
use herd_wire::{CheckpointReport, ContainerStatus};
use serde::{Deserialize, Serialize};

use super::{lock, Agent};
use crate::error::{AgentError, IoContext, Result};
use crate::state::pid_start_time;

/// Written next to CRIU's images: what a restore needs to know that CRIU
/// does not keep.
#[derive(Debug, Clone, Serialize, Deserialize)]
pub(crate) struct CheckpointMeta {
    /// `readlink /proc/<pid>/fd/{0,1,2}` at dump time.
    pub stdio: Vec<String>,
    /// cgroupsPath the container had when it was dumped.
    pub cgroup_path: String,
    /// When the container was first made: a restore elsewhere keeps it.
    #[serde(default)]
    pub created_ns: u64,
    /// The container's counters just before the dump (Prometheus series
    /// continue from them after the restore).
    #[serde(default)]
    pub counters: Option<herd_wire::monitor::ContainerCounters>,
}

pub(crate) const META_FILE: &str = "herd-checkpoint.json";

pub struct CheckpointOptions {
    pub leave_running: bool,
    pub export: Option<PathBuf>,
}

/// A dump whose pages go to a page server (`--memory-mode stream`): `fd`
/// is our end of a connected socket CRIU writes its page-server protocol
/// to; `hold` runs at CRIU's post-dump point with the tree still frozen:
/// `Ok` lets CRIU kill it (the dump succeeds), `Err` makes CRIU resume it
/// (the dump fails, the container runs on here). `parent`
/// (`--memory-mode pre`): the last pre-dump's images, relative to the
/// images dir: only pages dirtied since then are sent.
pub(crate) struct PageStream {
    pub fd: std::os::fd::RawFd,
    pub hold: Box<dyn FnMut() -> std::result::Result<(), String> + Send>,
    pub parent: Option<String>,
}

impl Agent {
    pub fn checkpoint(
        self: &Arc<Self>,
        name: &str,
        opts: CheckpointOptions,
    ) -> Result<CheckpointReport> {
        self.checkpoint_to(name, opts, None)
    }

    pub(crate) fn checkpoint_to(
        self: &Arc<Self>,
        name: &str,
        opts: CheckpointOptions,
        mut stream: Option<PageStream>,
    ) -> Result<CheckpointReport> {
        let t0 = Instant::now();
        let entry = self.entry(name)?;
        let rec = entry.snapshot();
        let pid = running_pid(&rec, name, "only a running container can be checkpointed")?;
        if let Some(e) = &opts.export {
            check_export_path(e)?;
        }
        self.check_dumpable(name)?;
        let images = self.state.container(name).checkpoint();
        if images.exists() {
            fs::remove_dir_all(&images).ctx(|| format!("remove old {}", images.display()))?;
        }
        fs::DirBuilder::new()
            .mode(0o700)
            .recursive(true)
            .create(&images)
            .ctx(|| format!("create {}", images.display()))?;

        let stdio = (0..3)
            .map(|fd| {
                fs::read_link(format!("/proc/{pid}/fd/{fd}"))
                    .map(|p| p.to_string_lossy().into_owned())
                    .ctx(|| format!("read stdio fd {fd} of pid {pid}"))
            })
            .collect::<Result<Vec<_>>>()?;
        let meta = CheckpointMeta {
            stdio,
            cgroup_path: rec.cgroup_path.clone(),
            created_ns: rec.created_ns,
            counters: Some(crate::monitor::counters_now(self, &rec)),
        };
        write_json(&images.join(META_FILE), &meta)?;

        let dump = DumpOpts {
            leave_running: opts.leave_running,
            page_server: stream.as_ref().map(|s| herd_criu::PageServerAddr {
                fd: Some(s.fd),
                ..Default::default()
            }),
            parent_image: stream.as_ref().and_then(|s| s.parent.clone()),
            // As runc: a dump on top of pre-dumps tracks memory too.
            track_mem: stream.as_ref().is_some_and(|s| s.parent.is_some()),
            ..dump_opts(&rec, pid, &images)?
        };
        // A container with its own address: nothing may answer its peers
        // from here while its sockets are gone (module docs of crate::net).
        let ns_path = herd_netlink::netns::path(&rec.netns);
        let fenced = rec.spec.net.is_some() && !opts.leave_running;
        if fenced {
            crate::net::fence(&ns_path)?;
        }
        let criu = herd_criu::Criu::from_env();
        let result = {
            let _serial = lock(&self.criu_lock);
            if !opts.leave_running {
                // The process dies by CRIU's hand: its watcher must not
                // record that as an exit.
                lock(&entry.record).pid = None;
            }
            match stream.as_mut() {
                None => criu.dump(&dump),
                Some(s) => criu.dump_with(&dump, |n| match n.script() {
                    "post-dump" => (s.hold)(),
                    _ => Ok(()),
                }),
            }
        };
        if let Err(e) = result {
            if fenced {
                if let Err(u) = crate::net::unfence(&ns_path) {
                    tracing::error!(container = name, "after a failed dump: {u}");
                }
            }
            // Nothing was lost: the container is still running (or, if CRIU
            // killed it after all, it is recorded as stopped).
            let mut r = lock(&entry.record);
            if pid_start_time(pid).is_some() && pid_start_time(pid) == rec.pid_start {
                r.pid = Some(pid);
            } else {
                r.pid = Some(pid);
                r.status = ContainerStatus::Stopped;
            }
            let snapshot = r.clone();
            drop(r);
            self.save(&snapshot)?;
            // The images dir stays: its dump.log explains the failure.
            return Err(AgentError::Criu {
                context: format!("checkpoint of {name} failed, the container is still running"),
                source: Box::new(e),
            });
        }
        if !opts.leave_running {
            let snapshot = {
                let mut r = lock(&entry.record);
                r.status = ContainerStatus::Checkpointed;
                r.pid = None;
                r.pid_start = None;
                r.exit_code = None;
                r.clone()
            };
            self.save(&snapshot)?;
            entry.exited.notify_all();
        }
        let stats = herd_criu::read_dump_stats(&images).map_err(|e| AgentError::Criu {
            context: "read CRIU's dump statistics".into(),
            source: Box::new(e),
        })?;
        let image_bytes = dir_size(&images);
        let (export, export_bytes) = match &opts.export {
            Some(path) => {
                let n = crate::export::write(self, name, &images, path)?;
                (Some(path.to_string_lossy().into_owned()), Some(n))
            }
            None => (None, None),
        };
        tracing::info!(
            container = name,
            frozen_us = stats.frozen_time_us,
            "checkpointed"
        );
        Ok(CheckpointReport {
            name: name.to_string(),
            node: self.cfg.node.clone(),
            total_ms: t0.elapsed().as_secs_f64() * 1e3,
            freezing_ms: stats.freezing_time_us as f64 / 1e3,
            frozen_ms: stats.frozen_time_us as f64 / 1e3,
            memdump_ms: stats.memdump_time_us as f64 / 1e3,
            memwrite_ms: stats.memwrite_time_us as f64 / 1e3,
            pages_written: stats.pages_written,
            image_bytes,
            leave_running: opts.leave_running,
            export,
            export_bytes,
        })
    }
}

impl Agent {
    /// `--memory-mode pre`: one pre-dump of running container `name`
    /// (CRIU's soft-dirty tracking), its pages to the page server on
    /// `ps_fd`; the round's other images go to `dir`, whose `parent`
    /// (relative to `dir`) is the round before. The container runs on.
    /// Returns the pages written (CRIU's stats-dump).
    pub(crate) fn pre_dump_to(
        self: &Arc<Self>,
        name: &str,
        dir: &Path,
        parent: Option<&str>,
        ps_fd: std::os::fd::RawFd,
    ) -> Result<u64> {
        let entry = self.entry(name)?;
        let rec = entry.snapshot();
        let pid = running_pid(&rec, name, "only a running container can be pre-dumped")?;
        fs::DirBuilder::new()
            .mode(0o700)
            .recursive(true)
            .create(dir)
            .ctx(|| format!("create {}", dir.display()))?;
        let opts = DumpOpts {
            parent_image: parent.map(str::to_string),
            page_server: Some(herd_criu::PageServerAddr {
                fd: Some(ps_fd),
                ..Default::default()
            }),
            ..dump_opts(&rec, pid, dir)?
        };
        let criu = herd_criu::Criu::from_env();
        {
            let _serial = lock(&self.criu_lock);
            criu.pre_dump(&opts)
        }
        .map_err(|e| AgentError::Criu {
            context: format!("pre-dump of {name} failed, the container is still running"),
            source: Box::new(e),
        })?;
        let stats = herd_criu::read_dump_stats(dir).map_err(|e| AgentError::Criu {
            context: "read CRIU's pre-dump statistics".into(),
            source: Box::new(e),
        })?;
        Ok(stats.pages_written)
    }
}

/// The CRIU options every dump and pre-dump of a container shares (module
/// docs): external netns and bind mounts, soft cgroups, the freezer.
fn dump_opts(rec: &crate::state::ContainerRecord, pid: i32, images: &Path) -> Result<DumpOpts> {
    let ns_ino = fs::metadata(herd_netlink::netns::path(&rec.netns))
        .ctx(|| format!("netns {}", rec.netns))?
        .ino();
    Ok(DumpOpts {
        tcp_established: true,
        ext_unix_sk: true,
        file_locks: true,
        shell_job: false,
        manage_cgroups: true,
        manage_cgroups_mode: Some(CgroupMode::Soft),
        freeze_cgroup: freezer_path(pid),
        external: std::iter::once(format!("net[{ns_ino}]:extRootNetNS"))
            .chain(super::volumes::dump_externals(&rec.spec.volumes))
            .collect(),
        ..DumpOpts::new(pid, images)
    })
}

fn check_export_path(p: &Path) -> Result<()> {
    let parent = p.parent().filter(|x| !x.as_os_str().is_empty());
    if !p.is_absolute() || parent.map(|d| !d.is_dir()).unwrap_or(true) {
        return Err(AgentError::Invalid {
            what: "export path",
            reason: format!(
                "{}: must be an absolute path in an existing directory of the agent's host",
                p.display()
            ),
        });
    }
    Ok(())
}

/// The freezer CRIU should use: the cgroup v2 one. On v1 none: CRIU polls
/// the v1 freezer every 100 ms, which made the frozen time ~100 ms longer
/// than freezing the tree with ptrace (CRIU's default, as `criu dump -t`),
/// measured here.
fn freezer_path(pid: i32) -> Option<String> {
    let cg = fs::read_to_string(format!("/proc/{pid}/cgroup")).ok()?;
    let path = cg.lines().find_map(|l| l.strip_prefix("0::"))?;
    Path::new("/sys/fs/cgroup/cgroup.controllers")
        .exists()
        .then(|| format!("/sys/fs/cgroup{path}"))
}

pub(crate) fn write_json<T: Serialize>(path: &Path, v: &T) -> Result<()> {
    let data = serde_json::to_vec_pretty(v)
        .map_err(|e| AgentError::Other(format!("encode {}: {e}", path.display())))?;
    fs::write(path, data).ctx(|| format!("write {}", path.display()))
}

pub(crate) fn read_json<T: for<'de> Deserialize<'de>>(path: &Path) -> Result<T> {
    let data = fs::read(path).ctx(|| format!("read {}", path.display()))?;
    serde_json::from_slice(&data)
        .map_err(|e| AgentError::Other(format!("corrupt {}: {e}", path.display())))
}

pub(crate) fn dir_size(dir: &Path) -> u64 {
    fs::read_dir(dir)
        .map(|rd| {
            rd.flatten()
                .filter_map(|e| e.metadata().ok())
                .filter(|m| m.is_file())
                .map(|m| m.len())
                .sum()
        })
        .unwrap_or(0)
}

/// The pid of a running container; else a Conflict naming its state.
fn running_pid(rec: &crate::state::ContainerRecord, name: &str, hint: &'static str) -> Result<i32> {
    match (rec.status, rec.pid) {
        (ContainerStatus::Running, Some(pid)) => Ok(pid),
        _ => Err(AgentError::Conflict {
            name: name.to_string(),
            state: rec.status.to_string(),
            hint,
        }),
    }
}
