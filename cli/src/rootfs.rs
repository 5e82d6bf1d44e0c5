//! A tiny image from the host's static busybox (Debian's busybox-static),
//! optionally with extra static binaries (herd-work) in /bin: no registry
//! is needed for the lab, the demo or the tests.

use std::fs;
use std::os::unix::fs::{symlink, PermissionsExt};
use std::path::{Path, PathBuf};
use std::process::Command;

use anyhow::{bail, Context, Result};

pub fn busybox_path() -> Result<PathBuf> {
    for p in ["/bin/busybox", "/usr/bin/busybox"] {
        let p = Path::new(p);
        if p.exists() {
            return Ok(p.to_path_buf());
        }
    }
    bail!("busybox not found (install busybox-static, or run scripts/setup)")
}

/// Write a busybox rootfs into `dir` (which must not exist or be empty).
pub fn build_busybox(dir: &Path, extra: &[PathBuf]) -> Result<()> {
    let bb = busybox_path()?;
    let out = Command::new(&bb)
        .arg("--list")
        .output()
        .with_context(|| format!("cannot run {}", bb.display()))?;
    if !out.status.success() {
        bail!("{} --list failed", bb.display());
    }
    for d in [
        "bin", "sbin", "usr/bin", "usr/sbin", "dev", "proc", "sys", "tmp", "etc", "root",
        "var/tmp", "run",
    ] {
        fs::create_dir_all(dir.join(d))
            .with_context(|| format!("create {}", dir.join(d).display()))?;
    }
    fs::set_permissions(dir.join("tmp"), fs::Permissions::from_mode(0o1777))?;
    fs::copy(&bb, dir.join("bin/busybox")).context("copy busybox")?;
    for applet in String::from_utf8_lossy(&out.stdout).lines() {
        let applet = applet.trim();
        if applet.is_empty() || applet == "busybox" || applet.contains('/') {
            continue;
        }
        let link = dir.join("bin").join(applet);
        if !link.exists() {
            symlink("busybox", &link).with_context(|| format!("link {}", link.display()))?;
        }
    }
    fs::write(
        dir.join("etc/passwd"),
        "root:x:0:0:root:/root:/bin/sh\nnobody:x:65534:65534:nobody:/:/bin/false\n",
    )?;
    fs::write(dir.join("etc/group"), "root:x:0:\nnogroup:x:65534:\n")?;
    for e in extra {
        let name = e
            .file_name()
            .with_context(|| format!("{} has no file name", e.display()))?;
        fs::copy(e, dir.join("bin").join(name)).with_context(|| format!("copy {}", e.display()))?;
    }
    Ok(())
}

/// herd-work built static by scripts/setup, if present.
pub fn find_herd_work() -> Option<PathBuf> {
    if let Some(p) = std::env::var_os("HERD_WORK_BIN") {
        return Some(PathBuf::from(p));
    }
    let exe = std::env::current_exe().ok()?;
    // target/release/herd -> target/static/release/herd-work
    let target = exe.parent()?.parent()?;
    let p = target.join("static/release/herd-work");
    p.exists().then_some(p)
}
