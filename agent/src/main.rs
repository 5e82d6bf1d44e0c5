//! `herd-agent`: the per-host daemon.

use std::net::SocketAddr;
use std::path::PathBuf;

use anyhow::Context;
use clap::Parser;
use herd_agent::limits::Limits;
use herd_agent::{logs, server, Agent, AgentConfig};

#[derive(Parser, Debug)]
#[command(
    name = "herd-agent",
    version,
    about = "Herd's per-host agent: containers, checkpoints, migrations, metrics",
    args_override_self = true
)]
struct Args {
    /// Settings file (TOML, one `key = value` per flag, e.g.
    /// /etc/herd/agent.toml); flags on the command line win over it.
    #[arg(long)]
    config: Option<PathBuf>,
    /// This host's name in the cluster.
    #[arg(long)]
    node: String,
    /// Where images, containers and runtime state live.
    #[arg(long, default_value = "/var/lib/herd")]
    state_dir: PathBuf,
    /// QUIC listen address.
    #[arg(long, default_value = "0.0.0.0:7700")]
    listen: SocketAddr,
    /// Cluster CA certificate (PEM).
    #[arg(long)]
    ca: PathBuf,
    /// This node's certificate (PEM), issued by the cluster CA.
    #[arg(long)]
    cert: PathBuf,
    /// This node's private key (PEM).
    #[arg(long)]
    key: PathBuf,
    /// Prefix of container network namespace names (default `herdc-<node>-`).
    #[arg(long)]
    netns_prefix: Option<String>,
    /// cgroup parent of containers (default `/herd/<node>`).
    #[arg(long)]
    cgroup_parent: Option<String>,
    /// CPU capacity of this host for containers, in cores (e.g. 1.5): all
    /// containers together get at most that much CPU time, like
    /// `docker run --cpus` on their parent cgroup, and the host's CPU
    /// figures become theirs over it. Default: the whole machine.
    #[arg(long)]
    cpus: Option<f64>,
    /// Disk capacity of this host for containers, in IO operations per
    /// second, reads and writes each (the IO controller on their parent
    /// cgroup, for the disk of --state-dir): all containers together get
    /// at most that many, and the host's disk figures become theirs.
    /// cgroup v1 throttles only IO the tasks submit themselves (direct
    /// IO, fsync, reads), not buffered writeback. Default: unlimited.
    #[arg(long, value_parser = clap::value_parser!(u64).range(1..))]
    disk_iops: Option<u64>,
    /// Like --disk-iops, in bytes per second (64m, 1g, bytes; at least 4096).
    #[arg(long, value_parser = disk_bps)]
    disk_bps: Option<u64>,
    /// CRIU binary (default: $HERD_CRIU or `criu` in PATH).
    #[arg(long)]
    criu: Option<PathBuf>,
    /// Sampling interval of host and container metrics, in milliseconds.
    #[arg(long, default_value_t = 1000, value_parser = clap::value_parser!(u64).range(10..=3_600_000))]
    sample_interval_ms: u64,
    /// Serve Prometheus text metrics on http://ADDR/metrics (off by default).
    #[arg(long)]
    metrics_listen: Option<SocketAddr>,
    /// Most bytes an image import, checkpoint archive or upper layer may
    /// expand to (apparent sizes: sparse files count in full).
    #[arg(long, env = "HERD_MAX_UNPACK_BYTES", default_value_t = herd_overlay::Limits::DEFAULT_MAX_BYTES)]
    max_unpack_bytes: u64,
    /// Most entries (files, directories, links) of the same.
    #[arg(long, env = "HERD_MAX_UNPACK_ENTRIES", default_value_t = herd_overlay::Limits::DEFAULT_MAX_ENTRIES)]
    max_unpack_entries: u64,
    /// Most bytes one incoming migration may carry (all files, decompressed).
    #[arg(long, env = "HERD_MAX_MIGRATION_BYTES", default_value_t = Limits::DEFAULT_MIGRATION_BYTES)]
    max_migration_bytes: u64,
    /// Seconds a request frame may take to arrive once its stream is open.
    #[arg(long, env = "HERD_REQUEST_TIMEOUT_S", default_value_t = Limits::DEFAULT_REQUEST_TIMEOUT.as_secs(),
          value_parser = clap::value_parser!(u64).range(1..))]
    request_timeout_s: u64,
    /// Seconds an incoming migration stream may go without a frame (or a
    /// byte on its page stream), and
    /// any stream's peer without taking data the agent writes (log follow,
    /// monitor subscriptions, replies): then the stream is dropped.
    #[arg(long, env = "HERD_STREAM_IDLE_TIMEOUT_S", default_value_t = Limits::DEFAULT_STREAM_IDLE.as_secs(),
          value_parser = clap::value_parser!(u64).range(1..))]
    stream_idle_timeout_s: u64,
    /// Concurrent streams one peer (certificate) may hold, all connections together.
    #[arg(long, env = "HERD_MAX_STREAMS_PER_PEER", default_value_t = Limits::DEFAULT_STREAMS_PER_PEER)]
    max_streams_per_peer: usize,
}

/// `--disk-bps`: a size in the CLI's spelling (herd_wire::size).
fn disk_bps(s: &str) -> Result<u64, String> {
    herd_wire::size::parse_size(s)
        .ok_or_else(|| format!("bad size {s:?}: use e.g. 64m, 1.5g, 512k or bytes"))
}

/// Closes every inherited descriptor above stderr, so nothing the agent's
/// parent left open (a lock, a socket, a pipe) lives on in the agent or
/// reaches containers, CRIU or the log shims. The agent's own descriptors
/// are opened `O_CLOEXEC`, and each child gets only what it is handed.
/// Only the daemon does this: the re-executed helper modes get the fds
/// they need from the agent.
fn close_inherited_fds() {
    // SAFETY: close_range with integer arguments, before any thread or
    // descriptor of ours exists.
    let r = unsafe { libc::syscall(libc::SYS_close_range, 3u32, u32::MAX, 0u32) };
    if r == 0 {
        return;
    }
    // Kernels before 5.9: close what /proc lists.
    if let Ok(rd) = std::fs::read_dir("/proc/self/fd") {
        let fds: Vec<i32> = rd
            .flatten()
            .filter_map(|e| e.file_name().to_str()?.parse().ok())
            .filter(|fd| *fd > 2)
            .collect();
        for fd in fds {
            // SAFETY: closing a descriptor number we do not use; the
            // directory's own fd is gone by now (EBADF, ignored).
            unsafe { libc::close(fd) };
        }
    }
}

/// At most two malloc arenas for the daemon (glibc's default is 8 per
/// core). Requests run on short-lived blocking threads; each new thread
/// took an arena of its own and what it freed stayed there: 52 MiB of RSS
/// right after creating 1000 containers against 20 MiB for an agent
/// restarted over them. The sampler also trims after such bursts.
fn limit_malloc_arenas() {
    #[cfg(target_env = "gnu")]
    // SAFETY: mallopt with integer arguments, before the runtime's threads.
    unsafe {
        libc::mallopt(libc::M_ARENA_MAX, 2);
    }
}

fn main() -> anyhow::Result<()> {
    // The log shim re-executes this binary; keep it free of clap and tokio.
    let argv: Vec<std::ffi::OsString> = std::env::args_os().collect();
    if argv.get(1).map(|a| a == logs::SHIM_ARG).unwrap_or(false) {
        let log = argv.get(2).context("log shim needs a log path")?;
        logs::shim_main(std::path::Path::new(log)).context("log shim")?;
        return Ok(());
    }
    if argv
        .get(1)
        .map(|a| a == herd_agent::container::CREATE_ARG)
        .unwrap_or(false)
    {
        // A fresh single-threaded process: see container::run::create_and_start.
        std::process::exit(herd_agent::container::create_main(&argv[2..]));
    }
    if argv
        .get(1)
        .map(|a| a == herd_agent::container::EXEC_ARG)
        .unwrap_or(false)
    {
        std::process::exit(herd_agent::container::exec_main(&argv[2..]));
    }
    if argv
        .get(1)
        .is_some_and(|a| a == herd_agent::monitor::bench::ARG)
    {
        // `herd bench monitor`'s side-by-side reads (procfs crate vs hand-written).
        std::process::exit(herd_agent::monitor::bench::main(&argv[2..]));
    }
    let known: Vec<String> = <Args as clap::CommandFactory>::command()
        .get_arguments()
        .filter_map(|a| a.get_long().map(str::to_string))
        .collect();
    let args = Args::parse_from(herd_agent::config_file::expand_args(argv, &known)?);
    close_inherited_fds();
    limit_malloc_arenas();
    // Containers are made by a short-lived helper process; their init is
    // re-parented to us when it exits, so we can still wait for its status.
    // SAFETY: prctl with integer arguments.
    if unsafe { libc::prctl(libc::PR_SET_CHILD_SUBREAPER, 1, 0, 0, 0) } != 0 {
        eprintln!(
            "herd-agent: warning: cannot become a child subreaper: {}",
            std::io::Error::last_os_error()
        );
    }
    tracing_subscriber::fmt()
        .with_env_filter(
            tracing_subscriber::EnvFilter::try_from_env("HERD_LOG")
                .unwrap_or_else(|_| "info,libcontainer=warn,libcgroups=error".into()),
        )
        .with_ansi(std::io::IsTerminal::is_terminal(&std::io::stderr()))
        .with_writer(std::io::stderr)
        .init();
    if let Some(c) = &args.criu {
        std::env::set_var("HERD_CRIU", c);
    }
    // CRIU is the one program the agent needs on a host (the migration
    // fence is nf_tables over netlink, no `nft`): say at start-up whether
    // it answers. Containers run without it; checkpoints and moves do not.
    let criu = herd_criu::Criu::from_env();
    match criu.version() {
        Ok(v) => tracing::info!(criu = %criu.bin().display(), "CRIU {v}"),
        Err(e) => tracing::warn!(
            "CRIU ({}) does not answer: {e}; containers run, but checkpoint and migration \
             fail until CRIU >= 4.2 is installed (or pass --criu PATH)",
            criu.bin().display()
        ),
    }
    let agent = Agent::open(AgentConfig {
        node: args.node.clone(),
        state_dir: args.state_dir.clone(),
        netns_prefix: args.netns_prefix.clone(),
        cgroup_parent: args.cgroup_parent.clone(),
        cpus: args.cpus,
        disk: herd_agent::cgroup::DiskLimit {
            iops: args.disk_iops,
            bps: args.disk_bps,
        },
        limits: Limits {
            unpack: herd_overlay::Limits {
                max_bytes: args.max_unpack_bytes,
                max_entries: args.max_unpack_entries,
            },
            migration_bytes: args.max_migration_bytes,
            request_timeout: std::time::Duration::from_secs(args.request_timeout_s),
            stream_idle: std::time::Duration::from_secs(args.stream_idle_timeout_s),
            streams_per_peer: args.max_streams_per_peer,
        },
    })
    .with_context(|| format!("cannot open agent state in {}", args.state_dir.display()))?;
    let tls = herd_quic::pki::TlsFiles {
        ca: args.ca,
        cert: args.cert,
        key: args.key,
    };
    // Every stream's writes: a peer that stops reading is dropped.
    herd_quic::rpc::set_write_timeout(Some(std::time::Duration::from_secs(
        args.stream_idle_timeout_s,
    )));
    let rt = tokio::runtime::Builder::new_multi_thread()
        .worker_threads(2)
        .enable_all()
        .build()
        .context("tokio runtime")?;
    rt.block_on(async move {
        let ep = herd_quic::endpoint::server(args.listen, &tls)
            .with_context(|| format!("cannot listen on {}", args.listen))?;
        herd_agent::monitor::spawn_sampler(
            agent.clone(),
            std::time::Duration::from_millis(args.sample_interval_ms),
        )
        .context("start the sampler")?;
        if let Some(addr) = args.metrics_listen {
            let a = agent.clone();
            let l = tokio::net::TcpListener::bind(addr)
                .await
                .with_context(|| format!("cannot listen on {addr} for metrics"))?;
            tokio::spawn(herd_metrics::http::serve_on(l, move || {
                let a = a.clone();
                async move { herd_agent::monitor::prometheus(&a) }
            }));
        }
        // Migrations a previous run journalled: finish or undo them.
        herd_agent::migrate::resume_all(agent.clone(), ep.clone());
        tracing::info!(node = %args.node, listen = %args.listen, "agent ready");
        let serve = server::serve(agent, ep.clone());
        tokio::select! {
            _ = serve => {}
            _ = tokio::signal::ctrl_c() => {}
            _ = sigterm() => {}
        }
        tracing::info!("agent stopping; containers keep running");
        ep.close(0u32.into(), b"agent stopping");
        Ok(())
    })
}

async fn sigterm() {
    if let Ok(mut s) = tokio::signal::unix::signal(tokio::signal::unix::SignalKind::terminate()) {
        s.recv().await;
    }
}
