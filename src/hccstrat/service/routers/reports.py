"""Report downloads (self-contained HTML built with :mod:`hccstrat.reports.html`)."""

from __future__ import annotations

import html
import tempfile
from pathlib import Path

import pandas as pd
from fastapi import APIRouter
from fastapi.responses import HTMLResponse
from sqlalchemy import select

from hccstrat.service.deps import DB, Allowed
from hccstrat.storage import repositories as repo
from hccstrat.storage.models import ImagingStudy, Prediction, Slide

__all__ = ["router"]

router = APIRouter(prefix="/api/reports", tags=["reports"])
_READ = Allowed("reports:read")
_HTML = {200: {"content": {"text/html": {}}, "description": "HTML report"}}


def _render(title: str, sections) -> str:
    from hccstrat.reports.html import render_report

    with tempfile.TemporaryDirectory() as tmp:
        path = render_report(Path(tmp) / "report.html", title, sections)
        return path.read_text(encoding="utf-8")


def _download(body: str, name: str) -> HTMLResponse:
    return HTMLResponse(body, headers={"Content-Disposition": f'attachment; filename="{name}"'})


@router.get("/patients/{patient_id}", response_class=HTMLResponse, responses=_HTML,
            summary="Patient report: clinical summary, predictions, images")
def patient_report(patient_id: str, session: DB, p: _READ):
    from hccstrat.reports.html import Section, table_to_html

    patient = repo.get_patient(session, p.scope, patient_id)
    rec = repo.latest_clinical(session, patient)
    clinical = pd.DataFrame({"field": list((rec.data if rec else {}).keys()),
                             "value": [str(v) for v in (rec.data if rec else {}).values()]})
    preds = session.scalars(select(Prediction).where(Prediction.patient_id == patient.id)
                            .order_by(Prediction.id)).all()
    ptab = pd.DataFrame([{"kind": r.kind, "score": r.score, "model": r.model_version.name,
                          "version": r.model_version.version, "inputs": r.input_sha256[:12],
                          "when": r.created_at.isoformat(timespec="seconds")} for r in preds],
                        columns=["kind", "score", "model", "version", "inputs", "when"])
    n_st = len(session.scalars(select(ImagingStudy.id).where(
        ImagingStudy.patient_id == patient.id)).all())
    n_sl = len(session.scalars(select(Slide.id).where(Slide.patient_id == patient.id)).all())
    sections = [
        Section("Clinical record", table_to_html(clinical, caption=f"version "
                                                 f"{rec.version if rec else '-'}")),
        Section("Predictions", table_to_html(ptab) if len(ptab) else "<p>None yet.</p>",
                numbers={"n_predictions": len(ptab)}),
        Section("Images", f"<p>{n_st} MRI stud{'y' if n_st == 1 else 'ies'}, {n_sl} slide(s), "
                          "de-identified at ingest.</p>",
                numbers={"n_studies": n_st, "n_slides": n_sl}),
    ]
    body = _render(f"Patient {html.escape(patient.pseudo_id)}", sections)
    return _download(body, f"patient-{patient.pseudo_id}.html")


@router.get("/trial/{trial}", response_class=HTMLResponse, responses=_HTML,
            summary="Trial report: CONSORT counts, arms, adverse events")
def trial_report(trial: str, session: DB, p: _READ):
    from hccstrat.reports.html import Section, table_to_html
    from hccstrat.service.routers.trial import trial_summary

    s = trial_summary(session, p, trial)
    flow = pd.DataFrame({"stage": ["screened", "eligible", "ineligible", "pending", "enrolled",
                                   "allocated"],
                         "n": [s[k] for k in ("screened", "eligible", "ineligible", "pending",
                                              "enrolled", "allocated")]})
    arms = pd.DataFrame({"arm": list(s["arms"]), "n": list(s["arms"].values())})
    aes = pd.DataFrame({"grade": list(s["adverse_events"]),
                        "n": list(s["adverse_events"].values())})
    sections = [Section("Participant flow", table_to_html(flow, caption="CONSORT counts"),
                        numbers={k: s[k] for k in ("screened", "enrolled", "allocated")}),
                Section("Allocation", table_to_html(arms) if len(arms) else "<p>None.</p>"),
                Section("Adverse events", table_to_html(aes))]
    return _download(_render(f"Trial {trial}", sections), f"trial-{trial}.html")


