//! quinn endpoints with mutual TLS under the cluster CA.
//!
//! * Only TLS 1.3 (QUIC requires it), ring crypto provider, ALPN
//!   [`crate::ALPN`] (`herd/1`).
//! * The server requires a client certificate and verifies it against the
//!   cluster CA ([`rustls::server::WebPkiClientVerifier`]): a client without
//!   one, or with one from another CA, is refused in the handshake. What the
//!   client may do is decided by the application from [`peer_identity`].
//! * The client verifies the server certificate against the cluster CA and
//!   the `server_name` given to [`connect`] (a node name or an IP address
//!   that is among the node certificate's SANs).
//! * Both sides send keep-alives every [`KEEP_ALIVE`] and drop a connection
//!   silent for [`IDLE_TIMEOUT`], so long idle streams (log follow) survive
//!   and dead peers are noticed.
//! * [`connect`] gives up after [`CONNECT_TIMEOUT`] with the address in the
//!   error.

use std::net::{Ipv4Addr, Ipv6Addr, SocketAddr};
use std::sync::Arc;
use std::time::Duration;

use quinn::crypto::rustls::{QuicClientConfig, QuicServerConfig};
use quinn::{Connection, Endpoint, IdleTimeout, TransportConfig};
use rustls::crypto::CryptoProvider;
use rustls::server::WebPkiClientVerifier;
use rustls::RootCertStore;
use rustls_pki_types::CertificateDer;

use crate::error::{Error, Result};
use crate::pki::{identity_of, Identity, LoadedTls, TlsFiles};
use crate::ALPN;

/// How long [`connect`] waits for the handshake.
pub const CONNECT_TIMEOUT: Duration = Duration::from_secs(5);
/// Interval of keep-alive packets on idle connections.
pub const KEEP_ALIVE: Duration = Duration::from_secs(5);
/// A connection with no packet for this long is closed.
pub const IDLE_TIMEOUT: Duration = Duration::from_secs(30);

fn provider() -> Arc<CryptoProvider> {
    Arc::new(rustls::crypto::ring::default_provider())
}

fn tls_err(context: impl Into<String>) -> impl FnOnce(rustls::Error) -> Error {
    let context = context.into();
    move |e| Error::Tls {
        context,
        reason: e.to_string(),
    }
}

fn root_store(tls: &LoadedTls, files: &TlsFiles) -> Result<RootCertStore> {
    let mut roots = RootCertStore::empty();
    for cert in &tls.roots {
        roots
            .add(cert.clone())
            .map_err(tls_err(format!("CA certificate {}", files.ca.display())))?;
    }
    Ok(roots)
}

/// Transport settings shared by both sides: keep-alive and idle timeout.
pub fn transport_config() -> Arc<TransportConfig> {
    let mut t = TransportConfig::default();
    t.keep_alive_interval(Some(KEEP_ALIVE));
    // 30 s always fits in a QUIC varint of milliseconds.
    t.max_idle_timeout(IdleTimeout::try_from(IDLE_TIMEOUT).ok());
    Arc::new(t)
}

/// quinn server configuration from the TLS files: own certificate, client
/// certificates required and verified against the CA.
pub fn server_config(files: &TlsFiles) -> Result<quinn::ServerConfig> {
    let tls = files.load()?;
    let roots = root_store(&tls, files)?;
    let verifier = WebPkiClientVerifier::builder_with_provider(Arc::new(roots), provider())
        .build()
        .map_err(|e| Error::Tls {
            context: format!("client verifier for CA {}", files.ca.display()),
            reason: e.to_string(),
        })?;
    let mut crypto = rustls::ServerConfig::builder_with_provider(provider())
        .with_protocol_versions(&[&rustls::version::TLS13])
        .map_err(tls_err("TLS 1.3"))?
        .with_client_cert_verifier(verifier)
        .with_single_cert(tls.chain, tls.key)
        .map_err(tls_err(format!(
            "certificate {} with key {}",
            files.cert.display(),
            files.key.display()
        )))?;
    crypto.alpn_protocols = vec![ALPN.to_vec()];
    let crypto = QuicServerConfig::try_from(crypto).map_err(|e| Error::Tls {
        context: "QUIC server crypto".into(),
        reason: e.to_string(),
    })?;
    let mut config = quinn::ServerConfig::with_crypto(Arc::new(crypto));
    config.transport_config(transport_config());
    Ok(config)
}

/// quinn client configuration from the TLS files: own certificate presented
/// to the server, server verified against the CA.
pub fn client_config(files: &TlsFiles) -> Result<quinn::ClientConfig> {
    let tls = files.load()?;
    let roots = root_store(&tls, files)?;
    let mut crypto = rustls::ClientConfig::builder_with_provider(provider())
        .with_protocol_versions(&[&rustls::version::TLS13])
        .map_err(tls_err("TLS 1.3"))?
        .with_root_certificates(roots)
        .with_client_auth_cert(tls.chain, tls.key)
        .map_err(tls_err(format!(
            "certificate {} with key {}",
            files.cert.display(),
            files.key.display()
        )))?;
    crypto.alpn_protocols = vec![ALPN.to_vec()];
    let crypto = QuicClientConfig::try_from(crypto).map_err(|e| Error::Tls {
        context: "QUIC client crypto".into(),
        reason: e.to_string(),
    })?;
    let mut config = quinn::ClientConfig::new(Arc::new(crypto));
    config.transport_config(transport_config());
    Ok(config)
}

/// A server endpoint on `bind` that accepts only clients with a certificate
/// from the cluster CA. Must be called inside a tokio runtime.
///
/// The endpoint can also open connections (with the same certificate), so an
/// agent can use it to reach other agents.
pub fn server(bind: SocketAddr, tls: &TlsFiles) -> Result<Endpoint> {
    let config = server_config(tls)?;
    let mut ep =
        Endpoint::server(config, bind).map_err(|source| Error::Bind { addr: bind, source })?;
    ep.set_default_client_config(client_config(tls)?);
    Ok(ep)
}

/// A client endpoint on an ephemeral port, dual-stack `[::]:0` when the host
/// has IPv6, `0.0.0.0:0` otherwise. Must be called inside a tokio runtime.
pub fn client(tls: &TlsFiles) -> Result<Endpoint> {
    let config = client_config(tls)?;
    let v6 = SocketAddr::from((Ipv6Addr::UNSPECIFIED, 0));
    let mut ep = match Endpoint::client(v6) {
        Ok(ep) => ep,
        Err(e) => {
            tracing::debug!(error = %e, "no IPv6 socket, falling back to IPv4");
            bind_client(SocketAddr::from((Ipv4Addr::UNSPECIFIED, 0)))?
        }
    };
    ep.set_default_client_config(config);
    Ok(ep)
}

/// A client endpoint bound to the wildcard address of `target`'s family.
pub fn client_for(tls: &TlsFiles, target: SocketAddr) -> Result<Endpoint> {
    let config = client_config(tls)?;
    let bind = match target {
        SocketAddr::V4(_) => SocketAddr::from((Ipv4Addr::UNSPECIFIED, 0)),
        SocketAddr::V6(_) => SocketAddr::from((Ipv6Addr::UNSPECIFIED, 0)),
    };
    let mut ep = bind_client(bind)?;
    ep.set_default_client_config(config);
    Ok(ep)
}

fn bind_client(addr: SocketAddr) -> Result<Endpoint> {
    Endpoint::client(addr).map_err(|source| Error::Bind { addr, source })
}

/// Connect to `addr`, expecting its certificate to be valid for
/// `server_name`, within [`CONNECT_TIMEOUT`].
pub async fn connect(ep: &Endpoint, addr: SocketAddr, server_name: &str) -> Result<Connection> {
    connect_timeout(ep, addr, server_name, CONNECT_TIMEOUT).await
}

/// [`connect`] with an explicit handshake timeout.
pub async fn connect_timeout(
    ep: &Endpoint,
    addr: SocketAddr,
    server_name: &str,
    timeout: Duration,
) -> Result<Connection> {
    let connecting = ep
        .connect(addr, server_name)
        .map_err(|source| Error::Connect {
            addr,
            server_name: server_name.to_string(),
            source,
        })?;
    match tokio::time::timeout(timeout, connecting).await {
        Ok(Ok(conn)) => {
            tracing::debug!(%addr, server_name, "connected");
            Ok(conn)
        }
        Ok(Err(source)) => Err(Error::Connection { addr, source }),
        Err(_) => Err(Error::ConnectTimeout {
            addr,
            after: timeout,
        }),
    }
}

/// Who the other end of `conn` is, from its certificate: on a server, the
/// client's name and role; on a client, the server node's.
///
/// `None` when the peer presented no certificate (cannot happen on
/// connections made by this module, whose handshakes require one) or its
/// certificate carries no Herd identity.
pub fn peer_identity(conn: &Connection) -> Option<Identity> {
    let any = conn.peer_identity()?;
    let chain = any.downcast::<Vec<CertificateDer<'static>>>().ok()?;
    identity_of(chain.first()?)
}
