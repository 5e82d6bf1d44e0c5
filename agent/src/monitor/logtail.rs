//! Following one container's log file: the file stays open, each poll is a
//! pread from the last offset (one syscall when nothing was written), and
//! the workload's `ops=<n> ... t=<s>` lines become `ops_per_second`.

use std::fs::File;
use std::os::unix::fs::FileExt;
use std::path::Path;

use herd_wire::LogLine;

use crate::logs::parse_line;

pub struct LogTail {
    file: File,
    pos: u64,
    partial: Vec<u8>,
    /// `t=` of the last ops line (seconds since the workload started).
    last_t: Option<f64>,
    /// Rate of the last ops line, and when it was logged (ns).
    rate: Option<(f64, u64)>,
    /// `total=` of the last ops line: the workload's own running count.
    pub total: Option<u64>,
}

impl LogTail {
    pub fn open(path: &Path) -> Option<LogTail> {
        Some(LogTail {
            file: super::pfile::open_high(path).ok()?,
            pos: 0,
            partial: Vec::new(),
            last_t: None,
            rate: None,
            total: None,
        })
    }

    /// Whether `path` is the file this tail follows (same device and inode).
    pub fn is_file(&self, path: &Path) -> bool {
        use std::os::unix::fs::MetadataExt;
        match (self.file.metadata(), std::fs::metadata(path)) {
            (Ok(a), Ok(b)) => a.dev() == b.dev() && a.ino() == b.ino(),
            _ => false,
        }
    }

    /// Complete lines appended since the last poll (all of them when `keep`,
    /// else none: the ops lines are parsed either way).
    pub fn poll(&mut self, keep: bool, buf: &mut Vec<u8>) -> Vec<LogLine> {
        let mut out = Vec::new();
        if buf.len() < 64 << 10 {
            buf.resize(64 << 10, 0); // kept: no clearing at every poll
        }
        loop {
            let n = match self.file.read_at(buf, self.pos) {
                Ok(0) | Err(_) => break,
                Ok(n) => n,
            };
            self.pos += n as u64;
            self.partial.extend_from_slice(&buf[..n]);
        }
        let mut start = 0;
        while let Some(i) = self.partial[start..].iter().position(|b| *b == b'\n') {
            let line = String::from_utf8_lossy(&self.partial[start..start + i]);
            if let Some(l) = parse_line(&line) {
                self.ops_line(&l);
                if keep {
                    out.push(l);
                }
            }
            start += i + 1;
        }
        self.partial.drain(..start);
        out
    }

    fn ops_line(&mut self, l: &LogLine) {
        let Some((ops, t)) = parse_ops(&l.line) else {
            return;
        };
        if let Some(n) = l
            .line
            .split_whitespace()
            .find_map(|f| f.strip_prefix("total=")?.parse().ok())
        {
            self.total = Some(n);
        }
        let dt = match self.last_t {
            Some(p) if t > p => t - p,
            // First line seen (or the workload restarted): t is its interval.
            _ => t,
        };
        self.last_t = Some(t);
        if dt > 0.0 {
            self.rate = Some((ops as f64 / dt, l.time_ns));
        }
    }

    /// The workload's latest ops/s; 0 if its last ops line is older than
    /// `stale_ns` at `now_ns`; None if it never printed one.
    pub fn ops_per_second(&self, now_ns: u64, stale_ns: u64) -> Option<f64> {
        let (rate, at) = self.rate?;
        Some(if now_ns.saturating_sub(at) > stale_ns {
            0.0
        } else {
            rate
        })
    }
}

/// `ops=<n> total=<n> t=<s>` -> (n, s).
pub fn parse_ops(line: &str) -> Option<(u64, f64)> {
    let rest = line.strip_prefix("ops=")?;
    let mut it = rest.split_whitespace();
    let ops = it.next()?.parse().ok()?;
    let t = it.find_map(|f| f.strip_prefix("t="))?.parse().ok()?;
    Some((ops, t))
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::io::Write;

    #[test]
    fn ops_lines_become_a_rate_and_partial_lines_wait() {
        let dir = tempfile::tempdir().unwrap();
        let p = dir.path().join("log");
        std::fs::write(
            &p,
            "10 o ops=100 total=100 t=1.0\n20 o hello\n30 o ops=300 tot",
        )
        .unwrap();
        let mut t = LogTail::open(&p).unwrap();
        let mut buf = Vec::new();
        let l = t.poll(true, &mut buf);
        assert_eq!(l.len(), 2);
        assert_eq!(t.ops_per_second(10, 5), Some(100.0));
        let mut f = std::fs::OpenOptions::new().append(true).open(&p).unwrap();
        f.write_all(b"al=400 t=3.0\n").unwrap();
        let l = t.poll(false, &mut buf);
        assert!(l.is_empty());
        // 300 ops over the 2 s since the previous line.
        assert_eq!(t.ops_per_second(30, 5), Some(150.0));
        assert_eq!(t.ops_per_second(100, 5), Some(0.0), "stale");
        assert!(t.poll(true, &mut buf).is_empty());
        assert_eq!(parse_ops("count=3 pattern=ok"), None);
    }
}
