"""Scorers backed by saved hccstrat models (``hccstrat serve --model PRE=pre.hccmodel``).

:class:`ModelScorer` loads a ``*.hccmodel`` archive with
:func:`hccstrat.models.persist.load_model` (both checksums verified before
unpickling) and adapts a fitted :class:`~hccstrat.models.PreModel` /
:class:`~hccstrat.models.PostModel` (anything with ``predict_score``) to the
service's scorer protocol: one patient's clinical record and derived features in, a
:class:`~hccstrat.service.scoring.ScoreResult` out, with the patient's top factors
(:func:`hccstrat.models.explain.top_factors`) as the explanation.

The model version recorded with each prediction is the first 12 hex digits of the
archive's SHA-256, so a re-trained model saved under the same name is a new version.
"""

from __future__ import annotations

import logging
import math
from pathlib import Path
from typing import Any

from hccstrat.exceptions import ConfigError, ModelError
from hccstrat.service.scoring import ScoreResult

__all__ = ["KINDS", "ModelScorer", "benefit_explanation", "parse_model_specs"]

#: prediction kinds a saved model can serve
KINDS = ("PRE", "POST", "BENEFIT")

log = logging.getLogger(__name__)


class ModelScorer:
    """A saved PRE/POST model as a service scorer.

    Parameters
    ----------
    path : path-like
        ``*.hccmodel`` archive (with its ``.sha256`` file beside it).
    kind : {"PRE", "POST", "BENEFIT"}
        What the model predicts (recorded with each prediction). ``BENEFIT`` serves a
        :class:`~hccstrat.models.benefit.TreatmentBenefitModel`: the score is the
        predicted 2-year RFS under the recommended (or default) regimen and the
        explanation holds every regimen's estimate with its interval
        (:func:`benefit_explanation`).
    expected_sha256 : str, optional
        Trusted checksum of the archive (refused when it differs).
    n_top : int
        Factors kept in each explanation.

    Attributes
    ----------
    name, version, sha256 : str
        Card name, first 12 hex digits of the archive checksum, full checksum.
    model : estimator
        The loaded model (its card in ``model.model_card_``).
    """

    def __init__(self, path: str | Path, kind: str = "PRE", *,
                 expected_sha256: str | None = None, n_top: int = 5) -> None:
        from hccstrat.io.atomic import sha256_file
        from hccstrat.models.persist import load_model

        self.path = Path(path)
        if kind not in KINDS:
            raise ConfigError(f"model kind {kind!r} unknown", hint="PRE, POST or BENEFIT")
        self.kind = kind
        self.model = load_model(self.path, expected_sha256=expected_sha256)
        needed = "predict_benefit" if kind == "BENEFIT" else "predict_score"
        if not hasattr(self.model, needed):
            raise ModelError(f"{self.path}: a {type(self.model).__name__} has no {needed}",
                             hint="serve a PreModel/PostModel as PRE/POST and a "
                             "TreatmentBenefitModel as BENEFIT")
        card = self.model.model_card_
        self.sha256 = sha256_file(self.path)
        self.name = str(card.name)
        self.version = self.sha256[:12]
        self.n_top = int(n_top)
        self.__doc__ = (f"{card.model_class} '{card.name}' ({kind}); intended use: "
                        f"{card.intended_use}")

    def _frame(self, clinical: dict[str, Any], features: dict[str, float]):
        import pandas as pd

        row = {**{k: v for k, v in clinical.items()}, **features}
        row.setdefault("patient_id", "patient")
        return pd.DataFrame([row])

    def __call__(self, clinical: dict[str, Any], features: dict[str, float]) -> ScoreResult:
        """Score one patient; the explanation holds its top factors."""
        from hccstrat.models.explain import top_factors

        X = self._frame(clinical, features)
        if self.kind == "BENEFIT":
            return self._benefit(X)
        try:
            score = float(self.model.predict_score(X)[0])
        except ModelError:
            raise
        except Exception as err:  # a record the model cannot read: say which model and why
            raise ModelError(f"model {self.name!r} cannot score this record: {err}",
                             hint="check the clinical record against hccstrat.schema") from err
        if not math.isfinite(score):
            raise ModelError(f"model {self.name!r} returned {score!r}",
                             hint="the record lacks inputs the model needs")
        explanation: dict[str, Any] = {"threshold": float(getattr(self.model, "threshold", 0.5))}
        try:
            tf = top_factors(self.model, X, n_top=self.n_top)
        except ModelError as err:
            log.info("no explanation for %s: %s", self.name, err.message)
        else:
            explanation["method"] = str(tf["method"].iloc[0]) if len(tf) else ""
            explanation["factors"] = [
                {"feature": str(r.feature), "contribution": round(float(r.contribution), 4),
                 "direction": str(r.direction)} for r in tf.itertuples(index=False)]
        lacking = getattr(self.model, "lacking_", None)
        if lacking:  # inputs the model was trained without (e.g. no MRI features)
            explanation["lacking_at_training"] = lacking.summary()
        return ScoreResult(score, explanation)


    def _benefit(self, X) -> ScoreResult:
        try:
            pred = self.model.predict_benefit(X)
        except ModelError:
            raise
        except Exception as err:
            raise ModelError(f"model {self.name!r} cannot score this record: {err}",
                             hint="check the clinical record against hccstrat.schema") from err
        expl = benefit_explanation(pred.table.iloc[0], pred.arms,
                                   float(getattr(self.model, "confidence", 0.9)),
                                   getattr(self.model, "policy_check_", None),
                                   getattr(self.model, "policy_check_error_", None),
                                   getattr(self.model, "default_arm_reason_", None))
        reg = expl["regimen"]
        return ScoreResult(float(reg["arms"][reg["policy"]]["rfs24"]), expl)


def benefit_explanation(
    row, arms, confidence: float, policy_check=None, policy_error: str | None = None,
    default_reason: str | None = None,
) -> dict[str, Any]:
    """Explanation of a benefit prediction (one row of ``BenefitPrediction.table``).

    Parameters
    ----------
    row : Series
        One row of the prediction table.
    arms : tuple of str
        Regimens.
    confidence : float
        Level of the intervals.
    policy_check : PolicyCheck, optional
        The model's cross-fitted check of its recommendations (``policy_check_``).
    policy_error : str, optional
        Why the check could not run (``policy_check_error_``): not validated.
    default_reason : str, optional
        Why the model's default regimen is what it is (``default_arm_reason_``).

    Returns
    -------
    dict
        ``{"regimen": {"arms": {arm: {"rfs24", "lo", "hi"}}, "best_arm", "recommended",
        "policy", "confident", "confidence", "gain_rfs24", "gain_lo", "gain_hi",
        "outside_support", "policy_validated", "policy_check", "default_reason"}}``, the
        form the patient page renders (``policy_validated`` is None for a model without
        the check).
    """
    def num(key):
        v = row.get(key)
        return None if v is None or not math.isfinite(float(v)) else round(float(v), 4)

    return {"regimen": {
        "arms": {str(a): {"rfs24": num(f"rfs24_{a}"), "lo": num(f"rfs24_{a}_lo"),
                          "hi": num(f"rfs24_{a}_hi")} for a in arms},
        "best_arm": str(row["best_arm"]), "recommended": str(row["recommended"]),
        "policy": str(row["policy"]), "confident": bool(row["confident"]),
        "confidence": float(confidence), "gain_rfs24": num("gain_rfs24"),
        "gain_lo": num("gain_rfs24_lo"), "gain_hi": num("gain_rfs24_hi"),
        "outside_support": bool(row.get("outside_support", False)),
        "policy_validated": (False if policy_error else None if policy_check is None
                             else bool(policy_check.validated)),
        "policy_check": (f"the policy check could not run: {policy_error}" if policy_error
                         else None if policy_check is None else policy_check.summary()),
        "default_reason": default_reason}}


def parse_model_specs(specs: list[str]) -> dict[str, ModelScorer]:
    """``["PRE=path/pre.hccmodel", ...]`` -> kind -> :class:`ModelScorer`.

    Raises
    ------
    ConfigError
        When a spec is not ``KIND=path`` or names a kind twice.
    """
    out: dict[str, ModelScorer] = {}
    for spec in specs:
        kind, _, path = spec.partition("=")
        if kind not in KINDS or not path:
            raise ConfigError(f"--model {spec!r} is not KIND=path", hint="e.g. PRE=pre.hccmodel")
        if kind in out:
            raise ConfigError(f"--model {kind} given twice", hint="one model per kind")
        out[kind] = ModelScorer(path, kind)
    return out
