//! Errors of this crate.
//!
//! Every error that comes from a CRIU run carries what CRIU itself said:
//! `cr_errmsg`/`cr_errno` from its final response when there is one, and the
//! last lines of its log file (or of its stderr when it had no log file).

use std::fmt;
use std::io;
use std::path::PathBuf;

/// A boxed error from a caller's notify handler.
pub type BoxError = Box<dyn std::error::Error + Send + Sync + 'static>;

/// Result of this crate.
pub type Result<T, E = Error> = std::result::Result<T, E>;

/// The last lines of a CRIU log, shown under an error message.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct LogTail {
    /// Where the lines come from (a log file path, or `stderr`).
    pub source: String,
    /// The lines, oldest first.
    pub lines: Vec<String>,
}

impl LogTail {
    /// True when there is nothing to show.
    pub fn is_empty(&self) -> bool {
        self.lines.is_empty()
    }
}

impl fmt::Display for LogTail {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        if self.lines.is_empty() {
            return Ok(());
        }
        write!(f, "\n  last lines of {}:", self.source)?;
        for l in &self.lines {
            write!(f, "\n    {l}")?;
        }
        Ok(())
    }
}

/// Everything that can go wrong talking to CRIU.
#[derive(Debug, thiserror::Error)]
pub enum Error {
    /// The `criu swrk` process could not be started.
    #[error("cannot start CRIU `{bin}`: {source}")]
    Spawn {
        /// The CRIU binary.
        bin: PathBuf,
        /// Why.
        source: io::Error,
    },

    /// A local I/O step (socketpair, opening a directory, sending) failed.
    #[error("CRIU {op}: {what}: {source}")]
    Io {
        /// The request (`dump`, `restore`, ...).
        op: &'static str,
        /// What was being done.
        what: String,
        /// Why.
        source: io::Error,
    },

    /// CRIU answered `success = false`.
    #[error("CRIU {op} failed: {reason}{tail}")]
    Failed {
        /// The request (`dump`, `restore`, ...).
        op: &'static str,
        /// CRIU's `cr_errmsg`, with `cr_errno` described, or a note that it gave none.
        reason: String,
        /// CRIU's `cr_errno`, when it set one.
        errno: Option<i32>,
        /// The last lines of CRIU's log.
        tail: LogTail,
    },

    /// CRIU closed the socket or exited before its final response.
    #[error("CRIU {op} ended without a final response ({status}){tail}")]
    NoResponse {
        /// The request.
        op: &'static str,
        /// How the `criu swrk` process ended.
        status: String,
        /// The last lines of CRIU's log.
        tail: LogTail,
    },

    /// CRIU sent something this client does not understand.
    #[error("CRIU {op}: protocol error: {detail}{tail}")]
    Protocol {
        /// The request.
        op: &'static str,
        /// What was wrong.
        detail: String,
        /// The last lines of CRIU's log.
        tail: LogTail,
    },

    /// The caller's notify handler failed; CRIU was told so and aborted.
    #[error("CRIU {op} aborted: the `{script}` notify handler failed: {source}{tail}")]
    Notify {
        /// The request.
        op: &'static str,
        /// The notification being handled (`post-dump`, ...).
        script: String,
        /// The handler's own error (downcast it to get your type back).
        source: BoxError,
        /// The last lines of CRIU's log.
        tail: LogTail,
    },

    /// The operation cannot work on this kernel or CRIU.
    #[error("CRIU {op} is not supported here: {reason}")]
    Unsupported {
        /// The request.
        op: &'static str,
        /// Why (which feature is missing).
        reason: String,
    },

    /// The options cannot be sent as given.
    #[error("invalid CRIU option: {0}")]
    InvalidOption(String),

    /// A `stats-dump` / `stats-restore` file is missing or corrupt.
    #[error("CRIU stats file {path}: {reason}")]
    Stats {
        /// The file.
        path: PathBuf,
        /// What is wrong with it.
        reason: String,
    },

    /// The lazy-pages daemon did not start.
    #[error("CRIU lazy-pages daemon: {reason}{tail}")]
    LazyPages {
        /// Why.
        reason: String,
        /// The last lines of its log.
        tail: LogTail,
    },
}

impl Error {
    /// CRIU's errno, when the error came from a CRIU response that had one.
    pub fn criu_errno(&self) -> Option<i32> {
        match self {
            Error::Failed { errno, .. } => *errno,
            _ => None,
        }
    }

    /// The log tail attached to this error, if any.
    pub fn log_tail(&self) -> Option<&LogTail> {
        match self {
            Error::Failed { tail, .. }
            | Error::NoResponse { tail, .. }
            | Error::Protocol { tail, .. }
            | Error::Notify { tail, .. }
            | Error::LazyPages { tail, .. } => Some(tail),
            _ => None,
        }
    }
}
