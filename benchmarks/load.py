"""Bounded load test of the registry service on loopback.

Starts ``hccstrat`` 's web service in a child process on 127.0.0.1 (SQLite in a
temporary folder unless ``--db`` is given), then runs N concurrent clients for a
fixed time. Each client logs in once and loops: create a patient, store a second
version of its clinical record, read it back, list patients, score it. Afterwards
every acknowledged write is looked up in the database (lost writes) and the audit
chain is verified. Prints the figures beside the target of issue 10
(50 clients x 60 s: 0 errors, 0 lost writes).

    .venv/bin/python benchmarks/load.py            # 50 clients, 60 s
    .venv/bin/python benchmarks/load.py --quick    # 8 clients, 5 s
"""

from __future__ import annotations

import argparse
import asyncio
import os
import socket
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import httpx

PW = "load test password"
_SERVER = r"""
import math, sys, uvicorn
from hccstrat.service import ServiceSettings, create_app
from hccstrat.service.scoring import ScoreResult

class Toy:
    name, version = "load-toy", "1"
    def __call__(self, clinical, features):
        lp = 0.3 * (float(clinical.get("tumour_size_cm", 3)) - 5)
        return ScoreResult(1 / (1 + math.exp(-lp)), {"lp": lp})

data, db, port = sys.argv[1], sys.argv[2] or None, int(sys.argv[3])
app = create_app(ServiceSettings(data_dir=data, db_url=db, scorers={"PRE": Toy()},
                                 run_worker=False))
uvicorn.run(app, host="127.0.0.1", port=port, log_level="error", access_log=False,
            timeout_graceful_shutdown=5)
"""


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def _prepare(data: Path, db: str | None, n_clients: int) -> None:
    from hccstrat.service.routers.admin import create_user
    from hccstrat.service.schemas import UserIn
    from hccstrat.service.security import make_hasher
    from hccstrat.storage import default_url, make_engine, make_sessionmaker, migrate
    from hccstrat.storage.models import Centre
    from hccstrat.storage.repositories import Scope

    engine = make_engine(db or default_url(data))
    migrate(engine)
    with make_sessionmaker(engine)() as s:
        s.add(Centre(code="L", name="Load"))
        s.flush()
        hasher = make_hasher()
        for i in range(n_clients):
            create_user(s, hasher, Scope(actor="load"), UserIn(
                username=f"user{i}", password=PW, role="investigator", centre="L"))
        s.commit()
    engine.dispose()


async def _login(c: httpx.AsyncClient, i: int, stats: dict) -> dict[str, str] | None:
    r = await c.post("/api/auth/login", json={"username": f"user{i}", "password": PW})
    if r.status_code != 200:
        stats["errors"].append(f"login {r.status_code}")
        return None
    return {"Authorization": f"Bearer {r.json()['access_token']}"}


async def _client(i: int, c: httpx.AsyncClient, h: dict, deadline: float, stats: dict) -> None:
    n = 0
    while time.monotonic() < deadline:
        pid = f"L{i}-{n}"
        n += 1
        steps = [
            ("POST", "/api/patients", {"patient_id": pid, "centre": "L",
                                       "clinical": {"age": 50 + n % 20,
                                                    "tumour_size_cm": 2 + n % 7}}),
            ("PUT", f"/api/patients/{pid}/clinical", {"clinical": {"age": 51}}),
            ("GET", f"/api/patients/{pid}", None),
            ("GET", "/api/patients?limit=20", None),
            ("POST", f"/api/patients/{pid}/predictions", {"kind": "PRE"}),
        ]
        for method, url, body in steps:
            t0 = time.perf_counter()
            try:
                r = await c.request(method, url, json=body, headers=h)
            except httpx.HTTPError as err:
                stats["errors"].append(f"{method} {type(err).__name__}")
                break
            stats["latency"].append(time.perf_counter() - t0)
            if r.status_code >= 400:
                stats["errors"].append(f"{method} {url.split('/')[2]} {r.status_code}")
                break
            if method != "GET":
                stats["acked"].append((pid, method, url))


def _count_lost(data: Path, db: str | None, acked: list) -> tuple[int, str]:
    from sqlalchemy import func, select

    from hccstrat.storage import default_url, make_engine, make_sessionmaker, verify_chain
    from hccstrat.storage.models import ClinicalRecord, Patient, Prediction

    engine = make_engine(db or default_url(data))
    lost = 0
    with make_sessionmaker(engine)() as s:
        ids = {p.pseudo_id: p.id for p in s.scalars(select(Patient)).all()}
        versions = dict(s.execute(select(ClinicalRecord.patient_id, func.max(
            ClinicalRecord.version)).group_by(ClinicalRecord.patient_id)).all())
        preds = dict(s.execute(select(Prediction.patient_id, func.count()).group_by(
            Prediction.patient_id)).all())
        for pid, method, url in acked:
            if pid not in ids:
                lost += 1
            elif method == "PUT" and versions.get(ids[pid], 0) < 2:
                lost += 1
            elif url.endswith("/predictions") and preds.get(ids[pid], 0) < 1:
                lost += 1
        chain = verify_chain(s).summary()
    engine.dispose()
    return lost, chain


def run(clients: int, duration: float, db: str | None) -> int:
    """Run the load test; returns 0 when there were no errors and no lost writes.

    ``db``: a PostgreSQL server URL (a throw-away database is created on it), or None
    for SQLite in a temporary folder.
    """
    from hccstrat.storage.testing import temporary_database

    with tempfile.TemporaryDirectory() as tmp, temporary_database(
        "postgresql" if db else "sqlite", tmp, admin_url=db
    ) as url:
        data = Path(tmp)
        db = url
        _prepare(data, db, clients)
        port = _free_port()
        env = {**os.environ, "PYTHONUNBUFFERED": "1"}
        proc = subprocess.Popen([sys.executable, "-c", _SERVER, str(data), db or "", str(port)],
                                env=env)
        base = f"http://127.0.0.1:{port}"
        try:
            for _ in range(200):
                try:
                    httpx.get(base + "/login", timeout=1)
                    break
                except httpx.HTTPError:
                    time.sleep(0.1)
            stats: dict = {"errors": [], "latency": [], "acked": []}
            async def main() -> float:
                cs = [httpx.AsyncClient(base_url=base, timeout=60) for _ in range(clients)]
                try:
                    # log everyone in first (Argon2 is slow on purpose), then start the clock
                    heads = await asyncio.gather(*[_login(c, i, stats) for i, c in enumerate(cs)])
                    t_start = time.monotonic()
                    deadline = t_start + duration
                    await asyncio.gather(*[_client(i, c, h, deadline, stats)
                                           for i, (c, h) in enumerate(zip(cs, heads, strict=True))
                                           if h is not None])
                    return time.monotonic() - t_start
                finally:
                    for c in cs:
                        await c.aclose()

            elapsed = asyncio.run(main())
        finally:
            proc.terminate()
            try:
                proc.wait(30)
            except subprocess.TimeoutExpired:
                proc.kill()
                proc.wait(10)
        lost, chain = _count_lost(data, db, stats["acked"])
    lat = sorted(stats["latency"]) or [0.0]
    n_req = len(stats["latency"])
    rows = [
        ("concurrent clients", f"{clients}", "50"),
        ("duration (s)", f"{elapsed:.1f}", "60"),
        ("requests", f"{n_req}", "-"),
        ("throughput (req/s)", f"{n_req / elapsed:.1f}", "-"),
        ("median latency (ms)", f"{1000 * statistics.median(lat):.1f}", "-"),
        ("p95 latency (ms)", f"{1000 * lat[int(0.95 * (len(lat) - 1))]:.1f}", "-"),
        ("acknowledged writes", f"{len(stats['acked'])}", "-"),
        ("errors", f"{len(stats['errors'])}", "0"),
        ("lost writes", f"{lost}", "0"),
    ]
    print(f"{'measure':<24}{'measured':>12}{'target (issue 10)':>20}")
    for name, got, want in rows:
        print(f"{name:<24}{got:>12}{want:>20}")
    print(chain)
    if stats["errors"]:
        print("first errors:", stats["errors"][:5])
    return 0 if not stats["errors"] and lost == 0 and "intact" in chain else 1


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--clients", type=int, default=50)
    ap.add_argument("--duration", type=float, default=60.0, help="seconds (at most 120)")
    ap.add_argument("--db", default=None,
                    help="PostgreSQL server URL; a throw-away database is created on it "
                         "(default: SQLite in a temporary folder)")
    ap.add_argument("--quick", action="store_true", help="8 clients for 5 s")
    a = ap.parse_args(argv)
    clients, duration = (8, 5.0) if a.quick else (a.clients, min(a.duration, 120.0))
    return run(max(1, min(clients, 200)), duration, a.db)


if __name__ == "__main__":
    sys.exit(main())
