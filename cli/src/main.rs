//! `herd`: the command line for people.
//!
//! This file is the table of contents: the top of the clap tree and the
//! dispatch. Each command lives in `herd::commands` (an args struct and a
//! `run`); the library (`src/lib.rs`) holds what they share.

use herd::{commands as cmd, context::GlobalArgs};

use std::time::Duration;

use anyhow::Result;
use clap::{Parser, Subcommand};

#[derive(Parser, Debug)]
#[command(
    name = "herd",
    version,
    about = "Live-migrate containers between Linux hosts with CRIU",
    after_help = herd::exit::HELP
)]
struct Cli {
    #[command(flatten)]
    global: GlobalArgs,
    #[command(subcommand)]
    cmd: Cmd,
}

#[derive(Subcommand, Debug)]
enum Cmd {
    /// Create and start a container.
    Run(cmd::run::RunArgs),
    /// List containers on every node.
    Ps(cmd::ps::PsArgs),
    /// Show a container's output.
    Logs(cmd::logs::LogsArgs),
    /// Run a command in a running container.
    Exec(cmd::exec::ExecArgs),
    /// Stop containers: SIGTERM, then SIGKILL after the timeout.
    Stop(cmd::stop::StopArgs),
    /// Start stopped containers again (same filesystem, network, limits).
    Start(cmd::start::StartArgs),
    /// Stop and start containers again (a new process).
    Restart(cmd::restart::RestartArgs),
    /// Containers as JSON (the keys of `ps --json`).
    Inspect(cmd::inspect::InspectArgs),
    /// What containers consume (CPU %, memory, net and block IO, pids), as
    /// Podman's `stats`, from the agents' monitor samples.
    Stats(cmd::stats::StatsArgs),
    /// Wait until containers stop; print their exit codes.
    Wait(cmd::wait::WaitArgs),
    /// Send a signal to a container's init.
    Kill(cmd::kill::KillArgs),
    /// Remove containers.
    Rm(cmd::rm::RmArgs),
    /// Checkpoint a running container through CRIU (podman-style).
    Checkpoint(cmd::checkpoint::CheckpointArgs),
    /// Restore a checkpointed container, or import an exported one.
    Restore(cmd::restore::RestoreArgs),
    /// Live-migrate a running container to another node.
    Migrate(cmd::migrate::MigrateArgs),
    /// Herd Pong: hop a container across hosts and summarise the hops.
    Pong(cmd::pong::PongArgs),
    /// Images.
    #[command(subcommand)]
    Image(cmd::image::ImageCmd),
    /// Networks whose containers keep their IP and MAC across hosts.
    #[command(subcommand)]
    Network(cmd::network::NetworkCmd),
    /// The cluster's certificate authority.
    #[command(subcommand)]
    Ca(cmd::ca::CaCmd),
    /// A lab of hosts on this machine.
    #[command(subcommand)]
    Lab(cmd::lab::LabCmd),
    /// The nodes of a cluster file for real hosts (`--cluster FILE`).
    #[command(subcommand)]
    Node(cmd::node::NodeCmd),
    /// Benchmarks: runs `herd-bench` (next to this binary) with the same
    /// arguments (checkpoint, migrate and monitor start and remove their own lab).
    Bench(cmd::bench::BenchArgs),
    /// Placement scenarios.
    #[command(subcommand)]
    Scenario(cmd::scenario::ScenarioCmd),
    /// Run a scenario in the simulator under one or more policies.
    Sim(cmd::sim::SimArgs),
    /// The thesis's table and plots over run directories.
    Report(cmd::report::ReportArgs),
    /// Ops/s forecasting from monitor CSVs: train, eval, importance, export.
    #[command(subcommand)]
    Forecast(cmd::forecast::ForecastCmd),
    /// Place containers live: follow every agent, run a policy every
    /// period over a window of samples, migrate what it says; decisions.csv
    /// and the monitor's CSVs go into --out.
    Coordinator(cmd::coordinator::CoordinatorArgs),
    /// Subscribe to every agent and write hosts.csv, containers.csv,
    /// migrations.csv and logs/<container>.log into DIR.
    Monitor(cmd::monitor::MonitorArgs),
    /// A live table of hosts and containers.
    Top(cmd::top::TopArgs),
    /// This client's version, its JSON format and agent protocol.
    Version(cmd::version::VersionArgs),
}

async fn dispatch(cli: Cli) -> Result<i32> {
    let g = &cli.global;
    match &cli.cmd {
        Cmd::Run(a) => cmd::run::run(g, a).await,
        Cmd::Ps(a) => cmd::ps::run(g, a).await,
        Cmd::Logs(a) => cmd::logs::run(g, a).await,
        Cmd::Exec(a) => cmd::exec::run(g, a).await,
        Cmd::Stop(a) => cmd::stop::run(g, a).await,
        Cmd::Start(a) => cmd::start::run(g, a).await,
        Cmd::Restart(a) => cmd::restart::run(g, a).await,
        Cmd::Inspect(a) => cmd::inspect::run(g, a).await,
        Cmd::Stats(a) => cmd::stats::run(g, a).await,
        Cmd::Wait(a) => cmd::wait::run(g, a).await,
        Cmd::Kill(a) => cmd::kill::run(g, a).await,
        Cmd::Rm(a) => cmd::rm::run(g, a).await,
        Cmd::Checkpoint(a) => cmd::checkpoint::run(g, a).await,
        Cmd::Restore(a) => cmd::restore::run(g, a).await,
        Cmd::Migrate(a) => cmd::migrate::run(g, a).await,
        Cmd::Pong(a) => cmd::pong::run(g, a).await,
        Cmd::Image(c) => cmd::image::run(g, c).await,
        Cmd::Network(c) => cmd::network::run(g, c).await,
        Cmd::Ca(c) => cmd::ca::run(c),
        Cmd::Lab(c) => cmd::lab::run(g, c).await,
        Cmd::Node(c) => cmd::node::run(g, c).await,
        Cmd::Bench(a) => cmd::bench::run(a),
        Cmd::Scenario(c) => cmd::scenario::run(g, c).await,
        Cmd::Sim(a) => cmd::sim::run(a),
        Cmd::Report(a) => cmd::report::run(a),
        Cmd::Forecast(c) => cmd::forecast::run(c),
        Cmd::Coordinator(a) => cmd::coordinator::run(g, a).await,
        Cmd::Monitor(a) => cmd::monitor::run(g, a).await,
        Cmd::Top(a) => cmd::top::run(g, a).await,
        Cmd::Version(a) => cmd::version::run(a),
    }
}

fn main() {
    // Like other Unix tools, end quietly when the reader of our output goes
    // away (`herd ps | head -3`): Rust ignores SIGPIPE, and println! would
    // panic on EPIPE.
    // SAFETY: signal(2) with a constant disposition, before any thread exists.
    unsafe { libc::signal(libc::SIGPIPE, libc::SIG_DFL) };
    // A usage error exits 125 (Podman's "herd's own error"), not clap's 2;
    // --help and --version still exit 0.
    let cli = match Cli::try_parse() {
        Ok(c) => c,
        Err(e) => {
            let _ = e.print();
            std::process::exit(if e.use_stderr() {
                herd::exit::HERD_ERROR
            } else {
                0
            });
        }
    };
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
            std::process::exit(herd::exit::HERD_ERROR);
        }
    };
    let code = match rt.block_on(dispatch(cli)) {
        Ok(code) => code,
        Err(e) => {
            eprintln!("herd: error: {e:#}");
            herd::exit::of(&e)
        }
    };
    rt.shutdown_timeout(Duration::from_millis(200));
    std::process::exit(code);
}
