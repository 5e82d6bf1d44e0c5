//! Messages on quinn streams, framed by [`herd_wire::frame`]:
//! `[u32 big-endian length][postcard body]` per message.
//!
//! A request/response exchange uses one bidirectional stream: the client
//! sends one request frame and finishes its side, the server answers with
//! one or more frames and finishes (see [`call`] and [`respond`]). Streaming
//! replies (log follow) are several frames on the same stream, read with
//! [`recv_msg`] until it returns `None`.
//!
//! Every length header is checked against the caller's limit before the
//! body buffer is allocated or read.
//!
//! A process that serves strangers (the agent) bounds its writes with
//! [`set_write_timeout`]: a peer that keeps its flow-control window full
//! (stops reading) for that long gets the stream reset, which frees the
//! data buffered for it, and the writer gets [`Error::Stalled`].

use std::sync::atomic::{AtomicU64, Ordering};
use std::time::Duration;

use serde::de::DeserializeOwned;
use serde::Serialize;

use herd_wire::frame::{self, HEADER_LEN, MAX_FRAME};
use quinn::{Connection, ReadExactError, RecvStream, SendStream};

use crate::error::{Error, Peer, Result};

/// Milliseconds a write may wait for the peer to take data; 0: no bound.
static WRITE_TIMEOUT_MS: AtomicU64 = AtomicU64::new(0);

/// Bound every write of [`send_msg`] and [`write_all`] in this process: when
/// the peer takes no byte for `timeout` (`None`: wait forever, the default)
/// the stream is reset and the write fails with [`Error::Stalled`].
pub fn set_write_timeout(timeout: Option<Duration>) {
    let ms = timeout.map_or(0, |d| {
        u64::try_from(d.as_millis()).unwrap_or(u64::MAX).max(1)
    });
    WRITE_TIMEOUT_MS.store(ms, Ordering::Relaxed);
}

/// The bound set by [`set_write_timeout`].
pub fn write_timeout() -> Option<Duration> {
    match WRITE_TIMEOUT_MS.load(Ordering::Relaxed) {
        0 => None,
        ms => Some(Duration::from_millis(ms)),
    }
}

/// Write all of `bytes` to `send`, within the write timeout per step of
/// progress (a slow peer that keeps taking data is fine).
pub async fn write_all(send: &mut SendStream, bytes: &[u8]) -> Result<()> {
    let Some(limit) = write_timeout() else {
        return send.write_all(bytes).await.map_err(write_err);
    };
    let mut rest = bytes;
    while !rest.is_empty() {
        match tokio::time::timeout(limit, send.write(rest)).await {
            Ok(Ok(n)) => rest = &rest[n..],
            Ok(Err(e)) => return Err(write_err(e)),
            Err(_) => {
                // Drops what is buffered for this stream: the peer cannot
                // make us hold it.
                let _ = send.reset(0u32.into());
                return Err(Error::Stalled {
                    peer: Peer::default(),
                    after: limit,
                });
            }
        }
    }
    Ok(())
}

fn write_err(source: quinn::WriteError) -> Error {
    match source {
        quinn::WriteError::ConnectionLost(source) => Error::Lost {
            peer: Peer::default(),
            source,
        },
        source => Error::Write {
            peer: Peer::default(),
            source,
        },
    }
}

/// Encode `msg` as one frame and write it to `send` (see [`write_all`]).
pub async fn send_msg<T: Serialize>(send: &mut SendStream, msg: &T) -> Result<()> {
    let bytes = frame::encode(msg).map_err(|source| Error::Frame {
        peer: Peer::default(),
        source,
    })?;
    write_all(send, &bytes).await
}

/// Send `msg` as the last frame on `send` and finish the stream.
pub async fn respond<T: Serialize>(send: &mut SendStream, msg: &T) -> Result<()> {
    send_msg(send, msg).await?;
    finish(send)
}

fn finish(send: &mut SendStream) -> Result<()> {
    send.finish().map_err(|_| Error::Write {
        peer: Peer::default(),
        source: quinn::WriteError::ClosedStream,
    })
}

/// Read one frame from `recv` and decode it.
///
/// Returns `Ok(None)` when the stream ends cleanly before a new frame.
/// A header announcing more than `max` bytes is refused with a
/// [`herd_wire::frame::FrameError::TooLarge`] (see [`Error::is_too_large`])
/// before anything is allocated; a stream ending inside a frame gives
/// [`Error::Truncated`].
pub async fn recv_msg<T: DeserializeOwned>(recv: &mut RecvStream, max: usize) -> Result<Option<T>> {
    let mut header = [0u8; HEADER_LEN];
    match recv.read_exact(&mut header).await {
        Ok(()) => {}
        Err(ReadExactError::FinishedEarly(0)) => return Ok(None),
        Err(e) => return Err(read_err(e, HEADER_LEN)),
    }
    let len = frame::body_len(header, max).map_err(|source| Error::Frame {
        peer: Peer::default(),
        source,
    })?;
    let mut body = vec![0u8; len];
    recv.read_exact(&mut body)
        .await
        .map_err(|e| read_err(e, len))?;
    frame::decode(&body)
        .map(Some)
        .map_err(|source| Error::Frame {
            peer: Peer::default(),
            source,
        })
}

fn read_err(e: ReadExactError, expected: usize) -> Error {
    match e {
        ReadExactError::FinishedEarly(got) => Error::Truncated {
            peer: Peer::default(),
            got,
            expected,
        },
        ReadExactError::ReadError(quinn::ReadError::ConnectionLost(source)) => Error::Lost {
            peer: Peer::default(),
            source,
        },
        ReadExactError::ReadError(source) => Error::Read {
            peer: Peer::default(),
            source,
        },
    }
}

/// One request, one response: open a bidirectional stream, send `req`,
/// finish, and read one response of at most [`MAX_FRAME`] bytes.
pub async fn call<Req: Serialize, Resp: DeserializeOwned>(
    conn: &Connection,
    req: &Req,
) -> Result<Resp> {
    call_with_limit(conn, req, MAX_FRAME).await
}

/// [`call`] with a response size limit.
pub async fn call_with_limit<Req: Serialize, Resp: DeserializeOwned>(
    conn: &Connection,
    req: &Req,
    max: usize,
) -> Result<Resp> {
    let addr = remote_addr(conn);
    let (mut send, mut recv) = conn
        .open_bi()
        .await
        .map_err(|source| Error::Connection { addr, source })?;
    let exchange = async {
        send_msg(&mut send, req).await?;
        finish(&mut send)?;
        recv_msg(&mut recv, max).await?.ok_or(Error::NoResponse {
            peer: Peer::default(),
        })
    };
    exchange.await.map_err(|e| e.with_peer(addr))
}

/// The peer address of `conn`, with IPv4-mapped IPv6 addresses (as seen by a
/// dual-stack endpoint) shown as plain IPv4.
pub fn remote_addr(conn: &Connection) -> std::net::SocketAddr {
    let addr = conn.remote_address();
    std::net::SocketAddr::new(addr.ip().to_canonical(), addr.port())
}
