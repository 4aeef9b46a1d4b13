"""Validation of clinical records received by the API (through :func:`hccstrat.schema.validate`)."""

from __future__ import annotations

import math
from typing import Any

__all__ = ["validate_clinical"]


def _plain(v: Any) -> Any:
    import pandas as pd

    if v is None or v is pd.NA or v is pd.NaT:
        return None
    if isinstance(v, float) and math.isnan(v):
        return None
    if isinstance(v, pd.Timestamp):
        return v.date().isoformat()
    if hasattr(v, "item"):
        return v.item()
    return v


def validate_clinical(data: dict[str, Any], *, patient_id: str, centre: str) -> dict[str, Any]:
    """Validate one patient's clinical record; return its canonical JSON form.

    Raises
    ------
    DataValidationError
        Listing every problem (unknown columns, impossible values, wrong dates...).
    """
    import pandas as pd

    from hccstrat.exceptions import DataValidationError
    from hccstrat.schema import validate

    row = dict(data)
    row["patient_id"] = patient_id
    row["centre"] = centre
    table, report = validate(pd.DataFrame([row]), source="clinical record")
    if report:
        raise DataValidationError(report)
    rec = table.iloc[0].to_dict()
    out = {k: _plain(v) for k, v in rec.items() if k not in ("patient_id", "centre")}
    return {k: v for k, v in out.items() if v is not None}
