"""Checks of a predictions table against a validation plan, before any stage runs."""

from __future__ import annotations

from typing import TYPE_CHECKING

import numpy as np
import pandas as pd

from hccstrat.exceptions import DataValidationError, Problem, ValidationReport

if TYPE_CHECKING:
    from hccstrat.evaluation.validation import ValidationPlan

__all__ = ["checked_predictions"]

_EVENT_WORDS = {"true": True, "false": False, "1": True, "0": False, "1.0": True, "0.0": False}


def checked_predictions(data: pd.DataFrame, plan: ValidationPlan) -> pd.DataFrame:
    """The predictions table with times/risks as floats, events as bool, dates parsed.

    Raises
    ------
    DataValidationError
        Listing every missing or impossible time, event, risk or date (row, patient id),
        so that no stage runs on silently coerced values (``"no"`` read as an event, a
        risk of 1.7, ``"12,5"`` months); also comparators and the centre column that the
        plan names but the table lacks.
    """
    report = ValidationReport(source=plan.data or "predictions table")
    ids = data["patient_id"].astype(str).to_numpy() if "patient_id" in data else None
    out = data.copy()

    def check(col: str, values: pd.Series, bad: pd.Series, expected: str) -> None:
        for i in np.flatnonzero(bad.to_numpy()):
            pid = None if ids is None else ids[i]
            report.add(Problem(int(i) + 1, pid, col, data[col].iloc[i], expected))
        out[col] = values

    for col, hi, expected in (
        (plan.time_column, np.inf, "a follow-up time in months >= 0"),
        (plan.risk_column, 1.0, f"a predicted risk by {plan.horizon:g} months between 0 and 1"),
    ):
        if col in data:
            v = pd.to_numeric(data[col], errors="coerce").astype(float)
            check(col, v, ~v.between(0.0, hi), expected)
    ev = plan.event_column
    if ev in data:
        flags = data[ev].map(lambda x: _EVENT_WORDS.get(str(x).strip().lower()))
        check(ev, flags.fillna(False).astype(bool), flags.isna(), "1/0 or True/False")
    if plan.date_column in data:
        raw = data[plan.date_column]
        dates = pd.to_datetime(raw, errors="coerce", format="ISO8601")
        check(plan.date_column, dates, dates.isna() & raw.notna(), "a date as YYYY-MM-DD")
    for col in plan.comparators:
        if col not in data:
            expected = "a comparator named in the plan"
            report.add(Problem(None, None, col, "(missing column)", expected))
        else:
            v = pd.to_numeric(data[col], errors="coerce").astype(float)
            check(col, v, ~np.isfinite(v), "a number (comparator risk or 0/1 rule)")
    if any(s.centres for s in plan.stages) and plan.centre_column not in data:
        expected = "a centre column: stages select centres"
        report.add(Problem(None, None, plan.centre_column, "(missing column)", expected))
    if report:
        raise DataValidationError(
            report,
            hint="correct the listed values or columns of the predictions table, or the plan; "
            "nothing was written",
        )
    return out
