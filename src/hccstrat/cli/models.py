"""CLI for the prediction models: ``hccstrat train pre|post|benefit`` and ``hccstrat predict``.

Wiring (root app, :mod:`hccstrat.cli`): ``app.add_typer(train_app, name="train")``
(``app`` here is the same Typer as ``train_app``, so the module can be listed in
``_GROUPS`` as ``("hccstrat.cli.models", "train")``) and
``app.command("predict")(predict)`` — or call :func:`register` with the root app.
Also holds :func:`demo_stage` for ``hccstrat demo``.
"""

from __future__ import annotations

import logging
from pathlib import Path

import typer

from hccstrat.cli._paths import refuse_overwriting_inputs

__all__ = ["app", "demo_stage", "predict", "register", "train_app"]

log = logging.getLogger(__name__)

train_app = typer.Typer(help="Train PRE, POST or treatment-benefit models.", no_args_is_help=True)
app = train_app

_INTENDED = {
    "pre": "Research use: pre-operative risk of aggressive recurrence within 24 months after "
    "resection of HCC (PRE score); not for clinical decisions outside a trial protocol.",
    "post": "Research use: post-operative risk of aggressive recurrence within 24 months after "
    "resection of HCC (POST score); not for clinical decisions outside a trial protocol.",
    "benefit": "Research use: estimated 2-year RFS under surgery alone, +TACE and +TACE+TKI after "
    "resection of HCC, with abstention; decision support inside a trial protocol only.",
}


def _read_table(path: Path):
    import pandas as pd

    from hccstrat.exceptions import InputFileError
    from hccstrat.io.tables import csv_delimiter

    if not path.is_file():
        raise InputFileError(f"table not found: {path}", hint="check the path")
    suffix = path.suffix.lower()
    try:
        # ids as text: a numeric-looking 00123 keeps its zeros and matches across tables
        if suffix in (".csv", ".txt"):
            return pd.read_csv(path, dtype={"patient_id": str}, sep=csv_delimiter(path))
        if suffix in (".xlsx", ".xls"):
            return pd.read_excel(path, dtype={"patient_id": str})
        if suffix == ".parquet":
            return pd.read_parquet(path)
    except (OSError, ValueError, ImportError) as err:
        raise InputFileError(
            f"cannot read {path}: {err}", hint="use a CSV, Excel or Parquet file"
        ) from err
    raise InputFileError(
        f"unsupported table format: {path.suffix}", hint="use .csv, .xlsx or .parquet"
    )


def _load_inputs(
    clinical: Path, radiomics: Path | None, time: Path | None, wsi: Path | None,
    *, per_patient: bool = False,
):
    """The joined model table; with ``per_patient``, also ``{row position: problems}``
    of the patients whose clinical row is invalid (their rows stay in the table)."""
    from hccstrat.exceptions import DataValidationError, InputFileError, ValidationReport
    from hccstrat.models import join_feature_tables
    from hccstrat.schema import validate

    raw = _read_table(clinical)
    if raw.empty:
        raise InputFileError(
            f"'{clinical}' has no patient rows", hint="export one row per patient below the header"
        )
    table, report = validate(raw, source=str(clinical))
    serious = [p for p in report.problems if p.value != "(column)"]
    failed: dict[int, list] = {}
    if per_patient and all(p.row is not None for p in serious) and len(serious):
        for p in serious:  # a bad value fails its patient only; the others are predicted
            failed.setdefault(p.row - 1, []).append(p)
        if len(failed) < len(table):
            serious = []
    if serious:
        raise DataValidationError(ValidationReport(serious, source=str(clinical)))
    tables = {}
    for prefix, path in (("rad_", radiomics), ("time_", time), ("wsi_", wsi)):
        if path is not None:
            tables[prefix] = _read_table(path)
    X = join_feature_tables(table, tables)
    return (X, failed) if per_patient else X


def _small_sample(n: int, events: int, parameters: int) -> str | None:
    """A warning when there are fewer than 10 events per candidate parameter."""
    if parameters < 1 or events >= 10 * parameters:
        return None
    return (
        f"trained on {n} patients with {events} events for {parameters} candidate "
        f"parameters ({events / parameters:.1f} events per parameter, fewer than 10): the "
        "apparent C-index is optimistic and the risks may be overfitted; check the minimum "
        "sample size (hccstrat.evaluation.development_sample_size) and validate on other "
        "patients before use"
    )


def _train(stage: str, clinical, out, radiomics, time, wsi, overwrite=False, **params) -> None:
    from rich.console import Console

    from hccstrat.exceptions import ConfigError
    from hccstrat.models import PostModel, PreModel, TreatmentBenefitModel, save_model
    from hccstrat.survival import endpoint

    refuse_overwriting_inputs(
        {"--out": Path(out)},
        {"--clinical": clinical, "--radiomics": radiomics, "--time": time, "--wsi": wsi},
    )
    if Path(out).is_file() and not overwrite:  # a model others may have registered
        raise ConfigError(
            f"model file '{out}' exists",
            hint="pass --overwrite to replace it, or choose another --out",
        )
    X = _load_inputs(clinical, radiomics, time, wsi)
    if stage == "benefit":
        model = TreatmentBenefitModel(**params)
        y = endpoint(X, "rfs")
    else:
        model = (PreModel if stage == "pre" else PostModel)(**params)
        y = endpoint(X, "aggressive")
    model.fit(X, y)
    metrics = {"apparent_c_index": model.score(X, y)}
    limitations = [f"inputs: {model.lacking_.summary()}"]
    small = _small_sample(len(X), int(y["event"].sum()), len(model.features_.feature_names_out_))
    if small:
        limitations.append(small)
    check = getattr(model, "policy_check_", None)
    check_error = getattr(model, "policy_check_error_", None)
    default_reason = getattr(model, "default_arm_reason_", None)
    if default_reason:
        metrics["default_regimen"] = {"arm": model.default_arm_, "reason": default_reason}
    if check is not None:
        metrics["policy_check"] = check.to_dict()
        if not check.validated:
            limitations.append(f"{check.summary()}: no individual recommendation is given")
    if check_error:
        metrics["policy_check"] = {"error": check_error, "validated": False}
        limitations.append(
            f"the policy check could not run ({check_error}): no individual recommendation "
            "is given"
        )
    card = save_model(
        model,
        out,
        name=f"hccstrat-{stage}",
        intended_use=_INTENDED[stage],
        metrics=metrics,
        limitations=limitations,
    )
    from rich.markup import escape

    con = Console()
    con.print(f"[bold]{stage.upper()} model saved[/] to {out} (sha256 {card.payload_sha256[:12]}…)")
    con.print(f"inputs: {model.lacking_.summary()}")
    con.print(f"apparent C-index (training data): {metrics['apparent_c_index']:.3f}")
    if small:
        con.print(f"[yellow]warning[/] {escape(small)}")
    if default_reason:
        con.print(default_reason, markup=False)
    if check is not None:
        con.print(check.summary(), markup=False)
    if check_error:
        con.print(f"the policy check could not run: {check_error}", markup=False)


_CLIN = typer.Option(..., "--clinical", help="Canonical clinical table (CSV/Excel/Parquet).")
_OUT = typer.Option(..., "--out", help="Model file to write (*.hccmodel).")
_RAD = typer.Option(
    None, "--radiomics", help="Per-patient MRI radiomic features (patient_id + columns)."
)
_TIME = typer.Option(None, "--time", help="Per-patient WSI TIME panel features.")
_WSI = typer.Option(None, "--wsi", help="Per-patient WSI slide embedding.")
_SEED = typer.Option(0, "--seed", help="Random seed.")
_OVERWRITE = typer.Option(False, "--overwrite", help="Replace an existing model file.")


@train_app.command("pre")
def train_pre(
    clinical: Path = _CLIN,
    out: Path = _OUT,
    radiomics: Path | None = _RAD,
    base: str = typer.Option("coxnet", help="coxnet, gbsa, rsf or cox."),
    threshold: float = typer.Option(0.5, help="PRE score threshold for high risk."),
    seed: int = _SEED,
    overwrite: bool = _OVERWRITE,
) -> None:
    """Train the PRE model (clinical + MRI) for aggressive recurrence within 24 months."""
    _train(
        "pre",
        clinical,
        out,
        radiomics,
        None,
        None,
        base=base,
        threshold=threshold,
        random_state=seed,
        overwrite=overwrite,
    )


@train_app.command("post")
def train_post(
    clinical: Path = _CLIN,
    out: Path = _OUT,
    radiomics: Path | None = _RAD,
    time: Path | None = _TIME,
    wsi: Path | None = _WSI,
    base: str = typer.Option("coxnet", help="coxnet, gbsa, rsf or cox."),
    threshold: float = typer.Option(0.5, help="POST score threshold for high risk."),
    seed: int = _SEED,
    overwrite: bool = _OVERWRITE,
) -> None:
    """Train the POST model (PRE inputs + pathology + WSI features)."""
    _train(
        "post",
        clinical,
        out,
        radiomics,
        time,
        wsi,
        base=base,
        threshold=threshold,
        random_state=seed,
        overwrite=overwrite,
    )


@train_app.command("benefit")
def train_benefit(
    clinical: Path = _CLIN,
    out: Path = _OUT,
    radiomics: Path | None = _RAD,
    time: Path | None = _TIME,
    wsi: Path | None = _WSI,
    learner: str = typer.Option("dr", help="dr (doubly robust), t (T-learner) or s (S-learner)."),
    n_bootstrap: int = typer.Option(20, help="Bootstrap replicates for intervals and abstention."),
    seed: int = _SEED,
    overwrite: bool = _OVERWRITE,
) -> None:
    """Train the 3-arm adjuvant treatment-benefit model (needs the 'adjuvant' column)."""
    _train(
        "benefit",
        clinical,
        out,
        radiomics,
        time,
        wsi,
        learner=learner,
        n_bootstrap=n_bootstrap,
        random_state=seed,
        overwrite=overwrite,
    )


def predict(
    model: Path = typer.Option(
        ..., "--model", help="Model file (*.hccmodel) with its .sha256 beside it."
    ),
    clinical: Path = _CLIN,
    out: Path = typer.Option(..., "--out", help="CSV of predictions to write."),
    radiomics: Path | None = _RAD,
    time: Path | None = _TIME,
    wsi: Path | None = _WSI,
) -> None:
    """Predict with a saved PRE, POST or benefit model; writes one row per patient."""
    import numpy as np
    import pandas as pd
    from rich.console import Console

    from hccstrat.exceptions import ModelError
    from hccstrat.io.atomic import atomic_write
    from hccstrat.models import TreatmentBenefitModel, load_model

    tables = {"--clinical": clinical, "--radiomics": radiomics, "--time": time, "--wsi": wsi}
    refuse_overwriting_inputs({"--out": out}, {"--model": model, **tables})
    est = load_model(model)
    needs = ["features_"]
    needs += (
        ["predict_benefit"]
        if isinstance(est, TreatmentBenefitModel)
        else ["predict_score", "predict_high_risk"]
    )
    if not all(hasattr(est, a) for a in needs):  # e.g. a baseline, MIL or assembler file
        raise ModelError(
            f"{model} holds a {type(est).__name__} ('{est.model_card_.name}'), which 'predict' "
            "cannot use",
            hint="pass a model saved by 'hccstrat train pre', 'train post' or 'train benefit'",
        )
    X, failed = _load_inputs(clinical, radiomics, time, wsi, per_patient=True)
    ok = ~np.isin(np.arange(len(X)), list(failed))
    X_ok = X[ok]
    lacking = est.features_.lacking_at_predict(X_ok)
    if isinstance(est, TreatmentBenefitModel):
        res = est.predict_benefit(X_ok).table.reset_index(drop=True)
    else:
        res = pd.DataFrame(
            {
                "patient_id": X_ok["patient_id"].to_numpy(),
                "score": est.predict_score(X_ok),
                "high_risk": est.predict_high_risk(X_ok),
            }
        )
    res.insert(1, "status", "ok")
    res.insert(2, "error", None)
    res.index = np.flatnonzero(ok)
    bad = pd.DataFrame(
        {
            "patient_id": [_pid(X, i) for i in failed],
            "status": "failed",
            "error": ["; ".join(str(p) for p in problems) for problems in failed.values()],
        },
        index=list(failed),
    )
    res = pd.concat([res, bad]).sort_index() if len(bad) else res
    with atomic_write(out) as fh:
        res.to_csv(fh, index=False)
    con = Console()
    con.print(f"{int(ok.sum())} predictions written to {out}; inputs: {lacking.summary()}")
    for i, problems in failed.items():
        con.print(f"  not predicted: row {i + 1} ({_pid(X, i)}): "
                  + "; ".join(f"{p.column}={p.value!r}: expected {p.expected}" for p in problems),
                  markup=False, highlight=False, soft_wrap=True)


def _pid(X, i: int) -> str | None:
    import pandas as pd

    pid = X["patient_id"].iloc[i]
    return None if pd.isna(pid) else str(pid)


def register(root: typer.Typer) -> None:
    """Attach ``train`` and ``predict`` to the root app."""
    root.add_typer(train_app, name="train")
    root.command("predict")(predict)


def demo_stage(cohort, out_dir: Path, *, seed: int, progress) -> list:
    """Train PRE, POST and the benefit model on the synthetic cohort; report sections.

    Image features: when ``cohort`` has ``image_features`` (a mapping prefix →
    table, from the MRI/WSI stages) they are used; otherwise the demo uses
    *proxies* computed from the latent traits (labelled as such in the report).
    """
    from hccstrat.models._demo import run_demo

    return run_demo(cohort, Path(out_dir), seed=seed, progress=progress)
