"""Tissue detection, pen/blur QC, stain normalisation against torchstain."""

from __future__ import annotations

import numpy as np
import pytest
from PIL import Image

from hccstrat.pathology.qc import pen_mask, tile_qc
from hccstrat.pathology.stain import MacenkoNormalizer, ReinhardNormalizer, StainAugmenter
from hccstrat.pathology.tissue import tissue_mask_from_rgb


def _rgb(p):
    return np.asarray(Image.open(p).convert("RGB"))


@pytest.mark.parametrize("name", ["histoqc_pen_red", "histoqc_pen_green"])
def test_pen_mask_matches_histoqc_truth(fixtures_dir, name):
    img = _rgb(fixtures_dir / "wsi" / f"{name}.png")
    truth = np.asarray(Image.open(fixtures_dir / "wsi" / f"{name}_mask.png")) > 0
    pred = pen_mask(img)
    inter = (pred & truth).sum()
    assert inter / truth.sum() > 0.5  # recall
    assert inter / max(pred.sum(), 1) > 0.5  # precision


def test_tissue_detection_on_real_tiles(fixtures_dir):
    d = fixtures_dir / "wsi"
    full = tissue_mask_from_rgb(_rgb(d / "tissue-level0-7352-11762-7864-12274.png"), mpp=0.5)[0]
    assert full.mean() > 0.6  # the tile has some lumens
    for blank in (
        "no-tissue.png",
        "no-tissue-line.png",
        "no-tissue-red-pen.png",
        "no-tissue-green-pen.png",
        "almost-white-1.png",
    ):
        m = tissue_mask_from_rgb(_rgb(d / blank), mpp=0.5)[0]
        assert m.mean() < 0.05, blank


def test_tile_qc_flags(synth_slide, fixtures_dir):
    from scipy import ndimage as ndi

    sharp = _rgb(fixtures_dir / "wsi" / "tissue-level0-7352-11762-7864-12274.png")[:224, :224]
    blurred = ndi.gaussian_filter(sharp, (3, 3, 0))
    glass = np.full_like(sharp, 243)
    pen = _rgb(fixtures_dir / "wsi" / "no-tissue-green-pen.png")[144:368, 144:368]
    q = tile_qc(np.stack([sharp, blurred, glass, pen]))
    assert q["qc_pass"].tolist() == [True, False, False, False]
    assert q.loc[1, "is_blurred"] and q.loc[2, "is_background"]
    assert q.loc[1, "blur_var"] < q.loc[0, "blur_var"] / 5


def test_macenko_and_reinhard_match_torchstain(fixtures_dir):
    from torchstain.numpy.normalizers import NumpyMacenkoNormalizer, NumpyReinhardNormalizer

    src = _rgb(fixtures_dir / "wsi" / "torchstain_source.png")
    tgt = _rgb(fixtures_dir / "wsi" / "torchstain_target.png")
    ref = NumpyMacenkoNormalizer()
    ref.fit(tgt)
    expected, _, _ = ref.normalize(src)
    m = MacenkoNormalizer().fit(tgt)
    np.testing.assert_allclose(m.stain_matrix_, ref.HERef, atol=1e-3)
    out = m.transform(src)
    assert np.abs(out.astype(int) - expected).mean() < 0.1
    assert np.abs(out.astype(int) - expected).max() <= 2
    rr = NumpyReinhardNormalizer()
    rr.fit(tgt)
    r = ReinhardNormalizer().fit(tgt).transform(src)
    assert np.abs(r.astype(int) - rr.normalize(src)).max() <= 1


def test_batched_equals_single_and_torch_input(fixtures_dir):
    import torch

    src = _rgb(fixtures_dir / "wsi" / "torchstain_source.png")
    tiles = np.stack([src[:128, :128], src[200:328, 300:428], src[64:192, 64:192]])
    m = MacenkoNormalizer().fit(_rgb(fixtures_dir / "wsi" / "tiatoolbox_target_image.png"))
    batch = m.transform(tiles, method="exact")  # per-tile stains (a batch defaults to "fast")
    for k in range(3):
        assert np.abs(batch[k].astype(int) - m.transform(tiles[k])).max() <= 1
    t = m.transform(torch.from_numpy(tiles), method="exact")
    assert isinstance(t, torch.Tensor) and np.array_equal(t.numpy(), batch)


def test_stain_augmentation_is_seeded(fixtures_dir):
    src = _rgb(fixtures_dir / "wsi" / "torchstain_source.png")[:128, :128]
    tiles = np.stack([src] * 4)
    a = StainAugmenter(0.2, 0.05, seed=7)(tiles)
    b = StainAugmenter(0.2, 0.05, seed=7)(tiles)
    assert np.array_equal(a, b)
    assert np.abs(a.astype(int) - tiles).mean() > 1  # colours change
    assert not np.array_equal(a[0], a[1])  # per-tile jitter
    same = StainAugmenter(0.0, 0.0)(tiles)
    assert np.abs(same.astype(int) - tiles).max() <= 1
