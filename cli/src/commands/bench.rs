//! `herd bench checkpoint|migrate|monitor|sim`: the benchmarks (checkpoint,
//! migrate and monitor start and remove their own lab).

use anyhow::Result;
use clap::Subcommand;

use crate::{bench, bench_migrate, bench_monitor, bench_sim};

#[derive(Subcommand, Debug)]
pub enum BenchCmd {
    /// The simulator at scale: a tick and a policy decision over 10,000 hosts.
    Sim(crate::bench_sim::BenchSimArgs),
    /// Checkpoint and restore through Herd vs plain `criu dump` / `criu restore`.
    Checkpoint {
        /// Runs per workload size.
        #[arg(long, default_value_t = 5)]
        runs: usize,
        /// Print the results as JSON.
        #[arg(long)]
        json: bool,
        /// Leave the bench lab (hbench) up afterwards.
        #[arg(long)]
        keep_lab: bool,
    },
    /// Live migration (small and 256 MiB; fs diff, diff+zstd, none, whole)
    /// vs a checkpoint + restore on one host, with a TCP client's longest gap.
    Migrate {
        /// Runs per mode and size.
        #[arg(long, default_value_t = 5)]
        runs: usize,
        #[arg(long)]
        json: bool,
        /// Leave the bench lab (hbenchm) up afterwards.
        #[arg(long)]
        keep_lab: bool,
    },
    /// Sampler cost with many real containers vs a naive Python loop.
    Monitor {
        #[arg(long, default_value_t = 1000)]
        containers: usize,
        /// Measured seconds.
        #[arg(long, default_value_t = 60)]
        seconds: u64,
        #[arg(long)]
        json: bool,
        /// Leave the bench lab (hmonbench) up afterwards.
        #[arg(long)]
        keep_lab: bool,
    },
}

pub async fn run(bc: &BenchCmd) -> Result<i32> {
    match bc {
        BenchCmd::Sim(a) => return bench_sim::bench(a),
        BenchCmd::Checkpoint {
            runs,
            json,
            keep_lab,
        } => bench::checkpoint(*runs, *json, *keep_lab).await?,
        BenchCmd::Migrate {
            runs,
            json,
            keep_lab,
        } => bench_migrate::migrate(*runs, *json, *keep_lab).await?,
        BenchCmd::Monitor {
            containers,
            seconds,
            json,
            keep_lab,
        } => bench_monitor::run(*containers, *seconds, *json, *keep_lab).await?,
    }
    Ok(0)
}
