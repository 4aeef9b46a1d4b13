"""TIME panel of a stored slide: queue the job, read the stored panel."""

from __future__ import annotations

from typing import Annotated

from fastapi import APIRouter, Request, Response
from fastapi import Path as PathParam
from sqlalchemy import select
from sqlalchemy.orm import Session

from hccstrat.service.deps import DB, Allowed
from hccstrat.service.routers.jobs import job_out, queue_job
from hccstrat.service.security import Principal
from hccstrat.storage import repositories as repo
from hccstrat.storage.models import Patient, Slide

__all__ = ["patient_slide", "router"]

router = APIRouter(prefix="/api/patients", tags=["pathology"])
_READ = Allowed("patients:read")
_SLIDE = Allowed("slides:write")
_ID = Annotated[int, PathParam(ge=1, le=2**31 - 1)]


def patient_slide(session: Session, p: Principal, patient_id: str,
                  slide_id: int) -> tuple[Patient, Slide]:
    """The patient (in the caller's centre) and one of its slides, else 404."""
    patient = repo.get_patient(session, p.scope, patient_id)
    slide = session.scalar(select(Slide).where(Slide.id == slide_id,
                                               Slide.patient_id == patient.id))
    if slide is None:
        raise repo.RecordNotFoundError(f"slide {slide_id} not found",
                                       hint="list the patient's slides first")
    return patient, slide


@router.post("/{patient_id}/slides/{slide_id}/time", status_code=202,
             summary="Compute the slide's TIME panel (tumour immune microenvironment) in a "
             "background job; the panel is stored as derived features",
             responses={404: {"description": "no such patient or slide"},
                        503: {"description": "no tile classifier configured"}})
def queue_time_panel(patient_id: str, slide_id: _ID, request: Request, session: DB,
                     p: _SLIDE):
    from hccstrat.service.time_panel import check_time_configured

    patient, slide = patient_slide(session, p, patient_id, slide_id)
    check_time_configured(request.app.state.settings)
    job = queue_job(session, p, kind="time_panel", patient=patient,
                    params={"slide_id": slide.id})
    session.commit()
    request.app.state.worker.notify()
    return job_out(job)


@router.get("/{patient_id}/slides/{slide_id}/time",
            summary="The slide's stored TIME panel (newest run): values, units, phenotype",
            responses={404: {"description": "no such patient or slide, or no panel yet"}})
def get_time_panel(patient_id: str, slide_id: _ID, session: DB, p: _READ):
    from hccstrat.service.time_panel import stored_time_panel

    _, slide = patient_slide(session, p, patient_id, slide_id)
    panel = stored_time_panel(session, slide)
    if panel is None:
        raise repo.RecordNotFoundError(
            f"no TIME panel for slide {slide_id} yet",
            hint=f"POST /api/patients/{patient_id}/slides/{slide_id}/time and wait for the job")
    return panel


@router.get("/{patient_id}/slides/{slide_id}/time.geojson",
            summary="The slide's stored TIME tile classes as a QuPath-importable GeoJSON "
            "FeatureCollection (one polygon per non-background tile, level-0 pixels)",
            response_class=Response,
            responses={200: {"content": {"application/geo+json": {}},
                             "description": "GeoJSON FeatureCollection (attachment)"},
                       404: {"description": "no such patient or slide, or no panel yet"}})
def get_time_geojson(patient_id: str, slide_id: _ID, request: Request, session: DB, p: _READ):
    import json

    from hccstrat.service.time_panel import stored_time_panel, time_tiles_geojson

    patient, slide = patient_slide(session, p, patient_id, slide_id)
    if stored_time_panel(session, slide) is None:
        raise repo.RecordNotFoundError(
            f"no TIME panel for slide {slide_id} yet",
            hint=f"POST /api/patients/{patient_id}/slides/{slide_id}/time and wait for the job")
    fc = time_tiles_geojson(request.app.state.settings.data_dir, patient.pseudo_id, slide)
    name = f"{patient.pseudo_id}-slide-{slide.id}-time.geojson"
    return Response(json.dumps(fc, allow_nan=False), media_type="application/geo+json",
                    headers={"Content-Disposition": f'attachment; filename="{name}"'})
