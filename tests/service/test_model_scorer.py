"""Saved models as scorers: ``hccstrat serve --model PRE=pre.hccmodel``."""

from __future__ import annotations

import pytest
from fastapi.testclient import TestClient

from hccstrat.exceptions import ConfigError, ModelError


@pytest.fixture(scope="module")
def saved_pre(tmp_path_factory):
    from hccstrat.models import PreModel
    from hccstrat.models.persist import save_model
    from hccstrat.survival import endpoint
    from hccstrat.synthetic.cohort import generate_cohort

    cohort = generate_cohort(200, 3, seed=0)
    X = cohort.clinical
    model = PreModel(image_prefixes=(), calibration_folds=2).fit(X, endpoint(X, "aggressive"))
    path = tmp_path_factory.mktemp("models") / "pre.hccmodel"
    save_model(model, path, name="pre-test", intended_use="tests only")
    return path, model, X


def test_model_scorer_matches_the_model_and_explains(saved_pre):
    from hccstrat.service.model_scorer import ModelScorer

    path, model, X = saved_pre
    scorer = ModelScorer(path, "PRE")
    row = X.iloc[3]
    clinical = {k: (None if v != v else v) for k, v in row.items()}  # NaN -> None
    res = scorer(clinical, {})
    assert res.score == pytest.approx(float(model.predict_score(X.iloc[[3]])[0]), abs=1e-9)
    factors = res.explanation["factors"]
    assert len(factors) == 5 and res.explanation["method"] == "linear"
    mags = [abs(f["contribution"]) for f in factors]
    assert mags == sorted(mags, reverse=True) and mags[0] > 0
    assert scorer.name == "pre-test" and len(scorer.version) == 12
    assert scorer.sha256.startswith(scorer.version)


def test_tampered_or_wrong_models_are_refused(saved_pre, tmp_path):
    from hccstrat.service.model_scorer import ModelScorer, parse_model_specs

    path, _, _ = saved_pre
    bad = tmp_path / "pre.hccmodel"
    data = bytearray(path.read_bytes())
    data[-10] ^= 0xFF
    bad.write_bytes(bytes(data))
    (tmp_path / "pre.hccmodel.sha256").write_text(
        (path.with_name(path.name + ".sha256")).read_text())
    with pytest.raises(ModelError, match="altered"):
        ModelScorer(bad)
    with pytest.raises(ConfigError):
        parse_model_specs(["PRE:" + str(path)])
    with pytest.raises(ConfigError, match="twice"):
        parse_model_specs([f"PRE={path}", f"PRE={path}"])
    with pytest.raises(ModelError, match="predict_benefit"):
        ModelScorer(path, "BENEFIT")


def test_api_prediction_with_saved_model_and_page(saved_pre, tmp_path):
    from hccstrat.service import ServiceSettings, create_app
    from hccstrat.service.model_scorer import parse_model_specs
    from hccstrat.service.testing import login, seed_accounts

    path, _, _ = saved_pre
    settings = ServiceSettings(data_dir=tmp_path / "data", scorers=parse_model_specs(
        [f"PRE={path}"]), argon2={"time_cost": 1, "memory_kib": 1024, "parallelism": 1})
    app = create_app(settings)
    clin = {"age": 61, "sex": "M", "tumour_size_cm": 9.0, "tumour_number": 2,
            "afp_ng_ml": 1200, "albumin_g_l": 38, "bilirubin_umol_l": 15, "ecog": 0}
    with TestClient(app) as client:
        seed_accounts(app)
        h = login(client, "a_investigator")
        assert client.post("/api/patients", headers=h, json={
            "patient_id": "P-M1", "centre": "A", "clinical": clin}).status_code == 201
        r = client.post("/api/patients/P-M1/predictions", headers=h, json={"kind": "PRE"})
        assert r.status_code == 201, r.text
        pred = r.json()
        assert pred["model"] == "pre-test" and pred["model_version"] == settings.scorers[
            "PRE"].version
        assert [f["feature"] for f in pred["explanation"]["factors"]]
        page = client.get("/patients/P-M1", headers=h)
        assert page.status_code == 200 and 'data-testid="factors"' in page.text
        assert "Top factors" in page.text
