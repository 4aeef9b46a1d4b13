"""Uploads: DICOM zip de-identified by a background job, limits, jobs surviving a restart."""

from __future__ import annotations

import io
import zipfile

import pydicom
from fastapi.testclient import TestClient
from pydicom.data import get_testdata_file
from sqlalchemy import update

from hccstrat.service.testing import login, seed_accounts, wait_for_job
from hccstrat.storage.models import Job


def _dicom_zip() -> bytes:
    buf = io.BytesIO()
    with zipfile.ZipFile(buf, "w") as zf:
        for i, name in enumerate(["CT_small.dcm", "MR_small.dcm"]):
            ds = pydicom.dcmread(get_testdata_file(name, download=False))
            ds.PatientName, ds.PatientID = "Doe^Jane", "MRN-998877"
            ds.InstitutionName = "St Elsewhere"
            out = io.BytesIO()
            ds.save_as(out)
            zf.writestr(f"study/{i}.dcm", out.getvalue())
        zf.writestr("study/README.txt", "not a dicom file")
    return buf.getvalue()


def _setup(client, app):
    seed_accounts(app)
    h = login(client, "a_radiologist")
    hi = login(client, "a_investigator")
    assert (
        client.post(
            "/api/patients", headers=hi, json={"patient_id": "P-IMG", "centre": "A", "clinical": {}}
        ).status_code
        == 201
    )
    return h


def test_dicom_upload_is_deidentified(sqlite_app, tmp_path):
    app = sqlite_app()
    with TestClient(app) as client:
        h = _setup(client, app)
        r = client.post("/api/patients/P-IMG/studies", headers=h, content=_dicom_zip())
        assert r.status_code == 202, r.text
        job = wait_for_job(client, h, r.json()["id"], timeout=20)
        assert job["status"] == "done", job
        assert job["result"]["skipped_files"] == 1
        studies = client.get("/api/patients/P-IMG/studies", headers=h).json()
        assert sum(s["n_files"] for s in studies) == 2
        files = list((tmp_path / "data" / "studies" / "P-IMG").rglob("*.dcm"))
        assert len(files) == 2
        for f in files:
            raw = f.read_bytes()
            for phi in (b"Doe^Jane", b"MRN-998877", b"St Elsewhere"):
                assert phi not in raw
            assert pydicom.dcmread(f).PatientID == "P-IMG"
        assert not list((tmp_path / "data" / "quarantine").iterdir())  # raw upload deleted
        from hccstrat.service.ingest import pseudonym_table

        assert pseudonym_table(tmp_path / "data").lookup("dicom", "MRN-998877") == "P-IMG"
        # the pseudonym table is not in the registry database
        import sqlite3

        con = sqlite3.connect(tmp_path / "data" / "registry.sqlite")
        tables = {r[0] for r in con.execute("SELECT name FROM sqlite_master")}
        assert "pseudonyms" not in tables


def test_upload_limit_and_bad_zip(sqlite_app):
    app = sqlite_app(max_study_bytes=1000)
    with TestClient(app) as client:
        h = _setup(client, app)
        r = client.post("/api/patients/P-IMG/studies", headers=h, content=b"x" * 5000)
        assert r.status_code == 413
        r = client.post("/api/patients/P-IMG/studies", headers=h, content=b"not a zip")
        job = wait_for_job(client, h, r.json()["id"], timeout=20)
        assert job["status"] == "failed" and job["error_code"] == "HCC-IO-001"


def test_jobs_survive_a_restart(sqlite_app):
    app = sqlite_app(run_worker=False)
    with TestClient(app) as client:
        h = _setup(client, app)
        jid = client.post("/api/patients/P-IMG/studies", headers=h, content=_dicom_zip()).json()[
            "id"
        ]
        # simulate a crash in the middle of the job
        with app.state.sessionmaker() as s:
            s.execute(update(Job).where(Job.id == jid).values(status="running", attempts=1))
            s.commit()
    app2 = sqlite_app()
    with TestClient(app2) as client:
        h = login(client, "a_radiologist")
        job = wait_for_job(client, h, jid, timeout=20)
        assert job["status"] == "done"
        with app2.state.sessionmaker() as s:
            assert s.get(Job, jid).attempts == 2


def test_uploaded_slide_is_scrubbed_then_embedded_by_a_job(sqlite_app, tmp_path):
    from hccstrat.io.store import read_features
    from hccstrat.synthetic.wsi import default_latent, write_slide

    slide = tmp_path / "s.tiff"
    write_slide(slide, default_latent(), size=(1536, 1536), seed=3, artefacts=False)
    app = sqlite_app()
    with TestClient(app) as client:
        _setup(client, app)
        hp = login(client, "a_pathologist")
        r = client.post("/api/patients/P-IMG/slides", headers=hp, content=slide.read_bytes())
        assert r.status_code == 202, r.text
        assert wait_for_job(client, hp, r.json()["id"], timeout=20)["status"] == "done"
        [row] = client.get("/api/patients/P-IMG/slides", headers=hp).json()
        assert row["embedding"] is None
        r = client.post(f"/api/patients/P-IMG/slides/{row['id']}/embed", headers=hp)
        assert r.status_code == 202, r.text
        job = wait_for_job(client, hp, r.json()["id"], timeout=120)
        assert job["status"] == "done", job
        [row] = client.get("/api/patients/P-IMG/slides", headers=hp).json()
        emb = row["embedding"]
        assert emb["encoder"] == "builtin" and emb["n_tiles_pass"] > 0
        ff = read_features(emb["features"])
        assert ff.features.shape[0] == ff.coords.shape[0] == emb["n_tiles_pass"]
        assert ff.attrs["encoder"] == "builtin"
        # a slide of another patient or a missing id is a 404, a radiologist may not embed
        assert client.post("/api/patients/P-IMG/slides/999/embed", headers=hp).status_code == 404
        hr = login(client, "a_radiologist")
        r = client.post(f"/api/patients/P-IMG/slides/{row['id']}/embed", headers=hr)
        assert r.status_code == 403
