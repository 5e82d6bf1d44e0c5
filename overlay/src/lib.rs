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
//! hosts, and nothing read from the network is trusted.

pub mod capture;
pub mod container;
mod error;
pub mod store;
mod sys;
pub mod unpack;

pub use capture::{apply_upper, capture_upper, capture_upper_since, CaptureStats};
pub use container::{is_mount_point, ContainerFs};
pub use error::{Error, Result};
pub use store::{digest_hex, validate_name, ImageConfig, ImageInfo, ImageStore};
pub use unpack::ApplyStats;
