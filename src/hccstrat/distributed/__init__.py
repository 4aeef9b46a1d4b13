"""Scale across centres: Ray batch jobs and Flower federated training.

Ray and Flower are optional (extra ``distributed``); they are imported only when a
function that needs them is called, and a missing one raises
:class:`~hccstrat.exceptions.DependencyMissingError` naming the extra.

* :mod:`hccstrat.distributed.ray_jobs` — WSI embedding, MRI stages and batch scoring
  as Ray tasks/actors with the single-machine manifest and resume semantics.
* :mod:`hccstrat.distributed.federated` — Flower FedAvg/FedProx training of a Cox
  head across centres (secure aggregation, differential privacy, simulation).
* :mod:`hccstrat.distributed.fed_eval` — local metrics and random-effects pooling.
"""

from __future__ import annotations

import importlib
from typing import Any

__all__ = [
    "CentreData",
    "CoxHeadConfig",
    "FederatedConfig",
    "centres_from_cohort",
    "centres_from_frame",
    "compare_with_pooled",
    "fit_pooled",
    "init_ray",
    "local_metrics",
    "map_items",
    "meta_analyse",
    "release_encoders",
    "score_batch",
    "score_local",
    "simulate",
    "wsi_batch",
]

_WHERE = {
    "CentreData": "_fed_models",
    "CoxHeadConfig": "_fed_models",
    "fit_pooled": "_fed_models",
    "FederatedConfig": "federated",
    "simulate": "federated",
    "centres_from_cohort": "fed_data",
    "centres_from_frame": "fed_data",
    "compare_with_pooled": "compare",
    "release_encoders": "ray_jobs",
    "local_metrics": "fed_eval",
    "meta_analyse": "fed_eval",
    "init_ray": "ray_jobs",
    "map_items": "ray_jobs",
    "score_batch": "ray_jobs",
    "score_local": "ray_jobs",
    "wsi_batch": "ray_jobs",
}


def __getattr__(name: str) -> Any:
    if name in _WHERE:
        return getattr(importlib.import_module(f"{__name__}.{_WHERE[name]}"), name)
    raise AttributeError(f"module {__name__!r} has no attribute {name!r}")
