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
