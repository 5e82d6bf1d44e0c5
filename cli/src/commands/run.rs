//! `herd run`: create and start a container on a node.

use anyhow::{bail, Context, Result};
use clap::Args;
use herd_wire::{Request, Response, RunSpec};

use crate::client::unexpected;
use crate::context::GlobalArgs;
use crate::network;

#[derive(Args, Debug)]
pub struct RunArgs {
    /// Node to run on (default: the first node).
    #[arg(long)]
    pub node: Option<String>,
    /// Container name (default: a generated one).
    #[arg(long)]
    pub name: Option<String>,
    /// Environment variable KEY=VALUE (repeatable).
    #[arg(short = 'e', long = "env")]
    pub env: Vec<String>,
    /// Memory limit, e.g. 64m, 1g.
    #[arg(long)]
    pub memory: Option<String>,
    /// CPU limit in cores, e.g. 1.5.
    #[arg(long)]
    pub cpus: Option<f64>,
    /// Hostname inside the container (default: its name).
    #[arg(long)]
    pub hostname: Option<String>,
    /// Attach to this network (`herd network ls`): the container gets its
    /// own MAC and IP, kept across migrations.
    #[arg(long)]
    pub net: Option<String>,
    /// The address on --net (default: the first free one of its range).
    #[arg(long, requires = "net")]
    pub ip: Option<String>,
    pub image: String,
    /// Command and arguments (after `--`).
    #[arg(last = true)]
    pub cmd: Vec<String>,
}

pub async fn run(g: &GlobalArgs, args: &RunArgs) -> Result<i32> {
    let RunArgs {
        node,
        name,
        env,
        memory,
        cpus,
        hostname,
        net,
        ip,
        image,
        cmd,
    } = args;
    let memory_bytes = match memory {
        Some(m) => Some(
            herd_wire::size::parse_size(m)
                .with_context(|| format!("--memory {m:?}: use e.g. 64m, 1g"))?,
        ),
        None => None,
    };
    for e in env {
        if !e.contains('=') {
            bail!("-e {e:?}: expected KEY=VALUE");
        }
    }
    let mut c = g.client()?;
    let node = match node {
        Some(n) => n.clone(),
        None => c
            .node_names()
            .first()
            .cloned()
            .context("the cluster has no nodes")?,
    };
    let name = name.clone().unwrap_or_else(generate_name);
    let spec = RunSpec {
        name,
        image: image.clone(),
        cmd: cmd.clone(),
        env: env.clone(),
        memory_bytes,
        cpus: *cpus,
        hostname: hostname.clone(),
        net: match net {
            Some(n) => Some(network::attach_for(&mut c, &node, n, ip.as_deref()).await?),
            None => None,
        },
    };
    match c.call(&node, Request::Run(spec)).await? {
        Response::Container(info) => println!("{}", info.name),
        r => return Err(unexpected(r)),
    }
    Ok(0)
}

fn generate_name() -> String {
    let n = std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map(|d| d.as_nanos())
        .unwrap_or(0);
    format!(
        "c-{:08x}",
        (n as u64 ^ (std::process::id() as u64) << 32) as u32
    )
}
