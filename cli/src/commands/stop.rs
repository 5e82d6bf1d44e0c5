//! `herd stop`: SIGTERM, then SIGKILL after the timeout.

use anyhow::Result;
use clap::Args;
use herd_wire::Request;

use crate::context::GlobalArgs;

#[derive(Args, Debug)]
pub struct StopArgs {
    /// Seconds to wait before SIGKILL.
    #[arg(short = 't', long, default_value_t = 10)]
    pub time: u64,
    #[arg(required = true)]
    pub names: Vec<String>,
}

pub async fn run(g: &GlobalArgs, args: &StopArgs) -> Result<i32> {
    let StopArgs { time, names } = args;
    let mut c = g.client()?;
    for name in names {
        let node = c.locate(name).await?;
        c.call(
            &node,
            Request::Stop {
                name: name.clone(),
                timeout_s: *time,
            },
        )
        .await?;
        println!("{name}");
    }
    Ok(0)
}
