//! The Prometheus text exposition of monitor samples.
//!
//! Counters are cumulative and in base units (seconds, bytes, operations),
//! so Prometheus's `rate()` works at any scrape interval; gauges are levels
//! only. Names follow what dashboards already use:
//!
//! | what | families | labels |
//! |---|---|---|
//! | containers | cAdvisor's `container_*` (`container_cpu_usage_seconds_total`, `container_memory_working_set_bytes`, ...) | `name`, `node`, `image` |
//! | hosts | node_exporter's `node_*` (`node_cpu_seconds_total{mode}`, `node_load1`, `node_disk_*`, ...) | `node` (+ `mode`, `device`) |
//! | what only Herd knows | `herd_*`: the workload's own ops, migrations and their frozen time, dropped samples | `node` (+ `name`, `image`) |
//!
//! Across a migration a container's counters continue: the counts at the
//! dump travel with the images and the target adds its new cgroup's counts
//! to them ([`herd_wire::monitor::ContainerCounters`]). Its series moves
//! from `node="a"` to `node="b"` (and to the target's scrape `instance`);
//! `sum by (name) (rate(container_cpu_usage_seconds_total[1m]))` reads
//! through the move, and the target's first value is not below the
//! source's last, so no reset is misread.
//!
//! Where node_exporter's Linux names are camelCase (`node_memory_MemTotal_bytes`)
//! `promtool check metrics` rejects them; those use the snake_case names
//! node_exporter uses on other systems (`node_memory_total_bytes`).

use std::fmt::Write;

use herd_wire::monitor::{ContainerSample, HostSample, Sample, FROZEN_BUCKETS};

fn esc(s: &str) -> String {
    s.replace('\\', "\\\\")
        .replace('"', "\\\"")
        .replace('\n', "\\n")
}

/// One family: `# HELP`, `# TYPE` and its samples (left out when it has none).
struct Family<'a> {
    out: &'a mut String,
    name: &'a str,
    kind: &'a str,
    help: &'a str,
    started: bool,
}

impl Family<'_> {
    fn sample(&mut self, suffix: &str, labels: &str, v: f64) {
        if !self.started {
            let _ = writeln!(self.out, "# HELP {} {}", self.name, self.help);
            let _ = writeln!(self.out, "# TYPE {} {}", self.name, self.kind);
            self.started = true;
        }
        let _ = writeln!(self.out, "{}{suffix}{{{labels}}} {v}", self.name);
    }
}

fn family<'a>(out: &'a mut String, name: &'a str, kind: &'a str, help: &'a str) -> Family<'a> {
    Family {
        out,
        name,
        kind,
        help,
        started: false,
    }
}

fn node_l(h: &HostSample) -> String {
    format!("node=\"{}\"", esc(&h.host))
}

fn container_l(c: &ContainerSample) -> String {
    format!(
        "name=\"{}\",node=\"{}\",image=\"{}\"",
        esc(&c.container),
        esc(&c.host),
        esc(&c.image)
    )
}

type HostGet = fn(&HostSample) -> Option<f64>;
type CGet = fn(&ContainerSample) -> Option<f64>;

/// The Prometheus text exposition (format 0.0.4) of the latest samples of
/// one or more hosts (see the module docs for the names).
pub fn prometheus_text(samples: &[&Sample]) -> String {
    let mut out = String::new();
    let hosts: Vec<&HostSample> = samples.iter().filter_map(|s| s.host.as_ref()).collect();
    let containers: Vec<&ContainerSample> =
        samples.iter().flat_map(|s| s.containers.iter()).collect();

    {
        let mut f = family(
            &mut out,
            "node_cpu_seconds_total",
            "counter",
            "Seconds the CPUs spent in each mode, all CPUs summed (with herd-agent --cpus: its slice's user and system time).",
        );
        for h in &hosts {
            for (i, mode) in ["user", "system", "idle", "iowait"].iter().enumerate() {
                let l = format!("{},mode=\"{mode}\"", node_l(h));
                f.sample("", &l, h.counters.cpu_seconds[i]);
            }
        }
    }
    let host: [(&str, &str, &str, HostGet); 13] = [
        (
            "herd_node_cores",
            "gauge",
            "CPU capacity for containers: herd-agent --cpus, else the machine's CPUs.",
            |h| Some(h.cores),
        ),
        (
            "node_load1",
            "gauge",
            "1m load average (of the --cpus slice's threads when the agent has one).",
            |h| Some(h.load1),
        ),
        ("node_load5", "gauge", "5m load average.", |h| Some(h.load5)),
        ("node_load15", "gauge", "15m load average.", |h| {
            Some(h.load15)
        }),
        (
            "node_procs_running",
            "gauge",
            "Threads in the runnable state.",
            |h| Some(h.runnable_tasks as f64),
        ),
        (
            "node_context_switches_total",
            "counter",
            "Context switches since boot.",
            |h| Some(h.counters.context_switches as f64),
        ),
        (
            "node_intr_total",
            "counter",
            "Interrupts serviced since boot.",
            |h| Some(h.counters.interrupts as f64),
        ),
        (
            "node_softirqs_total",
            "counter",
            "Softirqs serviced since boot.",
            |h| Some(h.counters.softirqs as f64),
        ),
        (
            "node_memory_total_bytes",
            "gauge",
            "Memory of the host (MemTotal).",
            |h| Some(h.memory_total_bytes as f64),
        ),
        (
            "node_memory_available_bytes",
            "gauge",
            "Memory available for new work without swapping (MemAvailable).",
            |h| Some(h.memory_available_bytes as f64),
        ),
        (
            "node_vmstat_pgmajfault",
            "untyped",
            "Major page faults since boot (/proc/vmstat pgmajfault).",
            |h| Some(h.counters.major_faults as f64),
        ),
        (
            "node_pressure_cpu_waiting_seconds_total",
            "counter",
            "Seconds in which some tasks waited for a CPU (PSI).",
            |h| h.counters.pressure_seconds[0],
        ),
        (
            "node_pressure_memory_waiting_seconds_total",
            "counter",
            "Seconds in which some tasks stalled on memory (PSI).",
            |h| h.counters.pressure_seconds[1],
        ),
    ];
    for (name, kind, help, get) in host {
        let mut f = family(&mut out, name, kind, help);
        for h in &hosts {
            if let Some(v) = get(h) {
                f.sample("", &node_l(h), v);
            }
        }
    }
    {
        let mut f = family(
            &mut out,
            "node_pressure_io_waiting_seconds_total",
            "counter",
            "Seconds in which some tasks stalled on IO (PSI).",
        );
        for h in &hosts {
            if let Some(v) = h.counters.pressure_seconds[2] {
                f.sample("", &node_l(h), v);
            }
        }
    }
    type DiskGet = fn(&herd_wire::monitor::DiskSample) -> f64;
    let disk: [(&str, &str, DiskGet); 5] = [
        (
            "node_disk_reads_completed_total",
            "Reads completed since boot.",
            |d| d.reads_total as f64,
        ),
        (
            "node_disk_writes_completed_total",
            "Writes completed since boot.",
            |d| d.writes_total as f64,
        ),
        (
            "node_disk_read_bytes_total",
            "Bytes read since boot.",
            |d| d.read_bytes_total as f64,
        ),
        (
            "node_disk_written_bytes_total",
            "Bytes written since boot.",
            |d| d.written_bytes_total as f64,
        ),
        (
            "node_disk_io_time_seconds_total",
            "Seconds the disk was busy since boot.",
            |d| d.io_time_seconds_total,
        ),
    ];
    for (name, help, get) in disk {
        let mut f = family(&mut out, name, "counter", help);
        for h in &hosts {
            for d in &h.disks {
                let l = format!("{},device=\"{}\"", node_l(h), esc(&d.device));
                f.sample("", &l, get(d));
            }
        }
    }
    type NetGet = fn(&herd_wire::monitor::NetSample) -> f64;
    let net: [(&str, &str, NetGet); 2] = [
        (
            "node_network_receive_bytes_total",
            "Bytes received by the interface (of the agent's network namespace).",
            |n| n.rx_bytes_total as f64,
        ),
        (
            "node_network_transmit_bytes_total",
            "Bytes sent by the interface (of the agent's network namespace).",
            |n| n.tx_bytes_total as f64,
        ),
    ];
    for (name, help, get) in net {
        let mut f = family(&mut out, name, "counter", help);
        for h in &hosts {
            for n in &h.nets {
                let l = format!("{},device=\"{}\"", node_l(h), esc(&n.interface));
                f.sample("", &l, get(n));
            }
        }
    }

    let cm: [(&str, &str, &str, CGet); 18] = [
        (
            "container_cpu_usage_seconds_total",
            "counter",
            "CPU seconds the container used (continues across migrations).",
            |c| Some(c.counters.cpu_seconds),
        ),
        (
            "container_cpu_cfs_periods_total",
            "counter",
            "CFS enforcement periods elapsed.",
            |c| Some(c.counters.cfs_periods as f64),
        ),
        (
            "container_cpu_cfs_throttled_periods_total",
            "counter",
            "CFS periods in which the container was throttled.",
            |c| Some(c.counters.cfs_throttled_periods as f64),
        ),
        (
            "container_cpu_cfs_throttled_seconds_total",
            "counter",
            "Seconds the container was throttled.",
            |c| Some(c.counters.cfs_throttled_seconds),
        ),
        (
            "container_memory_working_set_bytes",
            "gauge",
            "Memory in use minus inactive file cache.",
            |c| Some(c.memory_bytes as f64),
        ),
        (
            "container_threads",
            "gauge",
            "Tasks (threads) in the container (pids.current).",
            |c| Some(c.pids as f64),
        ),
        (
            "container_fs_reads_total",
            "counter",
            "Read operations (cgroup v1: the tasks' read calls; v2: io.stat rios).",
            |c| Some(c.counters.fs_reads as f64),
        ),
        (
            "container_fs_writes_total",
            "counter",
            "Write operations (cgroup v1: the tasks' write calls; v2: io.stat wios).",
            |c| Some(c.counters.fs_writes as f64),
        ),
        (
            "container_fs_reads_bytes_total",
            "counter",
            "Bytes read from storage.",
            |c| Some(c.counters.fs_read_bytes as f64),
        ),
        (
            "container_fs_writes_bytes_total",
            "counter",
            "Bytes written to storage.",
            |c| Some(c.counters.fs_write_bytes as f64),
        ),
        (
            "container_network_receive_bytes_total",
            "counter",
            "Bytes received in the container's network namespace (loopback left out).",
            |c| Some(c.counters.net_rx_bytes as f64),
        ),
        (
            "container_network_transmit_bytes_total",
            "counter",
            "Bytes sent from the container's network namespace (loopback left out).",
            |c| Some(c.counters.net_tx_bytes as f64),
        ),
        (
            "container_pressure_cpu_waiting_seconds_total",
            "counter",
            "Seconds in which some of the container's tasks waited for a CPU (PSI).",
            |c| Some(c.counters.pressure_seconds[0]),
        ),
        (
            "container_pressure_memory_waiting_seconds_total",
            "counter",
            "Seconds in which some of the container's tasks stalled on memory (PSI).",
            |c| Some(c.counters.pressure_seconds[1]),
        ),
        (
            "container_pressure_io_waiting_seconds_total",
            "counter",
            "Seconds in which some of the container's tasks stalled on IO (PSI).",
            |c| Some(c.counters.pressure_seconds[2]),
        ),
        (
            "container_start_time_seconds",
            "gauge",
            "When the container was first made (Unix time; kept across migrations).",
            |c| Some(c.counters.start_time_seconds),
        ),
        (
            "herd_container_ops_total",
            "counter",
            "The workload's own operation count (the total= of its ops lines).",
            |c| c.counters.ops.map(|v| v as f64),
        ),
        (
            "container_memory_failures_total",
            "counter",
            "Major page faults of the container.",
            |c| Some(c.counters.major_faults as f64),
        ),
    ];
    for (name, kind, help, get) in cm {
        let mut f = family(&mut out, name, kind, help);
        for c in &containers {
            if let Some(v) = get(c) {
                let mut l = container_l(c);
                if name == "container_memory_failures_total" {
                    l.push_str(",failure_type=\"pgmajfault\",scope=\"container\"");
                }
                f.sample("", &l, v);
            }
        }
    }
    let with_host: Vec<(&HostSample, &Sample)> = samples
        .iter()
        .filter_map(|s| Some((s.host.as_ref()?, *s)))
        .collect();
    {
        let mut f = family(
            &mut out,
            "herd_migrations_total",
            "counter",
            "Containers that moved out of (direction=out) or into (direction=in) this node since its agent started.",
        );
        for (h, s) in &with_host {
            let m = &s.migrations;
            f.sample(
                "",
                &format!("{},direction=\"out\"", node_l(h)),
                m.out_total as f64,
            );
            f.sample(
                "",
                &format!("{},direction=\"in\"", node_l(h)),
                m.in_total as f64,
            );
        }
    }
    {
        let mut f = family(
            &mut out,
            "herd_migration_frozen_seconds",
            "histogram",
            "How long each container that moved out of this node was frozen (dump start to running on the target).",
        );
        for (h, s) in &with_host {
            let m = &s.migrations;
            for (i, le) in FROZEN_BUCKETS.iter().enumerate() {
                let n = m.frozen_le.get(i).copied().unwrap_or(0);
                f.sample("_bucket", &format!("{},le=\"{le}\"", node_l(h)), n as f64);
            }
            f.sample(
                "_bucket",
                &format!("{},le=\"+Inf\"", node_l(h)),
                m.out_total as f64,
            );
            f.sample("_sum", &node_l(h), m.frozen_seconds_sum);
            f.sample("_count", &node_l(h), m.out_total as f64);
        }
    }
    {
        let mut f = family(
            &mut out,
            "herd_dropped_samples_total",
            "counter",
            "Samples the agent dropped because a counter went backwards.",
        );
        for (h, s) in &with_host {
            f.sample("", &node_l(h), s.dropped_total as f64);
        }
    }
    out
}
