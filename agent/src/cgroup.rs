//! Making a container's cgroups before a restore on a host where they do
//! not exist yet (an import, later a migration target), as runc does before
//! handing the restore to CRIU: CRIU in soft mode then restores into them
//! and does not try to initialise them itself. On cgroup v1 a new cpuset
//! cgroup is unusable until `cpuset.cpus`/`cpuset.mems` are filled, so they
//! are copied down from the nearest ancestor at every level.

use std::fs;
use std::path::{Path, PathBuf};

use crate::error::{IoContext, Result};

/// Mount points of every cgroup hierarchy (v1 controllers and cgroup2).
pub fn hierarchies() -> Vec<PathBuf> {
    hierarchies_of(&crate::mountinfo::mounts())
}

/// [`hierarchies`] of mountinfo text.
pub fn hierarchies_in(mountinfo: &str) -> Vec<PathBuf> {
    hierarchies_of(&crate::mountinfo::parse(mountinfo))
}

/// One mount point per cgroup hierarchy. A hierarchy can be mounted more
/// than once: CRIU mounts every controller again in a temporary "cgroup
/// yard" during each dump and restore, and such a mount vanishes mid-way.
/// Only whole-hierarchy mounts (root `/`) count, those under /sys/fs/cgroup
/// first; one per set of controllers.
fn hierarchies_of(mounts: &[crate::mountinfo::Mount]) -> Vec<PathBuf> {
    let mut found: Vec<(String, PathBuf)> = Vec::new();
    let mut cg: Vec<(bool, String, PathBuf)> = mounts
        .iter()
        .filter(|m| (m.fs_type == "cgroup" || m.fs_type == "cgroup2") && m.root == "/")
        .map(|m| {
            // The hierarchy's identity: its type and super options (controllers).
            let key = format!("{} {}", m.fs_type, m.super_options.join(","));
            (!m.point.starts_with("/sys/fs/cgroup"), key, m.point.clone())
        })
        .collect();
    cg.sort_by_key(|(elsewhere, _, _)| *elsewhere); // stable: mount order kept
    for (_, key, point) in cg {
        if !found.iter().any(|(k, _)| *k == key) {
            found.push((key, point));
        }
    }
    found.into_iter().map(|(_, p)| p).collect()
}

/// Create `cgroup_path` (absolute, e.g. `/herd/n1/c1`) in every hierarchy.
pub fn prepare(cgroup_path: &str) -> Result<()> {
    let rel = cgroup_path.trim_start_matches('/');
    for root in hierarchies() {
        let mut dir = root.clone();
        for part in Path::new(rel).components() {
            let parent = dir.clone();
            dir.push(part);
            if !dir.exists() {
                fs::create_dir(&dir).ctx(|| format!("create cgroup {}", dir.display()))?;
            }
            for f in ["cpuset.cpus", "cpuset.mems"] {
                let (pf, cf) = (parent.join(f), dir.join(f));
                if cf.exists() && root.ends_with("cpuset") {
                    let cur = fs::read_to_string(&cf).unwrap_or_default();
                    if cur.trim().is_empty() {
                        let v = fs::read_to_string(&pf).ctx(|| format!("read {}", pf.display()))?;
                        fs::write(&cf, v.trim()).ctx(|| format!("write {}", cf.display()))?;
                    }
                }
            }
        }
    }
    Ok(())
}

/// Remove `cgroup_path` from every hierarchy where it is left (libcontainer
/// removes the controllers it manages, not the named `systemd` or the
/// unified hierarchy that a restore also populates). Empty dirs only.
pub fn remove(cgroup_path: &str) {
    let rel = cgroup_path.trim_start_matches('/');
    if rel.is_empty() {
        return;
    }
    for root in hierarchies() {
        remove_tree(&root.join(rel));
    }
}

/// rmdir a cgroup and every cgroup under it, deepest first: a CRIU restore
/// on a hybrid host can leave a nested copy of the container's path in the
/// named `systemd` and the unified hierarchy, and a cgroup with children
/// cannot go. Tasks just killed leave cgroup.procs only once reaped: until
/// then rmdir says EBUSY, so wait a little for them.
fn remove_tree(dir: &Path) {
    if !dir.is_dir() {
        return;
    }
    if let Ok(rd) = fs::read_dir(dir) {
        for e in rd.flatten() {
            if e.file_type().map(|t| t.is_dir()).unwrap_or(false) {
                remove_tree(&e.path());
            }
        }
    }
    let mut tries = 0;
    while dir.exists() {
        match fs::remove_dir(dir) {
            Ok(()) => break,
            Err(e) if e.raw_os_error() == Some(libc::EBUSY) && tries < 250 => {
                tries += 1;
                std::thread::sleep(std::time::Duration::from_millis(20));
            }
            Err(e) => {
                tracing::warn!(cgroup = %dir.display(), "cannot remove: {e}");
                break;
            }
        }
    }
}

/// Put `pid` into `cgroup_path` in every hierarchy where it sits at the
/// root: libcontainer's v1 manager leaves the named `systemd` and the
/// unified hierarchy of a hybrid host alone, and a task at a hierarchy's
/// root makes CRIU dump (and restore) that hierarchy's whole tree.
/// [`join_all`] for `init` and every task already in the container's pids
/// cgroup: tasks forked before the join (a shell's pipeline starts at once)
/// or restored by CRIU would stay at the root of the hierarchies
/// libcontainer leaves alone, and the next dump would record them there.
/// Twice, for a task forked while the first pass ran.
pub fn join_container(cgroup_path: &str, init: i32) -> Result<()> {
    for _ in 0..2 {
        let mut tasks = procs(cgroup_path);
        if !tasks.contains(&init) {
            tasks.push(init);
        }
        for p in tasks {
            match join_all(cgroup_path, p) {
                Ok(()) => {}
                // A task that exited meanwhile has nothing left to join.
                Err(_) if p != init && !Path::new(&format!("/proc/{p}")).exists() => {}
                Err(e) => return Err(e),
            }
        }
    }
    Ok(())
}

pub fn join_all(cgroup_path: &str, pid: i32) -> Result<()> {
    let cg = fs::read_to_string(format!("/proc/{pid}/cgroup"))
        .ctx(|| format!("read /proc/{pid}/cgroup"))?;
    let rel = cgroup_path.trim_start_matches('/');
    for line in cg.lines() {
        let mut parts = line.splitn(3, ':');
        let (Some(_), Some(ctrls), Some(path)) = (parts.next(), parts.next(), parts.next()) else {
            continue;
        };
        if path != "/" {
            continue;
        }
        let root = if ctrls.is_empty() {
            hierarchies()
                .into_iter()
                .find(|h| h.join("cgroup.controllers").exists())
        } else {
            let name = ctrls.trim_start_matches("name=");
            hierarchies().into_iter().find(|h| h.ends_with(name))
        };
        let Some(root) = root else { continue };
        let dir = root.join(rel);
        fs::create_dir_all(&dir).ctx(|| format!("create cgroup {}", dir.display()))?;
        fs::write(dir.join("cgroup.procs"), pid.to_string())
            .ctx(|| format!("move {pid} into {}", dir.display()))?;
    }
    Ok(())
}

/// Every process in `cgroup_path`, in any hierarchy (a migration target
/// signals each of them; a discard kills them).
pub fn procs(cgroup_path: &str) -> Vec<i32> {
    let rel = cgroup_path.trim_start_matches('/');
    let mut v: Vec<i32> = Vec::new();
    if rel.is_empty() {
        return v;
    }
    for root in hierarchies() {
        let f = root.join(rel).join("cgroup.procs");
        for l in fs::read_to_string(&f).unwrap_or_default().lines() {
            if let Ok(p) = l.trim().parse::<i32>() {
                if !v.contains(&p) {
                    v.push(p);
                }
            }
        }
    }
    v
}

/// CPUs of the machine this process may use.
pub fn machine_cores() -> f64 {
    std::thread::available_parallelism()
        .map(|n| n.get() as f64)
        .unwrap_or(1.0)
}

/// CFS period used for `--cpus` quotas (the kernel's default).
const CFS_PERIOD_US: u64 = 100_000;

/// Confine everything under `parent` (e.g. `/herd/n1`) to `cores` CPUs,
/// as `docker run --cpus` does for one container: a CFS quota of
/// `cores * period` per period on the parent, which bounds all its
/// children together. v1: `cpu.cfs_quota_us` in the cpu hierarchy; v2:
/// `cpu.max`, after enabling the cpu controller on every ancestor. Making
/// the parent here also means a migration target's CRIU (soft mode) finds
/// it and leaves its quota alone.
pub fn limit_cpu(parent: &str, cores: f64) -> Result<()> {
    let max = machine_cores();
    if !(cores.is_finite() && cores >= 0.01 && cores <= max) {
        return Err(crate::AgentError::Invalid {
            what: "--cpus",
            reason: format!("{cores}: must be from 0.01 to {max} (this machine's CPUs)"),
        });
    }
    let quota = ((cores * CFS_PERIOD_US as f64).round() as u64).max(1000);
    let rel = parent.trim_start_matches('/');
    let layout = crate::monitor::cgroups::Layout::detect();
    if let Some(cpu) = layout.v1.get("cpu") {
        // In every hierarchy: the sampler reads the parent's cpuacct.
        prepare(parent)?;
        let dir = cpu.join(rel);
        let w = |f: &str, v: String| {
            let p = dir.join(f);
            fs::write(&p, v).ctx(|| format!("write {}", p.display()))
        };
        // Quota first to -1: a new period shorter than an old quota is refused.
        w("cpu.cfs_quota_us", "-1".into())?;
        w("cpu.cfs_period_us", CFS_PERIOD_US.to_string())?;
        return w("cpu.cfs_quota_us", quota.to_string());
    }
    let Some(root) = layout.v2.filter(|r| r.join("cgroup.controllers").exists()) else {
        return Err(crate::AgentError::Other(
            "--cpus needs the cpu controller: no cgroup v1 cpu hierarchy or cgroup2 mount".into(),
        ));
    };
    let controllers = fs::read_to_string(root.join("cgroup.controllers")).unwrap_or_default();
    if !controllers.split_whitespace().any(|c| c == "cpu") {
        return Err(crate::AgentError::Other(format!(
            "--cpus needs the cpu controller, which {} does not offer (controllers: {})",
            root.display(),
            controllers.trim()
        )));
    }
    let dir = v2_enable(&root, rel, "cpu")?;
    let p = dir.join("cpu.max");
    fs::write(&p, format!("{quota} {CFS_PERIOD_US}")).ctx(|| format!("write {}", p.display()))
}

/// Make `rel` under the cgroup2 `root` with `controller` enabled on every
/// ancestor (so its files exist in `rel`); returns `rel`'s directory.
fn v2_enable(root: &Path, rel: &str, controller: &str) -> Result<PathBuf> {
    let mut dir = root.to_path_buf();
    for part in Path::new(rel).components() {
        let sub = dir.join("cgroup.subtree_control");
        fs::write(&sub, format!("+{controller}"))
            .ctx(|| format!("enable {controller} in {}", sub.display()))?;
        dir.push(part);
        if !dir.exists() {
            fs::create_dir(&dir).ctx(|| format!("create cgroup {}", dir.display()))?;
        }
    }
    Ok(dir)
}

/// A host's disk capacity for its containers (`--disk-iops`,
/// `--disk-bps`): each bounds reads and writes alike, each direction on
/// its own, as the IO controller counts them.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct DiskLimit {
    pub iops: Option<u64>,
    pub bps: Option<u64>,
}

impl DiskLimit {
    /// Smallest values taken: below them a host would barely boot a container.
    pub const MIN_IOPS: u64 = 1;
    pub const MIN_BPS: u64 = 4096;

    pub fn is_set(&self) -> bool {
        self.iops.is_some() || self.bps.is_some()
    }

    pub fn check(&self) -> Result<()> {
        if let Some(n) = self.iops.filter(|n| *n < Self::MIN_IOPS) {
            return Err(crate::AgentError::Invalid {
                what: "--disk-iops",
                reason: format!("{n}: must be at least {} op/s", Self::MIN_IOPS),
            });
        }
        if let Some(n) = self.bps.filter(|n| *n < Self::MIN_BPS) {
            return Err(crate::AgentError::Invalid {
                what: "--disk-bps",
                reason: format!("{n}: must be at least {} bytes/s", Self::MIN_BPS),
            });
        }
        Ok(())
    }
}

/// v1 blkio throttle files and the field of [`DiskLimit`] each takes.
const V1_THROTTLE: [(&str, bool); 4] = [
    ("blkio.throttle.read_iops_device", true),
    ("blkio.throttle.write_iops_device", true),
    ("blkio.throttle.read_bps_device", false),
    ("blkio.throttle.write_bps_device", false),
];

/// Write `limit` into the v1 throttle files of `dir` (0 removes a rule).
fn v1_throttle(dir: &Path, disk: crate::blockdev::Dev, limit: DiskLimit) -> Result<()> {
    for (file, iops) in V1_THROTTLE {
        let v = if iops { limit.iops } else { limit.bps };
        let p = dir.join(file);
        fs::write(&p, format!("{disk} {}", v.unwrap_or(0)))
            .ctx(|| format!("write {} to {}", disk, p.display()))?;
    }
    Ok(())
}

/// Throttle everything under `parent` (e.g. `/herd/n1`) on `disk` to
/// `limit`. v2: `io.max` (`riops wiops rbps wbps`) on the parent, after
/// enabling the io controller on every ancestor: it bounds the children
/// together, writeback included. v1: blkio throttling is flat (a
/// parent's limit does not bound its children, only tasks in the parent
/// itself), so the parent gets the limit and [`DiskShare`] splits it over
/// the containers below; v1 sees only IO the tasks submit themselves
/// (direct IO, fsync, reads), not buffered writeback. An unset field is
/// unlimited (`max`, or 0 on v1, which removes a rule). Returns whether
/// the split is needed (v1).
pub fn limit_disk(parent: &str, disk: crate::blockdev::Dev, limit: DiskLimit) -> Result<bool> {
    limit.check()?;
    let rel = parent.trim_start_matches('/');
    let layout = crate::monitor::cgroups::Layout::detect();
    if let Some(blkio) = layout.v1.get("blkio") {
        prepare(parent)?;
        v1_throttle(&blkio.join(rel), disk, limit)?;
        return Ok(true);
    }
    let Some(root) = layout.v2.filter(|r| r.join("cgroup.controllers").exists()) else {
        return Err(crate::AgentError::Other(
            "--disk-iops/--disk-bps need the IO controller: no cgroup v1 blkio hierarchy or cgroup2 mount"
                .into(),
        ));
    };
    let controllers = fs::read_to_string(root.join("cgroup.controllers")).unwrap_or_default();
    if !controllers.split_whitespace().any(|c| c == "io") {
        return Err(crate::AgentError::Other(format!(
            "--disk-iops/--disk-bps need the io controller, which {} does not offer (controllers: {})",
            root.display(),
            controllers.trim()
        )));
    }
    let dir = v2_enable(&root, rel, "io")?;
    let v = |n: Option<u64>| n.map_or("max".to_string(), |n| n.to_string());
    let line = format!(
        "{disk} riops={} wiops={} rbps={} wbps={}",
        v(limit.iops),
        v(limit.iops),
        v(limit.bps),
        v(limit.bps)
    );
    let p = dir.join("io.max");
    fs::write(&p, &line).ctx(|| format!("write {line:?} to {}", p.display()))?;
    Ok(false)
}

/// A host's v1 disk limit split over its containers (see [`limit_disk`]).
///
/// Every [`DiskShare::PERIOD`], each container cgroup under the parent
/// that did IO on the disk since the last look is active; each container
/// gets the limit divided by the number of active ones (at least one), so
/// the active ones together stay within it and one busy container alone
/// gets all of it. Not work-conserving within a period: a container that
/// just started doing IO has the share it was last given until the next
/// look. A moved-in container (its cgroup new) gets the current share at
/// once.
pub struct DiskShare {
    dir: PathBuf,
    disk: crate::blockdev::Dev,
    limit: DiskLimit,
    /// Per child cgroup: its IO count at the last look, and the share written.
    seen: std::collections::HashMap<String, (u64, Option<DiskLimit>)>,
}

impl DiskShare {
    pub const PERIOD: std::time::Duration = std::time::Duration::from_millis(500);

    /// None where there is no v1 blkio hierarchy.
    pub fn new(parent: &str, disk: crate::blockdev::Dev, limit: DiskLimit) -> Option<DiskShare> {
        let layout = crate::monitor::cgroups::Layout::detect();
        let dir = layout.v1.get("blkio")?.join(parent.trim_start_matches('/'));
        Some(DiskShare {
            dir,
            disk,
            limit,
            seen: Default::default(),
        })
    }

    /// IO ops a child cgroup did on the disk (reads + writes, its subtree).
    fn ops(&self, child: &Path) -> u64 {
        let t = fs::read_to_string(child.join("blkio.throttle.io_serviced_recursive"))
            .unwrap_or_default();
        let dev = format!("{} ", self.disk);
        t.lines()
            .filter_map(|l| l.strip_prefix(&dev))
            .filter_map(|l| {
                let (op, n) = l.split_once(' ')?;
                matches!(op, "Read" | "Write").then(|| n.trim().parse::<u64>().ok())?
            })
            .sum()
    }

    /// One look: count the active children, write each its share.
    pub fn tick(&mut self) {
        let Ok(rd) = fs::read_dir(&self.dir) else {
            return;
        };
        let children: Vec<(String, PathBuf)> = rd
            .flatten()
            .filter(|e| e.file_type().is_ok_and(|t| t.is_dir()))
            .map(|e| (e.file_name().to_string_lossy().into_owned(), e.path()))
            .collect();
        let now: Vec<(String, PathBuf, u64)> = children
            .into_iter()
            .map(|(n, p)| {
                let ops = self.ops(&p);
                (n, p, ops)
            })
            .collect();
        let active = now
            .iter()
            .filter(|(n, _, ops)| self.seen.get(n).is_some_and(|(o, _)| ops > o))
            .count()
            .max(1) as u64;
        let share = |v: Option<u64>, min: u64| v.map(|v| (v / active).max(min));
        let limit = DiskLimit {
            iops: share(self.limit.iops, DiskLimit::MIN_IOPS),
            bps: share(self.limit.bps, DiskLimit::MIN_BPS),
        };
        let mut seen = std::collections::HashMap::new();
        for (n, p, ops) in now {
            let written = match self.seen.get(&n) {
                Some((_, Some(w))) if *w == limit => Some(limit),
                // Gone meanwhile, or not ready: tried again next time.
                _ => v1_throttle(&p, self.disk, limit).ok().map(|()| limit),
            };
            seen.insert(n, (ops, written));
        }
        self.seen = seen;
    }

    /// Look every [`DiskShare::PERIOD`] for as long as the process lives.
    pub fn spawn(mut self) -> std::io::Result<()> {
        std::thread::Builder::new()
            .name("disk-share".into())
            .spawn(move || loop {
                self.tick();
                std::thread::sleep(Self::PERIOD);
            })
            .map(|_| ())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_criu_yard_mount_is_not_a_hierarchy() {
        let mi = "\
30 25 0:26 / /sys/fs/cgroup/cpu,cpuacct rw,nosuid - cgroup cgroup rw,cpu,cpuacct
31 25 0:27 / /sys/fs/cgroup/memory rw,nosuid - cgroup cgroup rw,memory
32 25 0:28 / /sys/fs/cgroup/unified rw,nosuid - cgroup2 cgroup2 rw,nsdelegate
90 80 0:26 / /var/lib/x/checkpoint/.criu.cgyard.ab12/cpu,cpuacct rw - cgroup none rw,cpu,cpuacct
91 80 0:27 /herd /mnt/memsub rw - cgroup cgroup rw,memory
92 80 0:40 / /var/lib/x/.criu.cgyard.zz/freezer rw - cgroup none rw,freezer
";
        let h = hierarchies_in(mi);
        let want: Vec<PathBuf> = [
            "/sys/fs/cgroup/cpu,cpuacct",
            "/sys/fs/cgroup/memory",
            "/sys/fs/cgroup/unified",
            // Only mounted in a yard: still a hierarchy, once.
            "/var/lib/x/.criu.cgyard.zz/freezer",
        ]
        .iter()
        .map(PathBuf::from)
        .collect();
        assert_eq!(h, want);
    }

    #[test]
    fn this_machine_has_its_hierarchies_under_sys_fs_cgroup() {
        let h = hierarchies();
        assert!(!h.is_empty());
        assert!(h.iter().all(|p| p.starts_with("/sys/fs/cgroup")), "{h:?}");
    }
}
