//! `herd-work`: a small static workload for Herd's tests and experiments (std only).
//!
//! ```text
//! herd-work <cpu|mem|io|mixed|counter> [--threads N] [--mib M] [--interval-ms MS]
//!           [--duration S] [--dir PATH] [--state FILE]
//! ```
//!
//! Kinds (N worker threads, default 1):
//! - `cpu`: each op is a fixed unit of integer mixing arithmetic (~8k xorshift rounds).
//! - `mem`: allocates M MiB (default 64), writes a pattern to every word (touching
//!   every page), split evenly between the threads; each op picks a pseudo-random
//!   64 KiB region, verifies its pattern and rewrites it with the next generation.
//! - `io`: each op writes 4 KiB to `<dir>/herd-work-<pid>-<thread>.io` (default dir
//!   `/tmp`), fsyncs it, reads it back and checks it. Files are removed on exit.
//! - `mixed`: ceil(N/2) cpu threads plus max(N/2, 1) io threads.
//! - `counter`: no workers; a stateful checkpoint/restore probe. It keeps a count in
//!   process memory only (so a CRIU restore continues it) and M MiB (default 0) of
//!   patterned memory that it verifies every interval.
//!
//! Output on stdout, one line per interval (default 1000 ms), flushed each time:
//!
//! ```text
//! ops=<ops in this interval> total=<ops since start> t=<seconds since start, 1 decimal>
//! ```
//!
//! (`counter` prints `count=<n> pattern=ok` instead, n = 1, 2, 3, ...). `--duration S`
//! stops at S seconds; an interval cut short by it is not reported. Monitors parse
//! the `ops=<n>` / `count=<n>` prefix. On SIGTERM/SIGINT, or when `--duration S` is
//! over, workers stop and a last line `exiting total=<total ops | count>` is printed,
//! exit code 0. A failed pattern check (`mem`, `counter`, `io` read-back) prints
//! `pattern=CORRUPT at offset <byte offset>` (`io`: `io=CORRUPT ...`) on stdout and
//! stderr and exits with code 3. Bad arguments: one error line plus the usage line on
//! stderr, exit 2. Other runtime errors (e.g. `--dir` unusable): exit 1.
//!
//! `--state FILE` additionally writes the latest report line to FILE (write + rename)
//! every interval; it is never read back.
//!
//! Time: `t` is the sum of the reporter's measured sleeps, each capped at one interval,
//! so a freeze or a monotonic clock jump (checkpoint, restore on another host) advances
//! `t` and `--duration` by at most one interval rather than stalling or skipping.
//!
//! Signals: std has no signal API, so the SIGTERM/SIGINT handler is installed through
//! the C library's `signal(2)` that std already links (no extra crate); it only sets an
//! atomic flag that the reporter polls every <= 50 ms.

mod args;
mod net;
mod pattern;

use std::fs::{self, OpenOptions};
use std::io::{Read, Seek, SeekFrom, Write};
use std::path::{Path, PathBuf};
use std::process::ExitCode;
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::time::{Duration, Instant};

use args::{Args, Kind, Parsed};

/// Set by SIGTERM/SIGINT or the end of `--duration`; every loop polls it.
static STOP: AtomicBool = AtomicBool::new(false);

fn stopping() -> bool {
    STOP.load(Ordering::Relaxed)
}

#[cfg(unix)]
mod sig {
    use std::os::raw::c_int;

    const SIGINT: c_int = 2;
    const SIGTERM: c_int = 15;

    extern "C" {
        // From the C library std links anyway (glibc, musl). BSD semantics on Linux:
        // the handler stays installed and interrupted syscalls restart.
        fn signal(signum: c_int, handler: extern "C" fn(c_int)) -> usize;
    }

    extern "C" fn on_signal(_: c_int) {
        // An atomic store is async-signal-safe.
        super::STOP.store(true, std::sync::atomic::Ordering::SeqCst);
    }

    pub fn install() {
        // SAFETY: `on_signal` only performs an atomic store, which is async-signal-safe.
        unsafe {
            signal(SIGTERM, on_signal);
            signal(SIGINT, on_signal);
        }
    }
}

#[cfg(not(unix))]
mod sig {
    pub fn install() {}
}

/// One op counter per worker, on its own cache line so workers don't contend.
#[repr(align(64))]
#[derive(Default)]
struct Counter(AtomicU64);

impl Counter {
    fn add(&self) {
        self.0.fetch_add(1, Ordering::Relaxed);
    }
}

fn sum(counters: &[Counter]) -> u64 {
    counters.iter().map(|c| c.0.load(Ordering::Relaxed)).sum()
}

/// A tiny xorshift PRNG, seeded per thread: "random-ish" is all we need.
struct Rng(u64);

impl Rng {
    fn new(seed: u64) -> Rng {
        Rng(pattern::word(seed, 0x5eed) | 1)
    }
    fn next(&mut self) -> u64 {
        let mut x = self.0;
        x ^= x << 13;
        x ^= x >> 7;
        x ^= x << 17;
        self.0 = x;
        x
    }
}

/// Reports a failed pattern check and exits with code 3.
fn corrupt(what: &str, offset: usize) -> ! {
    let line = format!("{what}=CORRUPT at offset {offset}");
    let mut out = std::io::stdout().lock();
    let _ = writeln!(out, "{line}");
    let _ = out.flush();
    eprintln!("herd-work: {line}");
    std::process::exit(3);
}

fn fatal(msg: String) -> ! {
    eprintln!("herd-work: {msg}");
    std::process::exit(1);
}

// ---------------------------------------------------------------- workloads

/// The fixed unit of cpu work: integer mixing the optimiser cannot fold away.
fn cpu_unit(seed: u64) -> u64 {
    let mut x = std::hint::black_box(seed) | 1;
    let mut acc = 0u64;
    for _ in 0..8192 {
        x ^= x << 13;
        x ^= x >> 7;
        x ^= x << 17;
        acc = acc
            .wrapping_add(x.wrapping_mul(0x9E37_79B9_7F4A_7C15))
            .rotate_left(5);
    }
    std::hint::black_box(acc)
}

fn cpu_worker(id: u64, counter: &Counter) {
    let mut seed = id;
    while !stopping() {
        seed = cpu_unit(seed);
        counter.add();
    }
}

const REGION_WORDS: usize = 64 * 1024 / 8;

/// Owns `chunk`, whose first word is word `base` of the whole buffer.
fn mem_worker(id: u64, chunk: &mut [u64], base: usize, counter: &Counter) {
    let region = REGION_WORDS.min(chunk.len()).max(1);
    let nregions = chunk.len().div_ceil(region);
    let mut gens = vec![0u64; nregions];
    // Touch every page: write generation 0 everywhere, a region at a time.
    for (r, part) in chunk.chunks_mut(region).enumerate() {
        if stopping() {
            return;
        }
        pattern::fill(part, (base + r * region) as u64, 0);
    }
    let mut rng = Rng::new(id);
    while !stopping() {
        let r = (rng.next() % nregions as u64) as usize;
        let start = r * region;
        let end = (start + region).min(chunk.len());
        let first = (base + start) as u64;
        let part = &mut chunk[start..end];
        if let Err(off) = pattern::verify(part, first, gens[r]) {
            corrupt("pattern", (base + start) * 8 + off);
        }
        gens[r] += 1;
        pattern::fill(part, first, gens[r]);
        counter.add();
    }
}

const IO_BYTES: usize = 4096;

fn io_path(dir: &Path, id: u64) -> PathBuf {
    dir.join(format!("herd-work-{}-{id}.io", std::process::id()))
}

/// One io op: write + fsync + read back + compare.
fn io_op(path: &Path, gen: u64, wbuf: &mut [u8], rbuf: &mut [u8]) -> std::io::Result<bool> {
    pattern::fill_bytes(wbuf, gen);
    let mut f = OpenOptions::new()
        .read(true)
        .write(true)
        .create(true)
        .truncate(true)
        .open(path)?;
    f.write_all(wbuf)?;
    f.sync_all()?;
    f.seek(SeekFrom::Start(0))?;
    f.read_exact(rbuf)?;
    Ok(wbuf == rbuf)
}

fn io_worker(id: u64, dir: &Path, counter: &Counter) {
    let path = io_path(dir, id);
    let mut wbuf = vec![0u8; IO_BYTES];
    let mut rbuf = vec![0u8; IO_BYTES];
    let mut gen = id << 32;
    while !stopping() {
        match io_op(&path, gen, &mut wbuf, &mut rbuf) {
            Ok(true) => counter.add(),
            Ok(false) => {
                let off = wbuf.iter().zip(&rbuf).position(|(a, b)| a != b);
                let _ = fs::remove_file(&path);
                corrupt("io", off.unwrap_or(0));
            }
            Err(e) => {
                let _ = fs::remove_file(&path);
                fatal(format!("io on {}: {e}", path.display()));
            }
        }
        gen += 1;
    }
    let _ = fs::remove_file(&path);
}

// ---------------------------------------------------------------- reporting

/// Counts time as described in the module doc and paces the report lines.
struct Clock {
    interval: Duration,
    /// `--duration`, if any: the clock stops there, even mid-interval.
    limit: Option<Duration>,
    /// Time since start, as counted.
    elapsed: Duration,
    /// Time counted into the current interval.
    into_interval: Duration,
}

const POLL: Duration = Duration::from_millis(50);

impl Clock {
    fn new(interval: Duration, limit: Option<Duration>) -> Clock {
        Clock {
            interval,
            limit,
            elapsed: Duration::ZERO,
            into_interval: Duration::ZERO,
        }
    }

    /// Sleeps until the next interval boundary. Returns false instead if STOP is raised
    /// or the duration runs out first (the partial interval is not reported).
    fn wait_tick(&mut self) -> bool {
        while self.into_interval < self.interval {
            let left = self.limit.map(|d| d.saturating_sub(self.elapsed));
            if stopping() || left == Some(Duration::ZERO) {
                return false;
            }
            let step = POLL
                .min(self.interval - self.into_interval)
                .min(left.unwrap_or(Duration::MAX));
            let before = Instant::now();
            std::thread::sleep(step);
            let slept = Instant::now()
                .saturating_duration_since(before)
                .min(self.interval);
            self.elapsed += slept;
            self.into_interval += slept;
        }
        // Keep the remainder so intervals don't drift, but never more than one interval.
        self.into_interval = (self.into_interval - self.interval).min(self.interval);
        !stopping()
    }

    /// True once `--duration` is used up (checked after printing a tick).
    fn done(&self) -> bool {
        self.limit.is_some_and(|d| self.elapsed >= d)
    }
}

struct Out {
    state: Option<PathBuf>,
    state_warned: bool,
}

impl Out {
    /// Prints one flushed line; returns false if stdout is gone.
    fn line(&mut self, line: &str) -> bool {
        if let Some(path) = &self.state {
            let mut tmp = path.as_os_str().to_owned();
            tmp.push(".tmp");
            let res = fs::write(&tmp, format!("{line}\n")).and_then(|()| fs::rename(&tmp, path));
            if let Err(e) = res {
                if !self.state_warned {
                    eprintln!("herd-work: --state {}: {e}", path.display());
                    self.state_warned = true;
                }
            }
        }
        let mut out = std::io::stdout().lock();
        writeln!(out, "{line}").and_then(|()| out.flush()).is_ok()
    }
}

fn report_ops(args: &Args, counters: &[Counter], out: &mut Out) {
    let mut clock = Clock::new(args.interval, args.duration);
    let mut last = 0;
    while clock.wait_tick() {
        let total = sum(counters);
        let line = format!(
            "ops={} total={total} t={:.1}",
            total - last,
            clock.elapsed.as_secs_f64()
        );
        last = total;
        if !out.line(&line) || clock.done() {
            break;
        }
    }
    STOP.store(true, Ordering::SeqCst);
}

fn run_counter(args: &Args, out: &mut Out) -> u64 {
    let words = usize::try_from(args.mib << 17).unwrap_or_else(|_| fatal("--mib too large".into()));
    let mut mem = vec![0u64; words];
    pattern::fill(&mut mem, 0, 0);
    let mut count: u64 = 0;
    let mut clock = Clock::new(args.interval, args.duration);
    while clock.wait_tick() {
        if let Err(off) = pattern::verify(&mem, 0, 0) {
            corrupt("pattern", off);
        }
        count += 1;
        if !out.line(&format!("count={count} pattern=ok")) || clock.done() {
            break;
        }
    }
    STOP.store(true, Ordering::SeqCst);
    count
}

fn run_workers(args: &Args, out: &mut Out) -> u64 {
    let (cpu, io, mem) = match args.kind {
        Kind::Cpu => (args.threads, 0, 0),
        Kind::Io => (0, args.threads, 0),
        Kind::Mem => (0, 0, args.threads),
        Kind::Mixed => (args.threads.div_ceil(2), (args.threads / 2).max(1), 0),
        Kind::Counter => unreachable!("counter has no workers"),
    };
    if io > 0 {
        // Fail fast (exit 1) on an unusable directory instead of in a worker.
        let probe = io_path(&args.dir, u64::MAX);
        let res = io_op(&probe, 0, &mut [0; 8], &mut [0; 8]);
        let _ = fs::remove_file(&probe);
        if let Err(e) = res {
            fatal(format!("--dir {}: {e}", args.dir.display()));
        }
    }

    let mut buf = vec![
        0u64;
        if mem > 0 {
            (args.mib << 17) as usize
        } else {
            0
        }
    ];
    let chunk_len = buf.len().div_ceil(mem.max(1)).max(1);
    let chunks: Vec<&mut [u64]> = buf.chunks_mut(chunk_len).collect();
    let counters: Vec<Counter> = (0..cpu + io + chunks.len())
        .map(|_| Counter::default())
        .collect();

    std::thread::scope(|s| {
        let mut slots = counters.iter();
        for id in 0..cpu {
            let c = slots.next().expect("one counter per worker");
            s.spawn(move || cpu_worker(id as u64, c));
        }
        for id in 0..io {
            let c = slots.next().expect("one counter per worker");
            let dir = &args.dir;
            s.spawn(move || io_worker((cpu + id) as u64, dir, c));
        }
        for (id, chunk) in chunks.into_iter().enumerate() {
            let c = slots.next().expect("one counter per worker");
            let base = id * chunk_len;
            s.spawn(move || mem_worker(id as u64, chunk, base, c));
        }
        report_ops(args, &counters, out);
    });
    sum(&counters)
}

fn main() -> ExitCode {
    let argv: Vec<String> = std::env::args().skip(1).collect();
    if let Some(k @ ("echo" | "client")) = argv.first().map(String::as_str) {
        return ExitCode::from(net::main(k, &argv[1..]));
    }
    let args = match args::parse(&argv) {
        Ok(Parsed::Run(a)) => a,
        Ok(Parsed::Help) => {
            println!("{}", args::USAGE);
            return ExitCode::SUCCESS;
        }
        Err(e) => {
            eprintln!("herd-work: {e}\n{}", args::USAGE);
            return ExitCode::from(2);
        }
    };
    sig::install();
    let mut out = Out {
        state: args.state.clone(),
        state_warned: false,
    };
    let total = match args.kind {
        Kind::Counter => run_counter(&args, &mut out),
        _ => run_workers(&args, &mut out),
    };
    out.line(&format!("exiting total={total}"));
    ExitCode::SUCCESS
}
