"""TIME panel against the synthetic ground truth, and on a real slide."""

from __future__ import annotations

import numpy as np
import pandas as pd
import pytest
from scipy.stats import spearmanr
from sklearn.metrics import roc_auc_score

from hccstrat.exceptions import ConfigError, ModelError, NotFittedError
from hccstrat.pathology.lymphocytes import LymphocyteDetector, haematoxylin
from hccstrat.pathology.tile_classifier import (
    TILE_CLASSES,
    TileClassifier,
    add_context,
    tile_labels_from_map,
    to_coarse,
)
from hccstrat.pathology.time import (
    PANEL_COLUMNS,
    TimeConfig,
    extract_tiles,
    measure_time,
    plot_time_overlay,
    time_panel,
)
from hccstrat.synthetic.wsi import default_latent, read_truth, write_slide

N_TRAIN, N_SLIDES = 6, 12
CFG = TimeConfig(margin_um=200.0)  # 2048-px slides are 1 mm wide: a narrow margin band


def _latents() -> list[dict]:
    rng = np.random.default_rng(1)
    out = []
    for i in range(N_SLIDES):
        ph = ("inflamed", "excluded", "desert")[i % 3]
        lym = {"inflamed": (0.3, 0.8), "excluded": (0.03, 0.3), "desert": (0.0, 0.1)}[ph]
        mlym = {"inflamed": (0.3, 0.8), "excluded": (0.3, 0.8), "desert": (0.0, 0.2)}[ph]
        out.append(
            default_latent(
                patient_id=f"P{i:02d}",
                immune_phenotype=ph,
                lymphocyte_density=rng.uniform(*lym),
                margin_lymphocyte_density=rng.uniform(*mlym),
                stroma_fraction=rng.uniform(0.05, 0.4),
                necrosis_fraction=rng.uniform(0.0, 0.2),
                # training slides all carry thrombi (the rare class needs examples)
                vascular_invasion=bool(i % 2) or i < N_TRAIN,
                aggressiveness=rng.uniform(-2, 2) if i < N_TRAIN else rng.uniform(-2, 1),
            )
        )
    return out


@pytest.fixture(scope="module")
def cohort(tmp_path_factory):
    d = tmp_path_factory.mktemp("time")
    lats = _latents()
    tiles, truth = [], []
    for i, lat in enumerate(lats):
        info = write_slide(
            d / f"{lat['patient_id']}.tiff", lat, size=(2048, 2048), seed=100 + i,
            texture_size=256,
        )
        st = extract_tiles(info.path, config=CFG)
        lab, tr = read_truth(info.path)
        y, _, _ = tile_labels_from_map(st.coords, st.patch_size_level0, lab, tr["downsample"])
        tiles.append(st)
        truth.append(y)
    X = np.concatenate([tiles[i].classifier_input(CFG.context) for i in range(N_TRAIN)])
    y = np.concatenate(truth[:N_TRAIN])
    clf = TileClassifier().fit(X, y)
    results = [measure_time(st, clf, CFG) for st in tiles]
    return lats, tiles, truth, clf, results


def test_tile_classifier_accuracy_on_held_out_slides(cohort):
    _, tiles, truth, clf, _ = cohort
    assert set(clf.classes_) >= set(TILE_CLASSES) - {"background"}
    accs = [
        clf.score(tiles[i].classifier_input(True), truth[i]) for i in range(N_TRAIN, N_SLIDES)
    ]
    assert np.mean(accs) >= 0.88 and min(accs) >= 0.8, accs
    # without neighbour context the same features still carry most of the signal
    keep = np.array([v is not None for v in truth[N_TRAIN]])
    pred = clf.predict(tiles[N_TRAIN].classifier_input(True))
    assert set(pred) <= set(TILE_CLASSES)
    assert (pred[keep] == to_coarse(truth[N_TRAIN][keep])).mean() >= 0.8


def test_lymphocyte_density_tracks_the_latent(cohort):
    lats, _, _, _, results = cohort
    d_t = [r.row["time_lymphocyte_density_tumour"] for r in results]
    d_m = [r.row["time_lymphocyte_density_margin"] for r in results]
    rho_t = spearmanr([lat["lymphocyte_density"] for lat in lats], d_t)[0]
    rho_m = spearmanr([lat["margin_lymphocyte_density"] for lat in lats], d_m)[0]
    assert rho_t >= 0.6, rho_t
    assert rho_m >= 0.6, rho_m
    assert all(50 < v < 10_000 for v in d_t + d_m)  # plausible cells/mm²


def test_vascular_invasion_detection(cohort):
    lats, _, truth, _, results = cohort
    held = range(N_TRAIN, N_SLIDES)
    vi = np.array([lats[i]["vascular_invasion"] for i in held])
    score = np.array([results[i].row["time_vi_score"] for i in held])
    call = np.array([results[i].row["time_vascular_invasion"] for i in held])
    assert roc_auc_score(vi, score) >= 0.8
    assert (call == vi).mean() >= 5 / 6
    assert call[~vi].sum() <= 1  # at most one false alarm on slides without thrombi
    # training slides (all with thrombi): thrombus tiles recovered
    for i in range(N_TRAIN):
        n_true = int((truth[i] == "vessel_tumour_thrombus").sum())
        assert results[i].row["time_vi_tiles"] >= min(1, n_true)


def test_compartment_fractions_match_truth(cohort):
    _, _, truth, _, results = cohort
    err_s, err_n = [], []
    for r, y in zip(results[N_TRAIN:], truth[N_TRAIN:], strict=True):
        bed = r.tiles["tumour_bed"].to_numpy()
        yb = np.array([v for v in y[bed] if v is not None], dtype=object)
        err_s.append(abs(r.row["time_stroma_fraction"] - np.mean(yb == "stroma")))
        err_n.append(abs(r.row["time_necrosis_fraction"] - np.mean(yb == "necrosis")))
        assert r.row["time_tumour_area_mm2"] > 0.02
    assert np.mean(err_s) < 0.08 and np.mean(err_n) < 0.05, (err_s, err_n)


def test_panel_table_and_phenotype(cohort):
    lats, _, _, _, results = cohort
    panel = time_panel(results, [lat["patient_id"] for lat in lats])
    assert list(panel.columns) == ["patient_id", "slide_id", *PANEL_COLUMNS]
    assert len(panel) == N_SLIDES and panel["patient_id"].is_unique
    for c, (unit, desc) in PANEL_COLUMNS.items():
        assert unit and desc
        if unit != "text":
            assert pd.api.types.is_numeric_dtype(panel[c]), c
    # synthetic slides like the training ones: (almost) every tissue tile recognised
    assert panel["time_unrecognised_fraction"].max() <= 0.02, panel["time_unrecognised_fraction"]
    assert panel["time_panel_unreliable"].sum() == 0
    onehot = panel[[f"time_phenotype_{p}" for p in ("inflamed", "excluded", "desert")]]
    assert (onehot.sum(1) == 1).all()
    agree = (panel["time_immune_phenotype"] == [lat["immune_phenotype"] for lat in lats]).mean()
    assert agree >= 0.5, agree  # chance is 1/3
    # two slides of one patient → one row, areas summed, VI if either shows it
    two = time_panel(results[:2], ["X", "X"])
    assert len(two) == 1 and two.loc[0, "slide_id"] == "P00;P01"
    assert two.loc[0, "time_tissue_area_mm2"] == pytest.approx(
        results[0].row["time_tissue_area_mm2"] + results[1].row["time_tissue_area_mm2"]
    )
    with pytest.raises(ConfigError):
        time_panel(results[:2], ["X"])


def test_classifier_save_load_and_errors(cohort, tmp_path):
    _, tiles, _, clf, _ = cohort
    X = tiles[-1].classifier_input(True)
    p = clf.save(tmp_path / "clf.pkl", encoder="builtin", context=True)
    back, meta = TileClassifier.load(p)
    assert meta == {"encoder": "builtin", "context": True}
    assert (back.predict(X) == clf.predict(X)).all()
    with pytest.raises(NotFittedError):
        TileClassifier().predict(X)
    with pytest.raises(ModelError, match="features"):
        clf.predict(X[:, :5])
    with pytest.raises(ModelError, match="two tissue classes"):
        TileClassifier().fit(X[:4], ["tumour"] * 4)
    # a pickle naming a class that does not exist (another version): a clear error
    import pickle

    from hccstrat.exceptions import InputFileError
    from hccstrat.io.safe_pickle import UnsafePickleError

    (tmp_path / "stale.pkl").write_bytes(b"chccstrat.pathology.tile_classifier\nGone\n.")
    with pytest.raises(InputFileError, match="cannot read tile classifier"):
        TileClassifier.load(tmp_path / "stale.pkl")
    # ... and one naming a function to run is refused as such
    (tmp_path / "evil.pkl").write_bytes(pickle.dumps({"f": np.save}))
    with pytest.raises(UnsafePickleError, match=r"numpy\.save"):
        TileClassifier.load(tmp_path / "evil.pkl")


def test_haematoxylin_matches_skimage_and_detector_prefers_lymphocytes():
    from skimage.color import rgb2hed

    rng = np.random.default_rng(0)
    rgb = rng.integers(0, 256, (4, 16, 16, 3), dtype=np.uint8)
    assert np.allclose(haematoxylin(rgb), rgb2hed(rgb)[..., 0], atol=1e-6)
    # synthetic fields of dark nuclei at 0.5 µm/px: 7 µm (lymphocytes) vs 12 µm (tumour)
    yy, xx = np.mgrid[0:128, 0:128]
    od = np.zeros((2, 128, 128))
    centres = [(16 + 32 * i + rng.uniform(-3, 3), 16 + 32 * j) for i in range(4) for j in range(4)]
    for k, rad_um in enumerate((3.5, 6.0)):
        for cy, cx in centres:
            od[k] = np.maximum(od[k], 2.0 * (np.hypot(yy - cy, xx - cx) <= rad_um / 0.5))
    h_od = np.array([0.65, 0.70, 0.29])
    tiles = (240 * np.exp(-od[..., None] * h_od)).astype(np.uint8)
    counts = LymphocyteDetector().count(tiles, 0.5)
    assert counts[0] >= 14 and counts[1] <= 4, counts
    for coarse in (10.0, 1.5):  # 1.5 µm/px under-counts real lymphocytes by a third
        with pytest.raises(ConfigError, match="lymphocyte detection needs tiles"):
            LymphocyteDetector().count(tiles, coarse)
    with pytest.raises(ConfigError, match="target_mpp=2"):
        TimeConfig(target_mpp=2.0).validate()


def test_add_context_uses_neighbours():
    coords = np.array([[0, 0], [10, 0], [20, 0], [100, 100]])
    f = np.array([[1.0], [2.0], [3.0], [9.0]])
    out = add_context(f, coords, 10)
    assert out.shape == (4, 2)
    assert out[:, 1].tolist() == [2.0, 2.0, 2.0, 9.0]


def test_time_on_real_slide_with_overlay(fixtures_dir, cohort, tmp_path):
    import matplotlib

    matplotlib.use("Agg")
    from PIL import Image

    from hccstrat.pathology.heatmap import save_png

    _, _, _, clf, _ = cohort
    st = extract_tiles(fixtures_dir / "wsi" / "CMU-1-Small-Region.svs", config=CFG)
    assert len(st.coords) > 100 and st.mpp == pytest.approx(0.499, abs=1e-3)
    assert st.lymphocytes.sum() > 0  # real nuclei are found
    res = measure_time(st, clf, CFG)
    assert res.row["time_qc_pass_fraction"] > 0.3
    # real skin is unlike the synthetic liver tiles: most tissue unrecognised, flagged
    assert res.row["time_unrecognised_fraction"] >= 0.6
    assert res.row["time_panel_unreliable"] == 1
    tissue = (st.tissue_fraction * st.tile_area_mm2)[res.tiles["cls"] != "background"].sum()
    assert tissue > 0.1
    assert res.row["time_immune_phenotype"] in ("inflamed", "excluded", "desert")
    p = save_png(plot_time_overlay(res), tmp_path / "cmu1_time.png")
    img = np.asarray(Image.open(p))
    assert img.shape[1] > 1000 and img.std() > 20
