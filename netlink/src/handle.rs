//! [`Handle`]: a synchronous rtnetlink socket bound to one network namespace.
//!
//! Requests are sent with `NLM_F_ACK` and the handle reads until the kernel's
//! ACK (or `NLMSG_DONE` for dumps) with the request's sequence number; a
//! refusal becomes an [`Error`] carrying the operation, its target, the errno
//! and the kernel's extended-ack message. Links are named by name in the API;
//! the handle resolves names to indexes in its own namespace.

use std::ffi::OsString;
use std::net::IpAddr;
use std::os::fd::{AsFd, AsRawFd, BorrowedFd, OwnedFd};
use std::path::Path;

use netlink_packet_core::{
    NetlinkBuffer, NetlinkHeader, NetlinkMessage, NetlinkPayload, NLM_F_ACK, NLM_F_ACK_TLVS,
    NLM_F_CAPPED, NLM_F_CREATE, NLM_F_DUMP, NLM_F_EXCL, NLM_F_REQUEST,
};
use netlink_packet_route::address::{AddressAttribute, AddressMessage, AddressScope};
use netlink_packet_route::link::{
    InfoData, InfoKind, InfoMacVlan, InfoVeth, LinkAttribute, LinkFlags, LinkInfo, LinkMessage,
    MacVlanMode,
};
use netlink_packet_route::route::{
    RouteAddress, RouteAttribute, RouteHeader, RouteMessage, RouteProtocol, RouteScope, RouteType,
};
use netlink_packet_route::{AddressFamily, RouteNetlinkMessage};
use netlink_sys::{protocols::NETLINK_ROUTE, Socket, SocketAddr};
use nix::errno::Errno;

use crate::mac::format_mac;
use crate::netns;
use crate::{Error, Result};

/// How long a request waits for the kernel before giving up (it always
/// answers; this only guards against a bug leaving a read hanging forever).
const RECV_TIMEOUT_SECS: libc::time_t = 10;

/// `NLMSGERR_ATTR_MSG` from linux/netlink.h: the extended-ack text.
const NLMSGERR_ATTR_MSG: u16 = 1;

/// A link as the kernel describes it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Link {
    /// Interface index in the handle's namespace.
    pub index: u32,
    pub name: String,
    /// Hardware address, when the link has a 6-byte one.
    pub mac: Option<[u8; 6]>,
    /// Administratively up (`IFF_UP`).
    pub up: bool,
    /// Carrier present (`IFF_LOWER_UP`).
    pub lower_up: bool,
    /// `bridge`, `veth`, `macvlan`, ...; `None` for links without a kind
    /// (loopback, physical devices).
    pub kind: Option<String>,
    pub mtu: Option<u32>,
    /// Index of the controlling link (the bridge of a bridge port).
    pub master: Option<u32>,
    /// Index of the parent (macvlan) or peer (veth) link, which may be in
    /// another namespace.
    pub parent: Option<u32>,
}

/// An address on a link.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Address {
    /// Interface index of the link carrying it.
    pub index: u32,
    pub addr: IpAddr,
    pub prefix_len: u8,
}

/// A route of the main table.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Route {
    /// Destination network; `None` for the default route.
    pub destination: Option<(IpAddr, u8)>,
    pub gateway: Option<IpAddr>,
    /// Output interface index.
    pub oif: Option<u32>,
}

/// An rtnetlink socket in one network namespace. Methods take `&mut self`:
/// one request at a time per handle.
#[derive(Debug)]
pub struct Handle {
    socket: Socket,
    seq: u32,
    /// The namespace the socket is bound to (for /proc/sys writes).
    netns: OwnedFd,
    /// How the namespace is named in errors.
    label: OsString,
}

impl Handle {
    /// A handle in the calling thread's network namespace.
    pub fn new() -> Result<Self> {
        let netns = netns::open_current()?;
        Self::with_socket(netns, "/proc/thread-self/ns/net".into())
    }

    /// A handle in the network namespace at `ns` (`/run/netns/NAME`,
    /// `/proc/PID/ns/net`). The socket is opened by a thread inside that
    /// namespace and stays bound to it.
    pub fn in_netns(ns: &Path) -> Result<Self> {
        let fd = netns::open(ns)?;
        Self::in_netns_fd(fd, ns.as_os_str().to_owned())
    }

    /// Like [`Handle::in_netns`] for a namespace already open; `label` names
    /// it in errors.
    pub fn in_netns_fd(ns: OwnedFd, label: OsString) -> Result<Self> {
        let socket = netns::run_in_fd(ns.as_fd(), &label, open_socket)??;
        Self::finish(socket, ns, label)
    }

    fn with_socket(netns: OwnedFd, label: OsString) -> Result<Self> {
        let socket = open_socket()?;
        Self::finish(socket, netns, label)
    }

    fn finish(socket: Socket, netns: OwnedFd, label: OsString) -> Result<Self> {
        Ok(Handle {
            socket,
            seq: 0,
            netns,
            label,
        })
    }

    /// The namespace this handle works in.
    pub fn netns_fd(&self) -> BorrowedFd<'_> {
        self.netns.as_fd()
    }

    // ----- links -------------------------------------------------------

    /// The link called `name`; [`Error::NotFound`] when there is none.
    pub fn link(&mut self, name: &str) -> Result<Link> {
        let mut msg = LinkMessage::default();
        msg.attributes.push(LinkAttribute::IfName(name.to_string()));
        let target = format!("link {name:?}");
        let answers = self.request(RouteNetlinkMessage::GetLink(msg), 0, "get", &target)?;
        answers
            .into_iter()
            .find_map(|m| match m {
                RouteNetlinkMessage::NewLink(l) => Some(link_from(l)),
                _ => None,
            })
            .ok_or_else(|| Error::Decode {
                op: "get",
                target,
                message: "no link in the answer".into(),
            })
    }

    /// The interface index of `name`.
    pub fn link_index(&mut self, name: &str) -> Result<u32> {
        Ok(self.link(name)?.index)
    }

    /// All links of the namespace.
    pub fn links(&mut self) -> Result<Vec<Link>> {
        let answers = self.dump(
            RouteNetlinkMessage::GetLink(LinkMessage::default()),
            "list",
            "links",
        )?;
        Ok(answers
            .into_iter()
            .filter_map(|m| match m {
                RouteNetlinkMessage::NewLink(l) => Some(link_from(l)),
                _ => None,
            })
            .collect())
    }

    /// Adds a bridge (down, no ports).
    pub fn add_bridge(&mut self, name: &str) -> Result<()> {
        check_ifname(name)?;
        let mut msg = LinkMessage::default();
        msg.attributes.push(LinkAttribute::IfName(name.to_string()));
        msg.attributes
            .push(LinkAttribute::LinkInfo(vec![LinkInfo::Kind(
                InfoKind::Bridge,
            )]));
        self.create_link(msg, "add bridge", format!("link {name:?}"))
    }

    /// Adds a veth pair `name` <-> `peer`. With `peer_netns`, the peer is
    /// created directly in that namespace (and never appears in this one).
    pub fn add_veth(
        &mut self,
        name: &str,
        peer: &str,
        peer_netns: Option<BorrowedFd<'_>>,
    ) -> Result<()> {
        check_ifname(name)?;
        check_ifname(peer)?;
        let mut peer_msg = LinkMessage::default();
        peer_msg
            .attributes
            .push(LinkAttribute::IfName(peer.to_string()));
        if let Some(fd) = peer_netns {
            peer_msg
                .attributes
                .push(LinkAttribute::NetNsFd(fd.as_raw_fd()));
        }
        let mut msg = LinkMessage::default();
        msg.attributes.push(LinkAttribute::IfName(name.to_string()));
        msg.attributes.push(LinkAttribute::LinkInfo(vec![
            LinkInfo::Kind(InfoKind::Veth),
            LinkInfo::Data(InfoData::Veth(InfoVeth::Peer(peer_msg))),
        ]));
        self.create_link(msg, "add veth", format!("link {name:?} peer {peer:?}"))
    }

    /// Adds a macvlan `name` in bridge mode on `parent` (a link of this
    /// namespace), with the MAC `mac` if given (else the kernel picks a
    /// random one). With `netns`, the macvlan is created directly in that
    /// namespace while staying attached to `parent` here.
    pub fn add_macvlan(
        &mut self,
        name: &str,
        parent: &str,
        mac: Option<[u8; 6]>,
        netns: Option<BorrowedFd<'_>>,
    ) -> Result<()> {
        check_ifname(name)?;
        let target = match mac {
            Some(m) => format!("link {name:?} on {parent:?} with MAC {}", format_mac(&m)),
            None => format!("link {name:?} on {parent:?}"),
        };
        let parent_index = self.link_index(parent).map_err(|e| match e {
            Error::NotFound { errno, message, .. } => Error::NotFound {
                op: "add macvlan",
                target: format!("{target}: parent"),
                errno,
                message,
            },
            other => other,
        })?;
        let mut msg = LinkMessage::default();
        msg.attributes.push(LinkAttribute::IfName(name.to_string()));
        msg.attributes.push(LinkAttribute::Link(parent_index));
        if let Some(m) = mac {
            msg.attributes.push(LinkAttribute::Address(m.to_vec()));
        }
        if let Some(fd) = netns {
            msg.attributes.push(LinkAttribute::NetNsFd(fd.as_raw_fd()));
        }
        msg.attributes.push(LinkAttribute::LinkInfo(vec![
            LinkInfo::Kind(InfoKind::MacVlan),
            LinkInfo::Data(InfoData::MacVlan(vec![InfoMacVlan::Mode(
                MacVlanMode::Bridge,
            )])),
        ]));
        self.create_link(msg, "add macvlan", target)
    }

    /// Brings the link up.
    pub fn set_up(&mut self, name: &str) -> Result<()> {
        self.set_flags(name, true, "set up")
    }

    /// Brings the link down.
    pub fn set_down(&mut self, name: &str) -> Result<()> {
        self.set_flags(name, false, "set down")
    }

    fn set_flags(&mut self, name: &str, up: bool, op: &'static str) -> Result<()> {
        let mut msg = self.link_msg(name, op)?;
        msg.header.flags = if up {
            LinkFlags::Up
        } else {
            LinkFlags::empty()
        };
        msg.header.change_mask = LinkFlags::Up;
        self.ack(
            RouteNetlinkMessage::SetLink(msg),
            0,
            op,
            &format!("link {name:?}"),
        )
    }

    /// Moves the link into the namespace `netns` (it disappears from this
    /// one, keeping its name, and comes up down).
    pub fn set_netns(&mut self, name: &str, netns: BorrowedFd<'_>) -> Result<()> {
        let op = "move to netns";
        let mut msg = self.link_msg(name, op)?;
        msg.attributes
            .push(LinkAttribute::NetNsFd(netns.as_raw_fd()));
        self.ack(
            RouteNetlinkMessage::SetLink(msg),
            0,
            op,
            &format!("link {name:?}"),
        )
    }

    /// Renames the link (the kernel refuses with EBUSY while it is up).
    pub fn rename(&mut self, name: &str, new_name: &str) -> Result<()> {
        check_ifname(new_name)?;
        let op = "rename";
        let mut msg = self.link_msg(name, op)?;
        msg.attributes
            .push(LinkAttribute::IfName(new_name.to_string()));
        self.ack(
            RouteNetlinkMessage::SetLink(msg),
            0,
            op,
            &format!("link {name:?} to {new_name:?}"),
        )
    }

    /// Sets the link's MAC address.
    pub fn set_mac(&mut self, name: &str, mac: [u8; 6]) -> Result<()> {
        let op = "set MAC";
        let mut msg = self.link_msg(name, op)?;
        msg.attributes.push(LinkAttribute::Address(mac.to_vec()));
        self.ack(
            RouteNetlinkMessage::SetLink(msg),
            0,
            op,
            &format!("link {name:?} to {}", format_mac(&mac)),
        )
    }

    /// Sets the link's MTU.
    pub fn set_mtu(&mut self, name: &str, mtu: u32) -> Result<()> {
        let op = "set MTU";
        let mut msg = self.link_msg(name, op)?;
        msg.attributes.push(LinkAttribute::Mtu(mtu));
        self.ack(
            RouteNetlinkMessage::SetLink(msg),
            0,
            op,
            &format!("link {name:?} to {mtu}"),
        )
    }

    /// Makes `name` a port of the bridge `master`, or detaches it with
    /// `None`.
    pub fn set_master(&mut self, name: &str, master: Option<&str>) -> Result<()> {
        let op = "set master";
        let master_index = match master {
            Some(m) => self.link_index(m)?,
            None => 0,
        };
        let mut msg = self.link_msg(name, op)?;
        msg.attributes.push(LinkAttribute::Controller(master_index));
        self.ack(
            RouteNetlinkMessage::SetLink(msg),
            0,
            op,
            &format!("link {name:?} to {:?}", master.unwrap_or("none")),
        )
    }

    /// Deletes the link (a veth takes its peer with it);
    /// [`Error::NotFound`] when there is no such link.
    pub fn delete_link(&mut self, name: &str) -> Result<()> {
        let mut msg = LinkMessage::default();
        msg.attributes.push(LinkAttribute::IfName(name.to_string()));
        self.ack(
            RouteNetlinkMessage::DelLink(msg),
            0,
            "delete",
            &format!("link {name:?}"),
        )
    }

    /// A SETLINK message addressed to `name` by index.
    fn link_msg(&mut self, name: &str, op: &'static str) -> Result<LinkMessage> {
        let index = self.link_index(name).map_err(|e| match e {
            Error::NotFound {
                target,
                errno,
                message,
                ..
            } => Error::NotFound {
                op,
                target,
                errno,
                message,
            },
            other => other,
        })?;
        let mut msg = LinkMessage::default();
        msg.header.index = index;
        Ok(msg)
    }

    fn create_link(&mut self, msg: LinkMessage, op: &'static str, target: String) -> Result<()> {
        self.ack(
            RouteNetlinkMessage::NewLink(msg),
            NLM_F_CREATE | NLM_F_EXCL,
            op,
            &target,
        )?;
        tracing::debug!(op, target, "link created");
        Ok(())
    }

    // ----- IPv6 switch -------------------------------------------------

    /// Enables or disables IPv6 on `ifname` by writing
    /// `/proc/sys/net/ipv6/conf/IFNAME/disable_ipv6` from a thread in this
    /// handle's namespace. `ifname` may also be `default` (links created
    /// later) or `all`. A link with IPv6 disabled sends no neighbour
    /// discovery or router solicitation when it comes up.
    pub fn set_ipv6(&mut self, ifname: &str, enabled: bool) -> Result<()> {
        if ifname != "default" && ifname != "all" {
            check_ifname(ifname)?;
        }
        let file = format!("/proc/sys/net/ipv6/conf/{ifname}/disable_ipv6");
        let value = if enabled { "0" } else { "1" };
        netns::run_in_fd(self.netns.as_fd(), &self.label, || {
            std::fs::write(&file, value)
        })?
        .map_err(|e| {
            Error::io(
                if enabled {
                    "enable IPv6"
                } else {
                    "disable IPv6"
                },
                format!("link {ifname:?} ({file})"),
                e,
            )
        })
    }

    // ----- addresses ---------------------------------------------------

    /// Adds `addr/prefix_len` to the link; [`Error::AlreadyExists`] when it
    /// is there already.
    pub fn add_address(&mut self, link: &str, addr: IpAddr, prefix_len: u8) -> Result<()> {
        let target = format!("{addr}/{prefix_len} on link {link:?}");
        let msg = self.address_msg(link, addr, prefix_len, "add address", &target)?;
        self.ack(
            RouteNetlinkMessage::NewAddress(msg),
            NLM_F_CREATE | NLM_F_EXCL,
            "add address",
            &target,
        )
    }

    /// Removes `addr/prefix_len` from the link; [`Error::NotFound`] when it
    /// is not there.
    pub fn delete_address(&mut self, link: &str, addr: IpAddr, prefix_len: u8) -> Result<()> {
        let target = format!("{addr}/{prefix_len} on link {link:?}");
        let msg = self.address_msg(link, addr, prefix_len, "delete address", &target)?;
        self.ack(
            RouteNetlinkMessage::DelAddress(msg),
            0,
            "delete address",
            &target,
        )
    }

    /// The addresses of `link`, or of every link with `None`.
    pub fn addresses(&mut self, link: Option<&str>) -> Result<Vec<Address>> {
        let index = match link {
            Some(name) => Some(self.link_index(name)?),
            None => None,
        };
        let answers = self.dump(
            RouteNetlinkMessage::GetAddress(AddressMessage::default()),
            "list",
            "addresses",
        )?;
        Ok(answers
            .into_iter()
            .filter_map(|m| match m {
                RouteNetlinkMessage::NewAddress(a) => address_from(a),
                _ => None,
            })
            .filter(|a| index.is_none_or(|i| a.index == i))
            .collect())
    }

    fn address_msg(
        &mut self,
        link: &str,
        addr: IpAddr,
        prefix_len: u8,
        op: &'static str,
        target: &str,
    ) -> Result<AddressMessage> {
        let max = if addr.is_ipv4() { 32 } else { 128 };
        if prefix_len > max {
            return Err(Error::Invalid {
                what: "prefix length",
                value: target.to_string(),
                reason: "longer than the address",
            });
        }
        let index = self.link_index(link).map_err(|e| match e {
            Error::NotFound { errno, message, .. } => Error::NotFound {
                op,
                target: target.to_string(),
                errno,
                message,
            },
            other => other,
        })?;
        let mut msg = AddressMessage::default();
        msg.header.family = family(addr);
        msg.header.prefix_len = prefix_len;
        msg.header.scope = AddressScope::Universe;
        msg.header.index = index;
        if addr.is_ipv4() {
            msg.attributes.push(AddressAttribute::Local(addr));
        }
        msg.attributes.push(AddressAttribute::Address(addr));
        Ok(msg)
    }

    // ----- routes ------------------------------------------------------

    /// Adds a route to the main table: to `destination` (`None` = default),
    /// through `gateway` and/or out of `dev`. Without a gateway the route is
    /// on-link (scope link).
    pub fn add_route(
        &mut self,
        destination: Option<(IpAddr, u8)>,
        gateway: Option<IpAddr>,
        dev: Option<&str>,
    ) -> Result<()> {
        let (msg, target) = self.route_msg(destination, gateway, dev, "add route")?;
        self.ack(
            RouteNetlinkMessage::NewRoute(msg),
            NLM_F_CREATE | NLM_F_EXCL,
            "add route",
            &target,
        )
    }

    /// Adds the default route through `gateway`.
    pub fn add_default_route(&mut self, gateway: IpAddr) -> Result<()> {
        self.add_route(None, Some(gateway), None)
    }

    /// Deletes a route of the main table; [`Error::NotFound`] when missing.
    pub fn delete_route(
        &mut self,
        destination: Option<(IpAddr, u8)>,
        gateway: Option<IpAddr>,
        dev: Option<&str>,
    ) -> Result<()> {
        let (mut msg, target) = self.route_msg(destination, gateway, dev, "delete route")?;
        // Match any scope, as `ip route del` does.
        msg.header.scope = RouteScope::NoWhere;
        self.ack(
            RouteNetlinkMessage::DelRoute(msg),
            0,
            "delete route",
            &target,
        )
    }

    /// The routes of the main table (IPv4 and IPv6).
    pub fn routes(&mut self) -> Result<Vec<Route>> {
        let answers = self.dump(
            RouteNetlinkMessage::GetRoute(RouteMessage::default()),
            "list",
            "routes",
        )?;
        Ok(answers
            .into_iter()
            .filter_map(|m| match m {
                RouteNetlinkMessage::NewRoute(r) => route_from(r),
                _ => None,
            })
            .collect())
    }

    fn route_msg(
        &mut self,
        destination: Option<(IpAddr, u8)>,
        gateway: Option<IpAddr>,
        dev: Option<&str>,
        op: &'static str,
    ) -> Result<(RouteMessage, String)> {
        let target = format!(
            "{}{}{}",
            destination.map_or("default".to_string(), |(a, p)| format!("{a}/{p}")),
            gateway.map_or(String::new(), |g| format!(" via {g}")),
            dev.map_or(String::new(), |d| format!(" dev {d:?}")),
        );
        let Some(first) = destination.map(|(a, _)| a).or(gateway) else {
            return Err(Error::Invalid {
                what: "route",
                value: target,
                reason: "a default route needs a gateway",
            });
        };
        if let (Some((d, _)), Some(g)) = (destination, gateway) {
            if d.is_ipv4() != g.is_ipv4() {
                return Err(Error::Invalid {
                    what: "route",
                    value: target,
                    reason: "destination and gateway of different families",
                });
            }
        }
        let mut msg = RouteMessage::default();
        msg.header.address_family = family(first);
        msg.header.table = RouteHeader::RT_TABLE_MAIN;
        msg.header.protocol = RouteProtocol::Boot;
        msg.header.kind = RouteType::Unicast;
        msg.header.scope = if gateway.is_some() {
            RouteScope::Universe
        } else {
            RouteScope::Link
        };
        if let Some((addr, prefix_len)) = destination {
            let max = if addr.is_ipv4() { 32 } else { 128 };
            if prefix_len > max {
                return Err(Error::Invalid {
                    what: "prefix length",
                    value: target,
                    reason: "longer than the address",
                });
            }
            msg.header.destination_prefix_length = prefix_len;
            if prefix_len > 0 {
                msg.attributes
                    .push(RouteAttribute::Destination(RouteAddress::from(addr)));
            }
        }
        if let Some(g) = gateway {
            msg.attributes
                .push(RouteAttribute::Gateway(RouteAddress::from(g)));
        }
        if let Some(d) = dev {
            let index = self.link_index(d).map_err(|e| match e {
                Error::NotFound { errno, message, .. } => Error::NotFound {
                    op,
                    target: target.clone(),
                    errno,
                    message,
                },
                other => other,
            })?;
            msg.attributes.push(RouteAttribute::Oif(index));
        }
        Ok((msg, target))
    }

    // ----- transport ---------------------------------------------------

    /// Sends a request that must be acknowledged, ignoring any answers.
    fn ack(
        &mut self,
        msg: RouteNetlinkMessage,
        flags: u16,
        op: &'static str,
        target: &str,
    ) -> Result<()> {
        self.request(msg, flags, op, target).map(drop)
    }

    /// Sends a dump request and collects the answers up to `NLMSG_DONE`.
    fn dump(
        &mut self,
        msg: RouteNetlinkMessage,
        op: &'static str,
        target: &str,
    ) -> Result<Vec<RouteNetlinkMessage>> {
        self.exchange(msg, NLM_F_REQUEST | NLM_F_DUMP, op, target)
    }

    /// Sends a request with `NLM_F_ACK` and collects the answers up to the
    /// ACK.
    fn request(
        &mut self,
        msg: RouteNetlinkMessage,
        flags: u16,
        op: &'static str,
        target: &str,
    ) -> Result<Vec<RouteNetlinkMessage>> {
        self.exchange(msg, NLM_F_REQUEST | NLM_F_ACK | flags, op, target)
    }

    fn exchange(
        &mut self,
        msg: RouteNetlinkMessage,
        flags: u16,
        op: &'static str,
        target: &str,
    ) -> Result<Vec<RouteNetlinkMessage>> {
        self.seq = self.seq.wrapping_add(1);
        let seq = self.seq;
        let mut header = NetlinkHeader::default();
        header.flags = flags;
        header.sequence_number = seq;
        let mut packet = NetlinkMessage::new(header, NetlinkPayload::InnerMessage(msg));
        packet.finalize();
        let mut buf = vec![0u8; packet.buffer_len()];
        packet.serialize(&mut buf);
        self.socket
            .send(&buf, 0)
            .map_err(|e| Error::io(op, target, e))?;

        let is_dump = flags & NLM_F_DUMP == NLM_F_DUMP;
        let mut answers = Vec::new();
        loop {
            let (data, _) = self
                .socket
                .recv_from_full()
                .map_err(|e| Error::io(op, target, e))?;
            let mut offset = 0;
            while offset < data.len() {
                let bytes = &data[offset..];
                let len = NetlinkBuffer::new_checked(bytes)
                    .map(|b| b.length() as usize)
                    .map_err(|e| decode(op, target, e))?;
                if len == 0 || len > bytes.len() {
                    return Err(Error::Decode {
                        op,
                        target: target.to_string(),
                        message: format!("message length {len} in {} bytes", bytes.len()),
                    });
                }
                let parsed = NetlinkMessage::<RouteNetlinkMessage>::deserialize(&bytes[..len])
                    .map_err(|e| decode(op, target, e))?;
                offset += (len + 3) & !3;
                if parsed.header.sequence_number != seq {
                    continue; // a late answer to an earlier request
                }
                let outer_flags = parsed.header.flags;
                match parsed.payload {
                    NetlinkPayload::Error(err) => {
                        return match err.code {
                            None => Ok(answers),
                            Some(code) => Err(Error::from_errno(
                                op,
                                target,
                                Errno::from_raw(-code.get()),
                                ext_ack_message(outer_flags, &err.header),
                            )),
                        };
                    }
                    NetlinkPayload::Done(_) => return Ok(answers),
                    NetlinkPayload::InnerMessage(inner) => {
                        answers.push(inner);
                        if !is_dump && flags & NLM_F_ACK == 0 {
                            return Ok(answers);
                        }
                    }
                    _ => {}
                }
            }
        }
    }
}

fn open_socket() -> Result<Socket> {
    let mut socket =
        Socket::new(NETLINK_ROUTE).map_err(|e| Error::io("open", "rtnetlink socket", e))?;
    socket
        .bind_auto()
        .map_err(|e| Error::io("bind", "rtnetlink socket", e))?;
    socket
        .connect(&SocketAddr::new(0, 0))
        .map_err(|e| Error::io("connect", "rtnetlink socket", e))?;
    // Best effort: richer error messages, shorter error answers.
    let _ = socket.set_ext_ack(true);
    let _ = socket.set_cap_ack(true);
    let timeout = libc::timeval {
        tv_sec: RECV_TIMEOUT_SECS,
        tv_usec: 0,
    };
    // SAFETY: the option value is a valid timeval of the size given.
    let rc = unsafe {
        libc::setsockopt(
            socket.as_raw_fd(),
            libc::SOL_SOCKET,
            libc::SO_RCVTIMEO,
            (&timeout as *const libc::timeval).cast(),
            std::mem::size_of::<libc::timeval>() as libc::socklen_t,
        )
    };
    if rc != 0 {
        return Err(Error::io(
            "set receive timeout",
            "rtnetlink socket",
            std::io::Error::last_os_error(),
        ));
    }
    Ok(socket)
}

fn decode(op: &'static str, target: &str, e: netlink_packet_core::DecodeError) -> Error {
    Error::Decode {
        op,
        target: target.to_string(),
        message: e.to_string(),
    }
}

/// The kernel's extended-ack text from an error message's payload (the
/// request's header, or all of the request unless capped, then attributes).
fn ext_ack_message(outer_flags: u16, payload: &[u8]) -> Option<String> {
    if outer_flags & NLM_F_ACK_TLVS == 0 || payload.len() < 16 {
        return None;
    }
    let request_len = if outer_flags & NLM_F_CAPPED != 0 {
        16
    } else {
        u32::from_ne_bytes([payload[0], payload[1], payload[2], payload[3]]) as usize
    };
    let mut tlvs = payload.get((request_len + 3) & !3..)?;
    while tlvs.len() >= 4 {
        let len = u16::from_ne_bytes([tlvs[0], tlvs[1]]) as usize;
        let kind = u16::from_ne_bytes([tlvs[2], tlvs[3]]) & 0x3fff;
        if len < 4 || len > tlvs.len() {
            return None;
        }
        if kind == NLMSGERR_ATTR_MSG {
            let text = &tlvs[4..len];
            let text = text.split(|&b| b == 0).next().unwrap_or(text);
            return Some(String::from_utf8_lossy(text).into_owned());
        }
        tlvs = tlvs.get((len + 3) & !3..)?;
    }
    None
}

fn check_ifname(name: &str) -> Result<()> {
    let reason = if name.is_empty() {
        Some("empty")
    } else if name.len() > 15 {
        Some("longer than 15 bytes (IFNAMSIZ)")
    } else if name == "." || name == ".." {
        Some("`.` or `..`")
    } else if name.contains(['/', ':', '\0']) || name.contains(char::is_whitespace) {
        Some("contains `/`, `:`, NUL or whitespace")
    } else {
        None
    };
    match reason {
        Some(reason) => Err(Error::Invalid {
            what: "interface name",
            value: name.to_string(),
            reason,
        }),
        None => Ok(()),
    }
}

fn family(addr: IpAddr) -> AddressFamily {
    match addr {
        IpAddr::V4(_) => AddressFamily::Inet,
        IpAddr::V6(_) => AddressFamily::Inet6,
    }
}

fn link_from(msg: LinkMessage) -> Link {
    let mut link = Link {
        index: msg.header.index,
        name: String::new(),
        mac: None,
        up: msg.header.flags.contains(LinkFlags::Up),
        lower_up: msg.header.flags.contains(LinkFlags::LowerUp),
        kind: None,
        mtu: None,
        master: None,
        parent: None,
    };
    for attr in msg.attributes {
        match attr {
            LinkAttribute::IfName(n) => link.name = n,
            LinkAttribute::Address(a) => link.mac = <[u8; 6]>::try_from(a.as_slice()).ok(),
            LinkAttribute::Mtu(m) => link.mtu = Some(m),
            LinkAttribute::Controller(m) => link.master = Some(m),
            LinkAttribute::Link(p) => link.parent = Some(p),
            LinkAttribute::LinkInfo(infos) => {
                for info in infos {
                    if let LinkInfo::Kind(kind) = info {
                        link.kind = Some(kind.to_string());
                    }
                }
            }
            _ => {}
        }
    }
    link
}

fn address_from(msg: AddressMessage) -> Option<Address> {
    let mut local = None;
    let mut address = None;
    for attr in msg.attributes {
        match attr {
            AddressAttribute::Local(a) => local = Some(a),
            AddressAttribute::Address(a) => address = Some(a),
            _ => {}
        }
    }
    Some(Address {
        index: msg.header.index,
        addr: local.or(address)?,
        prefix_len: msg.header.prefix_len,
    })
}

fn route_from(msg: RouteMessage) -> Option<Route> {
    let mut table = u32::from(msg.header.table);
    let mut destination = None;
    let mut gateway = None;
    let mut oif = None;
    for attr in msg.attributes {
        match attr {
            RouteAttribute::Table(t) => table = t,
            RouteAttribute::Destination(d) => destination = route_ip(d),
            RouteAttribute::Gateway(g) => gateway = route_ip(g),
            RouteAttribute::Oif(o) => oif = Some(o),
            _ => {}
        }
    }
    if table != u32::from(RouteHeader::RT_TABLE_MAIN) {
        return None;
    }
    let prefix_len = msg.header.destination_prefix_length;
    Some(Route {
        destination: if prefix_len == 0 {
            None
        } else {
            destination.map(|d| (d, prefix_len))
        },
        gateway,
        oif,
    })
}

fn route_ip(addr: RouteAddress) -> Option<IpAddr> {
    match addr {
        RouteAddress::Inet(a) => Some(IpAddr::V4(a)),
        RouteAddress::Inet6(a) => Some(IpAddr::V6(a)),
        _ => None,
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn interface_names_are_checked() {
        assert!(check_ifname("eth0").is_ok());
        assert!(check_ifname("abcdefghijklmno").is_ok());
        for bad in ["", "abcdefghijklmnop", "a/b", "a b", "a:1", ".", ".."] {
            assert!(check_ifname(bad).is_err(), "{bad:?}");
        }
    }

    #[test]
    fn ext_ack_text_is_found_after_a_capped_header() {
        let mut payload = vec![0u8; 16];
        let text = b"Unknown device type\0";
        let len = (4 + text.len()) as u16;
        payload.extend_from_slice(&len.to_ne_bytes());
        payload.extend_from_slice(&NLMSGERR_ATTR_MSG.to_ne_bytes());
        payload.extend_from_slice(text);
        assert_eq!(
            ext_ack_message(NLM_F_ACK_TLVS | NLM_F_CAPPED, &payload).as_deref(),
            Some("Unknown device type")
        );
        assert_eq!(ext_ack_message(0, &payload), None);
    }
}
