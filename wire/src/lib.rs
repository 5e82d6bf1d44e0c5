//! herd-wire: every message between Herd processes, and how they are framed.
//!
//! No I/O lives here (the quinn-proto idea): transports in `herd-quic` move
//! frames, this crate only says what a frame holds.
//!
//! # Control protocol (CLI or peer agent -> agent), version [`PROTOCOL_VERSION`]
//!
//! ```text
//! client                                   agent
//!   | open bidirectional QUIC stream          |
//!   | Envelope{version, Request} ------------>|  version != ours -> Response::Error(VersionMismatch)
//!   |<------------------------ Response ...   |  one Response, or a sequence for streaming
//!   |                                         |  requests (Logs{follow}) ended by Response::End
//! ```
//!
//! Every request gets at least one response; errors are `Response::Error`
//! with a machine-readable [`ErrorKind`] and a human sentence. A stream
//! carries exactly one request.

use serde::{Deserialize, Serialize};

pub mod frame;
pub mod handoff;
pub mod migrate;
pub mod monitor;
pub mod net;
pub mod size;
pub mod volume;

pub use volume::Volume;

/// Version of the control protocol. Bump on any incompatible change.
/// 2: a host's `cores` became fractional (`herd-agent --cpus`).
/// 3: the fenced migration handoff (`Handoff`, `Migrating`, typed outcome).
/// 4: `Request::Migrate.memory` (`--memory-mode`).
/// 5: `Exec.user`/`Exec.workdir`, `Request::Start`, `RunSpec.auto_remove`
///    (and `Request::MigratePages`, added beside them),
///    error kinds `CommandNotFound`/`CannotExecute` (Podman's 127/126).
/// 6: `RunSpec.volumes` and `ContainerInfo.volumes` (`-v`).
pub const PROTOCOL_VERSION: u32 = 6;

/// What a client sends on a fresh stream.
#[derive(Debug, Clone, Serialize, Deserialize, PartialEq)]
pub struct Envelope {
    pub version: u32,
    pub request: Request,
}

impl Envelope {
    pub fn new(request: Request) -> Self {
        Envelope {
            version: PROTOCOL_VERSION,
            request,
        }
    }
}

#[derive(Debug, Clone, Serialize, Deserialize, PartialEq)]
pub enum Request {
    /// Liveness and identity of the agent.
    Ping,
    /// Create and start a container.
    Run(RunSpec),
    /// All containers of this agent.
    List,
    /// One container.
    Inspect {
        name: String,
    },
    /// Log lines; with `follow`, the stream stays open and new lines keep coming.
    Logs {
        name: String,
        follow: bool,
        /// Only the last `tail` lines of what exists now.
        tail: Option<u64>,
    },
    /// Run a command inside a running container and collect its output.
    Exec {
        name: String,
        cmd: Vec<String>,
        env: Vec<String>,
        /// `USER[:GROUP]` (names from the container's /etc files, or ids);
        /// default the container's user.
        user: Option<String>,
        /// Absolute working directory; default the container's.
        workdir: Option<String>,
    },
    /// SIGTERM, then SIGKILL after `timeout_s`.
    Stop {
        name: String,
        timeout_s: u64,
    },
    /// Send a signal (number) to the container's init.
    Kill {
        name: String,
        signal: i32,
    },
    /// Delete a stopped container (`force`: stop it first with SIGKILL).
    Remove {
        name: String,
        force: bool,
    },
    /// Import an image from a path readable by the agent.
    ImageImport {
        name: String,
        path: String,
    },
    ImageList,
    ImageRemove {
        name: String,
    },
    /// Checkpoint a running container through CRIU.
    Checkpoint {
        name: String,
        /// Keep the container running after the dump.
        leave_running: bool,
        /// Also write a portable archive (checkpoint images, upper layer,
        /// config) to this path on the agent's host; `.zst` compresses it.
        export: Option<String>,
    },
    /// Restore a checkpointed container from its own images.
    Restore {
        name: String,
    },
    /// Restore a container from an exported archive on the agent's host.
    RestoreImport {
        path: String,
        /// New name (default: the name in the archive).
        name: Option<String>,
    },
    /// Live-migrate a container of this agent to another agent.
    Migrate {
        name: String,
        /// Target node name (its certificate's name) and address.
        to: String,
        to_addr: std::net::SocketAddr,
        fs: migrate::FsMode,
        compress: bool,
        /// How memory moves (see [`migrate::MemoryMode`]).
        memory: migrate::MemoryMode,
        /// Send `Response::Progress` frames (about 4 a second) before the
        /// final answer.
        progress: bool,
    },
    /// Agent to agent: the target side of a migration. The rest of the
    /// stream follows the migration protocol (see [`migrate`]).
    MigrateIn(migrate::Prepare),
    /// Define a network on this agent (every agent of a cluster gets it).
    NetworkCreate(NetworkDef),
    NetworkList,
    /// Forget a network no container of this agent uses.
    NetworkRemove {
        name: String,
    },
    /// Samples, container events and log lines as they come; the stream
    /// stays open until the subscriber closes it (see [`monitor`]).
    Subscribe(monitor::Subscribe),
    /// Agent to agent: resolve a journalled migration (see [`handoff`]).
    Handoff(handoff::Query),
    /// Agent to agent, `--memory-mode stream`: after this envelope the
    /// stream carries CRIU's page-server protocol, raw, both ways, between
    /// the source's dump and the page server the target started for
    /// migration `id` at `Prepare`.
    MigratePages {
        id: handoff::MigrationId,
    },
    /// Start a stopped container again: same filesystem, network and
    /// limits, a new process (Podman's `start`).
    Start {
        name: String,
    },
}

/// What `herd run` asks for.
#[derive(Debug, Clone, Serialize, Deserialize, PartialEq, Default)]
pub struct RunSpec {
    pub name: String,
    pub image: String,
    /// Arguments that replace the image's Cmd (Docker's and Podman's
    /// `run IMAGE ARGS...`); empty: the image's Cmd. The process runs
    /// Entrypoint + Cmd.
    pub cmd: Vec<String>,
    /// `KEY=VALUE` pairs.
    pub env: Vec<String>,
    /// Memory limit in bytes.
    pub memory_bytes: Option<u64>,
    /// CPU limit in cores (e.g. 1.5).
    pub cpus: Option<f64>,
    /// The container's hostname (default: its name). Kept across migrations.
    pub hostname: Option<String>,
    /// Its own address on a network, kept for life and across migrations.
    #[serde(default)]
    pub net: Option<NetAttach>,
    /// Replaces the image's Entrypoint (`--entrypoint`), and then the
    /// image's Cmd is not used; `Some(vec![])` clears it.
    #[serde(default)]
    pub entrypoint: Option<Vec<String>>,
    /// `USER[:GROUP]`, names or ids (`-u`); default the image's User.
    #[serde(default)]
    pub user: Option<String>,
    /// Absolute working directory (`-w`); default the image's WorkingDir.
    #[serde(default)]
    pub workdir: Option<String>,
    /// Remove the container when its process exits (`run --rm`).
    #[serde(default)]
    pub auto_remove: bool,
    /// Bind mounts (`-v HOST:CTR[:ro]`), see [`volume`].
    #[serde(default)]
    pub volumes: Vec<Volume>,
}

/// A network every agent of a cluster knows: containers on it get a macvlan
/// child (bridge mode) of the host's uplink `parent`, with their own MAC and
/// IP, so the address moves with the container.
#[derive(Debug, Clone, Serialize, Deserialize, PartialEq, Eq)]
pub struct NetworkDef {
    pub name: String,
    /// IPv4 subnet, `A.B.C.D/N`.
    pub subnet: String,
    /// Default gateway of the containers, in the subnet (none: no default route).
    pub gateway: Option<String>,
    /// The host's uplink interface the macvlans hang off.
    pub parent: String,
    /// Addresses handed out when `run` gives none: `A.B.C.D-A.B.C.E`.
    pub range: String,
}

/// A container's attachment to a network.
#[derive(Debug, Clone, Serialize, Deserialize, PartialEq, Eq)]
pub struct NetAttach {
    pub network: String,
    /// IPv4 address (without prefix).
    pub ip: String,
    /// `aa:bb:cc:dd:ee:ff`, locally administered unicast.
    pub mac: String,
}

/// In JSON (`herd ps --json`, the agent's records) lowercase, as Podman
/// prints a state and as the tables show it; the capitalised names of
/// JSON format 1 (and of older agents' records) are still read.
#[derive(Debug, Clone, Copy, Serialize, Deserialize, PartialEq, Eq)]
#[serde(rename_all = "lowercase")]
pub enum ContainerStatus {
    #[serde(alias = "Created")]
    Created,
    #[serde(alias = "Running")]
    Running,
    #[serde(alias = "Stopped")]
    Stopped,
    /// Dumped by CRIU and not running: `restore` brings it back.
    #[serde(alias = "Checkpointed")]
    Checkpointed,
    /// Being moved (see `ContainerInfo::migration`): frozen, or restored
    /// stopped and fenced on the target, until the handoff ends.
    #[serde(alias = "Migrating")]
    Migrating,
}

impl std::fmt::Display for ContainerStatus {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(match self {
            ContainerStatus::Created => "created",
            ContainerStatus::Running => "running",
            ContainerStatus::Stopped => "stopped",
            ContainerStatus::Checkpointed => "checkpointed",
            ContainerStatus::Migrating => "migrating",
        })
    }
}

#[derive(Debug, Clone, Serialize, Deserialize, PartialEq)]
pub struct ContainerInfo {
    pub name: String,
    pub node: String,
    pub image: String,
    pub cmd: Vec<String>,
    pub status: ContainerStatus,
    pub pid: Option<i32>,
    pub exit_code: Option<i32>,
    /// Creation time, nanoseconds since the Unix epoch.
    pub created_ns: u64,
    pub memory_bytes: Option<u64>,
    pub cpus: Option<f64>,
    pub hostname: String,
    /// Network name, IP and MAC when attached to a network.
    pub network: Option<String>,
    pub ip: Option<String>,
    pub mac: Option<String>,
    /// While `Migrating`: from which node to which.
    #[serde(default)]
    pub migration: Option<MigrationInfo>,
    /// Bind mounts (`-v`).
    #[serde(default)]
    pub volumes: Vec<Volume>,
}

/// A migration a container is in.
#[derive(Debug, Clone, Serialize, Deserialize, PartialEq, Eq)]
pub struct MigrationInfo {
    pub from: String,
    pub to: String,
    /// Phase as `Response::Progress` names them (prepare, dump, ...).
    pub phase: String,
}

#[derive(Debug, Clone, Copy, Serialize, Deserialize, PartialEq, Eq)]
pub enum LogStream {
    Stdout,
    Stderr,
}

#[derive(Debug, Clone, Serialize, Deserialize, PartialEq, Eq)]
pub struct LogLine {
    /// Nanoseconds since the Unix epoch, when the agent read the line.
    pub time_ns: u64,
    pub stream: LogStream,
    pub line: String,
}

#[derive(Debug, Clone, Serialize, Deserialize, PartialEq, Eq)]
pub struct ExecOutput {
    pub exit_code: i32,
    pub stdout: Vec<u8>,
    pub stderr: Vec<u8>,
}

#[derive(Debug, Clone, Serialize, Deserialize, PartialEq)]
pub struct ImageSummary {
    pub name: String,
    pub id: String,
    pub layers: usize,
    pub size_bytes: u64,
    pub created: u64,
}

#[derive(Debug, Clone, Copy, Serialize, Deserialize, PartialEq, Eq)]
pub enum ErrorKind {
    NotFound,
    AlreadyExists,
    InvalidInput,
    /// The request is valid but cannot be done in the current state
    /// (e.g. removing a running container without force).
    Conflict,
    Unsupported,
    VersionMismatch,
    Unauthorized,
    Internal,
    /// The container's command was not found (`herd` exits 127, as Podman).
    CommandNotFound,
    /// The container's command was found but cannot be executed (126).
    CannotExecute,
}

#[derive(Debug, Clone, Serialize, Deserialize, PartialEq, Eq)]
pub struct WireError {
    pub kind: ErrorKind,
    pub message: String,
}

impl std::fmt::Display for WireError {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(&self.message)
    }
}

impl std::error::Error for WireError {}

#[derive(Debug, Clone, Serialize, Deserialize, PartialEq)]
pub enum Response {
    Pong {
        node: String,
        version: u32,
        /// `std::env::consts::ARCH` of the agent (migration refuses to cross it).
        arch: String,
        agent_version: String,
    },
    Ok,
    Error(WireError),
    Container(ContainerInfo),
    Containers(Vec<ContainerInfo>),
    Log(LogLine),
    Exec(ExecOutput),
    Image(ImageSummary),
    Images(Vec<ImageSummary>),
    Checkpointed(CheckpointReport),
    Migrated(migrate::MigrateReport),
    Restored(RestoreReport),
    /// End of a streamed answer.
    End,
    /// A migration target's answer to `Prepare` when it lacks the image:
    /// send `image.json` and these layers (`layer/<digest>`) first.
    NeedLayers(Vec<String>),
    Networks(Vec<NetworkDef>),
    /// How far a migration is: `phase` (prepare, image, pre-send, dump,
    /// transfer, restore, cleanup) and the bytes of that phase's files.
    Progress {
        phase: String,
        done_bytes: u64,
        total_bytes: u64,
    },
    /// One message of a `Subscribe` stream.
    Monitor(monitor::MonitorMsg),
    /// A migration target's answers (see [`handoff`]).
    Handoff(handoff::TargetMsg),
}

/// What a checkpoint cost. Times in milliseconds (CRIU's own from its stats
/// file, the rest wall clock as the agent saw it).
#[derive(Debug, Clone, Serialize, Deserialize, PartialEq)]
pub struct CheckpointReport {
    pub name: String,
    pub node: String,
    /// Wall clock of the whole checkpoint request.
    pub total_ms: f64,
    /// CRIU: time to freeze the tree.
    pub freezing_ms: f64,
    /// CRIU: how long the tree was frozen.
    pub frozen_ms: f64,
    pub memdump_ms: f64,
    pub memwrite_ms: f64,
    pub pages_written: u64,
    /// Size of the checkpoint images.
    pub image_bytes: u64,
    pub leave_running: bool,
    /// Exported archive, and its size.
    pub export: Option<String>,
    pub export_bytes: Option<u64>,
}

#[derive(Debug, Clone, Serialize, Deserialize, PartialEq)]
pub struct RestoreReport {
    pub container: ContainerInfo,
    /// Wall clock of the whole restore request.
    pub total_ms: f64,
    /// CRIU: its own restore time.
    pub criu_restore_ms: f64,
    pub pages_restored: u64,
    /// How long the container had been running again when this report was
    /// sent (a migration target checks it stays up before it answers).
    pub running_ms: f64,
}

impl Response {
    pub fn error(kind: ErrorKind, message: impl Into<String>) -> Self {
        Response::Error(WireError {
            kind,
            message: message.into(),
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn envelope_round_trips_through_a_frame() {
        let env = Envelope::new(Request::Run(RunSpec {
            name: "c1".into(),
            image: "busybox".into(),
            cmd: vec!["sh".into(), "-c".into(), "echo hi".into()],
            memory_bytes: Some(64 << 20),
            ..Default::default()
        }));
        let f = frame::encode(&env).unwrap();
        let back: Envelope = frame::decode(&f[frame::HEADER_LEN..]).unwrap();
        assert_eq!(back, env);
        assert_eq!(back.version, PROTOCOL_VERSION);
    }

    #[test]
    fn status_is_lowercase_in_json_and_old_records_still_read() {
        let all = [
            (ContainerStatus::Created, "created"),
            (ContainerStatus::Running, "running"),
            (ContainerStatus::Stopped, "stopped"),
            (ContainerStatus::Checkpointed, "checkpointed"),
            (ContainerStatus::Migrating, "migrating"),
        ];
        for (s, name) in all {
            assert_eq!(serde_json::to_value(s).unwrap(), name);
            assert_eq!(s.to_string(), name, "the tables print the JSON name");
            let old = format!("\"{}{}\"", name[..1].to_uppercase(), &name[1..]);
            let back: ContainerStatus = serde_json::from_str(&old).unwrap();
            assert_eq!(back, s, "{old}");
            let f = frame::encode(&s).unwrap();
            assert_eq!(
                frame::decode::<ContainerStatus>(&f[frame::HEADER_LEN..]).unwrap(),
                s
            );
        }
    }
}
