//! Live migration between agents: the driver of the sans-IO handoff core
//! in [`herd_wire::handoff`] (sequence, state machines, why at most one
//! copy runs) and of the transfer format in [`herd_wire::migrate`].
//!
//! Both sides run on the agent's async runtime and call the blocking
//! container operations (`checkpoint`, `import_staged`, `restore`, `remove`)
//! through `spawn_blocking`. Files travel as `File` / `Data` / `FileEnd`
//! frames: chunks of at most [`herd_wire::migrate::CHUNK`] bytes, optionally
//! zstd-compressed per chunk, each file checked by size and sha256 on arrival.
//!
//! The driver does what the cores say, in order, and each journal record
//! is durable before the next action. Journals left by a previous run are
//! resolved at start-up ([`resume_all`]): S asks T until T answers, T keeps
//! a voted copy stopped and fenced until S's decision arrives.
//!
//! `--memory-mode stream` ([`pages`]): the dump's pages go to a page
//! server on T through a second QUIC stream while CRIU dumps, and CRIU
//! holds the frozen tree at its post-dump point until S's decision
//! (sequence and states in [`herd_wire::handoff`]). Fault pause point
//! `mid-stream`: S's page stream after 4 MiB went out; fault `slow-pages`:
//! S's page streams send about 2 MiB/s (a slow link, for T's idle limit,
//! which page bytes reset: [`pages::idle_bounded`]).
//!
//! `--memory-mode pre`: rounds of CRIU pre-dumps (soft-dirty tracking)
//! while the container runs, each round's pages over its own page stream
//! to a page server T starts for that round, then a streamed dump of what
//! the last round left (sequence in [`herd_wire::handoff`], where the
//! images go in [`pages`], the convergence rule in
//! [`herd_wire::handoff::pre_converged`]).
//!
//! `auto` picks, from [`herd_wire::migrate::AUTO_STREAM_BYTES`] of
//! container memory (its processes' resident bytes), `pre` where the
//! kernel tracks dirty memory (`criu check --feature mem_dirty_track`) and
//! `stream` where it does not; below that size `stop`. `pre` is refused
//! without dirty-memory tracking and `post` is refused with the CRIU
//! failure found on this kernel (`source::pick_memory_mode`; the designed
//! post-copy sequence and its risk are in [`herd_wire::handoff`]). Every
//! report says which mode ran and why.
//!
//! Timeouts (seconds, environment of the agent): `HERD_HANDOFF_WAIT_S`
//! (default 120) for T's vote and answers on the migration stream,
//! `HERD_HANDOFF_QUERY_S` (5) per resolution query, `HERD_HANDOFF_PENDING_S`
//! (15) before `herd migrate` is answered `pending` while S keeps resolving.

pub mod journal;
pub(crate) mod pages;
pub mod source;
mod target;

use std::collections::HashMap;
use std::sync::{Arc, Mutex};
use std::time::Duration;

use herd_wire::handoff::{MigrationId, Role};

pub use source::migrate_out;
pub use target::{migrate_in, serve_query};

/// `Request::MigratePages`: the target's end of a page stream.
pub async fn serve_pages(
    agent: Arc<Agent>,
    id: MigrationId,
    send: quinn::SendStream,
    recv: quinn::RecvStream,
) {
    pages::serve(agent, id, send, recv).await
}

use crate::container::lock;
use crate::error::{AgentError, Result};
use crate::Agent;

/// Frames of the migration stream may carry a full chunk plus framing.
pub(crate) const MAX_MIGRATE_FRAME: usize = herd_wire::migrate::CHUNK + 4096;

/// Fault injection for tests of failures that cannot be caused for real on
/// one machine (a bit flipped on the wire, a restore that fails after the
/// transfer, a pause at a phase boundary): `HERD_FAULT=<name>` in the
/// agent's environment.
pub(crate) fn fault(name: &str) -> bool {
    std::env::var("HERD_FAULT")
        .map(|v| v.split(',').any(|f| f == name))
        .unwrap_or(false)
}

/// `HERD_FAULT=pause-<point>`: wait here (so a test can cut a link or kill
/// an agent at exactly this point) until the file `<state>/resume-<point>`
/// appears, at most 120 s. `paused-<point>` says the agent is waiting.
pub(crate) async fn pause_point(agent: &Agent, point: &str) {
    if !fault(&format!("pause-{point}")) {
        return;
    }
    let root = agent.state_dir().root().to_path_buf();
    let point = point.to_string();
    let _ = tokio::task::spawn_blocking(move || hold_until_resumed(&root, &point)).await;
}

/// [`pause_point`] for threads that may block (a restore, CRIU's notify).
pub(crate) fn pause_blocking(agent: &Agent, point: &str) {
    if fault(&format!("pause-{point}")) {
        hold_until_resumed(agent.state_dir().root(), point);
    }
}

fn hold_until_resumed(root: &std::path::Path, point: &str) {
    let flag = root.join(format!("paused-{point}"));
    let go = root.join(format!("resume-{point}"));
    let _ = std::fs::write(&flag, b"");
    tracing::warn!(point, "fault injection: paused");
    for _ in 0..1200 {
        if go.exists() {
            break;
        }
        std::thread::sleep(Duration::from_millis(100));
    }
    let _ = std::fs::remove_file(&go);
    let _ = std::fs::remove_file(&flag);
}

pub(crate) fn secs(var: &str, default: u64) -> Duration {
    Duration::from_secs(
        std::env::var(var)
            .ok()
            .and_then(|v| v.parse().ok())
            .unwrap_or(default),
    )
}

/// A container in a migration on this host.
#[derive(Clone)]
pub struct Mark {
    pub id: MigrationId,
    pub role: Role,
    pub from: String,
    pub to: String,
    pub progress: Arc<source::Progress>,
}

/// The agent's migrations: journals, which containers are in one, and
/// the target sides by id.
pub struct Handoff {
    pub(crate) journals: journal::Journals,
    marks: Mutex<HashMap<String, Mark>>,
    pub(crate) incoming: Mutex<HashMap<MigrationId, Arc<tokio::sync::Mutex<target::Side>>>>,
    /// Stream mode: page servers waiting for their source's page stream.
    pub(crate) pages: Mutex<HashMap<MigrationId, pages::PageIn>>,
}

impl Handoff {
    pub fn open(state_root: &std::path::Path) -> Result<Self> {
        Ok(Handoff {
            journals: journal::Journals::open(state_root)?,
            marks: Mutex::new(HashMap::new()),
            incoming: Mutex::new(HashMap::new()),
            pages: Mutex::new(HashMap::new()),
        })
    }

    /// Claim a container for a migration (one at a time).
    pub(crate) fn mark(&self, name: &str, m: Mark) -> Result<()> {
        let mut marks = lock(&self.marks);
        if let Some(o) = marks.get(name) {
            return Err(busy(name, o));
        }
        marks.insert(name.to_string(), m);
        Ok(())
    }

    pub(crate) fn unmark(&self, name: &str, id: &str) {
        let mut marks = lock(&self.marks);
        if marks.get(name).map(|m| m.id == id).unwrap_or(false) {
            marks.remove(name);
        }
    }

    pub fn get(&self, name: &str) -> Option<Mark> {
        lock(&self.marks).get(name).cloned()
    }

    /// The node this agent has migration `id` with, if it knows the id:
    /// from a live mark, else from its journal.
    pub fn peer_of(&self, id: &str) -> Option<String> {
        let me = lock(&self.marks)
            .values()
            .find(|m| m.id == id)
            .map(|m| match m.role {
                Role::Target => m.from.clone(),
                Role::Source => m.to.clone(),
            });
        me.or_else(|| {
            self.journals
                .list()
                .into_iter()
                .find(|j| j.id == id)
                .map(|j| j.peer)
        })
    }
}

fn busy(name: &str, m: &Mark) -> AgentError {
    AgentError::Busy(format!(
        "{name} is migrating to {} (from {}): retry when it ends",
        m.to, m.from
    ))
}

impl Agent {
    /// Refuse an operation on a container that is in a migration.
    pub fn not_migrating(&self, name: &str) -> Result<()> {
        match self.handoff.get(name) {
            Some(m) => Err(busy(name, &m)),
            None => Ok(()),
        }
    }
}

/// Resolve the outgoing migrations journalled by a previous run of this
/// agent: ask each target until it answers (call once the endpoint is up).
pub fn resume_all(agent: Arc<Agent>, ep: quinn::Endpoint) {
    for j in agent.handoff.journals.list() {
        if j.role == Role::Source {
            source::resume(agent.clone(), ep.clone(), j);
        }
    }
}

/// The incoming ones (from [`Agent::open`], before anything is served).
pub(crate) fn resume_targets(agent: &Arc<Agent>) {
    for j in agent.handoff.journals.list() {
        if j.role == Role::Target {
            target::resume(agent, j);
        }
    }
}
