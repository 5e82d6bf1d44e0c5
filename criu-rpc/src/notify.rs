//! Notifications CRIU sends in the middle of a request.

use std::os::fd::{AsFd, BorrowedFd, OwnedFd};

/// Which notification CRIU sent (its action-script name).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
#[non_exhaustive]
pub enum NotifyKind {
    /// `pre-stream`: before the image streamer is used.
    PreStream,
    /// `pre-dump`: before the tree is frozen and dumped.
    PreDump,
    /// `post-dump`: the images are complete; the tree is still frozen.
    /// With `leave_running = false` it is killed right after this returns.
    PostDump,
    /// `pre-restore`: before restoring starts.
    PreRestore,
    /// `post-restore`: every task is restored but not yet resumed; carries the root pid.
    PostRestore,
    /// `network-lock`: lock the network now (external netns, custom lock).
    NetworkLock,
    /// `network-unlock`: unlock the network now.
    NetworkUnlock,
    /// `setup-namespaces`: the root task's namespaces exist; carries its pid.
    SetupNamespaces,
    /// `post-setup-namespaces`: namespaces are set up.
    PostSetupNamespaces,
    /// `pre-resume`: just before the tasks are resumed.
    PreResume,
    /// `post-resume`: the tasks run again.
    PostResume,
    /// `orphan-pts-master`: carries the master fd of an orphan pty (SCM_RIGHTS).
    OrphanPtsMaster,
    /// `status-ready`: e.g. a lazy dump's page server is listening.
    StatusReady,
    /// `query-ext-files`: CRIU asks for external files (answered with none).
    QueryExtFiles,
    /// A name this crate does not know; see [`Notify::script`].
    Other,
}

impl NotifyKind {
    /// The kind of a script name.
    pub fn from_script(script: &str) -> Self {
        match script {
            "pre-stream" => NotifyKind::PreStream,
            "pre-dump" => NotifyKind::PreDump,
            "post-dump" => NotifyKind::PostDump,
            "pre-restore" => NotifyKind::PreRestore,
            "post-restore" => NotifyKind::PostRestore,
            "network-lock" => NotifyKind::NetworkLock,
            "network-unlock" => NotifyKind::NetworkUnlock,
            "setup-namespaces" => NotifyKind::SetupNamespaces,
            "post-setup-namespaces" => NotifyKind::PostSetupNamespaces,
            "pre-resume" => NotifyKind::PreResume,
            "post-resume" => NotifyKind::PostResume,
            "orphan-pts-master" => NotifyKind::OrphanPtsMaster,
            "status-ready" => NotifyKind::StatusReady,
            "query-ext-files" => NotifyKind::QueryExtFiles,
            _ => NotifyKind::Other,
        }
    }
}

/// One notification: CRIU waits until the handler returns.
#[derive(Debug)]
pub struct Notify {
    script: String,
    pid: Option<i32>,
    fd: Option<OwnedFd>,
}

impl Notify {
    pub(crate) fn new(script: String, pid: Option<i32>, fd: Option<OwnedFd>) -> Self {
        Notify { script, pid, fd }
    }

    /// The script name as CRIU sent it (`post-dump`, ...).
    pub fn script(&self) -> &str {
        &self.script
    }

    /// The kind of notification.
    pub fn kind(&self) -> NotifyKind {
        NotifyKind::from_script(&self.script)
    }

    /// The restored root pid (`setup-namespaces`, `post-restore`).
    pub fn pid(&self) -> Option<i32> {
        self.pid
    }

    /// The fd CRIU attached (`orphan-pts-master`). It is closed when the
    /// handler returns: keep it with `try_clone_to_owned()`.
    pub fn fd(&self) -> Option<BorrowedFd<'_>> {
        self.fd.as_ref().map(|f| f.as_fd())
    }
}
