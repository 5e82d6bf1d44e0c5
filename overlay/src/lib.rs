//! herd-overlay: the filesystem side of Herd containers.
//!
//! * [`ImageStore`] — a content-addressed store of unpacked image layers
//!   (`layers/sha256-<hex>/`, each ready to be an overlayfs lowerdir) and
//!   image records (`images/<name>.json`). Imports rootfs directories, rootfs
//!   tars (plain/gzip/zstd) and OCI image layouts (directory or tar),
//!   translating OCI whiteouts to overlayfs ones. See [`store`].
//! * [`ContainerFs`] — a container's `upper`/`work`/`merged` directories and
//!   its overlay mount. See [`container`].
//! * [`capture_upper`], [`capture_upper_since`], [`apply_upper`] — the
//!   container's writes as a tar stream (whole, or a delta for live
//!   migration) and their application on the target host. See [`capture`].
//!
//! Every tar this crate unpacks, whatever its origin, goes through one
//! unpacker ([`unpack`]) that refuses absolute paths, `..`, writes through
//! symlinks and hard links out of the tree, and never follows a symlink when
//! it creates anything. Why: images and migration streams come from other
//! hosts, and nothing read from the network is trusted. Every unpack also
//! runs under [`Limits`] (total apparent bytes and entry count, default
//! 16 GiB and one million; the decompressed stream is bounded too), so a
//! gzip/zstd bomb or a sparse file announcing a huge size fails with
//! [`Error::TooLarge`] instead of filling the disk; sparse content is
//! written with holes.
//!
//! # Setuid files, device nodes and who may reach them
//! Layers keep what the image holds, as containers/storage (Podman) and
//! Docker keep it for a root daemon: setuid/setgid bits, file owners and
//! device nodes (`ping`, `su`, `passwd` need their bits inside the
//! container; a runtime mounts its own `/dev` over the image's). What stops
//! a hostile image from giving a *host* user privileges is that no host
//! user but root can reach any of it: [`ImageStore::open`] makes the store
//! root and its `layers/`, `images/` and `tmp/` directories mode 0700 (also
//! for an existing store), as Docker does since CVE-2021-41091 and as
//! containers/storage does for its graph root; the agent does the same to
//! its state dir, where containers' upper, work and merged directories live.
//! A non-root host user therefore cannot execute a setuid-root binary from
//! a layer or open a 0666 device node from it: the path lookup fails with
//! EACCES before the file is reached (tested as uid 65534).

pub mod capture;
pub mod container;
mod error;
pub mod store;
mod sys;
pub mod unpack;

pub use capture::{
    apply_upper, apply_upper_limited, capture_upper, capture_upper_since, CaptureStats,
};
pub use container::{is_mount_point, ContainerFs};
pub use error::{Error, Result};
pub use store::{digest_hex, validate_name, ImageConfig, ImageInfo, ImageStore};
pub use unpack::{ApplyStats, Limits};
