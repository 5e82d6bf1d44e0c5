//! The whole disk behind a path, as the IO controller names it
//! (`MAJ:MIN`): a host's disk limit (`herd-agent --disk-iops/--disk-bps`)
//! throttles the disk its state dir (images, containers' upper layers,
//! bind-mount sources under it) is on.
//!
//! `stat(path).st_dev` gives the filesystem's device. Filesystems without
//! a block device number of their own (major 0: btrfs, overlayfs, ...)
//! are looked up in mountinfo: the mount holding the path, and its source
//! when that is a block device node. Throttling takes whole disks only,
//! so a partition (`/sys/dev/block/MAJ:MIN/partition` exists) is replaced
//! by its parent disk (the sysfs directory above it).

use std::os::unix::fs::{FileTypeExt, MetadataExt};
use std::path::{Path, PathBuf};

use crate::error::{AgentError, IoContext, Result};

/// A block device number.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Dev {
    pub major: u32,
    pub minor: u32,
}

impl std::fmt::Display for Dev {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "{}:{}", self.major, self.minor)
    }
}

impl Dev {
    fn of(raw: u64) -> Dev {
        Dev {
            major: libc::major(raw),
            minor: libc::minor(raw),
        }
    }

    fn parse(s: &str) -> Option<Dev> {
        let (a, b) = s.trim().split_once(':')?;
        Some(Dev {
            major: a.parse().ok()?,
            minor: b.parse().ok()?,
        })
    }
}

/// The whole disk that `path`'s filesystem is on.
pub fn disk_of(path: &Path) -> Result<Dev> {
    let md = std::fs::metadata(path).ctx(|| format!("stat {}", path.display()))?;
    let mut dev = Dev::of(md.dev());
    if dev.major == 0 {
        dev = mount_source_dev(path).ok_or_else(|| {
            AgentError::Other(format!(
                "{} is on a filesystem without a block device (device {dev}, and its mount's \
                 source is not a block device node): no disk to throttle",
                path.display()
            ))
        })?;
    }
    whole_disk(dev)
}

/// The block device node a mount holding `path` was made from (the mount
/// with the longest mount point that is a prefix of `path`).
fn mount_source_dev(path: &Path) -> Option<Dev> {
    let path = std::fs::canonicalize(path).ok()?;
    let text = std::fs::read_to_string("/proc/self/mountinfo").ok()?;
    let mount = text
        .lines()
        .filter_map(|l| procfs::process::MountInfo::from_line(l).ok())
        .filter(|m| path.starts_with(crate::mountinfo::unescape(&m.mount_point.to_string_lossy())))
        .max_by_key(|m| m.mount_point.as_os_str().len())?;
    let md = std::fs::metadata(mount.mount_source?).ok()?;
    md.file_type().is_block_device().then(|| Dev::of(md.rdev()))
}

/// `dev`, or the disk it is a partition of; refused when sysfs does not
/// know it as a block device.
pub fn whole_disk(dev: Dev) -> Result<Dev> {
    let sys = PathBuf::from(format!("/sys/dev/block/{dev}"));
    if !sys.exists() {
        return Err(AgentError::Other(format!(
            "device {dev} is not a block device ({} does not exist)",
            sys.display()
        )));
    }
    if !sys.join("partition").exists() {
        return Ok(dev);
    }
    let real = std::fs::canonicalize(&sys).ctx(|| format!("resolve {}", sys.display()))?;
    let parent = real.join("..").join("dev");
    let text = std::fs::read_to_string(&parent).ctx(|| format!("read {}", parent.display()))?;
    Dev::parse(&text)
        .ok_or_else(|| AgentError::Other(format!("{}: {text:?} is not MAJ:MIN", parent.display())))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_root_filesystem_is_on_a_whole_disk_sysfs_knows() {
        let d = disk_of(Path::new("/")).expect("a disk under /");
        let sys = PathBuf::from(format!("/sys/dev/block/{d}"));
        assert!(sys.exists(), "{}", sys.display());
        assert!(!sys.join("partition").exists(), "{d} is a partition");
    }

    #[test]
    fn a_filesystem_without_a_disk_is_refused_with_the_reason() {
        let e = disk_of(Path::new("/proc/self")).unwrap_err().to_string();
        assert!(e.contains("without a block device"), "{e}");
    }

    #[test]
    fn dev_parses_maj_min() {
        assert_eq!(
            Dev::parse("254:0\n"),
            Some(Dev {
                major: 254,
                minor: 0
            })
        );
        assert_eq!(Dev::parse("254"), None);
    }
}
