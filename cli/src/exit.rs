//! `herd`'s exit status, as Podman's and Docker's:
//!
//! | status | meaning |
//! |---|---|
//! | 0 | success |
//! | 125 | herd's own error: a bad flag or argument, no such container, image or node, an agent that does not answer or refuses, a listing that missed a node |
//! | 126 | the container's command cannot be invoked (found, not executable) |
//! | 127 | the container's command was not found |
//! | N | `herd exec`: the command's own exit status |
//!
//! (`herd wait` prints each container's exit status and exits 0, as
//! Podman's `wait`.)

use herd_wire::ErrorKind;

use crate::client::AgentFailure;

/// herd itself failed.
pub const HERD_ERROR: i32 = 125;
/// The container's command cannot be invoked.
pub const CANNOT_INVOKE: i32 = 126;
/// The container's command was not found.
pub const NOT_FOUND: i32 = 127;

/// The text `herd --help` ends with.
pub const HELP: &str = "\
Exit status (as Podman's):
  0    success
  125  herd's own error: a bad flag or argument, no such container, image or
       node, an agent that does not answer or refuses, a node a listing missed
  126  the container's command cannot be invoked (found, not executable)
  127  the container's command was not found
  N    herd exec: the command's own exit status";

/// The exit status for an error that ended a command.
pub fn of(e: &anyhow::Error) -> i32 {
    for cause in e.chain() {
        if let Some(f) = cause.downcast_ref::<AgentFailure>() {
            return match f.err.kind {
                ErrorKind::CommandNotFound => NOT_FOUND,
                ErrorKind::CannotExecute => CANNOT_INVOKE,
                _ => HERD_ERROR,
            };
        }
    }
    HERD_ERROR
}
