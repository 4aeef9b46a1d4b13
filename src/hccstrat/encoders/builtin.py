"""Built-in hand-crafted H&E tile encoder: no weights, works offline, carries signal.

Features per tile (:data:`FEATURE_NAMES`):

* colour: RGB mean/std, tissue share;
* colour deconvolution (Ruifrok–Johnston H, E): mean, std and high-quantile share of
  haematoxylin and eosin over tissue, nuclear (H-dense) and eosin-rich area shares;
* texture: mean gradient magnitude, Laplacian variance, radial power spectrum in five
  frequency bands (fraction of power);
* nuclei (connected H-dense blobs ≥ 8 µm²): density per mm² of tissue, mean, median and
  standard deviation of area (µm²), density of small round nuclei (< 35 µm², lymphocyte
  sized) and of large nuclei (> 60 µm², tumour-like), mean nuclear haematoxylin.

Areas and densities are in physical units, so features are comparable across mpp.
"""

from __future__ import annotations

import itertools

import numpy as np
from scipy import ndimage as ndi

__all__ = ["FEATURE_NAMES", "BuiltinHEEncoder", "register"]

_VERSION = "1"
_HE = np.array([[0.65, 0.70, 0.29], [0.07, 0.99, 0.11], [0.27, 0.57, 0.78]])
_HE = _HE / np.linalg.norm(_HE, axis=1, keepdims=True)
_UNMIX = np.linalg.inv(_HE).astype(np.float32)
_OD_LUT = (-np.log((np.arange(256) + 1) / 256.0)).astype(np.float32)

FEATURE_NAMES: list[str] = [
    "r_mean",
    "g_mean",
    "b_mean",
    "r_std",
    "g_std",
    "b_std",
    "tissue_frac",
    "h_mean",
    "h_std",
    "h_high_frac",
    "e_mean",
    "e_std",
    "e_high_frac",
    "nuclear_area_frac",
    "eosin_area_frac",
    "grad_mean",
    "lap_var",
    "fft_band1",
    "fft_band2",
    "fft_band3",
    "fft_band4",
    "fft_band5",
    "nuc_density_mm2",
    "nuc_area_mean_um2",
    "nuc_area_median_um2",
    "nuc_area_std_um2",
    "small_nuc_density_mm2",
    "large_nuc_density_mm2",
    "nuc_h_mean",
]


class BuiltinHEEncoder:
    """Hand-crafted H&E features (see the module docstring).

    Parameters
    ----------
    nuclear_threshold : float
        Haematoxylin concentration above which a pixel counts as nuclear.
    """

    name = "builtin"
    input_size = 224

    def __init__(self, nuclear_threshold: float = 0.45) -> None:
        self.nuclear_threshold = nuclear_threshold
        self.dim = len(FEATURE_NAMES)
        self.sha256 = f"builtin-he-v{_VERSION}"
        self.feature_names = list(FEATURE_NAMES)

    def encode(self, tiles: np.ndarray, *, mpp: float = 0.5) -> np.ndarray:
        """Features of a batch of tiles.

        Parameters
        ----------
        tiles : ndarray of uint8, (B, H, W, 3)
        mpp : float
            Tile resolution (µm/px), for physical areas and densities.

        Returns
        -------
        ndarray of float32, (B, D)
        """
        tiles = np.asarray(tiles)
        if tiles.ndim == 3:
            tiles = tiles[None]
        b, _h, _w, _ = tiles.shape
        x = tiles.astype(np.float32)
        mx, mn = tiles.max(-1), tiles.min(-1)
        tissue = ~((mn > 215) & ((mx.astype(np.int16) - mn) < 0.12 * mx))
        npx = np.maximum(tissue.sum((1, 2)), 1).astype(np.float32)
        conc = _OD_LUT[tiles] @ _UNMIX  # (B, H, W, 3): H, E, residual
        hc, ec = conc[..., 0], conc[..., 1]
        tm = tissue.astype(np.float32)

        def mstat(v: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
            mean = (v * tm).sum((1, 2)) / npx
            var = (v * v * tm).sum((1, 2)) / npx - mean**2
            return mean, np.sqrt(np.maximum(var, 0))

        h_mean, h_std = mstat(hc)
        e_mean, e_std = mstat(ec)
        nuc = (hc > self.nuclear_threshold) & tissue
        feats = [
            *x.mean((1, 2)).T,
            *x.std((1, 2)).T,
            tissue.mean((1, 2)),
            h_mean,
            h_std,
            ((hc > 0.8) & tissue).sum((1, 2)) / npx,
            e_mean,
            e_std,
            ((ec > 0.6) & tissue).sum((1, 2)) / npx,
            nuc.sum((1, 2)) / npx,
            ((ec > 0.3) & tissue).sum((1, 2)) / npx,
        ]
        g = x[..., 1]
        gy, gx = np.diff(g, axis=1)[:, :, :-1], np.diff(g, axis=2)[:, :-1, :]
        feats.append(np.sqrt(gx * gx + gy * gy).mean((1, 2)))
        lap = (
            g[:, :-2, 1:-1]
            + g[:, 2:, 1:-1]
            + g[:, 1:-1, :-2]
            + g[:, 1:-1, 2:]
            - 4 * g[:, 1:-1, 1:-1]
        )
        feats.append(lap.reshape(b, -1).var(1))
        feats.extend(self._fft_bands(g))
        feats.extend(self._nuclei(nuc, hc, tissue, mpp))
        return np.stack(feats, 1).astype(np.float32)

    @staticmethod
    def _fft_bands(g: np.ndarray) -> list[np.ndarray]:
        _b, h, w = g.shape
        spec = np.abs(np.fft.rfft2(g - g.mean((1, 2), keepdims=True))) ** 2
        fy = np.fft.fftfreq(h)[:, None]
        fx = np.fft.rfftfreq(w)[None, :]
        rad = np.sqrt(fx * fx + fy * fy)
        edges = [0.0, 0.02, 0.05, 0.1, 0.2, 0.75]
        total = spec.sum((1, 2)) + 1e-6
        return [
            spec[:, (rad > lo) & (rad <= hi)].sum(1) / total for lo, hi in itertools.pairwise(edges)
        ]

    @staticmethod
    def _nuclei(
        nuc: np.ndarray, hc: np.ndarray, tissue: np.ndarray, mpp: float
    ) -> list[np.ndarray]:
        b = len(nuc)
        out = np.zeros((7, b), np.float32)
        px_um2 = mpp * mpp
        min_px = max(1, int(8.0 / px_um2))
        for i in range(b):
            lab, n = ndi.label(nuc[i])
            tissue_mm2 = max(tissue[i].sum() * px_um2 / 1e6, 1e-4)
            if n == 0:
                continue
            area = np.bincount(lab.ravel(), minlength=n + 1)[1:]
            hsum = np.bincount(lab.ravel(), weights=hc[i].ravel(), minlength=n + 1)[1:]
            keep = area >= min_px
            if not keep.any():
                continue
            a_um = area[keep] * px_um2
            out[:, i] = [
                keep.sum() / tissue_mm2,
                a_um.mean(),
                np.median(a_um),
                a_um.std(),
                (a_um < 35).sum() / tissue_mm2,
                (a_um > 60).sum() / tissue_mm2,
                (hsum[keep] / area[keep]).mean(),
            ]
        return list(out)


def register() -> None:
    """Register ``builtin`` (idempotent)."""
    from hccstrat.encoders.registry import _REGISTRY, register_encoder

    if "builtin" not in _REGISTRY:
        register_encoder("builtin", BuiltinHEEncoder)
