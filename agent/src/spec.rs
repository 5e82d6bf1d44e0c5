//! The OCI runtime spec a container is created from: runc's defaults,
//! podman's default capabilities, the image's config, and what `herd run`
//! asked for. The network namespace is the agent's (given by path), so a
//! checkpoint can declare it external and a restore can bring its own.

use std::path::Path;

use oci_spec::runtime::{
    Capability, LinuxCpu, LinuxMemory, LinuxNamespace, LinuxNamespaceType, LinuxResources, Spec,
};

use crate::error::{AgentError, Result};

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
    pub hostname: String,
    pub netns: &'a Path,
    pub cgroup_path: String,
    pub memory_bytes: Option<u64>,
    pub cpus: Option<f64>,
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

    let mut process = spec.process().clone().unwrap_or_default();
    process.set_args(Some(input.args));
    process.set_cwd(input.cwd.into());
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
            hostname: "h".into(),
            netns: Path::new("/run/netns/x"),
            cgroup_path: "/herd/n1/c".into(),
            memory_bytes: Some(64 << 20),
            cpus: Some(1.5),
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
        assert!(build(SpecInput {
            rootfs: Path::new("/r"),
            args: vec![],
            env: vec![],
            cwd: "/".into(),
            hostname: "h".into(),
            netns: Path::new("/x"),
            cgroup_path: "/c".into(),
            memory_bytes: None,
            cpus: None,
        })
        .is_err());
    }
}
