//! One thread waits for the exit of every process the agent watches (the
//! containers' inits, their log shims) instead of a blocked thread per
//! process: those were two threads per container, ~16 KB of RSS each,
//! nearly all of the agent's memory per container at 1000 containers.
//!
//! ```text
//!  watch(pid, reap, done)
//!    pidfd_open(pid), moved above pfile::FD_FLOOR (counted in its budget)
//!      failed (already gone) -> done(None), on the waiter thread
//!    table[token] = (pidfd, reap, done); then the pidfd joins the epoll set
//!  waiter thread: epoll_wait over every pidfd and one eventfd (wake-up)
//!    a pidfd is readable once its process exited
//!      Reap::Child   -> waitid(P_PIDFD, WEXITED|WNOHANG): the exit code
//!                       (ECHILD: not our child after all -> None); not
//!                       reapable yet (a tracer holds it) -> out of the
//!                       epoll set, retried every RETRY until it is
//!      Reap::Foreign -> None (its parent reaps it, not us)
//!    -> out of the table, pidfd closed, done(code)
//! ```
//!
//! `done` runs on the waiter thread: it must be short and must never wait
//! for another watched process (spawn a thread for anything slow).

use std::collections::HashMap;
use std::os::fd::{AsFd, AsRawFd, FromRawFd, OwnedFd};
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Mutex, OnceLock};
use std::time::Duration;

use nix::sys::wait::{waitid, Id, WaitPidFlag, WaitStatus};

use crate::container::lock;
use crate::monitor::pfile::HighFd;

/// How a watched process's exit is collected.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Reap {
    /// Our child: reap it and report its exit code.
    Child,
    /// Not ours (an init adopted after an agent restart): only notice it.
    Foreign,
}

/// Called once with the exit code (128 + signal for a killed process),
/// None when it cannot be known.
pub type Done = Box<dyn FnOnce(Option<i32>) + Send>;

/// How often (ms) a child that exited but cannot be reaped yet is tried again.
const RETRY_MS: i32 = 50;
/// epoll token of the wake-up eventfd.
const WAKE: u64 = 0;

struct Watch {
    fd: Option<HighFd>,
    reap: Reap,
    done: Done,
}

struct Waiter {
    epoll: OwnedFd,
    /// An eventfd in the epoll set: wakes the thread for `gone`.
    wake: OwnedFd,
    next: AtomicU64,
    table: Mutex<HashMap<u64, Watch>>,
    /// Tokens whose process is gone already (pidfd_open failed).
    gone: Mutex<Vec<u64>>,
}

static WAITER: OnceLock<std::io::Result<&'static Waiter>> = OnceLock::new();

fn waiter() -> std::io::Result<&'static Waiter> {
    WAITER
        .get_or_init(|| {
            // SAFETY: plain syscalls; each returns a new descriptor or -1.
            let epoll = owned(unsafe { libc::epoll_create1(libc::EPOLL_CLOEXEC) })?;
            // SAFETY: as above.
            let wake = owned(unsafe { libc::eventfd(0, libc::EFD_CLOEXEC | libc::EFD_NONBLOCK) })?;
            epoll_ctl(&epoll, libc::EPOLL_CTL_ADD, &wake, WAKE)?;
            let w: &'static Waiter = Box::leak(Box::new(Waiter {
                epoll,
                wake,
                next: AtomicU64::new(WAKE + 1),
                table: Mutex::new(HashMap::new()),
                gone: Mutex::new(Vec::new()),
            }));
            std::thread::Builder::new()
                .name("herd-exits".into())
                .stack_size(256 << 10)
                .spawn(move || w.run())?;
            Ok(w)
        })
        .as_ref()
        .copied()
        .map_err(|e| std::io::Error::new(e.kind(), e.to_string()))
}

/// Call `done` once `pid` has exited (see the module docs).
pub fn watch(pid: i32, reap: Reap, done: Done) -> std::io::Result<()> {
    let w = waiter()?;
    let token = w.next.fetch_add(1, Ordering::Relaxed);
    let fd = pidfd_open(pid)?.map(HighFd::new);
    let mut table = lock(&w.table);
    match &fd {
        // Under the table's lock: the thread cannot look the token up
        // before it is there.
        Some(fd) => epoll_ctl(&w.epoll, libc::EPOLL_CTL_ADD, &fd.as_fd(), token)?,
        None => {
            lock(&w.gone).push(token);
            w.poke()?;
        }
    }
    table.insert(token, Watch { fd, reap, done });
    Ok(())
}

impl Waiter {
    fn poke(&self) -> std::io::Result<()> {
        let one = 1u64.to_ne_bytes();
        // SAFETY: an 8-byte write from a local buffer to our eventfd.
        let n = unsafe { libc::write(self.wake.as_raw_fd(), one.as_ptr().cast(), 8) };
        if n < 0 {
            let e = std::io::Error::last_os_error();
            // EAGAIN: the counter is full, the thread is woken anyway.
            if e.raw_os_error() != Some(libc::EAGAIN) {
                return Err(e);
            }
        }
        Ok(())
    }

    fn run(&self) {
        let mut events = vec![libc::epoll_event { events: 0, u64: 0 }; 64];
        let mut retry: Vec<u64> = Vec::new();
        loop {
            let timeout = if retry.is_empty() { -1 } else { RETRY_MS };
            // SAFETY: the buffer holds events.len() entries.
            let n = unsafe {
                libc::epoll_wait(
                    self.epoll.as_raw_fd(),
                    events.as_mut_ptr(),
                    events.len() as i32,
                    timeout,
                )
            };
            if n < 0 {
                let e = std::io::Error::last_os_error();
                if e.raw_os_error() != Some(libc::EINTR) {
                    tracing::error!("exit waiter: epoll_wait: {e}");
                    std::thread::sleep(Duration::from_millis(RETRY_MS as u64));
                }
                continue;
            }
            let mut ready: Vec<u64> = std::mem::take(&mut retry);
            for ev in &events[..n as usize] {
                let token = ev.u64;
                if token == WAKE {
                    let mut b = [0u8; 8];
                    // SAFETY: an 8-byte read into a local buffer (the counter).
                    let _ = unsafe { libc::read(self.wake.as_raw_fd(), b.as_mut_ptr().cast(), 8) };
                    ready.append(&mut lock(&self.gone));
                } else {
                    ready.push(token);
                }
            }
            for token in ready {
                let Some(w) = lock(&self.table).remove(&token) else {
                    continue;
                };
                if let Some(fd) = &w.fd {
                    // Collected or polled from now on: out of the set
                    // (level-triggered, it would fire again and again).
                    let _ = epoll_ctl(&self.epoll, libc::EPOLL_CTL_DEL, &fd.as_fd(), token);
                }
                match collect(&w) {
                    Some(code) => {
                        drop(w.fd);
                        (w.done)(code);
                    }
                    None => {
                        // Exited, not reapable yet (a tracer holds it).
                        lock(&self.table).insert(token, w);
                        retry.push(token);
                    }
                }
            }
        }
    }
}

fn owned(fd: i32) -> std::io::Result<OwnedFd> {
    if fd < 0 {
        return Err(std::io::Error::last_os_error());
    }
    // SAFETY: a fresh descriptor just returned to us.
    Ok(unsafe { OwnedFd::from_raw_fd(fd) })
}

fn epoll_ctl(epoll: &OwnedFd, op: i32, fd: &impl AsRawFd, token: u64) -> std::io::Result<()> {
    let mut ev = libc::epoll_event {
        events: libc::EPOLLIN as u32,
        u64: token,
    };
    // SAFETY: both descriptors are open; ev lives across the call.
    if unsafe { libc::epoll_ctl(epoll.as_raw_fd(), op, fd.as_raw_fd(), &mut ev) } < 0 {
        return Err(std::io::Error::last_os_error());
    }
    Ok(())
}

/// The exit code of a watched process that is gone, or None (outer) when
/// it cannot be collected yet.
fn collect(w: &Watch) -> Option<Option<i32>> {
    let (Reap::Child, Some(fd)) = (w.reap, &w.fd) else {
        return Some(None);
    };
    match waitid(
        Id::PIDFd(fd.as_fd()),
        WaitPidFlag::WEXITED | WaitPidFlag::WNOHANG,
    ) {
        Ok(WaitStatus::Exited(_, c)) => Some(Some(c)),
        Ok(WaitStatus::Signaled(_, s, _)) => Some(Some(128 + s as i32)),
        Ok(_) | Err(nix::Error::EINTR) => None,
        // ECHILD: not our child (re-parented elsewhere, or reaped already).
        Err(_) => Some(None),
    }
}

/// A pidfd of `pid`; None if there is no such process any more.
fn pidfd_open(pid: i32) -> std::io::Result<Option<OwnedFd>> {
    // SAFETY: pidfd_open takes a pid and flags and returns a new fd or -1.
    let fd = unsafe { libc::syscall(libc::SYS_pidfd_open, pid, 0) };
    if fd < 0 {
        let e = std::io::Error::last_os_error();
        return match e.raw_os_error() {
            Some(libc::ESRCH) => Ok(None),
            _ => Err(e),
        };
    }
    // SAFETY: fd is a fresh descriptor we own.
    Ok(Some(unsafe { OwnedFd::from_raw_fd(fd as i32) }))
}

#[cfg(test)]
// The children are reaped by the waiter (or waitpid) under test.
#[allow(clippy::zombie_processes)]
mod tests {
    use super::*;
    use std::process::Command;
    use std::sync::mpsc;

    fn spawn(script: &str) -> i32 {
        let c = Command::new("sh").arg("-c").arg(script).spawn().unwrap();
        c.id() as i32 // dropped without waiting: the waiter reaps it
    }

    #[test]
    fn children_are_reaped_with_their_codes_on_one_thread() {
        let (tx, rx) = mpsc::channel();
        let mut pids = Vec::new();
        for i in 0..20 {
            let pid = spawn(&format!("sleep 0.{}; exit {i}", i % 3));
            pids.push(pid);
            let tx = tx.clone();
            watch(
                pid,
                Reap::Child,
                Box::new(move |c| tx.send((i, c)).unwrap()),
            )
            .unwrap();
        }
        let killed = spawn("sleep 30");
        let tx2 = tx.clone();
        watch(
            killed,
            Reap::Child,
            Box::new(move |c| tx2.send((99, c)).unwrap()),
        )
        .unwrap();
        nix::sys::signal::kill(
            nix::unistd::Pid::from_raw(killed),
            nix::sys::signal::Signal::SIGKILL,
        )
        .unwrap();
        let mut got: Vec<(i32, Option<i32>)> = (0..21)
            .map(|_| rx.recv_timeout(Duration::from_secs(60)).unwrap())
            .collect();
        got.sort();
        let mut want: Vec<(i32, Option<i32>)> = (0..20).map(|i| (i, Some(i))).collect();
        want.push((99, Some(128 + 9)));
        assert_eq!(got, want);
        // Reaped: no zombie left behind.
        for p in pids {
            assert!(!std::path::Path::new(&format!("/proc/{p}")).exists());
        }
    }

    #[test]
    fn a_process_already_gone_is_reported_at_once() {
        let c = Command::new("true").spawn().unwrap();
        let pid = c.id() as i32;
        nix::sys::wait::waitpid(nix::unistd::Pid::from_raw(pid), None).unwrap();
        let (tx, rx) = mpsc::channel();
        watch(pid, Reap::Child, Box::new(move |c| tx.send(c).unwrap())).unwrap();
        assert_eq!(rx.recv_timeout(Duration::from_secs(30)).unwrap(), None);
    }

    #[test]
    fn a_foreign_process_is_noticed_not_reaped() {
        let c = Command::new("sleep").arg("0.2").spawn().unwrap();
        let pid = c.id() as i32;
        let (tx, rx) = mpsc::channel();
        watch(pid, Reap::Foreign, Box::new(move |c| tx.send(c).unwrap())).unwrap();
        assert_eq!(rx.recv_timeout(Duration::from_secs(30)).unwrap(), None);
        // Still a zombie of ours: the waiter did not reap it.
        let st = nix::sys::wait::waitpid(nix::unistd::Pid::from_raw(pid), None).unwrap();
        assert_eq!(st, WaitStatus::Exited(nix::unistd::Pid::from_raw(pid), 0));
    }
}
