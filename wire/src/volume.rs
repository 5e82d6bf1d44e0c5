//! `-v/--volume HOST:CTR[:ro|rw]`: a host directory or file bind-mounted
//! into a container, as Podman's bind volumes (named volumes are not
//! supported: the host side must be an absolute path).
//!
//! A migration keeps the mount: the target agent re-binds the same host
//! path and refuses at Prepare (before anything freezes) when that path
//! does not exist there. The data behind it is never copied.

use serde::{Deserialize, Serialize};

#[derive(Debug, Clone, Serialize, Deserialize, PartialEq, Eq)]
pub struct Volume {
    /// Absolute path on the agent's host.
    pub host: String,
    /// Absolute path inside the container.
    pub container: String,
    pub read_only: bool,
}

impl Volume {
    /// `HOST:CTR`, `HOST:CTR:ro` or `HOST:CTR:rw`; both paths absolute,
    /// without `..`, the container side not `/`.
    pub fn parse(s: &str) -> Result<Volume, String> {
        let parts: Vec<&str> = s.split(':').collect();
        let (host, ctr, opts) = match parts.as_slice() {
            [h, c] => (*h, *c, ""),
            [h, c, o] => (*h, *c, *o),
            _ => return Err(format!("{s:?}: expected HOST:CONTAINER[:ro|rw]")),
        };
        let mut read_only = false;
        for o in opts.split(',').filter(|o| !o.is_empty()) {
            match o {
                "ro" => read_only = true,
                "rw" => read_only = false,
                _ => return Err(format!("{s:?}: unknown option {o:?} (ro or rw)")),
            }
        }
        let v = Volume {
            host: host.to_string(),
            container: ctr.to_string(),
            read_only,
        };
        v.check().map_err(|e| format!("{s:?}: {e}"))?;
        Ok(v)
    }

    /// Both paths absolute and plain; the container side not `/` nor in
    /// /proc, /sys or /dev.
    pub fn check(&self) -> Result<(), String> {
        for (side, p) in [("host", &self.host), ("container", &self.container)] {
            if !p.starts_with('/') {
                return Err(format!(
                    "the {side} path {p:?} is not absolute{}",
                    if side == "host" {
                        " (named volumes are not supported)"
                    } else {
                        ""
                    }
                ));
            }
            if p.split('/').any(|c| c == ".." || c == ".") || p.contains('\0') {
                return Err(format!("the {side} path {p:?} has . or .. in it"));
            }
        }
        let c = self.container.trim_end_matches('/');
        if c.is_empty() {
            return Err("cannot mount over the container's /".into());
        }
        for top in ["/proc", "/sys", "/dev"] {
            if c == top || c.starts_with(&format!("{top}/")) {
                return Err(format!("cannot mount over the container's {top}"));
            }
        }
        Ok(())
    }

    /// The form `parse` takes.
    pub fn spec(&self) -> String {
        format!(
            "{}:{}{}",
            self.host,
            self.container,
            if self.read_only { ":ro" } else { "" }
        )
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn volume_specs_parse_as_podman_writes_them() {
        let v = Volume::parse("/srv/d:/data:ro").unwrap();
        assert_eq!((v.host.as_str(), v.container.as_str()), ("/srv/d", "/data"));
        assert!(v.read_only);
        assert!(!Volume::parse("/a:/b").unwrap().read_only);
        assert!(!Volume::parse("/a:/b:rw").unwrap().read_only);
        assert_eq!(Volume::parse("/a:/b:ro").unwrap().spec(), "/a:/b:ro");
        for bad in [
            "",
            "/a",
            "/a:/b:ro:x",
            "named:/data",
            "/a:b",
            "/a:/",
            "/a:/b:rx",
            "/a/../b:/c",
            "/a:/proc",
            "/a:/dev/x",
            "/a:/b/./c",
        ] {
            assert!(Volume::parse(bad).is_err(), "{bad:?} accepted");
        }
    }
}
