//! `herd exec`: run a command in a running container.

use anyhow::Result;
use clap::Args;
use herd_wire::{Request, Response};

use crate::client::unexpected;
use crate::context::GlobalArgs;

#[derive(Args, Debug)]
pub struct ExecArgs {
    #[arg(short = 'e', long = "env")]
    pub env: Vec<String>,
    pub name: String,
    #[arg(last = true, required = true)]
    pub cmd: Vec<String>,
}

pub async fn run(g: &GlobalArgs, args: &ExecArgs) -> Result<i32> {
    let ExecArgs { env, name, cmd } = args;
    let mut c = g.client()?;
    let node = c.locate(name).await?;
    let r = c
        .call(
            &node,
            Request::Exec {
                name: name.clone(),
                cmd: cmd.clone(),
                env: env.clone(),
            },
        )
        .await?;
    match r {
        Response::Exec(out) => {
            use std::io::Write;
            let _ = std::io::stdout().write_all(&out.stdout);
            let _ = std::io::stderr().write_all(&out.stderr);
            Ok(out.exit_code)
        }
        r => Err(unexpected(r)),
    }
}
