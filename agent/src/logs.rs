//! Container stdio and the per-container log.
//!
//! A container's stdin, stdout and stderr are pipes: CRIU cannot dump a
//! process whose stdio is a host file, and a restore hands it new pipes with
//! `inherit_fd`. The read ends of stdout/stderr belong to a small *log shim*
//! (this binary re-executed as `herd-agent __log-shim LOG`, fds 3 and 4) in
//! its own session, so the container keeps writing while its agent restarts.
//! The shim stamps each line with the wall-clock time in nanoseconds and
//! appends `"<ns> <o|e> <line>\n"` to the log file, one write per line.

use std::fs::{File, OpenOptions};
use std::io::{BufRead, BufReader, Read, Seek, SeekFrom, Write};
use std::os::fd::{AsRawFd, OwnedFd};
use std::os::unix::fs::OpenOptionsExt;
use std::os::unix::process::CommandExt;
use std::path::Path;
use std::process::{Command, Stdio};
use std::sync::{Arc, Mutex};

use herd_wire::{LogLine, LogStream};

use crate::error::{IoContext, Result};
use crate::state::now_ns;

/// The hidden subcommand that runs the shim.
pub const SHIM_ARG: &str = "__log-shim";

/// Pipes for one container's stdio: the container's ends and ours.
pub struct Stdio3 {
    pub stdin: OwnedFd,
    pub stdout: OwnedFd,
    pub stderr: OwnedFd,
}

/// Make the container's stdio pipes and start the shim that logs them.
/// Returns the container's ends; the write end of stdin is closed at once
/// (a detached container reads EOF, as with podman without `-i`).
pub fn spawn_logged_stdio(log: &Path) -> Result<Stdio3> {
    let (in_r, in_w) =
        nix::unistd::pipe2(nix::fcntl::OFlag::O_CLOEXEC).ctx(|| "stdin pipe".into())?;
    drop(in_w);
    let (out_r, out_w) =
        nix::unistd::pipe2(nix::fcntl::OFlag::O_CLOEXEC).ctx(|| "stdout pipe".into())?;
    let (err_r, err_w) =
        nix::unistd::pipe2(nix::fcntl::OFlag::O_CLOEXEC).ctx(|| "stderr pipe".into())?;
    spawn_shim(log, out_r, err_r)?;
    Ok(Stdio3 {
        stdin: in_r,
        stdout: out_w,
        stderr: err_w,
    })
}

fn spawn_shim(log: &Path, out_r: OwnedFd, err_r: OwnedFd) -> Result<()> {
    // /proc/self/exe, not the path: the binary may have been replaced
    // (an upgrade, a rebuild) while this agent runs.
    let exe = std::path::Path::new("/proc/self/exe");
    let (o, e) = (out_r.as_raw_fd(), err_r.as_raw_fd());
    let mut cmd = Command::new(exe);
    cmd.arg(SHIM_ARG)
        .arg(log)
        .stdin(Stdio::null())
        .stdout(Stdio::null())
        .stderr(Stdio::null());
    // SAFETY: only async-signal-safe calls between fork and exec.
    unsafe {
        cmd.pre_exec(move || {
            if libc::setsid() < 0 {
                return Err(std::io::Error::last_os_error());
            }
            // dup2 clears CLOEXEC on the new descriptors.
            if libc::dup2(o, 3) < 0 || libc::dup2(e, 4) < 0 {
                return Err(std::io::Error::last_os_error());
            }
            Ok(())
        });
    }
    let child = cmd.spawn().ctx(|| "cannot start the log shim".into())?;
    drop(out_r);
    drop(err_r);
    // Reap the shim when it ends (it outlives us if we restart: then init
    // does). Dropping `child` neither waits nor kills.
    let pid = child.id() as i32;
    crate::exits::watch(pid, crate::exits::Reap::Child, Box::new(|_| {}))
        .ctx(|| format!("watch the log shim {pid}"))?;
    Ok(())
}

/// Body of the shim process: copy fds 3 and 4 into the log until both close.
pub fn shim_main(log: &Path) -> std::io::Result<()> {
    use std::os::fd::FromRawFd;
    let file = OpenOptions::new()
        .create(true)
        .append(true)
        .mode(0o640)
        .open(log)?;
    let file = Arc::new(Mutex::new(file));
    // SAFETY: fds 3 and 4 were placed by spawn_shim and nothing else owns them.
    let (out, err) = unsafe { (File::from_raw_fd(3), File::from_raw_fd(4)) };
    let f2 = file.clone();
    let t = std::thread::spawn(move || copy_lines(err, b'e', &f2));
    copy_lines(out, b'o', &file);
    let _ = t.join();
    Ok(())
}

fn copy_lines(src: File, tag: u8, dst: &Mutex<File>) {
    let mut r = BufReader::new(src);
    let mut buf = Vec::new();
    loop {
        buf.clear();
        match r.read_until(b'\n', &mut buf) {
            Ok(0) | Err(_) => return,
            Ok(_) => {}
        }
        if buf.last() == Some(&b'\n') {
            buf.pop();
        }
        let mut line = format!("{} {} ", now_ns(), tag as char).into_bytes();
        line.extend_from_slice(&buf);
        line.push(b'\n');
        if let Ok(mut f) = dst.lock() {
            let _ = f.write_all(&line);
        }
    }
}

/// Parse one log file line.
pub fn parse_line(l: &str) -> Option<LogLine> {
    let (ts, rest) = l.split_once(' ')?;
    let (tag, text) = rest.split_once(' ').unwrap_or((rest, ""));
    let stream = match tag {
        "o" => LogStream::Stdout,
        "e" => LogStream::Stderr,
        _ => return None,
    };
    Some(LogLine {
        time_ns: ts.parse().ok()?,
        stream,
        line: text.to_string(),
    })
}

/// Reads a log file from an offset, returning whole lines only.
pub struct LogReader {
    file: File,
    pos: u64,
    partial: Vec<u8>,
}

impl LogReader {
    pub fn open(path: &Path) -> Result<Self> {
        let file = File::open(path).ctx(|| format!("cannot open log {}", path.display()))?;
        Ok(LogReader {
            file,
            pos: 0,
            partial: Vec::new(),
        })
    }

    /// All complete lines appended since the last call.
    pub fn read_new(&mut self) -> Result<Vec<LogLine>> {
        self.read_some(u64::MAX)
    }

    /// The complete lines of at most `max` more bytes of the file (so a
    /// reader of a big log holds one batch, not the whole log).
    pub fn read_some(&mut self, max: u64) -> Result<Vec<LogLine>> {
        self.file
            .seek(SeekFrom::Start(self.pos))
            .ctx(|| "seek log".into())?;
        let mut buf = Vec::new();
        let n = (&mut self.file)
            .take(max)
            .read_to_end(&mut buf)
            .ctx(|| "read log".into())?;
        self.pos += n as u64;
        self.partial.extend_from_slice(&buf);
        let mut out = Vec::new();
        let mut start = 0;
        for i in 0..self.partial.len() {
            if self.partial[i] == b'\n' {
                if let Some(l) = parse_line(&String::from_utf8_lossy(&self.partial[start..i])) {
                    out.push(l);
                }
                start = i + 1;
            }
        }
        self.partial.drain(..start);
        Ok(out)
    }

    /// True when everything written so far has been read.
    pub fn at_end(&self) -> bool {
        self.file
            .metadata()
            .map(|m| m.len() <= self.pos)
            .unwrap_or(true)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn parses_lines_with_spaces_and_rejects_garbage() {
        let l = parse_line("1700000000123456789 o hello  world").unwrap();
        assert_eq!(l.time_ns, 1700000000123456789);
        assert_eq!(l.stream, LogStream::Stdout);
        assert_eq!(l.line, "hello  world");
        assert_eq!(parse_line("12 e ").unwrap().line, "");
        assert!(parse_line("x o y").is_none());
        assert!(parse_line("12 q y").is_none());
    }

    #[test]
    fn reader_returns_only_complete_lines() {
        let dir = tempfile::tempdir().unwrap();
        let p = dir.path().join("log");
        std::fs::write(&p, "1 o a\n2 e b\n3 o par").unwrap();
        let mut r = LogReader::open(&p).unwrap();
        let got = r.read_new().unwrap();
        assert_eq!(got.len(), 2);
        let mut f = OpenOptions::new().append(true).open(&p).unwrap();
        f.write_all(b"tial\n").unwrap();
        let got = r.read_new().unwrap();
        assert_eq!(got.len(), 1);
        assert_eq!(got[0].line, "partial");
    }
}
