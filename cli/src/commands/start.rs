//! `herd start`: start stopped containers again (Podman's `start`): the
//! same filesystem, network and limits, a new process; its output goes on
//! in the same log.

use anyhow::Result;
use clap::Args;
use herd_wire::{Request, Response};

use crate::client::unexpected;
use crate::context::GlobalArgs;

#[derive(Args, Debug)]
pub struct StartArgs {
    /// The node holding it (needed only when two nodes have one of that name).
    #[arg(long)]
    pub node: Option<String>,
    #[arg(required = true)]
    pub names: Vec<String>,
}

pub async fn run(g: &GlobalArgs, args: &StartArgs) -> Result<i32> {
    let mut c = g.client()?;
    for name in &args.names {
        start_one(&mut c, name, args.node.as_deref()).await?;
        println!("{name}");
    }
    Ok(0)
}

pub(crate) async fn start_one(
    c: &mut crate::client::Client,
    name: &str,
    node: Option<&str>,
) -> Result<()> {
    let node = c.locate_on(name, node).await?;
    match c
        .call(
            &node,
            Request::Start {
                name: name.to_string(),
            },
        )
        .await?
    {
        Response::Container(_) => Ok(()),
        r => Err(unexpected(r)),
    }
}
