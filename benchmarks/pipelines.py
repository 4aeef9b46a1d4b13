"""Benchmark: PRE / POST on the image pipelines' real outputs vs on feature proxies.

``benchmarks/models.py`` trains on *proxies* of the image features (latent trait +
measurement noise, :mod:`hccstrat.synthetic.image_proxies`) because rendering and
measuring thousands of images is slow. This script closes the loop on a smaller
cohort: for every patient it renders the 4-phase MRI study as DICOM (the centre's
scanner vendor) and an H&E slide (the centre's stain), runs the real pipelines on
them — DICOM ingest, registration and normalisation, radiomics
(:mod:`hccstrat.radiology`); tiling, tile classification, lymphocyte counting and the
TIME panel (:mod:`hccstrat.pathology.time`) — and then trains the same PRE and POST
models on (a) the pipelines' feature tables and (b) the proxies, for the same
patients, each centre scored by models trained on the other centres (leave one centre
out), beside the oracle and a clinical-only Cox model.

Images are kept small so the run takes about 20 minutes on 2 cores for 1,200 patients
(80 x 80 x 28 MRI at 4.5 x 4.5 x 7 mm; 2,048 px slides at 0.5 µm/px, i.e. 1 mm of
tissue); each patient's images are deleted once measured. The tile classifier is
trained on 12 annotated synthetic slides that are not cohort patients, and every
slide is stain-normalised to them (the centres' stains differ).
Measured rows are cached (``--cache``, one JSON line per patient) so an interrupted
run resumes; a patient whose images fail is recorded and left out of the models.

Run: ``python benchmarks/pipelines.py [--n 1200] [--workers 2] [--quick]``.
"""

from __future__ import annotations

import argparse
import json
import shutil
import sys
import time
import warnings
from concurrent.futures import ProcessPoolExecutor, as_completed
from pathlib import Path

import numpy as np
import pandas as pd

_CLF = None  # tile classifier of the worker process (set by _init)


def _init(clf_path: str) -> None:
    global _CLF
    from hccstrat.pathology.tile_classifier import TileClassifier

    _CLF, _ = TileClassifier.load(clf_path)


def _measure(job: dict) -> dict:
    """Render and measure one patient's MRI study and slide; never raises."""
    from hccstrat.io.dicom import scan_folder
    from hccstrat.pathology.time import TimeConfig, extract_tiles, measure_time
    from hccstrat.radiology.features import extract_features
    from hccstrat.radiology.preprocess import find_masks, preprocess_study
    from hccstrat.synthetic.mri import write_study
    from hccstrat.synthetic.wsi import write_slide

    pid, work = job["patient_id"], Path(job["work"]) / job["patient_id"]
    out: dict = {"patient_id": pid}
    try:
        t = time.perf_counter()
        write_study(work / "mri", job["latent"], vendor=job["vendor"], patient_id=pid,
                    seed=job["seed"], shape=job["mri_shape"], spacing=job["mri_spacing"],
                    write_dicom_seg=False)
        study = scan_folder(work / "mri").study()
        masks = find_masks(work / "mri", study)
        pre = preprocess_study(study, work / "pre", tumour_mask=masks["tumour"],
                               liver_mask=masks["liver"])
        feats = extract_features(pre)
        out["rad"] = {k: float(v) for k, v in feats.items()
                      if isinstance(v, (int, float, np.number)) and not isinstance(v, bool)}
        out["mri_s"] = time.perf_counter() - t
        t = time.perf_counter()
        cfg = TimeConfig(margin_um=200.0)  # 1-mm-wide slides: a narrow margin band
        info = write_slide(work / "slide.tiff", job["latent"], size=(job["wsi_px"],) * 2,
                           stain_shift=job["stain"], seed=job["seed"], texture_size=256,
                           geojson=False, workers=1)
        st = extract_tiles(info.path, config=cfg, slide_id=pid, stain_target=_CLF.stain_target_)
        res = measure_time(st, _CLF, cfg)
        out["time"] = {k: v for k, v in res.row.items() if k != "slide_id"}
        out["wsi_s"] = time.perf_counter() - t
    except Exception as err:  # one patient's failure is recorded, the batch goes on
        out["error"] = f"{type(err).__name__}: {err}"
    finally:
        shutil.rmtree(work, ignore_errors=True)
    return out


def _classifier(cache: Path, seed: int, n_slides: int = 12) -> Path:
    """Tile classifier fitted on annotated synthetic slides spanning the cohort's range
    of grade, stroma, necrosis and immune phenotype (thrombi on two slides in three)."""
    from hccstrat.pathology.time import TimeConfig
    from hccstrat.pathology.time_batch import train_tile_classifier
    from hccstrat.synthetic.wsi import default_latent, write_slide

    path = cache / "tile_classifier.pkl"
    if path.exists():
        return path
    rng = np.random.default_rng(seed + 7)
    slides = []
    for i in range(n_slides):
        lat = default_latent(
            patient_id=f"TRAIN-{i}", immune_phenotype=("inflamed", "excluded", "desert")[i % 3],
            vascular_invasion=i % 3 != 2, aggressiveness=float(rng.uniform(-2.0, 2.0)),
            lymphocyte_density=float(rng.uniform(0.02, 0.7)),
            margin_lymphocyte_density=float(rng.uniform(0.05, 0.8)),
            stroma_fraction=float(rng.uniform(0.05, 0.45)),
            necrosis_fraction=float(rng.uniform(0.0, 0.3)),
            macrotrabecular=bool(rng.uniform() < 0.2),
        )
        slides.append(write_slide(cache / "train" / f"TRAIN-{i}.tiff", lat, size=(2048, 2048),
                                  seed=seed + 50 + i, texture_size=256, geojson=False).path)
    clf, _ = train_tile_classifier(slides, config=TimeConfig(margin_um=200.0),
                                   normalise_stains=True)
    clf.save(path, purpose="benchmarks/pipelines.py")
    shutil.rmtree(cache / "train", ignore_errors=True)
    return path


def _measure_all(cohort, a, cache: Path) -> dict[str, dict]:
    """Cached per-patient measurements (computed for the patients not yet cached)."""
    from rich.progress import Progress

    from hccstrat.cli.wsi import _centre_shifts

    rows_path = cache / f"rows_seed{a.seed}_n{a.n}.jsonl"
    done: dict[str, dict] = {}
    if rows_path.exists():
        for line in rows_path.read_text().splitlines():
            r = json.loads(line)
            done[r["patient_id"]] = r
    vendors = dict(zip(cohort.centres["centre"], cohort.centres["scanner_vendor"], strict=True))
    shifts = _centre_shifts(cohort)
    jobs = [
        {
            "patient_id": str(r["patient_id"]), "latent": r, "vendor": vendors[r["centre"]],
            "stain": shifts.get(str(r["patient_id"])), "seed": a.seed * 100_000 + i,
            "mri_shape": (a.mri_size, a.mri_size, a.slices),
            "mri_spacing": (360.0 / a.mri_size, 360.0 / a.mri_size, 196.0 / a.slices),
            "wsi_px": a.wsi_px, "work": str(cache / "work"),
        }
        for i, r in enumerate(cohort.latent.to_dict("records"))
        if str(r["patient_id"]) not in done
    ]
    if jobs:
        clf = _classifier(cache, a.seed)
        with (
            ProcessPoolExecutor(a.workers, initializer=_init, initargs=(str(clf),)) as ex,
            rows_path.open("a") as fh,
            Progress() as bar,
        ):
            task = bar.add_task("rendering + measuring images", total=len(jobs))
            for f in as_completed([ex.submit(_measure, j) for j in jobs]):
                r = f.result()
                fh.write(json.dumps(r) + "\n")
                fh.flush()
                done[r["patient_id"]] = r
                bar.advance(task)
    return done


def _tables(rows: dict[str, dict]) -> dict[str, pd.DataFrame]:
    ok = [r for r in rows.values() if "error" not in r]
    rad = pd.DataFrame([{"patient_id": r["patient_id"], **r["rad"]} for r in ok])
    tim = pd.DataFrame([{"patient_id": r["patient_id"], **r["time"]} for r in ok])
    # the panel carries the phenotype both as a label and as time_phenotype_* indicators
    tim = tim.drop(columns="time_immune_phenotype", errors="ignore")
    return {"rad_": rad, "time_": tim}


def _recovery(latent: pd.DataFrame, tables: dict[str, pd.DataFrame]) -> pd.DataFrame:
    """How well each rendered latent trait is recovered: best |Spearman| of any feature."""
    rows = []
    traits = {"rad_": [c for c in latent.columns if c.startswith("mri_") and c != "mri_gap_days"]
              + ["aggressiveness"],
              "time_": ["lymphocyte_density", "margin_lymphocyte_density", "stroma_fraction",
                        "necrosis_fraction", "vascular_invasion", "aggressiveness"]}
    lat = latent.set_index("patient_id")
    for prefix, tab in tables.items():
        t = tab.set_index("patient_id")
        t = t.loc[:, t.std(numeric_only=True).reindex(t.columns).fillna(0) > 0]
        for trait in traits[prefix]:
            v = lat.loc[t.index, trait].astype(float)
            rho = t.corrwith(v, method="spearman").abs()
            rows.append({"pipeline": prefix.rstrip("_"), "latent trait": trait,
                         "best |rho|": round(float(rho.max()), 2), "feature": rho.idxmax()})
    return pd.DataFrame(rows)


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--n", type=int, default=1200)
    ap.add_argument("--centres", type=int, default=6)
    ap.add_argument("--seed", type=int, default=0)
    ap.add_argument("--workers", type=int, default=2)
    ap.add_argument("--mri-size", type=int, default=80)
    ap.add_argument("--slices", type=int, default=28)
    ap.add_argument("--wsi-px", type=int, default=2048)
    ap.add_argument("--cache", type=Path, default=Path("out/bench_pipelines"))
    ap.add_argument("--quick", action="store_true", help="120 patients, 4 centres (smoke test)")
    a = ap.parse_args(argv)
    if a.quick:
        a.n, a.centres = 120, 4
    warnings.simplefilter("ignore")
    from hccstrat.models import CoxBaseline, PostModel, PreModel, join_feature_tables
    from hccstrat.models._base import concordance
    from hccstrat.survival import endpoint
    from hccstrat.synthetic.cohort import generate_cohort
    from hccstrat.synthetic.image_proxies import make_image_feature_proxies

    t0 = time.time()
    a.cache.mkdir(parents=True, exist_ok=True)
    cohort = generate_cohort(a.n, a.centres, seed=a.seed)
    rows = _measure_all(cohort, a, a.cache)
    failed = {p: r["error"] for p, r in rows.items() if "error" in r}
    ok = [r for r in rows.values() if "error" not in r]
    mri_s, wsi_s = np.mean([r["mri_s"] for r in ok]), np.mean([r["wsi_s"] for r in ok])
    print(f"{len(ok)}/{a.n} patients measured ({len(failed)} failed"
          + (f", e.g. {next(iter(failed.values()))}" if failed else "") + "); per patient: "
          f"MRI render+pipeline {mri_s:.2f} s, WSI render+TIME {wsi_s:.2f} s (1 process)")
    pipes = _tables(rows)
    keep = cohort.clinical["patient_id"].astype(str).isin(pipes["rad_"]["patient_id"])
    clinical = cohort.clinical[keep].reset_index(drop=True)
    proxies = make_image_feature_proxies(cohort.latent, seed=a.seed)
    X = {"pipelines": join_feature_tables(clinical, pipes),
         "proxies": join_feature_tables(clinical, proxies)}
    y = endpoint(clinical, "aggressive")
    oracle = cohort.oracle.set_index("patient_id").loc[clinical["patient_id"]]
    truth = oracle["true_p_aggressive24"].to_numpy()
    fits = [("clinical-only Cox", CoxBaseline, "proxies")]
    fits += [(n, m, f) for f in ("pipelines", "proxies")
             for n, m in (("PRE (a) penalised Cox", PreModel), ("POST penalised Cox", PostModel))]
    centre = clinical["centre"].astype(str).to_numpy()
    per = []  # leave one centre out: every patient is scored by a model that never saw its centre
    for c in sorted(set(centre)):
        test = centre == c
        row = {"centre": c, "n": int(test.sum()), "events": int(y["event"][test].sum()),
               "oracle": concordance(y[test], truth[test])}
        for name, cls, feats in fits:
            model = cls().fit(X[feats][~test], y[~test])
            row[f"{name} | {'clinical' if cls is CoxBaseline else feats}"] = model.score(
                X[feats][test], y[test])
        per.append(row)
    per = pd.DataFrame(per)
    models = [c for c in per.columns if c not in ("centre", "n", "events")]
    tab = pd.DataFrame({
        "model | features": models,
        "C-index (mean over centres)": [round(per[m].mean(), 3) for m in models],
        "vs oracle": [round((per[m] - per["oracle"]).mean(), 3) for m in models],
        "per centre": [" ".join(f"{v:.3f}" for v in per[m]) for m in models],
    })
    print(f"\naggressive recurrence by 24 months, leave one centre out ({len(per)} centres: "
          + ", ".join(f"{r.centre} n={r.n}/{r.events} events" for r in per.itertuples()) + ")")
    print(tab.to_string(index=False))
    print("\nhow well the pipelines recover the rendered latent traits (all patients):")
    print(_recovery(cohort.latent, pipes).to_string(index=False))
    print(f"\ntotal {time.time() - t0:.0f} s (cache: {a.cache})")
    return 0


if __name__ == "__main__":
    sys.exit(main())
