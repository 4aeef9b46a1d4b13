"""Benchmark: synthetic cohort generation and clinical score computation.

Prints patients/s at N=100,000 (goal: generation in under 10 s) for
``generate_cohort`` and ``compute_scores``, beside a reference in the same run:
a per-row Python implementation of Child-Pugh + ALBI (what a naive loop costs).

    .venv/bin/python benchmarks/cohort.py [--n 100000] [--quick]
"""

from __future__ import annotations

import argparse
import logging
import math
import time


def _naive_child_pugh_albi(rows) -> list[tuple[int, float]]:
    """Reference: row-by-row Child-Pugh points and ALBI score."""
    out = []
    for r in rows:
        bili, alb, inr = r["bilirubin_umol_l"], r["albumin_g_l"], r["inr"]
        pts = 1 if bili < 34 else 2 if bili <= 50 else 3
        pts += 1 if alb > 35 else 2 if alb >= 28 else 3
        pts += 1 if inr < 1.7 else 2 if inr <= 2.3 else 3
        pts += {"none": 1, "mild": 2}.get(r["ascites"], 3)
        pts += {"none": 1, "grade_1_2": 2}.get(r["encephalopathy"], 3)
        out.append((pts, math.log10(bili) * 0.66 - 0.085 * alb))
    return out


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--n", type=int, default=100_000)
    parser.add_argument("--quick", action="store_true", help="N=10,000 smoke run")
    args = parser.parse_args()
    n = 10_000 if args.quick else args.n
    logging.disable(logging.WARNING)  # ERASL provisional-coefficient warning

    from hccstrat.clinical.scores import compute_scores
    from hccstrat.synthetic.cohort import generate_cohort

    t0 = time.perf_counter()
    cohort = generate_cohort(n_patients=n, n_centres=10, seed=0)
    t_gen = time.perf_counter() - t0

    t0 = time.perf_counter()
    scores = compute_scores(cohort.clinical)
    t_scores = time.perf_counter() - t0

    cols = ["bilirubin_umol_l", "albumin_g_l", "inr", "ascites", "encephalopathy"]
    rows = cohort.clinical[cols].astype(object).to_dict("records")
    t0 = time.perf_counter()
    ref = _naive_child_pugh_albi(rows)
    t_ref = time.perf_counter() - t0
    points = scores["child_pugh_points"]
    agree = sum(int(p) == int(s) for (p, _), s in zip(ref, points, strict=True))

    print(f"N = {n:,} patients, {cohort.clinical.shape[1]} clinical columns")
    print(f"{'step':<44}{'seconds':>10}{'patients/s':>14}")
    for label, secs in (
        ("generate_cohort (clinical+latent+oracle)", t_gen),
        ("compute_scores (CP, ALBI, BCLC, TNM, ERASL)", t_scores),
        ("reference: per-row loop, Child-Pugh + ALBI", t_ref),
    ):
        print(f"{label:<44}{secs:>10.2f}{n / secs:>14,.0f}")
    print(f"goal: generation of 100,000 in < 10 s -> {'met' if n / t_gen >= 10_000 else 'NOT met'}")
    print(f"Child-Pugh points agree with the reference loop on {agree:,}/{n:,} patients")


if __name__ == "__main__":
    main()
