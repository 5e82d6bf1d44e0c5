//! Source side: the driver of [`herd_wire::handoff::Sender`] (its states
//! and why they are safe are documented there).

use std::collections::VecDeque;
use std::path::{Path, PathBuf};
use std::sync::Arc;
use std::time::{Duration, Instant, SystemTime};

use herd_wire::handoff::{
    Journal, Outcome, Query, Role, SAction, SEvent, SState, Sender, Step, TargetMsg,
};
use herd_wire::migrate::{
    FsMode, MemoryMode, MigrateMsg, MigrateReport, Prepare, CHUNK, MIGRATE_VERSION,
};
use herd_wire::{ContainerStatus, Envelope, Request, Response};
use sha2::{Digest, Sha256};
use tokio::io::AsyncReadExt;

use super::Mark;
use crate::container::{CheckpointOptions, PageStream};
use crate::error::{AgentError, IoContext, Result};
use crate::Agent;

/// Where a migration is, for progress reports (see `Request::Migrate`).
#[derive(Default)]
pub struct Progress {
    phase: std::sync::Mutex<&'static str>,
    pub done: std::sync::atomic::AtomicU64,
    pub total: std::sync::atomic::AtomicU64,
    /// Wakes the reporter on every phase change, so each phase (and its
    /// total) reaches the client however short it is, not only on ticks.
    pub changed: tokio::sync::Notify,
}

impl Progress {
    pub(crate) fn enter(&self, phase: &'static str, total: u64) {
        use std::sync::atomic::Ordering::Relaxed;
        *self.phase.lock().unwrap_or_else(|p| p.into_inner()) = phase;
        self.done.store(0, Relaxed);
        self.total.store(total, Relaxed);
        self.changed.notify_one();
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

#[derive(Clone)]
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

/// Move container `name` to `to`. The report's `outcome` says where it
/// runs now; `Err` only when nothing was started (bad request).
#[allow(clippy::too_many_arguments)]
pub async fn migrate_out(
    agent: Arc<Agent>,
    ep: quinn::Endpoint,
    name: String,
    to: Target,
    fs: FsMode,
    compress: bool,
    memory: MemoryMode,
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
    let id = format!("{}.{name}.{}", agent.node(), crate::state::now_ns());
    agent.handoff.mark(
        &name,
        Mark {
            id: id.clone(),
            role: Role::Source,
            from: agent.node().to_string(),
            to: to.node.clone(),
            progress: progress.clone(),
        },
    )?;
    let a = agent.clone();
    let n = name.clone();
    let checked = blocking(move || {
        let rec = a.entry(&n)?.snapshot();
        if rec.status != ContainerStatus::Running {
            return Err(AgentError::Conflict {
                name: n.clone(),
                state: rec.status.to_string(),
                hint: "only a running container can be migrated",
            });
        }
        a.check_dumpable(&n)?; // before the target builds anything
        let mem = rec.pid.and_then(resident_bytes);
        let picked = pick_memory_mode(memory, &herd_criu::Criu::from_env(), mem)?;
        let oci = std::fs::read(a.state_dir().container(&n).bundle().join("config.json"))
            .ctx(|| format!("read OCI spec of {n}"))?;
        Ok((rec, oci, picked, mem))
    })
    .await;
    let (rec, oci, (memory, why), mem) = match checked {
        Ok(x) => x,
        Err(e) => {
            agent.handoff.unmark(&name, &id);
            return Err(e);
        }
    };
    let report = MigrateReport {
        container: name.clone(),
        from: agent.node().to_string(),
        to: to.node.clone(),
        fs: format!("{fs:?}").to_lowercase(),
        compress,
        memory_mode: memory.as_str().to_string(),
        memory_mode_reason: why,
        ..Default::default()
    };
    let journal = Journal {
        id: id.clone(),
        role: Role::Source,
        container: name.clone(),
        peer: to.node.clone(),
        peer_addr: Some(to.addr.to_string()),
        step: Step::Dumping,
    };
    let mut d = Driver {
        agent: agent.clone(),
        ep: ep.clone(),
        name: name.clone(),
        to,
        core: match memory {
            MemoryMode::Stream => Sender::new(id).streaming(),
            MemoryMode::Pre => Sender::new(id).pre_copy(),
            _ => Sender::new(id),
        },
        memory,
        mem,
        held: None,
        journal,
        todo: VecDeque::new(),
        stream: None,
        conn: None,
        fs,
        compress,
        since: SystemTime::now(),
        sent: Sent {
            progress: Some(progress.clone()),
            ..Default::default()
        },
        report,
        image: rec.spec.image.clone(),
        t0,
        t_build: None,
        t_dump: None,
        t_transfer: None,
        raw_before: 0,
        live: true,
        pending_at: None,
        progress,
    };

    // Preparing: nothing changes here until the target said yes.
    let prepare = Prepare {
        // `old-protocol`: speak as the previous release would (tests of the refusal).
        version: if super::fault("old-protocol") {
            MIGRATE_VERSION - 1
        } else {
            MIGRATE_VERSION
        },
        spec: rec.spec.clone(),
        oci_spec: oci,
        image: rec.spec.image.clone(),
        layers: rec.layers.clone(),
        arch: std::env::consts::ARCH.to_string(),
        fs,
        source_node: agent.node().to_string(),
        id: d.core.id.clone(),
        memory,
    };
    let ev = d.open(prepare).await;
    d.feed(ev);
    d.report.prepare_ms = ms(t0);
    match d.run().await {
        Some(r) => Ok(r),
        None => {
            // Still resolving: say so, and go on in the background.
            let mut r = d.report.clone();
            r.outcome = Outcome::Pending;
            r.phase = Some(d.core.phase());
            r.runs_on = None;
            r.reason = Some(format!(
                "{}; {name} is frozen here and on {} until both can talk again: the agents \
                 finish the handoff by themselves",
                d.failure(),
                d.to.node
            ));
            tokio::spawn(async move {
                d.live = false;
                d.run().await;
            });
            Ok(r)
        }
    }
}

/// The memory mode to use, before anything is asked of the target:
/// `auto` becomes the best one this host supports for the container's
/// memory (`mem`: its resident bytes now), with
/// why; a mode this host or agent cannot do is refused with its reason.
fn pick_memory_mode(
    asked: MemoryMode,
    criu: &herd_criu::Criu,
    mem: Option<u64>,
) -> Result<(MemoryMode, Option<String>)> {
    let refuse = |why: String| {
        Err(AgentError::Invalid {
            what: "memory mode",
            reason: why,
        })
    };
    let features = criu.feature_check();
    let tracks = || match &features {
        Ok(f) if f.mem_track => Ok(()),
        Ok(_) => Err(
            "this kernel does not track dirty memory (criu check --feature \
                      mem_dirty_track fails)"
                .to_string(),
        ),
        Err(e) => Err(format!(
            "criu cannot tell whether the kernel tracks dirty memory: {e}"
        )),
    };
    let lazy = || match &features {
        Ok(f) if f.lazy_pages => Err(POST_COPY_BROKEN.to_string()),
        Ok(_) => Err(
            "this kernel has no non-cooperative userfaultfd (criu check --feature \
             uffd-noncoop fails), which lazy pages need"
                .to_string(),
        ),
        Err(e) => Err(format!(
            "criu cannot tell whether lazy pages work here: {e}"
        )),
    };
    match asked {
        MemoryMode::Stop => Ok((MemoryMode::Stop, None)),
        MemoryMode::Pre => match tracks() {
            Err(why) => refuse(format!(
                "--memory-mode pre needs dirty-memory tracking: {why}"
            )),
            Ok(()) => Ok((MemoryMode::Pre, None)),
        },
        MemoryMode::Stream => Ok((MemoryMode::Stream, None)),
        MemoryMode::Post => match lazy() {
            Err(why) => refuse(format!("--memory-mode post (lazy pages) is refused: {why}")),
            Ok(()) => refuse("--memory-mode post is not implemented in this agent yet".into()),
        },
        MemoryMode::Auto => {
            let pre = tracks();
            let post = match lazy() {
                Err(why) => format!("not post: {why}"),
                Ok(()) => "not post: not implemented yet".into(),
            };
            let limit = herd_wire::migrate::AUTO_STREAM_BYTES;
            let mib = |b: u64| b as f64 / (1 << 20) as f64;
            let (mode, size) = match mem {
                Some(b) if b >= limit && pre.is_ok() => (
                    MemoryMode::Pre,
                    format!(
                        "{:.0} MiB of memory, at least {:.0} MiB, and the kernel tracks dirty \
                         memory: its pages cross in rounds while it runs, and the frozen dump \
                         sends only what the last round left",
                        mib(b),
                        mib(limit)
                    ),
                ),
                Some(b) if b >= limit => (
                    MemoryMode::Stream,
                    format!(
                        "{:.0} MiB of memory, at least {:.0} MiB: its pages stream to the \
                         target while CRIU dumps, so dump and transfer overlap",
                        mib(b),
                        mib(limit)
                    ),
                ),
                Some(b) => (
                    MemoryMode::Stop,
                    format!(
                        "{:.0} MiB of memory, under {:.0} MiB: a small dump, one transfer",
                        mib(b),
                        mib(limit)
                    ),
                ),
                None => (
                    MemoryMode::Stop,
                    "its memory size is not known yet (no monitor sample)".to_string(),
                ),
            };
            let pre = match pre {
                Err(why) => format!("; not pre: {why}"),
                Ok(()) if mode == MemoryMode::Pre => String::new(),
                Ok(()) => "; not pre: a small container gains nothing from rounds".into(),
            };
            Ok((
                mode,
                Some(format!(
                    "auto picked {} ({size}{pre}; {post})",
                    mode.as_str()
                )),
            ))
        }
    }
}

/// Resident memory of the processes in the pid namespace of `init` (the
/// container's), read now: what a dump would write, near enough.
fn resident_bytes(init: i32) -> Option<u64> {
    let ns = |pid: &str| std::fs::read_link(format!("/proc/{pid}/ns/pid")).ok();
    let ours = ns(&init.to_string())?;
    let mut kib = 0u64;
    for e in std::fs::read_dir("/proc").ok()?.flatten() {
        let name = e.file_name();
        let Some(pid) = name
            .to_str()
            .filter(|p| p.bytes().all(|b| b.is_ascii_digit()))
        else {
            continue;
        };
        if ns(pid).as_ref() != Some(&ours) {
            continue;
        }
        let Ok(status) = std::fs::read_to_string(format!("/proc/{pid}/status")) else {
            continue; // it exited meanwhile
        };
        kib += status
            .lines()
            .find_map(|l| l.strip_prefix("VmRSS:"))
            .and_then(|v| v.trim().trim_end_matches("kB").trim().parse::<u64>().ok())
            .unwrap_or(0);
    }
    Some(kib << 10)
}

/// Why `post` is refused where userfaultfd works (found on Linux 6.18
/// with CRIU 4.2.1, session 9 of #22).
const POST_COPY_BROKEN: &str = "post-copy is not enabled in this agent: on Linux 6.18 with \
     CRIU 4.2.1 (uffd-noncoop supported), CRIU's lazy page server fails after the first faults \
     (`criu dump --lazy-pages` logs `page-pipe: splice: -1: Bad file descriptor`, then `Lazy \
     pages transfer FAILED`, and resumes the source's tree while the restored copy never gets the rest of \
     its pages), over a unix socket and over loopback TCP alike, so a post-copy \
     move would lose the container";

/// Resolve an outgoing migration journalled by a previous run.
pub(super) fn resume(agent: Arc<Agent>, ep: quinn::Endpoint, j: Journal) {
    let Some(addr) = j.peer_addr.as_deref().and_then(|a| a.parse().ok()) else {
        tracing::error!(id = %j.id, "journal without a target address: left alone");
        return;
    };
    tracing::info!(container = %j.container, id = %j.id, step = ?j.step, "migration out: resuming");
    let progress = Arc::new(Progress::default());
    progress.enter("handoff", 0);
    let _ = agent.handoff.mark(
        &j.container,
        Mark {
            id: j.id.clone(),
            role: Role::Source,
            from: agent.node().to_string(),
            to: j.peer.clone(),
            progress: progress.clone(),
        },
    );
    let (core, acts) = Sender::recover(j.id.clone(), j.step);
    let mut d = Driver {
        report: MigrateReport {
            container: j.container.clone(),
            from: agent.node().to_string(),
            to: j.peer.clone(),
            ..Default::default()
        },
        agent,
        ep,
        name: j.container.clone(),
        to: Target {
            node: j.peer.clone(),
            addr,
        },
        core,
        memory: MemoryMode::Stop,
        held: None,
        journal: j,
        todo: acts.into(),
        stream: None,
        conn: None,
        fs: FsMode::Diff,
        compress: false,
        since: SystemTime::now(),
        sent: Sent::default(),
        image: String::new(),
        t0: Instant::now(),
        t_build: None,
        t_dump: None,
        t_transfer: None,
        raw_before: 0,
        live: false,
        pending_at: None,
        progress,
        mem: None,
    };
    tokio::spawn(async move {
        d.run().await;
    });
}

/// Stream mode: the dump CRIU holds at its post-dump point, the tree
/// frozen. `verdict` true: kill it and finish; false (or dropped): resume.
struct Held {
    verdict: std::sync::mpsc::Sender<bool>,
    dump: tokio::task::JoinHandle<Result<herd_wire::CheckpointReport>>,
    bridge: tokio::task::JoinHandle<std::io::Result<(u64, u64)>>,
}

/// Does what the [`Sender`] says, in order.
struct Driver {
    agent: Arc<Agent>,
    ep: quinn::Endpoint,
    name: String,
    to: Target,
    core: Sender,
    memory: MemoryMode,
    held: Option<Held>,
    journal: Journal,
    todo: VecDeque<SAction>,
    stream: Option<(quinn::SendStream, quinn::RecvStream)>,
    conn: Option<quinn::Connection>,
    fs: FsMode,
    compress: bool,
    since: SystemTime,
    sent: Sent,
    report: MigrateReport,
    image: String,
    t0: Instant,
    t_build: Option<Instant>,
    t_dump: Option<Instant>,
    t_transfer: Option<Instant>,
    raw_before: u64,
    /// A live request (not a resumed journal): answers `pending` once
    /// resolving takes `HERD_HANDOFF_PENDING_S`.
    live: bool,
    pending_at: Option<Instant>,
    progress: Arc<Progress>,
    /// The container's resident bytes when the mode was picked: what a
    /// streamed dump will send, near enough (its progress total).
    mem: Option<u64>,
}

impl Driver {
    fn feed(&mut self, ev: SEvent) {
        match self.core.handle(ev) {
            Ok(a) => self.todo.extend(a),
            Err(e) => tracing::debug!(container = %self.name, "migration out: {e}"),
        }
    }

    fn failure(&self) -> String {
        self.core
            .failure()
            .map(|(_, r)| r.clone())
            .unwrap_or_else(|| "the target does not answer".into())
    }

    /// Connect, send the prepare, read the answer.
    async fn open(&mut self, prepare: Prepare) -> SEvent {
        let node = self.to.node.clone();
        let conn = match herd_quic::endpoint::connect(&self.ep, self.to.addr, &node).await {
            Ok(c) => c,
            Err(e) => {
                return SEvent::LinkLost(format!(
                    "target {node} at {} is unreachable: {e}",
                    self.to.addr
                ))
            }
        };
        let (mut send, mut recv) = match conn.open_bi().await {
            Ok(s) => s,
            Err(e) => return SEvent::LinkLost(format!("open stream to {node}: {e}")),
        };
        let sent =
            herd_quic::rpc::send_msg(&mut send, &Envelope::new(Request::MigrateIn(prepare))).await;
        if let Err(e) = sent {
            return SEvent::LinkLost(format!("link to {node}: {e}"));
        }
        let ev = match herd_quic::rpc::recv_msg::<Response>(&mut recv, herd_wire::frame::MAX_FRAME)
            .await
        {
            Ok(Some(Response::Handoff(m))) => SEvent::Answer(m),
            // An agent of another protocol version refuses the envelope.
            Ok(Some(Response::Error(e))) => SEvent::Answer(TargetMsg::Refused(e.message)),
            Ok(other) => SEvent::Answer(TargetMsg::Refused(format!(
                "it answered {other:?} to prepare"
            ))),
            Err(e) => SEvent::LinkLost(format!("link to {node}: {e}")),
        };
        self.conn = Some(conn);
        self.stream = Some((send, recv));
        ev
    }

    /// Run actions until the core finishes (`Some`) or, for a live request,
    /// resolving outlasts `pending_at` (`None`).
    async fn run(&mut self) -> Option<MigrateReport> {
        loop {
            let Some(a) = self.todo.pop_front() else {
                let ev = match self.core.state() {
                    SState::AwaitBuilt
                    | SState::AwaitPages { .. }
                    | SState::AwaitReady
                    | SState::Going => self.answer().await,
                    s => SEvent::LinkLost(format!("the source driver has nothing to do in {s:?}")),
                };
                self.feed(ev);
                continue;
            };
            if let SAction::Finish {
                outcome,
                phase,
                reason,
            } = a
            {
                return Some(self.finish(outcome, phase, reason).await);
            }
            if let (SAction::Query(Query::Decide { .. }), true) = (&a, self.live) {
                let wait = super::secs("HERD_HANDOFF_PENDING_S", 15);
                let at = *self.pending_at.get_or_insert_with(|| Instant::now() + wait);
                if Instant::now() >= at {
                    self.todo.push_front(a);
                    return None;
                }
            }
            let ev = self.act(a).await;
            if let Some(ev) = ev {
                self.feed(ev);
            }
        }
    }

    async fn act(&mut self, a: SAction) -> Option<SEvent> {
        let net = |e: herd_quic::Error| SEvent::LinkLost(format!("link to the target: {e}"));
        match a {
            SAction::SendImage(layers) => {
                let before = self.sent.wire;
                self.progress.enter("image", 0);
                let cdir = self.agent.state_dir().container(&self.name).dir;
                let (send, recv) = self.stream.as_mut()?;
                let r = send_image(
                    &self.agent,
                    &self.image,
                    &layers,
                    &cdir,
                    send,
                    self.compress,
                    &mut self.sent,
                )
                .await;
                self.report.layers_sent = layers.len() as u32;
                self.report.layer_bytes = self.sent.wire - before;
                Some(match r {
                    Ok(()) => SEvent::ImageSent,
                    Err(e) => match target_reason(recv).await {
                        Some(m) => SEvent::Answer(TargetMsg::Failed(m)),
                        None => SEvent::LinkLost(e.to_string()),
                    },
                })
            }
            SAction::PreSend => {
                let t1 = Instant::now();
                // File times come from the kernel's coarse clock, up to a
                // tick (4-10 ms) behind `now`: a write just after this point
                // could be stamped before it and left out of the delta (seen:
                // a line of an appended file lost). One second of margin only
                // resends what changed in the second before the pre-send.
                self.since = SystemTime::now() - Duration::from_secs(1);
                let cdir = self.agent.state_dir().container(&self.name);
                let r = if self.fs == FsMode::Diff {
                    let tar = cdir.dir.join("presend.tar");
                    let upper = cdir.fs().join("upper");
                    let t = tar.clone();
                    if let Err(e) = blocking(move || capture(&upper, &t, None)).await {
                        return Some(SEvent::LinkLost(format!("capture the upper layer: {e}")));
                    }
                    self.progress.enter("pre-send", file_sizes(&[&tar]));
                    let (send, _) = self.stream.as_mut()?;
                    let r = send_file(send, "upper.tar", &tar, self.compress, &mut self.sent).await;
                    let _ = std::fs::remove_file(&tar);
                    r.map_err(net)
                } else {
                    Ok(())
                };
                self.report.presend_ms = ms(t1);
                Some(match r {
                    Ok(()) => SEvent::PreSent,
                    Err(e) => e,
                })
            }
            SAction::Journal(step) => {
                if let Err(e) = self.agent.handoff.journals.step(&self.journal, step) {
                    // Without the record nothing may go on: stay frozen.
                    tracing::error!(container = %self.name, "cannot journal {step:?}: {e}");
                    return Some(match step {
                        Step::Dumping => SEvent::DumpFailed(format!("journal: {e}")),
                        // Go unwritten is Go unsaid: T hears nothing and
                        // waits; S stays frozen until the disk is fixed.
                        _ => {
                            self.todo.clear();
                            self.todo.push_back(SAction::Query(Query::Decide {
                                id: self.journal.id.clone(),
                                decision: herd_wire::handoff::Decision::Abort,
                            }));
                            self.pending_at = Some(Instant::now());
                            return None;
                        }
                    });
                }
                self.journal.step = step;
                None
            }
            SAction::Unjournal => {
                if let Err(e) = self.agent.handoff.journals.remove(&self.journal.id) {
                    tracing::error!(container = %self.name, "{e}");
                }
                None
            }
            SAction::Dump => {
                super::pause_point(&self.agent, "before-dump").await;
                self.t_dump = Some(Instant::now());
                if matches!(self.memory, MemoryMode::Stream | MemoryMode::Pre) {
                    // The pages cross while CRIU dumps: that is the bar.
                    let total = match self.memory {
                        // What the last round left, near enough.
                        MemoryMode::Pre => self.core.pre_rounds().last().map(|p| p << 12),
                        _ => self.mem,
                    };
                    self.progress.enter("dump", total.unwrap_or(0));
                    let ev = self.dump_streamed().await;
                    self.report.dump_ms = self.t_dump.map(ms).unwrap_or(0.0);
                    return Some(ev);
                }
                self.progress.enter("dump", 0);
                let a = self.agent.clone();
                let n = self.name.clone();
                let ck = blocking(move || {
                    a.checkpoint(
                        &n,
                        CheckpointOptions {
                            leave_running: false,
                            export: None,
                        },
                    )
                })
                .await;
                self.report.dump_ms = self.t_dump.map(ms).unwrap_or(0.0);
                Some(match ck {
                    Ok(ck) => {
                        self.report.criu_frozen_ms = ck.frozen_ms;
                        SEvent::Dumped
                    }
                    Err(e) => SEvent::DumpFailed(e.to_string()),
                })
            }
            SAction::Transfer => {
                self.t_transfer = Some(Instant::now());
                self.raw_before = self.sent.raw;
                let cdir = self.agent.state_dir().container(&self.name);
                let (send, recv) = self.stream.as_mut()?;
                let r = transfer(
                    &self.agent,
                    send,
                    recv,
                    &cdir.dir,
                    &cdir.fs(),
                    self.fs,
                    self.since,
                    self.compress,
                    &mut self.sent,
                )
                .await;
                Some(r.unwrap_or_else(|e| e))
            }
            SAction::Send(m) => {
                let commit = m == MigrateMsg::Commit;
                if m == MigrateMsg::PreSent {
                    self.progress.enter("build", 0);
                    self.t_build = Some(Instant::now());
                }
                if m == MigrateMsg::Go {
                    super::pause_point(&self.agent, "before-go").await;
                }
                let Some((send, _)) = self.stream.as_mut() else {
                    return Some(SEvent::LinkLost("no stream".into()));
                };
                let r = herd_quic::rpc::send_msg(send, &m).await;
                if commit {
                    self.progress.enter("restore", 0);
                    super::pause_point(&self.agent, "after-commit").await;
                }
                if m == MigrateMsg::Go {
                    self.progress.enter("handoff", 0);
                }
                match r {
                    Ok(()) => None,
                    Err(_) if m == MigrateMsg::Abort => None,
                    Err(e) => Some(net(e)),
                }
            }
            SAction::Query(q) => {
                let forget = matches!(q, Query::Forget { .. });
                if let Some((mut send, _)) = self.stream.take() {
                    let _ = send.reset(1u32.into());
                }
                if forget {
                    let (ep, to) = (self.ep.clone(), self.to.clone());
                    // T answers Busy while its migration stream still holds
                    // the side (it may not have seen the stream end yet): a
                    // Forget taken as done then would leave T's tombstone.
                    tokio::spawn(async move {
                        for _ in 0..60 {
                            match query(&ep, &to, q.clone()).await {
                                None | Some(Response::Handoff(TargetMsg::Busy)) => {
                                    tokio::time::sleep(Duration::from_secs(1)).await
                                }
                                Some(_) => break,
                            }
                        }
                    });
                    return None;
                }
                self.progress.enter("handoff", 0);
                match query(&self.ep, &self.to, q).await {
                    Some(Response::Handoff(m)) => {
                        if m == TargetMsg::Busy {
                            tokio::time::sleep(Duration::from_millis(500)).await;
                        }
                        Some(SEvent::Answer(m))
                    }
                    other => {
                        tracing::info!(container = %self.name, to = %self.to.node,
                            "migration out: no answer yet ({other:?}); asking again");
                        tokio::time::sleep(Duration::from_secs(1)).await;
                        Some(SEvent::LinkLost("no answer".into()))
                    }
                }
            }
            SAction::PreDump(round) => Some(self.pre_dump(round).await),
            SAction::RestoreOwn => Some(self.restore_own().await),
            SAction::Release => Some(self.release().await),
            SAction::CheckOwn => Some(SEvent::OwnAlive(self.agent.is_running(&self.name))),
            SAction::DeleteOwn => {
                let t4 = Instant::now();
                self.progress.enter("cleanup", 0);
                let a = self.agent.clone();
                let n = self.name.clone();
                let r = blocking(move || match a.entry(&n) {
                    Ok(_) => a.remove(&n, false),
                    Err(_) => Ok(()),
                })
                .await;
                if let Err(e) = r {
                    tracing::error!(container = %self.name, "delete the moved copy: {e}");
                }
                if self.report.frozen_ms == 0.0 {
                    // Go was answered through a resolution query.
                    self.report.frozen_ms = self.t_dump.map(ms).unwrap_or(0.0);
                }
                self.report.cleanup_ms = ms(t4);
                Some(SEvent::OwnDeleted)
            }
            SAction::Finish { .. } => None,
        }
    }

    /// The target's next answer on the migration stream.
    async fn answer(&mut self) -> SEvent {
        let wait = super::secs("HERD_HANDOFF_WAIT_S", 120);
        let Some((_, recv)) = self.stream.as_mut() else {
            return SEvent::LinkLost("no stream".into());
        };
        let r = tokio::time::timeout(
            wait,
            herd_quic::rpc::recv_msg::<Response>(recv, herd_wire::frame::MAX_FRAME),
        )
        .await;
        let ev = match r {
            Err(_) => SEvent::LinkLost(format!(
                "the target did not answer within {} s",
                wait.as_secs()
            )),
            Ok(Err(e)) => SEvent::LinkLost(format!("link to the target: {e}")),
            Ok(Ok(None)) => SEvent::LinkLost("the target closed the stream".into()),
            Ok(Ok(Some(Response::Handoff(m)))) => SEvent::Answer(m),
            Ok(Ok(Some(Response::Error(e)))) => SEvent::Answer(TargetMsg::Failed(e.message)),
            Ok(Ok(Some(r))) => SEvent::LinkLost(format!("unexpected answer {r:?}")),
        };
        match &ev {
            SEvent::Answer(TargetMsg::Built) => {
                self.report.build_ms = self.t_build.map(ms).unwrap_or(0.0);
            }
            SEvent::Answer(TargetMsg::Ready(r)) => {
                self.report.restore_ms = r.total_ms;
                self.report.transfer_ms = self.t_transfer.map(ms).unwrap_or(0.0);
            }
            SEvent::Answer(TargetMsg::Running) => {
                self.report.frozen_ms = self.t_dump.map(ms).unwrap_or(0.0);
            }
            SEvent::LinkLost(r) => tracing::warn!(container = %self.name, "migration out: {r}"),
            _ => {}
        }
        ev
    }

    /// Stream mode's dump: pages out on a second stream of the connection
    /// while CRIU dumps; `Dumped` once CRIU holds the frozen tree at its
    /// post-dump point (see [`Held`]).
    async fn dump_streamed(&mut self) -> SEvent {
        let node = self.to.node.clone();
        let failed = |e: String| SEvent::DumpFailed(format!("stream the pages to {node}: {e}"));
        let pause = Some((self.agent.clone(), 4 << 20));
        let (criu_end, bridge) = match self.page_stream(pause).await {
            Ok(x) => x,
            Err(e) => return failed(e),
        };
        // `pre`: only what changed since the last round.
        let rounds = self.core.pre_rounds().len();
        let parent = (rounds > 0).then(|| format!("../pre/{rounds}"));
        let (dumped_tx, dumped_rx) = tokio::sync::oneshot::channel::<()>();
        let (verdict, verdict_rx) = std::sync::mpsc::channel::<bool>();
        let mut dumped_tx = Some(dumped_tx);
        let hold = Box::new(move || {
            if let Some(t) = dumped_tx.take() {
                let _ = t.send(());
            }
            match verdict_rx.recv() {
                Ok(true) => Ok(()),
                _ => Err("the migration did not go through: the container resumes here".into()),
            }
        });
        let (a, n) = (self.agent.clone(), self.name.clone());
        let mut dump = tokio::task::spawn_blocking(move || {
            use std::os::fd::AsRawFd;
            let stream = PageStream {
                fd: criu_end.as_raw_fd(),
                hold,
                parent,
            };
            let opts = CheckpointOptions {
                leave_running: false,
                export: None,
            };
            let r = a.checkpoint_to(&n, opts, Some(stream));
            drop(criu_end);
            r
        });
        // A dump that ends first is polled to completion here: keep its
        // result (a JoinHandle must not be awaited twice).
        let mut ended = None;
        let dumped = tokio::select! {
            r = dumped_rx => r.is_ok(),
            r = &mut dump => {
                ended = Some(r);
                false
            }
        };
        if dumped {
            self.held = Some(Held {
                verdict,
                dump,
                bridge,
            });
            return SEvent::Dumped;
        }
        drop(verdict);
        let r = match ended {
            Some(r) => r,
            None => dump.await,
        };
        bridge.abort();
        let why = match r {
            Ok(Err(e)) => e.to_string(),
            Ok(Ok(_)) => "the dump ended without holding the container".into(),
            Err(e) => format!("agent task failed: {e}"),
        };
        SEvent::DumpFailed(why)
    }

    /// A page stream to T (`Request::MigratePages`) bridged to a unix
    /// socketpair: CRIU gets the returned end, the bridge the other.
    async fn page_stream(
        &mut self,
        pause: Option<(Arc<Agent>, u64)>,
    ) -> std::result::Result<
        (
            std::os::unix::net::UnixStream,
            tokio::task::JoinHandle<std::io::Result<(u64, u64)>>,
        ),
        String,
    > {
        let conn = self.conn.clone().ok_or("no connection")?;
        let (mut send, recv) = conn
            .open_bi()
            .await
            .map_err(|e| format!("open the page stream: {e}"))?;
        let hello = Envelope::new(Request::MigratePages {
            id: self.core.id.clone(),
        });
        herd_quic::rpc::send_msg(&mut send, &hello)
            .await
            .map_err(|e| e.to_string())?;
        let (ours, criu_end) =
            std::os::unix::net::UnixStream::pair().map_err(|e| format!("socketpair: {e}"))?;
        let bridge = tokio::spawn(super::pages::bridge(
            ours,
            send,
            recv,
            u64::MAX,
            pause,
            Some(self.progress.clone()),
            None,
        ));
        Ok((criu_end, bridge))
    }

    /// `pre`: pre-dump round `round` while the container runs, its pages
    /// to T's page server of that round; its own images (no pages) in
    /// `<container>/pre/<round>`, the parent of the next round's.
    async fn pre_dump(&mut self, round: u32) -> SEvent {
        let node = self.to.node.clone();
        let failed =
            |e: String| SEvent::PreDumpFailed(format!("round {round}, pages to {node}: {e}"));
        let pre = self.agent.state_dir().container(&self.name).dir.join("pre");
        if round == 1 {
            // Left by an earlier migration that did not finish here.
            let _ = std::fs::remove_dir_all(&pre);
        }
        self.progress
            .enter("pre-dump", self.mem.filter(|_| round == 1).unwrap_or(0));
        let (criu_end, bridge) = match self.page_stream(None).await {
            Ok(x) => x,
            Err(e) => return failed(e),
        };
        let (a, n) = (self.agent.clone(), self.name.clone());
        let dir = pre.join(round.to_string());
        let parent = (round > 1).then(|| format!("../{}", round - 1));
        let r = tokio::task::spawn_blocking(move || {
            use std::os::fd::AsRawFd;
            let r = a.pre_dump_to(&n, &dir, parent.as_deref(), criu_end.as_raw_fd());
            drop(criu_end);
            r
        })
        .await;
        // Our end saw CRIU close: the bridge finishes the stream by itself.
        let sent = tokio::time::timeout(Duration::from_secs(30), bridge).await;
        if let Ok(Ok(Ok((_, out)))) = sent {
            self.report.pre_bytes += out;
        }
        match r {
            Ok(Ok(pages)) => {
                tracing::info!(container = %self.name, round, pages, "pre-dump round done");
                SEvent::PreDumped { pages }
            }
            Ok(Err(e)) => failed(e.to_string()),
            Err(e) => failed(format!("agent task failed: {e}")),
        }
    }

    /// Stream mode, T voted: CRIU kills the held tree and finishes.
    async fn release(&mut self) -> SEvent {
        let Some(h) = self.held.take() else {
            return SEvent::ReleaseFailed("no held dump".into());
        };
        let _ = h.verdict.send(true);
        let r = h.dump.await;
        // T ends the page stream once its page server is done.
        if let Ok(Ok(Ok((_, out)))) = tokio::time::timeout(Duration::from_secs(5), h.bridge).await {
            self.report.page_bytes = out;
        }
        match r {
            Ok(Ok(ck)) => {
                self.report.criu_frozen_ms = ck.frozen_ms;
                SEvent::Released
            }
            Ok(Err(e)) => SEvent::ReleaseFailed(e.to_string()),
            Err(e) => SEvent::ReleaseFailed(format!("agent task failed: {e}")),
        }
    }

    /// Stream mode: let CRIU resume the held tree (a failed dump).
    async fn resume_held(&mut self) {
        if let Some(h) = self.held.take() {
            let _ = h.verdict.send(false);
            let r = h.dump.await;
            h.bridge.abort();
            if let Ok(Ok(_)) = r {
                tracing::error!(container = %self.name, "the held dump finished instead of resuming");
            }
        }
    }

    async fn restore_own(&mut self) -> SEvent {
        self.progress.enter("rollback", 0);
        self.resume_held().await;
        let mut last = String::new();
        for attempt in 0..3 {
            let a = self.agent.clone();
            let n = self.name.clone();
            let r = blocking(move || {
                let e = a.entry(&n)?;
                let rec = e.snapshot();
                let images = a.state_dir().container(&n).checkpoint();
                match rec.status {
                    // The dump never happened (or failed): it runs.
                    ContainerStatus::Running => Ok(()),
                    ContainerStatus::Checkpointed => a.restore(&n).map(|_| ()),
                    // Killed by CRIU at the end of a dump the agent did not
                    // see finish (it died): the images are whole.
                    ContainerStatus::Stopped if images.join("stats-dump").exists() => {
                        crate::container::lock(&e.record).status = ContainerStatus::Checkpointed;
                        a.restore(&n).map(|_| ())
                    }
                    s => Err(AgentError::NothingToResume {
                        name: n.clone(),
                        state: s.to_string(),
                    }),
                }
            })
            .await;
            match r {
                Ok(()) => return SEvent::OwnRestored,
                Err(e) => {
                    tracing::warn!(container = %self.name, attempt, "restore of the own copy: {e}");
                    last = e.to_string();
                }
            }
            tokio::time::sleep(Duration::from_secs(1)).await;
        }
        SEvent::OwnRestoreFailed(format!(
            "{last} (its checkpoint is kept: `herd restore {}`)",
            self.name
        ))
    }

    async fn finish(
        &mut self,
        outcome: Outcome,
        phase: Option<herd_wire::handoff::Phase>,
        reason: Option<String>,
    ) -> MigrateReport {
        // Never leave a tree frozen in CRIU's hands.
        self.resume_held().await;
        if let Some((mut send, _)) = self.stream.take() {
            let _ = send.finish();
        }
        if let Some(c) = self.conn.take() {
            c.close(0u32.into(), b"done");
        }
        self.agent.handoff.unmark(&self.name, &self.journal.id);
        // `pre`: the rounds' own images (their pages are on T).
        let _ =
            std::fs::remove_dir_all(self.agent.state_dir().container(&self.name).dir.join("pre"));
        let r = &mut self.report;
        r.pre_rounds = self.core.pre_rounds().to_vec();
        r.pre_stop = self.core.pre_stop().map(str::to_string);
        r.outcome = outcome;
        r.phase = phase;
        r.reason = reason;
        r.total_ms = ms(self.t0);
        r.bytes = self.sent.wire + r.page_bytes + r.pre_bytes;
        r.raw_bytes = self.sent.raw + r.page_bytes + r.pre_bytes;
        let secs = if r.page_bytes > 0 {
            (r.dump_ms + r.transfer_ms) / 1e3
        } else {
            r.transfer_ms / 1e3
        };
        if r.transfer_ms > 0.0 {
            let raw = (self.sent.raw - self.raw_before + r.page_bytes) as f64;
            r.throughput_mib_s = raw / (1 << 20) as f64 / secs;
        }
        r.runs_on = match outcome {
            Outcome::Moved => Some(self.to.node.clone()),
            Outcome::RolledBack | Outcome::Untouched => self
                .agent
                .is_running(&self.name)
                .then(|| self.agent.node().to_string()),
            Outcome::Pending => None,
        };
        if outcome == Outcome::Moved {
            self.agent
                .monitor
                .moved_out(&self.name, &self.to.node, r.frozen_ms / 1e3);
        }
        tracing::info!(container = %self.name, outcome = outcome.as_str(), reason = ?r.reason, "migration out: done");
        r.clone()
    }
}

/// One resolution query over a fresh connection, bounded in time.
async fn query(ep: &quinn::Endpoint, to: &Target, q: Query) -> Option<Response> {
    let wait = super::secs("HERD_HANDOFF_QUERY_S", 5);
    let ask = async {
        let conn = herd_quic::endpoint::connect(ep, to.addr, &to.node)
            .await
            .ok()?;
        let r = herd_quic::rpc::call(&conn, &Envelope::new(Request::Handoff(q)))
            .await
            .ok();
        conn.close(0u32.into(), b"done");
        r
    };
    tokio::time::timeout(wait, ask).await.ok().flatten()
}

/// Stream the checkpoint images and the rest; T may stop reading and say why.
#[allow(clippy::too_many_arguments)]
async fn transfer(
    agent: &Arc<Agent>,
    send: &mut quinn::SendStream,
    recv: &mut quinn::RecvStream,
    cdir: &Path,
    fsdir: &Path,
    fs: FsMode,
    since: SystemTime,
    compress: bool,
    sent: &mut Sent,
) -> std::result::Result<SEvent, SEvent> {
    let lost = |e: String| SEvent::LinkLost(format!("transfer: {e}"));
    let images = cdir.join("checkpoint");
    let mut files: Vec<(String, PathBuf)> = Vec::new();
    let mut names: Vec<String> = std::fs::read_dir(&images)
        .map_err(|e| lost(format!("read {}: {e}", images.display())))?
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
            blocking(move || capture(&u, &t, Some(since)))
                .await
                .map_err(|e| lost(e.to_string()))?;
            files.push(("upper-delta.tar".into(), extra.clone()));
        }
        FsMode::Whole => {
            let (m, t) = (fsdir.join("merged"), extra.clone());
            blocking(move || capture(&m, &t, None))
                .await
                .map_err(|e| lost(e.to_string()))?;
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
    let half = files.len() / 2;
    for (i, (p, local)) in files.iter().enumerate() {
        if i == half {
            super::pause_point(agent, "mid-transfer").await;
        }
        if let Err(e) = send_file(send, p, local, compress, sent).await {
            let _ = std::fs::remove_file(&extra);
            return Err(match target_reason(recv).await {
                Some(m) => SEvent::Answer(TargetMsg::Failed(m)),
                None => lost(e.to_string()),
            });
        }
    }
    let _ = std::fs::remove_file(&extra);
    Ok(SEvent::Transferred)
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
    let nothing = |e: AgentError| AgentError::SendImage {
        image: image.to_string(),
        source: Box::new(e),
    };
    let rec = agent.image_record(image)?;
    let json = cdir.join("migrate-image.json");
    std::fs::write(
        &json,
        serde_json::to_vec(&rec)
            .ctx(|| "encode image.json".into())
            .map_err(nothing)?,
    )
    .ctx(|| format!("write {}", json.display()))
    .map_err(nothing)?;
    let r = send_file(send, "image.json", &json, compress, sent).await;
    let _ = std::fs::remove_file(&json);
    r.ctx(|| "send image.json".into()).map_err(nothing)?;
    for d in layers {
        if !rec.layers.contains(d) {
            return Err(nothing(AgentError::UnknownLayer {
                layer: d.clone(),
                image: image.to_string(),
            }));
        }
        let tar = cdir.join("migrate-layer.tar");
        let (a, dg, t) = (agent.clone(), d.clone(), tar.clone());
        blocking(move || a.layer_tar(&dg, &t)).await?;
        let r = send_file(send, &format!("layer/{d}"), &tar, compress, sent).await;
        let _ = std::fs::remove_file(&tar);
        r.ctx(|| format!("send layer {d}")).map_err(nothing)?;
    }
    Ok(())
}

/// After a failed write the target has usually said why it stopped
/// reading (a corrupt file, a full disk): that is the error to report.
async fn target_reason(recv: &mut quinn::RecvStream) -> Option<String> {
    let r = tokio::time::timeout(
        Duration::from_secs(2),
        herd_quic::rpc::recv_msg::<Response>(recv, herd_wire::frame::MAX_FRAME),
    )
    .await
    .ok()?
    .ok()??;
    match r {
        Response::Handoff(TargetMsg::Failed(m)) => Some(m),
        Response::Error(e) => Some(e.message),
        _ => None,
    }
}

fn capture(dir: &Path, out: &Path, since: Option<SystemTime>) -> Result<()> {
    let f = std::fs::File::create(out).ctx(|| format!("create {}", out.display()))?;
    let mut w = std::io::BufWriter::new(f);
    match since {
        Some(t) => herd_overlay::capture_upper_since(dir, t, &mut w)?,
        None => herd_overlay::capture_upper(dir, &mut w)?,
    };
    std::io::Write::flush(&mut w).ctx(|| "write tar".into())?;
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

async fn blocking<T: Send + 'static>(f: impl FnOnce() -> Result<T> + Send + 'static) -> Result<T> {
    tokio::task::spawn_blocking(f).await?
}

fn ms(t: Instant) -> f64 {
    t.elapsed().as_secs_f64() * 1e3
}
