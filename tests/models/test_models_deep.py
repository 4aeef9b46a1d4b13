"""Deep PRE model (3D CNN + clinical MLP) on tiny volumes with a planted signal."""

from __future__ import annotations

import numpy as np
import pandas as pd
import pytest

from hccstrat.exceptions import ModelError
from hccstrat.models import DeepPreModel, volume_saliency
from hccstrat.models._base import concordance
from hccstrat.survival import endpoint


def _crops(z: np.ndarray, seed: int, size: int = 16) -> list[np.ndarray]:
    """4-phase crops: a tumour sphere whose arterial rim brightness grows with risk ``z``."""
    rng = np.random.default_rng(seed)
    g = np.indices((size,) * 3) - (size - 1) / 2
    r = np.sqrt((g**2).sum(0))
    tumour, rim = r < 5, (r >= 4) & (r < 6)
    out = []
    for zi in z:
        v = rng.normal(0, 0.3, (4, size, size, size)).astype(np.float32) + 1.0
        v[:, tumour] += 0.5
        v[1, rim] += 2.0 / (1 + np.exp(-2 * zi))  # arterial-phase rim enhancement
        out.append(v)
    return out


@pytest.fixture(scope="module")
def data(cohort):
    n = 260
    clin = cohort.clinical.iloc[:n]
    X = pd.DataFrame({"patient_id": clin["patient_id"].to_numpy(), "age": clin["age"].to_numpy()})
    X["mri_crop"] = _crops(cohort.latent["aggressiveness"].to_numpy()[:n], seed=0)
    return X, endpoint(clin, "aggressive")


@pytest.mark.slow
@pytest.mark.parametrize("head", ["discrete", "cox"])
def test_learns_planted_image_signal(data, head):
    X, y = data
    tr, te = np.arange(180), np.arange(180, 260)
    m = DeepPreModel(
        head=head, epochs=12, batch_size=16, channels=(4, 8), num_threads=2, random_state=0
    ).fit(X.iloc[tr], y[tr])
    s = m.predict_score(X.iloc[te])
    assert ((s >= 0) & (s <= 1)).all()
    assert concordance(y[te], s) > 0.62
    # the uncalibrated output ranks too (a monotone calibrator could hide a flipped net)
    raw = m._raw_probability(m._forward(*m._inputs(X.iloc[te])))
    assert concordance(y[te], raw) > 0.62
    assert len(m.history_) == 12 and "MRI image features" not in m.lacking_.summary()


def test_discrete_bins_follow_censoring_at_the_horizon():
    from hccstrat.models._base import discrete_time_bins
    from hccstrat.survival import make_surv

    y = make_surv(
        [True, False, True, True, False, True, False], [3.0, 4.0, 23.9, 24.0, 24.0, 30.0, 0.5]
    )
    idx, ev = discrete_time_bins(y, 24.0, 6)  # intervals (0,4], (4,8], ..., (20,24]
    # event at 3 -> interval 0; censored at 4 survived interval 0; event at 23.9 and at
    # 24 -> last interval; censored AT the horizon survived all six (the bug this guards:
    # putting it in the last interval left that interval's hazard without survivors);
    # event after the horizon is censoring beyond it; censored at 0.5 survived none
    assert idx.tolist() == [0, 1, 5, 5, 6, 6, 0]
    assert ev.tolist() == [True, False, True, True, False, False, False]


def test_missing_phase_is_masked_and_saliency(data):
    X, y = data
    m = DeepPreModel(epochs=1, channels=(4,), random_state=0).fit(X.iloc[:80], y[:80])
    Xm = X.iloc[:4].copy()
    Xm["mri_phases"] = [np.array([1, 0, 1, 1], bool)] * 4
    Xm["mri_crop"] = [*Xm["mri_crop"].iloc[:3], None]  # last patient: no MRI, clinical only
    s = m.predict_score(Xm)
    assert np.isfinite(s).all()
    sal = volume_saliency(m, Xm)
    assert sal.shape == (4, 4, 16, 16, 16)
    assert (sal[:, 1] == 0).all() and (sal[3] == 0).all() and sal[0, 0].sum() > 0
    clone_params = m.get_params()
    assert clone_params["phase_dropout"] == 0.25


def test_saved_and_loaded_with_its_card(data, tmp_path):
    # the CNN must be importable by name for the model to be saved (it was a class
    # defined inside a function: save_model failed with a raw AttributeError)
    from hccstrat.models import load_model, save_model

    X, y = data
    m = DeepPreModel(epochs=1, channels=(4,), random_state=0).fit(X.iloc[:60], y[:60])
    card = save_model(m, tmp_path / "deep.hccmodel", name="deep PRE", intended_use="test")
    assert card.model_class.endswith("DeepPreModel")
    back = load_model(tmp_path / "deep.hccmodel")
    np.testing.assert_allclose(back.predict_score(X.iloc[60:70]), m.predict_score(X.iloc[60:70]))


def test_bad_volumes_are_clear_errors(data):
    X, y = data
    bad = X.iloc[:10].copy()
    bad["mri_crop"] = [np.zeros((4, 8, 8, 8), np.float32), *bad["mri_crop"].iloc[1:]]
    with pytest.raises(ModelError, match="one shape"):
        DeepPreModel(epochs=1).fit(bad, y[:10])
    with pytest.raises(ModelError, match="mri_crop"):
        DeepPreModel(epochs=1).fit(X.drop(columns="mri_crop").iloc[:10], y[:10])
