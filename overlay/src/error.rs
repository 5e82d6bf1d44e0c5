//! The crate's error type. Every variant names what it was working on (a
//! path, a tar entry, an image name, a digest) so a log line is enough to
//! find the culprit.

use std::io;
use std::path::PathBuf;

/// Result alias for this crate.
pub type Result<T, E = Error> = std::result::Result<T, E>;

/// Everything that can go wrong in the image store, the container
/// filesystem and the capture/apply of upper layers.
#[derive(Debug, thiserror::Error)]
pub enum Error {
    /// No image record with this name.
    #[error("image {0:?} not found")]
    NotFound(String),

    /// The image name does not follow the naming rules.
    #[error("invalid image name {name:?}: {reason}")]
    InvalidName {
        /// The rejected name.
        name: String,
        /// Which rule it broke.
        reason: &'static str,
    },

    /// A digest string is not `sha256:<64 lowercase hex>`.
    #[error("invalid digest {0:?} (expected sha256:<64 hex digits>)")]
    InvalidDigest(String),

    /// A tar entry tried to leave its root (absolute path, `..`, a write
    /// through a symlink, a hard link out of the tree) or is malformed.
    #[error("refusing tar entry {entry:?}: {reason}")]
    UnsafeEntry {
        /// The entry's path as written in the archive.
        entry: String,
        /// Why it is refused.
        reason: String,
    },

    /// An archive expands beyond a [`crate::Limits`] bound.
    #[error("refusing {what}: it expands to more than {limit} {unit} (the unpack limit)")]
    TooLarge {
        /// What was being unpacked (image import, upper layer, ...).
        what: String,
        /// The bound that was hit.
        limit: u64,
        /// What the bound counts (bytes, entries, ...).
        unit: &'static str,
    },

    /// A tar entry of a kind we cannot create.
    #[error("unsupported tar entry {entry:?} of type {kind}")]
    Unsupported {
        /// The entry's path as written in the archive.
        entry: String,
        /// The tar type byte, printed.
        kind: String,
    },

    /// An I/O error while creating one tar entry.
    #[error("tar entry {entry:?}: {op}: {source}")]
    Entry {
        /// The entry's path as written in the archive.
        entry: String,
        /// What we were doing.
        op: &'static str,
        /// The underlying error.
        #[source]
        source: io::Error,
    },

    /// An I/O error on a path.
    #[error("{op} {}: {source}", path.display())]
    Io {
        /// What we were doing.
        op: &'static str,
        /// The path involved.
        path: PathBuf,
        /// The underlying error.
        #[source]
        source: io::Error,
    },

    /// Content did not hash to the digest it was announced with.
    #[error("digest mismatch for {what}: expected {expected}, got {actual}")]
    DigestMismatch {
        /// What was checked (blob, layer diff id).
        what: String,
        /// The announced digest.
        expected: String,
        /// The digest of what was read.
        actual: String,
    },

    /// An OCI image layout that we cannot follow.
    #[error("OCI layout {}: {reason}", path.display())]
    Oci {
        /// The layout directory.
        path: PathBuf,
        /// What is wrong with it.
        reason: String,
    },

    /// A JSON document (image record, OCI index/manifest/config) that does not parse.
    #[error("JSON {}: {source}", path.display())]
    Json {
        /// The file.
        path: PathBuf,
        /// The parse error.
        #[source]
        source: serde_json::Error,
    },

    /// mount(2) / umount2(2) failed.
    #[error("{op} overlay at {}: {source} (options: {options})", path.display())]
    Mount {
        /// mount or unmount.
        op: &'static str,
        /// The mount point.
        path: PathBuf,
        /// The option string handed to the kernel (empty for unmount).
        options: String,
        /// The errno.
        #[source]
        source: nix::Error,
    },

    /// The overlay is still mounted after a detach; refusing to delete under it.
    #[error("{} is still mounted; refusing to delete it", .0.display())]
    StillMounted(PathBuf),

    /// A container filesystem needs at least one lower layer, or its option
    /// string cannot be made to fit the kernel's page-sized limit.
    #[error("overlay at {}: {reason}", path.display())]
    Layers {
        /// The container directory.
        path: PathBuf,
        /// What is wrong.
        reason: String,
    },
}

impl Error {
    pub(crate) fn io(
        op: &'static str,
        path: impl Into<PathBuf>,
    ) -> impl FnOnce(io::Error) -> Error {
        let path = path.into();
        move |source| Error::Io { op, path, source }
    }

    pub(crate) fn entry<'a>(
        op: &'static str,
        entry: &'a str,
    ) -> impl FnOnce(io::Error) -> Error + 'a {
        move |source| Error::Entry {
            entry: entry.to_string(),
            op,
            source,
        }
    }

    pub(crate) fn unsafe_entry(entry: &str, reason: impl Into<String>) -> Error {
        Error::UnsafeEntry {
            entry: entry.to_string(),
            reason: reason.into(),
        }
    }
}
