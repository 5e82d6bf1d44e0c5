//! `herd node add|ls|rm`: a cluster file for agents on real hosts.
//!
//! The file is the one `herd lab up` writes (see cluster.rs), without the
//! lab's parts:
//!
//! ```json
//! {
//!   "name": "prod",
//!   "dir": "/etc/herd",
//!   "tls": { "ca": "/etc/herd/ca.pem", "cert": "/etc/herd/alice.pem", "key": "/etc/herd/alice.key" },
//!   "nodes": [
//!     { "name": "host1", "addr": "192.0.2.10:7700", "netns": null, "state_dir": null,
//!       "pid": null, "pid_start": null }
//!   ],
//!   "lab": null
//! }
//! ```
//!
//! `tls` is the user's certificate (role `user`) and the cluster CA; each
//! node is a name (the CN of its agent's certificate) and the QUIC address
//! its agent listens on. `herd --cluster FILE ...` (or `HERD_CLUSTER=FILE`)
//! makes every command use it.

use std::net::{IpAddr, SocketAddr};
use std::path::{Path, PathBuf};
use std::time::Duration;

use anyhow::{bail, Context, Result};
use herd_quic::pki::{self, Role};
use herd_wire::{Request, Response};

use crate::client::Client;
use crate::cluster::{Cluster, Node, Tls};

/// The user's side of a new cluster file.
pub struct UserTls {
    pub ca: Option<PathBuf>,
    pub cert: Option<PathBuf>,
    pub key: Option<PathBuf>,
    pub name: Option<String>,
}

fn parse_addr(addr: &str) -> Result<SocketAddr> {
    if let Ok(a) = addr.parse::<SocketAddr>() {
        return Ok(a);
    }
    if let Ok(ip) = addr.parse::<IpAddr>() {
        return Ok(SocketAddr::new(ip, crate::lab::AGENT_PORT));
    }
    bail!(
        "{addr:?} is not an IP address or IP:port (the agent's --listen address; port {} by default)",
        crate::lab::AGENT_PORT
    )
}

fn absolute(p: &Path) -> Result<PathBuf> {
    p.canonicalize()
        .with_context(|| format!("cannot find {}", p.display()))
}

/// Add a node; creates the file (with the user's certificate) on first use.
pub fn add(
    file: &Path,
    name: &str,
    addr: &str,
    node_cert: Option<&Path>,
    user: UserTls,
) -> Result<Cluster> {
    if name.is_empty()
        || name.len() > pki::MAX_NAME_LEN
        || !name
            .bytes()
            .all(|b| b.is_ascii_alphanumeric() || b == b'-' || b == b'_' || b == b'.')
    {
        bail!("node name {name:?}: 1-63 letters, digits, '-', '_' or '.'");
    }
    let addr = parse_addr(addr)?;
    let mut cl = if file.exists() {
        if user.ca.is_some() || user.cert.is_some() || user.key.is_some() {
            bail!(
                "{} exists: --ca/--user-cert/--user-key only go with the first `node add`",
                file.display()
            );
        }
        Cluster::load(file)?
    } else {
        let (Some(ca), Some(cert), Some(key)) = (user.ca, user.cert, user.key) else {
            bail!(
                "{} does not exist yet: the first `herd node add` needs --ca CA.pem --user-cert USER.pem --user-key USER.key (from `herd ca issue --role user`)",
                file.display()
            );
        };
        let tls = pki::TlsFiles {
            ca: absolute(&ca)?,
            cert: absolute(&cert)?,
            key: absolute(&key)?,
        };
        tls.load().context("the user's certificate files")?;
        let id = tls.identity()?;
        if id.role != Role::User {
            bail!(
                "{} is a {} certificate ({id}): the CLI needs a user one (`herd ca issue --role user NAME`)",
                tls.cert.display(),
                id.role
            );
        }
        let dir = file
            .parent()
            .filter(|p| !p.as_os_str().is_empty())
            .unwrap_or(Path::new("."));
        std::fs::create_dir_all(dir).with_context(|| format!("create {}", dir.display()))?;
        Cluster {
            name: user.name.unwrap_or_else(|| {
                file.file_stem()
                    .map(|s| s.to_string_lossy().into_owned())
                    .unwrap_or_else(|| "herd".into())
            }),
            dir: absolute(dir)?,
            tls: Tls {
                ca: tls.ca,
                cert: tls.cert,
                key: tls.key,
            },
            nodes: Vec::new(),
            lab: None,
            vm: None,
        }
    };
    if cl.lab.is_some() {
        bail!(
            "{} is a lab's file (`herd lab up` manages its nodes)",
            file.display()
        );
    }
    if let Some(n) = cl.nodes.iter().find(|n| n.name == name || n.addr == addr) {
        bail!(
            "the cluster already has node {} at {} (remove it first: herd node rm {})",
            n.name,
            n.addr,
            n.name
        );
    }
    if let Some(cert) = node_cert {
        // The agent's certificate must name this node and be a node's; its
        // CA is checked by the TLS handshake on every call.
        let files = pki::TlsFiles {
            ca: cl.tls.ca.clone(),
            cert: cert.to_path_buf(),
            key: PathBuf::new(),
        };
        let id = files.identity()?;
        if id.role != Role::Node || id.name != name {
            bail!(
                "{} is {id}, not node:{name}: the agent at {addr} would be refused",
                cert.display()
            );
        }
    }
    cl.nodes.push(Node {
        name: name.to_string(),
        addr,
        netns: None,
        state_dir: None,
        pid: None,
        pid_start: None,
        cpus: None,
        disk_iops: None,
        disk_bps: None,
    });
    cl.save(file)?;
    Ok(cl)
}

pub fn rm(file: &Path, name: &str) -> Result<Cluster> {
    let mut cl = Cluster::load(file)?;
    if cl.lab.is_some() {
        bail!(
            "{} is a lab's file (`herd lab up` manages its nodes)",
            file.display()
        );
    }
    let before = cl.nodes.len();
    cl.nodes.retain(|n| n.name != name);
    if cl.nodes.len() == before {
        cl.node(name)?;
    }
    cl.save(file)?;
    Ok(cl)
}

/// Each node and whether its agent answers (within 5 s).
pub async fn ls(file: &Path) -> Result<Vec<(Node, std::result::Result<String, String>)>> {
    let cl = Cluster::load(file)?;
    let mut client = Client::new(cl.clone())?;
    let mut out = Vec::new();
    for n in cl.nodes.clone() {
        let r =
            match tokio::time::timeout(Duration::from_secs(5), client.call(&n.name, Request::List))
                .await
            {
                Ok(Ok(Response::Containers(cs))) => Ok(format!("up, {} container(s)", cs.len())),
                Ok(Ok(r)) => Err(format!("unexpected answer {r:?}")),
                Ok(Err(e)) => Err(format!("{e:#}")),
                Err(_) => Err("no answer in 5 s".to_string()),
            };
        out.push((n, r));
    }
    Ok(out)
}
