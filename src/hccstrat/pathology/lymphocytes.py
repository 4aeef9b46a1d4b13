"""Nuclear-level lymphocyte detection on the haematoxylin channel.

Method (per tile, vectorised over a batch):

1. Colour deconvolution (Ruifrok & Johnston) to the haematoxylin concentration,
   numerically identical to ``skimage.color.rgb2hed(tile)[..., 0]`` (computed through a
   look-up table, so a batch of tiles costs a few milliseconds).
2. Scale-normalised Laplacian of Gaussian (LoG, ``-σ² ∇²G ∗ H``) at the lymphocyte
   scale (nucleus diameter ``diameter_um``, about 7 µm; ``σ = r / √2`` in pixels at the
   tile's mpp) and at a larger "other nucleus" scale (``large_diameter_um``, about
   12 µm: hepatocyte and tumour nuclei).
3. A candidate is a local maximum of the small-scale response (within one nuclear
   radius) that is strong enough (``min_log``), stronger than the large-scale response
   at the same place (small and round, not part of a larger nucleus), and dark
   (smoothed haematoxylin at the centre >= ``min_h``: lymphocyte nuclei are dense).
4. Shape test (``shape_test``): the LoG answers as strongly to the cross-section of a
   spindle (fibroblast) nucleus, to a keratinocyte or tumour nucleus in haematoxylin-
   rich cytoplasm and to collagen texture as to a lymphocyte. At each candidate the
   nuclear *profile* is measured on a small patch of the haematoxylin channel at
   ``shape_mpp`` (smoothed by 0.5 µm): the centre value ``c`` (mean within 1 µm), the
   surround ``s`` (25th percentile of a ring at 0.65–0.93 nuclear diameters, so that
   packed neighbours in a lymphoid aggregate do not hide the gaps between them), the
   half-maximum region (``> s + (c - s) / 2``) connected to the centre and within the
   ring's inner radius, its equivalent diameter and its minor/major axis ratio (square
   root of the eigenvalue ratio of its second moments). A lymphocyte profile is

   * at least ``min_profile_um`` across (a 7 µm sphere cut at random gives profiles of
     mean π/4 · 7 ≈ 5.5 µm; spindle cross-sections, nuclear debris and collagen grain
     are smaller; nuclei larger than lymphocytes were removed in step 3);
   * round: minor/major >= ``min_roundness`` (spindle nuclei are 3–5 times longer than
     wide);
   * dark against its surround: ``(c - s) / c >= min_contrast`` (lymphocytes have
     scant cytoplasm and sit in pale stroma or between cells; keratinocyte and tumour
     nuclei are paler and lie in haematoxylin-tinted cytoplasm).

   Measured on CMU-1-Small-Region (skin, 0.5 µm/px, tiles of 64 µm): LoG candidates in
   the dermis had median diameter 4.4 µm and roundness 0.52, those in the epidermis
   median contrast 0.79; on synthetic slides, candidates in immune-dense tissue had
   median diameter 7.7 µm, roundness 0.80 and contrast 0.94. The test keeps 14 % of the
   dermis candidates (about 1,960 → 280 per mm²), 10 % of the epidermis ones (5,700 →
   550 per mm²) and 86–100 % of the synthetic ones; it adds about 5–40 % to the
   detection time (vectorised over the candidates of a batch).

Counts are per tile; densities (cells/mm²) divide by the tissue area of the tiles
concerned (see :mod:`hccstrat.pathology.time`).
"""

from __future__ import annotations

from dataclasses import asdict, dataclass

import numpy as np
import pandas as pd
from scipy import ndimage as ndi

from hccstrat.exceptions import ConfigError

__all__ = ["MAX_MPP", "LymphocyteDetector", "haematoxylin"]

#: Coarsest tile resolution (µm/px) lymphocytes are counted at. On the real CMU-1
#: fixture the density is stable from 0.5 to 1.0 µm/px (115-150 /mm2) and falls by a
#: third at 1.5 µm/px, where a lymphocyte is under 5 px across: coarser tiles would
#: under-count silently, and an under-count reads as an immune-desert tumour.
MAX_MPP = 1.0

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
    shape_test : bool
        Apply the nuclear-profile test of step 4 (``False``: LoG candidates only).
    min_profile_um : float
        Smallest half-maximum diameter of a lymphocyte profile (µm). The largest is
        ``large_diameter_um``.
    min_roundness : float
        Lowest minor/major axis ratio of the profile.
    min_contrast : float
        Lowest ``(centre - surround) / centre`` haematoxylin of the profile.
    shape_mpp : float
        Resolution of the profile patches (µm/px); finer tiles are block-averaged
        down to it (1 µm/px gave the same verdicts as 0.5 µm/px at a quarter of the
        cost).
    """

    diameter_um: float = 7.0
    large_diameter_um: float = 12.0
    min_log: float = 0.020
    min_h: float = 0.10
    min_ratio: float = 1.5
    work_mpp: float = 1.0
    shape_test: bool = True
    min_profile_um: float = 4.5
    min_roundness: float = 0.6
    min_contrast: float = 0.85
    shape_mpp: float = 1.0

    def _check(self, mpp: float) -> None:
        if not (0.05 <= mpp <= MAX_MPP):
            raise ConfigError(
                f"lymphocyte detection needs tiles at 0.05–{MAX_MPP} µm/px, got {mpp}: "
                "a 7 µm nucleus is then too few pixels across for the shape test",
                hint="tile at a target mpp of about 0.5 (20x) for nuclear detection",
            )
        if not (0 < self.diameter_um < self.large_diameter_um):
            raise ConfigError(
                f"diameter_um={self.diameter_um} must be > 0 and < large_diameter_um="
                f"{self.large_diameter_um}",
                hint="use e.g. diameter_um=7, large_diameter_um=12",
            )
        if not (
            self.shape_mpp > 0
            and self.min_profile_um >= 0
            and 0 <= self.min_roundness <= 1
            and self.min_contrast <= 1
        ):
            raise ConfigError(
                f"invalid shape test: shape_mpp={self.shape_mpp}, min_profile_um="
                f"{self.min_profile_um}, min_roundness={self.min_roundness}, "
                f"min_contrast={self.min_contrast}",
                hint="shape_mpp > 0, min_profile_um >= 0, 0 <= min_roundness <= 1, "
                "min_contrast <= 1",
            )

    def response(self, tiles: np.ndarray, mpp: float) -> tuple[np.ndarray, ...]:
        """Haematoxylin, small-/large-scale LoG and smoothed H of a batch ``(B, H, W, 3)``.

        All four are at :attr:`work_mpp` (or the tile's mpp when coarser).
        """
        return self._responses(tiles, mpp)[1:]

    def _responses(self, tiles: np.ndarray, mpp: float) -> tuple[np.ndarray, ...]:
        """Native-resolution H, then H, small, large LoG and smoothed H at the work mpp."""
        self._check(mpp)
        x = np.asarray(tiles)
        if x.ndim == 3:
            x = x[None]
        h0 = haematoxylin(x)
        h = _block_mean(h0, max(1, int(self.work_mpp / mpp + 1e-6)))
        m = mpp * max(1, int(self.work_mpp / mpp + 1e-6))
        s1 = self.diameter_um / 2 / m / np.sqrt(2)
        s2 = self.large_diameter_um / 2 / m / np.sqrt(2)
        small = _log(h, s1)
        large = _log(h, s2)
        hs = ndi.gaussian_filter(h, (0, 1.0, 1.0), mode="reflect")
        return h0, h, small, large, hs

    def _candidates(
        self, tiles: np.ndarray, mpp: float
    ) -> tuple[np.ndarray, np.ndarray, np.ndarray, np.ndarray, tuple]:
        """LoG candidates: tile index, row, col (tile px), LoG value; and the H planes."""
        h0, h, small, large, hs = self._responses(tiles, mpp)
        f = max(1, int(self.work_mpp / mpp + 1e-6))
        r = max(1, round(self.diameter_um / 2 / (mpp * f)))
        peak = small == ndi.maximum_filter(small, size=(1, 2 * r + 1, 2 * r + 1), mode="nearest")
        keep = peak & (small >= self.min_log) & (hs >= self.min_h)
        keep &= small >= self.min_ratio * large
        b, yy, xx = np.nonzero(keep)
        return b, yy * f + f // 2, xx * f + f // 2, small[b, yy, xx], (h0, h, f)

    def measure(self, tiles: np.ndarray, mpp: float) -> pd.DataFrame:
        """Every LoG candidate with its profile measures and the verdict.

        Parameters
        ----------
        tiles : ndarray of uint8, (B, H, W, 3) or (H, W, 3)
        mpp : float
            Tile resolution (µm/px).

        Returns
        -------
        DataFrame
            ``tile``, ``row``, ``col`` (tile pixels), ``log`` (small-scale response),
            ``diameter_um``, ``roundness``, ``contrast`` (profile, step 4 of the module
            docstring) and ``lymphocyte`` (passes every test).
        """
        b, yy, xx, lg, planes = self._candidates(tiles, mpp)
        prof = self._profiles(planes, b, yy, xx, mpp)
        ok = self._passes(prof) if self.shape_test else np.ones(len(b), bool)
        return pd.DataFrame({"tile": b, "row": yy, "col": xx, "log": lg, **prof, "lymphocyte": ok})

    def _profiles(
        self, planes: tuple, b: np.ndarray, rows: np.ndarray, cols: np.ndarray, mpp: float
    ) -> dict[str, np.ndarray]:
        """Profile measures of candidates (reuses the work-resolution H when it fits)."""
        h0, h_work, f_work = planes
        f = max(1, int(self.shape_mpp / mpp + 1e-6))
        h = h_work if f == f_work else _block_mean(h0, f)
        ring = (0.65 * self.diameter_um, 0.93 * self.diameter_um)
        return _profiles(h, b, rows // f, cols // f, mpp * f, ring)

    def _passes(self, prof: dict[str, np.ndarray]) -> np.ndarray:
        return (
            (prof["diameter_um"] >= self.min_profile_um)
            & (prof["roundness"] >= self.min_roundness)
            & (prof["contrast"] >= self.min_contrast)
        )

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
        b, yy, xx, _lg, planes = self._candidates(tiles, mpp)
        if self.shape_test and len(b):
            ok = self._passes(self._profiles(planes, b, yy, xx, mpp))
            b, yy, xx = b[ok], yy[ok], xx[ok]
        out = []
        n_tiles = len(planes[0])
        bounds = np.searchsorted(b, np.arange(n_tiles + 1))
        for i in range(n_tiles):
            sl = slice(bounds[i], bounds[i + 1])
            out.append(np.stack([yy[sl], xx[sl]], 1))
        return out

    def count(self, tiles: np.ndarray, mpp: float) -> np.ndarray:
        """Number of lymphocytes per tile (int64, (B,))."""
        return np.array([len(d) for d in self.detect(tiles, mpp)], np.int64)

    def to_dict(self) -> dict:
        return asdict(self)


def _block_mean(h: np.ndarray, f: int) -> np.ndarray:
    """Mean over ``f × f`` blocks of a batch (B, H, W) (edges cropped)."""
    if f <= 1:
        return h
    hh, ww = h.shape[1] // f * f, h.shape[2] // f * f
    out = h[:, 0:hh:f, 0:ww:f].copy()
    for dy in range(f):  # strided sums: several times faster than reshape().mean()
        for dx in range(f):
            if dy or dx:
                out += h[:, dy:hh:f, dx:ww:f]
    out *= 1.0 / (f * f)
    return out


def _profiles(
    h: np.ndarray,
    b: np.ndarray,
    rows: np.ndarray,
    cols: np.ndarray,
    px: float,
    ring_um: tuple[float, float],
) -> dict[str, np.ndarray]:
    """Half-maximum nuclear profile at each candidate (vectorised over candidates).

    Parameters
    ----------
    h : ndarray (B, H, W)
        Haematoxylin at ``px`` µm/px.
    b, rows, cols : ndarray of int (N,)
        Candidate tile index and centre (pixels of ``h``).
    px : float
        Resolution of ``h`` (µm/px).
    ring_um : (float, float)
        Inner and outer radius of the surround ring (µm); also the patch radius.

    Returns
    -------
    dict of ndarray (N,)
        ``diameter_um`` (equivalent diameter of the half-maximum region connected to
        the centre), ``roundness`` (minor/major axis ratio from its second moments),
        ``contrast`` ((centre - surround) / centre).
    """
    n = len(b)
    if n == 0:
        z = np.zeros(0)
        return {"diameter_um": z, "roundness": z, "contrast": z}
    big = int(np.ceil(ring_um[1] / px))
    oy, ox = np.mgrid[-big : big + 1, -big : big + 1]
    off = np.arange(-big, big + 1)
    iy = np.clip(rows[:, None] + off, 0, h.shape[1] - 1)
    ix = np.clip(cols[:, None] + off, 0, h.shape[2] - 1)
    patch = h[b[:, None, None], iy[:, :, None], ix[:, None, :]]
    sig = 0.5 / px  # 0.5 µm: JPEG grain, not nuclear structure
    if sig >= 0.3:
        patch = ndi.gaussian_filter(patch, (0, sig, sig), mode="nearest")
    dist = np.hypot(oy, ox) * px
    flat = patch.reshape(n, -1)
    centre = flat[:, (dist <= max(1.0, px)).ravel()].mean(1)
    ring = flat[:, ((dist >= ring_um[0]) & (dist <= ring_um[1])).ravel()]
    k = ring.shape[1] // 4
    surround = np.partition(ring, k, axis=1)[:, k]
    half = surround + 0.5 * (centre - surround)
    mask = patch > half[:, None, None]
    mask[:, big, big] = True
    plane = np.zeros((3, 3, 3), bool)
    plane[1] = [[0, 1, 0], [1, 1, 1], [0, 1, 0]]  # 4-connected, never across candidates
    lab, _ = ndi.label(mask, structure=plane)
    # the half-maximum region connected to the centre, within the ring's inner radius
    # (packed neighbours beyond it would merge into one elongated profile)
    comp = (lab == lab[:, big, big][:, None, None]).reshape(n, -1)
    inner = (dist <= ring_um[0]).ravel()
    basis = np.stack([np.ones(inner.sum()), oy.ravel()[inner], ox.ravel()[inner]])
    basis = np.concatenate([basis, basis[1:2] ** 2, basis[2:3] ** 2, basis[1:2] * basis[2:3]])
    mom = comp[:, inner].astype(np.float32) @ basis.T.astype(np.float32)  # (N, 6)
    area = mom[:, 0].astype(float)
    my, mx = mom[:, 1] / area, mom[:, 2] / area
    syy = mom[:, 3] / area - my * my
    sxx = mom[:, 4] / area - mx * mx
    sxy = mom[:, 5] / area - my * mx
    tr = 0.5 * (syy + sxx)
    disc = np.sqrt((0.5 * (syy - sxx)) ** 2 + sxy * sxy)
    l_max = tr + disc + 1.0 / 12  # + pixel variance: one-pixel profiles are round
    l_min = np.maximum(tr - disc, 0.0) + 1.0 / 12
    return {
        "diameter_um": 2.0 * np.sqrt(area / np.pi) * px,
        "roundness": np.sqrt(l_min / l_max),
        "contrast": (centre - surround) / np.maximum(centre, 1e-6),
    }
