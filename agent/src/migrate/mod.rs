//! Live migration between agents: the source and target sides of the
//! protocol documented in [`herd_wire::migrate`] (sequence, states, rollback).
//!
//! Both sides run on the agent's async runtime and call the blocking
//! container operations (`checkpoint`, `import_staged`, `restore`, `remove`)
//! through `spawn_blocking`. Files travel as `File` / `Data` / `FileEnd`
//! frames: chunks of at most [`herd_wire::migrate::CHUNK`] bytes, optionally
//! zstd-compressed per chunk, each file checked by size and sha256 on arrival.

pub mod source;
mod target;

pub use source::migrate_out;
pub use target::migrate_in;

/// Frames of the migration stream may carry a full chunk plus framing.
pub(crate) const MAX_MIGRATE_FRAME: usize = herd_wire::migrate::CHUNK + 4096;

/// Fault injection for tests of failures that cannot be caused for real on
/// one machine (a bit flipped on the wire, a restore that fails after the
/// transfer): `HERD_FAULT=<name>` in the agent's environment.
pub(crate) fn fault(name: &str) -> bool {
    std::env::var("HERD_FAULT")
        .map(|v| v.split(',').any(|f| f == name))
        .unwrap_or(false)
}
