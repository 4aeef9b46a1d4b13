"""Repositories: the registry's read/write operations, scoped to a centre and audited.

Every function takes a :class:`Scope`: ``centre_id=None`` sees every centre, any
other value sees that centre only. A patient outside the scope is reported as
*not found* (never as *forbidden*), so its existence does not leak. Every write
appends an audit event in the same transaction; callers commit.
"""

from __future__ import annotations

import datetime as dt
import secrets
from dataclasses import dataclass
from typing import Any

from sqlalchemy import func, select
from sqlalchemy.exc import IntegrityError
from sqlalchemy.orm import Session

from hccstrat.exceptions import HccstratError
from hccstrat.storage.audit import append_event, jsonable
from hccstrat.storage.models import Centre, ClinicalRecord, Patient

__all__ = [
    "ConflictError",
    "RecordNotFoundError",
    "Scope",
    "add_clinical_version",
    "audited_add",
    "clinical_history",
    "create_patient",
    "delete_patient",
    "flush_or_conflict",
    "get_centre",
    "get_patient",
    "latest_clinical",
    "latest_clinical_many",
    "list_patients",
    "new_pseudo_id",
    "snapshot",
]


class RecordNotFoundError(HccstratError):
    """The record does not exist, or is outside the caller's centre."""

    code = "HCC-DB-404"
    exit_code = 8


class ConflictError(HccstratError):
    """The write conflicts with existing data (duplicate, wrong state)."""

    code = "HCC-DB-409"
    exit_code = 8


@dataclass(frozen=True)
class Scope:
    """What a caller may see and who it is (for the audit log)."""

    actor: str
    centre_id: int | None = None
    user_id: int | None = None

    def allows(self, centre_id: int | None) -> bool:
        """Whether a record of ``centre_id`` is visible."""
        return self.centre_id is None or self.centre_id == centre_id


def snapshot(obj: Any) -> dict[str, Any]:
    """Column values of an ORM object as a JSON-able dict (for audit before/after)."""
    if obj is None:
        return {}
    cols = obj.__table__.columns.keys()
    return jsonable({c: getattr(obj, c) for c in cols if c != "password_hash"})


def flush_or_conflict(session: Session, what: str) -> None:
    """Flush; a unique-constraint violation (e.g. two concurrent identical requests)
    becomes a :class:`ConflictError` saying ``what`` instead of a database error.

    The session must then be rolled back (the request's session is, when it closes).
    """
    try:
        session.flush()
    except IntegrityError as err:
        raise ConflictError(f"{what}: it conflicts with an existing record",
                            hint="reload to see the stored record; repeat the request only "
                                 "if it is missing") from err


def audited_add(
    session: Session, scope: Scope, obj: Any, *, entity: str, centre_id: int | None
) -> Any:
    """Add ``obj``, flush to get its id, and audit the creation."""
    session.add(obj)
    flush_or_conflict(session, f"the new {entity} was not stored")
    append_event(
        session,
        actor=scope.actor,
        action="create",
        entity=entity,
        entity_id=obj.id,
        centre_id=centre_id,
        after=snapshot(obj),
    )
    return obj


def new_pseudo_id(prefix: str = "P") -> str:
    """Random pseudonymised patient identifier such as ``P-7F3K9Q2M1A``."""
    alphabet = "0123456789ABCDEFGHJKMNPQRSTVWXYZ"  # Crockford base32, no I/L/O/U
    return f"{prefix}-" + "".join(secrets.choice(alphabet) for _ in range(10))


def get_centre(session: Session, code: str) -> Centre:
    """Centre by code."""
    centre = session.scalar(select(Centre).where(Centre.code == code))
    if centre is None:
        raise RecordNotFoundError(
            f"centre {code!r} does not exist", hint="ask an administrator to create it"
        )
    return centre


def get_patient(session: Session, scope: Scope, pseudo_id: str) -> Patient:
    """Patient by pseudonymised id, within the caller's scope."""
    p = session.scalar(
        select(Patient).where(Patient.pseudo_id == pseudo_id, Patient.deleted_at.is_(None))
    )
    if p is None or not scope.allows(p.centre_id):
        raise RecordNotFoundError(
            f"patient {pseudo_id!r} not found", hint="check the identifier and your centre"
        )
    return p


def list_patients(
    session: Session, scope: Scope, *, limit: int = 100, offset: int = 0
) -> tuple[list[Patient], int]:
    """Patients visible to ``scope`` (newest first) and their total count."""
    q = select(Patient).where(Patient.deleted_at.is_(None))
    if scope.centre_id is not None:
        q = q.where(Patient.centre_id == scope.centre_id)
    total = session.scalar(select(func.count()).select_from(q.subquery())) or 0
    rows = session.scalars(q.order_by(Patient.id.desc()).limit(limit).offset(offset)).all()
    return list(rows), int(total)


def latest_clinical(session: Session, patient: Patient) -> ClinicalRecord | None:
    """Newest version of a patient's clinical record."""
    return session.scalar(
        select(ClinicalRecord)
        .where(ClinicalRecord.patient_id == patient.id)
        .order_by(ClinicalRecord.version.desc())
        .limit(1)
    )


def latest_clinical_many(session: Session, patient_ids) -> dict[int, ClinicalRecord]:
    """Newest clinical record of each patient id, in one query per 500 ids."""
    ids = sorted({int(i) for i in patient_ids})
    out: dict[int, ClinicalRecord] = {}
    for start in range(0, len(ids), 500):
        chunk = ids[start : start + 500]
        newest = (
            select(ClinicalRecord.patient_id, func.max(ClinicalRecord.version).label("v"))
            .where(ClinicalRecord.patient_id.in_(chunk))
            .group_by(ClinicalRecord.patient_id)
            .subquery()
        )
        rows = session.scalars(
            select(ClinicalRecord).join(
                newest,
                (ClinicalRecord.patient_id == newest.c.patient_id)
                & (ClinicalRecord.version == newest.c.v),
            )
        )
        out.update({r.patient_id: r for r in rows})
    return out


def clinical_history(session: Session, patient: Patient) -> list[ClinicalRecord]:
    """Every version of a patient's clinical record, oldest first."""
    return list(
        session.scalars(
            select(ClinicalRecord)
            .where(ClinicalRecord.patient_id == patient.id)
            .order_by(ClinicalRecord.version)
        ).all()
    )


def create_patient(
    session: Session,
    scope: Scope,
    *,
    centre: Centre,
    pseudo_id: str | None,
    clinical: dict[str, Any],
) -> Patient:
    """Create a patient and version 1 of its clinical record."""
    if not scope.allows(centre.id):
        raise RecordNotFoundError(
            f"centre {centre.code!r} not found", hint="you can only add patients to your centre"
        )
    pseudo_id = pseudo_id or new_pseudo_id()
    if session.scalar(select(Patient.id).where(Patient.pseudo_id == pseudo_id)) is not None:
        raise ConflictError(
            f"patient {pseudo_id!r} already exists", hint="use another identifier or update it"
        )
    patient = audited_add(
        session, scope, Patient(pseudo_id=pseudo_id, centre_id=centre.id), entity="patient",
        centre_id=centre.id,
    )
    add_clinical_version(session, scope, patient, clinical)
    return patient


def add_clinical_version(
    session: Session, scope: Scope, patient: Patient, clinical: dict[str, Any]
) -> ClinicalRecord:
    """Store a new version of the clinical record; the old one is kept."""
    prev = latest_clinical(session, patient)
    rec = ClinicalRecord(
        patient_id=patient.id,
        version=(prev.version + 1) if prev else 1,
        data=jsonable(clinical),
        created_by=scope.user_id,
    )
    session.add(rec)
    session.flush()
    append_event(
        session,
        actor=scope.actor,
        action="create" if prev is None else "update",
        entity="clinical_record",
        entity_id=f"{patient.pseudo_id}/v{rec.version}",
        centre_id=patient.centre_id,
        before=prev.data if prev else None,
        after=rec.data,
    )
    return rec


def delete_patient(session: Session, scope: Scope, patient: Patient) -> None:
    """Soft-delete a patient (records are kept for the audit trail)."""
    before = snapshot(patient)
    patient.deleted_at = dt.datetime.now(dt.UTC)
    session.flush()
    append_event(
        session,
        actor=scope.actor,
        action="delete",
        entity="patient",
        entity_id=patient.pseudo_id,
        centre_id=patient.centre_id,
        before=before,
        after=snapshot(patient),
    )
