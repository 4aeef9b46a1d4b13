"""End to end in Debian's chromium (Playwright): log in, upload a study, score, enrol, randomise.

Screenshots are written under the test's tmp folder (``screens/``).
"""

from __future__ import annotations

import io
import os
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
        expect(page.get_by_test_id("study")).to_contain_text("1 file(s)", timeout=20000)
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
        page.goto(base + "/monitoring")
        expect(page.get_by_role("cell", name="toy-pre")).to_be_visible()
        browser.close()
    assert len(list(shots.glob("*.png"))) == 4
