"""Demo stage: clinical scores, Kaplan–Meier curves and a clinical Cox baseline.

Uses lifelines (Kaplan–Meier, Cox) on the canonical table of the synthetic cohort:
scores from :mod:`hccstrat.clinical.scores`, RFS from :mod:`hccstrat.survival`.
The Cox model is fitted on a random 70 % and evaluated on the other 30 %
(C-index with a 1,000-resample bootstrap CI, calibration at 24 months).
"""

from __future__ import annotations

import warnings
from pathlib import Path

import numpy as np
import pandas as pd

from hccstrat.clinical.design import clinical_design_matrix
from hccstrat.reports.html import Section, figure_to_html, table_to_html

__all__ = ["demo_stage"]

HORIZON = 24.0


def _km_plot(groups: pd.Series, y: np.ndarray, title: str):
    import matplotlib.pyplot as plt
    from lifelines import KaplanMeierFitter
    from lifelines.statistics import multivariate_logrank_test

    fig, ax = plt.subplots(figsize=(6.2, 4.2))
    g = groups.astype("string").fillna("missing")
    for level in sorted(g.unique()):
        m = (g == level).to_numpy()
        if m.sum() < 5:
            continue
        kmf = KaplanMeierFitter(label=f"{level} (n={m.sum()})")
        kmf.fit(y["time"][m], y["event"][m])
        kmf.plot_survival_function(ax=ax, ci_show=False)
    test = multivariate_logrank_test(y["time"], g.to_numpy(), y["event"])
    ax.set(
        xlabel="months after resection",
        ylabel="recurrence-free survival",
        title=f"{title} (log-rank p={test.p_value:.2g})",
        ylim=(0, 1.02),
    )
    ax.axvline(HORIZON, color="grey", lw=0.8, ls=":")
    return fig


def demo_stage(cohort, out_dir: Path, *, seed: int, progress) -> list[Section]:
    """Scores, KM by BCLC and ERASL group, Cox baseline with C-index and calibration."""
    from lifelines import CoxPHFitter
    from lifelines.exceptions import ConvergenceWarning

    from hccstrat.clinical.scores import compute_scores
    from hccstrat.evaluation import bootstrap, calibration_table, harrell_c
    from hccstrat.reports.plots import plot_calibration
    from hccstrat.survival import endpoint

    clinical = cohort.clinical.reset_index(drop=True)
    progress("computing clinical scores")
    scores = compute_scores(clinical)
    y = endpoint(clinical, "rfs")
    score_summary = pd.DataFrame(
        {
            "score": ["Child-Pugh class", "ALBI grade", "BCLC stage", "ERASL-pre group"],
            "distribution": [
                _dist(scores["child_pugh_class"]),
                _dist(scores["albi_grade"]),
                _dist(scores["bclc_stage"]),
                _dist(scores["erasl_pre_group"]),
            ],
            "missing": [
                int(scores[c].isna().sum())
                for c in ("child_pugh_class", "albi_grade", "bclc_stage", "erasl_pre_group")
            ],
        }
    )

    progress("Kaplan–Meier curves")
    fig_bclc = _km_plot(scores["bclc_stage"], y, "RFS by BCLC stage")
    fig_erasl = _km_plot(scores["erasl_pre_group"], y, "RFS by ERASL-pre risk group")

    progress("fitting the clinical Cox baseline")
    X = clinical_design_matrix(clinical, scores)
    rng = np.random.default_rng(seed)
    test = rng.random(len(X)) < 0.3
    train_df = X[~test].assign(time=y["time"][~test], event=y["event"][~test])
    with warnings.catch_warnings():  # rare binary columns: lifelines warns, the
        # penalised fit is still fine and its metrics are reported below
        warnings.simplefilter("ignore", ConvergenceWarning)
        cph = CoxPHFitter(penalizer=0.01).fit(train_df, "time", "event")
    yt = y[test]
    n = int(test.sum())
    pred = 1 - cph.predict_survival_function(X[test], times=[HORIZON]).to_numpy().ravel()
    progress("bootstrap CIs (1,000 resamples)")
    boot = bootstrap(yt, pred, horizon=HORIZON, n_resamples=1000, seed=seed)
    c = boot.estimate["harrell_c"]
    lo, hi = boot.ci("harrell_c")
    oracle_c = None
    if "true_lp" in getattr(cohort, "oracle", pd.DataFrame()).columns:
        lp = cohort.oracle.set_index("patient_id").loc[clinical["patient_id"], "true_lp"].to_numpy()
        oracle_c = harrell_c(yt, lp[test])

    progress("calibration at 24 months")
    calib = calibration_table(yt, pred, HORIZON, n_groups=5)
    ax = plot_calibration({"table": calib.to_dict("records")}, label="Cox (quintiles)")
    ax.set_title("Calibration at 24 months (test set)")
    fig_cal = ax.figure
    metrics = boot.to_frame()

    coef = (
        cph.summary[["coef", "exp(coef)", "p"]]
        .reset_index()
        .rename(columns={"covariate": "variable"})
    )
    numbers = {
        "c_index_test": float(c),
        "c_index_ci95": [float(lo), float(hi)],
        "c_index_oracle_test": None if oracle_c is None else float(oracle_c),
        "n_train": int((~test).sum()),
        "n_test": n,
        "rfs_events": int(y["event"].sum()),
    }
    oracle_txt = (
        ""
        if oracle_c is None
        else f" The oracle (true) risk reaches {oracle_c:.3f} on the same patients."
    )
    body = (
        table_to_html(score_summary, caption="Clinical scores on the cohort")
        + figure_to_html(fig_bclc, alt="Kaplan–Meier RFS by BCLC stage")
        + figure_to_html(fig_erasl, alt="Kaplan–Meier RFS by ERASL-pre risk group")
        + "<p>Clinical Cox baseline (lifelines, ridge penalty 0.01) fitted on "
        + f"{numbers['n_train']} "
        f"patients: test C-index <strong>{c:.3f}</strong> (95 % bootstrap CI {lo:.3f}–{hi:.3f}, "
        f"1,000 resamples, n={n}).{oracle_txt}</p>"
        + table_to_html(coef, caption="Cox coefficients (training set)")
        + table_to_html(metrics, caption="Test-set metrics with 95 % bootstrap CIs (24 months)")
        + table_to_html(calib, caption="Calibration at 24 months by predicted-risk quintile")
        + figure_to_html(fig_cal, alt="Calibration of the clinical Cox model at 24 months")
    )
    return [Section("Clinical scores and Cox baseline", body, numbers)]


def _dist(s: pd.Series) -> str:
    counts = s.astype("string").value_counts(dropna=True).sort_index()
    return ", ".join(f"{k}: {v}" for k, v in counts.items())
