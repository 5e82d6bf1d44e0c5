//! `--memory-mode stream`: CRIU's page-server traffic between the source's
//! dump and the target's page server, carried by a stream of the agents'
//! QUIC connection (mutual TLS). On each host CRIU talks to a unix
//! socketpair whose other end this agent holds (`ps.fd`, CRIU's
//! `--ps-socket`), so no CRIU socket is ever a TCP socket, on loopback or
//! between hosts. [`bridge`] copies bytes both ways between that socket
//! and the stream.
//!
//! The target starts its page server at `Prepare` ([`start_server`]),
//! writing into the staging dir's `checkpoint/`; the source opens the
//! stream (`Request::MigratePages{id}`) right before its dump and the
//! target joins it to the server's socket ([`serve`]). The session is over
//! when the page server exits after CRIU's `FORCE_CLOSE`: its exit status
//! (the agent is a child subreaper, so it reaps the server) says whether
//! every page was written, and the migration stream hears of it before it
//! restores (see `target::migrate_in`).
//!
//! `--memory-mode pre` runs one such session per round: the target starts
//! a page server for each `PageRound` (into `checkpoint/pre/<n>`, parent
//! `../<n-1>`; the final dump's into `checkpoint/`, parent `pre/<n-1>`),
//! and the source opens one page stream per pre-dump and one for the
//! final dump. The images a restore reads are then a chain of parent
//! links inside `checkpoint/`, which moves into the container as one dir.
//!
//! While a session runs the migration stream is quiet (a `pre` round or a
//! streamed dump can take minutes on a slow link): the bytes the target
//! takes from the page stream count as the source's sign of life for the
//! target's idle limit ([`Seen`], [`idle_bounded`]).

use std::os::fd::AsRawFd;
use std::os::unix::net::UnixStream;
use std::path::Path;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::Arc;
use std::time::Duration;

use tokio::io::{AsyncReadExt, AsyncWriteExt};

use crate::container::lock;
use crate::error::{AgentError, IoContext, Result};
use crate::Agent;

/// The target's page server of one migration, until its stream comes.
pub(crate) struct PageIn {
    sock: UnixStream,
    /// The server's exit status, from the thread that reaps it.
    exit: tokio::sync::oneshot::Receiver<Option<i32>>,
    /// Where the migration stream hears how the session ended.
    done: tokio::sync::oneshot::Sender<Result<u64>>,
    seen: Seen,
}

pub(crate) type Done = tokio::sync::oneshot::Receiver<Result<u64>>;

/// Page bytes a target took from the source, over every page session of
/// one migration.
pub(crate) type Seen = Arc<AtomicU64>;

/// `fut`, unless `idle` passes with neither it ending nor a page byte
/// arriving (`None`): the idle limit of a migration stream whose source
/// may be busy sending pages.
pub(crate) async fn idle_bounded<F: std::future::Future>(
    fut: F,
    idle: Duration,
    seen: &Seen,
) -> Option<F::Output> {
    tokio::pin!(fut);
    loop {
        let before = seen.load(Ordering::Relaxed);
        match tokio::time::timeout(idle, &mut fut).await {
            Ok(out) => return Some(out),
            Err(_) if seen.load(Ordering::Relaxed) != before => continue,
            Err(_) => return None,
        }
    }
}

/// Start a page server writing into `images` (created if missing), with
/// `parent` (relative to it) the images of the round before, for
/// migration `id`; its socket waits in [`super::Handoff`] for the
/// source's stream. The bytes it takes are added to `seen`.
pub(crate) fn start_server(
    agent: &Agent,
    id: &str,
    images: &Path,
    parent: Option<String>,
    seen: Seen,
) -> Result<Done> {
    std::fs::create_dir_all(images).ctx(|| format!("create {}", images.display()))?;
    let (ours, theirs) = UnixStream::pair().ctx(|| "socketpair for the page server".into())?;
    let mut opts = herd_criu::PageServerOpts::new(images, "", 0);
    opts.listen.fd = Some(theirs.as_raw_fd());
    opts.parent_image = parent;
    let ps = herd_criu::Criu::from_env()
        .page_server(&opts)
        .ctx(|| "start a CRIU page server".into())?;
    drop(theirs);
    let (exit_tx, exit) = tokio::sync::oneshot::channel();
    let pid = ps.pid;
    // Its parent `criu swrk` has exited: it is our child now (subreaper).
    std::thread::spawn(move || {
        use nix::sys::wait::{waitpid, WaitStatus};
        let code = loop {
            match waitpid(nix::unistd::Pid::from_raw(pid), None) {
                Ok(WaitStatus::Exited(_, c)) => break Some(c),
                Ok(WaitStatus::Signaled(_, s, _)) => break Some(128 + s as i32),
                Ok(_) | Err(nix::Error::EINTR) => continue,
                Err(_) => break None, // not ours to reap: trust the socket
            }
        };
        let _ = exit_tx.send(code);
    });
    let (done, rx) = tokio::sync::oneshot::channel();
    lock(&agent.handoff.pages).insert(
        id.to_string(),
        PageIn {
            sock: ours,
            exit,
            done,
            seen,
        },
    );
    Ok(rx)
}

/// Forget a migration's page server (it exits on its socket's end).
pub(crate) fn drop_server(agent: &Agent, id: &str) {
    lock(&agent.handoff.pages).remove(id);
}

/// The target side of `Request::MigratePages{id}`.
pub(crate) async fn serve(
    agent: Arc<Agent>,
    id: String,
    send: quinn::SendStream,
    recv: quinn::RecvStream,
) {
    let Some(p) = lock(&agent.handoff.pages).remove(&id) else {
        tracing::warn!(%id, "a page stream for no page server here");
        let mut send = send;
        let _ = send.reset(1u32.into());
        return;
    };
    let max = agent.limits().migration_bytes;
    let r = bridge(p.sock, send, recv, max, None, None, Some(p.seen)).await;
    let r = match r {
        Err(e) => Err(e).ctx(|| "page stream".into()),
        Ok((bytes_in, _)) => match p.exit.await {
            Ok(Some(0)) | Ok(None) | Err(_) => Ok(bytes_in),
            Ok(Some(c)) => Err(AgentError::PageServerExit(c)),
        },
    };
    tracing::info!(%id, result = ?r, "migration in: page stream over");
    let _ = p.done.send(r);
}

/// Copy between `sock` and the QUIC stream until either side ends: the
/// unix side (its peer closed: flush and finish the stream) or the QUIC
/// side (the other host finished: nothing more will come). At most `max`
/// bytes are taken from the stream, each counted in `seen`. With `pause`,
/// the `mid-stream` fault pause point is held once `pause.1` bytes went
/// out; fault `slow-pages` sends at most about 2 MiB/s (a slow link).
/// Returns (bytes in from QUIC, bytes out to QUIC).
pub(crate) async fn bridge(
    sock: UnixStream,
    mut send: quinn::SendStream,
    mut recv: quinn::RecvStream,
    max: u64,
    pause: Option<(Arc<Agent>, u64)>,
    progress: Option<Arc<super::source::Progress>>,
    seen: Option<Seen>,
) -> std::io::Result<(u64, u64)> {
    let slow = super::fault("slow-pages");
    sock.set_nonblocking(true)?;
    let sock = tokio::net::UnixStream::from_std(sock)?;
    let (mut ur, mut uw) = sock.into_split();
    let (mut n_in, mut n_out) = (0u64, 0u64);
    let out = async {
        let mut buf = vec![0u8; 256 << 10];
        let mut paused = pause.is_none();
        loop {
            let n = ur.read(&mut buf).await?;
            if n == 0 {
                send.finish().map_err(std::io::Error::other)?;
                return Ok::<_, std::io::Error>(());
            }
            send.write_all(&buf[..n])
                .await
                .map_err(std::io::Error::other)?;
            n_out += n as u64;
            if slow {
                // 1 s per 2 MiB.
                tokio::time::sleep(Duration::from_micros(n as u64 * 500 / 1024)).await;
            }
            if let Some(p) = &progress {
                p.done
                    .fetch_add(n as u64, std::sync::atomic::Ordering::Relaxed);
            }
            if let (false, Some((agent, at))) = (paused, &pause) {
                if n_out >= *at {
                    paused = true;
                    super::pause_point(agent, "mid-stream").await;
                }
            }
        }
    };
    let inn = async {
        let mut buf = vec![0u8; 256 << 10];
        loop {
            match recv.read(&mut buf).await.map_err(std::io::Error::other)? {
                None => {
                    let _ = uw.shutdown().await;
                    return Ok::<_, std::io::Error>(());
                }
                Some(n) => {
                    n_in += n as u64;
                    if let Some(s) = &seen {
                        s.fetch_add(n as u64, Ordering::Relaxed);
                    }
                    if n_in > max {
                        return Err(std::io::Error::other(format!(
                            "more than {max} bytes of pages (--max-migration-bytes)"
                        )));
                    }
                    uw.write_all(&buf[..n]).await?;
                }
            }
        }
    };
    tokio::select! {
        r = out => r?,
        r = inn => r?,
    }
    Ok((n_in, n_out))
}
