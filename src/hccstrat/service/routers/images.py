"""Figures of the patient page: MRI phase viewer and slide thumbnail (PNG, per centre)."""

from __future__ import annotations

from pathlib import Path
from typing import Annotated

from fastapi import APIRouter, Request
from fastapi import Path as PathParam
from fastapi.responses import FileResponse
from sqlalchemy import select

from hccstrat.service.deps import DB, Allowed
from hccstrat.storage import repositories as repo
from hccstrat.storage.models import ImagingStudy, Slide

__all__ = ["router"]

router = APIRouter(include_in_schema=False)
_READ = Allowed("patients:read")
_ID = Annotated[int, PathParam(ge=1, le=2**31 - 1)]


def _missing(what: str) -> repo.RecordNotFoundError:
    return repo.RecordNotFoundError(f"{what} not found", hint="check the identifiers")


@router.get("/patients/{patient_id}/studies/{study_id}/phases.png")
def phases(patient_id: str, study_id: _ID, session: DB, p: _READ):
    from hccstrat.service.figures import phases_png

    patient = repo.get_patient(session, p.scope, patient_id)
    study = session.scalar(select(ImagingStudy).where(ImagingStudy.id == study_id,
                                                      ImagingStudy.patient_id == patient.id))
    folder = (study.info or {}).get("preprocessed") if study is not None else None
    if not folder or not (Path(folder) / "preprocess.json").is_file():
        raise _missing(f"preprocessed study {study_id}")
    png = phases_png(folder)
    return FileResponse(png, media_type="image/png")


@router.get("/patients/{patient_id}/slides/{slide_id}/thumbnail.png")
def thumbnail(patient_id: str, slide_id: _ID, request: Request, session: DB, p: _READ):
    from hccstrat.service.figures import derived_dir, slide_png

    patient = repo.get_patient(session, p.scope, patient_id)
    slide = session.scalar(select(Slide).where(Slide.id == slide_id,
                                               Slide.patient_id == patient.id))
    if slide is None or not Path(slide.path).is_file():
        raise _missing(f"slide {slide_id}")
    out = derived_dir(request.app.state.settings.data_dir, patient.pseudo_id, f"slide-{slide.id}")
    png = slide_png(slide.path, out, info=dict(slide.info or {}))
    return FileResponse(png, media_type="image/png")
