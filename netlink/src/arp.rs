//! Gratuitous ARP: tells a broadcast domain that an IPv4 address now lives at
//! a MAC, so that neighbours and switches (bridges) update at once instead of
//! waiting for their entries to age out. Sent after a migration's restore,
//! never before (see DESIGN.md: an early frame moves the bridge to a target
//! whose sockets do not exist yet).
//!
//! The frames go out through an `AF_PACKET` socket opened in the calling
//! thread's network namespace; to send from a container's namespace, wrap the
//! call in [`crate::netns::run_in`]. The socket is opened with protocol 0, so
//! it receives nothing.

use std::net::Ipv4Addr;
use std::os::fd::{AsRawFd, FromRawFd, OwnedFd};

use nix::errno::Errno;

use crate::mac::format_mac;
use crate::{Error, Result};

/// EtherType of ARP.
pub const ETH_P_ARP: u16 = 0x0806;
/// Length of an Ethernet frame carrying an IPv4-over-Ethernet ARP packet
/// (without padding or FCS).
pub const ARP_FRAME_LEN: usize = 42;
/// ARP operation: request.
pub const ARP_REQUEST: u16 = 1;
/// ARP operation: reply.
pub const ARP_REPLY: u16 = 2;

const BROADCAST: [u8; 6] = [0xff; 6];

/// The Ethernet frame of a gratuitous ARP announcing `ip` at `mac`, sent to
/// the broadcast address. `op` is [`ARP_REQUEST`] (target hardware address
/// zero, as RFC 5227's announcement) or [`ARP_REPLY`] (target hardware
/// address `mac`, as RFC 5944 section 4.6). Sender and target protocol
/// addresses are both `ip`.
pub fn gratuitous_arp_frame(op: u16, ip: Ipv4Addr, mac: [u8; 6]) -> [u8; ARP_FRAME_LEN] {
    let mut f = [0u8; ARP_FRAME_LEN];
    f[0..6].copy_from_slice(&BROADCAST);
    f[6..12].copy_from_slice(&mac);
    f[12..14].copy_from_slice(&ETH_P_ARP.to_be_bytes());
    f[14..16].copy_from_slice(&1u16.to_be_bytes()); // hardware type: Ethernet
    f[16..18].copy_from_slice(&0x0800u16.to_be_bytes()); // protocol: IPv4
    f[18] = 6;
    f[19] = 4;
    f[20..22].copy_from_slice(&op.to_be_bytes());
    f[22..28].copy_from_slice(&mac);
    f[28..32].copy_from_slice(&ip.octets());
    if op == ARP_REPLY {
        f[32..38].copy_from_slice(&mac);
    }
    f[38..42].copy_from_slice(&ip.octets());
    f
}

/// Broadcasts a gratuitous ARP request and a gratuitous ARP reply on
/// `ifname` (in the calling thread's namespace) announcing `ip` at `mac`.
/// The link must be up (else the kernel answers ENETDOWN).
pub fn send_gratuitous_arp(ifname: &str, ip: Ipv4Addr, mac: [u8; 6]) -> Result<()> {
    let op = "send gratuitous ARP";
    let target = format!("{ip} at {} on link {ifname:?}", format_mac(&mac));
    let index = if_index(ifname).map_err(|e| Error::from_errno(op, target.clone(), e, None))?;

    // SAFETY: plain socket(2) call; the result is checked before use.
    let raw = unsafe { libc::socket(libc::AF_PACKET, libc::SOCK_RAW | libc::SOCK_CLOEXEC, 0) };
    if raw < 0 {
        return Err(Error::from_errno(op, target, Errno::last(), None));
    }
    // SAFETY: raw is a fresh descriptor nobody else owns.
    let socket = unsafe { OwnedFd::from_raw_fd(raw) };

    // SAFETY: sockaddr_ll is plain data; all-zero is a valid value.
    let mut addr: libc::sockaddr_ll = unsafe { std::mem::zeroed() };
    addr.sll_family = libc::AF_PACKET as libc::c_ushort;
    addr.sll_protocol = ETH_P_ARP.to_be();
    addr.sll_ifindex = index as libc::c_int;
    addr.sll_halen = 6;
    addr.sll_addr[..6].copy_from_slice(&BROADCAST);

    for arp_op in [ARP_REQUEST, ARP_REPLY] {
        let frame = gratuitous_arp_frame(arp_op, ip, mac);
        // SAFETY: frame and addr are valid for the lengths given.
        let sent = unsafe {
            libc::sendto(
                socket.as_raw_fd(),
                frame.as_ptr().cast(),
                frame.len(),
                0,
                (&addr as *const libc::sockaddr_ll).cast(),
                std::mem::size_of::<libc::sockaddr_ll>() as libc::socklen_t,
            )
        };
        if sent < 0 {
            return Err(Error::from_errno(op, target, Errno::last(), None));
        }
        if sent as usize != frame.len() {
            return Err(Error::Io {
                op,
                target,
                source: std::io::Error::new(
                    std::io::ErrorKind::WriteZero,
                    format!("sent {sent} of {} bytes", frame.len()),
                ),
            });
        }
    }
    tracing::debug!(ifname, %ip, mac = %format_mac(&mac), "sent gratuitous ARP");
    Ok(())
}

/// The index of `ifname` in the calling thread's namespace.
fn if_index(ifname: &str) -> std::result::Result<u32, Errno> {
    let name = std::ffi::CString::new(ifname).map_err(|_| Errno::EINVAL)?;
    // SAFETY: name is a valid NUL-terminated string.
    let index = unsafe { libc::if_nametoindex(name.as_ptr()) };
    if index == 0 {
        Err(Errno::last())
    } else {
        Ok(index)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn frame_layout() {
        let mac = [0x02, 1, 2, 3, 4, 5];
        let ip = Ipv4Addr::new(10, 77, 1, 2);
        let req = gratuitous_arp_frame(ARP_REQUEST, ip, mac);
        assert_eq!(&req[0..6], &[0xff; 6]);
        assert_eq!(&req[6..12], &mac);
        assert_eq!(&req[12..14], &[0x08, 0x06]);
        assert_eq!(&req[14..22], &[0, 1, 8, 0, 6, 4, 0, 1]);
        assert_eq!(&req[22..28], &mac);
        assert_eq!(&req[28..32], &[10, 77, 1, 2]);
        assert_eq!(&req[32..38], &[0; 6]);
        assert_eq!(&req[38..42], &[10, 77, 1, 2]);
        let rep = gratuitous_arp_frame(ARP_REPLY, ip, mac);
        assert_eq!(&rep[20..22], &[0, 2]);
        assert_eq!(&rep[32..38], &mac);
    }

    #[test]
    fn missing_interface_is_not_found() {
        let e = send_gratuitous_arp(
            "herd-nope-x",
            Ipv4Addr::new(10, 77, 0, 1),
            [2, 0, 0, 0, 0, 1],
        )
        .expect_err("no such interface");
        assert!(e.is_not_found(), "{e}");
    }
}
