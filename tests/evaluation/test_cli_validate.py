import json

import numpy as np
import pandas as pd
import pytest
import yaml
from typer.testing import CliRunner


@pytest.mark.slow
def test_validate_and_report_commands(tmp_path, simulate):
    from hccstrat.cli import app
    from hccstrat.cli import validate as _  # noqa: F401 - registers the commands

    y, _x, p, _t = simulate(600, 2)
    rng = np.random.default_rng(0)
    pd.DataFrame(
        {
            "time": y["time"],
            "event": y["event"],
            "risk": p,
            "centre": rng.choice(list("AB"), 600),
            "cohort": rng.choice(["internal", "external"], 600),
        }
    ).to_csv(tmp_path / "p.csv", index=False)
    (tmp_path / "plan.yaml").write_text(
        yaml.safe_dump(
            {
                "data": "p.csv",
                "n_bootstrap": 20,
                "subgroups": [],
                "stages": [
                    {"name": "internal", "kind": "internal"},
                    {"name": "external", "kind": "external", "min_centre_n": 50},
                ],
            }
        )
    )
    runner = CliRunner()
    out = tmp_path / "out"
    r = runner.invoke(app, ["validate", "--plan", str(tmp_path / "plan.yaml"), "--out", str(out)])
    assert r.exit_code == 0, r.output
    res = json.loads((out / "results.json").read_text())
    assert [s["name"] for s in res["stages"]] == ["internal", "external"]
    r = runner.invoke(
        app, ["report", "--results", str(out / "results.json"), "--out", str(tmp_path / "x.html")]
    )
    assert r.exit_code == 0, r.output
    assert (tmp_path / "x.json").exists()
    bad = tmp_path / "bad.json"
    bad.write_text("{}")
    r = runner.invoke(app, ["report", "--results", str(bad), "--out", str(tmp_path / "y.html")])
    assert r.exit_code != 0


@pytest.mark.slow
def test_demo_stage_on_synthetic_cohort(tmp_path):
    from hccstrat.cli.validate import demo_stage
    from hccstrat.synthetic.cohort import generate_cohort

    cohort = generate_cohort(n_patients=300, n_centres=6, seed=0)
    steps = []
    sections = demo_stage(cohort, tmp_path, seed=0, progress=steps.append)
    titles = [s.title for s in sections]
    assert any("internal" in t for t in titles) and any("recalibration" in t for t in titles)
    assert any("prospective" in t for t in titles) and steps
    assert (tmp_path / "validation_results.json").exists()


def _plan_on(tmp_path, table: pd.DataFrame, **plan) -> str:
    """Write ``table`` as p.csv and a one-stage plan reading it; return the plan path."""
    table.to_csv(tmp_path / "p.csv", index=False)
    spec = {
        "data": "p.csv",
        "n_bootstrap": 0,
        "subgroups": [],
        "stages": [{"name": "internal", "kind": "internal"}],
    }
    (tmp_path / "plan.yaml").write_text(yaml.safe_dump({**spec, **plan}))
    return str(tmp_path / "plan.yaml")


def test_validate_exit_code_is_1_when_a_stage_fails(tmp_path, capsys):
    from hccstrat.cli import main

    table = pd.DataFrame({"time": [5.0, 30.0, 12.0], "event": [1, 0, 1], "score": [0.2, 0.4, 0.9]})
    code = main(["validate", "--plan", _plan_on(tmp_path, table), "--out", str(tmp_path / "o")])
    err = capsys.readouterr().err
    assert code == 1, err  # was 0: main() dropped the code of typer.Exit(1)
    assert "stages failed: internal" in err
    assert (tmp_path / "o" / "results.json").exists()


_GOOD = {
    "patient_id": ["P1", "P2", "P3", "P4"],
    "time": [5.0, 30.0, 12.0, 40.0],
    "event": [1, 0, 1, 0],
    "risk": [0.6, 0.2, 0.7, 0.1],
    "surgery_date": ["2019-01-03", "2019-02-11", "2019-03-20", "2019-04-02"],
}


@pytest.mark.parametrize(
    "column, values, shown",
    [
        ("event", ["yes", "no", "yes", "no"], "row 1 (patient P1), column 'event': got 'yes'"),
        ("risk", [0.6, 1.7, 0.7, -0.2], "row 2 (patient P2), column 'risk': got 1.7"),
        ("time", ["5", "12,5", "12", "40"], "row 2 (patient P2), column 'time': got '12,5'"),
        (
            "surgery_date",
            ["2019-01-03", "31/02/2019", "2019-03-20", "2019-04-02"],
            "row 2 (patient P2), column 'surgery_date': got '31/02/2019'",
        ),
    ],
)
def test_validate_rejects_impossible_prediction_values(tmp_path, capsys, column, values, shown):
    """Before: 'yes'/'no' events all became events, risks outside 0-1 were used, '12,5'
    failed each stage with a bare float error, a bad date was an internal error (70)."""
    from hccstrat.cli import main

    table = pd.DataFrame({**_GOOD, column: values})
    code = main(["validate", "--plan", _plan_on(tmp_path, table), "--out", str(tmp_path / "o")])
    err = " ".join(capsys.readouterr().err.split())
    assert code == 5, err
    assert "HCC-DATA-001" in err and shown in err
    assert not (tmp_path / "o").exists()


def test_validate_plan_must_be_a_mapping_with_numbers(tmp_path, capsys):
    from hccstrat.cli import main

    plan = tmp_path / "plan.yaml"
    plan.write_text("just some text\n")
    assert main(["validate", "--plan", str(plan)]) == 2
    assert "a validation plan must be a mapping of keys, got str" in capsys.readouterr().err
    plan.write_text("n_bootstrap: many\nstages: []\n")
    assert main(["validate", "--plan", str(plan)]) == 2
    assert "plan key 'n_bootstrap' is 'many'" in capsys.readouterr().err


def test_validate_out_that_is_a_file_is_refused_before_running(tmp_path, capsys):
    from hccstrat.cli import main

    (tmp_path / "o").write_text("x")
    plan = _plan_on(tmp_path, pd.DataFrame(_GOOD))
    assert main(["validate", "--plan", plan, "--out", str(tmp_path / "o")]) == 2
    err = capsys.readouterr().err
    assert "--out" in err and "is a file" in err and "validation stage" not in err


@pytest.mark.parametrize(
    "content, said",
    [
        ('{"stages": [{"name": "internal"}]}', "stage 1 lacks ['kind', 'performance']"),
        ('{"stages": 5}', "it holds no list of 'stages'"),
        ('{"sections": {}}', "it holds no list of 'stages'"),  # the report.json of numbers
    ],
)
def test_report_refuses_results_not_written_by_validate(tmp_path, capsys, content, said):
    """Before: a KeyError / TypeError internal error (exit 70)."""
    from hccstrat.cli import main

    bad = tmp_path / "results.json"
    bad.write_text(content)
    assert main(["report", "--results", str(bad), "--out", str(tmp_path / "r.html")]) == 3
    err = " ".join(capsys.readouterr().err.split())
    assert "HCC-IO-001" in err and said in err and "results.json written by" in err
    assert not (tmp_path / "r.html").exists()


def test_validate_checks_what_the_plan_names_against_the_table(tmp_path, capsys):
    """Before: a text comparator failed each stage with 'could not convert string to float',
    a missing comparator was skipped without a word, stage centres without the centre
    column were an internal error (KeyError), threshold 3 / horizon -5 were used."""
    from hccstrat.cli import main

    out = ["--out", str(tmp_path / "o")]
    table = pd.DataFrame({**_GOOD, "bclc": ["A", "0", "B", "A"]})
    assert main(["validate", "--plan", _plan_on(tmp_path, table, comparators=["bclc"]), *out]) == 5
    err = " ".join(capsys.readouterr().err.split())
    assert "row 1 (patient P1), column 'bclc': got 'A'; expected a number" in err
    assert "row 2 (patient P2)" not in err
    assert main(["validate", "--plan", _plan_on(tmp_path, table, comparators=["erasl"]), *out]) == 5
    err = " ".join(capsys.readouterr().err.split())
    assert "column 'erasl': got '(missing column)'; expected a comparator named in the plan" in err
    stages = [{"name": "internal", "kind": "internal", "centres": ["C1"]}]
    assert main(["validate", "--plan", _plan_on(tmp_path, table, stages=stages), *out]) == 5
    assert "column 'centre': got '(missing column)'" in capsys.readouterr().err
    assert main(["validate", "--plan", _plan_on(tmp_path, table, threshold=3), *out]) == 2
    assert "plan key 'threshold' is 3" in capsys.readouterr().err
    assert main(["validate", "--plan", _plan_on(tmp_path, table, horizon=-5), *out]) == 2
    assert not (tmp_path / "o").exists()


def test_report_refuses_to_write_its_json_over_the_results(tmp_path, capsys):
    """Before: '--results x.json --out x.html' replaced x.json by the numbers sidecar."""
    from hccstrat.cli import main

    res = tmp_path / "x.json"
    res.write_text('{"stages": []}')
    assert main(["report", "--results", str(res), "--out", str(tmp_path / "x.html")]) == 2
    err = " ".join(capsys.readouterr().err.split())
    assert "the JSON of numbers beside --out" in err and "is the --results input" in err
    assert res.read_text() == '{"stages": []}'
