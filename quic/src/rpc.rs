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

use serde::de::DeserializeOwned;
use serde::Serialize;

use herd_wire::frame::{self, HEADER_LEN, MAX_FRAME};
use quinn::{Connection, ReadExactError, RecvStream, SendStream};

use crate::error::{Error, Peer, Result};

/// Encode `msg` as one frame and write it to `send`.
pub async fn send_msg<T: Serialize>(send: &mut SendStream, msg: &T) -> Result<()> {
    let bytes = frame::encode(msg).map_err(|source| Error::Frame {
        peer: Peer::default(),
        source,
    })?;
    send.write_all(&bytes).await.map_err(|source| match source {
        quinn::WriteError::ConnectionLost(source) => Error::Lost {
            peer: Peer::default(),
            source,
        },
        source => Error::Write {
            peer: Peer::default(),
            source,
        },
    })
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
