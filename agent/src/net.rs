//! Network identity: a container on a network gets a macvlan child (bridge
//! mode) of the host's uplink, named `eth0` in its netns, with its own MAC
//! and IPv4 address for life. The address moves with the container, so
//! established TCP connections survive a migration (CRIU restores them with
//! `tcp_established`).
//!
//! A move must not let the kernel answer the peer while no socket is there:
//! a frame that reaches a netns holding the address but not (yet, or any
//! more) the socket is answered with a RST and the connection dies. So a
//! *fence* (an nftables table dropping everything but loopback, input and
//! output; programmed over netlink, no `nft` binary) is put into the container's netns
//! - on the source before the dump, kept until the netns is deleted after
//!   the move (or lifted after a rollback restore);
//! - on the target before the macvlan comes up, lifted right after the
//!   restore, followed by a gratuitous ARP so the bridge and the peers learn
//!   where the address is now.
//!
//! IPv6 is off on `eth0`: neighbour discovery when the link comes up would
//! move the bridge's idea of the MAC before the restore.
//!
//! Networks (name, subnet, gateway, uplink, pool range) are stored per agent
//! under `<state>/networks/<name>.json`; the CLI defines them on every agent.

use std::net::Ipv4Addr;
use std::os::fd::AsFd;
use std::path::{Path, PathBuf};

use herd_wire::net::{parse_range, Subnet};
use herd_wire::{NetAttach, NetworkDef};

use crate::error::{validate_name, AgentError, Result};

/// Checks a definition; the uplink must exist in the agent's namespace.
pub fn validate(def: &NetworkDef) -> Result<Subnet> {
    validate_name("network name", &def.name)?;
    let bad = |reason: String| AgentError::Invalid {
        what: "network",
        reason,
    };
    let net = Subnet::parse(&def.subnet).map_err(bad)?;
    if let Some(g) = &def.gateway {
        let gw: Ipv4Addr = g
            .parse()
            .map_err(|_| bad(format!("gateway {g:?} is no IPv4 address")))?;
        if !net.holds(gw) {
            return Err(bad(format!("gateway {gw} is not in {}", def.subnet)));
        }
    }
    parse_range(def, &net).map_err(bad)?;
    let mut h =
        herd_netlink::Handle::new().map_err(|e| AgentError::Other(format!("netlink: {e}")))?;
    h.link(&def.parent).map_err(|e| {
        bad(format!(
            "uplink {:?} of network {}: {e}",
            def.parent, def.name
        ))
    })?;
    Ok(net)
}

/// The networks this agent knows.
pub struct NetStore {
    dir: PathBuf,
}

impl NetStore {
    pub fn open(dir: PathBuf) -> Result<Self> {
        std::fs::create_dir_all(&dir)
            .map_err(|e| AgentError::Other(format!("create {}: {e}", dir.display())))?;
        Ok(NetStore { dir })
    }
    fn path(&self, name: &str) -> PathBuf {
        self.dir.join(format!("{name}.json"))
    }
    /// Add a network; the same definition again is fine, another one under
    /// that name is refused.
    pub fn create(&self, def: &NetworkDef) -> Result<()> {
        validate(def)?;
        if let Ok(have) = self.get(&def.name) {
            if &have == def {
                return Ok(());
            }
            return Err(AgentError::Invalid {
                what: "network",
                reason: format!(
                    "{} already exists with subnet {} on {}; remove it first",
                    def.name, have.subnet, have.parent
                ),
            });
        }
        let data = serde_json::to_vec_pretty(def)
            .map_err(|e| AgentError::Other(format!("encode network: {e}")))?;
        let tmp = self.dir.join(format!(".{}.tmp", def.name));
        std::fs::write(&tmp, data)
            .and_then(|_| std::fs::rename(&tmp, self.path(&def.name)))
            .map_err(|e| AgentError::Other(format!("save network {}: {e}", def.name)))
    }
    pub fn get(&self, name: &str) -> Result<NetworkDef> {
        validate_name("network name", name)?;
        let data = std::fs::read(self.path(name)).map_err(|_| AgentError::Invalid {
            what: "network",
            reason: format!("unknown network {name:?} (see `herd network ls`)"),
        })?;
        serde_json::from_slice(&data)
            .map_err(|e| AgentError::Other(format!("network {name}: corrupt record: {e}")))
    }
    pub fn list(&self) -> Result<Vec<NetworkDef>> {
        let mut out = Vec::new();
        let rd = std::fs::read_dir(&self.dir)
            .map_err(|e| AgentError::Other(format!("read {}: {e}", self.dir.display())))?;
        for e in rd.flatten() {
            let n = e.file_name().to_string_lossy().into_owned();
            if let Some(name) = n.strip_suffix(".json").filter(|n| !n.starts_with('.')) {
                out.push(self.get(name)?);
            }
        }
        out.sort_by(|a, b| a.name.cmp(&b.name));
        Ok(out)
    }
    pub fn remove(&self, name: &str) -> Result<()> {
        self.get(name)?;
        std::fs::remove_file(self.path(name))
            .map_err(|e| AgentError::Other(format!("remove network {name}: {e}")))
    }

    /// Checks an attachment against its network: known here, uplink
    /// present, address inside the subnet and not the gateway, MAC sane.
    pub fn check(&self, att: &NetAttach) -> Result<(NetworkDef, Subnet, Ipv4Addr, [u8; 6])> {
        let def = self.get(&att.network)?;
        let net = validate(&def)?;
        let bad = |reason: String| AgentError::Invalid {
            what: "address",
            reason,
        };
        let ip: Ipv4Addr = att
            .ip
            .parse()
            .map_err(|_| bad(format!("{:?} is no IPv4 address", att.ip)))?;
        if !net.holds(ip) {
            return Err(bad(format!(
                "{ip} is not a host address of {} ({})",
                def.name, def.subnet
            )));
        }
        if def.gateway.as_deref() == Some(att.ip.as_str()) {
            return Err(bad(format!("{ip} is the gateway of {}", def.name)));
        }
        let mac = herd_netlink::parse_mac(&att.mac).map_err(|e| bad(format!("MAC: {e}")))?;
        Ok((def, net, ip, mac))
    }
}

fn nl(what: String) -> impl FnOnce(herd_netlink::Error) -> AgentError {
    move |e| AgentError::Other(format!("{what}: {e}"))
}

/// Give the netns at `ns_path` its `eth0`: a macvlan of the uplink with the
/// container's MAC and address, IPv6 off, up, default route.
pub fn attach(
    ns_path: &Path,
    def: &NetworkDef,
    net: Subnet,
    ip: Ipv4Addr,
    mac: [u8; 6],
) -> Result<()> {
    let ns =
        herd_netlink::netns::open(ns_path).map_err(nl(format!("open {}", ns_path.display())))?;
    // The kernel checks a new link's name in the creating namespace even when
    // it is made in another, so `eth0` would clash with an uplink of that name
    // (every real host's): made under a name unique to its MAC, then renamed.
    let temp = format!("hm{:02x}{:02x}{:02x}{:02x}", mac[2], mac[3], mac[4], mac[5]);
    let mut host = herd_netlink::Handle::new().map_err(nl("netlink".into()))?;
    host.add_macvlan(&temp, &def.parent, Some(mac), Some(ns.as_fd()))
        .map_err(nl(format!("macvlan on {}", def.parent)))?;
    let mut c =
        herd_netlink::Handle::in_netns(ns_path).map_err(nl("netlink in the container".into()))?;
    let what = format!("eth0 {ip}/{} in {}", net.prefix, ns_path.display());
    c.rename(&temp, "eth0").map_err(nl(what.clone()))?;
    c.set_ipv6("eth0", false).map_err(nl(what.clone()))?;
    c.add_address("eth0", ip.into(), net.prefix)
        .map_err(nl(what.clone()))?;
    c.set_up("eth0").map_err(nl(what.clone()))?;
    if let Some(gw) = def
        .gateway
        .as_deref()
        .and_then(|g| g.parse::<Ipv4Addr>().ok())
    {
        c.add_default_route(gw.into())
            .map_err(nl(format!("{what}: default route via {gw}")))?;
    }
    Ok(())
}

/// Whether the netns has its `eth0` already (kept since a checkpoint here).
pub fn attached(ns_path: &Path) -> bool {
    herd_netlink::Handle::in_netns(ns_path)
        .and_then(|mut h| h.link("eth0"))
        .is_ok()
}

/// Tell the segment where the address is now.
pub fn announce(ns_path: &Path, ip: Ipv4Addr, mac: [u8; 6]) -> Result<()> {
    herd_netlink::netns::run_in(ns_path, || {
        herd_netlink::arp::send_gratuitous_arp("eth0", ip, mac)
    })
    .map_err(nl("enter netns for the gratuitous ARP".into()))?
    .map_err(nl(format!("gratuitous ARP for {ip}")))
}

/// Drop all but loopback traffic in the netns (see the module docs), through
/// nf_tables over netlink ([`herd_netlink::nftables`]): no `nft` binary.
pub fn fence(ns_path: &Path) -> Result<()> {
    herd_netlink::nftables::fence(ns_path)
        .map_err(|e| AgentError::Other(format!("fence {}: {e}", ns_path.display())))
}

/// Lift [`fence`]; fine when there is none.
pub fn unfence(ns_path: &Path) -> Result<()> {
    herd_netlink::nftables::unfence(ns_path)
        .map_err(|e| AgentError::Other(format!("unfence {}: {e}", ns_path.display())))
}

/// Whether the netns is fenced now (false when it cannot be asked).
pub fn is_fenced(ns_path: &Path) -> bool {
    herd_netlink::nftables::is_fenced(ns_path).unwrap_or(false)
}
