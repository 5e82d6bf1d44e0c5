//! `stop` (SIGTERM, then SIGKILL after a timeout, as podman does) and `kill`.

use std::time::Duration;

use herd_wire::{ContainerInfo, ContainerStatus};
use nix::sys::signal::{kill, Signal};
use nix::unistd::Pid;

use super::Agent;
use crate::error::{AgentError, IoContext, Result};

impl Agent {
    pub fn stop(&self, name: &str, timeout: Duration) -> Result<ContainerInfo> {
        let entry = self.entry(name)?;
        let rec = entry.snapshot();
        if matches!(
            rec.status,
            ContainerStatus::Stopped | ContainerStatus::Checkpointed
        ) {
            return Ok(rec.info());
        }
        if let Some(pid) = rec.pid {
            signal(pid, Signal::SIGTERM)?;
            if !entry.wait_stopped(timeout) {
                tracing::info!(container = name, "no exit after SIGTERM: SIGKILL");
                signal(pid, Signal::SIGKILL)?;
                if !entry.wait_stopped(Duration::from_secs(10)) {
                    return Err(AgentError::Other(format!(
                        "container {name} (pid {pid}) did not exit after SIGKILL"
                    )));
                }
            }
        }
        Ok(entry.snapshot().info())
    }

    pub fn kill(&self, name: &str, sig: i32) -> Result<()> {
        let entry = self.entry(name)?;
        let rec = entry.snapshot();
        let sig = Signal::try_from(sig).map_err(|_| AgentError::Invalid {
            what: "signal",
            reason: format!("{sig} is not a signal number"),
        })?;
        match (rec.status, rec.pid) {
            (ContainerStatus::Running, Some(pid)) => signal(pid, sig),
            _ => Err(AgentError::Conflict {
                name: name.to_string(),
                state: rec.status.to_string(),
                hint: "only a running container can be signalled",
            }),
        }
    }
}

fn signal(pid: i32, sig: Signal) -> Result<()> {
    match kill(Pid::from_raw(pid), sig) {
        Ok(()) | Err(nix::Error::ESRCH) => Ok(()),
        Err(e) => Err(e).ctx(|| format!("send {sig} to pid {pid}")),
    }
}
