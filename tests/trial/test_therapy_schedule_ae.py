"""Doses, calendars, missed visits / lost to follow-up, adverse events."""

from __future__ import annotations

import pandas as pd
import pytest

from hccstrat.exceptions import ConfigError, DataValidationError
from hccstrat.trial.adverse_events import (
    dose_modification,
    expedited_reports,
    safety_table,
    validate_ae_table,
)
from hccstrat.trial.schedule import (
    followup_calendar,
    followup_status,
    surgery_window,
    treatment_calendar,
    visit_status,
)
from hccstrat.trial.therapy import (
    NeoadjuvantProtocol,
    bsa_mosteller,
    haic_doses,
    lenvatinib_reduce,
    lenvatinib_start_dose,
    neoadjuvant_doses,
)


def test_bsa_and_mfolfox6_doses():
    assert bsa_mosteller(170, 70) == pytest.approx(1.8181, abs=1e-4)  # sqrt(170*70/3600)
    d = haic_doses(170, 70)
    assert d["oxaliplatin_mg"] == 155  # 85 * 1.818
    assert d["leucovorin_mg"] == 727
    assert d["fluorouracil_bolus_mg"] == 727
    assert d["fluorouracil_infusion_46h_mg"] == 4363
    assert d["fluorouracil_infusion_mg_per_h"] == pytest.approx(4363 / 46, abs=0.05)
    assert haic_doses(190, 110, bsa_cap_m2=2.0)["oxaliplatin_mg"] == 170
    with pytest.raises(ConfigError, match="implausible"):
        bsa_mosteller(1.7, 70)  # metres instead of cm


def test_lenvatinib_weight_and_reductions():
    assert lenvatinib_start_dose(59.9) == 8
    assert lenvatinib_start_dose(60.0) == 12
    assert [lenvatinib_reduce(12), lenvatinib_reduce(8), lenvatinib_reduce(4)] == [8, 4, 0]
    with pytest.raises(ConfigError):
        lenvatinib_reduce(10)
    tab = neoadjuvant_doses(pd.DataFrame({"patient_id": ["a", "b"], "height_cm": [160, None],
                                          "weight_kg": [55, 80]}))
    assert tab.loc[0, "lenvatinib_mg_day"] == 8 and "missing" in tab.loc[1, "dose_note"]


def test_treatment_calendar_and_surgery_window():
    p = NeoadjuvantProtocol(cycle_days=21, n_cycles=3)
    cal = treatment_calendar("2026-01-05", p)
    haic = cal[cal["event"] == "HAIC mFOLFOX6"]["date"].dt.strftime("%Y-%m-%d").tolist()
    assert haic == ["2026-01-05", "2026-01-26", "2026-02-16"]
    lo, hi = surgery_window("2026-02-16", p)
    assert (lo, hi) == (pd.Timestamp("2026-03-09"), pd.Timestamp("2026-03-30"))
    stop = cal.loc[cal["event"] == "lenvatinib stop", "date"].iloc[0]
    assert stop == lo - pd.Timedelta(days=7)


def test_followup_visits_missed_and_lost():
    pts = pd.DataFrame({"patient_id": ["A", "B", "C", "D"],
                        "surgery_date": ["2024-01-01"] * 4})
    cal = followup_calendar(pts)
    assert len(cal) == 4 * 8 and cal["month"].max() == 24
    first = cal[(cal.patient_id == "A") & (cal.visit == 1)].iloc[0]
    assert first["target_date"] == pd.Timestamp("2024-04-01")  # 91 days
    visits = pd.DataFrame({
        "patient_id": ["A"] * 8 + ["B"] * 3 + ["C"] * 2 + ["D"] * 2,
        "visit_date": list(cal[cal.patient_id == "A"]["target_date"]) +
        list(cal[cal.patient_id == "B"]["target_date"][:3]) +
        [cal[cal.patient_id == "C"]["target_date"].iloc[0],
         cal[cal.patient_id == "C"]["target_date"].iloc[2] + pd.Timedelta(days=20)] +
        list(cal[cal.patient_id == "D"]["target_date"][:2])})
    st = visit_status(cal, visits, as_of="2025-01-15")
    c = st[st.patient_id == "C"].set_index("visit")["status"]
    assert c[1] == "done" and c[2] == "missed" and c[3] == "missed"  # 20 d late: outside window
    fu = followup_status(st,
                         events=pd.DataFrame({"patient_id": ["D"], "event_date": ["2024-08-01"]}))
    fu = fu.set_index("patient_id")
    assert fu.at["A", "status"] == "active"  # visit 4 (month 12) done; later ones upcoming
    assert fu.at["B", "status"] == "active"  # only visit 4 missed so far
    assert fu.at["C", "status"] == "lost_to_followup"
    assert fu.at["D", "status"] == "event"
    st2 = visit_status(cal, visits, as_of="2026-03-01")
    fu2 = followup_status(st2).set_index("patient_id")
    assert fu2.at["A", "status"] == "completed"
    assert fu2.at["B", "status"] == "lost_to_followup"
    assert fu2.at["B", "lost_to_followup_date"] == cal[cal.patient_id == "B"]["target_date"].iloc[2]
    # a phone contact after the missed visits keeps the patient in follow-up
    fu3 = followup_status(st2, contacts=pd.DataFrame(
        {"patient_id": ["B"], "contact_date": [pd.Timestamp("2026-02-01")]}))
    assert fu3.set_index("patient_id").at["B", "status"] != "lost_to_followup"


def _ae():
    return pd.DataFrame({
        "patient_id": ["1", "1", "2", "3", "4"],
        "term": ["Hypertension", "Hypertension", "Peripheral sensory neuropathy", "Colitis",
                 "Hepatic failure"],
        "grade": [2, 3, 1, 3, 5],
        "onset_date": ["2026-01-01", "2026-01-10", "2026-01-05", "2026-02-01", "2026-02-03"],
        "awareness_date": ["2026-01-01 08:00", "2026-01-10 08:00", "2026-01-05", "2026-02-01 09:00",
                           "2026-02-03 10:00"],
        "report_date": [None, None, None, "2026-02-02 08:00", "2026-02-04 12:00"],
        "serious": [False, False, False, True, True],
        "attribution": ["probable", "probable", "possible", "probable", "unlikely"],
    })


def test_ae_validation_and_expedited():
    df = validate_ae_table(_ae())
    assert df["serious"].tolist() == [False, False, False, True, True]
    rep = expedited_reports(_ae(), as_of="2026-03-01").set_index("patient_id")
    assert rep.at["3", "overdue"] == False  # noqa: E712 - 23 h
    assert rep.at["4", "overdue"] == True  # noqa: E712 - 26 h
    assert rep.at["3", "related"] and not rep.at["4", "related"]
    bad = _ae()
    bad.loc[0, "grade"] = 4  # Palmar... max 3 elsewhere; hypertension allows 5
    bad.loc[2, "grade"] = 6
    bad.loc[1, "term"] = "Headache-ish"
    with pytest.raises(DataValidationError) as ei:
        validate_ae_table(bad)
    assert {p.column for p in ei.value.report.problems} == {"grade", "term"}
    pp = pd.DataFrame({"patient_id": ["9"], "term": ["Palmar-plantar erythrodysesthesia syndrome"],
                       "grade": [4], "onset_date": ["2026-01-01"]})
    with pytest.raises(DataValidationError, match=r"1\.\.3"):
        validate_ae_table(pp)


def test_dose_modification_rules():
    assert dose_modification("lenvatinib", "Hypertension", 3, 12).new_dose == 8
    assert dose_modification("lenvatinib", "Hypertension", 2, 12).action == "continue"
    assert dose_modification("lenvatinib", "Proteinuria", 2, 8).new_dose == 4
    assert dose_modification("lenvatinib", "Diarrhea", 3, 4).action == "discontinue"
    assert dose_modification("lenvatinib", "Fatigue", 4, 12).action == "discontinue"
    assert dose_modification("oxaliplatin", "Peripheral sensory neuropathy", 2, 85).new_dose == 65
    assert dose_modification("oxaliplatin", "Peripheral sensory neuropathy", 3, 85).action == \
        "discontinue"
    assert dose_modification("pd1", "Pneumonitis", 3, 200).action == "discontinue"
    assert dose_modification("pd1", "Colitis", 2, 200).action == "interrupt"
    assert dose_modification("pd1", "Hypothyroidism", 2, 200).action == "continue"


def test_safety_table():
    arms = pd.DataFrame({"patient_id": ["1", "2", "3", "4", "5"],
                         "arm": ["HAIC+LEN+PD1", "HAIC+LEN+PD1", "HAIC+LEN+PD1", "resection",
                                 "resection"]})
    tab = safety_table(_ae(), arms).set_index("adverse event")
    assert tab.at["Any AE", "HAIC+LEN+PD1 (n=3)"] == "3 (100.0%)"
    assert tab.at["Grade >= 3", "HAIC+LEN+PD1 (n=3)"] == "2 (66.7%)"
    assert tab.at["Hypertension: any grade", "HAIC+LEN+PD1 (n=3)"] == "1 (33.3%)"
    assert tab.at["Grade 5 (fatal)", "resection (n=2)"] == "1 (50.0%)"


def test_ae_table_bad_values_are_listed_not_dropped():
    from hccstrat.trial.adverse_events import safety_table, validate_ae_table

    ae = pd.DataFrame({"patient_id": ["a", "b", "c"], "term": ["Fatigue"] * 3, "grade": [2, 3, 1],
                       "onset_date": ["2024-01-05", "not a date", None],
                       "serious": ["yes", "no", "maybe"]})
    with pytest.raises(DataValidationError) as err:
        validate_ae_table(ae)
    msg = str(err.value)  # before: TypeError 'Need to pass bool-like values'; dates dropped
    assert "row 2 (patient b), column 'onset_date': got 'not a date'" in msg
    assert "row 3 (patient c), column 'onset_date': got None" in msg
    assert "row 3 (patient c), column 'serious': got 'maybe'" in msg
    ok = ae.iloc[:1].assign(serious="yes")
    assert validate_ae_table(ok)["serious"].tolist() == [True]
    with pytest.raises(DataValidationError, match=r"patient zz.*a patient of the arms table"):
        safety_table(pd.concat([ok, ok.assign(patient_id="zz")]),  # AE of an unknown patient
                     pd.DataFrame({"patient_id": ["a"], "arm": ["X"]}))
    with pytest.raises(DataValidationError, match="column 'arm'"):
        safety_table(ok, pd.DataFrame({"patient_id": ["a"], "group": ["X"]}))


def test_schedule_lists_bad_dates_and_visits_of_unknown_patients():
    pts = pd.DataFrame({"patient_id": ["a", "b"], "surgery_date": ["2024-01-01", "2024-31-01"]})
    with pytest.raises(DataValidationError, match=r"row 2 \(patient b\), column 'surgery_date'"):
        followup_calendar(pts)  # before: a raw pandas ValueError (exit 70 in the CLI)
    cal = followup_calendar(pts.iloc[:1])
    visits = pd.DataFrame({"patient_id": ["a", "zz"], "visit_date": ["2024-04-02", "2024-04-02"]})
    with pytest.raises(DataValidationError, match=r"patient zz.*follow-up calendar"):
        visit_status(cal, visits, as_of="2024-12-31")  # before: the visit was ignored
    with pytest.raises(DataValidationError, match="'visit_date'"):
        visit_status(cal, visits.iloc[:1].assign(visit_date="soon"), as_of="2024-12-31")
