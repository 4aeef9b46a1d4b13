"""CLI: train pre|post|benefit and predict; the demo stage."""

from __future__ import annotations

import warnings

import numpy as np
import pandas as pd
import pytest
import typer
from _models_toy import make_image_feature_proxies, toy_cohort
from typer.testing import CliRunner

from hccstrat.cli.models import demo_stage, register, train_app
from hccstrat.exceptions import ConfigError
from hccstrat.reports.html import Section
from hccstrat.survival import endpoint

runner = CliRunner()


def test_train_and_predict(tmp_path, cohort):
    clin = cohort.clinical.drop(columns=["afp_ng_ml"])  # registry with the AFP category only
    clin.to_csv(tmp_path / "clin.csv", index=False)
    rad = make_image_feature_proxies(cohort.latent, seed=0)["rad_"]
    rad.to_csv(tmp_path / "rad.csv", index=False)
    res = runner.invoke(
        train_app,
        [
            "pre",
            "--clinical",
            str(tmp_path / "clin.csv"),
            "--radiomics",
            str(tmp_path / "rad.csv"),
            "--out",
            str(tmp_path / "pre.hccmodel"),
        ],
    )
    assert res.exit_code == 0, res.output
    assert "afp_ge_400 for afp_ng_ml" in " ".join(res.output.split())
    root = typer.Typer()
    register(root)
    res = runner.invoke(
        root,
        [
            "predict",
            "--model",
            str(tmp_path / "pre.hccmodel"),
            "--clinical",
            str(tmp_path / "clin.csv"),
            "--out",
            str(tmp_path / "pred.csv"),
        ],
    )
    assert res.exit_code == 0, res.output
    assert "lacked MRI image features" in " ".join(res.output.split())  # no radiomics at predict
    pred = pd.read_csv(tmp_path / "pred.csv")
    assert len(pred) == len(clin) and pred["score"].between(0, 1).all()
    assert (pred["status"] == "ok").all()
    # a bad value fails its patient only: recorded in the output, the others predicted
    bad = clin.astype({"age": object, "albumin_g_l": object})
    bad.loc[3, "age"] = "sixty"
    bad.loc[7, "albumin_g_l"] = -4.0
    bad.to_csv(tmp_path / "bad.csv", index=False)
    res = runner.invoke(root, ["predict", "--model", str(tmp_path / "pre.hccmodel"),
                               "--clinical", str(tmp_path / "bad.csv"),
                               "--out", str(tmp_path / "pred_bad.csv")])
    assert res.exit_code == 0, res.output
    text = " ".join(res.output.split())
    assert f"{len(clin) - 2} predictions written" in text
    assert f"not predicted: row 4 ({clin.loc[3, 'patient_id']}): age='sixty'" in text
    again = pd.read_csv(tmp_path / "pred_bad.csv")
    assert again["patient_id"].tolist() == clin["patient_id"].tolist()  # input order
    failed = again[again["status"] == "failed"]
    assert failed.index.tolist() == [3, 7] and failed["score"].isna().all()
    expected = "column 'albumin_g_l': got -4; expected a number in g/L between 5"
    assert expected in failed.loc[7, "error"]
    ok = again["status"] == "ok"
    assert np.allclose(again.loc[ok, "score"], pred.loc[ok, "score"])  # others unchanged


def test_train_refuses_to_replace_a_model_and_warns_on_few_events(tmp_path, cohort):
    """An existing model file is replaced only with --overwrite; 60 patients for ~30
    parameters are trained with a warning in the output and on the model card."""
    from hccstrat.models import load_model

    small = cohort.clinical.iloc[:60]
    small.to_csv(tmp_path / "clin.csv", index=False)
    out = tmp_path / "pre.hccmodel"
    args = ["pre", "--clinical", str(tmp_path / "clin.csv"), "--out", str(out)]
    res = runner.invoke(train_app, args)
    assert res.exit_code == 0, res.output
    text = " ".join(res.output.split())
    events = int(endpoint(small, "aggressive")["event"].sum())
    assert f"warning trained on 60 patients with {events} events for" in text
    assert "fewer than 10" in text
    card = load_model(out).model_card_
    head = f"trained on 60 patients with {events} events"
    assert any(x.startswith(head) for x in card.limitations)
    before = out.read_bytes()
    res = runner.invoke(train_app, [*args, "--seed", "1"])
    assert res.exit_code != 0 and isinstance(res.exception, ConfigError)
    assert "exists" in str(res.exception) and "--overwrite" in res.exception.hint
    assert out.read_bytes() == before
    assert runner.invoke(train_app, [*args, "--seed", "1", "--overwrite"]).exit_code == 0


def test_train_benefit_cli(tmp_path, cohort):
    cohort.clinical.to_csv(tmp_path / "clin.csv", index=False)
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        res = runner.invoke(
            train_app,
            [
                "benefit",
                "--clinical",
                str(tmp_path / "clin.csv"),
                "--out",
                str(tmp_path / "b.hccmodel"),
                "--learner",
                "t",
                "--n-bootstrap",
                "0",
            ],
        )
    assert res.exit_code == 0, res.output
    assert (tmp_path / "b.hccmodel.sha256").is_file()
    # the cross-fitted policy check is printed and kept on the model card
    assert "cross-fitted on" in res.output and "validated" in res.output
    from hccstrat.models import read_model_card

    check = read_model_card(tmp_path / "b.hccmodel").metrics["policy_check"]
    assert check["folds"] == 3 and check["lo"] <= check["estimate"] <= check["hi"]
    assert isinstance(check["validated"], bool)
    # so is the default regimen, with the estimates it was chosen on
    default = read_model_card(tmp_path / "b.hccmodel").metrics["default_regimen"]
    assert default["arm"] in ("surgery_alone", "TACE", "TACE+TKI")
    assert default["reason"].startswith(f"default regimen {default['arm']}")
    assert "default regimen" in res.output


def test_missing_file_is_a_clean_error(tmp_path):
    res = runner.invoke(
        train_app,
        ["post", "--clinical", str(tmp_path / "no.csv"), "--out", str(tmp_path / "x.hccmodel")],
    )
    assert res.exit_code != 0 and "table not found" in str(res.exception)


@pytest.fixture(scope="module")
def pre_model(tmp_path_factory, cohort):
    """A PRE model (clinical inputs only) saved to a .hccmodel file."""
    from hccstrat.models import PreModel, save_model
    from hccstrat.survival import endpoint

    clin = cohort.clinical
    model = PreModel(random_state=0).fit(clin, endpoint(clin, "aggressive"))
    path = tmp_path_factory.mktemp("pre") / "pre.hccmodel"
    save_model(model, path, name="hccstrat-pre", intended_use="tests")
    return path


def test_a_table_with_a_header_and_no_rows_is_a_clean_error(tmp_path, cohort, pre_model, capsys):
    """Before: predict ended in an internal error (exit 70, 'Found array with 0 sample(s)');
    train said 'no usable column'."""
    from hccstrat.cli import main

    empty = tmp_path / "empty.csv"
    cohort.clinical.head(0).to_csv(empty, index=False)
    out = tmp_path / "pred.csv"
    args = ["predict", "--model", str(pre_model), "--clinical", str(empty), "--out", str(out)]
    assert main(args) == 3
    err = capsys.readouterr().err
    assert "HCC-IO-001" in err and "has no patient rows" in err and not out.exists()
    assert main(["train", "pre", "--clinical", str(empty), "--out", str(tmp_path / "m")]) == 3
    assert "has no patient rows" in capsys.readouterr().err


def test_demo_stage(tmp_path):
    steps = []
    sections = demo_stage(toy_cohort(300, 3, seed=3), tmp_path, seed=0, progress=steps.append)
    assert all(isinstance(s, Section) for s in sections) and len(sections) == 2
    assert "PROXIES" in sections[0].body
    assert sections[0].numbers["c_index"]["PRE (clinical + MRI)"] > 0.6
    assert 0 <= sections[1].numbers["abstention_rate"] <= 1
    check = sections[1].numbers["policy_check"]
    assert check["n"] > 100 and "Policy check" in sections[1].body
    assert f"default regimen {sections[1].numbers['default_regimen']}" in sections[1].body
    if not check["validated"]:  # the model abstains for everyone
        assert sections[1].numbers["abstention_rate"] == 1.0
    assert (tmp_path / "models" / "pre.hccmodel").is_file() and steps


def test_predict_with_a_model_of_another_kind_is_a_model_error(tmp_path, cohort, capsys):
    """Before: an internal error (exit 70, "'FeatureAssembler' object has no attribute
    'features_'")."""
    from hccstrat.cli import main
    from hccstrat.models import FeatureAssembler, save_model

    path = tmp_path / "fa.hccmodel"
    fa = FeatureAssembler(stage="pre").fit(cohort.clinical)
    save_model(fa, path, name="assembler", intended_use="tests")
    cohort.clinical.to_csv(tmp_path / "clin.csv", index=False)
    out = tmp_path / "pred.csv"
    args = ["--model", str(path), "--clinical", str(tmp_path / "clin.csv"), "--out", str(out)]
    assert main(["predict", *args]) == 6
    err = " ".join(capsys.readouterr().err.split())
    assert "HCC-MODEL-001" in err and "holds a FeatureAssembler ('assembler')" in err
    assert "'hccstrat train pre'" in err and not out.exists()


def test_predict_and_train_refuse_to_write_over_an_input(tmp_path, cohort, pre_model, capsys):
    """Before: '--out' equal to '--clinical' replaced the patient table by predictions."""
    from hccstrat.cli import main

    clin = tmp_path / "clin.csv"
    cohort.clinical.head(20).to_csv(clin, index=False)
    before = clin.read_bytes()
    args = ["--model", str(pre_model), "--clinical", str(clin), "--out", str(clin)]
    assert main(["predict", *args]) == 2
    err = capsys.readouterr().err
    assert "--out" in err and "is the --clinical input" in err
    assert main(["train", "pre", "--clinical", str(clin), "--out", str(clin)]) == 2
    assert "is the --clinical input" in capsys.readouterr().err
    assert clin.read_bytes() == before


def test_feature_tables_keep_leading_zeros_of_patient_ids(tmp_path):
    from hccstrat.cli.models import _read_table

    (tmp_path / "rad.csv").write_text("patient_id,rad_x\n00123,1.5\n")
    assert _read_table(tmp_path / "rad.csv")["patient_id"].tolist() == ["00123"]
