//! What CRIU will need of this agent to dump a container, checked before
//! anything is frozen (checkpoint and migrate both call
//! [`Agent::check_dumpable`]): a refusal here leaves the container running
//! untouched, where CRIU's own failure would come after the freeze with a
//! line that does not say why.
//!
//! Checked today:
//! * CAP_SYS_RESOURCE when a task of the container runs as another user or
//!   group than the agent: CRIU reads every task's rlimits with prlimit(2),
//!   which the kernel allows across users only with that capability (CRIU
//!   fails with "Can't get rlimit 0: Operation not permitted"). Root in some
//!   VMs and containers lacks it (../shared/ENVIRONMENT.md).

use std::fs;

use herd_wire::ContainerStatus;

use super::Agent;
use crate::error::{AgentError, Result};

/// Bit of CAP_SYS_RESOURCE in the capability sets of /proc/<pid>/status.
const CAP_SYS_RESOURCE: u32 = 24;

/// Who a task runs as: (real, effective, saved) uids and gids.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) struct Creds {
    pub uids: [u32; 3],
    pub gids: [u32; 3],
}

impl Agent {
    /// Refuse (with the reason) to dump container `name` when CRIU could not
    /// do it from this agent; nothing is changed either way.
    pub fn check_dumpable(&self, name: &str) -> Result<()> {
        let rec = self.entry(name)?.snapshot();
        let pid = match (rec.status, rec.pid) {
            (ContainerStatus::Running, Some(pid)) => pid,
            // The verbs themselves say why a container that does not run
            // cannot be dumped.
            _ => return Ok(()),
        };
        let me = fs::read_to_string("/proc/self/status")
            .map_err(|e| AgentError::Other(format!("read this agent's /proc/self/status: {e}")))?;
        let (my_creds, my_caps) = match (creds(&me), cap_eff(&me)) {
            (Some(c), Some(e)) => (c, e),
            _ => {
                return Err(AgentError::Other(
                    "cannot parse this agent's /proc/self/status".into(),
                ))
            }
        };
        if my_caps & (1 << CAP_SYS_RESOURCE) != 0 {
            return Ok(());
        }
        // prlimit(2) across users: the caller's real uid must equal the
        // target's real, effective and saved uids (and the same for gids).
        let uid = my_creds.uids[0];
        let gid = my_creds.gids[0];
        for (tid, status) in tasks(pid) {
            let Some(c) = creds(&status) else { continue };
            if c.uids.iter().all(|&u| u == uid) && c.gids.iter().all(|&g| g == gid) {
                continue;
            }
            let comm = field(&status, "Name:").unwrap_or("?").to_string();
            return Err(AgentError::Unsupported {
                what: format!("dumping container {name} on {}", self.cfg.node),
                reason: format!(
                    "its process {tid} ({comm}) runs as uid {} gid {} (real/effective/saved \
                     uids {:?}, gids {:?}) and this agent (uid {uid}) lacks CAP_SYS_RESOURCE, \
                     which CRIU needs to read the rlimits of another user's process; nothing \
                     was frozen, the container keeps running here. Containers with processes \
                     of other users can be checkpointed and moved between hosts where root \
                     has CAP_SYS_RESOURCE (e.g. the VM lab)",
                    c.uids[1], c.gids[1], c.uids, c.gids
                ),
            });
        }
        Ok(())
    }
}

/// Every task (thread) of the process tree under `pid`, with its
/// /proc status text; tasks that end while we look are left out.
fn tasks(pid: i32) -> Vec<(i32, String)> {
    let mut out = Vec::new();
    let mut todo = vec![pid];
    let mut seen = std::collections::HashSet::new();
    while let Some(p) = todo.pop() {
        if !seen.insert(p) {
            continue;
        }
        let Ok(rd) = fs::read_dir(format!("/proc/{p}/task")) else {
            continue;
        };
        for t in rd.flatten() {
            let Some(tid) = t.file_name().to_str().and_then(|s| s.parse::<i32>().ok()) else {
                continue;
            };
            let dir = format!("/proc/{p}/task/{tid}");
            if let Ok(s) = fs::read_to_string(format!("{dir}/status")) {
                out.push((tid, s));
            }
            if let Ok(ch) = fs::read_to_string(format!("{dir}/children")) {
                todo.extend(ch.split_whitespace().filter_map(|c| c.parse::<i32>().ok()));
            }
        }
    }
    out
}

fn field<'a>(status: &'a str, key: &str) -> Option<&'a str> {
    status
        .lines()
        .find_map(|l| l.strip_prefix(key))
        .map(str::trim)
}

fn three(v: &str) -> Option<[u32; 3]> {
    let mut it = v.split_whitespace().map(|x| x.parse::<u32>().ok());
    Some([it.next()??, it.next()??, it.next()??])
}

/// Real, effective and saved ids from a /proc status text.
pub(crate) fn creds(status: &str) -> Option<Creds> {
    Some(Creds {
        uids: three(field(status, "Uid:")?)?,
        gids: three(field(status, "Gid:")?)?,
    })
}

/// The effective capability set from a /proc status text.
pub(crate) fn cap_eff(status: &str) -> Option<u64> {
    u64::from_str_radix(field(status, "CapEff:")?, 16).ok()
}

#[cfg(test)]
mod tests {
    use super::*;

    const STATUS: &str = "Name:\tpostgres\nUmask:\t0077\nState:\tS (sleeping)\n\
        Uid:\t104\t104\t104\t104\nGid:\t110\t110\t110\t110\n\
        CapInh:\t0000000000000000\nCapEff:\t000001fffeffffff\n";

    #[test]
    fn parses_ids_and_caps() {
        let c = creds(STATUS).expect("creds");
        assert_eq!(c.uids, [104, 104, 104]);
        assert_eq!(c.gids, [110, 110, 110]);
        let e = cap_eff(STATUS).expect("capeff");
        assert_eq!(e & (1 << CAP_SYS_RESOURCE), 0);
        assert_ne!(e & (1 << 21), 0, "CAP_SYS_ADMIN is set in the sample");
    }

    #[test]
    fn garbage_is_none() {
        assert!(creds("Uid:\tx\n").is_none());
        assert!(cap_eff("CapEff:\tzz\n").is_none());
        assert!(creds("").is_none());
    }
}
