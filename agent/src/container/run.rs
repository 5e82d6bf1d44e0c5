//! `run`: image -> overlay -> netns -> OCI bundle (fresh provisioning,
//! `provision.rs`) -> libcontainer create+start in a helper process. A
//! failure at any step removes what the earlier ones made, so a failed run
//! leaves nothing behind. `start`: a stopped container's process again.

use std::os::fd::{FromRawFd, OwnedFd};
use std::path::Path;
use std::sync::Arc;

use herd_wire::{ContainerInfo, ContainerStatus, RunSpec};
use libcontainer::container::builder::ContainerBuilder;
use libcontainer::syscall::syscall::SyscallType;
use oci_spec::runtime::Spec;

use super::provision::{Fresh, Origin};
use super::Agent;
use crate::error::{validate_name, AgentError, IoContext, Result};
use crate::logs;
use crate::spec::{self, SpecInput};

impl Agent {
    pub fn run(self: &Arc<Self>, spec: RunSpec) -> Result<ContainerInfo> {
        validate_name("container name", &spec.name)?;
        if let Some(h) = &spec.hostname {
            validate_name("hostname", h)?;
        }
        if let Some(c) = spec.cpus {
            let cores = std::thread::available_parallelism().map_or(1, |n| n.get());
            if c > cores as f64 {
                return Err(AgentError::Invalid {
                    what: "cpus",
                    reason: format!(
                        "--cpus {c} is more than the {cores} CPU cores of {}",
                        self.cfg.node
                    ),
                });
            }
        }
        let name = spec.name.clone();
        // The command's first word, for Podman's 127 / 126 after the create.
        let mut cmd0 = String::new();
        let build = |f: &Fresh<'_>| fresh_spec(&spec, f, &mut cmd0);
        let p = self.provision(&spec, Origin::Fresh(Box::new(build)))?;
        let entry = p.entry;
        let cdir = self.state.container(&name);
        let cgroup_path = entry.snapshot().cgroup_path;

        // Stdio through the log shim, then create and start.
        let started = (|| -> Result<i32> {
            let stdio = logs::spawn_logged_stdio(&cdir.log())?;
            let pid = create_and_start(&self.state.runtime(), &name, &cdir.bundle(), stdio)
                .map_err(|e| match e {
                    AgentError::Other(m) => super::command::classify(&name, &cmd0, m),
                    e => e,
                })?;
            crate::cgroup::join_container(&cgroup_path, pid)?;
            Ok(pid)
        })();
        let saved = started.and_then(|pid| {
            let rec = entry.set_running(pid);
            self.save(&rec).map(|_| (pid, rec))
        });
        let (pid, rec) = match saved {
            Ok(x) => x,
            Err(e) => {
                self.discard(&entry);
                return Err(e);
            }
        };
        if let Some((_, _, ip, mac)) = &p.net {
            // Peers may remember this address at an earlier owner's MAC.
            if let Err(e) = crate::net::announce(&p.ns_path, *ip, *mac) {
                tracing::warn!(container = %name, "{e}");
            }
        }
        self.watch(entry, pid, true);
        tracing::info!(container = %name, pid, "started");
        Ok(rec.info())
    }
}

/// A fresh container's OCI spec, with Docker's and Podman's image
/// semantics: the command is Entrypoint + Cmd, `herd run IMAGE ARGS`
/// replaces Cmd, `--entrypoint` replaces Entrypoint and drops the image's
/// Cmd. Sets `cmd0` to the command's first word.
fn fresh_spec(spec: &RunSpec, f: &Fresh<'_>, cmd0: &mut String) -> Result<Spec> {
    let name = &spec.name;
    let cfg = f.image.config.clone().unwrap_or_default();
    let entrypoint = spec
        .entrypoint
        .clone()
        .or_else(|| cfg.entrypoint.clone())
        .unwrap_or_default();
    let cmd = if !spec.cmd.is_empty() {
        spec.cmd.clone()
    } else if spec.entrypoint.is_some() {
        Vec::new()
    } else {
        cfg.cmd.clone().unwrap_or_default()
    };
    let args: Vec<String> = entrypoint.into_iter().chain(cmd).collect();
    let user = spec
        .user
        .clone()
        .or_else(|| cfg.user.clone())
        .filter(|u| !u.is_empty())
        .unwrap_or_else(|| "0".into());
    let ident = spec::resolve_user(f.rootfs, &user)?;
    // Image Env, then the run's (-e and --env-file), later wins; HOME
    // from /etc/passwd unless set (as Podman).
    let mut env = cfg.env.clone();
    env.extend(spec.env.iter().cloned());
    if !env.iter().any(|e| e.starts_with("HOME=")) {
        env.push(format!("HOME={}", ident.home.as_deref().unwrap_or("/")));
    }
    let cwd = spec
        .workdir
        .clone()
        .or_else(|| cfg.working_dir.clone())
        .filter(|w| !w.is_empty())
        .unwrap_or_else(|| "/".into());
    if !cwd.starts_with('/') {
        return Err(AgentError::Invalid {
            what: "working directory",
            reason: format!("{cwd:?} is not an absolute path"),
        });
    }
    let hostname = spec.hostname.clone().unwrap_or_else(|| name.clone());
    spec::write_etc_files(
        f.rootfs,
        &hostname,
        f.ip.map(|ip| ip.to_string()).as_deref(),
    )?;
    // Podman's 127 / 126 before anything starts.
    let path_var = env
        .iter()
        .rev()
        .find_map(|e| e.strip_prefix("PATH="))
        .unwrap_or(super::command::DEFAULT_PATH)
        .to_string();
    *cmd0 = args.first().cloned().unwrap_or_default();
    super::command::check(name, f.rootfs, &cwd, &path_var, cmd0)?;
    spec::build(SpecInput {
        rootfs: f.rootfs,
        args,
        env,
        cwd,
        user: ident,
        hostname,
        netns: f.ns_path,
        cgroup_path: f.cgroup_path.to_string(),
        memory_bytes: spec.memory_bytes,
        cpus: spec.cpus,
        volumes: &spec.volumes,
    })
}

impl Agent {
    /// Podman's `start`: a stopped container's process again, from the
    /// same bundle (filesystem, network namespace, limits kept). A running
    /// one is left as it is; a checkpointed one needs `restore`.
    pub fn start(self: &Arc<Self>, name: &str) -> Result<ContainerInfo> {
        let entry = self.entry(name)?;
        let rec = entry.snapshot();
        match rec.status {
            ContainerStatus::Running => return Ok(rec.info()),
            ContainerStatus::Stopped => {}
            s => {
                return Err(AgentError::Conflict {
                    name: name.to_string(),
                    state: s.to_string(),
                    hint: match s {
                        ContainerStatus::Checkpointed => "restore it instead",
                        _ => "start needs a stopped container",
                    },
                })
            }
        }
        let cdir = self.state.container(name);
        // After an agent restart a stopped container's overlay may be gone.
        let cfs = self.container_fs(&rec)?;
        if !cfs.is_mounted()? {
            cfs.mount()?;
        }
        if rec.netns.is_empty() || !herd_netlink::netns::exists(&rec.netns) {
            return Err(AgentError::Other(format!(
                "container {name}: its network namespace {:?} is gone; remove it and run it again",
                rec.netns
            )));
        }
        // libcontainer's state of the exited process, then a fresh one.
        destroy_runtime(&self.state.runtime(), name);
        let stdio = logs::spawn_logged_stdio(&cdir.log())?;
        let pid = create_and_start(&self.state.runtime(), name, &cdir.bundle(), stdio)?;
        crate::cgroup::join_container(&rec.cgroup_path, pid)?;
        let rec = entry.set_running(pid);
        self.save(&rec)?;
        self.watch(entry, pid, true);
        tracing::info!(container = %name, pid, "started again");
        Ok(rec.info())
    }
}

/// libcontainer create + start; returns the init pid.
/// Create and start a container through libcontainer in a helper process
/// (this binary re-executed as `herd-agent __create ROOT NAME BUNDLE`, the
/// container's stdio as its fds 0-2, a report pipe as fd 3). libcontainer
/// clones without fork handlers; done in the multi-threaded agent, the child
/// could inherit a lock another thread held (an allocator arena, the log
/// writer) and hang forever: seen about 3 times in 1000 creates.
pub(crate) fn create_and_start(
    runtime_root: &Path,
    name: &str,
    bundle: &Path,
    stdio: logs::Stdio3,
) -> Result<i32> {
    let args = [
        std::ffi::OsStr::new(CREATE_ARG),
        runtime_root.as_os_str(),
        std::ffi::OsStr::new(name),
        bundle.as_os_str(),
    ];
    let (report, status) = run_helper(&args, stdio, &format!("create {name}"))?;
    match report.strip_prefix("pid ").map(str::parse::<i32>) {
        Some(Ok(pid)) if status.success() => Ok(pid),
        _ => Err(AgentError::Other(match report.strip_prefix("error ") {
            Some(e) => e.to_string(),
            None => format!("create container {name}: the helper ended ({status}) with {report:?}"),
        })),
    }
}

/// Run this binary as a helper (`args[0]` selects which) with `stdio` as its
/// fds 0-2 and a report pipe as fd 3; returns its report line and status.
pub(crate) fn run_helper(
    args: &[&std::ffi::OsStr],
    stdio: logs::Stdio3,
    what: &str,
) -> Result<(String, std::process::ExitStatus)> {
    use std::io::Read;
    use std::os::fd::AsRawFd;
    use std::os::unix::process::CommandExt;
    let (rep_r, rep_w) =
        nix::unistd::pipe2(nix::fcntl::OFlag::O_CLOEXEC).ctx(|| "report pipe".into())?;
    let mut cmd = std::process::Command::new("/proc/self/exe");
    cmd.args(args)
        .stdin(std::process::Stdio::from(stdio.stdin))
        .stdout(std::process::Stdio::from(stdio.stdout))
        .stderr(std::process::Stdio::from(stdio.stderr));
    let w = rep_w.as_raw_fd();
    // SAFETY: dup2 and fcntl are async-signal-safe; `rep_w` outlives spawn.
    unsafe {
        cmd.pre_exec(move || {
            // dup2 onto itself would keep FD_CLOEXEC: clear it instead.
            let r = if w == 3 {
                libc::fcntl(3, libc::F_SETFD, 0)
            } else {
                libc::dup2(w, 3)
            };
            if r < 0 {
                return Err(std::io::Error::last_os_error());
            }
            Ok(())
        });
    }
    let mut child = cmd.spawn().ctx(|| format!("start the helper to {what}"))?;
    drop(cmd);
    drop(rep_w);
    let mut report = String::new();
    let read = std::fs::File::from(rep_r).read_to_string(&mut report);
    let status = child
        .wait()
        .ctx(|| format!("wait for the helper to {what}"))?;
    read.ctx(|| format!("read the report of the helper to {what}"))?;
    Ok((report.trim().to_string(), status))
}

/// The helper's own stdio, as copies above fd 2: libcontainer dup2s each
/// stdio fd onto 0-2 and then closes it, so handing it 0-2 themselves would
/// close the very fds it set up.
pub(crate) fn helper_stdio() -> Result<logs::Stdio3> {
    let high = |fd: i32| -> Result<OwnedFd> {
        // SAFETY: F_DUPFD_CLOEXEC returns a new fd we own, or -1.
        let n = unsafe { libc::fcntl(fd, libc::F_DUPFD_CLOEXEC, 10) };
        if n < 0 {
            return Err(AgentError::Other(format!(
                "dup stdio fd {fd}: {}",
                std::io::Error::last_os_error()
            )));
        }
        // SAFETY: n is a fresh descriptor.
        Ok(unsafe { OwnedFd::from_raw_fd(n) })
    };
    Ok(logs::Stdio3 {
        stdin: high(0)?,
        stdout: high(1)?,
        stderr: high(2)?,
    })
}

/// Write a helper's report line to fd 3 and return its exit code.
pub(crate) fn helper_report(r: Result<String>) -> i32 {
    use std::io::Write;
    use std::os::fd::FromRawFd;
    // SAFETY: fd 3 was set up by run_helper; nothing else owns it.
    let mut report = unsafe { std::fs::File::from_raw_fd(3) };
    let (line, code) = match r {
        Ok(l) => (format!("{l}\n"), 0),
        Err(e) => (format!("error {e}\n"), 1),
    };
    let _ = report.write_all(line.as_bytes());
    code
}

/// The argument that makes this binary the create helper.
pub const CREATE_ARG: &str = "__create";

/// Body of the create helper: `ROOT NAME BUNDLE`; its stdio are the
/// container's; writes `pid <n>` or `error <text>` to fd 3; exit code 0/1.
pub fn create_main(args: &[std::ffi::OsString]) -> i32 {
    helper_report((|| -> Result<String> {
        let [root, name, bundle] = args else {
            return Err(AgentError::Other("usage: __create ROOT NAME BUNDLE".into()));
        };
        let name = name.to_string_lossy().into_owned();
        let pid = create_in_process(Path::new(root), &name, Path::new(bundle), helper_stdio()?)?;
        Ok(format!("pid {pid}"))
    })())
}

fn create_in_process(
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
