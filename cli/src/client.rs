//! Talking to agents: one QUIC connection per node, one stream per request.

use std::collections::HashMap;

use anyhow::{anyhow, bail, Context, Result};
use herd_wire::{Envelope, ErrorKind, Request, Response, WireError};

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

    /// Which node holds container `name` (asks every node).
    pub async fn locate(&mut self, name: &str) -> Result<String> {
        let mut unreachable = Vec::new();
        for node in self.node_names() {
            match self
                .call(
                    &node,
                    Request::Inspect {
                        name: name.to_string(),
                    },
                )
                .await
            {
                Ok(_) => return Ok(node),
                Err(e) => match e.downcast_ref::<AgentFailure>() {
                    Some(f) if f.err.kind == ErrorKind::NotFound => {}
                    _ => unreachable.push(format!("{e:#}")),
                },
            }
        }
        if unreachable.is_empty() {
            bail!("no such container: {name}")
        }
        Err(anyhow!(
            "no such container on the reachable nodes: {name} (also: {})",
            unreachable.join("; ")
        ))
    }
}

pub fn unexpected(r: Response) -> anyhow::Error {
    anyhow!("unexpected answer from agent: {r:?}")
}
