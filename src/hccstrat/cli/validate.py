"""``hccstrat validate`` and ``hccstrat report``: staged validation from a YAML plan and
HTML reports from saved results; plus the demo's validation stage.
"""

from __future__ import annotations

import logging
import warnings
from pathlib import Path

import typer

from hccstrat.cli import app

__all__ = ["demo_stage", "report", "validate"]

log = logging.getLogger(__name__)


@app.command("validate")
def validate(
    plan: Path = typer.Option(
        ...,
        "--plan",
        exists=True,
        dir_okay=False,
        help="YAML validation plan (see hccstrat.evaluation.validation).",
    ),
    out: Path = typer.Option(Path("out/validation"), "--out", help="Output folder."),
    n_bootstrap: int = typer.Option(
        None, "--n-bootstrap", min=0, help="Override the plan's bootstrap resamples."
    ),
    seed: int = typer.Option(None, "--seed", help="Override the plan's seed."),
) -> None:
    """Run a staged validation plan on a predictions table; write results.json and report.html."""
    from hccstrat.evaluation.validation import ValidationPlan, run_plan
    from hccstrat.exceptions import ConfigError
    from hccstrat.reports.validation_report import build_validation_report

    if out.exists() and not out.is_dir():
        raise ConfigError(f"--out '{out}' is a file", hint="give a folder path")
    p = ValidationPlan.from_yaml(plan)
    if n_bootstrap is not None:
        p.n_bootstrap = n_bootstrap
    if seed is not None:
        p.seed = seed
    res = run_plan(p, progress=lambda s: typer.echo(s, err=True))
    res.metadata.update({"plan": str(plan), "data_source": p.data or ""})
    res.save_json(out / "results.json")  # atomic writes create the folder
    html = build_validation_report(res, out / "report.html", title=f"Validation: {p.name}")
    failed = [s.name for s in res.stages if s.error]
    typer.echo(f"wrote {html} and {out / 'results.json'}")
    if failed:
        typer.echo(f"stages failed: {', '.join(failed)} (see the report)", err=True)
        raise typer.Exit(1)


@app.command("report")
def report(
    results: Path = typer.Option(
        ...,
        "--results",
        exists=True,
        dir_okay=False,
        help="results.json written by 'hccstrat validate'.",
    ),
    out: Path = typer.Option(
        Path("out/validation/report.html"), "--out", help="HTML file to write."
    ),
    title: str = typer.Option("Validation report", "--title"),
    pdf: bool = typer.Option(False, "--pdf", help="Also print a PDF copy (needs Chromium)."),
) -> None:
    """Render the HTML report (and its JSON of numbers) from saved validation results."""
    import json

    from hccstrat.cli._paths import refuse_overwriting_inputs
    from hccstrat.exceptions import InputFileError
    from hccstrat.reports.validation_report import build_validation_report

    refuse_overwriting_inputs(
        {"--out": out, "the JSON of numbers beside --out": out.with_suffix(".json")},
        {"--results": results},
    )
    try:
        d = json.loads(results.read_text(encoding="utf-8"))
        stages = d.get("stages") if isinstance(d, dict) else None
        if not isinstance(stages, list):
            raise ValueError("it holds no list of 'stages'")
        for i, st in enumerate(stages, 1):
            lacking = {"name", "kind", "performance"} - set(st if isinstance(st, dict) else ())
            if lacking or not isinstance(st["performance"], dict):
                raise ValueError(f"stage {i} lacks {sorted(lacking) or ['a performance mapping']}")
    except (OSError, ValueError, KeyError, TypeError) as err:
        raise InputFileError(
            f"cannot read validation results {results}: {err}",
            hint="pass the results.json written by 'hccstrat validate'",
        ) from err
    html = build_validation_report(d, out, title=title)
    typer.echo(f"wrote {html}")
    if pdf:
        from hccstrat.reports.pdf import html_to_pdf

        typer.echo(f"wrote {html_to_pdf(html)}")


_FEATURES = (
    "age",
    "afp_ng_ml",
    "tumour_size_cm",
    "tumour_number",
    "mvi",
    "satellite_nodules",
    "albumin_g_l",
    "bilirubin_umol_l",
    "macrovascular_invasion",
)


def _design(clinical):
    import numpy as np
    import pandas as pd

    X = pd.DataFrame(index=clinical.index)
    for c in _FEATURES:
        if c in clinical:
            v = pd.to_numeric(clinical[c].astype("float64", errors="ignore"), errors="coerce")
            if c in ("afp_ng_ml", "bilirubin_umol_l"):
                v = np.log1p(v)
            X[c] = v.fillna(v.median() if v.notna().any() else 0.0)
    return X.loc[:, X.std() > 0]


def demo_stage(cohort, out_dir: Path, *, seed: int, progress) -> list:
    """Demo: clinical Cox model, internal / per-centre external / recalibrated validation
    and the drift timeline of a synthetic prospective phase.

    Development centres (the larger half) are split 70/30 into development and internal
    validation; the other centres give external validation (operated before mid-study)
    and a prospective phase (operated after), in which a simulated clinician decides
    "high risk" from the oracle risk plus noise.
    """
    import numpy as np
    import pandas as pd
    from lifelines import CoxPHFitter
    from lifelines.exceptions import ConvergenceWarning

    from hccstrat.clinical.scores import compute_scores
    from hccstrat.evaluation.validation import StageSpec, ValidationPlan, run_plan, split_internal
    from hccstrat.reports.html import Section
    from hccstrat.reports.validation_report import validation_sections
    from hccstrat.survival import endpoint

    progress("preparing cohorts")
    clin = cohort.clinical.reset_index(drop=True)
    y = endpoint(clin, "rfs")
    X = _design(clin)
    rng = np.random.default_rng(seed)
    sizes = clin["centre"].value_counts()
    dev_centres = set(sizes.index[: max(1, len(sizes) // 2)])
    in_dev = clin["centre"].isin(dev_centres).to_numpy()
    dates = pd.to_datetime(clin["surgery_date"])
    cut = dates[~in_dev].quantile(0.5) if (~in_dev).any() else dates.max()
    cohort_lab = np.where(in_dev, "development", np.where(dates < cut, "external", "prospective"))
    dev_idx = np.flatnonzero(in_dev)
    internal = split_internal(dev_idx.size, test_size=0.3, seed=seed, stratify=y["event"][dev_idx])
    cohort_lab[dev_idx[internal]] = "internal"
    train = cohort_lab == "development"
    progress("fitting the clinical Cox model")
    frame = X[train].assign(_T=y["time"][train], _E=y["event"][train])
    with warnings.catch_warnings():  # rare binary columns: lifelines warns, the
        # penalised fit is still fine and its metrics are reported below
        warnings.simplefilter("ignore", ConvergenceWarning)
        cph = CoxPHFitter(penalizer=0.05).fit(frame, "_T", "_E")
    surv24 = cph.predict_survival_function(X, times=[24.0]).to_numpy()[0]
    oracle = cohort.oracle.set_index("patient_id").reindex(clin["patient_id"])
    oracle_risk = 1 - np.exp(-np.exp(oracle["true_lp"].to_numpy(float)))
    clinician_high = (oracle_risk + rng.normal(0, 0.15, len(clin))) >= 0.5
    # treatment rules of the clinical scores, drawn as 0/1 strategies in the decision curve
    scores = compute_scores(clin)
    bclc_rule = scores["bclc_stage"].astype("string").isin(["A", "B", "C", "D"]).to_numpy(float)
    erasl_rule = scores["erasl_pre_group"].astype("string").eq("high").to_numpy(float)
    data = pd.DataFrame(
        {
            "time": y["time"],
            "event": y["event"],
            "risk": 1 - surv24,
            "oracle": oracle_risk,
            "centre": clin["centre"],
            "cohort": cohort_lab,
            "surgery_date": dates,
            "sex": clin["sex"],
            "age": clin["age"],
            "aetiology": clin["aetiology"],
            "afp_ng_ml": clin["afp_ng_ml"],
            "tumour_size_cm": clin["tumour_size_cm"],
            "clinician_high": clinician_high,
            "bclc_stage": scores["bclc_stage"].astype("string").fillna("missing").to_numpy(),
            "BCLC A or worse": bclc_rule,
            "ERASL-pre high": erasl_rule,
        }
    )
    plan = ValidationPlan(
        name="demo (clinical Cox, RFS at 24 months)",
        n_bootstrap=200,
        seed=seed,
        subgroups=["sex", "age_band", "aetiology", "centre", "bclc_stage"],
        comparators=["oracle", "BCLC A or worse", "ERASL-pre high"],
        stages=[
            StageSpec("development", "development"),
            StageSpec("internal", "internal"),
            StageSpec("external", "external", min_centre_n=20),
            StageSpec("recalibration", "recalibration", cohort="external"),
            StageSpec(
                "prospective",
                "prospective",
                window_months=6,
                step_months=2,
                clinician_column="clinician_high",
                drift_columns=["age", "afp_ng_ml", "tumour_size_cm", "sex", "aetiology"],
            ),
        ],
    )
    res = run_plan(plan, data, progress=progress)
    res.metadata.update(
        {
            "data_source": "synthetic cohort (hccstrat.synthetic)",
            "model": "Cox PH (lifelines, ridge 0.05) on " + ", ".join(X.columns),
            "centres": f"{sizes.size} centres; development: {sorted(dev_centres)}",
            "predictors": ", ".join(X.columns),
            "date_range": f"{dates.min():%Y-%m} to {dates.max():%Y-%m}",
        }
    )
    progress("writing validation results")
    out_dir = Path(out_dir)
    out_dir.mkdir(parents=True, exist_ok=True)
    res.save_json(out_dir / "validation_results.json")
    progress("drawing validation figures")
    sections = validation_sections(res)
    for s in sections:
        s.title = f"Validation — {s.title}"
    counts = pd.Series(cohort_lab).value_counts().to_dict()
    intro = Section(
        "Validation — design",
        "<p>Clinical Cox model for RFS, fitted on the development split of the larger "
        "centres; validated internally, per external centre (with random-effects "
        "meta-analysis), after recalibration, and in a prospective phase with drift "
        "monitoring. 200 bootstrap resamples per estimate.</p>",
        {"cohort_sizes": counts},
    )
    return [intro, *sections]
