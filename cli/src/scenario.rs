//! `herd scenario gen`: write a seeded scenario file (see
//! `herd_coordinator::scenario` for the format and the generators).

use std::path::PathBuf;

use anyhow::{Context, Result};
use clap::Subcommand;
use herd_coordinator::scenario::{generate, parse_mix, GenParams, ScenarioKind};

#[derive(Subcommand, Debug)]
pub enum ScenarioCmd {
    /// Generate a scenario: the same seed gives the same file byte for byte.
    Gen {
        #[arg(long, default_value_t = 1)]
        seed: u64,
        /// staircase or random.
        #[arg(long, default_value = "random")]
        kind: ScenarioKind,
        #[arg(long, default_value_t = 400)]
        containers: usize,
        #[arg(long, default_value_t = 4)]
        hosts: usize,
        /// Length of the experiment in seconds.
        #[arg(long, default_value_t = 36_000)]
        length: u64,
        /// Workload mix as weights, e.g. cpu=40,mem=20,io=20,oltp=20.
        #[arg(long, default_value = "cpu=40,mem=20,io=20,oltp=20")]
        mix: String,
        /// The scenario file to write.
        #[arg(long)]
        out: PathBuf,
    },
}

pub fn run(cmd: &ScenarioCmd) -> Result<i32> {
    match cmd {
        ScenarioCmd::Gen {
            seed,
            kind,
            containers,
            hosts,
            length,
            mix,
            out,
        } => {
            let mix = parse_mix(mix).map_err(|e| anyhow::anyhow!("--mix: {e}"))?;
            let s = generate(&GenParams {
                seed: *seed,
                kind: *kind,
                containers: *containers,
                hosts: *hosts,
                length_s: *length,
                mix,
            })?;
            s.write(out)
                .with_context(|| format!("writing {}", out.display()))?;
            println!(
                "{}: {} containers on {} hosts over {} s ({}, seed {})",
                out.display(),
                s.containers.len(),
                s.hosts.len(),
                s.length_s,
                kind.as_str(),
                seed
            );
            Ok(0)
        }
    }
}
