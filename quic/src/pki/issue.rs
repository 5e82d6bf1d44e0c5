//! Making a CA and signing node and user certificates with it (behind the
//! `issue` feature: the agent only loads and checks certificates).

use std::fs;
use std::io::{ErrorKind, Write};
use std::os::unix::fs::{DirBuilderExt, OpenOptionsExt};
use std::path::Path;

use rcgen::{
    BasicConstraints, CertificateParams, DistinguishedName, DnType, ExtendedKeyUsagePurpose, IsCa,
    KeyPair, KeyUsagePurpose,
};
use rustls_pki_types::pem::PemObject;
use rustls_pki_types::CertificateDer;

use super::*;

/// Create a new cluster CA in `dir` (created 0700 if missing).
///
/// Refuses with [`Error::CaExists`] when `ca.pem` or `ca.key` is already
/// there, unless `force` is set: replacing the CA invalidates every
/// certificate issued so far.
pub fn init_ca(dir: &Path, cluster_name: &str, force: bool) -> Result<CaPaths> {
    if cluster_name.is_empty() || cluster_name.len() > MAX_NAME_LEN {
        return Err(Error::InvalidName {
            name: cluster_name.into(),
            reason: "cluster name must be 1 to 63 characters",
        });
    }
    let paths = CaPaths::in_dir(dir);
    if !force {
        for p in [&paths.cert, &paths.key] {
            if p.exists() {
                return Err(Error::CaExists { path: p.clone() });
            }
        }
    }
    create_private_dir(dir)?;

    let key = KeyPair::generate().map_err(|source| Error::Cert {
        context: "generating the CA key".into(),
        source,
    })?;
    let mut params = CertificateParams::default();
    params.distinguished_name = {
        let mut dn = DistinguishedName::new();
        dn.push(DnType::CommonName, CA_COMMON_NAME);
        dn.push(DnType::OrganizationName, cluster_name);
        dn
    };
    params.is_ca = IsCa::Ca(BasicConstraints::Constrained(0));
    params.key_usages = vec![
        KeyUsagePurpose::KeyCertSign,
        KeyUsagePurpose::CrlSign,
        KeyUsagePurpose::DigitalSignature,
    ];
    set_validity(&mut params);
    let cert = params.self_signed(&key).map_err(|source| Error::Cert {
        context: format!("self-signing the CA for cluster {cluster_name:?}"),
        source,
    })?;

    // Key first: a ca.pem without its key would be useless.
    write_file(&paths.key, key.serialize_pem().as_bytes(), 0o600)?;
    write_file(&paths.cert, cert.pem().as_bytes(), 0o644)?;
    tracing::info!(dir = %dir.display(), cluster = cluster_name, "created cluster CA");
    Ok(paths)
}

/// Issue a certificate for `name` with `role`, signed by the CA in `ca_dir`.
///
/// Writes `out_dir/<name>.pem`, `out_dir/<name>.key` (0600) and a copy of
/// `ca.pem` into `out_dir` (created if missing), replacing earlier files of
/// the same name. `name` (letters, digits, `-`, `.`; at most 63 characters)
/// becomes the CN and a DNS SAN; each of `extra_sans` becomes an IP SAN if
/// it parses as an IP address, a DNS SAN otherwise.
pub fn issue(
    ca_dir: &Path,
    name: &str,
    role: Role,
    out_dir: &Path,
    extra_sans: &[String],
) -> Result<CertPaths> {
    check_name(name)?;
    let ca_paths = CaPaths::in_dir(ca_dir);
    let ca_pem = read_text(&ca_paths.cert, "CA certificate")?;
    let ca_key_pem = read_text(&ca_paths.key, "CA key")?;
    let ca_key = KeyPair::from_pem(&ca_key_pem).map_err(|e| Error::NotPem {
        what: "CA key",
        path: ca_paths.key.clone(),
        reason: e.to_string(),
    })?;
    let ca_params = CertificateParams::from_ca_cert_pem(&ca_pem).map_err(|e| Error::BadCert {
        path: ca_paths.cert.clone(),
        reason: e.to_string(),
    })?;
    check_key_matches(&ca_pem, &ca_paths, &ca_key)?;
    let cluster = ca_params
        .distinguished_name
        .get(&DnType::OrganizationName)
        .and_then(dn_value_str);
    // Re-creating the issuer from its parameters keeps its subject and key
    // identifier, which is all that signing needs.
    let issuer = ca_params
        .self_signed(&ca_key)
        .map_err(|source| Error::Cert {
            context: format!("loading the CA from {}", ca_paths.cert.display()),
            source,
        })?;

    let mut sans = vec![name.to_string()];
    sans.extend(extra_sans.iter().cloned());
    let mut params = CertificateParams::new(sans).map_err(|source| Error::Cert {
        context: format!("subject alternative names for {name:?}: {extra_sans:?}"),
        source,
    })?;
    params.distinguished_name = {
        let mut dn = DistinguishedName::new();
        dn.push(DnType::CommonName, name);
        dn.push(DnType::OrganizationalUnitName, role.as_str());
        if let Some(cluster) = cluster {
            dn.push(DnType::OrganizationName, cluster);
        }
        dn
    };
    params.is_ca = IsCa::ExplicitNoCa;
    params.key_usages = vec![KeyUsagePurpose::DigitalSignature];
    params.extended_key_usages = match role {
        Role::Node => vec![
            ExtendedKeyUsagePurpose::ServerAuth,
            ExtendedKeyUsagePurpose::ClientAuth,
        ],
        Role::User => vec![ExtendedKeyUsagePurpose::ClientAuth],
    };
    params.use_authority_key_identifier_extension = true;
    set_validity(&mut params);

    let key = KeyPair::generate().map_err(|source| Error::Cert {
        context: format!("generating the key of {name:?}"),
        source,
    })?;
    let cert = params
        .signed_by(&key, &issuer, &ca_key)
        .map_err(|source| Error::Cert {
            context: format!("signing the certificate of {name:?}"),
            source,
        })?;

    create_dir(out_dir)?;
    let out = CertPaths {
        ca: out_dir.join(CA_CERT_FILE),
        cert: out_dir.join(format!("{name}.pem")),
        key: out_dir.join(format!("{name}.key")),
    };
    write_file(&out.key, key.serialize_pem().as_bytes(), 0o600)?;
    write_file(&out.cert, cert.pem().as_bytes(), 0o644)?;
    if !same_file(&ca_paths.cert, &out.ca) {
        write_file(&out.ca, ca_pem.as_bytes(), 0o644)?;
    }
    tracing::info!(%name, %role, dir = %out_dir.display(), "issued certificate");
    Ok(out)
}

fn check_name(name: &str) -> Result<()> {
    let bad = |reason| {
        Err(Error::InvalidName {
            name: name.into(),
            reason,
        })
    };
    if name.is_empty() || name.len() > MAX_NAME_LEN {
        return bad("must be 1 to 63 characters");
    }
    if !name
        .bytes()
        .all(|b| b.is_ascii_alphanumeric() || b == b'-' || b == b'.')
    {
        return bad("only ASCII letters, digits, '-' and '.' are allowed");
    }
    if !name.as_bytes()[0].is_ascii_alphanumeric() || name.contains("..") || name.ends_with('.') {
        return bad("must start with a letter or digit and have no empty dot-separated label");
    }
    if name == "ca" {
        return bad("\"ca\" is reserved for the CA files");
    }
    Ok(())
}

fn set_validity(params: &mut CertificateParams) {
    let now = time::OffsetDateTime::now_utc();
    params.not_before = now - time::Duration::hours(1);
    params.not_after = now + time::Duration::days(VALIDITY_DAYS);
}

fn dn_value_str(v: &rcgen::DnValue) -> Option<String> {
    match v {
        rcgen::DnValue::Utf8String(s) => Some(s.clone()),
        rcgen::DnValue::PrintableString(s) => Some(s.as_str().to_string()),
        _ => None,
    }
}

fn check_key_matches(ca_pem: &str, paths: &CaPaths, key: &KeyPair) -> Result<()> {
    let der = CertificateDer::from_pem_slice(ca_pem.as_bytes()).map_err(|e| Error::NotPem {
        what: "CA certificate",
        path: paths.cert.clone(),
        reason: e.to_string(),
    })?;
    let (_, x509) =
        x509_parser::parse_x509_certificate(der.as_ref()).map_err(|e| Error::BadCert {
            path: paths.cert.clone(),
            reason: e.to_string(),
        })?;
    if x509.public_key().raw != key.public_key_der().as_slice() {
        return Err(Error::BadCert {
            path: paths.cert.clone(),
            reason: format!("does not match the key in {}", paths.key.display()),
        });
    }
    Ok(())
}

fn read_text(path: &Path, what: &'static str) -> Result<String> {
    let bytes = read_bytes(path, what)?;
    String::from_utf8(bytes).map_err(|_| Error::NotPem {
        what,
        path: path.to_path_buf(),
        reason: "not UTF-8 text".into(),
    })
}

fn create_private_dir(dir: &Path) -> Result<()> {
    fs::DirBuilder::new()
        .recursive(true)
        .mode(0o700)
        .create(dir)
        .map_err(|source| Error::Io {
            action: "create directory",
            path: dir.to_path_buf(),
            source,
        })
}

fn create_dir(dir: &Path) -> Result<()> {
    fs::create_dir_all(dir).map_err(|source| Error::Io {
        action: "create directory",
        path: dir.to_path_buf(),
        source,
    })
}

fn same_file(a: &Path, b: &Path) -> bool {
    match (fs::canonicalize(a), fs::canonicalize(b)) {
        (Ok(a), Ok(b)) => a == b,
        _ => false,
    }
}

/// Write `data` to `path` with `mode`, atomically (temporary file + rename),
/// so that a key is never visible with looser permissions or half-written.
fn write_file(path: &Path, data: &[u8], mode: u32) -> Result<()> {
    let io_err = |action, p: &Path| {
        let p = p.to_path_buf();
        move |source| Error::Io {
            action,
            path: p,
            source,
        }
    };
    let mut tmp_name = path.file_name().unwrap_or_default().to_os_string();
    tmp_name.push(".tmp");
    let tmp = path.with_file_name(tmp_name);
    match fs::remove_file(&tmp) {
        Ok(()) => {}
        Err(e) if e.kind() == ErrorKind::NotFound => {}
        Err(e) => return Err(io_err("remove", &tmp)(e)),
    }
    let mut f = fs::OpenOptions::new()
        .write(true)
        .create_new(true)
        .mode(mode)
        .open(&tmp)
        .map_err(io_err("create", &tmp))?;
    f.set_permissions(fs::Permissions::from_mode(mode))
        .map_err(io_err("set permissions of", &tmp))?;
    f.write_all(data).map_err(io_err("write", &tmp))?;
    f.sync_all().map_err(io_err("sync", &tmp))?;
    drop(f);
    fs::rename(&tmp, path).map_err(io_err("rename into place", path))
}
