"""Background job worker: one thread polling the ``jobs`` table.

Job state lives in the database, so it survives a restart: at start-up jobs left
``running`` by a crash are queued again (up to :data:`MAX_ATTEMPTS`). A job is
claimed with a conditional UPDATE, so several workers (processes) never run the
same job twice.
"""

from __future__ import annotations

import logging
import threading
from collections.abc import Callable
from typing import Any

from sqlalchemy import select, update

from hccstrat.exceptions import HccstratError
from hccstrat.storage.audit import append_event
from hccstrat.storage.models import Job, utcnow

__all__ = ["HANDLERS", "MAX_ATTEMPTS", "JobWorker"]

log = logging.getLogger(__name__)

#: attempts before a job interrupted by restarts is marked failed
MAX_ATTEMPTS = 3

#: job kind -> handler(worker, job, progress) -> result dict
HANDLERS: dict[str, Callable[..., dict[str, Any]]] = {}


def _handlers() -> dict[str, Callable[..., dict[str, Any]]]:
    if not HANDLERS:
        from hccstrat.service import ingest, time_panel

        HANDLERS.update({"ingest_dicom": ingest.ingest_dicom_job,
                         "ingest_wsi": ingest.ingest_wsi_job,
                         "preprocess_mri": ingest.preprocess_mri_job,
                         "embed_wsi": ingest.embed_wsi_job,
                         "time_panel": time_panel.time_panel_job,
                         "score": ingest.score_job})
    return HANDLERS


class JobWorker:
    """Runs queued jobs in a daemon thread.

    Parameters
    ----------
    sessionmaker : sessionmaker
        Session factory of the registry.
    settings : ServiceSettings
        Service settings (data folder, limits, scorers).
    secret : bytes
        Server secret (UID remapping).
    """

    def __init__(self, sessionmaker, settings, secret: bytes) -> None:
        self.sessionmaker = sessionmaker
        self.settings = settings
        self.secret = secret
        self._stop = threading.Event()
        self._wake = threading.Event()
        self._thread: threading.Thread | None = None
        self._encoder: tuple[tuple, Any] | None = None  # (cache key, encoder)

    def encoder(self, spec):
        """The encoder of ``spec``, built (and its weights verified) once and kept for the
        next embed jobs while the spec and its weights file are unchanged.

        One encoder is kept at a time (a foundation model holds ~1 GB); jobs run one
        after another on this worker's thread, so it is never shared between jobs.
        """
        from hccstrat.service.encoders import build_encoder, encoder_cache_key

        key = encoder_cache_key(spec)
        if self._encoder is None or self._encoder[0] != key:
            self._encoder = None  # release the previous one before loading the next
            self._encoder = (key, build_encoder(spec))
        return self._encoder[1]

    def recover(self) -> int:
        """Re-queue jobs interrupted by a stop; returns how many."""
        with self.sessionmaker() as s:
            n = s.execute(update(Job).where(Job.status == "running", Job.attempts < MAX_ATTEMPTS)
                          .values(status="queued", message="re-queued after restart")).rowcount
            s.execute(update(Job).where(Job.status == "running").values(
                status="failed", error_code="HCC-JOB-ATTEMPTS",
                message="interrupted too many times", finished_at=utcnow()))
            s.commit()
        if n:
            log.info("re-queued %d interrupted job(s)", n)
        return int(n or 0)

    def start(self) -> None:
        """Start the polling thread."""
        self._thread = threading.Thread(target=self._loop, name="hccstrat-jobs", daemon=True)
        self._thread.start()

    def stop(self, timeout: float = 10.0) -> None:
        """Ask the thread to stop and wait for it."""
        self._stop.set()
        self._wake.set()
        if self._thread is not None:
            self._thread.join(timeout)

    def notify(self) -> None:
        """Wake the worker (a job was queued)."""
        self._wake.set()

    def _loop(self) -> None:
        while not self._stop.is_set():
            try:
                ran = self.run_once()
            except Exception:  # keep the worker alive; the job itself records its failure
                log.exception("job worker error")
                ran = False
            if not ran:
                self._wake.wait(self.settings.worker_poll_s)
                self._wake.clear()

    def claim(self) -> int | None:
        """Claim the oldest queued job; returns its id or None."""
        with self.sessionmaker() as s:
            for job_id in s.scalars(select(Job.id).where(Job.status == "queued")
                                    .order_by(Job.id).limit(5)).all():
                n = s.execute(update(Job).where(Job.id == job_id, Job.status == "queued").values(
                    status="running", started_at=utcnow(), attempts=Job.attempts + 1)).rowcount
                s.commit()
                if n == 1:
                    return job_id
        return None

    def progress(self, job_id: int, fraction: float, message: str = "") -> None:
        """Record progress of a running job."""
        with self.sessionmaker() as s:
            s.execute(update(Job).where(Job.id == job_id).values(
                progress=max(0.0, min(1.0, float(fraction))), message=message[:500]))
            s.commit()

    def run_once(self) -> bool:
        """Run one queued job if there is one; returns whether one ran."""
        job_id = self.claim()
        if job_id is None:
            return False
        with self.sessionmaker() as s:
            job = s.get(Job, job_id)
            kind = job.kind
        handler = _handlers().get(kind)
        status, result, code, message = "done", {}, None, "done"
        try:
            if handler is None:
                raise HccstratError(f"unknown job kind {kind!r}", hint="report this bug")
            result = handler(self, job, lambda f, m="": self.progress(job_id, f, m)) or {}
        except HccstratError as err:
            status, code, message = "failed", err.code, str(err)[:1000]
        except Exception as err:  # recorded in the job; the worker goes on
            log.exception("job %d (%s) failed", job_id, kind)
            status, code, message = "failed", "HCC-JOB-500", f"{type(err).__name__}: {err}"[:1000]
        with self.sessionmaker() as s:
            job = s.get(Job, job_id)
            job.status, job.result, job.error_code, job.message = status, result, code, message
            job.finished_at = utcnow()
            if status == "done":
                job.progress = 1.0
            append_event(s, actor="system:worker", action=f"job_{status}", entity="job",
                         entity_id=job_id, centre_id=job.centre_id,
                         after={"kind": kind, "status": status, "error_code": code})
            s.commit()
        return True
