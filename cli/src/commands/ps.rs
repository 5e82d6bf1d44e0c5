//! `herd ps`: the containers of every node (or one), one entry per name
//! during a move ([`crate::client::one_per_name`]).

use anyhow::Result;
use clap::Args;
use herd_wire::ContainerInfo;

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
    /// Only the names, one a line (JSON, when asked for too, wins, as
    /// Podman's `--format json` overrides its `-q`).
    #[arg(short = 'q', long)]
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
    let (all, failed) = c.list(node.as_deref()).await?;
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
