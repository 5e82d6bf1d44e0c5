//! Framing: every message travels as `[u32 big-endian length][postcard bytes]`.
//!
//! The length is checked against a limit before anything is allocated, so a
//! peer cannot make us reserve more than [`MAX_FRAME`] bytes for a frame.

use serde::{de::DeserializeOwned, Serialize};

/// Largest frame body accepted by default (16 MiB). Bulk data (images,
/// layers, logs) travels in chunks well below this.
pub const MAX_FRAME: usize = 16 << 20;

/// Size of the length prefix.
pub const HEADER_LEN: usize = 4;

#[derive(Debug, thiserror::Error)]
pub enum FrameError {
    #[error("frame of {len} bytes exceeds the limit of {max} bytes")]
    TooLarge { len: usize, max: usize },
    #[error("cannot encode message: {0}")]
    Encode(postcard::Error),
    #[error("cannot decode message: {0}")]
    Decode(postcard::Error),
}

/// Encode `msg` as one frame (header included).
pub fn encode<T: Serialize>(msg: &T) -> Result<Vec<u8>, FrameError> {
    let mut out = vec![0u8; HEADER_LEN];
    let out = postcard::to_extend(msg, std::mem::take(&mut out)).map_err(FrameError::Encode)?;
    let len = out.len() - HEADER_LEN;
    if len > MAX_FRAME {
        return Err(FrameError::TooLarge {
            len,
            max: MAX_FRAME,
        });
    }
    let mut out = out;
    out[..HEADER_LEN].copy_from_slice(&(len as u32).to_be_bytes());
    Ok(out)
}

/// Read the body length from a header, refusing lengths above `max`.
pub fn body_len(header: [u8; HEADER_LEN], max: usize) -> Result<usize, FrameError> {
    let len = u32::from_be_bytes(header) as usize;
    if len > max {
        return Err(FrameError::TooLarge { len, max });
    }
    Ok(len)
}

/// Decode a frame body (without its header).
pub fn decode<T: DeserializeOwned>(body: &[u8]) -> Result<T, FrameError> {
    postcard::from_bytes(body).map_err(FrameError::Decode)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn round_trip() {
        let msg = (42u32, String::from("hello"), vec![1u8, 2, 3]);
        let frame = encode(&msg).unwrap();
        let len = body_len(frame[..4].try_into().unwrap(), MAX_FRAME).unwrap();
        assert_eq!(len, frame.len() - 4);
        let back: (u32, String, Vec<u8>) = decode(&frame[4..]).unwrap();
        assert_eq!(back, msg);
    }

    #[test]
    fn oversized_header_is_refused_before_allocation() {
        let err = body_len((u32::MAX).to_be_bytes(), MAX_FRAME).unwrap_err();
        assert!(matches!(err, FrameError::TooLarge { .. }), "{err}");
    }

    #[test]
    fn garbage_body_is_an_error() {
        let r: Result<(u64, String), _> = decode(&[0xff, 0xff, 0xff]);
        assert!(r.is_err());
    }
}
