//! `herd bench ...`: runs `herd-bench` (the benchmarks' own binary, built
//! from benches/ next to `herd`) with the same arguments, so its output and
//! exit status are `herd bench`'s.

use std::os::unix::process::CommandExt;

use anyhow::{Context, Result};
use clap::Args;

#[derive(Args, Debug)]
#[command(disable_help_flag = true)]
pub struct BenchArgs {
    /// `checkpoint`, `migrate`, `monitor` or `sim`, and their flags
    /// (`herd bench --help` lists them).
    #[arg(trailing_var_arg = true, allow_hyphen_values = true)]
    pub args: Vec<String>,
}

pub fn run(a: &BenchArgs) -> Result<i32> {
    let exe = std::env::current_exe().context("cannot find the herd binary")?;
    let bench = exe.with_file_name("herd-bench");
    // exec: herd-bench takes over this process (its output, its exit code).
    let err = std::process::Command::new(&bench).args(&a.args).exec();
    Err(err).with_context(|| {
        format!(
            "cannot run {} (built with `cargo build --release -p herd-bench`; scripts/setup builds it)",
            bench.display()
        )
    })
}
