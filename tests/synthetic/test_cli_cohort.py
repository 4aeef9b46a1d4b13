"""Tests of the ``hccstrat cohort`` command group."""

from __future__ import annotations

import pytest
from typer.testing import CliRunner

from hccstrat.cli.cohort import app
from hccstrat.exceptions import ConfigError
from hccstrat.synthetic.cohort import SyntheticCohort

runner = CliRunner()


def test_synth_writes_a_cohort(tmp_path):
    out = tmp_path / "cohort"
    args = ["synth", "--n", "120", "--centres", "3", "--seed", "2", "--image-signal", "0.5",
            "--out", str(out)]
    res = runner.invoke(app, args)
    assert res.exit_code == 0, res.output
    assert "recurrence by 24 mo" in res.output
    back = SyntheticCohort.load(out)
    assert len(back) == 120 and len(back.centres) == 3
    assert back.config["image_signal"] == 0.5 and back.config["seed"] == 2
    # a second run refuses to overwrite unless asked
    res = runner.invoke(app, args)
    assert isinstance(res.exception, ConfigError)
    res = runner.invoke(app, [*args, "--overwrite"])
    assert res.exit_code == 0, res.output


@pytest.mark.parametrize(
    "bad", [["--n", "0"], ["--centres", "0"], ["--seed", "-1"], ["--image-signal", "-1"],
            ["--treatment", "x"]]
)
def test_synth_bad_arguments(tmp_path, bad):
    res = runner.invoke(app, ["synth", "--out", str(tmp_path / "o"), *bad])
    assert isinstance(res.exception, ConfigError), res.output
    assert not (tmp_path / "o" / "config.json").exists()
