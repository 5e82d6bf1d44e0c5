//! The nf_tables fence on a real kernel (root): two namespaces joined by a
//! veth pair, "inside" (the container's netns, the one fenced) and
//! "outside" (a peer). While the fence is up, a SYN from outside gets no
//! answer at all (a closed port answers no RST, an open one no SYN-ACK),
//! inside cannot send out, and loopback inside still works; after the fence
//! is lifted both ports answer again.

use std::io::{ErrorKind, Read, Write};
use std::net::{Ipv4Addr, SocketAddr, TcpListener, TcpStream};
use std::os::fd::AsFd;
use std::path::{Path, PathBuf};
use std::process::Command;
use std::time::Duration;

use herd_netlink::{netns, nftables, Handle};

const INSIDE: Ipv4Addr = Ipv4Addr::new(10, 77, 250, 2);
const OUTSIDE: Ipv4Addr = Ipv4Addr::new(10, 77, 250, 1);
/// Long enough for a reply on an idle veth, short enough to keep the test
/// quick; a dropped SYN never gets one however long we wait.
const PROBE: Duration = Duration::from_millis(1500);

struct Ns(Vec<String>);

impl Drop for Ns {
    fn drop(&mut self) {
        for n in self.0.drain(..) {
            if let Err(e) = netns::delete_with_links(&n) {
                eprintln!("cleanup: {e}");
            }
        }
    }
}

fn setup(tag: &str) -> (Ns, PathBuf, PathBuf) {
    let pid = std::process::id();
    let inside_name = format!("herdfn-{pid}-{tag}-in");
    let outside_name = format!("herdfn-{pid}-{tag}-out");
    let mut guard = Ns(Vec::new());
    let inside = netns::create(&inside_name).expect("create inside netns");
    guard.0.push(inside_name);
    let outside = netns::create(&outside_name).expect("create outside netns");
    guard.0.push(outside_name);
    let in_fd = netns::open(&inside).expect("open inside");
    let mut o = Handle::in_netns(&outside).expect("netlink outside");
    o.add_veth("peer", "eth0", Some(in_fd.as_fd()))
        .expect("veth pair");
    o.add_address("peer", OUTSIDE.into(), 24).expect("address");
    o.set_up("peer").expect("up");
    o.set_up("lo").expect("lo up");
    let mut i = Handle::in_netns(&inside).expect("netlink inside");
    i.add_address("eth0", INSIDE.into(), 24).expect("address");
    i.set_up("eth0").expect("up");
    i.set_up("lo").expect("lo up");
    (guard, inside, outside)
}

fn listen_in(ns: &Path, addr: SocketAddr) -> TcpListener {
    let l = netns::run_in(ns, || TcpListener::bind(addr))
        .expect("enter netns")
        .expect("bind");
    // Accept and close whatever arrives, so connects complete.
    let l2 = l.try_clone().expect("clone listener");
    std::thread::spawn(move || {
        for s in l2.incoming().flatten() {
            drop(s);
        }
    });
    l
}

/// A TCP connect from a thread in `ns`: Ok, or the error's kind.
fn connect_from(ns: &Path, to: SocketAddr) -> Result<(), ErrorKind> {
    netns::run_in(ns, || TcpStream::connect_timeout(&to, PROBE))
        .expect("enter netns")
        .map(drop)
        .map_err(|e| e.kind())
}

/// Cross-check with the nft tool when this host has it.
fn nft_list(ns: &Path) -> Option<String> {
    let name = ns.file_name()?.to_str()?;
    let out = Command::new("ip")
        .args(["netns", "exec", name, "nft", "list", "table", "inet"])
        .arg(nftables::FENCE_TABLE)
        .output()
        .ok()?;
    out.status
        .success()
        .then(|| String::from_utf8_lossy(&out.stdout).into_owned())
}

#[test]
fn a_fenced_netns_drops_everything_but_loopback_and_answers_again_after() {
    if !herd_testkit::require_root(
        "a_fenced_netns_drops_everything_but_loopback_and_answers_again_after",
    ) {
        return;
    }
    let (_guard, inside, outside) = setup("io");
    let open = SocketAddr::from((INSIDE, 7070));
    let closed = SocketAddr::from((INSIDE, 7071));
    let _l = listen_in(&inside, open);
    let _lo = listen_in(&inside, SocketAddr::from((Ipv4Addr::LOCALHOST, 7072)));
    let _peer = listen_in(&outside, SocketAddr::from((OUTSIDE, 7073)));

    // Before: the open port answers, the closed one resets.
    assert_eq!(connect_from(&outside, open), Ok(()));
    assert_eq!(
        connect_from(&outside, closed),
        Err(ErrorKind::ConnectionRefused)
    );
    assert!(!nftables::is_fenced(&inside).expect("query"));

    nftables::fence(&inside).expect("fence");
    assert!(nftables::is_fenced(&inside).expect("query"));
    assert!(
        !nftables::is_fenced(&outside).expect("query"),
        "the fence leaked into another netns"
    );
    // Dropped, not reset: no RST from the closed port, no SYN-ACK from the open one.
    assert_eq!(connect_from(&outside, open), Err(ErrorKind::TimedOut));
    assert_eq!(connect_from(&outside, closed), Err(ErrorKind::TimedOut));
    // Nothing leaves either; loopback inside still works.
    assert!(connect_from(&inside, SocketAddr::from((OUTSIDE, 7073))).is_err());
    assert_eq!(
        connect_from(&inside, SocketAddr::from((Ipv4Addr::LOCALHOST, 7072))),
        Ok(())
    );
    if let Some(listing) = nft_list(&inside) {
        for want in [
            "policy drop",
            "iifname \"lo\" accept",
            "oifname \"lo\" accept",
        ] {
            assert!(
                listing.contains(want),
                "nft sees no {want:?} in:\n{listing}"
            );
        }
        assert_eq!(listing.matches("accept").count(), 2, "{listing}");
    }

    // Fencing again replaces the table: still one rule per chain.
    nftables::fence(&inside).expect("fence again");
    if let Some(listing) = nft_list(&inside) {
        assert_eq!(listing.matches("accept").count(), 2, "{listing}");
    }

    nftables::unfence(&inside).expect("unfence");
    assert!(!nftables::is_fenced(&inside).expect("query"));
    assert_eq!(connect_from(&outside, open), Ok(()));
    assert_eq!(
        connect_from(&outside, closed),
        Err(ErrorKind::ConnectionRefused)
    );
    assert_eq!(
        connect_from(&inside, SocketAddr::from((OUTSIDE, 7073))),
        Ok(())
    );
    // Lifting a fence that is not there is fine.
    nftables::unfence(&inside).expect("unfence without a fence");
}

#[test]
fn an_established_connection_survives_the_fence_without_a_reset() {
    if !herd_testkit::require_root("an_established_connection_survives_the_fence_without_a_reset") {
        return;
    }
    let (_guard, inside, outside) = setup("est");
    let addr = SocketAddr::from((INSIDE, 7080));
    let l = netns::run_in(&inside, || TcpListener::bind(addr))
        .expect("enter netns")
        .expect("bind");
    let server = std::thread::spawn(move || {
        let (mut s, _) = l.accept().expect("accept");
        let mut buf = [0u8; 64];
        let mut got = Vec::new();
        while got.len() < 2 {
            let n = s.read(&mut buf).expect("server read");
            assert!(n > 0, "client closed early");
            got.extend_from_slice(&buf[..n]);
        }
        got
    });
    let mut c = netns::run_in(&outside, || TcpStream::connect_timeout(&addr, PROBE))
        .expect("enter netns")
        .expect("connect");
    c.write_all(b"a").expect("write before the fence");
    nftables::fence(&inside).expect("fence");
    // Sent while fenced: dropped, retransmitted by the client's kernel
    // after the fence is lifted; the connection is not reset.
    c.write_all(b"b").expect("write while fenced");
    std::thread::sleep(Duration::from_millis(300));
    nftables::unfence(&inside).expect("unfence");
    let got = server.join().expect("server thread");
    assert_eq!(got, b"ab");
}

#[test]
fn a_path_that_is_no_netns_is_refused() {
    let e = nftables::fence(Path::new("/proc/self/status")).expect_err("not a netns");
    assert!(e.to_string().contains("not a network namespace"), "{e}");
    assert!(nftables::is_fenced(Path::new("/nonexistent/netns")).is_err());
}
