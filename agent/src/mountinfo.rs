//! The mount table (`/proc/self/mountinfo`), parsed once by the procfs
//! crate for every reader in the agent (cgroup hierarchies, the monitor's
//! cgroup layout, unmounting what a killed CRIU left).

use std::path::PathBuf;

/// One mount, with its mount point decoded.
#[derive(Debug, Clone, PartialEq)]
pub struct Mount {
    /// The directory of the filesystem mounted here (`/` for a whole one).
    pub root: String,
    pub point: PathBuf,
    pub fs_type: String,
    /// Per-superblock options in the kernel's order (a v1 cgroup's
    /// controllers, `name=systemd`).
    pub super_options: Vec<String>,
}

/// This process's mounts; empty if the table cannot be read.
pub fn mounts() -> Vec<Mount> {
    std::fs::read_to_string("/proc/self/mountinfo")
        .map(|t| parse(&t))
        .unwrap_or_default()
}

/// Mounts from mountinfo text; a line the parser does not take is skipped.
pub fn parse(text: &str) -> Vec<Mount> {
    text.lines()
        .filter_map(|l| {
            let m = procfs::process::MountInfo::from_line(l).ok()?;
            Some(Mount {
                point: PathBuf::from(unescape(&m.mount_point.to_string_lossy())),
                root: m.root,
                fs_type: m.fs_type,
                // procfs keeps them in a map; the line's order is kept here.
                super_options: super_options(l),
            })
        })
        .collect()
}

/// The last field of a mountinfo line, split at commas.
fn super_options(line: &str) -> Vec<String> {
    let mut f = line.rsplit(' ');
    f.next()
        .map(|o| o.split(',').map(str::to_string).collect())
        .unwrap_or_default()
}

/// mountinfo writes space, tab, newline and backslash as `\ooo`.
pub fn unescape(p: &str) -> String {
    let b = p.as_bytes();
    let mut out = Vec::with_capacity(b.len());
    let mut i = 0;
    while i < b.len() {
        let oct = b
            .get(i + 1..i + 4)
            .filter(|o| o.iter().all(|c| (b'0'..=b'7').contains(c)))
            .and_then(|o| {
                let v = o.iter().fold(0u32, |v, c| v * 8 + u32::from(c - b'0'));
                u8::try_from(v).ok()
            });
        match (b[i], oct) {
            (b'\\', Some(v)) => {
                out.push(v);
                i += 4;
            }
            (c, _) => {
                out.push(c);
                i += 1;
            }
        }
    }
    String::from_utf8_lossy(&out).into_owned()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn escapes_are_decoded() {
        assert_eq!(unescape("/a\\040b\\134c"), "/a b\\c");
        assert_eq!(unescape("/plain\\9"), "/plain\\9");
    }

    #[test]
    fn lines_become_mounts() {
        let t =
            "25 30 0:22 / /sys/fs/cgroup/cpu,cpuacct rw,nosuid - cgroup cgroup rw,cpu,cpuacct\n\
                 26 30 0:23 / /sys/fs/cgroup/unified rw shared:9 - cgroup2 cgroup2 rw,nsdelegate\n\
                 not a mount line\n\
                 90 30 0:40 /x /tmp/a\\040b rw - tmpfs none rw\n";
        let m = parse(t);
        assert_eq!(m.len(), 3, "{m:?}");
        assert_eq!(m[0].fs_type, "cgroup");
        assert_eq!(m[0].super_options, ["rw", "cpu", "cpuacct"]);
        assert_eq!(m[1].point, PathBuf::from("/sys/fs/cgroup/unified"));
        assert_eq!(m[2].point, PathBuf::from("/tmp/a b"));
        assert_eq!(m[2].root, "/x");
    }
}
