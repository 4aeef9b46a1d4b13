"""Demo stage of the models: PRE, POST and the benefit model on the synthetic cohort.

Called by :func:`hccstrat.cli.models.demo_stage`. Image features come from
``cohort.image_features`` (mapping prefix → per-patient table) when the image
stages provided them; otherwise from **proxies** of the latent traits (latent value
+ noise), clearly labelled in the report, standing in for the MRI/WSI pipelines.
"""

from __future__ import annotations

import html
import logging
import warnings
from pathlib import Path

import numpy as np
import pandas as pd

from hccstrat.synthetic.image_proxies import make_image_feature_proxies

__all__ = ["run_demo"]

log = logging.getLogger(__name__)


def _split(X: pd.DataFrame, seed: int) -> tuple[np.ndarray, str]:
    centres = sorted(X["centre"].astype(str).unique())
    if len(centres) >= 3:
        held = centres[-1]
        return (X["centre"].astype(str) == held).to_numpy(), f"held-out centre {held}"
    rng = np.random.default_rng(seed)
    return rng.random(len(X)) < 0.3, "random 30 % of patients"


def run_demo(cohort, out_dir: Path, *, seed: int, progress) -> list:
    """Train and evaluate the three models; save them; return report sections."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    from hccstrat.models import (
        ARMS,
        CoxBaseline,
        PostModel,
        PreModel,
        TreatmentBenefitModel,
        join_feature_tables,
        save_model,
        top_factors,
    )
    from hccstrat.models._base import concordance
    from hccstrat.reports.html import Section, figure_to_html, table_to_html
    from hccstrat.survival import endpoint

    tables = getattr(cohort, "image_features", None)
    proxy = tables is None
    if proxy:
        tables = make_image_feature_proxies(cohort.latent, seed)
    X = join_feature_tables(cohort.clinical, tables)
    test, split_label = _split(X, seed)
    train = ~test
    y = endpoint(X, "aggressive")
    oracle = getattr(cohort, "oracle", None)
    rows, models = [], {}
    for name, model in (
        ("Clinical-only Cox (baseline)", CoxBaseline()),
        ("PRE (clinical + MRI)", PreModel(random_state=seed)),
        ("POST (+ pathology + WSI)", PostModel(random_state=seed)),
    ):
        progress(f"training {name}")
        model.fit(X[train], y[train])
        models[name] = model
        rows.append(
            {
                "model": name,
                "test C-index": model.score(X[test], y[test]),
                "inputs": model.lacking_.summary(),
            }
        )
    if oracle is not None and "true_p_aggressive24" in oracle:
        rows.append(
            {
                "model": "Oracle (true risk)",
                "test C-index": concordance(
                    y[test], oracle["true_p_aggressive24"].to_numpy()[test]
                ),
                "inputs": "generator truth",
            }
        )
    perf = pd.DataFrame(rows)
    pre = models["PRE (clinical + MRI)"]
    oc = pre.operating_characteristics(X[test], y[test], thresholds=[0.3, 0.5, 0.7])
    factors = top_factors(pre, X[test].head(3), n_top=3)
    out_dir = Path(out_dir) / "models"
    for key, model in (("pre", pre), ("post", models["POST (+ pathology + WSI)"])):
        save_model(
            model,
            out_dir / f"{key}.hccmodel",
            name=f"hccstrat-{key}-demo",
            intended_use="demonstration on synthetic data only",
            metrics={"test_c_index": float(model.score(X[test], y[test]))},
        )
    note = (
        (
            "<p><strong>Image features are PROXIES</strong> computed from the generator's "
            "latent traits "
            "plus noise, standing in for the MRI and WSI pipelines.</p>"
        )
        if proxy
        else ""
    )
    fig, ax = plt.subplots(figsize=(5, 3))
    ax.barh(perf["model"], perf["test C-index"], color="#4477aa")
    ax.set_xlim(0.5, 1.0)
    ax.set_xlabel(f"Harrell's C, aggressive recurrence by 24 months ({split_label})")
    body = (
        note + f"<p>Trained on {int(train.sum())} patients, tested on {int(test.sum())} "
        f"({html.escape(split_label)}).</p>"
        + table_to_html(perf, caption="Discrimination")
        + figure_to_html(fig, alt="C-index of each model on the test patients")
        + table_to_html(
            oc[["threshold", "high_risk_fraction", "sensitivity", "specificity", "ppv", "npv"]],
            caption="PRE score operating characteristics (IPCW)",
        )
        + table_to_html(factors, caption="Top factors of three test patients (PRE)")
    )
    sections = [
        Section(
            "Prediction models: PRE and POST",
            body,
            {
                "c_index": dict(zip(perf["model"], perf["test C-index"], strict=True)),
                "image_features": "proxy" if proxy else "pipeline",
            },
        )
    ]

    progress("training the treatment-benefit model")
    yr = endpoint(X, "rfs")
    keep = X["adjuvant"].notna().to_numpy()
    with warnings.catch_warnings(record=True) as caught:
        warnings.simplefilter("always")
        ben = TreatmentBenefitModel(learner="t", n_bootstrap=5, n_estimators=80, random_state=seed)
        ben.fit(X[train & keep], yr[train & keep], progress=progress)
    pred = ben.predict_benefit(X[test & keep])
    tab = pred.table
    numbers = {
        "abstention_rate": float((~tab["confident"]).mean()),
        "recommended": tab["recommended"].value_counts().to_dict(),
    }
    summary = [
        f"<p>Recommendations on {len(tab)} test patients: "
        + ", ".join(f"{html.escape(str(k))}: {v}" for k, v in numbers["recommended"].items())
        + ".</p>"
    ]
    numbers["default_regimen"] = ben.default_arm_
    summary.append(f"<p>{html.escape(ben.default_arm_reason_)}.</p>")
    if ben.policy_check_error_:
        numbers["policy_check"] = {"error": ben.policy_check_error_, "validated": False}
        summary.append(
            f"<p>Policy check could not run: {html.escape(ben.policy_check_error_)}.</p>"
        )
    if ben.policy_check_ is not None:
        numbers["policy_check"] = ben.policy_check_.to_dict()
        summary.append(
            f"<p>Policy check (training data): {html.escape(ben.policy_check_.summary())}.</p>"
        )
    if oracle is not None and all(f"true_rfs24_{a}" in oracle for a in ARMS):
        T = oracle.loc[test & keep, [f"true_rfs24_{a}" for a in ARMS]].to_numpy()
        pol = tab["policy"].map({a: i for i, a in enumerate(ARMS)}).to_numpy()
        v_model = T[np.arange(len(pol)), pol].mean()
        v_oracle, v_single = T.max(1).mean(), T.mean(0).max()
        share = (
            (v_model - v_single) / (v_oracle - v_single) if v_oracle > v_single else float("nan")
        )
        numbers.update(
            {
                "policy_value": v_model,
                "oracle_value": v_oracle,
                "best_single_value": v_single,
                "share_of_oracle_gain": share,
            }
        )
        summary.append(
            f"<p>Mean true 2-year RFS: model policy {v_model:.3f}, best single regimen "
            f"{v_single:.3f}, oracle {v_oracle:.3f} (share of oracle gain {share:.0%}).</p>"
        )
    fig, ax = plt.subplots(figsize=(5, 3))
    for a, arm in enumerate(ARMS):
        ax.plot(pred.times, pred.curves[0, a], label=arm)
        ax.fill_between(pred.times, pred.curves_lo[0, a], pred.curves_hi[0, a], alpha=0.15)
    ax.set_xlabel("months after resection")
    ax.set_ylabel("RFS")
    ax.legend(fontsize=7)
    warn_html = "".join(f"<li>{html.escape(str(w.message))}</li>" for w in caught)
    body = (
        note
        + "".join(summary)
        + table_to_html(ben.overlap_, caption="Propensity overlap")
        + (f"<p>Overlap warnings:</p><ul>{warn_html}</ul>" if warn_html else "")
        + figure_to_html(fig, alt="Predicted RFS under each regimen for the first test patient")
    )
    sections.append(Section("Treatment-benefit model", body, numbers))
    return sections
