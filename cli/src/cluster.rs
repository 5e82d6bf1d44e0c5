//! The cluster file: which agents exist, where, and the user's certificate.
//! `herd lab up` writes one; every other command reads it without flags.
//!
//! Lookup: `--cluster FILE` or `$HERD_CLUSTER`; else the lab named by
//! `--lab`/`$HERD_LAB` (default `herd`) under `$HERD_LAB_ROOT`
//! (default `/var/lib/herd/labs`): `<root>/<lab>/cluster.json`.

use std::net::SocketAddr;
use std::path::{Path, PathBuf};

use anyhow::{bail, Context, Result};
use serde::{Deserialize, Serialize};

#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct Cluster {
    pub name: String,
    /// The lab's directory (state of every node, certificates, logs).
    pub dir: PathBuf,
    pub tls: Tls,
    pub nodes: Vec<Node>,
    /// Present for labs made by `herd lab up`.
    pub lab: Option<LabNet>,
    /// Present for labs made by `herd lab up --vm`: the guests behind the nodes.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub vm: Option<crate::lab_vm::VmLab>,
}

#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct Tls {
    pub ca: PathBuf,
    pub cert: PathBuf,
    pub key: PathBuf,
}

#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct Node {
    pub name: String,
    pub addr: SocketAddr,
    /// Lab only: the host's netns, state dir and agent process.
    pub netns: Option<String>,
    pub state_dir: Option<PathBuf>,
    pub pid: Option<i32>,
    pub pid_start: Option<u64>,
    /// Lab only: the agent's `--cpus`, if any.
    #[serde(default)]
    pub cpus: Option<f64>,
    /// Lab only: the agent's `--disk-iops` and `--disk-bps`, if any.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub disk_iops: Option<u64>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub disk_bps: Option<u64>,
}

impl Node {
    /// The lab flags this node's agent runs with (`--cpus=..`, `--disk-iops=..`).
    pub fn capacity_args(&self) -> Vec<String> {
        let mut v = Vec::new();
        v.extend(self.cpus.map(|c| format!("--cpus={c}")));
        v.extend(self.disk_iops.map(|c| format!("--disk-iops={c}")));
        v.extend(self.disk_bps.map(|c| format!("--disk-bps={c}")));
        v
    }

    /// `, 1 CPUs, 200 disk IOPS` for `lab up`'s listing; empty when unlimited.
    pub fn capacity_note(&self) -> String {
        let mut s = String::new();
        if let Some(c) = self.cpus {
            s.push_str(&format!(", {c} CPUs"));
        }
        if let Some(n) = self.disk_iops {
            s.push_str(&format!(", {n} disk IOPS"));
        }
        if let Some(n) = self.disk_bps {
            s.push_str(&format!(", {} disk/s", crate::ui::human_bytes(n)));
        }
        s
    }
}

#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct LabNet {
    pub bridge: String,
    /// Address of the root namespace on the bridge, with prefix.
    pub bridge_addr: String,
    pub subnet_index: u8,
    pub cgroup_parent: String,
}

pub fn lab_root() -> PathBuf {
    std::env::var_os("HERD_LAB_ROOT")
        .map(PathBuf::from)
        .unwrap_or_else(|| PathBuf::from("/var/lib/herd/labs"))
}

pub fn lab_dir(lab: &str) -> PathBuf {
    lab_root().join(lab)
}

pub fn cluster_file(explicit: Option<&Path>, lab: &str) -> PathBuf {
    if let Some(p) = explicit {
        return p.to_path_buf();
    }
    if let Some(p) = std::env::var_os("HERD_CLUSTER") {
        return PathBuf::from(p);
    }
    lab_dir(lab).join("cluster.json")
}

impl Cluster {
    pub fn load(path: &Path) -> Result<Self> {
        let data = match std::fs::read(path) {
            Ok(d) => d,
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => bail!(
                "no cluster at {} (start one with `herd lab up`, or pass --cluster FILE)",
                path.display()
            ),
            Err(e) => return Err(e).with_context(|| format!("cannot read {}", path.display())),
        };
        serde_json::from_slice(&data)
            .with_context(|| format!("corrupt cluster file {}", path.display()))
    }

    pub fn save(&self, path: &Path) -> Result<()> {
        let tmp = path.with_extension("json.tmp");
        std::fs::write(&tmp, serde_json::to_vec_pretty(self)?)
            .with_context(|| format!("cannot write {}", tmp.display()))?;
        std::fs::rename(&tmp, path).with_context(|| format!("cannot write {}", path.display()))
    }

    pub fn node(&self, name: &str) -> Result<&Node> {
        self.nodes.iter().find(|n| n.name == name).with_context(|| {
            format!(
                "no node named {name} in cluster {} (nodes: {})",
                self.name,
                self.nodes
                    .iter()
                    .map(|n| n.name.as_str())
                    .collect::<Vec<_>>()
                    .join(", ")
            )
        })
    }

    pub fn tls_files(&self) -> herd_quic::pki::TlsFiles {
        herd_quic::pki::TlsFiles {
            ca: self.tls.ca.clone(),
            cert: self.tls.cert.clone(),
            key: self.tls.key.clone(),
        }
    }
}
