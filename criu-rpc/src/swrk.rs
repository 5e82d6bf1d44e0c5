//! One `criu swrk` session: spawn, send one request, answer notifications,
//! read the final response, reap the process.

use std::fs::File;
use std::io::{self, Read, Seek, SeekFrom};
use std::os::fd::{AsRawFd, FromRawFd, OwnedFd, RawFd};
use std::os::unix::process::CommandExt;
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};

use nix::cmsg_space;
use nix::errno::Errno;
use nix::sys::socket::{
    recv, recvmsg, send, socketpair, AddressFamily, ControlMessageOwned, MsgFlags, SockFlag,
    SockType,
};
use protobuf::Message;
use rust_criu::rust_criu_protobuf::rpc::{Criu_req, Criu_req_type, Criu_resp};

use crate::error::{BoxError, Error, LogTail, Result};
use crate::notify::Notify;

/// How many log lines an error carries.
pub(crate) const TAIL_LINES: usize = 15;

/// Where a request's log file can be read from.
#[derive(Debug, Clone)]
pub(crate) struct LogLocation {
    /// The path as shown to people.
    pub(crate) shown: String,
    /// A path this process can open (may go through `/proc/self/fd`).
    pub(crate) readable: PathBuf,
}

/// A caller's notification handler, type-erased.
pub(crate) type Handler<'a> = &'a mut dyn FnMut(&Notify) -> std::result::Result<(), BoxError>;

/// The final response, plus the notifications seen.
pub(crate) struct Outcome {
    pub(crate) resp: Criu_resp,
    pub(crate) log: Option<LogLocation>,
    output: File,
}

impl Outcome {
    /// The tail of the log (or of CRIU's output when there is no log).
    pub(crate) fn tail(&mut self) -> LogTail {
        log_tail(self.log.as_ref(), Some(&mut self.output))
    }
}

/// Runs one request through a fresh `criu swrk`.
///
/// `pass_fds` are fds of this process the child must inherit (same
/// numbers, `FD_CLOEXEC` cleared in the child only).
pub(crate) fn run(
    bin: &Path,
    op: &'static str,
    req: &Criu_req,
    pass_fds: &[RawFd],
    log: Option<LogLocation>,
    mut handler: Option<Handler<'_>>,
) -> Result<Outcome> {
    let io_err = |what: &str, source: io::Error| Error::Io {
        op,
        what: what.to_string(),
        source,
    };
    for &fd in pass_fds {
        if fd < 3 {
            return Err(Error::InvalidOption(format!(
                "fd {fd} cannot be passed to CRIU: 0-2 are its stdio"
            )));
        }
    }
    let bytes = req
        .write_to_bytes()
        .map_err(|e| Error::InvalidOption(format!("cannot encode the {op} request: {e}")))?;

    let (ours, theirs) = socketpair(
        AddressFamily::Unix,
        SockType::SeqPacket,
        None,
        SockFlag::SOCK_CLOEXEC,
    )
    .map_err(|e| io_err("socketpair", e.into()))?;
    let mut output = memfd().map_err(|e| io_err("memfd_create", e))?;
    let out1 = output.try_clone().map_err(|e| io_err("dup", e))?;
    let out2 = output.try_clone().map_err(|e| io_err("dup", e))?;

    let mut inherit: Vec<RawFd> = Vec::with_capacity(pass_fds.len() + 1);
    inherit.push(theirs.as_raw_fd());
    inherit.extend_from_slice(pass_fds);

    let mut cmd = Command::new(bin);
    cmd.arg("swrk")
        .arg(theirs.as_raw_fd().to_string())
        .stdin(Stdio::null())
        .stdout(Stdio::from(out1))
        .stderr(Stdio::from(out2));
    // SAFETY: the closure only calls fcntl(2), which is async-signal-safe,
    // on fd numbers copied into it before the fork; it allocates nothing.
    unsafe {
        cmd.pre_exec(move || {
            for &fd in &inherit {
                let flags = libc::fcntl(fd, libc::F_GETFD);
                if flags < 0 || libc::fcntl(fd, libc::F_SETFD, flags & !libc::FD_CLOEXEC) < 0 {
                    return Err(io::Error::last_os_error());
                }
            }
            Ok(())
        });
    }
    let child = cmd.spawn().map_err(|source| Error::Spawn {
        bin: bin.to_path_buf(),
        source,
    })?;
    drop(theirs);
    tracing::debug!(op, pid = child.id(), "criu swrk started");

    let mut session = Session {
        op,
        child: Some(child),
        sock: ours,
    };

    if let Err(e) = session.send(&bytes) {
        let status = session.kill_and_reap();
        let mut tail_src = output;
        return Err(Error::NoResponse {
            op,
            status: format!("sending the request failed: {e}; {status}"),
            tail: log_tail(log.as_ref(), Some(&mut tail_src)),
        });
    }

    let mut failure: Option<(String, BoxError)> = None;
    loop {
        let msg = match session.recv() {
            Ok(Some(m)) => m,
            Ok(None) => {
                let status = session.reap();
                return Err(Error::NoResponse {
                    op,
                    status,
                    tail: log_tail(log.as_ref(), Some(&mut output)),
                });
            }
            Err(e) => {
                let status = session.kill_and_reap();
                return Err(Error::NoResponse {
                    op,
                    status: format!("receiving failed: {e}; {status}"),
                    tail: log_tail(log.as_ref(), Some(&mut output)),
                });
            }
        };
        let (data, fd) = msg;
        let resp = match Criu_resp::parse_from_bytes(&data) {
            Ok(r) => r,
            Err(e) => {
                session.kill_and_reap();
                return Err(Error::Protocol {
                    op,
                    detail: format!("cannot decode a response of {} bytes: {e}", data.len()),
                    tail: log_tail(log.as_ref(), Some(&mut output)),
                });
            }
        };
        if resp.type_() != Criu_req_type::NOTIFY {
            let status = session.reap();
            tracing::debug!(op, success = resp.success(), %status, "criu swrk done");
            let mut outcome = Outcome { resp, log, output };
            if let Some((script, source)) = failure {
                let tail = outcome.tail();
                return Err(Error::Notify {
                    op,
                    script,
                    source,
                    tail,
                });
            }
            return Ok(outcome);
        }

        let n = resp.notify.as_ref();
        let script = n.map(|n| n.script().to_string()).unwrap_or_default();
        let pid = n.filter(|n| n.has_pid()).map(|n| n.pid());
        let notify = Notify::new(script, pid, fd);
        tracing::debug!(op, script = notify.script(), ?pid, "criu notify");
        let ok = match (&mut handler, &failure) {
            // After a failure CRIU aborts; should it still ask, say no again.
            (_, Some(_)) => false,
            (Some(h), None) => match h(&notify) {
                Ok(()) => true,
                Err(e) => {
                    failure = Some((notify.script().to_string(), e));
                    false
                }
            },
            (None, None) => true,
        };
        drop(notify);
        let mut reply = Criu_req::new();
        reply.set_type(Criu_req_type::NOTIFY);
        reply.set_notify_success(ok);
        let bytes = reply
            .write_to_bytes()
            .map_err(|e| Error::InvalidOption(format!("cannot encode a notify reply: {e}")))?;
        if let Err(e) = session.send(&bytes) {
            let status = session.kill_and_reap();
            return Err(Error::NoResponse {
                op,
                status: format!("answering a notification failed: {e}; {status}"),
                tail: log_tail(log.as_ref(), Some(&mut output)),
            });
        }
    }
}

struct Session {
    op: &'static str,
    child: Option<Child>,
    sock: OwnedFd,
}

impl Session {
    fn send(&self, bytes: &[u8]) -> io::Result<()> {
        loop {
            match send(self.sock.as_raw_fd(), bytes, MsgFlags::MSG_NOSIGNAL) {
                Ok(n) if n == bytes.len() => return Ok(()),
                Ok(n) => {
                    return Err(io::Error::other(format!(
                        "short send: {n} of {} bytes",
                        bytes.len()
                    )))
                }
                Err(Errno::EINTR) => continue,
                Err(e) => return Err(e.into()),
            }
        }
    }

    /// One whole message and the fd attached to it; `None` at end of stream.
    fn recv(&self) -> io::Result<Option<(Vec<u8>, Option<OwnedFd>)>> {
        let fd = self.sock.as_raw_fd();
        let len = loop {
            let mut probe = [0u8; 1];
            match recv(fd, &mut probe, MsgFlags::MSG_PEEK | MsgFlags::MSG_TRUNC) {
                Ok(n) => break n,
                Err(Errno::EINTR) => continue,
                Err(e) => return Err(e.into()),
            }
        };
        if len == 0 {
            return Ok(None);
        }
        let mut buf = vec![0u8; len];
        let mut cmsg = cmsg_space!([RawFd; 4]);
        loop {
            let mut iov = [io::IoSliceMut::new(&mut buf)];
            match recvmsg::<()>(fd, &mut iov, Some(&mut cmsg), MsgFlags::MSG_CMSG_CLOEXEC) {
                Ok(msg) => {
                    let mut got: Option<OwnedFd> = None;
                    let cmsgs = msg.cmsgs().map_err(io::Error::from)?;
                    for c in cmsgs {
                        if let ControlMessageOwned::ScmRights(fds) = c {
                            for raw in fds {
                                // SAFETY: SCM_RIGHTS just installed `raw` in
                                // our table; nobody else owns it.
                                let owned = unsafe { OwnedFd::from_raw_fd(raw) };
                                if got.is_none() {
                                    got = Some(owned);
                                }
                            }
                        }
                    }
                    let n = msg.bytes;
                    if n != len {
                        return Err(io::Error::other(format!(
                            "message of {len} bytes read as {n}"
                        )));
                    }
                    return Ok(Some((buf, got)));
                }
                Err(Errno::EINTR) => continue,
                Err(e) => return Err(e.into()),
            }
        }
    }

    fn reap(&mut self) -> String {
        match self.child.take() {
            Some(mut c) => match c.wait() {
                Ok(s) => format!("criu exited: {s}"),
                Err(e) => format!("cannot wait for criu: {e}"),
            },
            None => "criu already reaped".to_string(),
        }
    }

    fn kill_and_reap(&mut self) -> String {
        if let Some(c) = self.child.as_mut() {
            if let Err(e) = c.kill() {
                tracing::warn!(op = self.op, "cannot kill criu swrk: {e}");
            }
        }
        self.reap()
    }
}

impl Drop for Session {
    fn drop(&mut self) {
        if self.child.is_some() {
            self.kill_and_reap();
        }
    }
}

fn memfd() -> io::Result<File> {
    // SAFETY: a valid NUL-terminated name and flags; the returned fd is new.
    let fd = unsafe { libc::memfd_create(c"criu-swrk-output".as_ptr(), libc::MFD_CLOEXEC) };
    if fd < 0 {
        return Err(io::Error::last_os_error());
    }
    // SAFETY: fd was just created and is owned by nobody else.
    Ok(File::from(unsafe { OwnedFd::from_raw_fd(fd) }))
}

/// The last [`TAIL_LINES`] lines of the log file, or of CRIU's own output
/// when the log is missing or empty.
pub(crate) fn log_tail(log: Option<&LogLocation>, output: Option<&mut File>) -> LogTail {
    if let Some(l) = log {
        if let Ok(mut f) = File::open(&l.readable) {
            let lines = tail_of(&mut f);
            if !lines.is_empty() {
                return LogTail {
                    source: l.shown.clone(),
                    lines,
                };
            }
        }
    }
    match output {
        Some(out) => LogTail {
            source: "criu's stderr".to_string(),
            lines: tail_of(out),
        },
        None => LogTail::default(),
    }
}

fn tail_of(f: &mut File) -> Vec<String> {
    const MAX: u64 = 64 * 1024;
    let Ok(len) = f.seek(SeekFrom::End(0)) else {
        return Vec::new();
    };
    let start = len.saturating_sub(MAX);
    if f.seek(SeekFrom::Start(start)).is_err() {
        return Vec::new();
    }
    let mut buf = Vec::new();
    if f.read_to_end(&mut buf).is_err() {
        return Vec::new();
    }
    let text = String::from_utf8_lossy(&buf);
    // Starting mid-file, the first line is partial: drop it.
    let whole = if start > 0 {
        text.split_once('\n').map(|(_, rest)| rest).unwrap_or("")
    } else {
        &text
    };
    let lines: Vec<&str> = whole.lines().filter(|l| !l.trim().is_empty()).collect();
    let skip = lines.len().saturating_sub(TAIL_LINES);
    lines[skip..].iter().map(|l| l.to_string()).collect()
}
