//! The monitor's outputs, shared by the agent and the CLI through Cargo:
//!
//! | module | what lives there | used by |
//! |---|---|---|
//! | [`csv`] | `hosts.csv` and `containers.csv` headers and rows of the monitor's samples | `herd monitor`, the coordinator, tests |
//! | [`migrations`] | `migrations.csv` rows and the [`MigrationTracker`](migrations::MigrationTracker) that makes them from the agents' events | `herd monitor`, the coordinator |
//! | [`prometheus`] | the Prometheus text of the latest samples | the agent's and `herd monitor`'s `/metrics` |
//! | [`http`] | the tiny `GET /metrics` responder | the agent, `herd monitor --metrics-listen` |
//!
//! The samples themselves are messages and live in `herd_wire::monitor`.

pub mod csv;
pub mod http;
pub mod migrations;
pub mod prometheus;

#[cfg(test)]
mod tests {
    use herd_wire::monitor::{
        ContainerEvent, ContainerSample, DiskSample, EventKind, HostSample, Sample,
    };

    use crate::csv::{split_row, SampleRow, CONTAINERS_HEADER, HOSTS_HEADER};
    use crate::migrations::{Migration, MigrationRow, MigrationTracker};
    use crate::prometheus::prometheus_text;

    fn ev(host: &str, c: &str, kind: EventKind) -> ContainerEvent {
        ContainerEvent {
            time_ns: 1,
            host: host.into(),
            container: c.into(),
            kind,
        }
    }

    #[test]
    fn rows_round_trip_and_headers_match() {
        let h = HostSample {
            time_ns: 1_700_000_000_123_000_000,
            host: "n1".into(),
            cpu_user_ratio: 0.25,
            load1: 1.5,
            memory_used_bytes: 123,
            psi_io_some_avg10: Some(0.5),
            cores: 2.0,
            ..Default::default()
        };
        let row = h.csv_row();
        assert!(row.starts_with("1700000000.123,n1,0.2500,"));
        assert_eq!(
            split_row(&row).len(),
            HOSTS_HEADER.split(',').count(),
            "{row}"
        );
        assert_eq!(HostSample::from_csv_row(&row).unwrap(), h);
        let c = ContainerSample {
            time_ns: 5_000_000,
            host: "n2".into(),
            container: "c,1".into(),
            cpu_usage_cores: 2.0,
            pids: 3,
            ops_per_second: Some(10.0),
            ..Default::default()
        };
        let row = c.csv_row();
        assert_eq!(split_row(&row).len(), CONTAINERS_HEADER.split(',').count());
        assert_eq!(ContainerSample::from_csv_row(&row).unwrap(), c);
        let m = MigrationRow {
            time_ns: 2_000_000_000,
            container: "c1".into(),
            from: "n1".into(),
            to: "n2".into(),
            event: Migration::Moved,
            count: 3,
        };
        assert_eq!(m.csv_row(), "2.000,c1,n1,n2,moved,3");
        assert_eq!(MigrationRow::from_csv_row(&m.csv_row()).unwrap(), m);
    }

    #[test]
    fn issue_columns_come_first_in_order() {
        assert!(HOSTS_HEADER.starts_with(
            "time,host,cpu_user_ratio,cpu_system_ratio,cpu_iowait_ratio,load1,memory_used_bytes,\
major_faults_per_second,disk_ops_per_second,disk_busy_ratio,net_rx_bytes_per_second,\
net_tx_bytes_per_second"
        ));
        assert!(CONTAINERS_HEADER.starts_with(
            "time,host,container,cpu_usage_cores,memory_bytes,major_faults_per_second,\
io_read_ops_per_second,io_write_ops_per_second,pids,ops_per_second"
        ));
    }

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

    #[test]
    fn bad_rows_are_clear_errors() {
        assert!(HostSample::from_csv_row("1.0,n1").is_err());
        let e = MigrationRow::from_csv_row("1.0,c,a,b,teleported,1").unwrap_err();
        assert!(e.reason.contains("teleported"), "{e}");
        let e = MigrationRow::from_csv_row("x,c,a,b,moved,1").unwrap_err();
        assert!(e.reason.contains("time"), "{e}");
    }

    #[test]
    fn a_move_reported_by_both_ends_counts_once_in_either_order() {
        let mut t = MigrationTracker::default();
        let r = t.present(0, "n1", &["c".into()]);
        assert_eq!(r.len(), 1);
        assert_eq!(r[0].event, Migration::Added);
        // Target first, then source.
        let r = t.event(&ev("n2", "c", EventKind::MovedIn { from: "n1".into() }));
        let r = r.unwrap();
        assert_eq!(
            (r.event, r.count, r.from.as_str(), r.to.as_str()),
            (Migration::Moved, 1, "n1", "n2")
        );
        assert!(t
            .event(&ev("n1", "c", EventKind::MovedOut { to: "n2".into() }))
            .is_none());
        // Source first, then target.
        let r = t
            .event(&ev("n2", "c", EventKind::MovedOut { to: "n3".into() }))
            .unwrap();
        assert_eq!((r.count, r.to.as_str()), (2, "n3"));
        assert!(t
            .event(&ev("n3", "c", EventKind::MovedIn { from: "n2".into() }))
            .is_none());
        // The source's list no longer has it: no "removed".
        assert!(t.present(5, "n2", &[]).is_empty());
        assert_eq!(t.location("c"), Some("n3"));
        let r = t.event(&ev("n3", "c", EventKind::Removed)).unwrap();
        assert_eq!(
            (r.event, r.count, r.from.as_str()),
            (Migration::Removed, 2, "n3")
        );
        // A stale remove from another host changes nothing.
        assert!(t.event(&ev("n1", "c", EventKind::Removed)).is_none());
    }
}
