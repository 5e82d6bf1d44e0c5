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
        let mut env = HashMap::new();
        env.insert(
            "PATH".to_string(),
            "/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin".to_string(),
        );
        for e in &req.env {
            let (k, v) = e.split_once('=').ok_or_else(|| AgentError::Invalid {
                what: "environment variable",
                reason: format!("{e:?} is not KEY=VALUE"),
            })?;
            env.insert(k.to_string(), v.to_string());
        }
        let (in_r, in_w) =
            nix::unistd::pipe2(nix::fcntl::OFlag::O_CLOEXEC).ctx(|| "stdin pipe".into())?;
        drop(in_w);
        let (out_r, out_w) =
            nix::unistd::pipe2(nix::fcntl::OFlag::O_CLOEXEC).ctx(|| "stdout pipe".into())?;
        let (err_r, err_w) =
            nix::unistd::pipe2(nix::fcntl::OFlag::O_CLOEXEC).ctx(|| "stderr pipe".into())?;
        let pid = ContainerBuilder::new(name.to_string(), SyscallType::Linux)
            .with_root_path(self.state.runtime())
            .ctx(|| "runtime root".into())?
            .with_stdin(in_r)
            .with_stdout(out_w)
            .with_stderr(err_w)
            .as_tenant()
            .with_container_args(req.cmd.clone())
            .with_env(env)
            .with_detach(true)
            .build()
            .ctx(|| format!("exec in {name}"))?;
        let err_thread = std::thread::spawn(move || read_all(err_r));
        let stdout = read_all(out_r);
        let stderr = err_thread.join().unwrap_or_default();
        let exit_code = match waitpid(pid, None) {
            Ok(WaitStatus::Exited(_, c)) => c,
            Ok(WaitStatus::Signaled(_, s, _)) => 128 + s as i32,
            Ok(other) => return Err(AgentError::Other(format!("exec: unexpected {other:?}"))),
            Err(e) => return Err(e).ctx(|| format!("wait for exec pid {pid}")),
        };
        Ok(ExecOutput {
            exit_code,
            stdout,
            stderr,
        })
    }
}

fn read_all(fd: OwnedFd) -> Vec<u8> {
    let mut f = std::fs::File::from(fd);
    let mut v = Vec::new();
    let _ = f.read_to_end(&mut v);
    v
}
