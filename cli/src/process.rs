//! Processes this CLI starts and watches (lab agents, bench workloads),
//! identified by pid and start time so a reused pid is never mistaken for
//! them.

/// True once `pid` (started at `start`) has fully exited: a killed
/// multi-threaded process shows a zombie leader while its other threads
/// still hold its sockets, so wait for those too.
pub fn process_gone(pid: i32, start: u64) -> bool {
    let Ok(stat) = std::fs::read_to_string(format!("/proc/{pid}/stat")) else {
        return true;
    };
    let Some(rest) = stat.rfind(')').map(|i| &stat[i + 2..]) else {
        return true;
    };
    let f: Vec<&str> = rest.split_whitespace().collect();
    if f.get(19).and_then(|v| v.parse::<u64>().ok()) != Some(start) {
        return true;
    }
    if f.first() != Some(&"Z") {
        return false;
    }
    std::fs::read_dir(format!("/proc/{pid}/task"))
        .map(|d| d.count() <= 1)
        .unwrap_or(true)
}

pub fn now_ns() -> u64 {
    std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map(|d| d.as_nanos() as u64)
        .unwrap_or(0)
}

/// The start time (field 22 of /proc/PID/stat) of a live process.
pub fn proc_start(pid: i32) -> Option<u64> {
    let stat = std::fs::read_to_string(format!("/proc/{pid}/stat")).ok()?;
    let rest = &stat[stat.rfind(')')? + 2..];
    let f: Vec<&str> = rest.split_whitespace().collect();
    if matches!(f.first(), Some(&"Z") | Some(&"X")) {
        return None;
    }
    f.get(19)?.parse().ok()
}
