//! `herd scenario gen`: write a seeded scenario file (see
//! `herd_coordinator::scenario` for the format and the generators);
//! `herd scenario run`: run one on the lab (the run is [`crate::coordinator`]).

use std::path::PathBuf;

use anyhow::{Context, Result};
use clap::Subcommand;
use herd_coordinator::scenario::{generate, parse_mix, GenParams, ScenarioKind};

use crate::args::PlacementArgs;
use crate::context::GlobalArgs;

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
        /// Length of the experiment: seconds or a duration (10h, 2m30s; whole seconds, rounded up).
        #[arg(long, default_value = "36000", value_parser = crate::args::whole_seconds)]
        length: u64,
        /// Workload mix as weights, e.g. cpu=40,mem=20,io=20,oltp=20.
        #[arg(long, default_value = "cpu=40,mem=20,io=20,oltp=20")]
        mix: String,
        /// The scenario file to write.
        #[arg(long)]
        out: PathBuf,
    },
    /// Run a scenario for real on the cluster (herd-work containers) under
    /// a policy: the monitor CSVs, decisions.csv, run.json and report.md
    /// go into DIR.
    Run {
        file: PathBuf,
        #[arg(long)]
        policy: String,
        #[arg(long)]
        out: PathBuf,
        /// Multiplies every time of the scenario and of the placement
        /// schedule (window, period, delay, cooldown), e.g. 0.01 runs a
        /// 10-hour scenario in 6 minutes.
        #[arg(long, default_value_t = 1.0)]
        time_scale: f64,
        /// Multiplies the memory of `mem` containers.
        #[arg(long, default_value_t = 1.0)]
        memory_scale: f64,
        /// Image with herd-work in its PATH, on the scenario's first hosts.
        #[arg(long, default_value = "busybox")]
        image: String,
        /// Leave the containers in place afterwards.
        #[arg(long)]
        keep: bool,
        #[command(flatten)]
        placement: PlacementArgs,
    },
}

pub async fn run(g: &GlobalArgs, cmd: &ScenarioCmd) -> Result<i32> {
    match cmd {
        ScenarioCmd::Run {
            file,
            policy,
            out,
            time_scale,
            memory_scale,
            image,
            keep,
            placement,
        } => {
            let cluster = g.load_cluster()?;
            crate::coordinator::scenario_run(
                cluster,
                crate::coordinator::ScenarioRun {
                    file,
                    policy,
                    cfg: placement.config()?,
                    out,
                    time_scale: *time_scale,
                    memory_scale: *memory_scale,
                    image,
                    keep: *keep,
                },
            )
            .await?;
            Ok(0)
        }
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
