"""Clinical scores: worked examples, every boundary, missing inputs, speed."""

from __future__ import annotations

import doctest
import math
import time

import numpy as np
import pandas as pd
import pytest

from hccstrat.clinical import scores as sc
from hccstrat.clinical.scores import (
    ERASL_POST,
    ERASL_PRE,
    EraslModel,
    albi,
    albi_grade,
    bclc,
    child_pugh,
    compute_scores,
    erasl,
    load_erasl_model,
    scores_lacked,
    tnm,
)
from hccstrat.exceptions import ConfigError, DataValidationError
from hccstrat.schema import validate

#: Liver items of a patient with Child-Pugh 5 (A) and ALBI grade 1.
GOOD_LIVER = {
    "bilirubin_umol_l": 10.0,
    "albumin_g_l": 45.0,
    "inr": 1.0,
    "ascites": "none",
    "encephalopathy": "none",
}
#: A patient with BCLC A / T1b N0 M0 (single 4 cm, no invasion, ECOG 0, CP A).
BASE = {
    **GOOD_LIVER,
    "patient_id": "P",
    "sex": "M",
    "ecog": 0,
    "afp_ng_ml": 100.0,
    "tumour_size_cm": 4.0,
    "tumour_number": 1,
    "macrovascular_invasion": False,
    "extrahepatic_spread": False,
    "mvi": False,
}


def one(**changes) -> pd.DataFrame:
    """One-row frame: BASE with changes; a value of None removes the column."""
    row = {**BASE, **changes}
    return pd.DataFrame([{k: v for k, v in row.items() if v is not None}])


def first(df: pd.DataFrame, col: str):
    v = df[col].iloc[0]
    return None if pd.isna(v) else v


# --------------------------------------------------------------------------- Child-Pugh


@pytest.mark.parametrize(
    ("column", "value", "points"),
    [
        ("bilirubin_umol_l", 33.9, 1),
        ("bilirubin_umol_l", 34.0, 2),  # middle band closed at both ends
        ("bilirubin_umol_l", 50.0, 2),
        ("bilirubin_umol_l", 50.1, 3),
        ("bilirubin_umol_l", 2.0 * 17.1, 2),  # 2 mg/dL converted
        ("albumin_g_l", 35.1, 1),
        ("albumin_g_l", 35.0, 2),
        ("albumin_g_l", 28.0, 2),
        ("albumin_g_l", 2.8 * 10, 2),  # 28.000000000000004 after g/dL -> g/L
        ("albumin_g_l", 27.9, 3),
        ("inr", 1.69, 1),
        ("inr", 1.7, 2),
        ("inr", 2.3, 2),
        ("inr", 2.31, 3),
        ("ascites", "mild", 2),
        ("ascites", "moderate_severe", 3),
        ("encephalopathy", "grade_1_2", 2),
        ("encephalopathy", "grade_3_4", 3),
    ],
)
def test_child_pugh_item_boundaries(column, value, points):
    out = child_pugh(pd.DataFrame([{**GOOD_LIVER, column: value}]))
    # the other four items score 1 each
    assert first(out, "child_pugh_points") == 4 + points


@pytest.mark.parametrize(
    ("items", "points", "cls"),
    [
        ((17, 40, 1.1, "none", "none"), 5, "A"),
        ((40, 40, 1.1, "none", "none"), 6, "A"),
        ((40, 30, 1.1, "none", "none"), 7, "B"),
        ((40, 30, 1.8, "mild", "none"), 9, "B"),
        ((40, 30, 1.8, "mild", "grade_1_2"), 10, "C"),
        ((60, 25, 2.5, "moderate_severe", "grade_3_4"), 15, "C"),
    ],
)
def test_child_pugh_points_and_class(items, points, cls):
    df = pd.DataFrame([dict(zip(sc.CHILD_PUGH_ITEMS, items, strict=True))])
    out = child_pugh(df)
    assert first(out, "child_pugh_points") == points
    assert first(out, "child_pugh_class") == cls
    assert first(out, "child_pugh_missing") is None


def test_child_pugh_class_given_only_when_missing_items_cannot_change_it():
    df = pd.DataFrame(
        {
            # 3 known items score 9 -> 11..15 with two missing: C for sure
            "bilirubin_umol_l": [60.0, 10.0, 10.0, np.nan],
            "albumin_g_l": [25.0, 45.0, np.nan, np.nan],
            "inr": [2.5, np.nan, 1.0, np.nan],
            # row 1: four items 1 point + INR missing -> 5..7: A or B, undecided
            # row 2: 1+1+1+1 known, albumin missing -> 5..7, undecided
            "ascites": [None, "none", "none", None],
            "encephalopathy": [None, "none", "none", None],
        }
    )
    out = child_pugh(df)
    assert out["child_pugh_points"].isna().all()
    assert out["child_pugh_class"].tolist()[0] == "C"
    assert out["child_pugh_class"].iloc[1:].isna().all()
    assert out["child_pugh_missing"].tolist() == [
        "ascites, encephalopathy",
        "inr",
        "albumin_g_l",
        "bilirubin_umol_l, albumin_g_l, inr, ascites, encephalopathy",
    ]


# --------------------------------------------------------------------------- ALBI


def test_albi_worked_examples():
    df = pd.DataFrame({"bilirubin_umol_l": [17.0, 10.0, 100.0], "albumin_g_l": [40.0, 45.0, 25.0]})
    out = albi(df)
    # 0.66*log10(17) - 0.085*40 = -2.5879 (grade 2); -3.165 (1); -0.805 (3)
    np.testing.assert_allclose(
        out["albi_score"], [0.66 * math.log10(17) - 3.4, 0.66 - 3.825, 1.32 - 2.125]
    )
    assert out["albi_score"].round(4).tolist() == [-2.5879, -3.165, -0.805]
    assert out["albi_grade"].tolist() == [2, 1, 3]


def test_albi_grade_boundaries():
    assert albi_grade([-2.60, -2.5999, -1.39, -1.3899, np.nan]).tolist()[:4] == [1, 2, 2, 3]
    assert np.isnan(albi_grade([np.nan])[0])
    # inputs whose score is exactly -2.60 / -1.39 up to floating point
    b1 = 10 ** ((-2.60 + 0.085 * 40.0) / 0.66)  # 16.30 umol/L with albumin 40 g/L
    b2 = 10 ** ((-1.39 + 0.085 * 25.0) / 0.66)  # 13.00 umol/L with albumin 25 g/L
    df = pd.DataFrame(
        {
            "bilirubin_umol_l": [b1, b1 * 1.001, b2, b2 * 1.001],
            "albumin_g_l": [40.0, 40.0, 25.0, 25.0],
        }
    )
    out = albi(df)
    np.testing.assert_allclose(out["albi_score"].iloc[[0, 2]], [-2.60, -1.39])
    assert out["albi_grade"].tolist() == [1, 2, 2, 3]


def test_albi_missing_reasons():
    df = pd.DataFrame(
        {"bilirubin_umol_l": [np.nan, 0.0, 10.0], "albumin_g_l": [40.0, 40.0, np.nan]}
    )
    out = albi(df)
    assert out["albi_grade"].isna().all()
    assert out["albi_missing"].tolist() == [
        "bilirubin_umol_l",
        "bilirubin_umol_l (must be > 0 for the logarithm)",
        "albumin_g_l",
    ]
    assert first(albi(pd.DataFrame({"x": [1]})), "albi_missing") == "bilirubin_umol_l, albumin_g_l"


# --------------------------------------------------------------------------- BCLC


@pytest.mark.parametrize(
    ("changes", "stage"),
    [
        ({"tumour_size_cm": 2.0}, "0"),  # single <= 2 cm, inclusive
        ({"tumour_size_cm": 2.01}, "A"),
        ({"tumour_size_cm": 12.0}, "A"),  # single, any size
        ({"tumour_number": 2, "tumour_size_cm": 3.0}, "A"),  # 2-3 nodules <= 3 cm
        ({"tumour_number": 3, "tumour_size_cm": 3.0}, "A"),
        ({"tumour_number": 3, "tumour_size_cm": 3.1}, "B"),
        ({"tumour_number": 2, "tumour_size_cm": 5.0}, "B"),
        ({"tumour_number": 4, "tumour_size_cm": 1.0}, "B"),
        ({"ecog": 1}, "C"),
        ({"ecog": 2, "tumour_size_cm": 1.0}, "C"),
        ({"ecog": 3}, "D"),
        ({"ecog": 4, "macrovascular_invasion": True}, "D"),
        ({"macrovascular_invasion": True}, "C"),
        ({"extrahepatic_spread": True, "tumour_size_cm": 1.5}, "C"),
        # Child-Pugh C (3+3+3+2+1 = 12): end-stage liver function
        (
            {"bilirubin_umol_l": 60.0, "albumin_g_l": 25.0, "inr": 2.5, "ascites": "mild"},
            "D",
        ),
        # Child-Pugh B (2+2+1+2+1 = 8) counts as preserved (documented convention)
        (
            {
                "bilirubin_umol_l": 40.0,
                "albumin_g_l": 30.0,
                "ascites": "mild",
                "tumour_size_cm": 1.5,
            },
            "0",
        ),
    ],
)
def test_bclc_stages_and_boundaries(changes, stage):
    out = bclc(one(**changes))
    assert first(out, "bclc_stage") == stage
    assert first(out, "bclc_source") == "computed"
    assert first(out, "bclc_missing") is None


@pytest.mark.parametrize(
    ("changes", "stage", "missing"),
    [
        ({"tumour_size_cm": None}, None, "tumour_size_cm"),
        # only "> 5 cm: no" cannot separate <= 2 cm (0) from 2-5 cm (A)
        (
            {"tumour_size_cm": None, "tumour_size_gt_5cm": False},
            None,
            "tumour_size_cm (only tumour_size_gt_5cm given)",
        ),
        ({"tumour_size_cm": None, "tumour_size_gt_5cm": True}, "A", None),
        ({"tumour_number": None, "tumour_multiple": False, "tumour_size_cm": 1.5}, "0", None),
        ({"tumour_number": None, "tumour_multiple": True, "tumour_size_cm": 4.0}, "B", None),
        # 2-3 (A) or >= 4 (B) nodules <= 3 cm: undecidable from "multiple"
        (
            {"tumour_number": None, "tumour_multiple": True, "tumour_size_cm": 2.5},
            None,
            "tumour_number (only tumour_multiple given)",
        ),
        ({"ecog": None}, None, "ecog"),  # could be C or D: never "A"
        ({"ecog": 3, "tumour_size_cm": None, "albumin_g_l": None, "mvi": None}, "D", None),
        # Child-Pugh partially known (5..7 points) still rules out class C
        ({"macrovascular_invasion": True, "albumin_g_l": None}, "C", None),
        (
            {"macrovascular_invasion": True, "albumin_g_l": None, "inr": None, "ascites": None},
            None,
            "albumin_g_l, inr, ascites",
        ),
        ({"macrovascular_invasion": None}, None, "macrovascular_invasion"),
        ({"macrovascular_invasion": True, "tumour_size_cm": None}, "C", None),
    ],
)
def test_bclc_missing_inputs_give_missing_never_wrong(changes, stage, missing):
    out = bclc(one(**changes))
    assert first(out, "bclc_stage") == stage
    assert first(out, "bclc_missing") == missing
    assert first(out, "bclc_source") == (None if stage is None else "computed")


def test_bclc_falls_back_to_recorded_stage_and_says_so():
    df = pd.concat(
        [one(tumour_size_cm=None, bclc_recorded="A"), one(bclc_recorded="B"), one(ecog=None)],
        ignore_index=True,
    )
    out = bclc(df)
    assert out["bclc_stage"].astype("string").tolist() == ["A", "A", pd.NA]
    assert out["bclc_source"].astype("string").tolist() == ["recorded", "computed", pd.NA]
    # the reason the computation failed is kept even when the record is used
    assert out["bclc_missing"].tolist()[0] == "tumour_size_cm"


# --------------------------------------------------------------------------- TNM


@pytest.mark.parametrize(
    ("changes", "t", "stage"),
    [
        ({"tumour_size_cm": 2.0, "mvi": True}, "T1a", "IA"),  # with or without invasion
        ({"tumour_size_cm": 2.0, "mvi": None}, "T1a", "IA"),  # mvi not needed
        ({"tumour_size_cm": 2.1, "mvi": False}, "T1b", "IB"),
        ({"tumour_size_cm": 2.1, "mvi": True}, "T2", "II"),
        ({"tumour_number": 2, "tumour_size_cm": 5.0}, "T2", "II"),  # none > 5 cm
        ({"tumour_number": 3, "tumour_size_cm": 5.01}, "T3", "IIIA"),
        ({"macrovascular_invasion": True, "tumour_size_cm": 1.0}, "T4", "IIIB"),
        ({"macrovascular_invasion": True, "tumour_size_cm": None}, "T4", "IIIB"),
        (
            {
                "tumour_number": None,
                "tumour_multiple": True,
                "tumour_size_cm": None,
                "tumour_size_gt_5cm": True,
            },
            "T3",
            "IIIA",
        ),
    ],
)
def test_tnm_t_and_stage_groups(changes, t, stage):
    out = tnm(one(**changes))
    assert (first(out, "tnm_t"), first(out, "tnm_n"), first(out, "tnm_m")) == (t, "N0", "M0")
    assert first(out, "tnm_stage") == stage
    assert first(out, "tnm_missing") is None


def test_tnm_extrahepatic_spread_is_m1_stage_ivb_whatever_t():
    out = tnm(one(extrahepatic_spread=True, tumour_size_cm=None))
    assert first(out, "tnm_m") == "M1"
    assert first(out, "tnm_n") is None  # nodes vs distant unknown: N not derivable
    assert first(out, "tnm_stage") == "IVB"
    # T itself is undecidable without the size, and the reason says so
    assert first(out, "tnm_t") is None
    assert first(out, "tnm_missing") == "tumour_size_cm"


@pytest.mark.parametrize(
    ("changes", "t", "missing"),
    [
        ({"tumour_size_cm": 4.0, "mvi": None}, None, "mvi"),  # T1b vs T2 undecidable
        ({"macrovascular_invasion": None}, None, "macrovascular_invasion"),
        ({"tumour_number": None}, None, "tumour_number"),
        (
            {"tumour_size_cm": None, "tumour_size_gt_5cm": False},
            None,
            "tumour_size_cm (only tumour_size_gt_5cm given)",
        ),
        ({"extrahepatic_spread": None}, "T1b", "extrahepatic_spread"),
    ],
)
def test_tnm_missing_inputs(changes, t, missing):
    out = tnm(one(**changes))
    assert first(out, "tnm_t") == t
    assert first(out, "tnm_stage") is None
    assert first(out, "tnm_missing") == missing


# --------------------------------------------------------------------------- ERASL


def test_erasl_score_group_and_two_year_risk_with_given_coefficients():
    model = EraslModel(
        "test",
        {"male": 0.5, "log10_afp": 1.0, "mvi": 0.3, "tumour_size_cm": 0.1},
        cutoffs=(1.0, 2.0),
        baseline_rfs_24m=0.8,
        centre=1.0,
        verified=True,
    )
    df = pd.DataFrame(
        {
            "sex": ["M", "F", "F", "F"],
            "afp_ng_ml": [100.0, 0.5, 10.0, 10.0],
            "mvi": [True, False, False, False],
            "tumour_size_cm": [2.0, 10.0, 0.0 + 0.1, 10.0],
        }
    )
    out = erasl(df, model)
    # 0.5 + 2 + 0.3 + 0.2 = 3.0; 0 + 0 + 0 + 1.0 = 1.0 (AFP < 1 counts as 1); 1.01; 2.0
    np.testing.assert_allclose(out["erasl_post_score"], [3.0, 1.0, 1.01, 2.0])
    assert out["erasl_post_group"].tolist() == ["high", "low", "intermediate", "intermediate"]
    np.testing.assert_allclose(out["erasl_post_risk_24m"].iloc[0], 1 - 0.8 ** math.exp(2.0))
    np.testing.assert_allclose(out["erasl_post_risk_24m"].iloc[1], 0.2)  # at the centre


def test_erasl_needs_the_afp_number_and_lists_every_lacking_input():
    df = pd.concat(
        [one(afp_ng_ml=None, afp_ge_400=True), one(sex=None, tumour_size_cm=None, mvi=None)],
        ignore_index=True,
    )
    out = compute_scores(df)
    assert out["erasl_pre_score"].isna().all() and out["erasl_pre_group"].isna().all()
    assert out["erasl_pre_missing"].tolist() == [
        "afp_ng_ml (only afp_ge_400 given; the score needs the number)",
        "sex, tumour_size_cm",
    ]
    assert out["erasl_post_missing"].tolist()[1] == "sex, tumour_size_cm, mvi"


def test_default_erasl_models_are_flagged_provisional_and_give_no_probability():
    assert not ERASL_PRE.verified and not ERASL_POST.verified
    assert set(ERASL_PRE.coefficients) == {
        "male",
        "albi_grade",
        "log10_afp",
        "tumour_size_cm",
        "tumour_multiple",
    }
    assert set(ERASL_POST.coefficients) == set(ERASL_PRE.coefficients) | {"mvi"}
    out = compute_scores(one())
    assert out["erasl_pre_score"].notna().all()
    assert out["erasl_pre_risk_24m"].isna().all()
    assert "provisional" in str(out["erasl_coefficients"].iloc[0])
    assert out.attrs["erasl_verified"] is False
    # terms add up as declared
    expected = sum(
        c * v
        for c, v in zip(ERASL_PRE.coefficients.values(), [1.0, 1.0, 2.0, 4.0, 0.0], strict=True)
    )
    assert out["erasl_pre_score"].iloc[0] == pytest.approx(expected)


def test_load_erasl_model_from_yaml(tmp_path):
    good = tmp_path / "pre.yaml"
    good.write_text(
        "name: ERASL-pre\nsource: test table\nverified: true\n"
        "coefficients: {male: 0.4, log10_afp: 0.2}\ncutoffs: [0.5, 1.0]\nbaseline_rfs_24m: 0.7\n"
    )
    model = load_erasl_model(good)
    assert model.coefficients == {"male": 0.4, "log10_afp": 0.2}
    assert model.cutoffs == (0.5, 1.0) and model.verified and model.baseline_rfs_24m == 0.7
    out = compute_scores(one(), erasl_pre=model)
    assert out["erasl_pre_risk_24m"].iloc[0] == pytest.approx(1 - 0.7 ** math.exp(0.8))
    for bad in (
        "coefficients: {height: 1}\ncutoffs: [0, 1]\n",
        "coefficients: {male: 1}\ncutoffs: [2, 1]\n",
        "coefficients: {male: 1}\ncutoffs: [1]\n",
        "coefficients: {male: one}\ncutoffs: [0, 1]\n",
        "coefficients: {male: 1}\ncutoffs: [0, 1]\nbaseline_rfs_24m: 1.5\n",
    ):
        p = tmp_path / "bad.yaml"
        p.write_text(bad)
        with pytest.raises(ConfigError):
            load_erasl_model(p)


# --------------------------------------------------------------------------- compute_scores


def test_compute_scores_keeps_index_and_puts_patient_id_first():
    df = pd.concat([one(patient_id="A"), one(patient_id="B", ecog=3)]).set_axis([10, 20])
    out = compute_scores(df)
    assert out.index.tolist() == [10, 20]
    assert out.columns[0] == "patient_id"
    for name, (value, missing) in sc.SCORES.items():
        assert value in out.columns and missing in out.columns, name
    assert out["bclc_stage"].tolist() == ["A", "D"]
    assert out["tnm_stage"].tolist() == ["IB", "IB"]


def test_compute_scores_on_a_validated_table_equals_raw_text():
    raw = pd.DataFrame(
        {
            "patient_id": ["P1", "P2"],
            "centre": ["X", "X"],
            "sex": ["M", "F"],
            "ecog": ["0", "1"],
            "bilirubin_umol_l": ["12", "40"],
            "albumin_g_l": ["41", "30"],
            "inr": ["1.0", "1.8"],
            "ascites": [" none", "mild"],  # stray space: coerced
            "encephalopathy": ["none", "none"],
            "afp_ng_ml": ["20", ""],
            "tumour_size_cm": ["2", "6"],
            "tumour_number": ["1", "2"],
            "macrovascular_invasion": ["no", "no"],
            "extrahepatic_spread": ["no", "no"],
            "mvi": ["yes", "no"],
            "bclc_recorded": ["0", "B"],
        }
    )
    typed, report = validate(raw)
    assert not report, report.format()
    a, b = compute_scores(raw), compute_scores(typed)
    pd.testing.assert_frame_equal(a.drop(columns="patient_id"), b.drop(columns="patient_id"))
    assert a["bclc_stage"].tolist() == ["0", "C"]
    assert a["child_pugh_points"].tolist() == [5, 9]  # 2+2+2+2+1
    assert a["tnm_stage"].tolist() == ["IA", "IIIA"]


def test_bad_inputs_raise_a_validation_error_naming_row_and_column():
    with pytest.raises(DataValidationError) as exc:
        compute_scores(pd.concat([one(patient_id="OK"), one(patient_id="BAD", albumin_g_l=400.0)]))
    problems = exc.value.report.problems
    assert [(p.row, p.patient_id, p.column) for p in problems] == [(2, "BAD", "albumin_g_l")]
    with pytest.raises(DataValidationError, match="bilirubin_umol_l"):
        compute_scores(pd.DataFrame({"bilirubin_umol_l": ["abc"]}))
    with pytest.raises(DataValidationError, match="ascites"):
        compute_scores(pd.DataFrame({"ascites": ["lots"]}))


def test_empty_frame_and_absent_columns():
    out = compute_scores(pd.DataFrame({"patient_id": pd.Series([], dtype=str)}))
    assert len(out) == 0 and "bclc_stage" in out.columns
    out = compute_scores(pd.DataFrame(index=range(2)))
    assert out["bclc_stage"].isna().all()
    assert out["bclc_missing"].iloc[0].startswith("ecog")


def _random_complete(n: int, rng: np.random.Generator) -> pd.DataFrame:
    return pd.DataFrame(
        {
            "sex": rng.choice(["M", "F"], n),
            "ecog": rng.choice([0, 1, 2, 3, 4], n, p=[0.6, 0.2, 0.1, 0.05, 0.05]),
            "bilirubin_umol_l": rng.choice([20.0, 34.0, 50.0, 70.0], n, p=[0.7, 0.1, 0.1, 0.1]),
            "albumin_g_l": rng.choice([42.0, 35.0, 28.0, 22.0], n, p=[0.7, 0.1, 0.1, 0.1]),
            "inr": rng.choice([1.0, 1.7, 2.3, 2.6], n, p=[0.7, 0.1, 0.1, 0.1]),
            "ascites": rng.choice(["none", "mild", "moderate_severe"], n, p=[0.8, 0.1, 0.1]),
            "encephalopathy": rng.choice(["none", "grade_1_2", "grade_3_4"], n, p=[0.8, 0.1, 0.1]),
            "afp_ng_ml": rng.lognormal(3, 2, n),
            "tumour_size_cm": rng.choice([1.0, 2.0, 2.5, 3.0, 4.0, 5.0, 7.0], n),
            "tumour_number": rng.choice([1, 2, 3, 4, 6], n),
            "macrovascular_invasion": rng.random(n) < 0.15,
            "extrahepatic_spread": rng.random(n) < 0.1,
            "mvi": rng.random(n) < 0.4,
        }
    )


def test_property_missing_inputs_never_change_a_given_stage():
    rng = np.random.default_rng(7)
    full = _random_complete(20_000, rng)
    truth = compute_scores(full)
    assert truth[["child_pugh_class", "bclc_stage", "tnm_stage"]].notna().all().all()
    partial = full.astype(object)
    for col in partial.columns:
        partial.loc[rng.random(len(partial)) < 0.25, col] = None
    # categorical versions recorded where the number was lost
    partial["tumour_size_gt_5cm"] = np.where(
        partial["tumour_size_cm"].isna(), full["tumour_size_cm"] > 5, None
    )
    partial["tumour_multiple"] = np.where(
        partial["tumour_number"].isna(), full["tumour_number"] >= 2, None
    )
    got = compute_scores(partial)
    for col in ("child_pugh_class", "bclc_stage", "tnm_t", "tnm_stage", "tnm_m"):
        given = got[col].notna()
        assert given.any() and (~given).any(), col
        assert (got.loc[given, col] == truth.loc[given, col]).all(), col
        # and every missing result says why
        missing_col = col.split("_")[0] + (
            "_pugh_missing" if col.startswith("child") else "_missing"
        )
        assert got.loc[~given, missing_col].notna().all(), col


def test_scores_lacked_counts_patients_and_inputs():
    df = pd.concat(
        [one(), one(mvi=None), one(mvi=None, ecog=None), one(ecog=None, bclc_recorded="A")],
        ignore_index=True,
    )
    lacked = scores_lacked(df).set_index("score")
    assert lacked.loc["tnm", "n_missing"] == 2  # ECOG is not a TNM input
    assert lacked.loc["tnm", "inputs"] == "mvi (2)"
    assert lacked.loc["bclc", "n_missing"] == 1 and lacked.loc["bclc", "n_recorded"] == 1
    assert lacked.loc["bclc", "inputs"] == "ecog (2)"
    assert lacked.loc["erasl_post", "inputs"] == "mvi (2)"
    assert lacked.loc["child_pugh", "n_missing"] == 0 and lacked.loc["child_pugh", "inputs"] == ""
    # the same from an already scored table
    pd.testing.assert_frame_equal(scores_lacked(compute_scores(df)), scores_lacked(df))


def test_hundred_thousand_patients_in_well_under_two_seconds():
    rng = np.random.default_rng(0)
    df = _random_complete(100_000, rng)
    df.loc[rng.random(len(df)) < 0.1, "tumour_size_cm"] = np.nan
    compute_scores(df.head(100))  # warm-up (imports)
    t0 = time.perf_counter()
    out = compute_scores(df)
    elapsed = time.perf_counter() - t0
    assert len(out) == 100_000
    assert elapsed < 2.0, f"compute_scores took {elapsed:.2f} s on 100,000 rows"


def test_module_docstring_example_runs():
    assert doctest.testmod(sc, verbose=False).failed == 0


# --------------------------------------------------------------------------- CLI


def _root_app():
    try:
        from hccstrat.cli import app
    except ModuleNotFoundError as err:  # other command modules not written yet
        if err.name and err.name.startswith("hccstrat.cli.") and err.name != "hccstrat.cli.scores":
            pytest.skip(f"hccstrat.cli cannot be imported yet: {err}")
        raise
    return app


def test_cli_scores_writes_csv_and_prints_summary(tmp_path):
    from typer.testing import CliRunner

    app = _root_app()
    src = tmp_path / "in.csv"
    pd.concat(
        [
            one(patient_id="P1", tumour_size_cm=1.8),
            one(patient_id="P2", mvi=None),
            one(patient_id="P3", ecog=None, bclc_recorded="B"),
        ]
    ).assign(centre="X").to_csv(src, index=False)
    out = tmp_path / "res" / "scores.csv"
    res = CliRunner().invoke(app, ["scores", str(src), "--out", str(out)])
    assert res.exit_code == 0, res.output
    assert "BCLC stage" in res.output and "provisional" in res.output
    got = pd.read_csv(out, dtype=str, keep_default_na=False)
    assert got["patient_id"].tolist() == ["P1", "P2", "P3"]
    assert got["bclc_stage"].tolist() == ["0", "A", "B"]
    assert got["bclc_source"].tolist() == ["computed", "computed", "recorded"]
    assert got["tnm_missing"].tolist() == ["", "mvi", ""]
    assert list(tmp_path.joinpath("res").iterdir()) == [out]  # no temporary file left


def test_cli_scores_reports_bad_input_without_writing(tmp_path):
    _root_app()
    from hccstrat.cli import main

    src = tmp_path / "in.csv"
    one(albumin_g_l=400.0).assign(centre="X").to_csv(src, index=False)
    out = tmp_path / "scores.csv"
    assert main(["scores", str(src), "--out", str(out)]) == DataValidationError.exit_code
    assert not out.exists()
    assert main(["scores", str(tmp_path / "nope.csv"), "--out", str(out)]) == 3
