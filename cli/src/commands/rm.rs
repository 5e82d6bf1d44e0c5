//! `herd rm`: remove containers.

use anyhow::Result;
use clap::Args;
use herd_wire::Request;

use crate::context::GlobalArgs;

#[derive(Args, Debug)]
pub struct RmArgs {
    /// The node holding it (needed only when two nodes have one of that name).
    #[arg(long)]
    pub node: Option<String>,
    /// Stop running containers first.
    #[arg(short, long)]
    pub force: bool,
    #[arg(required = true)]
    pub names: Vec<String>,
}

pub async fn run(g: &GlobalArgs, args: &RmArgs) -> Result<i32> {
    let RmArgs { node, force, names } = args;
    let mut c = g.client()?;
    for name in names {
        let node = c.locate_on(name, node.as_deref()).await?;
        c.call(
            &node,
            Request::Remove {
                name: name.clone(),
                force: *force,
            },
        )
        .await?;
        println!("{name}");
    }
    Ok(0)
}
