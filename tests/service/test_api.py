"""API behaviour: patients, validation, versions, predictions, trial flow, headers, auth."""

from __future__ import annotations

import logging

CLIN = {
    "age": 58,
    "sex": "M",
    "tumour_size_cm": 7.5,
    "tumour_number": 1,
    "afp_ng_ml": 850,
    "albumin_g_l": 41,
    "bilirubin_umol_l": 12,
    "ecog": 0,
}

TRIAL_OK = {
    **CLIN,
    "histology": "HCC",
    "margin_status": "R0",
    "adjuvant": "TACE",
    "surgery_date": "2024-01-10",
    "last_followup_date": "2025-06-01",
}


def _patient(client, h, pid="P-API1", centre="A", clinical=None):
    r = client.post(
        "/api/patients",
        headers=h,
        json={"patient_id": pid, "centre": centre, "clinical": clinical or CLIN},
    )
    assert r.status_code == 201, r.text
    return r.json()


def test_patient_crud_versions_and_validation(app_client):
    client, H = app_client
    h = H["a_investigator"]
    out = _patient(client, h)
    assert out["clinical"]["afp_ge_400"] is True  # derived by hccstrat.schema
    assert out["clinical"]["tumour_size_gt_5cm"] is True
    bad = client.post(
        "/api/patients",
        headers=h,
        json={
            "patient_id": "P-BAD",
            "centre": "A",
            "clinical": {"albumin_g_l": 400, "colour": "x"},
        },
    )
    assert bad.status_code == 422
    cols = {p["column"] for p in bad.json()["problems"]}
    assert {"albumin_g_l", "colour"} <= cols
    r = client.put(
        "/api/patients/P-API1/clinical", headers=h, json={"clinical": {**CLIN, "afp_ng_ml": 20}}
    )
    assert r.json()["version"] == 2
    hist = client.get("/api/patients/P-API1/clinical/history", headers=h).json()
    assert [v["clinical"]["afp_ng_ml"] for v in hist] == [850, 20]
    assert (
        client.post(
            "/api/patients", headers=h, json={"patient_id": "P-API1", "centre": "A", "clinical": {}}
        ).status_code
        == 409
    )
    lst = client.get("/api/patients", headers=h).json()
    assert lst["total"] == 1
    assert client.delete("/api/patients/P-API1", headers=h).status_code == 200
    assert client.get("/api/patients/P-API1", headers=h).status_code == 404


def test_prediction_stores_score_version_hash_and_fhir(app_client):
    client, H = app_client
    _patient(client, H["a_investigator"])
    r = client.post(
        "/api/patients/P-API1/predictions", headers=H["a_radiologist"], json={"kind": "PRE"}
    )
    assert r.status_code == 201, r.text
    pred = r.json()
    assert 0.5 < pred["score"] < 1 and pred["model"] == "toy-pre"
    assert len(pred["input_sha256"]) == 64
    again = client.post(
        "/api/patients/P-API1/predictions", headers=H["a_radiologist"], json={"kind": "PRE"}
    ).json()
    assert again["input_sha256"] == pred["input_sha256"]  # same inputs, same hash
    fhir = client.get(
        f"/api/patients/P-API1/predictions/{pred['id']}/fhir", headers=H["a_statistician"]
    ).json()
    assert fhir["resourceType"] == "RiskAssessment"
    assert fhir["prediction"][0]["probabilityDecimal"] == round(pred["score"], 6)
    assert fhir["subject"]["reference"] == "Patient/P-API1"
    # no POST scorer configured: a clear 503, not a made-up score
    r = client.post(
        "/api/patients/P-API1/predictions", headers=H["a_radiologist"], json={"kind": "POST"}
    )
    assert r.status_code == 503 and "--scorer" in r.json()["hint"]


def test_trial_flow_screen_enrol_allocate_visit_ae(app_client):
    client, H = app_client
    h = H["a_investigator"]
    _patient(client, h, clinical=TRIAL_OK)
    _patient(client, h, pid="P-YOUNG", clinical={**TRIAL_OK, "histology": "ICC"})
    r = client.post("/api/trial/NCT07417800/screen", headers=h, json={"patient_id": "P-YOUNG"})
    assert r.json()["eligibility"] == "ineligible" and any(
        "INC-02" in x for x in r.json()["reasons"]
    )
    no = r.json()["id"]
    assert (
        client.post(
            f"/api/trial/enrolments/{no}/enrol", headers=h, json={"consent": True}
        ).status_code
        == 409
    )
    r = client.post(
        "/api/trial/NCT07417800/screen",
        headers=h,
        json={"patient_id": "P-API1", "answers": {"consent": True}},
    )
    assert r.status_code == 201, r.text
    eid = r.json()["id"]
    assert r.json()["eligibility"] == "eligible", r.json()
    assert (
        client.post(
            f"/api/trial/enrolments/{eid}/enrol", headers=h, json={"consent": True}
        ).status_code
        == 200
    )
    r = client.post(
        f"/api/trial/enrolments/{eid}/allocate", headers=h, json={"method": "randomised"}
    )
    assert r.status_code == 201 and r.json()["arm"] in ("model_assisted", "standard_care")
    assert (
        client.post(
            f"/api/trial/enrolments/{eid}/allocate", headers=h, json={"method": "randomised"}
        ).status_code
        == 409
    )
    assert (
        client.post(
            f"/api/trial/enrolments/{eid}/visits",
            headers=h,
            json={"name": "month 3", "due_date": "2099-01-01"},
        ).status_code
        == 201
    )
    ae = client.post(
        f"/api/trial/enrolments/{eid}/adverse-events",
        headers=h,
        json={"term": "Hypertension", "grade": 4},
    ).json()
    assert ae["serious"] is True
    s = client.get("/api/trial/NCT07417800/summary", headers=H["a_monitor"]).json()
    assert s["allocated"] == 1 and s["adverse_events"]["grade_4"] == 1


def test_security_headers_auth_and_rate_limit(app_client):
    client, H = app_client
    r = client.get("/api/patients", headers=H["a_monitor"])
    assert r.headers["x-content-type-options"] == "nosniff"
    assert "frame-ancestors 'none'" in r.headers["content-security-policy"]
    assert client.get("/api/patients").status_code == 401
    assert client.get("/api/patients", headers={"Authorization": "Bearer nope"}).status_code == 401
    # logout revokes the token
    h = dict(H["a_statistician"])
    assert client.post("/api/auth/logout", headers=h).status_code == 200
    assert client.get("/api/patients", headers=h).status_code == 401
    # five failures, then 429 even with the right password
    for _ in range(5):
        assert (
            client.post(
                "/api/auth/login", json={"username": "a_monitor", "password": "wrong password!"}
            ).status_code
            == 401
        )
    r = client.post(
        "/api/auth/login", json={"username": "a_monitor", "password": "correct horse battery"}
    )
    assert r.status_code == 429 and int(r.headers["retry-after"]) > 0


def test_no_phi_in_logs(app_client, caplog):
    client, H = app_client
    caplog.set_level(logging.DEBUG)
    _patient(client, H["a_investigator"], pid="P-SECRET77", clinical={**CLIN, "age": 67.25})
    client.get("/api/patients/P-SECRET77", headers=H["a_investigator"])
    # server-side records only (the test client logs the URLs it requests)
    text = "\n".join(r.getMessage() for r in caplog.records if not r.name.startswith("httpx"))
    assert "POST /api/patients" in text
    assert "P-SECRET77" not in text and "67.25" not in text


def test_audit_verify_endpoint(app_client):
    client, H = app_client
    _patient(client, H["a_investigator"])
    r = client.get("/api/audit/verify", headers=H["a_admin"]).json()
    assert r["ok"] and r["n_events"] > 5
    assert client.get("/api/audit/verify", headers=H["a_investigator"]).status_code == 403


def test_openapi_documents_every_resource(app_client):
    client, _ = app_client
    spec = client.get("/openapi.json").json()
    tags = {t for p in spec["paths"].values() for op in p.values() for t in op.get("tags", [])}
    assert {"patients", "uploads", "jobs", "predictions", "trial", "reports", "audit"} <= tags


def _allocated(client, h, pid="P-AE"):
    _patient(client, h, pid=pid, clinical=TRIAL_OK)
    r = client.post("/api/trial/NCT07417800/screen", headers=h,
                    json={"patient_id": pid, "answers": {"consent": True}})
    return r.json()["id"]


def test_adverse_event_checked_against_ctcae_and_enrolment(app_client):
    client, H = app_client
    h = H["a_investigator"]
    eid = _allocated(client, h)

    def post(**body):
        return client.post(f"/api/trial/enrolments/{eid}/adverse-events", headers=h, json=body)

    r = post(term="Fatigue", grade=2)
    assert r.status_code == 409 and "enrolled patients only" in r.json()["message"]
    assert client.post(f"/api/trial/enrolments/{eid}/enrol", headers=h,
                       json={"consent": True}).status_code == 200
    r = post(term="Fatigue", grade=5)  # CTCAE v5: fatigue has no grade 4 or 5
    assert r.status_code == 422 and "an integer 1..3 for Fatigue" in r.json()["message"]
    r = post(term="Feeling sad", grade=2)
    assert r.status_code == 422 and "column 'term'" in r.json()["message"]
    r = post(term="Fatigue", grade=2, onset_date="1990-01-01")
    assert r.status_code == 422 and "on or after the enrolment date" in r.json()["message"]
    r = post(term="Fatigue", grade=2, onset_date="2099-01-10", resolved_date="2099-01-01")
    assert r.status_code == 422 and "'resolved_date'" in r.json()["message"]
    assert post(term="Fatigue", grade=3).status_code == 201
    aes = client.get(f"/api/trial/enrolments/{eid}", headers=h).json()["adverse_events"]
    assert aes == [{"term": "Fatigue", "grade": 3, "serious": False}]  # nothing else stored


def test_visits_checked_and_a_planned_visit_completed_once(app_client):
    import datetime as dt

    client, H = app_client
    h = H["a_investigator"]
    eid = _allocated(client, h, pid="P-VIS")
    url = f"/api/trial/enrolments/{eid}/visits"
    r = client.post(url, headers=h, json={"name": "month 3", "due_date": "2099-01-01"})
    assert r.status_code == 409 and "enrolled patients only" in r.json()["message"]
    client.post(f"/api/trial/enrolments/{eid}/enrol", headers=h, json={"consent": True})
    today = dt.date.today()
    bad = [  # (body, column named in the problem list)
        ({"name": "m3", "status": "done"}, "done_date"),
        ({"name": "m3", "status": "missed", "done_date": today.isoformat()}, "status"),
        ({"name": "m3"}, "due_date"),
        ({"name": "m3", "due_date": "1990-01-01"}, "due_date"),
        ({"name": "m3", "status": "done", "done_date": "2099-01-01"}, "done_date"),
    ]
    for body, column in bad:
        r = client.post(url, headers=h, json=body)
        assert r.status_code == 422, (body, r.text)
        assert [p["column"] for p in r.json()["problems"]] == [column], body
    due = (today + dt.timedelta(days=10)).isoformat()
    r = client.post(url, headers=h, json={"name": "month 3", "due_date": due})
    assert r.status_code == 201
    vid = r.json()["id"]
    assert client.post(url, headers=h, json={"name": "month 3", "due_date": due}).status_code == 409
    s = client.get("/api/trial/NCT07417800/summary", headers=H["a_monitor"]).json()
    assert [v["name"] for v in s["upcoming_visits"]] == ["month 3"]
    # the outcome of the planned visit updates it (no second 'month 3')
    r = client.post(url, headers=h, json={"name": "month 3", "status": "done",
                                          "done_date": today.isoformat()})
    assert r.status_code == 200 and r.json()["id"] == vid and r.json()["due_date"] == due
    r = client.post(url, headers=h, json={"name": "month 3", "status": "missed"})
    assert r.status_code == 409 and "already recorded (done)" in r.json()["message"]
    visits = client.get(f"/api/trial/enrolments/{eid}", headers=h).json()["visits"]
    assert visits == [{"name": "month 3", "due_date": due, "done_date": today.isoformat(),
                       "status": "done"}]
    s = client.get("/api/trial/NCT07417800/summary", headers=H["a_monitor"]).json()
    assert s["upcoming_visits"] == []


def test_second_allocation_says_allocation_is_final(app_client):
    client, H = app_client
    h = H["a_investigator"]
    eid = _allocated(client, h)
    client.post(f"/api/trial/enrolments/{eid}/enrol", headers=h, json={"consent": True})
    url = f"/api/trial/enrolments/{eid}/allocate"
    assert client.post(url, headers=h, json={"method": "randomised"}).status_code == 201
    r = client.post(url, headers=h, json={"method": "randomised"})
    assert r.status_code == 409 and "already has an arm" in r.json()["message"]
    assert "allocated once" in r.json()["hint"]


def test_screening_answers_that_cannot_be_read_are_422_not_pending(app_client):
    client, H = app_client
    h = H["a_investigator"]
    _patient(client, h, clinical=TRIAL_OK)
    r = client.post("/api/trial/NCT07282184/screen", headers=h, json={
        "patient_id": "P-API1", "answers": {"consent": "maybe", "child_pugh_points": 20,
                                            "age": {"x": 1}}})
    assert r.status_code == 422, r.text  # before: 201, 'pending (data missing) [consent=maybe]'
    cols = {p["column"] for p in r.json()["problems"]}
    assert cols == {"consent", "child_pugh_points"} or cols == {"age"}
    assert client.get("/api/trial/NCT07282184/enrolments", headers=h).json() == []


def test_oversized_json_body_is_413_before_parsing(app_client):
    client, H = app_client
    h = H["a_investigator"]
    fields = {f"x{i}": i for i in range(120_000)}  # ~1.6 MB of unknown fields
    r = client.post("/api/patients", headers=h, json={"patient_id": "P-BIG", "centre": "A",
                                                       "clinical": fields})
    assert r.status_code == 413, r.text[:200]
    assert r.json()["code"] == "HCC-API-413"
    assert "exceeds the limit of 1048576 bytes" in r.json()["message"]
    assert client.get("/api/patients", headers=h).json()["total"] == 0
    _patient(client, h)  # an ordinary request still goes through
