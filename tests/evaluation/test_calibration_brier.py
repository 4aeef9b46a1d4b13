import numpy as np
import pandas as pd
import pytest
from lifelines import CoxPHFitter, KaplanMeierFitter
from sksurv.metrics import brier_score as sk_brier
from sksurv.metrics import integrated_brier_score as sk_ibs

from hccstrat.evaluation.brier import brier_score, integrated_brier_score, scaled_brier
from hccstrat.evaluation.calibration import (
    calibration_curve,
    calibration_in_the_large,
    calibration_slope,
    calibration_table,
    cloglog,
)
from hccstrat.evaluation.recalibration import Recalibrator


def _surv(x, times, base=0.02):
    return np.exp(-np.outer(base * np.exp(x), times))


def test_brier_and_ibs_match_sksurv(data):
    y, x, _, _ = data
    times = np.array([3.0, 6.0, 12.0, 24.0, 36.0])
    s = _surv(x, times)
    np.testing.assert_allclose(brier_score(y, s, times), sk_brier(y, y, s, times)[1], atol=1e-12)
    assert integrated_brier_score(y, s, times) == pytest.approx(sk_ibs(y, y, s, times), abs=1e-12)
    assert 0 < scaled_brier(y, s[:, 3], 24.0) < 1


def test_brier_beyond_last_censored_follow_up_is_refused():
    """G(t) = 0 leaves no IPCW estimate (sksurv refuses such times too); 0.125 was returned."""
    from hccstrat.exceptions import DataValidationError
    from hccstrat.survival import make_surv

    y = make_surv([1, 1, 0, 0], [1.0, 2.0, 3.0, 4.0])
    s = np.full((4, 2), 0.5)
    np.testing.assert_allclose(brier_score(y, s, [2.5, 3.5]), sk_brier(y, y, s, [2.5, 3.5])[1])
    with pytest.raises(DataValidationError):
        brier_score(y, s, [3.5, 10.0])
    with pytest.raises(ValueError):
        sk_brier(y, y, s, [3.5, 10.0])
    rows = brier_score(y, s, [3.5, 10.0], weights=np.ones((2, 4)))
    assert rows[:, 0] == pytest.approx([0.25, 0.25]) and np.isnan(rows[:, 1]).all()
    with pytest.raises(DataValidationError):
        scaled_brier(y, s[:, 0], 10.0)


def test_brier_event_censoring_tie_follows_documented_reverse_km():
    """Event and censoring tied at 1: G = lifelines reverse KM (0.75), taken at T−.

    By hand: (0.25/1 + 0.25/0.75 + 0.25/0.75) / 4; sksurv's convention gives 0.28125.
    """
    from hccstrat.survival import make_surv

    y = make_surv([1, 0, 1, 0], [1.0, 1.0, 2.0, 3.0])
    g = KaplanMeierFitter().fit([1, 1, 2, 3], [0, 1, 0, 1]).survival_function_at_times([2.5])
    assert float(g.iloc[0]) == pytest.approx(0.75)
    s = np.full((4, 1), 0.5)
    assert brier_score(y, s, [2.5])[0] == pytest.approx((0.25 + 2 * 0.25 / 0.75) / 4)
    assert sk_brier(y, y, s, [2.5])[1][0] == pytest.approx(0.28125)


def test_slope_matches_lifelines_cox(data):
    y, _x, p, _ = data
    df = pd.DataFrame(
        {"x": cloglog(p), "T": np.minimum(y["time"], 24), "E": y["event"] & (y["time"] <= 24)}
    )
    ref = CoxPHFitter().fit(df, "T", "E").params_["x"]
    assert calibration_slope(y, p, 24.0) == pytest.approx(ref, abs=1e-4)


def test_slope_without_events_is_nan_not_zero():
    """A resample with no event by the horizon has no slope; 0 would drag the CI to 0."""
    from hccstrat.evaluation.bootstrap import bootstrap
    from hccstrat.exceptions import DataValidationError
    from hccstrat.survival import make_surv

    rng = np.random.default_rng(0)
    n = 40
    t = rng.uniform(1, 30, n)
    e = np.zeros(n, bool)
    e[[3, 7]] = True
    t[[3, 7]] = [5.0, 10.0]
    p = rng.uniform(0.1, 0.6, n)
    p[[3, 7]] = [0.5, 0.55]
    y = make_surv(e, t)
    w = np.ones((2, n))
    w[1, [3, 7]] = 0.0  # the second "resample" has no event
    s = calibration_slope(y, p, 24.0, weights=w)
    assert s[0] == pytest.approx(calibration_slope(y, p, 24.0)) and np.isnan(s[1])
    r = bootstrap(y, p, n_resamples=200, seed=1)
    samples = r.samples["calibration_slope"]
    assert np.isnan(samples).sum() == np.isnan(r.samples["harrell_c"]).sum() > 0
    assert not (samples == 0).any()
    with pytest.raises(DataValidationError):
        calibration_slope(make_surv(np.zeros(5, bool), np.arange(1, 6.0)), np.full(5, 0.3))


def test_oe_uses_kaplan_meier(data):
    y, _, p, _ = data
    km = KaplanMeierFitter().fit(y["time"], y["event"]).predict(24.0)
    res = calibration_in_the_large(y, p, 24.0)
    assert res["observed"] == pytest.approx(1 - km, abs=1e-12)
    assert res["oe_ratio"] == pytest.approx((1 - km) / p.mean())


def test_ici_recovers_known_miscalibration(simulate):
    y, x, p, _ = simulate(4000, 5)
    good = calibration_curve(y, p, 24.0)
    assert good.ici < 0.02 and good.e90 < 0.04
    lam = 0.02 * np.exp(1.5 * x)  # too extreme predictions
    bad = 1 - np.exp(-lam * 24)
    curve = calibration_curve(y, bad, 24.0)
    true_ici = np.abs(bad - p).mean()
    assert curve.ici == pytest.approx(true_ici, abs=0.015)
    assert calibration_slope(y, bad, 24.0) == pytest.approx(1 / 1.5, abs=0.08)


def test_calibration_table_groups(data):
    y, _, p, _ = data
    tab = calibration_table(y, p, 24.0, n_groups=5)
    assert len(tab) == 5 and tab["n"].sum() == len(p)
    assert np.all(tab["observed_lo"] <= tab["observed"]) and np.all(
        tab["observed"] <= tab["observed_hi"]
    )
    assert np.corrcoef(tab["predicted"], tab["observed"])[0, 1] > 0.95


@pytest.mark.parametrize("method", ["intercept", "slope", "isotonic"])
def test_recalibration_fixes_overprediction(method, simulate):
    y, _x, p, _ = simulate(3000, 7)
    over = 1 - (1 - p) ** 2  # hazard doubled
    before = calibration_in_the_large(y, over, 24.0)["oe_ratio"]
    new = Recalibrator(method, 24.0).fit(over[:1500], y[:1500]).transform(over[1500:])
    after = calibration_in_the_large(y[1500:], new, 24.0)["oe_ratio"]
    assert before < 0.8
    assert after == pytest.approx(1.0, abs=0.08)
