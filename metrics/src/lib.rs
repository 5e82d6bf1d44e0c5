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
                ..Default::default()
            }],
            dropped_total: 3,
        };
        let t = prometheus_text(&[&s]);
        assert!(
            t.contains("# TYPE herd_host_load1 gauge\nherd_host_load1{host=\"n1\"} 0.5\n"),
            "{t}"
        );
        assert!(t.contains("herd_disk_busy_ratio{host=\"n1\",device=\"vda\"} 0.25"));
        assert!(t.contains("herd_container_cpu_usage_cores{host=\"n1\",container=\"c\\\"1\"} 2"));
        assert!(t.contains("herd_dropped_samples_total{host=\"n1\"} 3"));
        assert!(
            !t.contains("herd_container_ops_per_second{"),
            "None values are left out"
        );
    }
}
