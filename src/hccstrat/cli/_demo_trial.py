"""Demo stage: the simulated NCT07282184 trial driven by a real PRE model.

The PRE model (:class:`hccstrat.models.PreModel`, penalised Cox, calibrated) is
trained on a separate synthetic development cohort, then scores the trial cohort's
screened patients; its version string is recorded with every allocation. Image
features are the documented proxies of :mod:`hccstrat.synthetic.image_proxies`.
"""

from __future__ import annotations

from pathlib import Path

__all__ = ["demo_stage"]


def demo_stage(cohort, out_dir: Path, *, seed: int, progress) -> list:
    """Train PRE on a development cohort and run the simulated trial with it."""
    import numpy as np

    from hccstrat.cli.trial import demo_stage as trial_stage
    from hccstrat.models import PreModel, join_feature_tables
    from hccstrat.survival import endpoint
    from hccstrat.synthetic.cohort import generate_cohort
    from hccstrat.synthetic.image_proxies import make_image_feature_proxies

    progress("training PRE on a synthetic development cohort")
    dev_seed = seed + 1000
    dev = generate_cohort(n_patients=1000, n_centres=6, seed=dev_seed)
    X_dev = join_feature_tables(dev.clinical, make_image_feature_proxies(dev.latent, dev_seed))
    pre = PreModel(random_state=seed).fit(X_dev, endpoint(dev.clinical, "aggressive"))
    images = make_image_feature_proxies(cohort.latent, seed)

    def risk_fn(frame):
        X = join_feature_tables(frame, images)
        return np.asarray(pre.predict_score(X), float)

    version = f"PreModel(coxnet) dev-cohort seed {dev_seed}, n=1000"
    return trial_stage(
        cohort, out_dir, seed=seed, progress=progress, risk_fn=risk_fn, model_version=version
    )
