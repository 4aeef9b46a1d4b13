"""Screening data (criteria the clinical schema lacks), screening log and CONSORT counts.

The **screening table** holds one row per screened patient with the columns in
:data:`SCREENING_COLUMNS` (all optional except ``patient_id``; a criterion whose data
are missing is *pending*). :func:`screening_frame` merges it with the canonical
clinical table and fills the scores the rules need:

- ``child_pugh_points`` and ``bclc_stage``: taken from the screening table when given;
  otherwise computed with :mod:`hccstrat.clinical.scores` (``child_pugh``,
  ``bclc``) when that module is installed; otherwise ``bclc_stage`` falls back to
  the clinical ``bclc_recorded`` column, and a score that cannot be obtained leaves its
  criterion pending.
- ``mri_quality_acceptable``: the verdict of the MRI quality-control pipeline.
- ``lost_to_followup_date``: when not given, a living patient whose last contact is
  more than ``ltfu_gap_days`` before ``as_of`` is taken as lost on that last contact.
"""

from __future__ import annotations

import logging
from dataclasses import dataclass

import pandas as pd

from hccstrat.exceptions import DataValidationError, HccstratError, Problem, ValidationReport
from hccstrat.trial.eligibility import EligibilityResult

__all__ = [
    "SCREENING_COLUMNS",
    "ScreeningColumn",
    "consort_counts",
    "screening_frame",
    "screening_log",
    "validate_screening",
]

log = logging.getLogger(__name__)


@dataclass(frozen=True)
class ScreeningColumn:
    """One documented column of the screening table."""

    name: str
    kind: str  # "bool" | "date" | "float" | "int" | "str"
    description: str
    #: (low, high) for numbers, or the allowed texts; None: any value of the kind
    allowed: tuple | None = None


#: Documented columns of the screening table.
SCREENING_COLUMNS: tuple[ScreeningColumn, ...] = (
    ScreeningColumn("patient_id", "str", "Patient identifier (as in the clinical table)"),
    ScreeningColumn("screening_date", "date", "Date of screening / enrolment (window reference)"),
    ScreeningColumn("consent", "bool", "Written informed consent obtained"),
    ScreeningColumn("planned_curative_resection", "bool", "Curative resection planned"),
    ScreeningColumn("followup_2y_possible", "bool", "Patient can be followed for 2 years"),
    ScreeningColumn("mri_quality_acceptable", "bool", "MRI QC verdict (MRI pipeline)"),
    ScreeningColumn("child_pugh_points", "int", "Child-Pugh score 5-15 (else computed)",
                    (5, 15)),
    ScreeningColumn("bclc_stage", "str", "BCLC stage 0/A/B/C/D (else computed)",
                    ("0", "A", "B", "C", "D")),
    ScreeningColumn("hypersensitivity_oxaliplatin", "bool", "Known hypersensitivity"),
    ScreeningColumn("hypersensitivity_fluorouracil", "bool", "Known hypersensitivity to 5-FU"),
    ScreeningColumn("hypersensitivity_pd1", "bool", "Known hypersensitivity to PD-1 inhibitors"),
    ScreeningColumn("hypersensitivity_lenvatinib", "bool", "Known hypersensitivity"),
    ScreeningColumn("nyha_class", "int", "NYHA heart-failure class 1-4", (1, 4)),
    ScreeningColumn("other_malignancy", "bool", "History of another malignancy"),
    ScreeningColumn("other_malignancy_date", "date", "Diagnosis date of the other malignancy"),
    ScreeningColumn(
        "other_malignancy_type", "str",
        "cervix_in_situ | nonmelanoma_skin | very_low_risk | other",
    ),
    ScreeningColumn("egfr_ml_min_1_73m2", "float", "eGFR (mL/min/1.73 m2)"),
    ScreeningColumn("creatinine_umol_l", "float", "Serum creatinine (used when eGFR missing)"),
    ScreeningColumn("hypertension_uncontrolled", "bool", "Investigator: uncontrolled hypertension"),
    ScreeningColumn("sbp_mmhg", "float", "Systolic blood pressure on treatment"),
    ScreeningColumn("dbp_mmhg", "float", "Diastolic blood pressure on treatment"),
    ScreeningColumn("investigator_excludes", "bool", "Investigator: not suitable"),
    ScreeningColumn("radical_resection", "bool", "Radical (R0) resection performed (NCT07417800)"),
    ScreeningColumn("lost_to_followup_date", "date", "Date the patient was lost to follow-up"),
)
_SPEC = {c.name: c for c in SCREENING_COLUMNS}
_TRUE = {"true", "t", "yes", "y", "1", "1.0"}
_FALSE = {"false", "f", "no", "n", "0", "0.0"}


def validate_screening(df: pd.DataFrame, *, source: str = "screening table") -> pd.DataFrame:
    """Coerce the screening table to its documented types.

    Raises
    ------
    DataValidationError
        Listing every unparseable value (row, patient, column, value, expectation).
    """
    rep = ValidationReport(source=source)
    if "patient_id" not in df.columns:
        rep.add(Problem(None, None, "patient_id", "(missing column)", "a patient_id column"))
        raise DataValidationError(rep)
    out = df.copy()
    out["patient_id"] = out["patient_id"].astype(str)
    for name in out.columns:
        spec = _SPEC.get(name)
        if spec is None or name == "patient_id":
            continue
        col = out[name]
        if spec.kind == "bool":
            if pd.api.types.is_bool_dtype(col) or str(col.dtype) == "boolean":
                out[name] = col.astype("boolean")
                continue
            txt = col.astype("string").str.strip().str.lower()
            val = pd.Series(pd.NA, index=col.index, dtype="boolean")
            val[txt.isin(_TRUE).fillna(False).to_numpy(bool)] = True
            val[txt.isin(_FALSE).fillna(False).to_numpy(bool)] = False
            bad = val.isna() & txt.notna() & (txt != "")
            expected = "true/false (yes/no, 1/0)"
        elif spec.kind == "date":
            val = pd.to_datetime(col, errors="coerce")
            bad = val.isna() & col.notna() & (col.astype("string").str.strip() != "")
            expected = "a date YYYY-MM-DD"
        elif spec.kind in ("float", "int"):
            val = pd.to_numeric(col, errors="coerce")
            bad = val.isna() & col.notna() & (col.astype("string").str.strip() != "")
            expected = "a number"
            if spec.allowed is not None:
                lo, hi = spec.allowed
                bad |= val.notna() & ((val < lo) | (val > hi) |
                                      ((val != val.round()) if spec.kind == "int" else False))
                expected = f"{'an integer' if spec.kind == 'int' else 'a number'} {lo}-{hi}"
        else:
            val = col.astype("string").str.replace(r"^(\d+)\.0$", r"\1", regex=True)
            bad = pd.Series(False, index=col.index)
            expected = "text"
            if spec.allowed is not None:
                val = val.str.strip().str.upper()
                bad = val.notna() & (val != "") & ~val.isin(spec.allowed).fillna(False)
                expected = "one of " + ", ".join(spec.allowed)
        for i in out.index[bad.fillna(False).to_numpy(bool)]:
            rep.add(Problem(int(out.index.get_loc(i)) + 1, str(out.at[i, "patient_id"]), name,
                            col[i], expected))
        out[name] = val
    if out["patient_id"].duplicated().any():
        for i in out.index[out["patient_id"].duplicated(keep=False)]:
            rep.add(Problem(int(out.index.get_loc(i)) + 1, out.at[i, "patient_id"], "patient_id",
                            out.at[i, "patient_id"], "a patient id that occurs once"))
    if rep:
        raise DataValidationError(rep)
    return out


def _scores(df: pd.DataFrame) -> pd.DataFrame:
    """Child-Pugh points and BCLC stage from the clinical scores module, when available."""
    try:
        from hccstrat.clinical import scores
    except ImportError:
        log.info("hccstrat.clinical.scores not available; scores come from the screening table")
        return pd.DataFrame(index=df.index)
    out = pd.DataFrame(index=df.index)
    wanted = ((("child_pugh",), "child_pugh_points"), (("bclc", "bclc_stage"), "bclc_stage"))
    for fns, col in wanted:
        func = next((getattr(scores, f) for f in fns if callable(getattr(scores, f, None))), None)
        if func is None:
            continue
        try:
            res = func(df)
        except HccstratError as err:  # missing inputs: the criterion stays pending
            log.warning("could not compute %s: %s", col, err)
            continue
        if isinstance(res, pd.DataFrame) and col in res.columns:
            out[col] = res[col].to_numpy()
    return out


def _clinical(clinical: pd.DataFrame) -> pd.DataFrame:
    """Clinical table with canonical columns coerced; unparseable values are listed
    (a value that cannot be read must not pass for a missing one: 'pending')."""
    from hccstrat.schema import coerce

    rep = ValidationReport(source="clinical table")
    if "patient_id" not in clinical.columns:
        rep.add(Problem(None, None, "patient_id", "(missing column)", "a patient_id column"))
        raise DataValidationError(rep)
    df = coerce(clinical, rep)
    if rep:
        raise DataValidationError(rep)
    df["patient_id"] = df["patient_id"].astype(str)
    return df


def screening_frame(
    clinical: pd.DataFrame,
    screening: pd.DataFrame | None = None,
    *,
    as_of: str | pd.Timestamp | None = None,
    ltfu_gap_days: int = 180,
) -> pd.DataFrame:
    """Merge the clinical and screening tables into the frame rules are evaluated on.

    Parameters
    ----------
    clinical : DataFrame
        Canonical clinical table (``patient_id`` and any canonical columns).
    screening : DataFrame, optional
        Screening table (:data:`SCREENING_COLUMNS`); values here override clinical ones.
    as_of : date, optional
        Data cut-off used to derive ``lost_to_followup_date`` when it is not given.
    ltfu_gap_days : int
        Days without contact after which a living patient counts as lost.
    """
    df = _clinical(clinical)
    if screening is not None:
        scr = validate_screening(screening)
        unknown = set(df["patient_id"]) ^ set(scr["patient_id"])
        if unknown:
            log.info("%d patient(s) appear in only one of the clinical/screening tables",
                     len(unknown))
        df = df.drop(columns=[c for c in scr.columns if c in df.columns and c != "patient_id"])
        df = df.merge(scr, on="patient_id", how="outer")
    sc = _scores(df)
    for col in ("child_pugh_points", "bclc_stage"):
        if col in sc.columns:
            df[col] = df[col].fillna(pd.Series(sc[col].to_numpy(), index=df.index)) \
                if col in df.columns else sc[col].to_numpy()
    if "bclc_recorded" in df.columns:
        rec = df["bclc_recorded"].astype("string")
        df["bclc_stage"] = df["bclc_stage"].astype("string").fillna(rec) \
            if "bclc_stage" in df.columns else rec
    if "lost_to_followup_date" not in df.columns and "last_followup_date" in df.columns \
            and as_of is not None:
        last = pd.to_datetime(df["last_followup_date"])
        dead = pd.to_datetime(df["death_date"]).notna() if "death_date" in df.columns \
            else pd.Series(False, index=df.index)
        gap = (pd.Timestamp(as_of) - last).dt.days
        df["lost_to_followup_date"] = last.where((gap > ltfu_gap_days) & ~dead)
    return df


def screening_log(result: EligibilityResult, frame: pd.DataFrame | None = None) -> pd.DataFrame:
    """Screening log: one row per screened patient with decision and reasons.

    Columns: ``patient_id, screening_date, decision, first_reason, failed, pending,
    reasons, study, ruleset_version, ruleset_sha256, as_of``.
    """
    pts = result.patients.copy()
    decision = pts["enrolment_status"].map(
        {"eligible": "enrolled", "ineligible": "not eligible", "pending": "pending"})
    first = pts["reasons"].str.split(" | ", regex=False).str[0].fillna("")
    out = pd.DataFrame({"patient_id": pts["patient_id"], "decision": decision,
                        "first_reason": first.where(decision != "enrolled", ""),
                        "failed": pts["failed"], "pending": pts["pending"],
                        "reasons": pts["reasons"]})
    if frame is not None and "screening_date" in frame.columns:
        dates = frame.assign(patient_id=frame["patient_id"].astype(str)).set_index(
            "patient_id")["screening_date"]
        out.insert(1, "screening_date", out["patient_id"].map(dates))
    for k in ("study", "ruleset_version", "ruleset_sha256", "as_of"):
        out[k] = result.metadata[k]
    return out


def _first_failed(result: EligibilityResult, phase: str, status: str) -> pd.Series:
    crit = result.criteria
    sub = crit[(crit["phase"] == phase) & (crit["status"] == status)]
    return sub.groupby("patient_id", sort=False)["criterion"].first()


def consort_counts(
    result: EligibilityResult,
    allocation: pd.DataFrame | None = None,
    *,
    arm_col: str = "arm",
    received_col: str = "received_allocated",
) -> dict:
    """Counts a CONSORT flow diagram needs.

    Parameters
    ----------
    result : EligibilityResult
    allocation : DataFrame, optional
        ``patient_id`` and ``arm`` for the enrolled patients (and optionally a boolean
        ``received_allocated``).

    Returns
    -------
    dict
        ``assessed``, ``excluded`` (with ``not_meeting_criteria``, ``pending`` and
        ``by_criterion``: number of patients whose *first* failed enrolment criterion
        it is), ``enrolled``, and per arm ``allocated``, ``received``,
        ``excluded_postop`` (by criterion), ``pending_postop`` and ``analysed``.
    """
    pts = result.patients
    enrol = pts["enrolment_status"]
    first = _first_failed(result, "enrolment", "not_met")
    out: dict = {
        "study": result.ruleset.study,
        "ruleset_version": result.ruleset.version,
        "assessed": len(pts),
        "excluded": {
            "total": int((enrol != "eligible").sum()),
            "not_meeting_criteria": int((enrol == "ineligible").sum()),
            "pending": int((enrol == "pending").sum()),
            "by_criterion": {k: int(v) for k, v in first.value_counts().sort_index().items()},
        },
        "enrolled": int((enrol == "eligible").sum()),
        "arms": {},
    }
    if allocation is None:
        return out
    alloc = allocation.assign(patient_id=allocation["patient_id"].astype(str))
    post = pts.set_index("patient_id")["postoperative_status"]
    first_post = _first_failed(result, "postoperative", "not_met")
    for arm, grp in alloc.groupby(arm_col, sort=True):
        ids = grp["patient_id"]
        ps = ids.map(post)
        excl = ids[ps.eq("ineligible").to_numpy()].map(first_post).value_counts()
        received = int(grp[received_col].fillna(False).astype(bool).sum()) \
            if received_col in grp.columns else len(grp)
        out["arms"][str(arm)] = {
            "allocated": len(grp),
            "received": received,
            "excluded_postop": {"total": int(ps.eq("ineligible").sum()),
                                **{k: int(v) for k, v in excl.sort_index().items()}},
            "pending_postop": int(ps.eq("pending").sum()),
            "analysed": int(ps.eq("eligible").sum()),
        }
    return out
