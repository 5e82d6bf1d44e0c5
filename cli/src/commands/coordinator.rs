//! `herd coordinator`: place containers live (the loop is
//! [`crate::coordinator`]).

use std::path::PathBuf;
use std::time::Duration;

use anyhow::Result;
use clap::Args;

use crate::args::{parse_duration, PlacementArgs};
use crate::context::GlobalArgs;
use crate::coordinator;

#[derive(Args, Debug)]
pub struct CoordinatorArgs {
    /// none, cpu-greedy, cpu-greedy-threads, oltp-disk, oracle, forecast.
    #[arg(long)]
    pub policy: String,
    #[arg(long, default_value = ".")]
    pub out: PathBuf,
    /// Stop after this long (e.g. 30m); default: until Ctrl-C.
    #[arg(long, value_parser = parse_duration)]
    pub duration: Option<Duration>,
    /// How each move's memory moves (as `herd migrate --memory-mode`).
    #[arg(long, default_value = "auto")]
    pub memory_mode: herd_wire::migrate::MemoryMode,
    #[command(flatten)]
    pub placement: PlacementArgs,
}

pub async fn run(g: &GlobalArgs, a: &CoordinatorArgs) -> Result<i32> {
    let cfg = a.placement.config()?;
    coordinator::coordinator(
        g.load_cluster()?,
        &a.policy,
        cfg,
        &a.out,
        a.duration,
        a.memory_mode,
    )
    .await?;
    Ok(0)
}
