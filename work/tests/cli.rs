//! Runs the built `herd-work` binary and checks its output contract.

use std::io::{BufRead, BufReader};
use std::process::{Command, Output, Stdio};
use std::time::{Duration, Instant};

const BIN: &str = env!("CARGO_BIN_EXE_herd-work");

fn run(args: &[&str]) -> Output {
    Command::new(BIN)
        .args(args)
        .output()
        .expect("run herd-work")
}

fn stdout_lines(out: &Output) -> Vec<String> {
    String::from_utf8(out.stdout.clone())
        .expect("utf8 stdout")
        .lines()
        .map(str::to_owned)
        .collect()
}

/// Parses `ops=<n> total=<n> t=<s>`; None if the line is not a report line.
fn ops_line(line: &str) -> Option<(u64, u64, f64)> {
    let mut it = line.split(' ');
    let ops = it.next()?.strip_prefix("ops=")?.parse().ok()?;
    let total = it.next()?.strip_prefix("total=")?.parse().ok()?;
    let t = it.next()?.strip_prefix("t=")?;
    let (_, frac) = t.split_once('.')?;
    if frac.len() != 1 || it.next().is_some() {
        return None;
    }
    Some((ops, total, t.parse().ok()?))
}

/// `strict`: every interval must have made progress (not demanded of io, whose
/// fsyncs can stall longer than a short interval on a busy disk).
fn check_ops_output(out: &Output, min_lines: usize, strict: bool) -> Vec<(u64, u64, f64)> {
    assert!(out.status.success(), "{out:?}");
    let lines = stdout_lines(out);
    let reports: Vec<_> = lines.iter().filter_map(|l| ops_line(l)).collect();
    assert!(
        reports.len() >= min_lines,
        "too few report lines: {lines:?}"
    );
    // Every line is a report line except the final `exiting total=`.
    assert_eq!(reports.len(), lines.len() - 1, "{lines:?}");
    let last = lines.last().unwrap();
    let exit_total: u64 = last
        .strip_prefix("exiting total=")
        .unwrap_or_else(|| panic!("last line {last:?}"))
        .parse()
        .unwrap();
    let mut prev_total = 0;
    let mut prev_t = 0.0;
    for &(ops, total, t) in &reports {
        assert_eq!(
            total,
            prev_total + ops,
            "ops must be the interval delta: {lines:?}"
        );
        assert!(!strict || ops > 0, "totals must increase: {lines:?}");
        assert!(t > prev_t, "t must increase: {lines:?}");
        prev_total = total;
        prev_t = t;
    }
    assert!(exit_total >= prev_total);
    reports
}

#[test]
fn cpu_reports_increasing_totals() {
    let start = Instant::now();
    let out = run(&[
        "cpu",
        "--threads",
        "2",
        "--interval-ms",
        "200",
        "--duration",
        "1",
    ]);
    let reports = check_ops_output(&out, 3, true);
    assert!(reports.len() <= 5, "{reports:?}");
    assert!(start.elapsed() < Duration::from_secs(5));
}

#[test]
fn counter_counts_and_checks_pattern() {
    let out = run(&[
        "counter",
        "--interval-ms",
        "100",
        "--duration",
        "1",
        "--mib",
        "8",
    ]);
    assert!(out.status.success(), "{out:?}");
    let lines = stdout_lines(&out);
    let mut counts = Vec::new();
    for l in &lines[..lines.len() - 1] {
        let rest = l.strip_prefix("count=").unwrap_or_else(|| panic!("{l:?}"));
        let (n, tail) = rest.split_once(' ').unwrap();
        assert_eq!(tail, "pattern=ok", "{l:?}");
        counts.push(n.parse::<u64>().unwrap());
    }
    assert!(counts.len() >= 3, "{lines:?}");
    assert_eq!(counts, (1..=counts.len() as u64).collect::<Vec<_>>());
    assert_eq!(
        lines.last().unwrap(),
        &format!("exiting total={}", counts.len())
    );
}

#[test]
fn mem_io_mixed_run() {
    let dir = std::env::temp_dir().join(format!("herd-work-test-{}", std::process::id()));
    std::fs::create_dir_all(&dir).unwrap();
    let d = dir.to_str().unwrap();
    for (args, strict) in [
        (&["mem", "--threads", "2", "--mib", "8"][..], true),
        (&["io", "--threads", "2", "--dir", d][..], false),
        (&["mixed", "--threads", "2", "--dir", d][..], false),
    ] {
        let mut a = args.to_vec();
        a.extend(["--interval-ms", "100", "--duration", "0.5"]);
        let reports = check_ops_output(&run(&a), 3, strict);
        assert!(reports.last().unwrap().1 > 0, "{args:?}: no ops at all");
    }
    // io workers clean up their scratch files.
    assert_eq!(std::fs::read_dir(&dir).unwrap().count(), 0);
    std::fs::remove_dir(&dir).unwrap();
}

#[test]
fn state_file_holds_last_line() {
    let state = std::env::temp_dir().join(format!("herd-work-state-{}", std::process::id()));
    let out = run(&[
        "counter",
        "--interval-ms",
        "50",
        "--duration",
        "0.2",
        "--state",
        state.to_str().unwrap(),
    ]);
    assert!(out.status.success(), "{out:?}");
    let last = stdout_lines(&out).pop().unwrap();
    assert_eq!(
        std::fs::read_to_string(&state).unwrap(),
        format!("{last}\n")
    );
    std::fs::remove_file(&state).unwrap();
}

#[test]
fn bad_arguments_exit_2_with_usage() {
    for args in [
        &[][..],
        &["disk"][..],
        &["cpu", "--threads", "zero"][..],
        &["cpu", "--nope"][..],
        &["mem", "--mib", "0"][..],
    ] {
        let out = run(args);
        assert_eq!(out.status.code(), Some(2), "{args:?}");
        assert!(out.stdout.is_empty());
        let err = String::from_utf8(out.stderr).unwrap();
        let lines: Vec<_> = err.lines().collect();
        assert_eq!(lines.len(), 2, "{err}");
        assert!(lines[0].starts_with("herd-work: "), "{err}");
        assert!(lines[1].starts_with("usage: herd-work "), "{err}");
    }
    let help = run(&["--help"]);
    assert!(help.status.success());
    assert!(String::from_utf8(help.stdout)
        .unwrap()
        .starts_with("usage: "));
}

#[test]
fn unusable_dir_exits_1() {
    let out = run(&["io", "--dir", "/nonexistent/herd-work", "--duration", "1"]);
    assert_eq!(out.status.code(), Some(1), "{out:?}");
}

#[cfg(unix)]
#[test]
fn sigterm_exits_cleanly() {
    let mut child = Command::new(BIN)
        .args(["cpu", "--interval-ms", "50"])
        .stdout(Stdio::piped())
        .spawn()
        .unwrap();
    let mut stdout = BufReader::new(child.stdout.take().unwrap());
    let mut first = String::new();
    stdout.read_line(&mut first).unwrap();
    assert!(ops_line(first.trim_end()).is_some(), "{first:?}");
    let kill = Command::new("kill")
        .args(["-TERM", &child.id().to_string()])
        .status();
    if !kill.is_ok_and(|s| s.success()) {
        child.kill().unwrap();
        child.wait().unwrap();
        eprintln!("no kill(1); skipping");
        return;
    }
    let status = child.wait().unwrap();
    assert!(status.success(), "{status:?}");
    let rest: Vec<String> = stdout.lines().map(Result::unwrap).collect();
    let last = rest.last().expect("an exiting line");
    assert!(last.starts_with("exiting total="), "{rest:?}");
}
