"""Treatment-benefit model: outputs, intervals, abstention, overlap diagnostics."""

from __future__ import annotations

import warnings

import numpy as np
import pandas as pd
import pytest

from hccstrat.exceptions import DataValidationError
from hccstrat.models import (
    ARMS,
    NO_RECOMMENDATION,
    OverlapWarning,
    PolicyWarning,
    TreatmentBenefitModel,
    propensity_overlap,
)
from hccstrat.survival import endpoint


@pytest.fixture(scope="module")
def fitted(wide):
    y = endpoint(wide, "rfs")
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", OverlapWarning)
        m = TreatmentBenefitModel(learner="t", n_bootstrap=4, n_estimators=40, random_state=0).fit(
            wide, y
        )
    return m, m.predict_benefit(wide.head(40))


def test_prediction_structure(fitted, wide):
    m, pred = fitted
    tab = pred.table
    assert pred.curves.shape == (40, 3, len(pred.times)) and pred.times[-1] == 24
    assert (np.diff(pred.curves, axis=2) <= 1e-9).all() and (pred.curves[:, :, 0] > 0.95).all()
    for a in ARMS:
        assert tab[f"rfs24_{a}"].between(0, 1).all()
        assert (tab[f"rfs24_{a}_lo"] <= tab[f"rfs24_{a}_hi"]).all()
        assert tab[f"rmst24_{a}"].between(0, 24).all()
        np.testing.assert_allclose(tab[f"rfs24_{a}"], pred.curves[:, ARMS.index(a), -1])
    assert set(tab["recommended"]) <= {*ARMS, NO_RECOMMENDATION}
    assert (tab.loc[~tab["confident"], "recommended"] == NO_RECOMMENDATION).all()
    assert (tab.loc[tab["confident"], "recommended"] == tab.loc[tab["confident"], "best_arm"]).all()
    assert (tab.loc[~tab["confident"], "policy"] == m.default_arm_).all()
    # expected gain = best arm's outcome minus the propensity-weighted current practice
    best = tab["best_arm"].map(lambda a: tab.columns.get_loc(f"rfs24_{a}"))
    best_val = np.array([tab.iloc[i, j] for i, j in enumerate(best)])
    np.testing.assert_allclose(tab["gain_rfs24"], best_val - tab["current_rfs24"])


def test_best_arm_maximises_the_criterion(fitted):
    _, pred = fitted
    tab = pred.table
    vals = tab[[f"rfs24_{a}" for a in ARMS]].to_numpy()
    assert (np.asarray(ARMS)[vals.argmax(1)] == tab["best_arm"].to_numpy()).all()
    assert (tab["gain_rfs24"] >= -1e-9).all()  # the best arm is at least the practice average


def test_overlap_diagnostics_warn_on_poor_overlap():
    rng = np.random.default_rng(0)
    e = np.column_stack([np.full(200, 0.97), np.full(200, 0.02), np.full(200, 0.01)])
    arm = rng.choice(3, 200, p=[0.9, 0.07, 0.03])
    table, problems = propensity_overlap(e, arm)
    assert table["share_below_clip"].tolist() == [0.0, 1.0, 1.0]
    assert any("TACE+TKI" in p and "propensity" in p for p in problems)
    good = np.full((300, 3), 1 / 3)
    assert propensity_overlap(good, np.repeat([0, 1, 2], 100))[1] == []


def test_fit_warns_when_treatment_is_deterministic(wide):
    X = wide.copy()
    X["adjuvant"] = np.where(X["mvi"].astype(bool), "TACE", "surgery_alone")
    X.loc[X.index[:40], "adjuvant"] = "TACE+TKI"
    with pytest.warns(OverlapWarning):
        TreatmentBenefitModel(learner="t", n_bootstrap=0, n_estimators=10).fit(
            X, endpoint(X, "rfs")
        )


def test_unknown_arm_is_a_validation_error(wide):
    X = wide.copy()
    X.loc[X.index[3], "adjuvant"] = None
    with pytest.raises(DataValidationError, match="adjuvant"):
        TreatmentBenefitModel(n_bootstrap=0).fit(X, endpoint(X, "rfs"))


@pytest.mark.slow
def test_dr_learner_recovers_direction_of_effect(cohort, wide):
    y = endpoint(wide, "rfs")
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", OverlapWarning)
        m = TreatmentBenefitModel(learner="dr", n_bootstrap=0, n_estimators=60).fit(wide, y)
    est = m.predict_outcomes(wide)
    true = cohort.oracle[[f"true_rfs24_{a}" for a in ARMS]].to_numpy()
    # average effect of TACE vs surgery alone has the right sign
    assert np.sign(est["TACE"].mean() - est["surgery_alone"].mean()) == np.sign(
        true[:, 1].mean() - true[:, 0].mean()
    )
    # the curves shown to clinicians end at the DR-learner's 2-year RFS, stay monotone
    pred = m.predict_benefit(wide.head(30))
    for a in ARMS:
        np.testing.assert_allclose(
            pred.table[f"rfs24_{a}"], pred.curves[:, ARMS.index(a), -1], atol=1e-6
        )
    assert (np.diff(pred.curves, axis=2) <= 1e-9).all() and (pred.curves[:, :, 0] > 0.95).all()


def test_match_curves_bends_to_the_target():
    from hccstrat.models._benefit_core import match_curves

    t = np.linspace(0, 24, 25)
    curves = np.exp(-np.array([[0.01, 0.03], [0.02, 0.0]])[..., None] * t)  # [2, 2, 25]
    out = match_curves(curves, np.array([[0.9, 0.3], [0.5, 0.7]]))
    np.testing.assert_allclose(out[0, :, -1], [0.9, 0.3])
    np.testing.assert_allclose(out[1, 0, -1], 0.5)
    np.testing.assert_allclose(out[1, 1], 1.0)  # flat at 1: cannot be bent, unchanged
    # exponential stays exponential: S**k of exp(-h t) is exp(-k h t)
    k = np.log(0.9) / (-0.01 * 24)
    np.testing.assert_allclose(out[0, 0], np.exp(-k * 0.01 * t))


def test_deep_multi_head_outcome_model(wide):
    y = endpoint(wide, "rfs")
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", OverlapWarning)
        m = TreatmentBenefitModel(
            learner="t",
            outcome_model="deep",
            n_bootstrap=0,
            n_grid=9,
            deep_params={"epochs": 5, "hidden": 16},
        ).fit(wide, y)
    pred = m.predict_benefit(wide.head(5))
    assert pred.curves.shape == (5, 3, 9)
    assert isinstance(pred.table, pd.DataFrame) and pred.table["rfs24_TACE"].between(0, 1).all()


def test_s_learner_and_point_estimate_fallback(cohort, wide):
    y = endpoint(wide, "rfs")
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", OverlapWarning)
        m = TreatmentBenefitModel(
            learner="s", n_bootstrap=3, fallback="best", validation_folds=0, random_state=0
        ).fit(wide, y)
    tab = m.predict_benefit(wide.head(60)).table
    vals = tab[[f"rfs24_{a}" for a in ARMS]].to_numpy()
    assert ((vals > 0) & (vals < 1)).all()
    assert (np.asarray(ARMS)[vals.argmax(1)] == tab["best_arm"].to_numpy()).all()
    # without a confident recommendation the policy is the point estimate's best arm
    # (the abstention shows in "recommended" / "confident")
    assert (tab["policy"] == tab["best_arm"]).all()
    assert (tab.loc[~tab["confident"], "recommended"] == NO_RECOMMENDATION).all()
    # the estimated effects of TACE+TKI follow the toy cohort's true heterogeneous effects
    est = m.predict_outcomes(wide)
    gain = (est["TACE+TKI"] - est["surgery_alone"]).to_numpy()
    orc = cohort.oracle
    true = (orc["true_rfs24_TACE+TKI"] - orc["true_rfs24_surgery_alone"]).to_numpy()
    assert np.corrcoef(gain, true)[0, 1] > 0.2


def test_bad_fallback_is_a_model_error(wide):
    from hccstrat.exceptions import ModelError

    with pytest.raises(ModelError, match="fallback"):
        TreatmentBenefitModel(fallback="clinician", n_bootstrap=0).fit(
            wide, endpoint(wide, "rfs")
        )
    with pytest.raises(ModelError, match="default_margin_se=-1"):
        TreatmentBenefitModel(default_margin_se=-1, n_bootstrap=0).fit(
            wide, endpoint(wide, "rfs")
        )


def _randomised(wide, log_hr_tki, seed=0, log_hr_tace=0.0):
    """``wide`` with randomised regimens and RFS redrawn: exponential recurrence, hazard
    ``0.04/month x exp(log_hr)`` where TACE+TKI has ``log_hr_tki`` (per patient) and
    TACE ``log_hr_tace``, no
    deaths, administrative censoring at 36 months."""
    rng = np.random.default_rng(seed)
    X = wide.copy()
    n = len(X)
    arm = rng.integers(0, len(ARMS), n)
    X["adjuvant"] = np.asarray(ARMS, dtype=object)[arm]
    log_hr = np.where(arm == 2, log_hr_tki, np.where(arm == 1, log_hr_tace, 0.0))
    t = rng.exponential(1.0, n) / (0.04 * np.exp(log_hr))
    rec = t < 36.0
    days = pd.to_timedelta(np.round(np.minimum(t, 36.0) * 30.4375), unit="D")
    X["recurrence"] = rec
    X["recurrence_date"] = (X["surgery_date"] + days).where(rec)
    X["death"] = False
    X["death_date"] = pd.NaT
    X["last_followup_date"] = X["surgery_date"] + days
    return X


def test_policy_check_validates_a_real_subgroup_effect(wide):
    # TACE+TKI quarters the hazard with MVI and triples it without: following the
    # individual recommendations clearly beats any one regimen for everyone
    mvi = wide["mvi"].astype(bool).to_numpy()
    X = _randomised(wide, np.where(mvi, np.log(0.25), np.log(3.0)))
    m = TreatmentBenefitModel(learner="s", n_bootstrap=3, random_state=0).fit(
        X, endpoint(X, "rfs")
    )
    check = m.policy_check_
    assert check.validated and check.folds == 3 and check.n == len(X)
    assert len(check.fold_defaults) == 3 and set(check.fold_defaults) <= set(ARMS)
    # the true gain of the policy over the best single regimen is ~0.12-0.2 in 2-year RFS
    assert 0.05 < check.estimate < 0.35 and check.lo > 0
    assert 0.2 < check.deviating < 0.9
    assert check.to_dict()["validated"] is True and "-> validated" in check.summary()
    # doubly robust arm means: P(T > 24) = exp(-0.96) = 0.38 without TACE+TKI
    for arm in ("surgery_alone", "TACE"):
        mean, se = check.arm_means[arm]
        assert abs(mean - np.exp(-0.96)) < 0.08 and 0 < se < 0.05
    tab = m.predict_benefit(X).table
    assert tab["confident"].any()
    rec = tab.loc[tab["confident"], ["recommended"]].assign(mvi=mvi[tab["confident"]])
    assert (rec.loc[rec["mvi"], "recommended"] == "TACE+TKI").mean() > 0.9
    assert (rec.loc[~rec["mvi"], "recommended"] != "TACE+TKI").mean() > 0.9


def test_policy_check_withholds_recommendations_without_heterogeneity(wide):
    # the regimen makes no difference: whatever the model recommends cannot be shown
    # to beat the default, so it abstains for everyone and says why
    X = _randomised(wide, np.zeros(len(wide)), seed=1)
    with pytest.warns(PolicyWarning, match="NOT validated"):
        m = TreatmentBenefitModel(learner="s", n_bootstrap=3, random_state=0).fit(
            X, endpoint(X, "rfs")
        )
    assert not m.policy_check_.validated and m.policy_check_.lo <= 0 < m.policy_check_.hi
    tab = m.predict_benefit(X).table
    assert not tab["confident"].any()
    assert (tab["recommended"] == NO_RECOMMENDATION).all()
    assert (tab["policy"] == m.default_arm_).all()
    # without the check (validation_folds=0) nothing is withheld for the whole cohort
    m0 = TreatmentBenefitModel(
        learner="s", n_bootstrap=3, validation_folds=0, random_state=0
    ).fit(X, endpoint(X, "rfs"))
    assert m0.policy_check_ is None
    # fallback="best" follows the point estimates only when they were validated
    with pytest.warns(PolicyWarning):
        mb = TreatmentBenefitModel(
            learner="s", n_bootstrap=0, fallback="best", random_state=0
        ).fit(X, endpoint(X, "rfs"))
    tab_b = mb.predict_benefit(X).table
    assert (tab_b["policy"] == mb.default_arm_).all()
    assert (tab_b["best_arm"] != mb.default_arm_).any()


def test_policy_check_summary_when_no_patient_deviates():
    from hccstrat.models import PolicyCheck

    c = PolicyCheck(criterion="rfs", default_arm="TACE", n=50, folds=3, deviating=0.0,
                    estimate=0.0, se=0.0, lo=0.0, hi=0.0, confidence=0.9, arm_means={})
    assert not c.validated and "nothing to validate" in c.summary()
    assert "vs TACE for everyone" in c.summary()


def test_policy_check_summary_names_fold_defaults_that_differ():
    from hccstrat.models import PolicyCheck

    kw = dict(criterion="rfs", default_arm="TACE", n=900, folds=3, deviating=0.4,
              estimate=0.01, se=0.02, lo=-0.023, hi=0.043, confidence=0.9, arm_means={})
    same = PolicyCheck(**kw, fold_defaults=("TACE", "TACE", "TACE"))
    assert "vs TACE for everyone, cross-fitted on 900 patients" in same.summary()
    mixed = PolicyCheck(**kw, fold_defaults=("TACE", "TACE+TKI", "TACE"))
    assert (
        "vs the default regimen for everyone (TACE for the full model; per fold: TACE, "
        "TACE+TKI, TACE)" in mixed.summary()
    )
    assert mixed.to_dict()["fold_defaults"] == ("TACE", "TACE+TKI", "TACE")


def test_policy_check_that_cannot_run_withholds_recommendations(wide):
    # 12 patients had TACE+TKI: enough for the full fit (>= 10 per arm), not for a fit
    # on two thirds of them; the check fails, is recorded, and the model abstains
    X = _randomised(wide, np.zeros(len(wide)), seed=2)
    tki = np.flatnonzero((X["adjuvant"] == "TACE+TKI").to_numpy())
    X.loc[X.index[tki[12:]], "adjuvant"] = "TACE"
    with pytest.warns(PolicyWarning, match="could not run"):
        m = TreatmentBenefitModel(learner="s", n_bootstrap=0, random_state=0).fit(
            X, endpoint(X, "rfs")
        )
    assert m.policy_check_ is None and "too few (< 10) in a regimen" in m.policy_check_error_
    assert not m.recommendations_validated_
    tab = m.predict_benefit(X.head(20)).table
    assert (tab["recommended"] == NO_RECOMMENDATION).all()


def _scores(means, n, seed=0):
    """AIPW-like scores with the given means: a shared per-patient part (prognosis) plus
    arm-specific noise (paired differences have sd ~0.7)."""
    rng = np.random.default_rng(seed)
    noise = rng.normal(0.0, 0.4, (n, 1)) + rng.normal(0.0, 0.5, (n, len(means)))
    return np.asarray(means)[None, :] + noise - noise.mean(axis=0)  # exactly these means


def test_default_regimen_best_mean_or_least_intensive_within_a_margin():
    from hccstrat.models._policy_check import choose_default

    # 1-2 points between arms with ~5 points of standard error: the best mean, or
    # with a one-standard-error rule the least intensive
    j, reason = choose_default(_scores([0.60, 0.61, 0.62], 200), ARMS)
    assert j == 2 and "TACE+TKI: the best mean outcome for everyone" in reason
    assert "surgery_alone vs TACE+TKI -2.0 points (se 5.0)" in reason
    j, reason = choose_default(_scores([0.60, 0.61, 0.62], 200), ARMS, margin_se=1.0)
    assert j == 0 and reason.startswith("default regimen surgery_alone")
    assert "within 1 standard error(s)" in reason
    # TACE far better than surgery alone (+15 points, se ~1.6) and within noise of
    # TACE+TKI (whichever has the higher mean): TACE, without the TKI's toxicity
    j, reason = choose_default(_scores([0.50, 0.65, 0.66], 2000, seed=1), ARMS, 1.0)
    assert j == 1 and "surgery_alone vs TACE+TKI -16.0 points (se 1.6)" in reason
    assert "TACE vs TACE+TKI -1.0 points (se 1.5)" in reason
    # TACE+TKI clearly best (+20 points): both others are more than 1 se worse
    j, reason = choose_default(_scores([0.50, 0.50, 0.70], 2000, seed=2), ARMS, 1.0)
    assert j == 2 and "TACE vs TACE+TKI -20.0 points (se 1.6)" in reason
    # the least intensive is the best on average: the others are only reported
    j, reason = choose_default(_scores([0.70, 0.50, 0.50], 2000, seed=3), ARMS, 1.0)
    assert j == 0 and "TACE vs surgery_alone -" in reason
    assert "TACE+TKI vs surgery_alone -" in reason
    # months of RMST are reported as months
    _, reason = choose_default(_scores([15.0, 15.0, 15.5], 300), ARMS, 1.0, "rmst")
    assert " months (se " in reason and "points" not in reason


def test_default_regimen_of_a_fitted_model_follows_the_evidence(wide):
    # randomised trials: (1) TACE+TKI cuts the hazard by 70 %, TACE does nothing; (2)
    # TACE and TACE+TKI both more than halve it (TACE+TKI a little less): TACE, also
    # with a one-standard-error rule; (3) no effect and a tolerance of 3 standard
    # errors: surgery alone
    for log_tki, log_tace, margin, expected in (
        (np.log(0.3), 0.0, 0.0, "TACE+TKI"),
        (np.log(0.45), np.log(0.4), 1.0, "TACE"),
        (0.0, 0.0, 3.0, "surgery_alone"),
    ):
        X = _randomised(wide, np.full(len(wide), log_tki), seed=3, log_hr_tace=log_tace)
        with warnings.catch_warnings():
            warnings.simplefilter("ignore")
            m = TreatmentBenefitModel(
                learner="t", n_estimators=40, n_bootstrap=0, validation_folds=0,
                default_margin_se=margin, random_state=0,
            ).fit(X, endpoint(X, "rfs"))
        assert m.default_arm_ == expected, m.default_arm_reason_
        assert m.default_arm_reason_.startswith(f"default regimen {expected}")


@pytest.mark.parametrize("learner", ["dr", "s"])
def test_a_regimen_nobody_received_is_a_model_error(wide, learner):
    """Before: sklearn's 'needs samples of at least 2 classes' (an internal error in the
    CLI) for one regimen, or 'arm 2 has 0 patients' for two."""
    from hccstrat.exceptions import ModelError

    X = wide.assign(adjuvant=wide["adjuvant"].replace({"TACE+TKI": "TACE"}))
    with pytest.raises(ModelError) as info:
        TreatmentBenefitModel(learner=learner, n_bootstrap=0).fit(X, endpoint(X, "rfs"))
    n_alone = int((X["adjuvant"] == "surgery_alone").sum())
    assert str(info.value).startswith(
        "no patient in the table received TACE+TKI (regimens received: "
        f"surgery_alone: {n_alone}, TACE: {len(X) - n_alone}, TACE+TKI: 0)"
    )
    with pytest.raises(ModelError, match="received TACE or TACE\\+TKI"):
        one = wide.assign(adjuvant="surgery_alone")
        TreatmentBenefitModel(n_bootstrap=0).fit(one, endpoint(one, "rfs"))


@pytest.mark.parametrize(("learner", "message"), [
    ("t", "TACE+TKI has 5 patients and"),
    ("s", "patients per regimen surgery_alone: "),
])
def test_a_rare_regimen_is_named_in_the_error(wide, learner, message):
    """Before: 'arm 2 has 5 patients' / 'arm sizes [..]': the regimen by its code."""
    from hccstrat.exceptions import ModelError

    tki = np.flatnonzero(wide["adjuvant"].to_numpy() == "TACE+TKI")
    X = wide.drop(index=wide.index[tki[5:]])
    with pytest.raises(ModelError, match=message.replace("+", "\\+")) as info:
        TreatmentBenefitModel(learner=learner, n_bootstrap=0).fit(X, endpoint(X, "rfs"))
    assert "TACE+TKI: 5" in str(info.value) or learner == "t"
