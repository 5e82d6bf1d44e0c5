//! The live-migration protocol between two agents, version [`MIGRATE_VERSION`].
//!
//! The CLI (or the coordinator) asks the source agent S to move container
//! X to the target agent T (`Request::Migrate`). S opens a bidirectional
//! stream to T whose first frame is `Envelope{Request::MigrateIn(Prepare)}`
//! (so the control protocol's version check applies); after it every S → T
//! frame is a [`MigrateMsg`] and T answers with plain `Response`s.
//!
//! ```text
//!   S (source)                                         T (target)
//!   |  MigrateIn(Prepare{version, spec, oci spec, image,  |
//!   |          layers, arch, fs mode}) ------------------->|  checks version, arch, image layers,
//!   |                                                      |  name free; makes a staging dir
//!   |<--------------------- Ok | NeedLayers | Error        |  (Error: S stops; nothing was frozen)
//!   |  [File{image.json}, File{layer/<digest>}* ---------->|  only after NeedLayers: the image record
//!   |                                                      |  and the missing layers, while X runs]
//!   |  File{upper.tar} Data* FileEnd{sha256} ------------->|  pre-send: the upper layer as it is now,
//!   |                                                      |  the container still runs on S
//!   |  PreSent ------------------------------------------->|  builds overlay (+ upper.tar), netns with
//!   |                                                      |  the fenced macvlan, cgroups, bundle
//!   |<------------------------------------ Built | Failed  |  (Failed: T removed it; nothing froze)
//!   |  == S dumps through CRIU: frozen from here ==        |
//!   |  File{checkpoint/*} Data* FileEnd ... -------------->|  CRIU images, checksummed
//!   |  File{upper-delta.tar} Data* FileEnd --------------->|  writes since the pre-send (fs=diff)
//!   |  File{config.json}, File{log} ---------------------->|
//!   |  Commit --------------------------------------------->|  applies the delta, moves the images in,
//!   |                                                      |  restores through CRIU, checks it runs
//!   |<------------------------------ Restored{stats} | Error
//!   |  S deletes its copy (Restored)                       |
//!   |  or restores its own copy from the images it kept    |  (Failed: T removed what it made)
//! ```
//!
//! Target states: `AwaitPrepare → Staging (files arrive) → Restoring →
//! Done | RolledBack`. Source states: `Preparing → PreSending → Dumping →
//! Transferring → AwaitRestored → CleaningUp | RollingBack`.
//! Any error, a closed stream or a corrupt file (size or sha256 mismatch) on
//! T before `Restored` makes T remove its staging and anything it built;
//! any error on S after the dump makes S restore from its kept images, so
//! the container runs in exactly one place.

use serde::{Deserialize, Serialize};

use crate::RunSpec;

/// 2: the fenced, journalled handoff of [`crate::handoff`] (`Prepare.id`,
/// `Go`/`Abort`, answers as [`crate::handoff::TargetMsg`]).
/// 3: `PreSent` / `Built`: the target builds the container before the freeze.
/// 4: `Prepare.memory` and the page stream (`Request::MigratePages`) of
///    `--memory-mode stream`.
/// 5: `PageRound` / `PagesReady` of `--memory-mode pre`.
pub const MIGRATE_VERSION: u32 = 5;

/// Largest chunk of file data in one frame.
pub const CHUNK: usize = 1 << 20;

#[derive(Debug, Clone, Copy, Serialize, Deserialize, PartialEq, Eq)]
pub enum FsMode {
    /// Upper layer pre-sent while running, then the delta since (default).
    Diff,
    /// No filesystem changes move: the target starts from the image.
    None,
    /// Upper and lower layers flattened into one tar: the thesis's slow
    /// baseline, and the target needs no image.
    Whole,
}

impl std::str::FromStr for FsMode {
    type Err = String;
    fn from_str(s: &str) -> Result<Self, String> {
        match s {
            "diff" => Ok(FsMode::Diff),
            "none" => Ok(FsMode::None),
            "whole" => Ok(FsMode::Whole),
            o => Err(format!("unknown fs mode {o:?} (diff, none, whole)")),
        }
    }
}

/// `auto` streams pages from this much container memory up (the
/// resident bytes of its processes): below it the dump is a few MiB and
/// a page-server session is one more thing that can fail for little gain.
pub const AUTO_STREAM_BYTES: u64 = 64 << 20;

/// How memory moves (`herd migrate --memory-mode`).
///
/// * `stop`: stop-and-copy: CRIU dumps every page while the container is
///   frozen, the images cross, the target restores (the target is built
///   before the freeze in every mode).
/// * `stream`: the source's CRIU sends its pages while it dumps to a CRIU
///   page server the target started at `Prepare`, through a stream of the
///   agents' QUIC connection (unix socketpairs at both ends, no TCP): no
///   page image on the source's disk, dump and transfer overlap. The
///   frozen tree stays on the source (CRIU holds it at its post-dump
///   point) until the target voted, so a failure before `Go` resumes it.
/// * `pre`: iterative pre-dumps while it runs (CRIU's soft-dirty
///   tracking), each round's pages through the same QUIC page stream as
///   `stream` to a page server the target starts for that round, then a
///   frozen dump of only what changed since the last round (streamed the
///   same way). Needs the kernel's dirty-memory tracking (`criu check
///   --feature mem_dirty_track`): refused before anything freezes where it
///   is missing. Rounds and when they stop: [`crate::handoff::pre_converged`].
/// * `post`: post-copy with lazy pages: the container runs on the target
///   at once and faults its pages in from the source. Its risk: until the
///   last page arrived, the container lives on both hosts, and if the
///   source dies (or the link stays down) before that, the container is
///   lost. Refused before anything freezes in this version (the agent
///   says why: without userfaultfd it cannot work at all, and with it
///   CRIU 4.2.1's lazy page server fails here, see
///   `herd_wire::handoff`'s post-copy section).
/// * `auto`: the mode this agent picks, with why, in the report: for a
///   container of at least [`AUTO_STREAM_BYTES`] of memory `pre` where the
///   kernel tracks dirty memory, else `stream`; below it `stop` (never
///   `post` while it is refused).
#[derive(Debug, Clone, Copy, Serialize, Deserialize, PartialEq, Eq, Default)]
#[serde(rename_all = "snake_case")]
pub enum MemoryMode {
    Stop,
    Stream,
    Pre,
    Post,
    #[default]
    Auto,
}

impl MemoryMode {
    pub fn as_str(self) -> &'static str {
        match self {
            MemoryMode::Stop => "stop",
            MemoryMode::Stream => "stream",
            MemoryMode::Pre => "pre",
            MemoryMode::Post => "post",
            MemoryMode::Auto => "auto",
        }
    }
}

impl std::str::FromStr for MemoryMode {
    type Err = String;
    fn from_str(s: &str) -> Result<Self, String> {
        match s {
            "stop" => Ok(MemoryMode::Stop),
            "stream" => Ok(MemoryMode::Stream),
            "pre" => Ok(MemoryMode::Pre),
            "post" => Ok(MemoryMode::Post),
            "auto" => Ok(MemoryMode::Auto),
            o => Err(format!(
                "unknown memory mode {o:?} (stop, stream, pre, post, auto)"
            )),
        }
    }
}

#[derive(Debug, Clone, Serialize, Deserialize, PartialEq)]
pub struct Prepare {
    pub version: u32,
    pub spec: RunSpec,
    /// The container's OCI runtime spec (JSON).
    pub oci_spec: Vec<u8>,
    pub image: String,
    pub layers: Vec<String>,
    /// `std::env::consts::ARCH` of the source.
    pub arch: String,
    pub fs: FsMode,
    pub source_node: String,
    /// The migration's id, the same in both journals.
    pub id: crate::handoff::MigrationId,
    /// `stop`, `stream` or `pre` (`auto` is resolved by the source);
    /// `stream`: start a page server now, the pages come on
    /// `Request::MigratePages`; `pre`: one page server per `PageRound`.
    pub memory: MemoryMode,
}

#[derive(Debug, Clone, Serialize, Deserialize, PartialEq)]
pub enum MigrateMsg {
    /// Start of a file; `path` is one of `upper.tar`, `upper-delta.tar`,
    /// `whole.tar`, `config.json`, `log`, `checkpoint/<name>`, and after
    /// `NeedLayers` `image.json` and `layer/<sha256:hex>`.
    File { path: String },
    /// A piece of the current file; zstd-compressed when `zstd`.
    Data { zstd: bool, bytes: Vec<u8> },
    /// End of the current file: its size and sha256 (hex) before compression.
    FileEnd { size: u64, sha256: String },
    /// The pre-send is over (the container still runs on S): build all
    /// that does not need the dump, then answer `Built`.
    PreSent,
    /// Everything is there: restore, fenced and stopped, then vote.
    Commit,
    /// The decision (journalled by S before it was sent): run the copy.
    Go,
    /// The decision: drop the copy.
    Abort,
    /// `--memory-mode pre`, after `Built`: start the page server of round
    /// `round` (1, 2, ...) and answer `PagesReady`; its pages come on a
    /// `Request::MigratePages` stream. `last`: the round of the final
    /// (frozen) dump, whose pages are the restore's images.
    PageRound { round: u32, last: bool },
}

/// What a migration cost, phase by phase (milliseconds, wall clock unless
/// noted), as `herd migrate --json` prints it.
#[derive(Debug, Clone, Default, Serialize, Deserialize, PartialEq)]
pub struct MigrateReport {
    /// Where the container runs now (see [`crate::handoff::Outcome`]).
    #[serde(default)]
    pub outcome: crate::handoff::Outcome,
    /// On failure: the phase it failed in and why.
    #[serde(default)]
    pub phase: Option<crate::handoff::Phase>,
    #[serde(default)]
    pub reason: Option<String>,
    /// The node the container runs on now (none while pending).
    #[serde(default)]
    pub runs_on: Option<String>,
    pub container: String,
    pub from: String,
    pub to: String,
    pub fs: String,
    pub compress: bool,
    /// The memory mode used (`auto` resolved), and why `auto` chose it.
    #[serde(default)]
    pub memory_mode: String,
    #[serde(default)]
    pub memory_mode_reason: Option<String>,
    /// `pre`: pages written by each pre-dump round, in order; `[]` when
    /// there were none (every other mode).
    #[serde(default)]
    pub pre_rounds: Vec<u64>,
    /// `pre`: why the pre-dump rounds stopped (see
    /// [`crate::handoff::pre_converged`]); null in every other mode.
    #[serde(default)]
    pub pre_stop: Option<String>,
    /// `post`: from the resume on the target until its last page arrived;
    /// null in every other mode.
    #[serde(default)]
    pub post_copy_ms: Option<f64>,
    /// `post`: bytes of pages that came after the resume (faulted in or
    /// pushed); null in every other mode.
    #[serde(default)]
    pub lazy_bytes: Option<u64>,
    pub prepare_ms: f64,
    pub presend_ms: f64,
    /// The target building the container after the pre-send (X still runs).
    #[serde(default)]
    pub build_ms: f64,
    pub dump_ms: f64,
    pub transfer_ms: f64,
    pub restore_ms: f64,
    pub cleanup_ms: f64,
    pub total_ms: f64,
    /// CRIU's own frozen time (stats-dump).
    pub criu_frozen_ms: f64,
    /// From the start of the dump until the target reported the container running.
    pub frozen_ms: f64,
    /// Bytes sent over the wire (after compression).
    pub bytes: u64,
    /// Bytes of file data before compression (with `page_bytes`).
    pub raw_bytes: u64,
    /// `stream`: bytes of CRIU's page stream (counted in `bytes` and
    /// `raw_bytes` too); 0 in `stop`, whose pages are files.
    #[serde(default)]
    pub page_bytes: u64,
    /// `pre`: bytes of the pre-dump rounds' page streams (X running;
    /// counted in `bytes` and `raw_bytes` too); 0 in every other mode.
    #[serde(default)]
    pub pre_bytes: u64,
    /// raw_bytes per second of transfer phase, MiB/s (`stream`: the
    /// pages and the files after the dump, over dump + transfer time).
    pub throughput_mib_s: f64,
    /// Image layers the target lacked and got from the source (while the
    /// container ran), and their bytes on the wire.
    pub layers_sent: u32,
    pub layer_bytes: u64,
}
