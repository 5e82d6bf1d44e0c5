//! Talking to agents: one QUIC connection per node, one stream per request.

use std::collections::HashMap;

use anyhow::{anyhow, bail, Context, Result};
use herd_wire::{ContainerInfo, Envelope, ErrorKind, Request, Response, WireError};

use crate::cluster::{Cluster, Node};

pub struct Client {
    pub cluster: Cluster,
    ep: quinn::Endpoint,
    conns: HashMap<String, quinn::Connection>,
}

/// An agent's error answer, kept typed so callers can test its kind.
#[derive(Debug, thiserror::Error)]
#[error("{node}: {err}")]
pub struct AgentFailure {
    pub node: String,
    pub err: WireError,
}

impl Client {
    pub fn new(cluster: Cluster) -> Result<Self> {
        let ep = herd_quic::endpoint::client_for(
            &cluster.tls_files(),
            cluster
                .nodes
                .first()
                .map(|n| n.addr)
                .unwrap_or_else(|| ([0, 0, 0, 0], 0).into()),
        )
        .context("cannot set up the QUIC client (certificates)")?;
        Ok(Client {
            cluster,
            ep,
            conns: HashMap::new(),
        })
    }

    pub async fn conn(&mut self, node: &str) -> Result<quinn::Connection> {
        if let Some(c) = self.conns.get(node) {
            if c.close_reason().is_none() {
                return Ok(c.clone());
            }
        }
        let n: Node = self.cluster.node(node)?.clone();
        let c = herd_quic::endpoint::connect(&self.ep, n.addr, &n.name)
            .await
            .with_context(|| format!("agent {} at {} is unreachable", n.name, n.addr))?;
        self.conns.insert(node.to_string(), c.clone());
        Ok(c)
    }

    /// One request, one answer; an agent's error answer becomes an `AgentFailure`.
    pub async fn call(&mut self, node: &str, req: Request) -> Result<Response> {
        let c = self.conn(node).await?;
        let resp: Response = herd_quic::rpc::call(&c, &Envelope::new(req))
            .await
            .with_context(|| format!("request to agent {node} failed"))?;
        match resp {
            Response::Error(err) => Err(AgentFailure {
                node: node.to_string(),
                err,
            }
            .into()),
            r => Ok(r),
        }
    }

    /// Open a stream for a request whose answer is a sequence.
    pub async fn stream(&mut self, node: &str, req: Request) -> Result<quinn::RecvStream> {
        let c = self.conn(node).await?;
        let (mut send, recv) = c.open_bi().await.context("open stream")?;
        herd_quic::rpc::send_msg(&mut send, &Envelope::new(req)).await?;
        let _ = send.finish();
        Ok(recv)
    }

    pub fn node_names(&self) -> Vec<String> {
        self.cluster.nodes.iter().map(|n| n.name.clone()).collect()
    }

    /// Every node that has container `name`, with what it says of it
    /// (asks every node); `unreachable` lists the nodes that did not answer.
    pub async fn find_all(&mut self, name: &str) -> Found {
        let mut f = Found::default();
        for node in self.node_names() {
            let req = Request::Inspect {
                name: name.to_string(),
            };
            match self.call(&node, req).await {
                Ok(Response::Container(c)) => f.on.push((node, c)),
                Ok(r) => f.unreachable.push(format!("{node}: {}", unexpected(r))),
                Err(e) => match e.downcast_ref::<AgentFailure>() {
                    Some(x) if x.err.kind == ErrorKind::NotFound => {}
                    _ => f.unreachable.push(format!("{e:#}")),
                },
            }
        }
        f
    }

    /// Which node holds container `name` (asks every node). A node where
    /// it runs wins over one that keeps a frozen copy during a migration;
    /// two nodes with a container of that name (two `run`s that raced) is
    /// an error naming both, never a silent pick of the first.
    pub async fn locate(&mut self, name: &str) -> Result<String> {
        let f = self.find_all(name).await;
        let (held, settled): (Vec<_>, Vec<_>) =
            f.on.iter()
                .partition(|(_, c)| c.status == herd_wire::ContainerStatus::Migrating);
        match settled.as_slice() {
            [(n, _)] => return Ok(n.clone()),
            [] => {}
            many => {
                let nodes: Vec<&str> = many.iter().map(|(n, _)| n.as_str()).collect();
                bail!(
                    "container name {name} exists on {} nodes ({}); say which with --node",
                    nodes.len(),
                    nodes.join(", ")
                )
            }
        }
        if let Some((n, _)) = held.first() {
            return Ok(n.clone());
        }
        if f.unreachable.is_empty() {
            bail!("no such container: {name}")
        }
        Err(anyhow!(
            "no such container on the reachable nodes: {name} (also: {})",
            f.unreachable.join("; ")
        ))
    }

    /// The containers of `node`, or of every node, as `herd ps` shows them:
    /// one entry per name during a move (see [`one_per_name`]). The second
    /// list holds the nodes that did not answer, with why.
    pub async fn list(&mut self, node: Option<&str>) -> Result<(Vec<ContainerInfo>, Vec<String>)> {
        let nodes = match node {
            Some(n) => vec![n.to_string()],
            None => self.node_names(),
        };
        let mut all = Vec::new();
        let mut failed = Vec::new();
        for n in nodes {
            match self.call(&n, Request::List).await {
                Ok(Response::Containers(v)) => all.extend(v),
                Ok(r) => return Err(unexpected(r)),
                Err(e) => failed.push(format!("{e:#}")),
            }
        }
        Ok((one_per_name(all), failed))
    }

    /// `--node` if given (checked to have `name`), else [`Client::locate`].
    pub async fn locate_on(&mut self, name: &str, node: Option<&str>) -> Result<String> {
        let Some(node) = node else {
            return self.locate(name).await;
        };
        self.cluster.node(node)?;
        let req = Request::Inspect {
            name: name.to_string(),
        };
        match self.call(node, req).await {
            Ok(_) => Ok(node.to_string()),
            Err(e) => match e.downcast_ref::<AgentFailure>() {
                Some(x) if x.err.kind == ErrorKind::NotFound => {
                    bail!("no such container on {node}: {name}")
                }
                _ => Err(e),
            },
        }
    }
}

/// One entry per container name across nodes during a move. The target
/// stages its copy at Prepare (it reserves the name there) and lists it as
/// `migrating` until Go; the source lists its own as `migrating` too, with
/// the same `from`/`to`. Until the target's copy runs, the source's entry
/// stands for the container and the target's staged copy is left out
/// (also while the source's Abort is on its way after a failed move: the
/// source's entry is `running` again then). Once the target's copy runs
/// (Go), the source's leftover `migrating` entry is left out instead.
/// Entries of a node whose peer was not asked (`ps --node`) are kept.
pub fn one_per_name(all: Vec<ContainerInfo>) -> Vec<ContainerInfo> {
    use herd_wire::ContainerStatus::Migrating;
    let on = |name: &str, node: &str, pred: &dyn Fn(&ContainerInfo) -> bool| {
        all.iter()
            .any(|c| c.name == name && c.node == node && pred(c))
    };
    let hidden = |c: &ContainerInfo| {
        let Some(m) = c.migration.as_ref().filter(|_| c.status == Migrating) else {
            return false;
        };
        if m.to == c.node {
            // The target's staged copy, while the source still lists one.
            on(&c.name, &m.from, &|_| true)
        } else {
            // The source's copy, once the target's runs.
            m.from == c.node && on(&c.name, &m.to, &|t| t.status != Migrating)
        }
    };
    let keep: Vec<bool> = all.iter().map(|c| !hidden(c)).collect();
    all.into_iter()
        .zip(keep)
        .filter_map(|(c, k)| k.then_some(c))
        .collect()
}

/// What [`Client::find_all`] saw.
#[derive(Debug, Default)]
pub struct Found {
    pub on: Vec<(String, herd_wire::ContainerInfo)>,
    pub unreachable: Vec<String>,
}

/// A migration that did not move the container; the report says where it
/// runs now (`outcome`, `phase`, `reason`, `runs_on`).
#[derive(Debug, thiserror::Error)]
#[error("{}", describe(.0))]
pub struct MigrateFailed(pub herd_wire::migrate::MigrateReport);

fn describe(r: &herd_wire::migrate::MigrateReport) -> String {
    use herd_wire::handoff::Outcome;
    let phase = r.phase.map(|p| p.as_str()).unwrap_or("?");
    let why = r.reason.as_deref().unwrap_or("no reason given");
    let (c, to, from) = (&r.container, &r.to, &r.from);
    let now = match (r.outcome, &r.runs_on) {
        (Outcome::RolledBack, Some(n)) => format!("rolled back: {c} runs on {n} again"),
        (Outcome::RolledBack, None) => format!("rolled back to {from}, but {c} does not run"),
        (Outcome::Untouched, Some(n)) => format!("nothing was changed: {c} runs on {n}"),
        (Outcome::Untouched, None) => {
            format!("nothing was changed, but {c} does not run on {from}")
        }
        (Outcome::Pending, _) => {
            return format!(
                "migration of {c} to {to} is pending (phase {phase}): {why} (see `herd ps`)"
            )
        }
        (Outcome::Moved, _) => format!("{c} runs on {to}"),
    };
    format!("migration of {c} to {to} failed in phase {phase}: {why}; {now}")
}

pub fn unexpected(r: Response) -> anyhow::Error {
    anyhow!("unexpected answer from agent: {r:?}")
}

#[cfg(test)]
mod tests {
    use super::*;
    use herd_wire::{ContainerStatus as S, MigrationInfo};

    fn c(node: &str, status: S, moving: Option<(&str, &str)>) -> ContainerInfo {
        ContainerInfo {
            name: "web".into(),
            node: node.into(),
            image: "busybox".into(),
            cmd: vec![],
            status,
            pid: None,
            exit_code: None,
            created_ns: 0,
            memory_bytes: None,
            cpus: None,
            hostname: "web".into(),
            network: None,
            ip: None,
            mac: None,
            migration: moving.map(|(from, to)| MigrationInfo {
                from: from.into(),
                to: to.into(),
                phase: "dump".into(),
            }),
            volumes: vec![],
        }
    }

    fn nodes(v: Vec<ContainerInfo>) -> Vec<(String, S)> {
        one_per_name(v)
            .into_iter()
            .map(|c| (c.node, c.status))
            .collect()
    }

    #[test]
    fn a_move_is_listed_once() {
        let mv = Some(("n1", "n2"));
        // During the move: the source's entry.
        let during = vec![c("n1", S::Migrating, mv), c("n2", S::Migrating, mv)];
        assert_eq!(nodes(during), [("n1".into(), S::Migrating)]);
        // A failed move whose Abort has not reached the target yet.
        let failed = vec![c("n1", S::Running, None), c("n2", S::Migrating, mv)];
        assert_eq!(nodes(failed), [("n1".into(), S::Running)]);
        // After Go, before the source has deleted its copy.
        let after = vec![c("n1", S::Migrating, mv), c("n2", S::Running, None)];
        assert_eq!(nodes(after), [("n2".into(), S::Running)]);
        // Only the target asked (`ps --node n2`), or the source gone: kept.
        assert_eq!(
            nodes(vec![c("n2", S::Migrating, mv)]),
            [("n2".into(), S::Migrating)]
        );
        // Two containers of one name that raced (no move): both shown.
        let raced = vec![c("n1", S::Running, None), c("n2", S::Running, None)];
        assert_eq!(nodes(raced).len(), 2);
    }
}
