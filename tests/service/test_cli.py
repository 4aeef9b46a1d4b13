"""CLI: first admin, centres, audit verify (with tampering), and a real ``serve`` on loopback."""

from __future__ import annotations

import socket
import subprocess
import sys
import time

import httpx
from sqlalchemy import create_engine, text
from typer.testing import CliRunner

from hccstrat.cli.serve import app

PW = "a long admin password"


def test_create_admin_and_audit_verify(tmp_path):
    runner = CliRunner()
    d = ["--data-dir", str(tmp_path)]
    r = runner.invoke(app, ["users", "add-centre", "GZ1", "Guangzhou 1", *d])
    assert r.exit_code == 0, r.output
    r = runner.invoke(
        app, ["users", "create-admin", "--username", "root", *d], input=f"{PW}\n{PW}\n"
    )
    assert r.exit_code == 0, r.output
    r = runner.invoke(
        app,
        ["users", "create", "--username", "inv1", "--role", "investigator", "--centre", "GZ1", *d],
        input=f"{PW}\n{PW}\n",
    )
    assert r.exit_code == 0, r.output
    r = runner.invoke(app, ["audit", "verify", *d])
    assert r.exit_code == 0 and "intact: 3 event(s)" in r.output
    eng = create_engine(f"sqlite:///{tmp_path / 'registry.sqlite'}")
    with eng.begin() as conn:
        conn.execute(text("DROP TRIGGER audit_events_no_update"))
        conn.execute(text("UPDATE audit_events SET after = '{}' WHERE seq = 2"))
    eng.dispose()
    r = runner.invoke(app, ["audit", "verify", *d])
    assert r.exit_code == 9 and "BROKEN at event 2" in r.output


def test_users_and_audit_bad_input_is_a_clear_error(tmp_path, capsys):
    from hccstrat.cli import main

    d = ["--data-dir", str(tmp_path / "reg")]
    assert main(["users", "add-centre", "GZ1", "Guangzhou 1", *d]) == 0
    # before: 'internal error: IntegrityError' (exit 70)
    assert main(["users", "add-centre", "GZ1", "again", *d]) == 8
    assert "centre 'GZ1' already exists" in capsys.readouterr().err
    # before: accepted, although POST /api/centres refuses such a code
    assert main(["users", "add-centre", "GZ 1/é", "x", *d]) == 2
    assert "code: String should match pattern" in capsys.readouterr().err
    # before: 'internal error: ValidationError' (exit 70)
    assert main(["users", "create-admin", "--password", "short", *d]) == 2
    assert "password: String should have at least 10 characters" in capsys.readouterr().err
    # before: a mistyped --data-dir created an empty registry and reported it 'intact'
    assert main(["audit", "verify", "--data-dir", str(tmp_path / "typo")]) == 3
    assert "no registry in" in capsys.readouterr().err and not (tmp_path / "typo").exists()
    assert main(["audit", "verify", *d]) == 0


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def test_serve_on_loopback(tmp_path):
    runner = CliRunner()
    runner.invoke(
        app,
        ["users", "create-admin", "--username", "root", "--data-dir", str(tmp_path)],
        input=f"{PW}\n{PW}\n",
    )
    port = _free_port()
    proc = subprocess.Popen(
        [
            sys.executable,
            "-c",
            "from hccstrat.cli.serve import app; app()",
            "serve",
            "--port",
            str(port),
            "--data-dir",
            str(tmp_path),
        ],
        stdout=subprocess.PIPE,
        stderr=subprocess.STDOUT,
    )
    try:
        base = f"http://127.0.0.1:{port}"
        for _ in range(100):
            try:
                httpx.get(base + "/login", timeout=1)
                break
            except httpx.HTTPError:
                time.sleep(0.1)
        r = httpx.post(base + "/api/auth/login", json={"username": "root", "password": PW})
        assert r.status_code == 200
        tok = r.json()["access_token"]
        r = httpx.get(base + "/api/patients", headers={"Authorization": f"Bearer {tok}"})
        assert r.status_code == 200 and r.json()["total"] == 0
        assert "Log in" in httpx.get(base + "/login").text
    finally:
        proc.terminate()
        proc.wait(10)


def test_serve_encoder_options_reach_the_settings(tmp_path, monkeypatch):
    import uvicorn

    from hccstrat.exceptions import ConfigError
    from hccstrat.io.atomic import sha256_file
    from hccstrat.service.encoders import EncoderSpec

    ck = tmp_path / "w.pth"
    ck.write_bytes(b"weights")
    digest = sha256_file(ck)
    seen = {}
    monkeypatch.setattr(uvicorn, "run", lambda app, **kw: seen.setdefault("app", app))
    d = ["--data-dir", str(tmp_path / "data")]
    r = CliRunner().invoke(app, ["serve", *d, "--encoder", f"u=uni:{ck}:{digest}",
                                 "--encoder", f"t=timm:resnet18:{ck}"])
    assert r.exit_code == 0, r.output
    enc = seen["app"].state.settings.encoders
    assert enc == {"u": EncoderSpec("uni", ck, digest), "t": EncoderSpec("timm:resnet18", ck)}
    r = CliRunner().invoke(app, ["serve", *d, "--encoder", f"u=uni:{ck}",
                                 "--encoder", f"u=ctranspath:{ck}"])
    assert isinstance(r.exception, ConfigError) and "two --encoder" in str(r.exception)
    r = CliRunner().invoke(app, ["serve", *d, "--encoder", f"u=uni:{ck}:1234"])
    assert isinstance(r.exception, ConfigError) and "SHA-256" in str(r.exception)
