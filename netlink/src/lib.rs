//! Herd's view of the Linux network stack: named network namespaces, links
//! (bridge, veth, macvlan), addresses and routes over rtnetlink, and
//! gratuitous ARP, and the nf_tables migration fence. Everything is
//! synchronous and talks to the kernel directly; nothing here runs `ip` or
//! `nft`.
//!
//! * [`netns`]: iproute2-compatible named namespaces under `/run/netns`
//!   (`ip netns list` sees ours and we see its), opening `/proc/PID/ns/net`,
//!   and [`netns::run_in`], which runs a closure in a fresh thread that
//!   joined a namespace, so the caller's thread never changes namespace.
//! * [`Handle`]: one rtnetlink socket bound to one namespace (a netlink
//!   socket stays in the namespace it was created in, whichever thread uses
//!   it later). Every request waits for the kernel's ACK and maps its errno
//!   into [`Error`] with the operation and the link or address it was about.
//! * [`arp`]: gratuitous ARP through an `AF_PACKET` socket, sent from the
//!   calling thread's namespace (wrap it in [`netns::run_in`]).
//! * [`mac`]: MAC parsing, formatting and locally administered random MACs.
//! * [`nftables`]: the migration fence (an nf_tables table dropping all but
//!   loopback) put into and taken out of a namespace over `NETLINK_NETFILTER`,
//!   without the `nft` tool.
//!
//! Migration targets must stay silent until the restore (see DESIGN.md):
//! [`Handle::set_ipv6`] disables IPv6 on an interface (or on `default`, for
//! links created afterwards) so that bringing a macvlan up sends no
//! neighbour discovery, and [`arp::send_gratuitous_arp`] is only sent when the
//! caller decides.
//!
//! ```no_run
//! use herd_netlink::{netns, Handle};
//! # fn main() -> herd_netlink::Result<()> {
//! let ns = netns::create("demo")?;
//! let ns_fd = netns::open(&ns)?;
//! let mut host = Handle::new()?;
//! host.add_veth("demo-h", "eth0", Some(std::os::fd::AsFd::as_fd(&ns_fd)))?;
//! let mut inner = Handle::in_netns(&ns)?;
//! inner.add_address("eth0", "10.77.0.2".parse().unwrap(), 24)?;
//! inner.set_up("eth0")?;
//! # Ok(()) }
//! ```

pub mod arp;
mod error;
mod handle;
pub mod mac;
pub mod netns;
pub mod nftables;

pub use error::{Error, Result};
pub use handle::{Address, Handle, Link, Route};
pub use mac::{format_mac, locally_administered_mac, parse_mac, random_locally_administered_mac};
