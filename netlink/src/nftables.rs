//! The migration fence as an nf_tables table, programmed over netlink
//! (`NETLINK_NETFILTER`), so a host needs no `nft` binary.
//!
//! The fence is the table `inet herd_fence` in a network namespace:
//!
//! ```text
//! table inet herd_fence {
//!   chain input  { type filter hook input  priority -300; policy drop; iifname "lo" accept; }
//!   chain output { type filter hook output priority -300; policy drop; oifname "lo" accept; }
//! }
//! ```
//!
//! Everything but loopback is dropped silently in both directions: a SYN
//! from a peer gets no answer at all (no RST), so the peer retransmits
//! until the restored socket is there to answer.
//!
//! nf_tables changes travel as one *batch* (one `sendmsg`): a
//! `NFNL_MSG_BATCH_BEGIN`, the commands, a `NFNL_MSG_BATCH_END`. The kernel
//! applies the whole batch or nothing, and with `NLM_F_ACK` on each command
//! answers one `NLMSG_ERROR` per command (0 = done) once the batch is
//! processed. The sequences used here:
//!
//! * [`fence`]: begin, NEWTABLE (no `NLM_F_EXCL`: no error when it is
//!   there), DELTABLE, NEWTABLE, NEWCHAIN input, NEWCHAIN output, NEWRULE
//!   input, NEWRULE output, end. Fencing a fenced netns replaces the table
//!   atomically (never a moment without it, never a rule twice).
//! * [`unfence`]: begin, NEWTABLE, DELTABLE, end (no error when there was no
//!   fence).
//! * [`is_fenced`]: a GETTABLE request outside any batch; ENOENT means no.
//!
//! The socket is opened by a thread inside the target namespace (see
//! [`crate::netns::run_in_fd`]) and stays bound to it; the calling thread
//! never changes namespace. Attributes follow linux/netfilter/nf_tables.h:
//! integers are big-endian, strings NUL-terminated, nested attributes carry
//! `NLA_F_NESTED`.

use std::ffi::OsStr;
use std::os::fd::{AsFd, AsRawFd, FromRawFd, OwnedFd};
use std::path::Path;

use nix::errno::Errno;

use crate::{netns, Error, Result};

/// The fence's table (family `inet`).
pub const FENCE_TABLE: &str = "herd_fence";
/// Base-chain priority: before conntrack (-200) and every usual filter.
const FENCE_PRIORITY: i32 = -300;

const NETLINK_NETFILTER: libc::c_int = 12;
const NFNL_SUBSYS_NFTABLES: u16 = 10;
const NFNL_MSG_BATCH_BEGIN: u16 = 0x10;
const NFNL_MSG_BATCH_END: u16 = 0x11;
const NFNETLINK_V0: u8 = 0;
const NFPROTO_UNSPEC: u8 = 0;
const NFPROTO_INET: u8 = 1;

const NFT_MSG_NEWTABLE: u16 = 0;
const NFT_MSG_GETTABLE: u16 = 1;
const NFT_MSG_DELTABLE: u16 = 2;
const NFT_MSG_NEWCHAIN: u16 = 3;
const NFT_MSG_NEWRULE: u16 = 6;

const NLM_F_REQUEST: u16 = 0x1;
const NLM_F_ACK: u16 = 0x4;
const NLM_F_CREATE: u16 = 0x400;
const NLM_F_APPEND: u16 = 0x800;
const NLM_F_ACK_TLVS: u16 = 0x200;
const NLM_F_CAPPED: u16 = 0x100;
const NLMSG_ERROR: u16 = 2;
const NLMSG_DONE: u16 = 3;
const NLMSGERR_ATTR_MSG: u16 = 1;
const NLA_F_NESTED: u16 = 0x8000;

const NFTA_TABLE_NAME: u16 = 1;
const NFTA_CHAIN_TABLE: u16 = 1;
const NFTA_CHAIN_NAME: u16 = 3;
const NFTA_CHAIN_HOOK: u16 = 4;
const NFTA_CHAIN_POLICY: u16 = 5;
const NFTA_CHAIN_TYPE: u16 = 7;
const NFTA_HOOK_HOOKNUM: u16 = 1;
const NFTA_HOOK_PRIORITY: u16 = 2;
const NFTA_RULE_TABLE: u16 = 1;
const NFTA_RULE_CHAIN: u16 = 2;
const NFTA_RULE_EXPRESSIONS: u16 = 4;
const NFTA_LIST_ELEM: u16 = 1;
const NFTA_EXPR_NAME: u16 = 1;
const NFTA_EXPR_DATA: u16 = 2;
const NFTA_META_DREG: u16 = 1;
const NFTA_META_KEY: u16 = 2;
const NFTA_CMP_SREG: u16 = 1;
const NFTA_CMP_OP: u16 = 2;
const NFTA_CMP_DATA: u16 = 3;
const NFTA_IMMEDIATE_DREG: u16 = 1;
const NFTA_IMMEDIATE_DATA: u16 = 2;
const NFTA_DATA_VALUE: u16 = 1;
const NFTA_DATA_VERDICT: u16 = 2;
const NFTA_VERDICT_CODE: u16 = 1;

const NF_INET_LOCAL_IN: u32 = 1;
const NF_INET_LOCAL_OUT: u32 = 3;
const NF_DROP: u32 = 0;
const NF_ACCEPT: u32 = 1;
const NFT_META_IIFNAME: u32 = 6;
const NFT_META_OIFNAME: u32 = 7;
const NFT_REG_VERDICT: u32 = 0;
const NFT_REG_1: u32 = 1;
const NFT_CMP_EQ: u32 = 0;
/// IFNAMSIZ: `meta iifname` loads the whole padded name.
const IFNAMSIZ: usize = 16;

/// How long a request waits for the kernel's answer (it always answers;
/// this only keeps a bug from hanging the agent).
const RECV_TIMEOUT_SECS: libc::time_t = 10;

/// Drop everything but loopback in the network namespace at `ns`, both
/// directions, silently (see the module docs). Replaces a fence that is
/// there already.
pub fn fence(ns: &Path) -> Result<()> {
    let mut b = Batch::new();
    b.command(NFT_MSG_NEWTABLE, NLM_F_CREATE, table_attrs);
    b.command(NFT_MSG_DELTABLE, 0, table_attrs);
    b.command(NFT_MSG_NEWTABLE, NLM_F_CREATE, table_attrs);
    for (chain, hook) in [("input", NF_INET_LOCAL_IN), ("output", NF_INET_LOCAL_OUT)] {
        b.command(NFT_MSG_NEWCHAIN, NLM_F_CREATE, |m| {
            m.str(NFTA_CHAIN_TABLE, FENCE_TABLE);
            m.str(NFTA_CHAIN_NAME, chain);
            m.nest(NFTA_CHAIN_HOOK, |h| {
                h.be32(NFTA_HOOK_HOOKNUM, hook);
                h.be32(NFTA_HOOK_PRIORITY, FENCE_PRIORITY as u32);
            });
            m.be32(NFTA_CHAIN_POLICY, NF_DROP);
            m.str(NFTA_CHAIN_TYPE, "filter");
        });
    }
    for (chain, key) in [("input", NFT_META_IIFNAME), ("output", NFT_META_OIFNAME)] {
        b.command(NFT_MSG_NEWRULE, NLM_F_CREATE | NLM_F_APPEND, |m| {
            m.str(NFTA_RULE_TABLE, FENCE_TABLE);
            m.str(NFTA_RULE_CHAIN, chain);
            m.nest(NFTA_RULE_EXPRESSIONS, |l| loopback_accept(l, key));
        });
    }
    let target = target(ns);
    Socket::open_in(ns)?.apply(b, "fence", &target)
}

/// Lift [`fence`]; fine when the namespace has none.
pub fn unfence(ns: &Path) -> Result<()> {
    let mut b = Batch::new();
    b.command(NFT_MSG_NEWTABLE, NLM_F_CREATE, table_attrs);
    b.command(NFT_MSG_DELTABLE, 0, table_attrs);
    let target = target(ns);
    Socket::open_in(ns)?.apply(b, "unfence", &target)
}

/// Whether the namespace at `ns` holds the fence's table now.
pub fn is_fenced(ns: &Path) -> Result<bool> {
    let target = target(ns);
    let mut sock = Socket::open_in(ns)?;
    let mut m = Msg::new(
        nft_type(NFT_MSG_GETTABLE),
        NLM_F_REQUEST | NLM_F_ACK,
        1,
        NFPROTO_INET,
        0,
    );
    table_attrs(&mut m);
    sock.send(&m.finish(), "query fence", &target)?;
    match sock.wait_acks(1, 1, "query fence", &target) {
        Ok(()) => Ok(true),
        Err(e) if e.errno() == Some(Errno::ENOENT) => Ok(false),
        Err(e) => Err(e),
    }
}

fn target(ns: &Path) -> String {
    format!("table inet {FENCE_TABLE} in {}", ns.display())
}

fn table_attrs(m: &mut Msg) {
    m.str(NFTA_TABLE_NAME, FENCE_TABLE);
}

/// `[meta load <key> => reg 1] [cmp eq reg 1 "lo"] [immediate accept]`.
fn loopback_accept(list: &mut Msg, key: u32) {
    let mut lo = [0u8; IFNAMSIZ];
    lo[..2].copy_from_slice(b"lo");
    list.nest(NFTA_LIST_ELEM, |e| {
        e.str(NFTA_EXPR_NAME, "meta");
        e.nest(NFTA_EXPR_DATA, |d| {
            d.be32(NFTA_META_KEY, key);
            d.be32(NFTA_META_DREG, NFT_REG_1);
        });
    });
    list.nest(NFTA_LIST_ELEM, |e| {
        e.str(NFTA_EXPR_NAME, "cmp");
        e.nest(NFTA_EXPR_DATA, |d| {
            d.be32(NFTA_CMP_SREG, NFT_REG_1);
            d.be32(NFTA_CMP_OP, NFT_CMP_EQ);
            d.nest(NFTA_CMP_DATA, |v| v.attr(NFTA_DATA_VALUE, &lo));
        });
    });
    list.nest(NFTA_LIST_ELEM, |e| {
        e.str(NFTA_EXPR_NAME, "immediate");
        e.nest(NFTA_EXPR_DATA, |d| {
            d.be32(NFTA_IMMEDIATE_DREG, NFT_REG_VERDICT);
            d.nest(NFTA_IMMEDIATE_DATA, |v| {
                v.nest(NFTA_DATA_VERDICT, |c| c.be32(NFTA_VERDICT_CODE, NF_ACCEPT));
            });
        });
    });
}

fn nft_type(msg: u16) -> u16 {
    (NFNL_SUBSYS_NFTABLES << 8) | msg
}

/// One netlink message under construction: header, `nfgenmsg`, attributes.
struct Msg {
    buf: Vec<u8>,
}

impl Msg {
    fn new(kind: u16, flags: u16, seq: u32, family: u8, res_id: u16) -> Msg {
        let mut buf = Vec::with_capacity(256);
        buf.extend_from_slice(&0u32.to_ne_bytes()); // length, set by finish
        buf.extend_from_slice(&kind.to_ne_bytes());
        buf.extend_from_slice(&flags.to_ne_bytes());
        buf.extend_from_slice(&seq.to_ne_bytes());
        buf.extend_from_slice(&0u32.to_ne_bytes()); // port id: the kernel
        buf.extend_from_slice(&[family, NFNETLINK_V0]);
        buf.extend_from_slice(&res_id.to_be_bytes());
        Msg { buf }
    }

    fn attr(&mut self, kind: u16, data: &[u8]) {
        let len = 4 + data.len();
        self.buf.extend_from_slice(&(len as u16).to_ne_bytes());
        self.buf.extend_from_slice(&kind.to_ne_bytes());
        self.buf.extend_from_slice(data);
        self.pad();
    }

    fn str(&mut self, kind: u16, s: &str) {
        let mut data = Vec::with_capacity(s.len() + 1);
        data.extend_from_slice(s.as_bytes());
        data.push(0);
        self.attr(kind, &data);
    }

    fn be32(&mut self, kind: u16, v: u32) {
        self.attr(kind, &v.to_be_bytes());
    }

    fn nest(&mut self, kind: u16, f: impl FnOnce(&mut Msg)) {
        let start = self.buf.len();
        self.buf.extend_from_slice(&0u16.to_ne_bytes());
        self.buf
            .extend_from_slice(&(kind | NLA_F_NESTED).to_ne_bytes());
        f(self);
        let len = (self.buf.len() - start) as u16;
        self.buf[start..start + 2].copy_from_slice(&len.to_ne_bytes());
    }

    fn pad(&mut self) {
        while !self.buf.len().is_multiple_of(4) {
            self.buf.push(0);
        }
    }

    fn finish(mut self) -> Vec<u8> {
        let len = self.buf.len() as u32;
        self.buf[..4].copy_from_slice(&len.to_ne_bytes());
        self.buf
    }
}

/// A transaction: begin, commands (each acknowledged), end.
struct Batch {
    buf: Vec<u8>,
    /// Sequence numbers: `first` is the begin message, commands follow.
    next_seq: u32,
    commands: u32,
}

impl Batch {
    fn new() -> Batch {
        let begin = Msg::new(
            NFNL_MSG_BATCH_BEGIN,
            NLM_F_REQUEST,
            1,
            NFPROTO_UNSPEC,
            NFNL_SUBSYS_NFTABLES,
        );
        Batch {
            buf: begin.finish(),
            next_seq: 2,
            commands: 0,
        }
    }

    fn command(&mut self, msg: u16, flags: u16, attrs: impl FnOnce(&mut Msg)) {
        let mut m = Msg::new(
            nft_type(msg),
            NLM_F_REQUEST | NLM_F_ACK | flags,
            self.next_seq,
            NFPROTO_INET,
            0,
        );
        attrs(&mut m);
        self.buf.extend_from_slice(&m.finish());
        self.next_seq += 1;
        self.commands += 1;
    }

    /// The whole batch, end message appended; (bytes, first command's seq).
    fn finish(mut self) -> (Vec<u8>, u32, u32) {
        let end = Msg::new(
            NFNL_MSG_BATCH_END,
            NLM_F_REQUEST,
            self.next_seq,
            NFPROTO_UNSPEC,
            NFNL_SUBSYS_NFTABLES,
        );
        self.buf.extend_from_slice(&end.finish());
        (self.buf, 2, self.commands)
    }
}

/// A `NETLINK_NETFILTER` socket bound to one network namespace.
struct Socket {
    fd: OwnedFd,
}

impl Socket {
    fn open_in(ns: &Path) -> Result<Socket> {
        let ns_fd = netns::open(ns)?;
        netns::run_in_fd(ns_fd.as_fd(), OsStr::new(ns.as_os_str()), Socket::open)?
    }

    fn open() -> Result<Socket> {
        let what = "nf_tables netlink socket";
        // SAFETY: plain socket(2); the descriptor is owned right away.
        let raw = unsafe {
            libc::socket(
                libc::AF_NETLINK,
                libc::SOCK_RAW | libc::SOCK_CLOEXEC,
                NETLINK_NETFILTER,
            )
        };
        if raw < 0 {
            return Err(Error::io("open", what, std::io::Error::last_os_error()));
        }
        // SAFETY: raw is a fresh descriptor nobody else owns.
        let fd = unsafe { OwnedFd::from_raw_fd(raw) };
        let one: libc::c_int = 1;
        // Best effort: the kernel's extended-ack text in errors.
        // SAFETY: option values are valid for their sizes.
        unsafe {
            libc::setsockopt(
                fd.as_raw_fd(),
                libc::SOL_NETLINK,
                libc::NETLINK_EXT_ACK,
                (&one as *const libc::c_int).cast(),
                std::mem::size_of::<libc::c_int>() as libc::socklen_t,
            );
        }
        let timeout = libc::timeval {
            tv_sec: RECV_TIMEOUT_SECS,
            tv_usec: 0,
        };
        // SAFETY: as above.
        let rc = unsafe {
            libc::setsockopt(
                fd.as_raw_fd(),
                libc::SOL_SOCKET,
                libc::SO_RCVTIMEO,
                (&timeout as *const libc::timeval).cast(),
                std::mem::size_of::<libc::timeval>() as libc::socklen_t,
            )
        };
        if rc != 0 {
            return Err(Error::io(
                "set receive timeout",
                what,
                std::io::Error::last_os_error(),
            ));
        }
        Ok(Socket { fd })
    }

    fn send(&mut self, data: &[u8], op: &'static str, target: &str) -> Result<()> {
        // SAFETY: an all-zero sockaddr_nl is valid; family set below.
        let mut kernel: libc::sockaddr_nl = unsafe { std::mem::zeroed() };
        kernel.nl_family = libc::AF_NETLINK as libc::sa_family_t;
        // SAFETY: data and the address are valid for the lengths given.
        let n = unsafe {
            libc::sendto(
                self.fd.as_raw_fd(),
                data.as_ptr().cast(),
                data.len(),
                0,
                (&kernel as *const libc::sockaddr_nl).cast(),
                std::mem::size_of::<libc::sockaddr_nl>() as libc::socklen_t,
            )
        };
        if n < 0 {
            return Err(Error::io(op, target, std::io::Error::last_os_error()));
        }
        if n as usize != data.len() {
            return Err(Error::Decode {
                op,
                target: target.to_string(),
                message: format!("sent {n} of {} bytes", data.len()),
            });
        }
        Ok(())
    }

    fn apply(mut self, batch: Batch, op: &'static str, target: &str) -> Result<()> {
        let (data, first, count) = batch.finish();
        self.send(&data, op, target)?;
        self.wait_acks(first, count, op, target)
    }

    /// Reads until every sequence number in `first..first+count` got its
    /// `NLMSG_ERROR`; the first refusal wins (the kernel dropped the whole
    /// batch then). An error answer to the batch's begin message (seq 1)
    /// fails too.
    fn wait_acks(&mut self, first: u32, count: u32, op: &'static str, target: &str) -> Result<()> {
        let mut acked = vec![false; count as usize];
        let mut refusal: Option<Error> = None;
        let mut buf = vec![0u8; 64 * 1024];
        while acked.iter().any(|a| !a) {
            // SAFETY: buf is valid for its length.
            let n =
                unsafe { libc::recv(self.fd.as_raw_fd(), buf.as_mut_ptr().cast(), buf.len(), 0) };
            if n < 0 {
                return Err(Error::io(op, target, std::io::Error::last_os_error()));
            }
            let mut data = &buf[..n as usize];
            while data.len() >= 16 {
                let len = u32::from_ne_bytes([data[0], data[1], data[2], data[3]]) as usize;
                let kind = u16::from_ne_bytes([data[4], data[5]]);
                let flags = u16::from_ne_bytes([data[6], data[7]]);
                let seq = u32::from_ne_bytes([data[8], data[9], data[10], data[11]]);
                if len < 16 || len > data.len() {
                    return Err(Error::Decode {
                        op,
                        target: target.to_string(),
                        message: format!("message length {len} in {} bytes", data.len()),
                    });
                }
                let payload = &data[16..len];
                data = data.get((len + 3) & !3..).unwrap_or(&[]);
                let slot = seq
                    .checked_sub(first)
                    .and_then(|i| acked.get_mut(i as usize));
                match kind {
                    NLMSG_ERROR => {
                        if payload.len() < 4 {
                            return Err(Error::Decode {
                                op,
                                target: target.to_string(),
                                message: "short error message".into(),
                            });
                        }
                        let code =
                            i32::from_ne_bytes([payload[0], payload[1], payload[2], payload[3]]);
                        if code != 0 && refusal.is_none() {
                            refusal = Some(Error::from_errno(
                                op,
                                target.to_string(),
                                Errno::from_raw(-code),
                                ext_ack_message(flags, &payload[4..]),
                            ));
                        }
                        match slot {
                            Some(a) => *a = true,
                            // The batch itself was refused (begin/end): no
                            // command acks follow.
                            None if code != 0 => acked.iter_mut().for_each(|a| *a = true),
                            None => {}
                        }
                    }
                    NLMSG_DONE => {
                        if let Some(a) = slot {
                            *a = true;
                        }
                    }
                    _ => {} // an answer to a GET, before its ACK
                }
            }
        }
        match refusal {
            Some(e) => Err(e),
            None => Ok(()),
        }
    }
}

/// The kernel's extended-ack text from an error's payload (the request's
/// header, or all of the request unless capped, then attributes).
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

#[cfg(test)]
mod tests {
    use super::*;

    /// Walks `buf` as netlink attributes: (type without flags, nested?, payload).
    fn attrs(mut buf: &[u8]) -> Vec<(u16, bool, &[u8])> {
        let mut out = Vec::new();
        while buf.len() >= 4 {
            let len = u16::from_ne_bytes([buf[0], buf[1]]) as usize;
            let kind = u16::from_ne_bytes([buf[2], buf[3]]);
            assert!(len >= 4 && len <= buf.len(), "attribute length {len}");
            out.push((kind & 0x3fff, kind & NLA_F_NESTED != 0, &buf[4..len]));
            buf = buf.get((len + 3) & !3..).unwrap_or(&[]);
        }
        assert!(buf.is_empty(), "trailing bytes");
        out
    }

    #[test]
    fn a_batch_is_begin_commands_end_with_lengths_and_sequence_numbers() {
        let mut b = Batch::new();
        b.command(NFT_MSG_NEWTABLE, NLM_F_CREATE, table_attrs);
        b.command(NFT_MSG_DELTABLE, 0, table_attrs);
        let (data, first, count) = b.finish();
        assert_eq!((first, count), (2, 2));
        let mut msgs = Vec::new();
        let mut rest = &data[..];
        while !rest.is_empty() {
            let len = u32::from_ne_bytes([rest[0], rest[1], rest[2], rest[3]]) as usize;
            assert_eq!(len % 4, 0);
            let kind = u16::from_ne_bytes([rest[4], rest[5]]);
            let flags = u16::from_ne_bytes([rest[6], rest[7]]);
            let seq = u32::from_ne_bytes([rest[8], rest[9], rest[10], rest[11]]);
            msgs.push((
                kind,
                flags,
                seq,
                rest[16],
                rest[18..20].to_vec(),
                &rest[20..len],
            ));
            rest = &rest[len..];
        }
        let kinds: Vec<u16> = msgs.iter().map(|m| m.0).collect();
        assert_eq!(
            kinds,
            [
                NFNL_MSG_BATCH_BEGIN,
                (10 << 8),
                (10 << 8) | 2,
                NFNL_MSG_BATCH_END
            ]
        );
        let seqs: Vec<u32> = msgs.iter().map(|m| m.2).collect();
        assert_eq!(seqs, [1, 2, 3, 4]);
        // Begin and end name the subsystem (big-endian res_id), no ACK.
        assert_eq!(msgs[0].4, NFNL_SUBSYS_NFTABLES.to_be_bytes());
        assert_eq!(msgs[0].1 & NLM_F_ACK, 0);
        // Commands: inet family, acked; only NEWTABLE creates.
        assert_eq!(msgs[1].3, NFPROTO_INET);
        assert_eq!(msgs[1].1, NLM_F_REQUEST | NLM_F_ACK | NLM_F_CREATE);
        assert_eq!(msgs[2].1, NLM_F_REQUEST | NLM_F_ACK);
        assert_eq!(
            attrs(msgs[1].5),
            [(NFTA_TABLE_NAME, false, &b"herd_fence\0"[..])]
        );
    }

    #[test]
    fn the_loopback_rule_compares_the_padded_name_and_accepts() {
        let mut m = Msg::new(0, 0, 0, 0, 0);
        loopback_accept(&mut m, NFT_META_IIFNAME);
        let body = m.finish();
        let exprs = attrs(&body[20..]);
        assert_eq!(exprs.len(), 3);
        let names: Vec<&[u8]> = exprs
            .iter()
            .map(|(k, nested, e)| {
                assert_eq!((*k, *nested), (NFTA_LIST_ELEM, true));
                attrs(e)[0].2
            })
            .collect();
        assert_eq!(names, [&b"meta\0"[..], b"cmp\0", b"immediate\0"]);
        let meta = attrs(attrs(exprs[0].2)[1].2);
        assert_eq!(
            meta,
            [
                (NFTA_META_KEY, false, &6u32.to_be_bytes()[..]),
                (NFTA_META_DREG, false, &1u32.to_be_bytes()[..])
            ]
        );
        let cmp = attrs(attrs(exprs[1].2)[1].2);
        let value = attrs(cmp[2].2);
        assert_eq!(value[0].0, NFTA_DATA_VALUE);
        assert_eq!(value[0].2.len(), IFNAMSIZ);
        assert_eq!(&value[0].2[..3], b"lo\0");
        let imm = attrs(attrs(exprs[2].2)[1].2);
        let verdict = attrs(attrs(imm[1].2)[0].2);
        assert_eq!(
            verdict,
            [(NFTA_VERDICT_CODE, false, &NF_ACCEPT.to_be_bytes()[..])]
        );
    }
}
