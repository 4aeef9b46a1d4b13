"""Trial analysis numbers against lifelines on the same data; interim boundaries."""

from __future__ import annotations

import numpy as np
import pandas as pd
import pytest
from lifelines import CoxPHFitter, KaplanMeierFitter
from lifelines.statistics import logrank_test
from lifelines.utils import restricted_mean_survival_time

from hccstrat.survival import make_surv
from hccstrat.trial.analysis import (
    analyse_trial,
    analysis_sets,
    kaplan_meier,
    logrank,
    objective_response,
    rmst,
    rmst_difference,
    survival_at,
)
from hccstrat.trial.interim import group_sequential_bounds, interim_decision, spending


@pytest.fixture(scope="module")
def data():
    rng = np.random.default_rng(42)
    n = 240
    arm = np.where(rng.random(n) < 0.5, "exp", "ctl")
    centre = rng.choice(["C1", "C2", "C3"], n)
    base = np.where(centre == "C1", 0.03, np.where(centre == "C2", 0.05, 0.04))
    t = rng.exponential(1 / (base * np.where(arm == "exp", 0.65, 1.0)))
    c = rng.uniform(6, 48, n)
    time = np.round(np.minimum(t, c), 1)  # rounding creates ties
    return make_surv(t <= c, time), arm, centre


def test_km_matches_lifelines(data):
    y, _, _ = data
    km = kaplan_meier(y)
    kmf = KaplanMeierFitter().fit(y["time"], y["event"])
    sf = kmf.survival_function_["KM_estimate"]
    ci = kmf.confidence_interval_
    mine = km.set_index("time")
    np.testing.assert_allclose(mine["survival"].to_numpy(), sf.loc[mine.index].to_numpy(),
                               rtol=1e-12)
    np.testing.assert_allclose(mine["ci_lower"].to_numpy()[1:], ci.iloc[:, 0].loc[
        mine.index].to_numpy()[1:], rtol=1e-8)
    np.testing.assert_allclose(mine["ci_upper"].to_numpy()[1:], ci.iloc[:, 1].loc[
        mine.index].to_numpy()[1:], rtol=1e-8)
    s24 = survival_at(y, 24.0)
    assert s24["survival"] == pytest.approx(float(kmf.predict(24.0)), rel=1e-12)
    lf_ci = ci[ci.index <= 24.0].iloc[-1]
    assert s24["ci_lower"] == pytest.approx(lf_ci.iloc[0], rel=1e-8)
    assert s24["ci_upper"] == pytest.approx(lf_ci.iloc[1], rel=1e-8)


def test_logrank_matches_lifelines(data):
    y, arm, centre = data
    lr = logrank(y, arm)
    m = arm == "exp"
    ref = logrank_test(y["time"][m], y["time"][~m], y["event"][m], y["event"][~m])
    assert lr["statistic"] == pytest.approx(ref.test_statistic, rel=1e-8)
    assert lr["p_value"] == pytest.approx(ref.p_value, rel=1e-6)
    # stratified = sums of per-stratum O-E and V
    parts = [logrank(y[centre == c], arm[centre == c]) for c in ("C1", "C2", "C3")]
    st = logrank(y, arm, strata=centre)
    oe = sum(p["observed"] - p["expected"] for p in parts)
    assert st["z"] == pytest.approx(oe / np.sqrt(sum(p["variance"] for p in parts)))
    assert st["z"] > 0  # group 1 ("ctl", higher hazard) has more events than expected
    assert st["group1"] == "ctl"


def test_cox_and_rmst_match_lifelines(data):
    y, arm, centre = data
    res = analyse_trial(y, arm, experimental="exp", strata=pd.DataFrame({"centre": centre}))
    df = pd.DataFrame({"T": y["time"], "E": y["event"].astype(int),
                       "treated": (arm == "exp").astype(float), "centre": centre})
    cph = CoxPHFitter().fit(df, "T", "E", strata=["centre"])
    assert res.cox["hr"] == pytest.approx(float(cph.hazard_ratios_["treated"]), rel=1e-6)
    lo, hi = np.exp(cph.confidence_intervals_.loc["treated"])
    assert res.cox["ci_lower"] == pytest.approx(lo, rel=1e-6)
    assert res.cox["ci_upper"] == pytest.approx(hi, rel=1e-6)
    assert res.cox["hr"] < 1
    for a in ("exp", "ctl"):
        kmf = KaplanMeierFitter().fit(y["time"][arm == a], y["event"][arm == a])
        ref = restricted_mean_survival_time(kmf, t=24.0)
        assert rmst(y[arm == a], 24.0)["rmst"] == pytest.approx(ref, rel=1e-6)
        assert res.landmark[a]["survival"] == pytest.approx(float(kmf.predict(24.0)), rel=1e-10)
    assert res.rmst["groups"] == ["ctl", "exp"]
    assert res.rmst["difference"] == pytest.approx(
        rmst(y[arm == "exp"], 24)["rmst"] - rmst(y[arm == "ctl"], 24)["rmst"])
    assert res.numbers()["n_exp"] == int((arm == "exp").sum())


def test_rmst_se_against_bootstrap():
    rng = np.random.default_rng(0)
    n = 300
    t, c = rng.exponential(30, n), rng.uniform(5, 40, n)
    y = make_surv(t <= c, np.minimum(t, c))
    se = rmst(y, 24)["se"]
    boot = [rmst(y[rng.integers(0, n, n)], 24)["rmst"] for _ in range(300)]
    assert se == pytest.approx(np.std(boot), rel=0.15)
    d = rmst_difference(y, np.arange(n) % 2, 24)
    assert d["ci_lower"] < d["difference"] < d["ci_upper"]


def test_orr_and_sets():
    r = objective_response(["CR", "PR", "PR", "SD", "PD", "NE", None, "pr"])
    assert (r["n"], r["responders"]) == (7, 4) and r["orr"] == pytest.approx(4 / 7)
    assert r["ci_lower"] == pytest.approx(0.1840, abs=1e-3)  # Clopper-Pearson 4/7
    assert r["ci_upper"] == pytest.approx(0.9010, abs=1e-3)
    df = pd.DataFrame({"arm": ["A", "A", "B", None], "received_arm": ["A", "B", "B", None],
                       "postoperative_status": ["eligible", "eligible", "ineligible", None]})
    s = analysis_sets(df)
    assert s["itt"].tolist() == [True, True, True, False]
    assert s["mitt"].tolist() == [True, True, False, False]
    assert s["per_protocol"].tolist() == [True, False, False, False]


def test_obrien_fleming_boundaries_match_gsdesign():
    # gsDesign::gsDesign(k, test.type=2, alpha=0.025, sfu=sfLDOF) upper bounds
    assert group_sequential_bounds([0.5, 1])["z_bound"].tolist() == pytest.approx(
        [2.9626, 1.9686], abs=2e-4)
    assert group_sequential_bounds([1 / 3, 2 / 3, 1])["z_bound"].tolist() == pytest.approx(
        [3.7103, 2.5114, 1.9930], abs=2e-4)
    b = group_sequential_bounds([0.25, 0.5, 0.75, 1])
    assert b["z_bound"].tolist() == pytest.approx([4.3326, 2.9631, 2.3590, 2.0141], abs=2e-4)
    assert b["alpha_cumulative"].iloc[-1] == pytest.approx(0.05)
    assert spending(1.0, 0.025) == pytest.approx(0.025)
    assert group_sequential_bounds([1.0])["z_bound"].iloc[0] == pytest.approx(1.95996, abs=1e-4)
    assert interim_decision(3.1, 1, b)["decision"] == "continue"
    assert interim_decision(-4.5, 1, b)["decision"] == "stop for efficacy"
    assert interim_decision(2.1, 4, b)["decision"] == "reject H0"


def test_obf_type_one_error_by_simulation():
    """Monte Carlo: crossing probability under H0 equals alpha."""
    rng = np.random.default_rng(3)
    t = np.array([1 / 3, 2 / 3, 1.0])
    b = group_sequential_bounds(t)["z_bound"].to_numpy()
    inc = rng.normal(size=(200_000, 3)) * np.sqrt(np.diff(np.concatenate([[0], t])))
    z = np.cumsum(inc, axis=1) / np.sqrt(t)
    rate = np.mean((np.abs(z) >= b).any(axis=1))
    assert rate == pytest.approx(0.05, abs=0.002)


def test_analyse_trial_bad_inputs_say_what_is_wrong():
    from hccstrat.exceptions import ConfigError, ModelError
    from hccstrat.trial.analysis import analyse_trial

    y = make_surv(np.zeros(8, bool), np.arange(1.0, 9.0))  # no events yet
    arm = np.array(["A", "B"] * 4)
    with pytest.raises(ModelError, match=r"cannot be estimated \(0 event"):
        analyse_trial(y, arm, experimental="B")  # before: lifelines ConvergenceError
    with pytest.raises(ConfigError, match=r"found 1 arm label\(s\) \['A'\]"):
        analyse_trial(y, np.array(["A"] * 8), experimental="B")
    with pytest.raises(ConfigError, match="horizon -5"):
        analyse_trial(y, arm, experimental="B", horizon=-5)
