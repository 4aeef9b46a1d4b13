"""Region geometry of a synthetic H&E slide: a low-resolution label map.

The label map is drawn on a coarse grid (one cell = ``downsample`` level-0 pixels)
from smooth random fields, so that the area of each tissue compartment follows the
patient's latent tumour immune microenvironment (TIME). Class codes are documented in
:data:`hccstrat.synthetic.wsi.CLASS_CODES`.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass

import numpy as np
from scipy import ndimage as ndi
from scipy.special import expit

__all__ = ["ARTEFACT_BITS", "Geometry", "draw_geometry"]

#: bit flags of the artefact map (same grid as the label map)
ARTEFACT_BITS = {"pen": 1, "fold": 2, "blur": 4}

BACKGROUND, TUMOUR, STROMA, IMMUNE, NECROSIS, NORMAL, VESSEL, THROMBUS, PEN = range(9)


def render_grade(latent) -> float:
    """Histological grade in [0, 1] rendered for a latent row's ``aggressiveness``.

    ``aggressiveness`` is on the cohort's latent scale (about N(0, 1), 0 = average):
    the grade is ``expit(0.8 * aggressiveness)``, so -2 / 0 / +2 sd render as
    0.17 / 0.5 / 0.83 (smaller, paler nuclei in thin plates → large atypical nuclei in
    thick plates), and every cohort patient renders distinctly instead of saturating.
    """
    return float(expit(0.8 * float(latent.get("aggressiveness", 0.0))))


# share of the tumour area that becomes dense lymphoid infiltrate per unit of
# intratumoral lymphocyte density, by immune phenotype
_INTRATUMOUR_IMMUNE = {"inflamed": 0.18, "excluded": 0.015, "desert": 0.004}
# share of intratumoral stroma that becomes immune-dense (excluded = trapped in stroma)
_STROMAL_IMMUNE = {"inflamed": 0.10, "excluded": 0.35, "desert": 0.02}


@dataclass
class Geometry:
    """Label and artefact maps on the coarse grid.

    Attributes
    ----------
    labels : ndarray of uint8, shape (gh, gw)
        Class code per grid cell.
    artefacts : ndarray of uint8, shape (gh, gw)
        Bit flags (:data:`ARTEFACT_BITS`).
    downsample : int
        Level-0 pixels per grid cell.
    render : ndarray of uint8, shape (gh, gw)
        Class whose texture is drawn (tissue under a fold keeps its own class; the
        fold itself is drawn as a darker double layer).
    """

    labels: np.ndarray
    artefacts: np.ndarray
    downsample: int
    render: np.ndarray


def _smooth(rng: np.random.Generator, shape: tuple[int, int], sigma: float) -> np.ndarray:
    """Zero-mean, unit-variance Gaussian random field with correlation length ``sigma`` cells."""
    small = max(1.0, sigma / 4.0)
    sh = (max(4, int(np.ceil(shape[0] / small))), max(4, int(np.ceil(shape[1] / small))))
    f = ndi.gaussian_filter(
        rng.standard_normal(sh).astype(np.float32), sigma=sigma / small, mode="wrap"
    )
    f = ndi.zoom(f, (shape[0] / sh[0], shape[1] / sh[1]), order=1)[: shape[0], : shape[1]]
    if f.shape != shape:
        f = np.pad(f, ((0, shape[0] - f.shape[0]), (0, shape[1] - f.shape[1])), mode="edge")
    return (f - f.mean()) / (f.std() + 1e-8)


def _top_fraction(score: np.ndarray, where: np.ndarray, fraction: float) -> np.ndarray:
    """Cells of ``where`` whose ``score`` lies in the top ``fraction`` of that region."""
    fraction = float(np.clip(fraction, 0.0, 1.0))
    if fraction <= 0 or not where.any():
        return np.zeros_like(where)
    thr = np.quantile(score[where], 1.0 - fraction)
    return where & (score >= thr)


def _disc(shape: tuple[int, int], cy: float, cx: float, r: float) -> np.ndarray:
    m = np.zeros(shape, bool)
    y0, y1 = max(0, int(cy - r - 1)), min(shape[0], int(cy + r + 2))
    x0, x1 = max(0, int(cx - r - 1)), min(shape[1], int(cx + r + 2))
    yy, xx = np.ogrid[y0:y1, x0:x1]
    m[y0:y1, x0:x1] = (yy - cy) ** 2 + (xx - cx) ** 2 <= r * r
    return m


def _stroke(
    rng: np.random.Generator, shape: tuple[int, int], width: float, start, heading, length: float
) -> np.ndarray:
    """Pen-like stroke: a smooth random walk of ``length`` cells, ``width`` cells wide."""
    n = max(8, int(length / max(width, 1.0) * 2))
    turn = np.cumsum(rng.normal(0, 0.08, n))
    ang = heading + turn
    step = length / n
    ys = start[0] + np.cumsum(np.sin(ang) * step)
    xs = start[1] + np.cumsum(np.cos(ang) * step)
    m = np.zeros(shape, bool)
    iy = np.clip(ys.round().astype(int), 0, shape[0] - 1)
    ix = np.clip(xs.round().astype(int), 0, shape[1] - 1)
    m[iy, ix] = True
    return ndi.binary_dilation(m, iterations=max(1, int(width / 2)))


def draw_geometry(
    latent: Mapping,
    grid: tuple[int, int],
    downsample: int,
    mpp: float,
    rng: np.random.Generator,
    *,
    artefacts: bool = True,
) -> Geometry:
    """Draw the region label map of one slide.

    Parameters
    ----------
    latent : Mapping
        One latent row (see :func:`hccstrat.synthetic.wsi.default_latent`).
    grid : (int, int)
        Grid shape (rows, cols).
    downsample : int
        Level-0 pixels per grid cell.
    mpp : float
        Level-0 micrometres per pixel.
    rng : numpy Generator
        Random source.
    artefacts : bool
        Draw pen marks, a fold and a blurred patch.

    Returns
    -------
    Geometry
    """
    gh, gw = grid
    shape = (gh, gw)
    um = downsample * mpp  # micrometres per grid cell
    side = float(min(gh, gw))
    yy, xx = np.mgrid[0:gh, 0:gw].astype(np.float32)
    phenotype = str(latent.get("immune_phenotype", "inflamed"))
    lym = float(latent.get("lymphocyte_density", 0.3))
    mlym = float(latent.get("margin_lymphocyte_density", 0.4))
    strf = float(latent.get("stroma_fraction", 0.2))
    necf = float(latent.get("necrosis_fraction", 0.05))

    # tissue section: a wobbly ellipse covering most of the glass
    cy, cx = gh * rng.uniform(0.45, 0.55), gw * rng.uniform(0.45, 0.55)
    ay, ax = gh * rng.uniform(0.36, 0.42), gw * rng.uniform(0.36, 0.42)
    r = np.hypot((yy - cy) / ay, (xx - cx) / ax)
    tissue = r < 1.0 + 0.12 * _smooth(rng, shape, side * 0.06)
    tissue = ndi.binary_fill_holes(tissue)

    # tumour nodule: off-centre ellipse inside the section
    ang = rng.uniform(0, 2 * np.pi)
    ty, tx = cy + 0.25 * ay * np.sin(ang), cx + 0.25 * ax * np.cos(ang)
    tr = np.hypot((yy - ty) / (0.6 * ay), (xx - tx) / (0.6 * ax))
    tumour = tissue & (tr < 1.0 + 0.10 * _smooth(rng, shape, side * 0.04))
    labels = np.where(tissue, NORMAL, BACKGROUND).astype(np.uint8)
    labels[tumour] = TUMOUR

    d_in = ndi.distance_transform_edt(tumour) * um  # µm from the tumour edge, inside
    d_out = ndi.distance_transform_edt(~tumour) * um
    margin_w = min(400.0, 0.05 * side * um)
    # fibrous capsule (thicker when the tumour is stroma-rich)
    capsule_w = 20.0 + 120.0 * strf
    capsule = tissue & ~tumour & (d_out <= capsule_w)
    # intratumoral fibrous septa: ridges of a smooth field
    ridge = -np.abs(_smooth(rng, shape, max(2.0, 150.0 / um)))
    septa = _top_fraction(ridge, tumour, 0.9 * strf)
    labels[capsule | septa] = STROMA
    # necrosis: central, patchy
    centrality = d_in / (d_in.max() + 1e-6)
    nec_score = _smooth(rng, shape, max(2.0, 250.0 / um)) + 1.5 * centrality
    necrosis = _top_fraction(nec_score, tumour & ~septa, necf)
    labels[necrosis] = NECROSIS
    # lymphoid infiltrates
    patch = _smooth(rng, shape, max(1.5, 60.0 / um))
    viable = tumour & ~septa & ~necrosis
    imm = _top_fraction(patch, viable, lym * _INTRATUMOUR_IMMUNE.get(phenotype, 0.1))
    imm |= _top_fraction(patch, septa, min(1.0, lym * _STROMAL_IMMUNE.get(phenotype, 0.1)))
    band = tissue & ~necrosis & (np.minimum(d_in, d_out) <= margin_w)
    imm |= _top_fraction(patch, band, 0.35 * mlym)
    labels[imm] = IMMUNE

    # vessels: portal tracts in liver, vessels in tumour, thrombus = vascular invasion
    def place(region: np.ndarray, radius_um: float, code: int, n: int) -> None:
        cand = np.argwhere(region)
        if len(cand) == 0:
            return
        for k in rng.choice(len(cand), size=min(n, len(cand)), replace=False):
            ry = max(1.0, radius_um / um) * rng.uniform(0.7, 1.3)
            lumen = _disc(shape, cand[k][0], cand[k][1], ry)
            wall = _disc(shape, cand[k][0], cand[k][1], ry + max(1.0, 25.0 / um)) & ~lumen
            labels[wall & tissue] = STROMA
            labels[lumen & tissue] = code

    area_mm2 = tissue.sum() * (um / 1000.0) ** 2
    place(tissue & ~tumour & (d_out > capsule_w), 60.0, VESSEL, max(2, int(area_mm2 * 0.8)))
    place(viable & (d_in > 100.0), 45.0, VESSEL, max(1, int(area_mm2 * 0.3)))
    if bool(latent.get("vascular_invasion", False)):
        near = tissue & ~tumour & (d_out > capsule_w) & (d_out < margin_w * 2)
        place(near, 80.0, THROMBUS, 1 + int(render_grade(latent) > 0.5))

    art = np.zeros(shape, np.uint8)
    if artefacts:
        # pen mark beside the section (clinicians circle the tumour)
        edge = np.argwhere(tissue & ~ndi.binary_erosion(tissue, iterations=2))
        if len(edge):
            s = edge[rng.integers(len(edge))]
            pen = _stroke(
                rng, shape, max(2.0, side * 0.008), s, rng.uniform(0, 2 * np.pi), side * 0.35
            )
            art[pen] |= ARTEFACT_BITS["pen"]
        # tissue fold: a narrow band across the section
        a = rng.uniform(0, np.pi)
        dist = np.abs((yy - cy) * np.cos(a) - (xx - cx) * np.sin(a) - rng.uniform(-0.3, 0.3) * ay)
        fold = tissue & (dist < max(1.5, side * 0.012))
        art[fold] |= ARTEFACT_BITS["fold"]
        # out-of-focus patch
        cand = np.argwhere(tissue & ~fold)
        if len(cand):
            c = cand[rng.integers(len(cand))]
            blur = tissue & _disc(shape, c[0], c[1], side * 0.07)
            art[blur] |= ARTEFACT_BITS["blur"]
    render = labels.copy()
    render[(art & ARTEFACT_BITS["pen"]) > 0] = PEN
    labels[(art & (ARTEFACT_BITS["pen"] | ARTEFACT_BITS["fold"])) > 0] = PEN
    return Geometry(labels=labels, artefacts=art, downsample=downsample, render=render)
