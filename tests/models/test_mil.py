"""MIL models on bags of real synthetic-slide tile features with a planted risk class."""

from __future__ import annotations

import numpy as np
import pytest
from sksurv.metrics import concordance_index_censored

from hccstrat.exceptions import ModelError, NotFittedError
from hccstrat.models.mil import MILModel, planted_bags
from hccstrat.survival import make_surv


@pytest.fixture(scope="module")
def tile_pool(tmp_path_factory):
    """Builtin-encoder features of tiles from 3 small synthetic slides, with true classes."""
    from hccstrat.pathology.tile_classifier import tile_labels_from_map
    from hccstrat.pathology.time import TimeConfig, extract_tiles
    from hccstrat.synthetic.wsi import default_latent, read_truth, write_slide

    d = tmp_path_factory.mktemp("milslides")
    feats, labels, coords, slides = [], [], [], []
    for i, ph in enumerate(["inflamed", "excluded", "desert"]):
        lat = default_latent(immune_phenotype=ph, lymphocyte_density=0.5, vascular_invasion=False)
        info = write_slide(d / f"s{i}.tiff", lat, size=(2048, 2048), seed=20 + i, texture_size=256)
        st = extract_tiles(info.path, config=TimeConfig())
        lab, truth = read_truth(info.path)
        y, _, _ = tile_labels_from_map(st.coords, st.patch_size_level0, lab, truth["downsample"])
        feats.append(st.features)
        labels.append(y)
        coords.append(st.coords)
        slides.append(st)
    return np.concatenate(feats), np.concatenate(labels), slides, labels


@pytest.fixture(scope="module")
def bags(tile_pool):
    pool, labels, _, _ = tile_pool
    keep = np.array([v is not None for v in labels])
    planted = labels[keep] == "immune_dense"
    assert planted.sum() >= 20
    b, m, y, f = planted_bags(pool[keep], planted, n_bags=160, effect=4.0, seed=1)
    return b, m, y, f


@pytest.mark.slow
def test_gated_mil_survival_beats_shuffled_labels_and_attends_to_planted_tiles(bags):
    b, masks, y, frac = bags
    tr, te = slice(0, 100), slice(100, None)
    kw = dict(arch="gated", epochs=20, random_state=0)
    model = MILModel(**kw).fit(b[tr], y[tr])
    c = model.score(b[te], y[te])
    rng = np.random.default_rng(0)
    y_shuf = y[tr][rng.permutation(100)]
    c_shuf = MILModel(**kw).fit(b[tr], y_shuf).score(b[te], y[te])
    oracle = concordance_index_censored(y[te]["event"], y[te]["time"], frac[te])[0]
    assert c >= 0.65 and c >= oracle - 0.1, (c, oracle)
    assert c >= c_shuf + 0.1, (c, c_shuf)
    # attention: the top 10 % tiles of each test bag are planted far more often than chance
    att = model.attention(b[te])
    hit, base = [], []
    for a, m in zip(att, masks[te], strict=True):
        assert a.shape == m.shape and a.sum() == pytest.approx(1.0, abs=1e-5)
        if m.sum() < 3:
            continue
        k = max(1, len(a) // 10)
        hit.append(m[np.argsort(a)[::-1][:k]].mean())
        base.append(m.mean())
    assert np.mean(hit) >= 2 * np.mean(base), (np.mean(hit), np.mean(base))
    emb = model.embedding_frame(b[te], [f"P{i}" for i in range(60)])
    assert emb.shape == (60, 1 + model.hidden + 1)
    assert emb.columns[1].startswith("wsi_emb_") and "wsi_mil_risk" in emb


@pytest.mark.slow
def test_transmil_survival_learns_the_planted_signal(bags):
    b, _, y, _ = bags
    m = MILModel(arch="transmil", epochs=10, random_state=0).fit(b[:100], y[:100])
    assert m.score(b[100:], y[100:]) >= 0.62
    att = m.attention(b[100:103])
    assert [len(a) for a in att] == [len(x) for x in b[100:103]]
    assert m.embed(b[:3]).shape == (3, m.hidden)


def test_mil_classification_save_load_and_errors(bags, tmp_path):
    b, _, _, f = bags
    lab = np.where(f > 0.2, "high", "low")
    m = MILModel(task="classification", epochs=15, random_state=0).fit(b[:100], lab[:100])
    acc = m.score(b[100:], lab[100:])
    assert acc >= 0.75, acc
    p = m.save(tmp_path / "mil.pt")
    m2 = MILModel.load(p)
    assert np.allclose(m2.predict_proba(b[100:110]), m.predict_proba(b[100:110]), atol=1e-6)
    assert set(m2.predict(b[:5])) <= {"high", "low"}
    with pytest.raises(NotFittedError):
        MILModel().predict_risk(b[:2])
    with pytest.raises(ModelError, match="feature sizes"):
        m.predict_risk([np.zeros((5, 3), np.float32)])
    with pytest.raises(ModelError, match="make_surv"):
        MILModel().fit(b[:10], np.zeros(10))
    with pytest.raises(ModelError, match="events"):
        MILModel().fit(b[:10], make_surv(np.zeros(10, bool), np.ones(10)))


def test_attention_heatmap_png(tile_pool, tmp_path):
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt
    from PIL import Image

    from hccstrat.pathology.heatmap import plot_score_heatmap, save_png

    _, _, slides, labels = tile_pool
    st, y = slides[0], labels[0]
    scores = (y == "immune_dense").astype(float) + 0.01 * np.arange(len(y)) / len(y)
    fig, ax = plt.subplots()
    out = plot_score_heatmap(
        st.thumbnail, st.thumb_downsample, st.coords, st.patch_size_level0, scores,
        highlight=y == "immune_dense", ax=ax,
    )
    assert out is ax
    p = save_png(fig, tmp_path / "att.png")
    img = np.asarray(Image.open(p))
    assert img.ndim == 3 and img.shape[0] > 100 and img.std() > 10
