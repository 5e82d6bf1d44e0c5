//! Paths the CLI hands to agents (absolute: agents run elsewhere) and its
//! own scratch directories.

use std::path::{Path, PathBuf};

use anyhow::{Context, Result};

pub fn absolute(p: &Path) -> Result<PathBuf> {
    Ok(if p.is_absolute() {
        p.to_path_buf()
    } else {
        std::env::current_dir()?.join(p)
    })
}

/// A directory removed when dropped.
pub struct TempDir(pub PathBuf);
impl Drop for TempDir {
    fn drop(&mut self) {
        let _ = std::fs::remove_dir_all(&self.0);
    }
}
pub fn tempdir_in(base: &Path) -> Result<TempDir> {
    let p = base.join(format!("tmp-rootfs-{}", std::process::id()));
    let _ = std::fs::remove_dir_all(&p);
    std::fs::create_dir_all(&p).with_context(|| format!("create {}", p.display()))?;
    Ok(TempDir(p))
}
