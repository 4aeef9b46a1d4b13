"""Federated versus pooled training on the same centres, and their evaluations.

Both models are evaluated on the union of the centres' held-out data (a central
reference analysis that a real federation could not run) and federatedly: each centre's
local C-index pooled by random-effects meta-analysis.
"""

from __future__ import annotations

import json
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np
import pandas as pd

__all__ = ["Comparison", "compare_with_pooled"]


@dataclass
class Comparison:
    """Outcome of :func:`compare_with_pooled`.

    Attributes
    ----------
    c_federated, c_pooled : float
        Harrell's C of each model on the pooled held-out data.
    meta_federated : MetaResult
        Random-effects pooled C of the federated model from the centres' local results.
    meta_pooled_model : MetaResult
        The same for the pooled model (computed centrally, per centre).
    centre_metrics : DataFrame
        Local results of the federated model (aggregates only).
    seconds : dict
        Wall time of the federated and pooled fits.
    """

    c_federated: float
    c_pooled: float
    meta_federated: object
    meta_pooled_model: object
    centre_metrics: pd.DataFrame
    result: object = field(repr=False)
    seconds: dict = field(default_factory=dict)

    @property
    def delta(self) -> float:
        """Federated minus pooled C-index."""
        return self.c_federated - self.c_pooled

    def summary(self) -> str:
        """Plain-text summary table."""
        cfg = self.result.config
        lines = [
            f"algorithm={cfg.algorithm} rounds={cfg.rounds} hidden={cfg.head.hidden} "
            f"secure={cfg.secure} clip={cfg.clip} noise={cfg.noise_multiplier}",
            f"{'':28s}{'federated':>12s}{'pooled':>12s}",
            f"{'C-index (pooled test set)':28s}{self.c_federated:12.4f}{self.c_pooled:12.4f}",
            f"{'C-index (meta, centres)':28s}{self.meta_federated.estimate:12.4f}"
            f"{self.meta_pooled_model.estimate:12.4f}",
            f"{'fit seconds':28s}{self.seconds.get('federated', np.nan):12.2f}"
            f"{self.seconds.get('pooled', np.nan):12.2f}",
            f"difference federated - pooled: {self.delta:+.4f}",
        ]
        return "\n".join(lines)

    def to_dict(self) -> dict:
        """JSON-ready figures."""
        return {
            "c_federated": self.c_federated,
            "c_pooled": self.c_pooled,
            "delta": self.delta,
            "meta_federated": self.meta_federated.to_dict(),
            "meta_pooled_model": self.meta_pooled_model.to_dict(),
            "seconds": self.seconds,
        }

    def save(self, out_dir) -> None:
        """Write ``global_model.npz``, ``centre_metrics.csv`` and ``comparison.json``."""
        from hccstrat.io.atomic import atomic_write

        out_dir = Path(out_dir)
        self.result.save(out_dir / "global_model.npz")
        with atomic_write(out_dir / "centre_metrics.csv") as fh:
            self.centre_metrics.to_csv(fh, index=False)
        with atomic_write(out_dir / "comparison.json") as fh:
            json.dump(self.to_dict(), fh, indent=2, default=float)


def compare_with_pooled(cohort_or_centres, cfg, *, seed: int = 0) -> Comparison:
    """Train federatedly (simulation) and pooled; evaluate both ways.

    Parameters
    ----------
    cohort_or_centres : SyntheticCohort or dict
        A cohort (split by its ``centre`` column, 30 % of each centre held out) or
        the centre dict of :func:`~hccstrat.distributed.fed_data.centres_from_frame`
        (every centre needs test data).
    cfg : FederatedConfig
    seed : int
    """
    import time

    from hccstrat.distributed._fed_models import fit_pooled, predict_risk
    from hccstrat.distributed.fed_data import centres_from_cohort
    from hccstrat.distributed.fed_eval import local_metrics, meta_analyse
    from hccstrat.distributed.federated import simulate
    from hccstrat.evaluation import harrell_c
    from hccstrat.survival import make_surv

    centres = cohort_or_centres
    if not isinstance(centres, dict):
        centres, _ = centres_from_cohort(cohort_or_centres, seed=seed)
    t0 = time.perf_counter()
    fed = simulate(centres, cfg)
    t1 = time.perf_counter()
    model, mean, sd = fit_pooled([tr for tr, _ in centres.values()], cfg.head,
                                 steps=cfg.rounds * cfg.head.local_steps)
    t2 = time.perf_counter()
    tests = [te for _, te in centres.values()]
    X = np.concatenate([t.X for t in tests])
    y = make_surv(np.concatenate([t.event for t in tests]), np.concatenate([t.time for t in tests]))
    rows = [local_metrics(t.y, predict_risk(model, t.X, mean, sd), centre=t.name,
                          n_bootstrap=cfg.n_bootstrap, seed=cfg.seed) for t in tests]
    return Comparison(
        c_federated=float(harrell_c(y, fed.predict_risk(X))),
        c_pooled=float(harrell_c(y, predict_risk(model, X, mean, sd))),
        meta_federated=fed.meta,
        meta_pooled_model=meta_analyse(rows),
        centre_metrics=fed.centre_metrics,
        result=fed,
        seconds={"federated": t1 - t0, "pooled": t2 - t1},
    )
