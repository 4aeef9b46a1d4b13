import numpy as np
import pytest
from statsmodels.stats.meta_analysis import combine_effects

from hccstrat.evaluation.bootstrap import (
    bootstrap,
    default_metrics,
    paired_bootstrap,
    resample_weights,
)
from hccstrat.evaluation.calibration import calibration_in_the_large
from hccstrat.evaluation.discrimination import harrell_c
from hccstrat.evaluation.meta import dersimonian_laird, pool_metric
from hccstrat.evaluation.sample_size import development_sample_size, validation_sample_size
from hccstrat.exceptions import ConfigError


def test_vectorised_bootstrap_equals_explicit_resamples(simulate):
    y, _, p, _ = simulate(400, 2)
    w = next(resample_weights(400, 3, seed=5))
    metrics = default_metrics(24.0)
    for b in range(3):
        idx = np.repeat(np.arange(400), w[b].astype(int))
        assert metrics["harrell_c"](y, p, w)[b] == pytest.approx(harrell_c(y[idx], p[idx]))
        assert metrics["oe_ratio"](y, p, w)[b] == pytest.approx(
            calibration_in_the_large(y[idx], p[idx], 24.0)["oe_ratio"]
        )


def test_bootstrap_ci_covers_estimate_and_is_deterministic(data):
    y, _, p, _ = data
    a = bootstrap(y, p, n_resamples=100, seed=1)
    b = bootstrap(y, p, n_resamples=100, seed=1)
    for k in a.estimate:
        lo, hi = a.ci(k)
        assert lo <= a.estimate[k] <= hi, k
        np.testing.assert_array_equal(a.samples[k], b.samples[k])
    assert 0.005 < a.to_dict()["harrell_c"]["se"] < 0.03


def test_cluster_weights_constant_within_cluster():
    clusters = np.repeat(list("ABCD"), 25)
    w = next(resample_weights(100, 10, seed=0, clusters=clusters))
    for c in "ABCD":
        assert np.all(w[:, clusters == c] == w[:, clusters == c][:, :1])
    assert np.all(w.sum(axis=1) % 25 == 0)
    with pytest.raises(ConfigError):
        next(resample_weights(10, 2, clusters=["A"] * 10))


def test_paired_comparison_detects_better_model(data):
    y, _x, p, _ = data
    noisy = p + np.random.default_rng(0).normal(0, 0.3, len(p))
    res = paired_bootstrap(
        y, p, noisy, {"harrell_c": default_metrics()["harrell_c"]}, n_resamples=200, seed=0
    )
    assert res.difference["harrell_c"] > 0.03
    assert res.ci["harrell_c"][0] > 0 and res.p_value["harrell_c"] < 0.01


def test_dersimonian_laird_matches_statsmodels():
    est = np.array([0.1, 0.3, 0.35, 0.6, 0.2])
    var = np.array([0.01, 0.02, 0.015, 0.03, 0.01])
    ref = combine_effects(est, var, method_re="dl")
    r = dersimonian_laird(est, var)
    row = ref.summary_frame().loc["random effect"]
    assert r.estimate == pytest.approx(row["eff"])
    assert r.ci_low == pytest.approx(row["ci_low"]) and r.ci_high == pytest.approx(row["ci_upp"])
    assert r.tau2 == pytest.approx(ref.tau2) and r.i2 == pytest.approx(ref.i2)
    pooled = pool_metric([0.7, 0.75, 0.72], [0.02, 0.03, 0.025], scale="logit")
    assert 0.7 < pooled.estimate < 0.75
    with pytest.raises(ConfigError):
        dersimonian_laird([0.5], [0.01])


def test_riley_development_worked_example():
    # Riley et al. BMJ 2020: 30 parameters, R2cs 0.051, rate 0.065/yr, mean follow-up 2.07 y
    ss = development_sample_size(
        parameters=30, r2_cs=0.051, rate=0.065, mean_followup=2.07, timepoint=2
    )
    assert ss.criteria["shrinkage"] == 5143 and ss.n == 5143
    assert round(ss.events) == 692 and ss.details["events_per_parameter"] == pytest.approx(
        23.07, abs=0.01
    )
    assert not ss.is_enough(5000)


def test_validation_sample_size_criteria():
    ss = validation_sample_size(outcome_risk=0.35, c_statistic=0.75)
    # O/E: SE(ln O/E) = sqrt((1-F)/(nF)) with CI width 0.2
    se = np.arcsinh(0.1) / 1.959964
    assert ss.criteria["oe"] == int(np.ceil(0.65 / (0.35 * se**2)))
    assert ss.n == max(ss.criteria.values())
    with pytest.raises(ConfigError):
        validation_sample_size(outcome_risk=1.5, c_statistic=0.7)
