"""Tile classifier abstains on tissue unlike its training tiles (out-of-distribution model).

Trained on synthetic liver slides of one centre, the classifier must recognise slides of
other synthetic centres (stain-vector rotation, stain scaling, background shift from the
synthetic centre table) and flag the real skin biopsy CMU-1, random features, and keep
working from pickles saved before the OOD model existed.
"""

from __future__ import annotations

import logging
import pickle

import numpy as np
import pytest

from hccstrat.exceptions import ConfigError
from hccstrat.pathology.tile_classifier import TileClassifier, tile_labels_from_map, to_coarse
from hccstrat.pathology.time import TimeConfig, extract_tiles, measure_time, time_panel
from hccstrat.synthetic.wsi import default_latent, read_truth, write_slide

CFG = TimeConfig(margin_um=200.0)
REAL_CFG = TimeConfig(margin_um=200.0, patch_size=128, tile_all=True)


def _shift(row) -> dict:
    """Stain shift of a synthetic centre as ``write_slide(stain_shift=...)`` reads it."""
    return {
        "h_od": [row["stain_h_r"], row["stain_h_g"], row["stain_h_b"]],
        "e_od": [row["stain_e_r"], row["stain_e_g"], row["stain_e_b"]],
        "h_scale": row["stain_h_scale"],
        "e_scale": row["stain_e_scale"],
        "background": row["stain_background"],
    }


def _slide(path, lat, seed, shift=None):
    info = write_slide(path, lat, size=(2048, 2048), seed=seed, texture_size=256,
                       geojson=False, stain_shift=shift)
    st = extract_tiles(info.path, config=CFG)
    lab, tr = read_truth(info.path)
    return st, tile_labels_from_map(st.coords, st.patch_size_level0, lab, tr["downsample"])[0]


@pytest.fixture(scope="module")
def setup(tmp_path_factory):
    from hccstrat.synthetic._centres import make_centres

    d = tmp_path_factory.mktemp("ood")
    rng = np.random.default_rng(1)

    def lat(pid, ph):
        return default_latent(patient_id=pid, immune_phenotype=ph, vascular_invasion=True,
                              lymphocyte_density=float(rng.uniform(0.05, 0.7)))

    phen = ("inflamed", "excluded", "desert")
    train = [_slide(d / f"T{i}.tiff", lat(f"T{i}", phen[i % 3]), 100 + i) for i in range(4)]
    clf = TileClassifier().fit(
        np.concatenate([st.classifier_input(True) for st, _ in train]),
        np.concatenate([y for _, y in train]),
    )
    centres = make_centres(8, 3, np.random.default_rng(5))
    # centres with the usual stain spread (scales within exp(±0.25)); the table's
    # stain vectors are rotated up to 6° from the reference
    usual = centres[(np.abs(np.log(centres["stain_h_scale"])) <= 0.25)
                    & (np.abs(np.log(centres["stain_e_scale"])) <= 0.25)].head(3)
    assert len(usual) == 3
    shifted = [
        _slide(d / f"C{j}.tiff", lat(f"C{j}", phen[j % 3]), 200 + j, _shift(row))
        for j, (_, row) in enumerate(usual.iterrows())
    ]
    plain = _slide(d / "C0plain.tiff", lat("C0", phen[0]), 200)  # C0 without its shift
    return clf, train, shifted, plain


def test_other_centres_are_recognised(setup):
    clf, train, shifted, plain = setup
    # the shift is real: the same slide without it has other colours
    rgb = slice(0, 3)
    delta = np.abs(shifted[0][0].features[:, rgb].mean(0) - plain[0].features[:, rgb].mean(0))
    assert delta.max() > 5, delta
    fracs, accs = [], []
    for st, y in shifted:
        res = measure_time(st, clf, CFG)
        fracs.append(res.row["time_unrecognised_fraction"])
        assert res.row["time_panel_unreliable"] == 0
        keep = np.array([v is not None for v in y]) & st.qc_pass
        accs.append(np.mean(clf.predict(st.classifier_input(True))[keep] == to_coarse(y[keep])))
    assert np.mean(fracs) <= 0.02 and max(fracs) <= 0.05, fracs
    assert np.mean(accs) >= 0.75, accs  # the classifier still works there
    # training tiles themselves: essentially all in distribution
    X = np.concatenate([st.classifier_input(True) for st, _ in train])
    assert clf.in_distribution(X).mean() >= 0.995


def test_real_skin_is_unrecognised(setup, fixtures_dir, caplog, tmp_path):
    import matplotlib

    matplotlib.use("Agg")
    from hccstrat.pathology.heatmap import plot_time_overlay, save_png

    clf = setup[0]
    st = extract_tiles(fixtures_dir / "wsi" / "CMU-1-Small-Region.svs", config=REAL_CFG)
    with caplog.at_level(logging.WARNING, logger="hccstrat.pathology.time"):
        res = measure_time(st, clf, REAL_CFG)
    t = res.tiles
    tissue = st.qc_pass & (t["cls"] != "background").to_numpy()
    assert tissue.sum() > 100
    cls = t["cls"].to_numpy()[tissue]
    assert (cls == "unrecognised").mean() >= 0.6, t["cls"].value_counts()
    assert (cls == "tumour").mean() <= 0.10
    assert res.row["time_unrecognised_fraction"] == pytest.approx((cls == "unrecognised").mean())
    assert res.row["time_panel_unreliable"] == 1
    assert "hccstrat wsi time --train" in caplog.text
    # unrecognised tiles enter no measure
    un = (t["cls"] == "unrecognised").to_numpy()
    assert (t["rule"].to_numpy()[un] == "out_of_distribution").all()
    assert t.loc[un, "area_mm2"].sum() == 0 and not t.loc[un, ["tumour_bed", "margin"]].any().any()
    assert (t["ood_score"].to_numpy()[un] > clf.ood_threshold_).all()
    # the overlay hatches them and names them in the legend
    fig = plot_time_overlay(res)
    ax = fig.axes[0]
    assert any(c.get_hatch() == "////" for c in ax.collections)
    assert any("unrecognised" in tx.get_text() for tx in ax.get_legend().get_texts())
    assert "UNRELIABLE" in fig.axes[2].get_title()
    save_png(fig, tmp_path / "cmu_ood.png")
    # a patient with that slide and a good one: flagged, fractions weighted by tiles
    good = measure_time(setup[2][0][0], clf, CFG)
    both = time_panel([res, good], ["X", "X"])
    assert both.loc[0, "time_panel_unreliable"] == 1
    lo, hi = sorted([res.row["time_unrecognised_fraction"], good.row["time_unrecognised_fraction"]])
    assert lo < both.loc[0, "time_unrecognised_fraction"] < hi


def test_random_features_are_unrecognised(setup):
    clf, train, _, _ = setup
    X = np.concatenate([st.classifier_input(True) for st, _ in train])
    rng = np.random.default_rng(0)
    # each feature drawn independently within its training range: plausible values,
    # implausible combinations
    uni = rng.uniform(X.min(0), X.max(0), size=(300, X.shape[1]))
    gauss = rng.standard_normal((300, X.shape[1]))
    assert not clf.in_distribution(uni).any()
    assert not clf.in_distribution(gauss).any()
    assert (clf.ood_score(uni) > clf.ood_threshold_).all()


def test_margin_switch_and_settings(setup):
    clf, train, _, _ = setup
    X = np.concatenate([st.classifier_input(True) for st, _ in train])
    y = np.concatenate([yy for _, yy in train])
    thr = clf.ood_threshold_
    clf.set_params(ood_margin=5.0)
    try:
        assert clf.ood_threshold_ == pytest.approx(thr * 5.0 / 2.5)
    finally:
        clf.set_params(ood_margin=2.5)
    off = TileClassifier(ood=False).fit(X, y)
    assert off.ood_ is None and off.ood_threshold_ == np.inf
    assert off.in_distribution(np.full((3, X.shape[1]), 1e6)).all()
    assert (off.predict(X) == clf.predict(X)).all()  # the forest is the same
    with pytest.raises(ConfigError):
        TileClassifier(ood_margin=0).fit(X, y)


def test_old_pickle_without_ood_loads_and_predicts(setup, tmp_path, caplog):
    from hccstrat import __version__
    from hccstrat.pathology.tile_classifier import _FORMAT

    clf, train, shifted, _ = setup
    old = pickle.loads(pickle.dumps(clf))
    for k in ("ood_", "ood", "ood_components", "ood_quantile", "ood_margin"):
        old.__dict__.pop(k)  # as written before the OOD model existed
    path = tmp_path / "old.pkl"
    with open(path, "wb") as fh:
        pickle.dump({"format": _FORMAT, "hccstrat_version": __version__, "model": old,
                     "meta": {"context": True}}, fh)
    with caplog.at_level(logging.WARNING, logger="hccstrat.pathology.tile_classifier"):
        back, meta = TileClassifier.load(path)
    assert "without an out-of-distribution model" in caplog.text
    assert meta == {"context": True} and back.ood_ is None
    assert back.get_params()["ood_margin"] == 2.5
    X = shifted[0][0].classifier_input(True)
    assert (back.predict(X) == clf.predict(X)).all()
    assert back.in_distribution(np.full((2, X.shape[1]), 1e6)).all()
    res = measure_time(train[0][0], back, CFG)
    assert res.row["time_unrecognised_fraction"] == 0
    # a new pickle keeps the OOD model
    again, _ = TileClassifier.load(clf.save(tmp_path / "new.pkl"))
    assert again.ood_threshold_ == pytest.approx(clf.ood_threshold_)
