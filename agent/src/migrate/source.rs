//! Source side: Preparing → PreSending → Dumping → Transferring →
//! AwaitRestored → CleaningUp, or RollingBack from any state after the dump.

use std::path::{Path, PathBuf};
use std::sync::Arc;
use std::time::{Duration, Instant, SystemTime};

use herd_wire::migrate::{FsMode, MigrateMsg, MigrateReport, Prepare, CHUNK, MIGRATE_VERSION};
use herd_wire::{ContainerStatus, Envelope, ErrorKind, Request, Response};
use sha2::{Digest, Sha256};
use tokio::io::AsyncReadExt;

use crate::container::CheckpointOptions;
use crate::error::{AgentError, Result};
use crate::Agent;

/// Where a migration is, for progress reports (see `Request::Migrate`).
#[derive(Default)]
pub struct Progress {
    phase: std::sync::Mutex<&'static str>,
    pub done: std::sync::atomic::AtomicU64,
    pub total: std::sync::atomic::AtomicU64,
}

impl Progress {
    fn enter(&self, phase: &'static str, total: u64) {
        use std::sync::atomic::Ordering::Relaxed;
        *self.phase.lock().unwrap_or_else(|p| p.into_inner()) = phase;
        self.done.store(0, Relaxed);
        self.total.store(total, Relaxed);
    }
    /// (phase, done, total)
    pub fn get(&self) -> (&'static str, u64, u64) {
        use std::sync::atomic::Ordering::Relaxed;
        let p = *self.phase.lock().unwrap_or_else(|p| p.into_inner());
        (p, self.done.load(Relaxed), self.total.load(Relaxed))
    }
}

fn file_sizes(paths: &[&Path]) -> u64 {
    paths
        .iter()
        .filter_map(|p| std::fs::metadata(p).ok())
        .map(|m| m.len())
        .sum()
}

pub struct Target {
    pub node: String,
    pub addr: std::net::SocketAddr,
}

#[derive(Default)]
struct Sent {
    wire: u64,
    raw: u64,
    progress: Option<Arc<Progress>>,
}

/// Move container `name` to `to`. On any failure the container runs on
/// this host (it never stopped, or it was restored from the kept images).
pub async fn migrate_out(
    agent: Arc<Agent>,
    ep: quinn::Endpoint,
    name: String,
    to: Target,
    fs: FsMode,
    compress: bool,
    progress: Arc<Progress>,
) -> Result<MigrateReport> {
    let t0 = Instant::now();
    progress.enter("prepare", 0);
    if to.node == agent.node() {
        return Err(AgentError::Invalid {
            what: "target",
            reason: format!("{name} already runs on {}", to.node),
        });
    }
    let a = agent.clone();
    let n = name.clone();
    let (rec, oci) = blocking(move || {
        let rec = a.entry(&n)?.snapshot();
        if rec.status != ContainerStatus::Running {
            return Err(AgentError::Conflict {
                name: n.clone(),
                state: rec.status.to_string(),
                hint: "only a running container can be migrated",
            });
        }
        a.check_dumpable(&n)?; // before the target builds anything
        let oci = std::fs::read(a.state_dir().container(&n).bundle().join("config.json"))
            .map_err(|e| AgentError::Other(format!("read OCI spec of {n}: {e}")))?;
        Ok((rec, oci))
    })
    .await?;
    let cdir = agent.state_dir().container(&name);
    let mut report = MigrateReport {
        container: name.clone(),
        from: agent.node().to_string(),
        to: to.node.clone(),
        fs: format!("{fs:?}").to_lowercase(),
        compress,
        ..Default::default()
    };

    // Preparing: nothing changes here until the target said yes.
    let unreachable = |e: herd_quic::Error| {
        AgentError::Other(format!(
            "target {} at {} is unreachable, nothing was changed: {e}",
            to.node, to.addr
        ))
    };
    let conn = herd_quic::endpoint::connect(&ep, to.addr, &to.node)
        .await
        .map_err(unreachable)?;
    let (mut send, mut recv) = conn
        .open_bi()
        .await
        .map_err(|e| AgentError::Other(format!("open stream to {}: {e}", to.node)))?;
    let prepare = Prepare {
        version: MIGRATE_VERSION,
        spec: rec.spec.clone(),
        oci_spec: oci,
        image: rec.spec.image.clone(),
        layers: rec.layers.clone(),
        arch: std::env::consts::ARCH.to_string(),
        fs,
        source_node: agent.node().to_string(),
        id: format!("{}.{name}.{}", agent.node(), crate::state::now_ns()),
    };
    let net = |e: herd_quic::Error| AgentError::Other(format!("link to {}: {e}", to.node));
    herd_quic::rpc::send_msg(&mut send, &Envelope::new(Request::MigrateIn(prepare)))
        .await
        .map_err(net)?;
    let mut sent = Sent {
        progress: Some(progress.clone()),
        ..Default::default()
    };
    match herd_quic::rpc::recv_msg::<Response>(&mut recv, herd_wire::frame::MAX_FRAME)
        .await
        .map_err(net)?
    {
        Some(Response::Ok) => {}
        Some(Response::NeedLayers(layers)) => {
            // The target lacks the image: its record and layers go first,
            // while the container still runs here.
            let before = sent.wire;
            progress.enter("image", 0);
            if let Err(e) = send_image(
                &agent,
                &rec.spec.image,
                &layers,
                &cdir.dir,
                &mut send,
                compress,
                &mut sent,
            )
            .await
            {
                return Err(target_reason(&mut recv).await.unwrap_or(e));
            }
            report.layers_sent = layers.len() as u32;
            report.layer_bytes = sent.wire - before;
        }
        Some(Response::Error(e)) => {
            return Err(AgentError::Other(format!(
                "target {} refused the migration, nothing was changed: {e}",
                to.node
            )))
        }
        other => {
            return Err(AgentError::Other(format!(
                "target {} answered {other:?} to prepare, nothing was changed",
                to.node
            )))
        }
    }
    report.prepare_ms = ms(t0);

    // PreSending: the upper layer as it is, while the container runs.
    let since = SystemTime::now() - Duration::from_millis(2);
    let t1 = Instant::now();
    if fs == FsMode::Diff {
        let tar = cdir.dir.join("presend.tar");
        let upper = cdir.fs().join("upper");
        let t = tar.clone();
        blocking(move || capture(&upper, &t, None)).await?;
        progress.enter("pre-send", file_sizes(&[&tar]));
        let r = send_file(&mut send, "upper.tar", &tar, compress, &mut sent).await;
        let _ = std::fs::remove_file(&tar);
        r.map_err(net)?;
    }
    report.presend_ms = ms(t1);

    // Dumping: frozen from here.
    let t2 = Instant::now();
    progress.enter("dump", 0);
    let a = agent.clone();
    let n = name.clone();
    let ck = blocking(move || {
        a.checkpoint(
            &n,
            CheckpointOptions {
                leave_running: false,
                export: None,
            },
        )
    })
    .await?; // a failed dump leaves the container running
    report.dump_ms = ms(t2);
    report.criu_frozen_ms = ck.frozen_ms;

    // Transferring, then AwaitRestored; any failure rolls back.
    let t3 = Instant::now();
    let raw_before = sent.raw;
    let result = transfer_and_commit(
        &mut send,
        &mut recv,
        &cdir.dir,
        &cdir.fs(),
        fs,
        since,
        compress,
        &mut sent,
    )
    .await;
    let outcome = match result {
        Ok(r) => Ok(r),
        Err(e) => {
            // Did the target get it running anyway (the answer was lost)?
            if running_on(&ep, &to, &name).await {
                tracing::warn!(container = %name, "answer lost, but it runs on {}", to.node);
                Ok(None)
            } else {
                Err(e)
            }
        }
    };
    match outcome {
        Ok(restored) => {
            report.transfer_ms = ms(t3);
            report.frozen_ms = ms(t2);
            if let Some(r) = restored {
                report.restore_ms = r.total_ms;
                report.frozen_ms -= r.running_ms.min(report.frozen_ms);
            }
            let t4 = Instant::now();
            progress.enter("cleanup", 0);
            let a = agent.clone();
            let n = name.clone();
            blocking(move || a.remove(&n, false)).await?;
            report.cleanup_ms = ms(t4);
        }
        Err(e) => {
            send.reset(1u32.into()).ok();
            let a = agent.clone();
            let n = name.clone();
            let back = blocking(move || a.restore(&n)).await;
            return Err(match back {
                Ok(_) => AgentError::Other(format!(
                    "migration of {name} to {} failed: {e}; rolled back: {name} runs on {} again",
                    to.node,
                    agent.node()
                )),
                Err(b) => AgentError::Other(format!(
                    "migration of {name} to {} failed: {e}; and restoring it here failed too: {b} \
                     (its checkpoint is kept: `herd restore {name}`)",
                    to.node
                )),
            });
        }
    }
    report.total_ms = ms(t0);
    report.bytes = sent.wire;
    report.raw_bytes = sent.raw;
    if report.transfer_ms > 0.0 {
        let raw = (sent.raw - raw_before) as f64;
        report.throughput_mib_s = raw / (1 << 20) as f64 / (report.transfer_ms / 1e3);
    }
    conn.close(0u32.into(), b"done");
    Ok(report)
}

#[allow(clippy::too_many_arguments)]
async fn transfer_and_commit(
    send: &mut quinn::SendStream,
    recv: &mut quinn::RecvStream,
    cdir: &Path,
    fsdir: &Path,
    fs: FsMode,
    since: SystemTime,
    compress: bool,
    sent: &mut Sent,
) -> Result<Option<herd_wire::RestoreReport>> {
    let net = |e: herd_quic::Error| AgentError::Other(format!("transfer: {e}"));
    let images = cdir.join("checkpoint");
    let mut files: Vec<(String, PathBuf)> = Vec::new();
    let mut names: Vec<String> = std::fs::read_dir(&images)
        .map_err(|e| AgentError::Other(format!("read {}: {e}", images.display())))?
        .flatten()
        .filter(|e| e.file_type().map(|t| t.is_file()).unwrap_or(false))
        .map(|e| e.file_name().to_string_lossy().into_owned())
        .collect();
    names.sort();
    for n in names {
        files.push((format!("checkpoint/{n}"), images.join(n)));
    }
    let extra = cdir.join("migrate-fs.tar");
    match fs {
        FsMode::Diff => {
            let (u, t) = (fsdir.join("upper"), extra.clone());
            blocking(move || capture(&u, &t, Some(since))).await?;
            files.push(("upper-delta.tar".into(), extra.clone()));
        }
        FsMode::Whole => {
            let (m, t) = (fsdir.join("merged"), extra.clone());
            blocking(move || capture(&m, &t, None)).await?;
            files.push(("whole.tar".into(), extra.clone()));
        }
        FsMode::None => {}
    }
    files.push(("config.json".into(), cdir.join("bundle/config.json")));
    files.push(("log".into(), cdir.join("log")));
    if let Some(p) = &sent.progress {
        let paths: Vec<&Path> = files.iter().map(|(_, l)| l.as_path()).collect();
        p.enter("transfer", file_sizes(&paths));
    }
    for (p, local) in &files {
        if let Err(e) = send_file(send, p, local, compress, sent).await {
            return Err(target_reason(recv).await.unwrap_or_else(|| net(e)));
        }
    }
    let _ = std::fs::remove_file(&extra);
    herd_quic::rpc::send_msg(send, &MigrateMsg::Commit)
        .await
        .map_err(net)?;
    if let Some(p) = &sent.progress {
        p.enter("restore", 0);
    }
    let reply = tokio::time::timeout(
        Duration::from_secs(120),
        herd_quic::rpc::recv_msg::<Response>(recv, herd_wire::frame::MAX_FRAME),
    )
    .await
    .map_err(|_| AgentError::Other("the target did not answer within 120 s".into()))?
    .map_err(net)?;
    match reply {
        Some(Response::Restored(r)) => Ok(Some(r)),
        Some(Response::Error(e)) => Err(AgentError::Other(format!("the target failed: {e}"))),
        other => Err(AgentError::Other(format!("unexpected answer {other:?}"))),
    }
}

/// `image.json` and the layers the target asked for, nothing frozen yet.
/// An error here changes nothing: the container runs on.
#[allow(clippy::too_many_arguments)]
async fn send_image(
    agent: &Arc<Agent>,
    image: &str,
    layers: &[String],
    cdir: &Path,
    send: &mut quinn::SendStream,
    compress: bool,
    sent: &mut Sent,
) -> Result<()> {
    let nothing = |e: String| {
        AgentError::Other(format!(
            "sending image {image} to the target failed, nothing was changed: {e}"
        ))
    };
    let rec = agent.image_record(image)?;
    let json = cdir.join("migrate-image.json");
    std::fs::write(
        &json,
        serde_json::to_vec(&rec).map_err(|e| nothing(e.to_string()))?,
    )
    .map_err(|e| nothing(format!("write {}: {e}", json.display())))?;
    let r = send_file(send, "image.json", &json, compress, sent).await;
    let _ = std::fs::remove_file(&json);
    r.map_err(|e| nothing(e.to_string()))?;
    for d in layers {
        if !rec.layers.contains(d) {
            return Err(nothing(format!(
                "the target asked for layer {d}, which is not in {image}"
            )));
        }
        let tar = cdir.join("migrate-layer.tar");
        let (a, dg, t) = (agent.clone(), d.clone(), tar.clone());
        blocking(move || a.layer_tar(&dg, &t)).await?;
        let r = send_file(send, &format!("layer/{d}"), &tar, compress, sent).await;
        let _ = std::fs::remove_file(&tar);
        r.map_err(|e| nothing(e.to_string()))?;
    }
    Ok(())
}

/// After a failed write the target has usually said why it stopped
/// reading (a corrupt file, a full disk): that is the error to report.
async fn target_reason(recv: &mut quinn::RecvStream) -> Option<AgentError> {
    let r = tokio::time::timeout(
        Duration::from_secs(2),
        herd_quic::rpc::recv_msg::<Response>(recv, herd_wire::frame::MAX_FRAME),
    )
    .await
    .ok()?
    .ok()??;
    match r {
        Response::Error(e) => Some(AgentError::Other(format!("the target failed: {e}"))),
        _ => None,
    }
}

fn capture(dir: &Path, out: &Path, since: Option<SystemTime>) -> Result<()> {
    let f = std::fs::File::create(out)
        .map_err(|e| AgentError::Other(format!("create {}: {e}", out.display())))?;
    let mut w = std::io::BufWriter::new(f);
    match since {
        Some(t) => herd_overlay::capture_upper_since(dir, t, &mut w)?,
        None => herd_overlay::capture_upper(dir, &mut w)?,
    };
    std::io::Write::flush(&mut w).map_err(|e| AgentError::Other(format!("write tar: {e}")))?;
    Ok(())
}

async fn send_file(
    send: &mut quinn::SendStream,
    path: &str,
    local: &Path,
    compress: bool,
    sent: &mut Sent,
) -> std::result::Result<(), herd_quic::Error> {
    use herd_quic::rpc::send_msg;
    send_msg(send, &MigrateMsg::File { path: path.into() }).await?;
    let mut f = match tokio::fs::File::open(local).await {
        Ok(f) => f,
        Err(e) if e.kind() == std::io::ErrorKind::NotFound && path == "log" => {
            return send_msg(
                send,
                &MigrateMsg::FileEnd {
                    size: 0,
                    sha256: hex::encode(Sha256::digest([])),
                },
            )
            .await;
        }
        Err(e) => {
            return Err(herd_quic::Error::Io {
                action: "open",
                path: local.to_path_buf(),
                source: e,
            })
        }
    };
    let mut h = Sha256::new();
    let mut size = 0u64;
    let mut buf = vec![0u8; CHUNK];
    let corrupt = super::fault("corrupt-chunk") && path.starts_with("checkpoint/pages");
    loop {
        let mut n = 0;
        while n < buf.len() {
            let k = f
                .read(&mut buf[n..])
                .await
                .map_err(|e| herd_quic::Error::Io {
                    action: "read",
                    path: local.to_path_buf(),
                    source: e,
                })?;
            if k == 0 {
                break;
            }
            n += k;
        }
        if n == 0 {
            break;
        }
        h.update(&buf[..n]);
        size += n as u64;
        sent.raw += n as u64;
        if let Some(p) = &sent.progress {
            p.done
                .fetch_add(n as u64, std::sync::atomic::Ordering::Relaxed);
        }
        let mut bytes = if compress {
            zstd::bulk::compress(&buf[..n], 1).map_err(|e| herd_quic::Error::Io {
                action: "compress",
                path: local.to_path_buf(),
                source: e,
            })?
        } else {
            buf[..n].to_vec()
        };
        if corrupt && !compress {
            // Fault injection: one bit flipped on the wire.
            bytes[n / 2] ^= 0x01;
        }
        sent.wire += bytes.len() as u64;
        send_msg(
            send,
            &MigrateMsg::Data {
                zstd: compress,
                bytes,
            },
        )
        .await?;
    }
    send_msg(
        send,
        &MigrateMsg::FileEnd {
            size,
            sha256: hex::encode(h.finalize()),
        },
    )
    .await
}

/// Ask the target whether it runs the container (after a lost answer).
async fn running_on(ep: &quinn::Endpoint, to: &Target, name: &str) -> bool {
    let probe = async {
        let conn = herd_quic::endpoint::connect(ep, to.addr, &to.node)
            .await
            .ok()?;
        let r: Response = herd_quic::rpc::call(
            &conn,
            &Envelope::new(Request::Inspect { name: name.into() }),
        )
        .await
        .ok()?;
        match r {
            Response::Container(c) => Some(c.status == ContainerStatus::Running),
            Response::Error(e) if e.kind == ErrorKind::NotFound => Some(false),
            _ => None,
        }
    };
    tokio::time::timeout(Duration::from_secs(5), probe)
        .await
        .ok()
        .flatten()
        .unwrap_or(false)
}

async fn blocking<T: Send + 'static>(f: impl FnOnce() -> Result<T> + Send + 'static) -> Result<T> {
    tokio::task::spawn_blocking(f)
        .await
        .map_err(|e| AgentError::Other(format!("agent task failed: {e}")))?
}

fn ms(t: Instant) -> f64 {
    t.elapsed().as_secs_f64() * 1e3
}
