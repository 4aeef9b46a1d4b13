"""Patient page backed by real data (MRI phase viewer, slide thumbnail + heatmap, regimen)
and model monitoring with drift statistics."""

from __future__ import annotations

import datetime as dt
import io
import zipfile
from pathlib import Path

import numpy as np
import pytest
from fastapi.testclient import TestClient

from hccstrat.service.testing import login, seed_accounts, wait_for_job

PNG = b"\x89PNG\r\n\x1a\n"


def _study_zip(tmp: Path) -> tuple[bytes, float]:
    import SimpleITK as sitk

    from hccstrat.synthetic.mri import default_latent, write_study

    info = write_study(
        tmp / "study",
        default_latent(True),
        vendor="GE",
        patient_id="MRN-1",
        shape=(48, 48, 12),
        spacing=(6.0, 6.0, 8.0),
        seed=3,
    )
    buf = io.BytesIO()
    with zipfile.ZipFile(buf, "w") as zf:
        for f in sorted((info.study_dir / "DICOM").rglob("*")):
            if f.is_file():
                zf.write(f, f.relative_to(info.study_dir).as_posix())
        zf.write(info.seg_file, "masks/seg.dcm")
    m = sitk.ReadImage(str(info.tumour_mask))
    vol = float((sitk.GetArrayFromImage(m) > 0).sum() * np.prod(m.GetSpacing()) / 1000)
    return buf.getvalue(), vol


@pytest.mark.slow
def test_mri_viewer_from_an_uploaded_study(sqlite_app, tmp_path):
    app = sqlite_app()
    content, true_ml = _study_zip(tmp_path)
    with TestClient(app) as client:
        seed_accounts(app)
        h = login(client, "a_radiologist")
        client.post(
            "/api/patients",
            headers=login(client, "a_investigator"),
            json={"patient_id": "P-MRI", "centre": "A", "clinical": {}},
        )
        job = client.post("/api/patients/P-MRI/studies", headers=h, content=content).json()
        assert wait_for_job(client, h, job["id"])["status"] == "done"
        study = client.get("/api/patients/P-MRI/studies", headers=h).json()[0]
        assert study["preprocessed"] is False
        job = client.post(f"/api/patients/P-MRI/studies/{study['id']}/preprocess", headers=h).json()
        done = wait_for_job(client, h, job["id"])
        assert done["status"] == "done", done
        assert done["result"]["phases"] == ["arterial", "delayed", "portal", "pre"]
        # the tumour volume from the de-identified SEG matches the ground-truth mask
        assert done["result"]["tumour_volume_ml"] == pytest.approx(true_ml, rel=0.25)
        page = client.get("/patients/P-MRI", headers=h).text
        assert 'data-testid="phase-viewer"' in page and "tumour outlined" in page
        png = client.get(f"/patients/P-MRI/studies/{study['id']}/phases.png", headers=h)
        assert png.status_code == 200 and png.content.startswith(PNG)
        assert (
            client.get(
                f"/patients/P-MRI/studies/{study['id']}/phases.png",
                headers=login(client, "b_radiologist"),
            ).status_code
            == 404
        )


class _FixedBenefit:
    """Benefit scorer stand-in: always the prediction table row ``row`` (two arms)."""

    name, version = "benefit-test", "1"

    def __init__(self, row: dict, score: float, policy_check=None, default_reason=None) -> None:
        self.row, self.score, self.policy_check = row, score, policy_check
        self.default_reason = default_reason

    def __call__(self, clinical, features):
        from hccstrat.service.model_scorer import benefit_explanation
        from hccstrat.service.scoring import ScoreResult

        expl = benefit_explanation(self.row, ("surgery_alone", "TACE"), 0.9, self.policy_check,
                                   default_reason=self.default_reason)
        return ScoreResult(self.score, expl)


def test_slide_thumbnail_with_heatmap_and_regimen(sqlite_app, tmp_path):
    import matplotlib.image as mpimg

    from hccstrat.storage.models import Patient, Slide
    from hccstrat.synthetic.wsi import default_latent, write_slide

    slide = tmp_path / "s1.tiff"
    write_slide(
        slide,
        default_latent(),
        size=(1024, 768),
        artefacts=False,
        geojson=False,
        seed=1,
        texture_size=256,
    )

    row = {
        "rfs24_surgery_alone": 0.52,
        "rfs24_surgery_alone_lo": 0.44,
        "rfs24_surgery_alone_hi": 0.60,
        "rfs24_TACE": 0.71,
        "rfs24_TACE_lo": 0.63,
        "rfs24_TACE_hi": 0.79,
        "best_arm": "TACE",
        "recommended": "TACE",
        "policy": "TACE",
        "confident": True,
        "gain_rfs24": 0.12,
        "gain_rfs24_lo": 0.04,
        "gain_rfs24_hi": 0.2,
        "outside_support": False,
    }
    app = sqlite_app()
    app.state.settings.scorers["BENEFIT"] = _FixedBenefit(row, 0.71)
    with TestClient(app) as client:
        seed_accounts(app)
        h = login(client, "a_investigator")
        client.post(
            "/api/patients", headers=h, json={"patient_id": "P-WSI", "centre": "A", "clinical": {}}
        )
        with app.state.sessionmaker() as s:
            pid = s.query(Patient.id).filter(Patient.pseudo_id == "P-WSI").scalar()
            row = Slide(patient_id=pid, path=str(slide), sha256="0" * 64, mpp=0.5, info={})
            s.add(row)
            s.commit()
            sid = row.id
        url = f"/patients/P-WSI/slides/{sid}/thumbnail.png"
        plain = client.get(url, headers=h)
        assert plain.status_code == 200 and plain.content.startswith(PNG)
        heat = np.zeros((12, 16, 4), np.float32)
        heat[..., 0], heat[..., 3] = 1.0, 1.0  # all red
        mpimg.imsave(str(slide) + ".heatmap.png", heat)
        over = client.get(url, headers=h)
        assert over.status_code == 200 and over.content != plain.content
        a = mpimg.imread(io.BytesIO(plain.content))[..., :3].mean(axis=(0, 1))
        b = mpimg.imread(io.BytesIO(over.content))[..., :3].mean(axis=(0, 1))
        assert b[0] - b[2] > a[0] - a[2] + 0.1  # the red overlay shows
        assert client.get(url, headers=login(client, "b_investigator")).status_code == 404
        r = client.post("/api/patients/P-WSI/predictions", headers=h, json={"kind": "BENEFIT"})
        assert r.status_code == 201, r.text
        page = client.get("/patients/P-WSI", headers=h).text
        assert 'data-testid="slide-thumb"' in page and "heatmap overlaid" in page
        assert 'data-testid="recommended">TACE' in page and "63–79 %" in page


def test_regimen_withheld_by_the_policy_check_says_why(sqlite_app):
    from hccstrat.models import PolicyCheck

    check = PolicyCheck(criterion="rfs", default_arm="TACE", n=2651, folds=3, deviating=0.57,
                        estimate=-0.002, se=0.02, lo=-0.034, hi=0.031, confidence=0.9,
                        arm_means={})

    row = {"rfs24_surgery_alone": 0.52, "rfs24_surgery_alone_lo": 0.45,
           "rfs24_surgery_alone_hi": 0.6, "rfs24_TACE": 0.61, "rfs24_TACE_lo": 0.55,
           "rfs24_TACE_hi": 0.68, "best_arm": "TACE",
           "recommended": "no confident recommendation", "policy": "TACE",
           "confident": False, "gain_rfs24": 0.02, "outside_support": False}
    reason = ("default regimen TACE: the best mean outcome for everyone (doubly robust, "
              "training data: surgery_alone vs TACE -4.9 points (se 2.1))")
    benefit = _FixedBenefit(row, 0.61, check, reason)
    assert benefit(None, None).explanation["regimen"]["policy_validated"] is False
    app = sqlite_app()
    app.state.settings.scorers["BENEFIT"] = benefit
    with TestClient(app) as client:
        seed_accounts(app)
        h = login(client, "a_investigator")
        client.post(
            "/api/patients", headers=h, json={"patient_id": "P-NV", "centre": "A", "clinical": {}}
        )
        r = client.post("/api/patients/P-NV/predictions", headers=h, json={"kind": "BENEFIT"})
        assert r.status_code == 201, r.text
        page = client.get("/patients/P-NV", headers=h).text
    assert 'data-testid="recommended">No confident recommendation' in page
    assert "not shown to do better than one regimen for everyone" in page
    assert "gain in 2-year RFS -0.2 points (90% CI -3.4 to +3.1) -&gt; NOT validated" in page
    assert "intervals of the best two regimens overlap" not in page
    assert 'data-testid="default-reason">default regimen TACE: the best mean outcome' in page
    assert "surgery_alone vs TACE -4.9 points (se 2.1)" in page


def test_monitoring_shows_input_and_score_drift(app_client):
    from hccstrat.storage.models import ModelVersion, Patient, Prediction

    client, H = app_client
    app = client.app
    rng = np.random.default_rng(0)
    t0 = dt.datetime(2025, 1, 1, tzinfo=dt.UTC)
    with app.state.sessionmaker() as s:
        mv = ModelVersion(name="pre-mon", version="v1", kind="PRE")
        s.add(mv)
        s.flush()
        for i in range(60):
            p = Patient(pseudo_id=f"P-MON{i}", centre_id=1)
            s.add(p)
            s.flush()
            late = i >= 30  # the second half comes from another case mix
            afp = float(rng.lognormal(6 if late else 3, 0.5))
            size = float(rng.normal(5, 1.5))
            score = float(np.clip(rng.normal(0.7 if late else 0.3, 0.08), 0, 1))
            s.add(
                Prediction(
                    patient_id=p.id,
                    model_version_id=mv.id,
                    kind="PRE",
                    score=score,
                    input_sha256="0" * 64,
                    explanation={},
                    inputs={
                        "clinical": {
                            "afp_ng_ml": afp,
                            "tumour_size_cm": size,
                            "sex": "M" if i % 2 else "F",
                        },
                        "features": {},
                    },
                    created_at=t0 + dt.timedelta(days=3 * i),
                )
            )
        s.commit()
    page = client.get("/monitoring", headers=H["a_statistician"])
    assert page.status_code == 200
    text = page.text
    assert "pre-mon" in text and 'data-testid="input-drift"' in text
    from hccstrat.service.monitoring import monitoring_report
    from hccstrat.storage.repositories import Scope

    with app.state.sessionmaker() as s:
        rep = {m["model"]: m for m in monitoring_report(s, Scope(actor="t", centre_id=1))}
    m = rep["pre-mon"]
    assert m["drift"]["level"] == "major" and m["drift"]["score_psi"] > 0.25
    flags = {r["column"]: r["drift"] for r in m["inputs"]}
    assert flags["afp_ng_ml"] is True and flags["tumour_size_cm"] is False
    assert flags["sex"] is False
    assert m["performance"]["available"] is False  # no outcomes recorded
    # centre B sees none of centre A's predictions
    with app.state.sessionmaker() as s:
        assert all(
            r["model"] != "pre-mon" for r in monitoring_report(s, Scope(actor="t", centre_id=2))
        )
    # outcomes recorded (an old and a newer record version per patient): rolling
    # performance appears, computed from each patient's NEWEST record
    from hccstrat.storage.models import ClinicalRecord

    with app.state.sessionmaker() as s:
        preds = s.query(Prediction).filter(Prediction.model_version_id == mv.id).all()
        for k, pr in enumerate(preds):
            surgery = dt.date(2022, 1, 1) + dt.timedelta(days=9 * k)
            high = pr.score >= 0.5
            s.add(ClinicalRecord(patient_id=pr.patient_id, version=1, data={"age": 60}))
            s.add(ClinicalRecord(patient_id=pr.patient_id, version=2, data={
                "surgery_date": surgery.isoformat(),
                "last_followup_date": (surgery + dt.timedelta(days=900)).isoformat(),
                "recurrence": bool(high or k % 7 == 0),
                "recurrence_date": (surgery + dt.timedelta(days=120 + 3 * k)).isoformat()
                if (high or k % 7 == 0) else None,
                "recurrence_pattern": "multinodular",
                "death": False,
            }))
        s.commit()
    with app.state.sessionmaker() as s:
        perf = {m["model"]: m for m in monitoring_report(s, Scope(actor="t", centre_id=1))}[
            "pre-mon"]["performance"]
    assert perf["available"] is True, perf
    assert perf["n"] == 60 and perf["events"] > 0


def test_monitoring_reads_inputs_of_an_even_spread_of_predictions():
    from hccstrat.service.monitoring import _Row, _spread

    rows = [_Row(i, i, 0.1 * i, None) for i in range(10)]
    assert [r.id for r in _spread(rows, 4)] == [0, 3, 6, 9]
    assert _spread(rows, 20) == rows and _spread(rows[:1], 1) == rows[:1]
