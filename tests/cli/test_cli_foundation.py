"""CLI: help, error mapping, cohort import and the demo on a small cohort."""

from __future__ import annotations

import json

import pandas as pd
import pytest

from hccstrat.cli import main

CSV = """PID,Site,Age,TBIL,ALB,OpDate
A1,C1,55,1.0,4.2,03/01/2021
A2,C1,61,0.7,3.9,04/01/2021
"""

MAPPING = """columns: {PID: patient_id, Site: centre, Age: age, TBIL: bilirubin_umol_l,
  ALB: albumin_g_l, OpDate: surgery_date}
units: {bilirubin_umol_l: mg/dL, albumin_g_l: g/dL}
dates: {format: "%d/%m/%Y"}
"""


def test_help_and_version(capsys):
    assert main(["--help"]) == 0
    out = capsys.readouterr().out
    for cmd in ("cohort", "scores", "demo", "trial", "validate"):
        assert cmd in out
    assert main(["--version"]) == 0
    assert "hccstrat 0." in capsys.readouterr().out


def test_cohort_import_with_mapping(tmp_path, capsys):
    src = tmp_path / "reg.csv"
    src.write_text(CSV)
    m = tmp_path / "m.yaml"
    m.write_text(MAPPING)
    out = tmp_path / "canonical.csv"
    assert main(["cohort", "import", str(src), "--mapping", str(m), "--out", str(out)]) == 0
    t = pd.read_csv(out)
    assert t["bilirubin_umol_l"].round(2).tolist() == [17.1, 11.97]
    assert t["surgery_date"].tolist() == ["2021-01-03", "2021-01-04"]


def test_cohort_import_rejects_bad_rows_with_full_list_and_writes_nothing(tmp_path, capsys):
    src = tmp_path / "reg.csv"
    src.write_text(CSV + "A2,C1,250,1.0,4.0,2021-01-05\n")  # dup id, impossible age, bad date
    m = tmp_path / "m.yaml"
    m.write_text(MAPPING)
    out = tmp_path / "canonical.csv"
    problems = tmp_path / "problems.csv"
    code = main(
        [
            "cohort",
            "import",
            str(src),
            "--mapping",
            str(m),
            "--out",
            str(out),
            "--report",
            str(problems),
        ]
    )
    assert code == 5  # DataValidationError
    assert not out.exists()
    err = capsys.readouterr().err
    assert "HCC-DATA-001" in err and "Traceback" not in err
    listed = pd.read_csv(problems)
    assert set(zip(listed["row"], listed["column"], strict=True)) >= {
        (2, "patient_id"),
        (3, "patient_id"),
        (3, "age"),
        (3, "surgery_date"),
    }


def test_missing_file_is_one_line_with_distinct_exit_code(tmp_path, capsys):
    code = main(["cohort", "import", str(tmp_path / "nope.csv"), "--out", str(tmp_path / "o.csv")])
    assert code == 3
    err = capsys.readouterr().err.strip()
    assert err.startswith("error [HCC-IO-001]") and "nope.csv" in err
    with pytest.raises(Exception, match="not found"):
        main(["--debug", "cohort", "import", str(tmp_path / "nope.csv"), "--out", "o.csv"])


def test_output_path_that_is_a_folder_or_under_a_file_is_a_clean_error(tmp_path, capsys):
    """Before: an internal error (exit 70) naming a temporary file ('.x.abc.tmp')."""
    src = tmp_path / "reg.csv"
    src.write_text(CSV)
    m = tmp_path / "m.yaml"
    m.write_text(MAPPING)
    (tmp_path / "afile").write_text("keep me")
    base = ["cohort", "import", str(src), "--mapping", str(m), "--out"]
    assert main([*base, str(tmp_path)]) == 2
    err = capsys.readouterr().err
    assert "HCC-CFG-001" in err and "it is a folder" in err and "internal error" not in err
    assert main([*base, str(tmp_path / "afile" / "c.csv")]) == 2
    err = " ".join(capsys.readouterr().err.split())
    assert "cannot write" in err and "afile" in err and "folder you can write to" in err
    assert (tmp_path / "afile").read_text() == "keep me"
    assert sorted(p.name for p in tmp_path.iterdir()) == ["afile", "m.yaml", "reg.csv"]


def test_scores_and_import_refuse_a_file_without_patient_rows(tmp_path, capsys):
    """Before: exit 0 and an output file of zero rows ('Clinical scores of 0 patients')."""
    src = tmp_path / "reg.csv"
    src.write_text("patient_id,centre,age\n\n")
    for cmd in (["scores", str(src)], ["cohort", "import", str(src)]):
        assert main([*cmd, "--out", str(tmp_path / "o.csv")]) == 3
        err = capsys.readouterr().err
        assert "HCC-IO-001" in err and "reg.csv' has no patient rows" in err
    assert not (tmp_path / "o.csv").exists()


def test_a_long_problem_list_does_not_point_to_a_report_file_that_scores_never_wrote(
    tmp_path, capsys
):
    src = tmp_path / "reg.csv"
    src.write_text("patient_id,centre,age\n" + "".join(f"P{i},C1,{200 + i}\n" for i in range(25)))
    assert main(["scores", str(src), "--out", str(tmp_path / "o.csv")]) == 5
    err = capsys.readouterr().err
    assert "25 problem(s)" in err and "... and 5 more not shown" in err
    assert "report file" not in err  # was '(see the full report file)': scores writes none


def test_an_output_path_that_is_an_input_file_is_refused(tmp_path, capsys):
    """Before: 'scores reg.csv --out reg.csv' replaced the patient table by its scores."""
    src = tmp_path / "reg.csv"
    src.write_text(CSV)
    m = tmp_path / "m.yaml"
    m.write_text(MAPPING)
    same = str(tmp_path / "." / "reg.csv")
    assert main(["scores", str(src), "--mapping", str(m), "--out", same]) == 2
    err = " ".join(capsys.readouterr().err.split())
    assert "HCC-CFG-001" in err and "is the patient table input" in err
    assert main(["cohort", "import", str(src), "--mapping", str(m), "--out", str(m)]) == 2
    assert "is the --mapping input" in capsys.readouterr().err
    assert src.read_text() == CSV


@pytest.mark.slow
def test_demo_foundation_stages_on_small_cohort(tmp_path):
    out = tmp_path / "demo"
    code = main(
        ["demo", "--out", str(out), "--n", "200", "--centres", "4", "--only", "clinical baseline"]
    )
    assert code == 0
    html = (out / "report.html").read_text()
    assert "Kaplan–Meier RFS by BCLC stage" in html and "Calibration" in html
    numbers = json.loads((out / "report.json").read_text())["sections"]
    cox = numbers["Clinical scores and Cox baseline"]
    lo, hi = cox["c_index_ci95"]
    assert 0.5 < cox["c_index_test"] < 0.85 and lo < cox["c_index_test"] < hi
    assert (out / "cohort" / "clinical.csv").exists()


def test_error_message_brackets_are_printed_not_eaten_as_markup(tmp_path, capsys):
    """rich took "[...]" in a message for markup: "arms ['A', 'B'] must be" printed as
    "arms  must be", and a username pattern lost its character classes."""
    code = main(["users", "create", "--username", "Bob", "--role", "admin", "--password",
                 "long enough 1", "--data-dir", str(tmp_path / "reg")])
    assert code == 2
    assert "[a-z0-9][a-z0-9._-]{1,63}" in capsys.readouterr().err
