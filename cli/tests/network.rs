//! Network identity across migrations (a lab of 3, real CRIU, real TCP):
//! a container keeps its IP and MAC, and its connections go on answering,
//! with no reconnect and no line lost or out of order.

mod common;

use std::io::{BufRead, BufReader, Write};
use std::net::{Ipv4Addr, SocketAddr, TcpListener, UdpSocket};
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::sync::Arc;
use std::time::Duration;

use common::{
    import_busybox_with_work, migrate_json, restart_with_fault, text, wait_for, Lab, Pinger,
};
use serde_json::Value;

fn addr_of(lab: &Lab, name: &str) -> (String, String, String) {
    let c = lab
        .container(name)
        .unwrap_or_else(|| panic!("{name} not listed"));
    let s = |k: &str| {
        c[k].as_str()
            .unwrap_or_else(|| panic!("ps --json has no {k} for {name}: {c}"))
            .to_string()
    };
    (s("node"), s("ip"), s("mac"))
}

fn gateway(lab: &Lab) -> Ipv4Addr {
    let v: Value = serde_json::from_str(&lab.ok(&["network", "ls", "--json"])).expect("json");
    v.as_array()
        .and_then(|a| a.iter().find(|n| n["name"] == "lab"))
        .and_then(|n| n["gateway"].as_str())
        .and_then(|g| g.parse().ok())
        .unwrap_or_else(|| panic!("no lab network with a gateway: {v}"))
}

fn log(lab: &Lab, name: &str) -> String {
    lab.ok(&["logs", name])
}

#[test]
fn tcp_and_udp_survive_three_hosts_with_the_same_ip_and_mac() {
    let Some(lab) = Lab::up("net_hop", "hnet1", 3) else {
        return;
    };
    import_busybox_with_work(&lab);
    lab.ok(&[
        "run",
        "--node",
        "n1",
        "--name",
        "echo",
        "--net",
        "lab",
        "busybox",
        "--",
        "/bin/herd-work",
        "echo",
        "--port",
        "7000",
    ]);
    let (node, ip, mac) = addr_of(&lab, "echo");
    assert_eq!(node, "n1");
    let ip4: Ipv4Addr = ip.parse().expect("ip");
    let pinger = Pinger::start(SocketAddr::from((ip4, 7000)));
    pinger.wait_more(10);

    // UDP alongside: datagrams every 50 ms, answers counted.
    let udp = UdpSocket::bind("0.0.0.0:0").expect("udp bind");
    udp.set_read_timeout(Some(Duration::from_millis(200))).ok();
    let udp_ok = Arc::new(AtomicU64::new(0));
    let udp_stop = Arc::new(AtomicBool::new(false));
    let udp_thread = {
        let (ok, stop) = (udp_ok.clone(), udp_stop.clone());
        std::thread::spawn(move || {
            let mut buf = [0u8; 64];
            let mut i = 0u64;
            while !stop.load(Ordering::Relaxed) {
                i += 1;
                let _ = udp.send_to(format!("u{i}").as_bytes(), (ip4, 7000));
                if let Ok((n, _)) = udp.recv_from(&mut buf) {
                    if n > 1 && buf[0] == b'u' {
                        ok.fetch_add(1, Ordering::Relaxed);
                    }
                }
                std::thread::sleep(Duration::from_millis(50));
            }
        })
    };

    let mut gaps = Vec::new();
    for to in ["n2", "n3"] {
        let r = migrate_json(&lab, "echo", to);
        let (node, ip2, mac2) = addr_of(&lab, "echo");
        assert_eq!(node, to);
        assert_eq!((ip2.as_str(), mac2.as_str()), (ip.as_str(), mac.as_str()));
        let udp_before = udp_ok.load(Ordering::Relaxed);
        pinger.wait_more(10);
        assert!(
            wait_for(10, || (udp_ok.load(Ordering::Relaxed) > udp_before + 5)
                .then_some(()))
            .is_some(),
            "UDP answers stopped after the move to {to}"
        );
        gaps.push(r["frozen_ms"].as_f64().unwrap_or(0.0));
    }
    let (lines, maxgap) = pinger.finish();
    udp_stop.store(true, Ordering::Relaxed);
    let _ = udp_thread.join();
    eprintln!(
        "tcp: {lines} lines answered in order over 2 moves; longest gap {} ms; frozen {gaps:?} ms",
        maxgap.as_millis()
    );
    // One connection for the whole run: the server never saw a reconnect.
    let l = log(&lab, "echo");
    assert_eq!(l.matches("accepted").count(), 1, "{l}");
}

#[test]
fn connections_out_of_and_between_migrating_containers_hold() {
    let Some(lab) = Lab::up("net_out", "hnet2", 3) else {
        return;
    };
    import_busybox_with_work(&lab);
    // A server outside (in the root netns, on the lab bridge).
    let gw = gateway(&lab);
    let listener = TcpListener::bind((gw, 0)).expect("bind on the lab bridge");
    let port = listener.local_addr().expect("addr").port();
    let accepted = Arc::new(AtomicU64::new(0));
    {
        let accepted = accepted.clone();
        std::thread::spawn(move || {
            for s in listener.incoming().flatten() {
                accepted.fetch_add(1, Ordering::Relaxed);
                std::thread::spawn(move || {
                    let mut w = match s.try_clone() {
                        Ok(w) => w,
                        Err(_) => return,
                    };
                    let mut line = String::new();
                    let mut r = BufReader::new(s);
                    while matches!(r.read_line(&mut line), Ok(k) if k > 0) {
                        if w.write_all(line.as_bytes()).is_err() {
                            break;
                        }
                        line.clear();
                    }
                });
            }
        });
    }
    let outside = format!("{gw}:{port}");
    lab.ok(&[
        "run",
        "--node",
        "n1",
        "--name",
        "out",
        "--net",
        "lab",
        "busybox",
        "--",
        "/bin/herd-work",
        "client",
        "--connect",
        &outside,
    ]);
    // Two containers talking across hosts: the OLTP server and its client.
    lab.ok(&[
        "run",
        "--node",
        "n1",
        "--name",
        "srv",
        "--net",
        "lab",
        "busybox",
        "--",
        "/bin/herd-work",
        "echo",
        "--port",
        "7001",
    ]);
    let (_, srv_ip, _) = addr_of(&lab, "srv");
    let srv = format!("{srv_ip}:7001");
    wait_for(10, || log(&lab, "srv").contains("listening").then_some(())).expect("srv listens");
    lab.ok(&[
        "run",
        "--node",
        "n2",
        "--name",
        "cli",
        "--net",
        "lab",
        "busybox",
        "--",
        "/bin/herd-work",
        "client",
        "--connect",
        &srv,
    ]);
    let oks = |name: &str| -> u64 {
        let l = log(&lab, name);
        assert!(!l.contains("error"), "{name} lost its connection:\n{l}");
        l.lines()
            .rev()
            .find_map(|x| {
                x.strip_prefix("ok n=")?
                    .split_whitespace()
                    .next()?
                    .parse()
                    .ok()
            })
            .unwrap_or(0)
    };
    let grows = |name: &str| {
        let from = oks(name);
        wait_for(15, || (oks(name) > from + 20).then_some(()))
            .unwrap_or_else(|| panic!("{name} stopped making progress:\n{}", log(&lab, name)));
    };
    grows("out");
    grows("cli");
    for (name, to) in [("out", "n2"), ("srv", "n3"), ("cli", "n1"), ("out", "n3")] {
        migrate_json(&lab, name, to);
        grows("out");
        grows("cli");
    }
    assert_eq!(
        accepted.load(Ordering::Relaxed),
        1,
        "the outside server saw a reconnect"
    );
    let l = log(&lab, "srv");
    assert_eq!(
        l.matches("accepted").count(),
        1,
        "srv saw a reconnect:\n{l}"
    );
    for name in ["out", "cli"] {
        let l = log(&lab, name);
        assert_eq!(
            l.matches("connected").count(),
            1,
            "{name} reconnected:\n{l}"
        );
    }
}

#[test]
fn bad_network_input_is_refused_and_creates_nothing() {
    let Some(lab) = Lab::up("net_bad", "hnet3", 2) else {
        return;
    };
    import_busybox_with_work(&lab);
    let fails = |args: &[&str], want: &str| {
        let o = lab.herd(args);
        assert!(!o.status.success(), "{args:?} succeeded: {}", text(&o));
        let t = text(&o);
        assert!(
            t.contains(want),
            "{args:?}: the error does not say {want:?}: {t}"
        );
    };
    // A missing uplink: on no node afterwards.
    fails(
        &[
            "network",
            "create",
            "x",
            "--subnet",
            "10.99.0.0/24",
            "--parent-if",
            "nope0",
        ],
        "nope0",
    );
    fails(
        &[
            "network",
            "create",
            "x",
            "--subnet",
            "10.99.0.0/33",
            "--parent-if",
            "eth0",
        ],
        "prefix",
    );
    let ls = lab.ok(&["network", "ls"]);
    assert!(!ls.lines().any(|l| l.starts_with("x ")), "{ls}");
    // An unknown network, an address in use, one outside the subnet.
    fails(
        &[
            "run", "--name", "a", "--net", "nosuch", "busybox", "--", "sleep", "60",
        ],
        "nosuch",
    );
    lab.ok(&[
        "run", "--node", "n1", "--name", "b", "--net", "lab", "busybox", "--", "sleep", "60",
    ]);
    let (_, ip, _) = addr_of(&lab, "b");
    fails(
        &[
            "run", "--node", "n2", "--name", "c", "--net", "lab", "--ip", &ip, "busybox", "--",
            "sleep", "60",
        ],
        "in use",
    );
    fails(
        &[
            "run",
            "--name",
            "d",
            "--net",
            "lab",
            "--ip",
            "192.0.2.7",
            "busybox",
            "--",
            "sleep",
            "60",
        ],
        "192.0.2.7",
    );
    let ps = lab.ps_json();
    let names: Vec<&str> = ps
        .as_array()
        .expect("array")
        .iter()
        .filter_map(|c| c["name"].as_str())
        .collect();
    assert_eq!(names, vec!["b"], "{ps}");
    // Two without --ip get different addresses; a network in use stays.
    lab.ok(&[
        "run", "--node", "n2", "--name", "e", "--net", "lab", "busybox", "--", "sleep", "60",
    ]);
    let (_, ip_e, mac_e) = addr_of(&lab, "e");
    let (_, _, mac_b) = addr_of(&lab, "b");
    assert_ne!(ip_e, ip);
    assert_ne!(mac_e, mac_b);
    fails(&["network", "rm", "lab"], "used by");
    // A removed container's address and MAC are free at once on the same
    // node, even while a client holds a connection to it (the kernel frees
    // a dropped netns's links later, asynchronously).
    lab.ok(&[
        "run",
        "--node",
        "n1",
        "--name",
        "srv",
        "--net",
        "lab",
        "busybox",
        "--",
        "/bin/herd-work",
        "echo",
        "--port",
        "7000",
    ]);
    let (_, ip_srv, mac_srv) = addr_of(&lab, "srv");
    let pinger = Pinger::start(format!("{ip_srv}:7000").parse().unwrap());
    pinger.wait_more(5);
    lab.ok(&["rm", "-f", "srv"]);
    lab.ok(&[
        "run", "--node", "n1", "--name", "srv2", "--net", "lab", "--ip", &ip_srv, "busybox", "--",
        "sleep", "60",
    ]);
    assert_eq!(addr_of(&lab, "srv2").2, mac_srv, "same address, same MAC");
    drop(pinger);
    lab.ok(&["rm", "-f", "b"]);
    lab.ok(&[
        "run", "--node", "n1", "--name", "b2", "--net", "lab", "--ip", &ip, "busybox", "--",
        "sleep", "60",
    ]);
    assert_eq!(addr_of(&lab, "b2").2, mac_b, "same address, same MAC");
}

#[test]
fn a_failed_move_puts_the_address_back_and_the_connection_holds() {
    let Some(lab) = Lab::up("net_rollback", "hnet4", 2) else {
        return;
    };
    import_busybox_with_work(&lab);
    restart_with_fault(&lab, "n2", "fail-restore");
    lab.ok(&[
        "run",
        "--node",
        "n1",
        "--name",
        "echo",
        "--net",
        "lab",
        "busybox",
        "--",
        "/bin/herd-work",
        "echo",
        "--port",
        "7000",
    ]);
    let (_, ip, mac) = addr_of(&lab, "echo");
    let pinger = Pinger::start(SocketAddr::from((
        ip.parse::<Ipv4Addr>().expect("ip"),
        7000,
    )));
    pinger.wait_more(10);
    let o = lab.herd(&["migrate", "echo", "--to", "n2"]);
    assert!(!o.status.success(), "the move succeeded despite the fault");
    assert!(text(&o).contains("rolled back"), "{}", text(&o));
    // Back on n1 with its address, answering on the same connection.
    assert_eq!(addr_of(&lab, "echo"), ("n1".to_string(), ip, mac));
    pinger.wait_more(10);
    let (lines, gap) = pinger.finish();
    eprintln!(
        "rollback: {lines} lines in order, longest gap {} ms",
        gap.as_millis()
    );
    let l = log(&lab, "echo");
    assert_eq!(l.matches("accepted").count(), 1, "{l}");
    // n2 kept nothing: the container's netns (and its macvlan) is gone.
    let ps = lab.ok(&["ps", "--node", "n2"]);
    assert!(!ps.contains("echo"), "{ps}");
    let netns = std::fs::read_dir("/run/netns")
        .map(|d| {
            d.flatten()
                .map(|e| e.file_name().to_string_lossy().into_owned())
                .collect::<Vec<_>>()
        })
        .unwrap_or_default();
    assert!(
        !netns
            .iter()
            .any(|n| n.contains("n2") && n.ends_with("echo")),
        "{netns:?}"
    );
}
