import numpy as np
import pandas as pd
import pytest

from hccstrat.evaluation.benefit import benefit_calibration, c_for_benefit, policy_value, qini_curve
from hccstrat.evaluation.conformal import MondrianConformal
from hccstrat.evaluation.drift import input_drift, psi, rolling_performance
from hccstrat.survival import make_surv


@pytest.fixture(scope="module")
def trial():
    """Randomised 3-arm trial with heterogeneous, known effects."""
    rng = np.random.default_rng(3)
    n = 6000
    x = rng.normal(size=n)
    arms = np.array(["surgery", "TACE", "TACE+TKI"])
    a = rng.choice(arms, n)
    log_hr = {"surgery": 0 * x, "TACE": -0.6 * (x > 0), "TACE+TKI": -0.4 * x - 0.1}
    base = 0.02 * np.exp(x)
    s24 = pd.DataFrame({k: np.exp(-base * np.exp(v) * 24) for k, v in log_hr.items()})
    lam = base * np.exp(np.select([a == k for k in arms], [log_hr[k] for k in arms]))
    t = rng.exponential(1 / lam)
    c = rng.uniform(6, 60, n)
    return make_surv(t <= c, np.minimum(t, c)), a, s24


def test_policy_value_ipw_and_dr_recover_truth(trial):
    y, a, s24 = trial
    best = s24.idxmax(axis=1).to_numpy()
    truth = s24.max(axis=1).mean()
    pv = policy_value(y, a, best, horizon=24.0, survival_by_arm=s24)
    assert pv["ipw"] == pytest.approx(truth, abs=3 * pv["se_ipw"] + 0.005)
    assert pv["dr"] == pytest.approx(truth, abs=3 * pv["se_dr"] + 0.005)
    worst = policy_value(y, a, s24.idxmin(axis=1).to_numpy(), horizon=24.0, survival_by_arm=s24)
    assert worst["dr"] < pv["dr"] - 0.03


def test_c_for_benefit_qini_and_benefit_calibration(trial):
    y, a, s24 = trial
    benefit = (s24["TACE+TKI"] - s24["surgery"]).to_numpy()
    good = c_for_benefit(y, a, benefit, treated="TACE+TKI", control="surgery")
    rnd = c_for_benefit(
        y, a, np.random.default_rng(0).normal(size=len(a)), treated="TACE+TKI", control="surgery"
    )
    assert good["c_for_benefit"] > 0.54 and abs(rnd["c_for_benefit"] - 0.5) < 0.04
    q = qini_curve(y, a, benefit, treated="TACE+TKI", control="surgery")
    assert q.attrs["qini_coefficient"] > 0
    cal = benefit_calibration(y, a, benefit, treated="TACE+TKI", control="surgery", n_groups=4)
    assert np.corrcoef(cal["predicted_benefit"], cal["observed_benefit"])[0, 1] > 0.8


def test_mondrian_conformal_coverage_per_centre(simulate):
    y, _, p, _ = simulate(6000, 11)
    centre = np.random.default_rng(1).choice(list("ABC"), len(p))
    cal, test = slice(0, 3000), slice(3000, None)
    cp = MondrianConformal(alpha=0.2, horizon=24.0).fit(p[cal], y[cal], centre[cal])
    cov = cp.coverage(p[test], y[test], centre[test])
    assert set(cov["group"]) == {"A", "B", "C"}
    assert np.all(cov["coverage"] > 0.76)
    sets = cp.predict_set(p[:5], centre[:5])
    assert sets.shape == (5, 2) and sets.any(axis=1).all()


def test_psi_and_input_drift():
    rng = np.random.default_rng(0)
    ref = pd.DataFrame(
        {"afp": rng.lognormal(3, 1, 2000), "sex": rng.choice(["M", "F"], 2000, p=[0.8, 0.2])}
    )
    same = pd.DataFrame(
        {"afp": rng.lognormal(3, 1, 2000), "sex": rng.choice(["M", "F"], 2000, p=[0.8, 0.2])}
    )
    shifted = pd.DataFrame(
        {"afp": rng.lognormal(4, 1, 2000), "sex": rng.choice(["M", "F"], 2000, p=[0.5, 0.5])}
    )
    assert psi(ref["afp"], same["afp"]) < 0.05 and psi(ref["afp"], shifted["afp"]) > 0.25
    d0 = input_drift(ref, same)
    d1 = input_drift(ref, shifted)
    assert not d0["drift"].any() and d1["drift"].all()


def test_rolling_performance_windows(simulate):
    y, _, p, _ = simulate(1200, 12)
    dates = pd.Timestamp("2018-01-01") + pd.to_timedelta(np.linspace(0, 1460, 1200), "D")
    roll = rolling_performance(y, p, dates, window_months=12, step_months=6)
    assert len(roll) >= 6 and roll["n"].iloc[0] > 250
    assert roll["c_index"].dropna().between(0.6, 0.9).all()


def test_policy_value_propensity_missing_arm_is_an_error():
    """Arm 'X' without a propensity column used the last column ('T') silently."""
    from hccstrat.exceptions import ConfigError

    y = make_surv([1, 0, 1, 0, 0, 1], [5, 30, 10, 30, 30, 3.0])
    a = np.array(["S", "T", "S", "T", "X", "X"])
    prop = pd.DataFrame({"S": [0.5] * 6, "T": [0.3] * 6})
    with pytest.raises(ConfigError, match="X"):
        policy_value(y, a, a, propensity=prop)
    full = prop.assign(X=0.2)
    # by hand: IPCW = 1 (no censoring before 24); weights 1/e; 1-based survivors 2, 4, 5
    w = 1 / np.array([0.5, 0.3, 0.5, 0.3, 0.2, 0.2])
    ref = w[[1, 3, 4]].sum() / w.sum()
    assert policy_value(y, a, a, propensity=full)["ipw"] == pytest.approx(ref)
