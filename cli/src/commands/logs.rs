//! `herd logs`: a container's output, from whichever node holds it.

use anyhow::{bail, Result};
use clap::Args;
use herd_wire::{LogStream, Request, Response};

use crate::client::unexpected;
use crate::context::GlobalArgs;
use crate::ui::fmt_time;

#[derive(Args, Debug)]
pub struct LogsArgs {
    /// The node holding it (needed only when two nodes have one of that name).
    #[arg(long)]
    pub node: Option<String>,
    #[arg(short, long)]
    pub follow: bool,
    /// Only the last N lines.
    #[arg(long)]
    pub tail: Option<u64>,
    /// Only lines from this long ago on (10m, 1h30m, 90: seconds), or since
    /// a time (RFC 3339, e.g. 2026-12-01T16:00:00Z).
    #[arg(long, value_parser = since)]
    pub since: Option<u64>,
    /// Prefix lines with their timestamps.
    #[arg(short = 't', long)]
    pub timestamps: bool,
    pub name: String,
}

pub async fn run(g: &GlobalArgs, args: &LogsArgs) -> Result<i32> {
    let LogsArgs {
        node,
        follow,
        tail,
        since,
        timestamps,
        name,
    } = args;
    let mut c = g.client()?;
    let node = c.locate_on(name, node.as_deref()).await?;
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
            Some(Response::Log(l)) if since.is_some_and(|s| l.time_ns < s) => {}
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

/// `--since` as nanoseconds since the epoch.
fn since(s: &str) -> Result<u64, String> {
    let now = std::time::SystemTime::now();
    let at = match crate::args::parse_duration(s) {
        Ok(d) => now.checked_sub(d).unwrap_or(std::time::UNIX_EPOCH),
        Err(_) => humantime::parse_rfc3339_weak(s).map_err(|_| {
            format!("bad --since {s:?}: a duration (10m, 1h30m, seconds) or a time (2026-12-01T16:00:00Z)")
        })?,
    };
    Ok(at
        .duration_since(std::time::UNIX_EPOCH)
        .map_or(0, |d| d.as_nanos() as u64))
}
