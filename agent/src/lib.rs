//! herd-agent: the per-host Herd agent.
//!
//! It owns the containers of one host: their lifecycle through youki's
//! libcontainer ([`container`]), their stdio and logs ([`logs`]), their
//! state on disk ([`state`]), and the QUIC endpoint clients and peers talk
//! to ([`server`]). It makes no placement decisions.

pub mod auth;
pub mod blockdev;
pub mod cgroup;
pub mod config_file;
pub mod container;
pub mod error;
pub mod exits;
pub mod export;
pub mod limits;
pub mod logs;
pub mod migrate;
pub mod monitor;
pub mod mountinfo;
pub mod net;
pub mod server;
pub mod spec;
pub mod state;

pub use container::{Agent, AgentConfig};

/// A mutex's guard, also when a thread panicked holding it (the data are
/// plain records). Here, not in `container`, so that `monitor` needs
/// nothing of `container`'s and the modules depend one way.
pub(crate) fn lock<T>(m: &std::sync::Mutex<T>) -> std::sync::MutexGuard<'_, T> {
    m.lock().unwrap_or_else(|p| p.into_inner())
}
pub use error::{AgentError, Result};
