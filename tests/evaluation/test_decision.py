import dcurves
import numpy as np
import pandas as pd
import pytest

from hccstrat.evaluation.decision import classification_at, decision_curve, net_benefit


def test_net_benefit_matches_dcurves(data):
    y, _, p, _ = data
    th = np.array([0.1, 0.25, 0.5, 0.7])
    df = pd.DataFrame({"tt": y["time"], "ev": y["event"].astype(int), "p": p})
    ref = dcurves.dca(
        data=df, outcome="ev", modelnames=["p"], thresholds=th, time=24, time_to_outcome_col="tt"
    )
    got = decision_curve(y, {"p": p}, 24.0, th)
    for strategy, ref_name in (("p", "p"), ("treat all", "all"), ("treat none", "none")):
        a = got[got["strategy"] == strategy]["net_benefit"].to_numpy()
        b = ref[ref["model"] == ref_name]["net_benefit"].to_numpy()
        np.testing.assert_allclose(a, b, atol=1e-9)


def test_classification_without_censoring_equals_confusion_matrix(simulate):
    y, _, p, t = simulate(1500, 4, cens_max=1e9)
    ev = t <= 24
    pos = p >= 0.5
    expect = {
        "sensitivity": (pos & ev).sum() / ev.sum(),
        "specificity": (~pos & ~ev).sum() / (~ev).sum(),
        "ppv": (pos & ev).sum() / pos.sum(),
        "npv": (~pos & ~ev).sum() / (~pos).sum(),
    }
    for method in ("km", "ipcw"):
        got = classification_at(y, p, 24.0, 0.5, method=method)
        for k, v in expect.items():
            assert got[k] == pytest.approx(v, abs=1e-9), (method, k)


def test_classification_with_censoring_close_to_truth(simulate):
    y, _, p, t = simulate(6000, 8)
    ev = t <= 24
    pos = p >= 0.5
    sens = (pos & ev).sum() / ev.sum()
    for method in ("km", "ipcw"):
        assert classification_at(y, p, 24.0, 0.5, method=method)["sensitivity"] == pytest.approx(
            sens, abs=0.03
        )


def test_net_benefit_weighted_rows(data):
    y, _, p, _ = data
    w = np.vstack([np.ones(len(p)), np.ones(len(p))])
    nb = net_benefit(y, p, 24.0, [0.3], weights=w)
    assert nb.shape == (2, 1) and nb[0, 0] == pytest.approx(net_benefit(y, p, 24.0, [0.3])[0])


def test_net_benefit_hand_values_and_threshold_range():
    """Hand KM: treat-all S(24) = 0.4, high-risk (p >= 0.5) S(24) = 0.2 in 5 of 8."""
    from hccstrat.evaluation.decision import treat_all_net_benefit
    from hccstrat.exceptions import ConfigError
    from hccstrat.survival import make_surv

    y = make_surv([1, 1, 0, 1, 0, 1, 0, 0], [1, 2, 3, 4, 5, 6, 30, 30])
    p = np.array([0.9, 0.8, 0.3, 0.7, 0.2, 0.6, 0.1, 1.0])
    np.testing.assert_allclose(net_benefit(y, p, 24, [0.0, 0.5]), [0.6, 0.375])
    np.testing.assert_allclose(treat_all_net_benefit(y, 24, [0.0, 0.5]), [0.6, 0.2])
    for bad in (1.0, -0.1, 1.2, np.nan):
        with pytest.raises(ConfigError):
            net_benefit(y, p, 24, [0.5, bad])
        with pytest.raises(ConfigError):
            treat_all_net_benefit(y, 24, [bad])
