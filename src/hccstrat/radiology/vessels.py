"""Find the aorta and the portal vein in a dynamic liver MRI and measure their signal.

Used by the phase identification (:mod:`hccstrat.io._phase`) when the series
descriptions and timing do not name the phases. It works on low-resolution previews
(about 4 mm in-plane, at most ~40 slices) of every series of the dynamic group,
stacked voxel by voxel (the series share their grid; small motion between them only
blurs the vessel masks a little).

Heuristic (documented; it returns a confidence)
-----------------------------------------------
1. *Body*: voxels whose mean over the series is above 10 % of the 99th percentile.
2. *Enhancing bright voxels*: in the body, ratio of the highest to the lowest signal
   over the series ``R >= 2.5`` (vessels enhance 3–7×, parenchyma 1.3–2×) and the
   highest signal above 45 % of the body's 99.8th percentile.
3. *Aorta*: vertical tubes are the in-plane columns where such voxels fill at least
   60 % of the body slices. Among the column components of 50–2500 mm², in the
   central half of the body's left–right extent and its posterior half (where the
   aorta lies, just anterior-left of the vertebral body at the posterior midline),
   the aorta is the one with the highest ``peak × roundness`` score, with a bonus
   for lying left of the midline (the inferior vena cava lies to the right and
   peaks later, less brightly).
4. *Portal vein*: enhancing voxels (``R >= 2`` against the brightest voxel of the
   3×3×3 neighbourhood in each series, which ignores motion edges), at least 60 % as
   bright as the aortic peak (enhancing parenchyma stays below), outside the tubes,
   right of and anterior to the aorta (towards the liver hilum) whose peak is in a
   different series from the aorta's peak (the portal vein peaks in the portal
   venous phase; a hypervascular tumour peaks with the aorta and is excluded); its
   largest connected part, rejected above 50 mL (not a vein).
5. Signals: aorta = mean of the brightest quarter of its component widened by 6 mm
   (robust to motion between series); portal vein = median of its voxels.

In the synthetic phantom (:mod:`hccstrat.synthetic._mri_phantom`) the aorta is the
cylinder ``AORTA_XYR`` and the portal vein the tube from ``PORTAL_HILUM`` into the
right lobe; the tests check that the finder lands there.

Confidence: ``aorta_confidence`` grows with the number of slices and the roundness of
the aorta component and its contrast with the next candidate; ``portal_confidence``
with the number of portal voxels. Phase rules use these confidences.
"""

from __future__ import annotations

import logging
from collections.abc import Sequence
from dataclasses import dataclass, field

import numpy as np

__all__ = ["VesselSignals", "measure_vessels"]

log = logging.getLogger(__name__)

R_VESSEL = 2.5
R_PORTAL = 2.0
PORTAL_BRIGHT = 0.6
PORTAL_MAX_ML = 50.0
COLUMN_FRACTION = 0.6


@dataclass
class VesselSignals:
    """Aorta and portal-vein signal per series, with where they were found.

    Attributes
    ----------
    aorta, portal : ndarray or None
        Median signal per series (input order); ``None`` when not found.
    aorta_xy_mm : tuple or None
        World (LPS) in-plane centre of the aorta.
    portal_xyz_mm : tuple or None
        World centroid of the portal-vein voxels.
    aorta_confidence, portal_confidence : float
        In [0, 1].
    notes : list of str
        What was found, for the phase reason.
    """

    aorta: np.ndarray | None = None
    portal: np.ndarray | None = None
    aorta_xy_mm: tuple[float, float] | None = None
    portal_xyz_mm: tuple[float, float, float] | None = None
    aorta_confidence: float = 0.0
    portal_confidence: float = 0.0
    n_aorta_voxels: int = 0
    n_portal_voxels: int = 0
    notes: list[str] = field(default_factory=list)


def _stack(images: Sequence) -> tuple[np.ndarray, object]:
    import SimpleITK as sitk

    ref = images[0]
    arrs = []
    for im in images:
        if im.GetSize() != ref.GetSize() or not np.allclose(im.GetSpacing(), ref.GetSpacing()):
            im = sitk.Resample(im, ref, sitk.Transform(), sitk.sitkLinear, 0.0)
        arrs.append(sitk.GetArrayFromImage(sitk.Cast(im, sitk.sitkFloat32)))
    return np.stack(arrs), ref


def _world_xy(ref) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """World x, y of every (row, column) and world z of every slice, for the grid."""
    nx, ny, nz = ref.GetSize()
    sp = np.asarray(ref.GetSpacing())
    d = np.asarray(ref.GetDirection()).reshape(3, 3)
    o = np.asarray(ref.GetOrigin())
    jj, ii = np.meshgrid(np.arange(ny), np.arange(nx), indexing="ij")
    wx = o[0] + d[0, 0] * ii * sp[0] + d[0, 1] * jj * sp[1]
    wy = o[1] + d[1, 0] * ii * sp[0] + d[1, 1] * jj * sp[1]
    wz = o[2] + d[2, 2] * np.arange(nz) * sp[2]
    return wx, wy, wz


def _top_quarter(vals: np.ndarray) -> float:
    q = np.percentile(vals, 75)
    return float(vals[vals >= q].mean())


def measure_vessels(images: Sequence) -> VesselSignals:
    """Locate the aorta and portal vein over the series of a dynamic group.

    Parameters
    ----------
    images : sequence of SimpleITK.Image
        One (preview) volume per series, on the same grid (others are resampled to
        the first one's grid).

    Returns
    -------
    VesselSignals
        ``aorta`` is ``None`` when no vertical enhancing tube is found.
    """
    from scipy import ndimage

    out = VesselSignals()
    if len(images) < 2:
        out.notes.append("fewer than two series")
        return out
    v, ref = _stack(images)
    n, nz = v.shape[:2]
    mean = v.mean(0)
    p99 = float(np.percentile(mean, 99))
    if not np.isfinite(p99) or p99 <= 0:
        out.notes.append("empty images")
        return out
    body = mean > 0.1 * p99
    mx, mn = v.max(0), v.min(0)
    peak_idx = v.argmax(0)
    ratio = mx / np.maximum(mn, 0.1 * p99)
    bright = mx > 0.45 * float(np.percentile(mx[body], 99.8))
    cand = body & bright & (ratio >= R_VESSEL)
    # vertical tubes: columns bright and enhancing in most body slices
    body_slices = body.sum(0)
    frac = cand.sum(0) / np.maximum(body_slices, 1)
    tubes = (frac >= COLUMN_FRACTION) & (body_slices >= max(3, 0.5 * nz))
    wx, wy, wz = _world_xy(ref)
    sp = ref.GetSpacing()
    pix_mm2 = float(sp[0] * sp[1])
    body2d = body.any(0)
    if not body2d.any():
        out.notes.append("no body found")
        return out
    bx, by = wx[body2d], wy[body2d]
    x_mid, half_w = (bx.min() + bx.max()) / 2, (bx.max() - bx.min()) / 2
    y_mid = (by.min() + by.max()) / 2
    lab, nlab = ndimage.label(tubes)
    best, scores = None, []
    for k in range(1, nlab + 1):
        comp = lab == k
        area = comp.sum() * pix_mm2
        cx, cy = float(wx[comp].mean()), float(wy[comp].mean())
        if not (50 <= area <= 2500) or abs(cx - x_mid) > 0.5 * half_w or cy < y_mid:
            continue
        r_max = float(np.sqrt(((wx[comp] - cx) ** 2 + (wy[comp] - cy) ** 2).max())) + 0.5 * sp[0]
        roundness = min(1.0, area / (np.pi * r_max**2))
        vox = cand & comp[None]
        peak = float(np.median(mx[vox]))
        score = peak * (0.5 + roundness) * (1.15 if cx > x_mid else 1.0)
        scores.append(score)
        if best is None or score > best[0]:
            best = (score, comp, cx, cy, roundness, vox)
    if best is None:
        out.notes.append("no aorta-like vertical enhancing tube")
        return out
    _score, comp, cx, cy, roundness, vox = best
    # the aorta moves a little between series: measure each series in the component
    # widened by ~6 mm, as the mean of its brightest quarter (where the vessel is)
    grow = max(1, round(6.0 / sp[0]))
    region = ndimage.binary_dilation(comp, iterations=grow)[None] & body & vox.any((1, 2))[
        :, None, None]
    out.aorta = np.array([_top_quarter(v[i][region]) for i in range(n)])
    out.aorta_xy_mm = (cx, cy)
    out.n_aorta_voxels = int(vox.sum())
    n_sl = int(vox.any((1, 2)).sum())
    second = sorted(scores)[-2] if len(scores) > 1 else 0.0
    contrast = 1.0 - second / best[0]
    out.aorta_confidence = float(np.clip(0.4 * min(1.0, n_sl / 8) + 0.3 * roundness
                                         + 0.3 * max(contrast, 0.0), 0, 1))
    out.notes.append(f"aorta at x={cx:.0f}, y={cy:.0f} mm ({n_sl} slices)")
    # portal vein: enhancing, not a vertical tube, towards the hilum, later peak
    a_peak = int(np.argmax(out.aorta))
    near_tube = ndimage.binary_dilation(frac >= 0.3, iterations=1)
    # motion between series turns organ edges into false "enhancement" (an edge voxel is
    # fat in one series, liver in another): the portal ratio uses, per series, the
    # brightest voxel of the 3x3x3 neighbourhood before taking the minimum over series
    mn_robust = np.min([ndimage.maximum_filter(v[i], size=3) for i in range(n)], axis=0)
    ratio_pv = mx / np.maximum(mn_robust, 0.1 * p99)
    pv = (body & (mx >= PORTAL_BRIGHT * float(out.aorta.max())) & (ratio_pv >= R_PORTAL)
          & (peak_idx != a_peak) & ~near_tube[None]
          & (wx < cx)[None] & (wy < cy)[None])
    vox_mm3 = pix_mm2 * sp[2]
    keep = None
    if pv.sum() >= 2:
        lab3, n3 = ndimage.label(pv)
        sizes = ndimage.sum_labels(pv, lab3, index=np.arange(1, n3 + 1))
        keep = lab3 == (int(np.argmax(sizes)) + 1)
        if keep.sum() * vox_mm3 > PORTAL_MAX_ML * 1000:
            out.notes.append(f"portal candidate of {keep.sum() * vox_mm3 / 1000:.0f} mL "
                             "rejected (too large for a vein)")
            keep = None
    if keep is not None:
        out.portal = np.array([float(np.median(v[i][keep])) for i in range(n)])
        zz, jj, ii = np.nonzero(keep)
        out.portal_xyz_mm = (float(wx[jj, ii].mean()), float(wy[jj, ii].mean()),
                             float(wz[zz].mean()))
        out.n_portal_voxels = int(keep.sum())
        out.portal_confidence = float(np.clip(keep.sum() * vox_mm3 / 1500.0, 0.2, 1.0))
        out.notes.append(f"portal vein {keep.sum() * vox_mm3 / 1000:.1f} mL")
    elif not out.notes[-1].startswith("portal"):
        out.notes.append("portal vein not found")
    return out
