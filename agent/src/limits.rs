//! Bounds on what peers can make the agent do: how much an import may
//! expand to, how long a stream may stall, how many streams a peer may hold.
//! Each has an agent flag and environment variable (see `herd-agent --help`).
//!
//! | limit | flag / env | default |
//! |---|---|---|
//! | bytes an image import, a checkpoint archive or an upper layer may expand to (apparent sizes: sparse files count in full) | `--max-unpack-bytes` / `HERD_MAX_UNPACK_BYTES` | 16 GiB |
//! | entries (files, dirs, links) of the same | `--max-unpack-entries` / `HERD_MAX_UNPACK_ENTRIES` | 1 000 000 |
//! | bytes one incoming migration stream may carry (all files, decompressed) | `--max-migration-bytes` / `HERD_MAX_MIGRATION_BYTES` | 64 GiB |
//! | time for a request frame to arrive once its stream is open | `--request-timeout-s` / `HERD_REQUEST_TIMEOUT_S` | 30 s |
//! | time without a frame on an incoming migration stream (nor a page byte on its page stream), and time any stream's peer may take none of what the agent writes (replies, log follow, subscriptions, progress) | `--stream-idle-timeout-s` / `HERD_STREAM_IDLE_TIMEOUT_S` | 120 s |
//! | concurrent streams of one peer (by certificate), all its connections together | `--max-streams-per-peer` / `HERD_MAX_STREAMS_PER_PEER` | 256 |
//!
//! A stream over a bound is answered with a clear error naming the limit
//! (or reset, for a stalled one) and everything it staged is removed.

use std::time::Duration;

/// See the module docs.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Limits {
    pub unpack: herd_overlay::Limits,
    pub migration_bytes: u64,
    pub request_timeout: Duration,
    pub stream_idle: Duration,
    pub streams_per_peer: usize,
}

impl Limits {
    pub const DEFAULT_MIGRATION_BYTES: u64 = 64 << 30;
    pub const DEFAULT_REQUEST_TIMEOUT: Duration = Duration::from_secs(30);
    pub const DEFAULT_STREAM_IDLE: Duration = Duration::from_secs(120);
    pub const DEFAULT_STREAMS_PER_PEER: usize = 256;
}

impl Default for Limits {
    fn default() -> Self {
        Limits {
            unpack: herd_overlay::Limits::default(),
            migration_bytes: Self::DEFAULT_MIGRATION_BYTES,
            request_timeout: Self::DEFAULT_REQUEST_TIMEOUT,
            stream_idle: Self::DEFAULT_STREAM_IDLE,
            streams_per_peer: Self::DEFAULT_STREAMS_PER_PEER,
        }
    }
}
