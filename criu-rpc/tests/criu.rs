//! Tests against the real CRIU, as root (see herd-testkit).
//!
//! Each test runs a one-process tree: `bash -c` incrementing a counter and
//! writing it to a file every 50 ms, started in its own session with stdio
//! on /dev/null (no tty, no shell job). Everything started is killed and
//! reaped by guards, restored trees included (they are restored with
//! `rst_sibling`, so they are this process's children).

use std::os::unix::process::CommandExt;
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

use herd_criu::{
    read_dump_stats, read_restore_stats, Criu, DumpOpts, Error, NotifyKind, RestoreOpts,
};
use nix::sys::signal::{kill, killpg, Signal};
use nix::sys::wait::waitpid;
use nix::unistd::Pid;

fn criu() -> Criu {
    Criu::new(herd_testkit::criu_path())
}

/// A counter process tree; killed (whole process group) and reaped on drop.
struct Counter {
    pid: i32,
    child: Option<Child>,
    file: PathBuf,
}

impl Counter {
    fn start(dir: &Path) -> Counter {
        let file = dir.join("counter");
        // One bash process and no forks: `echo` is a builtin and the 50 ms
        // pause is a `read -t` on a FIFO nobody writes to. (A forked
        // `sleep` would be orphaned by the dump, and pid 1 here reaps
        // orphans lazily: the zombie keeps the session id, hence the pid
        // CRIU must restore, busy.)
        let fifo = dir.join("pause");
        nix::unistd::mkfifo(&fifo, nix::sys::stat::Mode::from_bits_truncate(0o600))
            .expect("mkfifo");
        let script = format!(
            "exec 3<> {}; i=0; while :; do i=$((i+1)); echo $i >> {}; read -t 0.05 -u 3 x; done",
            fifo.display(),
            file.display()
        );
        let mut cmd = Command::new("bash");
        cmd.arg("-c")
            .arg(script)
            .current_dir(dir)
            .stdin(Stdio::null())
            .stdout(Stdio::null())
            .stderr(Stdio::null());
        // SAFETY: setsid(2) is async-signal-safe.
        unsafe {
            cmd.pre_exec(|| {
                if libc::setsid() < 0 {
                    return Err(std::io::Error::last_os_error());
                }
                Ok(())
            });
        }
        let child = cmd.spawn().expect("spawn bash");
        let pid = i32::try_from(child.id()).expect("pid");
        let c = Counter {
            pid,
            child: Some(child),
            file,
        };
        c.wait_for_value(3);
        c
    }

    /// The current counter value: the last complete line of the file
    /// (appended, never truncated, so a dump cannot leave it empty).
    fn value(&self) -> u64 {
        let deadline = Instant::now() + Duration::from_secs(5);
        loop {
            if let Ok(s) = std::fs::read_to_string(&self.file) {
                let complete = &s[..s.rfind('\n').map(|i| i + 1).unwrap_or(0)];
                if let Some(Ok(v)) = complete.lines().last().map(|l| l.trim().parse()) {
                    return v;
                }
            }
            assert!(Instant::now() < deadline, "counter file unreadable");
            std::thread::sleep(Duration::from_millis(5));
        }
    }

    fn wait_for_value(&self, at_least: u64) -> u64 {
        let deadline = Instant::now() + Duration::from_secs(10);
        loop {
            let v = self.value();
            if v >= at_least {
                return v;
            }
            assert!(
                Instant::now() < deadline,
                "counter stuck at {v}, wanted {at_least}"
            );
            std::thread::sleep(Duration::from_millis(20));
        }
    }

    fn alive(&self) -> bool {
        // A zombie still answers kill(0); look at its state too.
        match std::fs::read_to_string(format!("/proc/{}/stat", self.pid)) {
            Ok(s) => !s
                .rsplit_once(')')
                .map(|(_, rest)| rest.trim_start().starts_with('Z'))
                .unwrap_or(false),
            Err(_) => false,
        }
    }

    /// Reaps the original process after CRIU killed it.
    fn reap_original(&mut self) {
        if let Some(mut c) = self.child.take() {
            c.wait().expect("wait original");
        }
    }

    /// After a restore with `rst_sibling`, the restored root is our child
    /// again under the same pid.
    fn adopt_restored(&mut self, pid: i32) {
        assert_eq!(pid, self.pid, "CRIU restores the same pid");
        self.child = None;
    }
}

impl Drop for Counter {
    fn drop(&mut self) {
        let _ = killpg(Pid::from_raw(self.pid), Signal::SIGKILL);
        let _ = kill(Pid::from_raw(self.pid), Signal::SIGKILL);
        match self.child.take() {
            Some(mut c) => {
                let _ = c.wait();
            }
            None => {
                let _ = waitpid(Pid::from_raw(self.pid), None);
            }
        }
    }
}

#[test]
fn version_and_check() {
    if !herd_testkit::require_root_and_criu("version_and_check") {
        return;
    }
    let c = criu();
    let v = c.version().expect("version");
    assert!(v.major >= 4, "CRIU {v} is too old for this kernel");
    assert!(v.number() >= 40000);
    c.check().expect("check");
}

#[test]
fn feature_check_and_pre_dump_unsupported() {
    if !herd_testkit::require_root_and_criu("feature_check_and_pre_dump_unsupported") {
        return;
    }
    let c = criu();
    let f = c.feature_check().expect("feature check");
    eprintln!("features: {f:?}");
    if f.mem_track {
        eprintln!("this kernel has soft-dirty tracking; the Unsupported path is not exercised");
        return;
    }
    let dir = tempfile::tempdir().expect("tempdir");
    let counter = Counter::start(dir.path());
    let images = dir.path().join("pre");
    std::fs::create_dir(&images).expect("mkdir");
    let err = c
        .pre_dump(&DumpOpts::new(counter.pid, images.as_path()))
        .expect_err("pre-dump must be refused without soft-dirty");
    assert!(matches!(err, Error::Unsupported { .. }), "{err:?}");
    assert!(err.to_string().contains("soft-dirty"), "{err}");
    assert!(counter.alive());
}

#[test]
fn dump_restore_keeps_counting() {
    if !herd_testkit::require_root_and_criu("dump_restore_keeps_counting") {
        return;
    }
    let c = criu();
    let dir = tempfile::tempdir().expect("tempdir");
    let mut counter = Counter::start(dir.path());
    let images = dir.path().join("images");
    std::fs::create_dir(&images).expect("mkdir");

    let mut dump_scripts = Vec::new();
    c.dump_with(&DumpOpts::new(counter.pid, images.as_path()), |n| {
        dump_scripts.push(n.kind());
        Ok::<_, std::io::Error>(())
    })
    .expect("dump");
    assert!(
        dump_scripts.contains(&NotifyKind::PostDump),
        "{dump_scripts:?}"
    );
    counter.reap_original();
    assert!(!counter.alive(), "the dumped tree must be gone");
    let at_dump = counter.value();
    std::thread::sleep(Duration::from_millis(300));
    assert_eq!(counter.value(), at_dump, "nothing runs while dumped");

    let dump = read_dump_stats(&images).expect("stats-dump");
    eprintln!("dump stats: {dump:?}");
    assert!(dump.frozen_time_us > 0);
    assert!(dump.pages_written > 0);

    let mut restore_scripts = Vec::new();
    let mut notified_pid = None;
    let restored = c
        .restore_with(
            &RestoreOpts {
                rst_sibling: true,
                ..RestoreOpts::new(images.as_path())
            },
            |n| {
                restore_scripts.push(n.kind());
                if n.kind() == NotifyKind::PostRestore {
                    notified_pid = n.pid();
                }
                Ok::<_, std::io::Error>(())
            },
        )
        .expect("restore");
    counter.adopt_restored(restored.pid);
    assert!(
        restore_scripts.contains(&NotifyKind::PostRestore),
        "{restore_scripts:?}"
    );
    assert_eq!(notified_pid, Some(restored.pid));
    assert!(counter.alive());

    // It goes on from where it stopped: never below, and growing.
    let after = counter.wait_for_value(at_dump + 5);
    assert!(after > at_dump);
    let v1 = counter.value();
    assert!(v1 >= at_dump, "counter reset: {v1} < {at_dump}");

    let rst = read_restore_stats(&images).expect("stats-restore");
    eprintln!("restore stats: {rst:?}");
    assert!(rst.restore_time_us > 0);
}

#[test]
fn leave_running_keeps_the_original() {
    if !herd_testkit::require_root_and_criu("leave_running_keeps_the_original") {
        return;
    }
    let c = criu();
    let dir = tempfile::tempdir().expect("tempdir");
    let counter = Counter::start(dir.path());
    let images = dir.path().join("images");
    std::fs::create_dir(&images).expect("mkdir");
    c.dump(&DumpOpts {
        leave_running: true,
        ..DumpOpts::new(counter.pid, images.as_path())
    })
    .expect("dump");
    assert!(counter.alive());
    let v = counter.value();
    counter.wait_for_value(v + 3);
    assert!(read_dump_stats(&images).is_ok());
}

#[derive(Debug, thiserror::Error)]
#[error("refused by the test")]
struct Refused;

#[test]
fn notify_error_aborts_the_dump() {
    if !herd_testkit::require_root_and_criu("notify_error_aborts_the_dump") {
        return;
    }
    let c = criu();
    let dir = tempfile::tempdir().expect("tempdir");
    let counter = Counter::start(dir.path());
    let images = dir.path().join("images");
    std::fs::create_dir(&images).expect("mkdir");
    let err = c
        .dump_with(&DumpOpts::new(counter.pid, images.as_path()), |n| {
            if n.kind() == NotifyKind::PostDump {
                Err(Refused)
            } else {
                Ok(())
            }
        })
        .expect_err("the dump must fail");
    match &err {
        Error::Notify { script, source, .. } => {
            assert_eq!(script, "post-dump");
            assert!(source.downcast_ref::<Refused>().is_some(), "{source:?}");
        }
        other => panic!("want Error::Notify, got {other:?}"),
    }
    assert!(counter.alive(), "an aborted dump leaves the tree running");
    let v = counter.value();
    counter.wait_for_value(v + 3);
}

#[test]
fn dump_of_a_missing_pid_says_why() {
    if !herd_testkit::require_root_and_criu("dump_of_a_missing_pid_says_why") {
        return;
    }
    // A pid that just ended and was reaped.
    let mut gone = Command::new("true").spawn().expect("spawn true");
    let pid = i32::try_from(gone.id()).expect("pid");
    gone.wait().expect("wait");
    let dir = tempfile::tempdir().expect("tempdir");
    let err = criu()
        .dump(&DumpOpts::new(pid, dir.path()))
        .expect_err("dumping a missing pid must fail");
    let msg = err.to_string();
    eprintln!("{msg}");
    assert!(matches!(err, Error::Failed { .. }), "{err:?}");
    let tail = err.log_tail().expect("a log tail");
    assert!(!tail.is_empty(), "{msg}");
    assert!(msg.contains("dump.log"), "{msg}");
    assert!(msg.contains(&tail.lines[tail.lines.len() - 1]), "{msg}");
}

#[test]
fn dump_through_a_page_server() {
    if !herd_testkit::require_root_and_criu("dump_through_a_page_server") {
        return;
    }
    let c = criu();
    let dir = tempfile::tempdir().expect("tempdir");
    let counter = Counter::start(dir.path());
    let images = dir.path().join("images");
    std::fs::create_dir(&images).expect("mkdir");
    let ps = c
        .page_server(&herd_criu::PageServerOpts::new(
            images.as_path(),
            "127.0.0.1",
            0,
        ))
        .expect("page server");
    assert!(ps.pid > 0 && ps.port > 0, "{ps:?}");
    let res = c.dump(&DumpOpts {
        leave_running: true,
        page_server: Some(herd_criu::PageServerAddr {
            address: "127.0.0.1".into(),
            port: ps.port,
            fd: None,
        }),
        ..DumpOpts::new(counter.pid, images.as_path())
    });
    // The server exits once the dump is through; make sure of it either way.
    let _ = kill(Pid::from_raw(ps.pid), Signal::SIGKILL);
    res.expect("dump through the page server");
    let pages = std::fs::read_dir(&images)
        .expect("readdir")
        .filter_map(|e| e.ok())
        .any(|e| e.file_name().to_string_lossy().starts_with("pages-"));
    assert!(pages, "the page server wrote no pages");
    assert!(counter.alive());
}

#[test]
fn dump_through_a_page_server_over_a_unix_socketpair() {
    if !herd_testkit::require_root_and_criu("dump_through_a_page_server_over_a_unix_socketpair") {
        return;
    }
    use std::os::fd::AsRawFd;
    let c = criu();
    let dir = tempfile::tempdir().expect("tempdir");
    let counter = Counter::start(dir.path());
    let (local, remote) = (dir.path().join("local"), dir.path().join("remote"));
    std::fs::create_dir(&local).expect("mkdir");
    std::fs::create_dir(&remote).expect("mkdir");
    let (server_end, dump_end) = std::os::unix::net::UnixStream::pair().expect("socketpair");
    let mut opts = herd_criu::PageServerOpts::new(remote.as_path(), "", 0);
    opts.listen.fd = Some(server_end.as_raw_fd());
    let ps = c.page_server(&opts).expect("page server on a socket");
    drop(server_end);
    let res = c.dump(&DumpOpts {
        leave_running: true,
        page_server: Some(herd_criu::PageServerAddr {
            fd: Some(dump_end.as_raw_fd()),
            ..Default::default()
        }),
        ..DumpOpts::new(counter.pid, local.as_path())
    });
    let _ = kill(Pid::from_raw(ps.pid), Signal::SIGKILL);
    res.expect("dump through the socketpair");
    let names = |d: &Path| -> Vec<String> {
        std::fs::read_dir(d)
            .expect("readdir")
            .flatten()
            .map(|e| e.file_name().to_string_lossy().into_owned())
            .collect()
    };
    let (l, r) = (names(&local), names(&remote));
    assert!(
        r.iter().any(|n| n.starts_with("pages-")),
        "the page server wrote no pages: {r:?}"
    );
    assert!(
        !l.iter().any(|n| n.starts_with("pages-")),
        "pages were written on the dumping side too: {l:?}"
    );
    assert!(l.iter().any(|n| n.starts_with("core-")), "{l:?}");
    assert!(counter.alive());
}
