//! Target side: AwaitPrepare → Staging → Restoring → Done | RolledBack.
//! Whatever fails, the staging dir and anything built from it are removed.

use std::io::Write;
use std::path::{Path, PathBuf};
use std::sync::Arc;
use std::time::{Duration, Instant};

use herd_wire::migrate::{FsMode, MigrateMsg, Prepare, CHUNK, MIGRATE_VERSION};
use herd_wire::{ErrorKind, Response};
use sha2::{Digest, Sha256};

use super::MAX_MIGRATE_FRAME;
use crate::error::AgentError;
use crate::Agent;

/// Serve one incoming migration on its stream (after the `MigrateIn` envelope).
pub async fn migrate_in(
    agent: Arc<Agent>,
    prepare: Prepare,
    send: &mut quinn::SendStream,
    recv: &mut quinn::RecvStream,
) -> Result<(), herd_quic::Error> {
    let name = prepare.spec.name.clone();
    let need = match check(&agent, &prepare) {
        Ok(need) => need,
        Err(e) => return herd_quic::rpc::send_msg(send, e.as_ref()).await,
    };
    let staging = agent.staging_dir("migrate-in");
    let guard = Staging(staging.clone());
    let made = std::fs::create_dir_all(staging.join("checkpoint"))
        .and_then(|_| std::fs::create_dir_all(staging.join("layer")));
    if let Err(e) = made {
        let r = Response::error(ErrorKind::Internal, format!("create staging dir: {e}"));
        return herd_quic::rpc::send_msg(send, &r).await;
    }
    let answer = match need {
        Some(layers) => Response::NeedLayers(layers),
        None => Response::Ok,
    };
    herd_quic::rpc::send_msg(send, &answer).await?;
    tracing::info!(container = %name, from = %prepare.source_node, "migration in: prepared");

    // Staging: files until Commit. A broken stream or a bad file ends it.
    if let Err(e) = receive(recv, &staging, &agent.limits()).await {
        tracing::warn!(container = %name, "migration in aborted: {e}");
        let r = Response::error(ErrorKind::InvalidInput, format!("transfer failed: {e}"));
        let _ = herd_quic::rpc::send_msg(send, &r).await;
        drop(guard);
        return Ok(());
    }

    // Restoring.
    let t0 = Instant::now();
    let a = agent.clone();
    let p = prepare.clone();
    let dir = staging.clone();
    let result =
        tokio::task::spawn_blocking(move || -> Result<herd_wire::RestoreReport, AgentError> {
            if super::fault("fail-restore") {
                return Err(AgentError::Other("injected fault: fail-restore".into()));
            }
            if dir.join("image.json").exists() {
                a.image_from_peer(&dir)?;
            }
            let r = if p.fs == FsMode::Whole {
                // The flattened filesystem becomes this container's own image.
                let image = format!("{}-whole", p.spec.name);
                let layers = a.image_import_layers(&image, &dir.join("whole.tar"))?;
                let spec = herd_wire::RunSpec {
                    image,
                    ..p.spec.clone()
                };
                a.import_staged(&dir, &spec, &layers, t0)?
            } else {
                a.import_staged(&dir, &p.spec, &p.layers, t0)?
            };
            // The process must still run after a short grace period; it
            // runs already, so the source does not count this as frozen.
            let up = Instant::now();
            std::thread::sleep(Duration::from_millis(150));
            let e = a.entry(&p.spec.name)?;
            let running = e.snapshot().status == herd_wire::ContainerStatus::Running;
            if !running {
                a.discard(&e);
                return Err(AgentError::Other(format!(
                    "{} exited right after its restore",
                    p.spec.name
                )));
            }
            Ok(herd_wire::RestoreReport {
                running_ms: up.elapsed().as_secs_f64() * 1e3,
                ..r
            })
        })
        .await;
    drop(guard);
    let reply = match result {
        Ok(Ok(r)) => {
            tracing::info!(container = %name, "migration in: restored");
            Response::Restored(r)
        }
        Ok(Err(e)) => e.to_response(),
        Err(e) => Response::error(ErrorKind::Internal, format!("restore task failed: {e}")),
    };
    herd_quic::rpc::send_msg(send, &reply).await
}

/// `Ok(None)`: go on; `Ok(Some(layers))`: the image is missing here, the
/// source must send its record and these layers first.
fn check(agent: &Agent, p: &Prepare) -> Result<Option<Vec<String>>, Box<Response>> {
    let refuse = |kind, msg: String| Box::new(Response::error(kind, msg));
    if p.version != MIGRATE_VERSION {
        return Err(refuse(
            ErrorKind::VersionMismatch,
            format!(
                "migration protocol {} (this agent speaks {MIGRATE_VERSION})",
                p.version
            ),
        ));
    }
    if p.arch != std::env::consts::ARCH {
        return Err(refuse(
            ErrorKind::Unsupported,
            format!(
                "cannot migrate across architectures: source is {}, {} is {}",
                p.arch,
                agent.node(),
                std::env::consts::ARCH
            ),
        ));
    }
    if agent.entry(&p.spec.name).is_ok() {
        return Err(refuse(
            ErrorKind::AlreadyExists,
            format!(
                "{} already has a container named {}",
                agent.node(),
                p.spec.name
            ),
        ));
    }
    if let Some(att) = &p.spec.net {
        agent
            .check_attach(att)
            .map_err(|e| Box::new(e.to_response()))?;
    }
    if p.fs == FsMode::Whole {
        return Ok(None); // the flattened filesystem comes with the transfer
    }
    match agent.image_layers(&p.image) {
        Ok(l) if l == p.layers => Ok(None),
        Err(AgentError::Image(e)) if matches!(*e, herd_overlay::Error::NotFound(_)) => {
            Ok(Some(agent.missing_layers(&p.layers)))
        }
        Ok(_) => Err(refuse(
            ErrorKind::InvalidInput,
            format!(
                "image {} on {} has other layers than on the source",
                p.image,
                agent.node()
            ),
        )),
        Err(e) => Err(Box::new(e.to_response())),
    }
}

struct Staging(PathBuf);
impl Drop for Staging {
    fn drop(&mut self) {
        let _ = std::fs::remove_dir_all(&self.0);
    }
}

fn allowed(path: &str) -> bool {
    let plain = |s: &str| !s.is_empty() && s != "." && s != ".." && !s.contains(['/', '\0']);
    match path.split_once('/') {
        None => matches!(
            path,
            "upper.tar" | "upper-delta.tar" | "whole.tar" | "config.json" | "log" | "image.json"
        ),
        Some(("checkpoint", rest)) => plain(rest),
        Some(("layer", digest)) => herd_overlay::digest_hex(digest).is_ok(),
        _ => false,
    }
}

/// Files until `Commit`, within the agent's limits: each frame must come
/// within the stream idle timeout, all files together at most
/// `migration_bytes` (decompressed) and `unpack.max_entries` files.
async fn receive(
    recv: &mut quinn::RecvStream,
    staging: &Path,
    limits: &crate::limits::Limits,
) -> Result<(), String> {
    let mut cur: Option<(String, std::fs::File, Sha256, u64)> = None;
    let (mut total, mut files) = (0u64, 0u64);
    loop {
        let next = herd_quic::rpc::recv_msg(recv, MAX_MIGRATE_FRAME);
        let msg: MigrateMsg = tokio::time::timeout(limits.stream_idle, next)
            .await
            .map_err(|_| {
                format!(
                    "no frame from the source for {} s (--stream-idle-timeout-s)",
                    limits.stream_idle.as_secs_f64()
                )
            })?
            .map_err(|e| e.to_string())?
            .ok_or("the source closed the stream before Commit")?;
        match msg {
            MigrateMsg::File { path } => {
                if cur.is_some() {
                    return Err(format!("File {path} before the previous FileEnd"));
                }
                files += 1;
                if files > limits.unpack.max_entries {
                    return Err(format!(
                        "more than {} files (--max-unpack-entries)",
                        limits.unpack.max_entries
                    ));
                }
                if !allowed(&path) {
                    return Err(format!("refusing file {path:?}"));
                }
                let f = std::fs::File::create(staging.join(&path))
                    .map_err(|e| format!("create {path}: {e}"))?;
                cur = Some((path, f, Sha256::new(), 0));
            }
            MigrateMsg::Data { zstd, bytes } => {
                let (path, f, h, size) = cur.as_mut().ok_or("Data outside a file")?;
                let data = if zstd {
                    zstd::bulk::decompress(&bytes, CHUNK)
                        .map_err(|e| format!("{path}: bad zstd chunk: {e}"))?
                } else {
                    bytes
                };
                total += data.len() as u64;
                if total > limits.migration_bytes {
                    return Err(format!(
                        "the migration carries more than {} bytes (--max-migration-bytes)",
                        limits.migration_bytes
                    ));
                }
                h.update(&data);
                *size += data.len() as u64;
                f.write_all(&data)
                    .map_err(|e| format!("write {path}: {e}"))?;
            }
            MigrateMsg::FileEnd { size, sha256 } => {
                let (path, f, h, got) = cur.take().ok_or("FileEnd outside a file")?;
                drop(f);
                let digest = hex::encode(h.finalize());
                if got != size || digest != sha256 {
                    return Err(format!(
                        "{path} arrived corrupt: {got} bytes with sha256 {digest}, the source sent {size} bytes with sha256 {sha256}"
                    ));
                }
            }
            MigrateMsg::Go | MigrateMsg::Abort => return Err(format!("{msg:?} before Commit")),
            MigrateMsg::Commit => {
                if cur.is_some() {
                    return Err("Commit inside a file".into());
                }
                return Ok(());
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::AgentConfig;

    fn prepare(arch: &str) -> Prepare {
        Prepare {
            version: MIGRATE_VERSION,
            spec: herd_wire::RunSpec {
                name: "c1".into(),
                image: "busybox".into(),
                ..Default::default()
            },
            oci_spec: b"{}".to_vec(),
            image: "busybox".into(),
            layers: vec![format!("sha256:{}", "ab".repeat(32))],
            arch: arch.into(),
            fs: FsMode::Diff,
            source_node: "src".into(),
            id: "src.c1.1".into(),
        }
    }

    // Needs no root: an agent on an empty temp state dir answers the prepare
    // step without touching cgroups, namespaces or CRIU.
    #[test]
    fn a_prepare_from_another_architecture_is_refused_naming_both() {
        let dir = tempfile::tempdir().expect("tempdir");
        let agent = Agent::open(AgentConfig::new("edge1", dir.path())).expect("open agent");
        let here = std::env::consts::ARCH;
        let other = if here == "aarch64" {
            "x86_64"
        } else {
            "aarch64"
        };

        let refused = check(&agent, &prepare(other)).expect_err("cross-arch prepare accepted");
        match *refused {
            Response::Error(e) => {
                assert_eq!(e.kind, ErrorKind::Unsupported, "{e}");
                assert!(e.message.contains("across architectures"), "{e}");
                assert!(e.message.contains(other), "source arch missing: {e}");
                assert!(e.message.contains(here), "target arch missing: {e}");
                assert!(e.message.contains("edge1"), "target node missing: {e}");
            }
            r => panic!("expected an error, got {r:?}"),
        }
        // Same architecture: the prepare goes on (the image is missing here,
        // so the target asks for its layers).
        match check(&agent, &prepare(here)) {
            Ok(Some(layers)) => assert_eq!(layers, prepare(here).layers),
            Ok(None) => panic!("a missing image needs its layers"),
            Err(r) => panic!("same-arch prepare refused: {r:?}"),
        }
    }
}
