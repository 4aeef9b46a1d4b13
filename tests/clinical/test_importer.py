"""Import of registry exports through a YAML mapping."""

from __future__ import annotations

import textwrap
from pathlib import Path

import pandas as pd
import pytest

from hccstrat.clinical.importer import import_table, load_mapping, write_canonical
from hccstrat.exceptions import DataValidationError, InputFileError, MappingError

GOOD_CSV = """\
PID;Hospital;Alter;Geschlecht;TBIL_mgdl;ALB_gdl;AFP;Groesse_mm;OpDatum;Rezidiv;RezDatum;LetzteVisite;Notiz
K-001;ZJU;61;m;1.2;4.1;15;32;14.03.2021;nein;;01.02.2024;x
K-002;ZJU;48;w;0.6;3.6;;61;02.04.2021;ja;05.11.2021;07.03.2023;
"""

MAPPING = """\
source: "Centre ZJU registry export"
columns:
  PID: patient_id
  Hospital: centre
  Alter: age
  Geschlecht: sex
  TBIL_mgdl: bilirubin_umol_l
  ALB_gdl: albumin_g_l
  AFP: afp_ng_ml
  Groesse_mm: tumour_size_cm
  OpDatum: surgery_date
  Rezidiv: recurrence
  RezDatum: recurrence_date
  LetzteVisite: last_followup_date
drop: [Notiz]
constants:
  death: "false"
units:
  bilirubin_umol_l: mg/dL
  albumin_g_l: g/dL
  tumour_size_cm: mm
values:
  sex: {m: M, w: F}
  recurrence: {ja: "true", nein: "false"}
dates:
  format: "%d.%m.%Y"
"""


def _write(tmp_path: Path, csv: str, mapping: str = MAPPING) -> tuple[Path, Path]:
    src = tmp_path / "export.csv"
    src.write_text(csv.replace(";", ","), encoding="utf-8")
    m = tmp_path / "mapping.yaml"
    m.write_text(mapping, encoding="utf-8")
    return src, m


def test_import_renames_converts_units_maps_values_and_parses_dates(tmp_path):
    src, m = _write(tmp_path, GOOD_CSV)
    t = import_table(src, m)
    assert t["patient_id"].tolist() == ["K-001", "K-002"]
    assert t["bilirubin_umol_l"].round(3).tolist() == [20.525, 10.262]  # x 17.104
    assert t["albumin_g_l"].tolist() == [41.0, 36.0]
    assert t["tumour_size_cm"].tolist() == pytest.approx([3.2, 6.1])
    assert t["sex"].tolist() == ["M", "F"]
    assert t["surgery_date"].dt.strftime("%Y-%m-%d").tolist() == ["2021-03-14", "2021-04-02"]
    assert t["recurrence"].tolist() == [False, True]
    assert t["tumour_size_gt_5cm"].tolist() == [False, True]
    assert pd.isna(t.loc[1, "afp_ng_ml"]) and pd.isna(t.loc[1, "afp_ge_400"])


def test_semicolon_export_reads_like_comma_and_decimal_commas_get_a_hint(tmp_path):
    """European exports separate with ';' (the comma is their decimal mark): before,
    the file became one column and every canonical column was 'missing'."""
    src, m = _write(tmp_path, GOOD_CSV)
    semi = tmp_path / "export_semicolon.csv"
    semi.write_text(GOOD_CSV, encoding="utf-8-sig")  # as Excel writes it, with a BOM
    pd.testing.assert_frame_equal(import_table(semi, m), import_table(src, m))
    semi.write_text(GOOD_CSV.replace(";1.2;4.1;", ";1,2;4.1;"), encoding="utf-8")
    with pytest.raises(DataValidationError) as info:
        import_table(semi, m)
    [p] = info.value.report.problems
    assert (p.row, p.column, p.value) == (1, "bilirubin_umol_l", "1,2")
    assert p.expected.endswith("with a decimal point (12.5, not 12,5)")


def test_every_bad_row_is_reported_in_one_error(tmp_path):
    bad = GOOD_CSV + (
        "K-002;ZJU;50;m;0.9;40;10;20;2021-05-01;nein;;01.01.2023;\n"  # dup id, g/L given, ISO date
        "K-004;ZJU;-4;m;0.9;4.0;10;20;01.05.2021;ja;01.01.2021;01.01.2023;\n"  # age, rec before op
    )
    src, m = _write(tmp_path, bad.replace("Notiz\n", "Notiz;Extra\n"))
    with pytest.raises(DataValidationError) as info:
        import_table(src, m)
    problems = info.value.report.problems
    found = {(p.row, p.column) for p in problems}
    assert (None, "Extra") in found  # unknown column
    assert (3, "patient_id") in found and (2, "patient_id") in found  # duplicate id
    assert (3, "albumin_g_l") in found  # 40 g/dL -> 400 g/L impossible
    assert (3, "surgery_date") in found  # wrong date format
    assert (4, "age") in found
    assert (4, "recurrence_date") in found  # before surgery
    albumin = next(p for p in problems if p.column == "albumin_g_l")
    assert albumin.value == pytest.approx(400.0)
    date = next(p for p in problems if p.column == "surgery_date")
    assert "%d.%m.%Y" in date.expected and date.patient_id == "K-002"


def test_unit_error_gets_a_hint(tmp_path):
    csv = "patient_id,centre,albumin_g_l\nP1,A,3.9\n"
    src = tmp_path / "t.csv"
    src.write_text(csv)
    with pytest.raises(DataValidationError) as info:
        import_table(src)
    [p] = info.value.report.problems
    assert "g/dL" in p.expected


def test_mapping_errors_are_specific(tmp_path):
    m = tmp_path / "m.yaml"
    m.write_text(
        textwrap.dedent("""
        columns: {A: not_a_column}
        units: {albumin_g_l: furlongs}
    """)
    )
    with pytest.raises(MappingError) as info:
        load_mapping(m)
    msg = str(info.value)
    assert "not_a_column" in msg and "furlongs" in msg and "g/dL" in msg
    m.write_text("colums: {}\n")
    with pytest.raises(MappingError, match="colums"):
        load_mapping(m)
    with pytest.raises(InputFileError):
        load_mapping(tmp_path / "missing.yaml")


@pytest.mark.parametrize("fmt", ["%Q/%m/%Y", "dd/mm/yyyy"])
def test_a_date_format_that_is_not_strptime_codes_is_a_mapping_error(tmp_path, fmt):
    """Before: '%Q' was an internal error (pandas ValueError, exit 70); 'dd/mm/yyyy'
    refused every date of the file as not matching the format."""
    m = tmp_path / "m.yaml"
    m.write_text(f'dates: {{format: "%d.%m.%Y", columns: {{surgery_date: "{fmt}"}}}}\n')
    with pytest.raises(MappingError) as info:
        load_mapping(m)
    assert f"date format '{fmt}' (surgery_date) is not strptime codes like '%d/%m/%Y'" in str(
        info.value
    )
    m.write_text('dates: {format: "%d.%m.%Y", columns: {surgery_date: "%Y%m%d"}}\n')
    assert load_mapping(m).dates.columns == {"surgery_date": "%Y%m%d"}


def test_excel_import_and_canonical_round_trip(tmp_path):
    src, m = _write(tmp_path, GOOD_CSV)
    raw = pd.read_csv(src, dtype=str)
    xlsx = tmp_path / "export.xlsx"
    raw.to_excel(xlsx, index=False)
    t = import_table(xlsx, m)
    assert len(t) == 2
    out = write_canonical(t, tmp_path / "canonical.csv")
    back = import_table(out)
    pd.testing.assert_series_equal(back["bilirubin_umol_l"], t["bilirubin_umol_l"])
    assert back["surgery_date"].equals(t["surgery_date"])


@pytest.mark.parametrize(
    ("header", "expected"),
    [
        ("patient_id,age,afp_ng_ml", ","),
        ("patient_id;age;afp_ng_ml", ";"),
        ("patient_id\tage\tafp_ng_ml", "\t"),
        ('"Name, given";"AFP (ng/mL)";age', ";"),  # a comma inside a quoted name
        ("patient_id", ","),  # one column: the default
    ],
)
def test_csv_delimiter_from_the_header(tmp_path, header, expected):
    from hccstrat.io.tables import csv_delimiter

    p = tmp_path / "t.csv"
    p.write_text(header + "\nP1;1,5;2\n", encoding="utf-8")
    assert csv_delimiter(p) == expected
