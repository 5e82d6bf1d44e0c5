//! Options of each request, as plain structs with public fields.
//!
//! Build them with `new(..)` and struct update syntax:
//!
//! ```
//! use herd_criu::{DumpOpts, NetworkLock};
//! let opts = DumpOpts {
//!     leave_running: true,
//!     network_lock: Some(NetworkLock::Nftables),
//!     ..DumpOpts::new(1234, "/var/lib/herd/images/c1")
//! };
//! assert_eq!(opts.pid, 1234);
//! ```
//!
//! Every field maps to one field of CRIU's `criu_opts` (rpc.proto); the
//! field docs name it and say what CRIU does with it.

use std::collections::BTreeMap;
use std::os::fd::RawFd;
use std::path::{Path, PathBuf};

/// A directory given to CRIU either by path (this crate opens it for the
/// duration of the request) or as an open file descriptor of the calling
/// process (CRIU reads it through `/proc/<caller>/fd/<fd>`; keep it open
/// until the call returns).
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum DirRef {
    /// A path; opened with `O_DIRECTORY | O_CLOEXEC` for the request.
    Path(PathBuf),
    /// An open directory fd of this process.
    Fd(RawFd),
}

impl Default for DirRef {
    fn default() -> Self {
        DirRef::Path(PathBuf::new())
    }
}

impl From<PathBuf> for DirRef {
    fn from(p: PathBuf) -> Self {
        DirRef::Path(p)
    }
}

impl From<&Path> for DirRef {
    fn from(p: &Path) -> Self {
        DirRef::Path(p.to_path_buf())
    }
}

impl From<&str> for DirRef {
    fn from(p: &str) -> Self {
        DirRef::Path(PathBuf::from(p))
    }
}

impl From<String> for DirRef {
    fn from(p: String) -> Self {
        DirRef::Path(PathBuf::from(p))
    }
}

/// How CRIU handles the cgroups of the tree (`manage_cgroups_mode`,
/// CRIU's `--manage-cgroups=<mode>`).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum CgroupMode {
    /// Do not dump or restore cgroups at all.
    Ignore,
    /// Restore into the existing cgroups; do not set properties of existing ones.
    Soft,
    /// Create and set up every cgroup CRIU dumped, failing if one exists.
    Full,
    /// Like `Full` and also fail on any mismatch.
    Strict,
    /// Only restore cgroup properties.
    Props,
    /// Dump and restore nothing but the task's membership paths.
    None,
    /// CRIU's default (`soft`).
    Default,
}

/// How CRIU locks the network during a dump/restore (`network_lock`).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum NetworkLock {
    /// iptables rules (CRIU's default; needs `iptables-restore`).
    Iptables,
    /// An nftables table (needs CRIU built with libnftables).
    Nftables,
    /// No network locking at all (the caller locks the network itself).
    Skip,
}

/// Address of a page server (`ps`): where a dump sends its pages, or where
/// a lazy dump serves them.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct PageServerAddr {
    /// IP address (dump: to connect to; page server: to listen on, empty = any).
    pub address: String,
    /// TCP port (page server: 0 lets CRIU pick one and report it).
    pub port: u16,
    /// A connected stream socket of this process to use instead of
    /// `address`/`port` (`ps.fd`, CRIU's `--ps-socket`; `criu swrk` only).
    /// A unix socketpair works: the page traffic then needs no TCP at all.
    /// It is passed into the CRIU process under the same number.
    pub fd: Option<RawFd>,
}

/// One `cg_root` entry: restore the cgroups of `controller` (all
/// controllers when `None`) under `path` instead of where they were.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct CgroupRoot {
    /// A controller name such as `memory`, or `None` for all.
    pub controller: Option<String>,
    /// The new root path of that controller's cgroups.
    pub path: String,
}

/// One `inherit_fd` entry (restore only): give the restored tree this fd of
/// ours wherever it had the resource named `key` (such as `pipe:[12345]`).
/// The fd is passed into the `criu swrk` process under the same number.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct InheritFd {
    /// The resource as CRIU names it in the images (`pipe:[ino]`, `file[..]`, ...).
    pub key: String,
    /// An open fd of this process.
    pub fd: RawFd,
}

/// Options shared by all requests that write a log into a directory.
pub(crate) struct LogOpts<'a> {
    pub(crate) images_dir: &'a DirRef,
    pub(crate) work_dir: Option<&'a DirRef>,
    pub(crate) log_file: &'a str,
    pub(crate) log_level: u32,
}

/// The log level this crate asks for unless told otherwise: 4 (debug), the
/// one runc uses, so that a failure's log tail explains it.
pub const DEFAULT_LOG_LEVEL: u32 = 4;

/// Options of [`Criu::dump`](crate::Criu::dump) and
/// [`Criu::pre_dump`](crate::Criu::pre_dump).
#[derive(Debug, Clone, Default)]
pub struct DumpOpts {
    /// Where CRIU writes the images (`images_dir_fd`). Required.
    pub images_dir: DirRef,
    /// Where CRIU writes its log and other work files (`work_dir_fd`);
    /// defaults to the images dir.
    pub work_dir: Option<DirRef>,
    /// The images of the previous pre-dump, relative to the images dir
    /// (`parent_img`, e.g. `../pre1`): only changed pages are written.
    pub parent_image: Option<String>,
    /// Log file name inside the work dir (`log_file`, no `/`); `dump.log`
    /// (`pre-dump.log` for a pre-dump) when `None`.
    pub log_file: Option<String>,
    /// CRIU log level 0-4 (`log_level`); see [`DEFAULT_LOG_LEVEL`].
    pub log_level: u32,
    /// Root of the process tree to dump (`pid`).
    pub pid: i32,
    /// Leave the tree running after the dump (`leave_running`).
    pub leave_running: bool,
    /// Leave the tree stopped (SIGSTOP) after the dump (`leave_stopped`,
    /// rpc.proto field 69, present since CRIU 3.x RPC and honoured by 4.x).
    pub leave_stopped: bool,
    /// Dump established TCP connections (`tcp_established`).
    pub tcp_established: bool,
    /// Allow connections to unix sockets outside the tree (`ext_unix_sk`).
    pub ext_unix_sk: bool,
    /// Dump file locks (`file_locks`).
    pub file_locks: bool,
    /// The tree is a shell job: session and tty outside it (`shell_job`).
    pub shell_job: bool,
    /// Dump cgroups (`manage_cgroups`; CRIU treats `true` as mode soft).
    pub manage_cgroups: bool,
    /// Cgroup mode (`manage_cgroups_mode`); overrides `manage_cgroups`.
    pub manage_cgroups_mode: Option<CgroupMode>,
    /// Freeze the tree through this freezer cgroup instead of ptrace
    /// (`freeze_cgroup`, a path such as `/sys/fs/cgroup/freezer/c1`).
    pub freeze_cgroup: Option<String>,
    /// External resources (`external`): `mnt[<path>]:<key>`,
    /// `net[<inode>]:<key>`, `pid[<inode>]:<key>`, `veth[..]:..`, `dev[..]:..`.
    pub external: Vec<String>,
    /// External bind mounts (`ext_mnt`): mount point -> key written in the images.
    pub ext_mnt: BTreeMap<String, String>,
    /// Root directory of the tree when it differs from `/` (`root`).
    pub root: Option<PathBuf>,
    /// How to lock the network (`network_lock`); CRIU's default (iptables) when `None`.
    pub network_lock: Option<NetworkLock>,
    /// Lazy dump (`lazy_pages`): memory is not written but served from
    /// `page_server` to a lazy-pages daemon; the dump returns when all pages
    /// have been fetched. A `status-ready` notify says it is serving.
    pub lazy_pages: bool,
    /// Send pages to this page server instead of the images dir (`ps`), or
    /// (with `lazy_pages`) serve them on this address/port.
    pub page_server: Option<PageServerAddr>,
    /// Track memory changes for later pre-dumps (`track_mem`; needs soft-dirty).
    pub track_mem: bool,
    /// Punch holes in parent images as pages are written (`auto_dedup`).
    pub auto_dedup: bool,
    /// Cgroup roots (`cg_root`).
    pub cgroup_root: Vec<CgroupRoot>,
    /// Allow link remaps of deleted/unlinked files (`link_remap`).
    pub link_remap: bool,
    /// Close established TCP connections instead of dumping them (`tcp_close`).
    pub tcp_close: bool,
    /// Fail if freezing takes longer than this many seconds (`timeout`).
    pub timeout_secs: Option<u32>,
}

impl DumpOpts {
    /// Dump `pid` into `images_dir`, everything else default.
    pub fn new(pid: i32, images_dir: impl Into<DirRef>) -> Self {
        DumpOpts {
            pid,
            images_dir: images_dir.into(),
            log_level: DEFAULT_LOG_LEVEL,
            ..Default::default()
        }
    }

    pub(crate) fn log_opts(&self, default_log: &'static str) -> LogOpts<'_> {
        LogOpts {
            images_dir: &self.images_dir,
            work_dir: self.work_dir.as_ref(),
            log_file: self.log_file.as_deref().unwrap_or(default_log),
            log_level: self.log_level,
        }
    }
}

/// Options of [`Criu::restore`](crate::Criu::restore).
#[derive(Debug, Clone, Default)]
pub struct RestoreOpts {
    /// Where the images are (`images_dir_fd`). Required.
    pub images_dir: DirRef,
    /// Where CRIU writes its log (`work_dir_fd`); defaults to the images dir.
    pub work_dir: Option<DirRef>,
    /// Log file name inside the work dir; `restore.log` when `None`.
    pub log_file: Option<String>,
    /// CRIU log level 0-4; see [`DEFAULT_LOG_LEVEL`].
    pub log_level: u32,
    /// Leave the restored tree stopped (`leave_stopped`).
    pub leave_stopped: bool,
    /// Restore established TCP connections (`tcp_established`).
    pub tcp_established: bool,
    /// Allow external unix socket connections (`ext_unix_sk`).
    pub ext_unix_sk: bool,
    /// Restore file locks (`file_locks`).
    pub file_locks: bool,
    /// Restore as a shell job attached to CRIU's session (`shell_job`).
    pub shell_job: bool,
    /// Restore cgroups (`manage_cgroups`; `true` is mode soft).
    pub manage_cgroups: bool,
    /// Cgroup mode (`manage_cgroups_mode`); overrides `manage_cgroups`.
    pub manage_cgroups_mode: Option<CgroupMode>,
    /// External resources (`external`) as CRIU's `--external` takes them on
    /// restore, e.g. `mnt[<key>]:<path>`. An external network namespace is
    /// given with `inherit_fd` instead (key = the dump's key, fd = an open
    /// netns fd), as runc does.
    pub external: Vec<String>,
    /// External mounts (`ext_mnt`): key from the dump -> host path to bind.
    pub ext_mnt: BTreeMap<String, String>,
    /// Root directory to restore into (`root`).
    pub root: Option<PathBuf>,
    /// Fds to hand to the restored tree (`inherit_fd`).
    pub inherit_fd: Vec<InheritFd>,
    /// Restore the tree as a sibling of CRIU, i.e. as a child of this
    /// process (`rst_sibling`): the caller must reap it. Without it, the
    /// restored root is a child of the `criu swrk` process, which exits
    /// right after the restore, so it is reparented to the nearest
    /// subreaper (or init) and this process cannot `waitpid` it.
    pub rst_sibling: bool,
    /// Send the master of orphan ptys (the other end is in the tree) to
    /// the caller in an `orphan-pts-master` notify (`orphan_pts_master`).
    pub orphan_pts_master: bool,
    /// How to unlock/lock the network (`network_lock`).
    pub network_lock: Option<NetworkLock>,
    /// Lazy restore (`lazy_pages`): memory comes from a running
    /// lazy-pages daemon (see [`Criu::lazy_pages`](crate::Criu::lazy_pages))
    /// through `lazy-pages.socket` in the work dir.
    pub lazy_pages: bool,
    /// Cgroup roots (`cg_root`).
    pub cgroup_root: Vec<CgroupRoot>,
    /// Deduplicate pages while restoring (`auto_dedup`).
    pub auto_dedup: bool,
    /// Allow link remaps (`link_remap`).
    pub link_remap: bool,
    /// More fds to pass into the `criu swrk` process (without
    /// `FD_CLOEXEC`, same number) besides those of `inherit_fd`.
    pub extra_fds: Vec<RawFd>,
}

impl RestoreOpts {
    /// Restore from `images_dir`, everything else default.
    pub fn new(images_dir: impl Into<DirRef>) -> Self {
        RestoreOpts {
            images_dir: images_dir.into(),
            log_level: DEFAULT_LOG_LEVEL,
            ..Default::default()
        }
    }

    pub(crate) fn log_opts(&self) -> LogOpts<'_> {
        LogOpts {
            images_dir: &self.images_dir,
            work_dir: self.work_dir.as_ref(),
            log_file: self.log_file.as_deref().unwrap_or("restore.log"),
            log_level: self.log_level,
        }
    }
}

/// Options of [`Criu::page_server`](crate::Criu::page_server): a page
/// server daemon that receives the pages of a dump (`criu page-server`).
#[derive(Debug, Clone, Default)]
pub struct PageServerOpts {
    /// Where received pages are written. Required.
    pub images_dir: DirRef,
    /// Where the log goes; defaults to the images dir.
    pub work_dir: Option<DirRef>,
    /// Log file name; `page-server.log` when `None`.
    pub log_file: Option<String>,
    /// CRIU log level 0-4.
    pub log_level: u32,
    /// Address to listen on (empty = any) and port (0 = CRIU picks).
    pub listen: PageServerAddr,
    /// Parent images for incremental pages (`parent_img`).
    pub parent_image: Option<String>,
    /// Deduplicate against the parent (`auto_dedup`).
    pub auto_dedup: bool,
}

impl PageServerOpts {
    /// A page server writing into `images_dir`, listening on `address:port`.
    pub fn new(images_dir: impl Into<DirRef>, address: impl Into<String>, port: u16) -> Self {
        PageServerOpts {
            images_dir: images_dir.into(),
            log_level: DEFAULT_LOG_LEVEL,
            listen: PageServerAddr {
                address: address.into(),
                port,
                fd: None,
            },
            ..Default::default()
        }
    }

    pub(crate) fn log_opts(&self) -> LogOpts<'_> {
        LogOpts {
            images_dir: &self.images_dir,
            work_dir: self.work_dir.as_ref(),
            log_file: self.log_file.as_deref().unwrap_or("page-server.log"),
            log_level: self.log_level,
        }
    }
}

/// Options of [`Criu::lazy_pages`](crate::Criu::lazy_pages): the
/// `criu lazy-pages` daemon of a post-copy restore. CRIU has no RPC request
/// for it, so it runs as a command.
#[derive(Debug, Clone, Default)]
pub struct LazyPagesOpts {
    /// The images of the (lazy) dump. Required.
    pub images_dir: DirRef,
    /// Work dir; the daemon's `lazy-pages.socket` is made there, and the
    /// lazy restore must use the same work dir. Defaults to the images dir.
    pub work_dir: Option<DirRef>,
    /// Log file name; `lazy-pages.log` when `None`.
    pub log_file: Option<String>,
    /// CRIU log level 0-4.
    pub log_level: u32,
    /// Fetch pages from this page server (the lazy dump's `page_server`);
    /// `None` reads them from the images dir.
    pub page_server: Option<PageServerAddr>,
    /// How long to wait for the daemon to say it is ready.
    pub ready_timeout: std::time::Duration,
}

impl LazyPagesOpts {
    /// A lazy-pages daemon over `images_dir`.
    pub fn new(images_dir: impl Into<DirRef>) -> Self {
        LazyPagesOpts {
            images_dir: images_dir.into(),
            log_level: DEFAULT_LOG_LEVEL,
            ready_timeout: std::time::Duration::from_secs(10),
            ..Default::default()
        }
    }
}
