//! Agent errors, each mapped to a wire [`ErrorKind`] so clients can tell a
//! missing container from a broken host.

use herd_wire::{ErrorKind, Response};

#[derive(Debug, thiserror::Error)]
pub enum AgentError {
    #[error("no such container: {0}")]
    NoSuchContainer(String),
    #[error("container {0} already exists")]
    ContainerExists(String),
    #[error("invalid {what}: {reason}")]
    Invalid { what: &'static str, reason: String },
    #[error("container {name} is {state}: {hint}")]
    Conflict {
        name: String,
        state: String,
        hint: &'static str,
    },
    #[error(transparent)]
    Image(Box<herd_overlay::Error>),
    #[error("{context}: {source}")]
    Runtime {
        context: String,
        #[source]
        source: Box<libcontainer::error::LibcontainerError>,
    },
    #[error("{context}: {source}")]
    Io {
        context: String,
        #[source]
        source: std::io::Error,
    },
    #[error("{context}: {source}")]
    Sys {
        context: String,
        #[source]
        source: nix::Error,
    },
    #[error("{context}: {source}")]
    Net {
        context: String,
        #[source]
        source: Box<herd_netlink::Error>,
    },
    #[error("{context}: {source}")]
    Criu {
        context: String,
        #[source]
        source: Box<herd_criu::Error>,
    },
    /// This host cannot do it for this container (the reason says what is
    /// missing and where it can be done).
    #[error("{what} is not possible here: {reason}")]
    Unsupported { what: String, reason: String },
    /// The container is in a migration (one operation at a time).
    #[error("{0}")]
    Busy(String),
    /// The container's command is not there (Podman's exit 127).
    #[error("{container}: executable file {cmd:?} not found in $PATH ({path})")]
    CommandNotFound {
        container: String,
        cmd: String,
        path: String,
    },
    /// The container's command is there but cannot be run (Podman's 126).
    #[error("{container}: {cmd:?} cannot be executed: {reason}")]
    CannotExecute {
        container: String,
        cmd: String,
        reason: String,
    },
    #[error("bad archive {path}: {reason}")]
    BadArchive { path: String, reason: String },
    /// Encoding or decoding a record, a journal or a spec as JSON.
    #[error("{context}: {source}")]
    Json {
        context: String,
        #[source]
        source: serde_json::Error,
    },
    /// Loading or saving an OCI spec.
    #[error("{context}: {source}")]
    Spec {
        context: String,
        #[source]
        source: Box<oci_spec::OciSpecError>,
    },
    /// libcontainer's runtime config of a container (`YoukiConfig`).
    #[error("{context}: {source}")]
    RuntimeConfig {
        context: String,
        #[source]
        source: Box<libcontainer::config::ConfigError>,
    },
    /// libcgroups: making a cgroup manager, adding a task, applying limits.
    #[error("{context}: {source}")]
    Cgroup {
        context: String,
        #[source]
        source: Box<dyn std::error::Error + Send + Sync>,
    },
    /// A QUIC stream to a peer agent.
    #[error("{context}: {source}")]
    Quic {
        context: String,
        #[source]
        source: Box<herd_quic::Error>,
    },
    /// A blocking task of the agent panicked or was cancelled.
    #[error("agent task failed: {0}")]
    Task(#[from] tokio::task::JoinError),
    /// An archived (checkpointed or migrated) OCI spec without `linux`.
    #[error("archived OCI spec has no linux section")]
    SpecWithoutLinux,
    /// A migration's resume found the container in no state to run again.
    #[error("{name} is {state} here: nothing to resume")]
    NothingToResume { name: String, state: String },
    /// The migration target asked for a layer the image does not have.
    #[error("the target asked for layer {layer}, which is not in {image}")]
    UnknownLayer { layer: String, image: String },
    /// Sending an image the target lacks failed before anything changed.
    #[error("sending image {image} to the target failed, nothing was changed: {source}")]
    SendImage {
        image: String,
        #[source]
        source: Box<AgentError>,
    },
    /// The target's CRIU page server (`--memory-mode stream`) failed.
    #[error(
        "the CRIU page server exited with {0} (its page-server.log is in the migration's \
         staging dir)"
    )]
    PageServerExit(i32),
    #[error("{0}")]
    Other(String),
}

pub type Result<T, E = AgentError> = std::result::Result<T, E>;

impl AgentError {
    pub fn kind(&self) -> ErrorKind {
        match self {
            AgentError::NoSuchContainer(_) => ErrorKind::NotFound,
            AgentError::ContainerExists(_) => ErrorKind::AlreadyExists,
            AgentError::Invalid { .. } => ErrorKind::InvalidInput,
            AgentError::Conflict { .. } | AgentError::Busy(_) => ErrorKind::Conflict,
            AgentError::Image(e) => image_kind(e.as_ref()),
            AgentError::BadArchive { .. } => ErrorKind::InvalidInput,
            AgentError::Unsupported { .. } => ErrorKind::Unsupported,
            AgentError::CommandNotFound { .. } => ErrorKind::CommandNotFound,
            AgentError::CannotExecute { .. } => ErrorKind::CannotExecute,
            _ => ErrorKind::Internal,
        }
    }

    pub fn to_response(&self) -> Response {
        // Full chain: the client sees the cause, not only the outer context.
        let mut msg = self.to_string();
        let mut src = std::error::Error::source(self);
        while let Some(s) = src {
            let s_str = s.to_string();
            if !msg.contains(&s_str) {
                msg.push_str(": ");
                msg.push_str(&s_str);
            }
            src = s.source();
        }
        Response::error(self.kind(), msg)
    }
}

fn image_kind(e: &herd_overlay::Error) -> ErrorKind {
    use herd_overlay::Error as E;
    match e {
        E::NotFound(_) => ErrorKind::NotFound,
        E::InvalidName { .. }
        | E::InvalidDigest(_)
        | E::UnsafeEntry { .. }
        | E::Unsupported { .. }
        | E::DigestMismatch { .. } => ErrorKind::InvalidInput,
        _ => ErrorKind::Internal,
    }
}

pub(crate) trait IoContext<T> {
    fn ctx(self, context: impl FnOnce() -> String) -> Result<T>;
}

/// `IoContext` for a source error type: `Variant` holds it as is,
/// `Variant boxed` in a `Box`.
macro_rules! context_for {
    ($($err:ty => $variant:ident $($boxed:ident)?;)*) => {$(
        impl<T> IoContext<T> for std::result::Result<T, $err> {
            fn ctx(self, context: impl FnOnce() -> String) -> Result<T> {
                self.map_err(|e| {
                    let source = context_for!(@wrap e $($boxed)?);
                    AgentError::$variant {
                        context: context(),
                        source,
                    }
                })
            }
        }
    )*};
    (@wrap $s:ident) => { $s };
    (@wrap $s:ident boxed) => { Box::new($s) };
}

context_for! {
    std::io::Error => Io;
    nix::Error => Sys;
    serde_json::Error => Json;
    libcontainer::error::LibcontainerError => Runtime boxed;
    libcontainer::config::ConfigError => RuntimeConfig boxed;
    oci_spec::OciSpecError => Spec boxed;
    libcgroups::common::AnyManagerError => Cgroup boxed;
    libcgroups::common::CreateCgroupSetupError => Cgroup boxed;
    herd_quic::Error => Quic boxed;
    herd_criu::Error => Criu boxed;
    herd_netlink::Error => Net boxed;
}

/// Names of containers and nodes: they become paths, cgroup names and netns names.
pub fn validate_name(what: &'static str, name: &str) -> Result<()> {
    let ok = !name.is_empty()
        && name.len() <= 63
        && name
            .bytes()
            .all(|b| b.is_ascii_alphanumeric() || b == b'-' || b == b'_' || b == b'.')
        && name.as_bytes()[0].is_ascii_alphanumeric();
    if ok {
        Ok(())
    } else {
        Err(AgentError::Invalid {
            what,
            reason: format!(
                "{name:?}: use 1-63 letters, digits, '-', '_' or '.', starting with a letter or digit"
            ),
        })
    }
}

impl From<herd_overlay::Error> for AgentError {
    fn from(e: herd_overlay::Error) -> Self {
        AgentError::Image(Box::new(e))
    }
}
