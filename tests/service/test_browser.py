"""End to end in Debian's chromium (Playwright): log in, upload a study, score, enrol, randomise.

Screenshots are written under the test's tmp folder (``screens/``).
"""

from __future__ import annotations

import io
import os
import re
import shutil
import socket
import subprocess
import sys
import time
import zipfile
from pathlib import Path

import pytest

CHROMIUM = "/usr/bin/chromium"
pytestmark = [pytest.mark.browser, pytest.mark.slow]

_SERVER = r"""
import math, sys, uvicorn
from hccstrat.service import ServiceSettings, create_app
from hccstrat.service.scoring import ScoreResult

class Toy:
    '''Logistic score of tumour size (test stand-in for the PRE model).'''
    name, version = "toy-pre", "1.0"
    def __call__(self, clinical, features):
        lp = 0.4 * (float(clinical.get("tumour_size_cm", 3)) - 5)
        return ScoreResult(1 / (1 + math.exp(-lp)), {"tumour_size_cm": lp})

app = create_app(ServiceSettings(data_dir=sys.argv[1], scorers={"PRE": Toy()},
                                 argon2={"time_cost": 1, "memory_kib": 1024, "parallelism": 1},
                                 worker_poll_s=0.1))
uvicorn.run(app, host="127.0.0.1", port=int(sys.argv[2]), log_level="error")
"""


def _dicom_zip(path: Path) -> Path:
    import pydicom
    from pydicom.data import get_testdata_file

    buf = io.BytesIO()
    with zipfile.ZipFile(buf, "w") as zf:
        ds = pydicom.dcmread(get_testdata_file("MR_small.dcm", download=False))
        ds.PatientName = "Doe^Jane"
        out = io.BytesIO()
        ds.save_as(out)
        zf.writestr("mr/1.dcm", out.getvalue())
    path.write_bytes(buf.getvalue())
    return path


def _add_images(data: Path, tmp: Path) -> None:
    """Give P-WEB1 a preprocessed study, a slide with a heatmap and a benefit prediction."""
    import json

    import matplotlib.image as mpimg
    import numpy as np
    import SimpleITK as sitk
    from sqlalchemy import select

    from hccstrat.service.model_scorer import benefit_explanation
    from hccstrat.storage import make_engine, make_sessionmaker
    from hccstrat.storage.models import ImagingStudy, ModelVersion, Patient, Prediction, Slide
    from hccstrat.synthetic.wsi import default_latent, write_slide

    folder = data / "derived" / "P-WEB1" / "study-demo"
    folder.mkdir(parents=True)
    zz, yy, xx = np.mgrid[:8, :64, :64]
    body = ((yy - 32) ** 2 + (xx - 32) ** 2 < 28**2).astype(np.float32)
    tum = ((zz - 4) ** 2 * 9 + (yy - 30) ** 2 + (xx - 38) ** 2 < 64).astype(np.float32)
    gain = {"pre": (1.0, 0.9), "arterial": (1.3, 2.2), "portal": (1.6, 1.3), "delayed": (1.5, 0.8)}
    for ph, (liver, lesion) in gain.items():
        arr = 100 * body * liver + 100 * tum * (lesion - liver)
        sitk.WriteImage(sitk.GetImageFromArray(arr), str(folder / f"{ph}.nii.gz"))
    sitk.WriteImage(sitk.GetImageFromArray(tum.astype(np.uint8)), str(folder / "tumour.nii.gz"))
    (folder / "preprocess.json").write_text(json.dumps(
        {"phases": {p: f"{p}.nii.gz" for p in gain}}))
    slide = tmp / "slide.tiff"
    write_slide(slide, default_latent(), size=(1024, 768), artefacts=False, geojson=False,
                seed=1, texture_size=256)
    heat = np.zeros((24, 32, 4), np.float32)
    heat[6:18, 8:20] = (1.0, 0.2, 0.0, 0.8)
    mpimg.imsave(str(slide) + ".heatmap.png", heat)
    row = {"rfs24_surgery_alone": 0.52, "rfs24_surgery_alone_lo": 0.44,
           "rfs24_surgery_alone_hi": 0.60, "rfs24_TACE": 0.71, "rfs24_TACE_lo": 0.63,
           "rfs24_TACE_hi": 0.79, "rfs24_TACE_TKI": 0.66, "rfs24_TACE_TKI_lo": 0.55,
           "rfs24_TACE_TKI_hi": 0.76, "best_arm": "TACE", "recommended": "TACE",
           "policy": "TACE", "confident": True, "gain_rfs24": 0.12, "gain_rfs24_lo": 0.04,
           "gain_rfs24_hi": 0.2, "outside_support": False}
    engine = make_engine(f"sqlite:///{data / 'registry.sqlite'}")
    with make_sessionmaker(engine)() as s:
        pid = s.scalar(select(Patient.id).where(Patient.pseudo_id == "P-WEB1"))
        mv = ModelVersion(name="benefit-demo", version="1", kind="BENEFIT")
        s.add_all([mv, ImagingStudy(patient_id=pid, study_uid="1.2.3", path=str(folder),
                                    sha256="0" * 64, info={"preprocessed": str(folder)}),
                   Slide(patient_id=pid, path=str(slide), sha256="0" * 64, mpp=0.5, info={})])
        s.flush()
        s.add(Prediction(patient_id=pid, model_version_id=mv.id, kind="BENEFIT", score=0.71,
                         input_sha256="0" * 64, explanation=benefit_explanation(
                             row, ("surgery_alone", "TACE", "TACE_TKI"), 0.9)))
        s.commit()
    engine.dispose()


@pytest.fixture
def server(tmp_path):
    if not (os.path.exists(CHROMIUM) and shutil.which(CHROMIUM)):
        pytest.skip("Debian chromium not installed at /usr/bin/chromium (apt-get install chromium)")
    pytest.importorskip("playwright", reason="playwright (python package) not installed")
    from typer.testing import CliRunner

    from hccstrat.cli.serve import app

    data = tmp_path / "data"
    pw = "browser test password"
    r = CliRunner()
    r.invoke(app, ["users", "add-centre", "A", "Centre A", "--data-dir", str(data)])
    res = r.invoke(
        app,
        ["users", "create-admin", "--username", "root", "--data-dir", str(data)],
        input=f"{pw}\n{pw}\n",
    )
    assert res.exit_code == 0, res.output
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        port = s.getsockname()[1]
    proc = subprocess.Popen([sys.executable, "-c", _SERVER, str(data), str(port)])
    base = f"http://127.0.0.1:{port}"
    import httpx

    for _ in range(150):
        try:
            httpx.get(base + "/login", timeout=1)
            break
        except httpx.HTTPError:
            time.sleep(0.1)
    tok = httpx.post(base + "/api/auth/login", json={"username": "root", "password": pw}).json()[
        "access_token"
    ]
    clinical = {
        "age": 62,
        "sex": "M",
        "tumour_size_cm": 8.0,
        "tumour_number": 1,
        "histology": "HCC",
        "margin_status": "R0",
        "adjuvant": "TACE",
        "surgery_date": "2024-01-10",
        "last_followup_date": "2025-06-01",
    }
    r = httpx.post(
        base + "/api/patients",
        headers={"Authorization": f"Bearer {tok}"},
        json={"patient_id": "P-WEB1", "centre": "A", "clinical": clinical},
    )
    assert r.status_code == 201, r.text
    _add_images(data, tmp_path)
    yield base, pw
    proc.terminate()
    proc.wait(10)


def test_walkthrough(server, tmp_path):
    from playwright.sync_api import expect, sync_playwright

    base, pw = server
    shots = tmp_path / "screens"
    shots.mkdir()
    study = _dicom_zip(tmp_path / "study.zip")
    with sync_playwright() as p:
        browser = p.chromium.launch(
            executable_path=CHROMIUM,
            args=["--headless", "--no-sandbox", "--disable-gpu", "--disable-background-networking"],
        )
        page = browser.new_page(viewport={"width": 1366, "height": 768})
        page.goto(base + "/patients")
        expect(page).to_have_url(base + "/login")  # not logged in: sent to the login page
        page.get_by_label("Username").fill("root")
        page.get_by_label("Password").fill(pw)
        page.get_by_role("button", name="Log in").click()
        expect(page.get_by_role("heading", name="Patients")).to_be_visible()
        page.screenshot(path=shots / "01-patients.png", full_page=True)
        # a patient created through the form
        page.get_by_label("Centre code").fill("A")
        page.get_by_label("age").fill("55")
        page.get_by_label("tumour size cm").fill("3.5")
        page.get_by_role("button", name="Create patient").click()
        expect(page.get_by_role("heading", name="Patient P-")).to_be_visible()
        # the seeded patient: upload a study, score, screen, enrol, randomise
        page.goto(base + "/patients/P-WEB1")
        page.get_by_label("Upload a DICOM study (.zip)").set_input_files(str(study))
        page.get_by_role("button", name="Upload study").click()
        expect(page.get_by_test_id("study").last).to_contain_text("1 file(s)", timeout=20000)
        page.get_by_role("button", name="Compute score").click()
        expect(page.get_by_test_id("score").first).to_contain_text("PRE")
        score = float(page.get_by_test_id("score").first.locator(".value").inner_text())
        assert score > 0.5  # 8 cm tumour with the toy model
        page.screenshot(path=shots / "02-score.png", full_page=True)
        page.get_by_label("Trial", exact=True).select_option("NCT07417800")
        page.get_by_role("button", name="Screen").click()
        expect(page.get_by_test_id("enrolment")).to_contain_text("eligible")
        page.get_by_role("button", name="Enrol (consent given)").click()
        expect(page.get_by_test_id("enrolment")).to_contain_text("enrolled")
        page.get_by_role("button", name="Allocate").click()
        arm = page.get_by_test_id("arm")
        expect(arm).to_be_visible()
        assert arm.inner_text() in ("model_assisted", "standard_care")
        page.screenshot(path=shots / "03-allocated.png", full_page=True)
        page.goto(base + "/trial/NCT07417800")
        expect(page.get_by_test_id("count-allocated")).to_have_text("1")
        page.screenshot(path=shots / "04-trial.png", full_page=True)
        # patient page backed by image data: phase viewer, slide + heatmap, regimen
        page.goto(base + "/patients/P-WEB1")
        viewer = page.get_by_role("img", name="Registered non-contrast, arterial")
        expect(viewer).to_be_visible()
        thumb = page.get_by_role("img", name="Thumbnail of slide")
        expect(thumb).to_have_attribute("alt", re.compile("heatmap overlaid"))
        for img in (viewer, thumb):
            img.scroll_into_view_if_needed()
            page.wait_for_function("(e) => e.complete && e.naturalWidth > 0",
                                   arg=img.element_handle())
        expect(page.get_by_test_id("recommended")).to_have_text("TACE")
        expect(page.get_by_role("row", name=re.compile("TACE 71 %"))).to_be_visible()
        page.screenshot(path=shots / "05-patient-images.png", full_page=True)
        # keyboard: the first Tab reaches the skip link, which moves focus to the content
        page.keyboard.press("Tab")
        expect(page.get_by_role("link", name="Skip to content")).to_be_focused()
        page.goto(base + "/monitoring")
        expect(page.get_by_role("heading", name=re.compile("PRE · toy-pre"))).to_be_visible()
        page.screenshot(path=shots / "06-monitoring.png", full_page=True)
        # every image on every page has alternative text
        for url in ("/patients", "/patients/P-WEB1", "/trial/NCT07417800", "/monitoring"):
            page.goto(base + url)
            assert page.locator("img:not([alt])").count() == 0, url
        browser.close()
    assert len(list(shots.glob("*.png"))) == 6
