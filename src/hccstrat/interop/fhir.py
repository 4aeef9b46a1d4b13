"""FHIR R4 RiskAssessment for PRE/POST scores.

The resource names the patient by pseudonym only, the model and its version as the
method, the hash of the inputs as an identifier, and the probability of aggressive
recurrence within 24 months as ``prediction[0].probabilityDecimal`` with a
qualitative risk (high when the score is at or above the allocation threshold).
"""

from __future__ import annotations

import datetime as dt
import math
from typing import Any

from hccstrat.exceptions import (
    DataValidationError,
    DependencyMissingError,
    Problem,
    ValidationReport,
)

__all__ = ["HCCSTRAT_SYSTEM", "risk_assessment", "validate_risk_assessment"]

#: identifier system of hccstrat resources
HCCSTRAT_SYSTEM = "urn:hccstrat"
_OUTCOME = {
    "PRE": "Aggressive recurrence within 24 months after resection (pre-operative model)",
    "POST": "Aggressive recurrence within 24 months after resection (post-operative model)",
}


def risk_assessment(
    *,
    patient_id: str,
    kind: str,
    score: float,
    model: str,
    model_version: str,
    when: dt.datetime,
    input_sha256: str,
    prediction_id: int | str,
    threshold: float = 0.5,
    validate: bool = True,
) -> dict[str, Any]:
    """Build a FHIR R4 RiskAssessment (JSON dict) for one prediction.

    Parameters
    ----------
    patient_id : str
        Pseudonymised patient id (``Patient/<id>`` reference).
    kind : {"PRE", "POST"}
        Which model.
    score : float
        Probability in [0, 1].
    model, model_version : str
        Name and version of the model (the RiskAssessment ``method``).
    when : datetime
        Time of the prediction.
    input_sha256 : str
        Hash of the inputs (stored as an identifier).
    prediction_id : int or str
        Registry id of the prediction.
    threshold : float
        Score at or above which the qualitative risk is "high".
    validate : bool
        Check the resource with ``fhir.resources`` (R4B model, identical to R4 here).

    Raises
    ------
    DataValidationError
        If the score or threshold is not a probability, the kind is unknown or an
        identifier is empty (nothing is built).
    """
    _check_inputs(patient_id=patient_id, kind=kind, score=score, threshold=threshold,
                  model=model, model_version=model_version, input_sha256=input_sha256)
    if when.tzinfo is None:
        when = when.replace(tzinfo=dt.UTC)
    high = score >= threshold
    res = {
        "resourceType": "RiskAssessment",
        "id": f"hccstrat-{prediction_id}",
        "identifier": [
            {"system": f"{HCCSTRAT_SYSTEM}:prediction", "value": str(prediction_id)},
            {"system": f"{HCCSTRAT_SYSTEM}:input-sha256", "value": input_sha256},
        ],
        "status": "final",
        "subject": {"reference": f"Patient/{patient_id}"},
        "occurrenceDateTime": when.isoformat(timespec="seconds"),
        "method": {
            "coding": [{"system": f"{HCCSTRAT_SYSTEM}:model", "code": f"{model}@{model_version}",
                        "display": f"{model} {model_version} ({kind})"}],
            "text": f"{model} {model_version}",
        },
        "prediction": [{
            "outcome": {"text": _OUTCOME.get(kind, kind)},
            "probabilityDecimal": round(float(score), 6),
            "qualitativeRisk": {
                "coding": [{
                    "system": "http://terminology.hl7.org/CodeSystem/risk-probability",
                    "code": "high" if high else "low",
                    "display": "High likelihood" if high else "Low likelihood",
                }],
            },
            "whenRange": {"high": {"value": 24, "unit": "months", "system": "http://unitsofmeasure.org",
                                   "code": "mo"}},
        }],
        "note": [{"text": f"Decision threshold {threshold:g}; decision support only."}],
    }
    if validate:
        validate_risk_assessment(res)
    return res


def _probability(value: Any) -> bool:
    try:
        v = float(value)
    except (TypeError, ValueError):
        return False
    return math.isfinite(v) and 0.0 <= v <= 1.0


def _check_inputs(*, kind: str, score: Any, threshold: Any, **identifiers: Any) -> None:
    """Raise :class:`DataValidationError` listing every bad input of :func:`risk_assessment`."""
    rep = ValidationReport(source="FHIR RiskAssessment")
    pid = identifiers.get("patient_id") or None
    if kind not in _OUTCOME:
        rep.add(Problem(None, pid, "kind", kind, " or ".join(_OUTCOME)))
    for name, value in (("score", score), ("threshold", threshold)):
        if not _probability(value):
            rep.add(Problem(None, pid, name, value, "a probability in [0, 1]"))
    for name, value in identifiers.items():
        if not str(value if value is not None else "").strip():
            rep.add(Problem(None, pid, name, value, "a non-empty value"))
    if rep:
        raise DataValidationError(rep, hint="no RiskAssessment was built")


def validate_risk_assessment(resource: dict[str, Any]) -> None:
    """Validate a RiskAssessment with ``fhir.resources``; raises on an invalid resource."""
    try:
        from fhir.resources.R4B.riskassessment import RiskAssessment
    except ImportError as err:
        raise DependencyMissingError("fhir.resources", "service") from err
    RiskAssessment.model_validate(resource)
