//! `herd network create|ls|rm`: networks whose containers keep their IP and
//! MAC across hosts (the address book is [`crate::network`]).

use anyhow::Result;
use clap::Subcommand;

use crate::context::GlobalArgs;
use crate::network;

#[derive(Subcommand, Debug)]
pub enum NetworkCmd {
    /// Define a network on every node (or --node).
    Create {
        name: String,
        /// IPv4 subnet, e.g. 10.77.1.0/24.
        #[arg(long)]
        subnet: String,
        /// Default gateway of the containers.
        #[arg(long)]
        gateway: Option<String>,
        /// Each host's uplink interface the containers' macvlans hang off.
        #[arg(long = "parent-if")]
        parent_if: String,
        /// Addresses handed out, A.B.C.D-A.B.C.E (default: the upper half of the subnet).
        #[arg(long)]
        range: Option<String>,
        #[arg(long)]
        node: Option<String>,
    },
    /// List networks and the nodes that know them.
    Ls {
        #[arg(long)]
        json: bool,
    },
    /// Remove a network no container uses.
    Rm { name: String },
}

pub async fn run(g: &GlobalArgs, nc: &NetworkCmd) -> Result<i32> {
    let mut c = g.client()?;
    match nc {
        NetworkCmd::Create {
            name,
            subnet,
            gateway,
            parent_if,
            range,
            node,
        } => {
            let range = match range {
                Some(r) => r.clone(),
                None => herd_wire::net::default_range(subnet).map_err(anyhow::Error::msg)?,
            };
            let def = herd_wire::NetworkDef {
                name: name.clone(),
                subnet: subnet.clone(),
                gateway: gateway.clone(),
                parent: parent_if.clone(),
                range,
            };
            let nodes = match node {
                Some(n) => vec![n.clone()],
                None => c.node_names(),
            };
            network::create(&mut c, &def, &nodes).await?;
            println!("{name}");
        }
        NetworkCmd::Ls { json } => {
            let l = network::list(&mut c).await?;
            if *json {
                let v: Vec<_> = l
                    .iter()
                    .map(|(n, d)| serde_json::json!({"node": n, "name": d.name, "subnet": d.subnet, "gateway": d.gateway, "parent_if": d.parent, "range": d.range}))
                    .collect();
                println!("{}", serde_json::to_string_pretty(&v)?);
            } else {
                network::print(&l);
            }
        }
        NetworkCmd::Rm { name } => {
            network::remove(&mut c, name).await?;
            println!("{name}");
        }
    }
    Ok(0)
}
