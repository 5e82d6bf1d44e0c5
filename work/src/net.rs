//! Network workloads for migration tests: they prove a connection outlived
//! a move because they never reconnect.
//!
//! `herd-work echo --port P`: echoes TCP lines (a thread per connection) and
//! UDP datagrams on port P; prints `accepted <peer> conns=<n>` per
//! connection, so a reconnect is visible in the log. `--mib M` holds M MiB
//! with one byte written per page (zstd shrinks it ~800x); with `--random`
//! they hold the pseudo-random pattern of `counter` instead (incompressible),
//! re-verified every second: a bad page prints `pattern=CORRUPT at offset
//! <byte>` and exits 3. `--dirty-mib D` (with `--random`) holds D MiB more
//! of that pattern which it verifies and rewrites with the next generation
//! every second: a heap that keeps writing part of itself (D MiB/s), the
//! case pre-copy migration (`--memory-mode pre`) is for.
//! `herd-work client --connect IP:PORT [--interval-ms MS]`: one TCP
//! connection; sends `<n>\n` every interval, checks the echo is `<n>`,
//! prints `ok n=<n> maxgap_ms=<g>` each second. Any error or wrong answer
//! prints `error ...` and exits 1: it never reconnects.

use std::io::{BufRead, BufReader, Write};
use std::net::{SocketAddr, TcpListener, TcpStream, UdpSocket};
use std::sync::atomic::{AtomicU64, Ordering};
use std::time::{Duration, Instant};

pub const USAGE: &str = "usage: herd-work echo --port P [--mib M [--random [--dirty-mib D]]] | herd-work client --connect IP:PORT [--interval-ms MS]";

fn flag<'a>(args: &'a [String], name: &str) -> Option<&'a str> {
    args.iter()
        .position(|a| a == name)
        .and_then(|i| args.get(i + 1))
        .map(String::as_str)
}

/// Runs `echo` or `client`; the exit code.
pub fn main(kind: &str, args: &[String]) -> u8 {
    let r = match kind {
        "echo" => {
            let mib = match flag(args, "--mib").map(str::parse::<usize>) {
                None => Ok(0),
                Some(Ok(m)) if m <= 1 << 20 => Ok(m),
                Some(_) => Err(format!("--mib: an integer up to 1048576\n{USAGE}")),
            };
            let dirty = match flag(args, "--dirty-mib").map(str::parse::<usize>) {
                None => Ok(0),
                Some(Ok(m)) if m <= 1 << 20 => Ok(m),
                Some(_) => Err(format!("--dirty-mib: an integer up to 1048576\n{USAGE}")),
            };
            let random = args.iter().any(|a| a == "--random");
            match (flag(args, "--port").map(str::parse::<u16>), mib, dirty) {
                (_, _, Ok(d)) if d > 0 && !random => {
                    Err(format!("--dirty-mib needs --random\n{USAGE}"))
                }
                (Some(Ok(p)), Ok(m), Ok(d)) => echo(p, m, random, d),
                (_, Err(e), _) | (_, _, Err(e)) => Err(e),
                _ => Err(format!("echo needs --port P\n{USAGE}")),
            }
        }
        _ => {
            let to = flag(args, "--connect").map(str::parse::<SocketAddr>);
            let every = match flag(args, "--interval-ms").map(str::parse::<u64>) {
                None => Ok(50),
                Some(Ok(ms)) if ms > 0 => Ok(ms),
                Some(_) => Err(format!("--interval-ms: a positive integer\n{USAGE}")),
            };
            match (to, every) {
                (Some(Ok(a)), Ok(ms)) => client(a, Duration::from_millis(ms)),
                (_, Err(e)) => Err(e),
                _ => Err(format!("client needs --connect IP:PORT\n{USAGE}")),
            }
        }
    };
    match r {
        Ok(()) => 0,
        Err(e) => {
            println!("error {e}");
            1
        }
    }
}

static CONNS: AtomicU64 = AtomicU64::new(0);

fn echo(port: u16, mib: usize, random: bool, dirty: usize) -> Result<(), String> {
    // Touched memory a migration has to carry (every page written).
    let mut held = vec![0u8; if random { 0 } else { mib << 20 }];
    for (i, page) in held.chunks_mut(4096).enumerate() {
        page[0] = (i as u8) | 1;
    }
    std::hint::black_box(&held);
    if random {
        let mut mem = vec![0u64; mib << 17];
        crate::pattern::fill(&mut mem, 0, 0);
        std::thread::spawn(move || loop {
            if let Err(off) = crate::pattern::verify(&mem, 0, 0) {
                println!("pattern=CORRUPT at offset {off}");
                eprintln!("pattern=CORRUPT at offset {off}");
                std::process::exit(3);
            }
            std::thread::sleep(Duration::from_secs(1));
        });
    }
    if dirty > 0 {
        // Its own word indices (after the held pattern's), so a page of one
        // region in the place of the other is caught too.
        let first = (mib as u64) << 17;
        let mut hot = vec![0u64; dirty << 17];
        crate::pattern::fill(&mut hot, first, 1);
        std::thread::spawn(move || {
            for gen in 1u64.. {
                if let Err(off) = crate::pattern::verify(&hot, first, gen) {
                    println!("pattern=CORRUPT at offset {off} (dirty region)");
                    eprintln!("pattern=CORRUPT at offset {off} (dirty region)");
                    std::process::exit(3);
                }
                crate::pattern::fill(&mut hot, first, gen + 1);
                std::thread::sleep(Duration::from_secs(1));
            }
        });
    }
    let l = TcpListener::bind(("0.0.0.0", port)).map_err(|e| format!("bind tcp {port}: {e}"))?;
    let u = UdpSocket::bind(("0.0.0.0", port)).map_err(|e| format!("bind udp {port}: {e}"))?;
    std::thread::spawn(move || {
        let mut buf = [0u8; 2048];
        while let Ok((n, from)) = u.recv_from(&mut buf) {
            let _ = u.send_to(&buf[..n], from);
        }
    });
    println!("listening port={port} mib={mib} random={random} dirty_mib={dirty}");
    for s in l.incoming() {
        let s = s.map_err(|e| format!("accept: {e}"))?;
        let n = CONNS.fetch_add(1, Ordering::Relaxed) + 1;
        let peer = s.peer_addr().map(|a| a.to_string()).unwrap_or_default();
        println!("accepted {peer} conns={n}");
        std::thread::spawn(move || {
            let mut w = match s.try_clone() {
                Ok(w) => w,
                Err(_) => return,
            };
            let mut r = BufReader::new(s);
            let mut line = String::new();
            while matches!(r.read_line(&mut line), Ok(k) if k > 0) {
                if w.write_all(line.as_bytes()).is_err() {
                    break;
                }
                line.clear();
            }
            println!("closed {peer}");
        });
    }
    drop(held);
    Ok(())
}

fn client(to: SocketAddr, every: Duration) -> Result<(), String> {
    let s = TcpStream::connect_timeout(&to, Duration::from_secs(5))
        .map_err(|e| format!("connect {to}: {e}"))?;
    s.set_nodelay(true).ok();
    println!(
        "connected {to} local={}",
        s.local_addr().map(|a| a.to_string()).unwrap_or_default()
    );
    let mut w = s.try_clone().map_err(|e| format!("clone socket: {e}"))?;
    let mut r = BufReader::new(s);
    let (mut last_ok, mut report) = (Instant::now(), Instant::now());
    let mut maxgap = Duration::ZERO;
    let mut line = String::new();
    for n in 1u64.. {
        let sent = Instant::now();
        w.write_all(format!("{n}\n").as_bytes())
            .map_err(|e| format!("send {n}: {e}"))?;
        line.clear();
        match r.read_line(&mut line) {
            Ok(0) => return Err(format!("the server closed the connection at {n}")),
            Err(e) => return Err(format!("read {n}: {e}")),
            Ok(_) if line.trim() != n.to_string() => {
                return Err(format!("sent {n}, got {:?}", line.trim()))
            }
            Ok(_) => {}
        }
        maxgap = maxgap.max(last_ok.elapsed());
        last_ok = Instant::now();
        if report.elapsed() >= Duration::from_secs(1) {
            println!("ok n={n} maxgap_ms={}", maxgap.as_millis());
            report = Instant::now();
        }
        if let Some(rest) = every.checked_sub(sent.elapsed()) {
            std::thread::sleep(rest);
        }
    }
    Ok(())
}
