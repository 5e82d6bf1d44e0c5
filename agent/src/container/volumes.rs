//! Bind mounts (`herd run -v HOST:CTR[:ro]`, [`herd_wire::volume`]).
//!
//! In the OCI spec each is a `bind` mount (not `rbind`: a host submount
//! would be one more mount CRIU must be told about), private, `ro` when
//! asked. To CRIU each is an external mount: dumped as
//! `mnt[<CTR>]:herd-vol-<i>` (CRIU records the mount, not what is in it)
//! and restored as `mnt[herd-vol-<i>]:<HOST>`, so a restore, here or on a
//! migration target, binds the same host path again. The data behind the
//! mount is never copied: a target must have it already (shared storage,
//! or a copy made by the user). A target without the host path refuses at
//! Prepare, before the source freezes anything.

use herd_wire::Volume;

use super::Agent;
use crate::error::{AgentError, Result};

fn key(i: usize) -> String {
    format!("herd-vol-{i}")
}

/// CRIU's `external` entries for a dump.
pub(crate) fn dump_externals(vols: &[Volume]) -> Vec<String> {
    vols.iter()
        .enumerate()
        .map(|(i, v)| format!("mnt[{}]:{}", v.container, key(i)))
        .collect()
}

/// CRIU's `external` entries for a restore.
pub(crate) fn restore_externals(vols: &[Volume]) -> Vec<String> {
    vols.iter()
        .enumerate()
        .map(|(i, v)| format!("mnt[{}]:{}", key(i), v.host))
        .collect()
}

impl Agent {
    /// Each volume well formed, its host path there on this host, and no
    /// two at one container path.
    pub(crate) fn check_volumes(&self, name: &str, vols: &[Volume]) -> Result<()> {
        for (i, v) in vols.iter().enumerate() {
            v.check().map_err(|reason| AgentError::Invalid {
                what: "volume",
                reason: format!("-v {}: {reason}", v.spec()),
            })?;
            if vols[..i].iter().any(|o| o.container == v.container) {
                return Err(AgentError::Invalid {
                    what: "volume",
                    reason: format!("two volumes at {} in the container", v.container),
                });
            }
            if let Err(e) = std::fs::metadata(&v.host) {
                return Err(AgentError::Invalid {
                    what: "volume",
                    reason: format!(
                        "container {name}: the host path {} of -v {} is not there on {} ({e}); \
                         a bind mount needs it on the node the container runs on (its data is \
                         never copied by herd)",
                        v.host,
                        v.spec(),
                        self.cfg.node
                    ),
                });
            }
        }
        Ok(())
    }
}
