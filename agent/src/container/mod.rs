//! Containers on one host, through youki's libcontainer: one file per verb,
//! as youki does (`run.rs`, `stop.rs`, `exec.rs`, `remove.rs`, `adopt.rs`),
//! and `provision.rs`, the one path that makes what a container needs here
//! (overlay, netns, bundle) fresh for `run` or from a checkpoint's bundle
//! for `restore --import` and a migration target.
//!
//! Lifecycle of a container as this agent sees it:
//!
//! ```text
//!   run ──> Running ──(init exits | stop | kill)──> Stopped ──rm──> (gone)
//!              └──────────────── rm -f ─────────────────────────────┘
//! ```
//!
//! The container's init is a child of the agent (libcontainer clones it as a
//! sibling of its intermediate process), so the agent's one exit waiter
//! ([`crate::exits`]) reaps it and records the exit code. After an agent
//! restart the init is no longer our child: the waiter then only notices
//! its exit (pidfd) and the exit code is unknown.

mod adopt;
mod checkpoint;
mod command;
mod exec;
mod preflight;
mod provision;
mod remove;
mod restore;
mod run;
mod stop;
mod volumes;

use std::collections::HashMap;
use std::path::PathBuf;
use std::sync::{Arc, Condvar, Mutex};
use std::time::Duration;

use herd_overlay::ImageStore;
use herd_wire::{ContainerInfo, ContainerStatus, ImageSummary};

use crate::error::{validate_name, AgentError, IoContext, Result};
use crate::state::{ContainerRecord, StateDir};

pub use checkpoint::CheckpointOptions;
pub(crate) use checkpoint::PageStream;
pub(crate) use checkpoint::{read_json, CheckpointMeta, META_FILE};
pub use exec::ExecRequest;
pub use exec::{exec_main, EXEC_ARG};
pub use run::{create_main, CREATE_ARG};

/// Static settings of an agent.
#[derive(Debug, Clone)]
pub struct AgentConfig {
    pub node: String,
    pub state_dir: PathBuf,
    /// Prefix of container netns names under /run/netns (default `herdc-<node>-`).
    pub netns_prefix: Option<String>,
    /// cgroup parent of this agent's containers (default `/herd/<node>`).
    pub cgroup_parent: Option<String>,
    /// CPU capacity of this host for its containers, in cores (`--cpus`):
    /// the cgroup parent gets a CFS quota of that many cores and the
    /// host's CPU figures become those of the parent (see
    /// [`crate::cgroup::limit_cpu`]). None: the whole machine.
    pub cpus: Option<f64>,
    /// Disk capacity of this host for its containers (`--disk-iops`,
    /// `--disk-bps`) on the disk of its state dir: the cgroup parent is
    /// throttled there (see [`crate::cgroup::limit_disk`]) and the host's
    /// disk figures become the parent's. Unset: the whole disk.
    pub disk: crate::cgroup::DiskLimit,
    /// Bounds on imports, streams and peers (see [`crate::limits`]).
    pub limits: crate::limits::Limits,
}

impl AgentConfig {
    pub fn new(node: impl Into<String>, state_dir: impl Into<PathBuf>) -> Self {
        AgentConfig {
            node: node.into(),
            state_dir: state_dir.into(),
            netns_prefix: None,
            cgroup_parent: None,
            cpus: None,
            disk: Default::default(),
            limits: crate::limits::Limits::default(),
        }
    }
}

fn cgroup_parent_of(cfg: &AgentConfig) -> String {
    match &cfg.cgroup_parent {
        Some(p) => p.trim_end_matches('/').to_string(),
        None => format!("/herd/{}", cfg.node),
    }
}

/// One container's live entry: its record and a condvar signalled on exit.
pub struct Entry {
    pub(crate) record: Mutex<ContainerRecord>,
    pub(crate) exited: Condvar,
}

impl Entry {
    fn new(record: ContainerRecord) -> Arc<Self> {
        Arc::new(Entry {
            record: Mutex::new(record),
            exited: Condvar::new(),
        })
    }
    pub fn snapshot(&self) -> ContainerRecord {
        lock(&self.record).clone()
    }
    /// Record that `pid` runs it now (run, start, restore); returns the
    /// record to save.
    pub(crate) fn set_running(&self, pid: i32) -> ContainerRecord {
        let mut r = lock(&self.record);
        r.status = ContainerStatus::Running;
        r.pid = Some(pid);
        r.pid_start = crate::state::pid_start_time(pid);
        r.exit_code = None;
        r.clone()
    }
    /// Wait until the container is stopped, at most `timeout`. True if it stopped.
    pub(crate) fn wait_stopped(&self, timeout: Duration) -> bool {
        let g = lock(&self.record);
        let (g, _) = self
            .exited
            .wait_timeout_while(g, timeout, |r| r.status != ContainerStatus::Stopped)
            .unwrap_or_else(|p| p.into_inner());
        g.status == ContainerStatus::Stopped
    }
}

pub(crate) use crate::lock;

/// The agent's container manager. Methods block; the server calls them
/// from `spawn_blocking`.
pub struct Agent {
    pub(crate) cfg: AgentConfig,
    pub(crate) state: StateDir,
    pub(crate) images: ImageStore,
    pub(crate) nets: crate::net::NetStore,
    pub(crate) containers: Mutex<HashMap<String, Arc<Entry>>>,
    /// Serialises CRIU calls on this host.
    pub(crate) criu_lock: Mutex<()>,
    /// Samples and container events for subscribers (see [`crate::monitor`]).
    pub monitor: crate::monitor::Hub,
    /// Migrations in flight and their journals (see [`crate::migrate`]).
    pub handoff: crate::migrate::Handoff,
    /// The disk `--disk-iops`/`--disk-bps` throttle, when set.
    pub(crate) disk: Option<crate::blockdev::Dev>,
}

impl Agent {
    /// Open the state dir and re-adopt the containers recorded there.
    pub fn open(cfg: AgentConfig) -> Result<Arc<Self>> {
        validate_name("node name", &cfg.node)?;
        if let Some(c) = cfg.cpus {
            crate::cgroup::limit_cpu(&cgroup_parent_of(&cfg), c)?;
        }
        let state = StateDir::open(&cfg.state_dir)?;
        let disk = match cfg.disk.is_set() {
            true => {
                let dev = crate::blockdev::disk_of(state.root())?;
                let parent = cgroup_parent_of(&cfg);
                if crate::cgroup::limit_disk(&parent, dev, cfg.disk)? {
                    if let Some(share) = crate::cgroup::DiskShare::new(&parent, dev, cfg.disk) {
                        share
                            .spawn()
                            .ctx(|| "start the disk share thread".to_string())?;
                    }
                }
                Some(dev)
            }
            false => None,
        };
        let images = ImageStore::open(state.images())?.with_limits(cfg.limits.unpack);
        let nets = crate::net::NetStore::open(state.root().join("networks"))?;
        let monitor = crate::monitor::Hub::new(&cfg.node);
        let handoff = crate::migrate::Handoff::open(state.root())?;
        let agent = Arc::new(Agent {
            disk,
            handoff,
            monitor,
            cfg,
            state,
            images,
            nets,
            containers: Mutex::new(HashMap::new()),
            criu_lock: Mutex::new(()),
        });
        agent.remove_stale_staging();
        agent.adopt_all()?;
        // Incoming migrations of a previous run: voted ones wait, stopped
        // and fenced, for their source; the others are dropped.
        crate::migrate::resume_targets(&agent);
        Ok(agent)
    }

    pub fn node(&self) -> &str {
        &self.cfg.node
    }

    /// Bounds on imports, streams and peers.
    pub fn limits(&self) -> crate::limits::Limits {
        self.cfg.limits
    }

    /// Name of a container's network namespace under /run/netns.
    pub fn netns_name(&self, container: &str) -> String {
        match &self.cfg.netns_prefix {
            Some(p) => format!("{p}{container}"),
            None => format!("herdc-{}-{container}", self.cfg.node),
        }
    }

    /// cgroupsPath of a container.
    pub fn cgroup_path(&self, container: &str) -> String {
        format!("{}/{container}", self.cgroup_parent())
    }

    /// The cgroup every container of this agent sits under.
    pub fn cgroup_parent(&self) -> String {
        cgroup_parent_of(&self.cfg)
    }

    /// CPU capacity for containers, in cores: `--cpus`, else the machine's.
    pub fn cores(&self) -> f64 {
        self.cfg.cpus.unwrap_or_else(crate::cgroup::machine_cores)
    }

    /// Whether `--cpus` confines this host to a slice of the machine.
    pub fn cpus(&self) -> Option<f64> {
        self.cfg.cpus
    }

    /// The throttled disk and its limits, when `--disk-iops`/`--disk-bps` are set.
    pub fn disk_limit(&self) -> Option<(crate::blockdev::Dev, crate::cgroup::DiskLimit)> {
        self.disk.map(|d| (d, self.cfg.disk))
    }

    pub fn state_dir(&self) -> &StateDir {
        &self.state
    }

    pub fn entry(&self, name: &str) -> Result<Arc<Entry>> {
        lock(&self.containers)
            .get(name)
            .cloned()
            .ok_or_else(|| AgentError::NoSuchContainer(name.to_string()))
    }

    pub(crate) fn save(&self, rec: &ContainerRecord) -> Result<()> {
        rec.save(&self.state.container(&rec.spec.name).record())
    }

    pub fn list(&self) -> Vec<ContainerInfo> {
        let mut v: Vec<ContainerInfo> = lock(&self.containers)
            .values()
            .map(|e| self.info_of(&e.snapshot()))
            .collect();
        v.sort_by(|a, b| a.name.cmp(&b.name));
        v
    }

    pub fn inspect(&self, name: &str) -> Result<ContainerInfo> {
        Ok(self.info_of(&self.entry(name)?.snapshot()))
    }

    /// A record as clients see it: `Migrating` while in a migration.
    fn info_of(&self, rec: &ContainerRecord) -> ContainerInfo {
        let mut i = rec.info();
        if let Some(m) = self.handoff.get(&rec.spec.name) {
            i.status = ContainerStatus::Migrating;
            i.migration = Some(herd_wire::MigrationInfo {
                from: m.from,
                to: m.to,
                phase: m.progress.get().0.to_string(),
            });
        }
        i
    }

    /// Path of a container's log file.
    pub fn log_path(&self, name: &str) -> Result<PathBuf> {
        self.entry(name)?;
        Ok(self.state.container(name).log())
    }

    /// True while a container may still produce log lines.
    pub fn is_running(&self, name: &str) -> bool {
        self.entry(name)
            .map(|e| e.snapshot().status == ContainerStatus::Running)
            .unwrap_or(false)
    }

    pub fn image_import(&self, name: &str, path: &std::path::Path) -> Result<ImageSummary> {
        let info = self.images.import(name, path)?;
        Ok(summary(&info))
    }

    /// Import an image from a tar and return its layers.
    pub fn image_import_layers(&self, name: &str, src: &std::path::Path) -> Result<Vec<String>> {
        Ok(self.images.import(name, src)?.layers)
    }

    /// Layers of a local image (NotFound if it is not here).
    pub fn image_layers(&self, name: &str) -> Result<Vec<String>> {
        Ok(self.images.get(name)?.layers)
    }

    pub fn network_create(&self, def: &herd_wire::NetworkDef) -> Result<()> {
        self.nets.create(def)
    }

    pub fn network_list(&self) -> Result<Vec<herd_wire::NetworkDef>> {
        self.nets.list()
    }

    pub fn network_remove(&self, name: &str) -> Result<()> {
        let users: Vec<String> = lock(&self.containers)
            .values()
            .map(|e| e.snapshot().spec)
            .filter(|s| s.net.as_ref().map(|n| n.network == name).unwrap_or(false))
            .map(|s| s.name)
            .collect();
        if !users.is_empty() {
            return Err(AgentError::Conflict {
                name: name.to_string(),
                state: format!("used by {}", users.join(", ")),
                hint: "remove those containers first",
            });
        }
        self.nets.remove(name)
    }

    /// Of `layers`, those this store lacks.
    pub fn missing_layers(&self, layers: &[String]) -> Vec<String> {
        layers
            .iter()
            .filter(|d| !self.images.has_layer(d))
            .cloned()
            .collect()
    }

    /// The record of a local image as another agent needs it to add the
    /// image from our layers (`image.json` of a migration).
    pub fn image_record(&self, name: &str) -> Result<herd_overlay::ImageInfo> {
        Ok(self.images.get(name)?)
    }

    /// Write a tar of one layer of the local store to `out`.
    pub fn layer_tar(&self, digest: &str, out: &std::path::Path) -> Result<()> {
        let dir = self.images.layer_dir(digest);
        if !self.images.has_layer(digest) {
            return Err(AgentError::Other(format!(
                "layer {digest} is not in the store"
            )));
        }
        let f = std::fs::File::create(out)
            .map_err(|e| AgentError::Other(format!("create {}: {e}", out.display())))?;
        let mut w = std::io::BufWriter::new(f);
        herd_overlay::capture_upper(&dir, &mut w)?;
        std::io::Write::flush(&mut w)
            .map_err(|e| AgentError::Other(format!("write {}: {e}", out.display())))?;
        Ok(())
    }

    /// Add the image a migration source sent: `dir/image.json` and the
    /// layers this store lacked as `dir/layer/<digest>`.
    pub(crate) fn image_from_peer(&self, dir: &std::path::Path) -> Result<()> {
        let info: herd_overlay::ImageInfo = read_json(&dir.join("image.json"))?;
        let tars: Vec<(String, std::path::PathBuf)> = info
            .layers
            .iter()
            .map(|d| (d.clone(), dir.join("layer").join(d)))
            .filter(|(_, p)| p.exists())
            .collect();
        self.images.import_from_peer(&info, &tars)?;
        Ok(())
    }

    pub fn image_list(&self) -> Result<Vec<ImageSummary>> {
        Ok(self.images.list()?.iter().map(summary).collect())
    }

    pub fn image_remove(&self, name: &str) -> Result<()> {
        let users: Vec<String> = lock(&self.containers)
            .values()
            .map(|e| e.snapshot())
            .filter(|r| r.spec.image == name)
            .map(|r| r.spec.name)
            .collect();
        if !users.is_empty() {
            return Err(AgentError::Conflict {
                name: name.to_string(),
                state: format!("used by {}", users.join(", ")),
                hint: "remove those containers first",
            });
        }
        Ok(self.images.remove(name)?)
    }
}

fn summary(i: &herd_overlay::ImageInfo) -> ImageSummary {
    ImageSummary {
        name: i.name.clone(),
        id: i.id.clone(),
        layers: i.layers.len(),
        size_bytes: i.size_bytes,
        created: i.created,
    }
}
