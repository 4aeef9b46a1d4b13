import json

import numpy as np
import pandas as pd
import pytest
import yaml
from scipy.stats import spearmanr

from hccstrat.evaluation._core import risk_score, survival_at
from hccstrat.evaluation.subgroups import age_band, subgroup_performance
from hccstrat.evaluation.validation import ValidationPlan, run_plan
from hccstrat.exceptions import ConfigError, ModelError
from hccstrat.reports.tripod import tripod_checklist
from hccstrat.reports.validation_report import build_validation_report


@pytest.fixture(scope="module")
def predictions(simulate):
    y, _x, p, _ = simulate(1600, 21)
    rng = np.random.default_rng(0)
    return pd.DataFrame(
        {
            "time": y["time"],
            "event": y["event"],
            "risk": p,
            "centre": rng.choice(list("ABCD"), len(p)),
            "cohort": rng.choice(["development", "internal", "external", "prospective"], len(p)),
            "surgery_date": pd.Timestamp("2016-01-01")
            + pd.to_timedelta(rng.uniform(0, 2000, len(p)), "D"),
            "sex": rng.choice(["M", "F"], len(p)),
            "age": rng.normal(56, 10, len(p)),
            "clinician_high": (p + rng.normal(0, 0.1, len(p))) > 0.5,
        }
    )


PLAN = {
    "name": "test",
    "n_bootstrap": 30,
    "seed": 3,
    "subgroups": ["sex", "age_band", "centre"],
    "stages": [
        {"name": "development", "kind": "development"},
        {"name": "internal", "kind": "internal"},
        {"name": "external", "kind": "external", "min_centre_n": 40},
        {"name": "recal", "kind": "recalibration", "cohort": "external"},
        {
            "name": "prospective",
            "kind": "prospective",
            "clinician_column": "clinician_high",
            "drift_columns": ["age", "sex"],
        },
        {"name": "empty", "kind": "external", "cohort": "nope"},
    ],
}


def test_plan_yaml_roundtrip_and_errors(tmp_path):
    p = tmp_path / "plan.yaml"
    p.write_text(yaml.safe_dump({**PLAN, "data": "preds.csv"}))
    plan = ValidationPlan.from_yaml(p)
    assert plan.stages[3].cohort == "external" and plan.data == str(tmp_path / "preds.csv")
    assert ValidationPlan.from_dict(plan.to_dict()).to_dict() == plan.to_dict()
    with pytest.raises(ConfigError, match="unknown plan keys"):
        ValidationPlan.from_dict({"horizonn": 24})
    with pytest.raises(ConfigError, match="stage 1"):
        ValidationPlan.from_dict({"stages": [{"name": "x", "kind": "bogus"}]})


@pytest.mark.slow
def test_run_plan_and_report(predictions, tmp_path):
    res = run_plan(ValidationPlan.from_dict(PLAN), predictions)
    by = {s.name: s for s in res.stages}
    assert by["empty"].error and "selects no rows" in by["empty"].error
    assert all(
        by[k].error is None for k in ("development", "internal", "external", "recal", "prospective")
    )
    ext = by["external"]
    assert {"centre A", "centre B", "centre C", "centre D", "pooled"} <= set(ext.performance)
    assert 0.6 < ext.meta_analysis["harrell_c"]["estimate"] < 0.9
    assert [r["method"] for r in by["recal"].recalibration] == ["intercept", "slope", "isotonic"]
    ag = by["prospective"].agreement
    assert 0 < ag["kappa"] <= 1 and by["prospective"].drift["rolling"]
    assert by["internal"].subgroups
    html = build_validation_report(res, tmp_path / "r.html")
    numbers = json.loads(html.with_suffix(".json").read_text())
    ext_num = numbers["sections"]["Stage: external"]
    assert ext_num["performance"]["pooled"]["metrics"]["harrell_c"]["estimate"] == pytest.approx(
        ext.performance["pooled"].estimate("harrell_c")
    )
    assert "TRIPOD+AI checklist" in numbers["sections"]
    assert html.read_text().count("<img") >= 6
    # report from the saved JSON form gives the same numbers
    res.save_json(tmp_path / "results.json")
    d = json.loads((tmp_path / "results.json").read_text())
    html2 = build_validation_report(d, tmp_path / "r2.html")
    n2 = json.loads(html2.with_suffix(".json").read_text())
    assert n2["sections"]["Stage: external"]["meta_analysis"] == ext_num["meta_analysis"]


def test_subgroups_and_age_band(predictions):
    from hccstrat.survival import make_surv

    y = make_surv(predictions["event"], predictions["time"])
    tab = subgroup_performance(
        y, predictions["risk"], predictions, ["sex", "age_band"], n_resamples=20
    )
    assert set(tab["variable"]) == {"sex", "age_band"}
    assert tab["c_index"].between(0.6, 0.9).all()
    assert list(age_band([30, 50, 64, 65, 90])) == ["<50", "50-64", "50-64", ">=65", ">=65"]


def test_tripod_checklist_statuses():
    tab = tripod_checklist({"outcome": "RFS at 24 months", "metrics": "C, calibration"})
    st = dict(zip(tab["item"], tab["status"], strict=True))
    assert (
        st["8a"] == "reported"
        and st["5a"] == "not reported"
        and st["18"] == "to complete by the authors"
    )


def test_survival_protocol_with_sksurv_and_lifelines(simulate):
    from lifelines import CoxPHFitter
    from sksurv.linear_model import CoxPHSurvivalAnalysis

    y, x, _, _ = simulate(500, 4)
    X = pd.DataFrame({"x": x})
    sk = CoxPHSurvivalAnalysis().fit(X, y)
    ll = CoxPHFitter().fit(X.assign(T=y["time"], E=y["event"]), "T", "E")
    a = survival_at(sk, X, [12.0, 24.0])
    b = survival_at(ll, X, [12.0, 24.0])
    assert a.shape == (500, 2)
    np.testing.assert_allclose(a, b, atol=0.01)
    assert spearmanr(risk_score(sk, X), x)[0] > 0.999

    class RiskOnly:
        def predict_risk(self, X):
            return np.asarray(X["x"])

    np.testing.assert_array_equal(risk_score(RiskOnly(), X), x)
    with pytest.raises(ModelError):
        survival_at(RiskOnly(), X, [24.0])
