//! Error metrics: MAE and MAPE, overall and per workload kind.
//!
//! MAPE (mean absolute percentage error, in percent) skips rows whose actual
//! ops are zero (the percentage is undefined there); `mape_rows` says how many
//! rows it averaged.

use std::collections::BTreeMap;

use serde::{Deserialize, Serialize};

/// Errors of a set of predictions.
#[derive(Clone, Debug, Default, PartialEq, Serialize, Deserialize)]
pub struct Errors {
    pub rows: usize,
    pub mae: f64,
    /// Percent.
    pub mape: f64,
    pub mape_rows: usize,
    pub mean_actual: f64,
}

impl Errors {
    pub fn of(actual: &[f64], predicted: &[f64]) -> Errors {
        let n = actual.len().min(predicted.len());
        if n == 0 {
            return Errors::default();
        }
        let (mut ae, mut ape, mut ape_n, mut sum) = (0.0, 0.0, 0usize, 0.0);
        for (a, p) in actual.iter().zip(predicted) {
            ae += (a - p).abs();
            sum += a;
            if a.abs() > 1e-9 {
                ape += ((a - p) / a).abs();
                ape_n += 1;
            }
        }
        Errors {
            rows: n,
            mae: ae / n as f64,
            mape: if ape_n == 0 {
                f64::NAN
            } else {
                100.0 * ape / ape_n as f64
            },
            mape_rows: ape_n,
            mean_actual: sum / n as f64,
        }
    }
}

/// Overall and per-kind errors.
#[derive(Clone, Debug, Default, PartialEq, Serialize, Deserialize)]
pub struct Report {
    pub overall: Errors,
    pub per_kind: BTreeMap<String, Errors>,
}

impl Report {
    pub fn of(kinds: &[&str], actual: &[f64], predicted: &[f64]) -> Report {
        let mut groups: BTreeMap<&str, (Vec<f64>, Vec<f64>)> = BTreeMap::new();
        for ((k, a), p) in kinds.iter().zip(actual).zip(predicted) {
            let g = groups.entry(k).or_default();
            g.0.push(*a);
            g.1.push(*p);
        }
        Report {
            overall: Errors::of(actual, predicted),
            per_kind: groups
                .into_iter()
                .map(|(k, (a, p))| (k.to_string(), Errors::of(&a, &p)))
                .collect(),
        }
    }

    /// A plain table: one line per kind and `all`.
    pub fn table(&self) -> String {
        let mut s = format!(
            "{:<10} {:>7} {:>14} {:>12} {:>9}\n",
            "kind", "rows", "mean ops/s", "MAE", "MAPE %"
        );
        let line = |k: &str, e: &Errors| {
            format!(
                "{:<10} {:>7} {:>14.2} {:>12.2} {:>9.2}\n",
                k, e.rows, e.mean_actual, e.mae, e.mape
            )
        };
        for (k, e) in &self.per_kind {
            s += &line(k, e);
        }
        s += &line("all", &self.overall);
        s
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn mae_and_mape() {
        let e = Errors::of(&[100.0, 200.0, 0.0], &[110.0, 180.0, 5.0]);
        assert_eq!(e.rows, 3);
        assert!((e.mae - 35.0 / 3.0).abs() < 1e-9);
        // (10% + 10%) / 2, the zero row skipped
        assert!((e.mape - 10.0).abs() < 1e-9);
        assert_eq!(e.mape_rows, 2);
    }

    #[test]
    fn per_kind() {
        let r = Report::of(
            &["cpu", "io", "cpu"],
            &[10.0, 20.0, 30.0],
            &[10.0, 10.0, 30.0],
        );
        assert_eq!(r.per_kind["cpu"].mae, 0.0);
        assert_eq!(r.per_kind["io"].mape, 50.0);
        assert!(r.table().contains("all"));
    }
}
