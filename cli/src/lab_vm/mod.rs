//! `herd lab up --vm`: hosts as QEMU guests with Debian's own kernels,
//! systemd, pure cgroup v2, and the agent installed as operators install it.
//!
//! ```text
//!  host ── <lab>-br (10.77.X.1/24)
//!            ├── tap <lab>-n1 ── qemu: eth0 10.77.X.11  systemd ─ herd-agent.service (6.1 or 6.12)
//!            ├── tap <lab>-n2 ── qemu: eth0 10.77.X.12  ...
//! ```
//!
//! Each guest boots the image `scripts/vm-image` builds for its suite
//! (bookworm: kernel 6.1, trixie: 6.12; cached under /var/lib/herd/vm) with
//! its disk as a throw-away snapshot, and two 9p shares:
//! - `herd` (`<lab dir>/share`, read-only): herd-agent, the CRIU prefix,
//!   dist/herd-agent.service and scripts/vm-guest-init, copied at `lab up`, so
//!   a new build reaches the guests without a new image;
//! - `node` (`<lab dir>/<node>/share`): guest.env (name, address) and
//!   etc-herd/ (agent.toml, the CA and the node's certificate and key);
//! - `lab` (the lab dir itself), mounted at the same path in the guest:
//!   commands that hand an agent a path on "its" host (`image import`
//!   builds the rootfs in the lab dir) work unchanged.
//!
//! At boot, herd-lab-guest.service runs vm-guest-init from the share, which
//! sets the address and then does README's "Deploy on your hosts" steps:
//! binary, CRIU, /etc/herd, the unit, `systemctl enable --now`. The lab file
//! is the netns lab's (same network `lab`, same addresses), plus the guests'
//! QEMU processes, so every `herd` command works unchanged. The host reaches
//! into a guest (status, `herd lab guest`, power-off) through
//! qemu-guest-agent's socket (`<lab dir>/<node>/qga.sock`).
//!
//! Acceleration: KVM only where the CPU has real vmx/svm and the host has no
//! kvm_pvm (whose /dev/kvm cannot run a stock kernel); TCG otherwise.

pub mod qga;

use std::fs;
use std::net::{Ipv4Addr, SocketAddr};
use std::os::fd::AsRawFd;
use std::path::{Path, PathBuf};
use std::process::{Command, Stdio};
use std::time::{Duration, Instant};

use anyhow::{bail, Context, Result};
use herd_netlink::Handle;
use herd_quic::pki::{self, Role};
use herd_wire::{Request, Response};
use serde::{Deserialize, Serialize};

use crate::client::Client;
use crate::cluster::{self, Cluster, LabNet, Node, Tls};
use crate::lab;

const VM_IMAGE: &str = include_str!("../../../scripts/vm-image");
const APT_LIB: &str = include_str!("../../../scripts/apt-lib.sh");
const GUEST_INIT: &str = include_str!("../../../scripts/vm-guest-init");
/// The unit operators install; the guests run exactly this file.
pub const AGENT_UNIT: &str = include_str!("../../../dist/herd-agent.service");

/// Which kernels the guests run.
#[derive(Debug, Clone, Copy, PartialEq, Eq, clap::ValueEnum)]
pub enum Kernel {
    /// Debian 12 and its kernel 6.1.
    Bookworm,
    /// Debian 13 and its kernel 6.12.
    Trixie,
    /// Odd nodes bookworm, even nodes trixie.
    Both,
}

impl Kernel {
    fn suite(self, i: usize) -> &'static str {
        match self {
            Kernel::Bookworm => "bookworm",
            Kernel::Trixie => "trixie",
            Kernel::Both if i % 2 == 1 => "bookworm",
            Kernel::Both => "trixie",
        }
    }
}

/// What the lab file records about the guests.
#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct VmLab {
    pub accel: String,
    pub guests: Vec<Guest>,
}

#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct Guest {
    pub node: String,
    pub suite: String,
    /// The image directory the guest booted (vmlinux, initrd, rootfs).
    pub image: PathBuf,
    pub kernel_release: String,
    pub tap: String,
    pub qemu_pid: Option<i32>,
    pub qemu_start: Option<u64>,
    pub qga: PathBuf,
    pub console: PathBuf,
    /// Seconds from starting QEMU to the agent's first answer.
    pub boot_seconds: Option<f64>,
}

/// Guest size: 2 vCPUs (so 2 busy threads can read 2.0) and 2 GiB;
/// `HERD_VM_SMP` / `HERD_VM_MEMORY_MIB` change them.
fn guest_size() -> (u32, u32) {
    let env = |k: &str, d: u32| {
        std::env::var(k)
            .ok()
            .and_then(|v| v.parse().ok())
            .unwrap_or(d)
    };
    (env("HERD_VM_SMP", 2), env("HERD_VM_MEMORY_MIB", 2048))
}

/// `-accel`/`-cpu` for this machine, and a name for it.
fn accel() -> (Vec<&'static str>, &'static str) {
    let flags = fs::read_to_string("/proc/cpuinfo").unwrap_or_default();
    let hw = flags
        .lines()
        .filter(|l| l.starts_with("flags"))
        .any(|l| l.split_whitespace().any(|f| f == "vmx" || f == "svm"));
    let pvm = Path::new("/sys/module/kvm_pvm").exists();
    if hw && !pvm && Path::new("/dev/kvm").exists() {
        (vec!["-accel", "kvm", "-cpu", "host"], "kvm")
    } else {
        (vec!["-accel", "tcg,thread=multi", "-cpu", "max"], "tcg")
    }
}

/// How long a guest may take from QEMU's start to its agent's first answer.
fn boot_limit(accel: &str) -> Duration {
    let secs = std::env::var("HERD_VM_BOOT_TIMEOUT")
        .ok()
        .and_then(|v| v.parse().ok())
        .unwrap_or(if accel == "kvm" { 180 } else { 900 });
    Duration::from_secs(secs)
}

/// The image directory of `suite`, built by scripts/vm-image (embedded in
/// this binary) or found in its cache.
pub fn image(suite: &str) -> Result<PathBuf> {
    let cache = std::env::var_os("HERD_VM_CACHE")
        .map(PathBuf::from)
        .unwrap_or_else(|| PathBuf::from("/var/lib/herd/vm"));
    let dir = cache.join("scripts");
    fs::create_dir_all(&dir).with_context(|| format!("create {}", dir.display()))?;
    // Written every time: the script's own hash is part of the image's key.
    let script = dir.join("vm-image");
    fs::write(&script, VM_IMAGE)?;
    fs::write(dir.join("apt-lib.sh"), APT_LIB)?;
    let out = Command::new("bash")
        .arg(&script)
        .arg(suite)
        .env("HERD_VM_CACHE", &cache)
        .stdin(Stdio::null())
        .stderr(Stdio::inherit())
        .output()
        .context("run bash scripts/vm-image")?;
    if !out.status.success() {
        bail!("building the {suite} guest image failed ({})", out.status);
    }
    let path = String::from_utf8_lossy(&out.stdout).trim().to_string();
    let p = PathBuf::from(&path);
    for f in ["vmlinux", "initrd.img", "rootfs.img", "kernel-release"] {
        if !p.join(f).exists() {
            bail!("scripts/vm-image printed {path:?}, which has no {f}");
        }
    }
    Ok(p)
}

fn criu_prefix() -> Result<PathBuf> {
    let p = std::env::var_os("HERD_CRIU_PREFIX")
        .map(PathBuf::from)
        .unwrap_or_else(|| PathBuf::from("/opt/herd/criu"));
    if !p.join("bin/criu").exists() {
        bail!(
            "no CRIU prefix at {} (scripts/setup makes it; HERD_CRIU_PREFIX names another): the guests get a copy",
            p.display()
        );
    }
    Ok(p)
}

/// Start a lab of `nodes` QEMU guests.
pub async fn up(name: &str, nodes: usize, kernel: Kernel, cap: &lab::Capacity) -> Result<Cluster> {
    lab::check_lab_name(name)?;
    if !(1..=16).contains(&nodes) {
        bail!("--vm --nodes must be between 1 and 16");
    }
    let caps = cap.per_node(nodes)?;
    if nix::unistd::geteuid().as_raw() != 0 {
        bail!("herd lab up --vm needs root (bridge, taps, guest images)");
    }
    for tool in ["qemu-system-x86_64", "bash"] {
        if which(tool).is_none() {
            bail!("{tool} not found (scripts/setup installs QEMU)");
        }
    }
    let agent_bin = lab::agent_binary()?;
    let criu = criu_prefix()?;
    let dir = cluster::lab_dir(name);
    let file = dir.join("cluster.json");
    if file.exists() {
        bail!(
            "lab {name} is already up ({}); run `herd lab down` first",
            file.display()
        );
    }
    match Handle::new()?.link(&format!("{name}-br")) {
        Ok(_) => {
            bail!("leftovers of lab {name} exist (bridge {name}-br): run `herd lab down` first")
        }
        Err(e) if e.is_not_found() => {}
        Err(e) => return Err(e.into()),
    }
    // Images first (minutes when cold), outside the subnet lock.
    let mut images = std::collections::BTreeMap::new();
    for i in 1..=nodes {
        let suite = kernel.suite(i);
        if !images.contains_key(suite) {
            let t0 = Instant::now();
            let p = image(suite)?;
            eprintln!(
                "herd: {suite} image {} ready in {:.1} s",
                p.display(),
                t0.elapsed().as_secs_f64()
            );
            images.insert(suite, p);
        }
    }
    let lock_path = Path::new("/run/herd-lab-up.lock");
    let lock =
        fs::File::create(lock_path).with_context(|| format!("create {}", lock_path.display()))?;
    // SAFETY: flock on an fd we own; released when `lock` is dropped.
    if unsafe { libc::flock(lock.as_raw_fd(), libc::LOCK_EX) } != 0 {
        bail!(
            "lock {}: {}",
            lock_path.display(),
            std::io::Error::last_os_error()
        );
    }
    let index = lab::free_subnet()?;
    fs::create_dir_all(&dir).with_context(|| format!("create {}", dir.display()))?;
    let (accel_args, accel_name) = accel();
    let mut cl = Cluster {
        name: name.to_string(),
        dir: dir.clone(),
        tls: Tls {
            ca: PathBuf::new(),
            cert: PathBuf::new(),
            key: PathBuf::new(),
        },
        nodes: Vec::new(),
        lab: Some(LabNet {
            bridge: format!("{name}-br"),
            bridge_addr: format!("10.77.{index}.1/24"),
            subnet_index: index,
            cgroup_parent: "/herd".to_string(),
        }),
        vm: Some(VmLab {
            accel: accel_name.to_string(),
            guests: Vec::new(),
        }),
    };
    // Written first, so `lab down` can clean up a half-made lab.
    cl.save(&file)?;
    let built = build(
        &mut cl,
        &agent_bin,
        &criu,
        &images,
        kernel,
        &caps,
        index,
        &accel_args,
    )
    .await;
    drop(lock);
    let built = match built {
        Ok(()) => wait_ready(&mut cl).await,
        Err(e) => Err(e),
    };
    let built = match built {
        Ok(()) => lab_network(&cl, index).await,
        Err(e) => Err(e),
    };
    match built {
        Ok(()) => {
            cl.save(&file)?;
            Ok(cl)
        }
        Err(e) => {
            let _ = cl.save(&file);
            if std::env::var_os("HERD_VM_KEEP_FAILED").is_some() {
                eprintln!("herd: lab up failed; HERD_VM_KEEP_FAILED is set: the guests stay up");
                return Err(e);
            }
            eprintln!("herd: lab up failed, tearing down what was made");
            if let Err(d) = down_cluster(cl).await {
                eprintln!("herd: teardown also failed: {d:#}");
            }
            Err(e)
        }
    }
}

fn which(tool: &str) -> Option<PathBuf> {
    std::env::var_os("PATH").and_then(|paths| {
        std::env::split_paths(&paths)
            .map(|d| d.join(tool))
            .find(|p| p.exists())
    })
}

fn copy_tree(from: &Path, to: &Path) -> Result<()> {
    let st = Command::new("cp")
        .arg("-a")
        .arg(from)
        .arg(to)
        .status()
        .context("run cp")?;
    if !st.success() {
        bail!("cp -a {} {} failed", from.display(), to.display());
    }
    Ok(())
}

#[allow(clippy::too_many_arguments)]
async fn build(
    cl: &mut Cluster,
    agent_bin: &Path,
    criu: &Path,
    images: &std::collections::BTreeMap<&str, PathBuf>,
    kernel: Kernel,
    caps: &[lab::NodeCapacity],
    index: u8,
    accel_args: &[&str],
) -> Result<()> {
    let name = cl.name.clone();
    let pki_dir = cl.dir.join("pki");
    pki::init_ca(&pki_dir, &name, true).context("create the lab CA")?;
    let user = pki::issue(&pki_dir, "admin", Role::User, &pki_dir, &[])
        .context("issue the user certificate")?;
    let files = user.tls_files();
    cl.tls = Tls {
        ca: files.ca,
        cert: files.cert,
        key: files.key,
    };
    // The share every guest installs from.
    let share = cl.dir.join("share");
    fs::create_dir_all(&share)?;
    fs::copy(agent_bin, share.join("herd-agent"))
        .with_context(|| format!("copy {}", agent_bin.display()))?;
    copy_tree(criu, &share.join("criu"))?;
    fs::write(share.join("herd-agent.service"), AGENT_UNIT)?;
    fs::write(share.join("vm-guest-init"), GUEST_INIT)?;

    let mut h = Handle::new()?;
    let br = format!("{name}-br");
    h.add_bridge(&br)
        .with_context(|| format!("create bridge {br}"))?;
    h.add_address(&br, Ipv4Addr::new(10, 77, index, 1).into(), 24)?;
    h.set_up(&br)?;
    let (smp, mem) = guest_size();
    for (i, cap) in (1..).zip(caps.iter().copied()) {
        let node = format!("n{i}");
        let suite = kernel.suite(i);
        let img = &images[suite];
        let ip = Ipv4Addr::new(10, 77, index, 10 + i as u8);
        let node_dir = cl.dir.join(&node);
        let nshare = node_dir.join("share");
        let etc = nshare.join("etc-herd");
        fs::create_dir_all(&etc)?;
        pki::issue(&pki_dir, &node, Role::Node, &etc, &[ip.to_string()])
            .with_context(|| format!("issue certificate for {node}"))?;
        fs::write(etc.join("agent.toml"), agent_toml(&node, ip, &cap))?;
        fs::write(
            nshare.join("guest.env"),
            format!(
                "HERD_NODE={node}\nHERD_ADDR={ip}/24\nHERD_GATEWAY=10.77.{index}.1\nHERD_LAB_DIR='{}'\n",
                cl.dir.display()
            ),
        )?;
        let tap = format!("{name}-{node}");
        let qga = node_dir.join("qga.sock");
        let console = node_dir.join("console.log");
        let pidfile = node_dir.join("qemu.pid");
        let virtfs = |p: &Path, tag: &str, ro: bool| {
            format!(
                "local,path={},mount_tag={tag},security_model=none{}",
                p.display(),
                if ro { ",readonly=on" } else { "" }
            )
        };
        let mut cmd = Command::new("qemu-system-x86_64");
        cmd.args(["-name", &format!("herd-{name}-{node}")])
            .args(["-machine", "q35"])
            .args(accel_args)
            .args(["-smp", &smp.to_string(), "-m", &mem.to_string()])
            .args(["-no-reboot", "-display", "none", "-monitor", "none"])
            .arg("-kernel")
            .arg(img.join("vmlinux"))
            .arg("-initrd")
            .arg(img.join("initrd.img"))
            .args([
                "-append",
                "console=ttyS0 root=/dev/vda rw net.ifnames=0 panic=-1 quiet",
            ])
            .arg("-drive")
            .arg(format!(
                "file={},format=raw,if=virtio,snapshot=on",
                img.join("rootfs.img").display()
            ))
            .arg("-virtfs")
            .arg(virtfs(&share, "herd", true))
            .arg("-virtfs")
            .arg(virtfs(&nshare, "node", false))
            .arg("-virtfs")
            .arg(virtfs(&cl.dir, "lab", false))
            .arg("-netdev")
            .arg(format!("tap,id=n0,ifname={tap},script=no,downscript=no"))
            .arg("-device")
            .arg(format!(
                "virtio-net-pci,netdev=n0,mac=52:54:00:77:{index:02x}:{i:02x}"
            ))
            .arg("-chardev")
            .arg(format!(
                "socket,id=qga0,path={},server=on,wait=off",
                qga.display()
            ))
            .args(["-device", "virtio-serial"])
            .args([
                "-device",
                "virtserialport,chardev=qga0,name=org.qemu.guest_agent.0",
            ])
            .arg("-serial")
            .arg(format!("file:{}", console.display()))
            .arg("-daemonize")
            .arg("-pidfile")
            .arg(&pidfile)
            .stdin(Stdio::null());
        let started = Instant::now();
        let out = cmd.output().context("start qemu-system-x86_64")?;
        // Recorded even when QEMU failed, so `lab down` sees what to remove.
        let mut g = Guest {
            node: node.clone(),
            suite: suite.to_string(),
            image: img.clone(),
            kernel_release: fs::read_to_string(img.join("kernel-release"))
                .unwrap_or_default()
                .trim()
                .to_string(),
            tap: tap.clone(),
            qemu_pid: None,
            qemu_start: None,
            qga,
            console,
            boot_seconds: None,
        };
        if let Some(pid) = fs::read_to_string(&pidfile)
            .ok()
            .and_then(|s| s.trim().parse::<i32>().ok())
        {
            g.qemu_pid = Some(pid);
            g.qemu_start = crate::process::proc_start(pid);
        }
        cl.nodes.push(Node {
            cpus: cap.cpus,
            disk_iops: cap.disk_iops,
            disk_bps: cap.disk_bps,
            name: node.clone(),
            addr: SocketAddr::from((ip, lab::AGENT_PORT)),
            netns: None,
            state_dir: None,
            pid: None,
            pid_start: None,
        });
        let vm = cl.vm.as_mut().context("vm lab")?;
        vm.guests.push(g);
        cl.save(&cl.dir.join("cluster.json"))?;
        if !out.status.success() {
            bail!(
                "qemu for {node} failed ({}): {}",
                out.status,
                String::from_utf8_lossy(&out.stderr).trim()
            );
        }
        h.set_master(&tap, Some(&br))
            .with_context(|| format!("attach tap {tap} to {br}"))?;
        h.set_up(&tap)?;
        // Boot time counts from here.
        let _ = started;
        eprintln!("herd: {node}: {suite} guest starting (qemu, {smp} vCPUs, {mem} MiB)");
    }
    Ok(())
}

/// The agent's settings file in a guest (`/etc/herd/agent.toml`): what an
/// operator writes, with the lab's addresses.
pub fn agent_toml(node: &str, ip: Ipv4Addr, cap: &lab::NodeCapacity) -> String {
    let mut s = format!(
        "# herd-agent settings: one `key = value` per herd-agent flag (herd-agent --help)\n\
         node = \"{node}\"\n\
         listen = \"{ip}:{port}\"\n\
         state-dir = \"/var/lib/herd\"\n\
         ca = \"/etc/herd/ca.pem\"\n\
         cert = \"/etc/herd/{node}.pem\"\n\
         key = \"/etc/herd/{node}.key\"\n\
         criu = \"/opt/herd/criu/bin/criu\"\n\
         metrics-listen = \"{ip}:{mport}\"\n",
        port = lab::AGENT_PORT,
        mport = lab::METRICS_PORT,
    );
    if let Some(c) = cap.cpus {
        s.push_str(&format!("cpus = {c}\n"));
    }
    if let Some(n) = cap.disk_iops {
        s.push_str(&format!("disk-iops = {n}\n"));
    }
    if let Some(n) = cap.disk_bps {
        s.push_str(&format!("disk-bps = {n}\n"));
    }
    s
}

fn qemu_alive(g: &Guest) -> bool {
    matches!((g.qemu_pid, g.qemu_start), (Some(p), Some(s)) if crate::process::proc_start(p) == Some(s))
}

fn console_tail(g: &Guest, n: usize) -> String {
    let text = fs::read_to_string(&g.console).unwrap_or_default();
    let lines: Vec<&str> = text.lines().rev().take(n).collect();
    lines.into_iter().rev().collect::<Vec<_>>().join("\n")
}

async fn wait_ready(cl: &mut Cluster) -> Result<()> {
    let vm = cl.vm.clone().context("vm lab")?;
    let limit = boot_limit(&vm.accel);
    let mut client = Client::new(cl.clone())?;
    let t0 = Instant::now();
    let mut pending: Vec<usize> = (0..vm.guests.len()).collect();
    let mut secs = vec![None; vm.guests.len()];
    while !pending.is_empty() {
        let mut still = Vec::new();
        for i in pending {
            let g = &vm.guests[i];
            let ping =
                tokio::time::timeout(Duration::from_secs(5), client.call(&g.node, Request::Ping))
                    .await;
            match ping {
                Ok(Ok(Response::Pong { .. })) => {
                    let s = t0.elapsed().as_secs_f64();
                    eprintln!("herd: {}: agent up after {s:.1} s", g.node);
                    secs[i] = Some(s);
                }
                Ok(Ok(r)) => bail!("agent {} answered {r:?} to a ping", g.node),
                _ if !qemu_alive(g) => bail!(
                    "guest {} stopped while booting; its console ({}):\n{}",
                    g.node,
                    g.console.display(),
                    console_tail(g, 30)
                ),
                _ if t0.elapsed() > limit => {
                    let journal = qga::sh(
                        &g.qga,
                        "systemctl status herd-lab-guest herd-agent --no-pager -l 2>&1 | tail -40",
                        Duration::from_secs(30),
                    )
                    .map(|e| e.stdout)
                    .unwrap_or_else(|e| format!("(guest agent: {e:#})"));
                    bail!(
                        "agent {} did not answer within {limit:?} (HERD_VM_BOOT_TIMEOUT); console:\n{}\nin the guest:\n{journal}",
                        g.node,
                        console_tail(g, 20)
                    )
                }
                _ => still.push(i),
            }
        }
        pending = still;
        if !pending.is_empty() {
            tokio::time::sleep(Duration::from_millis(500)).await;
        }
    }
    if let Some(vm) = cl.vm.as_mut() {
        for (g, s) in vm.guests.iter_mut().zip(secs) {
            g.boot_seconds = s;
        }
    }
    Ok(())
}

async fn lab_network(cl: &Cluster, index: u8) -> Result<()> {
    let def = herd_wire::NetworkDef {
        name: lab::LAB_NETWORK.to_string(),
        subnet: format!("10.77.{index}.0/24"),
        gateway: Some(format!("10.77.{index}.1")),
        parent: "eth0".to_string(),
        range: format!("10.77.{index}.128-10.77.{index}.254"),
    };
    let mut c = Client::new(cl.clone())?;
    let names = c.node_names();
    crate::network::create(&mut c, &def, &names).await
}

/// Power the guests off and remove the bridge, the taps, the shares and the
/// lab dir. Containers go with their guests (the disks are snapshots).
pub async fn down_cluster(cl: Cluster) -> Result<()> {
    let guests = cl.vm.clone().map(|v| v.guests).unwrap_or_default();
    for g in guests.iter().filter(|g| qemu_alive(g)) {
        if let Err(e) = qga::powerdown(&g.qga) {
            eprintln!(
                "herd: {}: clean power-off not possible ({e:#}); stopping QEMU",
                g.node
            );
        }
    }
    let grace = Duration::from_secs(
        std::env::var("HERD_VM_POWEROFF_TIMEOUT")
            .ok()
            .and_then(|v| v.parse().ok())
            .unwrap_or(60),
    );
    let t0 = Instant::now();
    while guests.iter().any(qemu_alive) && t0.elapsed() < grace {
        tokio::time::sleep(Duration::from_millis(200)).await;
    }
    for g in guests.iter().filter(|g| qemu_alive(g)) {
        eprintln!(
            "herd: {} did not power off in {grace:?}: stopping QEMU",
            g.node
        );
        if let (Some(p), Some(s)) = (g.qemu_pid, g.qemu_start) {
            lab::stop_process(p, s);
        }
    }
    let names: Vec<String> = cl.nodes.iter().map(|n| n.name.clone()).collect();
    lab::sweep(&cl.name, &cl.dir, &names)
}

/// One guest's line in `herd lab status`.
pub struct GuestStatus {
    pub node: String,
    pub addr: SocketAddr,
    pub qemu: bool,
    pub kernel: String,
    pub cgroup: String,
    pub agent: String,
    pub containers: std::result::Result<usize, String>,
}

pub async fn status(cl: &Cluster) -> Result<Vec<GuestStatus>> {
    let vm = cl.vm.clone().context("not a VM lab")?;
    let mut client = Client::new(cl.clone())?;
    let mut out = Vec::new();
    for g in &vm.guests {
        let addr = cl.node(&g.node)?.addr;
        let qemu = qemu_alive(g);
        let (mut kernel, mut cgroup, mut agent) =
            ("?".to_string(), "?".to_string(), "?".to_string());
        if qemu {
            let script = "uname -r; \
                if [ -f /sys/fs/cgroup/cgroup.controllers ]; then echo \"v2 ($(cat /sys/fs/cgroup/cgroup.controllers))\"; \
                elif [ -d /sys/fs/cgroup/unified ]; then echo hybrid; else echo v1; fi; \
                systemctl is-active herd-agent.service";
            match qga::sh(&g.qga, script, Duration::from_secs(30)) {
                Ok(e) => {
                    let mut l = e.stdout.lines().map(str::to_string);
                    kernel = l.next().unwrap_or_default();
                    cgroup = l.next().unwrap_or_default();
                    agent = format!("herd-agent.service {}", l.next().unwrap_or_default());
                }
                Err(e) => agent = format!("guest agent: {e:#}"),
            }
        }
        let containers = if qemu {
            match tokio::time::timeout(Duration::from_secs(10), client.call(&g.node, Request::List))
                .await
            {
                Ok(Ok(Response::Containers(cs))) => Ok(cs.len()),
                Ok(Ok(r)) => Err(format!("unexpected answer {r:?}")),
                Ok(Err(e)) => Err(format!("{e:#}")),
                Err(_) => Err("no answer in 10 s".to_string()),
            }
        } else {
            Err("QEMU is not running".to_string())
        };
        out.push(GuestStatus {
            node: g.node.clone(),
            addr,
            qemu,
            kernel,
            cgroup,
            agent,
            containers,
        });
    }
    Ok(out)
}

/// Run `sh -c script` as root in a guest (through qemu-guest-agent).
pub fn guest_sh(cl: &Cluster, node: &str, script: &str, limit: Duration) -> Result<qga::Exec> {
    let vm = cl
        .vm
        .as_ref()
        .context("not a VM lab (`herd lab guest` needs `lab up --vm`)")?;
    let g = vm
        .guests
        .iter()
        .find(|g| g.node == node)
        .with_context(|| format!("no guest named {node}"))?;
    if !qemu_alive(g) {
        bail!("guest {node} is not running");
    }
    qga::sh(&g.qga, script, limit)
}

/// `herd lab restart NODE` on a VM lab: kill the agent's main process as a
/// crash would (`systemctl kill --kill-whom=main -s KILL`), let systemd
/// restart it (Restart=always), and wait for it to answer.
pub async fn restart(cl: &Cluster, node: &str) -> Result<()> {
    let e = guest_sh(
        cl,
        node,
        "systemctl kill --kill-whom=main --signal=SIGKILL herd-agent.service",
        Duration::from_secs(60),
    )?;
    if e.code != 0 {
        bail!(
            "systemctl kill in {node} failed ({}): {}",
            e.code,
            e.stderr.trim()
        );
    }
    let one = Cluster {
        nodes: vec![cl.node(node)?.clone()],
        ..cl.clone()
    };
    let mut client = Client::new(one)?;
    let t0 = Instant::now();
    // The old process may still answer for a moment: wait for a new main pid.
    tokio::time::sleep(Duration::from_millis(500)).await;
    loop {
        if let Ok(Ok(Response::Pong { .. })) =
            tokio::time::timeout(Duration::from_secs(5), client.call(node, Request::Ping)).await
        {
            return Ok(());
        }
        if t0.elapsed() > Duration::from_secs(300) {
            bail!("agent {node} did not come back within 300 s after systemctl kill");
        }
        tokio::time::sleep(Duration::from_millis(300)).await;
    }
}

fn load(lab: &str) -> Result<Cluster> {
    Cluster::load(&cluster::lab_dir(lab).join("cluster.json"))
}

pub fn is_vm_lab(lab: &str) -> bool {
    load(lab).map(|c| c.vm.is_some()).unwrap_or(false)
}

pub fn print_up(cl: &Cluster) {
    let vm = cl.vm.clone().unwrap_or(VmLab {
        accel: String::new(),
        guests: Vec::new(),
    });
    println!(
        "lab {} is up: {} guest(s) ({})",
        cl.name,
        cl.nodes.len(),
        vm.accel
    );
    for (n, g) in cl.nodes.iter().zip(&vm.guests) {
        println!(
            "  {:<4} {}  {} kernel {}, agent up after {}{}",
            n.name,
            n.addr,
            g.suite,
            g.kernel_release,
            g.boot_seconds
                .map(|s| format!("{s:.1} s"))
                .unwrap_or_else(|| "?".into()),
            n.capacity_note()
        );
    }
}

/// `herd lab status` of a VM lab; exit code 125 when a guest or agent is down.
pub async fn print_status(lab: &str, json: bool) -> Result<i32> {
    let cl = load(lab)?;
    if json {
        let all = status(&cl).await?;
        let bad = all.iter().any(|s| !s.qemu || s.containers.is_err());
        let v: Vec<_> = all
            .iter()
            .map(|s| {
                let mut v = crate::lab::status_json(&s.node, s.addr, &s.containers);
                v["qemu"] = s.qemu.into();
                v["kernel"] = s.kernel.clone().into();
                v["cgroup"] = s.cgroup.clone().into();
                v["agent"] = s.agent.clone().into();
                v
            })
            .collect();
        println!("{}", serde_json::to_string_pretty(&v)?);
        return Ok(if bad { crate::exit::HERD_ERROR } else { 0 });
    }
    let mut bad = 0;
    println!(
        "{:<4} {:<18} {:<18} {:<44} {:<28} containers",
        "node", "address", "kernel", "cgroup", "agent"
    );
    for s in status(&cl).await? {
        let containers = match s.containers {
            Ok(n) => n.to_string(),
            Err(e) => {
                bad += 1;
                format!("DOWN: {e}")
            }
        };
        if !s.qemu {
            bad += 1;
        }
        println!(
            "{:<4} {:<18} {:<18} {:<44} {:<28} {containers}",
            s.node,
            s.addr.to_string(),
            s.kernel,
            s.cgroup,
            if s.qemu { s.agent } else { "guest off".into() }
        );
    }
    Ok(if bad > 0 { crate::exit::HERD_ERROR } else { 0 })
}

/// `herd lab guest NODE -- CMD...`: prints the command's output, returns its code.
pub fn guest_cmd(lab: &str, node: &str, cmd: &[String], timeout: u64) -> Result<i32> {
    let cl = load(lab)?;
    let script = cmd
        .iter()
        .map(|a| {
            if !a.is_empty()
                && a.bytes()
                    .all(|b| b.is_ascii_alphanumeric() || b"-_./=:,@%+".contains(&b))
            {
                a.clone()
            } else {
                format!("'{}'", a.replace('\'', "'\\''"))
            }
        })
        .collect::<Vec<_>>()
        .join(" ");
    let e = guest_sh(&cl, node, &script, Duration::from_secs(timeout))?;
    print!("{}", e.stdout);
    eprint!("{}", e.stderr);
    Ok(i32::try_from(e.code).unwrap_or(1))
}
