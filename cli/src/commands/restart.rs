//! `herd restart`: stop (SIGTERM, SIGKILL after the timeout) and start
//! again, as Podman's `restart`; a stopped container is just started.

use anyhow::Result;
use clap::Args;
use herd_wire::Request;

use crate::context::GlobalArgs;

#[derive(Args, Debug)]
pub struct RestartArgs {
    /// The node holding it (needed only when two nodes have one of that name).
    #[arg(long)]
    pub node: Option<String>,
    /// How long to wait before SIGKILL: seconds or a duration (500ms, 1s,
    /// 2m30s; rounded up to whole seconds).
    #[arg(short = 't', long, default_value = "10", value_parser = crate::args::whole_seconds)]
    pub time: u64,
    #[arg(required = true)]
    pub names: Vec<String>,
}

pub async fn run(g: &GlobalArgs, args: &RestartArgs) -> Result<i32> {
    let mut c = g.client()?;
    for name in &args.names {
        let node = c.locate_on(name, args.node.as_deref()).await?;
        c.call(
            &node,
            Request::Stop {
                name: name.clone(),
                timeout_s: args.time,
            },
        )
        .await?;
        super::start::start_one(&mut c, name, Some(&node)).await?;
        println!("{name}");
    }
    Ok(0)
}
