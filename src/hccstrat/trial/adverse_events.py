"""Adverse events: CTCAE v5 terms and grades, seriousness, expedited reports, dose changes.

The catalogue :data:`CTCAE_TERMS` covers the adverse events typical of the regimens
(lenvatinib, HAIC oxaliplatin/5-FU, PD-1 inhibitors, TACE, resection) with their CTCAE
v5.0 system organ class and the highest grade CTCAE allows for the term. Grades are
1 mild, 2 moderate, 3 severe, 4 life-threatening, 5 death.

An AE table has one row per event: ``patient_id, term, grade, onset_date,
awareness_date`` (when site staff learned of it), optional ``report_date``,
``serious`` (ICH E2A criteria: death, life-threatening, hospitalisation, disability,
congenital anomaly, important medical event), ``attribution`` (unrelated, unlikely,
possible, probable, definite) and ``suspect_drug``.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np
import pandas as pd

from hccstrat.exceptions import DataValidationError, Problem, ValidationReport

__all__ = [
    "ATTRIBUTIONS",
    "CTCAE_TERMS",
    "CtcaeTerm",
    "DoseAction",
    "dose_modification",
    "expedited_reports",
    "safety_table",
    "validate_ae_table",
]

ATTRIBUTIONS = ("unrelated", "unlikely", "possible", "probable", "definite")
_RELATED = {"possible", "probable", "definite"}


@dataclass(frozen=True)
class CtcaeTerm:
    """A CTCAE v5.0 term: system organ class and highest allowed grade."""

    term: str
    soc: str
    max_grade: int
    typical_of: tuple[str, ...] = ()


def _t(term, soc, max_grade, *typical):
    return CtcaeTerm(term, soc, max_grade, tuple(typical))


_GI, _INV, _GEN = "Gastrointestinal disorders", "Investigations", \
    "General disorders and administration site conditions"
#: CTCAE v5.0 terms used in the trials (term -> spec).
CTCAE_TERMS: dict[str, CtcaeTerm] = {t.term: t for t in (
    _t("Hypertension", "Vascular disorders", 5, "lenvatinib"),
    _t("Palmar-plantar erythrodysesthesia syndrome", "Skin and subcutaneous tissue disorders", 3,
       "lenvatinib"),
    _t("Proteinuria", "Renal and urinary disorders", 3, "lenvatinib"),
    _t("Diarrhea", _GI, 5, "lenvatinib", "fluorouracil", "pd1"),
    _t("Fatigue", _GEN, 3, "lenvatinib", "pd1", "oxaliplatin"),
    _t("Hypothyroidism", "Endocrine disorders", 5, "lenvatinib", "pd1"),
    _t("Hyperthyroidism", "Endocrine disorders", 5, "pd1"),
    _t("Anorexia", "Metabolism and nutrition disorders", 5, "lenvatinib"),
    _t("Weight loss", _INV, 3, "lenvatinib"),
    _t("Dysphonia", "Respiratory, thoracic and mediastinal disorders", 3, "lenvatinib"),
    _t("Peripheral sensory neuropathy", "Nervous system disorders", 5, "oxaliplatin"),
    _t("Neutrophil count decreased", _INV, 4, "oxaliplatin", "fluorouracil"),
    _t("Platelet count decreased", _INV, 4, "oxaliplatin", "lenvatinib"),
    _t("Anemia", "Blood and lymphatic system disorders", 5, "oxaliplatin"),
    _t("Abdominal pain", _GI, 3, "oxaliplatin", "tace"),
    _t("Nausea", _GI, 3, "oxaliplatin", "fluorouracil", "tace"),
    _t("Vomiting", _GI, 5, "oxaliplatin", "tace"),
    _t("Mucositis oral", _GI, 5, "fluorouracil"),
    _t("Alanine aminotransferase increased", _INV, 4, "oxaliplatin", "pd1", "tace"),
    _t("Aspartate aminotransferase increased", _INV, 4, "oxaliplatin", "pd1", "tace"),
    _t("Blood bilirubin increased", _INV, 4, "tace", "pd1"),
    _t("Hepatic failure", "Hepatobiliary disorders", 5, "surgery", "pd1", "tace"),
    _t("Fever", _GEN, 5, "tace"),
    _t("Rash maculo-papular", "Skin and subcutaneous tissue disorders", 3, "pd1"),
    _t("Pruritus", "Skin and subcutaneous tissue disorders", 3, "pd1"),
    _t("Colitis", _GI, 5, "pd1"),
    _t("Pneumonitis", "Respiratory, thoracic and mediastinal disorders", 5, "pd1"),
    _t("Adrenal insufficiency", "Endocrine disorders", 5, "pd1"),
    _t("Hemorrhage", "Vascular disorders", 5, "lenvatinib", "surgery"),
    _t("Ascites", _GI, 5, "surgery", "tace"),
    _t("Wound infection", "Infections and infestations", 5, "surgery"),
)}
_SERIOUS_CRITERIA = ("death", "life_threatening", "hospitalisation", "disability",
                     "congenital_anomaly", "important_medical_event")
_IMMUNE = {"Colitis", "Pneumonitis", "Hypothyroidism", "Hyperthyroidism", "Adrenal insufficiency",
           "Rash maculo-papular", "Alanine aminotransferase increased",
           "Aspartate aminotransferase increased", "Blood bilirubin increased"}


def validate_ae_table(ae: pd.DataFrame, *, source: str = "adverse events") -> pd.DataFrame:
    """Check and coerce an AE table; derive ``serious`` when grade is 4 or 5.

    Raises
    ------
    DataValidationError
        Unknown CTCAE terms, grades outside 1..max grade of the term, unknown
        attribution, missing or unparseable dates, a ``serious`` value other than
        yes/no, awareness before onset, grade 5 not marked serious.
    """
    rep = ValidationReport(source=source)
    for col in ("patient_id", "term", "grade", "onset_date"):
        if col not in ae.columns:
            rep.add(Problem(None, None, col, "(missing column)", "this AE column"))
    if rep:
        raise DataValidationError(rep)
    out = ae.copy().reset_index(drop=True)
    out["patient_id"] = out["patient_id"].astype(str)
    out["grade"] = pd.to_numeric(out["grade"], errors="coerce")
    for c in ("onset_date", "awareness_date", "report_date"):
        if c in out.columns:
            raw = out[c]
            out[c] = pd.to_datetime(raw, errors="coerce", format="ISO8601")
            given = raw.notna() & (raw.astype("string").str.strip() != "")
            for i in out.index[(out[c].isna() & (given | (c == "onset_date"))).to_numpy(bool)]:
                rep.add(Problem(i + 1, out.at[i, "patient_id"], c, raw[i] if given[i] else None,
                                "a date YYYY-MM-DD"))
    if "awareness_date" not in out.columns:
        out["awareness_date"] = out["onset_date"]
    out["serious"] = _serious(out, rep)
    for i, r in out.iterrows():
        spec = CTCAE_TERMS.get(str(r["term"]))
        where = (i + 1, r["patient_id"])
        if spec is None:
            rep.add(Problem(*where, "term", r["term"], "a CTCAE v5.0 term in CTCAE_TERMS"))
        elif not (pd.notna(r["grade"]) and 1 <= r["grade"] <= spec.max_grade
                  and float(r["grade"]).is_integer()):
            rep.add(Problem(*where, "grade", r["grade"], f"an integer 1..{spec.max_grade} for "
                            f"{spec.term}"))
        att = r.get("attribution")
        if att is not None and pd.notna(att) and str(att) not in ATTRIBUTIONS:
            rep.add(Problem(*where, "attribution", att, f"one of {ATTRIBUTIONS}"))
        if pd.notna(r["awareness_date"]) and pd.notna(r["onset_date"]) and \
                r["awareness_date"] < r["onset_date"]:
            rep.add(Problem(*where, "awareness_date", r["awareness_date"], "on or after onset"))
        if r["grade"] == 5 and r["serious"] is False:
            rep.add(Problem(*where, "serious", False, "true: a grade 5 AE (death) is serious"))
    if rep:
        raise DataValidationError(rep)
    out["serious"] = out["serious"].fillna(out["grade"] >= 4).astype(bool)
    out["grade"] = out["grade"].astype(int)
    return out


def _serious(ae: pd.DataFrame, rep: ValidationReport) -> pd.Series:
    """The ``serious`` column as booleans (yes/no, true/false, 1/0; blank: derived)."""
    if "serious" not in ae.columns:
        return pd.Series(pd.NA, index=ae.index, dtype="boolean")
    txt = ae["serious"].astype("string").str.strip().str.lower().str.replace(
        r"^([01])\.0$", r"\1", regex=True)
    val = pd.Series(pd.NA, index=ae.index, dtype="boolean")
    val[txt.isin(("true", "yes", "y", "1")).fillna(False).to_numpy(bool)] = True
    val[txt.isin(("false", "no", "n", "0")).fillna(False).to_numpy(bool)] = False
    for i in ae.index[(val.isna() & txt.notna() & (txt != "")).to_numpy(bool)]:
        rep.add(Problem(i + 1, ae.at[i, "patient_id"], "serious", ae.at[i, "serious"],
                        "yes/no (blank: derived from the grade)"))
    return val


def expedited_reports(ae: pd.DataFrame, *, hours: float = 24.0, as_of=None) -> pd.DataFrame:
    """Serious AEs needing an expedited report within ``hours`` of awareness.

    Returns
    -------
    DataFrame
        The serious AEs with ``report_due`` (awareness + hours), ``related``,
        ``overdue`` (report later than due, or not yet reported and ``as_of`` past due)
        and ``hours_to_report``.
    """
    df = validate_ae_table(ae)
    sae = df[df["serious"]].copy()
    sae["report_due"] = sae["awareness_date"] + pd.Timedelta(hours=hours)
    rd = sae["report_date"] if "report_date" in sae.columns else pd.Series(pd.NaT, index=sae.index)
    sae["hours_to_report"] = (rd - sae["awareness_date"]).dt.total_seconds() / 3600
    now = pd.Timestamp(as_of) if as_of is not None else pd.Timestamp.now()
    sae["overdue"] = np.where(rd.notna(), rd > sae["report_due"], now > sae["report_due"])
    att = sae["attribution"] if "attribution" in sae.columns else pd.Series("", index=sae.index)
    sae["related"] = att.astype(str).isin(_RELATED).to_numpy()
    return sae.reset_index(drop=True)


@dataclass(frozen=True)
class DoseAction:
    """A dose-modification decision."""

    drug: str
    action: str  # continue | interrupt | interrupt_then_reduce | reduce | discontinue
    new_dose: float | None
    rule: str


def dose_modification(drug: str, term: str, grade: int, current_dose: float) -> DoseAction:
    """Dose modification for one AE (simplified label-style rules).

    - lenvatinib: grade 1 → continue; grade 2 tolerable → continue, intolerable handled
      as grade 3; grade 3 → interrupt until <= grade 1, resume one level lower
      (12 → 8 → 4 → stop); grade 4 → discontinue. Hypertension grade 3 → interrupt then
      reduce; proteinuria grade >= 2 (>= 2 g/24 h) → interrupt then reduce.
    - oxaliplatin: sensory neuropathy grade 2 → reduce to 65 mg/m² (dose in mg/m²);
      grade >= 3 → discontinue oxaliplatin; neutropenia/thrombocytopenia grade >= 3
      → delay the cycle and reduce to 65 mg/m².
    - fluorouracil: grade >= 3 haematological or GI toxicity → reduce by 20 %.
    - pd1: immune-related grade 2 → interrupt (withhold); grade 3 → interrupt
      (pneumonitis, colitis, hepatitis markers: discontinue); grade 4 → discontinue.
      Endocrine AEs (hypo/hyperthyroidism) → continue with replacement.
    """
    from hccstrat.trial.therapy import lenvatinib_reduce

    drug = drug.lower()
    if drug == "lenvatinib":
        if grade >= 4 and term not in {"Hypertension"}:
            return DoseAction(drug, "discontinue", 0, "grade 4 AE on lenvatinib")
        if (term == "Proteinuria" and grade >= 2) or grade >= 3:
            new = lenvatinib_reduce(int(current_dose))
            act = "discontinue" if new == 0 else "interrupt_then_reduce"
            return DoseAction(drug, act, new, f"{term} grade {grade}: interrupt to <= grade 1, "
                              "resume one level lower")
        return DoseAction(drug, "continue", current_dose, f"grade {grade}: no change")
    if drug == "oxaliplatin":
        if term == "Peripheral sensory neuropathy":
            if grade >= 3:
                return DoseAction(drug, "discontinue", 0, "neuropathy grade >= 3")
            if grade == 2:
                return DoseAction(drug, "reduce", min(current_dose, 65.0),
                                  "persistent neuropathy grade 2: 65 mg/m2")
        if term in {"Neutrophil count decreased", "Platelet count decreased"} and grade >= 3:
            return DoseAction(drug, "interrupt_then_reduce", min(current_dose, 65.0),
                              "grade >= 3 cytopenia: delay until recovery, 65 mg/m2")
        return DoseAction(drug, "continue", current_dose, f"grade {grade}: no change")
    if drug in {"fluorouracil", "5-fu"}:
        if grade >= 3 and term in {"Neutrophil count decreased", "Platelet count decreased",
                                   "Diarrhea", "Mucositis oral", "Vomiting"}:
            return DoseAction("fluorouracil", "interrupt_then_reduce", round(current_dose * 0.8, 1),
                              "grade >= 3: delay and reduce by 20 %")
        return DoseAction("fluorouracil", "continue", current_dose, f"grade {grade}: no change")
    if drug in {"pd1", "pd-1"}:
        if term in {"Hypothyroidism", "Hyperthyroidism"} and grade <= 3:
            return DoseAction("pd1", "continue" if grade < 3 else "interrupt", current_dose,
                              "endocrine irAE: hormone replacement")
        if grade >= 4 or (grade >= 3 and term in {"Pneumonitis", "Colitis",
                                                  "Alanine aminotransferase increased",
                                                  "Aspartate aminotransferase increased",
                                                  "Blood bilirubin increased"}):
            return DoseAction("pd1", "discontinue", 0, f"{term} grade {grade}: stop permanently")
        if grade >= 2 and term in _IMMUNE:
            return DoseAction("pd1", "interrupt", current_dose,
                              "immune-related grade >= 2: withhold until <= grade 1")
        return DoseAction("pd1", "continue", current_dose, f"grade {grade}: no change")
    return DoseAction(drug, "continue", current_dose, "no rule for this drug")


def safety_table(ae: pd.DataFrame, arms: pd.DataFrame, *, arm_col: str = "arm",
                 top_terms: int | None = 15) -> pd.DataFrame:
    """Patients with AEs by arm: any grade and grade >= 3, overall and per term.

    Each patient counts once per row (worst grade). Percentages use the number of
    patients in the arm (safety population) as denominator.
    """
    df = validate_ae_table(ae)
    rep = ValidationReport(source="arms table")
    for col in ("patient_id", arm_col):
        if col not in arms.columns:
            rep.add(Problem(None, None, col, "(missing column)", "this column of the arms table"))
    if rep:
        raise DataValidationError(rep)
    arms = arms.assign(patient_id=arms["patient_id"].astype(str))
    unknown = ~df["patient_id"].isin(arms["patient_id"])
    if unknown.any():  # an AE is never dropped from the safety table silently
        rep.source = "adverse events"
        rep.extend([Problem(i + 1, pid, "patient_id", pid, "a patient of the arms table")
                    for i, pid in df["patient_id"][unknown].items()])
        raise DataValidationError(rep, hint="add the patients to the arms table or correct "
                                  "their ids; nothing was written")
    n_arm = arms.groupby(arm_col)["patient_id"].nunique()
    df = df.merge(arms[["patient_id", arm_col]], on="patient_id", how="inner")

    def row(label: str, sub: pd.DataFrame, min_grade: int = 1, serious: bool = False) -> dict:
        out = {"adverse event": label}
        for a, n in n_arm.items():
            s = sub[(sub[arm_col] == a) & (sub["grade"] >= min_grade)]
            if serious:
                s = s[s["serious"]]
            k = s["patient_id"].nunique()
            out[f"{a} (n={n})"] = f"{k} ({100 * k / n:.1f}%)" if n else "0"
        return out

    rows = [row("Any AE", df), row("Grade >= 3", df, 3), row("Serious AE", df, serious=True),
            row("Grade 5 (fatal)", df, 5)]
    terms = df.groupby("term")["patient_id"].nunique().sort_values(ascending=False)
    for t in terms.index[: top_terms or len(terms)]:
        rows.append(row(f"{t}: any grade", df[df["term"] == t]))
        rows.append(row(f"{t}: grade >= 3", df[df["term"] == t], 3))
    return pd.DataFrame(rows)
