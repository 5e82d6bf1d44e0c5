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
    /// Compression of the --export archive: zstd (the FILE must end in
    /// .zst) or none (it must not). Without it the name decides. gzip,
    /// which Podman also takes, is not supported.
    #[arg(short = 'c', long, requires = "export", value_name = "none|zstd")]
    pub compress: Option<String>,
    /// Podman's flag, accepted: herd always checkpoints established TCP
    /// connections (they move with the container).
    #[arg(long)]
    pub tcp_established: bool,
    pub name: String,
}

/// `--compress` against the export file's name: the agent compresses by
/// the name (`.zst`), so a contradiction is refused rather than ignored.
pub fn check_compress(compress: Option<&str>, export: &std::path::Path) -> Result<()> {
    let zst = export.extension().is_some_and(|e| e == "zst");
    match (compress, zst) {
        (None, _) | (Some("zstd"), true) | (Some("none"), false) => Ok(()),
        (Some("zstd"), false) => anyhow::bail!(
            "--compress zstd: the export file {} must end in .zst",
            export.display()
        ),
        (Some("none"), true) => anyhow::bail!(
            "--compress none: the export file {} ends in .zst (name it .tar)",
            export.display()
        ),
        (Some(other), _) => {
            anyhow::bail!("--compress {other:?}: herd supports none and zstd (not gzip)")
        }
    }
}

pub async fn run(g: &GlobalArgs, args: &CheckpointArgs) -> Result<i32> {
    let CheckpointArgs {
        leave_running,
        export,
        json,
        print_stats,
        compress,
        tcp_established: _,
        name,
    } = args;
    let export = match export {
        Some(p) => {
            check_compress(compress.as_deref(), p)?;
            Some(absolute(p)?.to_string_lossy().into_owned())
        }
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
