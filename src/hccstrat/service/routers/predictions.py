"""PRE/POST predictions with model version, input hash and explanation."""

from __future__ import annotations

from typing import Annotated

from fastapi import APIRouter, Path, Request
from fastapi.responses import JSONResponse
from sqlalchemy import select

from hccstrat.service.deps import DB, Allowed
from hccstrat.service.predict import prediction_out, run_prediction
from hccstrat.service.routers.jobs import job_out, queue_job
from hccstrat.service.schemas import PredictIn
from hccstrat.storage import repositories as repo
from hccstrat.storage.models import Prediction

__all__ = ["router"]

router = APIRouter(prefix="/api/patients", tags=["predictions"])
_READ = Allowed("predictions:read")
_WRITE = Allowed("predictions:write")
_ID = Annotated[int, Path(ge=1, le=2**31 - 1)]


@router.post("/{patient_id}/predictions", status_code=201,
             summary="Score a patient (or queue a scoring job with background=true)",
             responses={202: {"description": "job queued"},
                        503: {"description": "no scorer configured"}})
def predict(patient_id: str, body: PredictIn, request: Request, session: DB, p: _WRITE):
    patient = repo.get_patient(session, p.scope, patient_id)
    if body.background:
        job = queue_job(session, p, kind="score", patient=patient, params={"kind": body.kind})
        session.commit()
        request.app.state.worker.notify()
        return JSONResponse(job_out(job), status_code=202)
    pred = run_prediction(session, request.app.state.settings.scorers, p.scope, patient,
                          body.kind)
    session.commit()
    return prediction_out(pred, patient)


@router.get("/{patient_id}/predictions", summary="Predictions of a patient, newest first")
def list_predictions(patient_id: str, session: DB, p: _READ):
    patient = repo.get_patient(session, p.scope, patient_id)
    rows = session.scalars(select(Prediction).where(Prediction.patient_id == patient.id)
                           .order_by(Prediction.id.desc())).all()
    return [prediction_out(r, patient) for r in rows]


@router.get("/{patient_id}/predictions/{prediction_id}/fhir",
            summary="A prediction as a FHIR R4 RiskAssessment")
def prediction_fhir(patient_id: str, prediction_id: _ID, session: DB, p: _READ):
    from hccstrat.interop.fhir import risk_assessment

    patient = repo.get_patient(session, p.scope, patient_id)
    pred = session.scalar(select(Prediction).where(Prediction.id == prediction_id,
                                                   Prediction.patient_id == patient.id))
    if pred is None:
        raise repo.RecordNotFoundError(f"prediction {prediction_id} not found",
                                       hint="list the patient's predictions first")
    return JSONResponse(risk_assessment(
        patient_id=patient.pseudo_id, kind=pred.kind, score=pred.score,
        model=pred.model_version.name, model_version=pred.model_version.version,
        when=pred.created_at, input_sha256=pred.input_sha256, prediction_id=pred.id,
    ), media_type="application/fhir+json")
