"""DICOM SR and SEG downloads of an MRI study's results (from the preprocessed study)."""

from __future__ import annotations

from typing import Annotated

from fastapi import APIRouter, Request, Response
from fastapi import Path as PathParam
from sqlalchemy import select
from sqlalchemy.orm import Session

from hccstrat.service.deps import DB, Allowed
from hccstrat.service.security import Principal
from hccstrat.storage import repositories as repo
from hccstrat.storage.models import ImagingStudy, Patient

__all__ = ["MEDIA_TYPE", "router"]

router = APIRouter(prefix="/api/patients", tags=["reports"])
_READ = Allowed("reports:read")
_ID = Annotated[int, PathParam(ge=1, le=2**31 - 1)]
#: media type of the downloads (RFC 3240)
MEDIA_TYPE = "application/dicom"
_DOC = {200: {"content": {MEDIA_TYPE: {}}, "description": "DICOM Part 10 file"},
        404: {"description": "no such patient or study"},
        409: {"description": "the study has no results to export (not preprocessed, no mask)"}}


def _export(request: Request, session: Session, p: Principal, patient_id: str, study_id: int):
    from hccstrat.service.dicom_export import reference_series
    from hccstrat.service.figures import derived_dir

    patient: Patient = repo.get_patient(session, p.scope, patient_id)
    study = session.scalar(select(ImagingStudy).where(ImagingStudy.id == study_id,
                                                      ImagingStudy.patient_id == patient.id))
    if study is None:
        raise repo.RecordNotFoundError(f"study {study_id} not found",
                                       hint="list the patient's studies first")
    out = derived_dir(request.app.state.settings.data_dir, patient.pseudo_id,
                      f"study-{study.id}") / "dicom"
    return patient, study, reference_series(study, out)


def _file(data: bytes, name: str) -> Response:
    return Response(data, media_type=MEDIA_TYPE,
                    headers={"Content-Disposition": f'attachment; filename="{name}"'})


@router.get("/{patient_id}/studies/{study_id}/sr.dcm", response_class=Response, responses=_DOC,
            summary="DICOM Comprehensive 3D SR (TID 1500) of the study: tumour volume and the "
            "newest PRE score, referencing the tumour SEG")
def study_sr_download(patient_id: str, study_id: _ID, request: Request, session: DB, p: _READ):
    from hccstrat.service.dicom_export import study_sr

    patient, study, exp = _export(request, session, p, patient_id, study_id)
    path = study_sr(session, patient, study, exp)
    return _file(path.read_bytes(), f"{patient.pseudo_id}_study{study.id}_sr.dcm")


@router.get("/{patient_id}/studies/{study_id}/seg.dcm", response_class=Response, responses=_DOC,
            summary="DICOM SEG of the study's tumour mask on the reference-phase series")
def study_seg_download(patient_id: str, study_id: _ID, request: Request, session: DB,
                       p: _READ):
    from hccstrat.service.dicom_export import study_seg

    patient, study, exp = _export(request, session, p, patient_id, study_id)
    return _file(study_seg(exp).read_bytes(), f"{patient.pseudo_id}_study{study.id}_seg.dcm")
