"""PRE/POST models, baselines, operating characteristics, CV and search."""

from __future__ import annotations

import numpy as np
import pytest
from sklearn.base import clone
from sklearn.model_selection import GridSearchCV

from hccstrat.exceptions import NotFittedError
from hccstrat.models import (
    CoxBaseline,
    GBCoxBaseline,
    LeaveOneCentreOut,
    PatientGroupKFold,
    PostModel,
    PreModel,
    RSFBaseline,
    cross_validate_model,
    operating_characteristics,
    top_factors,
)
from hccstrat.models._base import concordance, ipcw_weights
from hccstrat.survival import endpoint


@pytest.fixture(scope="module")
def split(wide):
    test = (wide["centre"] == "C3").to_numpy()
    return (
        wide[~test],
        wide[test],
        endpoint(wide[~test], "aggressive"),
        endpoint(wide[test], "aggressive"),
    )


@pytest.fixture(scope="module")
def pre(split):
    Xtr, _, ytr, _ = split
    return PreModel().fit(Xtr, ytr)


def test_pre_score_is_calibrated_probability_with_signal(pre, split, cohort):
    _, Xte, _, yte = split
    s = pre.predict_score(Xte)
    assert s.min() >= 0 and s.max() <= 1
    c = concordance(yte, s)
    oracle = concordance(
        yte, cohort.oracle.set_index("patient_id").loc[Xte["patient_id"], "true_p_aggressive24"]
    )
    assert c > 0.65 and c > oracle - 0.05
    oc = operating_characteristics(s, yte)
    assert abs(oc["mean_predicted"] - oc["observed_risk"]) < 0.08  # calibration-in-the-large
    assert np.array_equal(pre.predict_high_risk(Xte), s >= 0.5)


def test_operating_characteristics_match_hand_count():
    from hccstrat.survival import make_surv

    y = make_surv([True, True, False, False, False], [5, 10, 30, 30, 30])
    oc = operating_characteristics(np.array([0.9, 0.2, 0.8, 0.1, 0.1]), y, threshold=0.5)
    assert oc["sensitivity"] == 0.5 and oc["specificity"] == pytest.approx(2 / 3)
    assert oc["ppv"] == 0.5 and oc["high_risk_fraction"] == 0.4


def test_threshold_is_configurable_and_reported(pre, split):
    _, Xte, _, yte = split
    table = pre.operating_characteristics(Xte, yte, thresholds=[0.3, 0.7])
    assert table["threshold"].tolist() == [0.5, 0.3, 0.7]
    assert (
        table["sensitivity"].iloc[1] >= table["sensitivity"].iloc[0] >= table["sensitivity"].iloc[2]
    )
    m = clone(pre).set_params(threshold=0.3)
    assert m.threshold == 0.3 and m.get_params()["threshold"] == 0.3


def test_post_uses_pathology_and_wsi_features(split):
    Xtr, Xte, ytr, yte = split
    post = PostModel(alpha=0.005).fit(Xtr, ytr)
    coef = dict(zip(post.feature_names_, post.learner_.coef_[:, -1], strict=True))
    assert any(abs(v) > 0 for k, v in coef.items() if k.startswith("time_"))
    assert abs(coef["mvi"]) > 0
    shifted = Xte.assign(**{c: Xte[c] + 1.0 for c in Xte if c.startswith("time_")})
    assert not np.allclose(post.predict_score(shifted), post.predict_score(Xte))
    assert post.score(Xte, yte) > 0.65


def test_trains_on_clinical_only_table_and_says_what_it_lacked(cohort):
    X = cohort.clinical
    m = PostModel().fit(X, endpoint(X, "aggressive"))
    assert m.lacking_.missing_modalities == ["mri", "wsi"]
    assert 0.0 <= m.predict_score(X.head()).min()


@pytest.mark.parametrize("n_events, n_free", [(1, 1), (1, 8)])
def test_too_few_patients_for_the_calibration_folds_is_a_model_error(cohort, n_events, n_free):
    """Before: sklearn's 'n_splits=3 greater than the number of samples' or sksurv's
    'all samples are censored' (internal errors in the CLI)."""
    from hccstrat.exceptions import ModelError

    X = cohort.clinical
    y = endpoint(X, "aggressive")
    rows = np.r_[np.flatnonzero(y["event"])[:n_events], np.flatnonzero(~y["event"])[:n_free]]
    with pytest.raises(ModelError) as info:
        PreModel().fit(X.iloc[rows], y[rows])
    assert str(info.value).startswith(
        f"{n_events + n_free} patients with 1 event(s) are too few for 3-fold calibration"
    )


@pytest.mark.parametrize("cls", [GBCoxBaseline, RSFBaseline])
def test_tree_baselines(cls, split):
    Xtr, Xte, ytr, yte = split
    m = cls(n_estimators=40).fit(Xtr, ytr)
    assert m.score(Xte, yte) > 0.65
    S = m.predict_survival_function(Xte.head(4), [6, 12, 24])
    assert S.shape == (4, 3) and (np.diff(S, axis=1) <= 1e-12).all()


def test_not_fitted_error(split):
    with pytest.raises(NotFittedError):
        PreModel().predict_score(split[1])


def test_leave_one_centre_out_and_grid_search(wide):
    y = endpoint(wide, "aggressive")
    cv = LeaveOneCentreOut()
    res = cross_validate_model(CoxBaseline(), wide, y, cv)
    assert sorted(res["test_group"]) == ["C1", "C2", "C3"] and res["error"].isna().all()
    assert (res["c_index"] > 0.6).all()
    gs = GridSearchCV(CoxBaseline(), {"alpha": [0.01, 0.5]}, cv=list(cv.split(wide))).fit(wide, y)
    assert gs.best_params_["alpha"] in (0.01, 0.5)


def test_patient_group_kfold_keeps_patients_together(wide):
    dup = wide.iloc[np.r_[0:50, 0:50]]
    for tr, te in PatientGroupKFold(5).split(dup):
        assert not set(dup["patient_id"].iloc[tr]) & set(dup["patient_id"].iloc[te])


def test_ipcw_weights_zero_for_early_censoring():
    from hccstrat.survival import make_surv

    ev, w = ipcw_weights(make_surv([False, True, False], [3, 5, 30]), 24)
    assert w[0] == 0 and w[1] > 0 and w[2] > 0 and ev.tolist() == [False, True, False]


def test_explanations_linear_exact_and_shap(pre, split):
    Xtr, Xte, ytr, _ = split
    f = top_factors(pre, Xte.head(2), n_top=3)
    assert f["method"].eq("linear").all() and len(f) == 6
    contrib_sum = (
        (pre.transform_features(Xte.head(1)) * pre.learner_.coef_[:, -1]).sum(axis=1).iloc[0]
    )
    assert pre.learner_.predict(pre.transform_features(Xte.head(1)).to_numpy())[0] == pytest.approx(
        contrib_sum
    )
    gb = GBCoxBaseline(n_estimators=30).fit(Xtr, ytr)
    f2 = top_factors(gb, Xte.head(2), n_top=2)
    assert f2["method"].iloc[0] in ("shap", "ablation") and len(f2) == 4


def test_score_baselines_use_clinical_scores():
    pytest.importorskip("hccstrat.clinical.scores")
    from hccstrat.models import BCLCBaseline, ERASLBaseline
    from hccstrat.synthetic.cohort import generate_cohort

    c = generate_cohort(300, 3, seed=0)
    y = endpoint(c.clinical, "aggressive")
    for m in (BCLCBaseline(), ERASLBaseline("pre"), ERASLBaseline("post")):
        m.fit(c.clinical, y)
        assert 0.5 < m.score(c.clinical, y) < 1
        p = m.predict_event_probability(c.clinical.head(5))
        assert ((p >= 0) & (p <= 1)).all()
