"""Uploads of DICOM studies (zip) and slides, streamed to disk with size limits."""

from __future__ import annotations

import uuid
from pathlib import Path
from typing import Annotated

from fastapi import APIRouter, Request
from fastapi import Path as PathParam
from sqlalchemy import select

from hccstrat.exceptions import HccstratError
from hccstrat.service.deps import DB, Allowed
from hccstrat.service.routers.jobs import job_out, queue_job
from hccstrat.service.schemas import EmbedIn
from hccstrat.service.security import Principal
from hccstrat.storage import repositories as repo
from hccstrat.storage.models import ImagingStudy, Slide

__all__ = ["UploadTooLargeError", "router", "stream_to_disk"]

router = APIRouter(prefix="/api/patients", tags=["uploads"])
_READ = Allowed("patients:read")
_STUDY = Allowed("studies:write")
_SLIDE = Allowed("slides:write")
_CHUNK = 1 << 20


class UploadTooLargeError(HccstratError):
    """The upload is larger than the configured limit (HTTP 413)."""

    code = "HCC-UPLOAD-413"


async def stream_to_disk(request: Request, dest: Path, limit: int) -> int:
    """Write the request body to ``dest`` chunk by chunk; 413 beyond ``limit`` bytes."""
    declared = request.headers.get("content-length")
    if declared is not None and declared.isdigit() and int(declared) > limit:
        raise UploadTooLargeError(f"upload of {declared} bytes exceeds the limit of {limit}",
                                  hint="split the upload or ask for a larger limit")
    dest.parent.mkdir(parents=True, exist_ok=True)
    size = 0
    try:
        with open(dest, "wb") as fh:
            async for chunk in request.stream():
                size += len(chunk)
                if size > limit:
                    raise UploadTooLargeError(f"upload exceeds the limit of {limit} bytes",
                                              hint="split the upload or ask for a larger limit")
                fh.write(chunk)
    except BaseException:
        dest.unlink(missing_ok=True)
        raise
    if size == 0:
        dest.unlink(missing_ok=True)
        raise HccstratError("empty upload", hint="send the file as the request body")
    return size


def _body_doc(media: str) -> dict:
    return {"requestBody": {"required": True, "content": {
        media: {"schema": {"type": "string", "format": "binary"}}}}}


async def _upload(request: Request, session, p: Principal, patient_id: str, kind: str,
                  limit: int, suffix: str):
    patient = repo.get_patient(session, p.scope, patient_id)
    session.rollback()  # release the read snapshot while the body streams
    settings = request.app.state.settings
    dest = settings.data_dir / "quarantine" / f"{uuid.uuid4().hex}{suffix}"
    size = await stream_to_disk(request, dest, limit)
    job = queue_job(session, p, kind=kind, patient=patient,
                    params={"path": str(dest), "bytes": size})
    session.commit()
    request.app.state.worker.notify()
    return job_out(job)


@router.post("/{patient_id}/studies", status_code=202, openapi_extra=_body_doc("application/zip"),
             summary="Upload a zip of DICOM files (de-identified by a background job)",
             responses={413: {"description": "too large"}, 404: {"description": "no patient"}})
async def upload_study(patient_id: str, request: Request, session: DB, p: _STUDY):
    settings = request.app.state.settings
    return await _upload(request, session, p, patient_id, "ingest_dicom",
                         settings.max_study_bytes, ".zip")


@router.post("/{patient_id}/slides", status_code=202,
             openapi_extra=_body_doc("application/octet-stream"),
             summary="Upload a whole-slide image (label/macro removed by a background job)",
             responses={413: {"description": "too large"}, 404: {"description": "no patient"}})
async def upload_slide(patient_id: str, request: Request, session: DB, p: _SLIDE):
    settings = request.app.state.settings
    return await _upload(request, session, p, patient_id, "ingest_wsi",
                         settings.max_slide_bytes, ".tiff")


@router.get("/{patient_id}/studies", summary="De-identified imaging studies of a patient")
def list_studies(patient_id: str, session: DB, p: _READ):
    patient = repo.get_patient(session, p.scope, patient_id)
    rows = session.query(ImagingStudy).filter(ImagingStudy.patient_id == patient.id).all()
    return [{"id": r.id, "modality": r.modality, "study_uid": r.study_uid, "n_files": r.n_files,
             "sha256": r.sha256, "burned_in_flag": r.burned_in_flag,
             "series": r.info.get("series", {}),
             "preprocessed": bool(r.info.get("preprocessed"))} for r in rows]


@router.post("/{patient_id}/studies/{study_id}/preprocess", status_code=202,
             summary="Preprocess a 4-phase study (registration, normalisation, tumour ROI) "
             "in a background job; the patient page then shows the phase viewer",
             responses={404: {"description": "no such patient or study"}})
def preprocess_study(patient_id: str, study_id: Annotated[int, PathParam(ge=1, le=2**31 - 1)],
                     request: Request, session: DB, p: _STUDY):
    patient = repo.get_patient(session, p.scope, patient_id)
    study = session.scalar(select(ImagingStudy).where(ImagingStudy.id == study_id,
                                                      ImagingStudy.patient_id == patient.id))
    if study is None:
        raise repo.RecordNotFoundError(f"study {study_id} not found",
                                       hint="list the patient's studies first")
    job = queue_job(session, p, kind="preprocess_mri", patient=patient,
                    params={"study_id": study.id})
    session.commit()
    request.app.state.worker.notify()
    return job_out(job)


@router.post("/{patient_id}/slides/{slide_id}/embed", status_code=202,
             summary="Tile, QC and embed a slide into the feature store in a background job "
             "with the built-in encoder or a configured one (body {\"encoder\": NAME})",
             responses={404: {"description": "no such patient or slide"},
                        422: {"description": "unknown encoder name (the answer lists the "
                              "configured names)"}})
def embed_slide(patient_id: str, slide_id: Annotated[int, PathParam(ge=1, le=2**31 - 1)],
                request: Request, session: DB, p: _SLIDE, body: EmbedIn | None = None):
    from hccstrat.service.encoders import resolve_encoder

    patient = repo.get_patient(session, p.scope, patient_id)
    slide = session.scalar(select(Slide).where(Slide.id == slide_id,
                                               Slide.patient_id == patient.id))
    if slide is None:
        raise repo.RecordNotFoundError(f"slide {slide_id} not found",
                                       hint="list the patient's slides first")
    name, _ = resolve_encoder(request.app.state.settings, body.encoder if body else None)
    job = queue_job(session, p, kind="embed_wsi", patient=patient,
                    params={"slide_id": slide.id, "encoder": name})
    session.commit()
    request.app.state.worker.notify()
    return job_out(job)


@router.get("/{patient_id}/slides", summary="Scrubbed slides of a patient")
def list_slides(patient_id: str, session: DB, p: _READ):
    patient = repo.get_patient(session, p.scope, patient_id)
    rows = session.query(Slide).filter(Slide.patient_id == patient.id).all()
    return [{"id": r.id, "sha256": r.sha256, "mpp": r.mpp, "removed": r.info.get("removed", []),
             "embedding": r.info.get("embedding"),
             "embeddings": r.info.get("embeddings") or {}} for r in rows]
