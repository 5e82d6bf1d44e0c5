//! `herd monitor`: the cluster's samples and logs into CSV files (the writer
//! is [`crate::monitor`]).

use std::path::PathBuf;
use std::time::Duration;

use anyhow::Result;
use clap::Args;

use crate::args::parse_duration;
use crate::context::GlobalArgs;
use crate::monitor;

#[derive(Args, Debug)]
pub struct MonitorArgs {
    #[arg(long)]
    pub out: PathBuf,
    /// Stop after this long (e.g. 30s, 5m); default: until Ctrl-C.
    #[arg(long, value_parser = parse_duration)]
    pub duration: Option<Duration>,
    /// Also serve Prometheus text metrics on http://ADDR/metrics.
    #[arg(long)]
    pub metrics_listen: Option<std::net::SocketAddr>,
}

pub async fn run(g: &GlobalArgs, a: &MonitorArgs) -> Result<i32> {
    monitor::run(g.load_cluster()?, &a.out, a.duration, a.metrics_listen).await?;
    Ok(0)
}
