//! A histogram tree learner for the boosting loop (XGBoost's `hist` method,
//! compact): the default learner; gbdt's exact greedy one stays available.
//!
//! Binning, once per training run:
//! ```text
//! cuts_j   = distinct quantiles of feature j's training values (at most max_bins - 1)
//! bin(x)   = 0 if x is missing, else 1 + #{c in cuts_j : c <= x}     (one byte per cell)
//! ```
//! so `bin(x) <= b` exactly when `x < cuts_j[b - 1]`: a split found on bins
//! is stored as a float threshold and predicts raw rows the same way.
//!
//! One tree (squared error: the gradient is the residual r = y - F, the hessian 1):
//! ```text
//! root histogram: per feature and bin, (sum of r, rows)
//! for each level, depth-wise:
//!     each node: best "bin <= b" split over features and bins, missing rows
//!         tried on either side; gain = RL²/(nL+λ) + RR²/(nR+λ) - R²/(n+λ),
//!         both sides >= min_leaf rows, gain > 0
//!     rows of a split node are partitioned stably (order kept)
//!     the child with fewer rows gets its histogram from its rows, its
//!     sibling's is the parent's minus it (histogram subtraction)
//! leaf value = eta * R / (n + λ)
//! ```
//! Threads: histograms are built by feature ranges, one range per thread;
//! each feature's sums are added in row order whatever the range, so the
//! trees are bit-identical for 1 or N threads.

use serde::{Deserialize, Serialize};

/// The learner's settings (from [`super::model::TrainParams`]).
#[derive(Clone, Debug)]
pub struct HistParams {
    pub max_depth: u32,
    pub min_leaf: usize,
    pub lambda: f64,
    pub eta: f64,
    pub threads: usize,
}

/// Most bins per feature, the missing bin included (one byte per cell).
pub const MAX_BINS: usize = 256;

pub fn is_missing(x: f32) -> bool {
    x.is_nan() || x == gbdt::decision_tree::VALUE_TYPE_UNKNOWN
}

/// Cut points per feature (sorted, distinct).
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub struct Cuts {
    pub cuts: Vec<Vec<f32>>,
}

impl Cuts {
    /// Quantile cuts from `rows` (each of `nf` features): at most `max_bins - 2`
    /// cuts (bin 0 is missing), the distinct values' lower bounds when they are few.
    pub fn fit(rows: &[Vec<f32>], nf: usize, max_bins: usize) -> Cuts {
        let real = max_bins.clamp(3, MAX_BINS) - 1;
        let cuts = (0..nf)
            .map(|j| {
                let mut v: Vec<f32> = rows
                    .iter()
                    .map(|r| r[j])
                    .filter(|&x| !is_missing(x))
                    .collect();
                v.sort_by(f32::total_cmp);
                let mut d = v.clone();
                d.dedup();
                if d.len() <= real {
                    // Every distinct value its own bin: cut at each value but the smallest.
                    return d.into_iter().skip(1).collect();
                }
                let mut c: Vec<f32> = (1..real).map(|k| v[k * v.len() / real]).collect();
                c.dedup();
                // The smallest value as a cut would leave bin 1 empty.
                c.retain(|&x| x > v[0]);
                c
            })
            .collect();
        Cuts { cuts }
    }

    pub fn bin(&self, j: usize, x: f32) -> u8 {
        if is_missing(x) {
            0
        } else {
            (1 + self.cuts[j].partition_point(|&c| c <= x)) as u8
        }
    }

    /// Rows as bytes, row-major.
    pub fn apply(&self, rows: &[Vec<f32>]) -> Vec<u8> {
        let nf = self.cuts.len();
        let mut out = Vec::with_capacity(rows.len() * nf);
        for r in rows {
            out.extend((0..nf).map(|j| self.bin(j, r[j])));
        }
        out
    }
}

/// One tree, nodes in breadth-first order (children after their parent).
#[derive(Clone, Debug, Default, PartialEq, Serialize, Deserialize)]
pub struct Tree {
    /// Split feature, or -1 for a leaf.
    pub feature: Vec<i32>,
    /// Left when `x < threshold` (and when missing, if `missing_left`).
    pub threshold: Vec<f32>,
    /// The same split on bins: left when `1 <= bin <= split_bin`.
    pub split_bin: Vec<u8>,
    pub missing_left: Vec<bool>,
    pub left: Vec<u32>,
    pub right: Vec<u32>,
    /// Leaf output (eta included); 0 on splits.
    pub value: Vec<f64>,
}

impl Tree {
    pub fn predict(&self, x: &[f32]) -> f64 {
        let mut i = 0;
        loop {
            let f = self.feature[i];
            if f < 0 {
                return self.value[i];
            }
            let v = x[f as usize];
            let left = if is_missing(v) {
                self.missing_left[i]
            } else {
                v < self.threshold[i]
            };
            i = if left { self.left[i] } else { self.right[i] } as usize;
        }
    }

    fn predict_binned(&self, b: &[u8]) -> f64 {
        let mut i = 0;
        loop {
            let f = self.feature[i];
            if f < 0 {
                return self.value[i];
            }
            let v = b[f as usize];
            let left = if v == 0 {
                self.missing_left[i]
            } else {
                v <= self.split_bin[i]
            };
            i = if left { self.left[i] } else { self.right[i] } as usize;
        }
    }

    /// Splits per feature.
    pub fn split_counts(&self, counts: &mut [usize]) {
        for &f in &self.feature {
            if let Some(c) = usize::try_from(f).ok().and_then(|f| counts.get_mut(f)) {
                *c += 1;
            }
        }
    }

    /// Structure check for a loaded tree: array lengths agree, features in
    /// range, children after their parent (so prediction always ends).
    pub fn check(&self, nf: usize) -> Result<(), String> {
        let n = self.feature.len();
        if n == 0 {
            return Err("empty".into());
        }
        let lens = [
            self.threshold.len(),
            self.split_bin.len(),
            self.missing_left.len(),
            self.left.len(),
            self.right.len(),
            self.value.len(),
        ];
        if lens.iter().any(|&l| l != n) {
            return Err(format!(
                "node arrays of different lengths: {n} and {lens:?}"
            ));
        }
        for i in 0..n {
            let f = self.feature[i];
            if f < 0 {
                continue;
            }
            if f as usize >= nf {
                return Err(format!("node {i}: feature index {f} out of range"));
            }
            for (side, c) in [("left", self.left[i]), ("right", self.right[i])] {
                if c as usize <= i || c as usize >= n {
                    return Err(format!("node {i}: {side} child {c} out of range"));
                }
            }
        }
        Ok(())
    }
}

/// Histogram of one node: `[sum of r, rows]` per (feature, bin), features at `offsets`.
type Hist = Vec<[f64; 2]>;

/// Training rows, binned, and the per-feature layout of histograms.
pub struct Learner {
    params: HistParams,
    cuts: Cuts,
    nf: usize,
    bins: Vec<u8>,
    valid_bins: Vec<u8>,
    n_rows: usize,
    n_valid: usize,
    /// Features with at least one cut (the others cannot split).
    active: Vec<usize>,
    /// Offset of each feature's bins in a histogram (inactive: unused).
    offsets: Vec<usize>,
    hist_len: usize,
    /// Active-feature ranges, one per thread.
    ranges: Vec<std::ops::Range<usize>>,
}

struct Split {
    feature: usize,
    bin: u8,
    missing_left: bool,
    gain: f64,
    left: [f64; 2],
}

/// A node being grown: its rows are `rows[start..end]`.
struct Open {
    node: usize,
    start: usize,
    end: usize,
    sum: [f64; 2],
    hist: Option<Hist>,
}

impl Learner {
    pub fn new(params: HistParams, cuts: Cuts, train: &[Vec<f32>], valid: &[Vec<f32>]) -> Learner {
        let nf = cuts.cuts.len();
        let active: Vec<usize> = (0..nf).filter(|&j| !cuts.cuts[j].is_empty()).collect();
        let mut offsets = vec![0; nf];
        let mut hist_len = 0;
        for &j in &active {
            offsets[j] = hist_len;
            hist_len += cuts.cuts[j].len() + 2;
        }
        let t = params.threads.clamp(1, active.len().max(1));
        let ranges = (0..t)
            .map(|k| k * active.len() / t..(k + 1) * active.len() / t)
            .collect();
        Learner {
            bins: cuts.apply(train),
            valid_bins: cuts.apply(valid),
            n_rows: train.len(),
            n_valid: valid.len(),
            params,
            cuts,
            nf,
            active,
            offsets,
            hist_len,
            ranges,
        }
    }

    pub fn cuts(&self) -> &Cuts {
        &self.cuts
    }

    /// Fits one tree to the residuals `r` of the rows in `subset` (sorted; all
    /// rows when `None`); returns it with its output on every training row and
    /// every held-out row.
    pub fn fit(&self, r: &[f64], subset: Option<&[usize]>) -> (Tree, Vec<f64>, Vec<f64>) {
        let mut rows: Vec<u32> = match subset {
            Some(s) => s.iter().map(|&i| i as u32).collect(),
            None => (0..self.n_rows as u32).collect(),
        };
        let mut tree = Tree::default();
        let sum = rows
            .iter()
            .fold([0.0, 0.0], |a, &i| [a[0] + r[i as usize], a[1] + 1.0]);
        push_node(&mut tree);
        let mut root_hist = vec![vec![[0.0; 2]; self.hist_len]];
        self.build(&rows, &[(0, rows.len())], r, &mut root_hist);
        let mut level = vec![Open {
            node: 0,
            start: 0,
            end: rows.len(),
            sum,
            hist: root_hist.pop(),
        }];
        let mut leaves: Vec<Open> = Vec::new();
        let mut scratch: Vec<u32> = Vec::with_capacity(rows.len());
        for depth in 0..self.params.max_depth {
            let last = depth + 1 == self.params.max_depth;
            let mut next: Vec<Open> = Vec::new();
            // (index in `next` of the child to build, of its sibling)
            let mut pairs: Vec<(usize, usize)> = Vec::new();
            for o in level {
                let Some(s) = o.hist.as_ref().and_then(|h| self.best_split(h, o.sum)) else {
                    leaves.push(o);
                    continue;
                };
                let mid = self.partition(&mut rows[o.start..o.end], &mut scratch, &s) + o.start;
                let (l, rn) = (push_node(&mut tree), push_node(&mut tree));
                let i = o.node;
                tree.feature[i] = s.feature as i32;
                tree.split_bin[i] = s.bin;
                tree.threshold[i] = self.cuts.cuts[s.feature][s.bin as usize - 1];
                tree.missing_left[i] = s.missing_left;
                tree.left[i] = l as u32;
                tree.right[i] = rn as u32;
                let right = [o.sum[0] - s.left[0], o.sum[1] - s.left[1]];
                let li = next.len();
                next.push(Open {
                    node: l,
                    start: o.start,
                    end: mid,
                    sum: s.left,
                    hist: None,
                });
                next.push(Open {
                    node: rn,
                    start: mid,
                    end: o.end,
                    sum: right,
                    hist: None,
                });
                if !last {
                    // The smaller child is built; the parent's histogram becomes the sibling's.
                    let (small, big) = if mid - o.start <= o.end - mid {
                        (li, li + 1)
                    } else {
                        (li + 1, li)
                    };
                    next[big].hist = o.hist;
                    pairs.push((small, big));
                }
            }
            if !pairs.is_empty() {
                let tasks: Vec<(usize, usize)> = pairs
                    .iter()
                    .map(|&(s, _)| (next[s].start, next[s].end))
                    .collect();
                let mut built: Vec<Hist> = vec![vec![[0.0; 2]; self.hist_len]; tasks.len()];
                self.build(&rows, &tasks, r, &mut built);
                for (&(s, b), h) in pairs.iter().zip(built) {
                    if let Some(big) = next[b].hist.as_mut() {
                        for (p, c) in big.iter_mut().zip(&h) {
                            p[0] -= c[0];
                            p[1] -= c[1];
                        }
                    }
                    next[s].hist = Some(h);
                }
            }
            level = next;
            if level.is_empty() {
                break;
            }
        }
        leaves.extend(level);

        let lambda = self.params.lambda;
        let mut train_out = vec![0.0; self.n_rows];
        for o in &leaves {
            let v = self.params.eta * o.sum[0] / (o.sum[1] + lambda).max(1e-12);
            tree.value[o.node] = v;
            for &i in &rows[o.start..o.end] {
                train_out[i as usize] = v;
            }
        }
        if subset.is_some() {
            // Rows outside the subset were in no node: walk the tree for them.
            train_out = self
                .bins
                .chunks(self.nf)
                .map(|b| tree.predict_binned(b))
                .collect();
        }
        let valid_out = if self.n_valid == 0 {
            Vec::new()
        } else {
            self.valid_bins
                .chunks(self.nf)
                .map(|b| tree.predict_binned(b))
                .collect()
        };
        (tree, train_out, valid_out)
    }

    /// Histograms of `tasks` (row ranges of `rows`), by feature ranges in parallel.
    fn build(&self, rows: &[u32], tasks: &[(usize, usize)], r: &[f64], out: &mut [Hist]) {
        if self.ranges.len() == 1 {
            for (h, &(s, e)) in out.iter_mut().zip(tasks) {
                self.build_range(&rows[s..e], r, &self.active, h, 0);
            }
            return;
        }
        // Each thread gets its features' slice of every task's histogram.
        let mut per_thread: Vec<Vec<&mut [[f64; 2]]>> =
            self.ranges.iter().map(|_| Vec::new()).collect();
        for h in out.iter_mut() {
            let mut rest: &mut [[f64; 2]] = h.as_mut_slice();
            let mut at = 0;
            for (t, fr) in self.ranges.iter().enumerate() {
                let end = self
                    .active
                    .get(fr.end)
                    .map_or(self.hist_len, |&j| self.offsets[j]);
                let (a, b) = std::mem::take(&mut rest).split_at_mut(end - at);
                per_thread[t].push(a);
                rest = b;
                at = end;
            }
        }
        std::thread::scope(|sc| {
            for (fr, slices) in self.ranges.iter().zip(per_thread) {
                let feats = &self.active[fr.clone()];
                let base = feats.first().map_or(0, |&j| self.offsets[j]);
                sc.spawn(move || {
                    for (h, &(s, e)) in slices.into_iter().zip(tasks) {
                        self.build_range(&rows[s..e], r, feats, h, base);
                    }
                });
            }
        });
    }

    fn build_range(
        &self,
        rows: &[u32],
        r: &[f64],
        feats: &[usize],
        h: &mut [[f64; 2]],
        base: usize,
    ) {
        let nf = self.nf;
        let offs: Vec<usize> = feats.iter().map(|&j| self.offsets[j] - base).collect();
        for &i in rows {
            let i = i as usize;
            let g = r[i];
            let b = &self.bins[i * nf..(i + 1) * nf];
            for (&j, &o) in feats.iter().zip(&offs) {
                let c = &mut h[o + b[j] as usize];
                c[0] += g;
                c[1] += 1.0;
            }
        }
    }

    fn best_split(&self, h: &Hist, sum: [f64; 2]) -> Option<Split> {
        let (lambda, min_leaf) = (self.params.lambda, self.params.min_leaf.max(1) as f64);
        if sum[1] < 2.0 * min_leaf {
            return None;
        }
        let score = |g: f64, n: f64| g * g / (n + lambda).max(1e-12);
        let parent = score(sum[0], sum[1]);
        let mut best: Option<Split> = None;
        for &j in &self.active {
            let o = self.offsets[j];
            let k = self.cuts.cuts[j].len() + 1;
            let miss = h[o];
            let mut acc = [0.0, 0.0];
            for b in 1..k {
                let c = h[o + b];
                acc[0] += c[0];
                acc[1] += c[1];
                for missing_left in [false, true] {
                    if missing_left && miss[1] == 0.0 {
                        continue;
                    }
                    let l = if missing_left {
                        [acc[0] + miss[0], acc[1] + miss[1]]
                    } else {
                        acc
                    };
                    let rr = [sum[0] - l[0], sum[1] - l[1]];
                    if l[1] < min_leaf || rr[1] < min_leaf {
                        continue;
                    }
                    let gain = score(l[0], l[1]) + score(rr[0], rr[1]) - parent;
                    if gain > 1e-12 && best.as_ref().is_none_or(|s| gain > s.gain) {
                        best = Some(Split {
                            feature: j,
                            bin: b as u8,
                            missing_left,
                            gain,
                            left: l,
                        });
                    }
                }
            }
        }
        best
    }

    /// Stable partition of `rows` by `s`; returns the number going left.
    fn partition(&self, rows: &mut [u32], scratch: &mut Vec<u32>, s: &Split) -> usize {
        scratch.clear();
        let mut n_left = 0;
        for k in 0..rows.len() {
            let i = rows[k];
            let v = self.bins[i as usize * self.nf + s.feature];
            let left = if v == 0 { s.missing_left } else { v <= s.bin };
            if left {
                rows[n_left] = i;
                n_left += 1;
            } else {
                scratch.push(i);
            }
        }
        rows[n_left..].copy_from_slice(scratch);
        n_left
    }
}

fn push_node(t: &mut Tree) -> usize {
    t.feature.push(-1);
    t.threshold.push(0.0);
    t.split_bin.push(0);
    t.missing_left.push(false);
    t.left.push(0);
    t.right.push(0);
    t.value.push(0.0);
    t.feature.len() - 1
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn bins_match_thresholds() {
        let rows: Vec<Vec<f32>> = (0..1000)
            .map(|i| vec![(i % 37) as f32 * 0.5, (i as f32).sqrt()])
            .collect();
        let cuts = Cuts::fit(&rows, 2, 16);
        assert_eq!(cuts.cuts[0].len(), 14, "37 distinct values: 15 real bins");
        for r in &rows {
            for (j, &x) in r.iter().enumerate() {
                let b = cuts.bin(j, x);
                for sb in 1..=cuts.cuts[j].len() {
                    assert_eq!(b as usize <= sb, x < cuts.cuts[j][sb - 1]);
                }
            }
        }
        assert_eq!(cuts.bin(0, f32::NAN), 0);
        let few = Cuts::fit(&[vec![1.0], vec![2.0], vec![2.0]], 1, 256);
        assert_eq!(few.cuts[0], vec![2.0]);
    }

    fn learner(threads: usize, train: &[Vec<f32>]) -> Learner {
        let p = HistParams {
            max_depth: 3,
            min_leaf: 2,
            lambda: 0.0,
            eta: 1.0,
            threads,
        };
        Learner::new(p, Cuts::fit(train, 3, 64), train, &[])
    }

    #[test]
    fn fits_a_step_with_missing_values() {
        // y = 10 when x0 >= 5 (or missing), else 0; x1, x2 are noise.
        let x: Vec<Vec<f32>> = (0..200)
            .map(|i| {
                let x0 = if i % 10 == 0 {
                    f32::NAN
                } else {
                    (i % 10) as f32
                };
                vec![x0, (i * 7 % 13) as f32, (i * 3 % 5) as f32]
            })
            .collect();
        let y: Vec<f64> = x
            .iter()
            .map(|r| {
                if r[0].is_nan() || r[0] >= 5.0 {
                    10.0
                } else {
                    0.0
                }
            })
            .collect();
        for threads in [1, 2, 3] {
            let (tree, out, _) = learner(threads, &x).fit(&y, None);
            assert_eq!(tree.feature[0], 0);
            assert_eq!(tree.threshold[0], 5.0);
            assert!(!tree.missing_left[0]);
            for (r, (o, y)) in x.iter().zip(out.iter().zip(&y)) {
                assert!((o - y).abs() < 1e-9);
                assert_eq!(tree.predict(r), *o);
            }
            tree.check(3).unwrap();
        }
    }
}
