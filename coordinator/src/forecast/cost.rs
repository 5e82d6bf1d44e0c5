//! What a migration costs, measured on past runs, for the `forecast` policy.
//!
//! For every `moved` event of migrations.csv (container c, time t):
//! ```text
//! before = c's last ops sample at or before t's freeze (the last one on the source host)
//! after  = c's first ops sample on the target host after that
//! lost   = max(0, (after - before) - c's median sample interval)
//! ```
//! i.e. the seconds in which c produced nothing it would otherwise have
//! reported (frozen, transferred, restored, warming up to its first sample).
//! The mean over all moves is the `migration_cost_s` the policy charges a move.

use std::path::{Path, PathBuf};

use serde::{Deserialize, Serialize};

use super::dataset::run_dirs;
use super::{ForecastError, Result};
use crate::csv::{read_in, ContainerRow, CsvRow, MigrationEvent, MigrationRow};

/// Migration cost measured over runs.
#[derive(Clone, Debug, Default, PartialEq, Serialize, Deserialize)]
pub struct MigrationCost {
    /// Moves measured.
    pub moves: usize,
    /// Mean seconds without output per move.
    pub mean_lost_s: f64,
    /// Mean `frozen_seconds` of those moves, when recorded.
    pub mean_frozen_s: Option<f64>,
}

fn csv_err(dir: &Path, e: crate::csv::CsvError) -> ForecastError {
    ForecastError::Invalid(format!("{}: {e}", dir.display()))
}

/// Lost seconds per `moved` event of one run (none without migrations.csv),
/// and the frozen seconds recorded.
pub fn run_moves(dir: &Path) -> Result<(Vec<f64>, Vec<f64>)> {
    if !dir.join(MigrationRow::FILE).exists() {
        return Ok((Vec::new(), Vec::new()));
    }
    let migs: Vec<MigrationRow> = read_in(dir).map_err(|e| csv_err(dir, e))?;
    let moved: Vec<&MigrationRow> = migs
        .iter()
        .filter(|m| m.event == MigrationEvent::Moved)
        .collect();
    if moved.is_empty() {
        return Ok((Vec::new(), Vec::new()));
    }
    let rows: Vec<ContainerRow> = read_in(dir).map_err(|e| csv_err(dir, e))?;
    let (mut lost, mut frozen) = (Vec::new(), Vec::new());
    for m in moved {
        let mut s: Vec<(f64, &str)> = rows
            .iter()
            .filter(|r| r.container == m.container && r.ops_per_second.is_some())
            .map(|r| (r.time, r.host.as_str()))
            .collect();
        s.sort_by(|a, b| a.0.total_cmp(&b.0));
        let mut steps: Vec<f64> = s.windows(2).map(|w| w[1].0 - w[0].0).collect();
        steps.sort_by(f64::total_cmp);
        let Some(&step) = steps.get(steps.len() / 2) else {
            continue;
        };
        // The event is logged when the move ends: the source's last sample
        // is the last one on `from` before it, the target's first the next on `to`.
        let Some(before) = s
            .iter()
            .filter(|(t, h)| *t <= m.time && *h == m.from)
            .map(|x| x.0)
            .next_back()
        else {
            continue;
        };
        let Some(after) = s
            .iter()
            .find(|(t, h)| *t > before && *h == m.to)
            .map(|x| x.0)
        else {
            continue;
        };
        lost.push((after - before - step).max(0.0));
        frozen.extend(m.frozen_seconds);
    }
    Ok((lost, frozen))
}

/// The cost over every run under `dirs` (`None`: no move measured).
pub fn measure(dirs: &[PathBuf]) -> Result<Option<MigrationCost>> {
    let (mut lost, mut frozen) = (Vec::new(), Vec::new());
    for d in dirs {
        for run in run_dirs(d)? {
            let (l, f) = run_moves(&run)?;
            lost.extend(l);
            frozen.extend(f);
        }
    }
    if lost.is_empty() {
        return Ok(None);
    }
    let mean = |v: &[f64]| v.iter().sum::<f64>() / v.len() as f64;
    Ok(Some(MigrationCost {
        moves: lost.len(),
        mean_lost_s: mean(&lost),
        mean_frozen_s: (!frozen.is_empty()).then(|| mean(&frozen)),
    }))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn lost_seconds_of_a_move() {
        let t = tempfile::tempdir().unwrap();
        let d = t.path();
        let mut c = String::from(
            "time,host,container,cpu_usage_cores,memory_bytes,major_faults_per_second,\
             io_read_ops_per_second,io_write_ops_per_second,pids,ops_per_second\n",
        );
        // One sample a second on n1 until 10, on n2 from 14.5.
        for t in 0..=10 {
            c += &format!("{t},n1,a,1,0,0,0,0,1,100\n");
        }
        for t in [14.5, 15.5, 16.5] {
            c += &format!("{t},n2,a,1,0,0,0,0,1,100\n");
        }
        std::fs::write(d.join("containers.csv"), c).unwrap();
        std::fs::write(
            d.join("migrations.csv"),
            "time,container,from,to,event,count,frozen_seconds\n\
             0,a,,n1,added,0,\n\
             14,a,n1,n2,moved,1,2.5\n",
        )
        .unwrap();
        let (lost, frozen) = run_moves(d).unwrap();
        assert_eq!(lost, vec![3.5]);
        assert_eq!(frozen, vec![2.5]);
        let m = measure(&[d.to_path_buf()]).unwrap().unwrap();
        assert_eq!(
            (m.moves, m.mean_lost_s, m.mean_frozen_s),
            (1, 3.5, Some(2.5))
        );
    }
}
