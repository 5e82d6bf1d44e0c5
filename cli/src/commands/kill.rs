//! `herd kill`: send a signal to a container's init.

use anyhow::Result;
use clap::Args;
use herd_wire::Request;

use crate::context::GlobalArgs;

#[derive(Args, Debug)]
pub struct KillArgs {
    /// The node holding it (needed only when two nodes have one of that name).
    #[arg(long)]
    pub node: Option<String>,
    #[arg(short, long, default_value = "KILL")]
    pub signal: String,
    #[arg(required = true)]
    pub names: Vec<String>,
}

pub async fn run(g: &GlobalArgs, args: &KillArgs) -> Result<i32> {
    let KillArgs {
        node,
        signal,
        names,
    } = args;
    let sig = parse_signal(signal)?;
    let mut c = g.client()?;
    for name in names {
        let node = c.locate_on(name, node.as_deref()).await?;
        c.call(
            &node,
            Request::Kill {
                name: name.clone(),
                signal: sig,
            },
        )
        .await?;
        println!("{name}");
    }
    Ok(0)
}

fn parse_signal(s: &str) -> Result<i32> {
    if let Ok(n) = s.parse::<i32>() {
        return Ok(n);
    }
    let up = s.to_ascii_uppercase();
    let name = if up.starts_with("SIG") {
        up
    } else {
        format!("SIG{up}")
    };
    name.parse::<nix::sys::signal::Signal>()
        .map(|s| s as i32)
        .map_err(|_| anyhow::anyhow!("unknown signal {s:?}"))
}
