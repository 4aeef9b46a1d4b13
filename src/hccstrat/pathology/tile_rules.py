"""Rule layer for tile classes on real H&E: glass, pen ink, immune-dense, stroma.

The tile classifier (:mod:`hccstrat.pathology.tile_classifier`) learns from annotated
tiles; when it was trained on synthetic tissue only, its calls on real scans are not
to be trusted for the easy, physically defined cases. This layer measures a few
scanner-robust quantities per tile and overrides the classifier where they are
unambiguous (:func:`apply_tile_rules`, thresholds in :class:`TileRuleConfig`):

====================  ======================================================  ============
rule                  condition (per tile)                                    class
====================  ======================================================  ============
``pen``               marker-ink share >= ``max_ink`` (:func:`~hccstrat.      background
                      pathology.qc.ink_mask`; never a tissue class)
``glass``             tissue share < ``min_tissue`` (glass, white, over-       background
                      exposed pixels are not tissue)
``immune``            lymphocyte density >= ``immune_min_density`` cells/mm²   immune_dense
                      of tissue, haematoxylin-dense (nuclear share >=
                      ``immune_min_nuclear``, eosin/haematoxylin <=
                      ``immune_max_eosin``), not called necrosis
``not_immune``        classifier said immune-dense but lymphocytes <           fallback
                      ``immune_min_density / 2`` or eosin/haematoxylin >
                      ``2 * immune_max_eosin`` (next most probable class)
``stroma``            few nuclei (nuclear share < ``stroma_max_nuclear``),     stroma
                      eosin-dominant tissue, lymphocytes below
                      ``stroma_max_density``; the classifier called a
                      cellular class (tumour, immune-dense)
====================  ======================================================  ============

Other tiles keep the classifier's class (rule ``model``). Measures come from the raw
RGB tile (glass and ink; stain normalisation would recolour ink) and from the
haematoxylin/eosin channels of the stain-normalised tile (nuclear and eosin shares),
so they mean the same on every scanner. Densities are per mm² of *tissue* in the tile.

Thresholds were set on the synthetic slides (where they agree with the ground truth,
see ``tests/pathology/test_time_real.py``) and checked on the real fixture images
(glass, pen, adipose, densely cellular tumour, skin); recalibrate per centre on
annotated cases.
"""

from __future__ import annotations

import logging
from dataclasses import asdict, dataclass

import numpy as np
import pandas as pd

from hccstrat.pathology.qc import ink_mask

__all__ = ["RULES", "TileRuleConfig", "apply_tile_rules", "ink_mask", "tile_measures"]

log = logging.getLogger(__name__)

#: rule names, in the order they are checked
RULES: tuple[str, ...] = ("pen", "glass", "immune", "not_immune", "stroma", "model")
_CELLULAR = ("tumour", "immune_dense")
# skimage.color.hed_from_rgb columns (Ruifrok & Johnston), as in lymphocytes.haematoxylin
_HED = np.array(
    [
        [1.87798274, -1.00767869, -0.55611582],
        [-0.06590806, 1.13473037, -0.1355218],
        [-0.60190736, -0.48041419, 1.57358807],
    ]
)
_LOG_LUT = np.log(np.maximum(np.arange(256) / 255.0, 1e-6)) / np.log(1e-6)


@dataclass
class TileRuleConfig:
    """Thresholds of the rule layer (see the module docstring).

    Attributes
    ----------
    enabled : bool
        Apply the rules (``False``: classifier only).
    min_tissue : float
        Lowest tissue share of a tissue tile.
    max_ink : float
        Highest marker-ink share of a tissue tile.
    immune_min_density : float
        Lymphocytes per mm² of tissue that make a tile immune-dense (dense infiltrates
        and lymphoid aggregates hold several thousand; tumour and stroma far fewer).
        With the detector's shape test, synthetic immune-dense tiles have a 10th
        percentile of about 3,450 per mm² and CMU-1's skin tiles a 90th percentile of
        about 1,400.
    immune_min_nuclear, immune_max_eosin : float
        Lowest nuclear share and highest eosin-to-haematoxylin ratio of an
        immune-dense tile (a haematoxylin-dense cluster, not eosinophilic epithelium).
    stroma_max_nuclear : float
        Highest nuclear (haematoxylin-dense) share of tissue in a stroma tile.
    stroma_min_eosin : float
        Lowest eosin-to-haematoxylin ratio (mean concentrations) of a stroma tile.
    stroma_max_density : float
        Highest lymphocyte density (cells/mm² of tissue) of a stroma tile.
    nuclear_h : float
        Haematoxylin concentration (``rgb2hed`` units) above which a pixel is nuclear.
    """

    enabled: bool = True
    min_tissue: float = 0.25
    max_ink: float = 0.10
    immune_min_density: float = 3000.0
    immune_min_nuclear: float = 0.2
    immune_max_eosin: float = 0.45
    stroma_max_nuclear: float = 0.08
    stroma_min_eosin: float = 1.4
    stroma_max_density: float = 1500.0
    nuclear_h: float = 0.09

    def to_dict(self) -> dict:
        return asdict(self)


def _glass(rgb: np.ndarray) -> np.ndarray:
    """Glass and over-exposed pixels: bright and unsaturated, or near white."""
    mx = rgb.max(-1).astype(np.int16)
    mn = rgb.min(-1).astype(np.int16)
    return ((mn > 210) & ((mx - mn) * 100 < 12 * mx)) | (mn >= 235)


def _he(rgb: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """Haematoxylin and eosin concentrations (``rgb2hed`` channels 0 and 1)."""
    od = _LOG_LUT[rgb]  # (..., 3)
    h = np.maximum(od @ _HED[:, 0], 0)
    e = np.maximum(od @ _HED[:, 1], 0)
    return h.astype(np.float32), e.astype(np.float32)


def tile_measures(
    raw: np.ndarray,
    normalised: np.ndarray | None,
    lymphocytes: np.ndarray,
    mpp: float,
    config: TileRuleConfig | None = None,
) -> pd.DataFrame:
    """Per-tile measures used by the rules.

    Parameters
    ----------
    raw : ndarray of uint8, (B, H, W, 3)
        Tiles as read from the slide (glass and ink are judged on these).
    normalised : ndarray of uint8, (B, H, W, 3) or None
        The same tiles after stain normalisation (stains are judged on these); ``raw``
        when None.
    lymphocytes : ndarray (B,)
        Lymphocytes detected per tile.
    mpp : float
        Tile resolution (µm/px).
    config : TileRuleConfig, optional

    Returns
    -------
    DataFrame
        ``glass_frac``, ``ink_frac``, ``tissue_frac``, ``nuclear_frac`` (share of
        tissue), ``h_mean``, ``e_mean`` (over tissue), ``eosin_ratio``,
        ``lymph_density`` (cells/mm² of tissue; 0 without tissue).
    """
    cfg = config or TileRuleConfig()
    raw = np.asarray(raw)[:, ::2, ::2]
    norm = raw if normalised is None else np.asarray(normalised)[:, ::2, ::2]
    glass = _glass(raw)
    ink = ink_mask(raw)
    tissue = ~glass & ~ink
    h, e = _he(norm)
    n_px = float(raw.shape[1] * raw.shape[2])
    n_t = tissue.sum((1, 2)).astype(float)
    safe = np.maximum(n_t, 1.0)
    h_mean = (h * tissue).sum((1, 2)) / safe
    e_mean = (e * tissue).sum((1, 2)) / safe
    nuc = ((h > cfg.nuclear_h) & tissue).sum((1, 2)) / safe
    t_frac = n_t / n_px
    tile_mm2 = (2 * raw.shape[1] * mpp / 1000.0) * (2 * raw.shape[2] * mpp / 1000.0)
    area = t_frac * tile_mm2
    lym = np.asarray(lymphocytes, float)
    dens = np.where(area > 0.05 * tile_mm2, lym / np.maximum(area, 1e-12), 0.0)
    return pd.DataFrame(
        {
            "glass_frac": glass.sum((1, 2)) / n_px,
            "ink_frac": ink.sum((1, 2)) / n_px,
            "tissue_frac": t_frac,
            "nuclear_frac": nuc,
            "h_mean": h_mean,
            "e_mean": e_mean,
            "eosin_ratio": e_mean / np.maximum(h_mean, 1e-3),
            "lymph_density": dens,
        }
    )


def apply_tile_rules(
    classes: np.ndarray,
    measures: pd.DataFrame,
    config: TileRuleConfig | None = None,
    fallback: np.ndarray | None = None,
) -> tuple[np.ndarray, np.ndarray]:
    """Override classifier calls where the measures are unambiguous.

    Parameters
    ----------
    classes : ndarray of str (N,)
        Classifier calls (fine classes allowed).
    measures : DataFrame
        From :func:`tile_measures` (one row per tile).
    config : TileRuleConfig, optional
    fallback : ndarray of str (N,), optional
        The classifier's best class other than immune-dense (used by ``not_immune``;
        tumour when omitted).

    Returns
    -------
    classes : ndarray of object (N,)
        Classes after the rules.
    rule : ndarray of object (N,)
        Which rule decided each tile (:data:`RULES`).
    """
    cfg = config or TileRuleConfig()
    cls = np.asarray(classes, dtype=object).copy()
    rule = np.full(len(cls), "model", dtype=object)
    if not cfg.enabled or len(cls) == 0:
        return cls, rule
    m = measures
    pen = m["ink_frac"].to_numpy() >= cfg.max_ink
    glass = ~pen & (m["tissue_frac"].to_numpy() < cfg.min_tissue)
    free = ~glass & ~pen
    dens = m["lymph_density"].to_numpy()
    immune = (
        free
        & (dens >= cfg.immune_min_density)
        & (m["nuclear_frac"].to_numpy() >= cfg.immune_min_nuclear)
        & (m["eosin_ratio"].to_numpy() <= cfg.immune_max_eosin)
        & (cls != "necrosis")
    )
    not_immune = (
        free
        & ~immune
        & (cls == "immune_dense")
        & (
            (dens < cfg.immune_min_density / 2)
            | (m["eosin_ratio"].to_numpy() > 2 * cfg.immune_max_eosin)
        )
    )
    fb = np.full(len(cls), "tumour", dtype=object) if fallback is None else np.asarray(
        fallback, dtype=object
    )
    cls[not_immune] = fb[not_immune]
    rule[not_immune] = "not_immune"
    stroma = (
        free
        & ~immune
        & (m["nuclear_frac"].to_numpy() < cfg.stroma_max_nuclear)
        & (m["eosin_ratio"].to_numpy() >= cfg.stroma_min_eosin)
        & (dens < cfg.stroma_max_density)
        & np.isin(cls, _CELLULAR)
    )
    for sel, name, new in (
        (pen, "pen", "background"),
        (glass, "glass", "background"),
        (immune, "immune", "immune_dense"),
        (stroma, "stroma", "stroma"),
    ):
        cls[sel] = new
        rule[sel] = name
    changed = int((rule != "model").sum())
    if changed:
        log.debug("tile rules changed %d of %d tiles", changed, len(cls))
    return cls, rule
