"""Allocation through the API uses the library's randomiser, PRE rule and allocation log."""

from __future__ import annotations

import json

from fastapi.testclient import TestClient

from hccstrat.service.allocation import randomisation_seed, randomise
from hccstrat.service.testing import login, seed_accounts
from hccstrat.trial.allocation_log import read_log
from hccstrat.trial.randomisation import SealedSequence

TRIAL = "NCT07417800"
OK = {"age": 58, "sex": "M", "histology": "HCC", "margin_status": "R0", "adjuvant": "TACE",
      "surgery_date": "2024-01-10", "last_followup_date": "2025-06-01"}


def _enrolled(client, h, pid, size):
    r = client.post("/api/patients", headers=h, json={
        "patient_id": pid, "centre": "A", "clinical": {**OK, "tumour_size_cm": size}})
    assert r.status_code == 201, r.text
    assert client.post(f"/api/patients/{pid}/predictions", headers=h, json={}).status_code == 201
    r = client.post(f"/api/trial/{TRIAL}/screen", headers=h,
                    json={"patient_id": pid, "answers": {"consent": True}})
    eid = r.json()["id"]
    assert client.post(f"/api/trial/enrolments/{eid}/enrol", headers=h,
                       json={"consent": True}).status_code == 200
    return eid


def _allocate(client, h, eid, method="randomised"):
    r = client.post(f"/api/trial/enrolments/{eid}/allocate", headers=h, json={"method": method})
    assert r.status_code == 201, r.text
    return r.json()


def test_randomisation_is_sealed_stratified_and_survives_restart(sqlite_app):
    app = sqlite_app()
    data = app.state.settings.data_dir
    out = []
    with TestClient(app) as client:
        seed_accounts(app)
        h = login(client, "a_investigator")
        for i in range(6):  # toy score: 8 cm -> high risk, 2 cm -> low risk
            out.append(_allocate(client, h, _enrolled(client, h, f"P-R{i}", 8.0 if i % 2 else 2.0)))
    # restart: a new app on the same data folder continues the sequence
    app2 = sqlite_app()
    with TestClient(app2) as client:
        h = login(client, "a_investigator")
        for i in range(6, 10):
            out.append(_allocate(client, h, _enrolled(client, h, f"P-R{i}", 8.0 if i % 2 else 2.0)))
        audit = client.get(f"/api/trial/{TRIAL}/allocation-audit",
                           headers=login(client, "a_admin")).json()
    assert {o["stratum"] for o in out} == {"A|high", "A|low"}
    for stratum in ("A|high", "A|low"):
        idx = [o["sequence_number"] for o in out if o["stratum"] == stratum]
        assert idx == list(range(5))  # envelopes opened in order, none reused after restart
    # every arm is the sealed envelope reproduced from the trial's seed
    seed = randomisation_seed(data, TRIAL)
    seq = SealedSequence.generate(["A|high"], seed=seed, arms=("model_assisted", "standard_care"),
                                  block_sizes=(4, 6), capacity=1000)
    for o in out:
        if o["stratum"] == "A|high":
            assert o["arm"] == seq.reveal("A|high", o["sequence_number"])[0]
    assert audit["ok"], audit
    assert audit["logs"]["blocks-A.high.jsonl"]["n_allocations"] == 5
    assert audit["logs"]["blocks-A.high.jsonl"]["seed_ok"]
    assert (data / "keys" / f"{TRIAL}.seed").stat().st_mode & 0o077 == 0


def test_tampered_log_is_detected_and_blocks_allocation(sqlite_app):
    app = sqlite_app()
    data = app.state.settings.data_dir
    with TestClient(app) as client:
        seed_accounts(app)
        h = login(client, "a_investigator")
        first = _allocate(client, h, _enrolled(client, h, "P-T1", 8.0))
        path = data / "trials" / TRIAL / "blocks-A.high.jsonl"
        lines = path.read_text().splitlines()
        entry = json.loads(lines[-1])
        entry["arm"] = ("standard_care" if first["arm"] == "model_assisted"
                        else "model_assisted")
        path.write_text("\n".join([*lines[:-1], json.dumps(entry)]) + "\n")
        audit = client.get(f"/api/trial/{TRIAL}/allocation-audit",
                           headers=login(client, "a_admin")).json()
        assert not audit["ok"] and audit["logs"]["blocks-A.high.jsonl"]["chain_ok"] is False
        # a centre-bound monitor gets the verdict without other centres' details
        short = client.get(f"/api/trial/{TRIAL}/allocation-audit",
                           headers=login(client, "a_monitor")).json()
        assert short == {"ok": False, "n_logs": 1, "problems": 1}
        r = client.post(f"/api/trial/enrolments/{_enrolled(client, h, 'P-T2', 8.0)}/allocate",
                        headers=h, json={"method": "randomised"})
        assert r.status_code == 409 and "verification" in r.json()["message"]


def test_logged_but_uncommitted_allocation_is_reused(sqlite_app):
    app = sqlite_app()
    data = app.state.settings.data_dir
    with TestClient(app) as client:
        seed_accounts(app)
        h = login(client, "a_investigator")
        eid = _enrolled(client, h, "P-L1", 2.0)
        # the log got the entry but the database commit was lost (crash in between)
        ghost = randomise(data, TRIAL, patient_key="P-L1", centre="A", risk="low")
        out = _allocate(client, h, eid)
    assert out["arm"] == ghost.arm and out["sequence_number"] == ghost.index == 0
    entries = read_log(data / "trials" / TRIAL / "blocks-A.low.jsonl")
    assert sum(e.get("type") == "allocation" for e in entries) == 1


def test_pre_rule_records_score_and_model_version(app_client):
    from hccstrat.storage.models import Enrolment

    client, H = app_client
    h = H["a_investigator"]
    pids = {"P-HI": 9.0, "P-LO": 1.5}
    res = {}
    for pid, size in pids.items():
        client.post("/api/patients", headers=h, json={
            "patient_id": pid, "centre": "A", "clinical": {**OK, "tumour_size_cm": size}})
        pred = client.post(f"/api/patients/{pid}/predictions", headers=h, json={}).json()
        eid = client.post("/api/trial/NCT07282184/screen", headers=h,
                          json={"patient_id": pid}).json()["id"]
        with client.app.state.sessionmaker() as s:  # eligibility needs MRI data: set it here
            e = s.get(Enrolment, eid)
            e.status, e.eligible = "enrolled", True
            s.commit()
        res[pid] = (pred, _allocate(client, h, eid, "pre_rule"))
    for pred, out in res.values():
        assert out["method"] == "pre_rule" and out["score"] == pred["score"]
        assert out["model_version"] == "toy-pre:1.0"
        assert out["arm"] == ("HAIC+LEN+PD1" if pred["score"] >= 0.5 else "resection")
    assert res["P-HI"][1]["arm"] == "HAIC+LEN+PD1" and res["P-LO"][1]["arm"] == "resection"
    data = client.app.state.settings.data_dir
    log = read_log(data / "trials" / "NCT07282184" / "pre_rule.jsonl")
    assert [e["model_version"] for e in log] == ["toy-pre:1.0"] * 2
    assert client.get("/api/trial/NCT07282184/allocation-audit",
                      headers=H["a_admin"]).json()["ok"]
    # the RCT does not allocate by the PRE rule
    eid = client.post(f"/api/trial/{TRIAL}/screen", headers=h,
                      json={"patient_id": "P-HI", "answers": {"consent": True}}).json()["id"]
    client.post(f"/api/trial/enrolments/{eid}/enrol", headers=h, json={"consent": True})
    r = client.post(f"/api/trial/enrolments/{eid}/allocate", headers=h,
                    json={"method": "pre_rule"})
    assert r.status_code == 409 and "randomised" in r.json()["hint"]
