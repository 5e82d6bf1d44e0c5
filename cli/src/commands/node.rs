//! `herd node add|ls|rm`: a cluster file for real hosts (the file and its
//! format are [`crate::node`]).

use std::path::PathBuf;

use anyhow::Result;

use crate::context::GlobalArgs;
use crate::node::{add, ls, rm, UserTls};

#[derive(clap::Subcommand, Debug)]
pub enum NodeCmd {
    /// Add a host's agent (created with its first node: give the user's certificate).
    Add {
        /// The node's name: the CN of its agent's certificate.
        name: String,
        /// The agent's QUIC address, IP[:PORT] (port 7700 by default).
        addr: String,
        /// The agent's certificate: checked to be node NAME's.
        #[arg(long)]
        node_cert: Option<PathBuf>,
        /// First add only: the cluster CA certificate.
        #[arg(long)]
        ca: Option<PathBuf>,
        /// First add only: the user's certificate (`herd ca issue --role user`).
        #[arg(long)]
        user_cert: Option<PathBuf>,
        /// First add only: the user's key.
        #[arg(long)]
        user_key: Option<PathBuf>,
        /// First add only: the cluster's name (default: the file's stem).
        #[arg(long)]
        cluster_name: Option<String>,
    },
    /// List the nodes and whether their agents answer.
    Ls {
        #[arg(long)]
        json: bool,
    },
    /// Remove a node from the file (its agent and containers are untouched).
    Rm { name: String },
}

pub async fn run(g: &GlobalArgs, c: &NodeCmd) -> Result<i32> {
    let file = &g.cluster_file();
    match c {
        NodeCmd::Add {
            name,
            addr,
            node_cert,
            ca,
            user_cert,
            user_key,
            cluster_name,
        } => {
            let cl = add(
                file,
                name,
                addr,
                node_cert.as_deref(),
                UserTls {
                    ca: ca.clone(),
                    cert: user_cert.clone(),
                    key: user_key.clone(),
                    name: cluster_name.clone(),
                },
            )?;
            println!(
                "node {name} added to {} ({} node(s))",
                file.display(),
                cl.nodes.len()
            );
        }
        NodeCmd::Rm { name } => {
            let cl = rm(file, name)?;
            println!(
                "node {name} removed from {} ({} left)",
                file.display(),
                cl.nodes.len()
            );
        }
        NodeCmd::Ls { json } => {
            let all = ls(file).await?;
            let bad = all.iter().filter(|(_, r)| r.is_err()).count();
            if *json {
                let v: Vec<serde_json::Value> = all
                    .iter()
                    .map(|(n, r)| {
                        serde_json::json!({
                            "name": n.name,
                            "addr": n.addr.to_string(),
                            "up": r.is_ok(),
                            "status": match r { Ok(s) | Err(s) => s },
                        })
                    })
                    .collect();
                println!("{}", serde_json::to_string_pretty(&v)?);
            } else {
                for (n, r) in &all {
                    match r {
                        Ok(s) => println!("{:<12} {:<22} {s}", n.name, n.addr.to_string()),
                        Err(e) => println!("{:<12} {:<22} DOWN: {e}", n.name, n.addr.to_string()),
                    }
                }
            }
            return Ok(if bad > 0 { crate::exit::HERD_ERROR } else { 0 });
        }
    }
    Ok(0)
}
