//! `herd`: the command line for people.

mod bench;
mod bench_migrate;
mod bench_monitor;
mod client;
mod cluster;
mod coordinator;
mod forecast;
mod lab;
mod monitor;
mod network;
mod rootfs;
mod scenario;
mod sim;
mod top;
// The agent's tiny /metrics responder, shared without pulling in the agent.
#[path = "../../agent/src/monitor/metrics.rs"]
mod http;

use std::path::PathBuf;
use std::time::Duration;

use anyhow::{bail, Context, Result};
use clap::{Parser, Subcommand};
use herd_wire::{ContainerInfo, LogStream, Request, Response, RunSpec};

use client::{unexpected, Client};
use cluster::Cluster;

#[derive(Parser, Debug)]
#[command(
    name = "herd",
    version,
    about = "Live-migrate containers between Linux hosts with CRIU"
)]
struct Cli {
    /// Cluster file (default: the lab's, see --lab).
    #[arg(long, global = true, env = "HERD_CLUSTER")]
    cluster: Option<PathBuf>,
    /// Lab name.
    #[arg(long, global = true, env = "HERD_LAB", default_value = "herd")]
    lab: String,
    #[command(subcommand)]
    cmd: Cmd,
}

#[derive(Subcommand, Debug)]
enum Cmd {
    /// Create and start a container.
    Run {
        /// Node to run on (default: the first node).
        #[arg(long)]
        node: Option<String>,
        /// Container name (default: a generated one).
        #[arg(long)]
        name: Option<String>,
        /// Environment variable KEY=VALUE (repeatable).
        #[arg(short = 'e', long = "env")]
        env: Vec<String>,
        /// Memory limit, e.g. 64m, 1g.
        #[arg(long)]
        memory: Option<String>,
        /// CPU limit in cores, e.g. 1.5.
        #[arg(long)]
        cpus: Option<f64>,
        /// Hostname inside the container (default: its name).
        #[arg(long)]
        hostname: Option<String>,
        /// Attach to this network (`herd network ls`): the container gets its
        /// own MAC and IP, kept across migrations.
        #[arg(long)]
        net: Option<String>,
        /// The address on --net (default: the first free one of its range).
        #[arg(long, requires = "net")]
        ip: Option<String>,
        image: String,
        /// Command and arguments (after `--`).
        #[arg(last = true)]
        cmd: Vec<String>,
    },
    /// List containers on every node.
    Ps {
        #[arg(long)]
        json: bool,
        #[arg(long)]
        node: Option<String>,
    },
    /// Show a container's output.
    Logs {
        #[arg(short, long)]
        follow: bool,
        /// Only the last N lines.
        #[arg(long)]
        tail: Option<u64>,
        /// Prefix lines with their timestamps.
        #[arg(short = 't', long)]
        timestamps: bool,
        name: String,
    },
    /// Run a command in a running container.
    Exec {
        #[arg(short = 'e', long = "env")]
        env: Vec<String>,
        name: String,
        #[arg(last = true, required = true)]
        cmd: Vec<String>,
    },
    /// Stop containers: SIGTERM, then SIGKILL after the timeout.
    Stop {
        /// Seconds to wait before SIGKILL.
        #[arg(short = 't', long, default_value_t = 10)]
        time: u64,
        #[arg(required = true)]
        names: Vec<String>,
    },
    /// Send a signal to a container's init.
    Kill {
        #[arg(short, long, default_value = "KILL")]
        signal: String,
        #[arg(required = true)]
        names: Vec<String>,
    },
    /// Remove containers.
    Rm {
        /// Stop running containers first.
        #[arg(short, long)]
        force: bool,
        #[arg(required = true)]
        names: Vec<String>,
    },
    /// Checkpoint a running container through CRIU (podman-style).
    Checkpoint {
        /// Keep the container running after the checkpoint.
        #[arg(short = 'R', long)]
        leave_running: bool,
        /// Also export the checkpoint to FILE.tar or FILE.tar.zst (a path on the agent's host).
        #[arg(short, long)]
        export: Option<PathBuf>,
        /// Print the report as JSON.
        #[arg(long)]
        json: bool,
        name: String,
    },
    /// Restore a checkpointed container, or import an exported one.
    Restore {
        /// Restore from an archive written by `checkpoint --export`.
        #[arg(short, long, conflicts_with = "name")]
        import: Option<PathBuf>,
        /// With --import: the restored container's name (default: the archived one).
        #[arg(short = 'n', long = "name", requires = "import")]
        new_name: Option<String>,
        /// With --import: the node to restore on (default: the first node).
        #[arg(long, requires = "import")]
        node: Option<String>,
        #[arg(long)]
        json: bool,
        #[arg(required_unless_present = "import")]
        name: Option<String>,
    },
    /// Live-migrate a running container to another node.
    Migrate {
        name: String,
        /// Target node.
        #[arg(long)]
        to: String,
        /// What of the filesystem moves: diff (upper layer, pre-sent), none, whole.
        #[arg(long, default_value = "diff")]
        fs: herd_wire::migrate::FsMode,
        /// Compress the transfer (zstd).
        #[arg(long, value_parser = ["zstd", "none"], default_value = "none")]
        compress: String,
        #[arg(long)]
        json: bool,
    },
    /// Herd Pong: hop a container across hosts and summarise the hops.
    Pong {
        name: String,
        /// Hosts to hop across, e.g. n1,n2,n3.
        #[arg(long, value_delimiter = ',', required = true)]
        hosts: Vec<String>,
        /// Number of hops.
        #[arg(long, default_value_t = 10)]
        count: usize,
        /// Seconds to stay on each host.
        #[arg(long, default_value_t = 1.0)]
        dwell: f64,
        /// Pick the next host at random (never the current one).
        #[arg(long)]
        random: bool,
        #[arg(long, default_value_t = 1)]
        seed: u64,
        #[arg(long, default_value = "diff")]
        fs: herd_wire::migrate::FsMode,
        #[arg(long)]
        json: bool,
    },
    /// Images.
    #[command(subcommand)]
    Image(ImageCmd),
    /// Networks whose containers keep their IP and MAC across hosts.
    #[command(subcommand)]
    Network(NetworkCmd),
    /// The cluster's certificate authority.
    #[command(subcommand)]
    Ca(CaCmd),
    /// A lab of hosts on this machine.
    #[command(subcommand)]
    Lab(LabCmd),
    /// Benchmarks (checkpoint and migrate start and remove their own lab).
    #[command(subcommand)]
    Bench(BenchCmd),
    /// Placement scenarios.
    #[command(subcommand)]
    Scenario(scenario::ScenarioCmd),
    /// Run a scenario in the simulator under one or more policies.
    Sim(sim::SimArgs),
    /// The thesis's table and plots over run directories.
    Report(sim::ReportArgs),
    /// Ops/s forecasting from monitor CSVs: train, eval, importance, export.
    #[command(subcommand)]
    Forecast(forecast::ForecastCmd),
    /// Place containers live: follow every agent, run a policy every
    /// period over a window of samples, migrate what it says; decisions.csv
    /// and the monitor's CSVs go into --out.
    Coordinator {
        /// none, cpu-greedy, cpu-greedy-threads, oltp-disk, oracle, forecast.
        #[arg(long)]
        policy: String,
        #[arg(long, default_value = ".")]
        out: PathBuf,
        /// Stop after this long (e.g. 30m); default: until Ctrl-C.
        #[arg(long, value_parser = monitor::parse_duration)]
        duration: Option<Duration>,
        #[command(flatten)]
        placement: sim::PlacementArgs,
    },
    /// Subscribe to every agent and write hosts.csv, containers.csv,
    /// migrations.csv and logs/<container>.log into DIR.
    Monitor {
        #[arg(long)]
        out: PathBuf,
        /// Stop after this long (e.g. 30s, 5m); default: until Ctrl-C.
        #[arg(long, value_parser = monitor::parse_duration)]
        duration: Option<Duration>,
        /// Also serve Prometheus text metrics on http://ADDR/metrics.
        #[arg(long)]
        metrics_listen: Option<std::net::SocketAddr>,
    },
    /// A live table of hosts and containers.
    Top {
        /// Print one table and exit.
        #[arg(long)]
        once: bool,
    },
}

#[derive(Subcommand, Debug)]
enum BenchCmd {
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

#[derive(Subcommand, Debug)]
enum NetworkCmd {
    /// Define a network on every node (or --node).
    Create {
        name: String,
        /// IPv4 subnet, e.g. 10.77.1.0/24.
        #[arg(long)]
        subnet: String,
        /// Default gateway of the containers.
        #[arg(long)]
        gateway: Option<String>,
        /// Each host's uplink interface the containers' macvlans hang off.
        #[arg(long = "parent-if")]
        parent_if: String,
        /// Addresses handed out, A.B.C.D-A.B.C.E (default: the upper half of the subnet).
        #[arg(long)]
        range: Option<String>,
        #[arg(long)]
        node: Option<String>,
    },
    /// List networks and the nodes that know them.
    Ls {
        #[arg(long)]
        json: bool,
    },
    /// Remove a network no container uses.
    Rm { name: String },
}

#[derive(Subcommand, Debug)]
enum ImageCmd {
    /// Import a rootfs dir, a tar of one, or an OCI image layout (dir or tar).
    Import {
        name: String,
        /// Path on the agents' host.
        #[arg(required_unless_present = "busybox")]
        path: Option<PathBuf>,
        /// Build the image from this host's static busybox instead.
        #[arg(long, conflicts_with = "path")]
        busybox: bool,
        /// With --busybox: extra static binaries for /bin (herd-work is added when found).
        #[arg(long)]
        add: Vec<PathBuf>,
        /// Only this node (default: every node).
        #[arg(long)]
        node: Option<String>,
    },
    /// List images.
    Ls {
        #[arg(long)]
        json: bool,
        #[arg(long)]
        node: Option<String>,
    },
    /// Remove an image.
    Rm {
        name: String,
        #[arg(long)]
        node: Option<String>,
    },
}

#[derive(Subcommand, Debug)]
enum CaCmd {
    /// Create a cluster CA in DIR.
    Init {
        dir: PathBuf,
        #[arg(long, default_value = "herd")]
        name: String,
        /// Replace an existing CA (invalidates every certificate).
        #[arg(long)]
        force: bool,
    },
    /// Issue a node or user certificate signed by the CA in --ca-dir.
    Issue {
        #[arg(long)]
        ca_dir: PathBuf,
        name: String,
        #[arg(long, value_parser = ["node", "user"], default_value = "node")]
        role: String,
        /// Output dir (default: the CA dir).
        #[arg(long)]
        out: Option<PathBuf>,
        /// Extra subject alternative names (IPs or DNS names).
        #[arg(long)]
        san: Vec<String>,
    },
}

#[derive(Subcommand, Debug)]
enum LabCmd {
    /// Start N hosts as network namespaces on a bridge, one agent each.
    Up {
        #[arg(long, default_value_t = 3)]
        nodes: usize,
        /// Each node's CPU capacity for containers, in cores: one value for
        /// all nodes or one per node (e.g. 1,0.5,0.5). Default: every node
        /// shares the whole machine.
        #[arg(long, value_delimiter = ',')]
        cpus: Vec<f64>,
    },
    /// Stop the agents and remove every netns, link, mount, cgroup and container of the lab.
    Down,
    /// Show the lab's nodes and whether their agents answer.
    Status,
    /// The main job: a lab, an image, a container, its logs, teardown.
    Demo,
    /// Kill a node's agent as if it crashed and start it again (containers keep running).
    Restart { node: String },
}

fn main() {
    // Like other Unix tools, end quietly when the reader of our output goes
    // away (`herd ps | head -3`): Rust ignores SIGPIPE, and println! would
    // panic on EPIPE.
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
    let code = match rt.block_on(run(cli)) {
        Ok(code) => code,
        Err(e) => {
            eprintln!("herd: error: {e:#}");
            1
        }
    };
    rt.shutdown_timeout(Duration::from_millis(200));
    std::process::exit(code);
}

fn client(cli: &Cli) -> Result<Client> {
    let path = cluster::cluster_file(cli.cluster.as_deref(), &cli.lab);
    Client::new(Cluster::load(&path)?)
}

async fn run(cli: Cli) -> Result<i32> {
    match &cli.cmd {
        Cmd::Run {
            node,
            name,
            env,
            memory,
            cpus,
            hostname,
            net,
            ip,
            image,
            cmd,
        } => {
            let memory_bytes = match memory {
                Some(m) => Some(
                    herd_agent_size(m)
                        .with_context(|| format!("--memory {m:?}: use e.g. 64m, 1g"))?,
                ),
                None => None,
            };
            for e in env {
                if !e.contains('=') {
                    bail!("-e {e:?}: expected KEY=VALUE");
                }
            }
            let mut c = client(&cli)?;
            let node = match node {
                Some(n) => n.clone(),
                None => c
                    .node_names()
                    .first()
                    .cloned()
                    .context("the cluster has no nodes")?,
            };
            let name = name.clone().unwrap_or_else(generate_name);
            let spec = RunSpec {
                name,
                image: image.clone(),
                cmd: cmd.clone(),
                env: env.clone(),
                memory_bytes,
                cpus: *cpus,
                hostname: hostname.clone(),
                net: match net {
                    Some(n) => Some(network::attach_for(&mut c, &node, n, ip.as_deref()).await?),
                    None => None,
                },
            };
            match c.call(&node, Request::Run(spec)).await? {
                Response::Container(info) => println!("{}", info.name),
                r => return Err(unexpected(r)),
            }
        }
        Cmd::Ps { json, node } => {
            let mut c = client(&cli)?;
            let nodes = match node {
                Some(n) => vec![n.clone()],
                None => c.node_names(),
            };
            let mut all: Vec<ContainerInfo> = Vec::new();
            let mut failed = Vec::new();
            for n in nodes {
                match c.call(&n, Request::List).await {
                    Ok(Response::Containers(v)) => all.extend(v),
                    Ok(r) => return Err(unexpected(r)),
                    Err(e) => failed.push(format!("{e:#}")),
                }
            }
            if *json {
                println!("{}", serde_json::to_string_pretty(&all)?);
            } else {
                print_ps(&all);
            }
            for f in &failed {
                eprintln!("herd: warning: {f}");
            }
            if !failed.is_empty() {
                return Ok(1);
            }
        }
        Cmd::Logs {
            follow,
            tail,
            timestamps,
            name,
        } => {
            let mut c = client(&cli)?;
            let node = c.locate(name).await?;
            let mut recv = c
                .stream(
                    &node,
                    Request::Logs {
                        name: name.clone(),
                        follow: *follow,
                        tail: *tail,
                    },
                )
                .await?;
            use std::io::Write;
            loop {
                let msg: Option<Response> =
                    herd_quic::rpc::recv_msg(&mut recv, herd_wire::frame::MAX_FRAME).await?;
                match msg {
                    Some(Response::Log(l)) => {
                        let text = if *timestamps {
                            format!("{} {}\n", fmt_time(l.time_ns), l.line)
                        } else {
                            format!("{}\n", l.line)
                        };
                        let r = match l.stream {
                            LogStream::Stdout => std::io::stdout().write_all(text.as_bytes()),
                            LogStream::Stderr => std::io::stderr().write_all(text.as_bytes()),
                        };
                        if r.is_err() {
                            return Ok(0); // reader went away (e.g. `| head`)
                        }
                    }
                    Some(Response::End) | None => break,
                    Some(Response::Error(e)) => bail!("{node}: {e}"),
                    Some(r) => return Err(unexpected(r)),
                }
            }
        }
        Cmd::Exec { env, name, cmd } => {
            let mut c = client(&cli)?;
            let node = c.locate(name).await?;
            let r = c
                .call(
                    &node,
                    Request::Exec {
                        name: name.clone(),
                        cmd: cmd.clone(),
                        env: env.clone(),
                    },
                )
                .await?;
            match r {
                Response::Exec(out) => {
                    use std::io::Write;
                    let _ = std::io::stdout().write_all(&out.stdout);
                    let _ = std::io::stderr().write_all(&out.stderr);
                    return Ok(out.exit_code);
                }
                r => return Err(unexpected(r)),
            }
        }
        Cmd::Stop { time, names } => {
            let mut c = client(&cli)?;
            for name in names {
                let node = c.locate(name).await?;
                c.call(
                    &node,
                    Request::Stop {
                        name: name.clone(),
                        timeout_s: *time,
                    },
                )
                .await?;
                println!("{name}");
            }
        }
        Cmd::Kill { signal, names } => {
            let sig = parse_signal(signal)?;
            let mut c = client(&cli)?;
            for name in names {
                let node = c.locate(name).await?;
                c.call(
                    &node,
                    Request::Kill {
                        name: name.clone(),
                        signal: sig,
                    },
                )
                .await?;
                println!("{name}");
            }
        }
        Cmd::Rm { force, names } => {
            let mut c = client(&cli)?;
            for name in names {
                let node = c.locate(name).await?;
                c.call(
                    &node,
                    Request::Remove {
                        name: name.clone(),
                        force: *force,
                    },
                )
                .await?;
                println!("{name}");
            }
        }
        Cmd::Checkpoint {
            leave_running,
            export,
            json,
            name,
        } => {
            let export = match export {
                Some(p) => Some(absolute(p)?.to_string_lossy().into_owned()),
                None => None,
            };
            let mut c = client(&cli)?;
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
        }
        Cmd::Restore {
            import,
            new_name,
            node,
            json,
            name,
        } => {
            let mut c = client(&cli)?;
            let (node, req) = match (import, name) {
                (Some(path), _) => {
                    let node = match node {
                        Some(n) => {
                            c.cluster.node(n)?;
                            n.clone()
                        }
                        None => c
                            .node_names()
                            .first()
                            .cloned()
                            .context("the cluster has no nodes")?,
                    };
                    let path = absolute(path)?;
                    if !path.exists() {
                        bail!("{}: no such file", path.display());
                    }
                    (
                        node,
                        Request::RestoreImport {
                            path: path.to_string_lossy().into_owned(),
                            name: new_name.clone(),
                        },
                    )
                }
                (None, Some(name)) => (
                    c.locate(name).await?,
                    Request::Restore { name: name.clone() },
                ),
                (None, None) => bail!("give a container name or --import FILE"),
            };
            let r = c.call(&node, req).await?;
            let Response::Restored(rep) = r else {
                return Err(unexpected(r));
            };
            if *json {
                println!("{}", serde_json::to_string_pretty(&rep)?);
            } else {
                println!(
                    "{} restored on {}: {:.0} ms (CRIU restore {:.1} ms), pid {}",
                    rep.container.name,
                    rep.container.node,
                    rep.total_ms,
                    rep.criu_restore_ms,
                    rep.container.pid.unwrap_or(0)
                );
            }
        }
        Cmd::Migrate {
            name,
            to,
            fs,
            compress,
            json,
        } => {
            let mut c = client(&cli)?;
            let rep = migrate(&mut c, name, to, *fs, compress == "zstd", !*json).await?;
            if *json {
                println!("{}", serde_json::to_string_pretty(&rep)?);
            } else {
                print_migration(&rep);
            }
        }
        Cmd::Pong {
            name,
            hosts,
            count,
            dwell,
            random,
            seed,
            fs,
            json,
        } => {
            return pong(
                &cli, name, hosts, *count, *dwell, *random, *seed, *fs, *json,
            )
            .await
        }
        Cmd::Monitor {
            out,
            duration,
            metrics_listen,
        } => {
            let path = cluster::cluster_file(cli.cluster.as_deref(), &cli.lab);
            monitor::run(Cluster::load(&path)?, out, *duration, *metrics_listen).await?
        }
        Cmd::Top { once } => {
            let path = cluster::cluster_file(cli.cluster.as_deref(), &cli.lab);
            top::run(Cluster::load(&path)?, *once).await?
        }
        Cmd::Image(ic) => return image_cmd(&cli, ic).await,
        Cmd::Network(nc) => {
            let mut c = client(&cli)?;
            match nc {
                NetworkCmd::Create {
                    name,
                    subnet,
                    gateway,
                    parent_if,
                    range,
                    node,
                } => {
                    let range = match range {
                        Some(r) => r.clone(),
                        None => {
                            herd_wire::net::default_range(subnet).map_err(anyhow::Error::msg)?
                        }
                    };
                    let def = herd_wire::NetworkDef {
                        name: name.clone(),
                        subnet: subnet.clone(),
                        gateway: gateway.clone(),
                        parent: parent_if.clone(),
                        range,
                    };
                    let nodes = match node {
                        Some(n) => vec![n.clone()],
                        None => c.node_names(),
                    };
                    network::create(&mut c, &def, &nodes).await?;
                    println!("{name}");
                }
                NetworkCmd::Ls { json } => {
                    let l = network::list(&mut c).await?;
                    if *json {
                        let v: Vec<_> = l
                            .iter()
                            .map(|(n, d)| serde_json::json!({"node": n, "name": d.name, "subnet": d.subnet, "gateway": d.gateway, "parent_if": d.parent, "range": d.range}))
                            .collect();
                        println!("{}", serde_json::to_string_pretty(&v)?);
                    } else {
                        network::print(&l);
                    }
                }
                NetworkCmd::Rm { name } => {
                    network::remove(&mut c, name).await?;
                    println!("{name}");
                }
            }
        }
        Cmd::Ca(cc) => ca_cmd(cc)?,
        Cmd::Lab(lc) => return lab_cmd(&cli, lc).await,
        Cmd::Scenario(c) => {
            return scenario::run(c, &cluster::cluster_file(cli.cluster.as_deref(), &cli.lab)).await
        }
        Cmd::Coordinator {
            policy,
            out,
            duration,
            placement,
        } => {
            let path = cluster::cluster_file(cli.cluster.as_deref(), &cli.lab);
            let cfg = placement.config()?;
            coordinator::coordinator(Cluster::load(&path)?, policy, cfg, out, *duration).await?
        }
        Cmd::Sim(a) => return sim::run(a),
        Cmd::Report(a) => return sim::report(a),
        Cmd::Bench(BenchCmd::Sim(a)) => return sim::bench(a),
        Cmd::Forecast(fc) => return forecast::run(fc),
        Cmd::Bench(BenchCmd::Checkpoint {
            runs,
            json,
            keep_lab,
        }) => bench::checkpoint(*runs, *json, *keep_lab).await?,
        Cmd::Bench(BenchCmd::Migrate {
            runs,
            json,
            keep_lab,
        }) => bench_migrate::migrate(*runs, *json, *keep_lab).await?,
        Cmd::Bench(BenchCmd::Monitor {
            containers,
            seconds,
            json,
            keep_lab,
        }) => bench_monitor::run(*containers, *seconds, *json, *keep_lab).await?,
    }
    Ok(0)
}

async fn image_cmd(cli: &Cli, ic: &ImageCmd) -> Result<i32> {
    let mut c = client(cli)?;
    match ic {
        ImageCmd::Import {
            name,
            path,
            busybox,
            add,
            node,
        } => {
            let (src, _tmp) = if *busybox {
                let tmp = tempdir_in(&c.cluster.dir)?;
                let mut extra = add.clone();
                if let Some(w) = rootfs::find_herd_work() {
                    if !extra.iter().any(|e| e.file_name() == w.file_name()) {
                        extra.push(w);
                    }
                }
                rootfs::build_busybox(&tmp.0, &extra)?;
                (tmp.0.clone(), Some(tmp))
            } else {
                let p = path.as_ref().context("a PATH or --busybox is needed")?;
                let p = std::fs::canonicalize(p).with_context(|| format!("{}", p.display()))?;
                (p, None)
            };
            let nodes = match node {
                Some(n) => vec![n.clone()],
                None => c.node_names(),
            };
            for n in nodes {
                match c
                    .call(
                        &n,
                        Request::ImageImport {
                            name: name.clone(),
                            path: src.to_string_lossy().into_owned(),
                        },
                    )
                    .await?
                {
                    Response::Image(i) => println!(
                        "{n}: {} {} ({} layer(s), {})",
                        i.name,
                        short_id(&i.id),
                        i.layers,
                        human_bytes(i.size_bytes)
                    ),
                    r => return Err(unexpected(r)),
                }
            }
        }
        ImageCmd::Ls { json, node } => {
            let nodes = match node {
                Some(n) => vec![n.clone()],
                None => c.node_names(),
            };
            let mut rows = Vec::new();
            for n in nodes {
                match c.call(&n, Request::ImageList).await? {
                    Response::Images(v) => rows.extend(v.into_iter().map(|i| (n.clone(), i))),
                    r => return Err(unexpected(r)),
                }
            }
            if *json {
                let v: Vec<_> = rows
                    .iter()
                    .map(|(n, i)| {
                        serde_json::json!({"node": n, "name": i.name, "id": i.id, "layers": i.layers, "size_bytes": i.size_bytes, "created": i.created})
                    })
                    .collect();
                println!("{}", serde_json::to_string_pretty(&v)?);
            } else {
                println!(
                    "{:<8} {:<24} {:<14} {:>6} {:>10}",
                    "NODE", "NAME", "ID", "LAYERS", "SIZE"
                );
                for (n, i) in rows {
                    println!(
                        "{:<8} {:<24} {:<14} {:>6} {:>10}",
                        n,
                        i.name,
                        short_id(&i.id),
                        i.layers,
                        human_bytes(i.size_bytes)
                    );
                }
            }
        }
        ImageCmd::Rm { name, node } => {
            let nodes = match node {
                Some(n) => vec![n.clone()],
                None => c.node_names(),
            };
            let mut found = false;
            for n in nodes {
                match c
                    .call(&n, Request::ImageRemove { name: name.clone() })
                    .await
                {
                    Ok(_) => found = true,
                    Err(e) => match e.downcast_ref::<client::AgentFailure>() {
                        Some(f) if f.err.kind == herd_wire::ErrorKind::NotFound => {}
                        _ => return Err(e),
                    },
                }
            }
            if !found {
                bail!("no such image: {name}");
            }
            println!("{name}");
        }
    }
    Ok(0)
}

fn ca_cmd(cc: &CaCmd) -> Result<()> {
    use herd_quic::pki;
    match cc {
        CaCmd::Init { dir, name, force } => {
            let p = pki::init_ca(dir, name, *force)?;
            println!(
                "CA {} created: {} (key {})",
                name,
                p.cert.display(),
                p.key.display()
            );
        }
        CaCmd::Issue {
            ca_dir,
            name,
            role,
            out,
            san,
        } => {
            let role = if role == "user" {
                pki::Role::User
            } else {
                pki::Role::Node
            };
            let out = out.clone().unwrap_or_else(|| ca_dir.clone());
            let p = pki::issue(ca_dir, name, role, &out, san)?;
            println!(
                "{} {}: {} (key {})",
                role.as_str(),
                name,
                p.cert.display(),
                p.key.display()
            );
        }
    }
    Ok(())
}

async fn lab_cmd(cli: &Cli, lc: &LabCmd) -> Result<i32> {
    match lc {
        LabCmd::Up { nodes, cpus } => {
            let cl = lab::up(&cli.lab, *nodes, cpus).await?;
            println!("lab {} is up: {} node(s)", cl.name, cl.nodes.len());
            for n in &cl.nodes {
                println!(
                    "  {:<4} {}  (netns {}){}",
                    n.name,
                    n.addr,
                    n.netns.clone().unwrap_or_default(),
                    n.cpus.map(|c| format!(", {c} CPUs")).unwrap_or_default()
                );
            }
        }
        LabCmd::Down => {
            if lab::down(&cli.lab).await? {
                println!("lab {} is down", cli.lab);
            } else {
                println!("no lab named {} (nothing to do)", cli.lab);
            }
        }
        LabCmd::Status => {
            let mut bad = 0;
            for (n, r) in lab::status(&cli.lab).await? {
                match r {
                    Ok(s) => println!("{:<4} {:<18} {s}", n.name, n.addr),
                    Err(e) => {
                        bad += 1;
                        println!("{:<4} {:<18} DOWN: {e}", n.name, n.addr)
                    }
                }
            }
            return Ok(if bad > 0 { 1 } else { 0 });
        }
        LabCmd::Demo => return demo(cli).await,
        LabCmd::Restart { node } => {
            lab::restart(&cli.lab, node).await?;
            println!("agent {node} restarted");
        }
    }
    Ok(0)
}

/// The main job, step by step, with every command shown as a user would type it.
async fn demo(cli: &Cli) -> Result<i32> {
    let exe = std::env::current_exe()?;
    let lab = cli.lab.clone();
    let step = |args: &[&str]| -> Result<()> {
        let shown: Vec<String> = args
            .iter()
            .map(|a| {
                if a.contains(|c: char| c.is_whitespace() || "$;\"'()".contains(c)) {
                    format!("'{}'", a.replace('\'', "'\\''"))
                } else {
                    a.to_string()
                }
            })
            .collect();
        println!("\n$ herd {}", shown.join(" "));
        let st = std::process::Command::new(&exe)
            .args(args)
            .env("HERD_LAB", &lab)
            .env_remove("HERD_CLUSTER")
            .status()?;
        if !st.success() {
            bail!("`herd {}` failed ({st})", args.join(" "));
        }
        Ok(())
    };
    let result = (|| -> Result<()> {
        step(&["lab", "up", "--nodes", "3"])?;
        step(&["image", "import", "busybox", "--busybox", "--node", "n1"])?;
        step(&[
            "run", "--node", "n1", "--name", "hello", "--memory", "64m", "busybox", "--", "sh", "-c",
            "i=0; while true; do i=$((i+1)); echo \"hello from $(hostname): tick $i\"; sleep 0.2; done",
        ])?;
        std::thread::sleep(Duration::from_millis(1200));
        step(&["ps"])?;
        step(&["logs", "--tail", "5", "hello"])?;
        step(&["exec", "hello", "--", "hostname"])?;
        step(&["checkpoint", "hello"])?;
        step(&["ps"])?;
        step(&["restore", "hello"])?;
        std::thread::sleep(Duration::from_millis(600));
        println!("\n# the tick count goes on from where the checkpoint stopped it:");
        step(&["logs", "--tail", "4", "hello"])?;
        println!("\n# live migration: the same process hops n1 -> n2 -> n3 (n2 and n3 fetch the image from the source)");
        step(&[
            "exec",
            "hello",
            "--",
            "sh",
            "-c",
            "echo 'written on n1' > /root/note",
        ])?;
        step(&["migrate", "hello", "--to", "n2"])?;
        step(&["migrate", "hello", "--to", "n3", "--compress", "zstd"])?;
        step(&["ps"])?;
        step(&["exec", "hello", "--", "cat", "/root/note"])?;
        std::thread::sleep(Duration::from_millis(600));
        println!("\n# one log across three hosts, the count unbroken:");
        step(&["logs", "--tail", "4", "hello"])?;
        step(&[
            "pong", "hello", "--hosts", "n1,n2,n3", "--count", "6", "--dwell", "0.3",
        ])?;
        step(&["stop", "-t", "1", "hello"])?;
        step(&["ps"])?;
        step(&["rm", "hello"])?;
        Ok(())
    })();
    let down = step(&["lab", "down"]);
    result?;
    down?;
    println!("\ndemo finished: the lab is gone");
    Ok(0)
}

pub(crate) async fn migrate(
    c: &mut Client,
    name: &str,
    to: &str,
    fs: herd_wire::migrate::FsMode,
    compress: bool,
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
        progress: true,
    };
    // The bar goes to stderr on a terminal (HERD_PROGRESS=always: anywhere),
    // and only once the migration takes longer than a second.
    let bar = bar
        && (std::io::stderr().is_terminal()
            || std::env::var("HERD_PROGRESS").as_deref() == Ok("always"));
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
                if bar && t0.elapsed() > Duration::from_secs(1) {
                    draw_progress(&phase, done_bytes, total_bytes, t0.elapsed());
                    drawn = true;
                }
            }
            other => {
                if drawn {
                    eprintln!();
                }
                return match other {
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
        "  phases: prepare {:.0} ms, pre-send {:.0} ms, dump {:.0} ms, transfer {:.0} ms (restore {:.0} ms), cleanup {:.0} ms",
        r.prepare_ms, r.presend_ms, r.dump_ms, r.transfer_ms, r.restore_ms, r.cleanup_ms
    );
    if r.layers_sent > 0 || r.layer_bytes > 0 {
        println!(
            "  image: {} had no copy; {} layer(s), {} sent before the freeze",
            r.to,
            r.layers_sent,
            human_bytes(r.layer_bytes)
        );
    }
}

#[allow(clippy::too_many_arguments)]
async fn pong(
    cli: &Cli,
    name: &str,
    hosts: &[String],
    count: usize,
    dwell: f64,
    random: bool,
    seed: u64,
    fs: herd_wire::migrate::FsMode,
    json: bool,
) -> Result<i32> {
    if hosts.len() < 2 {
        bail!("--hosts needs at least two nodes");
    }
    if !(0.0..=3600.0).contains(&dwell) {
        bail!("--dwell must be between 0 and 3600 seconds");
    }
    let mut c = client(cli)?;
    for h in hosts {
        c.cluster.node(h)?;
    }
    let mut at = c.locate(name).await?;
    let mut rng = seed
        .wrapping_mul(6364136223846793005)
        .wrapping_add(1442695040888963407);
    let mut reports = Vec::new();
    let mut failures = Vec::new();
    for hop in 0..count {
        let candidates: Vec<&String> = hosts.iter().filter(|h| **h != at).collect();
        let next = if random {
            rng = rng
                .wrapping_mul(6364136223846793005)
                .wrapping_add(1442695040888963407);
            candidates[((rng >> 33) as usize) % candidates.len()].clone()
        } else {
            let i = hosts
                .iter()
                .position(|h| *h == at)
                .map(|i| i + 1)
                .unwrap_or(0);
            let mut n = hosts[i % hosts.len()].clone();
            if n == at {
                n = hosts[(i + 1) % hosts.len()].clone();
            }
            n
        };
        match migrate(&mut c, name, &next, fs, false, false).await {
            Ok(r) => {
                if !json {
                    println!(
                        "hop {:>3}: {} -> {}  total {:>6.0} ms  frozen {:>6.0} ms",
                        hop + 1,
                        r.from,
                        r.to,
                        r.total_ms,
                        r.frozen_ms
                    );
                }
                at = next;
                reports.push(r);
            }
            Err(e) => {
                if !json {
                    println!("hop {:>3}: {at} -> {next}  FAILED: {e:#}", hop + 1);
                }
                failures.push(format!("{e:#}"));
                at = c.locate(name).await?;
            }
        }
        if hop + 1 < count {
            tokio::time::sleep(Duration::from_secs_f64(dwell)).await;
        }
    }
    let mut frozen: Vec<f64> = reports.iter().map(|r| r.frozen_ms).collect();
    let mut total: Vec<f64> = reports.iter().map(|r| r.total_ms).collect();
    let summary = serde_json::json!({
        "container": name,
        "hops": reports.len(),
        "failures": failures.len(),
        "frozen_ms_median": percentile(&mut frozen, 50.0),
        "frozen_ms_p95": percentile(&mut frozen, 95.0),
        "total_ms_median": percentile(&mut total, 50.0),
        "total_ms_p95": percentile(&mut total, 95.0),
        "ends_on": at,
        "errors": failures,
    });
    if json {
        println!("{}", serde_json::to_string_pretty(&summary)?);
    } else {
        println!(
            "pong {name}: {} hops, {} failures; frozen median {:.0} ms p95 {:.0} ms; total median {:.0} ms p95 {:.0} ms; now on {at}",
            reports.len(),
            failures.len(),
            summary["frozen_ms_median"].as_f64().unwrap_or(0.0),
            summary["frozen_ms_p95"].as_f64().unwrap_or(0.0),
            summary["total_ms_median"].as_f64().unwrap_or(0.0),
            summary["total_ms_p95"].as_f64().unwrap_or(0.0),
        );
    }
    Ok(if failures.is_empty() { 0 } else { 1 })
}

/// Nearest-rank percentile (0 for no samples).
fn percentile(v: &mut [f64], p: f64) -> f64 {
    if v.is_empty() {
        return 0.0;
    }
    v.sort_by(|a, b| a.total_cmp(b));
    let rank = ((p / 100.0) * v.len() as f64).ceil().max(1.0) as usize;
    v[rank.min(v.len()) - 1]
}

fn absolute(p: &std::path::Path) -> Result<PathBuf> {
    Ok(if p.is_absolute() {
        p.to_path_buf()
    } else {
        std::env::current_dir()?.join(p)
    })
}

struct TempDir(PathBuf);
impl Drop for TempDir {
    fn drop(&mut self) {
        let _ = std::fs::remove_dir_all(&self.0);
    }
}
fn tempdir_in(base: &std::path::Path) -> Result<TempDir> {
    let p = base.join(format!("tmp-rootfs-{}", std::process::id()));
    let _ = std::fs::remove_dir_all(&p);
    std::fs::create_dir_all(&p).with_context(|| format!("create {}", p.display()))?;
    Ok(TempDir(p))
}

fn herd_agent_size(s: &str) -> Option<u64> {
    let s = s.trim().to_ascii_lowercase();
    let s = s.strip_suffix('b').unwrap_or(&s);
    let (num, mult) = match s.chars().last()? {
        'k' => (&s[..s.len() - 1], 1u64 << 10),
        'm' => (&s[..s.len() - 1], 1 << 20),
        'g' => (&s[..s.len() - 1], 1 << 30),
        _ => (s, 1),
    };
    num.parse::<u64>().ok()?.checked_mul(mult)
}

fn parse_signal(s: &str) -> Result<i32> {
    if let Ok(n) = s.parse::<i32>() {
        return Ok(n);
    }
    let up = s.to_ascii_uppercase();
    let name = if up.starts_with("SIG") {
        up
    } else {
        format!("SIG{up}")
    };
    name.parse::<nix::sys::signal::Signal>()
        .map(|s| s as i32)
        .map_err(|_| anyhow::anyhow!("unknown signal {s:?}"))
}

fn generate_name() -> String {
    let n = std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map(|d| d.as_nanos())
        .unwrap_or(0);
    format!(
        "c-{:08x}",
        (n as u64 ^ (std::process::id() as u64) << 32) as u32
    )
}

/// True once `pid` (started at `start`) has fully exited: a killed
/// multi-threaded process shows a zombie leader while its other threads
/// still hold its sockets, so wait for those too.
pub(crate) fn process_gone(pid: i32, start: u64) -> bool {
    let Ok(stat) = std::fs::read_to_string(format!("/proc/{pid}/stat")) else {
        return true;
    };
    let Some(rest) = stat.rfind(')').map(|i| &stat[i + 2..]) else {
        return true;
    };
    let f: Vec<&str> = rest.split_whitespace().collect();
    if f.get(19).and_then(|v| v.parse::<u64>().ok()) != Some(start) {
        return true;
    }
    if f.first() != Some(&"Z") {
        return false;
    }
    std::fs::read_dir(format!("/proc/{pid}/task"))
        .map(|d| d.count() <= 1)
        .unwrap_or(true)
}

pub(crate) fn now_ns() -> u64 {
    std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map(|d| d.as_nanos() as u64)
        .unwrap_or(0)
}

pub(crate) fn proc_start(pid: i32) -> Option<u64> {
    let stat = std::fs::read_to_string(format!("/proc/{pid}/stat")).ok()?;
    let rest = &stat[stat.rfind(')')? + 2..];
    let f: Vec<&str> = rest.split_whitespace().collect();
    if matches!(f.first(), Some(&"Z") | Some(&"X")) {
        return None;
    }
    f.get(19)?.parse().ok()
}

fn short_id(id: &str) -> &str {
    let id = id.strip_prefix("sha256:").unwrap_or(id);
    &id[..id.len().min(12)]
}

fn human_bytes(b: u64) -> String {
    const U: [&str; 5] = ["B", "KiB", "MiB", "GiB", "TiB"];
    let mut v = b as f64;
    let mut i = 0;
    while v >= 1024.0 && i < U.len() - 1 {
        v /= 1024.0;
        i += 1;
    }
    if i == 0 {
        format!("{b} B")
    } else {
        format!("{v:.1} {}", U[i])
    }
}

fn fmt_time(ns: u64) -> String {
    let secs = ns / 1_000_000_000;
    let (h, m, s) = ((secs / 3600) % 24, (secs / 60) % 60, secs % 60);
    format!("{h:02}:{m:02}:{s:02}.{:06}", (ns % 1_000_000_000) / 1000)
}

fn print_ps(all: &[ContainerInfo]) {
    println!(
        "{:<16} {:<6} {:<14} {:<9} {:>8} {:<10} {:<15} COMMAND",
        "NAME", "NODE", "IMAGE", "STATUS", "PID", "CREATED", "IP"
    );
    let now = std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map(|d| d.as_nanos() as u64)
        .unwrap_or(0);
    for c in all {
        let status = match (c.status, c.exit_code) {
            (herd_wire::ContainerStatus::Stopped, Some(code)) => format!("exited({code})"),
            (s, _) => s.to_string(),
        };
        let age = now.saturating_sub(c.created_ns) / 1_000_000_000;
        let created = if age < 120 {
            format!("{age}s ago")
        } else if age < 7200 {
            format!("{}m ago", age / 60)
        } else {
            format!("{}h ago", age / 3600)
        };
        let mut cmd = c.cmd.join(" ");
        if cmd.chars().count() > 40 {
            cmd = cmd.chars().take(37).collect();
            cmd.push_str("...");
        }
        println!(
            "{:<16} {:<6} {:<14} {:<9} {:>8} {:<10} {:<15} {}",
            c.name,
            c.node,
            c.image,
            status,
            c.pid.map(|p| p.to_string()).unwrap_or_else(|| "-".into()),
            created,
            c.ip.as_deref().unwrap_or("-"),
            cmd
        );
    }
}
