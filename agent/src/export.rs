//! Checkpoint archives: what `herd checkpoint --export` writes and
//! `herd restore --import` reads, so a container restores on another host
//! that has its image.
//!
//! A tar (zstd-compressed when the file name ends in `.zst`) holding, in
//! this order:
//!
//! ```text
//! herd-export.json        Manifest: format, the run spec, image name and layers,
//!                         and size + sha256 of every other entry
//! config.json             the OCI runtime spec
//! upper.tar               the container's upper (diff) layer, herd-overlay capture format
//! checkpoint/<file>       CRIU's images and herd-checkpoint.json
//! ```
//!
//! Import trusts nothing: the manifest comes first and is bounded, every
//! other entry must be listed in it with a plain name, sizes and checksums
//! must match, and everything lands in a staging directory that is removed
//! on any error, so a corrupt or truncated archive creates nothing.

use std::fs::{self, File};
use std::io::{self, BufReader, BufWriter, Read, Write};
use std::path::{Path, PathBuf};

use herd_wire::RunSpec;
use serde::{Deserialize, Serialize};
use sha2::{Digest, Sha256};

use crate::container::Agent;
use crate::error::{AgentError, IoContext, Result};

pub const FORMAT: u32 = 1;
const MANIFEST: &str = "herd-export.json";
const MAX_MANIFEST: u64 = 1 << 20;
const ZSTD_MAGIC: [u8; 4] = [0x28, 0xb5, 0x2f, 0xfd];

#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct Manifest {
    pub format: u32,
    pub spec: RunSpec,
    pub image: String,
    pub layers: Vec<String>,
    pub node: String,
    pub files: Vec<FileEntry>,
}

#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct FileEntry {
    pub path: String,
    pub size: u64,
    pub sha256: String,
}

/// Write the archive of a checkpointed container; returns its size.
pub fn write(agent: &Agent, name: &str, images: &Path, out: &Path) -> Result<u64> {
    let rec = agent.entry(name)?.snapshot();
    let cdir = agent.state.container(name);
    let upper_tar = cdir.dir.join("upper.tar.tmp");
    {
        let f = File::create(&upper_tar).ctx(|| format!("create {}", upper_tar.display()))?;
        let mut w = BufWriter::new(f);
        herd_overlay::capture_upper(&cdir.fs().join("upper"), &mut w)?;
        w.flush().ctx(|| "write upper layer".into())?;
    }
    let mut files: Vec<(String, PathBuf)> = vec![
        ("config.json".into(), cdir.bundle().join("config.json")),
        ("upper.tar".into(), upper_tar.clone()),
    ];
    let mut names: Vec<_> = fs::read_dir(images)
        .ctx(|| format!("read {}", images.display()))?
        .flatten()
        .filter(|e| e.file_type().map(|t| t.is_file()).unwrap_or(false))
        .map(|e| e.file_name().to_string_lossy().into_owned())
        .collect();
    names.sort();
    for n in names {
        files.push((format!("checkpoint/{n}"), images.join(&n)));
    }
    let result = (|| -> Result<u64> {
        let mut entries = Vec::new();
        for (p, src) in &files {
            let (size, sha256) = hash_file(src)?;
            entries.push(FileEntry {
                path: p.clone(),
                size,
                sha256,
            });
        }
        let manifest = Manifest {
            format: FORMAT,
            spec: rec.spec.clone(),
            image: rec.spec.image.clone(),
            layers: rec.layers.clone(),
            node: agent.cfg.node.clone(),
            files: entries,
        };
        let tmp = out.with_extension("partial");
        let f = File::create(&tmp).ctx(|| format!("create {}", tmp.display()))?;
        let zst = out.extension().map(|e| e == "zst").unwrap_or(false);
        let w: Box<dyn Write> = if zst {
            Box::new(
                zstd::Encoder::new(BufWriter::new(f), 3)
                    .ctx(|| "zstd".into())?
                    .auto_finish(),
            )
        } else {
            Box::new(BufWriter::new(f))
        };
        let mut tar = tar::Builder::new(w);
        let mj = serde_json::to_vec_pretty(&manifest)
            .map_err(|e| AgentError::Other(format!("encode manifest: {e}")))?;
        append(&mut tar, MANIFEST, &mut mj.as_slice(), mj.len() as u64)?;
        for (p, src) in &files {
            let mut f = File::open(src).ctx(|| format!("open {}", src.display()))?;
            let len = f.metadata().ctx(|| "stat".into())?.len();
            append(&mut tar, p, &mut f, len)?;
        }
        let mut w = tar.into_inner().ctx(|| "finish archive".into())?;
        w.flush().ctx(|| format!("write {}", tmp.display()))?;
        drop(w);
        fs::rename(&tmp, out).ctx(|| format!("rename to {}", out.display()))?;
        Ok(fs::metadata(out).map(|m| m.len()).unwrap_or(0))
    })();
    let _ = fs::remove_file(&upper_tar);
    if result.is_err() {
        let _ = fs::remove_file(out.with_extension("partial"));
    }
    result
}

fn append<W: Write>(
    tar: &mut tar::Builder<W>,
    path: &str,
    data: &mut dyn Read,
    len: u64,
) -> Result<()> {
    let mut h = tar::Header::new_gnu();
    h.set_size(len);
    h.set_mode(0o600);
    h.set_entry_type(tar::EntryType::Regular);
    h.set_cksum();
    tar.append_data(&mut h, path, data)
        .ctx(|| format!("write {path} into the archive"))
}

fn hash_file(p: &Path) -> Result<(u64, String)> {
    let mut f = File::open(p).ctx(|| format!("open {}", p.display()))?;
    let mut h = Sha256::new();
    let n = io::copy(&mut f, &mut h).ctx(|| format!("read {}", p.display()))?;
    Ok((n, hex::encode(h.finalize())))
}

/// A verified archive unpacked into a staging dir (removed on drop unless kept).
pub struct Staged {
    pub dir: PathBuf,
    pub manifest: Manifest,
    keep: bool,
}

impl Staged {
    pub fn checkpoint(&self) -> PathBuf {
        self.dir.join("checkpoint")
    }
    pub fn keep(&mut self) {
        self.keep = true;
    }
}

impl Drop for Staged {
    fn drop(&mut self) {
        if !self.keep {
            let _ = fs::remove_dir_all(&self.dir);
        }
    }
}

/// Read and verify an archive into `staging` (which must not exist); the
/// files the manifest lists may add up to at most `limits` (checked before
/// anything is written, and again while writing).
pub fn read(path: &Path, staging: &Path, limits: &herd_overlay::Limits) -> Result<Staged> {
    let bad = |reason: String| AgentError::BadArchive {
        path: path.display().to_string(),
        reason,
    };
    let mut f = File::open(path).ctx(|| format!("open {}", path.display()))?;
    let mut magic = [0u8; 4];
    let n = f
        .read(&mut magic)
        .ctx(|| format!("read {}", path.display()))?;
    drop(f);
    let f = BufReader::new(File::open(path).ctx(|| format!("open {}", path.display()))?);
    let r: Box<dyn Read> = if n == 4 && magic == ZSTD_MAGIC {
        Box::new(zstd::Decoder::with_buffer(f).map_err(|e| bad(format!("zstd: {e}")))?)
    } else {
        Box::new(f)
    };
    fs::create_dir_all(staging.join("checkpoint"))
        .ctx(|| format!("create {}", staging.display()))?;
    let mut staged = Staged {
        dir: staging.to_path_buf(),
        manifest: Manifest {
            format: 0,
            spec: RunSpec::default(),
            image: String::new(),
            layers: vec![],
            node: String::new(),
            files: vec![],
        },
        keep: false,
    };
    let mut ar = tar::Archive::new(r);
    let mut entries = ar
        .entries()
        .map_err(|_| bad("not a Herd checkpoint archive (not a tar)".into()))?;
    // The manifest first.
    let mut first = entries
        .next()
        .ok_or_else(|| bad("empty archive".into()))?
        .map_err(|_| bad("not a Herd checkpoint archive (no readable tar header)".into()))?;
    let p = first
        .path()
        .map_err(|e| bad(e.to_string()))?
        .to_string_lossy()
        .into_owned();
    if p != MANIFEST {
        return Err(bad(format!("first entry is {p:?}, not {MANIFEST}")));
    }
    if first.size() > MAX_MANIFEST {
        return Err(bad("manifest too large".into()));
    }
    let mut mj = Vec::new();
    first
        .read_to_end(&mut mj)
        .map_err(|e| bad(format!("manifest: {e}")))?;
    drop(first);
    let manifest: Manifest =
        serde_json::from_slice(&mj).map_err(|e| bad(format!("manifest: {e}")))?;
    if manifest.format != FORMAT {
        return Err(bad(format!(
            "format {} (this agent reads format {FORMAT})",
            manifest.format
        )));
    }
    let total: u64 = manifest
        .files
        .iter()
        .fold(0u64, |t, f| t.saturating_add(f.size));
    if total > limits.max_bytes {
        return Err(bad(format!(
            "it expands to {total} bytes, more than the limit of {} (--max-unpack-bytes)",
            limits.max_bytes
        )));
    }
    if manifest.files.len() as u64 > limits.max_entries {
        return Err(bad(format!(
            "it lists {} files, more than the limit of {} (--max-unpack-entries)",
            manifest.files.len(),
            limits.max_entries
        )));
    }
    let mut seen = std::collections::HashSet::new();
    for e in entries {
        let mut e = e.map_err(|e| {
            bad(format!(
                "truncated or corrupt: {}",
                one_line(&e.to_string())
            ))
        })?;
        let p = e
            .path()
            .map_err(|e| bad(e.to_string()))?
            .to_string_lossy()
            .into_owned();
        let want = manifest
            .files
            .iter()
            .find(|f| f.path == p)
            .ok_or_else(|| bad(format!("entry {p:?} is not in the manifest")))?;
        if !safe_entry_name(&p) || e.header().entry_type() != tar::EntryType::Regular {
            return Err(bad(format!("refusing entry {p:?}")));
        }
        if !seen.insert(p.clone()) {
            return Err(bad(format!("entry {p:?} twice")));
        }
        let dst = staging.join(&p);
        let mut out = File::create(&dst).ctx(|| format!("create {}", dst.display()))?;
        let mut h = Sha256::new();
        let mut buf = vec![0u8; 1 << 16];
        let mut total = 0u64;
        loop {
            let k = e
                .read(&mut buf)
                .map_err(|err| bad(format!("{p}: truncated or corrupt: {err}")))?;
            if k == 0 {
                break;
            }
            total += k as u64;
            if total > want.size {
                return Err(bad(format!("{p} is larger than the manifest says")));
            }
            h.update(&buf[..k]);
            out.write_all(&buf[..k])
                .ctx(|| format!("write {}", dst.display()))?;
        }
        let got = hex::encode(h.finalize());
        if total != want.size || got != want.sha256 {
            return Err(bad(format!(
                "{p}: checksum mismatch ({total} bytes, sha256 {got}; manifest: {} bytes, {})",
                want.size, want.sha256
            )));
        }
    }
    for f in &manifest.files {
        if !seen.contains(&f.path) {
            return Err(bad(format!("{} is missing (archive cut short?)", f.path)));
        }
    }
    staged.manifest = manifest;
    Ok(staged)
}

/// First line of an error text, printable characters only (the tar crate
/// quotes raw header bytes in its messages).
fn one_line(s: &str) -> String {
    s.lines()
        .next()
        .unwrap_or("")
        .chars()
        .filter(|c| !c.is_control())
        .take(120)
        .collect()
}

fn safe_entry_name(p: &str) -> bool {
    let plain =
        |s: &str| !s.is_empty() && s != "." && s != ".." && !s.contains('/') && !s.contains('\0');
    match p.split_once('/') {
        None => p == "config.json" || p == "upper.tar",
        Some(("checkpoint", rest)) => plain(rest),
        _ => false,
    }
}

#[cfg(test)]
mod tests {
    use super::safe_entry_name;

    #[test]
    fn only_plain_names_pass() {
        assert!(safe_entry_name("upper.tar"));
        assert!(safe_entry_name("checkpoint/pages-1.img"));
        for bad in [
            "../x",
            "checkpoint/../x",
            "/etc/passwd",
            "checkpoint/a/b",
            "x",
            "checkpoint/",
            "checkpoint/..",
        ] {
            assert!(!safe_entry_name(bad), "{bad}");
        }
    }
}
