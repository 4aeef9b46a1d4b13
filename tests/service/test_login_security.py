"""Login rate limit kept in the database (shared by processes, kept on restart) and CSRF
protection of the HTML forms (double-submit token on the login form)."""

from __future__ import annotations

import re
import time

from fastapi.testclient import TestClient

from hccstrat.service.testing import PASSWORD, login, seed_accounts

WRONG = {"username": "a_monitor", "password": "wrong password!"}
RIGHT = {"username": "a_monitor", "password": PASSWORD}


def test_failed_logins_on_one_instance_block_another_and_survive_restart(sqlite_app):
    first, second = sqlite_app(), sqlite_app(run_worker=False)
    with TestClient(first) as c1:
        seed_accounts(first)
        with TestClient(second) as c2:
            for _ in range(5):
                assert c1.post("/api/auth/login", json=WRONG).status_code == 401
            r = c2.post("/api/auth/login", json=RIGHT)
            assert r.status_code == 429 and 0 < int(r.headers["retry-after"]) <= 301
            assert c2.post("/api/auth/login", json={**RIGHT, "username": "a_admin"}
                           ).status_code == 200  # the limit is per username
    with TestClient(sqlite_app()) as c3:  # a restarted server remembers the failures
        assert c3.post("/api/auth/login", json=RIGHT).status_code == 429
    with first.state.sessionmaker() as s:  # neither name nor address stored in clear
        from hccstrat.storage.models import LoginFailure

        keys = {r.key_sha256 for r in s.query(LoginFailure)}
    assert len(keys) == 1 and all(re.fullmatch("[0-9a-f]{64}", k) for k in keys)


def test_window_expires_and_success_clears_failures(sqlite_app):
    app = sqlite_app(login_max_failures=2, login_window_s=1)
    with TestClient(app) as client:
        seed_accounts(app)
        for _ in range(2):
            assert client.post("/api/auth/login", json=WRONG).status_code == 401
        assert client.post("/api/auth/login", json=RIGHT).status_code == 429
        time.sleep(1.1)
        assert client.post("/api/auth/login", json=RIGHT).status_code == 200
        # the success forgot the failures: one more failure does not lock out
        assert client.post("/api/auth/login", json=WRONG).status_code == 401
        assert client.post("/api/auth/login", json=RIGHT).status_code == 200


def _form_token(client) -> str:
    page = client.get("/login")
    assert page.status_code == 200
    field = re.search(r'name="csrf" value="([^"]+)"', page.text).group(1)
    assert client.cookies.get("hcc_login_csrf") == field
    return field


def test_login_form_needs_the_double_submit_token(sqlite_app):
    app = sqlite_app(run_worker=False)
    with TestClient(app) as client:
        seed_accounts(app)
        token = _form_token(client)
        for data in (RIGHT, {**RIGHT, "csrf": "x" * len(token)}):
            r = client.post("/login", data=data, follow_redirects=False)
            assert r.status_code == 403 and "CSRF" in r.text
            assert "hcc_session" not in r.cookies
        token = _form_token(client)
        client.cookies.delete("hcc_login_csrf")
        r = client.post("/login", data={**RIGHT, "csrf": token}, follow_redirects=False)
        assert r.status_code == 403  # a field without its cookie is refused too
        token = _form_token(client)
        r = client.post("/login", data={**RIGHT, "csrf": token}, follow_redirects=False)
        assert r.status_code == 303 and r.headers["location"] == "/patients"
        assert r.cookies.get("hcc_session")


def test_logged_in_forms_need_the_session_csrf_token(sqlite_app):
    from hccstrat.service.security import csrf_token

    app = sqlite_app(run_worker=False)
    with TestClient(app) as client:
        seed_accounts(app)
        client.post("/api/patients", headers=login(client, "a_investigator"),
                    json={"patient_id": "P-C", "centre": "A", "clinical": {}})
        token = _form_token(client)
        r = client.post("/login", data={"username": "a_investigator", "password": PASSWORD,
                                        "csrf": token}, follow_redirects=False)
        session = r.cookies["hcc_session"]
        client.cookies.set("hcc_session", session)
        url = "/patients/P-C/predict"
        for data in ({"kind": "PRE"}, {"kind": "PRE", "csrf": "0" * 64}):
            r = client.post(url, data=data, follow_redirects=False)
            assert r.status_code == 403 and r.json()["code"] == "HCC-AUTH-403"
        r = client.post(url, data={"kind": "PRE", "csrf": csrf_token(session)},
                        follow_redirects=False)
        assert r.status_code == 303 and r.headers["location"] == "/patients/P-C"


def test_concurrent_attempts_cannot_exceed_the_limit(db_url):
    """Attempts are recorded before they are counted: a burst of simultaneous guesses
    gets no more password checks than the limit allows."""
    import threading

    from hccstrat.service.security import LoginRateLimiter, RateLimitedError
    from hccstrat.storage.engine import make_engine, make_sessionmaker, migrate

    engine = make_engine(db_url)
    migrate(engine)
    limiter = LoginRateLimiter(make_sessionmaker(engine), max_failures=3, window_s=60)
    start, outcomes = threading.Barrier(8), []  # the old check-then-record let all 8 in

    def guess():
        start.wait()
        try:
            limiter.attempt("a_monitor", "10.0.0.1")
            outcomes.append("checked")
        except RateLimitedError as e:
            outcomes.append(e.retry_after)

    threads = [threading.Thread(target=guess) for _ in range(8)]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    # each attempt counts after its own commit, so contention can refuse more, never fewer
    assert outcomes.count("checked") <= 3 and len(outcomes) == 8
    assert all(0 < w <= 61 for w in outcomes if w != "checked")
    limiter.succeeded("a_monitor", "10.0.0.1")  # a success clears the pair
    limiter.attempt("a_monitor", "10.0.0.1")
    engine.dispose()
