//! `herd image import|ls|rm`: images on every node (or one).

use std::path::PathBuf;

use anyhow::{bail, Context, Result};
use clap::Subcommand;
use herd_wire::{Request, Response};

use crate::client::{self, unexpected};
use crate::context::GlobalArgs;
use crate::paths::tempdir_in;
use crate::rootfs;
use crate::ui::{human_bytes, short_id};

#[derive(Subcommand, Debug)]
pub enum ImageCmd {
    /// Import a rootfs dir, a tar of one, or an OCI image layout (dir or tar).
    Import {
        name: String,
        /// Path on the agents' host.
        #[arg(required_unless_present_any = ["busybox", "debian"])]
        path: Option<PathBuf>,
        /// Build the image from this host's static busybox instead.
        #[arg(long, conflicts_with = "path")]
        busybox: bool,
        /// Build the image from these Debian packages instead (mmdebstrap
        /// minbase of this host's release, from its own apt sources).
        #[arg(long, value_name = "PKG[,PKG...]", value_delimiter = ',', conflicts_with_all = ["path", "busybox"])]
        debian: Vec<String>,
        /// With --busybox: extra static binaries for /bin (herd-work is added when found).
        #[arg(long)]
        add: Vec<PathBuf>,
        /// Only this node (default: every node).
        #[arg(long)]
        node: Option<String>,
    },
    /// List images.
    Ls {
        #[arg(long)]
        json: bool,
        #[arg(long)]
        node: Option<String>,
    },
    /// Remove an image.
    Rm {
        name: String,
        #[arg(long)]
        node: Option<String>,
    },
}

pub async fn run(g: &GlobalArgs, ic: &ImageCmd) -> Result<i32> {
    let mut c = g.client()?;
    match ic {
        ImageCmd::Import {
            name,
            path,
            busybox,
            debian,
            add,
            node,
        } => {
            let (src, _tmp) = if !debian.is_empty() {
                let tmp = tempdir_in(&c.cluster.dir)?;
                rootfs::build_debian_said(name, &tmp.0, debian)?;
                (tmp.0.clone(), Some(tmp))
            } else if *busybox {
                let tmp = tempdir_in(&c.cluster.dir)?;
                let mut extra = add.clone();
                if let Some(w) = rootfs::find_herd_work() {
                    if !extra.iter().any(|e| e.file_name() == w.file_name()) {
                        extra.push(w);
                    }
                }
                rootfs::build_busybox(&tmp.0, &extra)?;
                (tmp.0.clone(), Some(tmp))
            } else {
                let p = path.as_ref().context("a PATH or --busybox is needed")?;
                let p = std::fs::canonicalize(p).with_context(|| format!("{}", p.display()))?;
                (p, None)
            };
            let nodes = match node {
                Some(n) => vec![n.clone()],
                None => c.node_names(),
            };
            for n in nodes {
                match c
                    .call(
                        &n,
                        Request::ImageImport {
                            name: name.clone(),
                            path: src.to_string_lossy().into_owned(),
                        },
                    )
                    .await?
                {
                    Response::Image(i) => println!(
                        "{n}: {} {} ({} layer(s), {})",
                        i.name,
                        short_id(&i.id),
                        i.layers,
                        human_bytes(i.size_bytes)
                    ),
                    r => return Err(unexpected(r)),
                }
            }
        }
        ImageCmd::Ls { json, node } => {
            let nodes = match node {
                Some(n) => vec![n.clone()],
                None => c.node_names(),
            };
            let mut rows = Vec::new();
            for n in nodes {
                match c.call(&n, Request::ImageList).await? {
                    Response::Images(v) => rows.extend(v.into_iter().map(|i| (n.clone(), i))),
                    r => return Err(unexpected(r)),
                }
            }
            if *json {
                let v: Vec<_> = rows
                    .iter()
                    .map(|(n, i)| {
                        serde_json::json!({
                            "node": n, "name": i.name, "id": i.id, "layers": i.layers,
                            "size_bytes": i.size_bytes,
                            "created_ns": i.created.saturating_mul(1_000_000_000),
                            // Seconds: format 1's key, kept (docs/json.md).
                            "created": i.created,
                        })
                    })
                    .collect();
                println!("{}", serde_json::to_string_pretty(&v)?);
            } else {
                println!(
                    "{:<8} {:<24} {:<14} {:>6} {:>10}",
                    "NODE", "NAME", "ID", "LAYERS", "SIZE"
                );
                for (n, i) in rows {
                    println!(
                        "{:<8} {:<24} {:<14} {:>6} {:>10}",
                        n,
                        i.name,
                        short_id(&i.id),
                        i.layers,
                        human_bytes(i.size_bytes)
                    );
                }
            }
        }
        ImageCmd::Rm { name, node } => {
            let nodes = match node {
                Some(n) => vec![n.clone()],
                None => c.node_names(),
            };
            let mut found = false;
            for n in nodes {
                match c
                    .call(&n, Request::ImageRemove { name: name.clone() })
                    .await
                {
                    Ok(_) => found = true,
                    Err(e) => match e.downcast_ref::<client::AgentFailure>() {
                        Some(f) if f.err.kind == herd_wire::ErrorKind::NotFound => {}
                        _ => return Err(e),
                    },
                }
            }
            if !found {
                bail!("no such image: {name}");
            }
            println!("{name}");
        }
    }
    Ok(0)
}
