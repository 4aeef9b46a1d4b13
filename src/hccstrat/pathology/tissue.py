"""Tissue detection on a slide thumbnail.

Saturation thresholded by Otsu (with a floor, so blank glass stays blank), minus pen
ink and near-black debris, then morphology: closing, removal of objects smaller than
``min_area_um2``, hole filling up to ``max_hole_um2``.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np
from scipy import ndimage as ndi

from hccstrat.pathology.qc import pen_mask

__all__ = ["TissueMask", "detect_tissue", "tissue_mask_from_rgb"]


@dataclass
class TissueMask:
    """Binary tissue mask of a slide.

    Attributes
    ----------
    mask : ndarray of bool, (h, w)
    downsample : float
        Level-0 pixels per mask pixel.
    threshold : float
        Saturation threshold used.
    thumbnail : ndarray of uint8 or None
        The RGB thumbnail the mask was computed on.
    pen : ndarray of bool or None
        Pen-ink pixels of the thumbnail.
    """

    mask: np.ndarray
    downsample: float
    threshold: float
    thumbnail: np.ndarray | None = None
    pen: np.ndarray | None = None

    @property
    def tissue_fraction(self) -> float:
        """Share of the slide area covered by tissue."""
        return float(self.mask.mean())


def tissue_mask_from_rgb(
    rgb: np.ndarray,
    *,
    mpp: float | None = None,
    min_area_um2: float = 20_000.0,
    max_hole_um2: float = 40_000.0,
    min_saturation: float = 0.07,
    closing_um: float = 16.0,
) -> tuple[np.ndarray, float, np.ndarray]:
    """Tissue mask of an RGB image at ``mpp`` µm/px.

    Returns
    -------
    mask : ndarray of bool
    threshold : float
        Saturation threshold.
    pen : ndarray of bool
        Pen-ink pixels.
    """
    from skimage.filters import threshold_otsu

    r, g, b = rgb[..., 0], rgb[..., 1], rgb[..., 2]
    mx = np.maximum(np.maximum(r, g), b)  # uint8 channel-wise ops: no float copy of the image
    mn = np.minimum(np.minimum(r, g), b)
    sat = (mx - mn).astype(np.float32)
    sat /= np.maximum(mx, 1).astype(np.float32)
    pen = pen_mask(rgb)
    dark = mx < 45
    valid = ~pen & ~dark
    cand = sat[valid]
    thr = min_saturation
    if cand.size > 16 and cand.max() - cand.min() > 1e-3:
        thr = max(min_saturation, float(threshold_otsu(cand)))
        thr = min(thr, 0.12)  # pale tissue (fat, oedema) is barely saturated
    mask = (sat > thr) & ~dark & (mn < 235)  # ink included for now (see below)
    px_area = (mpp or 8.0) ** 2
    radius = max(1, round(closing_um / (mpp or 8.0)))
    if radius > 0:
        mask = ndi.binary_closing(
            mask, structure=np.ones((3, 3), bool), iterations=radius, border_value=0
        )
    lab, n = ndi.label(mask)
    if n:
        flat = lab.ravel()
        areas = np.bincount(flat, minlength=n + 1)
        ink = np.bincount(flat, weights=pen.ravel(), minlength=n + 1)
        # objects that are small, or mostly ink (pen strokes with their faded halo)
        keep = (areas * px_area >= min_area_um2) & (ink < 0.3 * areas)
        keep[0] = False
        mask = keep[lab] & ~pen
    holes = ndi.binary_fill_holes(mask) & ~mask
    hl, hn = ndi.label(holes)
    if hn:
        ha = np.bincount(hl.ravel(), minlength=hn + 1)
        small = ha * px_area <= max_hole_um2
        small[0] = False
        mask = mask | small[hl]
    return mask, thr, pen


def detect_tissue(reader, *, thumb_mpp: float = 8.0, max_size: int = 4096, **kwargs) -> TissueMask:
    """Detect tissue on a thumbnail of about ``thumb_mpp`` µm/px.

    Parameters
    ----------
    reader : hccstrat.io.wsi.SlideReader
    thumb_mpp : float
        Target thumbnail resolution (8 µm/px ≈ 1.25x).
    max_size : int
        Upper bound of the thumbnail's longer side.
    **kwargs
        Passed to :func:`tissue_mask_from_rgb`.
    """
    W, H = reader.dimensions
    mpp = reader.mpp
    size = int(min(max_size, max(W, H) * mpp / thumb_mpp + 0.5))
    thumb, ds = reader.get_thumbnail(max(size, 8))
    mask, thr, pen = tissue_mask_from_rgb(thumb, mpp=mpp * ds, **kwargs)
    return TissueMask(mask=mask, downsample=ds, threshold=thr, thumbnail=thumb, pen=pen)
