//! [`PFile`]: a pseudo-file (/proc, cgroup files) opened once and re-read
//! with `pread(fd, buf, 0)` every tick (no open/close per sample, one
//! reusable buffer), and the small parsers both samplers use. Shared by
//! [`super::procfs`] (the host) and [`super::cgroups`] (containers).
//!
//! Kept-open descriptors are moved to numbers >= [`FD_FLOOR`]: a container's
//! init is forked from the agent and sets the container's RLIMIT_NOFILE
//! (often 1024) before its exec closes our CLOEXEC descriptors, so a
//! thousand low-numbered monitor files would make its next open fail with
//! EMFILE. Past a budget (the soft limit minus a reserve for the agent's
//! own work) files are opened at each read instead of kept.

use std::fs::File;
use std::os::fd::{AsFd, AsRawFd, BorrowedFd, FromRawFd, OwnedFd};
use std::os::unix::fs::FileExt;
use std::path::{Path, PathBuf};
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::OnceLock;

/// Lowest descriptor number of a kept-open monitor file.
pub const FD_FLOOR: i32 = 1024;
/// Descriptors left to the agent's own work.
const FD_RESERVE: u64 = 4096;

static KEPT: AtomicU64 = AtomicU64::new(0);
static BUDGET: OnceLock<u64> = OnceLock::new();

/// How many files may be kept open: raises the soft RLIMIT_NOFILE to the
/// hard limit once (as Go programs do), then leaves a reserve.
fn budget() -> u64 {
    *BUDGET.get_or_init(|| {
        let mut r = libc::rlimit {
            rlim_cur: 0,
            rlim_max: 0,
        };
        // SAFETY: plain syscalls on a local struct.
        unsafe {
            if libc::getrlimit(libc::RLIMIT_NOFILE, &mut r) != 0 {
                return 0;
            }
            if r.rlim_cur < r.rlim_max {
                let want = libc::rlimit {
                    rlim_cur: r.rlim_max.min(1 << 20),
                    rlim_max: r.rlim_max,
                };
                if libc::setrlimit(libc::RLIMIT_NOFILE, &want) == 0 {
                    r.rlim_cur = want.rlim_cur;
                }
            }
        }
        rlim_u64(r.rlim_cur).saturating_sub(FD_FLOOR as u64 + FD_RESERVE)
    })
}

/// `rlim_t` is 32 bits wide on 32-bit glibc targets (armv7) and 64 on
/// the others; RLIM_INFINITY stays "unlimited" either way.
#[allow(clippy::unnecessary_cast, clippy::useless_conversion)]
fn rlim_u64(v: libc::rlim_t) -> u64 {
    if v == libc::RLIM_INFINITY {
        u64::MAX
    } else {
        v as u64
    }
}

/// Open `path` read-only with its descriptor at or above [`FD_FLOOR`].
pub fn open_high(path: &Path) -> std::io::Result<File> {
    Ok(File::from(to_high(File::open(path)?.into())))
}

/// `fd` moved to a number at or above [`FD_FLOOR`] (CLOEXEC), or itself
/// if the limit is at or below the floor.
fn to_high(fd: OwnedFd) -> OwnedFd {
    // SAFETY: F_DUPFD_CLOEXEC on a descriptor we own; the new one is ours.
    let high = unsafe { libc::fcntl(fd.as_raw_fd(), libc::F_DUPFD_CLOEXEC, FD_FLOOR) };
    if high < 0 {
        return fd;
    }
    // SAFETY: high was just returned by fcntl and is owned by nobody else.
    unsafe { OwnedFd::from_raw_fd(high) }
}

/// A long-lived descriptor of the agent's own (a pidfd of
/// [`crate::exits`]) kept above [`FD_FLOOR`] like the monitor's files and
/// counted in their budget, so that they give way (are reopened at each
/// read) before the agent runs out of descriptors.
pub struct HighFd(OwnedFd);

impl HighFd {
    pub fn new(fd: OwnedFd) -> HighFd {
        KEPT.fetch_add(1, Ordering::Relaxed);
        HighFd(to_high(fd))
    }
}

impl AsFd for HighFd {
    fn as_fd(&self) -> BorrowedFd<'_> {
        self.0.as_fd()
    }
}

impl Drop for HighFd {
    fn drop(&mut self) {
        KEPT.fetch_sub(1, Ordering::Relaxed);
    }
}

enum Src {
    Kept(File),
    /// Over the budget: opened at each read.
    Reopen(PathBuf),
}

/// A /proc, /sys or cgroup file kept open and read from offset 0.
pub struct PFile {
    src: Src,
}

impl Drop for PFile {
    fn drop(&mut self) {
        if matches!(self.src, Src::Kept(_)) {
            KEPT.fetch_sub(1, Ordering::Relaxed);
        }
    }
}

impl PFile {
    /// None if the file cannot be opened (absent on this host).
    pub fn open(path: &Path) -> Option<PFile> {
        let file = open_high(path).ok()?;
        if KEPT.fetch_add(1, Ordering::Relaxed) < budget() {
            return Some(PFile {
                src: Src::Kept(file),
            });
        }
        KEPT.fetch_sub(1, Ordering::Relaxed);
        Some(PFile {
            src: Src::Reopen(path.to_path_buf()),
        })
    }

    /// Number of monitor files kept open in this process.
    pub fn kept() -> u64 {
        KEPT.load(Ordering::Relaxed)
    }

    /// The whole content, read into `buf`. Seq files regenerate on a read
    /// at offset 0. `buf` keeps its length between reads (zeroed only when
    /// it grows): resizing it at every read cleared the whole buffer
    /// (64 KiB) for a 10-byte file, most of the sampler's time per container.
    pub fn read<'a>(&self, buf: &'a mut Vec<u8>) -> std::io::Result<&'a str> {
        if buf.len() < 4096 {
            buf.resize(4096, 0);
        }
        let reopened;
        let f = match &self.src {
            Src::Kept(f) => f,
            Src::Reopen(p) => {
                reopened = File::open(p)?;
                &reopened
            }
        };
        let mut len = 0;
        loop {
            let n = f.read_at(&mut buf[len..], len as u64)?;
            len += n;
            if n == 0 || len < buf.len() {
                break;
            }
            let grown = buf.len() * 2;
            buf.resize(grown, 0);
        }
        std::str::from_utf8(&buf[..len])
            .map_err(|e| std::io::Error::new(std::io::ErrorKind::InvalidData, e))
    }

    /// The file's first number (e.g. `memory.current`, `pids.current`).
    pub fn read_u64(&self, buf: &mut Vec<u8>) -> Option<u64> {
        self.read(buf).ok()?.split_whitespace().next()?.parse().ok()
    }
}

/// `key value` lines (memory.stat, cpu.stat, /proc/vmstat): the value of `key`.
pub fn kv(text: &str, key: &str) -> Option<u64> {
    text.lines().find_map(|l| {
        let (k, v) = l.split_once(' ')?;
        (k == key).then(|| v.trim().parse().ok())?
    })
}

/// `some avg10=.. ..` of a PSI file.
/// The `some` line's `total=` (microseconds stalled) in seconds.
pub fn psi_some_total_seconds(text: &str) -> Option<f64> {
    let l = text.lines().find(|l| l.starts_with("some "))?;
    l.split_whitespace()
        .find_map(|f| f.strip_prefix("total="))?
        .parse::<u64>()
        .ok()
        .map(|us| us as f64 / 1e6)
}

pub fn psi_some_avg10(text: &str) -> Option<f64> {
    let l = text.lines().find(|l| l.starts_with("some "))?;
    l.split_whitespace()
        .find_map(|f| f.strip_prefix("avg10="))?
        .parse()
        .ok()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn pfile_rereads_and_handles_large_files() {
        // A proc file that does not change while the test runs.
        let f = PFile::open(Path::new("/proc/self/limits")).unwrap();
        let mut buf = Vec::new();
        let a = f.read(&mut buf).unwrap().to_string();
        assert_eq!(a, f.read(&mut buf).unwrap());
        assert_eq!(a, std::fs::read_to_string("/proc/self/limits").unwrap());
        // Larger than the first buffer, rewritten in place between reads.
        let dir = tempfile::tempdir().unwrap();
        let p = dir.path().join("big");
        let big: String = (0..5000).map(|i| format!("{i}\n")).collect();
        std::fs::write(&p, &big).unwrap();
        let f = PFile::open(&p).unwrap();
        assert_eq!(f.read(&mut buf).unwrap(), big);
        std::fs::write(&p, "7\n").unwrap();
        assert_eq!(f.read_u64(&mut buf), Some(7));
    }

    #[test]
    fn kept_files_sit_above_the_floor() {
        let f = open_high(Path::new("/proc/self/stat")).unwrap();
        let mut r = libc::rlimit {
            rlim_cur: 0,
            rlim_max: 0,
        };
        // SAFETY: getrlimit on a local struct.
        unsafe { libc::getrlimit(libc::RLIMIT_NOFILE, &mut r) };
        if rlim_u64(r.rlim_cur) > FD_FLOOR as u64 {
            assert!(f.as_raw_fd() >= FD_FLOOR);
        }
        let before = PFile::kept();
        let p = PFile::open(Path::new("/proc/self/stat")).unwrap();
        assert!(PFile::kept() > before || budget() == 0);
        drop(p);
    }

    #[test]
    fn parsers() {
        assert_eq!(kv("a 1\nbb 22\nb 3\n", "b"), Some(3));
        assert_eq!(kv("a 1\n", "b"), None);
        let p = "some avg10=1.50 avg60=0.00 avg300=0.00 total=10\nfull avg10=0.00 avg60=0.00 avg300=0.00 total=0\n";
        assert_eq!(psi_some_avg10(p), Some(1.5));
    }
}
