//! Real servers under their own real clients, moved between the hosts of a
//! netns lab (real CRIU, real TCP): Debian's redis-server under
//! `redis-benchmark` and nginx serving a file under `wrk`, each image built
//! by `herd image import --debian`. Each server goes n1 -> n2 -> n3 -> n1
//! while its client works: no client error, its data intact (keys set
//! before, the file's checksum), the client's longest stall printed beside
//! each migration's frozen time.
//!
//! Also here: a container whose process runs as another user than root is
//! refused before anything is frozen where root lacks CAP_SYS_RESOURCE (this
//! machine kind), and checkpointed where root has it.
//!
//! The servers run as root inside their containers: on this machine CRIU
//! cannot dump a process of another user (see the refusal test), so
//! PostgreSQL (user postgres) is moved under pgbench in the VM suite
//! (cli/tests/vm.rs), whose guests' root has that capability.

mod common;

use std::io::Write;
use std::process::{Child, Command, Stdio};
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use common::{counter_counts, import_busybox_with_work, migrate_json, text, wait_for, Lab};

// ---------------------------------------------------------------- helpers

/// True when every tool is on PATH; else fails under CI, skips loudly otherwise.
fn have_tools(test: &str, tools: &[&str]) -> bool {
    let missing: Vec<&str> = tools
        .iter()
        .copied()
        .filter(|t| {
            !std::env::var_os("PATH")
                .map(|p| std::env::split_paths(&p).any(|d| d.join(t).is_file()))
                .unwrap_or(false)
        })
        .collect();
    if missing.is_empty() {
        return true;
    }
    herd_testkit::unmet(
        test,
        &format!(
            "missing on this host: {} (scripts/setup installs them)",
            missing.join(", ")
        ),
    )
}

fn where_is(lab: &Lab, name: &str) -> (String, String, i64) {
    let c = lab
        .container(name)
        .unwrap_or_else(|| panic!("{name} not in ps: {}", lab.ps_json()));
    assert_eq!(c["status"], "running", "{c}");
    (
        c["node"].as_str().unwrap_or_default().to_string(),
        c["ip"].as_str().unwrap_or_default().to_string(),
        c["pid"].as_i64().unwrap_or_default(),
    )
}

/// `herd image import NAME --debian PKGS`; returns the build line it printed.
fn import_debian(lab: &Lab, name: &str, pkgs: &str) -> String {
    let out = lab.ok(&["image", "import", name, "--debian", pkgs]);
    let line = out
        .lines()
        .find(|l| l.starts_with("built "))
        .unwrap_or_else(|| panic!("no build line in:\n{out}"))
        .to_string();
    eprintln!("{line}");
    line
}

fn output(cmd: &mut Command) -> std::process::Output {
    cmd.output().unwrap_or_else(|e| panic!("run {cmd:?}: {e}"))
}

/// One migration as the test saw it.
struct Move {
    to: String,
    frozen_ms: f64,
    criu_frozen_ms: f64,
    bytes: u64,
}

fn move_around(lab: &Lab, name: &str, ip: &str, between: impl Fn()) -> Vec<Move> {
    let mut moves = Vec::new();
    for to in ["n2", "n3", "n1"] {
        between();
        let r = migrate_json(lab, name, to);
        let (node, ip2, _) = where_is(lab, name);
        assert_eq!((node.as_str(), ip2.as_str()), (to, ip), "{r}");
        let f = |k: &str| r[k].as_f64().unwrap_or_else(|| panic!("no {k}: {r}"));
        moves.push(Move {
            to: to.into(),
            frozen_ms: f("frozen_ms"),
            criu_frozen_ms: f("criu_frozen_ms"),
            bytes: r["bytes"]
                .as_u64()
                .unwrap_or_else(|| panic!("no bytes: {r}")),
        });
    }
    moves
}

fn report(server: &str, client: &str, requests: u64, errors: u64, stall_ms: f64, moves: &[Move]) {
    eprintln!("\n{server}: client {client}");
    eprintln!(
        "  requests {requests}, errors {errors}, longest stall {stall_ms:.0} ms over {} moves",
        moves.len()
    );
    for m in moves {
        eprintln!(
            "  -> {}: frozen {:.0} ms (CRIU's frozen time {:.0} ms), {} bytes moved",
            m.to, m.frozen_ms, m.criu_frozen_ms, m.bytes
        );
    }
}

// ---------------------------------------------------------------- non-root

fn cap_sys_resource() -> bool {
    let s = std::fs::read_to_string("/proc/self/status").expect("read /proc/self/status");
    let eff = s
        .lines()
        .find_map(|l| l.strip_prefix("CapEff:"))
        .and_then(|v| u64::from_str_radix(v.trim(), 16).ok())
        .expect("CapEff in /proc/self/status");
    eff & (1 << 24) != 0
}

#[test]
fn a_container_of_another_user_is_refused_before_the_freeze_without_cap_sys_resource() {
    let test = "servers_non_root";
    let Some(lab) = Lab::up(test, "svuid", 2) else {
        return;
    };
    import_busybox_with_work(&lab);
    lab.ok(&[
        "run",
        "--node",
        "n1",
        "--name",
        "nob",
        "busybox",
        "--",
        "su",
        "-s",
        "/bin/sh",
        "nobody",
        "-c",
        "exec herd-work counter --interval-ms 100",
    ]);
    let counts = |lab: &Lab| counter_counts(&lab.ok(&["logs", "nob"]));
    let grown = |lab: &Lab, n: usize| {
        wait_for(20, || {
            let c = counts(lab);
            (c.len() >= n).then_some(c)
        })
        .unwrap_or_else(|| panic!("the counter stopped: {:?}", counts(lab)))
    };
    grown(&lab, 5);
    let (_, _, pid) = where_is(&lab, "nob");
    let st = std::fs::read_to_string(format!("/proc/{pid}/status")).expect("container status");
    let uid_line = st.lines().find(|l| l.starts_with("Uid:")).unwrap_or("");
    assert!(
        uid_line.split_whitespace().skip(1).all(|u| u == "65534"),
        "the container's process should run as nobody: {uid_line}"
    );

    if cap_sys_resource() {
        // Users' hosts: nothing to refuse, the dump and restore work.
        lab.ok(&["checkpoint", "nob"]);
        lab.ok(&["restore", "nob"]);
        let before = counts(&lab).len();
        let after = grown(&lab, before + 5);
        assert!(after.windows(2).all(|w| w[1] == w[0] + 1), "{after:?}");
        return;
    }

    for (verb, args) in [
        ("checkpoint", vec!["checkpoint", "nob"]),
        ("migrate", vec!["migrate", "nob", "--to", "n2"]),
    ] {
        let out = lab.herd(&args);
        assert!(
            !out.status.success(),
            "{verb} should be refused:\n{}",
            text(&out)
        );
        let err = String::from_utf8_lossy(&out.stderr);
        for want in [
            "CAP_SYS_RESOURCE",
            "uid 65534",
            &format!("{pid} (herd-work)"),
            "nothing was frozen",
            "VM lab",
        ] {
            assert!(err.contains(want), "{verb}: no {want:?} in:\n{err}");
        }
        assert!(
            !err.contains("Can't get rlimit"),
            "{verb}: CRIU ran (its rlimit error):\n{err}"
        );
        // Untouched: same process, still counting, on n1 only.
        let (node, _, pid2) = where_is(&lab, "nob");
        assert_eq!((node.as_str(), pid2), ("n1", pid), "{verb}");
        assert_eq!(
            lab.ps_json().as_array().map(|a| a.len()),
            Some(1),
            "{verb} left a copy: {}",
            lab.ps_json()
        );
        let before = counts(&lab).len();
        let after = grown(&lab, before + 5);
        assert_eq!(after[0], 1, "{after:?}");
        assert!(
            after.windows(2).all(|w| w[1] == w[0] + 1),
            "{verb}: {after:?}"
        );
    }
    let images = lab.dir().join("n1/state/containers/nob/checkpoint");
    assert!(
        !images.exists(),
        "a refused checkpoint made {}",
        images.display()
    );
}

// ---------------------------------------------------------------- redis

/// `redis-benchmark` runs back to back until told to stop.
struct RedisLoad {
    stop: Arc<AtomicBool>,
    /// Runs started so far.
    started: Arc<Mutex<u64>>,
    handle: std::thread::JoinHandle<(u64, Vec<String>, f64)>,
}

/// `(requests, max latency ms)` of one `redis-benchmark --csv` run, or why not.
fn redis_run(ip: &str, n: u64) -> Result<(u64, f64), String> {
    let o = output(Command::new("redis-benchmark").args([
        "-h",
        ip,
        "-c",
        "8",
        "-n",
        &n.to_string(),
        "-t",
        "set,get",
        "-r",
        "10000",
        "--csv",
    ]));
    let out = String::from_utf8_lossy(&o.stdout);
    let err = String::from_utf8_lossy(&o.stderr);
    if !o.status.success() || err.to_lowercase().contains("error") {
        return Err(format!("{}: {err}{out}", o.status));
    }
    // "test","rps","avg_latency_ms","min_latency_ms","p50...","p95...","p99...","max_latency_ms"
    let mut max: f64 = 0.0;
    let mut tests = 0;
    for l in out.lines().skip(1) {
        let f: Vec<&str> = l.split(',').map(|x| x.trim_matches('"')).collect();
        let m = f
            .get(7)
            .and_then(|x| x.parse::<f64>().ok())
            .ok_or(format!("unexpected redis-benchmark line {l:?}"))?;
        max = max.max(m);
        tests += 1;
    }
    if tests != 2 {
        return Err(format!("expected SET and GET results:\n{out}"));
    }
    Ok((n * 2, max))
}

impl RedisLoad {
    fn start(ip: &str) -> RedisLoad {
        // Runs of a few seconds each, sized on this machine now.
        let t0 = Instant::now();
        redis_run(ip, 5000).unwrap_or_else(|e| panic!("first redis-benchmark run: {e}"));
        let per_s = 10_000.0 / t0.elapsed().as_secs_f64().max(0.01);
        let n = ((per_s * 4.0) as u64 / 2).clamp(5_000, 2_000_000);
        let stop = Arc::new(AtomicBool::new(false));
        let started = Arc::new(Mutex::new(0));
        let (s, st, ip) = (stop.clone(), started.clone(), ip.to_string());
        let handle = std::thread::spawn(move || {
            let (mut requests, mut errors, mut stall) = (0u64, Vec::new(), 0f64);
            while !s.load(Ordering::Relaxed) {
                *st.lock().unwrap_or_else(|p| p.into_inner()) += 1;
                match redis_run(&ip, n) {
                    Ok((r, m)) => {
                        requests += r;
                        stall = stall.max(m);
                    }
                    Err(e) => errors.push(e),
                }
            }
            (requests, errors, stall)
        });
        RedisLoad {
            stop,
            started,
            handle,
        }
    }

    /// Wait for the next run to start, so a move happens under load.
    fn next_run(&self) {
        let now = *self.started.lock().unwrap_or_else(|p| p.into_inner());
        wait_for(120, || {
            (*self.started.lock().unwrap_or_else(|p| p.into_inner()) > now).then_some(())
        })
        .expect("redis-benchmark stopped starting runs");
        std::thread::sleep(Duration::from_millis(300));
    }

    fn finish(self) -> (u64, Vec<String>, f64) {
        self.stop.store(true, Ordering::Relaxed);
        self.handle.join().expect("redis-benchmark thread")
    }
}

fn redis_cli(ip: &str, args: &[&str]) -> String {
    let o = output(Command::new("redis-cli").args(["-h", ip]).args(args));
    assert!(o.status.success(), "redis-cli {args:?}: {}", text(&o));
    String::from_utf8_lossy(&o.stdout).trim().to_string()
}

#[test]
fn redis_moves_across_three_hosts_under_redis_benchmark() {
    let test = "servers_redis";
    if !have_tools(test, &["mmdebstrap", "redis-benchmark", "redis-cli"]) {
        return;
    }
    let Some(lab) = Lab::up(test, "svredis", 3) else {
        return;
    };
    import_debian(&lab, "redis", "redis-server");
    lab.ok(&[
        "run",
        "--node",
        "n1",
        "--name",
        "redis",
        "--net",
        "lab",
        "redis",
        "--",
        "redis-server",
        "--bind",
        "0.0.0.0",
        "--protected-mode",
        "no",
        "--save",
        "",
        "--appendonly",
        "no",
    ]);
    let (_, ip, _) = where_is(&lab, "redis");
    wait_for(30, || {
        let o = Command::new("redis-cli")
            .args(["-h", &ip, "ping"])
            .output()
            .ok()?;
        (String::from_utf8_lossy(&o.stdout).trim() == "PONG").then_some(())
    })
    .unwrap_or_else(|| panic!("redis never answered:\n{}", lab.ok(&["logs", "redis"])));

    // Data set before the moves: 2000 keys through one pipe.
    let nonce = format!(
        "{}-{}",
        std::process::id(),
        std::time::SystemTime::now()
            .duration_since(std::time::UNIX_EPOCH)
            .map(|d| d.as_nanos())
            .unwrap_or_default()
    );
    let mut cli = Command::new("redis-cli")
        .args(["-h", &ip])
        .stdin(Stdio::piped())
        .stdout(Stdio::null())
        .spawn()
        .expect("redis-cli");
    {
        let mut w = cli.stdin.take().expect("stdin");
        for i in 0..2000 {
            writeln!(w, "SET herd:k:{i} v{i}-{nonce}").expect("write to redis-cli");
        }
    }
    assert!(cli.wait().expect("redis-cli").success());
    let keys: Vec<String> = (0..2000).map(|i| format!("herd:k:{i}")).collect();
    let expect: Vec<String> = (0..2000).map(|i| format!("v{i}-{nonce}")).collect();
    let mget = |ip: &str| -> Vec<String> {
        let mut a = vec!["--raw", "mget"];
        a.extend(keys.iter().map(String::as_str));
        redis_cli(ip, &a).lines().map(str::to_string).collect()
    };
    assert_eq!(mget(&ip), expect, "keys before the moves");

    let load = RedisLoad::start(&ip);
    let moves = move_around(&lab, "redis", &ip, || load.next_run());
    load.next_run(); // one whole run after the last move
    let (requests, errors, stall) = load.finish();
    report(
        "redis-server (Debian)",
        "redis-benchmark -c 8 -t set,get",
        requests,
        errors.len() as u64,
        stall,
        &moves,
    );
    assert!(errors.is_empty(), "redis-benchmark failed: {errors:#?}");
    assert!(requests > 0);
    assert_eq!(mget(&ip), expect, "keys after the moves");
    let log = lab.ok(&["logs", "redis"]);
    assert_eq!(
        log.matches("Ready to accept connections").count(),
        1,
        "redis restarted:\n{log}"
    );
}

// ---------------------------------------------------------------- nginx

const NGINX_CONF: &str = "user root root; worker_processes 1; daemon off; \
pid /run/nginx.pid; error_log stderr; events { worker_connections 512; } \
http { access_log off; keepalive_requests 100000000; \
server { listen 80; root /srv; } }";

/// sha256 of what `curl` gets from `url`.
fn fetch_sha256(url: &str) -> Option<String> {
    let o = Command::new("sh")
        .args(["-c", &format!("curl -sf --max-time 30 {url} | sha256sum")])
        .output()
        .ok()?;
    let s = String::from_utf8_lossy(&o.stdout);
    let sum = s.split_whitespace().next()?.to_string();
    // sha256 of nothing: curl failed.
    (o.status.success()
        && sum != "e3b0c44298fc1c149afbf4c8996fb92427ae41e4649b934ca495991b7852b855")
        .then_some(sum)
}

struct WrkSummary {
    requests: u64,
    errors: u64,
    max_latency_ms: f64,
}

fn ms_of(s: &str) -> Option<f64> {
    let (num, unit): (String, String) = s.chars().partition(|c| c.is_ascii_digit() || *c == '.');
    let v: f64 = num.parse().ok()?;
    Some(match unit.as_str() {
        "us" => v / 1e3,
        "ms" => v,
        "s" => v * 1e3,
        "m" => v * 60e3,
        _ => return None,
    })
}

fn parse_wrk(out: &str) -> WrkSummary {
    let requests = out
        .lines()
        .find(|l| l.contains("requests in"))
        .and_then(|l| l.split_whitespace().next())
        .and_then(|n| n.parse().ok())
        .unwrap_or_else(|| panic!("no request count in wrk's output:\n{out}"));
    let max_latency_ms = out
        .lines()
        .find(|l| l.trim_start().starts_with("Latency") && !l.contains("Distribution"))
        .and_then(|l| l.split_whitespace().nth(3))
        .and_then(ms_of)
        .unwrap_or_else(|| panic!("no latency line in wrk's output:\n{out}"));
    let mut errors = 0;
    for l in out.lines().map(str::trim) {
        if let Some(r) = l.strip_prefix("Socket errors:") {
            errors += r
                .split(',')
                .filter_map(|p| p.split_whitespace().nth(1)?.parse::<u64>().ok())
                .sum::<u64>();
        }
        if let Some(r) = l.strip_prefix("Non-2xx or 3xx responses:") {
            errors += r.trim().parse::<u64>().unwrap_or(1);
        }
    }
    WrkSummary {
        requests,
        errors,
        max_latency_ms,
    }
}

#[test]
fn wrk_parsing() {
    let out = "Running 10s test @ http://10.0.0.2/blob\n  2 threads and 8 connections\n\
  Thread Stats   Avg      Stdev     Max   +/- Stdev\n\
    Latency     5.27ms    3.10ms   1.20s    92.00%\n\
    Req/Sec   400.00    100.00   600.00     70.00%\n\
  Latency Distribution\n     50%    4.00ms\n\
  8000 requests in 10.00s, 2.00GB read\n\
  Socket errors: connect 0, read 2, write 0, timeout 1\n\
  Non-2xx or 3xx responses: 3\nRequests/sec:    800.00\n";
    let s = parse_wrk(out);
    assert_eq!((s.requests, s.errors), (8000, 6));
    assert!((s.max_latency_ms - 1200.0).abs() < 1e-6);
    assert_eq!(ms_of("812.00us"), Some(0.812));
    assert_eq!(ms_of("1.5m"), Some(90_000.0));
}

fn stop_wrk(child: Child) -> String {
    let pid = child.id().to_string();
    // wrk prints its summary when interrupted.
    let _ = Command::new("kill").args(["-INT", &pid]).status();
    let o = child.wait_with_output().expect("wait for wrk");
    let out = String::from_utf8_lossy(&o.stdout).into_owned();
    assert!(o.status.success(), "wrk failed: {}", text(&o));
    out
}

#[test]
fn nginx_moves_across_three_hosts_under_wrk() {
    let test = "servers_nginx";
    if !have_tools(test, &["mmdebstrap", "wrk", "curl", "sha256sum"]) {
        return;
    }
    let Some(lab) = Lab::up(test, "svnginx", 3) else {
        return;
    };
    import_debian(&lab, "nginx", "nginx");
    let script = format!(
        "mkdir -p /srv && head -c 262144 /dev/urandom >/srv/blob && sha256sum /srv/blob && \
         printf '%s\\n' '{NGINX_CONF}' >/etc/nginx/herd.conf && exec nginx -c /etc/nginx/herd.conf"
    );
    lab.ok(&[
        "run", "--node", "n1", "--name", "web", "--net", "lab", "nginx", "--", "sh", "-c", &script,
    ]);
    let (_, ip, _) = where_is(&lab, "web");
    let url = format!("http://{ip}/blob");
    let logged = wait_for(30, || {
        let l = lab.ok(&["logs", "web"]);
        l.lines()
            .find(|x| x.ends_with("/srv/blob"))
            .and_then(|x| x.split_whitespace().next())
            .map(str::to_string)
    })
    .unwrap_or_else(|| panic!("no checksum in the log:\n{}", lab.ok(&["logs", "web"])));
    let first = wait_for(30, || fetch_sha256(&url))
        .unwrap_or_else(|| panic!("nginx never served {url}:\n{}", lab.ok(&["logs", "web"])));
    assert_eq!(first, logged, "the file before the moves");

    let wrk = Command::new("wrk")
        .args([
            "-t",
            "2",
            "-c",
            "8",
            "-d",
            "600s",
            "--timeout",
            "60s",
            "--latency",
            &url,
        ])
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .expect("start wrk");
    std::thread::sleep(Duration::from_secs(2));
    let moves = move_around(&lab, "web", &ip, || {
        std::thread::sleep(Duration::from_secs(1))
    });
    std::thread::sleep(Duration::from_secs(2));
    let out = stop_wrk(wrk);
    let s = parse_wrk(&out);
    report(
        "nginx (Debian)",
        "wrk -t 2 -c 8, a 256 KiB file",
        s.requests,
        s.errors,
        s.max_latency_ms,
        &moves,
    );
    assert_eq!(s.errors, 0, "wrk saw errors:\n{out}");
    assert!(s.requests > 0, "{out}");
    assert_eq!(
        fetch_sha256(&url).as_deref(),
        Some(logged.as_str()),
        "the file after the moves"
    );
}
