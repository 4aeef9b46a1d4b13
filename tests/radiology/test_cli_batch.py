"""`hccstrat mri` commands over a folder with good and bad studies; manifest and resume."""

from __future__ import annotations

import json
import shutil

import numpy as np
import pandas as pd
from pydicom.data import get_testdata_file
from typer.testing import CliRunner

from hccstrat.cli.mri import app


def test_cli_end_to_end_with_failures_and_resume(tmp_path, mri_root, small):
    from hccstrat.synthetic.mri import default_latent, write_study

    root, _ = mri_root
    data = tmp_path / "data"
    shutil.copytree(root / "GE", data / "A_GE")
    (data / "B_CT").mkdir()
    shutil.copy(get_testdata_file("CT_small.dcm"), data / "B_CT" / "ct.dcm")
    (data / "C_junk").mkdir()
    (data / "C_junk" / "x.dcm").write_bytes(b"garbage")
    write_study(data / "D_single", default_latent(False), vendor="UIH", patient_id="D",
                seed=2, phases=("portal",), localiser=False, write_dicom_seg=False, **small)
    out = tmp_path / "out"
    runner = CliRunner()
    res = runner.invoke(app, ["ingest", str(data), "--out", str(out)])
    assert res.exit_code == 0, res.output
    man = pd.read_csv(out / "manifest_ingest.csv").set_index("item")
    assert man.loc["A_GE", "status"] == "ok"
    assert man.loc["B_CT", "error_code"] == "HCC-MRI-003"
    assert man.loc["C_junk", "error_code"] == "HCC-MRI-002"
    assert "not a DICOM file" in man.loc["C_junk", "error_message"]
    series = pd.read_csv(out / "A_GE" / "ingest" / "series.csv")
    assert set(series["phase"].dropna()) == {"pre", "arterial", "portal", "delayed"}

    res = runner.invoke(app, ["qc", str(data), "--out", str(out),
                              "--reference-date", "2024-01-20"])
    assert res.exit_code == 0, res.output
    res = runner.invoke(app, ["preprocess", str(data), "--out", str(out)])
    assert res.exit_code == 0, res.output
    man = pd.read_csv(out / "manifest_preprocess.csv").set_index("item")
    assert man.loc["A_GE", "status"] == "ok"
    assert man.loc["D_single", "error_code"] == "HCC-MRI-005"
    assert man.loc["B_CT", "status"] == "failed"
    # resume: the ok study is skipped, failures are retried
    res = runner.invoke(app, ["preprocess", str(data), "--out", str(out)])
    assert "A_GE already done" in res.output
    # a study whose crops were deleted since is redone (preprocess.json lists its files)
    summary = json.loads((out / "A_GE" / "preprocessed" / "preprocess.json").read_text())
    assert {"portal.nii", "tumour.nii.gz", "crop/portal.nii.gz"} <= set(summary["files"])
    shutil.rmtree(out / "A_GE" / "preprocessed" / "crop")
    res = runner.invoke(app, ["preprocess", str(data), "--out", str(out)])
    assert "A_GE already done" not in res.output
    assert (out / "A_GE" / "preprocessed" / "crop" / "portal.nii.gz").is_file()
    res = runner.invoke(app, ["features", "--out", str(out)])
    assert res.exit_code == 0, res.output
    feats = pd.read_csv(out / "features.csv", index_col=0)
    assert list(feats.index) == ["A_GE"] and feats.loc["A_GE", "shape_volume_ml"] > 1
    # keyed for the models layer: patient_id (DICOM PatientID) joins onto the clinical table
    assert feats.columns[0] == "patient_id" and feats.loc["A_GE", "patient_id"] == "PGE"
    from hccstrat.models import join_feature_tables

    clinical = pd.DataFrame({"patient_id": ["PX", "PGE"], "age": [60, 55]})
    joined = join_feature_tables(clinical, {"rad_": feats.reset_index(drop=True)})
    assert np.isnan(joined.loc[0, "rad_shape_volume_ml"])
    assert joined.loc[1, "rad_shape_volume_ml"] == feats.loc["A_GE", "shape_volume_ml"]


def test_synth_writes_studies_to_out(tmp_path):
    runner = CliRunner()
    res = runner.invoke(app, ["synth", "--out", str(tmp_path / "s"), "--n", "1", "--size", "48",
                              "--slices", "12", "--seed", "3"])
    assert res.exit_code == 0, res.output
    import pydicom

    files = [p for p in (tmp_path / "s" / "SYN001" / "DICOM").rglob("*") if p.is_file()]
    series = {}
    for p in files:
        ds = pydicom.dcmread(p, stop_before_pixels=True)
        if ds.Modality == "MR":
            series.setdefault(ds.SeriesInstanceUID, []).append(p)
    # four phases of 12 slices each (plus a localiser), vendor-style extensionless files
    assert sorted(len(v) for v in series.values())[-4:] == [12, 12, 12, 12]


def test_bad_option_values_give_clean_errors(tmp_path, mri_root, capsys):
    from hccstrat.cli import main

    root, _ = mri_root
    out = tmp_path / "out"
    code = main(["mri", "qc", str(root), "--out", str(out), "--reference-date", "2024-13-45"])
    err = capsys.readouterr().err
    assert code == 2, err
    assert "[HCC-CFG-001] --reference-date '2024-13-45' is not a valid date" in err
    assert "YYYY-MM-DD" in err and "Traceback" not in err
    assert not (out / "manifest_qc.csv").exists()  # refused before any study was touched
    for opt in ("--size", "--slices"):
        code = main(["mri", "synth", "--out", str(tmp_path / "s"), "--n", "1", opt, "0"])
        err = capsys.readouterr().err
        assert code == 2 and f"Invalid value for '{opt}'" in err
    assert not (tmp_path / "s").exists()


def test_resume_redoes_a_study_whose_output_was_lost(tmp_path, mri_root):
    root, _ = mri_root
    out = tmp_path / "out"
    runner = CliRunner()
    args = ["qc", str(root / "GE"), "--out", str(out), "--reference-date", "2024-01-20"]
    assert runner.invoke(app, args).exit_code == 0
    qc_json = out / "GE" / "qc.json"
    good = qc_json.read_text()
    res = runner.invoke(app, args)
    assert "GE already done" in res.output  # unchanged output: skipped
    qc_json.write_text("{}")  # altered (e.g. a half-copied folder)
    res = runner.invoke(app, args)
    assert "GE already done" not in res.output and qc_json.read_text() == good
    qc_json.unlink()  # deleted
    res = runner.invoke(app, args)
    assert "GE already done" not in res.output and qc_json.read_text() == good


def test_manifest_with_exponent_like_checksum_loads(tmp_path):
    """A checksum such as '382e2949…' once crashed pandas' CSV parser (segfault)."""
    import subprocess
    import sys

    from hccstrat.radiology.batch import MANIFEST_COLUMNS

    sha = "382e29498851644ce691f41cbc7c197a94aca761f066e840bed114ca4613f0eb"
    path = tmp_path / "manifest_qc.csv"
    pd.DataFrame([dict(zip(MANIFEST_COLUMNS, ["001", "qc", "ok", None, None,
                                              str(tmp_path / "qc.json"), sha, 0.1, "x"],
                           strict=True))]).to_csv(path, index=False)
    code = ("import sys; from hccstrat.radiology.batch import Manifest; "
            "df = Manifest(__import__('pathlib').Path(sys.argv[1])).load(); "
            "print(df.loc[0, 'sha256'], df.loc[0, 'item'])")
    res = subprocess.run([sys.executable, "-c", code, str(path)], capture_output=True,
                         text=True, timeout=60)
    assert res.returncode == 0, res.stderr
    assert res.stdout.split() == [sha, "001"]


def test_unwritable_output_folder_is_one_clear_error(tmp_path, mri_root, capsys):
    from hccstrat.cli import main

    root, _ = mri_root
    (tmp_path / "afile").write_text("x")  # a file where the output folder should go
    for args in (["mri", "ingest", str(root / "GE")], ["mri", "synth", "--n", "1"]):
        code = main([*args, "--out", str(tmp_path / "afile" / "out")])
        err = capsys.readouterr().err
        assert code == 3, err
        assert "[HCC-IO-001] cannot write to the output folder" in err
        assert "--out" in err and "Traceback" not in err and "internal error" not in err


def test_failure_list_prints_messages_verbatim(capsys):
    """A failure message quoting a list ("phases ['arterial']") is printed whole, not
    eaten as console markup."""
    import pandas as pd

    from hccstrat.cli.distributed import _summary as dist_summary
    from hccstrat.cli.mri import _summary

    msg = "missing phases ['arterial', 'delayed'] in [bold]P7"
    df = pd.DataFrame([{"item": "P7", "status": "failed", "error_code": "HCC-MRI-005",
                        "error_message": msg}])
    _summary(df, "preprocess")
    dist_summary(df, "item")
    out = capsys.readouterr().out
    assert out.count(f"P7: [HCC-MRI-005] {msg}") == 2, out


def test_features_without_preprocessed_studies_is_an_error(tmp_path, capsys):
    from hccstrat.cli import main

    code = main(["mri", "features", "--out", str(tmp_path)])
    err = capsys.readouterr().err
    assert code == 3, err
    assert "no preprocessed studies in" in err and "mri preprocess" in err
    assert not (tmp_path / "features.csv").exists()
