//! Herd's client of CRIU's RPC (`criu swrk`).
//!
//! This crate drives CRIU — check, feature check, version, dump, pre-dump,
//! restore, page server, lazy pages — and reads the statistics CRIU writes.
//! It knows nothing of containers or of the network: callers say which
//! pid, which directories, which external resources.
//!
//! # The RPC sequence
//!
//! Every request runs in a fresh CRIU process, the way runc and crun do it:
//!
//! 1. `socketpair(AF_UNIX, SOCK_SEQPACKET | SOCK_CLOEXEC)`. One end stays
//!    here; the other is passed to `criu swrk <fd>` (its `FD_CLOEXEC` is
//!    cleared in the child only, between fork and exec, together with the
//!    extra fds the caller wants CRIU to see — `inherit_fd` pipes, ...).
//!    CRIU's stdout/stderr go to a memfd that serves as the log of last
//!    resort. Directory fds (`images_dir_fd`, `work_dir_fd`) need no
//!    inheriting: CRIU opens them as `/proc/<our pid>/fd/<n>`, the peer pid
//!    of the socket.
//! 2. We send one `criu_req` (`type` + `criu_opts`) as one packet.
//! 3. When `opts.notify_scripts` is set (it is exactly when the caller
//!    gives a notify handler), CRIU stops at each action-script point and
//!    sends a `criu_resp` of type `NOTIFY` carrying `notify.script`
//!    (`pre-dump`, `network-lock`, `post-dump`, `setup-namespaces`,
//!    `post-restore`, `pre-resume`, `post-resume`, `status-ready`, ...),
//!    `notify.pid` for `setup-namespaces`/`post-restore`, and for
//!    `orphan-pts-master` an fd in an `SCM_RIGHTS` control message. It
//!    waits for a `criu_req` of type `NOTIFY` with `notify_success`. We
//!    call the handler and answer `true`, or `false` when it fails — CRIU
//!    then aborts the operation (a dump resumes the tree, a restore kills
//!    what it made), answers `success = false`, and we return
//!    [`Error::Notify`] with the handler's error.
//! 4. The final `criu_resp` has the request's type, `success`, and
//!    `cr_errno`/`cr_errmsg` on failure (both go into [`Error::Failed`]
//!    with the tail of CRIU's log file), `restore.pid`, `ps` (page server
//!    pid/port), `features` or `version`.
//! 5. CRIU exits after the response (we never set `keep_open`); we reap it.
//!    If it dies without a response, [`Error::NoResponse`] says how it
//!    ended and carries its log tail.
//!
//! Pre-dumps use `SINGLE_PRE_DUMP` (one pre-dump per process) rather than
//! the `PRE_DUMP` loop that keeps the process waiting for the next request.
//! The page server uses `PAGE_SERVER_CHLD`: CRIU forks the server, which
//! reports its own pid and port before serving; `criu swrk` answers with
//! them and exits, and the server lives on (reparented) until a dump has
//! sent it everything. (`PAGE_SERVER`, the daemon mode, reports pid 0 in
//! CRIU 4.2: `cr_page_server()` turns the daemon's pid into 0.) The lazy-pages daemon has no RPC
//! request, so [`Criu::lazy_pages`] runs `criu lazy-pages` as a command
//! and waits on its `--status-fd`.
//!
//! # Who reaps restored processes
//!
//! CRIU restores detached: the restored root is a child of the `criu swrk`
//! process, which exits right after answering, so the root is reparented to
//! the nearest subreaper (or init). With [`RestoreOpts::rst_sibling`] it is
//! created as a sibling of CRIU instead, i.e. as a child of the caller, who
//! must then `waitpid` it.
//!
//! # Kernel support
//!
//! Pre-dump needs soft-dirty memory tracking (`CONFIG_MEM_SOFT_DIRTY`).
//! [`Criu::pre_dump`] asks CRIU first and fails with [`Error::Unsupported`]
//! when the kernel lacks it. Lazy pages need userfaultfd.

mod error;
mod lazy;
mod notify;
mod opts;
mod stats;
mod swrk;

use std::fs::{File, OpenOptions};
use std::os::fd::{AsRawFd, RawFd};
use std::os::unix::fs::OpenOptionsExt;
use std::path::{Path, PathBuf};

use rust_criu::rust_criu_protobuf::rpc::{
    Cgroup_root, Criu_cg_mode, Criu_features, Criu_network_lock_method, Criu_opts,
    Criu_page_server_info, Criu_req, Criu_req_type, Ext_mount_map, Inherit_fd,
};

pub use error::{BoxError, Error, LogTail, Result};
pub use lazy::LazyPagesDaemon;
pub use notify::{Notify, NotifyKind};
pub use opts::{
    CgroupMode, CgroupRoot, DirRef, DumpOpts, InheritFd, LazyPagesOpts, NetworkLock,
    PageServerAddr, PageServerOpts, RestoreOpts, DEFAULT_LOG_LEVEL,
};
pub use stats::{read_dump_stats, read_restore_stats, DumpStats, RestoreStats};

use opts::LogOpts;
use swrk::{Handler, LogLocation, Outcome};

/// CRIU's version, from a `VERSION` request.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Version {
    /// Major number (4 for 4.2.1).
    pub major: i32,
    /// Minor number.
    pub minor: i32,
    /// Sublevel, when CRIU reports one.
    pub sublevel: Option<i32>,
    /// Extra number, when CRIU reports one.
    pub extra: Option<i32>,
    /// Git id of a development build.
    pub gitid: Option<String>,
    /// Release name.
    pub name: Option<String>,
}

impl Version {
    /// `major * 10000 + minor * 100 + sublevel`, as CRIU numbers versions.
    pub fn number(&self) -> i32 {
        self.major * 10000 + self.minor * 100 + self.sublevel.unwrap_or(0)
    }
}

impl std::fmt::Display for Version {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "{}.{}", self.major, self.minor)?;
        if let Some(s) = self.sublevel {
            write!(f, ".{s}")?;
        }
        Ok(())
    }
}

/// Which optional kernel features CRIU can use here (`FEATURE_CHECK`).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Features {
    /// Soft-dirty memory tracking: pre-dump / iterative migration.
    pub mem_track: bool,
    /// userfaultfd: lazy pages / post-copy migration.
    pub lazy_pages: bool,
    /// pidfd_open + pidfd_getfd: the pidfd store (pid reuse detection).
    pub pidfd_store: bool,
}

/// What a restore reports.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct RestoreResult {
    /// Pid of the restored root task (in the caller's pid namespace).
    pub pid: i32,
}

/// A page server CRIU started (`PAGE_SERVER_CHLD`).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct PageServerInfo {
    /// Pid of the page server process (detached; not our child).
    pub pid: i32,
    /// The TCP port it listens on (CRIU's pick when asked for 0).
    pub port: u16,
}

/// A CRIU binary to run requests with. Cheap to clone; every request
/// spawns its own `criu swrk` process, so concurrent use is fine as far as
/// this crate is concerned (CRIU itself may want dumps serialised).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Criu {
    bin: PathBuf,
}

impl Criu {
    /// Use this CRIU binary (or wrapper script).
    pub fn new(bin: impl Into<PathBuf>) -> Self {
        Criu { bin: bin.into() }
    }

    /// `$HERD_CRIU` when set and non-empty, else `criu` from `PATH`.
    pub fn from_env() -> Self {
        match std::env::var_os("HERD_CRIU") {
            Some(p) if !p.is_empty() => Criu::new(p),
            _ => Criu::new("criu"),
        }
    }

    /// The binary this client runs.
    pub fn bin(&self) -> &Path {
        &self.bin
    }

    /// CRIU's version (`VERSION`).
    pub fn version(&self) -> Result<Version> {
        let mut out = self.simple("version", Criu_req_type::VERSION, |_| {})?;
        if out.resp.version.is_none() {
            return Err(Error::Protocol {
                op: "version",
                detail: "the response has no version".into(),
                tail: out.tail(),
            });
        }
        let v = out.resp.version.get_or_default();
        Ok(Version {
            major: v.major_number(),
            minor: v.minor_number(),
            sublevel: v.has_sublevel().then(|| v.sublevel()),
            extra: v.has_extra().then(|| v.extra()),
            gitid: v.has_gitid().then(|| v.gitid().to_string()),
            name: v.has_name().then(|| v.name().to_string()),
        })
    }

    /// `criu check`: Ok when CRIU can work on this kernel. A failure
    /// carries CRIU's output.
    pub fn check(&self) -> Result<()> {
        self.simple("check", Criu_req_type::CHECK, |_| {})?;
        Ok(())
    }

    /// Asks which optional features this kernel and CRIU support.
    pub fn feature_check(&self) -> Result<Features> {
        let mut out = self.simple("feature check", Criu_req_type::FEATURE_CHECK, |req| {
            let mut f = Criu_features::new();
            f.set_mem_track(true);
            f.set_lazy_pages(true);
            f.set_pidfd_store(true);
            req.features = Some(f).into();
        })?;
        if out.resp.features.is_none() {
            return Err(Error::Protocol {
                op: "feature check",
                detail: "the response has no features".into(),
                tail: out.tail(),
            });
        }
        let f = out.resp.features.get_or_default();
        Ok(Features {
            mem_track: f.mem_track(),
            lazy_pages: f.lazy_pages(),
            pidfd_store: f.pidfd_store(),
        })
    }

    /// Dumps the tree rooted at `opts.pid` into `opts.images_dir`.
    pub fn dump(&self, opts: &DumpOpts) -> Result<()> {
        self.dump_inner(opts, None)
    }

    /// Like [`Criu::dump`], calling `notify` at every notification
    /// (`pre-dump`, `network-lock`, `post-dump`, `network-unlock`, ...). An
    /// error from `notify` aborts the dump: the tree keeps running.
    pub fn dump_with<F, E>(&self, opts: &DumpOpts, mut notify: F) -> Result<()>
    where
        F: FnMut(&Notify) -> std::result::Result<(), E>,
        E: Into<BoxError>,
    {
        let mut h = |n: &Notify| notify(n).map_err(Into::into);
        self.dump_inner(opts, Some(&mut h))
    }

    fn dump_inner(&self, opts: &DumpOpts, handler: Option<Handler<'_>>) -> Result<()> {
        let op = "dump";
        let mut held = Vec::new();
        let (mut o, log) = base_opts(op, &opts.log_opts("dump.log"), &mut held)?;
        fill_dump_opts(&mut o, opts)?;
        o.set_notify_scripts(handler.is_some());
        let pass = ps_fds(opts.page_server.as_ref());
        let req = request(Criu_req_type::DUMP, o);
        let out = swrk::run(&self.bin, op, &req, &pass, Some(log), handler)?;
        let r = finish(op, out).map(|_| ());
        drop(held);
        r
    }

    /// One pre-dump (`SINGLE_PRE_DUMP`): memory is copied while the tree
    /// runs, for a later dump with `parent_image`. Fails up front with
    /// [`Error::Unsupported`] when the kernel has no soft-dirty tracking.
    /// `leave_running` is implied.
    pub fn pre_dump(&self, opts: &DumpOpts) -> Result<()> {
        self.pre_dump_inner(opts, None)
    }

    /// [`Criu::pre_dump`] with a notify handler.
    pub fn pre_dump_with<F, E>(&self, opts: &DumpOpts, mut notify: F) -> Result<()>
    where
        F: FnMut(&Notify) -> std::result::Result<(), E>,
        E: Into<BoxError>,
    {
        let mut h = |n: &Notify| notify(n).map_err(Into::into);
        self.pre_dump_inner(opts, Some(&mut h))
    }

    fn pre_dump_inner(&self, opts: &DumpOpts, handler: Option<Handler<'_>>) -> Result<()> {
        let op = "pre-dump";
        if !self.feature_check()?.mem_track {
            return Err(Error::Unsupported {
                op,
                reason: "the kernel has no soft-dirty memory tracking (CONFIG_MEM_SOFT_DIRTY); \
                         iterative pre-copy is impossible here, use a plain or lazy (post-copy) dump"
                    .into(),
            });
        }
        let mut held = Vec::new();
        let (mut o, log) = base_opts(op, &opts.log_opts("pre-dump.log"), &mut held)?;
        fill_dump_opts(&mut o, opts)?;
        o.set_track_mem(true);
        o.set_notify_scripts(handler.is_some());
        let req = request(Criu_req_type::SINGLE_PRE_DUMP, o);
        // A pre-dump may send its pages to a page server too (pre-copy
        // migration): its socket must reach CRIU.
        let pass = ps_fds(opts.page_server.as_ref());
        let out = swrk::run(&self.bin, op, &req, &pass, Some(log), handler)?;
        let r = finish(op, out).map(|_| ());
        drop(held);
        r
    }

    /// Restores the tree from `opts.images_dir`.
    pub fn restore(&self, opts: &RestoreOpts) -> Result<RestoreResult> {
        self.restore_inner(opts, None)
    }

    /// Like [`Criu::restore`], calling `notify` at every notification
    /// (`pre-restore`, `setup-namespaces` with the pid, `post-setup-namespaces`,
    /// `post-restore` with the pid, `pre-resume`, `post-resume`,
    /// `orphan-pts-master` with an fd, ...). An error aborts the restore.
    pub fn restore_with<F, E>(&self, opts: &RestoreOpts, mut notify: F) -> Result<RestoreResult>
    where
        F: FnMut(&Notify) -> std::result::Result<(), E>,
        E: Into<BoxError>,
    {
        let mut h = |n: &Notify| notify(n).map_err(Into::into);
        self.restore_inner(opts, Some(&mut h))
    }

    fn restore_inner(
        &self,
        opts: &RestoreOpts,
        handler: Option<Handler<'_>>,
    ) -> Result<RestoreResult> {
        let op = "restore";
        let mut held = Vec::new();
        let (mut o, log) = base_opts(op, &opts.log_opts(), &mut held)?;
        let mut pass: Vec<RawFd> = opts.extra_fds.clone();
        o.set_leave_stopped(opts.leave_stopped);
        o.set_tcp_established(opts.tcp_established);
        o.set_ext_unix_sk(opts.ext_unix_sk);
        o.set_file_locks(opts.file_locks);
        o.set_shell_job(opts.shell_job);
        set_cgroups(&mut o, opts.manage_cgroups, opts.manage_cgroups_mode);
        o.external = opts.external.clone();
        o.ext_mnt = ext_mnt(&opts.ext_mnt);
        if let Some(r) = &opts.root {
            o.set_root(path_str(r)?);
        }
        for i in &opts.inherit_fd {
            let mut m = Inherit_fd::new();
            m.set_key(i.key.clone());
            m.set_fd(i.fd);
            o.inherit_fd.push(m);
            pass.push(i.fd);
        }
        o.set_rst_sibling(opts.rst_sibling);
        o.set_orphan_pts_master(opts.orphan_pts_master);
        if let Some(n) = opts.network_lock {
            o.set_network_lock(net_lock(n));
        }
        o.set_lazy_pages(opts.lazy_pages);
        o.cg_root = cg_root(&opts.cgroup_root);
        o.set_auto_dedup(opts.auto_dedup);
        o.set_link_remap(opts.link_remap);
        o.set_notify_scripts(handler.is_some());
        pass.sort_unstable();
        pass.dedup();
        let req = request(Criu_req_type::RESTORE, o);
        let out = swrk::run(&self.bin, op, &req, &pass, Some(log), handler)?;
        let mut out = finish(op, out)?;
        drop(held);
        match out.resp.restore.as_ref().map(|r| r.pid()) {
            Some(pid) => Ok(RestoreResult { pid }),
            None => Err(Error::Protocol {
                op,
                detail: "the response has no restored pid".into(),
                tail: out.tail(),
            }),
        }
    }

    /// Starts a page server (`PAGE_SERVER_CHLD`) that receives a dump's
    /// pages into `opts.images_dir`; returns its pid and port. It exits by
    /// itself once a dump has finished sending; kill it to stop it sooner.
    pub fn page_server(&self, opts: &PageServerOpts) -> Result<PageServerInfo> {
        let op = "page-server";
        let mut held = Vec::new();
        let (mut o, log) = base_opts(op, &opts.log_opts(), &mut held)?;
        let mut ps = Criu_page_server_info::new();
        if !opts.listen.address.is_empty() {
            ps.set_address(opts.listen.address.clone());
        }
        ps.set_port(i32::from(opts.listen.port));
        if let Some(fd) = opts.listen.fd {
            ps.set_fd(fd);
        }
        o.ps = Some(ps).into();
        if let Some(p) = &opts.parent_image {
            o.set_parent_img(p.clone());
        }
        o.set_auto_dedup(opts.auto_dedup);
        let req = request(Criu_req_type::PAGE_SERVER_CHLD, o);
        let pass = ps_fds(Some(&opts.listen));
        let out = swrk::run(&self.bin, op, &req, &pass, Some(log), None)?;
        let mut out = finish(op, out)?;
        drop(held);
        let ps = out
            .resp
            .ps
            .as_ref()
            .filter(|p| p.has_pid() && p.pid() > 0)
            .map(|p| (p.pid(), p.port()));
        match ps {
            Some((pid, port)) => Ok(PageServerInfo {
                pid,
                port: u16::try_from(port).unwrap_or(0),
            }),
            None => Err(Error::Protocol {
                op,
                detail: "the response has no page server pid".into(),
                tail: out.tail(),
            }),
        }
    }

    /// Starts `criu lazy-pages` (the post-copy memory daemon of a lazy
    /// restore) and waits until it is ready (its `--status-fd`). Then run
    /// [`Criu::restore`] with `lazy_pages = true` and the same work dir.
    pub fn lazy_pages(&self, opts: &LazyPagesOpts) -> Result<LazyPagesDaemon> {
        lazy::start(&self.bin, opts)
    }

    fn simple(
        &self,
        op: &'static str,
        ty: Criu_req_type,
        fill: impl FnOnce(&mut Criu_req),
    ) -> Result<Outcome> {
        let mut req = Criu_req::new();
        req.set_type(ty);
        fill(&mut req);
        let out = swrk::run(&self.bin, op, &req, &[], None, None)?;
        finish(op, out)
    }
}

fn request(ty: Criu_req_type, o: Criu_opts) -> Criu_req {
    let mut req = Criu_req::new();
    req.set_type(ty);
    req.opts = Some(o).into();
    req
}

/// Turns `success = false` into [`Error::Failed`].
fn finish(op: &'static str, mut out: Outcome) -> Result<Outcome> {
    if out.resp.success() {
        return Ok(out);
    }
    let errno = out
        .resp
        .has_cr_errno()
        .then(|| out.resp.cr_errno())
        .filter(|e| *e != 0);
    // cr_errmsg is CRIU's *first* error, which can be a harmless one (here
    // every run logs an RLIMIT_NOFILE error). The cause is then the first
    // other error in the whole log, often far above the tail: lead with it.
    let tail = out.tail();
    let first_real = std::fs::read_to_string(&tail.source).ok().and_then(|log| {
        log.lines()
            .find(|l| l.contains("Error (") && !l.contains("RLIMIT_NOFILE"))
            .map(|l| l.trim().to_string())
    });
    let msg = out.resp.cr_errmsg().trim().to_string();
    let harmless = msg.is_empty() || msg.contains("RLIMIT_NOFILE");
    let mut reason = match (&first_real, harmless) {
        (Some(first), true) => first.clone(),
        (None, _) if msg.is_empty() => "CRIU gave no error message".to_string(),
        _ => msg,
    };
    if let Some(e) = errno {
        reason.push_str(&format!(
            " (cr_errno {e}: {})",
            std::io::Error::from_raw_os_error(e)
        ));
    }
    if let Some(first) = first_real {
        if !reason.contains(&first) {
            reason.push_str(&format!("; first error in the log: {first}"));
        }
    }
    // Skip the generic "Dumping FAILED." / "Restoring FAILED." summary.
    let is_error = |l: &&String| l.contains("Error (") && !l.trim_end().ends_with("FAILED.");
    if let Some(last) = tail.lines.iter().rev().find(is_error) {
        let last = last.trim();
        if !reason.contains(last) {
            reason.push_str(&format!("; last error in the log: {last}"));
        }
    }
    Err(Error::Failed {
        op,
        reason,
        errno,
        tail,
    })
}

fn open_dir(op: &'static str, p: &Path) -> Result<File> {
    OpenOptions::new()
        .read(true)
        .custom_flags(libc::O_DIRECTORY)
        .open(p)
        .map_err(|source| Error::Io {
            op,
            what: format!("cannot open directory {}", p.display()),
            source,
        })
}

/// The fd to send for a directory, and how to name/read a file in it.
fn dir_fd(op: &'static str, d: &DirRef, held: &mut Vec<File>) -> Result<(RawFd, String)> {
    match d {
        DirRef::Path(p) if p.as_os_str().is_empty() => Err(Error::InvalidOption(format!(
            "{op}: a directory is required (images_dir is empty)"
        ))),
        DirRef::Path(p) => {
            let f = open_dir(op, p)?;
            let fd = f.as_raw_fd();
            held.push(f);
            Ok((fd, p.display().to_string()))
        }
        DirRef::Fd(fd) => Ok((*fd, format!("/proc/self/fd/{fd}"))),
    }
}

fn base_opts(
    op: &'static str,
    l: &LogOpts<'_>,
    held: &mut Vec<File>,
) -> Result<(Criu_opts, LogLocation)> {
    if l.log_file.is_empty() || l.log_file.contains('/') {
        return Err(Error::InvalidOption(format!(
            "log file {:?}: must be a plain file name (CRIU puts it in the work dir)",
            l.log_file
        )));
    }
    let mut o = Criu_opts::new();
    let (img_fd, img_shown) = dir_fd(op, l.images_dir, held)?;
    o.set_images_dir_fd(img_fd);
    let mut log_dir = (img_fd, img_shown);
    if let Some(w) = l.work_dir {
        let (fd, shown) = dir_fd(op, w, held)?;
        o.set_work_dir_fd(fd);
        log_dir = (fd, shown);
    }
    o.set_log_file(l.log_file.to_string());
    o.set_log_level(i32::try_from(l.log_level.min(4)).unwrap_or(4));
    let log = LogLocation {
        shown: format!("{}/{}", log_dir.1, l.log_file),
        readable: PathBuf::from(format!("/proc/self/fd/{}/{}", log_dir.0, l.log_file)),
    };
    Ok((o, log))
}

fn fill_dump_opts(o: &mut Criu_opts, opts: &DumpOpts) -> Result<()> {
    o.set_pid(opts.pid);
    o.set_leave_running(opts.leave_running);
    if opts.leave_stopped {
        o.set_leave_stopped(true);
    }
    if let Some(p) = &opts.parent_image {
        o.set_parent_img(p.clone());
    }
    o.set_tcp_established(opts.tcp_established);
    o.set_ext_unix_sk(opts.ext_unix_sk);
    o.set_file_locks(opts.file_locks);
    o.set_shell_job(opts.shell_job);
    set_cgroups(o, opts.manage_cgroups, opts.manage_cgroups_mode);
    if let Some(c) = &opts.freeze_cgroup {
        o.set_freeze_cgroup(c.clone());
    }
    o.external = opts.external.clone();
    o.ext_mnt = ext_mnt(&opts.ext_mnt);
    if let Some(r) = &opts.root {
        o.set_root(path_str(r)?);
    }
    if let Some(n) = opts.network_lock {
        o.set_network_lock(net_lock(n));
    }
    o.set_lazy_pages(opts.lazy_pages);
    if let Some(ps) = &opts.page_server {
        let mut p = Criu_page_server_info::new();
        if !ps.address.is_empty() {
            p.set_address(ps.address.clone());
        }
        p.set_port(i32::from(ps.port));
        if let Some(fd) = ps.fd {
            p.set_fd(fd);
        }
        o.ps = Some(p).into();
    }
    o.set_track_mem(opts.track_mem);
    o.set_auto_dedup(opts.auto_dedup);
    o.cg_root = cg_root(&opts.cgroup_root);
    o.set_link_remap(opts.link_remap);
    o.set_tcp_close(opts.tcp_close);
    if let Some(t) = opts.timeout_secs {
        o.set_timeout(t);
    }
    Ok(())
}

/// The page-server socket CRIU must inherit, if one was given.
fn ps_fds(ps: Option<&PageServerAddr>) -> Vec<RawFd> {
    ps.and_then(|p| p.fd).into_iter().collect()
}

fn set_cgroups(o: &mut Criu_opts, manage: bool, mode: Option<CgroupMode>) {
    if manage {
        o.set_manage_cgroups(true);
    }
    if let Some(m) = mode {
        o.set_manage_cgroups_mode(match m {
            CgroupMode::Ignore => Criu_cg_mode::IGNORE,
            CgroupMode::Soft => Criu_cg_mode::SOFT,
            CgroupMode::Full => Criu_cg_mode::FULL,
            CgroupMode::Strict => Criu_cg_mode::STRICT,
            CgroupMode::Props => Criu_cg_mode::PROPS,
            CgroupMode::None => Criu_cg_mode::CG_NONE,
            CgroupMode::Default => Criu_cg_mode::DEFAULT,
        });
    }
}

fn net_lock(n: NetworkLock) -> Criu_network_lock_method {
    match n {
        NetworkLock::Iptables => Criu_network_lock_method::IPTABLES,
        NetworkLock::Nftables => Criu_network_lock_method::NFTABLES,
        NetworkLock::Skip => Criu_network_lock_method::SKIP,
    }
}

fn ext_mnt(m: &std::collections::BTreeMap<String, String>) -> Vec<Ext_mount_map> {
    m.iter()
        .map(|(k, v)| {
            let mut e = Ext_mount_map::new();
            e.set_key(k.clone());
            e.set_val(v.clone());
            e
        })
        .collect()
}

fn cg_root(roots: &[CgroupRoot]) -> Vec<Cgroup_root> {
    roots
        .iter()
        .map(|r| {
            let mut c = Cgroup_root::new();
            if let Some(ctrl) = &r.controller {
                c.set_ctrl(ctrl.clone());
            }
            c.set_path(r.path.clone());
            c
        })
        .collect()
}

fn path_str(p: &Path) -> Result<String> {
    p.to_str()
        .map(str::to_string)
        .ok_or_else(|| Error::InvalidOption(format!("path {} is not UTF-8", p.display())))
}
