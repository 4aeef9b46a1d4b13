"""Scale benchmark: Ray throughput (1 vs 2 local workers) and federated vs pooled C-index.

Prints, side by side in one run:

* WSI embedding (builtin encoder) tiles/s: single-machine ``run_batch`` (reference),
  Ray with 1 and 2 local workers;
* batch scoring rows/s of a fitted scikit-survival Cox model: plain ``predict``
  (reference), Ray with 1 and 2 workers;
* C-index of federated training (FedAvg, FedProx, secure aggregation, DP) next to
  pooled training (reference) on the synthetic cohort split by centre;
* the capacity estimate of docs/scale.md with the measured builtin throughput.

Usage: ``.venv/bin/python benchmarks/scale.py [--quick]``.
"""

from __future__ import annotations

import argparse
import logging
import os
import tempfile
import time
from pathlib import Path

import numpy as np
import pandas as pd

os.environ.setdefault("FLWR_TELEMETRY_ENABLED", "0")


def _slides(d: Path, n: int, size: int) -> list[Path]:
    from hccstrat.synthetic.wsi import default_latent, write_slide

    out = []
    for k in range(n):
        p = d / f"b{k}.tiff"
        write_slide(p, default_latent(), size=(size, size), seed=k, geojson=False,
                    artefacts=False, texture_size=256)
        out.append(p)
    return out


def bench_wsi(n_slides: int, size: int) -> pd.DataFrame:
    from hccstrat.distributed.ray_jobs import wsi_batch
    from hccstrat.pathology.batch import WsiJobConfig, run_batch

    rows = []
    with tempfile.TemporaryDirectory() as tmp:
        tmp = Path(tmp)
        slides = _slides(tmp / "in", n_slides, size)
        cfg = WsiJobConfig(stage="embed", workers=1)
        run_batch(slides[:1], tmp / "warm_ref", cfg)  # imports and encoder warm-up
        t = time.perf_counter()
        df = run_batch(slides, tmp / "ref", cfg)
        dt = time.perf_counter() - t
        tiles = int(df["n_tiles"].sum())
        rows.append(("single machine (reference)", tiles, dt))
        # one local Ray with 2 CPUs; "1 worker" reserves both CPUs per task
        wsi_batch(slides[:2], tmp / "warm", cfg, encoder_actors=2)  # start the workers
        for workers in (1, 2):
            t = time.perf_counter()
            got = wsi_batch(slides, tmp / f"ray{workers}", cfg, encoder_actors=workers,
                            cpus_per_task=2 / workers)
            dt = time.perf_counter() - t
            assert (got["status"] == "ok").all(), got["error_message"].tolist()
            rows.append((f"Ray, {workers} local worker(s)", int(got["n_tiles"].sum()), dt))
    df = pd.DataFrame(rows, columns=["run", "tiles", "seconds"])
    df["tiles_per_s"] = df["tiles"] / df["seconds"]
    return df


def bench_scoring(n_rows: int) -> pd.DataFrame:
    from sksurv.linear_model import CoxPHSurvivalAnalysis

    from hccstrat.distributed.ray_jobs import score_batch
    from hccstrat.survival import make_surv

    rng = np.random.default_rng(0)
    X = pd.DataFrame(rng.normal(size=(n_rows, 12)), columns=[f"x{i}" for i in range(12)])
    fit_n = 2000
    t_ = rng.exponential(np.exp(-X["x0"].to_numpy()[:fit_n]))
    model = CoxPHSurvivalAnalysis().fit(X.iloc[:fit_n], make_surv(rng.random(fit_n) < 0.7, t_))
    t = time.perf_counter()
    ref = model.predict(X)
    rows = [("plain predict (reference)", n_rows, time.perf_counter() - t)]
    with tempfile.TemporaryDirectory() as tmp:
        score_batch(model, X.iloc[:10], Path(tmp) / "warm", chunk_rows=5)
        for workers in (1, 2):
            t = time.perf_counter()
            got = score_batch(model, X, Path(tmp) / f"s{workers}",
                              chunk_rows=max(1, n_rows // 8), cpus_per_task=2 / workers)
            rows.append((f"Ray, {workers} local worker(s)", n_rows, time.perf_counter() - t))
            np.testing.assert_array_equal(got.to_numpy(), ref)
    df = pd.DataFrame(rows, columns=["run", "rows", "seconds"])
    df["rows_per_s"] = df["rows"] / df["seconds"]
    return df


def bench_federated(n_patients: int, n_centres: int, rounds: int) -> pd.DataFrame:
    from hccstrat.distributed.compare import compare_with_pooled
    from hccstrat.distributed.fed_data import centres_from_cohort
    from hccstrat.distributed.federated import FederatedConfig
    from hccstrat.synthetic.cohort import generate_cohort

    centres, _ = centres_from_cohort(generate_cohort(n_patients, n_centres, seed=0), seed=0)
    runs = {
        "FedAvg": FederatedConfig(rounds=rounds),
        "FedProx (mu=0.1)": FederatedConfig(algorithm="fedprox", rounds=rounds),
        "FedAvg + secure aggregation": FederatedConfig(rounds=rounds, secure=True,
                                                       secret="bench"),
        "FedAvg + DP (clip 0.5, sigma 0.02)": FederatedConfig(rounds=rounds, clip=0.5,
                                                             noise_multiplier=0.02),
    }
    rows = []
    for name, cfg in runs.items():
        c = compare_with_pooled(centres, cfg)
        rows.append({"run": name, "C federated": c.c_federated, "C pooled (reference)":
                     c.c_pooled, "difference": c.delta, "C meta (centres)":
                     c.meta_federated.estimate, "I2": c.meta_federated.i2,
                     "fed seconds": c.seconds["federated"]})
    return pd.DataFrame(rows)


def capacity(builtin_tiles_per_s_per_core: float) -> pd.DataFrame:
    """10,000-patient validation: slides x tiles x encoder throughput (docs/scale.md)."""
    slides = 10_000 * 2  # assumption: 2 diagnostic H&E slides per patient
    tiles = slides * 20_000  # assumption: ~2.5 cm^2 tissue at 0.5 um/px, 224 px tiles
    rows = [
        ("builtin, 1 CPU core (measured here)", builtin_tiles_per_s_per_core),
        ("builtin, 64 CPU cores (linear scaling)", 64 * builtin_tiles_per_s_per_core),
        ("UNI ViT-L/16, 1 GPU (assumed 1,000 tiles/s fp16)", 1000.0),
        ("UNI ViT-L/16, 8 GPUs (assumed)", 8000.0),
    ]
    df = pd.DataFrame(rows, columns=["encoder", "tiles_per_s"])
    df["hours"] = tiles / df["tiles_per_s"] / 3600
    df.attrs["tiles"] = tiles
    return df


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--quick", action="store_true", help="tiny sizes (seconds)")
    args = ap.parse_args()
    logging.getLogger("flwr").setLevel(logging.WARNING)
    for name in ("flwr",):
        logging.getLogger(name).propagate = False
    q = args.quick
    pd.set_option("display.width", 140)
    from hccstrat.distributed.ray_jobs import init_ray

    t0 = time.perf_counter()
    ray = init_ray(num_cpus=2, object_store_mb=256)  # one local Ray, 2 CPUs
    print(f"local Ray started in {time.perf_counter() - t0:.1f} s")
    print("== WSI embedding, builtin encoder (tiles/s) ==")
    wsi = bench_wsi(2 if q else 6, 768 if q else 2048)
    print(wsi.to_string(index=False, float_format=lambda v: f"{v:.2f}"))
    print("\n== batch scoring, sksurv CoxPH (rows/s) ==")
    print(bench_scoring(20_000 if q else 500_000).to_string(index=False,
                                                            float_format=lambda v: f"{v:.1f}"))
    ray.shutdown()
    print("\n== federated vs pooled Cox (synthetic cohort split by centre; held-out C) ==")
    fed = bench_federated(600 if q else 4000, 3 if q else 8, 8 if q else 30)
    print(fed.to_string(index=False, float_format=lambda v: f"{v:.4f}"))
    per_core = float(wsi["tiles_per_s"].iloc[0])
    cap = capacity(per_core)
    print(f"\n== capacity, 10,000-patient validation ({cap.attrs['tiles']:,} tiles) ==")
    print(cap.to_string(index=False, float_format=lambda v: f"{v:,.1f}"))


if __name__ == "__main__":
    main()
