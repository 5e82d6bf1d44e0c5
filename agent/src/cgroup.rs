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
    let mut dir = root.clone();
    for part in Path::new(rel).components() {
        let sub = dir.join("cgroup.subtree_control");
        fs::write(&sub, "+cpu").ctx(|| format!("enable cpu in {}", sub.display()))?;
        dir.push(part);
        if !dir.exists() {
            fs::create_dir(&dir).ctx(|| format!("create cgroup {}", dir.display()))?;
        }
    }
    let p = dir.join("cpu.max");
    fs::write(&p, format!("{quota} {CFS_PERIOD_US}")).ctx(|| format!("write {}", p.display()))
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
