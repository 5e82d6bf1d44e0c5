//! CRIU's `stats-dump` and `stats-restore` files.
//!
//! CRIU writes them into the images directory at the end of a dump and a
//! restore. Format (CRIU's image format for "service" files): a `u32`
//! `IMG_SERVICE_MAGIC` (0x55105940), a `u32` `STATS_MAGIC` (0x57093306),
//! then one entry: a `u32` little-endian size and that many bytes of a
//! protobuf `stats_entry` (images/stats.proto):
//!
//! ```text
//! message stats_entry { optional dump_stats_entry dump = 1; optional restore_stats_entry restore = 2; }
//! dump_stats_entry:    1 freezing_time, 2 frozen_time, 3 memdump_time, 4 memwrite_time (u32, µs),
//!                      5 pages_scanned, 6 pages_skipped_parent, 7 pages_written, 8 irmap_resolve,
//!                      9 pages_lazy, 10 page_pipes, 11 page_pipe_bufs,
//!                      12 shpages_scanned, 13 shpages_skipped_parent, 14 shpages_written
//! restore_stats_entry: 1 pages_compared, 2 pages_skipped_cow, 3 forking_time, 4 restore_time (µs),
//!                      5 pages_restored
//! ```
//!
//! rust-criu has no types for stats.proto, so the entry is decoded here
//! with the protobuf runtime's `CodedInputStream`.

use std::path::{Path, PathBuf};
use std::time::Duration;

use protobuf::rt::WireType;
use protobuf::CodedInputStream;

use crate::error::{Error, Result};

const IMG_SERVICE_MAGIC: u32 = 0x5510_5940;
const STATS_MAGIC: u32 = 0x5709_3306;

/// What `stats-dump` says. Times are in microseconds, as CRIU writes them.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct DumpStats {
    /// Time to freeze the tree (µs).
    pub freezing_time_us: u32,
    /// Time the tree stayed frozen (µs): the dump's downtime.
    pub frozen_time_us: u32,
    /// Time to collect memory (µs).
    pub memdump_time_us: u32,
    /// Time to write memory out (µs).
    pub memwrite_time_us: u32,
    /// Pages scanned.
    pub pages_scanned: u64,
    /// Pages not written because the parent images had them.
    pub pages_skipped_parent: u64,
    /// Pages written.
    pub pages_written: u64,
    /// Pages left for lazy (post-copy) transfer.
    pub pages_lazy: u64,
    /// Time to resolve inotify paths (µs), when CRIU recorded it.
    pub irmap_resolve_us: Option<u32>,
    /// Page pipes used.
    pub page_pipes: Option<u64>,
    /// Page pipe buffers used.
    pub page_pipe_bufs: Option<u64>,
    /// Shared memory pages scanned.
    pub shpages_scanned: Option<u64>,
    /// Shared memory pages skipped thanks to the parent.
    pub shpages_skipped_parent: Option<u64>,
    /// Shared memory pages written.
    pub shpages_written: Option<u64>,
}

impl DumpStats {
    /// Frozen time as a [`Duration`].
    pub fn frozen_time(&self) -> Duration {
        Duration::from_micros(u64::from(self.frozen_time_us))
    }

    /// Freezing time as a [`Duration`].
    pub fn freezing_time(&self) -> Duration {
        Duration::from_micros(u64::from(self.freezing_time_us))
    }
}

/// What `stats-restore` says. Times are in microseconds.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct RestoreStats {
    /// Pages compared (deduplication).
    pub pages_compared: u64,
    /// Pages skipped as copy-on-write shared.
    pub pages_skipped_cow: u64,
    /// Time to fork the tree (µs).
    pub forking_time_us: u32,
    /// Time of the whole restore (µs).
    pub restore_time_us: u32,
    /// Pages restored, when CRIU recorded it.
    pub pages_restored: Option<u64>,
}

impl RestoreStats {
    /// Restore time as a [`Duration`].
    pub fn restore_time(&self) -> Duration {
        Duration::from_micros(u64::from(self.restore_time_us))
    }
}

/// Reads `<images_dir>/stats-dump`.
pub fn read_dump_stats(images_dir: impl AsRef<Path>) -> Result<DumpStats> {
    let path = images_dir.as_ref().join("stats-dump");
    let body = read_entry(&path)?;
    let sub = submessage(&path, &body, 1)?
        .ok_or_else(|| stats_err(&path, "the entry has no dump statistics"))?;
    decode_dump(&path, &sub)
}

/// Reads `<images_dir>/stats-restore`.
pub fn read_restore_stats(images_dir: impl AsRef<Path>) -> Result<RestoreStats> {
    let path = images_dir.as_ref().join("stats-restore");
    let body = read_entry(&path)?;
    let sub = submessage(&path, &body, 2)?
        .ok_or_else(|| stats_err(&path, "the entry has no restore statistics"))?;
    decode_restore(&path, &sub)
}

fn stats_err(path: &Path, reason: impl Into<String>) -> Error {
    Error::Stats {
        path: PathBuf::from(path),
        reason: reason.into(),
    }
}

/// The protobuf bytes of the file's single entry, magics checked.
fn read_entry(path: &Path) -> Result<Vec<u8>> {
    let data = std::fs::read(path).map_err(|e| stats_err(path, format!("cannot read: {e}")))?;
    let word = |at: usize| -> Option<u32> {
        let b = data.get(at..at + 4)?;
        Some(u32::from_le_bytes([b[0], b[1], b[2], b[3]]))
    };
    let (Some(m0), Some(m1), Some(size)) = (word(0), word(4), word(8)) else {
        return Err(stats_err(
            path,
            format!("truncated: {} bytes, need at least 12", data.len()),
        ));
    };
    if m0 != IMG_SERVICE_MAGIC {
        return Err(stats_err(
            path,
            format!("bad image magic {m0:#010x}, want {IMG_SERVICE_MAGIC:#010x}"),
        ));
    }
    if m1 != STATS_MAGIC {
        return Err(stats_err(
            path,
            format!("bad stats magic {m1:#010x}, want {STATS_MAGIC:#010x}"),
        ));
    }
    let size = size as usize;
    let body = data
        .get(12..12 + size)
        .ok_or_else(|| stats_err(path, format!("entry of {size} bytes is truncated")))?;
    Ok(body.to_vec())
}

/// Calls `f(field_number, value)` for each varint field; fails on anything
/// malformed. Length-delimited fields are handed over as bytes via `g`.
fn walk(
    path: &Path,
    bytes: &[u8],
    mut on_varint: impl FnMut(u32, u64),
    mut on_bytes: impl FnMut(u32, Vec<u8>),
) -> Result<()> {
    let corrupt = |e: protobuf::Error| stats_err(path, format!("corrupt protobuf: {e}"));
    let mut is = CodedInputStream::from_bytes(bytes);
    while let Some(tag) = is.read_raw_tag_or_eof().map_err(corrupt)? {
        let field = tag >> 3;
        let wire = WireType::new(tag & 7)
            .ok_or_else(|| stats_err(path, format!("corrupt protobuf: wire type {}", tag & 7)))?;
        match wire {
            WireType::Varint => on_varint(field, is.read_raw_varint64().map_err(corrupt)?),
            WireType::LengthDelimited => on_bytes(field, is.read_bytes().map_err(corrupt)?),
            other => is.skip_field(other).map_err(corrupt)?,
        }
    }
    Ok(())
}

fn submessage(path: &Path, body: &[u8], want: u32) -> Result<Option<Vec<u8>>> {
    let mut found = None;
    walk(
        path,
        body,
        |_, _| {},
        |f, b| {
            if f == want {
                found = Some(b);
            }
        },
    )?;
    Ok(found)
}

fn u32_of(path: &Path, name: &str, v: u64) -> Result<u32> {
    u32::try_from(v).map_err(|_| stats_err(path, format!("{name} = {v} does not fit a uint32")))
}

fn decode_dump(path: &Path, bytes: &[u8]) -> Result<DumpStats> {
    let mut fields: Vec<(u32, u64)> = Vec::new();
    walk(path, bytes, |f, v| fields.push((f, v)), |_, _| {})?;
    let mut s = DumpStats::default();
    let mut seen = [false; 16];
    for (f, v) in fields {
        if let Some(x) = seen.get_mut(f as usize) {
            *x = true;
        }
        match f {
            1 => s.freezing_time_us = u32_of(path, "freezing_time", v)?,
            2 => s.frozen_time_us = u32_of(path, "frozen_time", v)?,
            3 => s.memdump_time_us = u32_of(path, "memdump_time", v)?,
            4 => s.memwrite_time_us = u32_of(path, "memwrite_time", v)?,
            5 => s.pages_scanned = v,
            6 => s.pages_skipped_parent = v,
            7 => s.pages_written = v,
            8 => s.irmap_resolve_us = Some(u32_of(path, "irmap_resolve", v)?),
            9 => s.pages_lazy = v,
            10 => s.page_pipes = Some(v),
            11 => s.page_pipe_bufs = Some(v),
            12 => s.shpages_scanned = Some(v),
            13 => s.shpages_skipped_parent = Some(v),
            14 => s.shpages_written = Some(v),
            _ => {}
        }
    }
    for (n, name) in [
        (1, "freezing_time"),
        (2, "frozen_time"),
        (3, "memdump_time"),
        (4, "memwrite_time"),
        (5, "pages_scanned"),
        (6, "pages_skipped_parent"),
        (7, "pages_written"),
        (9, "pages_lazy"),
    ] {
        if !seen[n] {
            return Err(stats_err(path, format!("required field {name} is missing")));
        }
    }
    Ok(s)
}

fn decode_restore(path: &Path, bytes: &[u8]) -> Result<RestoreStats> {
    let mut fields: Vec<(u32, u64)> = Vec::new();
    walk(path, bytes, |f, v| fields.push((f, v)), |_, _| {})?;
    let mut s = RestoreStats::default();
    let mut seen = [false; 8];
    for (f, v) in fields {
        if let Some(x) = seen.get_mut(f as usize) {
            *x = true;
        }
        match f {
            1 => s.pages_compared = v,
            2 => s.pages_skipped_cow = v,
            3 => s.forking_time_us = u32_of(path, "forking_time", v)?,
            4 => s.restore_time_us = u32_of(path, "restore_time", v)?,
            5 => s.pages_restored = Some(v),
            _ => {}
        }
    }
    for (n, name) in [
        (1, "pages_compared"),
        (2, "pages_skipped_cow"),
        (3, "forking_time"),
        (4, "restore_time"),
    ] {
        if !seen[n] {
            return Err(stats_err(path, format!("required field {name} is missing")));
        }
    }
    Ok(s)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn varint(mut v: u64, out: &mut Vec<u8>) {
        loop {
            let b = (v & 0x7f) as u8;
            v >>= 7;
            if v == 0 {
                out.push(b);
                return;
            }
            out.push(b | 0x80);
        }
    }

    fn file(entry: &[u8]) -> Vec<u8> {
        let mut f = Vec::new();
        f.extend_from_slice(&IMG_SERVICE_MAGIC.to_le_bytes());
        f.extend_from_slice(&STATS_MAGIC.to_le_bytes());
        f.extend_from_slice(&(entry.len() as u32).to_le_bytes());
        f.extend_from_slice(entry);
        f
    }

    fn restore_entry() -> Vec<u8> {
        let mut sub = Vec::new();
        for (f, v) in [(1u64, 3u64), (2, 4), (3, 1500), (4, 300_000), (5, 77)] {
            varint(f << 3, &mut sub);
            varint(v, &mut sub);
        }
        let mut e = Vec::new();
        varint((2 << 3) | 2, &mut e);
        varint(sub.len() as u64, &mut e);
        e.extend_from_slice(&sub);
        e
    }

    fn stats_file(outer: u64, fields: &[(u64, u64)]) -> Vec<u8> {
        let mut sub = Vec::new();
        for &(f, v) in fields {
            varint(f << 3, &mut sub);
            varint(v, &mut sub);
        }
        let mut body = Vec::new();
        varint((outer << 3) | 2, &mut body);
        varint(sub.len() as u64, &mut body);
        body.extend_from_slice(&sub);
        file(&body)
    }

    // Moved here with `herd bench checkpoint`'s own decoder, which this
    // reader replaced.
    #[test]
    fn reads_frozen_and_restore_times() {
        let dir = tempfile::tempdir().expect("tempdir");
        let (dump, restore) = (
            dir.path().join("stats-dump"),
            dir.path().join("stats-restore"),
        );
        // Every field CRIU marks required (the old decoder read one field and
        // took fixtures without the others).
        let d = stats_file(
            1,
            &[
                (1, 1200),
                (2, 81_234),
                (3, 300),
                (4, 20),
                (5, 9),
                (6, 0),
                (7, 70_000),
                (9, 0),
            ],
        );
        std::fs::write(&dump, &d).expect("write");
        assert_eq!(read_dump_stats(dir.path()).unwrap().frozen_time_us, 81_234);
        std::fs::write(&restore, &d).expect("write");
        assert!(read_restore_stats(dir.path()).is_err());
        let r = stats_file(2, &[(1, 0), (2, 0), (3, 500), (4, 65_000), (5, 1)]);
        std::fs::write(&restore, &r).expect("write");
        assert_eq!(
            read_restore_stats(dir.path()).unwrap().restore_time_us,
            65_000
        );
        let mut bad = d.clone();
        bad[0] ^= 1;
        std::fs::write(&dump, &bad).expect("write");
        assert!(read_dump_stats(dir.path()).is_err());
        std::fs::write(&dump, &d[..d.len() - 1]).expect("write");
        assert!(read_dump_stats(dir.path()).is_err());
    }

    #[test]
    fn decodes_a_restore_entry() {
        let dir = tempfile::tempdir().expect("tempdir");
        std::fs::write(dir.path().join("stats-restore"), file(&restore_entry())).expect("write");
        let s = read_restore_stats(dir.path()).expect("parse");
        assert_eq!(s.forking_time_us, 1500);
        assert_eq!(s.restore_time_us, 300_000);
        assert_eq!(s.pages_restored, Some(77));
        assert_eq!(s.restore_time(), Duration::from_millis(300));
    }

    #[test]
    fn missing_and_corrupt_files_are_clear_errors() {
        let dir = tempfile::tempdir().expect("tempdir");
        let e = read_dump_stats(dir.path()).expect_err("missing");
        assert!(e.to_string().contains("stats-dump"), "{e}");
        assert!(e.to_string().contains("cannot read"), "{e}");

        std::fs::write(dir.path().join("stats-dump"), [1u8, 2, 3]).expect("write");
        let e = read_dump_stats(dir.path()).expect_err("short");
        assert!(e.to_string().contains("truncated"), "{e}");

        let mut bad = file(&restore_entry());
        bad[0] ^= 0xff;
        std::fs::write(dir.path().join("stats-dump"), &bad).expect("write");
        let e = read_dump_stats(dir.path()).expect_err("magic");
        assert!(e.to_string().contains("magic"), "{e}");

        // A restore entry is not a dump entry.
        std::fs::write(dir.path().join("stats-dump"), file(&restore_entry())).expect("write");
        let e = read_dump_stats(dir.path()).expect_err("no dump");
        assert!(e.to_string().contains("no dump statistics"), "{e}");

        // Garbage protobuf.
        std::fs::write(dir.path().join("stats-dump"), file(&[0x0a, 0x50, 0x01])).expect("write");
        let e = read_dump_stats(dir.path()).expect_err("garbage");
        assert!(e.to_string().contains("corrupt"), "{e}");
    }
}
