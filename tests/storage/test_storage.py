"""Storage: migrations, WAL, versioned records, centre scope, audit chain and tampering."""

from __future__ import annotations

import pytest
from sqlalchemy import inspect, select, text
from sqlalchemy.exc import DatabaseError

from hccstrat.exceptions import ConfigError
from hccstrat.storage import make_engine, make_sessionmaker, migrate, verify_chain
from hccstrat.storage import repositories as repo
from hccstrat.storage.models import AuditEvent, Centre, ClinicalRecord

EXPECTED_TABLES = {
    "centres",
    "users",
    "api_tokens",
    "patients",
    "clinical_records",
    "imaging_studies",
    "slides",
    "derived_features",
    "model_versions",
    "predictions",
    "jobs",
    "enrolments",
    "allocations",
    "visits",
    "adverse_events",
    "audit_events",
    "audit_head",
    "login_failures",
    "alembic_version",
}


@pytest.fixture
def session_factory(db_url):
    engine = make_engine(db_url)
    migrate(engine)
    yield make_sessionmaker(engine)
    engine.dispose()


def _centres(Session):
    with Session() as s:
        a, b = Centre(code="A", name="Centre A"), Centre(code="B", name="Centre B")
        s.add_all([a, b])
        s.commit()
        return a, b


def test_migration_creates_every_table_and_is_idempotent(db_url):
    engine = make_engine(db_url)
    migrate(engine)
    migrate(engine)  # second run is a no-op
    assert EXPECTED_TABLES <= set(inspect(engine).get_table_names())
    with engine.connect() as conn:
        assert conn.execute(text("SELECT version_num FROM alembic_version")).scalar() == "0003"
        if engine.dialect.name == "sqlite":
            assert conn.execute(text("PRAGMA journal_mode")).scalar() == "wal"
            assert conn.execute(text("PRAGMA foreign_keys")).scalar() == 1
    cols = {c["name"] for c in inspect(engine).get_columns("allocations")}
    assert {"stratum", "model_version", "log_path", "log_hash"} <= cols
    assert "inputs" in {c["name"] for c in inspect(engine).get_columns("predictions")}
    engine.dispose()


def test_versioned_records_scope_and_audit(session_factory):
    a, b = _centres(session_factory)
    admin = repo.Scope(actor="alice")
    with session_factory() as s:
        p = repo.create_patient(s, admin, centre=a, pseudo_id="P-1", clinical={"age": 60})
        repo.add_clinical_version(s, admin, p, {"age": 61})
        s.commit()
    with session_factory() as s:
        p = repo.get_patient(s, repo.Scope(actor="x", centre_id=a.id), "P-1")
        versions = [r.data["age"] for r in repo.clinical_history(s, p)]
        assert versions == [60, 61]
        newest = repo.latest_clinical_many(s, [p.id, p.id, 10**6])  # unknown id: absent
        assert list(newest) == [p.id] and newest[p.id].data == {"age": 61}
        assert newest[p.id].id == repo.latest_clinical(s, p).id
        with pytest.raises(repo.RecordNotFoundError):
            repo.get_patient(s, repo.Scope(actor="y", centre_id=b.id), "P-1")
        assert repo.list_patients(s, repo.Scope(actor="y", centre_id=b.id)) == ([], 0)
        with pytest.raises(repo.ConflictError):
            repo.create_patient(s, admin, centre=a, pseudo_id="P-1", clinical={})
        s.rollback()
        res = verify_chain(s)
        assert res.ok, res.problems
        assert res.n_events == 3  # patient, record v1, record v2
        events = s.scalars(select(AuditEvent).order_by(AuditEvent.seq)).all()
        assert [e.action for e in events] == ["create", "create", "update"]
        assert events[2].before == {"age": 60} and events[2].after == {"age": 61}
        assert events[1].prev_hash == events[0].hash


def test_audit_log_is_append_only_and_tampering_is_detected(session_factory):
    a, _ = _centres(session_factory)
    with session_factory() as s:
        for i in range(4):
            repo.create_patient(
                s, repo.Scope(actor="bob"), centre=a, pseudo_id=f"P-{i}", clinical={}
            )
        s.commit()
    engine = session_factory.kw["bind"]
    # the database itself refuses UPDATE and DELETE
    for stmt in (
        "UPDATE audit_events SET actor = 'eve' WHERE seq = 3",
        "DELETE FROM audit_events WHERE seq = 3",
    ):
        with pytest.raises(DatabaseError), engine.begin() as conn:
            conn.execute(text(stmt))
    # an attacker with database-owner rights drops the guard and edits history
    sqlite = engine.dialect.name == "sqlite"
    with engine.begin() as conn:
        if sqlite:
            conn.execute(text("DROP TRIGGER audit_events_no_update"))
        else:
            conn.execute(text("DROP TRIGGER audit_events_append_only ON audit_events"))
        conn.execute(text("UPDATE audit_events SET actor = 'eve' WHERE seq = 3"))
    with session_factory() as s:
        res = verify_chain(s)
    assert not res.ok and res.first_bad_seq == 3
    assert "content does not match" in res.summary()


def test_audit_detects_deleted_event(session_factory):
    a, _ = _centres(session_factory)
    with session_factory() as s:
        for i in range(3):
            repo.create_patient(
                s, repo.Scope(actor="bob"), centre=a, pseudo_id=f"Q-{i}", clinical={}
            )
        s.commit()
    engine = session_factory.kw["bind"]
    with engine.begin() as conn:
        if engine.dialect.name == "sqlite":
            conn.execute(text("DROP TRIGGER audit_events_no_delete"))
        else:
            conn.execute(text("DROP TRIGGER audit_events_append_only ON audit_events"))
        conn.execute(text("DELETE FROM audit_events WHERE seq = 2"))
    with session_factory() as s:
        res = verify_chain(s)
    assert not res.ok and res.first_bad_seq == 3


def test_clinical_version_unique(session_factory):
    a, _ = _centres(session_factory)
    with session_factory() as s:
        p = repo.create_patient(s, repo.Scope(actor="u"), centre=a, pseudo_id="P-9", clinical={})
        s.commit()
        s.add(ClinicalRecord(patient_id=p.id, version=1, data={}))
        with pytest.raises(DatabaseError):
            s.commit()


def test_duplicate_from_a_concurrent_request_is_a_conflict(session_factory):
    """Two requests creating the same patient at once: the loser gets a 409-style
    ConflictError naming the record, not a raw IntegrityError (HTTP 500)."""
    from hccstrat.storage.models import Patient

    a, _ = _centres(session_factory)
    with session_factory() as s:
        repo.create_patient(s, repo.Scope(actor="u"), centre=a, pseudo_id="P-7", clinical={})
        s.commit()
        # the other request passed its existence check before this one committed
        with pytest.raises(repo.ConflictError, match=r"new patient was not stored.*existing"):
            repo.audited_add(s, repo.Scope(actor="u"), Patient(pseudo_id="P-7", centre_id=a.id),
                             entity="patient", centre_id=a.id)


def test_bad_url_is_a_config_error():
    with pytest.raises(ConfigError, match="not supported"):
        make_engine("mysql://u@h/db")
    from hccstrat.storage.engine import normalise_url

    assert normalise_url("postgresql://u:p@127.0.0.1/x").startswith("postgresql+psycopg://u:p@")
