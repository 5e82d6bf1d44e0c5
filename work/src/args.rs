//! Command-line parsing (std only, no clap: the binary must stay tiny and static).

use std::path::PathBuf;
use std::time::Duration;

/// The one-line usage shown with every argument error and by `--help`.
pub const USAGE: &str = "usage: herd-work <cpu|mem|io|mixed|counter> [--threads N] [--mib M] \
[--interval-ms MS] [--duration S] [--dir PATH] [--state FILE]";

/// Upper bounds that keep a typo from asking for something absurd.
pub const MAX_THREADS: usize = 1024;
pub const MAX_MIB: u64 = 1 << 20; // 1 TiB
pub const MAX_INTERVAL_MS: u64 = 3_600_000;

#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Kind {
    Cpu,
    Mem,
    Io,
    Mixed,
    Counter,
}

impl Kind {
    fn parse(s: &str) -> Option<Kind> {
        Some(match s {
            "cpu" => Kind::Cpu,
            "mem" => Kind::Mem,
            "io" => Kind::Io,
            "mixed" => Kind::Mixed,
            "counter" => Kind::Counter,
            _ => return None,
        })
    }
}

#[derive(Clone, Debug, PartialEq)]
pub struct Args {
    pub kind: Kind,
    /// Worker threads (`mixed`: ceil(N/2) cpu + max(N/2, 1) io). Unused by `counter`.
    pub threads: usize,
    /// MiB of patterned memory: `mem` (default 64, at least 1) and `counter` (default 0).
    pub mib: u64,
    pub interval: Duration,
    /// `None` runs until SIGTERM/SIGINT.
    pub duration: Option<Duration>,
    /// Directory for the `io` and `mixed` scratch files.
    pub dir: PathBuf,
    /// If set, the latest report line is also written to this file each interval
    /// (write-only: nothing is ever read back from it).
    pub state: Option<PathBuf>,
}

#[derive(Debug, PartialEq)]
pub enum Parsed {
    Run(Args),
    Help,
}

fn number<T: std::str::FromStr>(flag: &str, v: &str) -> Result<T, String> {
    v.parse::<T>()
        .map_err(|_| format!("{flag}: expected a non-negative integer, got {v:?}"))
}

/// Parses the arguments after the program name.
pub fn parse<S: AsRef<str>>(argv: &[S]) -> Result<Parsed, String> {
    let mut kind = None;
    let mut threads: usize = 1;
    let mut mib: Option<u64> = None;
    let mut interval_ms: u64 = 1000;
    let mut duration = None;
    let mut dir = PathBuf::from("/tmp");
    let mut state = None;

    let mut it = argv.iter().map(AsRef::as_ref);
    while let Some(arg) = it.next() {
        if arg == "-h" || arg == "--help" {
            return Ok(Parsed::Help);
        }
        if let Some(flag) = arg.strip_prefix("--") {
            let (name, inline) = match flag.split_once('=') {
                Some((n, v)) => (n, Some(v)),
                None => (flag, None),
            };
            let known = ["threads", "mib", "interval-ms", "duration", "dir", "state"];
            if !known.contains(&name) {
                return Err(format!("unknown flag --{name}"));
            }
            let value = match inline {
                Some(v) => v,
                None => it.next().ok_or_else(|| format!("--{name} needs a value"))?,
            };
            let flag = format!("--{name}");
            match name {
                "threads" => {
                    threads = number(&flag, value)?;
                    if threads == 0 || threads > MAX_THREADS {
                        return Err(format!("--threads must be 1..={MAX_THREADS}"));
                    }
                }
                "mib" => {
                    let m: u64 = number(&flag, value)?;
                    if m > MAX_MIB {
                        return Err(format!("--mib must be at most {MAX_MIB}"));
                    }
                    mib = Some(m);
                }
                "interval-ms" => {
                    interval_ms = number(&flag, value)?;
                    if interval_ms == 0 || interval_ms > MAX_INTERVAL_MS {
                        return Err(format!("--interval-ms must be 1..={MAX_INTERVAL_MS}"));
                    }
                }
                "duration" => {
                    let s: f64 = value.parse().map_err(|_| {
                        format!("--duration: expected seconds (e.g. 10 or 0.5), got {value:?}")
                    })?;
                    if !(s.is_finite() && s > 0.0 && s <= 1e9) {
                        return Err("--duration must be a positive number of seconds".into());
                    }
                    duration = Some(Duration::from_secs_f64(s));
                }
                "dir" => {
                    if value.is_empty() {
                        return Err("--dir must not be empty".into());
                    }
                    dir = PathBuf::from(value);
                }
                "state" => {
                    if value.is_empty() {
                        return Err("--state must not be empty".into());
                    }
                    state = Some(PathBuf::from(value));
                }
                _ => unreachable!("checked against `known`"),
            }
        } else if arg.starts_with('-') && arg.len() > 1 {
            return Err(format!("unknown flag {arg}"));
        } else if kind.is_some() {
            return Err(format!("unexpected argument {arg:?}"));
        } else {
            kind = Some(Kind::parse(arg).ok_or_else(|| format!("unknown kind {arg:?}"))?);
        }
    }

    let kind = kind.ok_or("missing kind")?;
    let mib = match (kind, mib) {
        (Kind::Mem, Some(0)) => return Err("mem needs --mib of at least 1".into()),
        (_, Some(m)) => m,
        (Kind::Mem, None) => 64,
        (_, None) => 0,
    };
    if usize::try_from(mib.saturating_mul(1 << 20)).is_err() {
        return Err("--mib does not fit in this address space".into());
    }
    Ok(Parsed::Run(Args {
        kind,
        threads,
        mib,
        interval: Duration::from_millis(interval_ms),
        duration,
        dir,
        state,
    }))
}

#[cfg(test)]
mod tests {
    use super::*;

    fn run(argv: &[&str]) -> Args {
        match parse(argv) {
            Ok(Parsed::Run(a)) => a,
            other => panic!("{argv:?} -> {other:?}"),
        }
    }

    fn err(argv: &[&str]) -> String {
        match parse(argv) {
            Err(e) => e,
            other => panic!("{argv:?} should fail, got {other:?}"),
        }
    }

    #[test]
    fn defaults() {
        let a = run(&["cpu"]);
        assert_eq!(a.kind, Kind::Cpu);
        assert_eq!(a.threads, 1);
        assert_eq!(a.mib, 0);
        assert_eq!(a.interval, Duration::from_millis(1000));
        assert_eq!(a.duration, None);
        assert_eq!(a.dir, PathBuf::from("/tmp"));
        assert_eq!(a.state, None);
        assert_eq!(run(&["mem"]).mib, 64);
        assert_eq!(run(&["counter"]).mib, 0);
        assert_eq!(run(&["io"]).kind, Kind::Io);
        assert_eq!(run(&["mixed"]).kind, Kind::Mixed);
    }

    #[test]
    fn all_flags_both_spellings() {
        let a = run(&[
            "--threads",
            "4",
            "mem",
            "--mib=8",
            "--interval-ms",
            "250",
            "--duration=1.5",
            "--dir",
            "/var/tmp",
            "--state",
            "/tmp/s",
        ]);
        assert_eq!(a.kind, Kind::Mem);
        assert_eq!(a.threads, 4);
        assert_eq!(a.mib, 8);
        assert_eq!(a.interval, Duration::from_millis(250));
        assert_eq!(a.duration, Some(Duration::from_millis(1500)));
        assert_eq!(a.dir, PathBuf::from("/var/tmp"));
        assert_eq!(a.state, Some(PathBuf::from("/tmp/s")));
        // last one wins
        assert_eq!(run(&["cpu", "--threads", "2", "--threads", "3"]).threads, 3);
    }

    #[test]
    fn help() {
        assert_eq!(parse(&["--help"]), Ok(Parsed::Help));
        assert_eq!(parse(&["cpu", "-h"]), Ok(Parsed::Help));
    }

    #[test]
    fn errors() {
        assert!(err(&[]).contains("missing kind"));
        assert!(err(&["disk"]).contains("unknown kind"));
        assert!(err(&["cpu", "io"]).contains("unexpected argument"));
        assert!(err(&["cpu", "--bogus", "1"]).contains("unknown flag --bogus"));
        assert!(err(&["cpu", "-t", "1"]).contains("unknown flag -t"));
        assert!(err(&["cpu", "--threads"]).contains("needs a value"));
        assert!(err(&["cpu", "--threads", "x"]).contains("--threads"));
        assert!(err(&["cpu", "--threads", "-1"]).contains("--threads"));
        assert!(err(&["cpu", "--threads", "0"]).contains("--threads"));
        assert!(err(&["cpu", "--threads", "100000"]).contains("--threads"));
        assert!(err(&["cpu", "--interval-ms", "0"]).contains("--interval-ms"));
        assert!(err(&["cpu", "--duration", "0"]).contains("--duration"));
        assert!(err(&["cpu", "--duration", "-3"]).contains("--duration"));
        assert!(err(&["cpu", "--duration", "nan"]).contains("--duration"));
        assert!(err(&["cpu", "--duration", "soon"]).contains("--duration"));
        assert!(err(&["mem", "--mib", "0"]).contains("--mib"));
        assert!(err(&["mem", "--mib", "99999999"]).contains("--mib"));
        assert!(err(&["io", "--dir", ""]).contains("--dir"));
        assert!(err(&["io", "--state="]).contains("--state"));
    }

    #[test]
    fn usage_is_one_line() {
        assert!(!USAGE.contains('\n'));
        assert!(USAGE.starts_with("usage: herd-work "));
    }
}
