//! QUIC transport for Herd: endpoints with mutual TLS under a cluster CA, and
//! request/response streams carrying [`herd_wire::frame`] frames.
//!
//! * [`pki`] creates the cluster CA and issues node and user certificates
//!   (the files behind `herd ca init` / `herd ca issue`; feature `issue`,
//!   off in the agent), and loads them back.
//! * [`endpoint`] builds quinn server and client endpoints. Both sides must
//!   present a certificate signed by the cluster CA; a peer without one is
//!   refused during the handshake. [`endpoint::peer_identity`] tells the
//!   server who the client is (name and [`pki::Role`]) for authorisation.
//! * [`rpc`] sends and receives length-prefixed postcard messages on quinn
//!   streams, checking every length against a limit before allocating.
//!
//! Everything returns [`Error`], whose messages carry the file path or peer
//! address concerned.

pub mod endpoint;
pub mod pki;
pub mod rpc;

mod error;

pub use endpoint::{client, client_for, connect, connect_timeout, peer_identity, server};
pub use error::{Error, Peer, Result};
#[cfg(feature = "issue")]
pub use pki::{init_ca, issue};
pub use pki::{CaPaths, CertPaths, Identity, Role, TlsFiles};
pub use rpc::{call, call_with_limit, recv_msg, respond, send_msg};

/// ALPN protocol identifier spoken by Herd agents and the CLI.
pub const ALPN: &[u8] = b"herd/1";
