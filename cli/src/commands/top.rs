//! `herd top`: a live table of hosts and containers (drawn by [`crate::top`]).

use anyhow::Result;
use clap::Args;

use crate::context::GlobalArgs;
use crate::top;

#[derive(Args, Debug)]
pub struct TopArgs {
    /// Print one table and exit.
    #[arg(long)]
    pub once: bool,
}

pub async fn run(g: &GlobalArgs, a: &TopArgs) -> Result<i32> {
    top::run(g.load_cluster()?, a.once).await?;
    Ok(0)
}
