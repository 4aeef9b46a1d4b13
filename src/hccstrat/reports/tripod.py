"""TRIPOD+AI checklist (Collins et al., BMJ 2024) filled from a run's metadata.

Each item says whether the run's metadata or results document it, and where. Items
that only the authors can answer (ethics, funding, patient involvement...) are
listed as "to complete by the authors".
"""

from __future__ import annotations

from typing import Any

import pandas as pd

__all__ = ["TRIPOD_AI_ITEMS", "tripod_checklist"]

#: (item, topic, metadata key that documents it or None)
TRIPOD_AI_ITEMS: tuple[tuple[str, str, str | None], ...] = (
    ("1", "Title: identifies a prediction model study, target population and outcome", "title"),
    ("3a", "Background: healthcare context and rationale", None),
    ("4", "Objectives: development and/or validation", "objective"),
    ("5a", "Data sources (e.g. cohort, registry, trial), per centre", "data_source"),
    ("5b", "Dates of recruitment and follow-up", "date_range"),
    ("6a", "Setting and number/location of centres", "centres"),
    ("6b", "Eligibility criteria", "eligibility"),
    ("6c", "Treatments received", "treatments"),
    ("7", "Data preparation and quality checks", "data_preparation"),
    ("8a", "Outcome definition and horizon", "outcome"),
    ("9a", "Predictors: definition and timing", "predictors"),
    ("10", "Sample size, and whether it met minimum size criteria", "sample_size"),
    ("11", "Missing data handling", "missing_data"),
    ("12a", "Analytical methods: model type and building", "model"),
    (
        "12e",
        "Performance measures (discrimination, calibration, utility) with uncertainty",
        "metrics",
    ),
    ("12f", "Model updating (recalibration) arising from validation", "recalibration"),
    ("12g", "Heterogeneity across centres / clusters", "meta_analysis"),
    ("13", "Class imbalance methods", None),
    ("14", "Fairness: performance in subgroups", "subgroups"),
    ("16", "Open science: code and software versions", "hccstrat_version"),
    ("18", "Ethics approval and consent", None),
    ("20a", "Participant flow: numbers and outcome events", "n_events"),
    ("23a", "Model performance with confidence intervals", "metrics"),
    ("23b", "Heterogeneity of performance across centres", "meta_analysis"),
    ("26", "Interpretation: comparison with baseline/clinical scores", "comparators"),
    ("27c", "Drift / monitoring after deployment", "drift"),
)


def tripod_checklist(metadata: dict[str, Any]) -> pd.DataFrame:
    """Fill the checklist from run metadata.

    Parameters
    ----------
    metadata : dict
        Keys as in :data:`TRIPOD_AI_ITEMS` (``outcome``, ``metrics``, ``centres``...);
        values are short strings or anything with a readable ``str``.

    Returns
    -------
    DataFrame
        ``item, topic, status, detail``; status is ``reported``, ``not reported`` or
        ``to complete by the authors``.
    """
    rows = []
    for item, topic, key in TRIPOD_AI_ITEMS:
        if key is None:
            status, detail = "to complete by the authors", ""
        elif metadata.get(key) not in (None, "", [], {}):
            status, detail = "reported", str(metadata[key])[:160]
        else:
            status, detail = "not reported", f"add '{key}' to the run metadata"
        rows.append({"item": item, "topic": topic, "status": status, "detail": detail})
    return pd.DataFrame(rows)
