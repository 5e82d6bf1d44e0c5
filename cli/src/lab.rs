//! `herd lab`: several hosts on one machine.
//!
//! ```text
//!  root netns ── <lab>-br (10.77.X.1/24)
//!                  ├── veth <lab>-n1 ══ eth0 in netns <lab>-n1 (10.77.X.11)  herd-agent --node n1
//!                  ├── veth <lab>-n2 ══ eth0 in netns <lab>-n2 (10.77.X.12)  herd-agent --node n2
//!                  ...
//! ```
//!
//! Network `lab` (subnet 10.77.X.0/24, gateway 10.77.X.1, uplink eth0,
//! addresses 10.77.X.128-254): a container run with `--net lab` gets a
//! macvlan of its node's eth0, reachable from the root netns over the bridge.
//!
//! Each agent has its own state dir under the lab dir and its own node
//! certificate; the CLI gets a user certificate. Containers' netns are named
//! `<lab>-<node>-<container>` and their cgroups live under `/herd/<lab>/<node>`,
//! so `lab down` can find and remove everything a lab made even when its
//! agents are already dead.

use std::fs;
use std::net::{Ipv4Addr, SocketAddr};
use std::os::fd::{AsFd, AsRawFd};
use std::os::unix::process::CommandExt;
use std::path::{Path, PathBuf};
use std::process::{Command, Stdio};
use std::time::{Duration, Instant};

use anyhow::{bail, Context, Result};
use herd_netlink::{netns, Handle};
use herd_quic::pki::{self, Role};
use herd_wire::{Request, Response};

use crate::client::Client;
use crate::cluster::{self, Cluster, LabNet, Node, Tls};

pub const AGENT_PORT: u16 = 7700;
/// Every lab agent serves Prometheus text on http://<node ip>:9100/metrics.
pub const METRICS_PORT: u16 = 9100;
const USER: &str = "admin";

pub fn agent_binary() -> Result<PathBuf> {
    if let Some(p) = std::env::var_os("HERD_AGENT_BIN") {
        return Ok(PathBuf::from(p));
    }
    let exe = std::env::current_exe().context("own path")?;
    let p = exe.with_file_name("herd-agent");
    if p.exists() {
        return Ok(p);
    }
    bail!(
        "herd-agent not found next to {} (build it: cargo build --release, or set HERD_AGENT_BIN)",
        exe.display()
    )
}

pub(crate) fn check_lab_name(name: &str) -> Result<()> {
    // Link names are at most 15 bytes: "<lab>-n99" and "<lab>-br" must fit.
    if name.is_empty()
        || name.len() > 10
        || !name.bytes().all(|b| b.is_ascii_alphanumeric() || b == b'-')
        || !name.as_bytes()[0].is_ascii_alphabetic()
    {
        bail!("lab name {name:?}: 1-10 letters, digits or '-', starting with a letter");
    }
    Ok(())
}

fn subnet_in_use(index: u8) -> bool {
    let root = cluster::lab_root();
    let Ok(rd) = fs::read_dir(&root) else {
        return false;
    };
    rd.flatten().any(|e| {
        Cluster::load(&e.path().join("cluster.json"))
            .ok()
            .and_then(|c| c.lab)
            .map(|l| l.subnet_index == index)
            .unwrap_or(false)
    })
}

/// Each lab host's capacity for its containers, one value for all nodes or
/// one per node; empty: the whole machine.
#[derive(Debug, Clone, Default)]
pub struct Capacity {
    /// `herd-agent --cpus`, in cores.
    pub cpus: Vec<f64>,
    /// `herd-agent --disk-iops`; None: unlimited (`max`).
    pub disk_iops: Vec<Option<u64>>,
    /// `herd-agent --disk-bps`; None: unlimited (`max`).
    pub disk_bps: Vec<Option<u64>>,
}

/// One `--disk-iops` value: at least 1, or `max`.
pub fn parse_iops(s: &str) -> Result<Option<u64>, String> {
    if s.trim() == "max" {
        return Ok(None);
    }
    match s.trim().parse::<u64>() {
        Ok(n) if n >= 1 => Ok(Some(n)),
        _ => Err(format!(
            "{s:?}: IO operations per second, a whole number of at least 1, or max"
        )),
    }
}

/// One `--disk-bps` value: a size of at least 4k (64m, 1g, bytes), or `max`.
pub fn parse_bps(s: &str) -> Result<Option<u64>, String> {
    if s.trim() == "max" {
        return Ok(None);
    }
    match herd_wire::size::parse_size(s) {
        Some(n) if n >= 4096 => Ok(Some(n)),
        Some(n) => Err(format!(
            "{s:?} is {n} bytes per second: at least 4096 (4k), or max"
        )),
        None => Err(format!(
            "{s:?}: bytes per second, e.g. 64m, 1g, 512k, bytes, or max"
        )),
    }
}

/// One node's share of a [`Capacity`].
#[derive(Debug, Clone, Copy, Default, PartialEq)]
pub struct NodeCapacity {
    pub cpus: Option<f64>,
    pub disk_iops: Option<u64>,
    pub disk_bps: Option<u64>,
}

fn per_node<T: Copy>(flag: &str, v: &[T], nodes: usize) -> Result<Vec<Option<T>>> {
    Ok(match v.len() {
        0 => vec![None; nodes],
        1 => vec![Some(v[0]); nodes],
        n if n == nodes => v.iter().map(|c| Some(*c)).collect(),
        n => bail!("{flag} has {n} values for {nodes} nodes: give one for all or one per node"),
    })
}

impl Capacity {
    pub fn cpus(cpus: &[f64]) -> Capacity {
        Capacity {
            cpus: cpus.to_vec(),
            ..Default::default()
        }
    }

    /// Spread over `nodes` and checked: refused with the flag and the range.
    pub fn per_node(&self, nodes: usize) -> Result<Vec<NodeCapacity>> {
        let cpus = per_node("--cpus", &self.cpus, nodes)?;
        let iops: Vec<Option<u64>> = per_node("--disk-iops", &self.disk_iops, nodes)?
            .into_iter()
            .map(Option::flatten)
            .collect();
        let bps: Vec<Option<u64>> = per_node("--disk-bps", &self.disk_bps, nodes)?
            .into_iter()
            .map(Option::flatten)
            .collect();
        let machine = std::thread::available_parallelism()
            .map(|n| n.get() as f64)
            .unwrap_or(1.0);
        if let Some(c) = cpus
            .iter()
            .flatten()
            .find(|c| !(c.is_finite() && **c >= 0.01 && **c <= machine))
        {
            bail!("--cpus {c}: each value must be from 0.01 to {machine} (this machine's CPUs)");
        }
        if let Some(n) = iops.iter().flatten().find(|n| **n < 1) {
            bail!("--disk-iops {n}: each value must be at least 1 (IO operations per second)");
        }
        if let Some(n) = bps.iter().flatten().find(|n| **n < 4096) {
            bail!("--disk-bps {n}: each value must be at least 4096 bytes per second (4k)");
        }
        Ok((0..nodes)
            .map(|i| NodeCapacity {
                cpus: cpus[i],
                disk_iops: iops[i],
                disk_bps: bps[i],
            })
            .collect())
    }
}

/// Start a lab of `nodes` hosts. `cpus`: each node's CPU capacity for
/// containers (`herd-agent --cpus`), one value for all or one per node;
/// empty: every node sees the whole machine.
pub async fn up(lab: &str, nodes: usize, cpus: &[f64]) -> Result<Cluster> {
    up_with(lab, nodes, &Capacity::cpus(cpus)).await
}

/// [`up`] with each node's CPU and disk capacity.
pub async fn up_with(lab: &str, nodes: usize, cap: &Capacity) -> Result<Cluster> {
    check_lab_name(lab)?;
    if !(1..=32).contains(&nodes) {
        bail!("--nodes must be between 1 and 32");
    }
    let caps = cap.per_node(nodes)?;
    if nix::unistd::geteuid().as_raw() != 0 {
        bail!("herd lab up needs root (network namespaces, cgroups, CRIU)");
    }
    let agent_bin = agent_binary()?;
    let dir = cluster::lab_dir(lab);
    let file = dir.join("cluster.json");
    if file.exists() {
        bail!(
            "lab {lab} is already up ({}); run `herd lab down` first",
            file.display()
        );
    }
    let bridge_exists = match Handle::new()?.link(&format!("{lab}-br")) {
        Ok(_) => true,
        Err(e) if e.is_not_found() => false,
        Err(e) => return Err(e.into()),
    };
    if netns::exists(&format!("{lab}-n1")) || bridge_exists {
        bail!("leftovers of lab {lab} exist (netns {lab}-n1 or bridge {lab}-br): run `herd lab down` first");
    }
    // Choosing a subnet and claiming it (its bridge address) is one step
    // for every `lab up` on this machine, whatever its lab root: two labs
    // made at once would both see the same subnet free. Held until the end.
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
    let index = free_subnet()?;
    fs::create_dir_all(&dir).with_context(|| format!("create {}", dir.display()))?;

    let mut cl = Cluster {
        name: lab.to_string(),
        dir: dir.clone(),
        tls: Tls {
            ca: PathBuf::new(),
            cert: PathBuf::new(),
            key: PathBuf::new(),
        },
        nodes: Vec::new(),
        lab: Some(LabNet {
            bridge: format!("{lab}-br"),
            bridge_addr: format!("10.77.{index}.1/24"),
            subnet_index: index,
            cgroup_parent: format!("/herd/{lab}"),
        }),
        vm: None,
    };
    // Written first, so `lab down` can clean up a half-made lab.
    cl.save(&file)?;
    let built = build(&mut cl, &agent_bin, &caps, index).await;
    drop(lock);
    match built {
        Ok(()) => {
            cl.save(&file)?;
            Ok(cl)
        }
        Err(e) => {
            let _ = cl.save(&file);
            eprintln!("herd: lab up failed, tearing down what was made");
            if let Err(d) = down_cluster(cl).await {
                eprintln!("herd: teardown also failed: {d:#}");
            }
            Err(e)
        }
    }
}

/// A 10.77.X.0/24 no lab uses; call with /run/herd-lab-up.lock held.
pub(crate) fn free_subnet() -> Result<u8> {
    (1..=250u8)
        .find(|i| {
            !subnet_in_use(*i)
                && Handle::new()
                    .map(|mut h| !subnet_taken(&mut h, *i))
                    .unwrap_or(true)
        })
        .context("no free 10.77.X.0/24 subnet for the lab")
}

fn subnet_taken(h: &mut Handle, index: u8) -> bool {
    let want = Ipv4Addr::new(10, 77, index, 1);
    h.addresses(None)
        .map(|v| v.iter().any(|a| a.addr == std::net::IpAddr::V4(want)))
        .unwrap_or(false)
}

async fn build(cl: &mut Cluster, agent_bin: &Path, caps: &[NodeCapacity], index: u8) -> Result<()> {
    let lab = cl.name.clone();
    let pki_dir = cl.dir.join("pki");
    pki::init_ca(&pki_dir, &lab, true).context("create the lab CA")?;
    let user = pki::issue(&pki_dir, USER, Role::User, &pki_dir, &[])
        .context("issue the user certificate")?;
    let files = user.tls_files();
    cl.tls = Tls {
        ca: files.ca,
        cert: files.cert,
        key: files.key,
    };

    let mut h = Handle::new()?;
    let br = format!("{lab}-br");
    h.add_bridge(&br)
        .with_context(|| format!("create bridge {br}"))?;
    h.add_address(&br, Ipv4Addr::new(10, 77, index, 1).into(), 24)?;
    h.set_up(&br)?;

    for (i, cap) in (1..).zip(caps.iter().copied()) {
        let node = format!("n{i}");
        let ns_name = format!("{lab}-{node}");
        let ns_path = netns::create(&ns_name).with_context(|| format!("create netns {ns_name}"))?;
        let ip = Ipv4Addr::new(10, 77, index, 10 + i as u8);
        let host_end = format!("{lab}-{node}");
        let ns_fd = netns::open(&ns_path)?;
        h.add_veth(&host_end, "eth0", Some(ns_fd.as_fd()))
            .with_context(|| format!("create veth {host_end}"))?;
        h.set_master(&host_end, Some(&br))?;
        h.set_up(&host_end)?;
        let mut inner = Handle::in_netns(&ns_path)?;
        inner.set_up("lo")?;
        inner.add_address("eth0", ip.into(), 24)?;
        inner.set_up("eth0")?;
        inner.add_default_route(Ipv4Addr::new(10, 77, index, 1).into())?;

        let node_dir = cl.dir.join(&node);
        fs::create_dir_all(&node_dir)?;
        pki::issue(&pki_dir, &node, Role::Node, &node_dir, &[ip.to_string()])
            .with_context(|| format!("issue certificate for {node}"))?;
        let state_dir = node_dir.join("state");
        let mut n = Node {
            cpus: cap.cpus,
            disk_iops: cap.disk_iops,
            disk_bps: cap.disk_bps,
            name: node.clone(),
            addr: SocketAddr::from((ip, AGENT_PORT)),
            netns: Some(ns_name),
            state_dir: Some(state_dir),
            pid: None,
            pid_start: None,
        };
        let (pid, pid_start) = spawn_agent(agent_bin, &lab, &n, &node_dir, ip, &ns_path)?;
        (n.pid, n.pid_start) = (Some(pid), pid_start);
        cl.nodes.push(n);
    }
    cl.save(&cl.dir.join("cluster.json"))?;
    wait_ready(cl).await?;
    // The lab's network: containers on it are reachable from the root netns.
    let def = herd_wire::NetworkDef {
        name: LAB_NETWORK.to_string(),
        subnet: format!("10.77.{index}.0/24"),
        gateway: Some(format!("10.77.{index}.1")),
        parent: "eth0".to_string(),
        range: format!("10.77.{index}.128-10.77.{index}.254"),
    };
    let mut c = Client::new(cl.clone())?;
    let names = c.node_names();
    crate::network::create(&mut c, &def, &names).await
}

/// The network `lab up` defines on every node.
pub const LAB_NETWORK: &str = "lab";

/// Start one node's agent inside its netns, in its own session, logging to
/// `<node dir>/agent.log`. Returns its pid and start time.
fn spawn_agent(
    agent_bin: &Path,
    lab: &str,
    n: &Node,
    node_dir: &Path,
    ip: Ipv4Addr,
    ns_path: &Path,
) -> Result<(i32, Option<u64>)> {
    let node = n.name.as_str();
    let ns_fd = netns::open(ns_path)?;
    let tls = pki::TlsFiles::in_dir(node_dir, node);
    let log = fs::OpenOptions::new()
        .create(true)
        .append(true)
        .open(node_dir.join("agent.log"))?;
    let mut cmd = Command::new(agent_bin);
    cmd.arg("--node")
        .arg(node)
        .arg("--state-dir")
        .arg(node_dir.join("state"))
        .arg("--listen")
        .arg(SocketAddr::from((ip, AGENT_PORT)).to_string())
        .arg("--ca")
        .arg(&tls.ca)
        .arg("--cert")
        .arg(&tls.cert)
        .arg("--key")
        .arg(&tls.key)
        .arg("--netns-prefix")
        .arg(format!("{lab}-{node}-"))
        .arg("--cgroup-parent")
        .arg(format!("/herd/{lab}/{node}"))
        .arg("--metrics-listen")
        .arg(SocketAddr::from((ip, METRICS_PORT)).to_string())
        .args(n.capacity_args())
        .stdin(Stdio::null())
        .stdout(log.try_clone()?)
        .stderr(log);
    let fd = ns_fd.as_raw_fd();
    // SAFETY: setns and setsid are async-signal-safe.
    unsafe {
        cmd.pre_exec(move || {
            if libc::setns(fd, libc::CLONE_NEWNET) < 0 || libc::setsid() < 0 {
                return Err(std::io::Error::last_os_error());
            }
            Ok(())
        });
    }
    let child = cmd
        .spawn()
        .with_context(|| format!("start {}", agent_bin.display()))?;
    let pid = child.id() as i32;
    // The agent outlives this command: init reaps it.
    std::mem::forget(child);
    Ok((pid, crate::process::proc_start(pid)))
}

/// Kill one node's agent (SIGKILL: as if it crashed) and start it again.
/// Its containers keep running meanwhile; the new agent re-adopts them.
pub async fn restart(lab: &str, node: &str) -> Result<()> {
    let file = cluster::lab_dir(lab).join("cluster.json");
    let mut cl = Cluster::load(&file)?;
    if cl.vm.is_some() {
        return crate::lab_vm::restart(&cl, node).await;
    }
    let agent_bin = agent_binary()?;
    let n = cl.node(node)?.clone();
    if let (Some(pid), Some(start)) = (n.pid, n.pid_start) {
        if crate::process::proc_start(pid) == Some(start) {
            let _ = nix::sys::signal::kill(
                nix::unistd::Pid::from_raw(pid),
                nix::sys::signal::Signal::SIGKILL,
            );
            while !crate::process::process_gone(pid, start) {
                tokio::time::sleep(Duration::from_millis(20)).await;
            }
        }
    }
    let std::net::IpAddr::V4(ip) = n.addr.ip() else {
        bail!("lab node {node} has a non-IPv4 address");
    };
    let ns = netns::path(n.netns.as_deref().context("lab node without a netns")?);
    let (pid, pid_start) = spawn_agent(&agent_bin, lab, &n, &cl.dir.join(node), ip, &ns)?;
    for x in cl.nodes.iter_mut().filter(|x| x.name == node) {
        x.pid = Some(pid);
        x.pid_start = pid_start;
    }
    cl.save(&file)?;
    let one = Cluster {
        nodes: cl
            .nodes
            .iter()
            .filter(|x| x.name == node)
            .cloned()
            .collect(),
        ..cl
    };
    wait_ready(&one).await
}

async fn wait_ready(cl: &Cluster) -> Result<()> {
    let mut client = Client::new(cl.clone())?;
    for n in &cl.nodes {
        let t0 = Instant::now();
        loop {
            match client.call(&n.name, Request::Ping).await {
                Ok(Response::Pong { .. }) => break,
                Ok(r) => bail!("agent {} answered {r:?} to a ping", n.name),
                Err(e) => {
                    let alive = n
                        .pid
                        .map(|p| crate::process::proc_start(p).is_some())
                        .unwrap_or(false);
                    if !alive || t0.elapsed() > Duration::from_secs(20) {
                        let log = cl.dir.join(&n.name).join("agent.log");
                        let tail = fs::read_to_string(&log).unwrap_or_default();
                        let tail: Vec<&str> = tail.lines().rev().take(10).collect();
                        bail!(
                            "agent {} did not come up ({e:#}); its log {}:\n{}",
                            n.name,
                            log.display(),
                            tail.into_iter().rev().collect::<Vec<_>>().join("\n")
                        );
                    }
                    tokio::time::sleep(Duration::from_millis(100)).await;
                }
            }
        }
    }
    Ok(())
}

pub async fn down(lab: &str) -> Result<bool> {
    check_lab_name(lab)?;
    let file = cluster::lab_dir(lab).join("cluster.json");
    let cl = match Cluster::load(&file) {
        Ok(c) => c,
        Err(_) if !file.exists() => {
            // Nothing recorded; still sweep leftovers by name.
            sweep(lab, &cluster::lab_dir(lab), &[])?;
            return Ok(false);
        }
        Err(e) => return Err(e),
    };
    down_cluster(cl).await?;
    Ok(true)
}

async fn down_cluster(cl: Cluster) -> Result<()> {
    if cl.vm.is_some() {
        return crate::lab_vm::down_cluster(cl).await;
    }
    // 1. Ask live agents to remove their containers the clean way.
    if let Ok(mut client) = Client::new(cl.clone()) {
        for n in cl.nodes.clone() {
            let alive = n
                .pid
                .map(|p| crate::process::proc_start(p) == n.pid_start && n.pid_start.is_some());
            if alive != Some(true) {
                continue;
            }
            let list =
                tokio::time::timeout(Duration::from_secs(5), client.call(&n.name, Request::List))
                    .await;
            if let Ok(Ok(Response::Containers(cs))) = list {
                for c in cs {
                    let r = client
                        .call(
                            &n.name,
                            Request::Remove {
                                name: c.name.clone(),
                                force: true,
                            },
                        )
                        .await;
                    if let Err(e) = r {
                        eprintln!("herd: rm -f {} on {}: {e:#}", c.name, n.name);
                    }
                }
            }
        }
    }
    // 2. Stop the agents.
    for n in &cl.nodes {
        if let (Some(pid), Some(start)) = (n.pid, n.pid_start) {
            stop_process(pid, start);
        }
    }
    // 3. Sweep whatever is left, by name.
    let names: Vec<String> = cl.nodes.iter().map(|n| n.name.clone()).collect();
    sweep(&cl.name, &cl.dir, &names)
}

pub(crate) fn stop_process(pid: i32, start: u64) {
    use nix::sys::signal::{kill, Signal};
    let p = nix::unistd::Pid::from_raw(pid);
    if crate::process::proc_start(pid) != Some(start) {
        return;
    }
    let _ = kill(p, Signal::SIGTERM);
    let t0 = Instant::now();
    while !crate::process::process_gone(pid, start) {
        if t0.elapsed() > Duration::from_secs(5) {
            let _ = kill(p, Signal::SIGKILL);
        }
        if t0.elapsed() > Duration::from_secs(10) {
            eprintln!("herd: process {pid} does not die");
            return;
        }
        std::thread::sleep(Duration::from_millis(20));
    }
}

/// Remove everything named after the lab: container processes (by cgroup),
/// cgroups, mounts under the lab dir, netns, links, the lab dir.
pub(crate) fn sweep(lab: &str, dir: &Path, _nodes: &[String]) -> Result<()> {
    let mut problems = Vec::new();
    // Container processes and cgroups: /sys/fs/cgroup[/<ctrl>]/herd/<lab>.
    for root in cgroup_roots() {
        let base = root.join("herd").join(lab);
        if base.exists() {
            kill_cgroup_tree(&base);
            if let Err(e) = remove_cgroup_tree(&base) {
                problems.push(format!("cgroup {}: {e}", base.display()));
            }
            let _ = fs::remove_dir(root.join("herd"));
        }
    }
    // Mounts under the lab dir, deepest first.
    if let Ok(mi) = fs::read_to_string("/proc/self/mountinfo") {
        let mut mounts: Vec<String> = mi
            .lines()
            .filter_map(|l| l.split(' ').nth(4).map(unescape_mount))
            .filter(|m| Path::new(m).starts_with(dir))
            .collect();
        mounts.sort_by_key(|m| std::cmp::Reverse(m.len()));
        for m in mounts {
            if let Err(e) = nix::mount::umount2(m.as_str(), nix::mount::MntFlags::MNT_DETACH) {
                problems.push(format!("umount {m}: {e}"));
            }
        }
    }
    // Network namespaces of the lab and of its containers.
    if let Ok(all) = netns::list() {
        for ns in all.iter().filter(|n| n.starts_with(&format!("{lab}-"))) {
            if let Err(e) = netns::delete(ns) {
                problems.push(format!("netns {ns}: {e}"));
            }
        }
    }
    if let Ok(mut h) = Handle::new() {
        if let Ok(links) = h.links() {
            for l in links
                .iter()
                .filter(|l| l.name.starts_with(&format!("{lab}-")))
            {
                match h.delete_link(&l.name) {
                    Ok(()) => {}
                    Err(e) if e.is_not_found() => {}
                    Err(e) => problems.push(format!("link {}: {e}", l.name)),
                }
            }
        }
    }
    if dir.exists() {
        if let Err(e) = fs::remove_dir_all(dir) {
            problems.push(format!("remove {}: {e}", dir.display()));
        }
    }
    if problems.is_empty() {
        Ok(())
    } else {
        bail!("lab {lab} not fully removed: {}", problems.join("; "))
    }
}

fn unescape_mount(s: &str) -> String {
    s.replace("\\040", " ")
        .replace("\\011", "\t")
        .replace("\\012", "\n")
        .replace("\\134", "\\")
}

/// Every cgroup hierarchy root: the v1 controllers' and the unified one.
fn cgroup_roots() -> Vec<PathBuf> {
    let mut v = Vec::new();
    if let Ok(mi) = fs::read_to_string("/proc/self/mountinfo") {
        for l in mi.lines() {
            let parts: Vec<&str> = l.split(' ').collect();
            let Some(sep) = parts.iter().position(|p| *p == "-") else {
                continue;
            };
            let fstype = parts.get(sep + 1).copied().unwrap_or("");
            if fstype == "cgroup" || fstype == "cgroup2" {
                if let Some(m) = parts.get(4) {
                    v.push(PathBuf::from(unescape_mount(m)));
                }
            }
        }
    }
    v
}

fn kill_cgroup_tree(dir: &Path) {
    for _ in 0..50 {
        let mut any = false;
        visit_dirs(dir, &mut |d| {
            if let Ok(procs) = fs::read_to_string(d.join("cgroup.procs")) {
                for p in procs.lines().filter_map(|p| p.trim().parse::<i32>().ok()) {
                    any = true;
                    let _ = nix::sys::signal::kill(
                        nix::unistd::Pid::from_raw(p),
                        nix::sys::signal::Signal::SIGKILL,
                    );
                }
            }
        });
        if !any {
            return;
        }
        std::thread::sleep(Duration::from_millis(50));
    }
}

fn visit_dirs(dir: &Path, f: &mut dyn FnMut(&Path)) {
    f(dir);
    if let Ok(rd) = fs::read_dir(dir) {
        for e in rd.flatten() {
            if e.file_type().map(|t| t.is_dir()).unwrap_or(false) {
                visit_dirs(&e.path(), f);
            }
        }
    }
}

fn remove_cgroup_tree(dir: &Path) -> std::io::Result<()> {
    if let Ok(rd) = fs::read_dir(dir) {
        for e in rd.flatten() {
            if e.file_type().map(|t| t.is_dir()).unwrap_or(false) {
                remove_cgroup_tree(&e.path())?;
            }
        }
    }
    // A cgroup dir is removed with rmdir even though it lists files.
    let mut last = Ok(());
    for _ in 0..20 {
        match fs::remove_dir(dir) {
            Ok(()) => return Ok(()),
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => return Ok(()),
            Err(e) => last = Err(e),
        }
        std::thread::sleep(Duration::from_millis(50));
    }
    last
}

/// Each node of the lab with its agent's container count, or why it did
/// not answer.
pub async fn status(lab: &str) -> Result<Vec<(Node, std::result::Result<usize, String>)>> {
    let file = cluster::lab_dir(lab).join("cluster.json");
    let cl = Cluster::load(&file)?;
    let mut client = Client::new(cl.clone())?;
    let mut out = Vec::new();
    for n in cl.nodes.clone() {
        let r = match client.call(&n.name, Request::List).await {
            Ok(Response::Containers(cs)) => Ok(cs.len()),
            Ok(r) => Err(format!("unexpected answer {r:?}")),
            Err(e) => Err(format!("{e:#}")),
        };
        out.push((n, r));
    }
    Ok(out)
}

/// One node of `lab status --json` (the VM lab adds its guest's keys).
pub fn status_json(
    name: &str,
    addr: std::net::SocketAddr,
    containers: &std::result::Result<usize, String>,
) -> serde_json::Value {
    serde_json::json!({
        "name": name,
        "addr": addr.to_string(),
        "up": containers.is_ok(),
        "containers": containers.as_ref().ok(),
        "error": containers.as_ref().err(),
    })
}
