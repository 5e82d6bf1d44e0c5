//! The crate's error type. Every variant names the file or peer it concerns.

use std::net::SocketAddr;
use std::path::PathBuf;
use std::time::Duration;

use herd_wire::frame::FrameError;

/// Result alias used throughout the crate.
pub type Result<T, E = Error> = std::result::Result<T, E>;

/// Errors of PKI handling, endpoint setup, connections and message exchange.
#[derive(Debug, thiserror::Error)]
pub enum Error {
    /// A file needed for TLS does not exist.
    #[error("{what} file {path} does not exist")]
    Missing { what: &'static str, path: PathBuf },

    /// Reading, writing or creating a file or directory failed.
    #[error("cannot {action} {path}: {source}")]
    Io {
        action: &'static str,
        path: PathBuf,
        #[source]
        source: std::io::Error,
    },

    /// A file does not contain the expected PEM section.
    #[error("{path} is not a PEM {what}: {reason}")]
    NotPem {
        what: &'static str,
        path: PathBuf,
        reason: String,
    },

    /// `init_ca` found an existing CA and was not told to replace it.
    #[error("a CA already exists at {path}; pass force to replace it (every issued certificate becomes invalid)")]
    CaExists { path: PathBuf },

    /// A certificate or endpoint name is not acceptable.
    #[error("invalid name {name:?}: {reason}")]
    InvalidName { name: String, reason: &'static str },

    /// Generating, signing or parsing a certificate failed.
    #[cfg(feature = "issue")]
    #[error("certificate error ({context}): {source}")]
    Cert {
        context: String,
        #[source]
        source: rcgen::Error,
    },

    /// A certificate could not be parsed as X.509.
    #[error("cannot parse certificate {path}: {reason}")]
    BadCert { path: PathBuf, reason: String },

    /// Building the rustls configuration failed (bad key, key/cert mismatch...).
    #[error("TLS configuration ({context}): {reason}")]
    Tls { context: String, reason: String },

    /// Binding the UDP socket of an endpoint failed.
    #[error("cannot bind QUIC endpoint on {addr}: {source}")]
    Bind {
        addr: SocketAddr,
        #[source]
        source: std::io::Error,
    },

    /// Starting a connection failed before any packet was sent.
    #[error("cannot connect to {addr} as {server_name:?}: {source}")]
    Connect {
        addr: SocketAddr,
        server_name: String,
        #[source]
        source: quinn::ConnectError,
    },

    /// The handshake failed or the connection was lost.
    #[error("connection with {addr} failed: {source}")]
    Connection {
        addr: SocketAddr,
        #[source]
        source: quinn::ConnectionError,
    },

    /// No handshake completed within the timeout.
    #[error("no answer from {addr} within {after:?} (agent down or unreachable?)")]
    ConnectTimeout { addr: SocketAddr, after: Duration },

    /// A frame could not be encoded or decoded, or its length exceeds the limit.
    #[error("frame exchanged with {peer}: {source}")]
    Frame {
        peer: Peer,
        #[source]
        source: FrameError,
    },

    /// Writing to a stream failed.
    #[error("cannot write to {peer}: {source}")]
    Write {
        peer: Peer,
        #[source]
        source: quinn::WriteError,
    },

    /// Reading from a stream failed.
    #[error("cannot read from {peer}: {source}")]
    Read {
        peer: Peer,
        #[source]
        source: quinn::ReadError,
    },

    /// The connection broke while reading or writing a stream (this is also
    /// how a client learns that the server refused its certificate: in TLS
    /// 1.3 the server checks it after the client considers the handshake done).
    #[error("connection with {peer} lost: {source}")]
    Lost {
        peer: Peer,
        #[source]
        source: quinn::ConnectionError,
    },

    /// The stream ended in the middle of a frame.
    #[error("stream from {peer} ended inside a frame ({got} of {expected} bytes)")]
    Truncated {
        peer: Peer,
        got: usize,
        expected: usize,
    },

    /// The peer closed the stream without answering a request.
    #[error("{peer} closed the stream without a response")]
    NoResponse { peer: Peer },

    /// The peer took no data for the write timeout; the stream was reset.
    #[error("{peer} stopped reading: no data taken for {after:?}, stream reset")]
    Stalled { peer: Peer, after: Duration },
}

/// The remote end of a stream, when known.
///
/// quinn streams do not know their connection, so [`crate::rpc::send_msg`]
/// and [`crate::rpc::recv_msg`] report an unknown peer; callers holding the
/// connection fill it in with [`Error::with_peer`] ([`crate::rpc::call`] does).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub struct Peer(pub Option<SocketAddr>);

impl std::fmt::Display for Peer {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self.0 {
            Some(addr) => write!(f, "{addr}"),
            None => f.write_str("peer"),
        }
    }
}

impl Error {
    /// Record the peer address in a stream-level error that lacks it.
    pub fn with_peer(mut self, addr: SocketAddr) -> Self {
        match &mut self {
            Error::Frame { peer, .. }
            | Error::Write { peer, .. }
            | Error::Read { peer, .. }
            | Error::Truncated { peer, .. }
            | Error::Lost { peer, .. }
            | Error::NoResponse { peer }
            | Error::Stalled { peer, .. }
                if peer.0.is_none() =>
            {
                peer.0 = Some(addr);
            }
            _ => {}
        }
        self
    }

    /// True when the peer stopped reading (see [`crate::rpc::set_write_timeout`]).
    pub fn is_stalled(&self) -> bool {
        matches!(self, Error::Stalled { .. })
    }

    /// True when this is a frame whose header announced more than the limit.
    pub fn is_too_large(&self) -> bool {
        matches!(
            self,
            Error::Frame {
                source: FrameError::TooLarge { .. },
                ..
            }
        )
    }
}
