"""Ray batch jobs: identical outputs to the single-machine path; retries after a crash."""

from __future__ import annotations

import os
from pathlib import Path

import numpy as np
import pandas as pd
import pytest

from hccstrat.io.store import read_features
from hccstrat.pathology.batch import WsiJobConfig, run_batch

pytestmark = pytest.mark.usefixtures("ray_local")

VOLATILE = {"seconds", "tiles_per_s", "updated", "finished"}


def _stable(df: pd.DataFrame) -> pd.DataFrame:
    return df.drop(columns=[c for c in df.columns if c in VOLATILE]).reset_index(drop=True)


@pytest.mark.slow
def test_wsi_embed_on_ray_matches_single_machine(tiny_slides, tmp_path):
    from hccstrat.distributed.ray_jobs import wsi_batch

    cfg = WsiJobConfig(stage="embed", workers=1)
    ref = run_batch([tiny_slides], tmp_path / "local", cfg)
    got = wsi_batch([tiny_slides], tmp_path / "ray", cfg, encoder_actors=2)
    assert list(got["slide_id"]) == list(ref["slide_id"]) == ["broken", "s0", "s1", "s2"]
    a, b = _stable(ref), _stable(got)
    a["output_path"] = a["output_path"].str.replace(str(tmp_path / "local"), "X")
    b["output_path"] = b["output_path"].str.replace(str(tmp_path / "ray"), "X")
    keep = [c for c in a.columns if c != "sha256"]  # HDF5 files carry a creation time
    pd.testing.assert_frame_equal(a[keep], b[keep][keep], check_dtype=False)
    assert (got.set_index("slide_id").loc["broken", "error_code"]) == "HCC-WSI-001"
    for sid in ("s0", "s1", "s2"):
        fa = read_features(tmp_path / "local" / "features" / f"{sid}.h5")
        fb = read_features(tmp_path / "ray" / "features" / f"{sid}.h5")
        assert fa.features.shape[0] > 0
        np.testing.assert_array_equal(fa.features, fb.features)
        np.testing.assert_array_equal(fa.coords, fb.coords)
        assert {k: v for k, v in fa.attrs.items() if k != "created"} == {
            k: v for k, v in fb.attrs.items() if k != "created"
        }
        qa = (tmp_path / "local" / "qc" / f"{sid}.csv").read_bytes()
        assert qa == (tmp_path / "ray" / "qc" / f"{sid}.csv").read_bytes()
    # resume: everything done is skipped; a corrupted output is redone
    again = wsi_batch([tiny_slides], tmp_path / "ray", cfg).set_index("slide_id")
    assert (again.drop(index="broken")["status"] == "skipped").all()
    (tmp_path / "ray" / "features" / "s1.h5").write_bytes(b"corrupt")
    third = wsi_batch([tiny_slides], tmp_path / "ray", cfg).set_index("slide_id")
    assert third.loc["s1", "status"] == "ok" and third.loc["s0", "status"] == "skipped"
    np.testing.assert_array_equal(
        read_features(tmp_path / "ray" / "features" / "s1.h5").features,
        read_features(tmp_path / "local" / "features" / "s1.h5").features,
    )


def _crash_once_then(marker_dir: Path, fn):
    """A slide function that kills its own worker process on the first attempt per slide."""

    def wrapped(path, out_dir, cfg, *, slide_id, encoder):
        marker = marker_dir / f"{slide_id}.attempt"
        if not marker.exists():
            marker.write_text(str(os.getpid()))
            os._exit(1)  # the worker dies: Ray must retry the task
        return fn(path, out_dir, cfg, slide_id=slide_id, encoder=encoder)

    return wrapped


def test_killed_worker_is_retried_without_duplicate_or_lost_output(tiny_slides, tmp_path):
    from hccstrat.distributed.ray_jobs import wsi_batch
    from hccstrat.pathology.batch import process_slide

    markers = tmp_path / "markers"
    markers.mkdir()
    cfg = WsiJobConfig(stage="tile")
    slides = sorted(tiny_slides.glob("s*.tiff"))
    got = wsi_batch(slides, tmp_path / "out", cfg, max_retries=2,
                    slide_fn=_crash_once_then(markers, process_slide))
    assert len(list(markers.iterdir())) == 3  # every slide crashed once
    assert list(got["slide_id"]) == ["s0", "s1", "s2"]
    assert (got["status"] == "ok").all(), got["error_message"].tolist()
    outs = sorted(p.name for p in (tmp_path / "out" / "coords").iterdir())
    assert outs == ["s0.h5", "s1.h5", "s2.h5"]  # no duplicate, no temp file left
    run_batch(slides, tmp_path / "ref", cfg)  # the single-machine reference
    for sid in ("s0", "s1", "s2"):
        import h5py

        with h5py.File(tmp_path / "out" / "coords" / f"{sid}.h5") as fa, \
             h5py.File(tmp_path / "ref" / "coords" / f"{sid}.h5") as fb:
            np.testing.assert_array_equal(fa["coords"][:], fb["coords"][:])
    man = pd.read_csv(tmp_path / "out" / "manifest_tile.csv")
    assert man["slide_id"].is_unique and len(man) == 3


def test_map_items_records_a_worker_lost_for_good_and_goes_on(tmp_path):
    from hccstrat.distributed.ray_jobs import DIST_ERROR_CODE, map_items

    # closures are pickled by value (Ray workers cannot import this test module)
    def _double(arg):
        value, out = arg
        Path(out).write_text(str(2 * value))
        return out

    def _always_crash(arg):
        os._exit(3)

    items = [("a", (1, tmp_path / "a.txt")), ("b", (2, tmp_path / "b.txt"))]
    man = map_items(items, _double, tmp_path / "m.csv", stage="x").set_index("item")
    assert (man["status"] == "ok").all() and (tmp_path / "b.txt").read_text() == "4"
    lost = map_items([("c", None)], _always_crash, tmp_path / "m.csv", stage="x",
                     max_retries=0).set_index("item")
    assert lost.loc["c", "error_code"] == DIST_ERROR_CODE
    assert lost.loc["a", "status"] == "ok"  # earlier rows kept


def test_mri_preprocess_on_ray_matches_single_machine(tmp_path):
    import SimpleITK as sitk

    from hccstrat.distributed.ray_jobs import map_items
    from hccstrat.radiology.batch import run_batch as mri_batch
    from hccstrat.radiology.batch import stage_preprocess
    from hccstrat.radiology.preprocess import PreprocessConfig
    from hccstrat.synthetic.mri import default_latent, write_study

    root = tmp_path / "mri"
    write_study(root / "A", default_latent(True), vendor="GE", patient_id="A", seed=1,
                shape=(48, 48, 16), spacing=(8.0, 8.0, 10.0), write_dicom_seg=False)
    (root / "B").mkdir(parents=True)
    (root / "B" / "x.dcm").write_bytes(b"garbage")
    cfg = PreprocessConfig(register=False)

    def items(out):
        return [(d, (root / d, out / d / "preprocessed", cfg)) for d in ("A", "B")]

    ref = mri_batch(items(tmp_path / "local"), stage_preprocess,
                    tmp_path / "local" / "manifest.csv", stage="preprocess")
    got = map_items(items(tmp_path / "ray"), stage_preprocess,
                    tmp_path / "ray" / "manifest.csv", stage="preprocess")
    cols = ["item", "stage", "status", "error_code"]
    pd.testing.assert_frame_equal(ref[cols], got.sort_values("item")[cols].reset_index(drop=True))
    niis = sorted((tmp_path / "local" / "A" / "preprocessed").rglob("*.nii.gz"))
    assert niis
    for p in niis:
        q = tmp_path / "ray" / p.relative_to(tmp_path / "local")
        np.testing.assert_array_equal(sitk.GetArrayFromImage(sitk.ReadImage(str(p))),
                                      sitk.GetArrayFromImage(sitk.ReadImage(str(q))))
    again = map_items(items(tmp_path / "ray"), stage_preprocess,
                      tmp_path / "ray" / "manifest.csv", stage="preprocess")
    assert again.set_index("item").loc["A", "finished"] == got.set_index("item").loc["A",
                                                                                     "finished"]


def test_score_batch_equals_predict_of_a_fitted_cox_model(tmp_path):
    from sksurv.linear_model import CoxPHSurvivalAnalysis

    from hccstrat.distributed.ray_jobs import score_batch, score_local
    from hccstrat.survival import make_surv

    rng = np.random.default_rng(0)
    X = pd.DataFrame(rng.normal(size=(530, 4)), columns=list("abcd"),
                     index=[f"P{i}" for i in range(530)])
    t = rng.exponential(np.exp(-X["a"].to_numpy()))
    model = CoxPHSurvivalAnalysis().fit(X, make_surv(rng.random(530) < 0.7, t))
    got = score_batch(model, X, tmp_path, chunk_rows=100)
    np.testing.assert_array_equal(got.to_numpy(), model.predict(X))
    np.testing.assert_array_equal(got.to_numpy(), score_local(model, X))
    assert list(got.index) == list(X.index)
    man = pd.read_csv(tmp_path / "manifest_score.csv")
    assert len(man) == 6 and (man["status"] == "ok").all()
    (tmp_path / "scores" / "chunk_00002.csv").unlink()
    man.loc[man["item"] == "chunk_00002", "status"] = "failed"
    man.to_csv(tmp_path / "manifest_score.csv", index=False)
    again = score_batch(model, X, tmp_path, chunk_rows=100)
    np.testing.assert_array_equal(again.to_numpy(), got.to_numpy())
