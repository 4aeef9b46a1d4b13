"""Canonical schema: coercion, validation and categorical versions."""

from __future__ import annotations

import pandas as pd
import pytest

from hccstrat.exceptions import DataValidationError
from hccstrat.schema import COLUMNS, Cutoff, canonical_columns, spec, validate, validate_or_raise


def _valid_rows() -> pd.DataFrame:
    return pd.DataFrame(
        {
            "patient_id": ["P1", "P2"],
            "centre": ["A", "B"],
            "age": ["54", "67.5"],
            "sex": ["M", "F"],
            "albumin_g_l": [41.0, 36.5],
            "bilirubin_umol_l": [12.0, 30.1],
            "afp_ng_ml": [25.0, 1200.0],
            "tumour_size_cm": [2.0, 5.1],
            "tumour_number": ["1", "2"],
            "cirrhosis": ["yes", "no"],
            "surgery_date": ["2020-01-10", "2020-03-01"],
            "recurrence": ["true", "false"],
            "recurrence_date": ["2021-02-01", ""],
            "death": [False, False],
            "last_followup_date": ["2022-01-10", "2022-03-01"],
        }
    )


def test_every_column_has_a_known_kind_and_unique_name():
    names = [c.name for c in COLUMNS]
    assert len(names) == len(set(names))
    assert {c.kind for c in COLUMNS} <= {"str", "float", "int", "bool", "category", "date"}
    # numbers carry a unit in the name or the spec, categories list their values
    for c in COLUMNS:
        if c.kind == "category":
            assert c.categories
    assert spec("albumin_g_l").unit == "g/L"
    assert "afp_ge_400" in canonical_columns("labs")


def test_valid_table_coerces_types_and_fills_categorical_versions():
    table, report = validate(_valid_rows())
    assert not report, report.format()
    assert table["age"].tolist() == [54.0, 67.5]
    assert str(table["tumour_number"].dtype) == "Int64"
    assert table["cirrhosis"].tolist() == [True, False]
    assert table["surgery_date"].dt.year.tolist() == [2020, 2020]
    assert table["afp_ge_400"].tolist() == [False, True]
    # 5 cm is not > 5 cm; 5.1 is
    assert table["tumour_size_gt_5cm"].tolist() == [False, True]
    assert table["tumour_multiple"].tolist() == [False, True]


def test_categorical_version_alone_is_kept_and_contradiction_reported():
    df = _valid_rows().drop(columns=["afp_ng_ml"]).assign(afp_ge_400=["no", "yes"])
    table, report = validate(df)
    assert not report
    assert table["afp_ge_400"].tolist() == [False, True]
    bad = _valid_rows().assign(afp_ge_400=["yes", "yes"])  # P1 has AFP 25
    _, report = validate(bad)
    [p] = report.problems
    assert (p.row, p.patient_id, p.column) == (1, "P1", "afp_ge_400")
    assert "afp_ng_ml >= 400" in p.expected


def test_cutoff_operators():
    s = pd.Series([399.9, 400.0, None])
    assert Cutoff("afp_ng_ml", ">=", 400).apply(s).tolist() == [False, True, pd.NA]
    assert Cutoff("tumour_size_cm", ">", 5).apply(pd.Series([5.0, 5.01])).tolist() == [False, True]


@pytest.mark.parametrize(
    ("column", "value", "fragment"),
    [
        ("albumin_g_l", 400, "between 5 and 70"),
        ("age", -3, "between 0 and 120"),
        ("sex", "X", "one of 'M', 'F'"),
        ("cirrhosis", "maybe", "true/false"),
        ("surgery_date", "10/01/2020", "YYYY-MM-DD"),
        ("tumour_number", "1.5", "an integer"),
        ("recurrence_date", "2019-01-01", "on or after surgery_date"),
    ],
)
def test_each_bad_value_is_reported_with_row_patient_column_and_expectation(
    column, value, fragment
):
    df = _valid_rows()
    df[column] = df[column].astype(object)
    df.loc[0, column] = value
    _, report = validate(df)
    hits = [p for p in report.problems if p.column == column and p.row == 1]
    assert hits, report.format()
    assert hits[0].patient_id == "P1"
    assert fragment in hits[0].expected


def test_duplicate_ids_unknown_columns_and_missing_required_all_reported_together():
    df = _valid_rows()
    df.loc[1, "patient_id"] = "P1"
    df["shoe_size"] = [42, 43]
    df = df.drop(columns=["centre"])
    with pytest.raises(DataValidationError) as info:
        validate_or_raise(df, source="test.csv")
    report = info.value.report
    cols = sorted({p.column for p in report.problems})
    assert cols == ["centre", "patient_id", "shoe_size"]
    assert sum(p.column == "patient_id" for p in report.problems) == 2
    assert "test.csv" in str(info.value)


def test_outcome_consistency_checks():
    df = _valid_rows()
    df.loc[1, "recurrence_date"] = "2021-01-01"  # recurrence false but date given
    df["death"] = [True, False]  # death true without date
    _, report = validate(df)
    got = {(p.row, p.column) for p in report.problems}
    assert (2, "recurrence") in got
    assert (1, "death_date") in got
