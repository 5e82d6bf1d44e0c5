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
    let Ok(mi) = fs::read_to_string("/proc/self/mountinfo") else {
        return Vec::new();
    };
    mi.lines()
        .filter_map(|l| {
            let parts: Vec<&str> = l.split(' ').collect();
            let sep = parts.iter().position(|p| *p == "-")?;
            let fstype = *parts.get(sep + 1)?;
            (fstype == "cgroup" || fstype == "cgroup2").then(|| PathBuf::from(parts[4]))
        })
        .collect()
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
        let dir = root.join(rel);
        if dir.exists() {
            if let Err(e) = fs::remove_dir(&dir) {
                tracing::warn!(cgroup = %dir.display(), "cannot remove: {e}");
            }
        }
    }
}

/// Put `pid` into `cgroup_path` in every hierarchy where it sits at the
/// root: libcontainer's v1 manager leaves the named `systemd` and the
/// unified hierarchy of a hybrid host alone, and a task at a hierarchy's
/// root makes CRIU dump (and restore) that hierarchy's whole tree.
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
