//! `exec`: a new process in a running container's namespaces and cgroup
//! (libcontainer's tenant builder), output collected through pipes.

use std::collections::HashMap;
use std::io::Read;
use std::os::fd::OwnedFd;

use herd_wire::{ContainerStatus, ExecOutput};
use libcontainer::container::builder::ContainerBuilder;
use libcontainer::syscall::syscall::SyscallType;
use nix::sys::wait::{waitpid, WaitStatus};

use super::Agent;
use crate::error::{AgentError, IoContext, Result};

pub struct ExecRequest {
    pub cmd: Vec<String>,
    pub env: Vec<String>,
    /// `-u USER[:GROUP]`; default the container's user.
    pub user: Option<String>,
    /// `-w DIR`; default the container's working directory.
    pub workdir: Option<String>,
}

impl Agent {
    pub fn exec(&self, name: &str, req: ExecRequest) -> Result<ExecOutput> {
        let entry = self.entry(name)?;
        if entry.snapshot().status != ContainerStatus::Running {
            return Err(AgentError::Conflict {
                name: name.to_string(),
                state: entry.snapshot().status.to_string(),
                hint: "exec needs a running container",
            });
        }
        if req.cmd.is_empty() {
            return Err(AgentError::Invalid {
                what: "command",
                reason: "exec needs a command".into(),
            });
        }
        // The container's environment, working directory and user, as Podman's exec
        // (from its OCI spec: the image's or `run -e/-w/-u`).
        let bundle = self.state.container(name).bundle().join("config.json");
        let oci = oci_spec::runtime::Spec::load(&bundle)
            .map_err(|e| AgentError::Other(format!("read {}: {e}", bundle.display())))?;
        let mut env = HashMap::new();
        env.insert("PATH".to_string(), super::command::DEFAULT_PATH.to_string());
        // The container's environment (image Env, `run -e`/`--env-file`,
        // HOME), then exec's own -e over it.
        let run_env = oci.process().as_ref().and_then(|p| p.env().clone());
        for e in run_env.iter().flatten() {
            if let Some((k, v)) = e.split_once('=') {
                env.insert(k.to_string(), v.to_string());
            }
        }
        for e in &req.env {
            let (k, v) = e.split_once('=').ok_or_else(|| AgentError::Invalid {
                what: "environment variable",
                reason: format!("{e:?} is not KEY=VALUE"),
            })?;
            env.insert(k.to_string(), v.to_string());
        }
        let (cwd, uid, gid, gids) = match oci.process() {
            Some(p) => (
                p.cwd().to_string_lossy().into_owned(),
                p.user().uid(),
                p.user().gid(),
                p.user().additional_gids().clone().unwrap_or_default(),
            ),
            None => ("/".to_string(), 0, 0, Vec::new()),
        };
        // The container's root as its processes see it (its mounts too).
        let pid = entry.snapshot().pid.ok_or_else(|| {
            AgentError::Other(format!("container {name} is running without a pid"))
        })?;
        let root = std::path::PathBuf::from(format!("/proc/{pid}/root"));
        let (uid, gid, gids) = match &req.user {
            Some(u) => {
                let id = crate::spec::resolve_user(&root, u)?;
                (id.uid, id.gid, id.additional_gids)
            }
            None => (uid, gid, gids),
        };
        let cwd = match &req.workdir {
            Some(w) if !w.starts_with('/') => {
                return Err(AgentError::Invalid {
                    what: "working directory",
                    reason: format!("{w:?} is not an absolute path"),
                })
            }
            Some(w) => w.clone(),
            None => cwd,
        };
        let path_var = env
            .get("PATH")
            .cloned()
            .unwrap_or_else(|| super::command::DEFAULT_PATH.to_string());
        super::command::check(name, &root, &cwd, &path_var, &req.cmd[0])?;
        let gids: Vec<String> = gids.iter().map(u32::to_string).collect();
        let (in_r, in_w) =
            nix::unistd::pipe2(nix::fcntl::OFlag::O_CLOEXEC).ctx(|| "stdin pipe".into())?;
        drop(in_w);
        let (out_r, out_w) =
            nix::unistd::pipe2(nix::fcntl::OFlag::O_CLOEXEC).ctx(|| "stdout pipe".into())?;
        let (err_r, err_w) =
            nix::unistd::pipe2(nix::fcntl::OFlag::O_CLOEXEC).ctx(|| "stderr pipe".into())?;
        // As for create: libcontainer's clone belongs in a fresh
        // single-threaded process (see run::create_and_start).
        let root = self.state.runtime().to_path_buf();
        let mut args: Vec<std::ffi::OsString> = vec![
            EXEC_ARG.into(),
            root.into_os_string(),
            name.into(),
            cwd.into(),
            format!("{uid}:{gid}:{}", gids.join(",")).into(),
            env.len().to_string().into(),
        ];
        args.extend(env.iter().map(|(k, v)| format!("{k}={v}").into()));
        args.extend(req.cmd.iter().map(Into::into));
        let argv: Vec<&std::ffi::OsStr> = args.iter().map(|a| a.as_os_str()).collect();
        let stdio = crate::logs::Stdio3 {
            stdin: in_r,
            stdout: out_w,
            stderr: err_w,
        };
        let err_thread = std::thread::spawn(move || read_all(err_r));
        let out_thread = std::thread::spawn(move || read_all(out_r));
        let ran = super::run::run_helper(&argv, stdio, &format!("exec in {name}"));
        let stdout = out_thread.join().unwrap_or_default();
        let stderr = err_thread.join().unwrap_or_default();
        let (report, status) = ran?;
        let exit_code = match report.strip_prefix("exit ").map(str::parse::<i32>) {
            Some(Ok(c)) if status.success() => c,
            _ => {
                return Err(match report.strip_prefix("error ") {
                    Some(e) => super::command::classify(name, &req.cmd[0], e.to_string()),
                    None => AgentError::Other(format!(
                        "exec in {name}: the helper ended ({status}) with {report:?}"
                    )),
                })
            }
        };
        Ok(ExecOutput {
            exit_code,
            stdout,
            stderr,
        })
    }
}

/// The argument that makes this binary the exec helper:
/// `__exec ROOT NAME CWD UID:GID:GIDS N KEY=VALUE*N CMD...`; reports `exit <code>`.
pub const EXEC_ARG: &str = "__exec";

/// Body of the exec helper (its stdio are the exec'd process's).
pub fn exec_main(args: &[std::ffi::OsString]) -> i32 {
    let r = (|| -> Result<String> {
        let usage = || {
            AgentError::Other(
                "usage: __exec ROOT NAME CWD UID:GID:GIDS N KEY=VALUE... CMD...".into(),
            )
        };
        let [root, name, cwd, ids, n, rest @ ..] = args else {
            return Err(usage());
        };
        let ids = ids.to_string_lossy();
        let mut parts = ids.splitn(3, ':');
        let mut id = || parts.next().and_then(|x| x.parse::<u32>().ok());
        let (uid, gid) = (id(), id());
        let gids: Vec<u32> = ids
            .splitn(3, ':')
            .nth(2)
            .unwrap_or("")
            .split(',')
            .filter_map(|g| g.parse().ok())
            .collect();
        let n: usize = n.to_string_lossy().parse().map_err(|_| usage())?;
        if rest.len() <= n {
            return Err(usage());
        }
        let s = |a: &std::ffi::OsString| a.to_string_lossy().into_owned();
        let env: HashMap<String, String> = rest[..n]
            .iter()
            .filter_map(|kv| {
                s(kv)
                    .split_once('=')
                    .map(|(k, v)| (k.to_string(), v.to_string()))
            })
            .collect();
        let cmd: Vec<String> = rest[n..].iter().map(s).collect();
        let name = s(name);
        let stdio = super::run::helper_stdio()?;
        let pid = ContainerBuilder::new(name.clone(), SyscallType::Linux)
            .with_root_path(std::path::Path::new(root))
            .ctx(|| "runtime root".into())?
            .with_stdin(stdio.stdin)
            .with_stdout(stdio.stdout)
            .with_stderr(stdio.stderr)
            .as_tenant()
            .with_container_args(cmd)
            .with_env(env)
            .with_cwd(Some(std::path::PathBuf::from(cwd)))
            .with_user(uid)
            .with_group(gid)
            .with_additional_gids(gids)
            .with_detach(true)
            .build()
            .ctx(|| format!("exec in {name}"))?;
        let code = match waitpid(pid, None) {
            Ok(WaitStatus::Exited(_, c)) => c,
            Ok(WaitStatus::Signaled(_, sig, _)) => 128 + sig as i32,
            Ok(other) => return Err(AgentError::Other(format!("exec: unexpected {other:?}"))),
            Err(e) => return Err(e).ctx(|| format!("wait for exec pid {pid}")),
        };
        Ok(format!("exit {code}"))
    })();
    // Reap whatever libcontainer left (a tenant that failed to exec): an
    // unreaped process of the container's pid namespace, re-parented to the
    // agent, would keep the namespace, and so the container, from dying.
    while waitpid(None, None).is_ok() {}
    super::run::helper_report(r)
}

fn read_all(fd: OwnedFd) -> Vec<u8> {
    let mut f = std::fs::File::from(fd);
    let mut v = Vec::new();
    let _ = f.read_to_end(&mut v);
    v
}
