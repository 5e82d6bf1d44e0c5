//! Predicted vs actual ops over time, as an SVG: one panel per workload kind,
//! the summed ops/s of that kind's containers per window, actual solid and
//! predicted dashed, one colour per run (the first eight runs). The legend
//! (each run's actual and predicted line by name) has its own column right
//! of the panels, as in the report's plots (`crate::report`).

use std::collections::BTreeMap;
use std::path::Path;

use plotters::prelude::*;

use super::dataset::Row;
use super::{ForecastError, Result};
use crate::report::{legend, Key, COLORS as PALETTE, LEGEND_W};

const MAX_RUNS: usize = 8;

/// Per kind, per run: (seconds since the run's first window, actual, predicted).
type Series = BTreeMap<String, BTreeMap<String, BTreeMap<i64, (f64, f64)>>>;

fn series(rows: &[&Row], predicted: &[f64]) -> Series {
    let mut start: BTreeMap<&str, f64> = BTreeMap::new();
    for r in rows {
        let s = start.entry(&r.run).or_insert(r.time);
        *s = s.min(r.time);
    }
    let mut out: Series = BTreeMap::new();
    for (r, p) in rows.iter().zip(predicted) {
        let t = (r.time - start[r.run.as_str()]).round() as i64;
        let e = out
            .entry(r.kind.clone())
            .or_default()
            .entry(r.run.clone())
            .or_default()
            .entry(t)
            .or_insert((0.0, 0.0));
        e.0 += r.ops;
        e.1 += p;
    }
    out
}

/// Writes the plot to `path` (SVG).
pub fn predicted_vs_actual(path: &Path, rows: &[&Row], predicted: &[f64]) -> Result<()> {
    let err = |e: &dyn std::fmt::Display| ForecastError::Plot {
        path: path.to_path_buf(),
        msg: e.to_string(),
    };
    let data = series(rows, predicted);
    if data.is_empty() {
        return Err(ForecastError::Empty("nothing to plot".into()));
    }
    let panels = data.len() as u32;
    let w = 1000 + LEGEND_W;
    let root = SVGBackend::new(path, (w, 260 * panels)).into_drawing_area();
    root.fill(&WHITE).map_err(|e| err(&e))?;
    let (plots, side) = root.split_horizontally(w - LEGEND_W);
    let areas = plots.split_evenly((panels as usize, 1));
    // One colour per run across every panel, for one legend.
    let names: Vec<&String> = data
        .values()
        .flat_map(|r| r.keys())
        .collect::<std::collections::BTreeSet<_>>()
        .into_iter()
        .take(MAX_RUNS)
        .collect();
    let mut keys: Vec<(Key, String)> = Vec::new();
    for (i, run) in names.iter().enumerate() {
        let colour = PALETTE[i % PALETTE.len()];
        let label = Path::new(run.as_str())
            .file_name()
            .map_or(run.to_string(), |f| f.to_string_lossy().into_owned());
        keys.push((Key::Line(colour), format!("{label}: actual")));
        keys.push((Key::Dashed(colour), format!("{label}: predicted")));
    }
    for ((kind, runs), area) in data.iter().zip(areas) {
        let x_max = runs
            .values()
            .flat_map(|s| s.keys())
            .copied()
            .max()
            .unwrap_or(1)
            .max(1) as f64;
        let y_max = runs
            .values()
            .flat_map(|s| s.values())
            .map(|(a, p)| a.max(*p))
            .fold(0.0, f64::max)
            .max(1.0)
            * 1.1;
        let mut chart = ChartBuilder::on(&area)
            .caption(
                format!("{kind}: ops/s, actual (solid) vs predicted (dashed)"),
                ("sans-serif", 16),
            )
            .margin(8)
            .margin_right(30)
            .x_label_area_size(40)
            .y_label_area_size(60)
            .build_cartesian_2d(0.0..x_max, 0.0..y_max)
            .map_err(|e| err(&e))?;
        chart
            .configure_mesh()
            .x_desc("time since the run's first window (s)")
            .y_desc("ops/s")
            .x_label_formatter(&|v| format!("{}", v.round() + 0.0))
            .y_label_formatter(&|v| format!("{}", (v * 1e3).round() / 1e3 + 0.0))
            .label_style(("sans-serif", 12))
            .axis_desc_style(("sans-serif", 13))
            .light_line_style(WHITE)
            .draw()
            .map_err(|e| err(&e))?;
        for (run, s) in runs {
            let Some(i) = names.iter().position(|n| *n == run) else {
                continue; // past the first MAX_RUNS runs
            };
            let colour = PALETTE[i % PALETTE.len()];
            let actual: Vec<(f64, f64)> = s.iter().map(|(t, v)| (*t as f64, v.0)).collect();
            let pred: Vec<(f64, f64)> = s.iter().map(|(t, v)| (*t as f64, v.1)).collect();
            chart
                .draw_series(LineSeries::new(actual, colour.stroke_width(2)))
                .map_err(|e| err(&e))?;
            chart
                .draw_series(DashedLineSeries::new(pred, 6, 4, colour.stroke_width(1)))
                .map_err(|e| err(&e))?;
        }
    }
    legend(&side, 40, &keys).map_err(|e| err(&e))?;
    root.present().map_err(|e| err(&e))?;
    Ok(())
}
