//! The content-addressed image store.
//!
//! # Layout
//! ```text
//! <root>/
//!   .lock                      flock(2)ed for every import/remove (cross-process)
//!   layers/sha256-<hex>/       one unpacked layer, ready to be an overlayfs lowerdir
//!   images/<name>.json         one record per image name (a name with '/' nests)
//!   tmp/                       staging for imports; emptied when the store opens
//! ```
//!
//! A layer is named by its *diff id*: the sha256 of its uncompressed tar
//! (for a rootfs directory, of the deterministic tar [`crate::capture`]
//! writes of it). The same layer shipped gzip, zstd or plain is stored once.
//! OCI blobs are checked against their manifest digests and, when the image
//! config lists `rootfs.diff_ids`, the unpacked stream against those.
//!
//! # Atomicity
//! An import unpacks every new layer into its own directory under `tmp/`;
//! only when all of them are complete are they renamed into `layers/` and
//! the record is written (to `tmp/`, then renamed). Any error removes what
//! the import staged or renamed, so the store is exactly as before. Imports
//! and removals hold the store lock; `list`/`get` read records, which are
//! always replaced by rename, without it.
//!
//! # Image ids
//! For an OCI image the id is its config digest (as Docker and containerd
//! do). For a rootfs directory or tar it is the sha256 of the newline-joined
//! layer digests.
//!
//! Callers must not remove an image whose layers a mounted container uses:
//! the store does not track mounts.

use std::collections::HashSet;
use std::fs::{self, File};
use std::io::{self, BufRead, BufReader, Read, Write};
use std::os::fd::AsRawFd;
use std::path::{Path, PathBuf};
use std::sync::atomic::{AtomicU64, Ordering};
use std::time::{SystemTime, UNIX_EPOCH};

use serde::{Deserialize, Serialize};
use sha2::{Digest as _, Sha256};

use crate::error::{Error, Result};
use crate::sys;
use crate::unpack::{self, Budget, Limits, Opts, Whiteouts};

/// One image record, as stored in `images/<name>.json`.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct ImageInfo {
    /// The image name (see [`validate_name`]).
    pub name: String,
    /// `sha256:<hex>`: the OCI config digest, or a digest of the layer list.
    pub id: String,
    /// Layer diff ids, bottom layer first.
    pub layers: Vec<String>,
    /// Sum of the apparent sizes of the regular files of all layers.
    pub size_bytes: u64,
    /// When it was imported, unix seconds.
    pub created: u64,
    /// Run configuration from the OCI image config, when there was one.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub config: Option<ImageConfig>,
}

/// The parts of an OCI image config that matter to run the image.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct ImageConfig {
    /// `KEY=value` strings.
    #[serde(default)]
    pub env: Vec<String>,
    /// Entrypoint, if set.
    #[serde(default)]
    pub entrypoint: Option<Vec<String>>,
    /// Default command, if set.
    #[serde(default)]
    pub cmd: Option<Vec<String>>,
    /// Working directory, if set.
    #[serde(default)]
    pub working_dir: Option<String>,
    /// `user[:group]` to run as, if set.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub user: Option<String>,
}

/// Checks an image name: 1 to 128 characters from letters, digits and
/// `._-:/`, no `..`, no empty path segment (`a//b`, leading or trailing `/`).
pub fn validate_name(name: &str) -> Result<()> {
    let bad = |reason| {
        Err(Error::InvalidName {
            name: name.to_string(),
            reason,
        })
    };
    if name.is_empty() {
        return bad("empty");
    }
    if name.len() > 128 {
        return bad("longer than 128 characters");
    }
    if !name
        .chars()
        .all(|c| c.is_ascii_alphanumeric() || "._-:/".contains(c))
    {
        return bad("only letters, digits and ._-:/ are allowed");
    }
    if name.contains("..") {
        return bad("must not contain '..'");
    }
    if name.split('/').any(|s| s.is_empty() || s == ".") {
        return bad("empty or '.' path segment");
    }
    Ok(())
}

/// Returns the hex part of a `sha256:<64 lowercase hex>` digest.
pub fn digest_hex(digest: &str) -> Result<&str> {
    match digest.strip_prefix("sha256:") {
        Some(h)
            if h.len() == 64
                && h.bytes()
                    .all(|b| b.is_ascii_digit() || (b'a'..=b'f').contains(&b)) =>
        {
            Ok(h)
        }
        _ => Err(Error::InvalidDigest(digest.to_string())),
    }
}

/// A content-addressed store of unpacked layers and image records.
#[derive(Debug, Clone)]
pub struct ImageStore {
    root: PathBuf,
    limits: Limits,
}

struct Lock(#[allow(dead_code)] File);

/// Directories and files staged by one import; removed on drop unless taken.
struct Staging {
    paths: Vec<PathBuf>,
}

impl Drop for Staging {
    fn drop(&mut self) {
        for p in self.paths.drain(..) {
            let r = if p.is_dir() {
                fs::remove_dir_all(&p)
            } else {
                fs::remove_file(&p)
            };
            if let Err(e) = r {
                if e.kind() != io::ErrorKind::NotFound {
                    tracing::warn!(path = %p.display(), error = %e, "cannot remove staged import data");
                }
            }
        }
    }
}

struct Plan {
    layers: Vec<String>,
    new_layers: Vec<(String, PathBuf)>,
    id: Option<String>,
    config: Option<ImageConfig>,
}

impl Plan {
    fn has(&self, digest: &str) -> bool {
        self.new_layers.iter().any(|(d, _)| d == digest)
    }
}

static COUNTER: AtomicU64 = AtomicU64::new(0);

/// A reader or writer that hashes everything going through it.
struct Hashing<T> {
    inner: T,
    hasher: Sha256,
}

impl<T> Hashing<T> {
    fn new(inner: T) -> Self {
        Hashing {
            inner,
            hasher: Sha256::new(),
        }
    }
    fn digest(self) -> String {
        format!("sha256:{}", hex::encode(self.hasher.finalize()))
    }
}

impl<T: Read> Read for Hashing<T> {
    fn read(&mut self, buf: &mut [u8]) -> io::Result<usize> {
        let n = self.inner.read(buf)?;
        self.hasher.update(&buf[..n]);
        Ok(n)
    }
}

impl<T: Write> Write for Hashing<T> {
    fn write(&mut self, buf: &[u8]) -> io::Result<usize> {
        let n = self.inner.write(buf)?;
        self.hasher.update(&buf[..n]);
        Ok(n)
    }
    fn flush(&mut self) -> io::Result<()> {
        self.inner.flush()
    }
}

/// Wraps `r` in the decompressor its first bytes call for (gzip, zstd, or none).
fn decompress<'a, R: BufRead + 'a>(mut r: R) -> io::Result<Box<dyn Read + 'a>> {
    let head = r.fill_buf()?;
    if head.starts_with(&[0x1f, 0x8b]) {
        Ok(Box::new(flate2::bufread::MultiGzDecoder::new(r)))
    } else if head.starts_with(&[0x28, 0xb5, 0x2f, 0xfd]) {
        Ok(Box::new(zstd::stream::read::Decoder::with_buffer(r)?))
    } else {
        Ok(Box::new(r))
    }
}

/// Unpacks a (possibly compressed) layer tar into `dir` within `budget`;
/// returns its diff id.
fn unpack_layer<R: Read>(raw: R, dir: &Path, what: &str, budget: &mut Budget) -> Result<String> {
    let io_err = |e| Error::Io {
        op: "decompress",
        path: PathBuf::from(what),
        source: e,
    };
    let dec = decompress(BufReader::new(raw)).map_err(io_err)?;
    let mut h = Hashing::new(budget.limit_stream(dec));
    let r = unpack::unpack(
        dir,
        &mut h,
        Opts {
            whiteouts: Whiteouts::Oci,
            mirror: false,
        },
        budget,
    )
    .map(drop)
    // The tar reader stops at the end-of-archive blocks; the digest covers
    // the whole stream.
    .and_then(|()| io::copy(&mut h, &mut io::sink()).map(drop).map_err(io_err));
    budget.absorb(&h.inner, r)?;
    Ok(h.digest())
}

fn read_json<T: serde::de::DeserializeOwned>(
    path: &Path,
    mut r: impl Read,
) -> Result<(T, Vec<u8>)> {
    const MAX: u64 = 4 << 20;
    let mut buf = Vec::new();
    r.by_ref()
        .take(MAX + 1)
        .read_to_end(&mut buf)
        .map_err(Error::io("read", path))?;
    if buf.len() as u64 > MAX {
        return Err(Error::Io {
            op: "read",
            path: path.to_path_buf(),
            source: io::Error::new(
                io::ErrorKind::InvalidData,
                "JSON document larger than 4 MiB",
            ),
        });
    }
    let v = serde_json::from_slice(&buf).map_err(|source| Error::Json {
        path: path.to_path_buf(),
        source,
    })?;
    Ok((v, buf))
}

fn sha256_of(b: &[u8]) -> String {
    format!("sha256:{}", hex::encode(Sha256::digest(b)))
}

fn now() -> u64 {
    SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .map(|d| d.as_secs())
        .unwrap_or(0)
}

/// Apparent size of the regular files under `dir` (symlinks not followed).
fn tree_size(dir: &Path) -> Result<u64> {
    let mut total = 0;
    for e in fs::read_dir(dir).map_err(Error::io("read directory", dir))? {
        let e = e.map_err(Error::io("read directory", dir))?;
        let m = e.metadata().map_err(Error::io("lstat", e.path()))?;
        if m.is_dir() {
            total += tree_size(&e.path())?;
        } else if m.is_file() {
            total += m.len();
        }
    }
    Ok(total)
}

// ---- OCI documents (only the fields we use) ----

#[derive(Deserialize)]
struct OciDescriptor {
    #[serde(rename = "mediaType", default)]
    media_type: String,
    digest: String,
    #[serde(default)]
    platform: Option<OciPlatform>,
}

#[derive(Deserialize)]
struct OciPlatform {
    #[serde(default)]
    architecture: String,
    #[serde(default)]
    os: String,
}

#[derive(Deserialize)]
struct OciIndex {
    manifests: Vec<OciDescriptor>,
}

#[derive(Deserialize)]
struct OciManifest {
    config: OciDescriptor,
    layers: Vec<OciDescriptor>,
}

#[derive(Deserialize, Default)]
struct OciRunConfig {
    #[serde(rename = "Env", default)]
    env: Option<Vec<String>>,
    #[serde(rename = "Entrypoint", default)]
    entrypoint: Option<Vec<String>>,
    #[serde(rename = "Cmd", default)]
    cmd: Option<Vec<String>>,
    #[serde(rename = "WorkingDir", default)]
    working_dir: Option<String>,
    #[serde(rename = "User", default)]
    user: Option<String>,
}

#[derive(Deserialize)]
struct OciRootfs {
    #[serde(default)]
    diff_ids: Vec<String>,
}

#[derive(Deserialize)]
struct OciImageConfig {
    #[serde(default)]
    config: Option<OciRunConfig>,
    #[serde(default)]
    rootfs: Option<OciRootfs>,
}

const MT_INDEX: &[&str] = &[
    "application/vnd.oci.image.index.v1+json",
    "application/vnd.docker.distribution.manifest.list.v2+json",
];

fn oci_arch() -> &'static str {
    match std::env::consts::ARCH {
        "x86_64" => "amd64",
        "aarch64" => "arm64",
        "arm" => "arm",
        "x86" => "386",
        other => other,
    }
}

impl ImageStore {
    /// Opens (creating if needed) a store rooted at `root`, and clears
    /// leftovers of interrupted imports from `tmp/`.
    pub fn open(root: impl Into<PathBuf>) -> Result<Self> {
        let s = ImageStore {
            root: root.into(),
            limits: Limits::default(),
        };
        for d in [
            s.root.clone(),
            s.layers_root(),
            s.images_root(),
            s.tmp_root(),
        ] {
            fs::create_dir_all(&d).map_err(Error::io("create directory", &d))?;
            // Root only, also for a store made by an older version: layers
            // keep setuid files and device nodes (see the crate docs).
            fs::set_permissions(&d, std::os::unix::fs::PermissionsExt::from_mode(0o700))
                .map_err(Error::io("chmod 0700", &d))?;
        }
        let _lock = s.lock()?;
        let tmp = s.tmp_root();
        for e in fs::read_dir(&tmp).map_err(Error::io("read directory", &tmp))? {
            let e = e.map_err(Error::io("read directory", &tmp))?;
            let fd = sys::open_dir(&tmp).map_err(Error::io("open directory", &tmp))?;
            sys::remove_at(
                fd.as_raw_fd(),
                std::os::unix::ffi::OsStrExt::as_bytes(e.file_name().as_os_str()),
            )
            .map_err(Error::io("remove stale staging", e.path()))?;
        }
        Ok(s)
    }

    /// The same store with other [`Limits`] on what one import may unpack
    /// (all its layers together).
    pub fn with_limits(mut self, limits: Limits) -> Self {
        self.limits = limits;
        self
    }

    /// The limits imports run under.
    pub fn limits(&self) -> Limits {
        self.limits
    }

    /// The store's root directory.
    pub fn root(&self) -> &Path {
        &self.root
    }

    fn layers_root(&self) -> PathBuf {
        self.root.join("layers")
    }
    fn images_root(&self) -> PathBuf {
        self.root.join("images")
    }
    fn tmp_root(&self) -> PathBuf {
        self.root.join("tmp")
    }

    fn lock(&self) -> Result<Lock> {
        let p = self.root.join(".lock");
        let f = fs::OpenOptions::new()
            .create(true)
            .truncate(false)
            .write(true)
            .open(&p)
            .map_err(Error::io("open lock", &p))?;
        loop {
            // SAFETY: flock on a live fd.
            if unsafe { libc::flock(f.as_raw_fd(), libc::LOCK_EX) } == 0 {
                return Ok(Lock(f));
            }
            let e = io::Error::last_os_error();
            if e.kind() != io::ErrorKind::Interrupted {
                return Err(Error::io("lock", p)(e));
            }
        }
    }

    /// Directory of the layer `digest` (`sha256:<hex>`), whether or not it
    /// exists. Characters that cannot appear in a digest are replaced, so the
    /// result is always directly under `layers/`.
    pub fn layer_dir(&self, digest: &str) -> PathBuf {
        let hex = digest.strip_prefix("sha256:").unwrap_or(digest);
        let safe: String = hex
            .chars()
            .map(|c| if c.is_ascii_alphanumeric() { c } else { '_' })
            .collect();
        self.layers_root().join(format!("sha256-{safe}"))
    }

    /// True when the layer `digest` is in the store.
    pub fn has_layer(&self, digest: &str) -> bool {
        digest_hex(digest).is_ok() && self.layer_dir(digest).is_dir()
    }

    /// The image's layer directories, top layer first (overlayfs lowerdir order).
    pub fn lower_dirs(&self, info: &ImageInfo) -> Vec<PathBuf> {
        info.layers
            .iter()
            .rev()
            .map(|d| self.layer_dir(d))
            .collect()
    }

    fn record_path(&self, name: &str) -> PathBuf {
        self.images_root().join(format!("{name}.json"))
    }

    fn unique(&self, prefix: &str) -> PathBuf {
        let n = COUNTER.fetch_add(1, Ordering::Relaxed);
        let t = SystemTime::now()
            .duration_since(UNIX_EPOCH)
            .map(|d| d.subsec_nanos())
            .unwrap_or(0);
        self.tmp_root()
            .join(format!("{prefix}-{}-{t}-{n}", std::process::id()))
    }

    fn stage_dir(&self, staging: &mut Staging) -> Result<PathBuf> {
        let d = self.unique("layer");
        fs::create_dir(&d).map_err(Error::io("create staging directory", &d))?;
        staging.paths.push(d.clone());
        Ok(d)
    }

    /// Imports `src` under `name`: a rootfs directory, a rootfs tar (plain,
    /// gzip or zstd), or an OCI image layout (directory, or tar of one).
    /// Layers already in the store are reused; an existing record of that
    /// name is replaced (and layers only it used are collected).
    pub fn import(&self, name: &str, src: &Path) -> Result<ImageInfo> {
        validate_name(name)?;
        let _lock = self.lock()?;
        let mut staging = Staging { paths: Vec::new() };
        let meta = fs::metadata(src).map_err(Error::io("stat import source", src))?;
        let mut budget = Budget::new(self.limits, format!("image import {name:?}"));
        let b = &mut budget;
        let plan = if meta.is_dir() {
            if src.join("oci-layout").is_file() {
                self.stage_oci(src, &mut staging, b)?
            } else {
                self.stage_rootfs_dir(src, &mut staging, b)?
            }
        } else {
            self.stage_tar(src, &mut staging, b)?
        };
        let info = self.commit(name, plan)?;
        tracing::info!(image = name, id = %info.id, layers = info.layers.len(), "imported image");
        Ok(info)
    }

    /// Adds the image `info` (as another store describes it) from tars of
    /// the layers this store lacks, each as [`capture_upper`](crate::capture_upper)
    /// wrote it from the other store's layer directory. A re-made tar has
    /// another digest than the original layer, so each layer is stored under
    /// the diff id `info` names: the caller vouches for the pairing (here, an
    /// authenticated migration source whose files were checksummed on the
    /// way). An existing image of that name must have the same layers.
    pub fn import_from_peer(
        &self,
        info: &ImageInfo,
        tars: &[(String, PathBuf)],
    ) -> Result<ImageInfo> {
        validate_name(&info.name)?;
        for d in &info.layers {
            digest_hex(d)?;
        }
        let _lock = self.lock()?;
        match self.get(&info.name) {
            Ok(have) if have.layers == info.layers => return Ok(have),
            Ok(have) => {
                return Err(Error::DigestMismatch {
                    what: format!("layers of image {}", info.name),
                    expected: info.layers.join(","),
                    actual: have.layers.join(","),
                })
            }
            Err(Error::NotFound(_)) => {}
            Err(e) => return Err(e),
        }
        let mut staging = Staging { paths: Vec::new() };
        let mut budget = Budget::new(self.limits, format!("image {:?} from a peer", info.name));
        let mut plan = Plan {
            layers: info.layers.clone(),
            new_layers: Vec::new(),
            id: Some(info.id.clone()),
            config: info.config.clone(),
        };
        for d in &info.layers {
            if self.has_layer(d) || plan.has(d) {
                continue;
            }
            let (_, tar) = tars.iter().find(|(t, _)| t == d).ok_or_else(|| {
                Error::NotFound(format!("{} (layer {d} was not sent)", info.name))
            })?;
            let dir = self.stage_dir(&mut staging)?;
            let f = File::open(tar).map_err(Error::io("open layer tar", tar))?;
            unpack_layer(BufReader::new(f), &dir, &tar.to_string_lossy(), &mut budget)?;
            plan.new_layers.push((d.clone(), dir));
        }
        let info = self.commit(&info.name, plan)?;
        tracing::info!(image = %info.name, layers = info.layers.len(), "image added from a peer");
        Ok(info)
    }

    fn stage_rootfs_dir(
        &self,
        src: &Path,
        staging: &mut Staging,
        budget: &mut Budget,
    ) -> Result<Plan> {
        let tarp = self.unique("rootfs-tar");
        let f = File::create(&tarp).map_err(Error::io("create", &tarp))?;
        staging.paths.push(tarp.clone());
        let (_, w) = crate::capture::capture_tree(src, None, Hashing::new(io::BufWriter::new(f)))?;
        let hasher = w.hasher.clone();
        w.inner
            .into_inner()
            .map_err(|e| Error::io("write", &tarp)(e.into_error()))?;
        let digest = format!("sha256:{}", hex::encode(hasher.finalize()));
        let mut plan = Plan {
            layers: vec![digest.clone()],
            new_layers: Vec::new(),
            id: None,
            config: None,
        };
        if !self.has_layer(&digest) {
            let dir = self.stage_dir(staging)?;
            let f = File::open(&tarp).map_err(Error::io("open", &tarp))?;
            unpack::unpack(
                &dir,
                BufReader::new(f),
                Opts {
                    whiteouts: Whiteouts::Overlay,
                    mirror: false,
                },
                budget,
            )?;
            plan.new_layers.push((digest, dir));
        }
        Ok(plan)
    }

    fn stage_tar(&self, src: &Path, staging: &mut Staging, budget: &mut Budget) -> Result<Plan> {
        let dir = self.stage_dir(staging)?;
        let f = File::open(src).map_err(Error::io("open", src))?;
        let digest = unpack_layer(f, &dir, &src.to_string_lossy(), budget)?;
        // A tar of an OCI image layout: its top level has these two files.
        let is_oci = ["oci-layout", "index.json"].iter().all(|n| {
            fs::symlink_metadata(dir.join(n))
                .map(|m| m.is_file())
                .unwrap_or(false)
        });
        if is_oci {
            return self.stage_oci(&dir, staging, budget);
        }
        // A `docker save` archive: manifest.json, the config, layer tars.
        let is_docker = fs::symlink_metadata(dir.join("manifest.json"))
            .map(|m| m.is_file())
            .unwrap_or(false)
            && !dir.join("bin").exists()
            && !dir.join("etc").exists();
        if is_docker {
            return self.stage_docker(&dir, staging, budget);
        }
        let mut plan = Plan {
            layers: vec![digest.clone()],
            new_layers: Vec::new(),
            id: None,
            config: None,
        };
        if !self.has_layer(&digest) {
            plan.new_layers.push((digest, dir));
        }
        Ok(plan)
    }

    /// A `docker save` archive unpacked in `dir`: manifest.json names one
    /// image's config and layer tars (paths inside the archive); each
    /// layer is checked against the config's diff ids.
    fn stage_docker(&self, dir: &Path, staging: &mut Staging, budget: &mut Budget) -> Result<Plan> {
        #[derive(Deserialize)]
        struct Entry {
            #[serde(rename = "Config")]
            config: String,
            #[serde(rename = "Layers")]
            layers: Vec<String>,
        }
        let bad = |reason: String| Error::Oci {
            path: dir.to_path_buf(),
            reason: format!("docker save archive: {reason}"),
        };
        // A path inside the archive, opened without following symlinks.
        let open = |rel: &str| -> Result<(PathBuf, File)> {
            let ok = !rel.is_empty()
                && Path::new(rel)
                    .components()
                    .all(|c| matches!(c, std::path::Component::Normal(_)));
            if !ok {
                return Err(bad(format!("{rel:?} is not a path inside the archive")));
            }
            let mut p = dir.to_path_buf();
            for c in Path::new(rel).components() {
                p.push(c);
                let m = fs::symlink_metadata(&p).map_err(Error::io("stat", &p))?;
                if m.file_type().is_symlink() {
                    return Err(bad(format!("{rel:?} is a symlink")));
                }
            }
            let f = File::open(&p).map_err(Error::io("open", &p))?;
            Ok((p, f))
        };
        let (mp, mf) = open("manifest.json")?;
        let (entries, _): (Vec<Entry>, _) = read_json(&mp, mf)?;
        let e = match entries.as_slice() {
            [e] => e,
            [] => return Err(bad("manifest.json lists no image".into())),
            many => {
                return Err(bad(format!(
                    "manifest.json lists {} images: save one image per archive",
                    many.len()
                )))
            }
        };
        let (cp, cf) = open(&e.config)?;
        let (config, bytes): (OciImageConfig, _) = read_json(&cp, cf)?;
        let diff_ids = config.rootfs.map(|r| r.diff_ids).unwrap_or_default();
        if e.layers.is_empty() {
            return Err(bad("the image has no layers".into()));
        }
        if !diff_ids.is_empty() && diff_ids.len() != e.layers.len() {
            return Err(bad(format!(
                "manifest.json lists {} layers but the config {} diff ids",
                e.layers.len(),
                diff_ids.len()
            )));
        }
        let mut plan = Plan {
            layers: Vec::new(),
            new_layers: Vec::new(),
            id: Some(sha256_of(&bytes)),
            config: config.config.map(|c| ImageConfig {
                env: c.env.unwrap_or_default(),
                entrypoint: c.entrypoint,
                cmd: c.cmd,
                working_dir: c.working_dir.filter(|w| !w.is_empty()),
                user: c.user.filter(|u| !u.is_empty()),
            }),
        };
        for (i, rel) in e.layers.iter().enumerate() {
            let (_, f) = open(rel)?;
            let ldir = self.stage_dir(staging)?;
            let what = format!("{} layer {i} ({rel})", dir.display());
            let diff_id = unpack_layer(f, &ldir, &what, budget)?;
            if let Some(expected) = diff_ids.get(i) {
                if *expected != diff_id {
                    return Err(Error::DigestMismatch {
                        what: format!("diff id of {what}"),
                        expected: expected.clone(),
                        actual: diff_id,
                    });
                }
            }
            if !self.has_layer(&diff_id) && !plan.has(&diff_id) {
                plan.new_layers.push((diff_id.clone(), ldir));
            }
            plan.layers.push(diff_id);
        }
        Ok(plan)
    }

    /// Opens `blobs/sha256/<hex>` of a layout without following symlinks.
    fn open_blob(layout: &Path, digest: &str) -> Result<File> {
        let hex = digest_hex(digest).map_err(|_| Error::Oci {
            path: layout.to_path_buf(),
            reason: format!("unsupported or malformed digest {digest:?}"),
        })?;
        let p = layout.join("blobs/sha256").join(hex);
        let root = sys::open_dir(layout).map_err(Error::io("open", layout))?;
        let blobs = sys::open_dir_at(root.as_raw_fd(), b"blobs")
            .map_err(Error::io("open", layout.join("blobs")))?;
        let sha = sys::open_dir_at(blobs.as_raw_fd(), b"sha256")
            .map_err(Error::io("open", layout.join("blobs/sha256")))?;
        sys::open_file_at(sha.as_raw_fd(), hex.as_bytes()).map_err(Error::io("open blob", p))
    }

    fn read_blob_json<T: serde::de::DeserializeOwned>(layout: &Path, digest: &str) -> Result<T> {
        let f = Self::open_blob(layout, digest)?;
        let p = layout
            .join("blobs/sha256")
            .join(digest.trim_start_matches("sha256:"));
        let (v, bytes) = read_json(&p, f)?;
        let actual = sha256_of(&bytes);
        if actual != digest {
            return Err(Error::DigestMismatch {
                what: format!("blob {}", p.display()),
                expected: digest.to_string(),
                actual,
            });
        }
        Ok(v)
    }

    fn pick_manifest(layout: &Path, index: OciIndex, depth: u32) -> Result<OciManifest> {
        let oci = |reason: String| Error::Oci {
            path: layout.to_path_buf(),
            reason,
        };
        if depth > 4 {
            return Err(oci("image indexes nested too deep".into()));
        }
        let arch = oci_arch();
        let chosen = index
            .manifests
            .iter()
            .find(|d| matches!(&d.platform, Some(p) if p.os == "linux" && p.architecture == arch))
            .or_else(|| index.manifests.iter().find(|d| d.platform.is_none()))
            .or_else(|| {
                if index.manifests.len() == 1 {
                    index.manifests.first()
                } else {
                    None
                }
            })
            .ok_or_else(|| oci(format!("no manifest for linux/{arch} in the index")))?;
        if MT_INDEX.contains(&chosen.media_type.as_str()) {
            let nested: OciIndex = Self::read_blob_json(layout, &chosen.digest)?;
            return Self::pick_manifest(layout, nested, depth + 1);
        }
        Self::read_blob_json(layout, &chosen.digest)
    }

    fn stage_oci(&self, layout: &Path, staging: &mut Staging, budget: &mut Budget) -> Result<Plan> {
        let oci = |reason: String| Error::Oci {
            path: layout.to_path_buf(),
            reason,
        };
        let ipath = layout.join("index.json");
        let root = sys::open_dir(layout).map_err(Error::io("open", layout))?;
        let f = sys::open_file_at(root.as_raw_fd(), b"index.json")
            .map_err(Error::io("open", &ipath))?;
        let (index, _): (OciIndex, _) = read_json(&ipath, f)?;
        let manifest = Self::pick_manifest(layout, index, 0)?;
        let config: OciImageConfig = Self::read_blob_json(layout, &manifest.config.digest)?;
        let diff_ids = config.rootfs.map(|r| r.diff_ids).unwrap_or_default();
        if !diff_ids.is_empty() && diff_ids.len() != manifest.layers.len() {
            return Err(oci(format!(
                "manifest has {} layers but the config lists {} diff ids",
                manifest.layers.len(),
                diff_ids.len()
            )));
        }
        if manifest.layers.is_empty() {
            return Err(oci("manifest has no layers".into()));
        }
        let mut plan = Plan {
            layers: Vec::new(),
            new_layers: Vec::new(),
            id: Some(manifest.config.digest.clone()),
            config: config.config.map(|c| ImageConfig {
                env: c.env.unwrap_or_default(),
                entrypoint: c.entrypoint,
                cmd: c.cmd,
                working_dir: c.working_dir.filter(|w| !w.is_empty()),
                user: c.user.filter(|u| !u.is_empty()),
            }),
        };
        for (i, desc) in manifest.layers.iter().enumerate() {
            if desc.media_type.contains("nondistributable") || desc.media_type.contains("foreign") {
                return Err(oci(format!(
                    "layer {} ({}) is not distributable",
                    i, desc.digest
                )));
            }
            if let Some(d) = diff_ids.get(i) {
                digest_hex(d)?;
                if self.has_layer(d) || plan.has(d) {
                    plan.layers.push(d.clone());
                    continue;
                }
            }
            let dir = self.stage_dir(staging)?;
            let blob = Self::open_blob(layout, &desc.digest)?;
            let what = format!("{} layer {i} ({})", layout.display(), desc.digest);
            let mut raw = Hashing::new(blob);
            let diff_id = unpack_layer(&mut raw, &dir, &what, budget)?;
            io::copy(&mut raw, &mut io::sink()).map_err(Error::io("read blob", layout))?;
            let blob_digest = raw.digest();
            if blob_digest != desc.digest {
                return Err(Error::DigestMismatch {
                    what: format!("blob of {what}"),
                    expected: desc.digest.clone(),
                    actual: blob_digest,
                });
            }
            if let Some(expected) = diff_ids.get(i) {
                if *expected != diff_id {
                    return Err(Error::DigestMismatch {
                        what: format!("diff id of {what}"),
                        expected: expected.clone(),
                        actual: diff_id,
                    });
                }
            }
            if !self.has_layer(&diff_id) && !plan.has(&diff_id) {
                plan.new_layers.push((diff_id.clone(), dir));
            }
            plan.layers.push(diff_id);
        }
        Ok(plan)
    }

    fn commit(&self, name: &str, plan: Plan) -> Result<ImageInfo> {
        let mut renamed: Vec<PathBuf> = Vec::new();
        let rollback = |renamed: &[PathBuf]| {
            for p in renamed {
                if let Err(e) = fs::remove_dir_all(p) {
                    tracing::warn!(path = %p.display(), error = %e, "rollback: cannot remove layer");
                }
            }
        };
        let result = (|| -> Result<ImageInfo> {
            for (digest, dir) in &plan.new_layers {
                let dest = self.layer_dir(digest);
                if dest.exists() {
                    continue;
                }
                fs::rename(dir, &dest).map_err(Error::io("move layer into place", &dest))?;
                renamed.push(dest);
            }
            let mut size = 0;
            for d in &plan.layers {
                size += tree_size(&self.layer_dir(d))?;
            }
            let id = plan
                .id
                .clone()
                .unwrap_or_else(|| sha256_of(plan.layers.join("\n").as_bytes()));
            let info = ImageInfo {
                name: name.to_string(),
                id,
                layers: plan.layers.clone(),
                size_bytes: size,
                created: now(),
                config: plan.config.clone(),
            };
            let old = match self.get(name) {
                Ok(old) => Some(old),
                Err(Error::NotFound(_)) => None,
                Err(e) => return Err(e),
            };
            self.write_record(&info)?;
            if let Some(old) = old {
                self.collect(&old.layers)?;
            }
            Ok(info)
        })();
        if result.is_err() {
            rollback(&renamed);
        }
        result
    }

    fn write_record(&self, info: &ImageInfo) -> Result<()> {
        let dest = self.record_path(&info.name);
        let tmp = self.unique("record");
        let json = serde_json::to_vec_pretty(info).map_err(|source| Error::Json {
            path: dest.clone(),
            source,
        })?;
        let write = || -> io::Result<()> {
            let mut f = File::create(&tmp)?;
            f.write_all(&json)?;
            f.sync_all()
        };
        if let Err(e) = write() {
            let _ = fs::remove_file(&tmp);
            return Err(Error::io("write image record", &tmp)(e));
        }
        if let Some(parent) = dest.parent() {
            fs::create_dir_all(parent).map_err(Error::io("create directory", parent))?;
        }
        fs::rename(&tmp, &dest).map_err(|e| {
            let _ = fs::remove_file(&tmp);
            Error::io("move image record into place", &dest)(e)
        })
    }

    /// Reads the record of `name`; [`Error::NotFound`] when there is none.
    pub fn get(&self, name: &str) -> Result<ImageInfo> {
        validate_name(name)?;
        let p = self.record_path(name);
        let f = match File::open(&p) {
            Ok(f) => f,
            Err(e) if e.kind() == io::ErrorKind::NotFound => {
                return Err(Error::NotFound(name.to_string()))
            }
            Err(e) => return Err(Error::io("open image record", p)(e)),
        };
        let (info, _): (ImageInfo, _) = read_json(&p, f)?;
        self.check_record(&p, &info)?;
        Ok(info)
    }

    fn check_record(&self, p: &Path, info: &ImageInfo) -> Result<()> {
        validate_name(&info.name)?;
        for d in &info.layers {
            digest_hex(d)?;
        }
        if self.record_path(&info.name) != p {
            return Err(Error::Io {
                op: "read image record",
                path: p.to_path_buf(),
                source: io::Error::new(
                    io::ErrorKind::InvalidData,
                    format!("record names image {:?}", info.name),
                ),
            });
        }
        Ok(())
    }

    /// All image records, sorted by name.
    pub fn list(&self) -> Result<Vec<ImageInfo>> {
        let mut out = Vec::new();
        self.list_in(&self.images_root(), &mut out)?;
        out.sort_by(|a, b| a.name.cmp(&b.name));
        Ok(out)
    }

    fn list_in(&self, dir: &Path, out: &mut Vec<ImageInfo>) -> Result<()> {
        for e in fs::read_dir(dir).map_err(Error::io("read directory", dir))? {
            let e = e.map_err(Error::io("read directory", dir))?;
            let p = e.path();
            let ft = e.file_type().map_err(Error::io("stat", &p))?;
            if ft.is_dir() {
                self.list_in(&p, out)?;
            } else if ft.is_file() && p.extension().is_some_and(|x| x == "json") {
                let f = File::open(&p).map_err(Error::io("open image record", &p))?;
                let (info, _): (ImageInfo, _) = read_json(&p, f)?;
                self.check_record(&p, &info)?;
                out.push(info);
            }
        }
        Ok(())
    }

    /// Removes the record of `name` and the layers no other image uses.
    pub fn remove(&self, name: &str) -> Result<()> {
        validate_name(name)?;
        let _lock = self.lock()?;
        let info = self.get(name)?;
        let p = self.record_path(name);
        fs::remove_file(&p).map_err(Error::io("remove image record", &p))?;
        // Drop now-empty directories of a nested name (a/b/c.json).
        let images = self.images_root();
        let mut d = p.parent().map(Path::to_path_buf);
        while let Some(dir) = d {
            if dir == images || fs::remove_dir(&dir).is_err() {
                break;
            }
            d = dir.parent().map(Path::to_path_buf);
        }
        self.collect(&info.layers)?;
        tracing::info!(image = name, "removed image");
        Ok(())
    }

    /// Removes every layer directory no image references; returns their digests.
    pub fn gc(&self) -> Result<Vec<String>> {
        let _lock = self.lock()?;
        let lr = self.layers_root();
        let mut all = Vec::new();
        for e in fs::read_dir(&lr).map_err(Error::io("read directory", &lr))? {
            let e = e.map_err(Error::io("read directory", &lr))?;
            if let Some(hex) = e
                .file_name()
                .to_str()
                .and_then(|n| n.strip_prefix("sha256-"))
            {
                all.push(format!("sha256:{hex}"));
            }
        }
        self.collect(&all)
    }

    /// Removes those of `candidates` that no record references (lock held).
    fn collect(&self, candidates: &[String]) -> Result<Vec<String>> {
        let used: HashSet<String> = self.list()?.into_iter().flat_map(|i| i.layers).collect();
        let mut removed = Vec::new();
        for d in candidates {
            if used.contains(d) || removed.contains(d) {
                continue;
            }
            let dir = self.layer_dir(d);
            match fs::remove_dir_all(&dir) {
                Ok(()) => removed.push(d.clone()),
                Err(e) if e.kind() == io::ErrorKind::NotFound => {}
                Err(e) => return Err(Error::io("remove layer", dir)(e)),
            }
        }
        Ok(removed)
    }
}
