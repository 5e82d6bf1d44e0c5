//! `herd network create|ls|rm`, and the address a `run --net` gets.
//!
//! A network is defined on every agent of the cluster (each agent checks its
//! own uplink). Addresses are handed out here, from the union of what every
//! agent's containers hold, so the same address is never given twice while
//! its container exists; the agent checks again under its own lock.

use std::net::Ipv4Addr;

use anyhow::{bail, Context, Result};
use herd_wire::net::{format_mac, mac_for, parse_range, Subnet};
use herd_wire::{NetAttach, NetworkDef, Request, Response};

use crate::client::{unexpected, Client};

/// Define `def` on `nodes`; if any node refuses, it is removed again from
/// those that took it, so nothing is half-created.
pub async fn create(c: &mut Client, def: &NetworkDef, nodes: &[String]) -> Result<()> {
    let net = Subnet::parse(&def.subnet).map_err(anyhow::Error::msg)?;
    parse_range(def, &net).map_err(anyhow::Error::msg)?;
    let mut done: Vec<String> = Vec::new();
    for n in nodes {
        if let Err(e) = c.call(n, Request::NetworkCreate(def.clone())).await {
            for d in &done {
                let _ = c
                    .call(
                        d,
                        Request::NetworkRemove {
                            name: def.name.clone(),
                        },
                    )
                    .await;
            }
            return Err(e.context(format!("network {} not created (on no node)", def.name)));
        }
        done.push(n.clone());
    }
    Ok(())
}

/// Every node's networks: (node, def).
pub async fn list(c: &mut Client) -> Result<Vec<(String, NetworkDef)>> {
    let mut out = Vec::new();
    for n in c.node_names() {
        match c.call(&n, Request::NetworkList).await? {
            Response::Networks(v) => out.extend(v.into_iter().map(|d| (n.clone(), d))),
            r => return Err(unexpected(r)),
        }
    }
    Ok(out)
}

pub fn print(list: &[(String, NetworkDef)]) {
    // One row per definition, with the nodes that know it.
    let mut rows: Vec<(NetworkDef, Vec<String>)> = Vec::new();
    for (node, d) in list {
        match rows.iter_mut().find(|(x, _)| x == d) {
            Some((_, nodes)) => nodes.push(node.clone()),
            None => rows.push((d.clone(), vec![node.clone()])),
        }
    }
    println!(
        "{:<12} {:<18} {:<15} {:<10} {:<31} NODES",
        "NAME", "SUBNET", "GATEWAY", "UPLINK", "RANGE"
    );
    for (d, nodes) in rows {
        println!(
            "{:<12} {:<18} {:<15} {:<10} {:<31} {}",
            d.name,
            d.subnet,
            d.gateway.as_deref().unwrap_or("-"),
            d.parent,
            d.range,
            nodes.join(",")
        );
    }
}

pub async fn remove(c: &mut Client, name: &str) -> Result<()> {
    let mut found = false;
    for n in c.node_names() {
        let has = match c.call(&n, Request::NetworkList).await? {
            Response::Networks(v) => v.iter().any(|d| d.name == name),
            r => return Err(unexpected(r)),
        };
        if has {
            c.call(
                &n,
                Request::NetworkRemove {
                    name: name.to_string(),
                },
            )
            .await?;
            found = true;
        }
    }
    if !found {
        bail!("no network named {name} on any node");
    }
    Ok(())
}

/// The attachment of a new container on `network` (run on `node`): the
/// address asked for if it is free cluster-wide, else the first free one
/// of the network's range.
pub async fn attach_for(
    c: &mut Client,
    node: &str,
    network: &str,
    ip: Option<&str>,
) -> Result<NetAttach> {
    let def = match c.call(node, Request::NetworkList).await? {
        Response::Networks(v) => v.into_iter().find(|d| d.name == network),
        r => return Err(unexpected(r)),
    }
    .with_context(|| format!("unknown network {network:?} on {node} (see `herd network ls`)"))?;
    let net = Subnet::parse(&def.subnet).map_err(anyhow::Error::msg)?;
    let mut used: Vec<(Ipv4Addr, String)> = Vec::new();
    for n in c.node_names() {
        match c.call(&n, Request::List).await {
            Ok(Response::Containers(v)) => used.extend(v.into_iter().filter_map(|i| {
                let ip = i.ip.as_deref()?.parse().ok()?;
                (i.network.as_deref() == Some(network)).then(|| (ip, format!("{} on {n}", i.name)))
            })),
            Ok(r) => return Err(unexpected(r)),
            Err(e) => bail!(
                "cannot tell which addresses of {network} are free: {e:#} (give --ip, or bring {n} back)"
            ),
        }
    }
    let ip: Ipv4Addr = match ip {
        Some(s) => {
            let ip: Ipv4Addr = s
                .parse()
                .with_context(|| format!("--ip {s:?}: not an IPv4 address"))?;
            if !net.holds(ip) {
                bail!(
                    "--ip {ip} is not a host address of {network} ({})",
                    def.subnet
                );
            }
            if def.gateway.as_deref() == Some(s) {
                bail!("--ip {ip} is the gateway of {network}");
            }
            if let Some((_, who)) = used.iter().find(|(u, _)| *u == ip) {
                bail!("--ip {ip} is already in use on {network} by {who}");
            }
            ip
        }
        None => {
            let (a, b) = parse_range(&def, &net).map_err(anyhow::Error::msg)?;
            (u32::from(a)..=u32::from(b))
                .map(Ipv4Addr::from)
                .find(|x| {
                    !used.iter().any(|(u, _)| u == x)
                        && def.gateway.as_deref() != Some(&x.to_string())
                })
                .with_context(|| {
                    format!(
                        "network {network} has no free address left in {}",
                        def.range
                    )
                })?
        }
    };
    Ok(NetAttach {
        network: network.to_string(),
        ip: ip.to_string(),
        mac: format_mac(&mac_for(network, ip)),
    })
}
