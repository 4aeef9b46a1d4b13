"""Lymphocyte detector: the nuclear-profile shape test on planted nuclei and real skin."""

from __future__ import annotations

import numpy as np
import pytest

from hccstrat.exceptions import ConfigError
from hccstrat.pathology.lymphocytes import LymphocyteDetector

H_OD = np.array([0.65, 0.70, 0.29])  # haematoxylin optical density per unit stain


def _field(shapes, *, surround: float = 0.0, size: int = 160) -> np.ndarray:
    """A 0.5 µm/px RGB tile of 5 x 5 nuclei, each an ellipse (semi-axes in µm)."""
    yy, xx = np.mgrid[0:size, 0:size].astype(float)
    od = np.full((size, size), surround)
    for k, (a_um, b_um, dens) in enumerate(shapes):
        cy, cx = 16 + 32 * (k // 5), 16 + 32 * (k % 5)
        ang = 0.6 * k
        u = ((xx - cx) * np.cos(ang) + (yy - cy) * np.sin(ang)) / (a_um / 0.5)
        v = (-(xx - cx) * np.sin(ang) + (yy - cy) * np.cos(ang)) / (b_um / 0.5)
        od = np.where(u * u + v * v <= 1, dens, od)
    return (240 * np.exp(-od[..., None] * H_OD)).astype(np.uint8)


def test_shape_test_keeps_round_dark_nuclei_and_drops_spindles_and_pale_nuclei():
    det = LymphocyteDetector()
    lymph = _field([(3.4, 3.4, 1.6)] * 25)  # 6.8 µm round, dark, in pale stroma
    spindle = _field([(6.0, 1.6, 1.6)] * 25)  # fibroblast: 12 x 3 µm
    debris = _field([(1.6, 1.6, 1.6)] * 25)  # 3 µm dark specks
    # keratinocyte-like: 7 µm nuclei, paler, in haematoxylin-tinted cytoplasm
    kerat = _field([(3.6, 3.4, 0.55)] * 25, surround=0.22)
    counts = det.count(np.stack([lymph, spindle, debris, kerat]), 0.5)
    assert counts[0] >= 23, counts
    assert counts[1] <= 2 and counts[2] <= 2 and counts[3] <= 2, counts
    # without the shape test the LoG alone takes most spindles and specks
    raw = LymphocyteDetector(shape_test=False).count(np.stack([spindle, debris, kerat]), 0.5)
    assert raw.sum() >= 25, raw
    m = det.measure(lymph, 0.5)
    assert m["lymphocyte"].sum() == counts[0]
    assert m.loc[m["lymphocyte"], "diameter_um"].between(5.5, 8.5).all()
    assert (m.loc[m["lymphocyte"], "roundness"] > 0.85).all()


def test_shape_test_config_errors():
    tile = np.full((64, 64, 3), 230, np.uint8)
    assert LymphocyteDetector().count(tile, 0.5).tolist() == [0]
    with pytest.raises(ConfigError):
        LymphocyteDetector(min_roundness=1.5).count(tile, 0.5)


@pytest.fixture(scope="module")
def cmu_tiles(fixtures_dir):
    from hccstrat.io.wsi import open_slide
    from hccstrat.pathology.tile_rules import tile_measures
    from hccstrat.pathology.tiling import grid_tiles, iter_tile_batches
    from hccstrat.pathology.tissue import detect_tissue

    with open_slide(fixtures_dir / "wsi" / "CMU-1-Small-Region.svs") as r:
        grid = grid_tiles(r, detect_tissue(r), target_mpp=0.5, patch_size=128, min_tissue=0.25)
        tiles = np.concatenate([t for t, _ in iter_tile_batches(r, grid, batch_size=256)])
    return tiles, tile_measures(tiles, None, np.zeros(len(tiles)), 0.5)


def test_cmu1_dermis_lymphocyte_density_is_low(cmu_tiles):
    """Skin biopsy: the dermis holds fibroblasts and few lymphocytes (a few hundred/mm²)."""
    tiles, m = cmu_tiles
    dermis = ((m["eosin_ratio"] > 0.9) & (m["tissue_frac"] > 0.5)).to_numpy()
    epidermis = ((m["eosin_ratio"] < 0.45) & (m["tissue_frac"] > 0.5)).to_numpy()
    assert dermis.sum() >= 30 and epidermis.sum() >= 30
    area = (m["tissue_frac"] * (128 * 0.5 / 1000) ** 2).to_numpy()

    def density(det, sel):
        return det.count(tiles[sel], 0.5).sum() / area[sel].sum()

    new, old = LymphocyteDetector(), LymphocyteDetector(shape_test=False)
    d_new, d_old = density(new, dermis), density(old, dermis)
    assert d_new < 500, d_new  # measured about 280 cells/mm²
    assert d_old > 1200, d_old  # the LoG alone: about 2,000 (fibroblasts, collagen)
    assert density(new, epidermis) < 1000  # keratinocytes are not lymphocytes (was 5,700)
