//! Real quinn endpoints on 127.0.0.1 with real certificates from `pki`.

use std::net::SocketAddr;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::Arc;
use std::time::{Duration, Instant};

use herd_quic::pki::{self, Identity, Role, TlsFiles};
use herd_quic::{endpoint, rpc, Error};
use serde::{Deserialize, Serialize};
use tempfile::TempDir;

#[derive(Debug, Serialize, Deserialize, PartialEq)]
enum Req {
    Echo(String),
}

#[derive(Debug, Serialize, Deserialize, PartialEq)]
struct Resp {
    echo: String,
    caller: Option<Identity>,
}

/// A cluster CA with one agent certificate (`agent1`, also valid for
/// 127.0.0.1) and one user certificate (`alice`).
struct Cluster {
    _dir: TempDir,
    agent: TlsFiles,
    alice: TlsFiles,
    node2: TlsFiles,
}

fn cluster() -> Cluster {
    let dir = tempfile::tempdir().expect("tempdir");
    let ca = dir.path().join("ca");
    pki::init_ca(&ca, "test", false).expect("init CA");
    let certs = dir.path().join("certs");
    let agent = pki::issue(
        &ca,
        "agent1",
        Role::Node,
        &certs,
        &["127.0.0.1".to_string()],
    )
    .expect("issue agent")
    .tls_files();
    let alice = pki::issue(&ca, "alice", Role::User, &certs, &[])
        .expect("issue user")
        .tls_files();
    let node2 = pki::issue(&ca, "node2", Role::Node, &certs, &[])
        .expect("issue node2")
        .tls_files();
    Cluster {
        _dir: dir,
        agent,
        alice,
        node2,
    }
}

/// Counters of what the test server saw.
#[derive(Default)]
struct Seen {
    handshakes_ok: AtomicUsize,
    handshakes_failed: AtomicUsize,
    requests: AtomicUsize,
}

/// Start an echo server that reports the caller's identity back.
fn echo_server(tls: &TlsFiles) -> (quinn::Endpoint, SocketAddr, Arc<Seen>) {
    let ep = endpoint::server("127.0.0.1:0".parse().unwrap(), tls).expect("server endpoint");
    let addr = ep.local_addr().expect("local addr");
    let seen = Arc::new(Seen::default());
    let (ep2, seen2) = (ep.clone(), seen.clone());
    tokio::spawn(async move {
        while let Some(incoming) = ep2.accept().await {
            let seen = seen2.clone();
            tokio::spawn(async move {
                let conn = match incoming.await {
                    Ok(c) => c,
                    Err(_) => {
                        seen.handshakes_failed.fetch_add(1, Ordering::SeqCst);
                        return;
                    }
                };
                seen.handshakes_ok.fetch_add(1, Ordering::SeqCst);
                let caller = endpoint::peer_identity(&conn);
                while let Ok((mut send, mut recv)) = conn.accept_bi().await {
                    let Ok(Some(Req::Echo(s))) = rpc::recv_msg::<Req>(&mut recv, 1 << 16).await
                    else {
                        continue;
                    };
                    seen.requests.fetch_add(1, Ordering::SeqCst);
                    let resp = Resp {
                        echo: s,
                        caller: caller.clone(),
                    };
                    let _ = rpc::respond(&mut send, &resp).await;
                }
            });
        }
    });
    (ep, addr, seen)
}

async fn wait_for(cond: impl Fn() -> bool) -> bool {
    let deadline = Instant::now() + Duration::from_secs(5);
    while Instant::now() < deadline {
        if cond() {
            return true;
        }
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
    cond()
}

#[tokio::test]
async fn request_response_with_identities() {
    let c = cluster();
    let (_server, addr, seen) = echo_server(&c.agent);

    let ep = endpoint::client(&c.alice).expect("client endpoint");
    // The agent's certificate carries 127.0.0.1 as a SAN, and its name.
    let conn = endpoint::connect(&ep, addr, "127.0.0.1")
        .await
        .expect("connect by IP");
    let resp: Resp = rpc::call(&conn, &Req::Echo("hello".into()))
        .await
        .expect("call");
    assert_eq!(resp.echo, "hello");
    assert_eq!(
        resp.caller,
        Some(Identity {
            name: "alice".into(),
            role: Role::User
        }),
        "server sees the client's name and role"
    );
    assert_eq!(
        endpoint::peer_identity(&conn),
        Some(Identity {
            name: "agent1".into(),
            role: Role::Node
        }),
        "client sees the server's identity"
    );
    // Several calls on one connection.
    let resp: Resp = rpc::call(&conn, &Req::Echo("again".into())).await.unwrap();
    assert_eq!(resp.echo, "again");
    assert_eq!(seen.requests.load(Ordering::SeqCst), 2);

    // A node talking to another node, from a family-matched endpoint, by name.
    let ep2 = endpoint::client_for(&c.node2, addr).expect("client_for");
    let conn2 = endpoint::connect(&ep2, addr, "agent1")
        .await
        .expect("connect by name");
    let resp: Resp = rpc::call(&conn2, &Req::Echo("n".into())).await.unwrap();
    assert_eq!(
        resp.caller,
        Some(Identity {
            name: "node2".into(),
            role: Role::Node
        })
    );
}

#[tokio::test]
async fn client_from_another_ca_is_refused() {
    let c = cluster();
    let (_server, addr, seen) = echo_server(&c.agent);

    // Mallory has a perfectly valid certificate, from her own CA, and trusts
    // the real cluster CA so that she would accept the server.
    let evil = tempfile::tempdir().unwrap();
    pki::init_ca(evil.path(), "test", false).unwrap();
    let mallory = pki::issue(evil.path(), "alice", Role::User, evil.path(), &[]).unwrap();
    let files = TlsFiles {
        ca: c.agent.ca.clone(),
        ..mallory.tls_files()
    };

    let ep = endpoint::client(&files).expect("client endpoint");
    let outcome = async {
        let conn = endpoint::connect(&ep, addr, "agent1").await?;
        rpc::call::<_, Resp>(&conn, &Req::Echo("let me in".into())).await
    }
    .await;
    let err = outcome.expect_err("a foreign client certificate must be refused");
    eprintln!("refused as expected: {err}");
    assert!(
        matches!(err, Error::Lost { .. } | Error::Connection { .. }),
        "refused by the peer, not a local failure: {err}"
    );
    assert!(
        wait_for(|| seen.handshakes_failed.load(Ordering::SeqCst) >= 1).await,
        "server saw the failed handshake"
    );
    assert_eq!(seen.handshakes_ok.load(Ordering::SeqCst), 0);
    assert_eq!(seen.requests.load(Ordering::SeqCst), 0);
}

#[tokio::test]
async fn client_without_certificate_is_refused() {
    let c = cluster();
    let (_server, addr, seen) = echo_server(&c.agent);

    // A client trusting the cluster CA but presenting no certificate.
    let tls = c.alice.load().unwrap();
    let mut roots = rustls::RootCertStore::empty();
    for r in tls.roots {
        roots.add(r).unwrap();
    }
    let mut crypto = rustls::ClientConfig::builder_with_provider(Arc::new(
        rustls::crypto::ring::default_provider(),
    ))
    .with_protocol_versions(&[&rustls::version::TLS13])
    .unwrap()
    .with_root_certificates(roots)
    .with_no_client_auth();
    crypto.alpn_protocols = vec![herd_quic::ALPN.to_vec()];
    let crypto = quinn::crypto::rustls::QuicClientConfig::try_from(crypto).unwrap();
    let mut ep = quinn::Endpoint::client("127.0.0.1:0".parse().unwrap()).unwrap();
    ep.set_default_client_config(quinn::ClientConfig::new(Arc::new(crypto)));

    let outcome = async {
        let conn = endpoint::connect(&ep, addr, "agent1").await?;
        rpc::call::<_, Resp>(&conn, &Req::Echo("anonymous".into())).await
    }
    .await;
    let err = outcome.expect_err("a client without certificate must be refused");
    eprintln!("refused as expected: {err}");
    assert!(
        matches!(err, Error::Lost { .. } | Error::Connection { .. }),
        "refused by the peer, not a local failure: {err}"
    );
    assert!(wait_for(|| seen.handshakes_failed.load(Ordering::SeqCst) >= 1).await);
    assert_eq!(seen.handshakes_ok.load(Ordering::SeqCst), 0);
    assert_eq!(seen.requests.load(Ordering::SeqCst), 0);
}

#[tokio::test]
async fn server_name_must_match_the_certificate() {
    let c = cluster();
    let (_server, addr, seen) = echo_server(&c.agent);
    let ep = endpoint::client(&c.alice).unwrap();
    let err = endpoint::connect(&ep, addr, "node2")
        .await
        .expect_err("agent1's certificate is not valid for node2");
    eprintln!("refused as expected: {err}");
    assert!(
        matches!(err, Error::Lost { .. } | Error::Connection { .. }),
        "refused by the peer, not a local failure: {err}"
    );
    assert!(err.to_string().contains(&addr.to_string()), "{err}");
    assert_eq!(seen.requests.load(Ordering::SeqCst), 0);
}

/// Connect `alice` to a raw server endpoint and return both ends' connections.
async fn raw_pair(c: &Cluster) -> (quinn::Endpoint, quinn::Connection, quinn::Connection) {
    let server = endpoint::server("127.0.0.1:0".parse().unwrap(), &c.agent).unwrap();
    let addr = server.local_addr().unwrap();
    let accept = {
        let server = server.clone();
        tokio::spawn(async move { server.accept().await.unwrap().await.unwrap() })
    };
    let ep = endpoint::client(&c.alice).unwrap();
    let conn = endpoint::connect(&ep, addr, "agent1").await.unwrap();
    let server_conn = accept.await.unwrap();
    (server, conn, server_conn)
}

#[tokio::test]
async fn oversized_frame_is_refused_before_reading_the_body() {
    let c = cluster();
    let (_server, conn, server_conn) = raw_pair(&c).await;

    let (mut send, _recv) = conn.open_bi().await.unwrap();
    // Header announcing 4 GiB; no body follows and the stream stays open, so
    // a reader that tried to allocate and read the body would hang instead.
    send.write_all(&u32::MAX.to_be_bytes()).await.unwrap();

    let (_s, mut recv) = server_conn.accept_bi().await.unwrap();
    let res = tokio::time::timeout(
        Duration::from_secs(2),
        rpc::recv_msg::<Req>(&mut recv, 1024),
    )
    .await
    .expect("refused at once, without waiting for a body");
    let err = res.expect_err("frame above the limit");
    assert!(err.is_too_large(), "{err}");
    assert!(err.to_string().contains("4294967295"), "{err}");

    // Exactly at the limit is fine; one above is not.
    let (mut send, _recv) = conn.open_bi().await.unwrap();
    let msg = Req::Echo("x".repeat(100));
    let frame = herd_wire::frame::encode(&msg).unwrap();
    let body = frame.len() - herd_wire::frame::HEADER_LEN;
    rpc::send_msg(&mut send, &msg).await.unwrap();
    rpc::send_msg(&mut send, &msg).await.unwrap();
    send.finish().unwrap();
    let (_s, mut recv) = server_conn.accept_bi().await.unwrap();
    let got: Option<Req> = rpc::recv_msg(&mut recv, body).await.unwrap();
    assert_eq!(got, Some(msg));
    let err = rpc::recv_msg::<Req>(&mut recv, body - 1).await.unwrap_err();
    assert!(err.is_too_large(), "{err}");
}

#[tokio::test]
async fn clean_end_is_none_and_truncation_is_an_error() {
    let c = cluster();
    let (_server, conn, server_conn) = raw_pair(&c).await;

    // Two messages then a clean end.
    let (mut send, _r) = conn.open_bi().await.unwrap();
    rpc::send_msg(&mut send, &Req::Echo("a".into()))
        .await
        .unwrap();
    rpc::send_msg(&mut send, &Req::Echo("b".into()))
        .await
        .unwrap();
    send.finish().unwrap();
    let (_s, mut recv) = server_conn.accept_bi().await.unwrap();
    let a: Option<Req> = rpc::recv_msg(&mut recv, 1024).await.unwrap();
    let b: Option<Req> = rpc::recv_msg(&mut recv, 1024).await.unwrap();
    let end: Option<Req> = rpc::recv_msg(&mut recv, 1024).await.unwrap();
    assert_eq!(a, Some(Req::Echo("a".into())));
    assert_eq!(b, Some(Req::Echo("b".into())));
    assert_eq!(end, None);

    // A header promising 10 bytes, then only 3 and the end of the stream.
    let (mut send, _r) = conn.open_bi().await.unwrap();
    send.write_all(&10u32.to_be_bytes()).await.unwrap();
    send.write_all(&[1, 2, 3]).await.unwrap();
    send.finish().unwrap();
    let (_s, mut recv) = server_conn.accept_bi().await.unwrap();
    let err = rpc::recv_msg::<Req>(&mut recv, 1024).await.unwrap_err();
    assert!(
        matches!(
            err,
            Error::Truncated {
                got: 3,
                expected: 10,
                ..
            }
        ),
        "{err}"
    );

    // A server that finishes without answering: call reports it with the address.
    let server_conn2 = server_conn.clone();
    tokio::spawn(async move {
        let (mut send, mut recv) = server_conn2.accept_bi().await.unwrap();
        let _: Option<Req> = rpc::recv_msg(&mut recv, 1024).await.unwrap();
        send.finish().unwrap();
    });
    let err = rpc::call::<_, Resp>(&conn, &Req::Echo("?".into()))
        .await
        .unwrap_err();
    assert!(matches!(err, Error::NoResponse { .. }), "{err}");
    assert!(
        err.to_string()
            .contains(&rpc::remote_addr(&conn).to_string()),
        "{err}"
    );
}

#[tokio::test]
async fn unreachable_agent_times_out_quickly_with_its_address() {
    let c = cluster();
    // A port where nothing listens: bind one, note it, close it.
    let addr = {
        let s = std::net::UdpSocket::bind("127.0.0.1:0").unwrap();
        s.local_addr().unwrap()
    };
    let ep = endpoint::client(&c.alice).unwrap();
    let start = Instant::now();
    let err = endpoint::connect(&ep, addr, "agent1")
        .await
        .expect_err("nothing listens there");
    let took = start.elapsed();
    assert!(
        took < endpoint::CONNECT_TIMEOUT + Duration::from_secs(2),
        "took {took:?}"
    );
    assert!(err.to_string().contains(&addr.to_string()), "{err}");
    eprintln!("after {took:?}: {err}");
}
