//! `herd run`: create and start a container on a node.

use anyhow::{bail, Context, Result};
use clap::Args;
use herd_wire::{Request, Response, RunSpec};

use crate::client::unexpected;
use crate::context::GlobalArgs;
use crate::network;

#[derive(Args, Debug)]
pub struct RunArgs {
    /// Node to run on (default: the first node).
    #[arg(long)]
    pub node: Option<String>,
    /// Container name (default: a generated one).
    #[arg(long)]
    pub name: Option<String>,
    /// Environment variable KEY=VALUE (repeatable; over --env-file and the image's).
    #[arg(short = 'e', long = "env")]
    pub env: Vec<String>,
    /// Read environment variables from a file: KEY=VALUE lines (`#` comments
    /// and blank lines skipped; a bare KEY takes this shell's value). Repeatable.
    #[arg(long = "env-file")]
    pub env_file: Vec<std::path::PathBuf>,
    /// Replace the image's Entrypoint: a command, or a JSON array
    /// (`'["sh","-c"]'`); "" clears it. The image's Cmd is then not used.
    #[arg(long)]
    pub entrypoint: Option<String>,
    /// Run as USER[:GROUP] (names from the image's /etc/passwd and
    /// /etc/group, or ids); default the image's User, else root.
    #[arg(short = 'u', long)]
    pub user: Option<String>,
    /// Working directory inside the container (absolute); default the
    /// image's WorkingDir, else /.
    #[arg(short = 'w', long)]
    pub workdir: Option<String>,
    /// Memory limit: 64m, 1.5g, 64MiB, 1048576 (bytes).
    #[arg(long)]
    pub memory: Option<String>,
    /// CPU limit in cores, e.g. 1.5 (at most the node's cores).
    #[arg(long)]
    pub cpus: Option<f64>,
    /// Remove the container when its process exits (it is also removed
    /// after `herd stop`).
    #[arg(long)]
    pub rm: bool,
    /// Bind mount HOST:CONTAINER[:ro|rw] (repeatable): HOST an absolute
    /// path on the node's host, which must exist there. A migration
    /// re-binds the same host path on the target and is refused when the
    /// target lacks it; the data is never copied.
    #[arg(short = 'v', long = "volume", value_name = "HOST:CONTAINER[:ro]")]
    pub volume: Vec<String>,
    /// Hostname inside the container (default: its name).
    #[arg(long)]
    pub hostname: Option<String>,
    /// Attach to this network (`herd network ls`): the container gets its
    /// own MAC and IP, kept across migrations.
    #[arg(long)]
    pub net: Option<String>,
    /// The address on --net (default: the first free one of its range).
    #[arg(long, requires = "net")]
    pub ip: Option<String>,
    pub image: String,
    /// Arguments replacing the image's Cmd (`herd run [OPTIONS] IMAGE
    /// CMD...`, or with a `--` before CMD): from CMD's first word on,
    /// everything is the command's.
    #[arg(trailing_var_arg = true, allow_hyphen_values = true)]
    pub cmd: Vec<String>,
}

pub async fn run(g: &GlobalArgs, args: &RunArgs) -> Result<i32> {
    let RunArgs {
        node,
        name,
        env,
        env_file,
        entrypoint,
        user,
        workdir,
        memory,
        cpus,
        rm,
        volume,
        hostname,
        net,
        ip,
        image,
        cmd,
    } = args;
    let memory_bytes = match memory {
        Some(m) => Some(crate::args::parse_size(m).with_context(|| format!("--memory {m:?}"))?),
        None => None,
    };
    for e in env {
        if !e.contains('=') {
            bail!("-e {e:?}: expected KEY=VALUE");
        }
    }
    let volumes = volume
        .iter()
        .map(|v| herd_wire::Volume::parse(v).map_err(|e| anyhow::anyhow!("-v {e}")))
        .collect::<Result<Vec<_>>>()?;
    let mut all_env = Vec::new();
    for f in env_file {
        all_env.extend(read_env_file(f)?);
    }
    all_env.extend(env.iter().cloned());
    let entrypoint = match entrypoint.as_deref() {
        None => None,
        Some("") => Some(Vec::new()),
        Some(s) if s.trim_start().starts_with('[') => Some(
            serde_json::from_str::<Vec<String>>(s)
                .with_context(|| format!("--entrypoint {s:?}: not a JSON array of strings"))?,
        ),
        Some(s) => Some(vec![s.to_string()]),
    };
    if let Some(w) = workdir {
        if !w.starts_with('/') {
            bail!("-w {w:?}: the working directory must be an absolute path");
        }
    }
    let mut c = g.client()?;
    let node = match node {
        Some(n) => n.clone(),
        None => c
            .node_names()
            .first()
            .cloned()
            .context("the cluster has no nodes")?,
    };
    let name = name.clone().unwrap_or_else(generate_name);
    // One name per cluster: refused when any node has it. Nodes that do
    // not answer cannot be checked; said on stderr, the run goes on (a
    // move onto such a node is refused there by its agent).
    let before = c.find_all(&name).await;
    if !before.on.is_empty() {
        let nodes: Vec<&str> = before.on.iter().map(|(n, _)| n.as_str()).collect();
        bail!(
            "the container name {name:?} is already in use on {} (names are unique across the cluster)",
            nodes.join(", ")
        );
    }
    for u in &before.unreachable {
        eprintln!("herd: warning: cannot check that {name} is unique there: {u}");
    }
    let spec = RunSpec {
        name: name.clone(),
        image: image.clone(),
        cmd: cmd.clone(),
        env: all_env,
        memory_bytes,
        cpus: *cpus,
        hostname: hostname.clone(),
        net: match net {
            Some(n) => Some(network::attach_for(&mut c, &node, n, ip.as_deref()).await?),
            None => None,
        },
        entrypoint,
        user: user.clone(),
        workdir: workdir.clone(),
        auto_remove: *rm,
        volumes,
    };
    match c.call(&node, Request::Run(spec)).await? {
        Response::Container(_) => {}
        r => return Err(unexpected(r)),
    }
    // Two runs of one name on two nodes at once both pass the check above.
    // Each looks again once its container exists; whoever then sees the
    // other removes its own and fails, so at most one survives (both may
    // lose: then both fail, and a retry succeeds).
    let after = c.find_all(&name).await;
    let others: Vec<&str> = after
        .on
        .iter()
        .map(|(n, _)| n.as_str())
        .filter(|n| *n != node)
        .collect();
    if !others.is_empty() {
        let others = others.join(", ");
        let removed = c
            .call(
                &node,
                Request::Remove {
                    name: name.clone(),
                    force: true,
                },
            )
            .await;
        bail!(
            "another run made a container {name:?} on {others} at the same time; {}",
            match removed {
                Ok(_) => format!("this one (on {node}) was removed again"),
                Err(e) => format!("removing this one (on {node}) failed too: {e:#}"),
            }
        );
    }
    println!("{name}");
    Ok(0)
}

/// `--env-file`: KEY=VALUE lines; `#` comments and blank lines skipped; a
/// bare KEY takes this process's value (left out when it has none), as
/// Podman and Docker read it.
fn read_env_file(path: &std::path::Path) -> Result<Vec<String>> {
    let text =
        std::fs::read_to_string(path).with_context(|| format!("--env-file {}", path.display()))?;
    let mut v = Vec::new();
    for (i, line) in text.lines().enumerate() {
        let l = line.trim_start();
        if l.is_empty() || l.starts_with('#') {
            continue;
        }
        match l.split_once('=') {
            Some(("", _)) => bail!(
                "--env-file {} line {}: no variable name before '='",
                path.display(),
                i + 1
            ),
            Some(_) => v.push(l.to_string()),
            None => {
                if let Ok(val) = std::env::var(l.trim_end()) {
                    v.push(format!("{}={val}", l.trim_end()));
                }
            }
        }
    }
    Ok(v)
}

fn generate_name() -> String {
    let n = std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map(|d| d.as_nanos())
        .unwrap_or(0);
    format!(
        "c-{:08x}",
        (n as u64 ^ (std::process::id() as u64) << 32) as u32
    )
}
