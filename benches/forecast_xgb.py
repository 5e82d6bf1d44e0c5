#!/usr/bin/env python3
"""herd forecast's learners vs XGBoost on the same dataset: error and training time.

All learners see the same rows: the training runs exported by
`herd forecast export` (its `split` column marks the runs held out for early
stopping, the same runs `herd forecast train` holds out with the same seed),
the same target ln(1 + ops/s), the same depth, eta, min rows per leaf
(XGBoost's min_child_weight: the hessian is 1), L2 penalty (lambda; gbdt has
none), bins (XGBoost's max_bin), tree budget and patience, and all are scored
on the test runs. herd's `hist` learner and XGBoost `hist` run on one thread
(the baseline); `--threads N` adds both on N threads, `--gbdt` the gbdt crate's
exact-greedy learner, `--exact` XGBoost's exact method. Training time is boosting
only (`train_seconds` from herd, binning included; the `xgb.train` call for
XGBoost, its quantile sketch included).

Usage:
  benches/forecast_xgb.py --synth                      # synthetic runs (default sizes)
  benches/forecast_xgb.py --train DIR... --test DIR... # real monitor runs

Needs: python3 with numpy and xgboost (`pip install xgboost numpy`, a venv is
fine) and a built herd (`cargo build --release -p herd`).
"""

import argparse
import csv
import json
import math
import os
import subprocess
import sys
import tempfile
import time
from collections import defaultdict

try:
    import numpy as np
    import xgboost as xgb
except ImportError as e:  # clear error, not a traceback
    sys.exit(f"forecast_xgb: {e}: pip install xgboost numpy (a venv is fine)")

# herd_coordinator::forecast::policy::placement_excluded()
ACHIEVED = {"c_cpu_usage_cores", "c_major_faults_per_second", "c_io_read_ops_per_second",
            "c_io_write_ops_per_second", "h_net_rx_bytes_per_second", "h_net_tx_bytes_per_second"}

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))


def herd(args, herd_bin):
    out = subprocess.run([herd_bin, *args], capture_output=True, text=True)
    if out.returncode != 0:
        sys.exit(f"forecast_xgb: herd {' '.join(args)} failed:\n{out.stderr}")
    return out.stdout


def read_export(path):
    with open(path, newline="") as f:
        r = csv.reader(f)
        header = next(r)
        first = header.index("split") + 1
        last = header.index("ops_per_second")
        names = header[first:last]
        X, y, kinds, split = [], [], [], []
        for row in r:
            X.append([float(v) if v != "" else math.nan for v in row[first:last]])
            y.append(float(row[last]))
            kinds.append(row[header.index("kind")])
            split.append(row[header.index("split")])
    return names, np.array(X, dtype=np.float32), np.array(y), kinds, split


def errors(actual, pred):
    """MAE and MAPE (percent, rows with zero actual skipped) - as herd computes them."""
    n = len(actual)
    mae = sum(abs(a - p) for a, p in zip(actual, pred)) / max(n, 1)
    ape = [abs((a - p) / a) for a, p in zip(actual, pred) if abs(a) > 1e-9]
    return mae, (100.0 * sum(ape) / len(ape)) if ape else math.nan


def per_kind(kinds, actual, pred):
    g = defaultdict(lambda: ([], []))
    for k, a, p in zip(kinds, actual, pred):
        g[k][0].append(a)
        g[k][1].append(p)
    out = {k: errors(a, p) for k, (a, p) in sorted(g.items())}
    out["all"] = errors(actual, pred)
    return out


def xgb_run(method, names, Xtr, ytr, Xva, yva, Xte, args, threads=1):
    dtr = xgb.DMatrix(Xtr, label=np.log1p(np.maximum(ytr, 0)), missing=math.nan, feature_names=names)
    dva = xgb.DMatrix(Xva, label=np.log1p(np.maximum(yva, 0)), missing=math.nan, feature_names=names)
    params = {
        "objective": "reg:squarederror",
        "tree_method": method,
        "max_depth": args.depth,
        "eta": args.eta,
        "nthread": threads,
        "seed": args.seed,
        "min_child_weight": args.min_leaf,
        "subsample": args.subsample,
        "lambda": args.lambda_,
        "max_bin": args.bins or 256,
        "base_score": float(np.mean(np.log1p(np.maximum(ytr, 0)))),
    }
    evals = [(dva, "valid")] if len(yva) else []
    t0 = time.perf_counter()
    booster = xgb.train(
        params,
        dtr,
        num_boost_round=args.trees,
        evals=evals,
        early_stopping_rounds=args.patience if evals else None,
        verbose_eval=False,
    )
    secs = time.perf_counter() - t0
    best = booster.best_iteration + 1 if evals else args.trees
    pred = booster.predict(xgb.DMatrix(Xte, missing=math.nan, feature_names=names), iteration_range=(0, best))
    return secs, best, np.maximum(np.expm1(pred), 0.0)


def main():
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--herd", default=os.path.join(ROOT, "target/release/herd"))
    ap.add_argument("--train", nargs="*", default=[])
    ap.add_argument("--test", nargs="*", default=[])
    ap.add_argument("--synth", action="store_true", help="generate synthetic runs first")
    ap.add_argument("--synth-runs", type=int, default=8)
    ap.add_argument("--synth-test-runs", type=int, default=3)
    ap.add_argument("--synth-hosts", type=int, default=4)
    ap.add_argument("--synth-containers", type=int, default=24)
    ap.add_argument("--synth-seconds", type=int, default=600)
    ap.add_argument("--trees", type=int, default=500)
    ap.add_argument("--depth", type=int, default=6)
    ap.add_argument("--eta", type=float, default=0.1)
    ap.add_argument("--min-leaf", type=int, default=5)
    ap.add_argument("--patience", type=int, default=30)
    ap.add_argument("--bins", type=int, default=0,
                    help="bins per feature: herd hist and xgboost max_bin (0: 256); gbdt binning (0: off)")
    ap.add_argument("--lambda", dest="lambda_", type=float, default=1.0, help="L2 on leaves (not gbdt)")
    ap.add_argument("--subsample", type=float, default=1.0, help="rows per tree, every learner")
    ap.add_argument("--threads", type=int, default=0, help="also run herd hist and xgboost hist on N threads")
    ap.add_argument("--repeat", type=int, default=3, help="runs per hist learner; the fastest time counts")
    ap.add_argument("--gbdt", action="store_true", help="also the gbdt crate's learner (slow; one run)")
    ap.add_argument("--exact", action="store_true", help="also xgboost exact (slow)")
    ap.add_argument("--for-placement", action="store_true",
                    help="both learners without the container's achieved-rate features")
    ap.add_argument("--valid-fraction", type=float, default=0.25)
    ap.add_argument("--seed", type=int, default=1)
    ap.add_argument("--window", type=float, default=5.0)
    ap.add_argument("--json", action="store_true")
    args = ap.parse_args()
    if not os.access(args.herd, os.X_OK):
        sys.exit(f"forecast_xgb: no herd binary at {args.herd}: cargo build --release -p herd")

    work = tempfile.mkdtemp(prefix="herd-forecast-bench-")
    if args.synth:
        common = ["--hosts", str(args.synth_hosts), "--containers", str(args.synth_containers),
                  "--seconds", str(args.synth_seconds)]
        herd(["forecast", "synth", "--out", f"{work}/train", "--runs", str(args.synth_runs),
              "--seed", str(args.seed), *common], args.herd)
        herd(["forecast", "synth", "--out", f"{work}/test", "--runs", str(args.synth_test_runs),
              "--seed", str(args.seed + 1000), *common], args.herd)
        args.train, args.test = [f"{work}/train"], [f"{work}/test"]
    if not args.train or not args.test:
        sys.exit("forecast_xgb: give --synth, or --train DIR... and --test DIR...")

    data = lambda dirs: [a for d in dirs for a in ("--data", d)]
    win = ["--window", str(args.window)]
    herd(["forecast", "export", *data(args.train), *win, "--out", f"{work}/train.csv",
          "--valid-fraction", str(args.valid_fraction), "--seed", str(args.seed)], args.herd)
    herd(["forecast", "export", *data(args.test), *win, "--out", f"{work}/test.csv",
          "--valid-fraction", "0"], args.herd)

    def herd_train(learner, threads=1):
        tr = json.loads(herd(["forecast", "train", *data(args.train), *win, "--out", f"{work}/{learner}.json",
                              "--learner", learner, "--threads", str(threads),
                              "--trees", str(args.trees), "--depth", str(args.depth), "--eta", str(args.eta),
                              "--min-leaf", str(args.min_leaf), "--patience", str(args.patience),
                              "--bins", str(args.bins), "--lambda", str(args.lambda_),
                              "--valid-fraction", str(args.valid_fraction),
                              "--subsample", str(args.subsample), "--seed", str(args.seed),
                              *(["--for-placement"] if args.for_placement else []), "--json"], args.herd))
        ev = json.loads(herd(["forecast", "eval", "--model", f"{work}/{learner}.json", *data(args.test),
                              "--plot", f"{work}/{learner}.svg", "--json"], args.herd))
        g = {k: (e["mae"], e["mape"]) for k, e in ev["report"]["per_kind"].items()}
        g["all"] = (ev["report"]["overall"]["mae"], ev["report"]["overall"]["mape"])
        return {"train_seconds": tr["train_seconds"], "trees": tr["trees_kept"], "errors": g}

    names, X, y, kinds, split = read_export(f"{work}/train.csv")
    _, Xte, yte, kte, _ = read_export(f"{work}/test.csv")
    tr_mask = np.array([s == "train" for s in split])
    if args.for_placement:
        keep = [i for i, n in enumerate(names) if n not in ACHIEVED]
        names, X, Xte = [names[i] for i in keep], X[:, keep], Xte[:, keep]

    def xgb_result(method, threads=1):
        secs, best, pred = xgb_run(method, names, X[tr_mask], y[tr_mask], X[~tr_mask], y[~tr_mask], Xte, args,
                                   threads)
        return {"train_seconds": secs, "trees": best, "errors": per_kind(kte, list(yte), list(pred))}

    # The machine may be shared: each learner runs --repeat times, interleaved,
    # and keeps its fastest time (errors are the same each time: fixed seeds).
    runs = {"herd-hist": lambda: herd_train("hist"), "xgboost-hist": lambda: xgb_result("hist")}
    if args.threads > 1:
        runs[f"herd-hist-{args.threads}t"] = lambda: herd_train("hist", args.threads)
        runs[f"xgboost-hist-{args.threads}t"] = lambda: xgb_result("hist", args.threads)
    results = {}
    for _ in range(max(args.repeat, 1)):
        for name, run in runs.items():
            r = run()
            if name in results:
                r["train_seconds"] = min(r["train_seconds"], results[name]["train_seconds"])
            results[name] = r
    if args.gbdt:
        results["herd-gbdt"] = herd_train("gbdt")
    if args.exact:
        results["xgboost-exact"] = xgb_result("exact")
    info = {"train_rows": int(tr_mask.sum()), "valid_rows": int((~tr_mask).sum()), "test_rows": len(yte),
            "features": len(names), "xgboost": xgb.__version__, "work": work}
    if args.json:
        print(json.dumps({"info": info, "results": results}, indent=2))
        return
    print(f"rows: train {info['train_rows']}, valid (early stopping) {info['valid_rows']}, "
          f"test {info['test_rows']}; {info['features']} features; xgboost {info['xgboost']}; "
          f"load {os.getloadavg()[0]:.1f} on {os.cpu_count()} cores")
    print(f"params: max {args.trees} trees, depth {args.depth}, eta {args.eta}, min leaf {args.min_leaf}, "
          f"lambda {args.lambda_}, bins {args.bins or 256}, patience {args.patience}, subsample {args.subsample}"
          + (", placement features" if args.for_placement else ""))
    kinds_all = sorted(set(results["herd-hist"]["errors"]) - {"all"}) + ["all"]
    cols = list(results)
    w = max(16, max(len(c) for c in cols) + 2)
    row = lambda label, f: print(f"{label:<20}" + "".join(f"{f(results[c]):>{w}}" for c in cols))
    print(f"\n{'test runs':<20}" + "".join(f"{c:>{w}}" for c in cols))
    for k in kinds_all:
        row(f"MAPE % {k}", lambda r: f"{r['errors'].get(k, (math.nan, math.nan))[1]:.2f}")
    row("MAE all", lambda r: f"{r['errors']['all'][0]:.2f}")
    base = results["xgboost-hist"]
    row("MAE / xgb-hist", lambda r: f"{r['errors']['all'][0] / base['errors']['all'][0]:.3f}")
    row("MAPE / xgb-hist", lambda r: f"{r['errors']['all'][1] / base['errors']['all'][1]:.3f}")
    row("trees kept", lambda r: f"{r['trees']}")
    row("training s (best)", lambda r: f"{r['train_seconds']:.3f}")
    row("time / xgb-hist", lambda r: f"{r['train_seconds'] / base['train_seconds']:.2f}")
    print(f"\nfiles in {work}")


if __name__ == "__main__":
    main()
