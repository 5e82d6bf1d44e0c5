//! `herd checkpoint`: checkpoint a running container through CRIU, optionally exporting it.

use std::path::PathBuf;

use anyhow::Result;
use clap::Args;
use herd_wire::{Request, Response};

use crate::client::unexpected;
use crate::context::GlobalArgs;
use crate::paths::absolute;
use crate::ui::human_bytes;

#[derive(Args, Debug)]
pub struct CheckpointArgs {
    /// Keep the container running after the checkpoint.
    #[arg(short = 'R', long)]
    pub leave_running: bool,
    /// Also export the checkpoint to FILE.tar or FILE.tar.zst (a path on the agent's host).
    #[arg(short, long)]
    pub export: Option<PathBuf>,
    /// Print the report as JSON.
    #[arg(long)]
    pub json: bool,
    /// Print Podman's statistics JSON (durations in microseconds).
    #[arg(long, conflicts_with = "json")]
    pub print_stats: bool,
    pub name: String,
}

pub async fn run(g: &GlobalArgs, args: &CheckpointArgs) -> Result<i32> {
    let CheckpointArgs {
        leave_running,
        export,
        json,
        print_stats,
        name,
    } = args;
    let export = match export {
        Some(p) => Some(absolute(p)?.to_string_lossy().into_owned()),
        None => None,
    };
    let mut c = g.client()?;
    let node = c.locate(name).await?;
    let r = c
        .call(
            &node,
            Request::Checkpoint {
                name: name.clone(),
                leave_running: *leave_running,
                export,
            },
        )
        .await?;
    let Response::Checkpointed(rep) = r else {
        return Err(unexpected(r));
    };
    if *json {
        println!("{}", serde_json::to_string_pretty(&rep)?);
    } else if *print_stats {
        let us = |ms: f64| (ms * 1000.0).round() as u64;
        let v = serde_json::json!({
            "podman_checkpoint_duration": us(rep.total_ms),
            "container_statistics": [{
                "Id": rep.name,
                "Name": rep.name,
                "runtime_checkpoint_duration": us(rep.total_ms),
                "criu_statistics": {
                    "freezing_time": us(rep.freezing_ms),
                    "frozen_time": us(rep.frozen_ms),
                    "memdump_time": us(rep.memdump_ms),
                    "memwrite_time": us(rep.memwrite_ms),
                    "pages_written": rep.pages_written,
                },
            }],
        });
        println!("{}", serde_json::to_string_pretty(&v)?);
    } else {
        println!(
            "{} checkpointed on {}: {:.0} ms (CRIU frozen {:.1} ms, memory dump {:.1} ms), images {}{}",
            rep.name,
            rep.node,
            rep.total_ms,
            rep.frozen_ms,
            rep.memdump_ms,
            human_bytes(rep.image_bytes),
            match (&rep.export, rep.export_bytes) {
                (Some(p), Some(n)) => format!(", exported to {p} ({})", human_bytes(n)),
                _ => String::new(),
            }
        );
    }
    Ok(0)
}
