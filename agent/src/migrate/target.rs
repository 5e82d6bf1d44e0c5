//! Target side: the driver of [`herd_wire::handoff::Receiver`]. Files are
//! staged under `<state>/migrate-in-*`; at `PreSent` (X still runs on S)
//! the container is built from the pre-sent upper layer and the Prepare's
//! OCI spec ([`Agent::build_staged`]: overlay, fenced netns with its
//! macvlan, cgroups, bundle), so after `Commit` only the delta, the images
//! and the restore remain ([`Agent::finish_staged`]). The restore is held
//! (stopped and fenced) until S's decision, and a query
//! (`Request::Handoff`) can reach the same core as the migration stream,
//! through [`Handoff::incoming`].
//!
//! [`Handoff::incoming`]: super::Handoff

use std::collections::VecDeque;
use std::io::Write;
use std::path::PathBuf;
use std::sync::Arc;
use std::time::Instant;

use herd_wire::handoff::{
    check_version, valid_id, Journal, Query, RAction, REvent, RState, Receiver, Role, TargetMsg,
};
use herd_wire::migrate::{FsMode, MemoryMode, MigrateMsg, Prepare, CHUNK, MIGRATE_VERSION};
use herd_wire::monitor::EventKind;
use herd_wire::{ErrorKind, Response};

use super::{Mark, MAX_MIGRATE_FRAME};
use crate::container::lock;
use crate::error::AgentError;
use crate::Agent;

/// One incoming migration: its core and what the driver holds for it.
pub struct Side {
    core: Receiver,
    journal: Journal,
    staging: Option<PathBuf>,
    prepare: Option<Prepare>,
    file: Option<std::fs::File>,
    /// A build or restore began: a container of that name here is this
    /// migration's.
    made: bool,
    /// What [`RAction::Build`] made (absent for `--fs whole`, whose
    /// filesystem only comes with the dump).
    built: Option<Arc<crate::container::Entry>>,
    /// `pre`: how the page session of the round just started ends, until
    /// the migration stream takes it.
    pages: Option<super::pages::Done>,
    /// Page bytes in so far: the source's sign of life while its
    /// migration stream is quiet.
    seen: super::pages::Seen,
}

impl Side {
    fn name(&self) -> &str {
        &self.journal.container
    }
}

fn reply(m: TargetMsg) -> Response {
    Response::Handoff(m)
}

/// Serve one incoming migration on its stream (after the `MigrateIn` envelope).
pub async fn migrate_in(
    agent: Arc<Agent>,
    prepare: Prepare,
    send: &mut quinn::SendStream,
    recv: &mut quinn::RecvStream,
) -> Result<(), herd_quic::Error> {
    let name = prepare.spec.name.clone();
    if let Err(m) = check_version(prepare.version) {
        return herd_quic::rpc::send_msg(send, &reply(TargetMsg::Refused(m))).await;
    }
    if !valid_id(&prepare.id) {
        let m = format!("bad migration id {:?}", prepare.id);
        return herd_quic::rpc::send_msg(send, &reply(TargetMsg::Refused(m))).await;
    }
    let need = match check(&agent, &prepare) {
        Ok(need) => need,
        Err(e) => {
            let m = match *e {
                Response::Error(w) => w.message,
                r => format!("{r:?}"),
            };
            return herd_quic::rpc::send_msg(send, &reply(TargetMsg::Refused(m))).await;
        }
    };
    let mark = Mark {
        id: prepare.id.clone(),
        role: Role::Target,
        from: prepare.source_node.clone(),
        to: agent.node().to_string(),
        progress: Default::default(),
    };
    mark.progress.enter("transfer", 0);
    if let Err(e) = agent.handoff.mark(&name, mark) {
        let m = e.to_string();
        return herd_quic::rpc::send_msg(send, &reply(TargetMsg::Refused(m))).await;
    }
    let staging = agent.staging_dir("migrate-in");
    let made = std::fs::create_dir_all(staging.join("checkpoint"))
        .and_then(|_| std::fs::create_dir_all(staging.join("layer")));
    if let Err(e) = made {
        agent.handoff.unmark(&name, &prepare.id);
        let m = format!("create staging dir: {e}");
        return herd_quic::rpc::send_msg(send, &reply(TargetMsg::Refused(m))).await;
    }
    let id = prepare.id.clone();
    let limits = agent.limits();
    let seen = super::pages::Seen::default();
    // Stream mode: the page server is up before anything freezes on S.
    let mut pages = None;
    if prepare.memory == MemoryMode::Stream {
        let (a, i, images, s) = (
            agent.clone(),
            id.clone(),
            staging.join("checkpoint"),
            seen.clone(),
        );
        let started = tokio::task::spawn_blocking(move || {
            super::pages::start_server(&a, &i, &images, None, s)
        })
        .await
        .unwrap_or_else(|e| Err(e.into()));
        match started {
            Ok(rx) => pages = Some(rx),
            Err(e) => {
                agent.handoff.unmark(&name, &prepare.id);
                let _ = std::fs::remove_dir_all(&staging);
                let m = e.to_string();
                return herd_quic::rpc::send_msg(send, &reply(TargetMsg::Refused(m))).await;
            }
        }
    }
    let mut core =
        Receiver::new(id.clone()).with_limits(limits.migration_bytes, limits.unpack.max_entries);
    if pages.is_some() {
        core = core.streaming();
    }
    if prepare.memory == MemoryMode::Pre {
        core = core.pre_copy();
    }
    let side = Arc::new(tokio::sync::Mutex::new(Side {
        core,
        journal: Journal {
            id: id.clone(),
            role: Role::Target,
            container: name.clone(),
            peer: prepare.source_node.clone(),
            peer_addr: None,
            step: herd_wire::handoff::Step::Restoring,
        },
        staging: Some(staging),
        prepare: Some(prepare.clone()),
        file: None,
        made: false,
        built: None,
        pages: None,
        seen: seen.clone(),
    }));
    lock(&agent.handoff.incoming).insert(id.clone(), side.clone());
    let answer = TargetMsg::Prepared {
        need_layers: need.unwrap_or_default(),
    };
    herd_quic::rpc::send_msg(send, &reply(answer)).await?;
    tracing::info!(container = %name, from = %prepare.source_node, %id, "migration in: prepared");

    loop {
        // A source silent for longer than the idle limit is a lost link
        // (its page stream is not silent: a long `pre` round or streamed
        // dump is not idle).
        let next = herd_quic::rpc::recv_msg::<MigrateMsg>(recv, MAX_MIGRATE_FRAME);
        let got = super::pages::idle_bounded(next, limits.stream_idle, &seen).await;
        let Some(got) = got else {
            tracing::warn!(
                container = %name, %id,
                "no frame from the source for {} s (--stream-idle-timeout-s)",
                limits.stream_idle.as_secs_f64()
            );
            let msg = format!(
                "no frame from the source for {} s (--stream-idle-timeout-s)",
                limits.stream_idle.as_secs_f64()
            );
            // Before the vote a silent source ends the migration (answered,
            // in case it still listens); after it, only the link is lost.
            let staging = side.lock().await.core.state() == herd_wire::handoff::RState::Staging;
            let ev = if staging {
                REvent::LocalFailure(msg)
            } else {
                REvent::LinkLost
            };
            let (replies, _) = feed(&agent, &side, ev).await;
            for r in replies {
                let _ = herd_quic::rpc::send_msg(send, &reply(r)).await;
            }
            break;
        };
        let ev = match got {
            Ok(Some(MigrateMsg::Data { zstd: true, bytes })) => {
                match zstd::bulk::decompress(&bytes, CHUNK) {
                    Ok(plain) => REvent::Msg(MigrateMsg::Data {
                        zstd: false,
                        bytes: plain,
                    }),
                    Err(e) => REvent::LocalFailure(format!("bad zstd chunk: {e}")),
                }
            }
            Ok(Some(m @ (MigrateMsg::Commit | MigrateMsg::PageRound { .. })))
                if pages.is_some() =>
            {
                // The page session (stream, or `pre`'s round) ended before
                // S's dump did; hear how.
                let ev = match pages.take() {
                    Some(rx) => match super::pages::idle_bounded(rx, limits.stream_idle, &seen)
                        .await
                    {
                        Some(Ok(Ok(bytes))) => {
                            tracing::info!(container = %name, %id, bytes, "migration in: pages in");
                            REvent::PagesIn
                        }
                        Some(Ok(Err(e))) => REvent::LocalFailure(e.to_string()),
                        Some(Err(_)) => REvent::LocalFailure("the page stream never came".into()),
                        None => REvent::LocalFailure(format!(
                            "the page stream went quiet for {} s without ending",
                            limits.stream_idle.as_secs_f64()
                        )),
                    },
                    None => REvent::PagesIn,
                };
                let (replies, state) = feed(&agent, &side, ev).await;
                for r in replies {
                    let _ = herd_quic::rpc::send_msg(send, &reply(r)).await;
                }
                if state == RState::Gone {
                    break;
                }
                REvent::Msg(m)
            }
            Ok(Some(m)) => REvent::Msg(m),
            Ok(None) => REvent::LinkLost,
            Err(e) => {
                tracing::info!(container = %name, %id, "migration stream: {e}");
                REvent::LinkLost
            }
        };
        let lost = ev == REvent::LinkLost;
        let (replies, state) = feed(&agent, &side, ev).await;
        if let Some(rx) = side.lock().await.pages.take() {
            // `pre`: the page server of the round just asked for.
            pages = Some(rx);
        }
        for r in replies {
            // A dead stream shows on the next read.
            let _ = herd_quic::rpc::send_msg(send, &reply(r)).await;
        }
        if lost || state == RState::Gone {
            break;
        }
    }
    Ok(())
}

/// Apply an event to a side and do its actions (blocking work off the
/// runtime); returns the answers for S and the state after.
async fn feed(
    agent: &Arc<Agent>,
    side: &Arc<tokio::sync::Mutex<Side>>,
    ev: REvent,
) -> (Vec<TargetMsg>, RState) {
    let mut g = side.clone().lock_owned().await;
    let a = agent.clone();
    let r = tokio::task::spawn_blocking(move || {
        let out = apply_event(&a, &mut g, ev);
        (out, g.core.state(), g.core.id.clone())
    })
    .await;
    match r {
        Ok((out, state, id)) => {
            if state == RState::Gone {
                lock(&agent.handoff.incoming).remove(&id);
            }
            (out, state)
        }
        Err(e) => {
            tracing::error!("migration task failed: {e}");
            (vec![], RState::Gone)
        }
    }
}

fn apply_event(agent: &Arc<Agent>, side: &mut Side, ev: REvent) -> Vec<TargetMsg> {
    match side.core.handle(ev) {
        Ok(acts) => apply(agent, side, acts),
        Err(e) => {
            tracing::warn!(container = %side.name(), "migration in: {e}");
            vec![]
        }
    }
}

/// Do the core's actions in order; events they produce go back into it.
fn apply(agent: &Arc<Agent>, side: &mut Side, acts: Vec<RAction>) -> Vec<TargetMsg> {
    let mut out = Vec::new();
    let mut todo: VecDeque<RAction> = acts.into();
    let name = side.name().to_string();
    while let Some(a) = todo.pop_front() {
        let ev = match a {
            RAction::Create(path) => match side.staging.as_ref().map(|s| s.join(&path)) {
                Some(p) => match std::fs::File::create(&p) {
                    Ok(f) => {
                        side.file = Some(f);
                        None
                    }
                    Err(e) => Some(REvent::LocalFailure(format!("create {path}: {e}"))),
                },
                None => Some(REvent::LocalFailure("no staging dir".into())),
            },
            RAction::Write(bytes) => match side.file.as_mut().map(|f| f.write_all(&bytes)) {
                Some(Ok(())) => None,
                Some(Err(e)) => Some(REvent::LocalFailure(format!("write: {e}"))),
                None => Some(REvent::LocalFailure("write outside a file".into())),
            },
            RAction::Close => {
                side.file = None;
                None
            }
            RAction::Journal(step) => {
                match agent.handoff.journals.step(&side.journal, step) {
                    Ok(()) => {
                        side.journal.step = step;
                        None
                    }
                    // Never vote (or run) without the record.
                    Err(e) => Some(REvent::LocalFailure(format!("journal: {e}"))),
                }
            }
            RAction::Unjournal => {
                if let Err(e) = agent.handoff.journals.remove(&side.journal.id) {
                    tracing::error!(container = %name, "{e}");
                }
                None
            }
            RAction::Build => Some(build(agent, side)),
            RAction::StartPages { round, last } => Some(start_pages(agent, side, round, last)),
            RAction::RestoreFenced => {
                side.made = true;
                Some(restore_held(agent, side))
            }
            RAction::Thaw => {
                if let Err(e) = agent.release(&name) {
                    tracing::error!(container = %name, "release after Go: {e}");
                }
                agent.handoff.unmark(&name, &side.journal.id);
                // `pre`: the rounds' pages were read by the restore.
                let _ = std::fs::remove_dir_all(
                    agent.state_dir().container(&name).checkpoint().join("pre"),
                );
                agent.monitor.event(
                    &name,
                    EventKind::MovedIn {
                        from: side.journal.peer.clone(),
                    },
                );
                tracing::info!(container = %name, id = %side.journal.id, "migration in: runs (Go)");
                super::pause_blocking(agent, "after-go");
                None
            }
            RAction::Discard => {
                super::pages::drop_server(agent, &side.journal.id);
                side.file = None;
                side.built = None;
                if side.made {
                    discard(agent, &name);
                }
                if let Some(s) = side.staging.take() {
                    let _ = std::fs::remove_dir_all(s);
                }
                agent.handoff.unmark(&name, &side.journal.id);
                tracing::info!(container = %name, id = %side.journal.id, "migration in: dropped");
                None
            }
            RAction::Reply(m) => {
                // The target's own log says why (a corrupt file, a limit).
                if let TargetMsg::Failed(why) = &m {
                    tracing::warn!(container = %name, id = %side.journal.id, "migration in failed: {why}");
                }
                out.push(m);
                None
            }
        };
        if let Some(ev) = ev {
            match side.core.handle(ev) {
                Ok(more) => {
                    // Follow-ups first, in their order.
                    for x in more.into_iter().rev() {
                        todo.push_front(x);
                    }
                }
                Err(e) => tracing::error!(container = %name, "migration in: {e}"),
            }
        }
    }
    out
}

/// Remove whatever this migration made of `name` here: a held copy, a
/// half restore, the dirs (the core never discards after Go).
fn discard(agent: &Arc<Agent>, name: &str) {
    match agent.entry(name) {
        Ok(e) => agent.discard(&e),
        Err(_) => agent.remove_orphan(name),
    }
}

/// `pre`: start the page server of `round` (module docs of
/// [`super::pages`] for where it writes); the result as an event.
fn start_pages(agent: &Arc<Agent>, side: &mut Side, round: u32, last: bool) -> REvent {
    let Some(dir) = side.staging.as_ref().map(|s| s.join("checkpoint")) else {
        return REvent::LocalFailure("no staging dir".into());
    };
    let before = round.checked_sub(1).filter(|n| *n > 0);
    let (images, parent) = if last {
        (dir, before.map(|n| format!("pre/{n}")))
    } else {
        (
            dir.join("pre").join(round.to_string()),
            before.map(|n| format!("../{n}")),
        )
    };
    let seen = side.seen.clone();
    match super::pages::start_server(agent, &side.journal.id, &images, parent, seen) {
        Ok(rx) => {
            side.pages = Some(rx);
            REvent::PagesReady
        }
        Err(m) => REvent::LocalFailure(m.to_string()),
    }
}

/// Build what needs no dump while X still runs on S; the result as an event.
fn build(agent: &Arc<Agent>, side: &mut Side) -> REvent {
    let (Some(dir), Some(p)) = (side.staging.clone(), side.prepare.clone()) else {
        return REvent::LocalFailure("nothing staged".into());
    };
    let r = (|| -> Result<Option<Arc<crate::container::Entry>>, AgentError> {
        if super::fault("fail-build") {
            return Err(AgentError::Other("injected fault: fail-build".into()));
        }
        if dir.join("image.json").exists() {
            agent.image_from_peer(&dir)?;
            let _ = std::fs::remove_dir_all(dir.join("layer"));
            let _ = std::fs::remove_file(dir.join("image.json"));
        }
        // `late-build`: everything after Commit, as before (the bench's baseline).
        if p.fs == FsMode::Whole || super::fault("late-build") {
            return Ok(None); // the filesystem comes with the dump
        }
        agent
            .build_staged(&dir, &p.spec, &p.layers, &p.oci_spec)
            .map(Some)
    })();
    match r {
        Ok(e) => {
            // A failed build removed what it made; a whole one made nothing.
            side.made = e.is_some();
            side.built = e;
            super::pause_blocking(agent, "after-build");
            tracing::info!(container = %side.name(), id = %side.journal.id, "migration in: built");
            REvent::Built
        }
        Err(e) => REvent::LocalFailure(format!("build the container: {e}")),
    }
}

/// Restore from staging, stopped and fenced; the result as an event.
fn restore_held(agent: &Arc<Agent>, side: &mut Side) -> REvent {
    let (Some(dir), Some(p)) = (side.staging.clone(), side.prepare.clone()) else {
        return REvent::RestoreFailed("nothing staged".into());
    };
    let t0 = Instant::now();
    let built = side.built.take();
    let r = (|| -> Result<herd_wire::RestoreReport, AgentError> {
        if super::fault("fail-restore") {
            return Err(AgentError::Other("injected fault: fail-restore".into()));
        }
        if let Some(entry) = &built {
            return agent.finish_staged(entry, &dir, t0, true);
        }
        if p.fs == FsMode::Whole {
            // The flattened filesystem becomes this container's own image.
            let image = format!("{}-whole", p.spec.name);
            let layers = agent.image_import_layers(&image, &dir.join("whole.tar"))?;
            let spec = herd_wire::RunSpec {
                image,
                ..p.spec.clone()
            };
            agent.import_staged(&dir, &spec, &layers, t0, true)
        } else {
            agent.import_staged(&dir, &p.spec, &p.layers, t0, true)
        }
    })();
    let _ = std::fs::remove_dir_all(&dir);
    side.staging = None;
    match r {
        Ok(rep) => {
            super::pause_blocking(agent, "before-ready");
            REvent::Restored(Box::new(rep))
        }
        Err(e) => {
            // Someone else's container of that name: not ours to discard.
            if matches!(e, AgentError::ContainerExists(_)) {
                side.made = false;
            }
            REvent::RestoreFailed(e.to_string())
        }
    }
}

/// S resolving a migration over a fresh stream.
pub async fn serve_query(agent: Arc<Agent>, q: Query) -> Response {
    let (id, ev) = match q {
        Query::Decide { id, decision } => (id, REvent::Decide(decision)),
        Query::Forget { id } => (id, REvent::Forget),
    };
    let side = lock(&agent.handoff.incoming).get(&id).cloned();
    let Some(side) = side else {
        return match ev {
            REvent::Decide(d) => reply(Receiver::unknown(d)),
            _ => Response::Ok,
        };
    };
    // A restore in flight holds the side: ask again later.
    if side.try_lock().is_err() {
        return reply(TargetMsg::Busy);
    }
    let forget = ev == REvent::Forget;
    let (mut out, state) = feed(&agent, &side, ev).await;
    if forget {
        lock(&agent.handoff.incoming).remove(&id);
        return Response::Ok;
    }
    match (out.pop(), state) {
        (Some(m), _) => reply(m),
        (None, s) => Response::error(
            ErrorKind::Conflict,
            format!("migration {id} is {s:?} here: that decision does not apply"),
        ),
    }
}

/// A journalled incoming migration of a previous run (from `Agent::open`).
pub(super) fn resume(agent: &Arc<Agent>, j: Journal) {
    let (core, acts) = Receiver::recover(j.id.clone(), j.step);
    tracing::info!(container = %j.container, id = %j.id, step = ?j.step, "migration in: resuming");
    if core.state() == RState::Ready {
        let mark = Mark {
            id: j.id.clone(),
            role: Role::Target,
            from: j.peer.clone(),
            to: agent.node().to_string(),
            progress: Default::default(),
        };
        mark.progress.enter("handoff", 0);
        if let Err(e) = agent.handoff.mark(&j.container, mark) {
            tracing::error!("{e}");
        }
    }
    let mut side = Side {
        core,
        journal: j.clone(),
        staging: None,
        prepare: None,
        file: None,
        made: true,
        built: None,
        pages: None,
        seen: Default::default(),
    };
    apply(agent, &mut side, acts);
    if side.core.state() != RState::Gone {
        lock(&agent.handoff.incoming).insert(j.id, Arc::new(tokio::sync::Mutex::new(side)));
    }
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
    if !matches!(
        p.memory,
        MemoryMode::Stop | MemoryMode::Stream | MemoryMode::Pre
    ) {
        return Err(refuse(
            ErrorKind::Unsupported,
            format!(
                "memory mode {} is not one this agent can receive (stop, stream, pre)",
                p.memory.as_str()
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
    // `-v`: the same host paths here, or no move (container/volumes.rs).
    agent
        .check_volumes(&p.spec.name, &p.spec.volumes)
        .map_err(|e| Box::new(e.to_response()))?;
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
            memory: MemoryMode::Stop,
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
