//! Gates for tests that need real privileges or real tools.
//!
//! Herd's tests run real containers through real CRIU, as root. A test that
//! cannot run here must not pass silently: under `CI` (any non-empty value
//! but `0`/`false`) it panics with the reason, otherwise it prints a loud
//! `SKIPPED` line and the test returns early.
//!
//! ```ignore
//! #[test]
//! fn dumps_a_container() {
//!     if !herd_testkit::require_root_and_criu("dumps_a_container") { return; }
//!     ...
//! }
//! ```

use std::path::PathBuf;
use std::process::Command;

/// True when running under CI, where a missing prerequisite is a failure.
pub fn in_ci() -> bool {
    match std::env::var("CI") {
        Ok(v) => !v.is_empty() && v != "0" && !v.eq_ignore_ascii_case("false"),
        Err(_) => false,
    }
}

/// Report an unmet prerequisite: panics under CI, prints and returns false otherwise.
pub fn unmet(test: &str, reason: &str) -> bool {
    if in_ci() {
        panic!("{test}: cannot run under CI: {reason}");
    }
    eprintln!("\n*** SKIPPED {test}: {reason} (set CI=true to make this a failure) ***\n");
    false
}

/// True when the test runs as root; see [`unmet`] otherwise.
pub fn require_root(test: &str) -> bool {
    if nix_geteuid() == 0 {
        true
    } else {
        unmet(test, "needs root")
    }
}

/// Path of the CRIU binary tests use: `$HERD_CRIU`, else `criu` from PATH.
pub fn criu_path() -> PathBuf {
    std::env::var_os("HERD_CRIU")
        .map(PathBuf::from)
        .unwrap_or_else(|| PathBuf::from("criu"))
}

/// True when running as root and `criu check` passes; see [`unmet`] otherwise.
pub fn require_root_and_criu(test: &str) -> bool {
    if !require_root(test) {
        return false;
    }
    let criu = criu_path();
    match Command::new(&criu).arg("check").output() {
        Ok(out) if out.status.success() => true,
        Ok(out) => unmet(
            test,
            &format!(
                "`{} check` failed: {} (run scripts/setup)",
                criu.display(),
                String::from_utf8_lossy(&out.stderr)
                    .lines()
                    .last()
                    .unwrap_or("")
            ),
        ),
        Err(e) => unmet(
            test,
            &format!("cannot run `{}`: {e} (run scripts/setup)", criu.display()),
        ),
    }
}

fn nix_geteuid() -> u32 {
    // SAFETY: geteuid has no preconditions and cannot fail.
    unsafe { geteuid() }
}

extern "C" {
    fn geteuid() -> u32;
}

/// The workspace root (where Cargo.toml with `[workspace]` lives).
pub fn workspace_root() -> PathBuf {
    let here = PathBuf::from(env!("CARGO_MANIFEST_DIR"));
    here.parent().map(PathBuf::from).unwrap_or(here)
}
