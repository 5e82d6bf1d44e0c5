//! `herd bench migrate`: what a live migration costs, next to the floor of a
//! checkpoint + restore on one host, measured in the same run.
//!
//! ```text
//! herd bench migrate [--runs 5] [--sizes small,256MiB,256MiB-random,1GiB-random,256MiB-dirty]
//!                    [--modes diff,diff+zstd,none,whole,stop,stream,pre,auto] [--json]
//!                    [--keep-lab] [--vm] [--lab hbenchm]
//! ```
//!
//! It starts its own lab (`--lab`, two nodes, the image on both; with
//! `--vm` two QEMU guests, bookworm 6.1 and trixie 6.12, whose kernels
//! track dirty memory, so `pre` can run) and, for
//! each size (`small`: `herd-work echo`; `256MiB`: `echo --mib 256`, one byte
//! written per page, so zstd shrinks it ~800x: compressible; `256MiB-random`,
//! `1GiB-random`: `echo --mib N --random`, a pseudo-random pattern the
//! workload re-verifies every second, incompressible like a real heap;
//! `256MiB-dirty`: `echo --mib 256 --random --dirty-mib 16`, the same plus
//! 16 MiB it rewrites every second, a heap that keeps writing part of
//! itself: what `pre` is for),
//! runs one container on the lab network with a TCP client
//! in the bench holding one connection (a line every 20 ms, each answer
//! checked). Then, per size:
//!
//! * **floor**: `--runs` times `Checkpoint` + `Restore` on n1 (wall clock in
//!   the client: the time the container is gone on one host);
//! * **migrate**: for each of `--fs diff`, `diff --compress zstd`, `none`,
//!   `whole` (all `--memory-mode stop`), `stop` (the same as `diff`) and
//!   `stream` (`--memory-mode stream`: pages go to the target's page server
//!   during the dump) and `pre` (`--memory-mode pre`: rounds of pre-dumps
//!   while it runs, then the frozen dump of what changed; the pages of each
//!   round are printed) and `auto` (the agent picks; the table says what),
//!   `--runs` hops between n1 and n2, keeping the agent's report
//!   (total, frozen, CRIU frozen, bytes) and the longest gap the client saw
//!   between two answers around the move;
//! * **link**: the rate of the QUIC page stream during the streamed dumps
//!   of the largest size (page bytes / dump wall time) beside a plain TCP
//!   stream of 1 GiB from n1's netns to n2's in the same run (not in the VM
//!   lab).
//!
//! It prints medians (min..max) per mode, and the ratio of the migration's
//! frozen time to the floor's. The connection must survive every move and
//! every floor cycle, else the bench fails; during a move the client waits
//! for its answer as long as the move lasts (minutes in the VM lab), and 30
//! s outside one. Nothing is asserted on times.

use std::io::{BufRead, BufReader, Write};
use std::net::{SocketAddr, TcpStream};
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use anyhow::{bail, Context, Result};
use herd_wire::migrate::{FsMode, MemoryMode, MigrateReport};
use herd_wire::{Request, Response, RunSpec};

use herd::client::{unexpected, Client};
use herd::cluster::Cluster;
use herd::{lab, network, rootfs};

const IMAGE: &str = "hbench-busybox";
const PORT: u16 = 7000;

/// How long the client waits for an answer outside a move, and after one
/// ends this plus the move's length (after a long freeze TCP's next
/// retransmission may be as far off as the freeze was long); inside a move
/// it waits as long as the move lasts.
const QUIET: Duration = Duration::from_secs(30);

/// Answers of the one connection, as times; an error ends it.
struct Pinger {
    times: Arc<Mutex<Vec<Instant>>>,
    error: Arc<Mutex<Option<String>>>,
    stop: Arc<AtomicBool>,
    /// A move (or a floor cycle) is under way: the container may be
    /// frozen for as long as it lasts (minutes in the VM lab).
    busy: Arc<AtomicBool>,
    /// When the last one ended, and the client's wait after it.
    idle_from: Arc<Mutex<(Instant, Duration)>>,
}

/// [`Pinger::hold`]: a move is under way since `.1` until this drops.
struct Hold<'a>(&'a Pinger, Instant);

impl Drop for Hold<'_> {
    fn drop(&mut self) {
        let now = Instant::now();
        *self.0.idle_from.lock().unwrap_or_else(|p| p.into_inner()) =
            (now, QUIET + now.duration_since(self.1));
        self.0.busy.store(false, Ordering::SeqCst);
    }
}

impl Pinger {
    fn start(to: SocketAddr) -> Result<Pinger> {
        let s = TcpStream::connect_timeout(&to, Duration::from_secs(5))
            .with_context(|| format!("connect to {to}"))?;
        s.set_read_timeout(Some(Duration::from_secs(1)))?;
        s.set_nodelay(true)?;
        let mut w = s.try_clone()?;
        let mut r = BufReader::new(s);
        let p = Pinger {
            times: Arc::default(),
            error: Arc::default(),
            stop: Arc::default(),
            busy: Arc::default(),
            idle_from: Arc::new(Mutex::new((Instant::now(), QUIET))),
        };
        let (times, error, stop) = (p.times.clone(), p.error.clone(), p.stop.clone());
        let (busy, idle_from) = (p.busy.clone(), p.idle_from.clone());
        std::thread::spawn(move || {
            let mut line = String::new();
            for n in 1u64.. {
                if stop.load(Ordering::Relaxed) {
                    return;
                }
                let fail = |e: String| {
                    *error.lock().unwrap_or_else(|p| p.into_inner()) = Some(e);
                };
                if let Err(e) = w.write_all(format!("{n}\n").as_bytes()) {
                    return fail(format!("send {n}: {e}"));
                }
                line.clear();
                let sent = Instant::now();
                loop {
                    // A timed-out read keeps what it read in `line`.
                    match r.read_line(&mut line) {
                        Ok(_) => break,
                        Err(e)
                            if matches!(
                                e.kind(),
                                std::io::ErrorKind::WouldBlock | std::io::ErrorKind::TimedOut
                            ) =>
                        {
                            if stop.load(Ordering::Relaxed) {
                                return;
                            }
                            let (end, wait) = *idle_from.lock().unwrap_or_else(|p| p.into_inner());
                            let (from, wait) = if sent > end {
                                (sent, QUIET)
                            } else {
                                (end, wait)
                            };
                            if !busy.load(Ordering::SeqCst) && from.elapsed() > wait {
                                return fail(format!(
                                    "read {n}: no answer for {} s outside a move",
                                    wait.as_secs()
                                ));
                            }
                        }
                        Err(e) => return fail(format!("read {n}: {e}")),
                    }
                }
                if line.trim() != n.to_string() || !line.ends_with('\n') {
                    return fail(format!("sent {n}, got {:?}", line.trim()));
                }
                times
                    .lock()
                    .unwrap_or_else(|p| p.into_inner())
                    .push(Instant::now());
                std::thread::sleep(Duration::from_millis(20));
            }
        });
        Ok(p)
    }

    /// A move (or floor cycle) is under way until the guard drops: the
    /// client waits for its answer as long as it takes.
    fn hold(&self) -> Hold<'_> {
        self.busy.store(true, Ordering::SeqCst);
        Hold(self, Instant::now())
    }

    fn check(&self) -> Result<()> {
        match self.error.lock().unwrap_or_else(|p| p.into_inner()).clone() {
            Some(e) => bail!("the TCP connection broke: {e}"),
            None => Ok(()),
        }
    }

    /// Longest gap between answers from `from` on, once answers flow again
    /// (waits for three answers after now, up to 30 s plus the time since
    /// `from`: after a long freeze TCP's next retransmission may be as far
    /// off as the freeze was long).
    fn gap_since(&self, from: Instant) -> Result<f64> {
        let now = Instant::now();
        let limit = QUIET + now.duration_since(from);
        loop {
            self.check()?;
            let n = self
                .times
                .lock()
                .unwrap_or_else(|p| p.into_inner())
                .iter()
                .filter(|t| **t > now)
                .count();
            if n >= 3 {
                break;
            }
            if now.elapsed() > limit {
                bail!(
                    "the connection stopped answering after a move (waited {} s)",
                    limit.as_secs()
                );
            }
            std::thread::sleep(Duration::from_millis(20));
        }
        let t = self.times.lock().unwrap_or_else(|p| p.into_inner());
        let mut prev = from;
        let mut gap = Duration::ZERO;
        for x in t.iter().filter(|x| **x > from) {
            gap = gap.max(x.duration_since(prev));
            prev = *x;
        }
        Ok(gap.as_secs_f64() * 1e3)
    }
}

impl Drop for Pinger {
    fn drop(&mut self) {
        self.stop.store(true, Ordering::Relaxed);
    }
}

#[derive(Default, serde::Serialize)]
struct Row {
    size: String,
    mode: String,
    total_ms: Vec<f64>,
    frozen_ms: Vec<f64>,
    criu_frozen_ms: Vec<f64>,
    gap_ms: Vec<f64>,
    bytes: Vec<f64>,
    /// `pre`: pages written by each pre-dump round, per run.
    #[serde(skip_serializing_if = "Vec::is_empty")]
    pre_rounds: Vec<Vec<u64>>,
    /// The memory mode that ran, per run (`auto` says which it picked).
    #[serde(skip_serializing_if = "Vec::is_empty")]
    memory_mode: Vec<String>,
    /// Runs whose pages crossed on a page stream: their page bytes over their dump's wall time, MiB/s: what the
    /// agents' QUIC page stream carried while CRIU dumped (a lower bound
    /// of the link's throughput). Size `link`, mode `tcp`: a plain TCP
    /// stream between the same two lab hosts.
    #[serde(skip_serializing_if = "Vec::is_empty")]
    mib_s: Vec<f64>,
}

fn med(v: &[f64]) -> f64 {
    let mut s = v.to_vec();
    s.sort_by(|a, b| a.total_cmp(b));
    if s.is_empty() {
        return f64::NAN;
    }
    s[s.len() / 2]
}

/// [`span`] with one decimal.
fn span1(v: &[f64]) -> String {
    let lo = v.iter().cloned().fold(f64::INFINITY, f64::min);
    let hi = v.iter().cloned().fold(f64::NEG_INFINITY, f64::max);
    format!("{:.1} ({lo:.1}..{hi:.1})", med(v))
}

fn span(v: &[f64]) -> String {
    let lo = v.iter().cloned().fold(f64::INFINITY, f64::min);
    let hi = v.iter().cloned().fold(f64::NEG_INFINITY, f64::max);
    format!("{:.0} ({lo:.0}..{hi:.0})", med(v))
}

/// (label, MiB, random) of every size the bench knows.
const SIZES: [(&str, u64, bool); 5] = [
    ("small", 0, false),
    ("256MiB", 256, false),
    ("256MiB-random", 256, true),
    ("1GiB-random", 1024, true),
    ("256MiB-dirty", 256, true),
];

/// MiB the `-dirty` sizes rewrite every second.
const DIRTY_MIB: u64 = 16;

/// (label, fs mode, zstd, memory mode); `stop` is `diff` by its memory name.
const MODES: [(&str, FsMode, bool, MemoryMode); 8] = [
    ("diff", FsMode::Diff, false, MemoryMode::Stop),
    ("diff+zstd", FsMode::Diff, true, MemoryMode::Stop),
    ("none", FsMode::None, false, MemoryMode::Stop),
    ("whole", FsMode::Whole, false, MemoryMode::Stop),
    ("stop", FsMode::Diff, false, MemoryMode::Stop),
    ("stream", FsMode::Diff, false, MemoryMode::Stream),
    ("pre", FsMode::Diff, false, MemoryMode::Pre),
    ("auto", FsMode::Diff, false, MemoryMode::Auto),
];

fn pick<T: Copy>(
    list: &str,
    from: &[(&'static str, T)],
    what: &str,
) -> Result<Vec<(&'static str, T)>> {
    list.split(',')
        .map(str::trim)
        .filter(|s| !s.is_empty())
        .map(|w| {
            from.iter()
                .find(|(l, _)| *l == w)
                .copied()
                .with_context(|| {
                    let known: Vec<_> = from.iter().map(|(l, _)| *l).collect();
                    format!("unknown {what} {w:?} (one of {})", known.join(", "))
                })
        })
        .collect()
}

/// `herd bench migrate`'s flags besides the sizes and modes.
pub struct Opts<'a> {
    pub runs: usize,
    pub json: bool,
    pub keep_lab: bool,
    pub vm: bool,
    pub lab: &'a str,
}

pub async fn migrate(sizes: &str, modes: &str, o: &Opts<'_>) -> Result<()> {
    let (runs, json, lab) = (o.runs, o.json, o.lab);
    if runs == 0 {
        bail!("--runs must be at least 1");
    }
    let all_sizes: Vec<_> = SIZES.iter().map(|(l, m, r)| (*l, (*m, *r))).collect();
    let sizes = pick(sizes, &all_sizes, "size")?;
    let all_modes: Vec<_> = MODES
        .iter()
        .map(|(l, f, c, m)| (*l, (*f, *c, *m)))
        .collect();
    let modes = pick(modes, &all_modes, "mode")?;
    if sizes.is_empty() || modes.is_empty() {
        bail!("--sizes and --modes need at least one entry each");
    }
    let work = rootfs::find_herd_work().filter(|p| p.exists()).context(
        "the static herd-work (target/static/release/herd-work) was not found: run scripts/setup",
    )?;
    let cl = if o.vm {
        herd::lab_vm::up(
            lab,
            2,
            herd::lab_vm::Kernel::Both,
            &lab::Capacity::cpus(&[]),
        )
        .await
    } else {
        herd::lab::up(lab, 2, &[]).await
    }
    .with_context(|| {
        format!("cannot start the bench lab {lab} (left behind? herd --lab {lab} lab down)")
    })?;
    eprintln!("bench: lab {lab} is up; {runs} run(s) per mode");
    let mut result = run_all(&cl, &work, runs, &sizes, &modes).await;
    if let Ok(rows) = &mut result {
        if o.vm {
            eprintln!("bench: no plain TCP row in the VM lab (not measured there)");
        } else {
            match tcp_row(&cl) {
                Ok(r) => rows.push(r),
                Err(e) => eprintln!("bench: plain TCP between n1 and n2: {e:#}"),
            }
        }
    }
    let down = if o.keep_lab {
        Ok(())
    } else {
        herd::lab::down(lab).await.map(|_| ())
    };
    let rows = result?;
    down.with_context(|| format!("tear down lab {lab}"))?;
    if json {
        println!("{}", serde_json::to_string_pretty(&rows)?);
        return Ok(());
    }
    println!(
        "{:<14} {:<12} {:>22} {:>22} {:>16} {:>22} {:>11} {:>8}",
        "size",
        "mode",
        "total ms",
        "frozen ms",
        "CRIU frozen ms",
        "client gap ms",
        "bytes",
        "frozen/floor"
    );
    for (size, _) in &sizes {
        let floor = rows
            .iter()
            .find(|r| r.size == *size && r.mode == "floor")
            .map(|r| med(&r.frozen_ms))
            .unwrap_or(f64::NAN);
        for r in rows.iter().filter(|r| r.size == *size) {
            let mut mode = r.mode.clone();
            if r.mode == "auto" {
                // What auto picked (every run's, once each).
                let mut picked = r.memory_mode.clone();
                picked.dedup();
                mode = format!("auto:{}", picked.join("/"));
            }
            println!(
                "{:<14} {:<12} {:>22} {:>22} {:>16} {:>22} {:>11.0} {:>8.2}x",
                r.size,
                mode,
                span(&r.total_ms),
                span(&r.frozen_ms),
                span(&r.criu_frozen_ms),
                span(&r.gap_ms),
                med(&r.bytes),
                med(&r.frozen_ms) / floor
            );
        }
    }
    // The largest size's streamed moves, `stream` before others.
    let quic = rows
        .iter()
        .filter(|r| !r.mib_s.is_empty() && r.size != "link")
        .max_by(|a, b| {
            let key = |r: &Row| (med(&r.bytes) as u64 >> 20, r.mode == "stream");
            key(a).cmp(&key(b))
        });
    let tcp = rows.iter().find(|r| r.size == "link" && r.mode == "tcp");
    if let Some(q) = quic {
        println!(
            "link n1<->n2: QUIC page stream {} MiB/s ({} {}: page bytes / dump wall time, CRIU's dump included){}",
            span1(&q.mib_s),
            q.size,
            q.mode,
            tcp.map(|t| format!(
                "; plain TCP {} MiB/s (one connection, {} MiB, same hosts, same run); QUIC/TCP {:.2}",
                span1(&t.mib_s),
                TCP_MIB,
                med(&q.mib_s) / med(&t.mib_s)
            ))
            .unwrap_or_default()
        );
    }
    println!(
        "floor: checkpoint + restore of the same container on one host (its frozen = both walls); \
         gap: longest pause between answers of one TCP connection held through every move; \
         256MiB is compressible (a byte per page), -random is incompressible"
    );
    Ok(())
}

async fn run_all(
    cl: &Cluster,
    work: &std::path::Path,
    runs: usize,
    sizes: &[(&'static str, (u64, bool))],
    modes: &[(&'static str, (FsMode, bool, MemoryMode))],
) -> Result<Vec<Row>> {
    let guests = cl.vm.is_some();
    let mut c = Client::new(cl.clone())?;
    let dir = cl.dir.join("bench-rootfs");
    let _ = std::fs::remove_dir_all(&dir);
    std::fs::create_dir_all(&dir)?;
    rootfs::build_busybox(&dir, &[work.to_path_buf()])?;
    for n in ["n1", "n2"] {
        let req = Request::ImageImport {
            name: IMAGE.into(),
            path: dir.to_string_lossy().into_owned(),
        };
        match c.call(n, req).await? {
            Response::Image(_) => {}
            r => return Err(unexpected(r)),
        }
    }
    let _ = std::fs::remove_dir_all(&dir);
    let mut rows = Vec::new();
    for &(size, (mib, random)) in sizes {
        let dirty = size.ends_with("-dirty");
        let name = format!(
            "m{mib}{}",
            if dirty {
                "d"
            } else if random {
                "r"
            } else {
                ""
            }
        );
        let net = network::attach_for(&mut c, "n1", lab::LAB_NETWORK, None).await?;
        let ip = net.ip.clone();
        let spec = RunSpec {
            name: name.clone(),
            image: IMAGE.into(),
            cmd: [
                "/bin/herd-work",
                "echo",
                "--port",
                "7000",
                "--mib",
                &mib.to_string(),
            ]
            .map(String::from)
            .into_iter()
            .chain(random.then(|| "--random".to_string()))
            .chain(
                dirty
                    .then(|| ["--dirty-mib".to_string(), DIRTY_MIB.to_string()])
                    .into_iter()
                    .flatten(),
            )
            .collect(),
            net: Some(net),
            ..Default::default()
        };
        match c.call("n1", Request::Run(spec)).await? {
            Response::Container(_) => {}
            r => return Err(unexpected(r)),
        }
        let to: SocketAddr = format!("{ip}:{PORT}").parse()?;
        let t0 = Instant::now();
        let pinger = loop {
            match Pinger::start(to) {
                Ok(p) => break p,
                Err(e) if t0.elapsed() > Duration::from_secs(60) => return Err(e),
                Err(_) => tokio::time::sleep(Duration::from_millis(200)).await,
            }
        };
        pinger.gap_since(Instant::now())?;

        let mut floor = Row {
            size: size.into(),
            mode: "floor".into(),
            ..Default::default()
        };
        for _ in 0..runs {
            let t = Instant::now();
            let hold = pinger.hold();
            let ck = match c
                .call(
                    "n1",
                    Request::Checkpoint {
                        name: name.clone(),
                        leave_running: false,
                        export: None,
                    },
                )
                .await?
            {
                Response::Checkpointed(r) => r,
                r => return Err(unexpected(r)),
            };
            c.call("n1", Request::Restore { name: name.clone() })
                .await?;
            let wall = t.elapsed().as_secs_f64() * 1e3;
            drop(hold);
            floor.gap_ms.push(pinger.gap_since(t)?);
            floor.total_ms.push(wall);
            floor.frozen_ms.push(wall);
            floor.criu_frozen_ms.push(ck.frozen_ms);
            floor.bytes.push(ck.image_bytes as f64);
        }
        eprintln!("bench: {size} floor {}", span(&floor.frozen_ms));
        rows.push(floor);

        let mut at = "n1";
        for &(label, (fs, compress, memory)) in modes {
            let mut row = Row {
                size: size.into(),
                mode: label.into(),
                ..Default::default()
            };
            for _ in 0..runs {
                let to = if at == "n1" { "n2" } else { "n1" };
                let node = cl.node(to)?.clone();
                let t = Instant::now();
                let hold = pinger.hold();
                let rep: MigrateReport = match c
                    .call(
                        at,
                        Request::Migrate {
                            name: name.clone(),
                            to: node.name.clone(),
                            to_addr: node.addr,
                            fs,
                            compress,
                            memory,
                            progress: false,
                        },
                    )
                    .await
                    .with_context(|| format!("{size} {label}: migrate {at} -> {to}"))?
                {
                    Response::Migrated(r) => r,
                    r => return Err(unexpected(r)),
                };
                drop(hold);
                if rep.outcome != herd_wire::handoff::Outcome::Moved {
                    bail!(
                        "{size} {label}: the migration {at} -> {to} did not move ({}): {}",
                        rep.outcome.as_str(),
                        rep.reason.as_deref().unwrap_or("no reason")
                    );
                }
                at = to;
                row.gap_ms.push(pinger.gap_since(t)?);
                row.total_ms.push(rep.total_ms);
                row.frozen_ms.push(rep.frozen_ms);
                row.criu_frozen_ms.push(rep.criu_frozen_ms);
                row.bytes.push(rep.bytes as f64);
                row.memory_mode.push(rep.memory_mode.clone());
                if rep.page_bytes > 0 && rep.dump_ms > 0.0 {
                    row.mib_s
                        .push(rep.page_bytes as f64 / (1 << 20) as f64 / (rep.dump_ms / 1e3));
                }
                if !rep.pre_rounds.is_empty() {
                    eprintln!(
                        "bench: {size} {label}: pre-dump rounds (pages) {:?}, stopped: {}; \
                         frozen dump {} page bytes{}",
                        rep.pre_rounds,
                        rep.pre_stop.as_deref().unwrap_or("-"),
                        rep.page_bytes,
                        if guests { " (VM lab)" } else { "" }
                    );
                    row.pre_rounds.push(rep.pre_rounds.clone());
                }
            }
            eprintln!(
                "bench: {size} {label}: total {} frozen {} gap {}",
                span(&row.total_ms),
                span(&row.frozen_ms),
                span(&row.gap_ms)
            );
            rows.push(row);
        }
        drop(pinger);
        c.call(
            at,
            Request::Remove {
                name: name.clone(),
                force: true,
            },
        )
        .await?;
    }
    Ok(rows)
}

/// MiB the plain TCP row sends.
const TCP_MIB: u64 = 1024;

/// A plain TCP stream from n1's netns to n2's (the path the agents' QUIC
/// takes: veth, the lab bridge, veth), [`TCP_MIB`] MiB, MiB/s from the
/// first write until the receiver saw the end.
fn tcp_row(cl: &Cluster) -> Result<Row> {
    let ns = |n: &str| -> Result<std::path::PathBuf> {
        let node = cl.node(n)?;
        let name = node.netns.clone().context("a lab node without a netns")?;
        Ok(herd_netlink::netns::path(&name))
    };
    let (ns1, ns2) = (ns("n1")?, ns("n2")?);
    let to = SocketAddr::new(cl.node("n2")?.addr.ip(), PORT + 101);
    let (ready_tx, ready_rx) = std::sync::mpsc::channel();
    let server = std::thread::spawn(move || {
        herd_netlink::netns::run_in(&ns2, move || -> Result<(u64, Instant)> {
            let l = std::net::TcpListener::bind(to).with_context(|| format!("bind {to}"))?;
            let _ = ready_tx.send(());
            let (mut s, _) = l.accept()?;
            let mut buf = vec![0u8; 1 << 20];
            let mut n = 0u64;
            loop {
                match std::io::Read::read(&mut s, &mut buf)? {
                    0 => return Ok((n, Instant::now())),
                    k => n += k as u64,
                }
            }
        })
    });
    ready_rx
        .recv_timeout(Duration::from_secs(10))
        .context("the TCP receiver in n2 did not start")?;
    let t0 = herd_netlink::netns::run_in(&ns1, move || -> Result<Instant> {
        let mut s = TcpStream::connect_timeout(&to, Duration::from_secs(5))
            .with_context(|| format!("connect to {to}"))?;
        // Not compressible, though nothing on the path compresses.
        let mut buf = vec![0u8; 1 << 20];
        let mut x = 0x9e37_79b9_7f4a_7c15u64;
        for b in buf.iter_mut() {
            x ^= x << 13;
            x ^= x >> 7;
            x ^= x << 17;
            *b = x as u8;
        }
        let t0 = Instant::now();
        for _ in 0..TCP_MIB {
            s.write_all(&buf)?;
        }
        s.shutdown(std::net::Shutdown::Write)?;
        Ok(t0)
    })??;
    let (n, end) = server
        .join()
        .map_err(|_| anyhow::anyhow!("the TCP receiver panicked"))???;
    if n != TCP_MIB << 20 {
        bail!("plain TCP: {n} bytes arrived of {}", TCP_MIB << 20);
    }
    let rate = n as f64 / (1 << 20) as f64 / end.duration_since(t0).as_secs_f64();
    eprintln!("bench: plain TCP n1 -> n2: {rate:.1} MiB/s");
    Ok(Row {
        size: "link".into(),
        mode: "tcp".into(),
        mib_s: vec![rate],
        ..Default::default()
    })
}
