//! `rm [-f]`: runtime state and cgroups, overlay mount, netns, directory.

use std::time::Duration;

use herd_wire::ContainerStatus;

use super::run::destroy_runtime;
use super::{lock, Agent};
use crate::error::{AgentError, IoContext, Result};
use crate::state::ContainerRecord;

impl Agent {
    pub fn remove(&self, name: &str, force: bool) -> Result<()> {
        let entry = self.entry(name)?;
        let rec = entry.snapshot();
        if matches!(
            rec.status,
            ContainerStatus::Running | ContainerStatus::Created
        ) {
            if !force {
                return Err(AgentError::Conflict {
                    name: name.to_string(),
                    state: rec.status.to_string(),
                    hint: "stop it first or use rm -f",
                });
            }
            self.stop(name, Duration::ZERO)?;
        }
        self.teardown(&rec)?;
        lock(&self.containers).remove(name);
        if rec.spec.image == format!("{name}-whole") {
            // The image a `--fs whole` migration made for this container alone.
            if let Err(e) = self.images.remove(&rec.spec.image) {
                tracing::warn!(image = %rec.spec.image, "remove: {e}");
            }
        }
        tracing::info!(container = name, "removed");
        Ok(())
    }

    /// Remove everything a stopped container holds on this host.
    pub(crate) fn teardown(&self, rec: &ContainerRecord) -> Result<()> {
        let name = &rec.spec.name;
        let netns = &rec.netns;
        destroy_runtime(&self.state.runtime(), name);
        crate::cgroup::remove(&rec.cgroup_path);
        let cdir = self.state.container(name);
        if !rec.layers.is_empty() && cdir.fs().exists() {
            self.container_fs(rec)?.unmount()?;
        }
        if !netns.is_empty() {
            herd_netlink::netns::delete_with_links(netns)
                .ctx(|| format!("delete netns {netns}"))?;
        }
        // A CRIU killed mid-restore leaves its cgroup yard mounted in the
        // image dir; nothing else mounts below a container's dir.
        unmount_below(&cdir.dir);
        std::fs::remove_dir_all(&cdir.dir).ctx(|| format!("remove {}", cdir.dir.display()))?;
        Ok(())
    }
}

/// Detach every mount at or below `dir`, deepest first.
pub(crate) fn unmount_below(dir: &std::path::Path) {
    let mut points: Vec<std::path::PathBuf> = crate::mountinfo::mounts()
        .into_iter()
        .map(|m| m.point)
        .filter(|p| p.starts_with(dir))
        .collect();
    points.sort_by_key(|p| std::cmp::Reverse(p.components().count()));
    for p in points {
        if let Err(e) = nix::mount::umount2(&p, nix::mount::MntFlags::MNT_DETACH) {
            tracing::warn!("unmount {}: {e}", p.display());
        }
    }
}
