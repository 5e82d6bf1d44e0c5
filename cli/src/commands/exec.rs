//! `herd exec`: run a command in a running container.

use anyhow::Result;
use clap::Args;
use herd_wire::{Request, Response};

use crate::client::unexpected;
use crate::context::GlobalArgs;

#[derive(Args, Debug)]
pub struct ExecArgs {
    /// The node holding it (needed only when two nodes have one of that name).
    #[arg(long)]
    pub node: Option<String>,
    #[arg(short = 'e', long = "env")]
    pub env: Vec<String>,
    /// Run as USER[:GROUP] (names from the container's /etc/passwd and
    /// /etc/group, or ids); default the container's user.
    #[arg(short = 'u', long)]
    pub user: Option<String>,
    /// Working directory (absolute); default the container's.
    #[arg(short = 'w', long)]
    pub workdir: Option<String>,
    pub name: String,
    /// The command (`herd exec NAME CMD...`; a `--` before it is allowed).
    #[arg(trailing_var_arg = true, allow_hyphen_values = true, required = true)]
    pub cmd: Vec<String>,
}

pub async fn run(g: &GlobalArgs, args: &ExecArgs) -> Result<i32> {
    let ExecArgs {
        node,
        env,
        user,
        workdir,
        name,
        cmd,
    } = args;
    if let Some(w) = workdir {
        if !w.starts_with('/') {
            anyhow::bail!("-w {w:?}: the working directory must be an absolute path");
        }
    }
    let mut c = g.client()?;
    let node = c.locate_on(name, node.as_deref()).await?;
    let r = c
        .call(
            &node,
            Request::Exec {
                name: name.clone(),
                cmd: cmd.clone(),
                env: env.clone(),
                user: user.clone(),
                workdir: workdir.clone(),
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
