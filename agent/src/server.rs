//! The agent's QUIC endpoint: one request per bidirectional stream (see
//! herd-wire's module docs for the exchange), dispatched to [`Agent`].
//!
//! Before a request is served: its frame must arrive within the request
//! timeout (a partial frame without FIN is answered with an error and the
//! stream is reset), the peer must hold fewer than its cap of concurrent
//! streams, and [`crate::auth::authorize`] must allow the request for the
//! peer's certificate (the authorization table is in [`crate::auth`]).
//! Every write on every stream (replies, log follow, monitor subscriptions,
//! migration progress) must make progress within the stream idle timeout,
//! else the stream is reset and its task ends (`herd_quic::rpc::set_write_timeout`,
//! set by the agent's main).
//! Limits and their defaults: [`crate::limits`].

use std::collections::HashMap;
use std::sync::{Arc, Mutex};
use std::time::Duration;

use herd_quic::Identity;

use herd_wire::monitor::EventKind;
use herd_wire::{Envelope, ErrorKind, Request, Response, PROTOCOL_VERSION};

use crate::container::{CheckpointOptions, ExecRequest};
use crate::logs::LogReader;
use crate::Agent;

/// Largest request a client may send.
pub const MAX_REQUEST: usize = 1 << 20;

/// Open streams per peer certificate, across all its connections.
#[derive(Default)]
struct StreamCounts(Mutex<HashMap<String, usize>>);

/// One counted stream; uncounted on drop.
struct StreamSlot {
    counts: Arc<StreamCounts>,
    key: String,
}

impl StreamCounts {
    fn take(self: &Arc<Self>, key: &str, cap: usize) -> Option<StreamSlot> {
        let mut m = self.0.lock().unwrap_or_else(|p| p.into_inner());
        let n = m.entry(key.to_string()).or_insert(0);
        if *n >= cap {
            return None;
        }
        *n += 1;
        Some(StreamSlot {
            counts: self.clone(),
            key: key.to_string(),
        })
    }
}

impl Drop for StreamSlot {
    fn drop(&mut self) {
        let mut m = self.counts.0.lock().unwrap_or_else(|p| p.into_inner());
        if let Some(n) = m.get_mut(&self.key) {
            *n -= 1;
            if *n == 0 {
                m.remove(&self.key);
            }
        }
    }
}

/// Serve until the endpoint closes.
pub async fn serve(agent: Arc<Agent>, endpoint: quinn::Endpoint) {
    let counts = Arc::new(StreamCounts::default());
    while let Some(incoming) = endpoint.accept().await {
        let agent = agent.clone();
        let ep = endpoint.clone();
        let counts = counts.clone();
        tokio::spawn(async move {
            let remote = incoming.remote_address();
            let conn = match incoming.await {
                Ok(c) => c,
                Err(e) => {
                    tracing::info!(%remote, "refused connection: {e}");
                    return;
                }
            };
            let Some(peer) = herd_quic::endpoint::peer_identity(&conn) else {
                tracing::warn!(%remote, "peer without a cluster certificate");
                conn.close(1u32.into(), b"no cluster certificate");
                return;
            };
            let remote = herd_quic::rpc::remote_addr(&conn);
            let cap = agent.limits().streams_per_peer;
            loop {
                let (mut send, mut recv) = match conn.accept_bi().await {
                    Ok(s) => s,
                    Err(_) => return,
                };
                let agent = agent.clone();
                let ep = ep.clone();
                let peer = peer.clone();
                let slot = counts.take(&peer.to_string(), cap);
                tokio::spawn(async move {
                    let Some(slot) = slot else {
                        tracing::warn!(%remote, peer = %peer, cap, "refused a stream: too many concurrent streams");
                        let r = Response::error(
                            ErrorKind::Conflict,
                            format!("certificate {peer} already has {cap} streams open on this agent (--max-streams-per-peer)"),
                        );
                        let _ = herd_quic::rpc::respond(&mut send, &r).await;
                        let _ = recv.stop(0u32.into());
                        return;
                    };
                    match handle_stream(agent, ep, &peer, remote, slot, send, recv).await {
                        Err(e) if e.is_stalled() => {
                            tracing::warn!(%remote, peer = %peer, "dropped a stream: {e}");
                        }
                        Err(e) => tracing::debug!(%remote, "stream ended: {e}"),
                        Ok(()) => {}
                    }
                });
            }
        });
    }
}

async fn handle_stream(
    agent: Arc<Agent>,
    ep: quinn::Endpoint,
    peer: &Identity,
    remote: std::net::SocketAddr,
    slot: StreamSlot,
    mut send: quinn::SendStream,
    mut recv: quinn::RecvStream,
) -> Result<(), herd_quic::Error> {
    let timeout = agent.limits().request_timeout;
    let idle = agent.limits().stream_idle;
    let read = tokio::time::timeout(
        timeout,
        herd_quic::rpc::recv_msg::<Envelope>(&mut recv, MAX_REQUEST),
    )
    .await;
    let env: Envelope = match read {
        Ok(Ok(Some(env))) => env,
        Ok(Ok(None)) => return Ok(()),
        Ok(Err(e)) => {
            let r = Response::error(ErrorKind::InvalidInput, format!("bad request: {e}"));
            herd_quic::rpc::send_msg(&mut send, &r).await?;
            let _ = send.finish();
            return Ok(());
        }
        Err(_) => {
            tracing::warn!(%remote, peer = %peer, "no complete request within {timeout:?}; closing the stream");
            let r = Response::error(
                ErrorKind::InvalidInput,
                format!(
                    "no complete request within {} s (--request-timeout-s)",
                    timeout.as_secs_f64()
                ),
            );
            let _ = recv.stop(0u32.into());
            let _ = herd_quic::rpc::respond(&mut send, &r).await;
            return Ok(());
        }
    };
    if env.version != PROTOCOL_VERSION {
        let r = Response::error(
            ErrorKind::VersionMismatch,
            format!(
                "protocol version {} not supported by this agent (it speaks {PROTOCOL_VERSION})",
                env.version
            ),
        );
        herd_quic::rpc::send_msg(&mut send, &r).await?;
        let _ = send.finish();
        return Ok(());
    }
    if let Err(why) = crate::auth::authorize(peer, &env.request) {
        tracing::warn!(%remote, peer = %peer, request = crate::auth::verb(&env.request), "refused: {why}");
        let r = Response::error(ErrorKind::Unauthorized, why);
        herd_quic::rpc::send_msg(&mut send, &r).await?;
        let _ = send.finish();
        return Ok(());
    }
    if let Some(id) = crate::auth::migration_id(&env.request) {
        let recorded = agent.handoff.peer_of(id);
        if let Err(why) = crate::auth::migration_peer(peer, id, recorded.as_deref()) {
            tracing::warn!(%remote, peer = %peer, request = crate::auth::verb(&env.request), "refused: {why}");
            let r = Response::error(ErrorKind::Unauthorized, why);
            herd_quic::rpc::send_msg(&mut send, &r).await?;
            let _ = send.finish();
            return Ok(());
        }
    }
    match env.request {
        Request::Logs { name, follow, tail } => {
            stream_logs(agent, &name, follow, tail, &mut send).await?;
        }
        Request::MigrateIn(prepare) => {
            // MovedIn is sent when the copy runs (after Go).
            crate::migrate::migrate_in(agent.clone(), prepare, &mut send, &mut recv).await?;
        }
        Request::Handoff(q) => {
            let r = crate::migrate::serve_query(agent, q).await;
            herd_quic::rpc::send_msg(&mut send, &r).await?;
        }
        Request::MigratePages { id } => {
            crate::migrate::serve_pages(agent, id, send, recv).await;
            return Ok(());
        }
        Request::Subscribe(sub) => {
            crate::monitor::serve_subscribe(agent, sub, &mut send).await?;
        }
        Request::Migrate {
            name,
            to,
            to_addr,
            fs,
            compress,
            memory,
            mut progress,
        } => {
            let target = crate::migrate::source::Target {
                node: to,
                addr: to_addr,
            };
            let p = Arc::new(crate::migrate::source::Progress::default());
            // Its own task: a client slow to read progress never holds it up.
            let mut run = tokio::spawn(crate::migrate::migrate_out(
                agent.clone(),
                ep,
                name,
                target,
                fs,
                compress,
                memory,
                p.clone(),
            ));
            let mut tick = tokio::time::interval(Duration::from_millis(250));
            let result = loop {
                tokio::select! {
                    r = &mut run => break r,
                    _ = tick.tick(), if progress => progress = report(&mut send, &p).await,
                    _ = p.changed.notified(), if progress => progress = report(&mut send, &p).await,
                }
            };
            // MovedOut is sent when the move is done (maybe later, if pending).
            let resp = match result {
                Ok(Ok(r)) => Response::Migrated(r),
                Ok(Err(e)) => e.to_response(),
                Err(e) => {
                    Response::error(ErrorKind::Internal, format!("migration task failed: {e}"))
                }
            };
            herd_quic::rpc::send_msg(&mut send, &resp).await?;
        }
        req => {
            let resp = dispatch(agent, req).await;
            herd_quic::rpc::send_msg(&mut send, &resp).await?;
        }
    }
    let _ = send.finish();
    // The answer is written: the stream no longer counts against the peer's
    // cap. A client that exits right after reading never acknowledges the
    // last frame, and its next command must not find its slot still taken.
    drop(slot);
    // Until the peer has the last frame, within the write timeout: one that
    // stopped reading must not hold this task.
    if tokio::time::timeout(idle, send.stopped()).await.is_err() {
        let _ = send.reset(0u32.into());
    }
    Ok(())
}

/// Answer one non-streaming request.
pub async fn dispatch(agent: Arc<Agent>, req: Request) -> Response {
    let a = agent.clone();
    let out = tokio::task::spawn_blocking(move || -> Result<Response, crate::AgentError> {
        // One operation at a time: nothing touches a container in a migration.
        if let Request::Run(herd_wire::RunSpec { name, .. })
        | Request::Stop { name, .. }
        | Request::Start { name }
        | Request::Kill { name, .. }
        | Request::Remove { name, .. }
        | Request::Restore { name }
        | Request::Checkpoint { name, .. }
        | Request::Exec { name, .. } = &req
        {
            a.not_migrating(name)?;
        }
        Ok(match req {
            Request::Ping => Response::Pong {
                node: a.node().to_string(),
                version: PROTOCOL_VERSION,
                arch: std::env::consts::ARCH.to_string(),
                agent_version: env!("CARGO_PKG_VERSION").to_string(),
            },
            Request::Run(spec) => {
                let c = a.run(spec)?;
                a.monitor.event(&c.name, EventKind::Added);
                Response::Container(c)
            }
            Request::List => Response::Containers(a.list()),
            Request::Inspect { name } => Response::Container(a.inspect(&name)?),
            Request::Exec {
                name,
                cmd,
                env,
                user,
                workdir,
            } => Response::Exec(a.exec(
                &name,
                ExecRequest {
                    cmd,
                    env,
                    user,
                    workdir,
                },
            )?),
            Request::Start { name } => Response::Container(a.start(&name)?),
            Request::Stop { name, timeout_s } => {
                Response::Container(a.stop(&name, Duration::from_secs(timeout_s))?)
            }
            Request::Kill { name, signal } => {
                a.kill(&name, signal)?;
                Response::Ok
            }
            Request::Remove { name, force } => {
                a.remove(&name, force)?;
                a.monitor.event(&name, EventKind::Removed);
                Response::Ok
            }
            Request::ImageImport { name, path } => {
                Response::Image(a.image_import(&name, std::path::Path::new(&path))?)
            }
            Request::ImageList => Response::Images(a.image_list()?),
            Request::ImageRemove { name } => {
                a.image_remove(&name)?;
                Response::Ok
            }
            Request::Checkpoint {
                name,
                leave_running,
                export,
            } => Response::Checkpointed(a.checkpoint(
                &name,
                CheckpointOptions {
                    leave_running,
                    export: export.map(std::path::PathBuf::from),
                },
            )?),
            Request::Restore { name } => Response::Restored(a.restore(&name)?),
            Request::RestoreImport { path, name } => {
                let r = a.restore_import(std::path::Path::new(&path), name)?;
                a.monitor.event(&r.container.name, EventKind::Added);
                Response::Restored(r)
            }
            Request::NetworkCreate(def) => {
                a.network_create(&def)?;
                Response::Ok
            }
            Request::NetworkList => Response::Networks(a.network_list()?),
            Request::NetworkRemove { name } => {
                a.network_remove(&name)?;
                Response::Ok
            }
            Request::Logs { .. }
            | Request::Handoff(_)
            | Request::MigratePages { .. }
            | Request::Migrate { .. }
            | Request::MigrateIn(_)
            | Request::Subscribe(_) => {
                Response::error(ErrorKind::Internal, "streamed request on the wrong path")
            }
        })
    })
    .await;
    match out {
        Ok(Ok(r)) => r,
        Ok(Err(e)) => e.to_response(),
        Err(e) => Response::error(ErrorKind::Internal, format!("agent task failed: {e}")),
    }
}

async fn stream_logs(
    agent: Arc<Agent>,
    name: &str,
    follow: bool,
    tail: Option<u64>,
    send: &mut quinn::SendStream,
) -> Result<(), herd_quic::Error> {
    let path = match agent.log_path(name) {
        Ok(p) => p,
        Err(e) => return herd_quic::rpc::send_msg(send, &e.to_response()).await,
    };
    let mut reader = match LogReader::open(&path) {
        Ok(r) => r,
        Err(e) => return herd_quic::rpc::send_msg(send, &e.to_response()).await,
    };
    // In batches: a big log (or a fast writer) costs one batch of memory.
    const BATCH: u64 = 1 << 20;
    let mut first = true;
    loop {
        // Read whether it was running *before* reading, so the last lines
        // written before exit are not missed.
        let running = agent.is_running(name);
        let lines = match (first, tail) {
            (true, Some(t)) => {
                // u64 on the wire: on 32-bit hosts a huge tail means "all".
                let t = usize::try_from(t).unwrap_or(usize::MAX);
                let mut keep = std::collections::VecDeque::new();
                loop {
                    let batch = match reader.read_some(BATCH) {
                        Ok(l) => l,
                        Err(e) => return herd_quic::rpc::send_msg(send, &e.to_response()).await,
                    };
                    for l in batch {
                        keep.push_back(l);
                        if keep.len() > t {
                            keep.pop_front();
                        }
                    }
                    if reader.at_end() {
                        break;
                    }
                }
                Vec::from(keep)
            }
            _ => match reader.read_some(BATCH) {
                Ok(l) => l,
                Err(e) => return herd_quic::rpc::send_msg(send, &e.to_response()).await,
            },
        };
        first = false;
        for l in lines {
            herd_quic::rpc::send_msg(send, &Response::Log(l)).await?;
        }
        if !reader.at_end() {
            continue;
        }
        if !follow || !running {
            break;
        }
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    herd_quic::rpc::send_msg(send, &Response::End).await
}

/// Sends where a migration is; false once the client is gone (or stopped
/// reading): that must not stop the migration, it just gets no more progress.
async fn report(send: &mut quinn::SendStream, p: &crate::migrate::source::Progress) -> bool {
    let (phase, done, total) = p.get();
    let f = Response::Progress {
        phase: phase.into(),
        done_bytes: done,
        total_bytes: total,
    };
    herd_quic::rpc::send_msg(send, &f).await.is_ok()
}
