//! `herd logs`: a container's output, from whichever node holds it.

use anyhow::{bail, Result};
use clap::Args;
use herd_wire::{LogStream, Request, Response};

use crate::client::unexpected;
use crate::context::GlobalArgs;
use crate::ui::fmt_time;

#[derive(Args, Debug)]
pub struct LogsArgs {
    #[arg(short, long)]
    pub follow: bool,
    /// Only the last N lines.
    #[arg(long)]
    pub tail: Option<u64>,
    /// Prefix lines with their timestamps.
    #[arg(short = 't', long)]
    pub timestamps: bool,
    pub name: String,
}

pub async fn run(g: &GlobalArgs, args: &LogsArgs) -> Result<i32> {
    let LogsArgs {
        follow,
        tail,
        timestamps,
        name,
    } = args;
    let mut c = g.client()?;
    let node = c.locate(name).await?;
    let mut recv = c
        .stream(
            &node,
            Request::Logs {
                name: name.clone(),
                follow: *follow,
                tail: *tail,
            },
        )
        .await?;
    use std::io::Write;
    loop {
        let msg: Option<Response> =
            herd_quic::rpc::recv_msg(&mut recv, herd_wire::frame::MAX_FRAME).await?;
        match msg {
            Some(Response::Log(l)) => {
                let text = if *timestamps {
                    format!("{} {}\n", fmt_time(l.time_ns), l.line)
                } else {
                    format!("{}\n", l.line)
                };
                let r = match l.stream {
                    LogStream::Stdout => std::io::stdout().write_all(text.as_bytes()),
                    LogStream::Stderr => std::io::stderr().write_all(text.as_bytes()),
                };
                if r.is_err() {
                    return Ok(0); // reader went away (e.g. `| head`)
                }
            }
            Some(Response::End) | None => break,
            Some(Response::Error(e)) => bail!("{node}: {e}"),
            Some(r) => return Err(unexpected(r)),
        }
    }
    Ok(0)
}
