//! forust-ml (a histogram, XGBoost-style learner in Rust) on `herd forecast export`
//! rows with the parameters of benches/forecast_xgb.py: one thread, 500 trees,
//! depth 6, eta 0.1, min leaf weight 5, no L2, early stopping after 30 rounds
//! on the `valid` runs, target ln(1 + ops); prints training time and MAPE.
use forust_ml::objective::ObjectiveType;
use forust_ml::{GradientBooster, Matrix};
use std::error::Error;
use std::time::Instant;

type Rows = (Vec<Vec<f64>>, Vec<f64>, Vec<String>, Vec<String>);

fn read(path: &str) -> Result<Rows, Box<dyn Error>> {
    let text = std::fs::read_to_string(path).map_err(|e| format!("{path}: {e}"))?;
    let mut lines = text.lines();
    let header: Vec<&str> = lines
        .next()
        .ok_or(format!("{path}: empty"))?
        .split(',')
        .collect();
    let col = |name: &str| {
        header
            .iter()
            .position(|h| *h == name)
            .ok_or(format!("{path}: no column {name}"))
    };
    let (first, last, kind) = (col("split")? + 1, col("ops_per_second")?, col("kind")?);
    let (mut x, mut y, mut k, mut s) = (vec![], vec![], vec![], vec![]);
    for (i, l) in lines.enumerate() {
        let f: Vec<&str> = l.split(',').collect();
        if f.len() != header.len() {
            return Err(format!("{path}:{}: {} fields", i + 2, f.len()).into());
        }
        let row: Result<Vec<f64>, _> = f[first..last]
            .iter()
            .map(|v| {
                if v.is_empty() {
                    Ok(f64::NAN)
                } else {
                    v.parse::<f64>()
                }
            })
            .collect();
        x.push(row.map_err(|e| format!("{path}:{}: {e}", i + 2))?);
        y.push(
            f[last]
                .parse()
                .map_err(|e| format!("{path}:{}: {e}", i + 2))?,
        );
        k.push(f[kind].to_string());
        s.push(f[first - 1].to_string());
    }
    if x.is_empty() {
        return Err(format!("{path}: no rows").into());
    }
    Ok((x, y, k, s))
}

fn colmajor(rows: &[&Vec<f64>]) -> Vec<f64> {
    let nf = rows[0].len();
    let mut out = Vec::with_capacity(rows.len() * nf);
    for j in 0..nf {
        for r in rows {
            out.push(r[j]);
        }
    }
    out
}

fn main() -> Result<(), Box<dyn Error>> {
    let dir = std::env::args().nth(1).ok_or(
        "usage: forecast-forust DIR (with train.csv and test.csv from herd forecast export)",
    )?;
    let (x, y, _, split) = read(&format!("{dir}/train.csv"))?;
    let (xt, yt, kt, _) = read(&format!("{dir}/test.csv"))?;
    let tr: Vec<usize> = (0..x.len()).filter(|&i| split[i] == "train").collect();
    let va: Vec<usize> = (0..x.len()).filter(|&i| split[i] != "train").collect();
    let nf = x[0].len();
    let xtr = colmajor(&tr.iter().map(|&i| &x[i]).collect::<Vec<_>>());
    let xva = colmajor(&va.iter().map(|&i| &x[i]).collect::<Vec<_>>());
    let ytr: Vec<f64> = tr.iter().map(|&i| y[i].max(0.0).ln_1p()).collect();
    let yva: Vec<f64> = va.iter().map(|&i| y[i].max(0.0).ln_1p()).collect();
    let wtr = vec![1.0; ytr.len()];
    let wva = vec![1.0; yva.len()];
    let mtr = Matrix::new(&xtr, ytr.len(), nf);
    let mva = Matrix::new(&xva, yva.len(), nf);
    let mut m = GradientBooster::default()
        .set_objective_type(ObjectiveType::SquaredLoss)
        .set_iterations(500)
        .set_learning_rate(0.1)
        .set_max_depth(6)
        .set_l2(0.0)
        .set_min_leaf_weight(5.0)
        .set_nbins(256)
        .set_parallel(false)
        .set_num_threads(Some(1))
        .set_early_stopping_rounds(Some(30));
    let t = Instant::now();
    m.fit(&mtr, &ytr, &wtr, Some(vec![(mva, &yva, &wva)]))?;
    let secs = t.elapsed().as_secs_f64();
    let xte = colmajor(&xt.iter().collect::<Vec<_>>());
    let p = m.predict(&Matrix::new(&xte, yt.len(), nf), false);
    let mut per: std::collections::BTreeMap<String, (f64, usize)> = Default::default();
    for ((a, p), k) in yt.iter().zip(&p).zip(&kt) {
        if a.abs() > 1e-9 {
            let pr = p.exp_m1().max(0.0);
            for key in [k.as_str(), "all"] {
                let e = per.entry(key.into()).or_default();
                e.0 += ((a - pr) / a).abs();
                e.1 += 1;
            }
        }
    }
    println!(
        "forust-ml 0.8.0, 1 thread: {} trees, {secs:.2} s",
        m.best_iteration.map_or(m.trees.len(), |b| b + 1)
    );
    for (k, (s, n)) in per {
        println!("  MAPE {k}: {:.2} %", 100.0 * s / n as f64);
    }
    Ok(())
}
