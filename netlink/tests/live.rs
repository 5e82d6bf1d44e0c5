//! Real-kernel tests (root): namespaces, links, addresses, routes, traffic
//! and gratuitous ARP. Every test uses names with the pid in them, works in
//! namespaces it creates (addresses 10.77.x.x / fd77::), and removes what it
//! made through a drop guard, so a failing assertion still cleans up.

use std::net::{IpAddr, Ipv4Addr, TcpListener, TcpStream};
use std::os::fd::{AsFd, AsRawFd, FromRawFd, OwnedFd};
use std::path::PathBuf;
use std::process::Command;
use std::time::{Duration, Instant};

use herd_netlink::{arp, format_mac, netns, random_locally_administered_mac, Error, Handle};

/// Removes the namespaces and root-namespace links a test made.
#[derive(Default)]
struct Cleanup {
    netns: Vec<String>,
    root_links: Vec<String>,
}

impl Cleanup {
    fn run(&mut self) {
        if let Ok(mut h) = Handle::new() {
            for link in self.root_links.drain(..) {
                match h.delete_link(&link) {
                    Ok(()) => {}
                    Err(e) if e.is_not_found() => {}
                    Err(e) => eprintln!("cleanup: {e}"),
                }
            }
        }
        for name in self.netns.drain(..) {
            if let Err(e) = netns::delete(&name) {
                eprintln!("cleanup: {e}");
            }
        }
    }
}

impl Drop for Cleanup {
    fn drop(&mut self) {
        self.run();
    }
}

fn pid() -> u32 {
    std::process::id()
}

fn ns_name(tag: &str) -> String {
    format!("herdnl-{}-{tag}", pid())
}

/// A link name unique to this process: `tag` (at most 4 bytes) + pid.
fn link_name(tag: &str) -> String {
    format!("{tag}{}", pid())
}

/// Runs `ip` (only to cross-check what the crate did): (success, stdout).
fn ip(args: &[&str]) -> (bool, String) {
    let out = Command::new("ip").args(args).output().expect("run ip");
    (
        out.status.success(),
        String::from_utf8_lossy(&out.stdout).into_owned(),
    )
}

fn ip_netns_names() -> Vec<String> {
    let (ok, out) = ip(&["netns", "list"]);
    assert!(ok, "ip netns list failed");
    out.lines()
        .filter_map(|l| l.split_whitespace().next().map(str::to_string))
        .collect()
}

fn wait_until(what: &str, mut cond: impl FnMut() -> bool) {
    let deadline = Instant::now() + Duration::from_secs(5);
    while !cond() {
        assert!(Instant::now() < deadline, "timed out waiting for {what}");
        std::thread::sleep(Duration::from_millis(20));
    }
}

fn assert_gone(guard: &mut Cleanup, root_links: &[String], namespaces: &[String]) {
    guard.run();
    let listed = ip_netns_names();
    for n in namespaces {
        assert!(!listed.contains(n), "netns {n} left behind");
        assert!(!netns::exists(n));
    }
    for l in root_links {
        wait_until("root link removal", || !ip(&["link", "show", "dev", l]).0);
    }
}

#[test]
fn netns_create_list_delete() {
    if !herd_testkit::require_root("netns_create_list_delete") {
        return;
    }
    let name = ns_name("life");
    let mut guard = Cleanup::default();
    let path = netns::create(&name).expect("create netns");
    guard.netns.push(name.clone());
    assert_eq!(path, PathBuf::from(format!("/run/netns/{name}")));
    assert!(netns::exists(&name));
    assert!(netns::list().expect("list").contains(&name));
    assert!(
        ip_netns_names().contains(&name),
        "ip netns list misses {name}"
    );

    // A second create with the same name is refused, the first survives.
    match netns::create(&name) {
        Err(Error::AlreadyExists { .. }) => {}
        other => panic!("expected AlreadyExists, got {other:?}"),
    }
    assert!(netns::exists(&name));

    // It is a different namespace from ours, and run_in enters it.
    let ours = std::fs::read_link("/proc/thread-self/ns/net").expect("our netns");
    let theirs = netns::run_in(&path, || std::fs::read_link("/proc/thread-self/ns/net"))
        .expect("run_in")
        .expect("read link in netns");
    assert_ne!(ours, theirs);
    assert_eq!(
        std::fs::read_link("/proc/thread-self/ns/net").expect("our netns"),
        ours,
        "the caller's thread changed namespace"
    );
    // Only loopback in a fresh namespace.
    let links = Handle::in_netns(&path)
        .expect("handle")
        .links()
        .expect("links");
    assert_eq!(
        links.iter().map(|l| l.name.as_str()).collect::<Vec<_>>(),
        ["lo"]
    );
    // The pid form opens our own namespace.
    netns::open_pid(pid()).expect("open /proc/PID/ns/net");

    netns::delete(&name).expect("delete");
    assert!(!netns::exists(&name));
    assert!(!ip_netns_names().contains(&name));
    netns::delete(&name).expect("deleting a missing netns is fine");
    assert!(netns::open(&path).is_err_and(|e| e.is_not_found()));
    assert_gone(&mut guard, &[], &[name]);
}

#[test]
fn bridge_veth_traffic_between_root_and_netns() {
    if !herd_testkit::require_root("bridge_veth_traffic_between_root_and_netns") {
        return;
    }
    let (br, va, vb) = (link_name("hbr"), link_name("hva"), link_name("hvb"));
    let name = ns_name("traffic");
    let mut guard = Cleanup::default();
    guard.root_links = vec![br.clone(), va.clone(), vb.clone()];
    let path = netns::create(&name).expect("create netns");
    guard.netns.push(name.clone());
    let ns_fd = netns::open(&path).expect("open netns");

    let subnet = 20 + (pid() % 200) as u8;
    let host_ip = Ipv4Addr::new(10, 77, subnet, 1);
    let ctr_ip = Ipv4Addr::new(10, 77, subnet, 2);
    let mac = random_locally_administered_mac();

    let mut host = Handle::new().expect("root handle");
    host.add_bridge(&br).expect("add bridge");
    host.add_veth(&va, &vb, None).expect("add veth");
    host.set_master(&va, Some(&br)).expect("enslave");
    host.set_netns(&vb, ns_fd.as_fd()).expect("move veth end");

    let bridge = host.link(&br).expect("bridge");
    assert_eq!(bridge.kind.as_deref(), Some("bridge"));
    let port = host.link(&va).expect("veth end");
    assert_eq!(port.kind.as_deref(), Some("veth"));
    assert_eq!(port.master, Some(bridge.index));
    assert!(
        host.link(&vb).is_err_and(|e| e.is_not_found()),
        "moved end still here"
    );

    let mut ctr = Handle::in_netns(&path).expect("netns handle");
    ctr.rename(&vb, "eth0").expect("rename");
    ctr.set_mac("eth0", mac).expect("set MAC");
    let eth0 = ctr.link("eth0").expect("eth0");
    assert_eq!(eth0.mac, Some(mac));
    assert_eq!(eth0.kind.as_deref(), Some("veth"));
    assert!(!eth0.up);
    let (_, shown) = ip(&["-n", &name, "link", "show", "dev", "eth0"]);
    assert!(shown.contains(&format_mac(&mac)), "ip shows {shown}");

    host.add_address(&br, IpAddr::V4(host_ip), 24)
        .expect("host address");
    ctr.add_address("eth0", IpAddr::V4(ctr_ip), 24)
        .expect("ctr address");
    for l in [&br, &va] {
        host.set_up(l).expect("host link up");
    }
    ctr.set_up("lo").expect("lo up");
    ctr.set_up("eth0").expect("eth0 up");
    assert!(ctr.link("eth0").expect("eth0").up);
    ctr.add_default_route(IpAddr::V4(host_ip))
        .expect("default route");

    let addrs = ctr.addresses(Some("eth0")).expect("addresses");
    assert!(addrs
        .iter()
        .any(|a| a.addr == IpAddr::V4(ctr_ip) && a.prefix_len == 24 && a.index == eth0.index));
    let routes = ctr.routes().expect("routes");
    assert!(
        routes
            .iter()
            .any(|r| r.destination.is_none() && r.gateway == Some(IpAddr::V4(host_ip))),
        "{routes:?}"
    );
    let (_, shown) = ip(&["-n", &name, "-4", "route", "show"]);
    assert!(
        shown.contains(&format!("default via {host_ip} dev eth0")),
        "{shown}"
    );
    let (_, shown) = ip(&["-n", &name, "-4", "addr", "show", "dev", "eth0"]);
    assert!(shown.contains(&format!("{ctr_ip}/24")), "{shown}");

    // TCP from the root namespace to a listener inside the netns (a socket
    // stays in the namespace it was made in, whichever thread uses it).
    let inner = netns::run_in(&path, move || TcpListener::bind((ctr_ip, 0)))
        .expect("run_in")
        .expect("listen in netns");
    let inner_addr = inner.local_addr().expect("inner addr");
    let outgoing = TcpStream::connect_timeout(&inner_addr, Duration::from_secs(3))
        .expect("connect into netns");
    let (_, from) = inner.accept().expect("accept in netns");
    assert_eq!(from, outgoing.local_addr().expect("local addr"));
    assert_eq!(from.ip(), IpAddr::V4(host_ip));

    // TCP from inside the namespace to a listener in the root namespace.
    let listener = TcpListener::bind((host_ip, 0)).expect("listen");
    let server = listener.local_addr().expect("local addr");
    let client = netns::run_in(&path, move || {
        TcpStream::connect_timeout(&server, Duration::from_secs(3)).map(|s| s.local_addr())
    })
    .expect("run_in")
    .expect("connect from netns")
    .expect("client addr");
    assert_eq!(client.ip(), IpAddr::V4(ctr_ip));
    let (_, peer) = listener.accept().expect("accept");
    assert_eq!(peer, client);

    // Address removal, twice.
    ctr.delete_address("eth0", IpAddr::V4(ctr_ip), 24)
        .expect("delete address");
    assert!(!ctr
        .addresses(Some("eth0"))
        .expect("addresses")
        .iter()
        .any(|a| a.addr == IpAddr::V4(ctr_ip)));
    assert!(ctr
        .delete_address("eth0", IpAddr::V4(ctr_ip), 24)
        .is_err_and(|e| e.is_not_found()));

    drop(ctr);
    drop(ns_fd);
    let links = guard.root_links.clone();
    assert_gone(&mut guard, &links, &[name]);
}

#[test]
fn veth_peer_created_in_netns_and_macvlan_with_fixed_mac() {
    if !herd_testkit::require_root("veth_peer_created_in_netns_and_macvlan_with_fixed_mac") {
        return;
    }
    let (n1, n2) = (ns_name("mv1"), ns_name("mv2"));
    let mut guard = Cleanup::default();
    let p1 = netns::create(&n1).expect("create ns1");
    guard.netns.push(n1.clone());
    let p2 = netns::create(&n2).expect("create ns2");
    guard.netns.push(n2.clone());
    let fd2 = netns::open(&p2).expect("open ns2");

    let mut h1 = Handle::in_netns(&p1).expect("handle ns1");
    let mut h2 = Handle::in_netns(&p2).expect("handle ns2");
    // A veth whose peer is born in ns2: the parent of the macvlans below.
    h1.add_veth("up0", "up1", Some(fd2.as_fd()))
        .expect("veth across");
    assert!(h1.link("up1").is_err_and(|e| e.is_not_found()));
    assert_eq!(
        h2.link("up1").expect("peer in ns2").kind.as_deref(),
        Some("veth")
    );
    h1.set_up("up0").expect("up0 up");
    let parent = h1.link("up0").expect("up0");

    let mac1 = random_locally_administered_mac();
    let mac2 = random_locally_administered_mac();
    h1.add_macvlan("mv0", "up0", Some(mac1), None)
        .expect("macvlan");
    let mv0 = h1.link("mv0").expect("mv0");
    assert_eq!(mv0.mac, Some(mac1));
    assert_eq!(mv0.kind.as_deref(), Some("macvlan"));
    assert_eq!(mv0.parent, Some(parent.index));
    let (_, shown) = ip(&["-n", &n1, "-d", "link", "show", "dev", "mv0"]);
    assert!(shown.contains(&format_mac(&mac1)), "{shown}");
    assert!(shown.contains("macvlan mode bridge"), "{shown}");

    // Created straight into ns2 while attached to up0 in ns1.
    h1.add_macvlan("mv1", "up0", Some(mac2), Some(fd2.as_fd()))
        .expect("macvlan into ns2");
    assert!(h1.link("mv1").is_err_and(|e| e.is_not_found()));
    let mv1 = h2.link("mv1").expect("mv1 in ns2");
    assert_eq!(mv1.mac, Some(mac2));
    assert_eq!(mv1.kind.as_deref(), Some("macvlan"));

    // Two macvlans of one parent cannot be up with the same MAC.
    h1.set_up("mv0").expect("mv0 up");
    h1.add_macvlan("mv2", "up0", Some(mac1), None)
        .expect("second macvlan");
    match h1.set_up("mv2") {
        Err(Error::AddressInUse { target, .. }) => assert!(target.contains("mv2"), "{target}"),
        other => panic!("expected AddressInUse, got {other:?}"),
    }
    // Missing parent.
    match h1.add_macvlan("mv3", "nope0", None, None) {
        Err(Error::NotFound { target, .. }) => assert!(target.contains("nope0"), "{target}"),
        other => panic!("expected NotFound, got {other:?}"),
    }

    drop((h1, h2, fd2));
    assert_gone(&mut guard, &[], &[n1, n2]);
}

#[test]
fn kernel_refusals_are_typed() {
    if !herd_testkit::require_root("kernel_refusals_are_typed") {
        return;
    }
    let missing = link_name("hzz");
    let mut host = Handle::new().expect("root handle");
    match host.delete_link(&missing) {
        Err(Error::NotFound { target, errno, .. }) => {
            assert!(target.contains(&missing), "{target}");
            assert_eq!(errno, nix::errno::Errno::ENODEV);
        }
        other => panic!("expected NotFound, got {other:?}"),
    }
    assert!(host.link(&missing).is_err_and(|e| e.is_not_found()));
    assert!(host.set_up(&missing).is_err_and(|e| e.is_not_found()));
    let e = host.rename(&missing, "x").expect_err("missing link");
    assert!(e.to_string().contains(&missing), "{e}");

    let name = ns_name("errs");
    let mut guard = Cleanup::default();
    let path = netns::create(&name).expect("create netns");
    guard.netns.push(name.clone());
    let mut h = Handle::in_netns(&path).expect("handle");
    h.add_bridge("br0").expect("bridge");
    match h.add_bridge("br0") {
        Err(Error::AlreadyExists { target, .. }) => assert!(target.contains("br0")),
        other => panic!("expected AlreadyExists, got {other:?}"),
    }
    let a: IpAddr = "10.77.9.1".parse().expect("ip");
    h.add_address("br0", a, 24).expect("address");
    assert!(h
        .add_address("br0", a, 24)
        .is_err_and(|e| e.is_already_exists()));
    assert!(matches!(
        h.add_address("br0", a, 33),
        Err(Error::Invalid { .. })
    ));
    // No route to the gateway: a plain kernel error with its errno.
    match h.add_default_route("10.77.200.1".parse().expect("ip")) {
        Err(e @ Error::Kernel { .. }) if e.to_string().contains("10.77.200.1") => {
            eprintln!("kernel refusal reads: {e}");
            let Error::Kernel { errno, message, .. } = e else {
                unreachable!()
            };
            assert_eq!(errno, nix::errno::Errno::ENETUNREACH);
            // The kernel's extended-ack text comes along.
            assert!(message.is_some_and(|m| !m.is_empty()), "no extended ack");
        }
        other => panic!("expected ENETUNREACH, got {other:?}"),
    }
    // On-link route, then deleting it twice.
    let dest = Some(("10.77.10.0".parse().expect("ip"), 24));
    h.set_up("br0").expect("up");
    h.add_route(dest, None, Some("br0")).expect("on-link route");
    assert!(h
        .add_route(dest, None, Some("br0"))
        .is_err_and(|e| e.is_already_exists()));
    h.delete_route(dest, None, Some("br0"))
        .expect("delete route");
    assert!(h
        .delete_route(dest, None, Some("br0"))
        .is_err_and(|e| e.is_not_found()));
    h.delete_link("br0").expect("delete bridge");
    assert!(h.delete_link("br0").is_err_and(|e| e.is_not_found()));

    drop(h);
    assert_gone(&mut guard, &[], &[name]);
}

#[test]
fn ipv6_can_be_disabled_per_link() {
    if !herd_testkit::require_root("ipv6_can_be_disabled_per_link") {
        return;
    }
    let name = ns_name("v6");
    let mut guard = Cleanup::default();
    let path = netns::create(&name).expect("create netns");
    guard.netns.push(name.clone());
    let mut h = Handle::in_netns(&path).expect("handle");
    h.add_veth("s0", "s1", None).expect("veth");
    h.set_ipv6("s0", false).expect("disable IPv6 on s0");
    h.set_up("s0").expect("s0 up");
    h.set_up("s1").expect("s1 up");

    let (_, value) = ip(&[
        "netns",
        "exec",
        &name,
        "cat",
        "/proc/sys/net/ipv6/conf/s0/disable_ipv6",
    ]);
    assert_eq!(value.trim(), "1");
    let v6 = |h: &mut Handle, link: &str| {
        h.addresses(Some(link))
            .expect("addresses")
            .into_iter()
            .filter(|a| a.addr.is_ipv6())
            .count()
    };
    // s1 gets its link-local address at once; s0 gets none.
    wait_until("s1 link-local", || v6(&mut h, "s1") > 0);
    assert_eq!(v6(&mut h, "s0"), 0);

    // v6 addresses: add, list, delete.
    let a: IpAddr = "fd77::1".parse().expect("ip");
    h.add_address("s1", a, 64).expect("v6 address");
    assert!(h
        .addresses(Some("s1"))
        .expect("addresses")
        .iter()
        .any(|x| x.addr == a && x.prefix_len == 64));
    h.delete_address("s1", a, 64).expect("delete v6");

    h.set_ipv6("s0", true).expect("enable IPv6");
    let (_, value) = ip(&[
        "netns",
        "exec",
        &name,
        "cat",
        "/proc/sys/net/ipv6/conf/s0/disable_ipv6",
    ]);
    assert_eq!(value.trim(), "0");
    assert!(h.set_ipv6("nope0", false).is_err_and(|e| e.is_not_found()));

    drop(h);
    assert_gone(&mut guard, &[], &[name]);
}

/// An AF_PACKET socket receiving ARP frames on `ifname`, opened in the
/// calling thread's namespace.
fn arp_listener(ifname: &str) -> std::io::Result<OwnedFd> {
    let proto = arp::ETH_P_ARP.to_be() as libc::c_int;
    // SAFETY: plain socket(2); checked below.
    let raw = unsafe { libc::socket(libc::AF_PACKET, libc::SOCK_RAW | libc::SOCK_CLOEXEC, proto) };
    if raw < 0 {
        return Err(std::io::Error::last_os_error());
    }
    // SAFETY: fresh descriptor.
    let fd = unsafe { OwnedFd::from_raw_fd(raw) };
    let cname = std::ffi::CString::new(ifname).map_err(std::io::Error::other)?;
    // SAFETY: valid C string.
    let index = unsafe { libc::if_nametoindex(cname.as_ptr()) };
    if index == 0 {
        return Err(std::io::Error::last_os_error());
    }
    // SAFETY: zeroed sockaddr_ll is valid.
    let mut addr: libc::sockaddr_ll = unsafe { std::mem::zeroed() };
    addr.sll_family = libc::AF_PACKET as u16;
    addr.sll_protocol = arp::ETH_P_ARP.to_be();
    addr.sll_ifindex = index as i32;
    // SAFETY: addr is a valid sockaddr_ll of the given size.
    let rc = unsafe {
        libc::bind(
            fd.as_raw_fd(),
            (&addr as *const libc::sockaddr_ll).cast(),
            std::mem::size_of::<libc::sockaddr_ll>() as u32,
        )
    };
    if rc != 0 {
        return Err(std::io::Error::last_os_error());
    }
    let tv = libc::timeval {
        tv_sec: 0,
        tv_usec: 200_000,
    };
    // SAFETY: valid timeval.
    let rc = unsafe {
        libc::setsockopt(
            fd.as_raw_fd(),
            libc::SOL_SOCKET,
            libc::SO_RCVTIMEO,
            (&tv as *const libc::timeval).cast(),
            std::mem::size_of::<libc::timeval>() as u32,
        )
    };
    if rc != 0 {
        return Err(std::io::Error::last_os_error());
    }
    Ok(fd)
}

#[test]
fn gratuitous_arp_reaches_the_peer() {
    if !herd_testkit::require_root("gratuitous_arp_reaches_the_peer") {
        return;
    }
    let (na, nb) = (ns_name("arpa"), ns_name("arpb"));
    let mut guard = Cleanup::default();
    let pa = netns::create(&na).expect("create a");
    guard.netns.push(na.clone());
    let pb = netns::create(&nb).expect("create b");
    guard.netns.push(nb.clone());
    let fdb = netns::open(&pb).expect("open b");
    let mut ha = Handle::in_netns(&pa).expect("handle a");
    let mut hb = Handle::in_netns(&pb).expect("handle b");
    ha.add_veth("ga0", "gb0", Some(fdb.as_fd())).expect("veth");
    // Quiet links: no IPv6 chatter on either side.
    ha.set_ipv6("ga0", false).expect("no v6 a");
    hb.set_ipv6("gb0", false).expect("no v6 b");
    ha.set_up("ga0").expect("up a");
    hb.set_up("gb0").expect("up b");
    wait_until("carrier", || {
        ha.link("ga0").map(|l| l.lower_up).unwrap_or(false)
    });

    let listener = netns::run_in(&pb, || arp_listener("gb0"))
        .expect("run_in b")
        .expect("packet socket in b");
    // A MAC and IP that belong to no interface: only our frames carry them.
    let mac = random_locally_administered_mac();
    let own = ha.link("ga0").expect("ga0").mac;
    assert_ne!(Some(mac), own);
    let ip = Ipv4Addr::new(10, 77, 5, (pid() % 250) as u8 + 2);
    netns::run_in(&pa, || arp::send_gratuitous_arp("ga0", ip, mac))
        .expect("run_in a")
        .expect("send");

    let mut seen = [false; 2];
    let deadline = Instant::now() + Duration::from_secs(3);
    let mut buf = [0u8; 1600];
    while seen != [true, true] && Instant::now() < deadline {
        // SAFETY: buf is valid for its length.
        let n = unsafe { libc::recv(listener.as_raw_fd(), buf.as_mut_ptr().cast(), buf.len(), 0) };
        if n < (arp::ARP_FRAME_LEN as isize) {
            continue;
        }
        let f = &buf[..n as usize];
        let op = u16::from_be_bytes([f[20], f[21]]);
        if f[0..6] == [0xff; 6]
            && f[6..12] == mac
            && f[12..14] == [0x08, 0x06]
            && f[22..28] == mac
            && f[28..32] == ip.octets()
            && f[38..42] == ip.octets()
            && (op == arp::ARP_REQUEST || op == arp::ARP_REPLY)
        {
            seen[usize::from(op - 1)] = true;
        }
    }
    assert_eq!(
        seen,
        [true, true],
        "gratuitous ARP request/reply not seen in b"
    );

    // Sending on a link that is down fails with the kernel's errno.
    ha.set_down("ga0").expect("down a");
    let e = netns::run_in(&pa, || arp::send_gratuitous_arp("ga0", ip, mac))
        .expect("run_in a")
        .expect_err("link down");
    assert_eq!(e.errno(), Some(nix::errno::Errno::ENETDOWN), "{e}");

    drop((ha, hb, fdb, listener));
    assert_gone(&mut guard, &[], &[na, nb]);
}

/// A namespace file that cannot be opened as a namespace (here: a plain file
/// left at its path) must not keep `delete_with_links` from removing it.
#[test]
fn delete_with_links_removes_a_name_whose_links_cannot_be_read() {
    if !herd_testkit::require_root("delete_with_links_removes_a_name_whose_links_cannot_be_read") {
        return;
    }
    let name = ns_name("bogus");
    let p = PathBuf::from("/run/netns").join(&name);
    std::fs::create_dir_all("/run/netns").expect("mkdir /run/netns");
    std::fs::write(&p, b"").expect("write a plain file where the netns would be");
    assert!(
        netns::open(&p).is_err(),
        "a plain file must not open as a netns"
    );
    netns::delete_with_links(&name).expect("delete_with_links of an unreadable netns");
    assert!(!p.exists(), "{} still there", p.display());
}
