//! Placement on a live cluster: `herd coordinator` and `herd scenario run`.
//!
//! ```text
//!  agents --Subscribe--> node tasks --Feed--> Live (one task, no locks)
//!    Hello: the sampling period (the decider is made on the first one)
//!    Sample: monitor CSV rows; host/container rows -> Decider window
//!    Present/Event: migrations.csv rows -> Decider (cooldowns, in-flight)
//!  every 0.5 s: Decider due? -> decide(now) -> plans
//!    plan: Decider.started, a task asks the source agent to Migrate
//!    (the same call as `herd migrate`) and sends back its outcome
//!  outcome: decisions.csv row (time of the decision, reason, outcome);
//!    failed: Decider.failed (the container is free to move again later)
//! ```
//!
//! Times are unix seconds. A decision whose move fails leaves the container
//! where it was: the agents' migration protocol rolls back on the source.
//!
//! `herd scenario run` adds a launcher on the same loop: each scenario
//! container starts at `start_s * scale` on its first host as `herd-work`
//! (cpu, mem, io; oltp runs `mixed`) for `duration_s * scale`. The run ends
//! when the last one's time is over; in-flight moves are awaited, the
//! run's containers removed, and `run.json` and `report.md` written next to
//! the CSVs.

use std::collections::HashMap;
use std::fs::File;
use std::io::BufWriter;
use std::path::Path;
use std::sync::{Arc, Mutex};
use std::time::Duration;

use anyhow::{bail, Context, Result};
use herd_coordinator::csv::{secs, ContainerRow, CsvWriter, DecisionRow, HostRow};
use herd_coordinator::decider::Decider;
use herd_coordinator::policy::{self, PlacementConfig, Plan};
use herd_coordinator::scenario::{Scenario, WorkloadKind};
use herd_wire::migrate::FsMode;
use herd_wire::monitor::MonitorMsg;
use herd_wire::{Request, Response, RunSpec};
use tokio::sync::mpsc;

use crate::client::Client;
use crate::cluster::Cluster;
use crate::monitor::{Feed, LogMarks, Writer};

fn now_s() -> f64 {
    secs(crate::process::now_ns())
}

/// What a move task sends back.
struct Outcome {
    decided_at: f64,
    plan: Plan,
    result: Result<herd_wire::migrate::MigrateReport>,
}

/// A policy and schedule a live run can use (before anything runs).
pub fn check(policy_name: &str, cfg: &PlacementConfig) -> Result<()> {
    let known = policy::names();
    if !known.contains(&policy_name) {
        bail!(
            "unknown policy {policy_name:?} (known: {})",
            known.join(", ")
        );
    }
    let p = policy::build(policy_name, cfg).with_context(|| format!("policy {policy_name}"))?;
    Decider::new(p, cfg.clone(), 1.0, 0.0)?;
    Ok(())
}

/// The live loop's state: monitor files, decider, decisions.csv.
pub struct Live {
    cluster: Cluster,
    policy: String,
    cfg: PlacementConfig,
    start: f64,
    writer: Writer,
    decisions: CsvWriter<BufWriter<File>, DecisionRow>,
    decider: Option<Decider>,
    threads: HashMap<String, u32>,
    fs: FsMode,
    memory: herd_wire::migrate::MemoryMode,
    tx: mpsc::Sender<Outcome>,
    rx: mpsc::Receiver<Outcome>,
    in_flight: usize,
    pub decisions_made: usize,
    pub moves_ok: usize,
    pub moves_failed: usize,
    pub frozen_ms: f64,
}

impl Live {
    /// Checks the policy and schedule now, so a bad flag fails before
    /// anything runs.
    pub fn new(
        cluster: Cluster,
        policy_name: &str,
        cfg: PlacementConfig,
        out: &Path,
        fs: FsMode,
    ) -> Result<Live> {
        check(policy_name, &cfg)?;
        let marks: LogMarks = Arc::new(Mutex::new(HashMap::new()));
        let writer = Writer::create(out, marks)?;
        let decisions = CsvWriter::create_in(out)?;
        let (tx, rx) = mpsc::channel(64);
        Ok(Live {
            cluster,
            policy: policy_name.to_string(),
            cfg,
            start: now_s(),
            writer,
            decisions,
            decider: None,
            threads: HashMap::new(),
            fs,
            memory: herd_wire::migrate::MemoryMode::Auto,
            tx,
            rx,
            in_flight: 0,
            decisions_made: 0,
            moves_ok: 0,
            moves_failed: 0,
            frozen_ms: 0.0,
        })
    }

    /// The oracle's knowledge and containers.csv's `kind` column.
    pub fn know(&mut self, container: &str, kind: WorkloadKind, threads: u32) {
        self.writer
            .kinds
            .insert(container.to_string(), kind.as_str().to_string());
        self.threads.insert(container.to_string(), threads);
        if let Some(d) = &mut self.decider {
            d.set_threads(container, threads);
        }
    }

    fn feed(&mut self, node: &str, msg: MonitorMsg) -> Result<()> {
        match &msg {
            MonitorMsg::Hello { interval_ms, .. } if self.decider.is_none() => {
                let p = policy::build(&self.policy, &self.cfg)?;
                let period = (*interval_ms as f64 / 1000.0).max(0.01);
                let mut d = Decider::new(p, self.cfg.clone(), period, self.start)?;
                for (c, t) in &self.threads {
                    d.set_threads(c, *t);
                }
                self.decider = Some(d);
            }
            MonitorMsg::Sample(s) => {
                if let Some(d) = &mut self.decider {
                    if let Some(h) = &s.host {
                        if d.wants_samples_at(secs(h.time_ns)) {
                            d.push_host(&HostRow::from(h));
                        }
                    }
                    for c in &s.containers {
                        if d.wants_samples_at(secs(c.time_ns)) {
                            d.push_container(&ContainerRow::from_sample(
                                c,
                                self.writer.kinds.get(&c.container).map(String::as_str),
                            ));
                        }
                    }
                }
            }
            _ => {}
        }
        for m in self.writer.handle(node, msg)? {
            if let Some(d) = &mut self.decider {
                d.record(&m);
            }
        }
        Ok(())
    }

    /// Decide if due; hand each plan to a move task.
    fn tick(&mut self) -> Result<()> {
        let now = now_s();
        let Some(d) = &mut self.decider else {
            return Ok(());
        };
        if !d.due(now) {
            return Ok(());
        }
        let (view, plans) = d.decide(now);
        self.decisions_made += 1;
        tracing::info!(
            hosts = view.hosts.len(),
            containers = view.containers.len(),
            plans = plans.len(),
            "decision"
        );
        for plan in plans {
            d.started(&plan, now);
            eprintln!(
                "herd: {}: move {} {} -> {} ({})",
                self.policy, plan.container, plan.from, plan.to, plan.reason
            );
            let (cluster, tx, fs, memory) =
                (self.cluster.clone(), self.tx.clone(), self.fs, self.memory);
            self.in_flight += 1;
            tokio::spawn(async move {
                let result = async {
                    let mut c = Client::new(cluster)?;
                    let (name, to) = (&plan.container, &plan.to);
                    crate::migrate::migrate_with(&mut c, name, to, fs, false, memory, false).await
                }
                .await;
                let _ = tx
                    .send(Outcome {
                        decided_at: now,
                        plan,
                        result,
                    })
                    .await;
            });
        }
        Ok(())
    }

    fn outcome(&mut self, o: Outcome) -> Result<()> {
        self.in_flight = self.in_flight.saturating_sub(1);
        let outcome = match &o.result {
            Ok(r) => {
                self.moves_ok += 1;
                self.frozen_ms += r.frozen_ms;
                format!(
                    "ok: moved, {:.0} ms, frozen {:.0} ms",
                    r.total_ms, r.frozen_ms
                )
            }
            Err(e) => {
                self.moves_failed += 1;
                if let Some(d) = &mut self.decider {
                    d.failed(&o.plan.container, now_s());
                }
                eprintln!("herd: move of {} failed: {e:#}", o.plan.container);
                // The typed outcome first: rolled_back, untouched or pending.
                let kind = e
                    .downcast_ref::<crate::client::MigrateFailed>()
                    .map(|f| f.0.outcome.as_str())
                    .unwrap_or("untouched");
                format!("failed: {kind}: {e:#}").replace(['\n', '\r'], " ")
            }
        };
        self.decisions.write(&DecisionRow {
            time: o.decided_at,
            policy: self.policy.clone(),
            container: o.plan.container,
            from: o.plan.from,
            to: o.plan.to,
            reason: o.plan.reason,
            outcome,
        })?;
        self.decisions.flush()?;
        Ok(())
    }

    fn flush(&mut self) -> Result<()> {
        self.writer.flush()?;
        self.decisions.flush()?;
        Ok(())
    }

    /// Follow the cluster and act until `stop` resolves; then wait (at most
    /// `drain`) for the moves still under way.
    pub async fn run(
        &mut self,
        stop: impl std::future::Future<Output = ()>,
        drain: Duration,
    ) -> Result<()> {
        let mut feed = crate::monitor::subscribe_all(&self.cluster, true, Arc::default())?;
        let mut tick = tokio::time::interval(Duration::from_millis(500));
        tokio::pin!(stop);
        loop {
            tokio::select! {
                m = feed.recv() => match m {
                    Some(Feed::Msg(node, msg)) => self.feed(&node, msg)?,
                    Some(Feed::Connected(node)) => tracing::info!(%node, "subscribed"),
                    Some(Feed::Disconnected(node, why)) => {
                        eprintln!("herd: {node}: {why}; subscribing again");
                    }
                    None => break,
                },
                Some(o) = self.rx.recv() => self.outcome(o)?,
                _ = tick.tick() => {
                    self.tick()?;
                    self.flush()?;
                }
                _ = &mut stop => break,
            }
        }
        let until = tokio::time::Instant::now() + drain;
        while self.in_flight > 0 {
            tokio::select! {
                Some(o) = self.rx.recv() => self.outcome(o)?,
                m = feed.recv() => if let Some(Feed::Msg(node, msg)) = m { self.feed(&node, msg)? },
                _ = tokio::time::sleep_until(until) => {
                    eprintln!("herd: {} move(s) still under way after {:.0} s; not waiting", self.in_flight, drain.as_secs_f64());
                    break;
                }
            }
        }
        self.flush()
    }
}

/// `herd coordinator`: decide and move until Ctrl-C or `duration`.
pub async fn coordinator(
    cluster: Cluster,
    policy_name: &str,
    cfg: PlacementConfig,
    out: &Path,
    duration: Option<Duration>,
    memory: herd_wire::migrate::MemoryMode,
) -> Result<()> {
    let nodes = cluster.nodes.len();
    let (w, p, d) = (cfg.window_s, cfg.period_s, cfg.delay_s);
    let mut live = Live::new(cluster, policy_name, cfg, out, FsMode::Diff)?;
    live.memory = memory;
    eprintln!(
        "herd: coordinating {nodes} node(s) with {policy_name}: window {w} s, every {p} s after {d} s; files in {}",
        out.display()
    );
    let stop = async move {
        match duration {
            Some(t) => {
                tokio::select! {
                    _ = tokio::time::sleep(t) => {}
                    _ = tokio::signal::ctrl_c() => {}
                }
            }
            None => {
                let _ = tokio::signal::ctrl_c().await;
            }
        }
    };
    live.run(stop, Duration::from_secs(120)).await?;
    eprintln!(
        "herd: {} decision(s), {} move(s) done, {} failed",
        live.decisions_made, live.moves_ok, live.moves_failed
    );
    Ok(())
}

/// The herd-work command line of a scenario container.
pub fn work_cmd(kind: WorkloadKind, threads: u32, mib: u64, duration_s: f64) -> Vec<String> {
    let mut v = vec![
        "herd-work".to_string(),
        match kind {
            WorkloadKind::Cpu => "cpu",
            WorkloadKind::Mem => "mem",
            WorkloadKind::Io => "io",
            WorkloadKind::Oltp => "mixed",
        }
        .to_string(),
        "--threads".into(),
        threads.max(1).to_string(),
    ];
    if kind == WorkloadKind::Mem {
        v.extend(["--mib".into(), mib.max(1).to_string()]);
    }
    v.extend(["--duration".into(), format!("{:.1}", duration_s.max(1.0))]);
    v
}

/// Options of `herd scenario run`.
pub struct ScenarioRun<'a> {
    pub file: &'a Path,
    pub policy: &'a str,
    pub cfg: PlacementConfig,
    pub out: &'a Path,
    pub time_scale: f64,
    pub memory_scale: f64,
    pub image: &'a str,
    pub keep: bool,
}

/// `herd scenario run`: the scenario for real on the cluster.
pub async fn scenario_run(cluster: Cluster, a: ScenarioRun<'_>) -> Result<()> {
    let sc = Scenario::read(a.file)?;
    let x = a.time_scale;
    if !(x.is_finite() && x > 0.0) {
        bail!("--time-scale must be > 0");
    }
    if !(a.memory_scale.is_finite() && a.memory_scale > 0.0) {
        bail!("--memory-scale must be > 0");
    }
    let nodes: Vec<String> = cluster.nodes.iter().map(|n| n.name.clone()).collect();
    if let Some(h) = sc.hosts.iter().find(|h| !nodes.contains(h)) {
        bail!(
            "the scenario's host {h} is not a node of the cluster ({}): generate it with --hosts {} or run it on a bigger lab",
            nodes.join(","),
            nodes.len()
        );
    }
    let mut cfg = a.cfg.clone();
    cfg.window_s *= x;
    cfg.period_s *= x;
    cfg.delay_s *= x;
    cfg.anti_bounce.cooldown_s *= x;
    check(a.policy, &cfg).with_context(|| format!("the placement schedule at --time-scale {x}"))?;
    let mut c = Client::new(cluster.clone())?;
    // Names must be free: a run never touches containers it did not make.
    for n in &nodes {
        if let Response::Containers(list) = c.call(n, Request::List).await? {
            if let Some(clash) = list
                .iter()
                .find(|i| sc.containers.iter().any(|s| s.name == i.name))
            {
                bail!(
                    "container {} already exists on {n}: remove the scenario's containers first (herd rm -f)",
                    clash.name
                );
            }
        }
    }
    std::fs::create_dir_all(a.out).with_context(|| format!("cannot create {}", a.out.display()))?;
    let mut live = Live::new(cluster.clone(), a.policy, cfg.clone(), a.out, FsMode::Diff)?;
    for s in &sc.containers {
        live.know(&s.name, s.kind, s.threads);
    }
    let end_s = sc
        .containers
        .iter()
        .map(|s| (s.start_s + s.duration_s) as f64 * x)
        .fold(0.0, f64::max);
    eprintln!(
        "herd: scenario {} ({} containers) under {}: {:.0} s at time scale {x}",
        a.file.display(),
        sc.containers.len(),
        a.policy,
        end_s
    );
    // The launcher: its own client, started with the loop.
    let launches: Vec<(f64, String, RunSpec)> = sc
        .containers
        .iter()
        .map(|s| {
            let mib = ((s.memory_bytes as f64 * a.memory_scale) / 1048576.0).round() as u64;
            (
                s.start_s as f64 * x,
                s.first_host.clone(),
                RunSpec {
                    name: s.name.clone(),
                    image: a.image.to_string(),
                    cmd: work_cmd(s.kind, s.threads, mib, s.duration_s as f64 * x),
                    env: Vec::new(),
                    memory_bytes: None,
                    cpus: None,
                    hostname: None,
                    net: None,
                    ..Default::default()
                },
            )
        })
        .collect();
    let t0 = tokio::time::Instant::now();
    let launch_cluster = cluster.clone();
    // A container that cannot start ends the run at once.
    let (failed_tx, failed_rx) = tokio::sync::oneshot::channel::<()>();
    let mut launcher = tokio::spawn(async move {
        let r = async {
            let mut c = Client::new(launch_cluster)?;
            for (at, node, spec) in launches {
                tokio::time::sleep_until(t0 + Duration::from_secs_f64(at)).await;
                let name = spec.name.clone();
                c.call(&node, Request::Run(spec))
                    .await
                    .with_context(|| format!("start {name} on {node}"))?;
            }
            anyhow::Ok(())
        }
        .await;
        if r.is_err() {
            let _ = failed_tx.send(());
        }
        r
    });
    let stop = async move {
        tokio::select! {
            _ = tokio::time::sleep_until(t0 + Duration::from_secs_f64(end_s + 2.0)) => {}
            _ = tokio::signal::ctrl_c() => {}
            Ok(()) = failed_rx => {}
        }
    };
    let ran = live.run(stop, Duration::from_secs(120)).await;
    // A launcher that failed has sent its signal but may not have returned
    // yet: give it a moment, so its error (not a vaguer one) is reported.
    let launched = match tokio::time::timeout(Duration::from_secs(2), &mut launcher).await {
        Ok(r) => r.context("launcher")?,
        Err(_) => {
            launcher.abort();
            Err(anyhow::anyhow!("stopped before every container started"))
        }
    };
    if !a.keep {
        remove_all(&mut c, &nodes, &sc).await;
    }
    ran?;
    launched?;
    let info = serde_json::json!({
        "policy": a.policy,
        "source": "lab",
        "scenario": a.file.display().to_string(),
        "scenario_seed": sc.seed,
        "scenario_kind": sc.kind.as_str(),
        "containers": sc.containers.len(),
        "hosts": sc.hosts,
        "hosts_cores": cluster.nodes.iter().map(|n| n.cpus).collect::<Vec<_>>(),
        "time_scale": x,
        "memory_scale": a.memory_scale,
        "window_s": cfg.window_s,
        "period_s": cfg.period_s,
        "delay_s": cfg.delay_s,
        "decisions": live.decisions_made,
        "moves": live.moves_ok,
        "moves_failed": live.moves_failed,
        "frozen_ms_total": live.frozen_ms,
    });
    std::fs::write(
        a.out.join("run.json"),
        serde_json::to_string_pretty(&info)? + "\n",
    )
    .with_context(|| format!("cannot write {}", a.out.join("run.json").display()))?;
    let run = herd_coordinator::report::load_run(a.out)?;
    let title = format!("Lab run of {} under {}", a.file.display(), a.policy);
    herd_coordinator::report::write_report(std::slice::from_ref(&run), a.out, &title)?;
    print!(
        "{}",
        herd_coordinator::report::table(std::slice::from_ref(&run))
    );
    eprintln!(
        "herd: {} decision(s), {} move(s) done, {} failed; report: {}",
        live.decisions_made,
        live.moves_ok,
        live.moves_failed,
        a.out.join("report.md").display()
    );
    Ok(())
}

/// Remove the scenario's containers wherever they ended up.
async fn remove_all(c: &mut Client, nodes: &[String], sc: &Scenario) {
    for n in nodes {
        let Ok(Response::Containers(list)) = c.call(n, Request::List).await else {
            continue;
        };
        for i in list {
            if sc.containers.iter().any(|s| s.name == i.name) {
                if let Err(e) = c
                    .call(
                        n,
                        Request::Remove {
                            name: i.name.clone(),
                            force: true,
                        },
                    )
                    .await
                {
                    eprintln!("herd: cannot remove {} on {n}: {e:#}", i.name);
                }
            }
        }
    }
}
