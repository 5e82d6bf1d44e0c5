//! Reports over one or more runs (live or simulated: both leave the same
//! CSV files in a directory).
//!
//! For each run directory: its policy (from `run.json`, else the
//! directory's name), and from its CSVs:
//! * average host CPU: the mean of `cpu_user_ratio + cpu_system_ratio` over
//!   every hosts.csv row;
//! * average container CPU: the mean of `cpu_usage_cores` over every
//!   containers.csv row;
//! * average ops: the mean of `ops_per_second` over the containers.csv
//!   rows that have it;
//! * migrations (`moved` events) and their summed frozen time.
//!
//! Against the control run (policy `none`): the gain in average ops and the
//! change in average host CPU, and each policy's share of the oracle's ops
//! gain. The thesis's figures are printed beside ours.
//!
//! Plots (SVG, written by hand: a few polylines, no plotting stack): per
//! run, one strip per host with its CPU over time, a tick above it for
//! every container moved in and below it for every one moved out; over all
//! runs, the mean container ops per second over time, one line per policy.
//! Long runs are averaged into at most 900 (CPU) or 600 (ops) points per
//! line.

use std::collections::BTreeMap;
use std::fmt::Write as _;
use std::path::{Path, PathBuf};

use crate::csv::{self, ContainerRow, CsvError, HostRow, MigrationEvent, MigrationRow};

#[derive(Debug, thiserror::Error)]
pub enum ReportError {
    #[error(transparent)]
    Csv(#[from] CsvError),
    #[error("{path}: {source}")]
    Io {
        path: PathBuf,
        source: std::io::Error,
    },
    #[error("{0}")]
    Input(String),
}

/// One run, summarised.
#[derive(Debug, Clone)]
pub struct Run {
    pub dir: PathBuf,
    pub policy: String,
    pub avg_host_cpu: f64,
    pub avg_container_cpu: f64,
    pub avg_ops: f64,
    pub migrations: usize,
    pub frozen_s: f64,
    /// (host, [(time, cpu ratio)]) in host order of first appearance.
    pub host_cpu: Vec<(String, Vec<(f64, f64)>)>,
    /// (time, mean ops/s of the containers sampled then).
    pub ops: Vec<(f64, f64)>,
    /// (time, source host, target host) of every move.
    pub moves: Vec<(f64, String, String)>,
}

fn mean(sum: f64, n: usize) -> f64 {
    if n == 0 {
        0.0
    } else {
        sum / n as f64
    }
}

/// Reads a run directory.
pub fn load_run(dir: &Path) -> Result<Run, ReportError> {
    let info = std::fs::read_to_string(dir.join("run.json"))
        .ok()
        .and_then(|t| serde_json::from_str::<serde_json::Value>(&t).ok());
    let policy = info
        .as_ref()
        .and_then(|v| v["policy"].as_str().map(str::to_string))
        .or_else(|| dir.file_name().map(|n| n.to_string_lossy().into_owned()))
        .unwrap_or_else(|| "run".into());
    let hosts: Vec<HostRow> = csv::read_in(dir)?;
    let ctrs: Vec<ContainerRow> = csv::read_in(dir)?;
    let migs: Vec<MigrationRow> = match csv::read_in(dir) {
        Ok(m) => m,
        Err(CsvError::Io { source, .. }) if source.kind() == std::io::ErrorKind::NotFound => {
            Vec::new()
        }
        Err(e) => return Err(e.into()),
    };
    if hosts.is_empty() {
        return Err(ReportError::Input(format!(
            "{}: hosts.csv has no samples",
            dir.display()
        )));
    }
    let t0 = hosts
        .iter()
        .map(|h| h.time)
        .chain(ctrs.iter().map(|c| c.time))
        .fold(f64::INFINITY, f64::min);
    let mut host_cpu: Vec<(String, Vec<(f64, f64)>)> = Vec::new();
    let mut cpu_sum = 0.0;
    for h in &hosts {
        let r = h.cpu_user_ratio + h.cpu_system_ratio;
        cpu_sum += r;
        match host_cpu.iter_mut().find(|(n, _)| *n == h.host) {
            Some((_, v)) => v.push((h.time - t0, r)),
            None => host_cpu.push((h.host.clone(), vec![(h.time - t0, r)])),
        }
    }
    let mut ccpu = 0.0;
    let (mut ops_sum, mut ops_n) = (0.0, 0usize);
    let mut by_time: BTreeMap<u64, (f64, usize)> = BTreeMap::new();
    for c in &ctrs {
        ccpu += c.cpu_usage_cores;
        if let Some(o) = c.ops_per_second {
            ops_sum += o;
            ops_n += 1;
            // group samples by millisecond of time
            let e = by_time
                .entry(((c.time - t0) * 1000.0).round().max(0.0) as u64)
                .or_default();
            e.0 += o;
            e.1 += 1;
        }
    }
    let moves: Vec<(f64, String, String)> = migs
        .iter()
        .filter(|m| m.event == MigrationEvent::Moved)
        .map(|m| (m.time - t0, m.from.clone(), m.to.clone()))
        .collect();
    Ok(Run {
        dir: dir.to_path_buf(),
        policy,
        avg_host_cpu: mean(cpu_sum, hosts.len()),
        avg_container_cpu: mean(ccpu, ctrs.len()),
        avg_ops: mean(ops_sum, ops_n),
        migrations: moves.len(),
        // A live run's migrations.csv comes from the monitor, which does not
        // know frozen times: its run.json has the executor's sum.
        frozen_s: if migs.iter().any(|m| m.frozen_seconds.is_some()) {
            migs.iter()
                .filter(|m| m.event == MigrationEvent::Moved)
                .filter_map(|m| m.frozen_seconds)
                .fold(0.0, |a, b| a + b)
        } else {
            info.as_ref()
                .and_then(|v| v["frozen_ms_total"].as_f64())
                .map_or(0.0, |ms| ms / 1000.0)
        },
        host_cpu,
        ops: by_time
            .into_iter()
            .map(|(t, (s, n))| (t as f64 / 1000.0, s / n as f64))
            .collect(),
        moves,
    })
}

/// The thesis's results: (policy, ops gain %, host CPU change %).
pub const THESIS: &[(&str, Option<f64>, Option<f64>)] = &[
    ("cpu-greedy", Some(6.4), Some(17.9)),
    ("cpu-greedy-threads", Some(15.4), None),
    ("oracle", Some(15.0), None),
];

fn pct(x: f64) -> String {
    format!("{:+.1}%", x * 100.0)
}

/// The comparison table (markdown).
pub fn table(runs: &[Run]) -> String {
    let control = runs.iter().find(|r| r.policy == "none");
    let oracle = runs.iter().find(|r| r.policy == "oracle");
    let gain = |r: &Run| control.map(|c| r.avg_ops / c.avg_ops.max(1e-12) - 1.0);
    let oracle_gain = oracle.and_then(gain);
    let mut s = String::new();
    s.push_str("| policy | avg host CPU | avg container CPU (cores) | avg ops/s | ops gain vs control | host CPU vs control | share of oracle's gain | migrations | frozen s | thesis: ops gain | thesis: host CPU |\n");
    s.push_str("|---|---:|---:|---:|---:|---:|---:|---:|---:|---:|---:|\n");
    for r in runs {
        let g = gain(r);
        let cpu = control.map(|c| r.avg_host_cpu / c.avg_host_cpu.max(1e-12) - 1.0);
        let share = match (g, oracle_gain) {
            (Some(g), Some(o)) if o.abs() > 1e-9 && r.policy != "none" => {
                format!("{:.0}%", 100.0 * g / o)
            }
            _ => "-".into(),
        };
        let th = THESIS.iter().find(|t| t.0 == r.policy);
        let th_ops = th
            .and_then(|t| t.1)
            .map(|x| format!("{x:+.1}%"))
            .unwrap_or_else(|| "-".into());
        let th_cpu = th
            .and_then(|t| t.2)
            .map(|x| format!("{x:+.1}%"))
            .unwrap_or_else(|| "-".into());
        let _ = writeln!(
            s,
            "| {} | {:.3} | {:.3} | {:.2} | {} | {} | {} | {} | {:.1} | {} | {} |",
            r.policy,
            r.avg_host_cpu,
            r.avg_container_cpu,
            r.avg_ops,
            if r.policy == "none" {
                "-".into()
            } else {
                g.map(pct).unwrap_or_else(|| "-".into())
            },
            if r.policy == "none" {
                "-".into()
            } else {
                cpu.map(pct).unwrap_or_else(|| "-".into())
            },
            share,
            r.migrations,
            r.frozen_s,
            th_ops,
            th_cpu
        );
    }
    if control.is_none() {
        s.push_str("\n(no control run: gains need a run with policy `none`)\n");
    }
    s
}

const COLORS: &[&str] = &[
    "#1f77b4", "#d62728", "#2ca02c", "#ff7f0e", "#9467bd", "#8c564b", "#e377c2", "#7f7f7f",
    "#bcbd22", "#17becf",
];

/// Averages `pts` (sorted by x) into at most `max` buckets.
fn downsample(pts: &[(f64, f64)], max: usize) -> Vec<(f64, f64)> {
    if pts.len() <= max || max == 0 {
        return pts.to_vec();
    }
    let per = pts.len().div_ceil(max);
    pts.chunks(per)
        .map(|c| {
            let n = c.len() as f64;
            (
                c.iter().map(|p| p.0).sum::<f64>() / n,
                c.iter().map(|p| p.1).sum::<f64>() / n,
            )
        })
        .collect()
}

fn esc(s: &str) -> String {
    s.replace('&', "&amp;")
        .replace('<', "&lt;")
        .replace('>', "&gt;")
        .replace('"', "&quot;")
}

/// A line chart: `series` = (label, points); `marks` = (x, series index
/// for the colour) drawn as ticks along the top.
pub fn line_chart(
    title: &str,
    y_label: &str,
    series: &[(String, Vec<(f64, f64)>)],
    marks: &[(f64, usize)],
    y_max: Option<f64>,
) -> String {
    let (w, h) = (900.0, 360.0);
    let (l, r, t, b) = (60.0, 150.0, 54.0, 40.0);
    let pw = w - l - r;
    let ph = h - t - b;
    let xmax = series
        .iter()
        .flat_map(|s| s.1.iter().map(|p| p.0))
        .chain(marks.iter().map(|m| m.0))
        .fold(0.0f64, f64::max)
        .max(1.0);
    let ymax = y_max.unwrap_or_else(|| {
        series
            .iter()
            .flat_map(|s| s.1.iter().map(|p| p.1))
            .fold(0.0f64, f64::max)
            .max(1e-9)
            * 1.05
    });
    let x = |v: f64| l + pw * v / xmax;
    let y = |v: f64| t + ph * (1.0 - (v / ymax).clamp(0.0, 1.0));
    let mut s = format!(
        "<svg xmlns=\"http://www.w3.org/2000/svg\" width=\"{w}\" height=\"{h}\" viewBox=\"0 0 {w} {h}\" font-family=\"sans-serif\" font-size=\"12\">\n<rect width=\"{w}\" height=\"{h}\" fill=\"white\"/>\n<text x=\"{l}\" y=\"22\" font-size=\"15\">{}</text>\n",
        esc(title)
    );
    // axes and grid
    for i in 0..=4 {
        let v = ymax * i as f64 / 4.0;
        let _ = writeln!(
            s,
            "<line x1=\"{l}\" y1=\"{yy:.1}\" x2=\"{:.1}\" y2=\"{yy:.1}\" stroke=\"#ddd\"/><text x=\"{:.1}\" y=\"{:.1}\" text-anchor=\"end\">{}</text>",
            l + pw,
            l - 5.0,
            y(v) + 4.0,
            fmt_tick(v),
            yy = y(v)
        );
    }
    for i in 0..=5 {
        let v = xmax * i as f64 / 5.0;
        let _ = writeln!(
            s,
            "<text x=\"{:.1}\" y=\"{:.1}\" text-anchor=\"middle\">{}</text>",
            x(v),
            t + ph + 16.0,
            fmt_tick(v)
        );
    }
    let _ = writeln!(
        s,
        "<rect x=\"{l}\" y=\"{t}\" width=\"{pw}\" height=\"{ph}\" fill=\"none\" stroke=\"#444\"/>\n<text x=\"{:.1}\" y=\"{:.1}\" text-anchor=\"middle\">time (s)</text>\n<text x=\"14\" y=\"{:.1}\" transform=\"rotate(-90 14 {:.1})\" text-anchor=\"middle\">{}</text>",
        l + pw / 2.0,
        h - 6.0,
        t + ph / 2.0,
        t + ph / 2.0,
        esc(y_label)
    );
    for (i, (name, pts)) in series.iter().enumerate() {
        let c = COLORS[i % COLORS.len()];
        let pts = downsample(pts, 600);
        let mut path = String::new();
        for (k, p) in pts.iter().enumerate() {
            let _ = write!(
                path,
                "{}{:.1},{:.1}",
                if k == 0 { "" } else { " " },
                x(p.0),
                y(p.1)
            );
        }
        let _ = writeln!(
            s,
            "<polyline fill=\"none\" stroke=\"{c}\" stroke-width=\"1.2\" points=\"{path}\"/>\n<rect x=\"{:.1}\" y=\"{:.1}\" width=\"12\" height=\"3\" fill=\"{c}\"/><text x=\"{:.1}\" y=\"{:.1}\">{}</text>",
            l + pw + 10.0,
            t + 10.0 + 18.0 * i as f64,
            l + pw + 26.0,
            t + 15.0 + 18.0 * i as f64,
            esc(name)
        );
    }
    if !marks.is_empty() {
        let _ = writeln!(
            s,
            "<text x=\"{:.1}\" y=\"{:.1}\">| migration, above</text><text x=\"{:.1}\" y=\"{:.1}\">(colour: target)</text>",
            l + pw + 10.0,
            t + 15.0 + 18.0 * series.len() as f64,
            l + pw + 10.0,
            t + 31.0 + 18.0 * series.len() as f64
        );
    }
    for &(mx, si) in marks {
        let c = COLORS[si % COLORS.len()];
        let _ = writeln!(
            s,
            "<line x1=\"{xx:.1}\" y1=\"{:.1}\" x2=\"{xx:.1}\" y2=\"{:.1}\" stroke=\"{c}\" stroke-width=\"1.5\"/>",
            t - 14.0,
            t - 2.0,
            xx = x(mx)
        );
    }
    s.push_str("</svg>\n");
    s
}

fn fmt_tick(v: f64) -> String {
    if v >= 10.0 {
        format!("{v:.0}")
    } else {
        format!("{v:.2}")
    }
}

/// The host CPU plot of one run: one strip per host, its CPU ratio over
/// time, a green tick above the strip for every container moved in and a
/// red one below for every container moved out.
pub fn host_cpu_svg(run: &Run) -> String {
    let (w, l, r) = (900.0, 60.0, 20.0);
    let (top, ph, gap) = (40.0, 70.0, 34.0);
    let pw = w - l - r;
    let h = top + run.host_cpu.len() as f64 * (ph + gap) + 30.0;
    let xmax = run
        .host_cpu
        .iter()
        .flat_map(|s| s.1.iter().map(|p| p.0))
        .chain(run.moves.iter().map(|m| m.0))
        .fold(0.0f64, f64::max)
        .max(1.0);
    let x = |v: f64| l + pw * v / xmax;
    let mut s = format!(
        "<svg xmlns=\"http://www.w3.org/2000/svg\" width=\"{w}\" height=\"{h}\" viewBox=\"0 0 {w} {h}\" font-family=\"sans-serif\" font-size=\"12\">\n<rect width=\"{w}\" height=\"{h}\" fill=\"white\"/>\n<text x=\"{l}\" y=\"20\" font-size=\"15\">{}: host CPU (user + system); moves in (green, above), out (red, below)</text>\n",
        esc(&run.policy)
    );
    for (i, (name, pts)) in run.host_cpu.iter().enumerate() {
        let y0 = top + i as f64 * (ph + gap);
        let y = |v: f64| y0 + ph * (1.0 - v.clamp(0.0, 1.0));
        let _ = writeln!(
            s,
            "<rect x=\"{l}\" y=\"{y0:.1}\" width=\"{pw}\" height=\"{ph}\" fill=\"none\" stroke=\"#444\"/><line x1=\"{l}\" y1=\"{:.1}\" x2=\"{:.1}\" y2=\"{:.1}\" stroke=\"#ddd\"/><text x=\"{:.1}\" y=\"{:.1}\" text-anchor=\"end\">{}</text><text x=\"{:.1}\" y=\"{:.1}\" text-anchor=\"end\" font-size=\"10\">1.0</text><text x=\"{:.1}\" y=\"{:.1}\" text-anchor=\"end\" font-size=\"10\">0</text>",
            y(0.5),
            l + pw,
            y(0.5),
            l - 8.0,
            y0 + ph / 2.0 + 4.0,
            esc(name),
            l - 2.0,
            y0 + 9.0,
            l - 2.0,
            y0 + ph
        );
        let mut path = String::new();
        for (k, p) in downsample(pts, 900).iter().enumerate() {
            let _ = write!(
                path,
                "{}{:.1},{:.1}",
                if k == 0 { "" } else { " " },
                x(p.0),
                y(p.1)
            );
        }
        let _ = writeln!(
            s,
            "<polyline fill=\"none\" stroke=\"{}\" stroke-width=\"1\" points=\"{path}\"/>",
            COLORS[i % COLORS.len()]
        );
        for (t, from, to) in &run.moves {
            if to == name {
                let _ = writeln!(
                    s,
                    "<line x1=\"{xx:.1}\" y1=\"{:.1}\" x2=\"{xx:.1}\" y2=\"{:.1}\" stroke=\"#2ca02c\" stroke-width=\"1.5\"/>",
                    y0 - 10.0,
                    y0 - 1.0,
                    xx = x(*t)
                );
            }
            if from == name {
                let _ = writeln!(
                    s,
                    "<line x1=\"{xx:.1}\" y1=\"{:.1}\" x2=\"{xx:.1}\" y2=\"{:.1}\" stroke=\"#d62728\" stroke-width=\"1.5\"/>",
                    y0 + ph + 1.0,
                    y0 + ph + 10.0,
                    xx = x(*t)
                );
            }
        }
    }
    let ybase = top + run.host_cpu.len() as f64 * (ph + gap) - gap + 26.0;
    for i in 0..=5 {
        let v = xmax * i as f64 / 5.0;
        let _ = writeln!(
            s,
            "<text x=\"{:.1}\" y=\"{ybase:.1}\" text-anchor=\"middle\">{}</text>",
            x(v),
            fmt_tick(v)
        );
    }
    let _ = writeln!(
        s,
        "<text x=\"{:.1}\" y=\"{:.1}\" text-anchor=\"middle\">time (s)</text>",
        l + pw / 2.0,
        ybase + 16.0
    );
    s.push_str("</svg>\n");
    s
}

/// The ops plot over all runs.
pub fn ops_svg(runs: &[Run]) -> String {
    let series: Vec<(String, Vec<(f64, f64)>)> = runs
        .iter()
        .map(|r| (r.policy.clone(), r.ops.clone()))
        .collect();
    line_chart(
        "mean container ops/s over time",
        "ops/s per container",
        &series,
        &[],
        None,
    )
}

fn file_name_of(policy: &str) -> String {
    policy
        .chars()
        .map(|c| {
            if c.is_ascii_alphanumeric() || c == '-' {
                c
            } else {
                '_'
            }
        })
        .collect()
}

/// Writes `out/report.md`, `out/<policy>-host-cpu.svg` per run and
/// `out/ops.svg`; returns the markdown.
pub fn write_report(runs: &[Run], out: &Path, title: &str) -> Result<String, ReportError> {
    if runs.is_empty() {
        return Err(ReportError::Input("no runs to report".into()));
    }
    std::fs::create_dir_all(out).map_err(|source| ReportError::Io {
        path: out.to_path_buf(),
        source,
    })?;
    let write = |name: &str, text: &str| {
        let p = out.join(name);
        std::fs::write(&p, text).map_err(|source| ReportError::Io { path: p, source })
    };
    let mut md = format!("# {title}\n\n");
    md.push_str(&table(runs));
    md.push_str(
        "\nAverages over every sample of the run (hosts.csv / containers.csv); gains are \
         relative to the control run (policy `none`) of the same scenario. The thesis's \
         figures (its own cluster and workloads) are beside ours for direction and size.\n\n",
    );
    write("ops.svg", &ops_svg(runs))?;
    md.push_str("![ops over time](ops.svg)\n\n");
    for r in runs {
        let name = format!("{}-host-cpu.svg", file_name_of(&r.policy));
        write(&name, &host_cpu_svg(r))?;
        let _ = writeln!(
            md,
            "## {}\n\n{} migrations, {:.1} s frozen in all. Data: `{}`.\n\n![{} host CPU]({name})\n",
            r.policy,
            r.migrations,
            r.frozen_s,
            r.dir.display(),
            r.policy
        );
    }
    write("report.md", &md)?;
    Ok(md)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn run(policy: &str, cpu: f64, ops: f64) -> Run {
        Run {
            dir: PathBuf::from(policy),
            policy: policy.into(),
            avg_host_cpu: cpu,
            avg_container_cpu: 1.0,
            avg_ops: ops,
            migrations: 0,
            frozen_s: 0.0,
            host_cpu: vec![("n1".into(), vec![(0.0, cpu), (10.0, cpu)])],
            ops: vec![(0.0, ops)],
            moves: vec![(5.0, "n2".into(), "n1".into())],
        }
    }

    #[test]
    fn table_has_gains_and_oracle_share() {
        let runs = vec![
            run("none", 0.5, 100.0),
            run("cpu-greedy", 0.6, 105.0),
            run("oracle", 0.7, 110.0),
        ];
        let t = table(&runs);
        let greedy = t.lines().find(|l| l.starts_with("| cpu-greedy ")).unwrap();
        assert!(greedy.contains("| +5.0% | +20.0% | 50% |"), "{greedy}");
        assert!(greedy.contains("+6.4%") && greedy.contains("+17.9%"));
        let svg = host_cpu_svg(&runs[1]);
        assert!(svg.starts_with("<svg") && svg.trim_end().ends_with("</svg>"));
        assert!(svg.contains("<polyline"));
    }

    #[test]
    fn downsample_keeps_means() {
        let pts: Vec<(f64, f64)> = (0..1000).map(|i| (i as f64, 2.0)).collect();
        let d = downsample(&pts, 100);
        assert_eq!(d.len(), 100);
        assert!(d.iter().all(|p| (p.1 - 2.0).abs() < 1e-12));
    }
}
