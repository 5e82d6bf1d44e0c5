//! Provisioning: what a container needs on this host before a process runs
//! in it. One path with two entries, the way youki's `ContainerBuilder`
//! splits `as_init` and `as_tenant`: [`Origin::Fresh`] for `run` (a spec
//! built from the image) and [`Origin::Bundle`] for `restore --import` and a
//! migration target (a checkpoint's archived spec, re-pointed here).
//!
//! | step | fresh (`run`) | from a bundle (import, migration target) |
//! |---|---|---|
//! | checks | name, volumes, image, network | same, and the image's layers are the checkpoint's and its spec parses |
//! | name | reserved (`Created`, not saved) | same |
//! | overlay | image layers + an empty upper, mounted | + the archived `upper.tar` applied; mounted by the restore |
//! | netns | new, `lo` up, macvlan attached | new, `lo` up, fenced, macvlan attached |
//! | cgroup | made by libcontainer's create | made for CRIU's restore |
//! | bundle | `config.json` built by the caller against the mounted rootfs | the archived spec re-pointed at this host's rootfs, netns and cgroup |
//! | runtime state | libcontainer's create (`run.rs`) | libcontainer's state (`Stopped`) and youki config |
//!
//! The netns is recorded on the entry as soon as it exists, so a failure
//! at any later step removes everything made so far ([`Agent::discard`]).
//! A restore where the container was checkpointed keeps its netns and
//! address ([`Agent::network`] with `keep`).

use std::fs;
use std::net::Ipv4Addr;
use std::path::{Path, PathBuf};
use std::sync::Arc;

use herd_overlay::{ContainerFs, ImageInfo};
use herd_wire::net::Subnet;
use herd_wire::{ContainerStatus, NetworkDef, RunSpec};
use oci_spec::runtime::{LinuxNamespaceType, Spec};

use super::{lock, Agent, Entry};
use crate::error::{validate_name, AgentError, IoContext, Result};
use crate::state::{now_ns, ContainerRecord};

/// A network attachment checked against this host's networks: the
/// network, its subnet, the container's address and MAC.
pub(crate) type Attached = (NetworkDef, Subnet, Ipv4Addr, [u8; 6]);

/// Builds a fresh container's OCI spec.
pub(crate) type BuildSpec<'a> = Box<dyn FnOnce(&Fresh<'_>) -> Result<Spec> + 'a>;

/// Where a container's OCI spec comes from.
pub(crate) enum Origin<'a> {
    /// `run`: built by the closure once the rootfs is mounted (the user
    /// and the command are looked up in it).
    Fresh(BuildSpec<'a>),
    /// A checkpoint's `config.json` for an image of `layers`; `dir/upper.tar`
    /// (the archived upper layer), when there, is applied and deleted.
    Bundle {
        dir: &'a Path,
        layers: &'a [String],
        oci: &'a [u8],
    },
}

/// An origin once checked: the archived spec parsed.
enum Made<'a> {
    Fresh(BuildSpec<'a>),
    Bundle(&'a Path, Box<Spec>),
}

/// What a fresh spec is built against.
pub(crate) struct Fresh<'a> {
    pub image: &'a ImageInfo,
    pub rootfs: &'a Path,
    pub ns_path: &'a Path,
    pub cgroup_path: &'a str,
    pub ip: Option<Ipv4Addr>,
}

/// A provisioned container: its entry (`Created`, the netns and cgroup
/// path recorded), where its netns is and its network attachment.
pub(crate) struct Provisioned {
    pub entry: Arc<Entry>,
    pub ns_path: PathBuf,
    pub net: Option<Attached>,
}

impl Agent {
    /// Provision `spec` (module docs); any failure removes what was made.
    pub(crate) fn provision(
        self: &Arc<Self>,
        spec: &RunSpec,
        origin: Origin<'_>,
    ) -> Result<Provisioned> {
        let name = spec.name.clone();
        validate_name("container name", &name)?;
        self.check_volumes(&name, &spec.volumes)?;
        let image = self.images.get(&spec.image)?;
        let origin = match origin {
            Origin::Fresh(build) => Made::Fresh(build),
            Origin::Bundle { dir, layers, oci } => {
                if image.layers != layers {
                    return Err(AgentError::Invalid {
                        what: "image",
                        reason: format!(
                            "image {} on node {} has other layers than the one the checkpoint was made with",
                            spec.image, self.cfg.node
                        ),
                    });
                }
                // The OCI spec is checked before anything is made for it.
                let oci: Spec =
                    serde_json::from_slice(oci).ctx(|| "checkpoint's OCI spec".into())?;
                Made::Bundle(dir, Box::new(oci))
            }
        };
        let net = spec.net.as_ref().map(|a| self.nets.check(a)).transpose()?;
        let entry = self.reserve(spec, image.layers.clone())?;
        let made = (|| -> Result<PathBuf> {
            let cdir = self.state.container(&name);
            fs::create_dir_all(&cdir.dir).ctx(|| format!("create {}", cdir.dir.display()))?;
            let cfs = ContainerFs::create(&cdir.fs(), self.images.lower_dirs(&image))?;
            match &origin {
                Made::Fresh(_) => cfs.mount()?,
                Made::Bundle(dir, _) => {
                    // Mounted by the restore, after the delta: the upper
                    // dir of a mounted overlay must not change underneath it.
                    let upper = dir.join("upper.tar");
                    if upper.exists() {
                        self.apply_layer(cfs.upper(), &upper)?;
                        let _ = fs::remove_file(&upper);
                    }
                }
            }
            let netns = self.netns_name(&name);
            let cgroup_path = self.cgroup_path(&name);
            let recorded = || {
                let mut r = lock(&entry.record);
                r.netns = netns.clone();
                r.cgroup_path = cgroup_path.clone();
            };
            // A restored address stays dark until its sockets exist (crate::net).
            let from_bundle = matches!(origin, Made::Bundle(..));
            let ns_path = self.network(&netns, net.as_ref(), from_bundle, false, recorded)?;
            let oci = match origin {
                Made::Fresh(build) => build(&Fresh {
                    image: &image,
                    rootfs: cfs.merged(),
                    ns_path: &ns_path,
                    cgroup_path: &cgroup_path,
                    ip: net.as_ref().map(|(_, _, ip, _)| *ip),
                })?,
                Made::Bundle(_, mut oci) => {
                    crate::cgroup::prepare(&cgroup_path)?;
                    // The source's OCI spec, re-pointed at this host's
                    // rootfs, netns and cgroup.
                    repoint_spec(&mut oci, cfs.merged(), &ns_path, &cgroup_path)?;
                    *oci
                }
            };
            fs::create_dir_all(cdir.bundle()).ctx(|| "create bundle dir".into())?;
            oci.save(cdir.bundle().join("config.json"))
                .ctx(|| "write OCI spec".into())?;
            if !from_bundle {
                return Ok(ns_path);
            }
            // libcontainer's state, so exec/stop/rm work on the restored container.
            let rt = self.state.runtime().join(&name);
            fs::create_dir_all(&rt).ctx(|| format!("create {}", rt.display()))?;
            libcontainer::container::Container::new(
                &name,
                libcontainer::container::ContainerStatus::Stopped,
                None,
                &cdir.bundle(),
                &rt,
            )
            .and_then(|c| c.save())
            .ctx(|| "write runtime state".into())?;
            libcontainer::config::YoukiConfig::from_spec(&oci, &name)
                .and_then(|c| c.save(&rt))
                .ctx(|| "write runtime config".into())?;
            Ok(ns_path)
        })();
        match made {
            Ok(ns_path) => Ok(Provisioned {
                entry,
                ns_path,
                net,
            }),
            Err(e) => {
                self.discard(&entry);
                Err(e)
            }
        }
    }

    /// A container's network namespace `netns` with `lo` up and its
    /// macvlan attached, fenced first when `fence`. It is made here unless
    /// `keep` and it exists (a restore where the container was
    /// checkpointed keeps its own, fenced and addressed already);
    /// `made` runs as soon as a new one exists.
    pub(crate) fn network(
        &self,
        netns: &str,
        net: Option<&Attached>,
        fence: bool,
        keep: bool,
        made: impl FnOnce(),
    ) -> Result<PathBuf> {
        let mut ns_path = herd_netlink::netns::path(netns);
        if !(keep && ns_path.exists()) {
            ns_path = herd_netlink::netns::create(netns).ctx(|| format!("create netns {netns}"))?;
            made();
            loopback_up(&ns_path, netns)?;
        }
        if let Some((def, subnet, ip, mac)) = net {
            if fence {
                crate::net::fence(&ns_path)?;
            }
            if !crate::net::attached(&ns_path) {
                crate::net::attach(&ns_path, def, *subnet, *ip, *mac)?;
            }
        }
        Ok(ns_path)
    }

    /// The overlay of a provisioned container (mounted or not).
    pub(crate) fn container_fs(&self, rec: &ContainerRecord) -> Result<ContainerFs> {
        let lowers: Vec<_> = rec
            .layers
            .iter()
            .rev()
            .map(|d| self.images.layer_dir(d))
            .collect();
        Ok(ContainerFs::open(
            &self.state.container(&rec.spec.name).fs(),
            lowers,
        )?)
    }

    pub(crate) fn apply_layer(&self, upper: &Path, tar: &Path) -> Result<()> {
        let f = fs::File::open(tar).ctx(|| format!("open {}", tar.display()))?;
        herd_overlay::apply_upper_limited(
            upper,
            std::io::BufReader::new(f),
            self.cfg.limits.unpack,
        )?;
        Ok(())
    }

    /// Claim a name for a container being made; the entry is `Created`.
    pub(crate) fn reserve(&self, spec: &RunSpec, layers: Vec<String>) -> Result<Arc<Entry>> {
        let mut map = lock(&self.containers);
        if map.contains_key(&spec.name) || self.state.container(&spec.name).dir.exists() {
            return Err(AgentError::ContainerExists(spec.name.clone()));
        }
        if let Some(att) = &spec.net {
            self.address_free(&map, att)?;
        }
        let e = Entry::new(ContainerRecord {
            spec: spec.clone(),
            node: self.cfg.node.clone(),
            created_ns: now_ns(),
            status: ContainerStatus::Created,
            pid: None,
            pid_start: None,
            exit_code: None,
            netns: String::new(),
            cgroup_path: String::new(),
            layers,
            counter_base: None,
        });
        map.insert(spec.name.clone(), e.clone());
        Ok(e)
    }

    /// Remove a container this agent was building or restoring, whatever
    /// state it reached (kills a restored process).
    pub(crate) fn discard(&self, entry: &Arc<Entry>) {
        let rec = entry.snapshot();
        let mut procs = crate::cgroup::procs(&rec.cgroup_path);
        procs.extend(rec.pid);
        for p in &procs {
            let _ = nix::sys::signal::kill(
                nix::unistd::Pid::from_raw(*p),
                nix::sys::signal::Signal::SIGKILL,
            );
        }
        if rec.pid.is_some() {
            entry.wait_stopped(std::time::Duration::from_secs(5));
        }
        if let Err(e) = self.teardown(&rec) {
            tracing::warn!(container = %rec.spec.name, "cleanup after failed import: {e}");
        }
        lock(&self.containers).remove(&rec.spec.name);
    }

    /// An address is a container's for life: stopped ones keep theirs.
    fn address_free(
        &self,
        map: &std::collections::HashMap<String, Arc<Entry>>,
        att: &herd_wire::NetAttach,
    ) -> Result<()> {
        let other = map.values().map(|e| e.snapshot().spec).find(|s| {
            s.net
                .as_ref()
                .map(|n| n.network == att.network && n.ip == att.ip)
                .unwrap_or(false)
        });
        match other {
            Some(o) => Err(AgentError::Invalid {
                what: "address",
                reason: format!(
                    "{} on network {} is already in use by container {} on {}",
                    att.ip, att.network, o.name, self.cfg.node
                ),
            }),
            None => Ok(()),
        }
    }

    /// Whether a container with this attachment could come here: the
    /// network is known, its uplink exists, the address is free.
    pub(crate) fn check_attach(&self, att: &herd_wire::NetAttach) -> Result<()> {
        self.nets.check(att)?;
        self.address_free(&lock(&self.containers), att)
    }
}

/// Bring up `lo` in a container's fresh network namespace.
fn loopback_up(ns_path: &Path, netns: &str) -> Result<()> {
    herd_netlink::Handle::in_netns(ns_path)
        .and_then(|mut h| h.set_up("lo"))
        .ctx(|| format!("bring up lo in {netns}"))
}

fn repoint_spec(spec: &mut Spec, rootfs: &Path, netns: &Path, cgroup_path: &str) -> Result<()> {
    let mut root = spec.root().clone().unwrap_or_default();
    root.set_path(rootfs.to_path_buf());
    spec.set_root(Some(root));
    let mut linux = spec.linux().clone().ok_or(AgentError::SpecWithoutLinux)?;
    if let Some(nss) = linux.namespaces_mut() {
        for ns in nss.iter_mut() {
            if ns.typ() == LinuxNamespaceType::Network {
                ns.set_path(Some(netns.to_path_buf()));
            }
        }
    }
    linux.set_cgroups_path(Some(cgroup_path.into()));
    spec.set_linux(Some(linux));
    Ok(())
}
