//! `herd bench checkpoint`: what a checkpoint and a restore cost through
//! Herd, next to plain CRIU doing the same to the same workload in the same
//! run (the floor).
//!
//! ```text
//! herd bench checkpoint [--runs 5] [--json] [--keep-lab]
//! ```
//!
//! The bench starts its own lab (`hbench`, one node), imports a busybox
//! image holding the static `herd-work`, and for each size (`small`:
//! `herd-work counter --mib 0`; `256MiB`: `--mib 256`, every page written
//! before the first `count=` line) does `--runs` times, interleaved:
//!
//! * **herd**: run a fresh container, wait for two `count=` lines, then time
//!   (wall clock, here in the client) `Checkpoint{leave_running: false}` and
//!   `Restore`; keep the agent's `total_ms` and CRIU's frozen / restore time
//!   from the reports; check the restored container counts on; remove it.
//! * **floor**: the same workload as a plain host process (`setsid`, stdin,
//!   stdout and stderr pipes held by the bench, as the agent does), dumped
//!   with `criu dump -t PID -D DIR --tcp-established --ext-unix-sk
//!   --file-locks -v4 -o dump.log` and restored with `criu restore -D DIR -d
//!   ... --inherit-fd fd[N]:pipe:[ino]` (new pipes for the dumped stdio, the
//!   way the agent and runc do); same CRIU options and log level as the
//!   agent's RPC requests. CRIU's `stats-dump` / `stats-restore` give the
//!   frozen and restore times. The restored process must count on; then it
//!   is killed.
//!
//! It prints, per size and operation, median / min / max (ms) for herd and
//! for the floor, the ratio of the medians, and CRIU's own times. Nothing
//! is asserted: this is a measurement. The lab is torn down at the end, on
//! errors and on Ctrl-C too (unless `--keep-lab`); every process the bench
//! starts is killed, and so are the agent's log shims of the bench lab,
//! which `lab down` leaves behind (they hold the write ends of their own
//! pipes, so they never see EOF).

use std::collections::VecDeque;
use std::fs::{self, File};
use std::io::{BufRead, BufReader};
use std::os::fd::{AsRawFd, OwnedFd};
use std::os::unix::process::CommandExt;
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Output, Stdio};
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use anyhow::{bail, Context, Result};
use herd_wire::{Request, Response, RunSpec};

use herd::client::{unexpected, Client};
use herd::cluster::Cluster;
use herd::{lab, rootfs};

const LAB: &str = "hbench";
const NODE: &str = "n1";
const IMAGE: &str = "hbench-busybox";
const INTERVAL_MS: &str = "100";
/// How long a fresh workload may take to print its first lines.
const START_TIMEOUT: Duration = Duration::from_secs(60);
/// How long a restored workload may take to print a new line.
const RESUME_TIMEOUT: Duration = Duration::from_secs(20);
/// Upper bound for one checkpoint or restore request.
const CALL_TIMEOUT: Duration = Duration::from_secs(300);

struct Size {
    /// Shown in the table.
    label: &'static str,
    /// Used in container and directory names.
    tag: &'static str,
    mib: u64,
}

const SIZES: [Size; 2] = [
    Size {
        label: "small",
        tag: "small",
        mib: 0,
    },
    Size {
        label: "256MiB",
        tag: "256m",
        mib: 256,
    },
];

/// Set by Ctrl-C: every wait loop and every run checks it, then cleans up.
static CANCEL: AtomicBool = AtomicBool::new(false);

fn check_cancel() -> Result<()> {
    if CANCEL.load(Ordering::SeqCst) {
        bail!("interrupted");
    }
    Ok(())
}

/// `herd bench checkpoint`.
pub async fn checkpoint(runs: usize, json: bool, keep_lab: bool) -> Result<()> {
    if runs == 0 {
        bail!("--runs must be at least 1");
    }
    let work = rootfs::find_herd_work().filter(|p| p.exists()).context(
        "the static herd-work (target/static/release/herd-work) was not found: \
             run scripts/setup (or set HERD_WORK_BIN)",
    )?;
    let criu = criu_bin();
    let version = criu_version(&criu)?;
    eprintln!(
        "bench: {runs} run(s) per size; herd-work {}; {} ({version})",
        work.display(),
        criu.display()
    );
    watch_interrupts();

    let cl = lab::up(LAB, 1, &[]).await.with_context(|| {
        format!(
            "cannot start the bench lab {LAB} (if an earlier bench left it behind: \
             herd --lab {LAB} lab down)"
        )
    })?;
    eprintln!("bench: lab {LAB} is up");
    let result = run_all(&cl, &work, &criu, runs).await;
    let down = if keep_lab {
        eprintln!("bench: lab {LAB} kept (--keep-lab); remove it with `herd --lab {LAB} lab down`");
        Ok(())
    } else {
        let r = lab::down(LAB).await.map(|_| ());
        if r.is_ok() {
            eprintln!("bench: lab {LAB} is down");
        }
        let n = kill_log_shims(&cl.dir);
        if n > 0 {
            eprintln!(
                "herd: warning: killed {n} log shim(s) of lab {LAB} that outlived their containers \
                 (the agent's shims inherit the write ends of their own pipes)"
            );
        }
        r
    };
    let rows = match result {
        Ok(rows) => rows,
        Err(e) => {
            if let Err(d) = down {
                eprintln!("herd: warning: tearing down lab {LAB} also failed: {d:#}");
            }
            return Err(e);
        }
    };
    if json {
        println!("{}", serde_json::to_string_pretty(&rows_json(&rows))?);
    } else {
        print_table(&rows, runs);
    }
    down.with_context(|| format!("tear down lab {LAB}"))
}

/// Kills `herd-agent __log-shim LOG` processes whose LOG is under `lab_dir`
/// (left behind by the agent once their containers are gone); returns how many.
pub(crate) fn kill_log_shims(lab_dir: &Path) -> usize {
    let Ok(rd) = fs::read_dir("/proc") else {
        return 0;
    };
    let mut n = 0;
    for e in rd.flatten() {
        let Some(pid) = e.file_name().to_str().and_then(|s| s.parse::<i32>().ok()) else {
            continue;
        };
        let Ok(cmdline) = fs::read(e.path().join("cmdline")) else {
            continue;
        };
        let args: Vec<&[u8]> = cmdline.split(|b| *b == 0).collect();
        let is_shim = args.get(1) == Some(&&b"__log-shim"[..])
            && args
                .get(2)
                .map(|a| Path::new(&*String::from_utf8_lossy(a)).starts_with(lab_dir))
                .unwrap_or(false);
        if !is_shim {
            continue;
        }
        let p = Proc {
            pid,
            start: herd::process::proc_start(pid),
            child: None,
        };
        if p.alive() {
            n += 1;
        }
        drop(p); // SIGKILL, then wait until it is gone
    }
    n
}

/// `$HERD_CRIU` when set (as the agent does), else `criu` from PATH.
fn criu_bin() -> PathBuf {
    match std::env::var_os("HERD_CRIU") {
        Some(p) if !p.is_empty() => PathBuf::from(p),
        _ => PathBuf::from("criu"),
    }
}

fn criu_version(criu: &Path) -> Result<String> {
    let out = Command::new(criu)
        .arg("--version")
        .stdin(Stdio::null())
        .output()
        .with_context(|| {
            format!(
                "cannot run {} (CRIU >= 4.2 is needed: run scripts/setup)",
                criu.display()
            )
        })?;
    let text = String::from_utf8_lossy(&out.stdout);
    let v = text
        .lines()
        .find_map(|l| l.strip_prefix("Version:"))
        .map(|v| format!("CRIU {}", v.trim()));
    match v {
        Some(v) if out.status.success() => Ok(v),
        _ => bail!(
            "{} --version failed ({}): {}",
            criu.display(),
            out.status,
            String::from_utf8_lossy(&out.stderr).trim()
        ),
    }
}

/// First Ctrl-C: stop at the next step and clean up. Second: leave at once.
fn watch_interrupts() {
    tokio::spawn(async {
        while tokio::signal::ctrl_c().await.is_ok() {
            if CANCEL.swap(true, Ordering::SeqCst) {
                eprintln!("herd: interrupted again: exiting without cleanup");
                std::process::exit(130);
            }
            eprintln!("herd: interrupted: cleaning up (Ctrl-C again to leave at once)");
        }
    });
}

// ------------------------------------------------------------------ samples

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Op {
    Checkpoint,
    Restore,
}

impl Op {
    fn name(self) -> &'static str {
        match self {
            Op::Checkpoint => "checkpoint",
            Op::Restore => "restore",
        }
    }

    /// Which CRIU time the `*_criu` columns hold for this operation.
    fn criu_metric(self) -> &'static str {
        match self {
            Op::Checkpoint => "frozen",
            Op::Restore => "restore",
        }
    }
}

/// All samples of one size and operation. Milliseconds.
struct Row {
    size: &'static str,
    op: Op,
    /// Client-side wall clock of the request.
    herd: Vec<f64>,
    /// The agent's own `total_ms`.
    herd_agent: Vec<f64>,
    /// CRIU's frozen time (checkpoint) or restore time (restore), via the agent.
    herd_criu: Vec<f64>,
    /// Wall clock of the `criu dump` / `criu restore` command.
    floor: Vec<f64>,
    /// CRIU's frozen / restore time of the floor.
    floor_criu: Vec<f64>,
    /// Checkpoint rows only: image bytes, CRIU's memory dump and write times.
    herd_bytes: Vec<f64>,
    floor_bytes: Vec<f64>,
    herd_memdump: Vec<f64>,
    floor_memdump: Vec<f64>,
    herd_memwrite: Vec<f64>,
    floor_memwrite: Vec<f64>,
}

impl Row {
    fn new(size: &'static str, op: Op) -> Self {
        Row {
            size,
            op,
            herd: Vec::new(),
            herd_agent: Vec::new(),
            herd_criu: Vec::new(),
            floor: Vec::new(),
            floor_criu: Vec::new(),
            herd_bytes: Vec::new(),
            floor_bytes: Vec::new(),
            herd_memdump: Vec::new(),
            floor_memdump: Vec::new(),
            herd_memwrite: Vec::new(),
            floor_memwrite: Vec::new(),
        }
    }
}

#[derive(Debug, Clone, Copy, PartialEq)]
struct Summary {
    median: f64,
    min: f64,
    max: f64,
}

fn summary(v: &[f64]) -> Option<Summary> {
    if v.is_empty() {
        return None;
    }
    let mut s = v.to_vec();
    s.sort_by(f64::total_cmp);
    let n = s.len();
    let median = if n % 2 == 1 {
        s[n / 2]
    } else {
        (s[n / 2 - 1] + s[n / 2]) / 2.0
    };
    Some(Summary {
        median,
        min: s[0],
        max: s[n - 1],
    })
}

fn median(v: &[f64]) -> Option<f64> {
    summary(v).map(|s| s.median)
}

fn ratio(herd: &[f64], floor: &[f64]) -> Option<f64> {
    match (median(herd), median(floor)) {
        (Some(h), Some(f)) if f > 0.0 => Some(h / f),
        _ => None,
    }
}

// ---------------------------------------------------------------- the runs

async fn run_all(cl: &Cluster, work: &Path, criu: &Path, runs: usize) -> Result<Vec<Row>> {
    let mut c = Client::new(cl.clone())?;
    import_image(&mut c, cl, work).await?;
    let floor_root = cl.dir.join("bench-floor");
    let mut rows = Vec::new();
    for size in &SIZES {
        let mut ck = Row::new(size.label, Op::Checkpoint);
        let mut rs = Row::new(size.label, Op::Restore);
        for i in 1..=runs {
            check_cancel()?;
            let name = format!("{}-{i}", size.tag);
            let h = herd_run(&mut c, &name, size.mib).await;
            let removed = remove(&mut c, &name).await;
            let h = h.with_context(|| format!("herd, {} run {i}", size.label))?;
            removed?;

            check_cancel()?;
            let dir = floor_root.join(&name);
            let (w, cr, d) = (work.to_path_buf(), criu.to_path_buf(), dir.clone());
            let mib = size.mib;
            let f = tokio::task::spawn_blocking(move || floor_run(&w, &cr, &d, mib)).await?;
            let _ = fs::remove_dir_all(&dir);
            let f = f.with_context(|| format!("floor, {} run {i}", size.label))?;

            eprintln!(
                "bench: {:<6} {i}/{runs}: checkpoint herd {:7.1} ms (CRIU frozen {:6.1}) floor {:7.1} ms (frozen {:6.1}); \
                 restore herd {:7.1} ms (CRIU {:6.1}) floor {:7.1} ms (CRIU {:6.1})",
                size.label,
                h.ck_wall,
                h.ck.frozen_ms,
                f.dump_ms,
                f.frozen_ms,
                h.rs_wall,
                h.rs.criu_restore_ms,
                f.restore_ms,
                f.criu_restore_ms
            );
            ck.herd.push(h.ck_wall);
            ck.herd_agent.push(h.ck.total_ms);
            ck.herd_criu.push(h.ck.frozen_ms);
            ck.herd_bytes.push(h.ck.image_bytes as f64);
            ck.floor.push(f.dump_ms);
            ck.floor_criu.push(f.frozen_ms);
            ck.floor_bytes.push(f.image_bytes as f64);
            ck.herd_memdump.push(h.ck.memdump_ms);
            ck.floor_memdump.push(f.memdump_ms);
            ck.herd_memwrite.push(h.ck.memwrite_ms);
            ck.floor_memwrite.push(f.memwrite_ms);
            rs.herd.push(h.rs_wall);
            rs.herd_agent.push(h.rs.total_ms);
            rs.herd_criu.push(h.rs.criu_restore_ms);
            rs.floor.push(f.restore_ms);
            rs.floor_criu.push(f.criu_restore_ms);
        }
        rows.push(ck);
        rows.push(rs);
    }
    let _ = fs::remove_dir_all(&floor_root);
    Ok(rows)
}

async fn import_image(c: &mut Client, cl: &Cluster, work: &Path) -> Result<()> {
    let dir = cl.dir.join("bench-rootfs");
    let _ = fs::remove_dir_all(&dir);
    fs::create_dir_all(&dir).with_context(|| format!("create {}", dir.display()))?;
    let r = async {
        rootfs::build_busybox(&dir, &[work.to_path_buf()])?;
        let req = Request::ImageImport {
            name: IMAGE.to_string(),
            path: dir.to_string_lossy().into_owned(),
        };
        match c.call(NODE, req).await? {
            Response::Image(_) => Ok(()),
            r => Err(unexpected(r)),
        }
    }
    .await;
    let _ = fs::remove_dir_all(&dir);
    r.context("import the bench image")
}

struct HerdSample {
    ck_wall: f64,
    ck: herd_wire::CheckpointReport,
    rs_wall: f64,
    rs: herd_wire::RestoreReport,
}

fn ms(t: Instant) -> f64 {
    t.elapsed().as_secs_f64() * 1e3
}

async fn timed_call(c: &mut Client, req: Request) -> Result<(Response, f64)> {
    let t = Instant::now();
    let r = tokio::time::timeout(CALL_TIMEOUT, c.call(NODE, req))
        .await
        .map_err(|_| anyhow::anyhow!("no answer within {} s", CALL_TIMEOUT.as_secs()))??;
    Ok((r, ms(t)))
}

async fn herd_run(c: &mut Client, name: &str, mib: u64) -> Result<HerdSample> {
    let mut cmd = vec!["/bin/herd-work".to_string()];
    cmd.extend(work_args(mib));
    let spec = RunSpec {
        name: name.to_string(),
        image: IMAGE.to_string(),
        cmd,
        ..Default::default()
    };
    match c.call(NODE, Request::Run(spec)).await? {
        Response::Container(_) => {}
        r => return Err(unexpected(r)),
    }
    let before = wait_herd_count(c, name, 2, START_TIMEOUT).await?;

    let (r, ck_wall) = timed_call(
        c,
        Request::Checkpoint {
            name: name.to_string(),
            leave_running: false,
            export: None,
        },
    )
    .await
    .context("checkpoint")?;
    let Response::Checkpointed(ck) = r else {
        return Err(unexpected(r));
    };
    // What the log holds now is what the dumped process printed: the restored
    // one must print more than that.
    let dumped = last_count(herd_log_tail(c, name).await?.iter().map(String::as_str));
    let before = before.max(dumped.unwrap_or(0));
    let (r, rs_wall) = timed_call(
        c,
        Request::Restore {
            name: name.to_string(),
        },
    )
    .await
    .context("restore")?;
    let Response::Restored(rs) = r else {
        return Err(unexpected(r));
    };
    wait_herd_count(c, name, before + 1, RESUME_TIMEOUT)
        .await
        .context("the restored container did not count on")?;
    Ok(HerdSample {
        ck_wall,
        ck,
        rs_wall,
        rs,
    })
}

async fn remove(c: &mut Client, name: &str) -> Result<()> {
    let req = Request::Remove {
        name: name.to_string(),
        force: true,
    };
    match tokio::time::timeout(CALL_TIMEOUT, c.call(NODE, req)).await {
        Ok(Ok(_)) => Ok(()),
        Ok(Err(e)) => Err(e.context(format!("remove container {name}"))),
        Err(_) => bail!("remove container {name}: no answer"),
    }
}

/// The arguments of the workload after the program name.
fn work_args(mib: u64) -> Vec<String> {
    vec![
        "counter".into(),
        "--interval-ms".into(),
        INTERVAL_MS.into(),
        "--mib".into(),
        mib.to_string(),
    ]
}

/// The highest `count=N` among `lines`.
fn last_count<'a>(lines: impl IntoIterator<Item = &'a str>) -> Option<u64> {
    lines
        .into_iter()
        .filter_map(|l| {
            let rest = l.trim().strip_prefix("count=")?;
            rest.split_whitespace().next()?.parse::<u64>().ok()
        })
        .max()
}

/// The container's last log lines.
async fn herd_log_tail(c: &mut Client, name: &str) -> Result<Vec<String>> {
    let mut recv = c
        .stream(
            NODE,
            Request::Logs {
                name: name.to_string(),
                follow: false,
                tail: Some(10),
            },
        )
        .await?;
    let mut lines = Vec::new();
    loop {
        let msg: Option<Response> =
            herd_quic::rpc::recv_msg(&mut recv, herd_wire::frame::MAX_FRAME).await?;
        match msg {
            Some(Response::Log(l)) => lines.push(l.line),
            Some(Response::End) | None => return Ok(lines),
            Some(Response::Error(e)) => bail!("{NODE}: {e}"),
            Some(r) => return Err(unexpected(r)),
        }
    }
}

/// Waits until the container's log shows `count=N` with N >= `want`;
/// returns the highest N seen.
async fn wait_herd_count(c: &mut Client, name: &str, want: u64, timeout: Duration) -> Result<u64> {
    let t0 = Instant::now();
    loop {
        check_cancel()?;
        let lines = herd_log_tail(c, name).await?;
        if let Some(n) = last_count(lines.iter().map(String::as_str)) {
            if n >= want {
                return Ok(n);
            }
        }
        if t0.elapsed() > timeout {
            bail!(
                "container {name}: no count={want} line within {} s; its last lines:\n{}",
                timeout.as_secs(),
                lines.join("\n")
            );
        }
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
}

// --------------------------------------------------------------- the floor

struct FloorSample {
    dump_ms: f64,
    frozen_ms: f64,
    memdump_ms: f64,
    memwrite_ms: f64,
    restore_ms: f64,
    criu_restore_ms: f64,
    image_bytes: u64,
}

/// Lines read from one pipe by a thread of its own, until EOF.
struct PipeWatch {
    last_count: AtomicU64,
    tail: Mutex<VecDeque<String>>,
    eof: AtomicBool,
}

impl PipeWatch {
    fn start(fd: OwnedFd) -> Arc<PipeWatch> {
        let w = Arc::new(PipeWatch {
            last_count: AtomicU64::new(0),
            tail: Mutex::new(VecDeque::new()),
            eof: AtomicBool::new(false),
        });
        let w2 = w.clone();
        std::thread::spawn(move || {
            for line in BufReader::new(File::from(fd)).lines() {
                let Ok(line) = line else { break };
                if let Some(n) = last_count([line.as_str()]) {
                    w2.last_count.fetch_max(n, Ordering::SeqCst);
                }
                let mut t = w2.tail.lock().unwrap_or_else(|e| e.into_inner());
                t.push_back(line);
                if t.len() > 10 {
                    t.pop_front();
                }
            }
            w2.eof.store(true, Ordering::SeqCst);
        });
        w
    }

    fn count(&self) -> u64 {
        self.last_count.load(Ordering::SeqCst)
    }

    fn tail(&self) -> String {
        let t = self.tail.lock().unwrap_or_else(|e| e.into_inner());
        t.iter().cloned().collect::<Vec<_>>().join("\n")
    }
}

/// A process the bench started or restored: killed (and reaped, when it is
/// our child) on drop, unless it is already gone.
struct Proc {
    pid: i32,
    start: Option<u64>,
    child: Option<Child>,
}

impl Proc {
    fn alive(&self) -> bool {
        self.start.is_some() && herd::process::proc_start(self.pid) == self.start
    }
}

impl Drop for Proc {
    fn drop(&mut self) {
        if let Some(mut ch) = self.child.take() {
            let _ = ch.kill();
            let _ = ch.wait();
            return;
        }
        if !self.alive() {
            return;
        }
        let _ = nix::sys::signal::kill(
            nix::unistd::Pid::from_raw(self.pid),
            nix::sys::signal::Signal::SIGKILL,
        );
        // Not our child (CRIU's, then init's): wait until it is gone or a zombie.
        let t0 = Instant::now();
        while self.alive() && t0.elapsed() < Duration::from_secs(5) {
            std::thread::sleep(Duration::from_millis(10));
        }
    }
}

/// Runs a CRIU command in its own process group (a Ctrl-C at the terminal
/// must not kill it half-way); returns its output and wall clock in ms.
fn run_criu(mut cmd: Command) -> Result<(Output, f64)> {
    cmd.stdin(Stdio::null()).process_group(0);
    let t = Instant::now();
    let out = cmd.output().context("cannot run criu")?;
    Ok((out, ms(t)))
}

fn criu_failed(what: &str, out: &Output, log: &Path) -> anyhow::Error {
    let log_tail = fs::read_to_string(log)
        .map(|s| {
            let v: Vec<&str> = s.lines().rev().take(15).collect();
            v.into_iter().rev().collect::<Vec<_>>().join("\n")
        })
        .unwrap_or_default();
    anyhow::anyhow!(
        "{what} failed ({}): {}\nlast lines of {}:\n{log_tail}",
        out.status,
        String::from_utf8_lossy(&out.stderr).trim(),
        log.display()
    )
}

/// Waits until `w` has seen `count=N` with N >= `want`.
fn wait_pipe_count(w: &PipeWatch, err: &PipeWatch, want: u64, timeout: Duration) -> Result<u64> {
    let t0 = Instant::now();
    loop {
        check_cancel()?;
        let n = w.count();
        if n >= want {
            return Ok(n);
        }
        if w.eof.load(Ordering::SeqCst) || t0.elapsed() > timeout {
            bail!(
                "no count={want} line ({}); stdout:\n{}\nstderr:\n{}",
                if w.eof.load(Ordering::SeqCst) {
                    "its stdout closed".to_string()
                } else {
                    format!("within {} s", timeout.as_secs())
                },
                w.tail(),
                err.tail()
            );
        }
        std::thread::sleep(Duration::from_millis(10));
    }
}

/// One floor run: start, dump, restore, check, kill. Blocking.
fn floor_run(work: &Path, criu: &Path, dir: &Path, mib: u64) -> Result<FloorSample> {
    let _ = fs::remove_dir_all(dir);
    fs::create_dir_all(dir).with_context(|| format!("create {}", dir.display()))?;

    // The workload: its own session, stdio pipes that we hold.
    let mut cmd = Command::new(work);
    cmd.args(work_args(mib))
        .stdin(Stdio::piped())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped());
    // SAFETY: setsid is async-signal-safe.
    unsafe {
        cmd.pre_exec(|| {
            if libc::setsid() < 0 {
                return Err(std::io::Error::last_os_error());
            }
            Ok(())
        });
    }
    let mut child = cmd
        .spawn()
        .with_context(|| format!("start {}", work.display()))?;
    let pid = child.id() as i32;
    let stdin = child.stdin.take();
    let out = child.stdout.take().map(OwnedFd::from);
    let err = child.stderr.take().map(OwnedFd::from);
    let mut proc_ = Proc {
        pid,
        start: herd::process::proc_start(pid),
        child: Some(child),
    };
    let (Some(out), Some(err)) = (out, err) else {
        bail!("no stdio pipes for {}", work.display());
    };
    let out = PipeWatch::start(out);
    let err = PipeWatch::start(err);
    wait_pipe_count(&out, &err, 2, START_TIMEOUT).context("the workload did not start")?;
    let keys: Vec<String> = (0..3)
        .map(|fd| {
            fs::read_link(format!("/proc/{pid}/fd/{fd}"))
                .map(|p| p.to_string_lossy().into_owned())
                .with_context(|| format!("readlink /proc/{pid}/fd/{fd}"))
        })
        .collect::<Result<_>>()?;

    // Dump.
    let mut dump = Command::new(criu);
    dump.arg("dump")
        .arg("-t")
        .arg(pid.to_string())
        .arg("-D")
        .arg(dir)
        .args(["--tcp-established", "--ext-unix-sk", "--file-locks"])
        .args(["-v4", "-o", "dump.log"]);
    let (o, dump_ms) = run_criu(dump)?;
    if !o.status.success() {
        return Err(criu_failed("criu dump", &o, &dir.join("dump.log")));
    }
    // CRIU killed it; reap it so that its pid is free for the restore.
    if let Some(mut ch) = proc_.child.take() {
        let _ = ch.wait();
    }
    drop(proc_);
    drop(stdin);
    // Everything the dumped process printed (its stdout reaches EOF now that
    // it is dead): the restored one must print more than that.
    let t0 = Instant::now();
    while !out.eof.load(Ordering::SeqCst) && t0.elapsed() < Duration::from_secs(5) {
        std::thread::sleep(Duration::from_millis(5));
    }
    let before = out.count();
    let dump = herd_criu::read_dump_stats(dir)?;
    let (frozen_us, memdump_us, memwrite_us) = (
        dump.frozen_time_us,
        dump.memdump_time_us,
        dump.memwrite_time_us,
    );
    let image_bytes = dir_bytes(dir);

    // Restore, with new pipes for the dumped stdio.
    let pipes: Vec<(OwnedFd, OwnedFd)> = (0..3)
        .map(|_| nix::unistd::pipe2(nix::fcntl::OFlag::O_CLOEXEC).context("pipe2"))
        .collect::<Result<_>>()?;
    let mut ours = Vec::new(); // the restored process's ends
    let mut keep = Vec::new(); // ours
    for (fd, (r, w)) in pipes.into_iter().enumerate() {
        if fd == 0 {
            ours.push(r);
            keep.push(w);
        } else {
            ours.push(w);
            keep.push(r);
        }
    }
    let pidfile = dir.join("restore.pid");
    let mut rst = Command::new(criu);
    rst.arg("restore")
        .arg("-D")
        .arg(dir)
        .arg("-d")
        .args(["--tcp-established", "--ext-unix-sk", "--file-locks"])
        .args(["-v4", "-o", "restore.log"])
        .arg("--pidfile")
        .arg(&pidfile);
    let mut pass = Vec::new();
    for (key, fd) in keys.iter().zip(&ours) {
        if key.starts_with("pipe:") {
            let n = fd.as_raw_fd();
            rst.arg("--inherit-fd").arg(format!("fd[{n}]:{key}"));
            pass.push(n);
        }
    }
    // SAFETY: fcntl is async-signal-safe; these fds are ours and open.
    unsafe {
        rst.pre_exec(move || {
            for &fd in &pass {
                if libc::fcntl(fd, libc::F_SETFD, 0) < 0 {
                    return Err(std::io::Error::last_os_error());
                }
            }
            Ok(())
        });
    }
    let (o, restore_ms) = run_criu(rst)?;
    drop(ours);
    let restored_pid = fs::read_to_string(&pidfile)
        .ok()
        .and_then(|s| s.trim().parse::<i32>().ok());
    let _restored = restored_pid.map(|p| Proc {
        pid: p,
        start: herd::process::proc_start(p),
        child: None,
    });
    if !o.status.success() {
        return Err(criu_failed("criu restore", &o, &dir.join("restore.log")));
    }
    if restored_pid.is_none() {
        bail!("criu restore wrote no pid to {}", pidfile.display());
    }
    let mut keep = keep.into_iter();
    let (Some(stdin), Some(out), Some(err)) = (keep.next(), keep.next(), keep.next()) else {
        bail!("pipes missing");
    };
    let out = PipeWatch::start(out);
    let err = PipeWatch::start(err);
    wait_pipe_count(&out, &err, before + 1, RESUME_TIMEOUT)
        .context("the restored process did not count on")?;
    drop(stdin);
    let restore_us = herd_criu::read_restore_stats(dir)?.restore_time_us;
    Ok(FloorSample {
        dump_ms,
        frozen_ms: frozen_us as f64 / 1e3,
        memdump_ms: memdump_us as f64 / 1e3,
        memwrite_ms: memwrite_us as f64 / 1e3,
        restore_ms,
        criu_restore_ms: restore_us as f64 / 1e3,
        image_bytes,
    })
    // `_restored` is killed here.
}

/// Bytes of the regular files in `dir` (not recursive), logs left out.
fn dir_bytes(dir: &Path) -> u64 {
    fs::read_dir(dir)
        .map(|rd| {
            rd.flatten()
                .filter(|e| !e.file_name().to_string_lossy().ends_with(".log"))
                .filter_map(|e| e.metadata().ok())
                .filter(|m| m.is_file())
                .map(|m| m.len())
                .sum()
        })
        .unwrap_or(0)
}

fn round3(x: f64) -> f64 {
    (x * 1e3).round() / 1e3
}

fn us(v: Option<f64>) -> Option<f64> {
    v.map(round3)
}

fn rows_json(rows: &[Row]) -> serde_json::Value {
    let v: Vec<serde_json::Value> = rows
        .iter()
        .map(|r| {
            let h = summary(&r.herd);
            let f = summary(&r.floor);
            serde_json::json!({
                "size": r.size,
                "op": r.op.name(),
                "runs": r.herd.len(),
                "herd_median_ms": us(h.map(|s| s.median)),
                "herd_min_ms": us(h.map(|s| s.min)),
                "herd_max_ms": us(h.map(|s| s.max)),
                "floor_median_ms": us(f.map(|s| s.median)),
                "floor_min_ms": us(f.map(|s| s.min)),
                "floor_max_ms": us(f.map(|s| s.max)),
                "ratio": us(ratio(&r.herd, &r.floor)),
                "herd_agent_median_ms": us(median(&r.herd_agent)),
                "criu_metric": r.op.criu_metric(),
                "herd_criu_median_ms": us(median(&r.herd_criu)),
                "floor_criu_median_ms": us(median(&r.floor_criu)),
                "herd_image_bytes": median(&r.herd_bytes).map(|b| b as u64),
                "floor_image_bytes": median(&r.floor_bytes).map(|b| b as u64),
                "herd_memdump_median_ms": us(median(&r.herd_memdump)),
                "floor_memdump_median_ms": us(median(&r.floor_memdump)),
                "herd_memwrite_median_ms": us(median(&r.herd_memwrite)),
                "floor_memwrite_median_ms": us(median(&r.floor_memwrite)),
                "herd_ms": r.herd.iter().copied().map(round3).collect::<Vec<_>>(),
                "floor_ms": r.floor.iter().copied().map(round3).collect::<Vec<_>>(),
            })
        })
        .collect();
    serde_json::Value::Array(v)
}

fn print_table(rows: &[Row], runs: usize) {
    let f = |v: Option<f64>| v.map(|x| format!("{x:.1}")).unwrap_or_else(|| "-".into());
    println!(
        "{:<7} {:<10} {:>11} {:>8} {:>8} {:>12} {:>9} {:>9} {:>6} {:>10} {:>9} {:>10}",
        "size",
        "op",
        "herd_median",
        "herd_min",
        "herd_max",
        "floor_median",
        "floor_min",
        "floor_max",
        "ratio",
        "herd_agent",
        "herd_criu",
        "floor_criu"
    );
    for r in rows {
        let h = summary(&r.herd);
        let fl = summary(&r.floor);
        println!(
            "{:<7} {:<10} {:>11} {:>8} {:>8} {:>12} {:>9} {:>9} {:>6} {:>10} {:>9} {:>10}",
            r.size,
            r.op.name(),
            f(h.map(|s| s.median)),
            f(h.map(|s| s.min)),
            f(h.map(|s| s.max)),
            f(fl.map(|s| s.median)),
            f(fl.map(|s| s.min)),
            f(fl.map(|s| s.max)),
            ratio(&r.herd, &r.floor)
                .map(|x| format!("{x:.2}"))
                .unwrap_or_else(|| "-".into()),
            f(median(&r.herd_agent)),
            f(median(&r.herd_criu)),
            f(median(&r.floor_criu)),
        );
    }
    println!();
    println!(
        "ms, {runs} run(s) each. herd: wall clock of the request at the client; floor: wall clock of \
         `criu dump` / `criu restore`; ratio = herd_median / floor_median."
    );
    println!(
        "herd_agent: the agent's own total_ms (median). herd_criu / floor_criu: CRIU's own time (median), \
         checkpoint = frozen time (stats-dump), restore = restore time (stats-restore)."
    );
    for r in rows.iter().filter(|r| r.op == Op::Checkpoint) {
        if let (Some(h), Some(fl)) = (median(&r.herd_bytes), median(&r.floor_bytes)) {
            println!(
                "{} checkpoint (medians): images herd {}, floor {}; CRIU memory dump / write ms: herd {} / {}, floor {} / {}",
                r.size,
                herd::ui::human_bytes(h as u64),
                herd::ui::human_bytes(fl as u64),
                f(median(&r.herd_memdump)),
                f(median(&r.herd_memwrite)),
                f(median(&r.floor_memdump)),
                f(median(&r.floor_memwrite)),
            );
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn summaries() {
        let s = summary(&[5.0, 1.0, 3.0]).unwrap();
        assert_eq!((s.median, s.min, s.max), (3.0, 1.0, 5.0));
        assert_eq!(median(&[4.0, 1.0, 2.0, 3.0]), Some(2.5));
        assert_eq!(summary(&[]), None);
        assert_eq!(ratio(&[2.0], &[1.0]), Some(2.0));
        assert_eq!(ratio(&[2.0], &[]), None);
    }

    #[test]
    fn counts_from_lines() {
        assert_eq!(
            last_count(["count=3 pattern=ok", "junk", "count=12 pattern=ok"]),
            Some(12)
        );
        assert_eq!(last_count(["exiting total=4"]), None);
    }
}
