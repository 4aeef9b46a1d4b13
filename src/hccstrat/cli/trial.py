"""``hccstrat trial``: screening, allocation, schedules, adverse events, analysis, power.

Commands are thin wrappers around :mod:`hccstrat.trial`; heavy imports happen inside
the commands.
"""

from __future__ import annotations

import json
from collections.abc import Callable
from pathlib import Path
from typing import Any

import typer

__all__ = ["app", "demo_stage"]

app = typer.Typer(help="Trial operations: screen, allocate, schedule, AE, analyse, simulate.",
                  no_args_is_help=True)


def _read(path: Path):
    import pandas as pd

    from hccstrat.exceptions import InputFileError
    from hccstrat.io.tables import csv_delimiter

    if not path.is_file():
        raise InputFileError(f"file not found: {path}", hint="check the path")
    try:
        if path.suffix.lower() in (".xlsx", ".xls"):
            return pd.read_excel(path)
        return pd.read_csv(path, sep=csv_delimiter(path))
    except (ValueError, OSError) as err:
        raise InputFileError(f"cannot read {path}: {err}", hint="give a CSV or Excel file") \
            from err


def _date(value: str | None, option: str):
    """``--as-of`` style option (YYYY-MM-DD) as a Timestamp (None stays None)."""
    import datetime as dt

    import pandas as pd

    from hccstrat.exceptions import ConfigError

    if value is None:
        return None
    try:  # ISO only: 03/01/2026 is 3 January in Europe and 1 March in the US
        return pd.Timestamp(dt.date.fromisoformat(value.strip()))
    except ValueError as err:
        raise ConfigError(f"{option} {value!r} is not a date",
                          hint="give it as YYYY-MM-DD") from err


def _write(df, path: Path) -> None:
    from hccstrat.io.atomic import atomic_write

    with atomic_write(path) as fh:
        df.to_csv(fh, index=False)


def _write_json(obj: Any, path: Path) -> None:
    from hccstrat.io.atomic import atomic_write

    with atomic_write(path) as fh:
        json.dump(obj, fh, indent=2, default=str)


@app.command()
def screen(
    clinical: Path = typer.Argument(..., help="Canonical clinical table (CSV/Excel)."),
    screening: Path = typer.Option(None, "--screening", help="Screening table (CSV/Excel)."),
    study: str = typer.Option("NCT07282184", help="Study id or rule-set YAML path."),
    as_of: str = typer.Option(None, help="Evaluation date YYYY-MM-DD (default today)."),
    out: Path = typer.Option(Path("screening"), help="Output folder."),
) -> None:
    """Evaluate eligibility; write the per-criterion table, screening log and CONSORT counts."""
    from hccstrat.trial.eligibility import evaluate, load_ruleset
    from hccstrat.trial.screening import consort_counts, screening_frame, screening_log

    _date(as_of, "--as-of")
    rules = load_ruleset(study)
    frame = screening_frame(_read(clinical), _read(screening) if screening else None, as_of=as_of)
    res = evaluate(frame, rules, as_of=as_of)
    out.mkdir(parents=True, exist_ok=True)
    _write(res.criteria, out / "eligibility_criteria.csv")
    _write(res.patients, out / "eligibility.csv")
    _write(screening_log(res, frame), out / "screening_log.csv")
    counts = consort_counts(res)
    _write_json(counts, out / "consort.json")
    typer.echo(f"{rules.study} v{rules.version}: assessed {counts['assessed']}, eligible "
               f"{counts['enrolled']}, excluded {counts['excluded']['total']} "
               f"(pending {counts['excluded']['pending']}) -> {out}")


@app.command()
def allocate(
    table: Path = typer.Argument(None, help="Patients: patient_id (+ pre_score, or centre and "
                                 "risk_group for randomisation)."),
    method: str = typer.Option("pre", help="pre | blocks | minimisation"),
    threshold: float = typer.Option(0.5, help="PRE threshold."),
    model_version: str = typer.Option(None, help="PRE model version (precomputed scores)."),
    seed: int = typer.Option(None, help="Randomisation seed (keep secret; random if omitted)."),
    log: Path = typer.Option(Path("allocation_log.jsonl"), help="Hash-chained allocation log."),
    out: Path = typer.Option(Path("allocation.csv"), help="Assignments (CSV)."),
    verify: Path = typer.Option(None, help="Only verify this log (with --seed: full audit)."),
) -> None:
    """Assign arms (PRE rule or concealed randomisation), or verify/audit a log."""
    import pandas as pd

    from hccstrat.exceptions import ConfigError
    from hccstrat.trial.allocation import allocate_pre, check_patient_ids, logged_arms
    from hccstrat.trial.allocation_log import AllocationLog, AllocationLogError, verify_log
    from hccstrat.trial.randomisation import (
        BlockRandomiser,
        MinimisationRandomiser,
        audit_log,
        stratum_key,
    )

    if verify is not None:
        rep = audit_log(verify, seed) if seed is not None else verify_log(verify).__dict__
        typer.echo(json.dumps(rep, indent=2, default=str))
        if not rep["ok"]:
            raise AllocationLogError(f"allocation log {verify} failed verification",
                                     hint="see the problems listed above")
        return
    if table is None:
        raise ConfigError("give the patients table (or --verify LOG)")
    df = _read(table)
    if method == "pre":
        res = allocate_pre(df, threshold=threshold, model_version=model_version,
                           log=AllocationLog(log))
    elif method in ("blocks", "minimisation"):
        check_patient_ids(df, ("centre", "risk_group"), source=str(table))
        df = df.assign(patient_id=df["patient_id"].astype(str))
        if method == "blocks":
            strata = sorted({stratum_key(c, r) for c, r in zip(df["centre"], df["risk_group"],
                                                               strict=True)})
            rz: Any = BlockRandomiser(strata, seed=seed, log=log)
        else:
            rz = MinimisationRandomiser({"centre": sorted(df["centre"].astype(str).unique()),
                                         "risk_group": sorted(df["risk_group"].astype(str)
                                                              .unique())}, seed=seed, log=log)
        before = logged_arms(rz.log)  # a patient is randomised once: keep the logged arm
        recs = [{"patient_id": p, "arm": before[p], "decision": f"not randomised again: "
                 f"already allocated in {log}"} if p in before else
                rz.enrol(p, stratum_key(c, r) if method == "blocks" else
                         {"centre": c, "risk_group": r})
                for p, c, r in zip(df["patient_id"], df["centre"], df["risk_group"],
                                   strict=True)]
        res = pd.DataFrame(recs).drop(columns=["nonce"], errors="ignore")
        if seed is None:
            typer.echo(f"seed (store it securely, needed for the audit): {rz.seed}", err=True)
    else:
        raise ConfigError(f"unknown method {method!r}", hint="pre, blocks or minimisation")
    _write(res, out)
    typer.echo(f"{len(res)} patients -> {out}; log {log} (verified: {verify_log(log).ok})")


@app.command()
def schedule(
    table: Path = typer.Argument(..., help="patient_id, surgery_date (+ height_cm, weight_kg)."),
    visits: Path = typer.Option(None, help="Performed visits: patient_id, visit_date."),
    as_of: str = typer.Option(None, help="Data cut-off YYYY-MM-DD (default today)."),
    every_months: float = typer.Option(3.0, help="Months between follow-up visits."),
    duration_months: float = typer.Option(24.0, help="Follow-up duration in months."),
    out: Path = typer.Option(Path("schedule"), help="Output folder."),
) -> None:
    """Follow-up calendar, visit status (missed visits), lost-to-follow-up and doses."""
    import pandas as pd

    from hccstrat.trial.schedule import followup_calendar, followup_status, visit_status
    from hccstrat.trial.therapy import neoadjuvant_doses

    when = _date(as_of, "--as-of") or pd.Timestamp.today().normalize()
    df = _read(table)
    cal = followup_calendar(df, every_months=every_months, duration_months=duration_months)
    st = visit_status(cal, _read(visits), as_of=when) if visits is not None else None
    out.mkdir(parents=True, exist_ok=True)
    _write(cal, out / "followup_calendar.csv")
    if {"height_cm", "weight_kg"} <= set(df.columns):
        _write(neoadjuvant_doses(df), out / "neoadjuvant_doses.csv")
    unplanned = sorted(set(df["patient_id"].astype(str)) - set(cal["patient_id"]))
    if unplanned:
        typer.echo(f"not scheduled (no surgery_date): {len(unplanned)} patient(s): "
                   f"{', '.join(unplanned[:20])}" + (" ..." if len(unplanned) > 20 else ""),
                   err=True)
    if st is not None:
        _write(st, out / "visit_status.csv")
        fu = followup_status(st)
        _write(fu, out / "followup_status.csv")
        typer.echo(fu["status"].value_counts().to_string())
    typer.echo(f"{len(cal)} planned visits -> {out}")


@app.command()
def ae(
    events: Path = typer.Argument(..., help="AE table (patient_id, term, grade, onset_date...)."),
    arms: Path = typer.Option(..., help="patient_id, arm."),
    as_of: str = typer.Option(None, help="Date for overdue SAE reports (default now)."),
    out: Path = typer.Option(Path("safety"), help="Output folder."),
) -> None:
    """Validate AEs (CTCAE v5), flag expedited SAE reports (24 h), write the safety table."""
    from hccstrat.trial.adverse_events import expedited_reports, safety_table

    when = _date(as_of, "--as-of")
    df = _read(events)
    tab = safety_table(df, _read(arms))
    sae = expedited_reports(df, as_of=when)
    out.mkdir(parents=True, exist_ok=True)
    _write(tab, out / "safety_table.csv")
    _write(sae, out / "expedited_reports.csv")
    typer.echo(tab.to_string(index=False))
    typer.echo(f"SAEs: {len(sae)}, overdue reports: {int(sae['overdue'].sum())}")


@app.command()
def analyse(
    table: Path = typer.Argument(..., help="Canonical outcomes table with an arm column."),
    experimental: str = typer.Option(..., help="Label of the experimental arm."),
    arm_col: str = typer.Option("arm", help="Arm column."),
    strata: str = typer.Option("", help="Comma-separated stratification columns."),
    horizon: float = typer.Option(24.0, help="Landmark / RMST horizon (months)."),
    out: Path = typer.Option(Path("trial_report.html"), help="HTML report."),
) -> None:
    """RFS and OS: KM, log-rank, stratified Cox HR, RMST, 2-year rates; HTML report."""
    from hccstrat.exceptions import ConfigError
    from hccstrat.reports.html import render_report
    from hccstrat.schema import coerce
    from hccstrat.survival import endpoint
    from hccstrat.trial.analysis import analyse_trial
    from hccstrat.trial.report import trial_sections

    df = coerce(_read(table))
    cols = [c.strip() for c in strata.split(",") if c.strip()]
    missing = [c for c in (arm_col, *cols) if c not in df.columns]
    if missing:
        raise ConfigError(f"{table} has no column {', '.join(map(repr, missing))}",
                          hint="check --arm-col / --strata against the table's header")
    df = df[df[arm_col].notna()].reset_index(drop=True)
    res = [analyse_trial(endpoint(df, w), df[arm_col].astype(str), experimental=experimental,
                         strata=df[cols] if cols else None, horizon=horizon, endpoint=name)
           for w, name in (("rfs", "RFS"), ("os", "OS"))]
    render_report(out, "Trial analysis", trial_sections(res))
    for r in res:
        typer.echo(json.dumps(r.numbers(), default=float))


@app.command()
def simulate(
    n: int = typer.Option(600, help="Patients per trial."),
    hr: float = typer.Option(0.7, help="True hazard ratio."),
    control_rfs24: float = typer.Option(0.65, help="Control 2-year RFS."),
    reps: int = typer.Option(1000, help="Replicates."),
    seed: int = typer.Option(0, help="Seed."),
    jobs: int = typer.Option(1, help="Parallel workers."),
    power: float = typer.Option(0.8, help="Target power for the sample size."),
) -> None:
    """Schoenfeld sample size and simulated power for an RFS comparison."""
    from hccstrat.trial.simulate import analytic_power, sample_size_rfs, simulate_power

    ss = sample_size_rfs(hr, control_rfs24=control_rfs24, power=power)
    sim = simulate_power(n, hr, control_rfs24=control_rfs24, n_reps=reps, seed=seed, n_jobs=jobs)
    sim.pop("replicates")
    typer.echo(json.dumps({"sample_size": ss, "analytic_power": analytic_power(
        n, hr, control_rfs24=control_rfs24), "simulation": sim}, indent=2))


def demo_stage(cohort, out_dir: Path, *, seed: int, progress: Callable[[str], None],
               risk_fn: Callable | None = None, model_version: str | None = None) -> list:
    """Simulated NCT07282184 trial end to end; returns report sections.

    ``risk_fn(frame) -> scores in [0, 1]`` is the PRE model (a stand-in from the cohort
    oracle when omitted); ``model_version`` is recorded with every allocation.
    """
    from hccstrat.trial.demo import run_pre_trial

    return run_pre_trial(cohort, Path(out_dir) / "trial", seed=seed, progress=progress,
                         risk_fn=risk_fn, model_version=model_version)
