//! What the agent keeps on disk, so a restarted agent finds its containers.
//!
//! ```text
//! <state-dir>/
//!   images/                  herd-overlay image store
//!   runtime/<name>/          libcontainer's own state (state.json, youki config)
//!   containers/<name>/
//!     record.json            ContainerRecord (written atomically)
//!     bundle/config.json     the OCI runtime spec the container was created from
//!     fs/{upper,work,merged} overlay dirs
//!     log                    "<unix ns> <o|e> <line>" per line, written by the log shim
//! ```

use std::fs;
use std::io::Write;
use std::path::{Path, PathBuf};

use herd_wire::{ContainerInfo, ContainerStatus, RunSpec};
use serde::{Deserialize, Serialize};

use crate::error::{IoContext, Result};

#[derive(Debug, Clone)]
pub struct StateDir {
    root: PathBuf,
}

impl StateDir {
    pub fn open(root: &Path) -> Result<Self> {
        for sub in ["images", "runtime", "containers"] {
            fs::create_dir_all(root.join(sub))
                .ctx(|| format!("cannot create state dir {}", root.join(sub).display()))?;
        }
        let root = fs::canonicalize(root).ctx(|| format!("state dir {}", root.display()))?;
        // Root only (also for a state dir made by an older version): image
        // layers and containers' upper/merged dirs below it keep setuid files
        // and device nodes (see herd-overlay's crate docs).
        use std::os::unix::fs::PermissionsExt;
        fs::set_permissions(&root, fs::Permissions::from_mode(0o700))
            .ctx(|| format!("chmod 0700 {}", root.display()))?;
        Ok(StateDir { root })
    }
    pub fn root(&self) -> &Path {
        &self.root
    }
    pub fn images(&self) -> PathBuf {
        self.root.join("images")
    }
    pub fn runtime(&self) -> PathBuf {
        self.root.join("runtime")
    }
    pub fn containers(&self) -> PathBuf {
        self.root.join("containers")
    }
    pub fn container(&self, name: &str) -> ContainerDir {
        ContainerDir {
            dir: self.containers().join(name),
        }
    }
}

#[derive(Debug, Clone)]
pub struct ContainerDir {
    pub dir: PathBuf,
}

impl ContainerDir {
    pub fn record(&self) -> PathBuf {
        self.dir.join("record.json")
    }
    pub fn bundle(&self) -> PathBuf {
        self.dir.join("bundle")
    }
    pub fn fs(&self) -> PathBuf {
        self.dir.join("fs")
    }
    pub fn log(&self) -> PathBuf {
        self.dir.join("log")
    }
    /// CRIU images of the last checkpoint (and our metadata beside them).
    pub fn checkpoint(&self) -> PathBuf {
        self.dir.join("checkpoint")
    }
}

/// The agent's record of one container.
#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct ContainerRecord {
    pub spec: RunSpec,
    pub node: String,
    pub created_ns: u64,
    pub status: ContainerStatus,
    pub pid: Option<i32>,
    /// `starttime` of the pid (field 22 of /proc/PID/stat): tells a live
    /// container from a recycled pid when an agent re-adopts.
    pub pid_start: Option<u64>,
    pub exit_code: Option<i32>,
    /// Name of the container's network namespace under /run/netns.
    pub netns: String,
    /// cgroupsPath given to the runtime.
    pub cgroup_path: String,
    /// Image layers (digests, bottom first) the overlay was built from.
    pub layers: Vec<String>,
    /// Counters at the dump this container was restored from: its new
    /// cgroup counts from zero, Prometheus sees base + cgroup.
    #[serde(default)]
    pub counter_base: Option<herd_wire::monitor::ContainerCounters>,
}

impl ContainerRecord {
    pub fn info(&self) -> ContainerInfo {
        ContainerInfo {
            name: self.spec.name.clone(),
            node: self.node.clone(),
            image: self.spec.image.clone(),
            cmd: self.spec.cmd.clone(),
            status: self.status,
            pid: self.pid,
            exit_code: self.exit_code,
            created_ns: self.created_ns,
            memory_bytes: self.spec.memory_bytes,
            cpus: self.spec.cpus,
            hostname: self
                .spec
                .hostname
                .clone()
                .unwrap_or_else(|| self.spec.name.clone()),
            network: self.spec.net.as_ref().map(|n| n.network.clone()),
            ip: self.spec.net.as_ref().map(|n| n.ip.clone()),
            mac: self.spec.net.as_ref().map(|n| n.mac.clone()),
            migration: None,
            volumes: self.spec.volumes.clone(),
        }
    }

    pub fn load(path: &Path) -> Result<Self> {
        let data = fs::read(path).ctx(|| format!("cannot read {}", path.display()))?;
        serde_json::from_slice(&data).map_err(|e| {
            crate::error::AgentError::Other(format!(
                "corrupt container record {}: {e}",
                path.display()
            ))
        })
    }

    /// Write atomically: a crash leaves the old or the new record, never half of one.
    pub fn save(&self, path: &Path) -> Result<()> {
        let tmp = path.with_extension("json.tmp");
        let data = serde_json::to_vec_pretty(self)
            .map_err(|e| crate::error::AgentError::Other(format!("encode record: {e}")))?;
        let mut f = fs::File::create(&tmp).ctx(|| format!("cannot write {}", tmp.display()))?;
        f.write_all(&data)
            .and_then(|_| f.sync_all())
            .ctx(|| format!("cannot write {}", tmp.display()))?;
        fs::rename(&tmp, path).ctx(|| format!("cannot rename to {}", path.display()))
    }
}

/// Start time of a process (clock ticks since boot), or None if it is gone.
pub fn pid_start_time(pid: i32) -> Option<u64> {
    let stat = fs::read_to_string(format!("/proc/{pid}/stat")).ok()?;
    // comm may contain spaces and parentheses: fields start after the last ')'.
    let rest = &stat[stat.rfind(')')? + 2..];
    // rest starts at field 3 (state); starttime is field 22.
    let f: Vec<&str> = rest.split_whitespace().collect();
    let state = f.first()?;
    if *state == "Z" || *state == "X" {
        return None;
    }
    f.get(19)?.parse().ok()
}

pub fn now_ns() -> u64 {
    std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map(|d| d.as_nanos() as u64)
        .unwrap_or(0)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn start_time_of_self_is_stable_and_of_a_missing_pid_is_none() {
        let me = std::process::id() as i32;
        let a = pid_start_time(me).expect("own start time");
        assert_eq!(Some(a), pid_start_time(me));
        assert_eq!(pid_start_time(i32::MAX), None);
    }
}
