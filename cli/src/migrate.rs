//! The client side of a live migration: ask the source agent to move a
//! container and follow its progress stream to the report. `herd migrate`,
//! `herd pong` and the coordinator all move containers through this.

use std::time::Duration;

use anyhow::{bail, Context, Result};
use herd_wire::{Request, Response};

use crate::client::{self, unexpected, Client};
use crate::ui::human_bytes;

pub async fn migrate(
    c: &mut Client,
    name: &str,
    to: &str,
    fs: herd_wire::migrate::FsMode,
    compress: bool,
    bar: bool,
) -> Result<herd_wire::migrate::MigrateReport> {
    let auto = herd_wire::migrate::MemoryMode::Auto;
    migrate_with(c, name, to, fs, compress, auto, bar).await
}

/// [`migrate`] with a memory mode.
pub async fn migrate_with(
    c: &mut Client,
    name: &str,
    to: &str,
    fs: herd_wire::migrate::FsMode,
    compress: bool,
    memory: herd_wire::migrate::MemoryMode,
    bar: bool,
) -> Result<herd_wire::migrate::MigrateReport> {
    use std::io::IsTerminal;
    let target = c.cluster.node(to)?.clone();
    let from = c.locate(name).await?;
    if from == to {
        bail!("{name} already runs on {to}");
    }
    let req = Request::Migrate {
        name: name.to_string(),
        to: target.name.clone(),
        to_addr: target.addr,
        fs,
        compress,
        memory,
        progress: true,
    };
    // The bar goes to stderr on a terminal once the migration takes longer
    // than a second; HERD_PROGRESS=always draws it anywhere and from the
    // first report, so scripts and tests see it however fast the move is.
    let always = std::env::var("HERD_PROGRESS").as_deref() == Ok("always");
    let bar = bar && (always || std::io::stderr().is_terminal());
    let delay = if always {
        Duration::ZERO
    } else {
        Duration::from_secs(1)
    };
    let t0 = std::time::Instant::now();
    let mut recv = c.stream(&from, req).await?;
    let mut drawn = false;
    loop {
        let r: Option<Response> = herd_quic::rpc::recv_msg(&mut recv, herd_wire::frame::MAX_FRAME)
            .await
            .with_context(|| format!("migration answer from {from}"))?;
        match r {
            Some(Response::Progress {
                phase,
                done_bytes,
                total_bytes,
            }) => {
                if bar && t0.elapsed() >= delay {
                    draw_progress(&phase, done_bytes, total_bytes, t0.elapsed());
                    drawn = true;
                }
            }
            other => {
                if drawn {
                    eprintln!();
                }
                return match other {
                    Some(Response::Migrated(rep))
                        if rep.outcome != herd_wire::handoff::Outcome::Moved =>
                    {
                        Err(client::MigrateFailed(rep).into())
                    }
                    Some(Response::Migrated(rep)) => Ok(rep),
                    Some(Response::Error(err)) => Err(client::AgentFailure {
                        node: from.clone(),
                        err,
                    }
                    .into()),
                    Some(r) => Err(unexpected(r)),
                    None => bail!("{from} closed the stream without an answer"),
                };
            }
        }
    }
}

/// A migration's report as `--json` prints it (docs/json.md, format 2):
/// the report's keys, with `compress` naming the algorithm (`zstd` or
/// `none`, the flag's values) instead of format 1's bool.
pub fn report_json(r: &herd_wire::migrate::MigrateReport) -> serde_json::Value {
    let mut v = serde_json::to_value(r).unwrap_or_default();
    if let Some(o) = v.as_object_mut() {
        let algo = if r.compress { "zstd" } else { "none" };
        o.insert("compress".into(), algo.into());
    }
    v
}

/// A failed migration as `--json` prints it: its report when the source
/// made one, else the keys a refusal before any agent acted has
/// (`outcome` untouched, `phase` prepare, `reason`).
pub fn failure_json(
    e: &anyhow::Error,
    name: &str,
    from: Option<&str>,
    to: &str,
) -> serde_json::Value {
    match e.downcast_ref::<client::MigrateFailed>() {
        Some(f) => report_json(&f.0),
        None => serde_json::json!({
            "container": name,
            "from": from,
            "to": to,
            "outcome": "untouched",
            "phase": "prepare",
            "reason": format!("{e:#}"),
        }),
    }
}

fn draw_progress(phase: &str, done: u64, total: u64, elapsed: Duration) {
    const W: usize = 30;
    let line = if total > 0 {
        let f = (done as f64 / total as f64).clamp(0.0, 1.0);
        let n = (f * W as f64) as usize;
        format!(
            "{phase:<9} [{}{}] {:>3.0}% {} / {}",
            "#".repeat(n),
            "-".repeat(W - n),
            f * 100.0,
            human_bytes(done),
            human_bytes(total)
        )
    } else {
        format!("{phase:<9} ...")
    };
    eprint!("\r{line}  {:.1} s   ", elapsed.as_secs_f64());
}
