"""POST model: aggressive recurrence within 24 months after resection.

Adds to the PRE inputs the pathology report (MVI, satellite nodules, Edmondson
grade, margin, capsule) and WSI features — the TIME panel (``time_*``) and/or a
slide embedding (``wsi_*``, e.g. from a MIL model). Same calibrated-probability
output and threshold logic as the PRE model.
"""

from __future__ import annotations

from hccstrat.models._risk import HorizonRiskModel

__all__ = ["PostModel"]


class PostModel(HorizonRiskModel):
    """POST model: calibrated tabular survival model on PRE + pathology + WSI inputs."""

    _stage = "post"
