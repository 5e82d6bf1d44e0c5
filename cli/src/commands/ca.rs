//! `herd ca init|issue`: the cluster's certificate authority.

use std::path::PathBuf;

use anyhow::Result;
use clap::Subcommand;

#[derive(Subcommand, Debug)]
pub enum CaCmd {
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

pub fn run(cc: &CaCmd) -> Result<i32> {
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
    Ok(0)
}
