//! `herd lab up|down|status|demo|restart`: a lab of hosts on this machine
//! (the lab itself is [`crate::lab`]).

use std::time::Duration;

use anyhow::{bail, Result};
use clap::Subcommand;

use crate::context::GlobalArgs;
use crate::lab;
use crate::lab_vm;

#[derive(Subcommand, Debug)]
pub enum LabCmd {
    /// Start N hosts as network namespaces on a bridge, one agent each.
    Up {
        #[arg(long, default_value_t = 3)]
        nodes: usize,
        /// Each node's CPU capacity for containers, in cores: one value for
        /// all nodes or one per node (e.g. 1,0.5,0.5). Default: every node
        /// shares the whole machine.
        #[arg(long, value_delimiter = ',')]
        cpus: Vec<f64>,
        /// Each node's disk capacity for containers, in IO operations per
        /// second (reads and writes each), on the disk of the lab's state
        /// dirs: one value for all nodes or one per node, `max` for none
        /// (e.g. 100,max,max). The IO controller (cgroup v1 blkio
        /// throttling, v2 io.max) on the node's container parent; v1
        /// throttles only IO the tasks submit themselves (direct IO, fsync,
        /// reads), not buffered writeback.
        #[arg(long, value_delimiter = ',', value_parser = lab::parse_iops)]
        disk_iops: Vec<Option<u64>>,
        /// Like --disk-iops, in bytes per second (64m, 1g, bytes, max).
        #[arg(long, value_delimiter = ',', value_parser = lab::parse_bps)]
        disk_bps: Vec<Option<u64>>,
        /// Hosts as QEMU guests (Debian's kernels, systemd, pure cgroup v2,
        /// the agent as a systemd service) instead of network namespaces.
        #[arg(long)]
        vm: bool,
        /// With --vm: the guests' Debian release and kernel (bookworm: 6.1,
        /// trixie: 6.12, both: odd nodes bookworm, even nodes trixie).
        #[arg(long, value_enum, default_value = "both", requires = "vm")]
        kernel: lab_vm::Kernel,
    },
    /// VM lab: run a shell command as root in a guest (through its guest agent).
    Guest {
        node: String,
        /// Seconds to wait for the command.
        #[arg(long, default_value_t = 300)]
        timeout: u64,
        #[arg(trailing_var_arg = true, required = true)]
        cmd: Vec<String>,
    },
    /// Stop the agents and remove every netns, link, mount, cgroup and container of the lab.
    Down,
    /// Show the lab's nodes and whether their agents answer.
    Status {
        /// One object per node (docs/json.md).
        #[arg(long)]
        json: bool,
    },
    /// The main job: a lab, an image, a container, its logs, teardown.
    /// Runs in a lab of its own (never --lab's): refused when that lab is
    /// already up, and only a lab the demo itself brought up is taken down.
    Demo {
        /// The demo's lab.
        #[arg(long, default_value = "demo")]
        name: String,
    },
    /// Kill a node's agent as if it crashed and start it again (containers keep running).
    Restart { node: String },
}

pub async fn run(g: &GlobalArgs, lc: &LabCmd) -> Result<i32> {
    match lc {
        LabCmd::Up {
            vm: true,
            nodes,
            cpus,
            disk_iops,
            disk_bps,
            kernel,
        } => {
            let cap = lab::Capacity {
                cpus: cpus.clone(),
                disk_iops: disk_iops.clone(),
                disk_bps: disk_bps.clone(),
            };
            let cl = lab_vm::up(&g.lab, *nodes, *kernel, &cap).await?;
            lab_vm::print_up(&cl);
        }
        LabCmd::Guest { node, timeout, cmd } => {
            return lab_vm::guest_cmd(&g.lab, node, cmd, *timeout);
        }
        LabCmd::Up {
            nodes,
            cpus,
            disk_iops,
            disk_bps,
            ..
        } => {
            let cap = lab::Capacity {
                cpus: cpus.clone(),
                disk_iops: disk_iops.clone(),
                disk_bps: disk_bps.clone(),
            };
            let cl = lab::up_with(&g.lab, *nodes, &cap).await?;
            println!("lab {} is up: {} node(s)", cl.name, cl.nodes.len());
            for n in &cl.nodes {
                println!(
                    "  {:<4} {}  (netns {}){}",
                    n.name,
                    n.addr,
                    n.netns.clone().unwrap_or_default(),
                    n.capacity_note()
                );
            }
        }
        LabCmd::Down => {
            if lab::down(&g.lab).await? {
                println!("lab {} is down", g.lab);
            } else {
                println!("no lab named {} (nothing to do)", g.lab);
            }
        }
        LabCmd::Status { json } if lab_vm::is_vm_lab(&g.lab) => {
            return lab_vm::print_status(&g.lab, *json).await
        }
        LabCmd::Status { json } => {
            let nodes = lab::status(&g.lab).await?;
            let bad = nodes.iter().filter(|(_, r)| r.is_err()).count();
            if *json {
                let v: Vec<_> = nodes
                    .iter()
                    .map(|(n, r)| lab::status_json(&n.name, n.addr, r))
                    .collect();
                println!("{}", serde_json::to_string_pretty(&v)?);
            }
            for (n, r) in nodes.iter().filter(|_| !*json) {
                match r {
                    Ok(c) => println!("{:<4} {:<18} up, {c} container(s)", n.name, n.addr),
                    Err(e) => println!("{:<4} {:<18} DOWN: {e}", n.name, n.addr),
                }
            }
            return Ok(if bad > 0 { crate::exit::HERD_ERROR } else { 0 });
        }
        LabCmd::Demo { name } => return demo(name).await,
        LabCmd::Restart { node } => {
            lab::restart(&g.lab, node).await?;
            println!("agent {node} restarted");
        }
    }
    Ok(0)
}

/// The main job, step by step, with every command shown as a user would type it.
async fn demo(lab: &str) -> Result<i32> {
    let exe = std::env::current_exe()?;
    lab::check_lab_name(lab)?;
    let file = crate::cluster::lab_dir(lab).join("cluster.json");
    if file.exists() {
        bail!(
            "lab {lab} is already up ({}): the demo needs a lab of its own; \
             pick another with `herd lab demo --name NAME`, or end that one with `herd --lab {lab} lab down`",
            file.display()
        );
    }
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
            .env("HERD_LAB", lab)
            .env_remove("HERD_CLUSTER")
            .status()?;
        if !st.success() {
            bail!("`herd {}` failed ({st})", args.join(" "));
        }
        Ok(())
    };
    // A failed `lab up` is not ours to tear down: it may have met another
    // lab's leftovers of this name.
    step(&["lab", "up", "--nodes", "3"])?;
    let result = (|| -> Result<()> {
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
