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
    print!("{}", report::table(&runs));
    println!("report: {}", out.join("report.md").display());
    Ok(0)
}
