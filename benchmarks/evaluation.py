"""Benchmark of the evaluation layer, printed side by side with the references.

1. Harrell's C on n = 100,000: hccstrat vs lifelines (same value; time).
2. 1,000 bootstrap resamples of Harrell's C on n = 10,000: hccstrat (vectorised) vs
   lifelines in a loop (timed on a few resamples and extrapolated).
3. The full validation report on n = 10,000 (5 centres; per-centre and pooled
   performance with 1,000 resamples each, cluster bootstrap, meta-analysis, subgroups,
   HTML with figures). Goal: <= 60 s on 2 cores.

Usage: ``python benchmarks/evaluation.py [--quick]``
"""

from __future__ import annotations

import argparse
import tempfile
import time
from pathlib import Path

import numpy as np
import pandas as pd


def _data(n: int, seed: int = 0):
    from hccstrat.survival import make_surv

    rng = np.random.default_rng(seed)
    x = rng.normal(size=n)
    lam = 0.02 * np.exp(x)
    t = rng.exponential(1 / lam)
    c = rng.uniform(0, 60, n)
    return make_surv(t <= c, np.minimum(t, c)), x, 1 - np.exp(-lam * 24), rng


def _best(fn, repeat: int = 2):
    best, val = np.inf, None
    for _ in range(repeat):
        t0 = time.perf_counter()
        val = fn()
        best = min(best, time.perf_counter() - t0)
    return val, best


def main() -> None:
    ap = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    ap.add_argument("--quick", action="store_true", help="small sizes (smoke test in seconds)")
    args = ap.parse_args()
    from lifelines.utils import concordance_index

    from hccstrat.evaluation.bootstrap import default_metrics, resample_weights
    from hccstrat.evaluation.validation import StageSpec, ValidationPlan, run_plan
    from hccstrat.reports.validation_report import build_validation_report

    n_c = 10_000 if args.quick else 100_000
    n_r = 2_000 if args.quick else 10_000
    n_boot = 100 if args.quick else 1_000

    y, x, _, _ = _data(n_c)
    ours, t_ours = _best(lambda: default_metrics()["harrell_c"](y, x, np.ones((1, n_c)))[0])
    ref, t_ref = _best(lambda: concordance_index(y["time"], -x, y["event"]))
    print(f"\n1. Harrell's C, n = {n_c:,}")
    print(f"   {'':12s}{'value':>20s}{'time (s)':>12s}")
    print(f"   {'hccstrat':12s}{ours:20.15f}{t_ours:12.3f}")
    print(f"   {'lifelines':12s}{ref:20.15f}{t_ref:12.3f}")
    print(f"   identical: {abs(ours - ref) < 1e-12}; speed-up x{t_ref / t_ours:.1f}")

    y, x, p, rng = _data(n_r, 1)
    t0 = time.perf_counter()
    cs = np.concatenate(
        [default_metrics()["harrell_c"](y, p, w) for w in resample_weights(n_r, n_boot, seed=0)]
    )
    t_vec = time.perf_counter() - t0
    k = 10 if args.quick else 20
    t0 = time.perf_counter()
    for _ in range(k):
        idx = rng.integers(0, n_r, n_r)
        concordance_index(y["time"][idx], -p[idx], y["event"][idx])
    t_ll = (time.perf_counter() - t0) / k * n_boot
    print(f"\n2. {n_boot:,} bootstrap resamples of Harrell's C, n = {n_r:,}")
    print(f"   hccstrat (vectorised weights): {t_vec:7.2f} s  (SE {cs.std(ddof=1):.4f})")
    print(f"   lifelines loop (extrapolated from {k}): {t_ll:7.2f} s")

    centre = rng.choice([f"C{i}" for i in range(1, 6)], n_r)
    frame = pd.DataFrame(
        {
            "time": y["time"],
            "event": y["event"],
            "risk": p,
            "centre": centre,
            "cohort": "large",
            "sex": rng.choice(["M", "F"], n_r, p=[0.8, 0.2]),
            "age": rng.normal(56, 10, n_r),
            "aetiology": rng.choice(["HBV", "HCV", "alcohol"], n_r),
        }
    )
    plan = ValidationPlan(
        name="benchmark",
        n_bootstrap=n_boot,
        subgroups=["sex", "age_band", "aetiology"],
        stages=[StageSpec("large", "large_external")],
    )
    t0 = time.perf_counter()
    res = run_plan(plan, frame)
    t_run = time.perf_counter() - t0
    with tempfile.TemporaryDirectory() as tmp:
        t0 = time.perf_counter()
        build_validation_report(res, Path(tmp) / "report.html")
        t_html = time.perf_counter() - t0
    err = [s.error for s in res.stages if s.error]
    print(
        f"\n3. Full validation report, n = {n_r:,}, {n_boot:,} resamples per estimate "
        "(5 centres + pooled cluster bootstrap, meta-analysis, subgroups, HTML)"
    )
    print(
        f"   analysis {t_run:6.1f} s + HTML {t_html:5.1f} s = {t_run + t_html:6.1f} s   "
        f"(goal <= 60 s on 2 cores){'  ERRORS: ' + str(err) if err else ''}"
    )
    pooled = res.stages[0].performance["pooled"].metrics["harrell_c"]
    print(
        f"   pooled C = {pooled['estimate']:.3f} "
        f"(95% CI {pooled['ci'][0]:.3f}-{pooled['ci'][1]:.3f})"
    )


if __name__ == "__main__":
    main()
