"""Compute and store a prediction (shared by the API and the job worker)."""

from __future__ import annotations

import math
from typing import Any

from sqlalchemy import select
from sqlalchemy.exc import IntegrityError
from sqlalchemy.orm import Session

from hccstrat.exceptions import ModelError
from hccstrat.service.scoring import ScorerUnavailableError, input_hash
from hccstrat.storage import repositories as repo
from hccstrat.storage.audit import jsonable
from hccstrat.storage.models import DerivedFeature, ModelVersion, Patient, Prediction

__all__ = ["latest_features", "model_version_row", "prediction_out", "run_prediction"]


def latest_features(session: Session, patient: Patient) -> dict[str, float]:
    """Newest value of each derived feature of a patient."""
    rows = session.scalars(
        select(DerivedFeature).where(DerivedFeature.patient_id == patient.id)
        .order_by(DerivedFeature.id)
    ).all()
    return {r.name: r.value for r in rows if r.value is not None}


def model_version_row(session: Session, scorer: Any, kind: str) -> ModelVersion:
    """Get or create the :class:`ModelVersion` of a scorer (safe under concurrency)."""
    name, version = str(scorer.name), str(scorer.version)
    q = select(ModelVersion).where(ModelVersion.name == name, ModelVersion.version == version)
    mv = session.scalar(q)
    if mv is not None:
        return mv
    try:
        with session.begin_nested():
            mv = ModelVersion(name=name, version=version, kind=kind,
                              sha256=str(getattr(scorer, "sha256", "")),
                              info={"doc": (scorer.__doc__ or "").strip()[:500]})
            session.add(mv)
    except IntegrityError:
        mv = session.scalar(q)
    return mv


def run_prediction(session: Session, scorers: dict[str, Any], scope: repo.Scope,
                   patient: Patient, kind: str) -> Prediction:
    """Score ``patient`` with the configured scorer of ``kind`` and store the result."""
    scorer = scorers.get(kind)
    if scorer is None:
        raise ScorerUnavailableError(
            f"no {kind} scorer is configured on this server",
            hint=f"start the server with --model {kind}=path.hccmodel or --scorer "
                 f"{kind}=package.module:factory",
        )
    rec = repo.latest_clinical(session, patient)
    clinical = rec.data if rec else {}
    features = latest_features(session, patient)
    res = scorer(clinical, features)
    score = float(res.score)
    if not math.isfinite(score) or not 0.0 <= score <= 1.0:
        raise ModelError(f"scorer {scorer.name!r} returned {score!r}, not a probability",
                         hint="fix the scorer: it must return a score in [0, 1]")
    mv = model_version_row(session, scorer, kind)
    pred = Prediction(patient_id=patient.id, model_version_id=mv.id, kind=kind, score=score,
                      input_sha256=input_hash(kind, clinical, features),
                      explanation=dict(res.explanation or {}),
                      inputs=jsonable({"clinical": clinical, "features": features}),
                      created_by=scope.user_id)
    repo.audited_add(session, scope, pred, entity="prediction", centre_id=patient.centre_id)
    return pred


def prediction_out(pred: Prediction, patient: Patient) -> dict[str, Any]:
    """JSON form of a prediction."""
    return {"id": pred.id, "patient_id": patient.pseudo_id, "kind": pred.kind,
            "score": pred.score, "model": pred.model_version.name,
            "model_version": pred.model_version.version, "input_sha256": pred.input_sha256,
            "explanation": pred.explanation, "created_at": pred.created_at.isoformat()}
