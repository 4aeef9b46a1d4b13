"""Patients and their versioned clinical records."""

from __future__ import annotations

from typing import Annotated

from fastapi import APIRouter, Query
from sqlalchemy.orm import Session

from hccstrat.service.clinical import validate_clinical
from hccstrat.service.deps import DB, Allowed
from hccstrat.service.schemas import ClinicalIn, PatientIn
from hccstrat.storage import repositories as repo
from hccstrat.storage.models import Patient

__all__ = ["patient_out", "router"]

router = APIRouter(prefix="/api/patients", tags=["patients"])
_READ = Allowed("patients:read")
_WRITE = Allowed("patients:write")
_404 = {404: {"description": "no such patient in your centre"}}


def patient_out(session: Session, p: Patient, *, full: bool = True) -> dict[str, object]:
    """JSON form of a patient (with the latest clinical record when ``full``)."""
    out: dict[str, object] = {"patient_id": p.pseudo_id, "centre": p.centre.code,
                              "created_at": p.created_at.isoformat()}
    if full:
        rec = repo.latest_clinical(session, p)
        out["clinical_version"] = rec.version if rec else None
        out["clinical"] = rec.data if rec else {}
    return out


@router.get("", summary="List the patients of your centre")
def list_patients(p: _READ, session: DB,
                  limit: Annotated[int, Query(ge=1, le=1000)] = 100,
                  offset: Annotated[int, Query(ge=0)] = 0):
    rows, total = repo.list_patients(session, p.scope, limit=limit, offset=offset)
    return {"total": total, "items": [patient_out(session, r, full=False) for r in rows]}


@router.post("", status_code=201, summary="Create a patient (clinical record validated)",
             responses={409: {"description": "identifier already used"},
                        422: {"description": "clinical record invalid"}})
def create_patient(body: PatientIn, p: _WRITE,
                   session: DB):
    centre = repo.get_centre(session, body.centre)
    pid = body.patient_id or repo.new_pseudo_id()
    clinical = validate_clinical(body.clinical, patient_id=pid, centre=body.centre)
    patient = repo.create_patient(session, p.scope, centre=centre, pseudo_id=pid,
                                  clinical=clinical)
    session.commit()
    return patient_out(session, patient)


@router.get("/{patient_id}", summary="One patient with its latest clinical record",
            responses=_404)
def get_patient(patient_id: str, p: _READ,
                session: DB):
    return patient_out(session, repo.get_patient(session, p.scope, patient_id))


@router.put("/{patient_id}/clinical", summary="Store a new version of the clinical record",
            responses=_404)
def put_clinical(patient_id: str, body: ClinicalIn, p: _WRITE,
                 session: DB):
    patient = repo.get_patient(session, p.scope, patient_id)
    clinical = validate_clinical(body.clinical, patient_id=patient_id,
                                 centre=patient.centre.code)
    rec = repo.add_clinical_version(session, p.scope, patient, clinical)
    session.commit()
    return {"patient_id": patient_id, "version": rec.version, "clinical": rec.data}


@router.get("/{patient_id}/clinical/history", summary="Every version of the clinical record",
            responses=_404)
def clinical_history(patient_id: str, p: _READ,
                     session: DB):
    patient = repo.get_patient(session, p.scope, patient_id)
    return [{"version": r.version, "created_at": r.created_at.isoformat(), "clinical": r.data}
            for r in repo.clinical_history(session, patient)]


@router.delete("/{patient_id}", summary="Withdraw a patient (soft delete, audited)",
               responses=_404)
def delete_patient(patient_id: str, p: _WRITE,
                   session: DB):
    patient = repo.get_patient(session, p.scope, patient_id)
    repo.delete_patient(session, p.scope, patient)
    session.commit()
    return {"patient_id": patient_id, "status": "deleted"}
