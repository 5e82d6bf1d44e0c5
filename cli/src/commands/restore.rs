//! `herd restore`: restore a checkpointed container, or import an exported one.

use std::path::PathBuf;

use anyhow::{bail, Context, Result};
use clap::Args;
use herd_wire::{Request, Response};

use crate::client::unexpected;
use crate::context::GlobalArgs;
use crate::paths::absolute;

#[derive(Args, Debug)]
pub struct RestoreArgs {
    /// Restore from an archive written by `checkpoint --export`.
    #[arg(short, long, conflicts_with = "name")]
    pub import: Option<PathBuf>,
    /// With --import: the restored container's name (default: the archived one).
    #[arg(short = 'n', long = "name", requires = "import")]
    pub new_name: Option<String>,
    /// With --import: the node to restore on (default: the first node).
    #[arg(long, requires = "import")]
    pub node: Option<String>,
    #[arg(long)]
    pub json: bool,
    /// Print Podman's statistics JSON (durations in microseconds).
    #[arg(long, conflicts_with = "json")]
    pub print_stats: bool,
    /// Podman's flag, accepted: herd always restores established TCP
    /// connections.
    #[arg(long)]
    pub tcp_established: bool,
    #[arg(required_unless_present = "import")]
    pub name: Option<String>,
}

pub async fn run(g: &GlobalArgs, args: &RestoreArgs) -> Result<i32> {
    let RestoreArgs {
        import,
        new_name,
        node,
        json,
        print_stats,
        tcp_established: _,
        name,
    } = args;
    let mut c = g.client()?;
    let (node, req) = match (import, name) {
        (Some(path), _) => {
            let node = match node {
                Some(n) => {
                    c.cluster.node(n)?;
                    n.clone()
                }
                None => c
                    .node_names()
                    .first()
                    .cloned()
                    .context("the cluster has no nodes")?,
            };
            let path = absolute(path)?;
            if !path.exists() {
                bail!("{}: no such file", path.display());
            }
            (
                node,
                Request::RestoreImport {
                    path: path.to_string_lossy().into_owned(),
                    name: new_name.clone(),
                },
            )
        }
        (None, Some(name)) => (
            c.locate(name).await?,
            Request::Restore { name: name.clone() },
        ),
        (None, None) => bail!("give a container name or --import FILE"),
    };
    let r = c.call(&node, req).await?;
    let Response::Restored(rep) = r else {
        return Err(unexpected(r));
    };
    if *json {
        println!("{}", serde_json::to_string_pretty(&rep)?);
    } else if *print_stats {
        let us = |ms: f64| (ms * 1000.0).round() as u64;
        let v = serde_json::json!({
            "podman_restore_duration": us(rep.total_ms),
            "container_statistics": [{
                "Id": rep.container.name,
                "Name": rep.container.name,
                "runtime_restore_duration": us(rep.total_ms),
                "criu_statistics": {
                    "restore_time": us(rep.criu_restore_ms),
                    "pages_restored": rep.pages_restored,
                },
            }],
        });
        println!("{}", serde_json::to_string_pretty(&v)?);
    } else {
        println!(
            "{} restored on {}: {:.0} ms (CRIU restore {:.1} ms), pid {}",
            rep.container.name,
            rep.container.node,
            rep.total_ms,
            rep.criu_restore_ms,
            rep.container.pid.unwrap_or(0)
        );
    }
    Ok(0)
}
