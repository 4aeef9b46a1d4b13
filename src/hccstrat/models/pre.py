"""PRE model: aggressive recurrence within 24 months from pre-operative data.

Two variants:

(a) :class:`PreModel` — tabular fusion of clinical variables, the MRI report
    (``mri_*`` flags) and MRI image features (``rad_*`` radiomics, ``mricnn_*`` CNN
    embedding) with a penalised Cox (default) or gradient-boosted Cox model;
(b) :class:`~hccstrat.models.deep_pre.DeepPreModel` — a 3D CNN over the 4-phase
    tumour crop fused with a clinical MLP (re-exported here).

Both output the **PRE score**: a calibrated probability of aggressive recurrence
within 24 months (target: ``hccstrat.survival.endpoint(df, "aggressive")``);
``PRE >= threshold`` (default 0.5) means high risk.
"""

from __future__ import annotations

from hccstrat.models._risk import HorizonRiskModel
from hccstrat.models.deep_pre import DeepPreModel

__all__ = ["DeepPreModel", "PreModel"]


class PreModel(HorizonRiskModel):
    """PRE model, variant (a): calibrated tabular survival model (see :class:`HorizonRiskModel`).

    Examples
    --------
    >>> from hccstrat.survival import endpoint
    >>> model = PreModel(base="coxnet").fit(table, endpoint(table, "aggressive"))  # doctest: +SKIP
    >>> model.predict_score(new_table)  # PRE score in [0, 1]  # doctest: +SKIP
    """

    _stage = "pre"
