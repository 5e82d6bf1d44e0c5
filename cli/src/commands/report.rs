//! `herd report`: the thesis's table and plots over run directories.
//!
//! ```text
//! herd report DIR [DIR...] [--out OUT]
//! ```

use std::path::{Path, PathBuf};

use anyhow::{Context, Result};
use clap::Args;
use herd_coordinator::report;

#[derive(Args, Debug)]
pub struct ReportArgs {
    /// Run directories (each with hosts.csv, containers.csv, migrations.csv).
    #[arg(required = true)]
    dirs: Vec<PathBuf>,
    /// Where report.md and the plots go (default: the directory for one
    /// run, the first one's parent for several).
    #[arg(long)]
    out: Option<PathBuf>,
    /// The table as JSON on stdout (docs/json.md); report.md and the plots
    /// are written all the same.
    #[arg(long)]
    json: bool,
}

pub fn run(a: &ReportArgs) -> Result<i32> {
    let mut runs = Vec::new();
    for d in &a.dirs {
        runs.push(report::load_run(d).with_context(|| format!("reading run {}", d.display()))?);
    }
    let out = match &a.out {
        Some(o) => o.clone(),
        None if a.dirs.len() == 1 => a.dirs[0].clone(),
        None => a.dirs[0]
            .parent()
            .filter(|p| !p.as_os_str().is_empty())
            .unwrap_or(Path::new("."))
            .to_path_buf(),
    };
    report::write_report(&runs, &out, "Placement runs")?;
    print_table(&runs, &out, a.json, &[])?;
    Ok(0)
}

/// The table of `runs` (text or `--json`) and where report.md is; `extra`
/// adds keys to each run's JSON object (the simulator's counts).
pub fn print_table(
    runs: &[report::Run],
    out: &Path,
    json: bool,
    extra: &[serde_json::Value],
) -> Result<()> {
    let md = out.join("report.md");
    if !json {
        print!("{}", report::table(runs));
        println!("report: {}", md.display());
        return Ok(());
    }
    let control = runs.iter().find(|r| r.policy == "none");
    let oracle = runs.iter().find(|r| r.policy == "oracle");
    let vs = |r: &report::Run, f: fn(&report::Run) -> f64| {
        control
            .filter(|_| r.policy != "none")
            .map(|c| f(r) / f(c).max(1e-12) - 1.0)
    };
    let gain = |r: &report::Run| vs(r, |r| r.avg_ops);
    let rows: Vec<_> = runs
        .iter()
        .enumerate()
        .map(|(i, r)| {
            let share = match (gain(r), oracle.and_then(gain)) {
                (Some(g), Some(o)) if o.abs() > 1e-9 => Some(g / o),
                _ => None,
            };
            let mut v = serde_json::json!({
                "policy": r.policy,
                "dir": r.dir.display().to_string(),
                "avg_host_cpu_ratio": r.avg_host_cpu,
                "avg_container_cpu_cores": r.avg_container_cpu,
                "avg_ops_per_second": r.avg_ops,
                "ops_gain_vs_control_ratio": gain(r),
                "host_cpu_vs_control_ratio": vs(r, |r| r.avg_host_cpu),
                "oracle_gain_share_ratio": share,
                "migrations": r.migrations,
                "frozen_ms": r.frozen_s * 1000.0,
            });
            if let (Some(o), Some(e)) =
                (v.as_object_mut(), extra.get(i).and_then(|e| e.as_object()))
            {
                o.extend(e.clone());
            }
            v
        })
        .collect();
    let v = serde_json::json!({"report": md.display().to_string(), "runs": rows});
    println!("{}", serde_json::to_string_pretty(&v)?);
    Ok(())
}
