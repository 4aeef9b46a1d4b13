"""Fast paths give the same results as the reference paths they replace.

* direct decoding of stored TIFF tiles == OpenSlide's pixels;
* tiling with direct tiles == tiling through the backend;
* the blocked synthetic-slide renderer and threaded encoder == the per-pixel ones;
* Macenko "fast" (pooled stains, lookup tables) ≈ "exact" (torchstain's results).
"""

from __future__ import annotations

import numpy as np
import pytest
from PIL import Image

from hccstrat.io.wsi import SlideReadError, open_slide
from hccstrat.pathology._stain_fast import apply_od_map
from hccstrat.pathology.stain import MacenkoNormalizer
from hccstrat.pathology.tiling import _block_size, grid_tiles, iter_tile_batches
from hccstrat.pathology.tissue import detect_tissue


def _rgb(p):
    return np.asarray(Image.open(p).convert("RGB"))


@pytest.mark.parametrize(
    ("level", "loc", "size"),
    [
        (0, (0, 0), (300, 200)),  # crosses stored-tile edges
        (0, (1900, 1700), (300, 400)),  # runs off the slide: glass
        (0, (-20, 100), (64, 64)),  # starts off the slide
        (1, (100, 60), (200, 150)),
    ],
)
def test_direct_tiles_equal_openslide(synth_slide, level, loc, size):
    with open_slide(synth_slide.path) as s:
        assert s.backend_name == "openslide" and s.stored_tile_size(level) == (256, 256)
        ds = s.level_downsamples[level]
        ref = s.read_region((round(loc[0] * ds), round(loc[1] * ds)), level, size)
        got = s.read_region_level(level, loc, size)
        assert got.shape == (size[1], size[0], 3)
        np.testing.assert_array_equal(got, ref)


def test_direct_tiles_on_real_svs(fixtures_dir):
    """Aperio SVS: RGB JPEG tiles with shared JPEG tables, 240-px tiles."""
    with open_slide(fixtures_dir / "wsi" / "CMU-1-Small-Region.svs") as s:
        assert s.stored_tile_size(0) == (240, 240)
        got = s.read_region_level(0, (1000, 1500), (500, 300))
        np.testing.assert_array_equal(got, s.read_region((1000, 1500), 0, (500, 300)))
    with open_slide(fixtures_dir / "wsi" / "tcga-red-pen.png", mpp=0.5) as s:
        assert s.stored_tile_size(0) is None  # plain image: backend path
        np.testing.assert_array_equal(
            s.read_region_level(0, (10, 10), (50, 40)), s.read_region((10, 10), 0, (50, 40))
        )


@pytest.mark.parametrize(
    ("target_mpp", "patch", "overlap"), [(0.5, 224, 0), (1.0, 112, 16), (2.0, 112, 0)]
)
def test_tiling_direct_equals_backend(synth_slide, target_mpp, patch, overlap):
    def run(direct):
        with open_slide(synth_slide.path, direct=direct) as s:
            g = grid_tiles(
                s, detect_tissue(s), target_mpp=target_mpp, patch_size=patch, overlap=overlap
            )
            out = [(t, i) for t, i in iter_tile_batches(s, g, batch_size=50, workers=2)]
        return g, np.concatenate([t for t, _ in out]), np.concatenate([i for _, i in out]), out

    g, tiles, idx, batches = run(True)
    _, tiles_ref, idx_ref, _ = run(False)
    assert sorted(idx.tolist()) == list(range(len(g)))
    assert [len(b[0]) for b in batches[:-1]] == [50] * (len(batches) - 1)
    np.testing.assert_array_equal(idx, idx_ref)
    np.testing.assert_array_equal(tiles, tiles_ref)


def test_blocks_follow_stored_tiles(synth_slide):
    with open_slide(synth_slide.path) as s:
        tm = detect_tissue(s)
        g = grid_tiles(s, tm, target_mpp=0.5, patch_size=224)
        assert _block_size(s, g, 8) == 8  # 8 x 224 px = 7 stored 256-px tiles
        g = grid_tiles(s, tm, target_mpp=0.5, patch_size=256, overlap=96)
        assert _block_size(s, g, 8) == 8  # stride 160: 8 x 160 = 5 x 256
        d = s._direct_tiles()
        d._cache.clear()
        calls = []
        orig = d._decoders[0]
        d._decoders[0] = lambda *a, **k: calls.append(a[1]) or orig(*a, **k)
        g = grid_tiles(s, tm, target_mpp=0.5, patch_size=224)
        n = sum(len(t) for t, _ in iter_tile_batches(s, g, workers=1))
        assert n == len(g)
        assert len(calls) == len(set(calls))  # every stored tile decoded once


def test_early_stop_and_corrupt_tiles(synth_slide, tmp_path):
    with open_slide(synth_slide.path) as s:
        g = grid_tiles(s, detect_tissue(s), target_mpp=0.5, patch_size=224)
        first = next(iter_tile_batches(s, g, batch_size=4, workers=2))  # generator dropped
        assert first[0].shape == (4, 224, 224, 3)
    data = bytearray(synth_slide.path.read_bytes())
    with open_slide(synth_slide.path) as s:
        d = s._direct_tiles()
        page = d._pages[0]
        off, cnt = int(page.dataoffsets[5]), int(page.databytecounts[5])
    data[off + 20 : off + cnt] = b"\x00" * (cnt - 20)  # tile 5 of level 0: garbage
    bad = tmp_path / "bad.tiff"
    bad.write_bytes(bytes(data))
    with open_slide(bad) as s, pytest.raises(SlideReadError) as ei:
        s.read_region_level(0, (5 * 256, 0), (256, 256))
    assert ei.value.code == "HCC-WSI-005" and "corrupt" in str(ei.value.hint)
    cut = tmp_path / "cut.tiff"
    cut.write_bytes(synth_slide.path.read_bytes()[: off + cnt // 2])
    with open_slide(cut) as s, pytest.raises(SlideReadError, match="beyond the end"):
        s.read_region_level(0, (5 * 256, 0), (256, 256))


def test_synthetic_renderer_blocked_equals_pixelwise(tmp_path):
    from hccstrat.synthetic._wsi_texture import LevelTiles
    from hccstrat.synthetic.wsi import default_latent, write_slide

    rng = np.random.default_rng(0)
    tex = rng.integers(0, 255, (6, 64, 64, 3), dtype=np.uint8)
    imap = rng.integers(0, 6, (40, 50), dtype=np.uint8)
    imap[:8, :8] = 2  # one uniform tile
    fast = LevelTiles(imap, 4, tex, 1, (150, 190), 32)
    slow = LevelTiles(imap, 4, tex, 1, (150, 190), 32)
    slow.c = 0  # force the per-pixel gather
    assert fast.c == 4
    for ty in range(fast.n_rows):
        for a, b in zip(fast.row(ty), slow.row(ty), strict=True):
            np.testing.assert_array_equal(a, b)
    a = write_slide(tmp_path / "a.tiff", default_latent(), size=(900, 700), seed=2, workers=1)
    b = write_slide(tmp_path / "b.tiff", default_latent(), size=(900, 700), seed=2, workers=3)
    assert a.path.read_bytes() == b.path.read_bytes()


# -- Macenko fast mode -------------------------------------------------------------------
_IMAGES = [  # crops of at most 384 x 384 px keep the exact (torch) reference quick
    "torchstain_source.png",
    "tiatoolbox_target_image.png",
    "high-nuclei-score-level0.png",
    "low-nuclei-score-level0.png",
]


@pytest.mark.slow  # ~5 s alone; torch's first calls are slow on a loaded machine
def test_macenko_fast_matches_exact(fixtures_dir):
    """With every pixel in the sample, fast == exact (up to float rounding); with the
    default sample of 65,536 pixels, within a grey level on average."""
    tgt = _rgb(fixtures_dir / "wsi" / "torchstain_target.png")
    for name in _IMAGES:
        img = np.ascontiguousarray(_rgb(fixtures_dir / "wsi" / name)[:384, :384])
        exact = MacenkoNormalizer().fit(tgt).transform(img, method="exact").astype(int)
        full = MacenkoNormalizer(max_pixels=img.shape[0] * img.shape[1]).fit(tgt)
        assert np.abs(full.transform(img, method="fast") - exact).max() <= 1, name
        sub = MacenkoNormalizer().fit(tgt)  # default sample: 65,536 of 147,456 pixels
        d = np.abs(sub.transform(img, method="fast") - exact)
        assert d.mean() < 1.0 and np.percentile(d, 99) <= 3, (name, d.mean())


def test_macenko_modes_and_tables(fixtures_dir):
    import torch

    src = _rgb(fixtures_dir / "wsi" / "tiatoolbox_target_image.png")
    tiles = np.stack([src[y : y + 128, x : x + 128] for y in (0, 300, 600) for x in (0, 400)])
    m = MacenkoNormalizer().fit(_rgb(fixtures_dir / "wsi" / "torchstain_target.png"))
    auto = m.transform(tiles)
    assert np.array_equal(auto, m.transform(tiles, method="fast"))  # batch: fast
    assert np.array_equal(m.transform(tiles[0]), m.transform(tiles[0], method="exact"))
    t = m.transform(torch.from_numpy(tiles))
    assert isinstance(t, torch.Tensor) and np.array_equal(t.numpy(), auto)
    # pooled stains: every tile normalised with the same map, so one tile's result
    # depends only on its own pixels once the stains are fixed
    m.fit_source(tiles)
    slide = m.transform(tiles)
    assert np.abs(slide[2].astype(int) - m.transform(tiles[2:3], method="fast")[0]).max() == 0
    img, h, e = m.transform(tiles, return_stains=True)
    assert img.shape == h.shape == e.shape == tiles.shape
    assert h[..., 2].mean() < e[..., 2].mean() + 40  # haematoxylin image is blue-purple
    # the 24-bit colour table and the per-channel tables agree
    maps = m._linear_maps(m.source_stain_matrix_, m.source_max_conc_, False)
    x = tiles.reshape(-1, 3)
    a = apply_od_map(x, maps[0], m.io, m._table(maps[0]), 2)
    b = apply_od_map(x, maps[0], m.io, None, 1)
    assert np.abs(a.astype(int) - b).max() <= 1 and (a != b).mean() < 1e-3
    with pytest.raises(ValueError, match="method"):
        m.transform(tiles, method="quick")


def test_macenko_glass_tiles_are_left_alone(fixtures_dir):
    """Glass has no stain vectors: it is handed back as it is, in both modes, and
    does not disturb the other tiles of the batch (torchstain raises on it)."""
    src = _rgb(fixtures_dir / "wsi" / "torchstain_source.png")[:128, :128]
    glass = np.full_like(src, 242)
    m = MacenkoNormalizer()
    out = m.transform(np.stack([src, glass]), method="exact")
    assert np.array_equal(out[1], glass)
    assert np.array_equal(out[0], m.transform(src, method="exact"))
    assert np.array_equal(m.transform(np.stack([glass, glass])), np.stack([glass, glass]))
    with pytest.raises(ValueError, match="no stained pixels"):
        m.fit_source(glass)
