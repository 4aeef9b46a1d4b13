"""What the synthetic cohort lets any model reach: information ceilings (issue 7).

``benchmarks/models.py`` compares learnt models with the oracle. This script asks what
the generator's settings allow at all, so that a goal a model misses can be told
apart from a goal the data cannot support:

1. **PRE vs POST** (aggressive recurrence by 24 months): a Cox model fitted on a large
   cohort (default 12,000 patients, two thirds to fit, one third to score) with the
   *noise-free* latent image traits in place of measured features: clinical only;
   PRE ceiling = pre-operative clinical + the latent MRI traces; POST ceiling = PRE +
   pathology report + the latent TIME traits. Beside the oracle's C-index, for several
   ``mri_trace_sd`` values (how much of the tumour-driven risk MRI shows; 0.25 is the
   default). Goals of issue 7: PRE within 0.03 of the oracle, POST above PRE.
2. **Treatment benefit**: the oracle policy's gain over the best single regimen (true
   2-year RFS, held-out centres) and the share of it reached by the generator's own
   hazard model with every part known but the seven treatment-effect sizes, which are
   fitted by maximum likelihood (``benchmarks/_known_hazards.py``), for several
   training sizes. The model is correctly specified, so what it misses is sampling
   error that no learner avoids at that size. Goal of issue 7: 90 % of the gain.

Run: ``python benchmarks/ceilings.py [--n 12000] [--quick]``.
"""

from __future__ import annotations

import argparse
import sys
import time
import warnings
from pathlib import Path

import numpy as np
import pandas as pd
from scipy.special import logit

from hccstrat.models import ARMS
from hccstrat.models._base import concordance
from hccstrat.survival import endpoint
from hccstrat.synthetic.cohort import generate_cohort

_MRI = ("mri_rim", "mri_margin_irregularity", "mri_peritumoral", "mri_washout", "mri_capsule")


def _designs(cohort) -> dict[str, np.ndarray]:
    """Clinical, PRE-ceiling and POST-ceiling design matrices (latent image traits)."""
    c = cohort.clinical.reset_index(drop=True)
    lat = cohort.latent.reset_index(drop=True)
    clin = np.column_stack(
        [
            np.log(c["afp_ng_ml"]), np.log(c["tumour_size_cm"]), c["tumour_number"] >= 2,
            c["macrovascular_invasion"], np.log(c["bilirubin_umol_l"]), c["albumin_g_l"],
            c["sex"] == "M", c["cirrhosis"], c["age"],
        ]
    ).astype(float)
    mri = np.column_stack(
        [logit(np.clip(lat[k].to_numpy(float), 1e-4, 1 - 1e-4)) for k in _MRI]
        + [lat["mri_arterial_enhancement"].to_numpy(float)]
    )
    path = np.column_stack(
        [
            c["mvi"].astype(float), c["satellite_nodules"].astype(float),
            c["edmondson_grade"] >= 3, c["margin_status"] == "R1",
            c["capsule_pathology"] != "complete",
        ]
    ).astype(float)
    phen = lat["immune_phenotype"].astype(str)
    wsi = np.column_stack(
        [
            phen == "inflamed", phen == "desert", lat["lymphocyte_density"],
            lat["margin_lymphocyte_density"], lat["necrosis_fraction"],
            lat["stroma_fraction"], lat["macrotrabecular"],
        ]
    ).astype(float)
    pre = np.column_stack([clin, mri])
    return {"clinical": clin, "PRE ceiling": pre, "POST ceiling": np.column_stack([pre, path, wsi])}


def _c_index(x: np.ndarray, y, fit: np.ndarray) -> float:
    from sksurv.linear_model import CoxPHSurvivalAnalysis

    x = (x - x[fit].mean(0)) / (x[fit].std(0) + 1e-9)
    model = CoxPHSurvivalAnalysis(alpha=1e-3).fit(x[fit], y[fit])
    return concordance(y[~fit], model.predict(x[~fit]))


def ceilings_pre_post(n: int, trace_sds: list[float], seed: int) -> pd.DataFrame:
    """One row per ``mri_trace_sd``: oracle, clinical, PRE and POST ceilings."""
    rows = []
    for sd in trace_sds:
        cohort = generate_cohort(n, 8, seed=seed, mri_trace_sd=sd)
        y = endpoint(cohort.clinical, "aggressive")
        fit = np.arange(n) % 3 != 0
        oracle = concordance(y[~fit], cohort.oracle["true_p_aggressive24"].to_numpy()[~fit])
        row = {"mri_trace_sd": sd, "oracle": oracle}
        row.update({k: _c_index(x, y, fit) for k, x in _designs(cohort).items()})
        row["PRE gap"] = oracle - row["PRE ceiling"]
        row["POST - PRE"] = row["POST ceiling"] - row["PRE ceiling"]
        rows.append(row)
    return pd.DataFrame(rows)


def ceilings_benefit(sizes: list[int], seeds: list[int]) -> pd.DataFrame:
    """Oracle gain and the known-hazards reference's share of it, per training size."""
    sys.path.insert(0, str(Path(__file__).parent))
    from _known_hazards import known_hazards_policy
    from models import _replicate

    rows = []
    for n in sizes:
        for seed in seeds:
            cohort, X, _held, test, oracle = _replicate(n, 8, seed)
            y = endpoint(X, "rfs")
            T = oracle[[f"true_rfs24_{a}" for a in ARMS]].to_numpy()[test]
            v_oracle, v_single = T.max(1).mean(), T.mean(0).max()
            pol = known_hazards_policy(cohort, X, ~test, test, y)[0]
            idx = pd.Series(pol).map({a: i for i, a in enumerate(ARMS)}).to_numpy()
            v = T[np.arange(len(idx)), idx].mean()
            rows.append(
                {
                    "n": n, "seed": seed,
                    "oracle gain (points)": 100 * (v_oracle - v_single),
                    "known-hazards share": (v - v_single) / (v_oracle - v_single),
                }
            )
    return pd.DataFrame(rows)


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--n", type=int, default=12000, help="patients for the PRE/POST ceilings")
    ap.add_argument("--seed", type=int, default=3)
    ap.add_argument("--quick", action="store_true", help="small cohorts (smoke test)")
    a = ap.parse_args(argv)
    warnings.simplefilter("ignore")
    t0 = time.time()
    n, sds, sizes, seeds = a.n, [0.25, 0.5, 0.8], [3000, 10000, 30000], [0, 1, 2, 3]
    if a.quick:
        n, sds, sizes, seeds = 1500, [0.25, 0.8], [1500], [0]
    tab = ceilings_pre_post(n, sds, a.seed)
    print(
        f"aggressive recurrence by 24 months: Cox on noise-free latent traits, {n} patients "
        f"(2/3 fit, 1/3 scored); goals: PRE gap <= 0.03, POST - PRE > 0"
    )
    print(tab.round(4).to_string(index=False))
    ben = ceilings_benefit(sizes, seeds)
    print(
        "\ntreatment benefit: oracle gain over the best single regimen and the share of it "
        "reached by the generator's hazard model with only the seven effect sizes fitted "
        "(held-out centres); goal: 90 %"
    )
    print(
        ben.groupby("n")[["oracle gain (points)", "known-hazards share"]]
        .agg(["mean", "min", "max"])
        .round(3)
        .to_string()
    )
    print(f"\ntotal {time.time() - t0:.0f} s")
    return 0


if __name__ == "__main__":
    sys.exit(main())
