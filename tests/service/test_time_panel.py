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


def test_time_panel_as_qupath_geojson(sqlite_app, slide_and_classifier, tmp_path):
    import json

    import pandas as pd

    from hccstrat.pathology.annotate import read_geojson_regions
    from hccstrat.pathology.heatmap import CLASS_COLOURS
    from hccstrat.pathology.tile_classifier import TILE_CLASSES

    slide, clf_path, _ = slide_and_classifier
    app = sqlite_app(time_classifier=clf_path)
    with TestClient(app) as client:
        seed_accounts(app)
        hp, hi = login(client, "a_pathologist"), login(client, "a_investigator")
        client.post("/api/patients", headers=hi,
                    json={"patient_id": "P-G", "centre": "A", "clinical": {}})
        sid = _slide_of(app, "P-G", slide)
        url = f"/api/patients/P-G/slides/{sid}/time.geojson"
        r = client.get(url, headers=hi)
        assert r.status_code == 404 and r.json()["code"] == "HCC-DB-404"  # no panel yet
        job = wait_for_job(client, hp, client.post(url[:-8], headers=hp).json()["id"])
        assert job["status"] == "done", job
        r = client.get(url, headers=hi)  # every role that reads patients
        assert r.status_code == 200, r.text
        assert r.headers["content-type"].startswith("application/geo+json")
        assert r.headers["content-disposition"].startswith("attachment;")
        fc = json.loads(r.content)
        assert fc["type"] == "FeatureCollection"
        out = app.state.settings.data_dir / "derived" / "P-G" / f"slide-{sid}" / "time"
        tiles = pd.read_csv(out / "tiles" / "s1.csv")
        fg = tiles[tiles["cls"] != "background"]
        assert 0 < len(fg) < len(tiles)  # background tiles exist and are left out
        assert len(fc["features"]) == len(fg)
        by_corner = {(int(x), int(y)): c for x, y, c in zip(fg["x"], fg["y"], fg["cls"],
                                                             strict=True)}
        side = round(128 * 0.5 / 0.5)  # TimeConfig tile: 128 px at 0.5 µm/px; slide 0.5 µm/px
        width, height = 2048, 1536
        for f in fc["features"]:
            ring = f["geometry"]["coordinates"][0]
            assert f["geometry"]["type"] == "Polygon" and len(ring) == 5 and ring[0] == ring[-1]
            xs, ys = [p[0] for p in ring], [p[1] for p in ring]
            assert 0 <= min(xs) < max(xs) <= width and 0 <= min(ys) < max(ys) <= height
            assert max(xs) - min(xs) == side and max(ys) - min(ys) == side
            props = f["properties"]
            cls = by_corner.pop((int(min(xs)), int(min(ys))))
            assert props["objectType"] == "detection"
            assert props["classification"]["name"] == cls
            rgb = CLASS_COLOURS.get(cls, (0.5, 0.5, 0.5))
            assert props["classification"]["color"] == [round(255 * v) for v in rgb]
            assert props["measurements"]["lymphocytes"] >= 0
        assert by_corner == {}  # one feature per non-background tile, no duplicates
        # QuPath-style reader of the project reads it back with the same classes
        path = tmp_path / "time.geojson"
        path.write_bytes(r.content)
        regions = read_geojson_regions(path, classes=[*TILE_CLASSES, "excluded"])
        assert sorted(g.cls for g in regions) == sorted(fg["cls"])
        # another centre: 404 as if the slide did not exist
        assert client.get(url, headers=login(client, "b_admin")).status_code == 404
        # a panel stored before the tile geometry was recorded: found from the slide itself
        from hccstrat.storage.models import Slide

        with app.state.sessionmaker() as s:
            row = s.get(Slide, sid)
            t = row.info["time"]
            assert (t["tile_size_level0"], t["width"], t["height"]) == (side, width, height)
            row.info = {**row.info, "time": {"job_id": t["job_id"]}}
            s.commit()
        again = json.loads(client.get(url, headers=hp).content)
        assert sorted(json.dumps(f["geometry"]) for f in again["features"]) == sorted(
            json.dumps(f["geometry"]) for f in fc["features"])
        # the per-tile table gone: 404 with a hint to rerun the job
        (out / "tiles" / "s1.csv").unlink()
        r = client.get(url, headers=hp)
        assert r.status_code == 404 and "again" in r.json()["hint"]
