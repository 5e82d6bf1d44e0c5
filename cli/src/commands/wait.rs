//! `herd wait`: block until containers stop; print each one's exit code
//! (as Podman's `wait`). Follows a container across migrations.

use std::time::Duration;

use anyhow::{bail, Result};
use clap::Args;
use herd_wire::{ContainerStatus, Request, Response};

use crate::client::unexpected;
use crate::context::GlobalArgs;

#[derive(Args, Debug)]
pub struct WaitArgs {
    /// How often to look: seconds or a duration (250ms, 1s).
    #[arg(short = 'i', long, default_value = "250ms", value_parser = crate::args::parse_duration)]
    pub interval: Duration,
    #[arg(required = true)]
    pub names: Vec<String>,
}

pub async fn run(g: &GlobalArgs, args: &WaitArgs) -> Result<i32> {
    let mut c = g.client()?;
    for name in &args.names {
        loop {
            let node = c.locate(name).await?;
            let req = Request::Inspect { name: name.clone() };
            match c.call(&node, req).await? {
                Response::Container(i) if i.status == ContainerStatus::Stopped => {
                    match i.exit_code {
                        Some(code) => println!("{code}"),
                        None => bail!("{name} stopped without an exit code"),
                    }
                    break;
                }
                Response::Container(_) => tokio::time::sleep(args.interval).await,
                r => return Err(unexpected(r)),
            }
        }
    }
    Ok(0)
}
