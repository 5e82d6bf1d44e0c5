//! The cluster PKI: a CA, and certificates for nodes and users signed by it.
//!
//! # Files
//!
//! * `<ca_dir>/ca.pem`: the CA certificate (mode 0644). Every node and user
//!   needs a copy: it is the only trust anchor.
//! * `<ca_dir>/ca.key`: the CA private key (mode 0600, directory created
//!   0700). Only needed to issue certificates; keep it off the nodes.
//! * `<out_dir>/<name>.pem` and `<out_dir>/<name>.key` (0600): a node's or a
//!   user's certificate and key. [`issue`] also copies `ca.pem` into
//!   `out_dir`, so that `out_dir` alone is what [`TlsFiles::in_dir`] expects.
//!
//! # Certificate layout
//!
//! All keys are ECDSA P-256, signatures ECDSA-SHA256, validity ten years
//! (backdated one hour for clock skew).
//!
//! * CA: subject `CN=Herd CA, O=<cluster>`, basic constraints CA with path
//!   length 0, key usage keyCertSign + cRLSign + digitalSignature.
//! * Leaf: subject `CN=<name>, OU=<role>, O=<cluster>`, where `<role>` is
//!   `node` or `user` (see [`Role`]). SANs: DNS `<name>` plus the extras
//!   (IP addresses become IP SANs). Extended key usage: nodes get serverAuth
//!   and clientAuth (agents are servers and clients of each other); users get
//!   clientAuth only, so a user certificate cannot impersonate an agent.
//!
//! The role is read back from the `OU` with [`identity_of`] (and on a live
//! connection with [`crate::endpoint::peer_identity`]).

use std::fmt;
use std::fs;
use std::io::ErrorKind;
use std::os::unix::fs::PermissionsExt;
use std::path::{Path, PathBuf};
use std::str::FromStr;

use rustls_pki_types::pem::PemObject;
use rustls_pki_types::{CertificateDer, PrivateKeyDer};
use serde::{Deserialize, Serialize};

use crate::error::{Error, Result};

// Issuing (rcgen) only where certificates are made: the CLI, not the agent.
#[cfg(feature = "issue")]
mod issue;
#[cfg(feature = "issue")]
pub use issue::{init_ca, issue};

/// File name of the CA certificate inside a CA or certificate directory.
pub const CA_CERT_FILE: &str = "ca.pem";
/// File name of the CA private key inside the CA directory.
pub const CA_KEY_FILE: &str = "ca.key";
/// Common name of every cluster CA (the cluster name goes in `O`).
pub const CA_COMMON_NAME: &str = "Herd CA";
/// Validity of CA and leaf certificates, in days (about ten years).
pub const VALIDITY_DAYS: i64 = 3653;
/// Longest accepted node or user name.
pub const MAX_NAME_LEN: usize = 63;

/// What a certificate holder is allowed to be.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize)]
pub enum Role {
    /// An agent on a cluster host: serves other agents and the CLI, and calls
    /// other agents (migration).
    Node,
    /// A person or tool driving the cluster through the CLI.
    User,
}

impl Role {
    /// The `OU` value that encodes this role in a certificate.
    pub fn as_str(self) -> &'static str {
        match self {
            Role::Node => "node",
            Role::User => "user",
        }
    }
}

impl fmt::Display for Role {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.as_str())
    }
}

impl FromStr for Role {
    type Err = String;

    fn from_str(s: &str) -> std::result::Result<Self, Self::Err> {
        match s {
            "node" => Ok(Role::Node),
            "user" => Ok(Role::User),
            other => Err(format!("unknown role {other:?} (expected node or user)")),
        }
    }
}

/// Who a certificate says its holder is.
#[derive(Debug, Clone, PartialEq, Eq, Hash, Serialize, Deserialize)]
pub struct Identity {
    /// The certificate's common name, as given to [`issue`].
    pub name: String,
    /// The role from the certificate's `OU`.
    pub role: Role,
}

impl fmt::Display for Identity {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{}:{}", self.role, self.name)
    }
}

/// Paths written by [`init_ca`].
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct CaPaths {
    /// `ca.pem`
    pub cert: PathBuf,
    /// `ca.key`
    pub key: PathBuf,
}

impl CaPaths {
    /// The CA file paths inside `dir`.
    pub fn in_dir(dir: &Path) -> Self {
        CaPaths {
            cert: dir.join(CA_CERT_FILE),
            key: dir.join(CA_KEY_FILE),
        }
    }
}

/// Paths written by [`issue`].
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct CertPaths {
    /// Copy of the CA certificate in the output directory.
    pub ca: PathBuf,
    /// `<name>.pem`
    pub cert: PathBuf,
    /// `<name>.key`
    pub key: PathBuf,
}

impl CertPaths {
    /// The files an endpoint needs to use this certificate.
    pub fn tls_files(&self) -> TlsFiles {
        TlsFiles {
            ca: self.ca.clone(),
            cert: self.cert.clone(),
            key: self.key.clone(),
        }
    }
}

/// The three files an endpoint needs: the cluster CA, its own certificate
/// and its own private key, all PEM.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct TlsFiles {
    /// Cluster CA certificate(s): the trust anchors for the peer.
    pub ca: PathBuf,
    /// Own certificate chain (leaf first).
    pub cert: PathBuf,
    /// Own private key (PKCS#8, SEC1 or PKCS#1).
    pub key: PathBuf,
}

/// The contents of [`TlsFiles`], parsed.
#[derive(Debug)]
pub struct LoadedTls {
    /// Trust anchors from the CA file.
    pub roots: Vec<CertificateDer<'static>>,
    /// Own certificate chain, leaf first.
    pub chain: Vec<CertificateDer<'static>>,
    /// Own private key.
    pub key: PrivateKeyDer<'static>,
}

impl TlsFiles {
    /// `dir/ca.pem`, `dir/<name>.pem`, `dir/<name>.key`: the layout [`issue`] writes.
    pub fn in_dir(dir: &Path, name: &str) -> Self {
        TlsFiles {
            ca: dir.join(CA_CERT_FILE),
            cert: dir.join(format!("{name}.pem")),
            key: dir.join(format!("{name}.key")),
        }
    }

    /// Read and parse the three files.
    ///
    /// Errors name the file: [`Error::Missing`] when it does not exist,
    /// [`Error::NotPem`] when it has no section of the expected kind.
    pub fn load(&self) -> Result<LoadedTls> {
        let roots = read_certs(&self.ca, "CA certificate")?;
        let chain = read_certs(&self.cert, "certificate")?;
        let key = read_key(&self.key)?;
        Ok(LoadedTls { roots, chain, key })
    }

    /// The identity encoded in this endpoint's own certificate.
    pub fn identity(&self) -> Result<Identity> {
        let chain = read_certs(&self.cert, "certificate")?;
        identity_of(&chain[0]).ok_or_else(|| Error::BadCert {
            path: self.cert.clone(),
            reason: "no CN with a node/user OU".into(),
        })
    }
}

/// The identity (CN and role from `OU`) in a certificate, or `None` when it
/// is not a Herd leaf certificate (no CN, or no `node`/`user` OU).
pub fn identity_of(cert: &CertificateDer<'_>) -> Option<Identity> {
    let (_, x509) = x509_parser::parse_x509_certificate(cert.as_ref()).ok()?;
    let subject = x509.subject();
    let name = subject
        .iter_common_name()
        .next()?
        .as_str()
        .ok()?
        .to_string();
    let role = subject
        .iter_organizational_unit()
        .find_map(|ou| ou.as_str().ok()?.parse::<Role>().ok())?;
    Some(Identity { name, role })
}

fn read_bytes(path: &Path, what: &'static str) -> Result<Vec<u8>> {
    fs::read(path).map_err(|source| {
        if source.kind() == ErrorKind::NotFound {
            Error::Missing {
                what,
                path: path.to_path_buf(),
            }
        } else {
            Error::Io {
                action: "read",
                path: path.to_path_buf(),
                source,
            }
        }
    })
}

fn read_certs(path: &Path, what: &'static str) -> Result<Vec<CertificateDer<'static>>> {
    let bytes = read_bytes(path, what)?;
    let certs = CertificateDer::pem_slice_iter(&bytes)
        .collect::<std::result::Result<Vec<_>, _>>()
        .map_err(|e| Error::NotPem {
            what,
            path: path.to_path_buf(),
            reason: e.to_string(),
        })?;
    if certs.is_empty() {
        return Err(Error::NotPem {
            what,
            path: path.to_path_buf(),
            reason: "no CERTIFICATE section".into(),
        });
    }
    Ok(certs)
}

fn read_key(path: &Path) -> Result<PrivateKeyDer<'static>> {
    let what = "private key";
    let bytes = read_bytes(path, what)?;
    if let Ok(meta) = fs::metadata(path) {
        if meta.permissions().mode() & 0o077 != 0 {
            tracing::warn!(path = %path.display(), "private key is readable by group or others");
        }
    }
    PrivateKeyDer::from_pem_slice(&bytes).map_err(|e| Error::NotPem {
        what,
        path: path.to_path_buf(),
        reason: match e {
            rustls_pki_types::pem::Error::NoItemsFound => "no PRIVATE KEY section".into(),
            other => other.to_string(),
        },
    })
}

#[cfg(all(test, feature = "issue"))]
mod tests {
    use super::*;

    fn tmp() -> tempfile::TempDir {
        tempfile::tempdir().expect("tempdir")
    }

    #[test]
    fn ca_is_created_with_private_key_and_not_overwritten() {
        let d = tmp();
        let ca = d.path().join("ca");
        let paths = init_ca(&ca, "lab", false).expect("init");
        assert_eq!(paths.cert, ca.join("ca.pem"));
        let mode = fs::metadata(&paths.key).unwrap().permissions().mode();
        assert_eq!(mode & 0o777, 0o600);
        let dmode = fs::metadata(&ca).unwrap().permissions().mode();
        assert_eq!(dmode & 0o777, 0o700);
        let before = fs::read(&paths.cert).unwrap();

        let err = init_ca(&ca, "lab", false).unwrap_err();
        assert!(matches!(err, Error::CaExists { .. }), "{err}");
        assert!(err.to_string().contains("ca.pem"), "{err}");
        assert_eq!(fs::read(&paths.cert).unwrap(), before);

        init_ca(&ca, "lab", true).expect("forced re-init");
        assert_ne!(fs::read(&paths.cert).unwrap(), before);
    }

    #[test]
    fn issued_certificate_carries_name_role_and_sans() {
        let d = tmp();
        let ca = d.path().join("ca");
        init_ca(&ca, "lab", false).unwrap();
        let out = d.path().join("node1");
        let paths = issue(
            &ca,
            "node1",
            Role::Node,
            &out,
            &["10.0.0.1".into(), "node1.lab".into()],
        )
        .expect("issue");
        assert_eq!(paths.tls_files(), TlsFiles::in_dir(&out, "node1"));
        let mode = fs::metadata(&paths.key).unwrap().permissions().mode();
        assert_eq!(mode & 0o777, 0o600);

        let tls = paths.tls_files().load().expect("load");
        assert_eq!(tls.roots.len(), 1);
        let id = identity_of(&tls.chain[0]).expect("identity");
        assert_eq!(
            id,
            Identity {
                name: "node1".into(),
                role: Role::Node
            }
        );
        assert_eq!(paths.tls_files().identity().unwrap(), id);

        let (_, x509) = x509_parser::parse_x509_certificate(tls.chain[0].as_ref()).unwrap();
        let sans = x509
            .subject_alternative_name()
            .unwrap()
            .expect("SAN extension")
            .value
            .general_names
            .iter()
            .map(|n| format!("{n:?}"))
            .collect::<Vec<_>>()
            .join(",");
        assert!(sans.contains("node1"), "{sans}");
        assert!(sans.contains("node1.lab"), "{sans}");
        assert!(sans.contains("IPAddress([10, 0, 0, 1])"), "{sans}");
        let years = (x509.validity().not_after.timestamp()
            - x509.validity().not_before.timestamp())
            / (365 * 86400);
        assert!(years >= 9, "validity {years} years");
        let org = x509.subject().iter_organization().next().unwrap();
        assert_eq!(org.as_str().unwrap(), "lab");

        let user = issue(&ca, "alice", Role::User, &out, &[]).unwrap();
        let id = user.tls_files().identity().unwrap();
        assert_eq!(id.role, Role::User);
        assert_eq!(id.to_string(), "user:alice");
    }

    #[test]
    fn bad_names_are_refused() {
        let d = tmp();
        init_ca(d.path(), "lab", false).unwrap();
        for name in [
            "",
            "../x",
            "a/b",
            "-x",
            "a..b",
            "ca",
            "x y",
            &"a".repeat(64),
        ] {
            let err = issue(d.path(), name, Role::User, d.path(), &[]).unwrap_err();
            assert!(matches!(err, Error::InvalidName { .. }), "{name:?}: {err}");
        }
    }

    #[test]
    fn issue_without_ca_names_the_missing_file() {
        let d = tmp();
        let err = issue(d.path(), "n", Role::Node, d.path(), &[]).unwrap_err();
        assert!(matches!(err, Error::Missing { .. }), "{err}");
        assert!(err.to_string().contains("ca.pem"), "{err}");
    }

    #[test]
    fn issue_refuses_a_key_that_does_not_match_the_ca() {
        let d = tmp();
        let a = d.path().join("a");
        let b = d.path().join("b");
        init_ca(&a, "lab", false).unwrap();
        init_ca(&b, "lab", false).unwrap();
        fs::copy(b.join("ca.key"), a.join("ca.key")).unwrap();
        let err = issue(&a, "n", Role::Node, d.path(), &[]).unwrap_err();
        assert!(err.to_string().contains("does not match"), "{err}");
    }

    #[test]
    fn load_reports_missing_and_non_pem_files() {
        let d = tmp();
        init_ca(d.path(), "lab", false).unwrap();
        issue(d.path(), "n1", Role::Node, d.path(), &[]).unwrap();
        let good = TlsFiles::in_dir(d.path(), "n1");
        good.load().expect("good files load");

        let missing = TlsFiles {
            cert: d.path().join("nope.pem"),
            ..good.clone()
        };
        let err = missing.load().unwrap_err();
        assert!(matches!(err, Error::Missing { .. }), "{err}");
        assert!(err.to_string().contains("nope.pem"), "{err}");

        let junk = d.path().join("junk.pem");
        fs::write(&junk, "hello, not a certificate\n").unwrap();
        let err = TlsFiles {
            ca: junk.clone(),
            ..good.clone()
        }
        .load()
        .unwrap_err();
        assert!(matches!(err, Error::NotPem { .. }), "{err}");
        assert!(err.to_string().contains("junk.pem"), "{err}");

        // A certificate where the key should be.
        let err = TlsFiles {
            key: good.cert.clone(),
            ..good.clone()
        }
        .load()
        .unwrap_err();
        assert!(matches!(err, Error::NotPem { .. }), "{err}");
        assert!(err.to_string().contains("PRIVATE KEY"), "{err}");
    }
}
