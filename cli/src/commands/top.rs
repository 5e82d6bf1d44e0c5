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
    /// One snapshot as JSON (implies --once; docs/json.md).
    #[arg(long)]
    pub json: bool,
}

pub async fn run(g: &GlobalArgs, a: &TopArgs) -> Result<i32> {
    let how = if a.json {
        top::Show::Json
    } else if a.once {
        top::Show::Once
    } else {
        top::Show::Live
    };
    top::run(g.load_cluster()?, how).await?;
    Ok(0)
}
