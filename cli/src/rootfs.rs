//! A tiny image from the host's static busybox (Debian's busybox-static),
//! optionally with extra static binaries (herd-work) in /bin: no registry
//! is needed for the lab, the demo or the tests.

use std::fs;
use std::os::unix::fs::{symlink, PermissionsExt};
use std::path::{Path, PathBuf};
use std::process::Command;

use anyhow::{bail, Context, Result};

pub fn busybox_path() -> Result<PathBuf> {
    for p in ["/bin/busybox", "/usr/bin/busybox"] {
        let p = Path::new(p);
        if p.exists() {
            return Ok(p.to_path_buf());
        }
    }
    bail!("busybox not found (install busybox-static, or run scripts/setup)")
}

/// Write a busybox rootfs into `dir` (which must not exist or be empty).
pub fn build_busybox(dir: &Path, extra: &[PathBuf]) -> Result<()> {
    let bb = busybox_path()?;
    let out = Command::new(&bb)
        .arg("--list")
        .output()
        .with_context(|| format!("cannot run {}", bb.display()))?;
    if !out.status.success() {
        bail!("{} --list failed", bb.display());
    }
    for d in [
        "bin", "sbin", "usr/bin", "usr/sbin", "dev", "proc", "sys", "tmp", "etc", "root",
        "var/tmp", "run",
    ] {
        fs::create_dir_all(dir.join(d))
            .with_context(|| format!("create {}", dir.join(d).display()))?;
    }
    fs::set_permissions(dir.join("tmp"), fs::Permissions::from_mode(0o1777))?;
    fs::copy(&bb, dir.join("bin/busybox")).context("copy busybox")?;
    for applet in String::from_utf8_lossy(&out.stdout).lines() {
        let applet = applet.trim();
        if applet.is_empty() || applet == "busybox" || applet.contains('/') {
            continue;
        }
        let link = dir.join("bin").join(applet);
        if !link.exists() {
            symlink("busybox", &link).with_context(|| format!("link {}", link.display()))?;
        }
    }
    fs::write(
        dir.join("etc/passwd"),
        "root:x:0:0:root:/root:/bin/sh\nnobody:x:65534:65534:nobody:/:/bin/false\n",
    )?;
    fs::write(dir.join("etc/group"), "root:x:0:\nnogroup:x:65534:\n")?;
    for e in extra {
        let name = e
            .file_name()
            .with_context(|| format!("{} has no file name", e.display()))?;
        fs::copy(e, dir.join("bin").join(name)).with_context(|| format!("copy {}", e.display()))?;
    }
    Ok(())
}

/// herd-work built static by scripts/setup, if present.
pub fn find_herd_work() -> Option<PathBuf> {
    if let Some(p) = std::env::var_os("HERD_WORK_BIN") {
        return Some(PathBuf::from(p));
    }
    let exe = std::env::current_exe().ok()?;
    // target/release/herd -> target/static/release/herd-work
    let target = exe.parent()?.parent()?;
    let p = target.join("static/release/herd-work");
    p.exists().then_some(p)
}

/// What [`build_debian`] made.
pub struct DebianBuild {
    pub suite: String,
    pub seconds: f64,
    pub bytes: u64,
}

/// Build a rootfs of Debian packages `pkgs` (and what they depend on) into
/// `dir` with mmdebstrap's minbase variant, offline from any registry: the
/// packages come from the mirrors of this host's own apt sources, for this
/// host's release. Documentation, man pages and translations are left out.
/// Package postinsts run in the new root (they may create users and data
/// directories, as PostgreSQL's does); no service is started.
pub fn build_debian(dir: &Path, pkgs: &[String]) -> Result<DebianBuild> {
    for p in pkgs {
        if p.is_empty()
            || !p
                .chars()
                .all(|c| c.is_ascii_lowercase() || c.is_ascii_digit() || "+-.".contains(c))
        {
            bail!("{p:?} is not a Debian package name");
        }
    }
    if pkgs.is_empty() {
        bail!("--debian needs at least one package name");
    }
    let os = fs::read_to_string("/etc/os-release").context("read /etc/os-release")?;
    let suite = os_codename(&os)
        .context("this host's /etc/os-release names no VERSION_CODENAME (a Debian release)")?;
    let mut text = String::new();
    for f in apt_source_files() {
        // Unreadable files are skipped, as apt itself warns and goes on.
        if let Ok(t) = fs::read_to_string(&f) {
            text.push_str(&t);
            text.push('\n');
        }
    }
    let mirrors = apt_lines(&text, &suite);
    if mirrors.is_empty() {
        bail!(
            "no apt source of this host serves Debian {suite} (/etc/apt/sources.list and \
             sources.list.d): mmdebstrap needs one"
        );
    }
    let t0 = std::time::Instant::now();
    let mut cmd = Command::new("mmdebstrap");
    cmd.arg("--variant=minbase")
        .arg("--mode=root")
        .arg(format!("--include={}", pkgs.join(",")))
        .arg("--dpkgopt=path-exclude=/usr/share/doc/*")
        .arg("--dpkgopt=path-exclude=/usr/share/man/*")
        .arg("--dpkgopt=path-exclude=/usr/share/locale/*")
        .arg("--dpkgopt=path-exclude=/usr/share/info/*")
        .arg("--quiet")
        .arg(&suite)
        .arg(dir)
        .args(&mirrors);
    let out = match cmd.output() {
        Ok(o) => o,
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => {
            bail!(
                "mmdebstrap not found: install it (apt-get install mmdebstrap; scripts/setup does)"
            )
        }
        Err(e) => return Err(e).context("run mmdebstrap"),
    };
    if !out.status.success() {
        let err = String::from_utf8_lossy(&out.stderr);
        let tail: Vec<&str> = err.lines().rev().take(15).collect();
        bail!(
            "mmdebstrap {suite} with {} failed ({}):\n{}",
            pkgs.join(","),
            out.status,
            tail.into_iter().rev().collect::<Vec<_>>().join("\n")
        );
    }
    // The runtime gives every container its own /dev; device nodes in an
    // image are only a hazard.
    let dev = dir.join("dev");
    if dev.is_dir() {
        fs::remove_dir_all(&dev).with_context(|| format!("clear {}", dev.display()))?;
        fs::create_dir(&dev).with_context(|| format!("create {}", dev.display()))?;
    }
    Ok(DebianBuild {
        suite,
        seconds: t0.elapsed().as_secs_f64(),
        bytes: tree_size(dir),
    })
}

/// [`build_debian`], then say how long it took and how big it is.
pub fn build_debian_said(image: &str, dir: &Path, pkgs: &[String]) -> Result<()> {
    let b = build_debian(dir, pkgs)?;
    println!(
        "built {image} from Debian {} packages ({} and their dependencies) in {:.1} s: {:.1} MiB",
        b.suite,
        pkgs.join(", "),
        b.seconds,
        b.bytes as f64 / (1u64 << 20) as f64
    );
    Ok(())
}

fn os_codename(os_release: &str) -> Option<String> {
    os_release
        .lines()
        .find_map(|l| l.strip_prefix("VERSION_CODENAME="))
        .map(|v| v.trim().trim_matches('"').to_string())
        .filter(|v| !v.is_empty())
}

/// The apt source files apt itself reads.
fn apt_source_files() -> Vec<PathBuf> {
    let mut v = vec![PathBuf::from("/etc/apt/sources.list")];
    if let Ok(rd) = fs::read_dir("/etc/apt/sources.list.d") {
        let mut d: Vec<PathBuf> = rd
            .flatten()
            .map(|e| e.path())
            .filter(|p| p.extension().is_some_and(|x| x == "list" || x == "sources"))
            .collect();
        d.sort();
        v.extend(d);
    }
    v.into_iter().filter(|p| p.is_file()).collect()
}

/// One-line `deb URI SUITE COMPONENTS` entries for `suite` and its
/// companions (`suite-updates`, `suite-security`) from apt source texts in
/// either format (one-line lists and deb822 `.sources` stanzas).
fn apt_lines(text: &str, suite: &str) -> Vec<String> {
    let ours = |s: &str| s == suite || s.strip_prefix(suite).is_some_and(|r| r.starts_with('-'));
    let mut out: Vec<String> = Vec::new();
    let mut push = |uri: &str, s: &str, comps: &str| {
        let l = format!("deb {uri} {s} {comps}");
        if ours(s) && uri.contains("://") && !out.contains(&l) {
            out.push(l);
        }
    };
    // One-line format.
    for l in text.lines().map(str::trim) {
        let Some(rest) = l.strip_prefix("deb ") else {
            continue;
        };
        let mut words = rest.split_whitespace().peekable();
        // Options: `[a=b c=d]`, possibly over several words.
        if words.peek().is_some_and(|w| w.starts_with('[')) {
            for w in words.by_ref() {
                if w.ends_with(']') {
                    break;
                }
            }
        }
        let (Some(uri), Some(s)) = (words.next(), words.next()) else {
            continue;
        };
        let comps: Vec<&str> = words.collect();
        push(
            uri,
            s,
            &if comps.is_empty() {
                "main".to_string()
            } else {
                comps.join(" ")
            },
        );
    }
    // deb822 stanzas, separated by blank lines.
    for stanza in text.split("\n\n") {
        let get = |k: &str| {
            stanza.lines().find_map(|l| {
                let (key, v) = l.split_once(':')?;
                key.trim()
                    .eq_ignore_ascii_case(k)
                    .then(|| v.trim().to_string())
            })
        };
        let (Some(types), Some(uris), Some(suites)) = (get("Types"), get("URIs"), get("Suites"))
        else {
            continue;
        };
        if !types.split_whitespace().any(|t| t == "deb")
            || get("Enabled").is_some_and(|e| e.eq_ignore_ascii_case("no"))
        {
            continue;
        }
        let comps = get("Components").unwrap_or_else(|| "main".into());
        for uri in uris.split_whitespace() {
            for s in suites.split_whitespace() {
                push(uri, s, &comps);
            }
        }
    }
    out
}

/// Bytes of the regular files under `dir` (symlinks not followed).
pub fn tree_size(dir: &Path) -> u64 {
    let mut total = 0;
    let mut todo = vec![dir.to_path_buf()];
    while let Some(d) = todo.pop() {
        let Ok(rd) = fs::read_dir(&d) else { continue };
        for e in rd.flatten() {
            match e.file_type() {
                Ok(t) if t.is_dir() => todo.push(e.path()),
                Ok(t) if t.is_file() => total += e.metadata().map(|m| m.len()).unwrap_or(0),
                _ => {}
            }
        }
    }
    total
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn apt_lines_from_both_formats_for_the_suite_only() {
        let text = "Types: deb\nURIs: http://m.example/debian\nSuites: bookworm bookworm-updates\n\
                    Components: main\nSigned-By: /k.gpg\n\n\
                    Types: deb\nURIs: http://m.example/debian-security\nSuites: bookworm-security\n\
                    Components: main\n\n\
                    Types: deb\nURIs: https://other.example/node\nSuites: nodistro\nComponents: main\n\n\
                    Types: deb-src\nURIs: http://m.example/debian\nSuites: bookworm\n\n\
                    # comment\ndeb [arch=amd64 signed-by=/x.gpg] http://m.example/debian bookworm main contrib\n\
                    deb http://m.example/debian bookwormish main\n\
                    deb https://cloud.example/apt cloud-sdk-bookworm main\n";
        assert_eq!(
            apt_lines(text, "bookworm"),
            vec![
                "deb http://m.example/debian bookworm main contrib",
                "deb http://m.example/debian bookworm main",
                "deb http://m.example/debian bookworm-updates main",
                "deb http://m.example/debian-security bookworm-security main",
            ]
        );
        assert!(apt_lines(text, "trixie").is_empty());
        assert!(apt_lines("", "bookworm").is_empty());
    }

    #[test]
    fn codename_and_bad_package_names() {
        assert_eq!(
            os_codename("NAME=\"Debian\"\nVERSION_CODENAME=bookworm\n").as_deref(),
            Some("bookworm")
        );
        assert_eq!(os_codename("NAME=x\n"), None);
        let d = std::env::temp_dir().join("herd-never-built");
        for bad in ["Redis", "a b", "x;rm", ""] {
            assert!(build_debian(&d, &[bad.to_string()]).is_err(), "{bad}");
        }
        assert!(build_debian(&d, &[]).is_err());
        assert!(!d.exists());
    }
}
