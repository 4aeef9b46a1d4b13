"""Nuclear-level lymphocyte detection on the haematoxylin channel.

Method (per tile, vectorised over a batch):

1. Colour deconvolution (Ruifrok & Johnston) to the haematoxylin concentration,
   numerically identical to ``skimage.color.rgb2hed(tile)[..., 0]`` (computed through a
   look-up table, so a batch of tiles costs a few milliseconds).
2. Scale-normalised Laplacian of Gaussian (LoG, ``-σ² ∇²G ∗ H``) at the lymphocyte
   scale (nucleus diameter ``diameter_um``, about 7 µm; ``σ = r / √2`` in pixels at the
   tile's mpp) and at a larger "other nucleus" scale (``large_diameter_um``, about
   12 µm: hepatocyte and tumour nuclei).
3. A lymphocyte is a local maximum of the small-scale response (within one nuclear
   radius) that is strong enough (``min_log``), stronger than the large-scale response
   at the same place (small and round, not part of a larger nucleus), and dark
   (smoothed haematoxylin at the centre >= ``min_h``: lymphocyte nuclei are dense).

Counts are per tile; densities (cells/mm²) divide by the tissue area of the tiles
concerned (see :mod:`hccstrat.pathology.time`).
"""

from __future__ import annotations

from dataclasses import asdict, dataclass

import numpy as np
from scipy import ndimage as ndi

from hccstrat.exceptions import ConfigError

__all__ = ["LymphocyteDetector", "haematoxylin"]

# skimage.color.hed_from_rgb, haematoxylin column (skimage 0.19+; Ruifrok & Johnston 2001)
_HED_FROM_RGB = np.array(
    [
        [1.87798274, -1.00767869, -0.55611582],
        [-0.06590806, 1.13473037, -0.1355218],
        [-0.60190736, -0.48041419, 1.57358807],
    ]
)
_LOG_LUT = np.log(np.maximum(np.arange(256) / 255.0, 1e-6)) / np.log(1e-6)


def haematoxylin(rgb: np.ndarray) -> np.ndarray:
    """Haematoxylin concentration of uint8 RGB pixels, as ``rgb2hed(rgb)[..., 0]``.

    Parameters
    ----------
    rgb : ndarray of uint8, (..., 3)

    Returns
    -------
    ndarray of float32, (...)
    """
    rgb = np.asarray(rgb)
    if rgb.dtype != np.uint8 or rgb.shape[-1] != 3:
        raise ConfigError(
            f"expected uint8 RGB pixels (..., 3), got {rgb.dtype} {rgb.shape}",
            hint="pass tiles as read from the slide (uint8 RGB)",
        )
    luts = (_LOG_LUT[:, None] * _HED_FROM_RGB[:, 0][None, :]).astype(np.float64)
    h = luts[rgb[..., 0], 0] + luts[rgb[..., 1], 1] + luts[rgb[..., 2], 2]
    return np.maximum(h, 0).astype(np.float32)


def _log(h: np.ndarray, sigma: float) -> np.ndarray:
    """Scale-normalised negative LoG of a batch (B, H, W), per image (no mixing over B)."""
    sig = (0.0, sigma, sigma)
    lap = ndi.gaussian_filter(h, sig, order=(0, 2, 0), mode="reflect")
    lap += ndi.gaussian_filter(h, sig, order=(0, 0, 2), mode="reflect")
    lap *= -(sigma**2)
    return lap


@dataclass
class LymphocyteDetector:
    """Small round dark nuclei on the haematoxylin channel (see the module docstring).

    Parameters
    ----------
    diameter_um : float
        Typical lymphocyte nucleus diameter (µm); DOMAIN: about 7 µm.
    large_diameter_um : float
        Diameter of the "other nuclei" scale used to reject larger nuclei (µm).
    min_log : float
        Lowest scale-normalised LoG response of a detection (haematoxylin units of
        ``rgb2hed``).
    min_h : float
        Lowest smoothed haematoxylin concentration at the nucleus centre.
    min_ratio : float
        Lowest ratio of the small- to the large-scale response (rejects larger nuclei).
    work_mpp : float
        Resolution the responses are computed at (µm/px); finer tiles are
        block-averaged down to it (a 7 µm nucleus still spans 7 px at 1 µm/px).
    """

    diameter_um: float = 7.0
    large_diameter_um: float = 12.0
    min_log: float = 0.020
    min_h: float = 0.10
    min_ratio: float = 1.5
    work_mpp: float = 1.0

    def _check(self, mpp: float) -> None:
        if not (0.05 <= mpp <= 4.0):
            raise ConfigError(
                f"lymphocyte detection needs tiles at 0.05–4 µm/px, got {mpp}",
                hint="tile at a target mpp of about 0.5 (20x) for nuclear detection",
            )
        if not (0 < self.diameter_um < self.large_diameter_um):
            raise ConfigError(
                f"diameter_um={self.diameter_um} must be > 0 and < large_diameter_um="
                f"{self.large_diameter_um}",
                hint="use e.g. diameter_um=7, large_diameter_um=12",
            )

    def response(self, tiles: np.ndarray, mpp: float) -> tuple[np.ndarray, ...]:
        """Haematoxylin, small-/large-scale LoG and smoothed H of a batch ``(B, H, W, 3)``.

        All four are at :attr:`work_mpp` (or the tile's mpp when coarser).
        """
        self._check(mpp)
        x = np.asarray(tiles)
        if x.ndim == 3:
            x = x[None]
        h = haematoxylin(x)
        f = max(1, int(self.work_mpp / mpp + 1e-6))
        if f > 1:
            b, hh, ww = h.shape
            hh, ww = hh // f * f, ww // f * f
            h = h[:, :hh, :ww].reshape(b, hh // f, f, ww // f, f).mean((2, 4))
            mpp = mpp * f
        s1 = self.diameter_um / 2 / mpp / np.sqrt(2)
        s2 = self.large_diameter_um / 2 / mpp / np.sqrt(2)
        small = _log(h, s1)
        large = _log(h, s2)
        hs = ndi.gaussian_filter(h, (0, 1.0, 1.0), mode="reflect")
        return h, small, large, hs

    def detect(self, tiles: np.ndarray, mpp: float) -> list[np.ndarray]:
        """Lymphocyte centres per tile.

        Parameters
        ----------
        tiles : ndarray of uint8, (B, H, W, 3) or (H, W, 3)
        mpp : float
            Tile resolution (µm/px).

        Returns
        -------
        list of ndarray of int, (n_i, 2)
            (row, col) of each detection in tile pixels, one array per tile.
        """
        _h, small, large, hs = self.response(tiles, mpp)
        f = max(1, int(self.work_mpp / mpp + 1e-6))
        r = max(1, round(self.diameter_um / 2 / (mpp * f)))
        peak = small == ndi.maximum_filter(small, size=(1, 2 * r + 1, 2 * r + 1), mode="nearest")
        keep = peak & (small >= self.min_log) & (hs >= self.min_h)
        keep &= small >= self.min_ratio * large
        b, yy, xx = np.nonzero(keep)
        yy, xx = yy * f + f // 2, xx * f + f // 2
        out = []
        bounds = np.searchsorted(b, np.arange(len(small) + 1))
        for i in range(len(small)):
            sl = slice(bounds[i], bounds[i + 1])
            out.append(np.stack([yy[sl], xx[sl]], 1))
        return out

    def count(self, tiles: np.ndarray, mpp: float) -> np.ndarray:
        """Number of lymphocytes per tile (int64, (B,))."""
        return np.array([len(d) for d in self.detect(tiles, mpp)], np.int64)

    def to_dict(self) -> dict:
        return asdict(self)
