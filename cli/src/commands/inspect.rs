//! `herd inspect`: containers as JSON (an array, as Podman prints it), with
//! the same keys as `herd ps --json`.

use anyhow::Result;
use clap::Args;
use herd_wire::{Request, Response};

use crate::client::unexpected;
use crate::context::GlobalArgs;

#[derive(Args, Debug)]
pub struct InspectArgs {
    /// The node holding it (needed only when two nodes have one of that name).
    #[arg(long)]
    pub node: Option<String>,
    #[arg(required = true)]
    pub names: Vec<String>,
}

pub async fn run(g: &GlobalArgs, args: &InspectArgs) -> Result<i32> {
    let mut c = g.client()?;
    let mut out = Vec::new();
    for name in &args.names {
        let node = c.locate_on(name, args.node.as_deref()).await?;
        let req = Request::Inspect { name: name.clone() };
        match c.call(&node, req).await? {
            Response::Container(i) => out.push(i),
            r => return Err(unexpected(r)),
        }
    }
    println!("{}", serde_json::to_string_pretty(&out)?);
    Ok(0)
}
