"""TIME panel job: queued by the API, computed on a stored slide, stored as derived features."""

from __future__ import annotations

import pytest
from fastapi.testclient import TestClient

from hccstrat.service.testing import login, seed_accounts, wait_for_job


@pytest.fixture(scope="module")
def slide_and_classifier(tmp_path_factory):
    """A synthetic slide, a tile classifier trained on its labels, and the CLI's panel."""
    from hccstrat.pathology.time import TimeConfig
    from hccstrat.pathology.time_batch import run_time_batch, train_tile_classifier
    from hccstrat.synthetic.wsi import default_latent, write_slide

    d = tmp_path_factory.mktemp("time")
    slide = d / "s1.tiff"
    write_slide(slide, default_latent(), size=(2048, 1536), artefacts=False, geojson=False,
                seed=1, texture_size=256)
    clf, _ = train_tile_classifier([slide])
    clf_path = clf.save(d / "tile_classifier.pkl", encoder="builtin", context=True)
    panel, _ = run_time_batch([slide], clf, d / "cli", config=TimeConfig(), overlays=False)
    return slide, clf_path, panel.iloc[0].to_dict()


def _slide_of(app, pseudo_id: str, path) -> int:
    from hccstrat.storage.models import Patient, Slide

    with app.state.sessionmaker() as s:
        pid = s.query(Patient.id).filter(Patient.pseudo_id == pseudo_id).scalar()
        row = Slide(patient_id=pid, path=str(path), sha256="0" * 64, mpp=0.5, info={})
        s.add(row)
        s.commit()
        return row.id


def test_time_panel_job_stores_the_cli_panel(sqlite_app, slide_and_classifier, tmp_path):
    from hccstrat.pathology.time import PANEL_COLUMNS
    from hccstrat.service.predict import latest_features
    from hccstrat.storage.models import Patient

    slide, clf_path, expected = slide_and_classifier
    app = sqlite_app(time_classifier=clf_path)
    with TestClient(app) as client:
        seed_accounts(app)
        hp, hi = login(client, "a_pathologist"), login(client, "a_investigator")
        client.post("/api/patients", headers=hi,
                    json={"patient_id": "P-T", "centre": "A", "clinical": {}})
        sid = _slide_of(app, "P-T", slide)
        url = f"/api/patients/P-T/slides/{sid}/time"
        r = client.get(url, headers=hp)
        assert r.status_code == 404 and r.json()["code"] == "HCC-DB-404"  # no panel yet
        assert client.post(url, headers=hi).status_code == 403  # investigator: no slides:write
        r = client.post(url, headers=hp)
        assert r.status_code == 202 and r.json()["kind"] == "time_panel"
        job = wait_for_job(client, hp, r.json()["id"])
        assert job["status"] == "done", job
        got = client.get(url, headers=hi)  # readable by every role that reads patients
        assert got.status_code == 200
        body = got.json()
        numeric = [c for c in PANEL_COLUMNS if c != "time_immune_phenotype"]
        assert sorted(body["panel"]) == sorted(numeric)
        for c in numeric:
            assert body["panel"][c] == pytest.approx(float(expected[c]), rel=1e-6), c
        assert body["immune_phenotype"] == expected["time_immune_phenotype"]
        assert body["units"]["time_lymphocyte_density_tumour"] == "cells/mm²"
        assert job["result"]["immune_phenotype"] == expected["time_immune_phenotype"]
        # the panel feeds the scorers' features; the CLI's files sit in the derived folder
        with app.state.sessionmaker() as s:
            feats = latest_features(s, s.query(Patient).filter_by(pseudo_id="P-T").one())
        assert feats["time_n_tiles"] == pytest.approx(float(expected["time_n_tiles"]))
        out = app.state.settings.data_dir / "derived" / "P-T" / f"slide-{sid}" / "time"
        assert (out / "time_panel.csv").is_file() and (out / "overlays" / "s1.png").is_file()
        # another centre sees neither the panel nor the job endpoint
        hb = login(client, "b_admin")
        assert client.get(url, headers=hb).status_code == 404
        assert client.post(url, headers=hb).status_code == 404


def test_time_panel_job_failure_is_recorded(sqlite_app, slide_and_classifier, tmp_path):
    _, clf_path, _ = slide_and_classifier
    app = sqlite_app(time_classifier=clf_path)
    with TestClient(app) as client:
        seed_accounts(app)
        hp = login(client, "a_pathologist")
        client.post("/api/patients", headers=login(client, "a_investigator"),
                    json={"patient_id": "P-F", "centre": "A", "clinical": {}})
        sid = _slide_of(app, "P-F", tmp_path / "missing.tiff")
        url = f"/api/patients/P-F/slides/{sid}/time"
        job = wait_for_job(client, hp, client.post(url, headers=hp).json()["id"])
        assert job["status"] == "failed"
        assert job["error_code"].startswith("HCC-") and job["error_code"] != "HCC-JOB-500"
        assert "missing.tiff" in job["message"]
        assert client.get(url, headers=hp).status_code == 404


def test_time_panel_needs_a_classifier(sqlite_app, tmp_path):
    app = sqlite_app()
    with TestClient(app) as client:
        seed_accounts(app)
        hp = login(client, "a_pathologist")
        client.post("/api/patients", headers=login(client, "a_investigator"),
                    json={"patient_id": "P-N", "centre": "A", "clinical": {}})
        sid = _slide_of(app, "P-N", tmp_path / "s.tiff")
        r = client.post(f"/api/patients/P-N/slides/{sid}/time", headers=hp)
        assert r.status_code == 503 and r.json()["code"] == "HCC-TIME-503"
        assert "time_classifier" in r.json()["hint"]
        assert client.post(f"/api/patients/P-N/slides/{sid + 1}/time",
                           headers=hp).status_code == 404
        assert client.get("/api/jobs", headers=hp).json() == []  # nothing queued
