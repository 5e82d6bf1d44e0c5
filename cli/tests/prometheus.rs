//! A real Prometheus server (Debian's `prometheus` package) scrapes a real
//! lab's agents; PromQL over its HTTP API checks what Grafana users would
//! see: a 2-thread container's `rate(container_cpu_usage_seconds_total)`
//! against the CPU time the host's /proc says its process got, the series
//! going on across `herd migrate` with no reset, the migration counters,
//! `promtool check metrics` on each agent's page, and every query of
//! dist/grafana/herd.json returning series.

mod common;

use std::path::PathBuf;
use std::process::{Child, Command, Stdio};
use std::sync::atomic::{AtomicBool, AtomicI32, Ordering};
use std::sync::{Arc, Mutex};
use std::time::Duration;

use common::{
    cluster_json, import_busybox_with_work, now_s, pid_of, proc_cpu_seconds, wait_for, Lab,
};
use serde_json::Value;

const TEST: &str = "prometheus_scrapes_a_lab_across_a_migration_and_the_dashboard_answers";
/// Scrape interval of the test's Prometheus (s).
const SCRAPE_S: u64 = 1;
/// Window of the rate checks (s).
const WINDOW_S: f64 = 20.0;

fn find_bin(name: &str) -> Option<PathBuf> {
    let path = std::env::var_os("PATH").unwrap_or_default();
    std::env::split_paths(&path)
        .chain([PathBuf::from("/usr/bin")])
        .map(|d| d.join(name))
        .find(|p| p.is_file())
}

/// The host's own account of one process, every 100 ms, on a thread.
struct Truth {
    samples: Arc<Mutex<Vec<(f64, i32, f64)>>>,
    pid: Arc<AtomicI32>,
    stop: Arc<AtomicBool>,
}

impl Truth {
    fn start(pid: i32) -> Truth {
        let t = Truth {
            samples: Arc::default(),
            pid: Arc::new(AtomicI32::new(pid)),
            stop: Arc::default(),
        };
        let (s, p, stop) = (t.samples.clone(), t.pid.clone(), t.stop.clone());
        std::thread::spawn(move || {
            while !stop.load(Ordering::Relaxed) {
                let pid = p.load(Ordering::Relaxed);
                if let Some(cpu) = proc_cpu_seconds(pid) {
                    s.lock().expect("truth lock").push((now_s(), pid, cpu));
                }
                std::thread::sleep(Duration::from_millis(100));
            }
        });
        t
    }

    /// The reading of `pid` nearest to time `t`.
    fn at(&self, pid: i32, t: f64) -> f64 {
        let s = self.samples.lock().expect("truth lock");
        s.iter()
            .filter(|x| x.1 == pid)
            .min_by(|a, b| (a.0 - t).abs().total_cmp(&(b.0 - t).abs()))
            .unwrap_or_else(|| panic!("no /proc reading of pid {pid}"))
            .2
    }

    fn last(&self, pid: i32) -> f64 {
        let s = self.samples.lock().expect("truth lock");
        s.iter()
            .rev()
            .find(|x| x.1 == pid)
            .unwrap_or_else(|| panic!("no /proc reading of pid {pid}"))
            .2
    }

    /// Cores the process got over the `WINDOW_S` before `t`.
    fn cores(&self, pid: i32, t: f64) -> f64 {
        (self.at(pid, t) - self.at(pid, t - WINDOW_S)) / WINDOW_S
    }
}

impl Drop for Truth {
    fn drop(&mut self) {
        self.stop.store(true, Ordering::Relaxed);
    }
}

/// A Prometheus server of the test's own, on a free port, with its own
/// storage; killed on drop.
struct Prom {
    child: Child,
    addr: String,
    _dir: tempfile::TempDir,
}

impl Prom {
    fn start(bin: &PathBuf, targets: &[String]) -> Prom {
        let dir = tempfile::tempdir().expect("tempdir");
        let port = std::net::TcpListener::bind("127.0.0.1:0")
            .and_then(|l| l.local_addr())
            .expect("free port")
            .port();
        let list: Vec<String> = targets.iter().map(|t| format!("'{t}'")).collect();
        let cfg = format!(
            "global:\n  scrape_interval: {SCRAPE_S}s\n  scrape_timeout: {SCRAPE_S}s\n\
             scrape_configs:\n  - job_name: herd\n    honor_labels: true\n    \
             static_configs:\n      - targets: [{}]\n",
            list.join(", ")
        );
        let cfg_path = dir.path().join("prometheus.yml");
        std::fs::write(&cfg_path, cfg).expect("write prometheus.yml");
        let addr = format!("127.0.0.1:{port}");
        let log = std::fs::File::create(dir.path().join("prometheus.log")).expect("log file");
        let child = Command::new(bin)
            .arg(format!("--config.file={}", cfg_path.display()))
            .arg(format!(
                "--storage.tsdb.path={}",
                dir.path().join("data").display()
            ))
            .arg(format!("--web.listen-address={addr}"))
            .arg("--log.level=warn")
            .stdout(Stdio::null())
            .stderr(log)
            .spawn()
            .expect("start prometheus");
        let p = Prom {
            child,
            addr,
            _dir: dir,
        };
        let up = wait_for(60, || {
            p.try_query("up", None).filter(|r| r.len() == targets.len())
        });
        assert!(
            up.is_some(),
            "prometheus answered no `up` for {targets:?}; its log:\n{}",
            std::fs::read_to_string(p._dir.path().join("prometheus.log")).unwrap_or_default()
        );
        p
    }

    fn try_query(&self, q: &str, time: Option<f64>) -> Option<Vec<Value>> {
        let mut c = Command::new("curl");
        c.args(["-sfG", "--max-time", "30"])
            .arg(format!("http://{}/api/v1/query", self.addr))
            .arg("--data-urlencode")
            .arg(format!("query={q}"));
        if let Some(t) = time {
            c.arg("--data-urlencode").arg(format!("time={t:.3}"));
        }
        let out = c.output().ok()?;
        let v: Value = serde_json::from_slice(&out.stdout).ok()?;
        (v["status"] == "success").then(|| v["data"]["result"].as_array().cloned())?
    }

    /// The result vector of an instant query; panics on an error.
    fn query(&self, q: &str, time: Option<f64>) -> Vec<Value> {
        self.try_query(q, time)
            .unwrap_or_else(|| panic!("prometheus refused or failed: {q}"))
    }

    /// The value of a query that must give exactly one series.
    fn one(&self, q: &str, time: Option<f64>) -> f64 {
        let r = self.query(q, time);
        assert_eq!(r.len(), 1, "{q} at {time:?}: {r:?}");
        r[0]["value"][1]
            .as_str()
            .and_then(|v| v.parse().ok())
            .unwrap_or_else(|| panic!("{q}: not a number: {r:?}"))
    }
}

impl Drop for Prom {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

fn metrics_addr(lab: &Lab, node: &str) -> String {
    let cl = cluster_json(lab);
    let addr = cl["nodes"]
        .as_array()
        .and_then(|a| a.iter().find(|n| n["name"] == node))
        .and_then(|n| n["addr"].as_str())
        .unwrap_or_else(|| panic!("no address of {node} in cluster.json"));
    let ip = addr.rsplit_once(':').map(|a| a.0).unwrap_or(addr);
    format!("{ip}:9100")
}

/// `promtool check metrics` on an agent's page: no complaint at all.
fn promtool_clean(promtool: &PathBuf, addr: &str, must_have: &str) {
    let page = Command::new("curl")
        .args(["-sf", "--max-time", "10"])
        .arg(format!("http://{addr}/metrics"))
        .output()
        .expect("curl");
    let text = String::from_utf8_lossy(&page.stdout).into_owned();
    assert!(text.contains(must_have), "{addr}: no {must_have}:\n{text}");
    let mut c = Command::new(promtool)
        .args(["check", "metrics"])
        .stdin(Stdio::piped())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .expect("run promtool");
    std::io::Write::write_all(&mut c.stdin.take().expect("stdin"), &page.stdout)
        .expect("feed promtool");
    let out = c.wait_with_output().expect("promtool");
    let said = format!(
        "{}{}",
        String::from_utf8_lossy(&out.stdout),
        String::from_utf8_lossy(&out.stderr)
    );
    assert!(
        out.status.success() && said.trim().is_empty(),
        "promtool check metrics on {addr}'s page:\n{said}"
    );
}

/// Every query of the Grafana dashboard, its variables filled in as
/// Grafana would for "All".
fn dashboard_queries() -> Vec<(String, String)> {
    let p = herd_testkit::workspace_root().join("dist/grafana/herd.json");
    let d: Value = serde_json::from_slice(&std::fs::read(&p).expect("dist/grafana/herd.json"))
        .expect("herd.json is JSON");
    let mut out = Vec::new();
    for panel in d["panels"].as_array().expect("panels") {
        for t in panel["targets"].as_array().into_iter().flatten() {
            let e = t["expr"].as_str().expect("expr");
            let e = e
                .replace("$__rate_interval", "30s")
                .replace("$node", ".*")
                .replace("$name", ".*");
            out.push((panel["title"].as_str().unwrap_or("").to_string(), e));
        }
    }
    out
}

#[test]
fn prometheus_scrapes_a_lab_across_a_migration_and_the_dashboard_answers() {
    let (Some(prom_bin), Some(promtool)) = (find_bin("prometheus"), find_bin("promtool")) else {
        herd_testkit::unmet(
            TEST,
            "no prometheus/promtool: Debian's `prometheus` package is not installed (scripts/setup installs it)",
        );
        return;
    };
    let Some(lab) = Lab::up(TEST, "prom", 2) else {
        return;
    };
    if !herd_testkit::require_root_and_criu(TEST) {
        return;
    }
    import_busybox_with_work(&lab);
    lab.ok(&[
        "run",
        "--node",
        "n1",
        "--name",
        "cpu2",
        "busybox",
        "--",
        "herd-work",
        "cpu",
        "--threads",
        "2",
    ]);
    assert!(
        wait_for(30, || lab
            .ok(&["logs", "cpu2"])
            .contains("ops=")
            .then_some(()))
        .is_some(),
        "cpu2 printed no ops line"
    );
    let (a1, a2) = (metrics_addr(&lab, "n1"), metrics_addr(&lab, "n2"));
    let prom = Prom::start(&prom_bin, &[a1.clone(), a2.clone()]);
    let pid1 = pid_of(&lab, "cpu2");
    let truth = Truth::start(pid1);
    let on =
        |node: &str| format!("container_cpu_usage_seconds_total{{name=\"cpu2\",node=\"{node}\"}}");
    assert!(
        wait_for(60, || (!prom.query(&on("n1"), None).is_empty())
            .then_some(()))
        .is_some(),
        "no {} in prometheus",
        on("n1")
    );
    promtool_clean(
        &promtool,
        &a1,
        "container_cpu_usage_seconds_total{name=\"cpu2\"",
    );
    std::thread::sleep(Duration::from_secs_f64(WINDOW_S + 2.0));

    // Before the move: the rate Prometheus computes against /proc.
    let ta = now_s() - 1.0;
    let rate = |node: &str, t: f64| {
        prom.one(
            &format!("rate({}[{}s])", on(node), WINDOW_S as u64),
            Some(t),
        )
    };
    let check_rate = |what: &str, got: f64, host: f64| {
        eprintln!("{what}: prometheus rate {got:.3} cores, /proc {host:.3} cores");
        assert!(
            (got / host - 1.0).abs() <= 0.15,
            "{what}: rate() reads {got:.3} cores, the host's /proc gave the process {host:.3}"
        );
        if host >= 1.7 {
            assert!(
                (got - 2.0).abs() <= 0.3,
                "{what}: 2 busy threads read {got:.3} cores"
            );
        }
    };
    check_rate("on n1", rate("n1", ta), truth.cores(pid1, ta));
    let v_start = prom.one(&on("n1"), Some(ta));

    // The move.
    lab.ok(&["migrate", "cpu2", "--to", "n2"]);
    let pid2 = pid_of(&lab, "cpu2");
    truth.pid.store(pid2, Ordering::Relaxed);
    assert!(
        wait_for(60, || (!prom.query(&on("n2"), None).is_empty())
            .then_some(()))
        .is_some(),
        "no {} in prometheus after the move",
        on("n2")
    );
    std::thread::sleep(Duration::from_secs_f64(WINDOW_S + 2.0));
    let tb = now_s() - 1.0;
    check_rate(
        "on n2 after the move",
        rate("n2", tb),
        truth.cores(pid2, tb),
    );
    promtool_clean(
        &promtool,
        &a2,
        "container_cpu_usage_seconds_total{name=\"cpu2\"",
    );

    // The series goes on: the target's first value is not below the
    // source's last, the container's counter never falls, and what it
    // counted across the move is what /proc says the two processes got.
    let span = format!("{}s", (tb - ta + 5.0) as u64);
    let last_n1 = prom.one(&format!("last_over_time({}[{span}])", on("n1")), Some(tb));
    let first_n2 = prom.one(&format!("min_over_time({}[{span}])", on("n2")), Some(tb));
    eprintln!("cpu2: last on n1 {last_n1:.3} s, first on n2 {first_n2:.3} s");
    assert!(
        first_n2 >= last_n1,
        "the counter restarted on the target: {first_n2} after {last_n1}"
    );
    let resets = prom.one(
        &format!(
            "resets((max by (name) (container_cpu_usage_seconds_total{{name=\"cpu2\"}}))[{span}:1s])"
        ),
        Some(tb),
    );
    assert_eq!(
        resets, 0.0,
        "max by (name) of the counter fell across the move"
    );
    let v_end = prom.one(&on("n2"), Some(tb));
    let host = (truth.last(pid1) - truth.at(pid1, ta)) + truth.at(pid2, tb);
    eprintln!(
        "cpu2 from before to after the move: prometheus +{:.3} s, /proc +{host:.3} s",
        v_end - v_start
    );
    assert!(
        ((v_end - v_start) / host - 1.0).abs() <= 0.15,
        "the counter grew {:.3} s across the move, /proc says the container got {host:.3} s",
        v_end - v_start
    );

    // Migration counters and the frozen-time histogram.
    let m = |q: &str| prom.one(q, None);
    assert_eq!(
        m("herd_migrations_total{node=\"n1\",direction=\"out\"}"),
        1.0
    );
    assert_eq!(
        m("herd_migrations_total{node=\"n2\",direction=\"in\"}"),
        1.0
    );
    assert_eq!(m("herd_migration_frozen_seconds_count{node=\"n1\"}"), 1.0);
    let frozen = m("herd_migration_frozen_seconds_sum{node=\"n1\"}");
    assert!(frozen > 0.0, "frozen time {frozen}");
    assert_eq!(
        m("herd_migration_frozen_seconds_bucket{node=\"n1\",le=\"+Inf\"}"),
        1.0
    );

    // The dashboard: every panel's query returns series.
    let queries = dashboard_queries();
    assert!(queries.len() >= 10, "{queries:?}");
    for (panel, q) in &queries {
        let r = prom.query(q, None);
        assert!(!r.is_empty(), "panel {panel:?}: no series for {q}");
    }
    eprintln!("{} dashboard queries answered", queries.len());
    lab.ok(&["rm", "-f", "cpu2"]);
}
