//! `run`: image -> overlay -> netns -> OCI bundle -> libcontainer create+start.
//! Each step undoes the earlier ones when a later one fails, so a failed run
//! leaves nothing behind.

use std::fs;
use std::path::Path;
use std::sync::Arc;

use herd_overlay::ContainerFs;
use herd_wire::{ContainerInfo, ContainerStatus, RunSpec};
use libcontainer::container::builder::ContainerBuilder;
use libcontainer::syscall::syscall::SyscallType;

use super::{lock, Agent};
use crate::error::{validate_name, AgentError, IoContext, Result};
use crate::logs;
use crate::spec::{self, SpecInput};
use crate::state::pid_start_time;

/// Undo list: run in reverse unless disarmed.
struct Undo(Vec<Box<dyn FnOnce()>>);

impl Undo {
    fn push(&mut self, f: impl FnOnce() + 'static) {
        self.0.push(Box::new(f));
    }
    fn disarm(mut self) {
        self.0.clear();
    }
}

impl Drop for Undo {
    fn drop(&mut self) {
        while let Some(f) = self.0.pop() {
            f();
        }
    }
}

impl Agent {
    pub fn run(self: &Arc<Self>, spec: RunSpec) -> Result<ContainerInfo> {
        validate_name("container name", &spec.name)?;
        if let Some(h) = &spec.hostname {
            validate_name("hostname", h)?;
        }
        let name = spec.name.clone();
        let image = self.images.get(&spec.image)?;
        let net = spec.net.as_ref().map(|a| self.nets.check(a)).transpose()?;
        // Reserve the name while we build; removed again on failure.
        self.reserve(&spec, image.layers.clone())?;
        let mut undo = Undo(Vec::new());
        {
            let me = self.clone();
            let n = name.clone();
            undo.push(move || {
                lock(&me.containers).remove(&n);
            });
        }

        let cdir = self.state.container(&name);
        fs::create_dir_all(&cdir.dir).ctx(|| format!("create {}", cdir.dir.display()))?;
        {
            let d = cdir.dir.clone();
            undo.push(move || {
                let _ = fs::remove_dir_all(&d);
            });
        }

        // Filesystem: the image's layers under a fresh upper.
        let cfs = ContainerFs::create(&cdir.fs(), self.images.lower_dirs(&image))?;
        cfs.mount()?;
        {
            let c = cfs.clone();
            undo.push(move || {
                let _ = c.unmount();
            });
        }

        // Network: a namespace of the agent's, loopback up.
        let netns = self.netns_name(&name);
        let ns_path =
            herd_netlink::netns::create(&netns).ctx(|| format!("create netns {netns}"))?;
        {
            let n = netns.clone();
            undo.push(move || {
                let _ = herd_netlink::netns::delete(&n);
            });
        }
        loopback_up(&ns_path, &netns)?;
        if let Some((def, subnet, ip, mac)) = &net {
            crate::net::attach(&ns_path, def, *subnet, *ip, *mac)?;
        }

        // OCI bundle.
        let cfg = image.config.clone().unwrap_or_default();
        let args = if spec.cmd.is_empty() {
            cfg.entrypoint
                .iter()
                .flatten()
                .chain(cfg.cmd.iter().flatten())
                .cloned()
                .collect()
        } else {
            spec.cmd.clone()
        };
        let mut env = cfg.env.clone();
        env.extend(spec.env.iter().cloned());
        let cgroup_path = self.cgroup_path(&name);
        let oci = spec::build(SpecInput {
            rootfs: cfs.merged(),
            args,
            env,
            cwd: cfg
                .working_dir
                .clone()
                .filter(|w| !w.is_empty())
                .unwrap_or_else(|| "/".into()),
            hostname: spec.hostname.clone().unwrap_or_else(|| name.clone()),
            netns: &ns_path,
            cgroup_path: cgroup_path.clone(),
            memory_bytes: spec.memory_bytes,
            cpus: spec.cpus,
        })?;
        fs::create_dir_all(cdir.bundle()).ctx(|| "create bundle dir".into())?;
        oci.save(cdir.bundle().join("config.json"))
            .map_err(|e| AgentError::Other(format!("write OCI spec: {e}")))?;

        // Stdio through the log shim, then create and start.
        let stdio = logs::spawn_logged_stdio(&cdir.log())?;
        let pid = create_and_start(&self.state.runtime(), &name, &cdir.bundle(), stdio)?;
        {
            let rt = self.state.runtime();
            let n = name.clone();
            undo.push(move || destroy_runtime(&rt, &n));
        }

        crate::cgroup::join_all(&cgroup_path, pid)?;
        let entry = self.entry(&name)?;
        let rec = {
            let mut r = lock(&entry.record);
            r.status = ContainerStatus::Running;
            r.pid = Some(pid);
            r.pid_start = pid_start_time(pid);
            r.netns = netns;
            r.cgroup_path = cgroup_path;
            r.clone()
        };
        self.save(&rec)?;
        undo.disarm();
        if let Some((_, _, ip, mac)) = &net {
            // Peers may remember this address at an earlier owner's MAC.
            if let Err(e) = crate::net::announce(&ns_path, *ip, *mac) {
                tracing::warn!(container = %name, "{e}");
            }
        }
        self.watch(entry, pid, true);
        tracing::info!(container = %name, pid, "started");
        Ok(rec.info())
    }
}

/// Bring up `lo` in a container's fresh network namespace.
pub(crate) fn loopback_up(ns_path: &Path, netns: &str) -> Result<()> {
    herd_netlink::Handle::in_netns(ns_path)
        .and_then(|mut h| h.set_up("lo"))
        .ctx(|| format!("bring up lo in {netns}"))
}

/// libcontainer create + start; returns the init pid.
pub(crate) fn create_and_start(
    runtime_root: &Path,
    name: &str,
    bundle: &Path,
    stdio: logs::Stdio3,
) -> Result<i32> {
    let mut container = ContainerBuilder::new(name.to_string(), SyscallType::Linux)
        .with_root_path(runtime_root)
        .ctx(|| "runtime root".into())?
        .with_stdin(stdio.stdin)
        .with_stdout(stdio.stdout)
        .with_stderr(stdio.stderr)
        .as_init(bundle)
        .with_systemd(false)
        .with_detach(true)
        .build()
        .ctx(|| format!("create container {name}"))?;
    if let Err(e) = container.start() {
        let _ = container.delete(true);
        return Err(AgentError::Runtime {
            context: format!("start container {name}"),
            source: Box::new(e),
        });
    }
    container
        .pid()
        .map(|p| p.as_raw())
        .ok_or_else(|| AgentError::Other(format!("container {name} started without a pid")))
}

/// Kill and delete libcontainer's container (cgroups, state). Best effort.
pub(crate) fn destroy_runtime(runtime_root: &Path, name: &str) {
    match libcontainer::container::Container::load(runtime_root.join(name)) {
        Ok(mut c) => {
            if let Err(e) = c.delete(true) {
                tracing::warn!(container = name, "runtime delete: {e}");
            }
        }
        Err(e) => tracing::debug!(container = name, "no runtime state to delete: {e}"),
    }
}
