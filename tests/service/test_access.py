"""Role matrix (every endpoint x every role) and per-centre isolation."""

from __future__ import annotations

import io
import zipfile

import pytest

from hccstrat.service.security import role_has
from hccstrat.service.testing import ROLES

CLIN = {
    "age": 60,
    "sex": "F",
    "tumour_size_cm": 4.0,
    "tumour_number": 1,
    "afp_ng_ml": 30,
    "histology": "HCC",
    "margin_status": "R0",
    "adjuvant": "TACE",
    "surgery_date": "2024-01-10",
    "last_followup_date": "2025-06-01",
}


def _zip() -> bytes:
    buf = io.BytesIO()
    with zipfile.ZipFile(buf, "w") as zf:
        zf.writestr("note.txt", "not dicom")
    return buf.getvalue()


@pytest.fixture
def world(app_client):
    """A patient of centre A with a prediction, an enrolment and a job."""
    client, H = app_client
    h = H["a_investigator"]
    assert (
        client.post(
            "/api/patients", headers=h, json={"patient_id": "P-A", "centre": "A", "clinical": CLIN}
        ).status_code
        == 201
    )
    pred = client.post("/api/patients/P-A/predictions", headers=h, json={}).json()
    eid = client.post(
        "/api/trial/NCT07417800/screen", headers=h, json={"patient_id": "P-A"}
    ).json()["id"]
    job = client.post(
        "/api/patients/P-A/studies",
        headers=H["a_radiologist"],
        content=_zip(),
    ).json()
    for role in ROLES:
        client.post(
            "/api/patients",
            headers=h,
            json={"patient_id": f"D-{role}", "centre": "A", "clinical": {}},
        )
    study = _study_with_viewer(client, H)
    slide = _slide_row(client)
    return client, H, {"pred": pred["id"], "eid": eid, "job": job["id"], "study": study,
                       "slide": slide}


def _slide_row(client) -> int:
    """A registered slide of P-A (the file need not exist: jobs may fail, access may not)
    with a stored TIME panel and its per-tile table."""
    from hccstrat.service.time_panel import EXTRACTOR
    from hccstrat.storage.models import DerivedFeature, Patient, Slide

    app = client.app
    tiles = app.state.settings.data_dir / "derived" / "P-A" / "tiles.csv"
    tiles.parent.mkdir(parents=True, exist_ok=True)
    tiles.write_text("x,y,cls,fine,p_thrombus,vi,lymphocytes,area_mm2,tumour_bed,margin,core,"
                     "rule\n0,0,tumour,tumour,0.0,False,3,0.004,True,False,True,model\n")
    time_info = {"tiles": str(tiles), "tile_size_level0": 128, "width": 512, "height": 512}
    with app.state.sessionmaker() as s:
        pid = s.query(Patient.id).filter(Patient.pseudo_id == "P-A").scalar()
        row = Slide(patient_id=pid, path=str(app.state.settings.data_dir / "none.tiff"),
                    sha256="0" * 64, mpp=0.5, info={"time": time_info})
        s.add(row)
        s.flush()
        s.add_all([DerivedFeature(patient_id=pid, source=f"slide:{row.id}", name=name, value=v,
                                  extractor=EXTRACTOR)
                   for name, v in (("time_n_tiles", 10.0), ("time_phenotype_desert", 1.0))])
        s.commit()
        return row.id


def _study_with_viewer(client, H) -> int:
    """A preprocessed study of P-A (tiny NIfTI phases and tumour mask) for the viewer."""
    import json

    import numpy as np
    import SimpleITK as sitk

    from hccstrat.storage.models import ImagingStudy, Patient

    app = client.app
    folder = app.state.settings.data_dir / "derived" / "P-A" / "study-x"
    folder.mkdir(parents=True)
    arr = np.zeros((6, 32, 32), np.float32)
    arr[2:4, 10:20, 10:20] = 1
    for name in ("pre", "arterial", "portal", "delayed", "tumour"):
        img = sitk.GetImageFromArray(arr if name == "tumour" else arr * 50 + 10)
        sitk.WriteImage(img, str(folder / f"{name}.nii.gz"))
    phases = {p: f"{p}.nii.gz" for p in ("pre", "arterial", "portal", "delayed")}
    (folder / "preprocess.json").write_text(json.dumps({"phases": phases}))
    with app.state.sessionmaker() as s:
        pid = s.query(Patient.id).filter(Patient.pseudo_id == "P-A").scalar()
        row = ImagingStudy(patient_id=pid, study_uid="1.2.3", path=str(folder), sha256="0" * 64,
                           info={"preprocessed": str(folder)})
        s.add(row)
        s.commit()
        return row.id


def _matrix(ids, role):
    """(method, path, permission, kwargs, template) for every endpoint (centre A's data)."""
    rows = [
        ("GET", "/api/patients", "patients:read", {}),
        (
            "POST",
            "/api/patients",
            "patients:write",
            {"json": {"patient_id": f"M-{role}", "centre": "A", "clinical": {"age": 50}}},
        ),
        ("GET", "/api/patients/{patient_id}", "patients:read", {}),
        (
            "PUT",
            "/api/patients/{patient_id}/clinical",
            "patients:write",
            {"json": {"clinical": CLIN}},
        ),
        ("GET", "/api/patients/{patient_id}/clinical/history", "patients:read", {}),
        ("DELETE", "/api/patients/D-{role}", "patients:write", {}),
        ("POST", "/api/patients/{patient_id}/studies", "studies:write", {"content": _zip()}),
        ("POST", "/api/patients/{patient_id}/slides", "slides:write", {"content": b"II*\x00xx"}),
        ("GET", "/api/patients/{patient_id}/studies", "patients:read", {}),
        ("GET", "/api/patients/{patient_id}/slides", "patients:read", {}),
        ("POST", "/api/patients/{patient_id}/studies/{study_id}/preprocess", "studies:write", {}),
        ("POST", "/api/patients/{patient_id}/slides/{slide_id}/embed", "slides:write", {}),
        ("POST", "/api/patients/{patient_id}/slides/{slide_id}/time", "slides:write", {}),
        ("GET", "/api/patients/{patient_id}/slides/{slide_id}/time", "patients:read", {}),
        ("GET", "/api/patients/{patient_id}/slides/{slide_id}/time.geojson", "patients:read",
         {}),
        ("GET", "/api/patients/{patient_id}/studies/{study_id}/sr.dcm", "reports:read", {}),
        ("GET", "/api/patients/{patient_id}/studies/{study_id}/seg.dcm", "reports:read", {}),
        ("GET", "/api/jobs", "jobs:read", {}),
        ("GET", "/api/jobs/{job_id}", "jobs:read", {}),
        ("POST", "/api/patients/{patient_id}/predictions", "predictions:write", {"json": {}}),
        ("GET", "/api/patients/{patient_id}/predictions", "predictions:read", {}),
        (
            "GET",
            "/api/patients/{patient_id}/predictions/{prediction_id}/fhir",
            "predictions:read",
            {},
        ),
        ("POST", "/api/trial/{trial}/screen", "trial:write", {"json": {"patient_id": "P-A"}}),
        (
            "POST",
            "/api/trial/enrolments/{enrolment_id}/enrol",
            "trial:write",
            {"json": {"consent": True}},
        ),
        (
            "POST",
            "/api/trial/enrolments/{enrolment_id}/allocate",
            "trial:write",
            {"json": {"method": "randomised"}},
        ),
        (
            "POST",
            "/api/trial/enrolments/{enrolment_id}/visits",
            "trial:write",
            {"json": {"name": "m3"}},
        ),
        (
            "POST",
            "/api/trial/enrolments/{enrolment_id}/adverse-events",
            "trial:write",
            {"json": {"term": "Fatigue", "grade": 1}},
        ),
        ("GET", "/api/trial/enrolments/{enrolment_id}", "trial:read", {}),
        ("GET", "/api/trial/{trial}/enrolments", "trial:read", {}),
        ("GET", "/api/trial/{trial}/summary", "trial:read", {}),
        ("GET", "/api/trial/{trial}/allocation-audit", "audit:read", {}),
        ("GET", "/api/reports/patients/{patient_id}", "reports:read", {}),
        ("GET", "/api/reports/trial/{trial}", "reports:read", {}),
        ("GET", "/api/audit/verify", "audit:read", {}),
        ("GET", "/api/audit/events", "audit:read", {}),
        ("GET", "/api/centres", "users:admin", {}),
        ("POST", "/api/centres", "users:admin", {"json": {"code": f"C-{role}", "name": "x"}}),
        ("GET", "/api/users", "users:admin", {}),
        (
            "POST",
            "/api/users",
            "users:admin",
            {
                "json": {
                    "username": f"new-{role}",
                    "password": "long enough pw",
                    "role": "monitor",
                    "centre": "A",
                }
            },
        ),
        ("PATCH", "/api/users/{username}", "users:admin", {"json": {"active": True}}),
        ("GET", "/patients", "patients:read", {}),
        ("GET", "/patients/{patient_id}", "patients:read", {}),
        ("GET", "/trial/{trial}", "trial:read", {}),
        ("GET", "/monitoring", "patients:read", {}),
        ("GET", "/patients/{patient_id}/studies/{study_id}/phases.png", "patients:read", {}),
    ]
    fill = {
        "patient_id": "P-A",
        "trial": "NCT07417800",
        "enrolment_id": ids["eid"],
        "job_id": ids["job"],
        "prediction_id": ids["pred"],
        "study_id": ids["study"],
        "slide_id": ids["slide"],
        "username": "a_monitor",
        "role": role,
    }
    return [
        (m, t.format(**fill), perm, kw, t.replace("D-{role}", "{patient_id}"))
        for m, t, perm, kw in rows
    ]


def test_matrix_covers_every_api_route(world):
    client, _, ids = world
    spec = client.get("/openapi.json").json()
    routes = {
        (m.upper(), path)
        for path, ops in spec["paths"].items()
        if not path.startswith("/api/auth")
        for m in ops
    }
    covered = {(m, t) for m, _, _, _, t in _matrix(ids, "admin")}
    assert routes - covered == set()


def test_role_matrix(world):
    client, H, ids = world
    failures = []
    for role in ROLES:
        for method, path, perm, kw, _ in _matrix(ids, role):
            r = client.request(method, path, headers=H[f"a_{role}"], **kw)
            allowed = role_has(role, perm)
            ok = (r.status_code not in (401, 403, 404)) if allowed else r.status_code == 403
            if not ok:
                failures.append((role, method, path, r.status_code, r.text[:120]))
    assert failures == []


def test_centre_b_never_sees_centre_a(world):
    client, H, ids = world
    leaks = []
    for user in ("b_investigator", "b_radiologist", "b_admin"):
        role = user[2:]
        for method, path, perm, kw, t in _matrix(ids, "x" + role):
            if not role_has(role, perm):
                continue
            targets_a = any(
                k in t
                for k in ("{patient_id}", "{enrolment_id}", "{job_id}", "{prediction_id}",
                          "{study_id}", "{slide_id}")
            )
            if not targets_a and kw.get("json", {}).get("patient_id") != "P-A":
                continue
            r = client.request(method, path, headers=H[user], **kw)
            if r.status_code != 404:
                leaks.append((user, method, path, r.status_code))
    assert leaks == []
    h = H["b_investigator"]
    assert client.get("/api/patients", headers=h).json()["total"] == 0
    assert client.get("/api/trial/NCT07417800/enrolments", headers=h).json() == []
    assert client.get("/api/jobs", headers=h).json() == []
    assert client.get("/api/trial/NCT07417800/summary", headers=h).json()["screened"] == 0
    assert "P-A" not in client.get("/patients", headers=h).text
    # creating a patient in another centre is refused as if the centre did not exist
    assert (
        client.post(
            "/api/patients", headers=h, json={"patient_id": "X-1", "centre": "A", "clinical": {}}
        ).status_code
        == 404
    )
    users = client.get("/api/users", headers=H["b_admin"]).json()
    assert {u["centre"] for u in users} == {"B"}
