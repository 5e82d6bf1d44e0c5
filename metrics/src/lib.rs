//! The monitor's live outputs, shared by the agent and the CLI through Cargo:
//!
//! | module | what lives there | used by |
//! |---|---|---|
//! | [`prometheus`] | the Prometheus text of the latest samples | the agent's and `herd monitor`'s `/metrics` |
//! | [`http`] | the tiny `GET /metrics` responder | the agent, `herd monitor --metrics-listen` |
//!
//! The samples themselves are messages and live in `herd_wire::monitor`;
//! the CSV files made of them (schema, codec, one row type per file) and the
//! migration tracker live in `herd_coordinator::{csv, tracker}`.

pub mod http;
pub mod prometheus;

#[cfg(test)]
mod tests {
    use herd_wire::monitor::{ContainerSample, DiskSample, HostSample, Sample};

    use crate::prometheus::prometheus_text;

    #[test]
    fn prometheus_text_has_typed_labelled_metrics() {
        let s = Sample {
            host: Some(HostSample {
                host: "n1".into(),
                load1: 0.5,
                disks: vec![DiskSample {
                    device: "vda".into(),
                    busy_ratio: 0.25,
                    ..Default::default()
                }],
                ..Default::default()
            }),
            containers: vec![ContainerSample {
                host: "n1".into(),
                container: "c\"1".into(),
                cpu_usage_cores: 2.0,
                counters: herd_wire::monitor::ContainerCounters {
                    cpu_seconds: 7.5,
                    ..Default::default()
                },
                ..Default::default()
            }],
            dropped_total: 3,
            ..Default::default()
        };
        let t = prometheus_text(&[&s]);
        assert!(
            t.contains("# TYPE node_load1 gauge\nnode_load1{node=\"n1\"} 0.5\n"),
            "{t}"
        );
        assert!(t.contains("# HELP node_load1 "), "{t}");
        assert!(t.contains("node_disk_io_time_seconds_total{node=\"n1\",device=\"vda\"} 0"));
        assert!(
            t.contains(
                "container_cpu_usage_seconds_total{name=\"c\\\"1\",node=\"n1\",image=\"\"} 7.5\n"
            ),
            "{t}"
        );
        assert!(t.contains("herd_dropped_samples_total{node=\"n1\"} 3"));
        assert!(
            !t.contains("herd_container_ops_total{"),
            "None values are left out"
        );
        // Every family has HELP and TYPE; counters end in _total.
        for l in t.lines().filter(|l| l.starts_with("# TYPE ")) {
            let f: Vec<&str> = l.split(' ').collect();
            assert!(t.contains(&format!("# HELP {} ", f[2])), "{l}");
            if f[3] == "counter" {
                assert!(f[2].ends_with("_total"), "{l}");
            }
        }
    }
}
