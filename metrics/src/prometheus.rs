//! The Prometheus text exposition of monitor samples.

use herd_wire::monitor::{ContainerSample, DiskSample, HostSample, NetSample, Sample};

/// The Prometheus text exposition (format 0.0.4) of the latest samples of
/// one or more hosts: `herd_host_*{host}`, `herd_disk_*{host,device}`,
/// `herd_net_*{host,interface}`, `herd_container_*{host,container}`.
pub fn prometheus_text(samples: &[&Sample]) -> String {
    use std::fmt::Write;
    let mut out = String::new();
    let esc = |s: &str| {
        s.replace('\\', "\\\\")
            .replace('"', "\\\"")
            .replace('\n', "\\n")
    };
    type HostGet = fn(&HostSample) -> f64;
    let host_metrics: [(&str, &str, HostGet); 21] = [
        ("cpu_user_ratio", "gauge", |h| h.cpu_user_ratio),
        ("cpu_system_ratio", "gauge", |h| h.cpu_system_ratio),
        ("cpu_idle_ratio", "gauge", |h| h.cpu_idle_ratio),
        ("cpu_iowait_ratio", "gauge", |h| h.cpu_iowait_ratio),
        ("load1", "gauge", |h| h.load1),
        ("load5", "gauge", |h| h.load5),
        ("load15", "gauge", |h| h.load15),
        ("runnable_tasks", "gauge", |h| h.runnable_tasks as f64),
        ("context_switches_per_second", "gauge", |h| {
            h.context_switches_per_second
        }),
        ("interrupts_per_second", "gauge", |h| {
            h.interrupts_per_second
        }),
        ("softirqs_per_second", "gauge", |h| h.softirqs_per_second),
        ("memory_total_bytes", "gauge", |h| {
            h.memory_total_bytes as f64
        }),
        ("memory_used_bytes", "gauge", |h| h.memory_used_bytes as f64),
        ("memory_available_bytes", "gauge", |h| {
            h.memory_available_bytes as f64
        }),
        ("major_faults_per_second", "gauge", |h| {
            h.major_faults_per_second
        }),
        ("disk_ops_per_second", "gauge", |h| h.disk_ops_per_second),
        ("disk_read_bytes_per_second", "gauge", |h| {
            h.disk_read_bytes_per_second
        }),
        ("disk_write_bytes_per_second", "gauge", |h| {
            h.disk_write_bytes_per_second
        }),
        ("disk_busy_ratio", "gauge", |h| h.disk_busy_ratio),
        ("net_rx_bytes_per_second", "gauge", |h| {
            h.net_rx_bytes_per_second
        }),
        ("net_tx_bytes_per_second", "gauge", |h| {
            h.net_tx_bytes_per_second
        }),
    ];
    for (name, kind, get) in host_metrics {
        let _ = writeln!(out, "# TYPE herd_host_{name} {kind}");
        for h in samples.iter().filter_map(|s| s.host.as_ref()) {
            let _ = writeln!(
                out,
                "herd_host_{name}{{host=\"{}\"}} {}",
                esc(&h.host),
                get(h)
            );
        }
    }
    type HostOpt = fn(&HostSample) -> Option<f64>;
    let psi: [(&str, HostOpt); 3] = [
        ("psi_cpu_some_avg10", |h| h.psi_cpu_some_avg10),
        ("psi_memory_some_avg10", |h| h.psi_memory_some_avg10),
        ("psi_io_some_avg10", |h| h.psi_io_some_avg10),
    ];
    for (name, get) in psi {
        let _ = writeln!(out, "# TYPE herd_host_{name} gauge");
        for h in samples.iter().filter_map(|s| s.host.as_ref()) {
            if let Some(v) = get(h) {
                let _ = writeln!(out, "herd_host_{name}{{host=\"{}\"}} {v}", esc(&h.host));
            }
        }
    }
    type DiskGet = fn(&DiskSample) -> f64;
    let disk: [(&str, DiskGet); 5] = [
        ("read_ops_per_second", |d| d.read_ops_per_second),
        ("write_ops_per_second", |d| d.write_ops_per_second),
        ("read_bytes_per_second", |d| d.read_bytes_per_second),
        ("write_bytes_per_second", |d| d.write_bytes_per_second),
        ("busy_ratio", |d| d.busy_ratio),
    ];
    for (name, get) in disk {
        let _ = writeln!(out, "# TYPE herd_disk_{name} gauge");
        for h in samples.iter().filter_map(|s| s.host.as_ref()) {
            for d in &h.disks {
                let _ = writeln!(
                    out,
                    "herd_disk_{name}{{host=\"{}\",device=\"{}\"}} {}",
                    esc(&h.host),
                    esc(&d.device),
                    get(d)
                );
            }
        }
    }
    type NetGet = fn(&NetSample) -> f64;
    let net: [(&str, NetGet); 2] = [
        ("rx_bytes_per_second", |n| n.rx_bytes_per_second),
        ("tx_bytes_per_second", |n| n.tx_bytes_per_second),
    ];
    for (name, get) in net {
        let _ = writeln!(out, "# TYPE herd_net_{name} gauge");
        for h in samples.iter().filter_map(|s| s.host.as_ref()) {
            for n in &h.nets {
                let _ = writeln!(
                    out,
                    "herd_net_{name}{{host=\"{}\",interface=\"{}\"}} {}",
                    esc(&h.host),
                    esc(&n.interface),
                    get(n)
                );
            }
        }
    }
    type CGet = fn(&ContainerSample) -> Option<f64>;
    let cm: [(&str, CGet); 15] = [
        ("cpu_usage_cores", |c| Some(c.cpu_usage_cores)),
        ("cpu_throttled_ratio", |c| Some(c.cpu_throttled_ratio)),
        ("cpu_throttled_seconds_per_second", |c| {
            Some(c.cpu_throttled_seconds_per_second)
        }),
        ("memory_bytes", |c| Some(c.memory_bytes as f64)),
        ("major_faults_per_second", |c| {
            Some(c.major_faults_per_second)
        }),
        ("io_read_ops_per_second", |c| Some(c.io_read_ops_per_second)),
        ("io_write_ops_per_second", |c| {
            Some(c.io_write_ops_per_second)
        }),
        ("io_read_bytes_per_second", |c| {
            Some(c.io_read_bytes_per_second)
        }),
        ("io_write_bytes_per_second", |c| {
            Some(c.io_write_bytes_per_second)
        }),
        ("pids", |c| Some(c.pids as f64)),
        ("ops_per_second", |c| c.ops_per_second),
        ("psi_cpu_some_avg10", |c| c.psi_cpu_some_avg10),
        ("psi_memory_some_avg10", |c| c.psi_memory_some_avg10),
        ("psi_io_some_avg10", |c| c.psi_io_some_avg10),
        ("up", |_| Some(1.0)),
    ];
    for (name, get) in cm {
        let _ = writeln!(out, "# TYPE herd_container_{name} gauge");
        for s in samples {
            for c in &s.containers {
                if let Some(v) = get(c) {
                    let _ = writeln!(
                        out,
                        "herd_container_{name}{{host=\"{}\",container=\"{}\"}} {v}",
                        esc(&c.host),
                        esc(&c.container)
                    );
                }
            }
        }
    }
    let _ = writeln!(out, "# TYPE herd_dropped_samples_total counter");
    for s in samples {
        if let Some(h) = &s.host {
            let _ = writeln!(
                out,
                "herd_dropped_samples_total{{host=\"{}\"}} {}",
                esc(&h.host),
                s.dropped_total
            );
        }
    }
    out
}
