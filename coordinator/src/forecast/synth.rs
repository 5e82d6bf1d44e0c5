//! A seeded synthetic run in the monitor's CSV format, for tests and for the
//! forecasting benchmark until lab data exists. Not a simulator of Herd: just
//! a contention model with enough structure for a model to learn.
//!
//! Each second, on each host: CPU demand D = sum of running threads weighted
//! by kind; every thread gets `min(1, cores / D)` of a core, scaled by the
//! host's speed. `cpu` ops follow the CPU share, `mem` ops also fall when the
//! host's memory is over 60 % used, `io` ops fall with the number of IO-heavy
//! neighbours, `oltp` mixes CPU and IO. Samples carry a little noise and
//! fractional timestamps; some containers move between hosts mid-run.

use std::path::Path;

use rand::rngs::StdRng;
use rand::{Rng, SeedableRng};

use super::dataset::{CONTAINER_METRICS, HOST_METRICS, HOST_OPTIONAL, TARGET};
use super::{ForecastError, Result};
use crate::csv::{ContainerRow, CsvWriter, HostRow};

#[derive(Clone, Debug)]
pub struct SynthParams {
    pub hosts: usize,
    pub containers: usize,
    pub seconds: usize,
    pub migrations: usize,
    pub seed: u64,
    /// Unix time of the first sample.
    pub start: f64,
}

impl Default for SynthParams {
    fn default() -> Self {
        SynthParams {
            hosts: 3,
            containers: 12,
            seconds: 300,
            migrations: 4,
            seed: 1,
            start: 1_764_000_000.0,
        }
    }
}

const KINDS: [&str; 4] = ["cpu", "mem", "io", "oltp"];
const GIB: f64 = 1024.0 * 1024.0 * 1024.0;
const MIB: f64 = 1024.0 * 1024.0;

struct Host {
    cores: f64,
    speed: f64,
    mem_total: f64,
    load: f64,
}

struct Cont {
    name: String,
    kind: usize,
    threads: f64,
    mem: f64,
    from: usize,
    to: usize,
    /// (second, new host) moves, sorted.
    moves: Vec<(usize, usize)>,
    host0: usize,
}

impl Cont {
    fn host_at(&self, t: usize) -> usize {
        self.moves
            .iter()
            .take_while(|(s, _)| *s <= t)
            .last()
            .map_or(self.host0, |m| m.1)
    }
    /// (cpu weight, io weight) per thread.
    fn weights(&self) -> (f64, f64) {
        match self.kind {
            0 => (1.0, 0.0),
            1 => (0.8, 0.1),
            2 => (0.3, 1.0),
            _ => (0.7, 0.6),
        }
    }
}

/// Writes hosts.csv and containers.csv (with a `kind` column) into `dir`.
pub fn write_run(dir: &Path, p: &SynthParams) -> Result<()> {
    if p.hosts == 0 || p.containers == 0 || p.seconds < 10 {
        return Err(ForecastError::Invalid(
            "synthetic run needs hosts, containers and at least 10 seconds".into(),
        ));
    }
    std::fs::create_dir_all(dir).map_err(|source| ForecastError::Io {
        path: dir.to_path_buf(),
        source,
    })?;
    let mut rng = StdRng::seed_from_u64(p.seed);
    let mut hosts: Vec<Host> = (0..p.hosts)
        .map(|_| Host {
            cores: [2.0, 4.0, 8.0][rng.gen_range(0..3)],
            speed: rng.gen_range(0.9..1.1),
            mem_total: [2.0, 4.0, 8.0][rng.gen_range(0..3)] * GIB,
            load: 0.0,
        })
        .collect();
    let t = p.seconds;
    let mut conts: Vec<Cont> = (0..p.containers)
        .map(|i| {
            let kind = rng.gen_range(0..KINDS.len());
            let from = rng.gen_range(0..t * 3 / 10);
            let to = rng.gen_range(t * 7 / 10..t);
            Cont {
                name: format!("{}-{i}", KINDS[kind]),
                kind,
                threads: rng.gen_range(1..=4) as f64,
                mem: if kind == 1 {
                    rng.gen_range(256.0..1536.0) * MIB
                } else {
                    rng.gen_range(8.0..64.0) * MIB
                },
                from,
                to,
                moves: Vec::new(),
                host0: rng.gen_range(0..p.hosts),
            }
        })
        .collect();
    if p.hosts > 1 {
        for _ in 0..p.migrations {
            let c = rng.gen_range(0..conts.len());
            let s = rng.gen_range(conts[c].from..conts[c].to);
            let cur = conts[c].host_at(s);
            let to = (cur + rng.gen_range(1..p.hosts)) % p.hosts;
            conts[c].moves.push((s, to));
            conts[c].moves.sort();
        }
    }

    let mut h = vec!["time", "host"];
    h.extend(HOST_METRICS);
    h.extend(HOST_OPTIONAL);
    let mut hw = CsvWriter::<_, HostRow>::create_with(dir, &h)?;
    let mut h = vec!["time", "host", "container"];
    h.extend(CONTAINER_METRICS);
    h.extend([TARGET, "kind"]);
    let mut cw = CsvWriter::<_, ContainerRow>::create_with(dir, &h)?;

    let noise = |rng: &mut StdRng| 1.0 + rng.gen_range(-0.04..0.04);
    for s in 0..t {
        let time = p.start + s as f64 + rng.gen_range(0.0..0.2);
        let running: Vec<usize> = (0..conts.len())
            .filter(|&i| (conts[i].from..conts[i].to).contains(&s))
            .collect();
        for (hi, host) in hosts.iter_mut().enumerate() {
            let here: Vec<&Cont> = running
                .iter()
                .map(|&i| &conts[i])
                .filter(|c| c.host_at(s) == hi)
                .collect();
            let demand: f64 = here.iter().fold(0.0, |a, c| a + c.threads * c.weights().0);
            let io_load: f64 = here
                .iter()
                .fold(0.0, |a, c| a + c.threads.min(2.0) * c.weights().1);
            let mem_used: f64 = here.iter().fold(256.0 * MIB, |a, c| a + c.mem);
            let mem_ratio = mem_used / host.mem_total;
            let share = if demand > host.cores {
                host.cores / demand
            } else {
                1.0
            };
            let disk_busy = (io_load * 0.25).min(1.0);
            host.load = 0.92 * host.load + 0.08 * demand;
            let (mut faults, mut disk_ops) = (0.0, 0.0);
            for c in &here {
                let (cw_, iw) = c.weights();
                let cpu = c.threads * cw_ * share * noise(&mut rng);
                let io_slow = 1.0 / (1.0 + 0.6 * (io_load - c.threads.min(2.0) * iw).max(0.0));
                let mem_slow = 1.0 / (1.0 + 3.0 * (mem_ratio - 0.6).max(0.0));
                let ops = match c.kind {
                    0 => 1000.0 * c.threads * share * host.speed,
                    1 => 300.0 * c.threads * share * host.speed * mem_slow,
                    2 => 200.0 * c.threads.min(2.0) * io_slow,
                    _ => 500.0 * (c.threads * share).min(2.0) * host.speed * io_slow.sqrt(),
                } * noise(&mut rng);
                let major = if c.kind == 1 {
                    (mem_ratio - 0.6).max(0.0) * 500.0
                } else {
                    0.0
                };
                let (rd, wr) = (ops * iw * 0.6, ops * iw * 0.4);
                faults += major;
                disk_ops += rd + wr;
                cw.write(&ContainerRow {
                    time,
                    host: format!("n{hi}"),
                    container: c.name.clone(),
                    cpu_usage_cores: cpu,
                    memory_bytes: (c.mem * noise(&mut rng)).round() as u64,
                    major_faults_per_second: major,
                    io_read_ops_per_second: rd,
                    io_write_ops_per_second: wr,
                    pids: c.threads as u32 + 1,
                    ops_per_second: Some(ops),
                    kind: Some(KINDS[c.kind].to_string()),
                    ..Default::default()
                })?;
            }
            let busy = (demand / host.cores).min(1.0);
            hw.write(&HostRow {
                time,
                host: format!("n{hi}"),
                cpu_user_ratio: busy * 0.85 * noise(&mut rng),
                cpu_system_ratio: busy * 0.1 * noise(&mut rng),
                cpu_iowait_ratio: disk_busy * 0.2 * (1.0 - busy * 0.85),
                load1: host.load,
                memory_used_bytes: mem_used.round() as u64,
                major_faults_per_second: faults,
                disk_ops_per_second: disk_ops,
                disk_busy_ratio: disk_busy,
                net_rx_bytes_per_second: (1000.0 * here.len() as f64 * noise(&mut rng)).round(),
                net_tx_bytes_per_second: (800.0 * here.len() as f64 * noise(&mut rng)).round(),
                cores: Some(host.cores),
                ..Default::default()
            })?;
        }
    }
    hw.flush()?;
    cw.flush()?;
    Ok(())
}
