"""SQLAlchemy 2 ORM models of the registry.

Every table that holds patient data carries (directly or through its patient) the
``centre_id`` used for per-centre isolation. Patients are known only by a
pseudonymised identifier (``pseudo_id``); the table linking pseudonyms to hospital
identifiers lives in a separate store (:class:`hccstrat.interop.deid.PseudonymTable`)
and never in this database.

Clinical records are versioned: an update inserts a new :class:`ClinicalRecord` with
``version + 1``; nothing is overwritten. Audit events are append-only and
hash-chained (see :mod:`hccstrat.storage.audit`).
"""

from __future__ import annotations

import datetime as dt
from typing import Any

from sqlalchemy import (
    JSON,
    Boolean,
    DateTime,
    Float,
    ForeignKey,
    Integer,
    MetaData,
    String,
    Text,
    UniqueConstraint,
)
from sqlalchemy.orm import DeclarativeBase, Mapped, mapped_column, relationship

__all__ = [
    "ROLES",
    "AdverseEvent",
    "Allocation",
    "ApiToken",
    "AuditEvent",
    "AuditHead",
    "Base",
    "Centre",
    "ClinicalRecord",
    "DerivedFeature",
    "Enrolment",
    "ImagingStudy",
    "Job",
    "LoginFailure",
    "ModelVersion",
    "Patient",
    "Prediction",
    "Slide",
    "User",
    "Visit",
    "utcnow",
]

#: Roles an account can have.
ROLES: tuple[str, ...] = (
    "admin",
    "investigator",
    "radiologist",
    "pathologist",
    "data_manager",
    "statistician",
    "monitor",
)

_NAMING = {
    "ix": "ix_%(column_0_label)s",
    "uq": "uq_%(table_name)s_%(column_0_name)s",
    "ck": "ck_%(table_name)s_%(constraint_name)s",
    "fk": "fk_%(table_name)s_%(column_0_name)s_%(referred_table_name)s",
    "pk": "pk_%(table_name)s",
}


def utcnow() -> dt.datetime:
    """Current time, timezone-aware UTC."""
    return dt.datetime.now(dt.UTC)


class Base(DeclarativeBase):
    """Declarative base with a stable constraint naming convention (for migrations)."""

    metadata = MetaData(naming_convention=_NAMING)


def _ts() -> Mapped[dt.datetime]:
    return mapped_column(DateTime(timezone=True), default=utcnow, nullable=False)


class Centre(Base):
    """A participating hospital."""

    __tablename__ = "centres"
    id: Mapped[int] = mapped_column(primary_key=True)
    code: Mapped[str] = mapped_column(String(32), unique=True)
    name: Mapped[str] = mapped_column(String(200))
    created_at: Mapped[dt.datetime] = _ts()


class User(Base):
    """An account. ``centre_id`` NULL means the account sees every centre."""

    __tablename__ = "users"
    id: Mapped[int] = mapped_column(primary_key=True)
    username: Mapped[str] = mapped_column(String(64), unique=True)
    password_hash: Mapped[str] = mapped_column(String(255))
    role: Mapped[str] = mapped_column(String(32))
    centre_id: Mapped[int | None] = mapped_column(ForeignKey("centres.id"), nullable=True)
    active: Mapped[bool] = mapped_column(Boolean, default=True)
    created_at: Mapped[dt.datetime] = _ts()
    centre: Mapped[Centre | None] = relationship()


class ApiToken(Base):
    """A bearer token; only its SHA-256 is stored."""

    __tablename__ = "api_tokens"
    id: Mapped[int] = mapped_column(primary_key=True)
    token_sha256: Mapped[str] = mapped_column(String(64), unique=True)
    user_id: Mapped[int] = mapped_column(ForeignKey("users.id"), index=True)
    created_at: Mapped[dt.datetime] = _ts()
    expires_at: Mapped[dt.datetime] = mapped_column(DateTime(timezone=True))
    revoked_at: Mapped[dt.datetime | None] = mapped_column(DateTime(timezone=True), nullable=True)
    user: Mapped[User] = relationship()


class Patient(Base):
    """A patient, known only by a pseudonymised identifier."""

    __tablename__ = "patients"
    id: Mapped[int] = mapped_column(primary_key=True)
    pseudo_id: Mapped[str] = mapped_column(String(64), unique=True)
    centre_id: Mapped[int] = mapped_column(ForeignKey("centres.id"), index=True)
    created_at: Mapped[dt.datetime] = _ts()
    deleted_at: Mapped[dt.datetime | None] = mapped_column(DateTime(timezone=True), nullable=True)
    centre: Mapped[Centre] = relationship()


class ClinicalRecord(Base):
    """One version of a patient's clinical record (canonical columns as JSON)."""

    __tablename__ = "clinical_records"
    __table_args__ = (UniqueConstraint("patient_id", "version"),)
    id: Mapped[int] = mapped_column(primary_key=True)
    patient_id: Mapped[int] = mapped_column(ForeignKey("patients.id"), index=True)
    version: Mapped[int] = mapped_column(Integer)
    data: Mapped[dict[str, Any]] = mapped_column(JSON)
    created_by: Mapped[int | None] = mapped_column(ForeignKey("users.id"), nullable=True)
    created_at: Mapped[dt.datetime] = _ts()


class ImagingStudy(Base):
    """A de-identified MRI study stored on disk."""

    __tablename__ = "imaging_studies"
    id: Mapped[int] = mapped_column(primary_key=True)
    patient_id: Mapped[int] = mapped_column(ForeignKey("patients.id"), index=True)
    modality: Mapped[str] = mapped_column(String(16), default="MR")
    study_uid: Mapped[str] = mapped_column(String(128))
    path: Mapped[str] = mapped_column(Text)
    sha256: Mapped[str] = mapped_column(String(64))
    n_files: Mapped[int] = mapped_column(Integer, default=0)
    burned_in_flag: Mapped[bool] = mapped_column(Boolean, default=False)
    info: Mapped[dict[str, Any]] = mapped_column(JSON, default=dict)
    created_at: Mapped[dt.datetime] = _ts()


class Slide(Base):
    """A scrubbed whole-slide image stored on disk."""

    __tablename__ = "slides"
    id: Mapped[int] = mapped_column(primary_key=True)
    patient_id: Mapped[int] = mapped_column(ForeignKey("patients.id"), index=True)
    path: Mapped[str] = mapped_column(Text)
    sha256: Mapped[str] = mapped_column(String(64))
    mpp: Mapped[float | None] = mapped_column(Float, nullable=True)
    info: Mapped[dict[str, Any]] = mapped_column(JSON, default=dict)
    created_at: Mapped[dt.datetime] = _ts()


class DerivedFeature(Base):
    """A feature derived from an image or a record (radiomics, TIME panel...)."""

    __tablename__ = "derived_features"
    id: Mapped[int] = mapped_column(primary_key=True)
    patient_id: Mapped[int] = mapped_column(ForeignKey("patients.id"), index=True)
    source: Mapped[str] = mapped_column(String(32))  # "study:<id>", "slide:<id>", "clinical"
    name: Mapped[str] = mapped_column(String(128))
    value: Mapped[float | None] = mapped_column(Float, nullable=True)
    extractor: Mapped[str] = mapped_column(String(128), default="")
    created_at: Mapped[dt.datetime] = _ts()


class ModelVersion(Base):
    """A model (or score) that produced predictions."""

    __tablename__ = "model_versions"
    __table_args__ = (UniqueConstraint("name", "version"),)
    id: Mapped[int] = mapped_column(primary_key=True)
    name: Mapped[str] = mapped_column(String(128))
    version: Mapped[str] = mapped_column(String(64))
    kind: Mapped[str] = mapped_column(String(16), default="PRE")
    sha256: Mapped[str] = mapped_column(String(64), default="")
    info: Mapped[dict[str, Any]] = mapped_column(JSON, default=dict)
    created_at: Mapped[dt.datetime] = _ts()


class Prediction(Base):
    """A stored score with the model version and the hash of its inputs."""

    __tablename__ = "predictions"
    id: Mapped[int] = mapped_column(primary_key=True)
    patient_id: Mapped[int] = mapped_column(ForeignKey("patients.id"), index=True)
    model_version_id: Mapped[int] = mapped_column(ForeignKey("model_versions.id"))
    kind: Mapped[str] = mapped_column(String(16))  # PRE or POST
    score: Mapped[float] = mapped_column(Float)
    input_sha256: Mapped[str] = mapped_column(String(64))
    explanation: Mapped[dict[str, Any]] = mapped_column(JSON, default=dict)
    inputs: Mapped[dict[str, Any] | None] = mapped_column(JSON, nullable=True)
    created_by: Mapped[int | None] = mapped_column(ForeignKey("users.id"), nullable=True)
    created_at: Mapped[dt.datetime] = _ts()
    model_version: Mapped[ModelVersion] = relationship()


class Job(Base):
    """A background job; its state survives a restart (running jobs are re-queued)."""

    __tablename__ = "jobs"
    id: Mapped[int] = mapped_column(primary_key=True)
    kind: Mapped[str] = mapped_column(String(32))
    status: Mapped[str] = mapped_column(String(16), default="queued", index=True)
    progress: Mapped[float] = mapped_column(Float, default=0.0)
    message: Mapped[str] = mapped_column(Text, default="")
    params: Mapped[dict[str, Any]] = mapped_column(JSON, default=dict)
    result: Mapped[dict[str, Any]] = mapped_column(JSON, default=dict)
    error_code: Mapped[str | None] = mapped_column(String(32), nullable=True)
    attempts: Mapped[int] = mapped_column(Integer, default=0)
    patient_id: Mapped[int | None] = mapped_column(ForeignKey("patients.id"), nullable=True)
    centre_id: Mapped[int | None] = mapped_column(ForeignKey("centres.id"), nullable=True)
    created_by: Mapped[int | None] = mapped_column(ForeignKey("users.id"), nullable=True)
    created_at: Mapped[dt.datetime] = _ts()
    started_at: Mapped[dt.datetime | None] = mapped_column(DateTime(timezone=True), nullable=True)
    finished_at: Mapped[dt.datetime | None] = mapped_column(DateTime(timezone=True), nullable=True)


class LoginFailure(Base):
    """One failed login, for the login rate limit shared by every worker process.

    ``key_sha256`` is the SHA-256 of the lower-cased username and the client address
    (neither is stored in clear); rows older than the window are deleted.
    """

    __tablename__ = "login_failures"
    id: Mapped[int] = mapped_column(primary_key=True)
    key_sha256: Mapped[str] = mapped_column(String(64), index=True)
    at: Mapped[dt.datetime] = mapped_column(DateTime(timezone=True), default=utcnow, index=True)


class Enrolment(Base):
    """Screening and enrolment of a patient in a trial."""

    __tablename__ = "enrolments"
    __table_args__ = (UniqueConstraint("patient_id", "trial"),)
    id: Mapped[int] = mapped_column(primary_key=True)
    patient_id: Mapped[int] = mapped_column(ForeignKey("patients.id"), index=True)
    trial: Mapped[str] = mapped_column(String(32))
    status: Mapped[str] = mapped_column(String(16), default="screened")
    eligible: Mapped[bool | None] = mapped_column(Boolean, nullable=True)
    reasons: Mapped[list[Any]] = mapped_column(JSON, default=list)
    consent: Mapped[bool] = mapped_column(Boolean, default=False)
    screened_at: Mapped[dt.datetime] = _ts()
    enrolled_at: Mapped[dt.datetime | None] = mapped_column(DateTime(timezone=True), nullable=True)
    patient: Mapped[Patient] = relationship()


class Allocation(Base):
    """The arm a trial participant was assigned to."""

    __tablename__ = "allocations"
    id: Mapped[int] = mapped_column(primary_key=True)
    enrolment_id: Mapped[int] = mapped_column(ForeignKey("enrolments.id"), unique=True)
    arm: Mapped[str] = mapped_column(String(64))
    method: Mapped[str] = mapped_column(String(32))  # pre_rule | permuted_blocks
    score: Mapped[float | None] = mapped_column(Float, nullable=True)
    sequence_number: Mapped[int | None] = mapped_column(Integer, nullable=True)
    stratum: Mapped[str | None] = mapped_column(String(128), nullable=True)
    model_version: Mapped[str | None] = mapped_column(String(128), nullable=True)
    log_path: Mapped[str | None] = mapped_column(Text, nullable=True)
    log_hash: Mapped[str | None] = mapped_column(String(64), nullable=True)
    allocated_by: Mapped[int | None] = mapped_column(ForeignKey("users.id"), nullable=True)
    allocated_at: Mapped[dt.datetime] = _ts()


class Visit(Base):
    """A scheduled or completed follow-up visit."""

    __tablename__ = "visits"
    id: Mapped[int] = mapped_column(primary_key=True)
    enrolment_id: Mapped[int] = mapped_column(ForeignKey("enrolments.id"), index=True)
    name: Mapped[str] = mapped_column(String(64))
    due_date: Mapped[dt.date | None] = mapped_column(nullable=True)
    done_date: Mapped[dt.date | None] = mapped_column(nullable=True)
    status: Mapped[str] = mapped_column(String(16), default="planned")
    created_at: Mapped[dt.datetime] = _ts()


class AdverseEvent(Base):
    """An adverse event (CTCAE v5 term and grade 1-5)."""

    __tablename__ = "adverse_events"
    id: Mapped[int] = mapped_column(primary_key=True)
    enrolment_id: Mapped[int] = mapped_column(ForeignKey("enrolments.id"), index=True)
    term: Mapped[str] = mapped_column(String(128))
    grade: Mapped[int] = mapped_column(Integer)
    serious: Mapped[bool] = mapped_column(Boolean, default=False)
    onset_date: Mapped[dt.date | None] = mapped_column(nullable=True)
    resolved_date: Mapped[dt.date | None] = mapped_column(nullable=True)
    related: Mapped[str] = mapped_column(String(32), default="unknown")
    created_at: Mapped[dt.datetime] = _ts()


class AuditEvent(Base):
    """One append-only, hash-chained audit record of a write."""

    __tablename__ = "audit_events"
    seq: Mapped[int] = mapped_column(Integer, primary_key=True, autoincrement=False)
    ts: Mapped[str] = mapped_column(String(40))  # ISO 8601 UTC, part of the hash
    actor: Mapped[str] = mapped_column(String(64))
    action: Mapped[str] = mapped_column(String(64))
    entity: Mapped[str] = mapped_column(String(64))
    entity_id: Mapped[str] = mapped_column(String(64))
    centre_id: Mapped[int | None] = mapped_column(Integer, nullable=True)
    before: Mapped[dict[str, Any] | None] = mapped_column(JSON, nullable=True)
    after: Mapped[dict[str, Any] | None] = mapped_column(JSON, nullable=True)
    prev_hash: Mapped[str] = mapped_column(String(64))
    hash: Mapped[str] = mapped_column(String(64))


class AuditHead(Base):
    """Single row holding the chain head; updating it serialises appenders."""

    __tablename__ = "audit_head"
    id: Mapped[int] = mapped_column(Integer, primary_key=True)
    seq: Mapped[int] = mapped_column(Integer, default=0)
    hash: Mapped[str] = mapped_column(String(64))
