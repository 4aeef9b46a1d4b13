"""Sample size, simulated power and in-silico trials."""

from __future__ import annotations

import numpy as np
import pandas as pd
import pytest
from lifelines.statistics import logrank_test

from hccstrat.exceptions import ConfigError
from hccstrat.trial.simulate import (
    analytic_power,
    insilico_trial,
    sample_size_rfs,
    schoenfeld_events,
    simulate_power,
    vectorised_logrank,
)


def test_schoenfeld_reference_values():
    # (1.96 + 0.8416)^2 / (0.25 * log(0.7)^2) = 246.8
    assert schoenfeld_events(0.7) == 247
    assert schoenfeld_events(0.75, power=0.9) == 508
    ss = sample_size_rfs(0.7)
    assert ss["n_total"] >= ss["events"] / 1.0 and 0 < ss["p_event"] < 1
    assert analytic_power(ss["n_total"], 0.7) == pytest.approx(0.8, abs=0.005)
    with pytest.raises(ConfigError):
        schoenfeld_events(1.0)


def test_vectorised_logrank_matches_lifelines():
    rng = np.random.default_rng(0)
    t = rng.exponential(20, (3, 80))
    e = rng.random((3, 80)) < 0.7
    g = rng.random((3, 80)) < 0.5
    res = vectorised_logrank(t, e, g)
    for i in range(3):
        ref = logrank_test(t[i, g[i]], t[i, ~g[i]], e[i, g[i]], e[i, ~g[i]])
        assert res["z"][i] ** 2 == pytest.approx(ref.test_statistic, rel=1e-9)


def test_simulated_power_matches_schoenfeld_and_is_reproducible():
    n = sample_size_rfs(0.7)["n_total"]
    r = simulate_power(n, 0.7, n_reps=1000, seed=1)
    assert r["power"] == pytest.approx(analytic_power(n, 0.7), abs=0.04)
    assert r["hr_median"] == pytest.approx(0.7, abs=0.03)
    assert r["rfs24_ctl"] == pytest.approx(0.65, abs=0.01)
    assert r["seconds"] < 30
    r2 = simulate_power(n, 0.7, n_reps=1000, seed=1, n_jobs=2)
    np.testing.assert_array_equal(r["replicates"]["z"], r2["replicates"]["z"])
    null = simulate_power(300, 1.0, n_reps=2000, seed=3)
    assert null["power"] == pytest.approx(0.025, abs=0.01)  # one direction of a 2-sided 5 %


def test_insilico_trial_oracle_policy():
    rng = np.random.default_rng(0)
    m = 2000
    base = rng.uniform(0.3, 0.9, m)
    high = base < 0.55
    oracle = pd.DataFrame({
        "true_rfs24_surgery_alone": base,
        "true_rfs24_TACE": np.where(high, base ** 0.6, base ** 1.05),
        "true_rfs24_TACE+TKI": np.where(high, base ** 0.8, base ** 1.2),
    })
    r = insilico_trial(oracle, n=600, n_reps=300, seed=2)
    # oracle policy vs TACE-for-all: positive true gain, estimated gain agrees
    assert r["true_rfs24_gain"] > 0
    assert r["rfs24_gain"] == pytest.approx(r["true_rfs24_gain"], abs=0.01)
    assert r["hr_mean"] < 1
    same = insilico_trial(oracle, n=200, n_reps=200, seed=2, recommend=lambda o: ["TACE"] * len(o))
    assert same["true_rfs24_gain"] == 0 and same["share_changed"] == 0
    with pytest.raises(ConfigError, match="unknown regimens"):
        insilico_trial(oracle, n=100, n_reps=10, recommend=lambda o: ["chemo"] * len(o))


def test_simulate_cli_refuses_impossible_parameters(capsys):
    from hccstrat.cli import main

    # before: 'internal error: ValueError: math domain error' / 'cannot convert float NaN'
    assert main(["trial", "simulate", "--control-rfs24", "1.5", "--reps", "5"]) == 2
    assert "control 2-year RFS 1.5 must lie strictly between 0 and 1" in capsys.readouterr().err
    assert main(["trial", "simulate", "--power", "1.2", "--reps", "5"]) == 2
    assert "power 1.2 must lie strictly between 0 and 1" in capsys.readouterr().err
