//! `herd migrate`: live-migrate a running container to another node.

use anyhow::Result;
use clap::Args;

use crate::context::GlobalArgs;
use crate::migrate::{failure_json, migrate_with, report_json};
use crate::ui::human_bytes;

#[derive(Args, Debug)]
pub struct MigrateArgs {
    pub name: String,
    /// Target node.
    #[arg(long)]
    pub to: String,
    /// What of the filesystem moves: diff (upper layer, pre-sent), none, whole.
    #[arg(long, default_value = "diff")]
    pub fs: herd_wire::migrate::FsMode,
    /// Compress the transfer (zstd).
    #[arg(long, value_parser = ["zstd", "none"], default_value = "none")]
    pub compress: String,
    /// How memory moves: stop (stop-and-copy), stream (CRIU's page server
    /// through the agents' QUIC link), pre (rounds of pre-dumps while it
    /// runs, the same way, then a frozen dump of what changed; needs the
    /// kernel's dirty-memory tracking, refused without it), post
    /// (post-copy: it would run on the target at once and pull its pages
    /// from the source; its risk: if the source dies before the last page
    /// arrived, the container is LOST), auto (the best this pair supports
    /// for the container's size, said in the report: from 64 MiB of memory
    /// pre where dirty memory is tracked, else stream; below it stop).
    /// post is refused with the reason before anything freezes (CRIU's
    /// lazy page server fails on the hosts it was tried on).
    /// In stream the frozen container stays on the source until the
    /// target restored its copy: a failure before that resumes it there.
    #[arg(long, default_value = "auto")]
    pub memory_mode: herd_wire::migrate::MemoryMode,
    #[arg(long)]
    pub json: bool,
}

pub async fn run(g: &GlobalArgs, args: &MigrateArgs) -> Result<i32> {
    let MigrateArgs {
        name,
        to,
        fs,
        compress,
        memory_mode,
        json,
    } = args;
    let mut c = g.client()?;
    let zstd = compress == "zstd";
    let rep = match migrate_with(&mut c, name, to, *fs, zstd, *memory_mode, !*json).await {
        Ok(r) => r,
        Err(e) => {
            if *json {
                print_failed(&e, name, to);
            }
            return Err(e);
        }
    };
    if *json {
        println!("{}", serde_json::to_string_pretty(&report_json(&rep))?);
    } else {
        print_migration(&rep);
    }
    Ok(0)
}

/// `--json` on failure: the report with its outcome, or for a refusal
/// before anything started, `untouched` in phase prepare.
fn print_failed(e: &anyhow::Error, name: &str, to: &str) {
    if let Ok(v) = serde_json::to_string_pretty(&failure_json(e, name, None, to)) {
        println!("{v}");
    }
}

fn print_migration(r: &herd_wire::migrate::MigrateReport) {
    println!(
        "{} moved {} -> {} in {:.0} ms: frozen {:.0} ms (CRIU {:.1} ms), {} sent ({} of data, {:.1} MiB/s)",
        r.container,
        r.from,
        r.to,
        r.total_ms,
        r.frozen_ms,
        r.criu_frozen_ms,
        human_bytes(r.bytes),
        human_bytes(r.raw_bytes),
        r.throughput_mib_s
    );
    println!(
        "  phases: prepare {:.0} ms, pre-send {:.0} ms, target build {:.0} ms, dump {:.0} ms, transfer {:.0} ms (restore {:.0} ms), cleanup {:.0} ms",
        r.prepare_ms, r.presend_ms, r.build_ms, r.dump_ms, r.transfer_ms, r.restore_ms, r.cleanup_ms
    );
    if !r.memory_mode.is_empty() {
        match &r.memory_mode_reason {
            Some(why) => println!("  memory: {} ({why})", r.memory_mode),
            None => println!("  memory: {}", r.memory_mode),
        }
    }
    if !r.pre_rounds.is_empty() {
        let rounds: Vec<String> = r
            .pre_rounds
            .iter()
            .map(|p| format!("{p} ({})", human_bytes(p << 12)))
            .collect();
        println!(
            "  pre-copy: {} round(s) while it ran, pages per round {}; {} in all{}",
            r.pre_rounds.len(),
            rounds.join(", "),
            human_bytes(r.pre_bytes),
            r.pre_stop
                .as_deref()
                .map(|w| format!("; stopped: {w}"))
                .unwrap_or_default()
        );
    }
    if r.page_bytes > 0 {
        println!(
            "  pages streamed during the dump: {}",
            human_bytes(r.page_bytes)
        );
    }
    if r.layers_sent > 0 || r.layer_bytes > 0 {
        println!(
            "  image: {} had no copy; {} layer(s), {} sent before the freeze",
            r.to,
            r.layers_sent,
            human_bytes(r.layer_bytes)
        );
    }
}
