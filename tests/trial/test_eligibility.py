"""Eligibility rule sets: every criterion of both studies, with boundary cases."""

from __future__ import annotations

import pandas as pd
import pytest

from hccstrat.exceptions import ConfigError, DataValidationError
from hccstrat.trial.eligibility import evaluate, load_ruleset, parse_ruleset
from hccstrat.trial.screening import consort_counts, screening_frame, screening_log

AS_OF = "2026-06-30"


def base_pre() -> dict:
    """A patient meeting every NCT07282184 criterion."""
    return dict(
        patient_id="P1", age=60.0, ecog=0, histology="HCC", surgery_date="2026-01-20",
        mri_date="2026-01-01", screening_date="2026-01-10", consent=True, bclc_stage="A",
        planned_curative_resection=True, child_pugh_points=5, mri_quality_acceptable=True,
        followup_2y_possible=True, other_malignancy=False, hypersensitivity_oxaliplatin=False,
        hypersensitivity_fluorouracil=False, hypersensitivity_pd1=False,
        hypersensitivity_lenvatinib=False, nyha_class=1, egfr_ml_min_1_73m2=85.0,
        hypertension_uncontrolled=False, investigator_excludes=False,
        last_followup_date="2026-06-01",
    )


def screen(**changes):
    row = base_pre() | changes
    res = evaluate(pd.DataFrame([row]), "NCT07282184", as_of=AS_OF)
    return res, res.criteria.set_index("criterion")["status"]


def test_base_patient_is_eligible():
    res, st = screen()
    assert res.status_of("P1") == "eligible", res.patients["reasons"].iloc[0]
    assert (st == "met").all()


@pytest.mark.parametrize(
    ("changes", "crit", "expected"),
    [
        ({"age": 75.0}, "INC-01", "met"),
        ({"age": 75.9}, "INC-01", "met"),  # completed years
        ({"age": 76.0}, "INC-01", "not_met"),
        ({"age": 18.0}, "INC-01", "met"),
        ({"age": 17.9}, "INC-01", "not_met"),
        ({"age": None}, "INC-01", "pending"),
        ({"consent": False}, "INC-02", "not_met"),
        ({"consent": None}, "INC-02", "pending"),
        ({"bclc_stage": "0"}, "INC-03", "met"),
        ({"bclc_stage": "B"}, "INC-03", "not_met"),
        ({"planned_curative_resection": False}, "INC-04", "not_met"),
        ({"child_pugh_points": 7}, "INC-05", "met"),
        ({"child_pugh_points": 8}, "INC-05", "not_met"),
        ({"ecog": 1}, "INC-06", "met"),
        ({"ecog": 2}, "INC-06", "not_met"),
        ({"mri_date": "2025-12-11"}, "INC-07", "met"),  # 30 days
        ({"mri_date": "2025-12-10"}, "INC-07", "met"),  # 31 days
        ({"mri_date": "2025-12-09"}, "INC-07", "not_met"),  # 32 days
        ({"mri_date": "2026-01-11"}, "INC-07", "not_met"),  # after screening
        ({"mri_date": None}, "INC-07", "pending"),
        ({"mri_quality_acceptable": False}, "INC-08", "not_met"),
        ({"followup_2y_possible": False}, "INC-09", "not_met"),
        ({"histology": "ICC"}, "EXC-01", "not_met"),
        ({"histology": "cHCC-CCA"}, "EXC-01", "not_met"),
        ({"histology": None}, "EXC-01", "pending"),
        # other malignancy: within 5 years excluded unless exempt type
        ({"other_malignancy": True, "other_malignancy_date": "2021-03-01",
          "other_malignancy_type": "other"}, "EXC-02", "not_met"),  # 4.9 y
        ({"other_malignancy": True, "other_malignancy_date": "2020-11-01",
          "other_malignancy_type": "other"}, "EXC-02", "met"),  # 5.2 y
        ({"other_malignancy": True, "other_malignancy_date": "2024-01-01",
          "other_malignancy_type": "cervix_in_situ"}, "EXC-02", "met"),
        ({"other_malignancy": True, "other_malignancy_date": "2024-01-01",
          "other_malignancy_type": "nonmelanoma_skin"}, "EXC-02", "met"),
        ({"other_malignancy": True, "other_malignancy_date": "2024-01-01",
          "other_malignancy_type": "very_low_risk"}, "EXC-02", "met"),
        ({"other_malignancy": True, "other_malignancy_date": None,
          "other_malignancy_type": "other"}, "EXC-02", "pending"),
        # death / loss within 90 days of surgery (2026-01-20 + 90 d = 2026-04-20)
        ({"death_date": "2026-04-20"}, "EXC-03", "not_met"),
        ({"death_date": "2026-04-21"}, "EXC-03", "met"),
        ({"lost_to_followup_date": "2026-03-01"}, "EXC-03", "not_met"),
        ({"surgery_date": None}, "EXC-03", "pending"),
        ({"hypersensitivity_pd1": True}, "EXC-04", "not_met"),
        ({"hypersensitivity_lenvatinib": True}, "EXC-04", "not_met"),
        ({"hypersensitivity_oxaliplatin": None}, "EXC-04", "pending"),
        ({"nyha_class": 2}, "EXC-05", "met"),
        ({"nyha_class": 3}, "EXC-05", "not_met"),
        ({"egfr_ml_min_1_73m2": 30.0}, "EXC-06", "met"),
        ({"egfr_ml_min_1_73m2": 29.0}, "EXC-06", "not_met"),
        ({"egfr_ml_min_1_73m2": None, "creatinine_umol_l": 300.0}, "EXC-06", "not_met"),
        ({"egfr_ml_min_1_73m2": None, "creatinine_umol_l": 90.0}, "EXC-06", "met"),
        ({"hypertension_uncontrolled": True}, "EXC-07", "not_met"),
        ({"hypertension_uncontrolled": None, "sbp_mmhg": 159.0, "dbp_mmhg": 99.0}, "EXC-07",
         "met"),
        ({"hypertension_uncontrolled": None, "sbp_mmhg": 160.0, "dbp_mmhg": 80.0}, "EXC-07",
         "not_met"),
        ({"investigator_excludes": True}, "EXC-08", "not_met"),
    ],
)
def test_nct07282184_boundaries(changes, crit, expected):
    res, st = screen(**changes)
    assert st[crit] == expected, res.criteria.set_index("criterion").at[crit, "reason"]
    overall = {"met": "eligible", "not_met": "ineligible", "pending": "pending"}[expected]
    assert res.status_of("P1") == overall


def test_death_window_pending_until_elapsed():
    row = base_pre() | {"surgery_date": "2026-06-01", "last_followup_date": "2026-06-15"}
    res = evaluate(pd.DataFrame([row]), "NCT07282184", as_of="2026-07-01")
    st = res.criteria.set_index("criterion")["status"]
    assert st["EXC-03"] == "pending"
    assert res.patients.at[0, "enrolment_status"] == "eligible"
    assert res.patients.at[0, "postoperative_status"] == "pending"
    res = evaluate(pd.DataFrame([row]), "NCT07282184", as_of="2026-09-15")
    assert res.criteria.set_index("criterion").at["EXC-03", "status"] == "met"


def test_reasons_name_values():
    res, _ = screen(age=76.0)
    assert "INC-01" in res.patients.at[0, "failed"]
    assert "age=76" in res.patients.at[0, "reasons"]


def base_rct() -> dict:
    return dict(patient_id="R1", age=50.0, histology="HCC", margin_status="R0",
                adjuvant="TACE", surgery_date="2024-01-01", last_followup_date="2026-01-01")


@pytest.mark.parametrize(
    ("changes", "crit", "expected"),
    [
        ({}, None, "eligible"),
        ({"age": 18.0}, "INC-01", "met"),
        ({"age": 17.99}, "INC-01", "not_met"),
        ({"histology": "ICC"}, "INC-02", "not_met"),
        ({"margin_status": "R1"}, "INC-03", "not_met"),
        ({"margin_status": None}, "INC-03", "pending"),
        ({"margin_status": "R1", "radical_resection": True}, "INC-03", "met"),
        ({"adjuvant": None}, "INC-04", "pending"),
        ({"adjuvant": "sorafenib"}, "INC-04", "not_met"),
        ({"last_followup_date": None}, "INC-05", "pending"),
    ],
)
def test_nct07417800(changes, crit, expected):
    res = evaluate(pd.DataFrame([base_rct() | changes]), "NCT07417800", as_of=AS_OF)
    if crit is None:
        assert res.status_of("R1") == expected
    else:
        assert res.criteria.set_index("criterion").at[crit, "status"] == expected


def test_ruleset_versioned_and_validated():
    rs = load_ruleset("nct07282184")
    assert rs.version == "1.0.0" and len(rs.sha256) == 64
    assert {c.id for c in rs.criteria} >= {"INC-01", "EXC-08"}
    with pytest.raises(ConfigError, match="unknown op"):
        parse_ruleset("study: X\nversion: '1'\ncriteria:\n  - {id: A, kind: inclusion, "
                      "text: t, rule: {field: age, op: bogus}}\n")
    with pytest.raises(ConfigError, match="duplicate"):
        parse_ruleset("study: X\nversion: '1'\ncriteria:\n"
                      "  - {id: A, kind: inclusion, text: t, rule: {field: a, op: is_true}}\n"
                      "  - {id: A, kind: inclusion, text: t, rule: {field: a, op: is_true}}\n")
    with pytest.raises(ConfigError, match="unknown rule set"):
        load_ruleset("NCT000")


def test_screening_frame_log_and_consort():
    rows = [base_pre() | {"patient_id": f"P{i}"} for i in range(6)]
    rows[1]["age"] = 80.0
    rows[2]["child_pugh_points"] = 9
    rows[2]["age"] = 80.0  # first failed criterion is INC-01
    rows[3]["consent"] = None
    rows[4]["histology"] = "ICC"
    clinical = pd.DataFrame(rows)
    scr_cols = ["patient_id", "consent"]
    screening = clinical[scr_cols].copy()
    screening["consent"] = screening["consent"].map({True: "yes", None: ""})
    frame = screening_frame(clinical.drop(columns=["consent"]), screening, as_of=AS_OF)
    res = evaluate(frame, "NCT07282184", as_of=AS_OF)
    logdf = screening_log(res, frame)
    assert list(logdf["decision"]) == ["enrolled", "not eligible", "not eligible", "pending",
                                       "enrolled", "enrolled"]
    assert logdf.loc[1, "first_reason"].startswith("INC-01")
    alloc = pd.DataFrame({"patient_id": ["P0", "P4", "P5"], "arm": ["A", "A", "B"],
                          "received_allocated": [True, False, True]})
    counts = consort_counts(res, alloc)
    assert counts["assessed"] == 6 and counts["enrolled"] == 3
    assert counts["excluded"] == {"total": 3, "not_meeting_criteria": 2, "pending": 1,
                                  "by_criterion": {"INC-01": 2}}
    assert counts["arms"]["A"]["allocated"] == 2 and counts["arms"]["A"]["received"] == 1
    assert counts["arms"]["A"]["excluded_postop"] == {"total": 1, "EXC-01": 1}
    assert counts["arms"]["A"]["analysed"] == 1 and counts["arms"]["B"]["analysed"] == 1


def test_screening_table_bad_values_reported():
    bad = pd.DataFrame({"patient_id": ["a", "b"], "consent": ["yes", "maybe"],
                        "screening_date": ["2026-01-01", "notadate"]})
    with pytest.raises(DataValidationError) as ei:
        screening_frame(pd.DataFrame({"patient_id": ["a", "b"]}), bad)
    assert len(ei.value.report) == 2


def test_unreadable_or_impossible_screening_values_are_not_pending():
    """An unreadable age or an impossible Child-Pugh score used to pass as 'data missing'
    (pending) or 'not met'; they are errors naming row, patient and column."""
    clin = pd.DataFrame({"patient_id": ["a", "b"], "age": [60, "abc"],
                         "mri_date": ["2026-01-01", "2026-13-01"]})
    with pytest.raises(DataValidationError) as ei:
        screening_frame(clin)
    msg = str(ei.value)
    assert "row 2 (patient b), column 'age': got 'abc'" in msg and "'mri_date'" in msg
    scr = pd.DataFrame({"patient_id": ["a", "b"], "child_pugh_points": [5, 20],
                        "bclc_stage": ["a", "Z"], "nyha_class": [1, 5]})
    with pytest.raises(DataValidationError) as ei:
        screening_frame(pd.DataFrame({"patient_id": ["a", "b"]}), scr)
    assert {(p.patient_id, p.column) for p in ei.value.report.problems} == {
        ("b", "child_pugh_points"), ("b", "bclc_stage"), ("b", "nyha_class")}
    with pytest.raises(DataValidationError, match="patient_id"):
        screening_frame(pd.DataFrame({"id": ["a"]}))
    # a missing Child-Pugh score stays a pending criterion ('needs data'), not an exclusion
    frame = screening_frame(pd.DataFrame({"patient_id": ["a"]}), scr.iloc[:1].assign(
        child_pugh_points=[None]))
    crit = evaluate(frame, load_ruleset("NCT07282184"), as_of="2026-07-01").criteria
    assert crit.set_index("criterion").loc["INC-05", "status"] == "pending"
