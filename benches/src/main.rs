//! `herd-bench`: Herd's benchmarks, each printing its plain-CRIU or peer
//! baseline from the same run and the ratio. `herd bench ...` runs this
//! binary with the same arguments.
//!
//! | file | what lives there |
//! |---|---|
//! | `src/checkpoint.rs` | `checkpoint`: Herd's checkpoint/restore vs plain `criu dump` / `criu restore` |
//! | `src/migrate.rs` | `migrate`: live migration per fs mode and size vs checkpoint + restore on one host, a TCP client's longest gap |
//! | `src/monitor.rs` | `monitor`: the agent's sampler with many real containers vs naive readers of the same files and netdata |
//! | `src/sim.rs` | `sim`: the simulator's tick and a policy decision at scale |

mod checkpoint;
mod migrate;
mod monitor;
mod sim;

use std::time::Duration;

use anyhow::Result;
use clap::{Parser, Subcommand};

/// Benchmarks (checkpoint, migrate and monitor start and remove their own lab).
#[derive(Parser, Debug)]
#[command(name = "herd bench", bin_name = "herd bench", version)]
struct Cli {
    #[command(subcommand)]
    cmd: BenchCmd,
}

#[derive(Subcommand, Debug)]
pub enum BenchCmd {
    /// The simulator at scale: a tick and a policy decision over 10,000 hosts.
    Sim(sim::BenchSimArgs),
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
    /// Live migration (small, 256 MiB compressible, 256 MiB and 1 GiB of
    /// random memory; fs diff, diff+zstd, none, whole) vs a checkpoint +
    /// restore on one host, with a TCP client's longest gap.
    Migrate {
        /// Runs per mode and size.
        #[arg(long, default_value_t = 5)]
        runs: usize,
        /// Sizes, comma-separated: small, 256MiB (one byte per page:
        /// compressible), 256MiB-random, 1GiB-random (incompressible,
        /// re-verified by the workload every second), 256MiB-dirty
        /// (256MiB-random plus 16 MiB rewritten every second).
        #[arg(long, default_value = "small,256MiB,256MiB-random,1GiB-random")]
        sizes: String,
        /// Modes, comma-separated: diff, diff+zstd, none, whole (fs modes,
        /// memory stop), stop (= diff), stream (memory streamed to the
        /// target during the dump), pre (pre-dump rounds while it runs;
        /// needs dirty-memory tracking: --vm), auto (the agent picks).
        #[arg(long, default_value = "diff,diff+zstd,none,whole")]
        modes: String,
        #[arg(long)]
        json: bool,
        /// Leave the bench lab up afterwards.
        #[arg(long)]
        keep_lab: bool,
        /// The bench lab's name (two benches at once need two names).
        #[arg(long, default_value = "hbenchm")]
        lab: String,
        /// Run in a VM lab (two QEMU guests, Debian 6.1 and 6.12 kernels)
        /// instead of network namespaces on this host.
        #[arg(long)]
        vm: bool,
    },
    /// Sampler cost with many real containers vs naive readers of the same files.
    Monitor {
        /// Container counts, comma-separated, measured in turn in one lab.
        #[arg(long, default_value = "1000")]
        containers: String,
        /// Measured seconds.
        #[arg(long, default_value_t = 60)]
        seconds: u64,
        #[arg(long)]
        json: bool,
        /// Leave the bench lab (hmonbench) up afterwards.
        #[arg(long)]
        keep_lab: bool,
        /// The bench lab's name (beside another run's or another user's lab).
        #[arg(long, default_value = monitor::LAB)]
        lab: String,
    },
    /// The bench's naive reader (run by `monitor` beside the agent).
    #[command(name = "__naive-reader", hide = true)]
    NaiveReader {
        list: std::path::PathBuf,
        interval_ms: u64,
        seconds: f64,
    },
}

async fn run(bc: &BenchCmd) -> Result<i32> {
    match bc {
        BenchCmd::Sim(a) => return sim::bench(a),
        BenchCmd::Checkpoint {
            runs,
            json,
            keep_lab,
        } => checkpoint::checkpoint(*runs, *json, *keep_lab).await?,
        BenchCmd::Migrate {
            runs,
            sizes,
            modes,
            json,
            keep_lab,
            lab,
            vm,
        } => {
            let o = migrate::Opts {
                runs: *runs,
                json: *json,
                keep_lab: *keep_lab,
                vm: *vm,
                lab,
            };
            migrate::migrate(sizes, modes, &o).await?
        }
        BenchCmd::Monitor {
            containers,
            seconds,
            json,
            keep_lab,
            lab,
        } => monitor::run(containers, *seconds, *json, *keep_lab, lab).await?,
        BenchCmd::NaiveReader {
            list,
            interval_ms,
            seconds,
        } => monitor::naive_reader(list, *interval_ms, *seconds)?,
    }
    Ok(0)
}

fn main() {
    // SAFETY: signal(2) with a constant disposition, before any thread exists.
    unsafe { libc::signal(libc::SIGPIPE, libc::SIG_DFL) };
    let cli = Cli::parse();
    if std::env::var_os("HERD_LOG").is_some() {
        tracing_subscriber::fmt()
            .with_env_filter(tracing_subscriber::EnvFilter::from_env("HERD_LOG"))
            .with_writer(std::io::stderr)
            .init();
    }
    let rt = match tokio::runtime::Builder::new_multi_thread()
        .worker_threads(2)
        .enable_all()
        .build()
    {
        Ok(rt) => rt,
        Err(e) => {
            eprintln!("herd: error: cannot start runtime: {e}");
            std::process::exit(1);
        }
    };
    let code = match rt.block_on(run(&cli.cmd)) {
        Ok(code) => code,
        Err(e) => {
            eprintln!("herd: error: {e:#}");
            1
        }
    };
    rt.shutdown_timeout(Duration::from_millis(200));
    std::process::exit(code);
}
