//! The handoff rules of a live migration as a sans-IO core (the quinn-proto
//! idea): [`Sender`] (the source S) and [`Receiver`] (the target T) are pure
//! state machines. The agent feeds them what happened (a message arrived,
//! a dump finished, the link died, the agent restarted from its journal)
//! and does the [`SAction`]s / [`RAction`]s they return, in order: send a
//! message, write a journal record (durably, *before* the next action),
//! freeze, restore fenced, thaw, delete a copy. No clock, no socket, no
//! file here, so every rule below is unit-tested without a network.
//!
//! # Sequence (protocol [`crate::migrate::MIGRATE_VERSION`])
//!
//! ```text
//!   S (coordinator)                                      T (participant)
//!   Prepare{version, id, ...} -------------------------->| version != ours: Refused naming both
//!   |<-------------------------------- Prepared | Refused | (nothing frozen yet)
//!   [image.json, layers], upper.tar ------------------->| files: allowed paths, sizes, sha256
//!   PreSent -------------------------------------------->| Build: overlay + upper.tar, netns with
//!   |                                                    | the fenced macvlan, cgroups, bundle
//!   |<--------------------------------------- Built | Failed (Failed: T removed it, nothing froze)
//!   journal Dumping; dump through CRIU (frozen)          |
//!   checkpoint/*, upper-delta.tar, config.json, log ---->|
//!   journal Committed; Commit -------------------------->| journal Restoring; apply the delta,
//!   |                                                    | restore FENCED and
//!   |                                                    | STOPPED (nftables drop, SIGSTOP);
//!   |<------------------------------------ Ready | Failed| journal Ready, then answer
//!   journal Go (fsync), then Go ------------------------>| journal Running, unfence, SIGCONT
//!   |<---------------------------------------- Running   |
//!   delete own copy; Forget(id) ------------------------>| forget the tombstone
//! ```
//!
//! `--memory-mode stream` (`Prepare.memory`) changes three steps, nothing
//! of the decision:
//!
//! ```text
//!   Prepare{memory: stream} ---------------------------->| starts a CRIU page server on a unix
//!   |                                                    | socketpair (its pages go to staging)
//!   |<-------------------------------- Prepared | Refused |
//!   ... PreSent, Built as above ...
//!   journal Dumping; MigratePages{id} stream ----------->| bridged to the page server's socket
//!   dump through CRIU: pages go out on that stream ====>| (CRIU's own protocol, inside QUIC);
//!   while it dumps; CRIU holds the frozen tree at       | the page server exits at the end
//!   its post-dump point (nothing is killed yet)         | of the session: PagesIn
//!   checkpoint/* (no pages), delta, config.json, log --->|
//!   journal Committed; Commit -------------------------->| restores once PagesIn came too
//!   |<------------------------------------ Ready | Failed|
//!   journal Releasing; CRIU kills the held tree         |
//!   journal Go (fsync), then Go ------------------------>| as above
//! ```
//!
//! In that mode S keeps no page images: its "kept copy" is the frozen tree
//! itself, and `RestoreOwn` means "let CRIU resume it" (which CRIU also
//! does by itself if the agent dies while it holds the tree).
//!
//! `--memory-mode pre` adds rounds of pre-dumps between `Built` and the
//! dump, then dumps as stream mode does (only what changed since the last
//! round). Each round has its own CRIU page server on T, writing into its
//! own images dir whose `parent` link names the round before (as runc's
//! and go-criu phaul's pre-copy do), so the final images are a chain:
//!
//! ```text
//!   ... Prepare{memory: pre}, PreSent, Built as above (no page server yet) ...
//!   PageRound{1, last: false} ------------------------->| page server #1 into checkpoint/pre/1
//!   |<------------------------------------- PagesReady  |
//!   MigratePages{id} stream; pre-dump #1 (track_mem): ===>| every page; #1 exits: PagesIn
//!   CRIU freezes X briefly, X runs on while its pages  |
//!   cross; pages written -> the convergence rule       |
//!   PageRound{2, last: false} ------------------------->| #2 into checkpoint/pre/2, parent ../1
//!   ... rounds until `pre_converged` says stop ...      |
//!   PageRound{k+1, last: true} ------------------------>| final page server into checkpoint/,
//!   |<------------------------------------- PagesReady  | parent pre/k
//!   journal Dumping; MigratePages{id}; dump (parent:   |
//!   the last round) ==== the pages dirtied since ====>| PagesIn
//!   ... held at post-dump, files, Commit, Ready, Releasing, Go: stream mode ...
//! ```
//!
//! A pre-dump leaves X running and nothing journalled, so a failure in the
//! rounds (a pre-dump, a page server, the link) ends the migration
//! `untouched`: S sends Abort (or just drops the stream) and T discards its
//! staging, every round's pages with it.
//!
//! Lost answers and restarts are resolved over fresh streams:
//! `Query::Decide{id, Go|Abort}`, answered `Running` (Go applied), `Gone`
//! (T's copy of `id` does not exist: aborted, failed or never made),
//! `Busy` (ask again) or `Unknown` (Go for an id T never made ready).
//!
//! # Sender (S) states
//!
//! ```text
//!  Preparing --Prepared{need}--> Image --ImageSent--> PreSending
//!  Preparing --Prepared{}------------------------->  PreSending
//!  Preparing|Image|PreSending|AwaitBuilt --Refused|Failed|LinkLost--> Done(untouched)
//!  PreSending --PreSent / send PreSent--> AwaitBuilt
//!  AwaitBuilt --Built / journal Dumping, Dump--> Dumping
//!  AwaitBuilt --Built (pre) / send PageRound{1}--> AwaitPages{1}
//!  AwaitPages{n} --PagesReady / PreDump(n)--> PreDumping(n)
//!  PreDumping(n) --PreDumped{pages} / send PageRound{n+1, last: converged}--> AwaitPages{n+1}
//!  AwaitPages{last} --PagesReady / journal Dumping, Dump--> Dumping
//!  PreDumping --PreDumpFailed / send Abort--> Done(untouched)
//!  AwaitPages|PreDumping --Refused|Failed|LinkLost--> Done(untouched)
//!  Dumping --DumpFailed / send Abort, unjournal--> Done(untouched)
//!  Dumping --Dumped / Transfer--> Transferring
//!  Transferring --Transferred / journal Committed, send Commit--> AwaitReady
//!  Transferring|AwaitReady --Failed / RestoreOwn--> RestoringOwn   (T said its copy is gone)
//!  Transferring --LinkLost / send Abort, RestoreOwn--> RestoringOwn (no Commit: no copy on T)
//!  AwaitReady --LinkLost / journal Abort, Query Abort--> Resolving(Abort)
//!  AwaitReady --Ready / journal Go, send Go--> Going
//!  AwaitReady --Ready (stream) / journal Releasing, Release--> Releasing
//!  Releasing --Released / journal Go, send Go--> Going
//!  Releasing --ReleaseFailed (CRIU resumed the tree) / journal Abort, Query Abort--> Resolving(Abort)
//!  Going --Running / DeleteOwn--> Cleaning --OwnDeleted / unjournal, Forget--> Done(moved)
//!  Going --LinkLost / Query Go--> Resolving(Go)
//!  Resolving(Go) --Running / DeleteOwn--> Cleaning
//!  Resolving(Abort) --Gone / RestoreOwn--> RestoringOwn
//!  Resolving(d) --Busy|LinkLost / Query d--> Resolving(d)        (retry, forever)
//!  RestoringOwn --OwnRestored|OwnRestoreFailed / unjournal--> Done(rolled_back)
//!  restart: journal Dumping --> RestoringOwn; Committed|Abort --> Resolving(Abort);
//!           journal Go --> Resolving(Go); journal Releasing --> CheckingOwn / CheckOwn
//!  CheckingOwn --OwnAlive(true) / journal Abort, Query Abort--> Resolving(Abort)
//!  CheckingOwn --OwnAlive(false) / journal Go, Query Go--> Resolving(Go)
//! ```
//!
//! # Receiver (T) states
//!
//! ```text
//!  Staging --File|Data|FileEnd (checked)--> Staging
//!  Staging --PreSent (once) / Build--> Staging --Built / reply Built--> Staging
//!  Staging --bad file|LocalFailure|LinkLost|Abort / Discard--> Gone
//!  Staging --PageRound{n} (pre; after Built and round n-1's PagesIn)
//!          / StartPages--> Staging --PagesReady / reply PagesReady--> Staging
//!  Staging --PagesIn (pre, round n, not the last) --> Staging
//!  Staging --Commit (after Built) / journal Restoring, RestoreFenced--> Restoring
//!  Staging --Commit (stream, pages not in yet) / (remember it)--> Staging
//!  Staging --PagesIn (after that Commit) / journal Restoring, RestoreFenced--> Restoring
//!  Restoring --Restored / journal Ready, reply Ready--> Ready
//!  Restoring --RestoreFailed|LocalFailure / Discard, reply Failed--> Gone
//!  Restoring --Abort / (remember it), reply Busy--> Restoring  --Restored / Discard--> Gone
//!  Ready --Go / journal Running, Thaw, reply Running--> Running
//!  Ready --Abort / Discard, reply Gone--> Gone
//!  Ready --LinkLost--> Ready                                      (wait, frozen and fenced)
//!  Running --Go / reply Running; Forget / unjournal--> Running | (forgotten)
//!  restart: journal Restoring --> Discard, Gone; Ready --> Ready; Running --> Thaw, Running
//! ```
//!
//! # Why at most one copy runs, and exactly one once everything is back
//!
//! This is two-phase commit with S as the coordinator and T as the only
//! participant. T's vote is `Ready`; S's decision is `Go` or `Abort`.
//! 1. T runs its copy only after `Go`, and S sends `Go` only after it wrote
//!    `Go` to its journal; S never restores its own copy once `Go` is in its
//!    journal (no edge leaves `Resolving(Go)` or `Going` but to `Cleaning`).
//! 2. S restores its own copy only after T said its copy is gone (`Failed`
//!    or `Gone`) *and* S has decided Abort (journalled, or implied: T only
//!    answers `Failed` before it voted). Once T answered `Gone` to an
//!    Abort, it can never run that copy: it discarded it, and `Go` for an
//!    id in `Gone` or unknown is answered `Unknown`, never applied.
//! 3. The decision is made once: S journals it before it tells anyone, and
//!    a restarted S reads it back; without a journalled decision S may
//!    still choose (a restarted S chooses Abort, the coordinator's right in
//!    2PC), because T cannot have heard `Go`.
//! 4. T journals `Restoring` before it restores and `Ready` before it
//!    answers `Ready`: a T restarted in `Restoring` never voted and may
//!    discard on its own; in `Ready` it keeps the copy frozen and fenced and
//!    waits for S's decision, however long (the two generals cannot agree
//!    over a dead link, so neither acts: the container runs nowhere, which
//!    is the "at most" half).
//! 5. What T builds at `PreSent` (a container that has no process, no
//!    record on disk and no journal) is not a copy: every way out of
//!    `Staging` discards it, and a restarted T removes it as a half-made
//!    container (no record) before it serves anything. S freezes only
//!    after `Built`, so the frozen window holds only the dump, the
//!    transfer of what changed, the delta and the restore.
//! 6. T restores only after `Commit`, and S journals `Committed` before it
//!    sends it: a stream that died before that (S in `Transferring`, or a
//!    restarted S with `Dumping` in its journal) cannot have made a copy on
//!    T, so S resumes its own at once, without waiting for T.
//!
//! 7. Stream mode: S's only copy of the memory is its frozen tree, which
//!    CRIU holds until S says kill or resume, and resumes by itself if S's
//!    agent dies meanwhile. S journals `Releasing` before it says kill and
//!    `Go` only once the tree is dead. A restarted S in `Releasing` looks:
//!    the tree alive (CRIU resumed it before the kill) is S's copy, so it
//!    decides Abort; the tree dead means T's voted copy is the only one,
//!    so it decides Go. Either way at most one copy runs, and none is lost
//!    (T keeps a voted copy until the decision).
//!
//! 8. Pre-copy rounds happen between `Built` and `Dumping` (S, the
//!    container still running, no journal) and change nothing of the
//!    decision: until the final dump S's copy is the running container,
//!    and what T holds is staging, discarded on every way out of
//!    `Staging`. From the final dump on, rules 6 and 7 apply as in stream
//!    mode.
//!
//! So at every moment at most one of {S's copy, T's copy} runs. Liveness:
//! S in `Resolving` asks T again until T answers, and every answer moves S
//! on (`Busy` is only given while a restore is in flight, which ends); once
//! the link is back and both agents run, S reaches `Done` with its own copy
//! restored (Abort) or T's running (Go): exactly one.
//!
//! Post-copy (`--memory-mode post`) is designed but refused before
//! `Prepare` in this version (see below). Its
//! sequence, for the record, keeps rules 1-4:
//!
//! ```text
//!   ... Prepare{memory: post}, PreSent, Built as above ...
//!   journal Dumping; MigratePages{id} stream ---------->| bridged to a `criu lazy-pages`
//!   lazy dump: CRIU writes no lazy page, holds the tree | daemon's --ps-socket (unix pair)
//!   at post-dump; checkpoint/*, delta, config -------->|
//!   journal Committed; Commit ------------------------->| journal Restoring; restore with
//!   |                                                   | lazy pages, FENCED and STOPPED
//!   |<----------------------------------- Ready | Failed| journal Ready
//!   journal Go (fsync); let CRIU serve pages; Go ------>| journal Running, unfence, SIGCONT:
//!   CRIU serves faults and pushes the rest =========>| it runs, faulting pages in
//!   |<------------------------ Running, later PagesIn  | the daemon exits 0 after the last page
//!   CRIU kills the tree once the session is over; DeleteOwn, Forget
//! ```
//!
//! Go comes before the resume (T thaws only on `Go`), and S cannot
//! release its copy before the last page: CRIU kills the held tree only
//! when the lazy session ends. The risk, by design and said in `--help`:
//! between `Go` and the last page the container's memory is split over
//! both hosts, and if S (its agent, its CRIU or the link) dies then, the
//! container is LOST: T must kill its copy at once (before its daemon
//! exits, or the missing pages would read as zeros), journal and report
//! it as lost; S, whose journal says `Go`, must kill the tree CRIU
//! resumes after a failed session instead of running it.
//!
//! Why refused: on Linux 6.18 with CRIU 4.2.1 (uffd-noncoop supported),
//! `criu dump --lazy-pages` serves the first faults and then fails with
//! `page-pipe: splice: -1: Bad file descriptor` / `Lazy pages transfer
//! FAILED`, over a `--ps-socket` unix pair and over loopback TCP alike:
//! every post-copy move would lose its container.

use serde::{Deserialize, Serialize};

use crate::migrate::{MigrateMsg, CHUNK, MIGRATE_VERSION};

/// One migration, the same on both sides: `<source>.<container>.<unix ns>`.
pub type MigrationId = String;

/// Whether an id is a plain token (it names a journal file).
pub fn valid_id(id: &str) -> bool {
    !id.is_empty()
        && id.len() <= 200
        && id != "."
        && id != ".."
        && id
            .bytes()
            .all(|b| b.is_ascii_alphanumeric() || matches!(b, b'.' | b'-' | b'_'))
}

#[derive(Debug, Clone, Copy, Serialize, Deserialize, PartialEq, Eq)]
pub enum Decision {
    Go,
    Abort,
}

/// Where a migration ended, as `herd migrate --json` says it.
#[derive(Debug, Clone, Copy, Serialize, Deserialize, PartialEq, Eq, Default)]
#[serde(rename_all = "snake_case")]
pub enum Outcome {
    /// The container runs on the target.
    #[default]
    Moved,
    /// It was frozen, then restored on the source: it runs there.
    RolledBack,
    /// It never stopped: it runs on the source.
    Untouched,
    /// Not decided yet (a link or agent is down): frozen on both sides,
    /// the agents finish by themselves.
    Pending,
}

impl Outcome {
    pub fn as_str(self) -> &'static str {
        match self {
            Outcome::Moved => "moved",
            Outcome::RolledBack => "rolled_back",
            Outcome::Untouched => "untouched",
            Outcome::Pending => "pending",
        }
    }
}

/// The phase a migration was in when it failed.
#[derive(Debug, Clone, Copy, Serialize, Deserialize, PartialEq, Eq)]
#[serde(rename_all = "snake_case")]
pub enum Phase {
    Prepare,
    Image,
    #[serde(rename = "pre-send")]
    PreSend,
    Dump,
    Transfer,
    Restore,
    Handoff,
    Cleanup,
    /// `--memory-mode pre`: the rounds of pre-dumps (nothing frozen).
    #[serde(rename = "pre-dump")]
    PreDump,
}

impl Phase {
    pub fn as_str(self) -> &'static str {
        match self {
            Phase::Prepare => "prepare",
            Phase::Image => "image",
            Phase::PreSend => "pre-send",
            Phase::Dump => "dump",
            Phase::Transfer => "transfer",
            Phase::Restore => "restore",
            Phase::Handoff => "handoff",
            Phase::Cleanup => "cleanup",
            Phase::PreDump => "pre-dump",
        }
    }
}

/// T's answers, on the migration stream and to a [`Query`].
#[derive(Debug, Clone, Serialize, Deserialize, PartialEq)]
pub enum TargetMsg {
    /// Prepare accepted; send `image.json` and these layers first if any.
    Prepared { need_layers: Vec<String> },
    /// Prepare refused: nothing was made, nothing froze.
    Refused(String),
    /// After `PreSent`: the container is built here (overlay with the
    /// pre-sent upper layer, netns with the fenced macvlan, cgroups,
    /// bundle); S may freeze.
    Built,
    /// Restored, stopped and fenced; waiting for the decision.
    Ready(Box<crate::RestoreReport>),
    /// T failed before it voted; its copy is gone.
    Failed(String),
    /// Go applied: the copy runs here.
    Running,
    /// No copy of this migration is here (aborted, failed, never made).
    Gone,
    /// Ask again later (a restore is still in flight).
    Busy,
    /// Go for a migration T never made ready.
    Unknown,
    /// `--memory-mode pre`: the page server of the round asked for
    /// (`MigrateMsg::PageRound`) waits for its page stream.
    PagesReady,
}

/// S to T over a fresh stream (`Request::Handoff`): resolve a migration.
#[derive(Debug, Clone, Serialize, Deserialize, PartialEq)]
pub enum Query {
    Decide {
        id: MigrationId,
        decision: Decision,
    },
    /// S finished: T may drop its tombstone of `id`.
    Forget {
        id: MigrationId,
    },
}

/// The step a journal record is at (one file per migration and side).
#[derive(Debug, Clone, Copy, Serialize, Deserialize, PartialEq, Eq)]
pub enum Step {
    /// S: about to freeze (written before the dump).
    Dumping,
    /// S: about to send Commit (T may restore from here on).
    Committed,
    /// S: the decision, written before anyone hears it.
    Decided(Decision),
    /// S (stream): T voted; about to have CRIU kill the held tree.
    Releasing,
    /// T: a restore is about to start.
    Restoring,
    /// T: restored fenced and stopped; voted Ready.
    Ready,
    /// T: Go applied (a tombstone until S says Forget).
    Running,
}

#[derive(Debug, Clone, Copy, Serialize, Deserialize, PartialEq, Eq)]
pub enum Role {
    Source,
    Target,
}

/// What each side keeps on disk per migration.
#[derive(Debug, Clone, Serialize, Deserialize, PartialEq, Eq)]
pub struct Journal {
    pub id: MigrationId,
    pub role: Role,
    pub container: String,
    /// The other side's node name, and (on S) its address.
    pub peer: String,
    pub peer_addr: Option<String>,
    pub step: Step,
}

/// The refusal of a prepare in another protocol version, naming both.
pub fn check_version(theirs: u32) -> Result<(), String> {
    if theirs == MIGRATE_VERSION {
        Ok(())
    } else {
        Err(format!(
            "migration protocol version {theirs} is not supported here (this agent speaks \
             version {MIGRATE_VERSION}); upgrade the older agent"
        ))
    }
}

/// `--memory-mode pre`: at most this many pre-dump rounds.
pub const PRE_MAX_ROUNDS: usize = 5;
/// `pre`: a round that wrote fewer pages than this (1 MiB of 4 KiB pages)
/// leaves too little for another round to win.
pub const PRE_FEW_PAGES: u64 = 256;
/// `pre`: a round under this share (percent) of the first round's pages
/// has converged.
pub const PRE_FEW_PERCENT: u64 = 10;

/// The convergence rule of `--memory-mode pre`, given the pages each round
/// wrote so far: `Some(why)` when the next dump should be the final one.
/// The first round writes every page; later ones write what was dirtied
/// meanwhile, which shrinks while the rounds get shorter and stops
/// shrinking once the workload dirties pages as fast as a round copies
/// them (further rounds only cost time).
pub fn pre_converged(rounds: &[u64]) -> Option<String> {
    let n = rounds.len();
    let (&last, &first) = (rounds.last()?, rounds.first()?);
    if last < PRE_FEW_PAGES {
        return Some(format!(
            "round {n} wrote {last} pages, under {PRE_FEW_PAGES} (1 MiB)"
        ));
    }
    if n > 1 && last * 100 < first * PRE_FEW_PERCENT {
        return Some(format!(
            "round {n} wrote {last} pages, under {PRE_FEW_PERCENT} % of round 1's {first}"
        ));
    }
    if n > 1 && last >= rounds[n - 2] {
        return Some(format!(
            "round {n} wrote {last} pages, no fewer than round {}'s {}: the dirty set \
             stopped shrinking",
            n - 1,
            rounds[n - 2]
        ));
    }
    if n >= PRE_MAX_ROUNDS {
        return Some(format!("{n} rounds, the most ({PRE_MAX_ROUNDS})"));
    }
    None
}

// ------------------------------------------------------------------ sender

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum SState {
    Preparing,
    Image,
    PreSending,
    /// `PreSent` sent: T builds the container, X still runs.
    AwaitBuilt,
    /// `--memory-mode pre`: `PageRound{round, last}` sent, waiting for
    /// T's `PagesReady` (X still runs).
    AwaitPages {
        round: u32,
        last: bool,
    },
    /// `--memory-mode pre`: pre-dump `round` runs (X still runs).
    PreDumping(u32),
    Dumping,
    Transferring,
    AwaitReady,
    /// Stream mode: T voted Ready; CRIU kills the held tree.
    Releasing,
    /// A restarted S in `Releasing`: is its tree still there?
    CheckingOwn,
    Going,
    Resolving(Decision),
    Cleaning,
    RestoringOwn,
    Done(Outcome),
}

/// What happened, fed to the [`Sender`].
#[derive(Debug, Clone, PartialEq)]
pub enum SEvent {
    Answer(TargetMsg),
    ImageSent,
    PreSent,
    Dumped,
    DumpFailed(String),
    Transferred,
    /// The stream broke, a timeout passed, or a query found no answer.
    LinkLost(String),
    OwnRestored,
    OwnRestoreFailed(String),
    OwnDeleted,
    /// Stream mode: the held tree is dead (CRIU finished the dump).
    Released,
    /// Stream mode: CRIU could not finish and resumed the tree.
    ReleaseFailed(String),
    /// After [`SAction::CheckOwn`]: whether S's own copy still exists.
    OwnAlive(bool),
    /// `--memory-mode pre`: the round's pre-dump ended well, having
    /// written this many pages (CRIU's stats-dump).
    PreDumped {
        pages: u64,
    },
    /// `--memory-mode pre`: the round's pre-dump failed (X runs on).
    PreDumpFailed(String),
}

/// What the driver must do, in order.
#[derive(Debug, Clone, PartialEq)]
pub enum SAction {
    /// Stream `image.json` and these layers.
    SendImage(Vec<String>),
    /// Stream the upper layer as it is now (the container runs).
    PreSend,
    /// Write this step to the journal, fsync, before the next action.
    Journal(Step),
    /// Remove the journal record.
    Unjournal,
    /// Checkpoint through CRIU: frozen from here.
    Dump,
    /// `--memory-mode pre`: pre-dump round `n` while X runs, its pages to
    /// T's page server of that round; feed `PreDumped` or `PreDumpFailed`.
    PreDump(u32),
    /// Stream the checkpoint images and the rest, then feed `Transferred`.
    Transfer,
    /// Send this on the migration stream.
    Send(MigrateMsg),
    /// Ask T over a fresh stream (retry until it answers).
    Query(Query),
    /// Restore the own copy from the kept images.
    RestoreOwn,
    /// Delete the own copy (images, dirs, netns).
    DeleteOwn,
    /// Stream mode: let CRIU kill the tree it holds and finish the dump,
    /// then feed `Released` (or `ReleaseFailed`).
    Release,
    /// Feed `OwnAlive`: does the container still have its process here?
    CheckOwn,
    /// The migration is over.
    Finish {
        outcome: Outcome,
        phase: Option<Phase>,
        reason: Option<String>,
    },
}

/// S's rules. Feed events with [`Sender::handle`].
#[derive(Debug, Clone)]
pub struct Sender {
    pub id: MigrationId,
    state: SState,
    /// Phase and reason of the first failure (for the outcome).
    failed: Option<(Phase, String)>,
    /// `--memory-mode stream`: the tree is held, not killed, by the dump.
    streamed: bool,
    /// `--memory-mode pre`: rounds of pre-dumps before the (streamed) dump.
    pre: bool,
    /// `pre`: pages written by each round so far, and why they stopped.
    rounds: Vec<u64>,
    pre_stop: Option<String>,
}

impl Sender {
    pub fn new(id: MigrationId) -> Self {
        Sender {
            id,
            state: SState::Preparing,
            failed: None,
            streamed: false,
            pre: false,
            rounds: Vec::new(),
            pre_stop: None,
        }
    }

    /// `--memory-mode stream`: T's vote is followed by `Release`.
    pub fn streaming(mut self) -> Self {
        self.streamed = true;
        self
    }

    /// `--memory-mode pre`: pre-dump rounds after `Built`, then a streamed
    /// dump (so T's vote is followed by `Release` too).
    pub fn pre_copy(mut self) -> Self {
        self.streamed = true;
        self.pre = true;
        self
    }

    /// `pre`: pages written by each pre-dump round so far.
    pub fn pre_rounds(&self) -> &[u64] {
        &self.rounds
    }

    /// `pre`: why the rounds stopped, once they did.
    pub fn pre_stop(&self) -> Option<&str> {
        self.pre_stop.as_deref()
    }

    /// A restarted S: what its journal says decides what it does.
    pub fn recover(id: MigrationId, step: Step) -> (Self, Vec<SAction>) {
        let mut s = Sender::new(id);
        s.failed = Some((Phase::Handoff, "the source agent restarted".into()));
        let acts = match step {
            // Commit was never sent: no copy can exist on T.
            Step::Dumping => {
                s.state = SState::RestoringOwn;
                vec![SAction::RestoreOwn]
            }
            Step::Committed => s.abort(true),
            Step::Decided(Decision::Abort) => s.abort(false),
            Step::Decided(Decision::Go) => {
                s.state = SState::Resolving(Decision::Go);
                vec![s.query(Decision::Go)]
            }
            Step::Releasing => {
                s.streamed = true;
                s.state = SState::CheckingOwn;
                vec![SAction::CheckOwn]
            }
            // Not a source step: nothing to do.
            Step::Restoring | Step::Ready | Step::Running => {
                s.state = SState::Done(Outcome::Pending);
                vec![]
            }
        };
        (s, acts)
    }

    pub fn state(&self) -> SState {
        self.state
    }

    /// Phase and reason of the first failure, if any.
    pub fn failure(&self) -> Option<&(Phase, String)> {
        self.failed.as_ref()
    }

    /// The phase S is in (for `migrating` status and failures).
    pub fn phase(&self) -> Phase {
        match self.state {
            SState::Preparing => Phase::Prepare,
            SState::Image => Phase::Image,
            SState::PreSending | SState::AwaitBuilt => Phase::PreSend,
            SState::AwaitPages { .. } | SState::PreDumping(_) => Phase::PreDump,
            SState::Dumping => Phase::Dump,
            SState::Transferring => Phase::Transfer,
            SState::AwaitReady => Phase::Restore,
            SState::Releasing
            | SState::CheckingOwn
            | SState::Going
            | SState::Resolving(_)
            | SState::RestoringOwn
            | SState::Done(_) => Phase::Handoff,
            SState::Cleaning => Phase::Cleanup,
        }
    }

    /// Whether the container is frozen (dumped, not yet resumed anywhere known).
    pub fn frozen(&self) -> bool {
        matches!(
            self.state,
            SState::Dumping
                | SState::Transferring
                | SState::AwaitReady
                | SState::Releasing
                | SState::CheckingOwn
                | SState::Going
                | SState::Resolving(_)
                | SState::RestoringOwn
        )
    }

    fn query(&self, decision: Decision) -> SAction {
        SAction::Query(Query::Decide {
            id: self.id.clone(),
            decision,
        })
    }

    fn fail(&mut self, reason: String) {
        if self.failed.is_none() {
            self.failed = Some((self.phase(), reason));
        }
    }

    fn finish(&mut self, outcome: Outcome) -> Vec<SAction> {
        self.state = SState::Done(outcome);
        let (phase, reason) = match (&self.failed, outcome) {
            (_, Outcome::Moved) => (None, None),
            (Some((p, r)), _) => (Some(*p), Some(r.clone())),
            (None, _) => (None, None),
        };
        vec![SAction::Finish {
            outcome,
            phase,
            reason,
        }]
    }

    /// Decide Abort (journalled first) and ask T to drop its copy.
    fn abort(&mut self, journal: bool) -> Vec<SAction> {
        self.state = SState::Resolving(Decision::Abort);
        let mut v = Vec::new();
        if journal {
            v.push(SAction::Journal(Step::Decided(Decision::Abort)));
        }
        v.push(self.query(Decision::Abort));
        v
    }

    fn page_round(&mut self, round: u32, last: bool) -> Vec<SAction> {
        self.state = SState::AwaitPages { round, last };
        vec![SAction::Send(MigrateMsg::PageRound { round, last })]
    }

    fn untouched(&mut self, reason: String) -> Vec<SAction> {
        self.fail(reason);
        self.finish(Outcome::Untouched)
    }

    /// Apply one event. `Err` means the event is not allowed now: nothing
    /// changed (a duplicate, late or forged message), the driver logs it.
    pub fn handle(&mut self, ev: SEvent) -> Result<Vec<SAction>, String> {
        use SEvent as E;
        use SState as S;
        use TargetMsg as T;
        let acts = match (self.state, ev) {
            (S::Preparing, E::Answer(T::Prepared { need_layers })) => {
                if need_layers.is_empty() {
                    self.state = S::PreSending;
                    vec![SAction::PreSend]
                } else {
                    self.state = S::Image;
                    vec![SAction::SendImage(need_layers)]
                }
            }
            (S::Image, E::ImageSent) => {
                self.state = S::PreSending;
                vec![SAction::PreSend]
            }
            (
                S::Preparing
                | S::Image
                | S::PreSending
                | S::AwaitBuilt
                | S::AwaitPages { .. }
                | S::PreDumping(_),
                E::Answer(T::Refused(r) | T::Failed(r)),
            ) => self.untouched(format!("the target refused: {r}")),
            (
                S::Preparing
                | S::Image
                | S::PreSending
                | S::AwaitBuilt
                | S::AwaitPages { .. }
                | S::PreDumping(_),
                E::LinkLost(r),
            ) => self.untouched(r),
            (S::PreSending, E::PreSent) => {
                self.state = S::AwaitBuilt;
                vec![SAction::Send(MigrateMsg::PreSent)]
            }
            (S::AwaitBuilt, E::Answer(T::Built)) if self.pre => self.page_round(1, false),
            (S::AwaitBuilt, E::Answer(T::Built)) => {
                self.state = S::Dumping;
                vec![SAction::Journal(Step::Dumping), SAction::Dump]
            }
            (S::AwaitPages { round, last: false }, E::Answer(T::PagesReady)) => {
                self.state = S::PreDumping(round);
                vec![SAction::PreDump(round)]
            }
            (S::AwaitPages { last: true, .. }, E::Answer(T::PagesReady)) => {
                self.state = S::Dumping;
                vec![SAction::Journal(Step::Dumping), SAction::Dump]
            }
            (S::PreDumping(n), E::PreDumped { pages }) => {
                self.rounds.push(pages);
                self.pre_stop = pre_converged(&self.rounds);
                self.page_round(n + 1, self.pre_stop.is_some())
            }
            (S::PreDumping(_), E::PreDumpFailed(r)) => {
                // Nothing froze for long and nothing was journalled: T drops
                // what it staged when it hears Abort (or the stream's end).
                self.fail(format!("pre-dump failed: {r}"));
                let mut v = vec![SAction::Send(MigrateMsg::Abort)];
                v.extend(self.finish(Outcome::Untouched));
                v
            }
            (S::Dumping, E::DumpFailed(r)) => {
                self.fail(r);
                // T drops its staging (it would on the stream's end, too).
                let mut v = vec![SAction::Send(MigrateMsg::Abort), SAction::Unjournal];
                v.extend(self.finish(Outcome::Untouched));
                v
            }
            (S::Dumping, E::Dumped) => {
                self.state = S::Transferring;
                vec![SAction::Transfer]
            }
            // The link may die during the dump; the dump still ends first.
            (S::Dumping, E::LinkLost(r)) => {
                self.fail(r);
                vec![]
            }
            (S::Transferring, E::Transferred) => {
                if self.failed.is_some() {
                    // The link died during the dump: Commit was never sent.
                    self.state = S::RestoringOwn;
                    vec![SAction::Send(MigrateMsg::Abort), SAction::RestoreOwn]
                } else {
                    self.state = S::AwaitReady;
                    vec![
                        SAction::Journal(Step::Committed),
                        SAction::Send(MigrateMsg::Commit),
                    ]
                }
            }
            (S::Transferring | S::AwaitReady, E::Answer(T::Failed(r))) => {
                self.fail(format!("the target failed: {r}"));
                self.state = S::RestoringOwn;
                vec![SAction::RestoreOwn]
            }
            (S::Transferring, E::LinkLost(r)) => {
                self.fail(r);
                self.state = S::RestoringOwn;
                vec![SAction::Send(MigrateMsg::Abort), SAction::RestoreOwn]
            }
            (S::AwaitReady, E::LinkLost(r)) => {
                self.fail(r);
                self.abort(true)
            }
            (S::AwaitReady, E::Answer(T::Ready(_))) if self.streamed => {
                self.state = S::Releasing;
                vec![SAction::Journal(Step::Releasing), SAction::Release]
            }
            (S::Releasing, E::Released) => {
                self.state = S::Going;
                vec![
                    SAction::Journal(Step::Decided(Decision::Go)),
                    SAction::Send(MigrateMsg::Go),
                ]
            }
            (S::Releasing, E::ReleaseFailed(r)) => {
                self.fail(format!("the held dump could not finish: {r}"));
                self.abort(true)
            }
            (S::CheckingOwn, E::OwnAlive(true)) => self.abort(true),
            (S::CheckingOwn, E::OwnAlive(false)) => {
                self.state = S::Resolving(Decision::Go);
                vec![
                    SAction::Journal(Step::Decided(Decision::Go)),
                    self.query(Decision::Go),
                ]
            }
            (S::AwaitReady, E::Answer(T::Ready(_))) => {
                self.state = S::Going;
                vec![
                    SAction::Journal(Step::Decided(Decision::Go)),
                    SAction::Send(MigrateMsg::Go),
                ]
            }
            (S::Going | S::Resolving(Decision::Go), E::Answer(T::Running)) => {
                self.state = S::Cleaning;
                vec![SAction::DeleteOwn]
            }
            (S::Going, E::LinkLost(_)) => {
                self.state = S::Resolving(Decision::Go);
                vec![self.query(Decision::Go)]
            }
            (S::Resolving(d), E::LinkLost(_) | E::Answer(T::Busy)) => vec![self.query(d)],
            (S::Resolving(Decision::Abort), E::Answer(T::Gone | T::Failed(_))) => {
                self.state = S::RestoringOwn;
                vec![SAction::RestoreOwn]
            }
            (S::Cleaning, E::OwnDeleted) => {
                let mut v = vec![
                    SAction::Unjournal,
                    SAction::Query(Query::Forget {
                        id: self.id.clone(),
                    }),
                ];
                v.extend(self.finish(Outcome::Moved));
                v
            }
            (S::RestoringOwn, E::OwnRestored) => {
                let mut v = vec![SAction::Unjournal];
                v.extend(self.finish(Outcome::RolledBack));
                v
            }
            (S::RestoringOwn, E::OwnRestoreFailed(r)) => {
                // Still ours alone (T's copy is gone): the checkpoint stays
                // for `herd restore`.
                if let Some((_, reason)) = &mut self.failed {
                    reason.push_str(&format!("; and restoring it here failed too: {r}"));
                }
                let mut v = vec![SAction::Unjournal];
                v.extend(self.finish(Outcome::RolledBack));
                v
            }
            (s, ev) => return Err(format!("{ev:?} is not expected in {s:?}")),
        };
        Ok(acts)
    }
}

// ---------------------------------------------------------------- receiver

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum RState {
    Staging,
    Restoring,
    Ready,
    Running,
    Gone,
}

/// What happened, fed to the [`Receiver`].
#[derive(Debug, Clone, PartialEq)]
pub enum REvent {
    /// A message of the migration stream; `Data` carries plain bytes (the
    /// driver decompressed it with a bound of [`CHUNK`]).
    Msg(MigrateMsg),
    /// A decision over a fresh stream.
    Decide(Decision),
    Forget,
    /// The [`RAction::Build`] is done.
    Built,
    /// Stream mode: the page server received every page and exited well
    /// (`pre`: that of the current round).
    PagesIn,
    /// `pre`: the [`RAction::StartPages`] is done: the server waits.
    PagesReady,
    Restored(Box<crate::RestoreReport>),
    RestoreFailed(String),
    /// The migration stream broke.
    LinkLost,
    /// T could not do what an action asked (write a staged file, decompress
    /// a chunk, write its journal): give up before voting.
    LocalFailure(String),
}

#[derive(Debug, Clone, PartialEq)]
pub enum RAction {
    /// Create the staging file at this (checked) relative path.
    Create(String),
    /// Append to the current file.
    Write(Vec<u8>),
    /// The current file is complete and verified.
    Close,
    Journal(Step),
    Unjournal,
    /// Build what needs no dump (overlay with the staged upper layer,
    /// netns fenced, cgroups, bundle), then feed `Built`.
    Build,
    /// `pre`: start round `round`'s page server (`last`: the final
    /// dump's, writing the restore's images, whose parent is the round
    /// before), then feed `PagesReady`.
    StartPages {
        round: u32,
        last: bool,
    },
    /// Restore from staging: fenced (nftables drop) and stopped.
    RestoreFenced,
    /// Lift the fence, announce the address, SIGCONT every task.
    Thaw,
    /// Remove every trace of this migration here (a stopped copy too).
    Discard,
    /// Answer S (on the stream, or the query being served).
    Reply(TargetMsg),
}

#[derive(Debug, Clone)]
struct OpenFile {
    path: String,
    hasher: sha256::Hasher,
    size: u64,
}

/// T's rules for one migration.
#[derive(Debug, Clone)]
pub struct Receiver {
    pub id: MigrationId,
    state: RState,
    file: Option<OpenFile>,
    files: std::collections::BTreeSet<String>,
    abort_asked: bool,
    /// `PreSent` arrived (a build was asked for) / the build finished.
    build_asked: bool,
    built: bool,
    /// Stream mode: the pages have not all arrived yet / a Commit waits
    /// for them.
    pages_pending: bool,
    commit_waiting: bool,
    /// `--memory-mode pre`: rounds allowed; the last round asked for, its
    /// page server being started, and whether it is the final dump's.
    pre: bool,
    round: u32,
    starting: bool,
    last_round: bool,
    /// Bytes staged so far, against `max_bytes` (the agent's limit).
    total: u64,
    max_bytes: u64,
    max_files: u64,
}

/// Paths a migration may stage (relative to its staging dir).
pub fn allowed_path(path: &str) -> bool {
    let plain = |s: &str| !s.is_empty() && s != "." && s != ".." && !s.contains(['/', '\0']);
    match path.split_once('/') {
        None => matches!(
            path,
            "upper.tar" | "upper-delta.tar" | "whole.tar" | "config.json" | "log" | "image.json"
        ),
        Some(("checkpoint", rest)) => plain(rest),
        Some(("layer", digest)) => digest
            .strip_prefix("sha256:")
            .map(|h| h.len() == 64 && h.bytes().all(|b| b.is_ascii_hexdigit()))
            .unwrap_or(false),
        _ => false,
    }
}

impl Receiver {
    pub fn new(id: MigrationId) -> Self {
        Receiver {
            id,
            state: RState::Staging,
            file: None,
            files: Default::default(),
            abort_asked: false,
            build_asked: false,
            built: false,
            pages_pending: false,
            commit_waiting: false,
            pre: false,
            round: 0,
            starting: false,
            last_round: false,
            total: 0,
            max_bytes: u64::MAX,
            max_files: u64::MAX,
        }
    }

    /// Bound what the source may stage: all files together at most
    /// `bytes` (plain), at most `files` files.
    pub fn with_limits(mut self, bytes: u64, files: u64) -> Self {
        self.max_bytes = bytes;
        self.max_files = files;
        self
    }

    /// `--memory-mode stream`: a Commit waits for `PagesIn`.
    pub fn streaming(mut self) -> Self {
        self.pages_pending = true;
        self
    }

    /// `--memory-mode pre`: `PageRound`s after `Built`; each round's
    /// `PagesIn` comes before the next round, and a Commit waits for the
    /// last round's.
    pub fn pre_copy(mut self) -> Self {
        self.pre = true;
        self
    }

    /// A restarted T: a migration it never voted for is discarded at once;
    /// a voted one waits (stopped, fenced) for S.
    pub fn recover(id: MigrationId, step: Step) -> (Self, Vec<RAction>) {
        let mut r = Receiver::new(id);
        let acts = match step {
            Step::Ready => {
                r.state = RState::Ready;
                vec![]
            }
            Step::Running => {
                // Go was journalled; the thaw may not have happened.
                r.state = RState::Running;
                vec![RAction::Thaw]
            }
            _ => {
                r.state = RState::Gone;
                vec![RAction::Discard, RAction::Unjournal]
            }
        };
        (r, acts)
    }

    pub fn state(&self) -> RState {
        self.state
    }

    /// The answer to a decision for an id T has no record of.
    pub fn unknown(d: Decision) -> TargetMsg {
        match d {
            Decision::Abort => TargetMsg::Gone,
            Decision::Go => TargetMsg::Unknown,
        }
    }

    fn gone(&mut self, reply: TargetMsg, journalled: bool) -> Vec<RAction> {
        self.state = RState::Gone;
        self.file = None;
        let mut v = vec![RAction::Discard];
        if journalled {
            v.push(RAction::Unjournal);
        }
        v.push(RAction::Reply(reply));
        v
    }

    fn staging(&mut self, msg: MigrateMsg) -> Result<Vec<RAction>, String> {
        if self.commit_waiting {
            return Err(format!("{} after commit", brief(&REvent::Msg(msg))));
        }
        match msg {
            MigrateMsg::File { path } => {
                if let Some(f) = &self.file {
                    return Err(format!("file {path} before the end of {}", f.path));
                }
                if !allowed_path(&path) {
                    return Err(format!("refusing file {path:?}"));
                }
                if self.files.len() as u64 >= self.max_files {
                    return Err(format!(
                        "more than {} files (--max-unpack-entries)",
                        self.max_files
                    ));
                }
                if !self.files.insert(path.clone()) {
                    return Err(format!("file {path} sent twice"));
                }
                self.file = Some(OpenFile {
                    path: path.clone(),
                    hasher: sha256::Hasher::new(),
                    size: 0,
                });
                Ok(vec![RAction::Create(path)])
            }
            MigrateMsg::Data { bytes, .. } => {
                let f = self.file.as_mut().ok_or("data outside a file")?;
                if bytes.len() > CHUNK {
                    return Err(format!(
                        "{}: chunk of {} bytes exceeds {CHUNK}",
                        f.path,
                        bytes.len()
                    ));
                }
                self.total += bytes.len() as u64;
                if self.total > self.max_bytes {
                    return Err(format!(
                        "the migration carries more than {} bytes (--max-migration-bytes)",
                        self.max_bytes
                    ));
                }
                f.hasher.update(&bytes);
                f.size += bytes.len() as u64;
                Ok(vec![RAction::Write(bytes)])
            }
            MigrateMsg::FileEnd { size, sha256 } => {
                let f = self.file.take().ok_or("end of file outside a file")?;
                let digest = f.hasher.finish_hex();
                if f.size != size || digest != sha256 {
                    return Err(format!(
                        "{} arrived corrupt: {} bytes with sha256 {digest}, the source sent \
                         {size} bytes with sha256 {sha256}",
                        f.path, f.size
                    ));
                }
                Ok(vec![RAction::Close])
            }
            MigrateMsg::PreSent => {
                if let Some(f) = &self.file {
                    return Err(format!("end of the pre-send inside file {}", f.path));
                }
                if self.build_asked {
                    return Err("the pre-send ended twice".into());
                }
                self.build_asked = true;
                Ok(vec![RAction::Build])
            }
            MigrateMsg::PageRound { round, last } => {
                if !self.pre {
                    return Err("a page round outside --memory-mode pre".into());
                }
                if let Some(f) = &self.file {
                    return Err(format!("page round inside file {}", f.path));
                }
                if !self.built {
                    return Err("a page round before the container was built".into());
                }
                if self.last_round {
                    return Err(format!("page round {round} after the last one"));
                }
                if round != self.round + 1 || self.pages_pending {
                    return Err(format!(
                        "page round {round} while round {} is not over",
                        self.round
                    ));
                }
                self.round = round;
                self.last_round = last;
                self.starting = true;
                self.pages_pending = true;
                Ok(vec![RAction::StartPages { round, last }])
            }
            MigrateMsg::Commit => {
                if let Some(f) = &self.file {
                    return Err(format!("commit inside file {}", f.path));
                }
                if !self.built {
                    return Err("commit before the container was built".into());
                }
                if self.pre && !self.last_round {
                    return Err("commit before the last page round".into());
                }
                if !self.files.contains("config.json") {
                    return Err("commit without config.json".into());
                }
                if self.pages_pending {
                    self.commit_waiting = true;
                    return Ok(vec![]);
                }
                self.state = RState::Restoring;
                Ok(vec![
                    RAction::Journal(Step::Restoring),
                    RAction::RestoreFenced,
                ])
            }
            MigrateMsg::Go | MigrateMsg::Abort => unreachable!("handled by the caller"),
        }
    }

    /// Apply one event. `Err`: not allowed now, nothing changed.
    pub fn handle(&mut self, ev: REvent) -> Result<Vec<RAction>, String> {
        use RState as S;
        let acts = match (self.state, ev) {
            (_, REvent::Msg(MigrateMsg::Go)) => return self.handle(REvent::Decide(Decision::Go)),
            (_, REvent::Msg(MigrateMsg::Abort)) => {
                return self.handle(REvent::Decide(Decision::Abort))
            }
            (S::Staging, REvent::Msg(m)) => match self.staging(m) {
                Ok(v) => v,
                Err(e) => self.gone(TargetMsg::Failed(format!("transfer failed: {e}")), false),
            },
            (S::Staging, REvent::Built) if self.build_asked && !self.built => {
                self.built = true;
                vec![RAction::Reply(TargetMsg::Built)]
            }
            (S::Staging, REvent::PagesReady) if self.starting => {
                self.starting = false;
                vec![RAction::Reply(TargetMsg::PagesReady)]
            }
            (S::Staging, REvent::PagesIn) if self.pages_pending && !self.starting => {
                self.pages_pending = false;
                if self.commit_waiting {
                    self.state = S::Restoring;
                    vec![RAction::Journal(Step::Restoring), RAction::RestoreFenced]
                } else {
                    vec![]
                }
            }
            (S::Staging, REvent::LocalFailure(e)) => self.gone(TargetMsg::Failed(e), false),
            (S::Restoring, REvent::LocalFailure(e)) => self.gone(TargetMsg::Failed(e), true),
            (S::Staging, REvent::LinkLost) => {
                self.state = S::Gone;
                vec![RAction::Discard]
            }
            (S::Staging, REvent::Decide(Decision::Abort)) => self.gone(TargetMsg::Gone, false),
            (S::Restoring, REvent::Restored(rep)) => {
                if self.abort_asked {
                    self.state = S::Gone;
                    vec![RAction::Discard, RAction::Unjournal]
                } else {
                    self.state = S::Ready;
                    vec![
                        RAction::Journal(Step::Ready),
                        RAction::Reply(TargetMsg::Ready(rep)),
                    ]
                }
            }
            (S::Restoring, REvent::RestoreFailed(e)) => self.gone(TargetMsg::Failed(e), true),
            (S::Restoring, REvent::Decide(Decision::Abort)) => {
                self.abort_asked = true;
                vec![RAction::Reply(TargetMsg::Busy)]
            }
            (S::Restoring | S::Ready, REvent::LinkLost) => vec![],
            (S::Ready, REvent::Decide(Decision::Go)) => {
                self.state = S::Running;
                vec![
                    RAction::Journal(Step::Running),
                    RAction::Thaw,
                    RAction::Reply(TargetMsg::Running),
                ]
            }
            (S::Ready, REvent::Decide(Decision::Abort)) => self.gone(TargetMsg::Gone, true),
            (S::Running, REvent::Decide(Decision::Go)) => vec![RAction::Reply(TargetMsg::Running)],
            (S::Running, REvent::Forget) => {
                self.state = S::Gone;
                vec![RAction::Unjournal]
            }
            (S::Running, REvent::LinkLost) => vec![],
            (S::Gone, REvent::Decide(d)) => vec![RAction::Reply(Receiver::unknown(d))],
            (S::Gone, REvent::LinkLost | REvent::Forget) => vec![],
            (s, ev) => return Err(format!("{} is not expected in {s:?}", brief(&ev))),
        };
        Ok(acts)
    }
}

fn brief(ev: &REvent) -> String {
    match ev {
        REvent::Msg(MigrateMsg::Data { bytes, .. }) => format!("Data({} bytes)", bytes.len()),
        e => format!("{e:?}"),
    }
}

/// SHA-256 of a staged file, fed chunk by chunk.
mod sha256 {
    use sha2::Digest;

    #[derive(Debug, Clone)]
    pub struct Hasher(sha2::Sha256);

    impl Hasher {
        pub fn new() -> Self {
            Hasher(sha2::Sha256::new())
        }
        pub fn update(&mut self, data: &[u8]) {
            self.0.update(data)
        }
        pub fn finish_hex(self) -> String {
            hex::encode(self.0.finalize())
        }
    }

    /// Hex SHA-256 of `data`.
    pub fn hex(data: &[u8]) -> String {
        hex::encode(sha2::Sha256::digest(data))
    }
}

pub use sha256::hex as sha256_hex;

#[cfg(test)]
mod tests;
