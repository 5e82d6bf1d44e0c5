//! `herd ps`: the containers of every node (or one).

use anyhow::Result;
use clap::Args;
use herd_wire::{ContainerInfo, Request, Response};

use crate::client::unexpected;
use crate::context::GlobalArgs;

#[derive(Args, Debug)]
pub struct PsArgs {
    #[arg(long)]
    pub json: bool,
    /// `json`: the same as --json (Podman's `--format json`).
    #[arg(long, value_parser = ["json"])]
    pub format: Option<String>,
    /// All containers (Podman's flag; herd's `ps` always lists every
    /// container, stopped and checkpointed ones too).
    #[arg(short = 'a', long)]
    pub all: bool,
    /// Only the names, one a line.
    #[arg(short = 'q', long, conflicts_with = "json")]
    pub quiet: bool,
    #[arg(long)]
    pub node: Option<String>,
}

pub async fn run(g: &GlobalArgs, args: &PsArgs) -> Result<i32> {
    let PsArgs {
        json,
        format,
        all: _,
        quiet,
        node,
    } = args;
    let mut c = g.client()?;
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
    if *json || format.is_some() {
        println!("{}", serde_json::to_string_pretty(&all)?);
    } else if *quiet {
        for c in &all {
            println!("{}", c.name);
        }
    } else {
        print_ps(&all);
    }
    for f in &failed {
        eprintln!("herd: warning: {f}");
    }
    if !failed.is_empty() {
        return Ok(crate::exit::HERD_ERROR);
    }
    Ok(0)
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
        let status = match (c.status, c.exit_code, &c.migration) {
            (herd_wire::ContainerStatus::Migrating, _, Some(m)) => {
                format!("migrating {}->{} ({})", m.from, m.to, m.phase)
            }
            (herd_wire::ContainerStatus::Stopped, Some(code), _) => format!("exited({code})"),
            (s, _, _) => s.to_string(),
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
