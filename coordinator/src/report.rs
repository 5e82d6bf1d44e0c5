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
//! Plots (SVG through plotters, as the forecast plot): per run, one strip
//! per host with its CPU over time, a tick above it for every container
//! moved in and below it for every one moved out; over all runs, the mean
//! container ops per second over time, one line per policy. Axes carry
//! their units, ticks are round numbers, the legend sits in its own column
//! right of the data, and points are drawn in time order. Long runs are
//! averaged into at most 900 (CPU) or 600 (ops) points per line.

use std::collections::BTreeMap;
use std::fmt::Write as _;
use std::path::{Path, PathBuf};

use plotters::prelude::*;

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

/// Series colours (matplotlib's tab10), the report's and the forecast plot's.
pub(crate) const COLORS: &[RGBColor] = &[
    RGBColor(0x1f, 0x77, 0xb4),
    RGBColor(0xd6, 0x27, 0x28),
    RGBColor(0x2c, 0xa0, 0x2c),
    RGBColor(0xff, 0x7f, 0x0e),
    RGBColor(0x94, 0x67, 0xbd),
    RGBColor(0x8c, 0x56, 0x4b),
    RGBColor(0xe3, 0x77, 0xc2),
    RGBColor(0x7f, 0x7f, 0x7f),
    RGBColor(0xbc, 0xbd, 0x22),
    RGBColor(0x17, 0xbe, 0xcf),
];
const MOVED_IN: RGBColor = RGBColor(0x2c, 0xa0, 0x2c);
const MOVED_OUT: RGBColor = RGBColor(0xd6, 0x27, 0x28);
/// The legend's column, right of the plot: a legend never covers data.
pub(crate) const LEGEND_W: u32 = 230;
const X_DESC: &str = "time since the run's first sample (s)";

/// A tick label: the round value plotters chose, without a trailing `.0`.
fn tick(v: &f64) -> String {
    format!("{}", (v * 1e6).round() / 1e6 + 0.0)
}

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

fn plot_err(e: impl std::fmt::Display) -> ReportError {
    ReportError::Input(format!("plot: {e}"))
}

/// One legend entry: a line (solid or dashed) or a migration mark.
pub(crate) enum Key {
    Line(RGBColor),
    Dashed(RGBColor),
    Mark(RGBColor),
}

/// Draws `keys` top-down in `area` (the legend column).
pub(crate) fn legend<DB: DrawingBackend>(
    area: &DrawingArea<DB, plotters::coord::Shift>,
    top: i32,
    keys: &[(Key, String)],
) -> Result<(), String> {
    let e = |e: DrawingAreaErrorKind<DB::ErrorType>| e.to_string();
    for (i, (k, text)) in keys.iter().enumerate() {
        let y = top + 20 * i as i32;
        match k {
            Key::Line(c) => area
                .draw(&PathElement::new(vec![(6, y), (30, y)], c.stroke_width(2)))
                .map_err(e)?,
            Key::Dashed(c) => {
                for x in [6, 16, 26] {
                    area.draw(&PathElement::new(
                        vec![(x, y), (x + 5, y)],
                        c.stroke_width(1),
                    ))
                    .map_err(e)?;
                }
            }
            Key::Mark(c) => area
                .draw(&PathElement::new(
                    vec![(18, y - 6), (18, y + 6)],
                    c.stroke_width(2),
                ))
                .map_err(e)?,
        }
        area.draw(&Text::new(
            text.clone(),
            (36, y - 7),
            ("sans-serif", 13).into_font(),
        ))
        .map_err(e)?;
    }
    Ok(())
}

/// Sorted by time (a live run's rows can arrive out of order: a line must
/// never step backwards).
fn by_time(pts: &[(f64, f64)]) -> Vec<(f64, f64)> {
    let mut v = pts.to_vec();
    v.sort_by(|a, b| a.0.total_cmp(&b.0));
    v
}

/// A line chart (SVG): `series` = (label, points); `marks` = (x, series
/// index for the colour) drawn as ticks along the top and explained in the
/// legend.
pub fn line_chart(
    title: &str,
    y_label: &str,
    series: &[(String, Vec<(f64, f64)>)],
    marks: &[(f64, usize)],
    y_max: Option<f64>,
) -> Result<String, ReportError> {
    let (w, h) = (980u32, 380u32);
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
            * 1.08
    });
    let mut out = String::new();
    {
        let root = SVGBackend::with_string(&mut out, (w, h)).into_drawing_area();
        root.fill(&WHITE).map_err(plot_err)?;
        let (plot, side) = root.split_horizontally(w - LEGEND_W);
        let mut chart = ChartBuilder::on(&plot)
            .caption(title, ("sans-serif", 16))
            .margin(10)
            .margin_right(28)
            .x_label_area_size(44)
            .y_label_area_size(70)
            .build_cartesian_2d(0.0..xmax, 0.0..ymax)
            .map_err(plot_err)?;
        chart
            .configure_mesh()
            .x_desc(X_DESC)
            .y_desc(y_label)
            .x_labels(8)
            .y_labels(6)
            .x_label_formatter(&tick)
            .y_label_formatter(&tick)
            .label_style(("sans-serif", 12))
            .axis_desc_style(("sans-serif", 13))
            .light_line_style(WHITE)
            .draw()
            .map_err(plot_err)?;
        for (i, (_, pts)) in series.iter().enumerate() {
            let c = COLORS[i % COLORS.len()];
            chart
                .draw_series(LineSeries::new(
                    downsample(&by_time(pts), 600),
                    c.stroke_width(2),
                ))
                .map_err(plot_err)?;
        }
        for &(mx, si) in marks {
            let c = COLORS[si % COLORS.len()];
            chart
                .draw_series(std::iter::once(PathElement::new(
                    vec![(mx, ymax * 0.95), (mx, ymax)],
                    c.stroke_width(2),
                )))
                .map_err(plot_err)?;
        }
        let mut keys: Vec<(Key, String)> = series
            .iter()
            .enumerate()
            .map(|(i, (n, _))| (Key::Line(COLORS[i % COLORS.len()]), n.clone()))
            .collect();
        if !marks.is_empty() {
            keys.push((Key::Mark(BLACK), "a migration (colour: target)".into()));
        }
        legend(&side, 40, &keys).map_err(plot_err)?;
        root.present().map_err(plot_err)?;
    }
    Ok(out)
}

/// The host CPU plot of one run: one strip per host, its CPU (user +
/// system, as a fraction of all its cores) over time, a green tick above
/// the line's range for every container moved in and a red one below it
/// for every one moved out.
pub fn host_cpu_svg(run: &Run) -> Result<String, ReportError> {
    let n = run.host_cpu.len().max(1) as u32;
    let (w, strip) = (980u32, 130u32);
    let h = 36 + n * strip + 30;
    let xmax = run
        .host_cpu
        .iter()
        .flat_map(|s| s.1.iter().map(|p| p.0))
        .chain(run.moves.iter().map(|m| m.0))
        .fold(0.0f64, f64::max)
        .max(1.0);
    let mut out = String::new();
    {
        let root = SVGBackend::with_string(&mut out, (w, h)).into_drawing_area();
        root.fill(&WHITE).map_err(plot_err)?;
        let root = root
            .titled(
                &format!("{}: host CPU over time, with migrations", run.policy),
                ("sans-serif", 16),
            )
            .map_err(plot_err)?;
        let (plots, side) = root.split_horizontally(w - LEGEND_W);
        let (strips, _) = plots.split_vertically(n * strip + 30);
        let areas = strips.split_evenly((n as usize, 1));
        // 0..1 is the CPU; the bands above and below carry the marks.
        let (lo, hi) = (-0.16, 1.16);
        for (i, ((name, pts), area)) in run.host_cpu.iter().zip(&areas).enumerate() {
            let last = i + 1 == run.host_cpu.len();
            let mut chart = ChartBuilder::on(area)
                .margin(4)
                .margin_right(28)
                .x_label_area_size(if last { 44 } else { 18 })
                .y_label_area_size(70)
                .build_cartesian_2d(0.0..xmax, lo..hi)
                .map_err(plot_err)?;
            let ylab = |v: &f64| {
                let half = (v * 2.0).round();
                if (0.0..=2.0).contains(&half) && (v * 2.0 - half).abs() < 1e-6 {
                    format!("{}", half / 2.0 + 0.0)
                } else {
                    String::new()
                }
            };
            let mut mesh = chart.configure_mesh();
            mesh.y_desc(format!("{name}: CPU (0-1)"))
                .y_labels(14)
                .y_label_formatter(&ylab)
                .x_labels(8)
                .x_label_formatter(&tick)
                .label_style(("sans-serif", 12))
                .axis_desc_style(("sans-serif", 13))
                .light_line_style(WHITE)
                .disable_y_mesh();
            if last {
                mesh.x_desc(X_DESC);
            }
            mesh.draw().map_err(plot_err)?;
            chart
                .draw_series(LineSeries::new(
                    downsample(&by_time(pts), 900),
                    COLORS[i % COLORS.len()].stroke_width(1),
                ))
                .map_err(plot_err)?;
            for (t, from, to) in &run.moves {
                if to == name {
                    chart
                        .draw_series(std::iter::once(PathElement::new(
                            vec![(*t, 1.03), (*t, hi)],
                            MOVED_IN.stroke_width(2),
                        )))
                        .map_err(plot_err)?;
                }
                if from == name {
                    chart
                        .draw_series(std::iter::once(PathElement::new(
                            vec![(*t, lo), (*t, -0.03)],
                            MOVED_OUT.stroke_width(2),
                        )))
                        .map_err(plot_err)?;
                }
            }
        }
        let mut keys: Vec<(Key, String)> = run
            .host_cpu
            .iter()
            .enumerate()
            .map(|(i, (n, _))| {
                (
                    Key::Line(COLORS[i % COLORS.len()]),
                    format!("{n}: user + system CPU"),
                )
            })
            .collect();
        keys.push((Key::Mark(MOVED_IN), "container moved in (above)".into()));
        keys.push((Key::Mark(MOVED_OUT), "container moved out (below)".into()));
        legend(&side, 20, &keys).map_err(plot_err)?;
        root.present().map_err(plot_err)?;
    }
    Ok(out)
}

/// The ops plot over all runs.
pub fn ops_svg(runs: &[Run]) -> Result<String, ReportError> {
    let series: Vec<(String, Vec<(f64, f64)>)> = runs
        .iter()
        .map(|r| (format!("policy {}", r.policy), r.ops.clone()))
        .collect();
    line_chart(
        "mean container ops/s over time",
        "ops/s (mean over containers)",
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
    write("ops.svg", &ops_svg(runs)?)?;
    md.push_str("![ops over time](ops.svg)\n\n");
    for r in runs {
        let name = format!("{}-host-cpu.svg", file_name_of(&r.policy));
        write(&name, &host_cpu_svg(r)?)?;
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
        let svg = host_cpu_svg(&runs[1]).unwrap();
        assert!(svg.starts_with("<svg") && svg.trim_end().ends_with("</svg>"));
        assert!(svg.contains("<polyline"));
        for key in [
            "n1: user + system CPU",
            "container moved in (above)",
            "CPU (0-1)",
        ] {
            assert!(svg.contains(key), "no {key:?} in the host CPU plot");
        }
    }

    #[test]
    fn downsample_keeps_means() {
        let pts: Vec<(f64, f64)> = (0..1000).map(|i| (i as f64, 2.0)).collect();
        let d = downsample(&pts, 100);
        assert_eq!(d.len(), 100);
        assert!(d.iter().all(|p| (p.1 - 2.0).abs() < 1e-12));
    }
}
