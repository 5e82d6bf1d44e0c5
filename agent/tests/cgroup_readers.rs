//! The cgroup readers on recorded v2 files and on real cgroups of this
//! machine (v1 controllers plus the cgroup2 hierarchy of a hybrid host).

use std::path::{Path, PathBuf};
use std::process::{Child, Command};
use std::time::Duration;

use herd_agent::monitor::cgroups::{CgroupReader, Layout, FULL_READ_EVERY};

fn fixture(name: &str) -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR"))
        .join("tests/fixtures")
        .join(name)
}

#[test]
fn v2_reader_on_recorded_files() {
    let mut r = CgroupReader::open_v2(&fixture("cgroup2"));
    assert!(r.is_open());
    let mut buf = Vec::new();
    let c = r.read(&mut buf).expect("reading");
    assert_eq!(c.cpu_ns, 8_123_456_789_000);
    assert_eq!((c.periods, c.throttled_periods), (48213, 1207));
    assert_eq!(c.throttled_ns, 95_123_456_000);
    assert_eq!(
        c.memory_bytes,
        283_115_520 - 10_485_760,
        "current minus inactive_file"
    );
    assert_eq!(c.pgmajfault, 37);
    assert_eq!(
        c.io,
        [257, 100_000, 1_052_672, 409_600_000],
        "summed over devices"
    );
    assert_eq!(c.pids, 5);
    assert_eq!(c.psi, [Some(1.25), Some(0.0), Some(3.0)]);
}

#[test]
fn v2_core_files_recorded_on_this_hybrid_host() {
    let mut r = CgroupReader::open_v2(&fixture("cgroup2-hybrid"));
    let c = r.read(&mut Vec::new()).expect("reading");
    assert_eq!(c.cpu_ns, 287_575_000);
    assert_eq!(c.psi, [Some(0.0), Some(0.0), Some(0.0)]);
    // No memory, io or pids controller there: zeros, not errors.
    assert_eq!((c.memory_bytes, c.pids, c.io), (0, 0, [0; 4]));
}

#[test]
fn files_stay_open_and_idle_cgroups_are_read_once_per_sample() {
    let dir = tempfile::tempdir().unwrap();
    for e in std::fs::read_dir(fixture("cgroup2")).unwrap().flatten() {
        std::fs::copy(e.path(), dir.path().join(e.file_name())).unwrap();
    }
    let mut r = CgroupReader::open_v2(dir.path());
    let mut buf = Vec::new();
    let a = r.read(&mut buf).unwrap();
    // Rewritten in place (same inode, as the kernel's files are): the open
    // descriptor sees the new content.
    std::fs::write(dir.path().join("memory.current"), "383115520\n").unwrap();
    // CPU time did not move: the previous counters are reused...
    let b = r.read(&mut buf).unwrap();
    assert_eq!(b, a);
    // ...until the periodic full read.
    let mut last = b;
    for _ in 0..FULL_READ_EVERY {
        last = r.read(&mut buf).unwrap();
    }
    assert_eq!(last.memory_bytes, 383_115_520 - 10_485_760);
    // CPU time moved: everything is read again at once.
    let stat = std::fs::read_to_string(dir.path().join("cpu.stat"))
        .unwrap()
        .replace("usage_usec 8123456789", "usage_usec 8125456789");
    std::fs::write(dir.path().join("cpu.stat"), stat).unwrap();
    std::fs::write(dir.path().join("pids.current"), "7\n").unwrap();
    let c = r.read(&mut buf).unwrap();
    assert_eq!(c.cpu_ns - a.cpu_ns, 2_000_000_000);
    assert_eq!(c.pids, 7);
}

#[test]
fn layout_of_mountinfo() {
    let mi = "\
32 31 0:29 / /sys/fs/cgroup/cpu rw,relatime - cgroup cgroup rw,cpu
33 31 0:30 / /sys/fs/cgroup/cpu,cpuacct rw,relatime - cgroup cgroup rw,cpu,cpuacct
40 31 0:37 / /sys/fs/cgroup/systemd rw,relatime - cgroup cgroup rw,xattr,name=systemd
41 31 0:38 / /sys/fs/cgroup/unified rw,relatime - cgroup2 cgroup2 rw
";
    let l = Layout::from_mountinfo(mi);
    assert_eq!(l.kind(), "hybrid");
    assert_eq!(l.v1["cpuacct"], Path::new("/sys/fs/cgroup/cpu,cpuacct"));
    assert_eq!(l.v1["name=systemd"], Path::new("/sys/fs/cgroup/systemd"));
    assert!(!l.v1.contains_key("rw") && !l.v1.contains_key("xattr"));
    let l =
        Layout::from_mountinfo("30 1 0:26 / /sys/fs/cgroup rw - cgroup2 cgroup2 rw,nsdelegate\n");
    assert_eq!(l.kind(), "v2");
}

/// Real cgroups on this machine: made in every hierarchy, removed on drop.
struct TestCgroup {
    rel: String,
    dirs: Vec<PathBuf>,
    children: Vec<Child>,
}

impl TestCgroup {
    fn new(layout: &Layout) -> TestCgroup {
        let rel = format!("hmon-test-{}", std::process::id());
        let mut dirs = Vec::new();
        for root in layout.v1.values().chain(layout.v2.iter()) {
            let d = root.join(&rel);
            if std::fs::create_dir(&d).is_ok() {
                dirs.push(d);
            }
        }
        TestCgroup {
            rel,
            dirs,
            children: Vec::new(),
        }
    }

    fn spawn(&mut self, script: &str) {
        let c = Command::new("sh").arg("-c").arg(script).spawn().unwrap();
        for d in &self.dirs {
            if d.to_string_lossy().contains("cpuset") {
                continue; // an empty cpuset cannot take tasks
            }
            std::fs::write(d.join("cgroup.procs"), c.id().to_string())
                .unwrap_or_else(|e| panic!("join {}: {e}", d.display()));
        }
        self.children.push(c);
    }
}

impl Drop for TestCgroup {
    fn drop(&mut self) {
        for c in &mut self.children {
            let _ = c.kill();
            let _ = c.wait();
        }
        for d in &self.dirs {
            for _ in 0..50 {
                if std::fs::remove_dir(d).is_ok() {
                    break;
                }
                std::thread::sleep(Duration::from_millis(20));
            }
        }
    }
}

#[test]
fn v1_and_hybrid_readers_on_real_cgroups() {
    if !herd_testkit::require_root("v1_and_hybrid_readers_on_real_cgroups") {
        return;
    }
    let layout = Layout::detect();
    if layout.kind() == "v2" {
        eprintln!("pure cgroup v2 host: the v1 reader is covered by the fixtures only");
        return;
    }
    let dir = tempfile::tempdir().unwrap();
    let mut cg = TestCgroup::new(&layout);
    let f = dir.path().join("io");
    cg.spawn("while :; do :; done");
    cg.spawn(&format!("while :; do echo x > {}; done", f.display()));
    let mut r = layout.open(&format!("/{}", cg.rel));
    assert!(r.is_open());
    let mut buf = Vec::new();
    let a = r.read(&mut buf).expect("first reading");
    let t0 = std::time::Instant::now();
    std::thread::sleep(Duration::from_millis(600));
    let b = r.read(&mut buf).expect("second reading");
    let secs = t0.elapsed().as_secs_f64();
    let cores = (b.cpu_ns - a.cpu_ns) as f64 / 1e9 / secs;
    // Two busy shells on a shared 2-core machine: well above idle, at most 2.
    assert!(cores > 0.3 && cores < 2.2, "cpu {cores} cores");
    assert!(b.memory_bytes > 0);
    assert_eq!(b.pids, 2, "{b:?}");
    assert!(
        b.io[1] > a.io[1],
        "write calls of the echo loop: {a:?} -> {b:?}"
    );
    if layout.v2.is_some() {
        assert!(
            b.psi[0].is_some(),
            "hybrid host: PSI from the cgroup2 hierarchy"
        );
    }
}
