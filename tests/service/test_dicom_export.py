"""DICOM SR and SEG downloads of an uploaded, preprocessed MRI study (no PHI, linked)."""

from __future__ import annotations

import io
import zipfile
from pathlib import Path

import numpy as np
import pytest
from fastapi.testclient import TestClient

from hccstrat.service.testing import login, seed_accounts, wait_for_job

COMPREHENSIVE_3D_SR = "1.2.840.10008.5.1.4.1.1.88.34"
SEGMENTATION = "1.2.840.10008.5.1.4.1.1.66.4"


def _study_zip(tmp: Path) -> tuple[bytes, float]:
    import SimpleITK as sitk

    from hccstrat.synthetic.mri import default_latent, write_study

    info = write_study(tmp / "study", default_latent(True), vendor="GE", patient_id="MRN-77",
                       shape=(48, 48, 12), spacing=(6.0, 6.0, 8.0), seed=3)
    buf = io.BytesIO()
    with zipfile.ZipFile(buf, "w") as zf:
        for f in sorted((info.study_dir / "DICOM").rglob("*")):
            if f.is_file():
                zf.write(f, f.relative_to(info.study_dir).as_posix())
        zf.write(info.seg_file, "masks/seg.dcm")
    m = sitk.ReadImage(str(info.tumour_mask))
    vol = float((sitk.GetArrayFromImage(m) > 0).sum() * np.prod(m.GetSpacing()) / 1000)
    return buf.getvalue(), vol


def test_sr_and_seg_of_a_preprocessed_study(sqlite_app, tmp_path):
    import pydicom

    from hccstrat.interop.dicom_sr import read_sr_measurements

    app = sqlite_app()
    content, true_ml = _study_zip(tmp_path)
    with TestClient(app) as client:
        seed_accounts(app)
        h, hi = login(client, "a_radiologist"), login(client, "a_investigator")
        client.post("/api/patients", headers=hi,
                    json={"patient_id": "P-SR", "centre": "A", "clinical": {}})
        job = client.post("/api/patients/P-SR/studies", headers=h, content=content).json()
        assert wait_for_job(client, h, job["id"])["status"] == "done"
        sid = client.get("/api/patients/P-SR/studies", headers=h).json()[0]["id"]
        sr_url = f"/api/patients/P-SR/studies/{sid}/sr.dcm"
        r = client.get(sr_url, headers=h)  # not preprocessed yet: nothing to export
        assert r.status_code == 409 and "not preprocessed" in r.json()["message"]
        assert "preprocess" in r.json()["hint"]
        job = client.post(f"/api/patients/P-SR/studies/{sid}/preprocess", headers=h).json()
        assert wait_for_job(client, h, job["id"])["status"] == "done"
        pred = client.post("/api/patients/P-SR/predictions", headers=hi, json={}).json()

        seg_r = client.get(f"/api/patients/P-SR/studies/{sid}/seg.dcm", headers=h)
        assert seg_r.status_code == 200
        assert seg_r.headers["content-type"] == "application/dicom"
        assert seg_r.headers["content-disposition"].startswith("attachment;")
        seg = pydicom.dcmread(io.BytesIO(seg_r.content))
        assert seg.SOPClassUID == SEGMENTATION and seg.PatientID == "P-SR"
        assert [str(s.SegmentLabel) for s in seg.SegmentSequence] == ["Tumour"]

        sr_r = client.get(sr_url, headers=hi)
        assert sr_r.status_code == 200 and sr_r.headers["content-type"] == "application/dicom"
        assert 'filename="P-SR_study' in sr_r.headers["content-disposition"]
        sr = pydicom.dcmread(io.BytesIO(sr_r.content))
        assert sr.SOPClassUID == COMPREHENSIVE_3D_SR
        assert sr.PatientID == "P-SR" and "MRN-77" not in str(sr.PatientName)
        assert b"MRN-77" not in sr_r.content and b"MRN-77" not in seg_r.content
        path = tmp_path / "sr.dcm"
        path.write_bytes(sr_r.content)
        m = read_sr_measurements(path)
        assert m["tumour_volume_ml"] == pytest.approx(true_ml, rel=0.25)
        assert m["pre_score"] == pytest.approx(pred["score"])
        assert m["model"] == ("toy-pre", "1.0")
        # the SR references the SEG one can download (written once, reused)
        assert m["referenced_seg_uid"] == str(seg.SOPInstanceUID)
        again = client.get(f"/api/patients/P-SR/studies/{sid}/seg.dcm", headers=h)
        assert pydicom.dcmread(io.BytesIO(again.content)).SOPInstanceUID == seg.SOPInstanceUID
        # another centre: as if the study did not exist
        hb = login(client, "b_radiologist")
        assert client.get(sr_url, headers=hb).status_code == 404
        assert client.get(f"/api/patients/P-SR/studies/{sid}/seg.dcm",
                          headers=hb).status_code == 404
