//! [`Handle`]: a synchronous face on an [`rtnetlink`] connection bound to
//! one network namespace.
//!
//! The `rtnetlink` crate does the request/answer exchange (sequence numbers,
//! multipart dumps, ACKs). Its connections are futures; all of them run on
//! one current-thread tokio runtime in a thread of its own
//! (`herd-netlink`), started on first use, so the callers (threads of a
//! tokio runtime or not) only block on a channel. A refusal becomes an
//! [`Error`] carrying the operation, its target, the errno and the kernel's
//! extended-ack message. Links are named by name in the API; the handle
//! resolves names to indexes in its own namespace.

use std::ffi::OsString;
use std::future::Future;
use std::net::IpAddr;
use std::os::fd::{AsFd, AsRawFd, BorrowedFd, OwnedFd};
use std::path::Path;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, OnceLock};
use std::time::Duration;

use futures_util::TryStreamExt;
use nix::errno::Errno;
use rtnetlink::packet_route::address::AddressMessage;
use rtnetlink::packet_route::link::{
    InfoData, InfoVeth, LinkAttribute, LinkFlags, LinkInfo, LinkMessage, MacVlanMode,
};
use rtnetlink::packet_route::route::{
    RouteAddress, RouteAttribute, RouteHeader, RouteMessage, RouteProtocol, RouteScope, RouteType,
};
use rtnetlink::packet_route::{address::AddressAttribute, AddressFamily};
use rtnetlink::{
    AddressMessageBuilder, LinkBridge, LinkMacVlan, LinkMessageBuilder, LinkUnspec, LinkVeth,
};

use crate::mac::format_mac;
use crate::netns;
use crate::{Error, Result};

/// How long a request waits for the kernel before giving up (it always
/// answers; this only guards against a bug leaving a caller blocked forever).
const REQUEST_TIMEOUT: Duration = Duration::from_secs(10);

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

/// An rtnetlink connection in one network namespace. Methods take
/// `&mut self`: one request at a time per handle.
#[derive(Debug)]
pub struct Handle {
    nl: rtnetlink::Handle,
    runtime: tokio::runtime::Handle,
    /// Set by the connection's task when it ends (socket error): a request
    /// whose answer stream ended then was not answered.
    closed: Arc<AtomicBool>,
    /// The kernel echoes only the request's header in an error (so the
    /// extended-ack attributes follow at a known offset).
    capped: bool,
    /// The namespace the socket is bound to (for /proc/sys writes).
    netns: OwnedFd,
    /// How the namespace is named in errors.
    label: OsString,
}

/// The connection parts a thread in the right namespace makes.
struct Connected {
    nl: rtnetlink::Handle,
    closed: Arc<AtomicBool>,
    capped: bool,
}

/// The runtime that drives every handle's connection.
fn runtime() -> Result<tokio::runtime::Handle> {
    static RUNTIME: OnceLock<std::result::Result<tokio::runtime::Handle, String>> = OnceLock::new();
    RUNTIME
        .get_or_init(|| {
            let rt = tokio::runtime::Builder::new_current_thread()
                .enable_io()
                .build()
                .map_err(|e| e.to_string())?;
            let handle = rt.handle().clone();
            std::thread::Builder::new()
                .name("herd-netlink".into())
                .spawn(move || rt.block_on(std::future::pending::<()>()))
                .map_err(|e| e.to_string())?;
            Ok(handle)
        })
        .clone()
        .map_err(|m| Error::io("start", "rtnetlink runtime", std::io::Error::other(m)))
}

/// Opens a connection in the calling thread's network namespace (a netlink
/// socket stays in the namespace it was created in).
fn connect(runtime: &tokio::runtime::Handle) -> Result<Connected> {
    let _entered = runtime.enter();
    let (mut conn, nl, unsolicited) =
        rtnetlink::new_connection().map_err(|e| Error::io("open", "rtnetlink socket", e))?;
    // Nothing multicast is asked for; dropping the receiver lets the
    // connection end with the last handle.
    drop(unsolicited);
    let socket = rtnetlink::sys::AsyncSocket::socket_mut(conn.socket_mut());
    // Best effort: richer error messages, shorter error answers.
    let _ = socket.set_ext_ack(true);
    let capped = socket.set_cap_ack(true).is_ok();
    let closed = Arc::new(AtomicBool::new(false));
    let flag = closed.clone();
    runtime.spawn(async move {
        conn.await;
        flag.store(true, Ordering::Release);
    });
    Ok(Connected { nl, closed, capped })
}

impl Handle {
    /// A handle in the calling thread's network namespace.
    pub fn new() -> Result<Self> {
        let netns = netns::open_current()?;
        let runtime = runtime()?;
        let connected = connect(&runtime)?;
        Ok(Self::finish(
            connected,
            runtime,
            netns,
            "/proc/thread-self/ns/net".into(),
        ))
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
        let runtime = runtime()?;
        let connected = netns::run_in_fd(ns.as_fd(), &label, || connect(&runtime))??;
        Ok(Self::finish(connected, runtime, ns, label))
    }

    fn finish(
        connected: Connected,
        runtime: tokio::runtime::Handle,
        netns: OwnedFd,
        label: OsString,
    ) -> Self {
        Handle {
            nl: connected.nl,
            runtime,
            closed: connected.closed,
            capped: connected.capped,
            netns,
            label,
        }
    }

    /// The namespace this handle works in.
    pub fn netns_fd(&self) -> BorrowedFd<'_> {
        self.netns.as_fd()
    }

    // ----- links -------------------------------------------------------

    /// The link called `name`; [`Error::NotFound`] when there is none.
    pub fn link(&mut self, name: &str) -> Result<Link> {
        let target = format!("link {name:?}");
        let request = self.nl.link().get().match_name(name).execute();
        let answer = self.run("get", &target, async move {
            futures_util::pin_mut!(request);
            request.try_next().await
        })?;
        answer.map(link_from).ok_or_else(|| Error::Decode {
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
        let request = self.nl.link().get().execute();
        let answers = self.run("list", "links", request.try_collect::<Vec<_>>())?;
        Ok(answers.into_iter().map(link_from).collect())
    }

    /// Adds a bridge (down, no ports).
    pub fn add_bridge(&mut self, name: &str) -> Result<()> {
        check_ifname(name)?;
        let msg = LinkBridge::new(name).build();
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
        let mut peer_msg = LinkUnspec::new_with_name(peer);
        if let Some(fd) = peer_netns {
            peer_msg = peer_msg.setns_by_fd(fd.as_raw_fd());
        }
        let msg = LinkVeth::new(name, peer)
            .set_info_data(InfoData::Veth(InfoVeth::Peer(peer_msg.build())))
            .build();
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
        let mut msg = LinkMacVlan::new(name, parent_index, MacVlanMode::Bridge);
        if let Some(m) = mac {
            msg = msg.address(m.to_vec());
        }
        if let Some(fd) = netns {
            msg = msg.setns_by_fd(fd.as_raw_fd());
        }
        self.create_link(msg.build(), "add macvlan", target)
    }

    /// Brings the link up.
    pub fn set_up(&mut self, name: &str) -> Result<()> {
        let op = "set up";
        let msg = self.link_msg(name, op)?.up();
        self.change_link(msg, op, format!("link {name:?}"))
    }

    /// Brings the link down.
    pub fn set_down(&mut self, name: &str) -> Result<()> {
        let op = "set down";
        let msg = self.link_msg(name, op)?.down();
        self.change_link(msg, op, format!("link {name:?}"))
    }

    /// Moves the link into the namespace `netns` (it disappears from this
    /// one, keeping its name, and comes up down).
    pub fn set_netns(&mut self, name: &str, netns: BorrowedFd<'_>) -> Result<()> {
        let op = "move to netns";
        let msg = self.link_msg(name, op)?.setns_by_fd(netns.as_raw_fd());
        self.change_link(msg, op, format!("link {name:?}"))
    }

    /// Renames the link (the kernel refuses with EBUSY while it is up).
    pub fn rename(&mut self, name: &str, new_name: &str) -> Result<()> {
        check_ifname(new_name)?;
        let op = "rename";
        let msg = self.link_msg(name, op)?.name(new_name);
        self.change_link(msg, op, format!("link {name:?} to {new_name:?}"))
    }

    /// Sets the link's MAC address.
    pub fn set_mac(&mut self, name: &str, mac: [u8; 6]) -> Result<()> {
        let op = "set MAC";
        let msg = self.link_msg(name, op)?.address(mac.to_vec());
        self.change_link(msg, op, format!("link {name:?} to {}", format_mac(&mac)))
    }

    /// Sets the link's MTU.
    pub fn set_mtu(&mut self, name: &str, mtu: u32) -> Result<()> {
        let op = "set MTU";
        let msg = self.link_msg(name, op)?.mtu(mtu);
        self.change_link(msg, op, format!("link {name:?} to {mtu}"))
    }

    /// Makes `name` a port of the bridge `master`, or detaches it with
    /// `None`.
    pub fn set_master(&mut self, name: &str, master: Option<&str>) -> Result<()> {
        let op = "set master";
        let master_index = match master {
            Some(m) => self.link_index(m)?,
            None => 0,
        };
        let msg = self.link_msg(name, op)?.controller(master_index);
        self.change_link(
            msg,
            op,
            format!("link {name:?} to {:?}", master.unwrap_or("none")),
        )
    }

    /// Deletes the link (a veth takes its peer with it);
    /// [`Error::NotFound`] when there is no such link.
    pub fn delete_link(&mut self, name: &str) -> Result<()> {
        let msg = LinkUnspec::new_with_name(name).build();
        let request = self.nl.link().del_with_message(msg).execute();
        self.run("delete", &format!("link {name:?}"), request)
    }

    /// A builder for a change to `name`, addressed by index.
    fn link_msg(&mut self, name: &str, op: &'static str) -> Result<LinkMessageBuilder<LinkUnspec>> {
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
        Ok(LinkUnspec::new_with_index(index))
    }

    fn change_link(
        &mut self,
        msg: LinkMessageBuilder<LinkUnspec>,
        op: &'static str,
        target: String,
    ) -> Result<()> {
        let request = self.nl.link().set(msg.build()).execute();
        self.run(op, &target, request)
    }

    fn create_link(&mut self, msg: LinkMessage, op: &'static str, target: String) -> Result<()> {
        let request = self.nl.link().add(msg).execute();
        self.run(op, &target, request)?;
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
        let mut request = self.nl.address().add(msg.header.index, addr, prefix_len);
        *request.message_mut() = msg;
        self.run("add address", &target, request.execute())
    }

    /// Removes `addr/prefix_len` from the link; [`Error::NotFound`] when it
    /// is not there.
    pub fn delete_address(&mut self, link: &str, addr: IpAddr, prefix_len: u8) -> Result<()> {
        let target = format!("{addr}/{prefix_len} on link {link:?}");
        let msg = self.address_msg(link, addr, prefix_len, "delete address", &target)?;
        let request = self.nl.address().del(msg).execute();
        self.run("delete address", &target, request)
    }

    /// The addresses of `link`, or of every link with `None`.
    pub fn addresses(&mut self, link: Option<&str>) -> Result<Vec<Address>> {
        let mut request = self.nl.address().get();
        if let Some(name) = link {
            request = request.set_link_index_filter(self.link_index(name)?);
        }
        let answers = self.run(
            "list",
            "addresses",
            request.execute().try_collect::<Vec<_>>(),
        )?;
        Ok(answers.into_iter().filter_map(address_from).collect())
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
        Ok(match addr {
            IpAddr::V4(a) => AddressMessageBuilder::<std::net::Ipv4Addr>::new()
                .index(index)
                .address(a, prefix_len)
                .build(),
            IpAddr::V6(a) => AddressMessageBuilder::<std::net::Ipv6Addr>::new()
                .index(index)
                .address(a, prefix_len)
                .build(),
        })
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
        let request = self.nl.route().add(msg).execute();
        self.run("add route", &target, request)
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
        let request = self.nl.route().del(msg).execute();
        self.run("delete route", &target, request)
    }

    /// The routes of the main table (IPv4 and IPv6).
    pub fn routes(&mut self) -> Result<Vec<Route>> {
        let mut all = Vec::new();
        // A dump with AF_UNSPEC answers both families.
        let request = self.nl.route().get(RouteMessage::default()).execute();
        all.extend(self.run("list", "routes", request.try_collect::<Vec<_>>())?);
        Ok(all.into_iter().filter_map(route_from).collect())
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

    /// Runs one rtnetlink request on the connection's runtime and waits for
    /// its outcome; `op` and `target` name it in errors.
    fn run<T: Send + 'static>(
        &mut self,
        op: &'static str,
        target: &str,
        request: impl Future<Output = std::result::Result<T, rtnetlink::Error>> + Send + 'static,
    ) -> Result<T> {
        let (tx, rx) = std::sync::mpsc::sync_channel(1);
        self.runtime.spawn(async move {
            let _ = tx.send(request.await);
        });
        let answer = rx.recv_timeout(REQUEST_TIMEOUT).map_err(|e| {
            let kind = match e {
                std::sync::mpsc::RecvTimeoutError::Timeout => std::io::ErrorKind::TimedOut,
                std::sync::mpsc::RecvTimeoutError::Disconnected => std::io::ErrorKind::BrokenPipe,
            };
            Error::io(
                op,
                target,
                std::io::Error::new(kind, "no answer from the kernel"),
            )
        })?;
        match answer {
            // The answers end early when the connection dies: not an ACK.
            Ok(_) if self.closed.load(Ordering::Acquire) => Err(self.closed_error(op, target)),
            Ok(value) => Ok(value),
            Err(rtnetlink::Error::NetlinkError(err)) => match err.code {
                Some(code) => Err(Error::from_errno(
                    op,
                    target,
                    Errno::from_raw(-code.get()),
                    ext_ack_message(self.capped, &err.header),
                )),
                None => Err(Error::Decode {
                    op,
                    target: target.to_string(),
                    message: "an ACK where an answer was expected".into(),
                }),
            },
            Err(rtnetlink::Error::RequestFailed) => Err(self.closed_error(op, target)),
            Err(other) => Err(Error::Decode {
                op,
                target: target.to_string(),
                message: other.to_string(),
            }),
        }
    }

    fn closed_error(&self, op: &'static str, target: &str) -> Error {
        Error::io(
            op,
            target,
            std::io::Error::new(
                std::io::ErrorKind::BrokenPipe,
                "the rtnetlink connection closed",
            ),
        )
    }
}

/// The kernel's extended-ack text from an error message's payload: the
/// request's header (`capped`) or all of the request, then attributes.
fn ext_ack_message(capped: bool, payload: &[u8]) -> Option<String> {
    if payload.len() < 16 {
        return None;
    }
    let request_len = if capped {
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
            ext_ack_message(true, &payload).as_deref(),
            Some("Unknown device type")
        );
        // Uncapped, the request's own length (0 here) is not the 16 bytes
        // echoed, and nothing sensible is read.
        assert_eq!(ext_ack_message(true, &payload[..16]), None);
    }
}
