import numpy as np
import pytest
from lifelines.utils import concordance_index
from sksurv.metrics import concordance_index_censored, concordance_index_ipcw
from sksurv.metrics import cumulative_dynamic_auc as sk_auc

from hccstrat.evaluation.discrimination import cumulative_dynamic_auc, harrell_c, uno_c
from hccstrat.exceptions import DataValidationError
from hccstrat.survival import make_surv


@pytest.mark.parametrize("seed", [0, 1, 2])
def test_harrell_matches_lifelines_and_sksurv_with_ties(seed, simulate):
    y, x, _, _ = simulate(700, seed)
    t = np.round(y["time"])  # many tied times
    r = np.round(x, 1)  # many tied risks
    yt = make_surv(y["event"], t)
    ours = harrell_c(yt, r)
    assert ours == pytest.approx(concordance_index(t, -r, y["event"]), abs=1e-12)
    assert ours == pytest.approx(concordance_index_censored(y["event"], t, r)[0], abs=1e-12)


def test_harrell_weights_equal_repeated_rows(simulate):
    y, x, _, _ = simulate(300, 3)
    rng = np.random.default_rng(0)
    w = rng.multinomial(300, np.full(300, 1 / 300), size=4).astype(float)
    batch = harrell_c(y, x, weights=w)
    for b in range(4):
        idx = np.repeat(np.arange(300), w[b].astype(int))
        assert batch[b] == pytest.approx(
            concordance_index(y["time"][idx], -x[idx], y["event"][idx])
        )


def test_uno_matches_sksurv(data):
    y, x, _, _ = data
    for tau in (12.0, 36.0):
        assert uno_c(y, x, tau=tau) == pytest.approx(
            concordance_index_ipcw(y, y, x, tau=tau)[0], abs=1e-10
        )


def test_td_auc_matches_sksurv(data):
    y, x, _, _ = data
    times = [6.0, 12.0, 24.0, 36.0]
    np.testing.assert_allclose(
        cumulative_dynamic_auc(y, x, times), sk_auc(y, y, x, times)[0], atol=1e-10
    )


def test_td_auc_weighted_rows(data):
    y, x, _, _ = data
    w = np.ones((2, len(x)))
    out = cumulative_dynamic_auc(y, x, [24.0], weights=w)
    assert out.shape == (2, 1) and out[0, 0] == pytest.approx(out[1, 0])


def test_no_comparable_pairs_is_a_clear_error():
    y = make_surv([False, False, False], [1.0, 2.0, 3.0])
    with pytest.raises(DataValidationError, match="comparable"):
        harrell_c(y, [0.1, 0.2, 0.3])


def test_bad_inputs_rejected():
    y = make_surv([True, False], [1.0, 2.0])
    with pytest.raises(DataValidationError):
        harrell_c(y, [0.1, 0.2, 0.3])
    with pytest.raises(DataValidationError):
        harrell_c({"a": 1}, [0.1])
