"""Slide embed job with a configured encoder: name -> kind + local weights + checksum."""

from __future__ import annotations

import pytest
from fastapi.testclient import TestClient

from hccstrat.service.testing import login, seed_accounts, wait_for_job


@pytest.fixture(scope="module")
def tiny_timm(tmp_path_factory):
    """A tiny timm checkpoint (test_resnet, 160 px), its checksum and feature length."""
    import timm
    import torch

    from hccstrat.io.atomic import sha256_file

    d = tmp_path_factory.mktemp("enc")
    torch.manual_seed(0)
    m = timm.create_model("test_resnet", pretrained=False, num_classes=0)
    ck = d / "test_resnet.pth"
    torch.save(m.state_dict(), ck)
    return ck, sha256_file(ck), int(m.num_features)


@pytest.fixture(scope="module")
def slide_file(tmp_path_factory):
    from hccstrat.synthetic.wsi import default_latent, write_slide

    slide = tmp_path_factory.mktemp("wsi") / "s.tiff"
    write_slide(slide, default_latent(), size=(1024, 1024), seed=3, artefacts=False,
                geojson=False, texture_size=256)
    return slide


def _patient_with_slide(client, app, path) -> int:
    from hccstrat.storage.models import Patient, Slide

    seed_accounts(app)
    client.post("/api/patients", headers=login(client, "a_investigator"),
                json={"patient_id": "P-E", "centre": "A", "clinical": {}})
    with app.state.sessionmaker() as s:
        pid = s.query(Patient.id).filter(Patient.pseudo_id == "P-E").scalar()
        row = Slide(patient_id=pid, path=str(path), sha256="0" * 64, mpp=0.5, info={})
        s.add(row)
        s.commit()
        return row.id


def test_embed_with_a_configured_timm_encoder(sqlite_app, tiny_timm, slide_file):
    from hccstrat.io.store import read_features

    ck, digest, dim = tiny_timm
    app = sqlite_app(encoders={"tiny": {"kind": "timm:test_resnet", "checkpoint": ck,
                                        "sha256": digest, "options": {"device": "cpu"}}})
    with TestClient(app) as client:
        sid = _patient_with_slide(client, app, slide_file)
        hp = login(client, "a_pathologist")
        url = f"/api/patients/P-E/slides/{sid}/embed"
        # unknown name: 422 listing the configured names, nothing queued
        r = client.post(url, headers=hp, json={"encoder": "uni"})
        assert r.status_code == 422 and r.json()["code"] == "HCC-ENC-422"
        assert r.json()["encoders"] == ["builtin", "tiny"] and "tiny" in r.json()["message"]
        assert client.get("/api/jobs", headers=hp).json() == []
        assert client.post(url, headers=hp, json={"encoder": "tiny", "x": 1}).status_code == 422
        # another centre: 404 before the encoder name is even looked at
        assert client.post(url, headers=login(client, "b_admin"),
                           json={"encoder": "nope"}).status_code == 404
        r = client.post(url, headers=hp, json={"encoder": "tiny"})
        assert r.status_code == 202, r.text
        job = wait_for_job(client, hp, r.json()["id"], timeout=120)
        assert job["status"] == "done", job
        res = job["result"]
        assert res["encoder"] == "tiny" and res["encoder_kind"] == "timm:test_resnet"
        assert res["encoder_sha256"] == digest and res["feature_dim"] == dim
        ff = read_features(res["features"])
        assert ff.features.shape == (res["n_tiles_pass"], dim) and res["n_tiles_pass"] > 0
        assert ff.attrs["encoder"] == "timm:test_resnet"
        assert ff.attrs["encoder_sha256"] == digest
        assert f"slide-{sid}/encoders/tiny/features" in res["features"]
        # no body: the built-in encoder, stored beside the named one
        job = wait_for_job(client, hp, client.post(url, headers=hp).json()["id"], timeout=120)
        assert job["status"] == "done" and job["result"]["encoder"] == "builtin", job
        assert job["result"]["encoder_sha256"].startswith("builtin")
        [row] = client.get("/api/patients/P-E/slides", headers=hp).json()
        assert row["embedding"]["encoder"] == "builtin"  # the newest run
        assert row["embeddings"]["tiny"]["encoder_sha256"] == digest
        assert read_features(row["embeddings"]["tiny"]["features"]).features.shape[1] == dim


def test_embed_refuses_weights_with_another_checksum(sqlite_app, tiny_timm, slide_file):
    from hccstrat.service.encoders import EncoderSpec

    ck, digest, _ = tiny_timm
    wrong = "0" * 64
    app = sqlite_app(encoders={"tiny": EncoderSpec("timm:test_resnet", ck, wrong)})
    with TestClient(app) as client:
        sid = _patient_with_slide(client, app, slide_file)
        hp = login(client, "a_pathologist")
        r = client.post(f"/api/patients/P-E/slides/{sid}/embed", headers=hp,
                        json={"encoder": "tiny"})
        job = wait_for_job(client, hp, r.json()["id"], timeout=60)
        assert job["status"] == "failed" and job["error_code"] == "HCC-MODEL-001"
        assert "checksum mismatch" in job["message"] and digest in job["message"]
        [row] = client.get("/api/patients/P-E/slides", headers=hp).json()
        assert row["embedding"] is None


def test_encoder_settings_and_option_parsing(tmp_path, tiny_timm):
    from hccstrat.exceptions import ConfigError
    from hccstrat.service import ServiceSettings
    from hccstrat.service.encoders import parse_encoder_option

    ck, digest, _ = tiny_timm
    name, spec = parse_encoder_option(f"tiny=timm:test_resnet:{ck}:{digest.upper()}")
    assert (name, spec.kind, spec.checkpoint, spec.sha256) == (
        "tiny", "timm:test_resnet", ck, digest)
    name, spec = parse_encoder_option(f"u=uni:{ck}")
    assert (name, spec.kind, spec.checkpoint, spec.sha256) == ("u", "uni", ck, None)
    bad = [
        "tiny",  # no =
        f"tiny=timm:test_resnet:{ck}:abc",  # checksum not 64 hex digits
        "tiny=timm:test_resnet",  # no weights
        f"tiny=uni:{tmp_path / 'absent.bin'}",  # weights not found
        f"tiny=nosuchkind:{ck}",  # unknown kind
        f"builtin=uni:{ck}",  # reserved name
        f"../x=uni:{ck}",  # not a safe folder name
    ]
    for text in bad:
        with pytest.raises(ConfigError):
            parse_encoder_option(text)
    with pytest.raises(ConfigError, match="weights"):
        ServiceSettings(data_dir=tmp_path, encoders={"u": {"kind": "uni"}})


def test_worker_keeps_the_encoder_between_jobs_until_the_weights_change(tmp_path, tiny_timm):
    import shutil

    from hccstrat.exceptions import ModelError
    from hccstrat.service.encoders import EncoderSpec
    from hccstrat.service.worker import JobWorker

    ck, digest, _ = tiny_timm
    mine = tmp_path / "w.pth"
    shutil.copy(ck, mine)
    worker = JobWorker(None, None, b"")
    spec = EncoderSpec("timm:test_resnet", mine, digest, {"device": "cpu"})
    first = worker.encoder(spec)
    # an equal spec: not loaded (nor its weights hashed) again
    same = EncoderSpec("timm:test_resnet", mine, digest, {"device": "cpu"})
    assert worker.encoder(same) is first
    builtin = worker.encoder(EncoderSpec("builtin"))
    assert builtin is not first and worker.encoder(EncoderSpec("builtin")) is builtin
    # one encoder is kept at a time: back to the first spec builds it again
    assert worker.encoder(spec) is not first
    # the weights file replaced by one with another checksum: built again, and refused
    mine.write_bytes(mine.read_bytes() + b"\0")
    with pytest.raises(ModelError, match="checksum mismatch"):
        worker.encoder(spec)
