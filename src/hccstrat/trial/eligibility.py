"""Declarative, versioned eligibility rule sets and their evaluation.

A rule set (YAML, shipped in ``hccstrat/trial/rules/``) lists criteria; each one has an
id, a kind (inclusion/exclusion), a phase (``enrolment`` or ``postoperative``), a text
and a *rule*: the condition a patient must satisfy to stay in the study (for an
exclusion: "the exclusion does not apply"). Conditions are evaluated with three-valued
(Kleene) logic on the whole table at once: a missing value gives *pending*.

Condition grammar::

    {field: F, op: OP, value: V}          OP in between, ge, gt, le, lt, eq, ne, in,
                                          not_in, is_true, is_false, not_missing
                                          (``floor: true`` compares whole numbers,
                                          e.g. completed years of age)
    {op: days_between, start: F1, end: F2, min: a, max: b, unit: days|months|years}
                                          (``exclusive_min``/``exclusive_max``)
    {op: event_free_window, anchor: F, events: [F...], days: n}
                                          none of the event dates falls within n days
                                          after the anchor; pending until the window
                                          has elapsed (``as_of``) or the patient is
                                          known event-free past it
    {all: [...]} | {any: [...]} | {first_available: [...]}

Examples
--------
>>> rs = load_ruleset("NCT07282184")
>>> rs.study, len(rs.criteria) > 10
('NCT07282184', True)
"""

from __future__ import annotations

import hashlib
import math
from dataclasses import dataclass, field
from importlib import resources
from pathlib import Path
from typing import Any, Literal

import numpy as np
import pandas as pd
import yaml

from hccstrat.exceptions import ConfigError, DataValidationError, Problem, ValidationReport
from hccstrat.schema import DAYS_PER_MONTH

__all__ = [
    "AS_OF_COLUMN",
    "BUILTIN_RULESETS",
    "Criterion",
    "EligibilityResult",
    "RuleSet",
    "Status",
    "evaluate",
    "evaluate_condition",
    "load_ruleset",
    "parse_ruleset",
]

Status = Literal["eligible", "ineligible", "pending"]

#: Column injected into the evaluation frame holding the evaluation date.
AS_OF_COLUMN = "__as_of__"

#: Built-in rule sets: study id -> resource file in ``hccstrat.trial.rules``.
BUILTIN_RULESETS = {"NCT07282184": "nct07282184.yaml", "NCT07417800": "nct07417800.yaml"}

_UNIT_DAYS = {"days": 1.0, "months": DAYS_PER_MONTH, "years": 365.25}
_FIELD_OPS = {"between", "ge", "gt", "le", "lt", "eq", "ne", "in", "not_in", "is_true",
              "is_false", "not_missing"}
_OTHER_OPS = {"days_between", "event_free_window"}
_PHASES = ("enrolment", "postoperative")


@dataclass(frozen=True)
class Criterion:
    """One eligibility criterion of a rule set."""

    id: str
    kind: Literal["inclusion", "exclusion"]
    phase: Literal["enrolment", "postoperative"]
    text: str
    rule: dict[str, Any]

    def fields(self) -> list[str]:
        """Columns the rule reads, in order of appearance."""
        return _fields(self.rule)


@dataclass(frozen=True)
class RuleSet:
    """A versioned set of criteria of one study.

    Attributes
    ----------
    study, version, title : str
        Identification; ``version`` changes whenever a criterion changes.
    reference_date : str
        Column holding the date criteria windows refer to (screening date).
    criteria : tuple of Criterion
    sha256 : str
        Digest of the YAML text, recorded with every screening result.
    """

    study: str
    version: str
    title: str
    reference_date: str
    criteria: tuple[Criterion, ...]
    sha256: str = ""

    def fields(self) -> list[str]:
        """Every column any criterion reads (unique, in order)."""
        out: list[str] = []
        for c in self.criteria:
            out += [f for f in c.fields() if f not in out]
        return out


def _fields(cond: dict[str, Any]) -> list[str]:
    for key in ("all", "any", "first_available"):
        if key in cond:
            out: list[str] = []
            for sub in cond[key]:
                out += [f for f in _fields(sub) if f not in out]
            return out
    op = cond.get("op")
    if op == "days_between":
        return [cond["start"], cond["end"]]
    if op == "event_free_window":
        return [cond["anchor"], *cond["events"]]
    return [cond["field"]]


def _check_condition(cond: Any, where: str) -> None:
    if not isinstance(cond, dict):
        raise ConfigError(f"{where}: a condition must be a mapping, got {cond!r}",
                          hint="write {field: ..., op: ..., value: ...} or all/any/first_available")
    for key in ("all", "any", "first_available"):
        if key in cond:
            subs = cond[key]
            if not isinstance(subs, list) or not subs:
                raise ConfigError(f"{where}: '{key}' needs a non-empty list of conditions")
            for i, sub in enumerate(subs):
                _check_condition(sub, f"{where}.{key}[{i}]")
            return
    op = cond.get("op")
    if op == "days_between":
        missing = [k for k in ("start", "end") if k not in cond]
        if missing or ("min" not in cond and "max" not in cond):
            raise ConfigError(f"{where}: days_between needs start, end and min and/or max")
        if cond.get("unit", "days") not in _UNIT_DAYS:
            raise ConfigError(f"{where}: unknown unit {cond.get('unit')!r}",
                              hint="use days, months or years")
    elif op == "event_free_window":
        if not {"anchor", "events", "days"} <= cond.keys():
            raise ConfigError(f"{where}: event_free_window needs anchor, events and days")
    elif op in _FIELD_OPS:
        if "field" not in cond:
            raise ConfigError(f"{where}: op {op!r} needs a 'field'")
        if op not in {"is_true", "is_false", "not_missing"} and "value" not in cond:
            raise ConfigError(f"{where}: op {op!r} needs a 'value'")
        if op == "between" and not (isinstance(cond["value"], list) and len(cond["value"]) == 2):
            raise ConfigError(f"{where}: 'between' needs value [low, high]")
    else:
        raise ConfigError(f"{where}: unknown op {op!r}",
                          hint=f"use one of {sorted(_FIELD_OPS | _OTHER_OPS)}")


def parse_ruleset(text: str, *, source: str = "<text>") -> RuleSet:
    """Parse and check a rule set from YAML text.

    Raises
    ------
    ConfigError
        When a field is missing or a condition is malformed (message names the criterion).
    """
    try:
        data = yaml.safe_load(text)
    except yaml.YAMLError as err:
        raise ConfigError(f"{source}: not valid YAML ({err})") from err
    if not isinstance(data, dict):
        raise ConfigError(f"{source}: a rule set must be a mapping")
    for key in ("study", "version", "criteria"):
        if key not in data:
            raise ConfigError(f"{source}: missing top-level key {key!r}",
                              hint="see hccstrat/trial/rules/nct07282184.yaml for the format")
    crits = []
    seen: set[str] = set()
    for i, raw in enumerate(data["criteria"]):
        where = f"{source}: criterion {raw.get('id', i)!s}"
        for key in ("id", "kind", "text", "rule"):
            if key not in raw:
                raise ConfigError(f"{where}: missing {key!r}")
        if raw["id"] in seen:
            raise ConfigError(f"{where}: duplicate id")
        seen.add(raw["id"])
        if raw["kind"] not in ("inclusion", "exclusion"):
            raise ConfigError(f"{where}: kind must be inclusion or exclusion")
        phase = raw.get("phase", "enrolment")
        if phase not in _PHASES:
            raise ConfigError(f"{where}: phase must be one of {_PHASES}")
        _check_condition(raw["rule"], where)
        crits.append(Criterion(str(raw["id"]), raw["kind"], phase, str(raw["text"]).strip(),
                               raw["rule"]))
    return RuleSet(
        study=str(data["study"]),
        version=str(data["version"]),
        title=str(data.get("title", "")),
        reference_date=str(data.get("reference_date", "screening_date")),
        criteria=tuple(crits),
        sha256=hashlib.sha256(text.encode("utf-8")).hexdigest(),
    )


def load_ruleset(name_or_path: str | Path) -> RuleSet:
    """Load a built-in rule set by study id (``"NCT07282184"``) or a YAML file by path."""
    key = str(name_or_path).upper()
    if key in BUILTIN_RULESETS:
        res = resources.files("hccstrat.trial").joinpath("rules", BUILTIN_RULESETS[key])
        return parse_ruleset(res.read_text(encoding="utf-8"), source=BUILTIN_RULESETS[key])
    path = Path(name_or_path)
    if not path.is_file():
        raise ConfigError(f"unknown rule set {name_or_path!r}",
                          hint=f"give one of {sorted(BUILTIN_RULESETS)} or a YAML file path")
    return parse_ruleset(path.read_text(encoding="utf-8"), source=str(path))


# --------------------------------------------------------------------------- evaluation


def _na(n_index: pd.Index) -> pd.Series:
    return pd.Series(pd.NA, index=n_index, dtype="boolean")


def _as_bool(x: pd.Series) -> pd.Series:
    if pd.api.types.is_bool_dtype(x) or str(x.dtype) == "boolean":
        return x.astype("boolean")
    txt = x.astype("string").str.strip().str.lower()
    out = _na(x.index)
    out[txt.isin(["true", "1", "yes", "y", "1.0"]).fillna(False).astype(bool)] = True
    out[txt.isin(["false", "0", "no", "n", "0.0"]).fillna(False).astype(bool)] = False
    return out


def _as_date(x: pd.Series) -> pd.Series:
    return pd.to_datetime(x, errors="coerce")


def _field_op(cond: dict[str, Any], df: pd.DataFrame) -> pd.Series:
    name, op = cond["field"], cond["op"]
    if name not in df.columns:
        return _na(df.index)
    x = df[name]
    if op in ("is_true", "is_false"):
        b = _as_bool(x)
        return b if op == "is_true" else ~b
    if op == "not_missing":
        return x.notna().astype("boolean")
    val = cond["value"]
    if op in ("in", "not_in"):
        txt = x.astype("string").str.replace(r"^(\d+)\.0$", r"\1", regex=True)
        hit = txt.isin([str(v) for v in val]).astype("boolean").mask(txt.isna())
        return hit if op == "in" else ~hit
    num = pd.to_numeric(x, errors="coerce").astype(float)
    if cond.get("floor"):
        num = np.floor(num)
    if op == "between":
        out = (num >= float(val[0])) & (num <= float(val[1]))
    else:
        v = float(val)
        out = {"ge": num >= v, "gt": num > v, "le": num <= v, "lt": num < v,
               "eq": num == v, "ne": num != v}[op]
    return pd.Series(out, index=df.index).astype("boolean").mask(num.isna())


def _days_between(cond: dict[str, Any], df: pd.DataFrame) -> pd.Series:
    if cond["start"] not in df.columns or cond["end"] not in df.columns:
        return _na(df.index)
    days = (_as_date(df[cond["end"]]) - _as_date(df[cond["start"]])).dt.days.astype(float)
    scale = _UNIT_DAYS[cond.get("unit", "days")]
    span = days / scale
    ok = pd.Series(True, index=df.index)
    if "min" in cond:
        lo = float(cond["min"])
        ok &= (span > lo) if cond.get("exclusive_min") else (span >= lo)
    if "max" in cond:
        hi = float(cond["max"])
        ok &= (span < hi) if cond.get("exclusive_max") else (span <= hi)
    return ok.astype("boolean").mask(span.isna())


def _event_free_window(cond: dict[str, Any], df: pd.DataFrame) -> pd.Series:
    anchor_col = cond["anchor"]
    if anchor_col not in df.columns:
        return _na(df.index)
    anchor = _as_date(df[anchor_col])
    end = anchor + pd.to_timedelta(float(cond["days"]), unit="D")
    hit = pd.Series(False, index=df.index)
    for ev in cond["events"]:
        if ev in df.columns:
            d = _as_date(df[ev])
            hit |= (d >= anchor) & (d <= end)
    # known event-free past the window: evaluation date or last contact after it
    known = pd.Series(False, index=df.index)
    if AS_OF_COLUMN in df.columns:
        known |= _as_date(df[AS_OF_COLUMN]) > end
    if "last_followup_date" in df.columns:
        known |= _as_date(df["last_followup_date"]) > end
    out = pd.Series(pd.NA, index=df.index, dtype="boolean")
    out[known.fillna(False).to_numpy(bool)] = True
    out[hit.fillna(False).to_numpy(bool)] = False
    return out.mask(anchor.isna())


def evaluate_condition(cond: dict[str, Any], df: pd.DataFrame) -> pd.Series:
    """Evaluate one condition on every row: True (met), False (not met) or <NA> (pending)."""
    if "all" in cond:
        out = pd.Series(True, index=df.index, dtype="boolean")
        for sub in cond["all"]:
            out = out & evaluate_condition(sub, df)
        return out
    if "any" in cond:
        out = pd.Series(False, index=df.index, dtype="boolean")
        for sub in cond["any"]:
            out = out | evaluate_condition(sub, df)
        return out
    if "first_available" in cond:
        out = _na(df.index)
        for sub in cond["first_available"]:
            out = out.fillna(evaluate_condition(sub, df))
        return out
    op = cond["op"]
    if op == "days_between":
        return _days_between(cond, df)
    if op == "event_free_window":
        return _event_free_window(cond, df)
    return _field_op(cond, df)


def _fmt(v: Any) -> str:
    if v is None or (not isinstance(v, str) and pd.isna(v)):
        return "missing"
    if isinstance(v, pd.Timestamp):
        return v.date().isoformat()
    if isinstance(v, float):
        return f"{v:g}" if math.isfinite(v) else str(v)
    return str(v)


@dataclass
class EligibilityResult:
    """Outcome of screening a table against a rule set.

    Attributes
    ----------
    ruleset : RuleSet
    criteria : DataFrame
        Long table: ``patient_id, criterion, kind, phase, status, reason`` with status
        ``met`` / ``not_met`` / ``pending``.
    patients : DataFrame
        One row per patient: ``status`` (overall), ``enrolment_status``,
        ``postoperative_status``, ``failed`` and ``pending`` (criterion ids, ``;``
        separated) and ``reasons`` (text of every failed or pending criterion).
    as_of : Timestamp or None
    """

    ruleset: RuleSet
    criteria: pd.DataFrame
    patients: pd.DataFrame
    as_of: pd.Timestamp | None = None
    metadata: dict[str, Any] = field(default_factory=dict)

    def status_of(self, patient_id: str) -> str:
        """Overall status of one patient."""
        return str(self.patients.set_index("patient_id").at[patient_id, "status"])


def _overall(mat: pd.DataFrame) -> pd.Series:
    """Combine criterion statuses (columns) into eligible / ineligible / pending."""
    if mat.shape[1] == 0:
        return pd.Series("eligible", index=mat.index)
    failed = (mat == "not_met").any(axis=1)
    pending = (mat == "pending").any(axis=1)
    return pd.Series(np.select([failed, pending], ["ineligible", "pending"], "eligible"),
                     index=mat.index)


def evaluate(
    frame: pd.DataFrame,
    ruleset: RuleSet | str | Path,
    *,
    as_of: str | pd.Timestamp | None = None,
) -> EligibilityResult:
    """Evaluate every criterion of ``ruleset`` for every patient of ``frame``.

    Parameters
    ----------
    frame : DataFrame
        One row per patient with ``patient_id`` and the columns the rules read
        (canonical clinical columns merged with the screening table; see
        :func:`hccstrat.trial.screening.screening_frame`).
    ruleset : RuleSet or str or Path
        Rule set, built-in study id or YAML path.
    as_of : date, optional
        Evaluation date (data cut-off) used by windows that must have elapsed
        (death/loss within 90 days of surgery). Defaults to today.

    Returns
    -------
    EligibilityResult
    """
    rs = ruleset if isinstance(ruleset, RuleSet) else load_ruleset(ruleset)
    if "patient_id" not in frame.columns:
        rep = ValidationReport(source="screening frame")
        rep.add(Problem(None, None, "patient_id", "(missing column)", "a patient_id column"))
        raise DataValidationError(rep)
    as_of_ts = pd.Timestamp(as_of) if as_of is not None else pd.Timestamp.today().normalize()
    df = frame.reset_index(drop=True).copy()
    df[AS_OF_COLUMN] = as_of_ts
    pid = df["patient_id"].astype(str)
    rows, status_cols = [], {}
    for crit in rs.criteria:
        res = evaluate_condition(crit.rule, df)
        status = np.where(res.isna(), "pending", np.where(res.fillna(False), "met", "not_met"))
        status_cols[crit.id] = status
        flds = crit.fields()
        vals = [" ".join(f"{f}={_fmt(v)}" for f, v in zip(flds, r, strict=True))
                for r in df.reindex(columns=flds).itertuples(index=False, name=None)]
        label = {"met": "met", "not_met": "not met", "pending": "pending (data missing)"}
        reasons = [f"{crit.id} {crit.text}: {label[s]} [{v}]" for s, v in zip(status, vals,
                                                                               strict=True)]
        rows.append(pd.DataFrame({"patient_id": pid, "criterion": crit.id, "kind": crit.kind,
                                  "phase": crit.phase, "status": status, "reason": reasons}))
    long = pd.concat(rows, ignore_index=True) if rows else pd.DataFrame(
        columns=["patient_id", "criterion", "kind", "phase", "status", "reason"])
    mat = pd.DataFrame(status_cols, index=df.index)
    by_phase = {ph: [c.id for c in rs.criteria if c.phase == ph] for ph in _PHASES}
    failed = mat.apply(lambda r: ";".join(r.index[r == "not_met"]), axis=1) if len(mat.columns) \
        else pd.Series("", index=df.index)
    pend = mat.apply(lambda r: ";".join(r.index[r == "pending"]), axis=1) if len(mat.columns) \
        else pd.Series("", index=df.index)
    bad = long[long["status"] != "met"].groupby("patient_id", sort=False)["reason"].agg(" | ".join)
    patients = pd.DataFrame({
        "patient_id": pid,
        "status": _overall(mat),
        "enrolment_status": _overall(mat[by_phase["enrolment"]]),
        "postoperative_status": _overall(mat[by_phase["postoperative"]]),
        "failed": failed.to_numpy(),
        "pending": pend.to_numpy(),
    })
    patients["reasons"] = patients["patient_id"].map(bad).fillna("")
    meta = {"study": rs.study, "ruleset_version": rs.version, "ruleset_sha256": rs.sha256,
            "as_of": as_of_ts.date().isoformat()}
    return EligibilityResult(rs, long, patients, as_of_ts, meta)
