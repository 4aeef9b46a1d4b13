"""Background jobs: status and progress."""

from __future__ import annotations

from typing import Annotated, Any

from fastapi import APIRouter, Path, Query
from sqlalchemy import select
from sqlalchemy.orm import Session

from hccstrat.service.deps import DB, Allowed
from hccstrat.service.security import Principal
from hccstrat.storage import repositories as repo
from hccstrat.storage.models import Job, Patient

__all__ = ["job_out", "queue_job", "router"]

router = APIRouter(prefix="/api/jobs", tags=["jobs"])
_READ = Allowed("jobs:read")


def queue_job(session: Session, p: Principal, *, kind: str, patient: Patient | None,
              params: dict[str, Any]) -> Job:
    """Insert a queued job (audited); the caller commits and wakes the worker."""
    job = Job(kind=kind, params={**params, "actor": p.username},
              patient_id=patient.id if patient else None,
              centre_id=patient.centre_id if patient else p.centre_id, created_by=p.user_id)
    return repo.audited_add(session, p.scope, job, entity="job", centre_id=job.centre_id)


def job_out(job: Job) -> dict[str, Any]:
    """JSON form of a job (no file paths)."""
    return {"id": job.id, "kind": job.kind, "status": job.status, "progress": job.progress,
            "message": job.message, "error_code": job.error_code, "result": job.result,
            "created_at": job.created_at.isoformat() if job.created_at else None,
            "finished_at": job.finished_at.isoformat() if job.finished_at else None}


def _visible(p: Principal):
    q = select(Job)
    if p.centre_id is not None:
        q = q.where(Job.centre_id == p.centre_id)
    return q


@router.get("", summary="Jobs of your centre, newest first")
def list_jobs(session: DB, p: _READ, limit: Annotated[int, Query(ge=1, le=500)] = 50):
    rows = session.scalars(_visible(p).order_by(Job.id.desc()).limit(limit)).all()
    return [job_out(j) for j in rows]


@router.get("/{job_id}", summary="One job", responses={404: {"description": "no such job"}})
def get_job(job_id: Annotated[int, Path(ge=1, le=2**31 - 1)], session: DB, p: _READ):
    job = session.scalar(_visible(p).where(Job.id == job_id))
    if job is None:
        raise repo.RecordNotFoundError(f"job {job_id} not found", hint="check the job id")
    return job_out(job)
