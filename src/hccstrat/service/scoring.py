"""Pluggable scorers for PRE/POST predictions.

A scorer is any callable ``scorer(clinical: dict, features: dict) -> ScoreResult``
with attributes ``name`` and ``version`` (and optionally ``sha256``, the checksum of
its weights). Pass them to :class:`~hccstrat.service.settings.ServiceSettings`
(``scorers={"PRE": my_scorer}``) or name a factory on the command line
(``hccstrat serve --scorer PRE=package.module:factory``). With no scorer configured
a prediction request answers 503 with a message saying how to configure one: the
service never invents a score.
"""

from __future__ import annotations

import hashlib
import importlib
import json
from dataclasses import dataclass, field
from typing import Any, Protocol

from hccstrat.exceptions import ConfigError, HccstratError

__all__ = ["ScoreResult", "Scorer", "ScorerUnavailableError", "input_hash", "load_scorer"]


class ScorerUnavailableError(HccstratError):
    """No scorer is configured for the requested kind (HTTP 503)."""

    code = "HCC-SCORE-503"


@dataclass
class ScoreResult:
    """A score in [0, 1] with its explanation (term -> contribution, free text...)."""

    score: float
    explanation: dict[str, Any] = field(default_factory=dict)


class Scorer(Protocol):
    """What the service needs from a model."""

    name: str
    version: str

    def __call__(self, clinical: dict[str, Any], features: dict[str, float]) -> ScoreResult: ...


def input_hash(kind: str, clinical: dict[str, Any], features: dict[str, float]) -> str:
    """SHA-256 of the canonical JSON of a prediction's inputs."""
    blob = json.dumps({"kind": kind, "clinical": clinical, "features": features},
                      sort_keys=True, separators=(",", ":"), default=str)
    return hashlib.sha256(blob.encode("utf-8")).hexdigest()


def load_scorer(spec: str) -> Scorer:
    """Build a scorer from ``"package.module:factory"`` (factory called without arguments)."""
    module_name, _, attr = spec.partition(":")
    if not module_name or not attr:
        raise ConfigError(f"scorer {spec!r} is not 'module:factory'",
                          hint="e.g. --scorer PRE=mypkg.models:make_pre_scorer")
    try:
        factory = getattr(importlib.import_module(module_name), attr)
    except (ImportError, AttributeError) as err:
        raise ConfigError(f"cannot import scorer {spec!r}: {err}",
                          hint="check the module path and that it is installed") from err
    scorer = factory()
    for needed in ("name", "version"):
        if not hasattr(scorer, needed):
            raise ConfigError(f"scorer {spec!r} has no attribute {needed!r}",
                              hint="give the scorer 'name' and 'version' attributes")
    return scorer
