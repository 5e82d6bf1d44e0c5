//! `restore`: bring a checkpointed container back through CRIU's RPC, the
//! way runc prepares a restore:
//!
//! 1. the overlay is mounted (merged dir = CRIU's `root`);
//! 2. the container's network namespace exists and is handed in as
//!    `extRootNetNS` (`inherit_fd`);
//! 3. new stdio pipes with a new log shim replace the dumped ones
//!    (`inherit_fd` keyed by the dumped `pipe:[inode]`), so the log goes on
//!    in the same file;
//! 4. CRIU restores in soft cgroup mode as a sibling (`rst_sibling`): the
//!    restored init is our child and its watcher reaps it;
//! 5. libcontainer's state gets the new pid, the cgroup limits are applied
//!    again and the init is put in the container's cgroups.
//!
//! `restore_import` first unpacks and verifies an exported archive, builds
//! the container's filesystem (image layers + the archived upper layer),
//! network namespace, bundle and runtime state (provisioning from a
//! bundle, `provision.rs`), then runs the same steps.
//! A migration target splits that: [`Agent::build_staged`] while the
//! container still runs on the source, [`Agent::finish_staged`] after the
//! dump. Any failure removes what the import made.

use std::fs;
use std::os::fd::AsRawFd;
use std::path::Path;
use std::sync::Arc;
use std::time::Instant;

use herd_criu::{CgroupMode, InheritFd, RestoreOpts};
use herd_wire::{ContainerStatus, RestoreReport, RunSpec};
use libcgroups::common::{CgroupManager, ControllerOpt};
use oci_spec::runtime::Spec;

use super::{lock, read_json, Agent, CheckpointMeta, Entry, META_FILE};
use crate::error::{AgentError, IoContext, Result};
use crate::logs;
use crate::state::now_ns;

impl Agent {
    /// Restore a container from its own last checkpoint on this host.
    pub fn restore(self: &Arc<Self>, name: &str) -> Result<RestoreReport> {
        let t0 = Instant::now();
        let entry = self.entry(name)?;
        let rec = entry.snapshot();
        if rec.status != ContainerStatus::Checkpointed {
            return Err(AgentError::Conflict {
                name: name.to_string(),
                state: rec.status.to_string(),
                hint: "only a checkpointed container can be restored",
            });
        }
        let images = self.state.container(name).checkpoint();
        self.restore_into(&entry, &images, t0, false)
    }

    /// Restore a container from an archive written by `checkpoint --export`.
    pub fn restore_import(
        self: &Arc<Self>,
        archive: &Path,
        new_name: Option<String>,
    ) -> Result<RestoreReport> {
        let t0 = Instant::now();
        let staging = self.staging_dir("import");
        let staged = crate::export::read(archive, &staging, &self.cfg.limits.unpack)?;
        let m = &staged.manifest;
        let spec = RunSpec {
            name: new_name.unwrap_or_else(|| m.spec.name.clone()),
            ..m.spec.clone()
        };
        self.import_staged(&staged.dir, &spec, &m.layers, t0, false)
    }

    /// A fresh staging dir path under the state dir (not created).
    pub(crate) fn staging_dir(&self, what: &str) -> std::path::PathBuf {
        self.state
            .root()
            .join(format!("{what}-{}-{}", std::process::id(), now_ns()))
    }

    /// Build a container from a staged checkpoint and restore it.
    ///
    /// `dir` holds `config.json` (OCI spec), `checkpoint/` (CRIU images) and
    /// optionally `upper.tar`, `upper-delta.tar` (applied in this order) and
    /// `log` (the container's log so far). `layers` must match the local
    /// image `spec.image`. Any failure removes what was built. `hold`: the
    /// restored tree stays stopped and fenced (a migration target before
    /// the decision) until [`Agent::release`].
    pub(crate) fn import_staged(
        self: &Arc<Self>,
        dir: &Path,
        spec: &RunSpec,
        layers: &[String],
        t0: Instant,
        hold: bool,
    ) -> Result<RestoreReport> {
        let oci =
            fs::read(dir.join("config.json")).ctx(|| "read the checkpoint's OCI spec".into())?;
        let entry = self.build_staged(dir, spec, layers, &oci)?;
        self.finish_staged(&entry, dir, t0, hold)
    }

    /// The part of [`Agent::import_staged`] that needs no checkpoint,
    /// provisioning from a bundle (`provision.rs`): the name reserved, the
    /// overlay with `dir/upper.tar` applied (then deleted; mounted by the
    /// restore), the netns (fenced, with its macvlan), the cgroup, the
    /// bundle from `oci` and the runtime state. A migration
    /// target does this while the container still runs on the source.
    /// Nothing is saved as a record yet: a restarted agent removes it as a
    /// half-made container. Any failure removes what was built.
    pub(crate) fn build_staged(
        self: &Arc<Self>,
        dir: &Path,
        spec: &RunSpec,
        layers: &[String],
        oci: &[u8],
    ) -> Result<Arc<Entry>> {
        let origin = super::provision::Origin::Bundle { dir, layers, oci };
        Ok(self.provision(spec, origin)?.entry)
    }

    /// The rest of [`Agent::import_staged`] on a container from
    /// [`Agent::build_staged`]: `dir/upper-delta.tar` applied, the log
    /// carried over, `dir/checkpoint` moved in, the record saved, and the
    /// restore. Any failure removes the container.
    pub(crate) fn finish_staged(
        self: &Arc<Self>,
        entry: &Arc<Entry>,
        dir: &Path,
        t0: Instant,
        hold: bool,
    ) -> Result<RestoreReport> {
        let name = entry.snapshot().spec.name;
        let made = (|| -> Result<()> {
            let cdir = self.state.container(&name);
            let delta = dir.join("upper-delta.tar");
            if delta.exists() {
                self.apply_layer(&cdir.fs().join("upper"), &delta)?;
            }
            if dir.join("log").exists() {
                fs::copy(dir.join("log"), cdir.log()).ctx(|| "carry the log over".into())?;
            }
            // The images move into the container's own checkpoint dir.
            fs::rename(dir.join("checkpoint"), cdir.checkpoint()).ctx(|| "move images".into())?;
            let snapshot = {
                let mut r = lock(&entry.record);
                r.status = ContainerStatus::Checkpointed;
                r.clone()
            };
            self.save(&snapshot)
        })();
        let restored = made.and_then(|_| {
            let images = self.state.container(&name).checkpoint();
            self.restore_into(entry, &images, t0, hold)
        });
        if restored.is_err() {
            self.discard(entry);
        }
        restored
    }

    /// Let a container restored with `hold` run: lift its fence, tell the
    /// segment where its address is, SIGCONT every task. Idempotent.
    pub(crate) fn release(&self, name: &str) -> Result<()> {
        let rec = self.entry(name)?.snapshot();
        if let Some(att) = &rec.spec.net {
            let ns_path = herd_netlink::netns::path(&rec.netns);
            crate::net::unfence(&ns_path)?;
            let (_, _, ip, mac) = self.nets.check(att)?;
            if let Err(e) = crate::net::announce(&ns_path, ip, mac) {
                tracing::warn!(container = %name, "{e}");
            }
        }
        let mut procs = crate::cgroup::procs(&rec.cgroup_path);
        if let Some(p) = rec.pid {
            if !procs.contains(&p) {
                procs.push(p);
            }
        }
        for p in procs {
            let _ = nix::sys::signal::kill(
                nix::unistd::Pid::from_raw(p),
                nix::sys::signal::Signal::SIGCONT,
            );
        }
        tracing::info!(container = %name, "released: runs");
        Ok(())
    }

    fn restore_into(
        self: &Arc<Self>,
        entry: &Arc<Entry>,
        images: &Path,
        t0: Instant,
        hold: bool,
    ) -> Result<RestoreReport> {
        let rec = entry.snapshot();
        let name = rec.spec.name.clone();
        let cdir = self.state.container(&name);
        let meta: CheckpointMeta = read_json(&images.join(META_FILE))?;
        self.check_volumes(&name, &rec.spec.volumes)?;
        if meta.created_ns != 0 {
            lock(&entry.record).created_ns = meta.created_ns;
        }

        let cfs = self.container_fs(&rec)?;
        cfs.mount()?;
        let net = rec
            .spec
            .net
            .as_ref()
            .map(|a| self.nets.check(a))
            .transpose()?;
        // Fenced before the address exists here, until the sockets do
        // (module docs of crate::net).
        let ns_path = self.network(&rec.netns, net.as_ref(), true, true, || {})?;
        let ns_fd = herd_netlink::netns::open(&ns_path).ctx(|| format!("open {}", rec.netns))?;

        let stdio = logs::spawn_logged_stdio(&cdir.log())?;
        let ours = [
            stdio.stdin.as_raw_fd(),
            stdio.stdout.as_raw_fd(),
            stdio.stderr.as_raw_fd(),
        ];
        let mut inherit: Vec<InheritFd> = meta
            .stdio
            .iter()
            .zip(ours)
            .filter(|(key, _)| key.starts_with("pipe:"))
            .map(|(key, fd)| InheritFd {
                key: key.clone(),
                fd,
            })
            .collect();
        inherit.push(InheritFd {
            key: "extRootNetNS".into(),
            fd: ns_fd.as_raw_fd(),
        });
        let mut cgroup_root = Vec::new();
        crate::cgroup::prepare(&rec.cgroup_path)?;
        // The restored counters continue from the dump's; a cgroup or netns
        // kept on this host since the dump counts part of them already.
        let held = crate::monitor::counters_held(self, &rec.cgroup_path, &ns_path);
        lock(&entry.record).counter_base = meta.counters.map(|c| c.minus(&held));
        if meta.cgroup_path != rec.cgroup_path {
            cgroup_root.push(herd_criu::CgroupRoot {
                controller: None,
                path: rec.cgroup_path.clone(),
            });
        }
        let opts = RestoreOpts {
            root: Some(cfs.merged().to_path_buf()),
            tcp_established: true,
            ext_unix_sk: true,
            file_locks: true,
            shell_job: false,
            manage_cgroups: true,
            manage_cgroups_mode: Some(CgroupMode::Soft),
            rst_sibling: true,
            leave_stopped: hold,
            inherit_fd: inherit,
            cgroup_root,
            external: super::volumes::restore_externals(&rec.spec.volumes),
            ..RestoreOpts::new(images)
        };
        let criu = herd_criu::Criu::from_env();
        let restored = {
            let _serial = lock(&self.criu_lock);
            if hold && crate::migrate::fault("pause-in-restore") {
                // A test's pause with CRIU alive mid-restore (tasks made, not resumed).
                criu.restore_with(&opts, |n: &herd_criu::Notify| {
                    if n.kind() == herd_criu::NotifyKind::PostRestore {
                        crate::migrate::pause_blocking(self, "in-restore");
                    }
                    Ok::<(), std::convert::Infallible>(())
                })
            } else {
                criu.restore(&opts)
            }
        };
        drop(stdio); // the restored tree holds the container's ends now
        let pid = restored
            .map_err(|e| AgentError::Criu {
                context: format!("restore of {name} failed"),
                source: Box::new(e),
            })?
            .pid;

        // Runtime state and cgroup limits for the new process.
        let rt = self.state.runtime().join(&name);
        let mut c = libcontainer::container::Container::load(rt.clone())
            .ctx(|| format!("load runtime state of {name}"))?;
        c.set_pid(pid)
            .set_status(libcontainer::container::ContainerStatus::Running);
        c.save().ctx(|| "save runtime state".into())?;
        if let Err(e) = apply_cgroup(&rec.cgroup_path, &name, pid, &cdir.bundle()) {
            tracing::warn!(container = %name, "re-applying cgroup limits: {e}");
        }

        if let (Some((_, _, ip, mac)), false) = (&net, hold) {
            crate::net::unfence(&ns_path)?;
            if let Err(e) = crate::net::announce(&ns_path, *ip, *mac) {
                tracing::warn!(container = %name, "{e}");
            }
        }

        let stats = herd_criu::read_restore_stats(images).ok();
        let snapshot = entry.set_running(pid);
        self.save(&snapshot)?;
        self.watch(entry.clone(), pid, true);
        tracing::info!(container = %name, pid, hold, "restored");
        Ok(RestoreReport {
            container: snapshot.info(),
            total_ms: t0.elapsed().as_secs_f64() * 1e3,
            criu_restore_ms: stats
                .as_ref()
                .map(|s| s.restore_time_us as f64 / 1e3)
                .unwrap_or(0.0),
            pages_restored: stats.and_then(|s| s.pages_restored).unwrap_or(0),
            running_ms: 0.0,
        })
    }
}

/// Put `pid` into the container's cgroups and apply the spec's limits.
fn apply_cgroup(cgroup_path: &str, name: &str, pid: i32, bundle: &Path) -> Result<()> {
    let spec = Spec::load(bundle.join("config.json")).ctx(|| "OCI spec".into())?;
    let cm = libcgroups::common::create_cgroup_manager(libcgroups::common::CgroupConfig {
        cgroup_path: cgroup_path.into(),
        systemd_cgroup: false,
        container_name: name.to_string(),
    })
    .ctx(|| "cgroup manager".into())?;
    cm.add_task(nix::unistd::Pid::from_raw(pid))
        .ctx(|| format!("add {pid} to {cgroup_path}"))?;
    crate::cgroup::join_container(cgroup_path, pid)?;
    if let Some(res) = spec.linux().as_ref().and_then(|l| l.resources().clone()) {
        cm.apply(&ControllerOpt {
            resources: &res,
            disable_oom_killer: false,
            oom_score_adj: None,
            freezer_state: None,
        })
        .ctx(|| format!("apply limits to {cgroup_path}"))?;
    }
    Ok(())
}
