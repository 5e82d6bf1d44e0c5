//! Processes this CLI starts and watches (lab agents, bench workloads),
//! identified by pid and start time so a reused pid is never mistaken for
//! them.

/// True once `pid` (started at `start`) has fully exited: a killed
/// multi-threaded process shows a zombie leader while its other threads
/// still hold its sockets, so wait for those too.
pub fn process_gone(pid: i32, start: u64) -> bool {
    let Some(st) = stat(pid) else {
        return true;
    };
    if st.starttime != start {
        return true;
    }
    if st.state != 'Z' {
        return false;
    }
    std::fs::read_dir(format!("/proc/{pid}/task"))
        .map(|d| d.count() <= 1)
        .unwrap_or(true)
}

fn stat(pid: i32) -> Option<procfs::process::Stat> {
    procfs::process::Process::new(pid).ok()?.stat().ok()
}

pub fn now_ns() -> u64 {
    std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map(|d| d.as_nanos() as u64)
        .unwrap_or(0)
}

/// The start time (field 22 of /proc/PID/stat) of a live process.
pub fn proc_start(pid: i32) -> Option<u64> {
    let st = stat(pid)?;
    (!matches!(st.state, 'Z' | 'X')).then_some(st.starttime)
}
