//! The crate's error type.
//!
//! Every variant names the operation (`op`, e.g. `"add veth"`) and what it was
//! applied to (`target`, e.g. `link "hv1" peer "hv2"`). Kernel refusals keep
//! the kernel's errno and, when the kernel sent one, its extended-ack message
//! ("Unknown device type", ...). The errno values callers branch on get their
//! own variants: [`Error::NotFound`], [`Error::AlreadyExists`] and
//! [`Error::AddressInUse`].

use nix::errno::Errno;

/// Result with this crate's [`Error`].
pub type Result<T, E = Error> = std::result::Result<T, E>;

/// What went wrong, with the operation and its target.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum Error {
    /// The link, address, route or namespace does not exist (ENODEV, ENOENT,
    /// ESRCH, EADDRNOTAVAIL, ENXIO from the kernel).
    #[error("{op} {target}: not found ({errno}){}", ext(.message))]
    NotFound {
        op: &'static str,
        target: String,
        errno: Errno,
        message: Option<String>,
    },
    /// It exists already (EEXIST).
    #[error("{op} {target}: already exists{}", ext(.message))]
    AlreadyExists {
        op: &'static str,
        target: String,
        message: Option<String>,
    },
    /// The address is in use (EADDRINUSE), e.g. a MAC another macvlan of the
    /// same parent already has.
    #[error("{op} {target}: address in use{}", ext(.message))]
    AddressInUse {
        op: &'static str,
        target: String,
        message: Option<String>,
    },
    /// Any other refusal by the kernel, with its errno.
    #[error("{op} {target}: {errno}{}", ext(.message))]
    Kernel {
        op: &'static str,
        target: String,
        errno: Errno,
        message: Option<String>,
    },
    /// A failed I/O call (files under /run/netns or /proc, sockets).
    #[error("{op} {target}: {source}")]
    Io {
        op: &'static str,
        target: String,
        #[source]
        source: std::io::Error,
    },
    /// The kernel's answer could not be decoded.
    #[error("{op} {target}: cannot decode the kernel's answer: {message}")]
    Decode {
        op: &'static str,
        target: String,
        message: String,
    },
    /// A bad argument, refused before anything was asked of the kernel.
    #[error("invalid {what} {value:?}: {reason}")]
    Invalid {
        what: &'static str,
        value: String,
        reason: &'static str,
    },
}

fn ext(message: &Option<String>) -> String {
    match message {
        Some(m) if !m.is_empty() => format!(": {m}"),
        _ => String::new(),
    }
}

impl Error {
    /// Maps an errno from the kernel (netlink ACK or syscall) to a variant.
    pub(crate) fn from_errno(
        op: &'static str,
        target: impl Into<String>,
        errno: Errno,
        message: Option<String>,
    ) -> Self {
        let target = target.into();
        match errno {
            Errno::ENODEV | Errno::ENOENT | Errno::ESRCH | Errno::EADDRNOTAVAIL | Errno::ENXIO => {
                Error::NotFound {
                    op,
                    target,
                    errno,
                    message,
                }
            }
            Errno::EEXIST => Error::AlreadyExists {
                op,
                target,
                message,
            },
            Errno::EADDRINUSE => Error::AddressInUse {
                op,
                target,
                message,
            },
            _ => Error::Kernel {
                op,
                target,
                errno,
                message,
            },
        }
    }

    /// Wraps an I/O error; an errno the kernel gave is mapped like a netlink
    /// refusal so that e.g. a missing file is [`Error::NotFound`].
    pub(crate) fn io(op: &'static str, target: impl Into<String>, source: std::io::Error) -> Self {
        match source.raw_os_error() {
            Some(code) if matches!(Errno::from_raw(code), Errno::ENOENT | Errno::EEXIST) => {
                Error::from_errno(op, target, Errno::from_raw(code), None)
            }
            _ => Error::Io {
                op,
                target: target.into(),
                source,
            },
        }
    }

    /// True for [`Error::NotFound`].
    pub fn is_not_found(&self) -> bool {
        matches!(self, Error::NotFound { .. })
    }

    /// True for [`Error::AlreadyExists`].
    pub fn is_already_exists(&self) -> bool {
        matches!(self, Error::AlreadyExists { .. })
    }

    /// The kernel's errno behind this error, when there is one.
    pub fn errno(&self) -> Option<Errno> {
        match self {
            Error::NotFound { errno, .. } | Error::Kernel { errno, .. } => Some(*errno),
            Error::AlreadyExists { .. } => Some(Errno::EEXIST),
            Error::AddressInUse { .. } => Some(Errno::EADDRINUSE),
            Error::Io { source, .. } => source.raw_os_error().map(Errno::from_raw),
            Error::Decode { .. } | Error::Invalid { .. } => None,
        }
    }
}
