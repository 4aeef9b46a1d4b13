"""Benchmark of the prediction models on the synthetic cohort (issue 7).

Prints, on held-out centres of the synthetic cohort at the generator's default
realism settings, side by side with the oracle and the baselines:

- PRE C-index (goal: within 0.03 of the oracle risk's C-index on the same patients);
- POST C-index (goal: above PRE);
- the benefit model's policy value — mean true 2-year RFS when each patient gets
  the recommended regimen, from the oracle — as a share of the oracle policy's
  gain over the best single regimen for everyone (goal: >= 90 %);
- training time and peak memory of the deep PRE model on 1,000 patients (goal:
  <= 10 minutes on 2 CPU cores).

Image features are PROXIES (latent traits + noise, ``tests/models/_models_toy.py``)
until the MRI and WSI pipelines produce feature tables; the deep PRE model sees
synthetic 16^3 four-phase crops whose enhancement pattern follows the latent MRI
traits. Run: ``python benchmarks/models.py [--quick]``.
"""

from __future__ import annotations

import argparse
import resource
import sys
import time
import warnings
from pathlib import Path

import numpy as np
import pandas as pd

sys.path.insert(0, str(Path(__file__).resolve().parents[1] / "tests" / "models"))
from _models_toy import make_image_feature_proxies

from hccstrat.models import (
    ARMS,
    BCLCBaseline,
    CoxBaseline,
    DeepPreModel,
    ERASLBaseline,
    GBCoxBaseline,
    PostModel,
    PreModel,
    RSFBaseline,
    TreatmentBenefitModel,
    join_feature_tables,
)
from hccstrat.models._base import concordance
from hccstrat.survival import endpoint


def _crops(latent: pd.DataFrame, seed: int, size: int = 16) -> list[np.ndarray]:
    """Four-phase crops: tumour sphere, arterial rim / washout / capsule from latent traits."""
    rng = np.random.default_rng(seed)
    g = np.indices((size,) * 3) - (size - 1) / 2
    r = np.sqrt((g**2).sum(0))
    tumour, rim, capsule = r < 5, (r >= 4) & (r < 5.5), (r >= 5) & (r < 6)
    lat = latent.reset_index(drop=True)
    out = []
    for i in range(len(lat)):
        v = rng.normal(0, 0.25, (4, size, size, size)).astype(np.float32) + 1.0
        v[1, tumour] += 0.8 * float(lat.loc[i, "mri_arterial_enhancement"])
        v[1, rim] += 1.5 * float(lat.loc[i, "mri_rim"])
        v[2, tumour] -= 0.6 * float(lat.loc[i, "mri_washout"])
        v[3, capsule] += 1.0 * float(lat.loc[i, "mri_capsule"])
        v[1, r >= 6] += 0.6 * float(lat.loc[i, "mri_peritumoral"]) * (rng.random() < 0.5)
        out.append(v)
    return out


def _row(name, c, ref, note=""):
    return {"model": name, "C-index": round(c, 3), "vs oracle": round(c - ref, 3), "note": note}


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument(
        "--quick", action="store_true", help="small cohort, few replicates (smoke test)"
    )
    ap.add_argument("--n", type=int, default=2000)
    ap.add_argument("--centres", type=int, default=8)
    ap.add_argument("--seed", type=int, default=0)
    ap.add_argument("--bootstrap", type=int, default=10)
    ap.add_argument("--deep-n", type=int, default=1000)
    ap.add_argument("--deep-epochs", type=int, default=30)
    a = ap.parse_args(argv)
    if a.quick:
        a.n, a.centres, a.bootstrap, a.deep_n, a.deep_epochs = 400, 4, 2, 120, 2
    warnings.simplefilter("ignore")
    from hccstrat.synthetic.cohort import generate_cohort

    t0 = time.time()
    cohort = generate_cohort(a.n, a.centres, seed=a.seed)
    X = join_feature_tables(cohort.clinical, make_image_feature_proxies(cohort.latent, seed=a.seed))
    centres = sorted(X["centre"].astype(str).unique())
    held = centres[-max(1, len(centres) // 4) :]
    test = X["centre"].astype(str).isin(held).to_numpy()
    train = ~test
    y = endpoint(X, "aggressive")
    oracle = cohort.oracle.set_index("patient_id").loc[X["patient_id"]]
    print(
        f"synthetic cohort: {a.n} patients, {a.centres} centres; held-out centres {held} "
        f"({int(test.sum())} patients, {int(y['event'][test].sum())} aggressive recurrences "
        "by 24 m)"
    )
    print("image features: PROXIES of the latent traits (MRI and WSI pipelines not wired yet)\n")
    c_oracle = concordance(y[test], oracle["true_p_aggressive24"].to_numpy()[test])
    rows = [_row("oracle (true 24-month risk)", c_oracle, c_oracle, "reference")]
    scores = {}
    models = [
        ("clinical-only Cox", CoxBaseline(), ""),
        ("RSF (clinical)", RSFBaseline(n_estimators=100), ""),
        ("GB Cox (clinical)", GBCoxBaseline(n_estimators=100), ""),
        ("BCLC", BCLCBaseline(), ""),
        ("ERASL-pre", ERASLBaseline("pre"), "provisional coefficients"),
        ("ERASL-post", ERASLBaseline("post"), "provisional coefficients"),
        ("PRE (a) penalised Cox", PreModel(), "goal: within 0.03 of oracle"),
        ("PRE (a) GB Cox", PreModel(base="gbsa", n_estimators=150), ""),
        ("POST penalised Cox", PostModel(), "goal: above PRE"),
    ]
    for name, model, note in models:
        t = time.time()
        model.fit(X[train], y[train])
        scores[name] = model.score(X[test], y[test])
        rows.append(_row(name, scores[name], c_oracle, f"{note} ({time.time() - t:.1f} s)".strip()))
    print(pd.DataFrame(rows).to_string(index=False))
    pre, post = scores["PRE (a) penalised Cox"], scores["POST penalised Cox"]
    print(
        f"\nPRE goal (C within 0.03 of oracle {c_oracle:.3f}): "
        f"{'MET' if c_oracle - pre <= 0.03 else 'NOT MET'}"
        f" ({pre:.3f}); POST > PRE: {'MET' if post > pre else 'NOT MET'} ({post:.3f} vs {pre:.3f})"
    )

    # treatment benefit
    yr = endpoint(X, "rfs")
    T = oracle[[f"true_rfs24_{arm}" for arm in ARMS]].to_numpy()[test]
    v_oracle, v_single = T.max(1).mean(), T.mean(0).max()
    print(
        f"\nbenefit: oracle policy {v_oracle:.4f}, best single regimen "
        f"({ARMS[int(T.mean(0).argmax())]}) {v_single:.4f}, oracle gain {v_oracle - v_single:.4f}"
    )
    brow = []
    for name, kw in (
        ("T-learner (GB Cox)", {"learner": "t"}),
        ("DR-learner (GB Cox)", {"learner": "dr"}),
    ):
        t = time.time()
        m = TreatmentBenefitModel(n_bootstrap=a.bootstrap, random_state=a.seed, **kw).fit(
            X[train], yr[train]
        )
        tab = m.predict_benefit(X[test]).table
        for label, col in (("point estimate", "best_arm"), ("with abstention", "policy")):
            pol = tab[col].map({arm: i for i, arm in enumerate(ARMS)}).to_numpy()
            v = T[np.arange(len(pol)), pol].mean()
            brow.append(
                {
                    "model": name,
                    "policy": label,
                    "mean true RFS24": round(v, 4),
                    "share of oracle gain": f"{(v - v_single) / (v_oracle - v_single):.0%}",
                    "abstain": f"{(~tab['confident']).mean():.0%}",
                    "fit s": round(time.time() - t, 1),
                }
            )
    print(pd.DataFrame(brow).to_string(index=False))
    print("goal: share of oracle gain >= 90 %")

    # deep PRE model: time and memory
    n = min(a.deep_n, len(X))
    Xd = X.iloc[:n].copy()
    Xd["mri_crop"] = _crops(
        cohort.latent.set_index("patient_id").loc[Xd["patient_id"]].reset_index(), a.seed
    )
    yd = y[:n]
    rss0 = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss
    t = time.time()
    deep = DeepPreModel(epochs=a.deep_epochs, num_threads=2, random_state=a.seed).fit(Xd, yd)
    dt = time.time() - t
    rss1 = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss
    print(
        f"\ndeep PRE (b) on {n} patients, {a.deep_epochs} epochs, 2 threads: {dt / 60:.1f} min "
        f"(goal <= 10 min: {'MET' if dt <= 600 else 'NOT MET'}); peak RSS {rss1 / 1024:.0f} MiB "
        f"(+{(rss1 - rss0) / 1024:.0f} MiB during fit); apparent C {deep.score(Xd, yd):.3f}"
    )
    print(f"\ntotal {time.time() - t0:.0f} s")
    return 0


if __name__ == "__main__":
    sys.exit(main())
