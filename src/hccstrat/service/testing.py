"""Helpers for tests and demos of the service: seeded accounts and a toy scorer.

The toy scorer is *not* a clinical model: it is a logistic function of tumour size
and AFP used to exercise the prediction path end to end.
"""

from __future__ import annotations

import math
from typing import Any

from hccstrat.service.scoring import ScoreResult
from hccstrat.storage.models import ROLES

__all__ = ["PASSWORD", "ROLES", "ToyScorer", "login", "seed_accounts", "wait_for_job"]

#: password of the seeded accounts
PASSWORD = "correct horse battery"


class ToyScorer:
    """Logistic score of tumour size and AFP (test stand-in for the PRE model)."""

    name = "toy-pre"
    version = "1.0"
    sha256 = "0" * 64

    def __call__(self, clinical: dict[str, Any], features: dict[str, float]) -> ScoreResult:
        size = float(clinical.get("tumour_size_cm", 3.0))
        afp = float(clinical.get("afp_ng_ml", 10.0))
        terms = {"tumour_size_cm": 0.4 * (size - 5.0),
                 "log10_afp": 0.8 * (math.log10(afp + 1) - 2)}
        lp = sum(terms.values())
        return ScoreResult(1 / (1 + math.exp(-lp)), {"linear_predictor": lp, **terms})


def seed_accounts(app) -> None:
    """Centres A and B; ``a_<role>`` for every role (admin sees all centres) and
    ``b_investigator``, ``b_radiologist``, ``b_admin`` bound to centre B."""
    from hccstrat.service.routers.admin import create_user
    from hccstrat.service.schemas import UserIn
    from hccstrat.storage.models import Centre
    from hccstrat.storage.repositories import Scope

    with app.state.sessionmaker() as s:
        s.add_all([Centre(code="A", name="Centre A"), Centre(code="B", name="Centre B")])
        s.flush()
        scope = Scope(actor="setup")
        for role in ROLES:
            create_user(s, app.state.hasher, scope, UserIn(
                username=f"a_{role}", password=PASSWORD, role=role,
                centre=None if role == "admin" else "A"))
        for role in ("investigator", "radiologist", "admin"):
            create_user(s, app.state.hasher, scope, UserIn(
                username=f"b_{role}", password=PASSWORD, role=role, centre="B"))
        s.commit()


def login(client, username: str, password: str = PASSWORD) -> dict[str, str]:
    """Log in through the API; returns the Authorization header."""
    r = client.post("/api/auth/login", json={"username": username, "password": password})
    if r.status_code != 200:
        raise AssertionError(f"login of {username} failed: {r.status_code} {r.text}")
    return {"Authorization": f"Bearer {r.json()['access_token']}"}


def wait_for_job(client, headers: dict[str, str], job_id: int, timeout: float = 60.0) -> dict:
    """Poll ``/api/jobs/{job_id}`` until the job is done or failed; return its JSON."""
    import time

    t0 = time.monotonic()
    job: dict = {}
    while time.monotonic() - t0 < timeout:
        job = client.get(f"/api/jobs/{job_id}", headers=headers).json()
        if job["status"] in ("done", "failed"):
            return job
        time.sleep(0.05)
    raise AssertionError(f"job {job_id} did not finish within {timeout} s: {job}")
