//! The OCI runtime spec a container is created from: runc's defaults,
//! podman's default capabilities, the image's config, and what `herd run`
//! asked for. The network namespace is the agent's (given by path), so a
//! checkpoint can declare it external and a restore can bring its own.

use std::path::Path;

use oci_spec::runtime::{
    Capability, LinuxCpu, LinuxMemory, LinuxNamespace, LinuxNamespaceType, LinuxResources, Spec,
};

use crate::error::{AgentError, IoContext, Result};

/// podman's default capability set for containers.
const CAPS: &[Capability] = &[
    Capability::Chown,
    Capability::DacOverride,
    Capability::Fowner,
    Capability::Fsetid,
    Capability::Kill,
    Capability::NetBindService,
    Capability::Setfcap,
    Capability::Setgid,
    Capability::Setpcap,
    Capability::Setuid,
    Capability::SysChroot,
];

/// CFS period used for `--cpus` (the kernel's default).
pub const CPU_PERIOD_US: u64 = 100_000;

pub struct SpecInput<'a> {
    pub rootfs: &'a Path,
    pub args: Vec<String>,
    pub env: Vec<String>,
    pub cwd: String,
    pub user: Ident,
    pub hostname: String,
    pub netns: &'a Path,
    pub cgroup_path: String,
    pub memory_bytes: Option<u64>,
    pub cpus: Option<f64>,
    /// `-v` bind mounts (checked by the caller: host paths exist).
    pub volumes: &'a [herd_wire::Volume],
}

pub fn build(input: SpecInput<'_>) -> Result<Spec> {
    if input.args.is_empty() {
        return Err(AgentError::Invalid {
            what: "command",
            reason: "no command given and the image has none".into(),
        });
    }
    let mut spec = Spec::default();
    let mut root = spec.root().clone().unwrap_or_default();
    root.set_path(input.rootfs.to_path_buf());
    root.set_readonly(Some(false));
    spec.set_root(Some(root));
    spec.set_hostname(Some(input.hostname));
    // No cgroupfs inside: without a cgroup namespace it would be host
    // hierarchies bind-mounted in, which CRIU would have to treat as
    // external mounts on every host.
    if let Some(mounts) = spec.mounts().clone() {
        let kept: Vec<_> = mounts
            .into_iter()
            .filter(|m| {
                m.typ().as_deref() != Some("cgroup") && m.typ().as_deref() != Some("cgroup2")
            })
            .collect();
        spec.set_mounts(Some(kept));
    }
    let mut mounts = spec.mounts().clone().unwrap_or_default();
    for v in input.volumes {
        let mut m = oci_spec::runtime::Mount::default();
        m.set_typ(Some("bind".into()));
        m.set_source(Some(v.host.clone().into()));
        m.set_destination(v.container.clone().into());
        let mode = if v.read_only { "ro" } else { "rw" };
        m.set_options(Some(vec!["bind".into(), "rprivate".into(), mode.into()]));
        mounts.push(m);
    }
    spec.set_mounts(Some(mounts));

    let mut process = spec.process().clone().unwrap_or_default();
    process.set_args(Some(input.args));
    process.set_cwd(input.cwd.into());
    let mut user = process.user().clone();
    user.set_uid(input.user.uid);
    user.set_gid(input.user.gid);
    user.set_additional_gids(Some(input.user.additional_gids.clone()).filter(|g| !g.is_empty()));
    process.set_user(user);
    process.set_terminal(Some(false));
    let mut env =
        vec!["PATH=/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin".to_string()];
    for e in input.env {
        let key = e.split('=').next().unwrap_or("");
        env.retain(|x| x.split('=').next() != Some(key));
        env.push(e);
    }
    process.set_env(Some(env));
    if let Some(mut caps) = process.capabilities().clone() {
        let set: oci_spec::runtime::Capabilities = CAPS.iter().copied().collect();
        caps.set_bounding(Some(set.clone()));
        caps.set_effective(Some(set.clone()));
        caps.set_permitted(Some(set.clone()));
        caps.set_inheritable(Some(Default::default()));
        caps.set_ambient(Some(Default::default()));
        process.set_capabilities(Some(caps));
    }
    spec.set_process(Some(process));

    let mut linux = spec.linux().clone().unwrap_or_default();
    let mut namespaces = linux.namespaces().clone().unwrap_or_default();
    // No cgroup namespace: the container's cgroup paths differ from host to
    // host (they carry the node), and CRIU re-roots them on restore.
    namespaces.retain(|n| n.typ() != LinuxNamespaceType::Cgroup);
    for ns in namespaces.iter_mut() {
        if ns.typ() == LinuxNamespaceType::Network {
            *ns = net_ns(input.netns);
        }
    }
    if !namespaces
        .iter()
        .any(|n| n.typ() == LinuxNamespaceType::Network)
    {
        namespaces.push(net_ns(input.netns));
    }
    linux.set_namespaces(Some(namespaces));
    linux.set_cgroups_path(Some(input.cgroup_path.into()));

    let mut res = linux.resources().clone().unwrap_or_default();
    apply_limits(&mut res, input.memory_bytes, input.cpus)?;
    linux.set_resources(Some(res));
    spec.set_linux(Some(linux));
    Ok(spec)
}

fn net_ns(path: &Path) -> LinuxNamespace {
    let mut ns = LinuxNamespace::default();
    ns.set_typ(LinuxNamespaceType::Network);
    ns.set_path(Some(path.to_path_buf()));
    ns
}

pub fn apply_limits(
    res: &mut LinuxResources,
    memory_bytes: Option<u64>,
    cpus: Option<f64>,
) -> Result<()> {
    if let Some(m) = memory_bytes {
        if m < (4 << 20) {
            return Err(AgentError::Invalid {
                what: "memory limit",
                reason: format!("{m} bytes is below the 4 MiB minimum"),
            });
        }
        let mut mem = LinuxMemory::default();
        mem.set_limit(Some(m as i64));
        res.set_memory(Some(mem));
    }
    if let Some(c) = cpus {
        if !(c > 0.0 && c <= 1024.0) {
            return Err(AgentError::Invalid {
                what: "cpus",
                reason: format!("{c} is not in (0, 1024]"),
            });
        }
        let mut cpu = LinuxCpu::default();
        cpu.set_period(Some(CPU_PERIOD_US));
        cpu.set_quota(Some((c * CPU_PERIOD_US as f64).round() as i64));
        res.set_cpu(Some(cpu));
    }
    Ok(())
}

/// The process's identity from `user[:group]` (names or numeric ids) as
/// the image's /etc/passwd and /etc/group say, as Podman resolves it: a
/// name must exist there; a numeric uid need not (gid then 0, or the
/// passwd entry's); supplementary groups are those /etc/group lists the
/// user in. `home`: the passwd entry's, for `HOME`.
#[derive(Debug, Clone, PartialEq, Eq, Default)]
pub struct Ident {
    pub uid: u32,
    pub gid: u32,
    pub additional_gids: Vec<u32>,
    pub home: Option<String>,
}

pub fn resolve_user(rootfs: &Path, user: &str) -> Result<Ident> {
    let bad = |reason: String| AgentError::Invalid {
        what: "user",
        reason: format!("{user:?}: {reason}"),
    };
    let (u, g) = match user.split_once(':') {
        Some((u, g)) => (u, Some(g)),
        None => (user, None),
    };
    if u.is_empty() || g == Some("") {
        return Err(bad("expected USER[:GROUP]".into()));
    }
    let passwd = read_etc(rootfs, "passwd");
    let group = read_etc(rootfs, "group");
    // name:x:uid:gid:gecos:home:shell
    let pw = passwd
        .lines()
        .map(|l| l.split(':').collect::<Vec<_>>())
        .find(|f| f.len() >= 7 && (f[0] == u || (u.parse::<u32>().is_ok() && f[2] == u)));
    let uid = match (u.parse::<u32>(), &pw) {
        (Ok(n), _) => n,
        (Err(_), Some(f)) => f[2]
            .parse()
            .map_err(|_| bad(format!("/etc/passwd has a bad uid for {u}")))?,
        (Err(_), None) => return Err(bad(format!("no user {u} in the image's /etc/passwd"))),
    };
    let name = pw.as_ref().map(|f| f[0].to_string());
    // name:x:gid:members
    let groups: Vec<Vec<&str>> = group
        .lines()
        .map(|l| l.split(':').collect::<Vec<_>>())
        .filter(|f| f.len() >= 4)
        .collect();
    let gid = match g {
        Some(g) => match g.parse::<u32>() {
            Ok(n) => n,
            Err(_) => groups
                .iter()
                .find(|f| f[0] == g)
                .and_then(|f| f[2].parse().ok())
                .ok_or_else(|| bad(format!("no group {g} in the image's /etc/group")))?,
        },
        None => pw.as_ref().and_then(|f| f[3].parse().ok()).unwrap_or(0),
    };
    let mut additional_gids: Vec<u32> = match (&name, g) {
        (Some(n), None) => groups
            .iter()
            .filter(|f| f[3].split(',').any(|m| m == n))
            .filter_map(|f| f[2].parse().ok())
            .collect(),
        _ => Vec::new(),
    };
    additional_gids.retain(|x| *x != gid);
    additional_gids.dedup();
    Ok(Ident {
        uid,
        gid,
        additional_gids,
        home: pw.map(|f| f[5].to_string()).filter(|h| !h.is_empty()),
    })
}

/// An /etc file of the image; empty when missing or not a plain file (never
/// followed out of the rootfs: a symlink there is not read).
fn read_etc(rootfs: &Path, file: &str) -> String {
    let etc = rootfs.join("etc");
    let p = etc.join(file);
    let plain = |p: &Path, dir: bool| {
        std::fs::symlink_metadata(p)
            .map(|m| if dir { m.is_dir() } else { m.is_file() })
            .unwrap_or(false)
    };
    if !plain(&etc, true) || !plain(&p, false) {
        return String::new();
    }
    std::fs::read_to_string(&p).unwrap_or_default()
}

/// /etc/hostname, /etc/hosts and /etc/resolv.conf as Podman provides them,
/// written into the container's own layer (so they move with it): the
/// hostname; localhost and the hostname (at its address when it has one);
/// the host's resolver without loopback name servers, which the
/// container's network namespace cannot reach. Symlinks there are replaced,
/// never followed (one could point out of the rootfs).
pub fn write_etc_files(rootfs: &Path, hostname: &str, ip: Option<&str>) -> Result<()> {
    let etc = rootfs.join("etc");
    match std::fs::symlink_metadata(&etc) {
        Ok(m) if m.is_dir() => {}
        Ok(_) => {
            return Err(AgentError::Invalid {
                what: "image",
                reason: "its /etc is not a directory".into(),
            })
        }
        Err(_) => std::fs::create_dir(&etc).ctx(|| format!("create {}", etc.display()))?,
    }
    let mut hosts = String::from("127.0.0.1\tlocalhost localhost.localdomain\n");
    hosts.push_str("::1\tlocalhost localhost.localdomain ip6-localhost ip6-loopback\n");
    match ip {
        Some(ip) => hosts.push_str(&format!("{ip}\t{hostname}\n")),
        None => hosts.push_str(&format!("127.0.1.1\t{hostname}\n")),
    }
    let host_resolv = std::fs::read_to_string("/etc/resolv.conf").unwrap_or_default();
    let resolv: String = host_resolv
        .lines()
        .filter(|l| {
            let mut w = l.split_whitespace();
            !(w.next() == Some("nameserver")
                && w.next()
                    .and_then(|a| a.parse::<std::net::IpAddr>().ok())
                    .is_some_and(|a| a.is_loopback()))
        })
        .map(|l| format!("{l}\n"))
        .collect();
    for (name, text) in [
        ("hostname", format!("{hostname}\n")),
        ("hosts", hosts),
        ("resolv.conf", resolv),
    ] {
        let p = etc.join(name);
        if let Ok(m) = std::fs::symlink_metadata(&p) {
            if !m.is_file() {
                let removed = if m.is_dir() {
                    std::fs::remove_dir_all(&p)
                } else {
                    std::fs::remove_file(&p)
                };
                removed.ctx(|| format!("replace {}", p.display()))?;
            }
        }
        std::fs::write(&p, text).ctx(|| format!("write {}", p.display()))?;
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn spec_has_our_netns_limits_and_command() {
        let spec = build(SpecInput {
            rootfs: Path::new("/r"),
            args: vec!["sh".into()],
            env: vec!["A=1".into(), "PATH=/bin".into()],
            cwd: "/".into(),
            user: Ident::default(),
            hostname: "h".into(),
            netns: Path::new("/run/netns/x"),
            cgroup_path: "/herd/n1/c".into(),
            memory_bytes: Some(64 << 20),
            cpus: Some(1.5),
            volumes: &[herd_wire::Volume::parse("/srv:/data:ro").unwrap()],
        })
        .unwrap();
        let linux = spec.linux().as_ref().unwrap();
        let ns = linux.namespaces().as_ref().unwrap();
        let net: Vec<_> = ns
            .iter()
            .filter(|n| n.typ() == LinuxNamespaceType::Network)
            .collect();
        assert_eq!(net.len(), 1);
        assert_eq!(net[0].path().as_deref(), Some(Path::new("/run/netns/x")));
        let res = linux.resources().as_ref().unwrap();
        assert_eq!(res.memory().as_ref().unwrap().limit(), Some(64 << 20));
        assert_eq!(res.cpu().as_ref().unwrap().quota(), Some(150_000));
        let env = spec.process().as_ref().unwrap().env().clone().unwrap();
        assert_eq!(env, vec!["A=1".to_string(), "PATH=/bin".to_string()]);
        let bind = spec
            .mounts()
            .as_ref()
            .unwrap()
            .iter()
            .find(|m| m.destination() == Path::new("/data"))
            .expect("no bind mount at /data");
        assert_eq!(bind.source().as_deref(), Some(Path::new("/srv")));
        assert!(bind.options().as_ref().unwrap().contains(&"ro".to_string()));
        assert!(build(SpecInput {
            rootfs: Path::new("/r"),
            args: vec![],
            env: vec![],
            cwd: "/".into(),
            user: Ident::default(),
            hostname: "h".into(),
            netns: Path::new("/x"),
            cgroup_path: "/c".into(),
            memory_bytes: None,
            cpus: None,
            volumes: &[],
        })
        .is_err());
    }

    #[test]
    fn users_resolve_as_podman_does() {
        let d = tempfile::tempdir().unwrap();
        std::fs::create_dir(d.path().join("etc")).unwrap();
        std::fs::write(
            d.path().join("etc/passwd"),
            "root:x:0:0:root:/root:/bin/sh\napp:x:1234:1234::/home/app:/bin/sh\n",
        )
        .unwrap();
        std::fs::write(
            d.path().join("etc/group"),
            "root:x:0:\napp:x:1234:\nextra:x:2000:app,other\n",
        )
        .unwrap();
        let r = |u: &str| resolve_user(d.path(), u);
        let app = r("app").unwrap();
        assert_eq!((app.uid, app.gid), (1234, 1234));
        assert_eq!(app.additional_gids, vec![2000]);
        assert_eq!(app.home.as_deref(), Some("/home/app"));
        assert_eq!(r("1234").unwrap(), app);
        let g = r("app:extra").unwrap();
        assert_eq!((g.uid, g.gid), (1234, 2000));
        let n = r("4321:77").unwrap();
        assert_eq!((n.uid, n.gid, n.home), (4321, 77, None));
        assert_eq!(r("0").unwrap().home.as_deref(), Some("/root"));
        for bad in ["nobody", "app:nogroup", "", ":1", "app:"] {
            assert!(r(bad).is_err(), "{bad:?} accepted");
        }
    }

    #[test]
    fn etc_files_replace_symlinks_and_drop_loopback_resolvers() {
        let d = tempfile::tempdir().unwrap();
        let etc = d.path().join("etc");
        std::fs::create_dir(&etc).unwrap();
        let outside = d.path().join("outside");
        std::fs::write(&outside, "keep").unwrap();
        std::os::unix::fs::symlink(&outside, etc.join("hosts")).unwrap();
        write_etc_files(d.path(), "web", Some("10.0.0.5")).unwrap();
        assert_eq!(std::fs::read_to_string(&outside).unwrap(), "keep");
        assert_eq!(
            std::fs::read_to_string(etc.join("hostname")).unwrap(),
            "web\n"
        );
        let hosts = std::fs::read_to_string(etc.join("hosts")).unwrap();
        assert!(
            hosts.contains("10.0.0.5\tweb\n") && hosts.contains("localhost"),
            "{hosts}"
        );
        let resolv = std::fs::read_to_string(etc.join("resolv.conf")).unwrap();
        assert!(!resolv.contains("nameserver 127."), "{resolv}");
    }
}
