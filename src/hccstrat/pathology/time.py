"""Tumour immune microenvironment (TIME) panel from an H&E slide.

Pipeline per slide (tiling and per-tile measures in :mod:`hccstrat.pathology.time_tiles`):
tissue detection → tiles (``patch_size`` px at ``target_mpp``; default 128 px at
0.5 µm/px = 64 µm) → tile QC, encoder features, lymphocyte counts
(:mod:`hccstrat.pathology.lymphocytes`) → tissue class per tile
(:class:`~hccstrat.pathology.tile_classifier.TileClassifier`) → compartments on the
tile grid → one panel row.

Compartments (on the tile grid; see :func:`measure_time`):

* **tumour bed**: the nodule as a pathologist outlines it: tiles classified tumour,
  closed by a disk of ``bed_closing_um`` (150 µm) and hole-filled, so intratumoral
  septa, infiltrates and necrosis belong to it; components smaller than
  ``min_tumour_tiles`` are dropped. Stroma, necrosis and immune-dense shares are
  shares of the bed. (Closing by one tile only leaves septa wider than a tile
  outside the bed: on 60 synthetic cohort slides the stroma share then does not
  follow the rendered stroma, Spearman -0.03 against 0.33; necrosis 0.19 against 0.38.)
* **tumour nests**: tumour tiles closed by one tile and hole-filled; the intratumoral
  lymphocyte density is measured over the nests of the core, so lymphocytes trapped
  in septa (the *excluded* phenotype) do not count as intratumoral.
* **invasive margin**: tissue tiles whose centre lies within ``margin_um / 2`` of the
  tumour-bed boundary, inside or outside (a band ``margin_um`` wide centred on the
  boundary; 1 mm by default, the usual immunoscore convention).
* **tumour core**: tumour-bed tiles outside the margin band (the whole bed when the
  band covers it); its lymphocyte density is taken over the nests in it.

Panel columns (:data:`PANEL_COLUMNS`, one row per patient, all prefixed ``time_`` so
the POST and benefit models pick them up):

==============================  ==========  ==============================================
column                          unit        meaning
==============================  ==========  ==============================================
time_tissue_area_mm2            mm²         tissue area of QC-passed, recognised tiles
time_tumour_area_mm2            mm²         tissue area of the tumour bed
time_lymphocyte_density_tumour  cells/mm²   lymphocytes per mm² of tumour core
time_lymphocyte_density_margin  cells/mm²   lymphocytes per mm² of invasive margin
time_margin_tumour_ratio        ratio       margin / tumour density (+1 cell/mm² each)
time_immune_dense_fraction      fraction    immune-dense share of the tumour bed
time_stroma_fraction            fraction    stroma share of the tumour bed
time_necrosis_fraction          fraction    necrosis share of the tumour bed
time_vi_tiles                   count       tiles classified as tumour thrombus in a vessel
time_vi_score                   probability highest thrombus probability of any tile
time_vascular_invasion          0/1         time_vi_tiles >= vi_min_tiles
time_phenotype_inflamed         0/1         immune phenotype one-hot (rules below)
time_phenotype_excluded         0/1
time_phenotype_desert           0/1
time_immune_phenotype           text        inflamed / excluded / desert
time_n_tiles                    count       tiles on tissue
time_qc_pass_fraction           fraction    share of tiles passing tile QC
time_unrecognised_fraction      fraction    share of tissue tiles the classifier does not
                                            recognise (out of distribution)
time_panel_unreliable           0/1         time_unrecognised_fraction >
                                            ``max_unrecognised_fraction`` (0.5)
==============================  ==========  ==============================================

Unrecognised tissue: tiles that pass QC, are not glass or ink, and lie outside the
tile classifier's training distribution
(:meth:`~hccstrat.pathology.tile_classifier.TileClassifier.in_distribution`) get class
``unrecognised`` (rule ``out_of_distribution``) instead of a forced tissue class. Like
tiles failing QC (``excluded``) they are left out of every measure: no area, no
lymphocytes, not tissue for the margin band, never part of the tumour bed.
``time_unrecognised_fraction`` is their share of the *tissue tiles* (QC-passed tiles
not called background). Above ``max_unrecognised_fraction`` the panel is flagged
unreliable (``time_panel_unreliable`` = 1) and a warning is logged: the classifier
does not know this tissue (another organ, stain protocol or scanner than its training
slides) and must be trained on annotated slides from this site
(``hccstrat wsi time --train``).

Immune phenotype rules (thresholds in :class:`TimeConfig`; defaults calibrated on the
synthetic cohort, recalibrate per centre/scanner on annotated cases):

1. **inflamed**: tumour-core lymphocyte density >= ``inflamed_min_density``;
2. **excluded**: otherwise, margin density >= ``excluded_min_margin_density`` and
   margin/tumour ratio >= ``excluded_min_ratio`` (lymphocytes held at the margin);
3. **desert**: otherwise (few lymphocytes anywhere).
"""

from __future__ import annotations

import logging
from dataclasses import asdict, dataclass, field
from typing import Any

import numpy as np
import pandas as pd
from scipy import ndimage as ndi

from hccstrat.exceptions import ConfigError
from hccstrat.pathology.heatmap import plot_time_overlay
from hccstrat.pathology.lymphocytes import MAX_MPP as LYMPHOCYTE_MAX_MPP
from hccstrat.pathology.lymphocytes import LymphocyteDetector
from hccstrat.pathology.tile_classifier import TileClassifier, to_coarse
from hccstrat.pathology.tile_rules import TileRuleConfig, apply_tile_rules
from hccstrat.pathology.time_tiles import SlideTiles, extract_tiles

__all__ = [
    "PANEL_COLUMNS",
    "UNRECOGNISED",
    "SlideTiles",
    "TimeConfig",
    "TimeResult",
    "extract_tiles",
    "measure_time",
    "plot_time_overlay",
    "time_panel",
]

log = logging.getLogger(__name__)

#: panel column → (unit, description)
PANEL_COLUMNS: dict[str, tuple[str, str]] = {
    "time_tissue_area_mm2": ("mm²", "tissue area of QC-passed, recognised tiles"),
    "time_tumour_area_mm2": ("mm²", "tissue area of the tumour bed"),
    "time_lymphocyte_density_tumour": ("cells/mm²", "lymphocytes per mm² of tumour core"),
    "time_lymphocyte_density_margin": ("cells/mm²", "lymphocytes per mm² of invasive margin"),
    "time_margin_tumour_ratio": ("ratio", "margin / tumour lymphocyte density (+1 each)"),
    "time_immune_dense_fraction": ("fraction", "immune-dense share of the tumour bed"),
    "time_stroma_fraction": ("fraction", "stroma share of the tumour bed"),
    "time_necrosis_fraction": ("fraction", "necrosis share of the tumour bed"),
    "time_vi_tiles": ("count", "tiles classified as tumour thrombus in a vessel"),
    "time_vi_score": ("probability", "highest tumour-thrombus probability of any tile"),
    "time_vascular_invasion": ("0/1", "vascular invasion detected"),
    "time_phenotype_inflamed": ("0/1", "immune phenotype is inflamed"),
    "time_phenotype_excluded": ("0/1", "immune phenotype is excluded"),
    "time_phenotype_desert": ("0/1", "immune phenotype is desert"),
    "time_immune_phenotype": ("text", "inflamed / excluded / desert"),
    "time_n_tiles": ("count", "tiles on tissue"),
    "time_qc_pass_fraction": ("fraction", "share of tiles passing tile QC"),
    "time_unrecognised_fraction": (
        "fraction", "share of tissue tiles the tile classifier does not recognise"
    ),
    "time_panel_unreliable": (
        "0/1", "most tissue unrecognised: panel not to be trusted (retrain on this site)"
    ),
}
#: class of QC-passed tissue tiles outside the classifier's training distribution
UNRECOGNISED = "unrecognised"
_PHENOTYPES = ("inflamed", "excluded", "desert")


@dataclass
class TimeConfig:
    """Settings of the TIME panel (see the module docstring for the rules).

    Attributes
    ----------
    target_mpp, patch_size, min_tissue : tiling (µm/px, px, share); ``target_mpp``
        at most :data:`~hccstrat.pathology.lymphocytes.MAX_MPP` (lymphocyte counting).
    margin_um : float
        Full width of the invasive-margin band, centred on the tumour boundary (µm).
    min_tumour_tiles : int
        Smallest tumour-bed component kept (tiles).
    bed_closing_um : float
        Radius of the morphological closing that joins tumour tiles into the tumour
        bed (µm): intratumoral septa and necrosis narrower than twice this belong to
        the bed, as a pathologist outlines the nodule. 0 closes by one tile only.
    context : bool
        Append the mean features of the 8 neighbouring tiles before classifying.
    vi_min_prob : float
        Thrombus probability above which a tile counts as vascular invasion.
    vi_min_tiles : int
        Thrombus tiles needed to call vascular invasion.
    inflamed_min_density, excluded_min_margin_density : float
        Lymphocytes per mm².
    excluded_min_ratio : float
    detector : LymphocyteDetector
    rules : TileRuleConfig
        Rule layer applied over the classifier (glass/pen → background, dense small
        round nuclei → immune-dense, pale fibrous → stroma; see
        :mod:`hccstrat.pathology.tile_rules`). Marker ink is
        :func:`hccstrat.pathology.qc.ink_mask` (deep eosin is not ink).
    tile_all : bool
        Tile the whole image, glass included (glass tiles become background), instead
        of the detected tissue only; for small fields and for overlays that show
        what was called background.
    max_unrecognised_fraction : float
        Share of unrecognised tissue tiles above which the panel is flagged unreliable
        (``time_panel_unreliable``) and a warning is logged.
    """

    target_mpp: float = 0.5
    patch_size: int = 128
    min_tissue: float = 0.25
    margin_um: float = 1000.0
    min_tumour_tiles: int = 4
    bed_closing_um: float = 150.0
    context: bool = True
    vi_min_prob: float = 0.6
    vi_min_tiles: int = 2
    inflamed_min_density: float = 900.0
    excluded_min_margin_density: float = 900.0
    excluded_min_ratio: float = 1.5
    detector: LymphocyteDetector = field(default_factory=LymphocyteDetector)
    rules: TileRuleConfig = field(default_factory=TileRuleConfig)
    tile_all: bool = False
    max_unrecognised_fraction: float = 0.5

    def validate(self) -> None:
        """Raise :class:`ConfigError` for out-of-range settings."""
        checks = {
            "target_mpp": 0.05 <= self.target_mpp <= LYMPHOCYTE_MAX_MPP,
            "patch_size": 16 <= self.patch_size <= 2048,
            "margin_um": self.margin_um >= 0,
            "min_tissue": 0 <= self.min_tissue <= 1,
            "vi_min_prob": 0 <= self.vi_min_prob <= 1,
            "vi_min_tiles": self.vi_min_tiles >= 1,
            "max_unrecognised_fraction": 0 <= self.max_unrecognised_fraction <= 1,
            "bed_closing_um": self.bed_closing_um >= 0,
        }
        bad = [k for k, ok in checks.items() if not ok]
        if bad:
            raise ConfigError(
                f"invalid TIME settings: {', '.join(f'{k}={getattr(self, k)}' for k in bad)}",
                hint="see TimeConfig's documentation for the allowed ranges",
            )

    def to_dict(self) -> dict[str, Any]:
        return asdict(self)


@dataclass
class TimeResult:
    """TIME measurements of one slide.

    Attributes
    ----------
    row : dict
        Panel values (:data:`PANEL_COLUMNS`) plus ``slide_id``.
    tiles : DataFrame
        One row per tile: ``x``, ``y``, ``cls`` (7 classes; ``excluded`` when QC
        failed; ``unrecognised`` when out of the classifier's training distribution),
        ``fine`` (may be ``vessel_tumour_thrombus``), ``p_thrombus``, ``vi`` (thrombus
        tile), ``lymphocytes``, ``area_mm2`` (0 for excluded and unrecognised tiles),
        ``tumour_bed``, ``margin``, ``core``, ``rule`` (which rule of
        :mod:`~hccstrat.pathology.tile_rules` set the class; ``model``: the classifier;
        ``out_of_distribution``: unrecognised), ``ood_score`` (see
        :meth:`~hccstrat.pathology.tile_classifier.TileClassifier.ood_score`).
    slide : SlideTiles
    """

    row: dict[str, Any]
    tiles: pd.DataFrame
    slide: SlideTiles


def _grid(st: SlideTiles) -> tuple[np.ndarray, tuple[int, int]]:
    ij = (st.coords - st.coords.min(0)) // max(st.stride_level0, 1)
    return ij, (int(ij[:, 1].max()) + 1, int(ij[:, 0].max()) + 1)


def _phenotype(d_t: float, d_m: float, cfg: TimeConfig) -> str:
    if d_t >= cfg.inflamed_min_density:
        return "inflamed"
    if d_m >= cfg.excluded_min_margin_density and (d_m + 1) / (d_t + 1) >= cfg.excluded_min_ratio:
        return "excluded"
    return "desert"


def _tumour_bed(tum: np.ndarray, radius: int, min_tiles: int) -> np.ndarray:
    """Tumour tiles closed by a disk of ``radius`` tiles, hole-filled, small parts dropped."""
    disk = np.hypot(*np.mgrid[-radius : radius + 1, -radius : radius + 1]) <= radius + 1e-9
    pad = radius + 1
    bed = ndi.binary_closing(np.pad(tum, pad), structure=disk)[pad:-pad, pad:-pad] | tum
    bed = ndi.binary_fill_holes(bed)
    lab, k = ndi.label(bed)
    if k:
        sizes = np.bincount(lab.ravel(), minlength=k + 1)
        small = sizes < min_tiles
        small[0] = True
        bed = ~small[lab]
    return bed


def measure_time(
    st: SlideTiles, classifier: TileClassifier, config: TimeConfig | None = None
) -> TimeResult:
    """Classify the tiles of a slide and compute its TIME panel row.

    Parameters
    ----------
    st : SlideTiles
        From :func:`extract_tiles`.
    classifier : TileClassifier
        Fitted on the same encoder (and ``context`` setting).
    config : TimeConfig, optional

    Returns
    -------
    TimeResult
    """
    cfg = config or TimeConfig()
    cfg.validate()
    n = len(st.coords)
    X = st.classifier_input(cfg.context)
    proba = classifier.predict_proba(X)
    classes = [str(c) for c in classifier.classes_]
    fine = np.asarray(classifier.classes_, dtype=object)[proba.argmax(1)] if n else np.array([])
    p_thr = (
        proba[:, classes.index("vessel_tumour_thrombus")]
        if "vessel_tumour_thrombus" in classes
        else np.zeros(n)
    )
    cls = np.where(fine == "vessel_tumour_thrombus", "vessel", fine).astype(object)
    rule = np.full(n, "model", dtype=object)
    if st.measures is not None and cfg.rules.enabled and n:
        alt = proba.copy()
        alt[:, [c in ("immune_dense", "background") for c in classes]] = -1.0
        fb = to_coarse(np.asarray(classifier.classes_, dtype=object)[alt.argmax(1)])
        ruled, rule = apply_tile_rules(cls, st.measures.reset_index(drop=True), cfg.rules, fb)
        keep = st.qc_pass | np.isin(rule, ("glass", "pen"))
        cls = np.where(keep, ruled, cls).astype(object)
        rule = np.where(keep, rule, "model").astype(object)
        fine = np.where(rule == "model", fine, cls).astype(object)
        p_thr = np.where(rule == "model", p_thr, 0.0)
    cls[~st.qc_pass & ~np.isin(rule, ("glass", "pen"))] = "excluded"
    ood = classifier.ood_score(X) if n else np.zeros(0)
    unrec = st.qc_pass & (ood > classifier.ood_threshold_) & ~np.isin(rule, ("glass", "pen"))
    cls[unrec] = UNRECOGNISED
    rule[unrec] = "out_of_distribution"
    fine = np.where(unrec, UNRECOGNISED, fine).astype(object)
    p_thr = np.where(unrec, 0.0, p_thr)
    counted = st.qc_pass & ~unrec  # tiles that enter the measures
    area = st.tissue_fraction * st.tile_area_mm2 * counted

    ij, shape = _grid(st)
    tum = np.zeros(shape, bool)
    tissue = np.zeros(shape, bool)
    tum[ij[:, 1], ij[:, 0]] = cls == "tumour"
    tissue[ij[:, 1], ij[:, 0]] = ~np.isin(cls, ("background", "excluded", UNRECOGNISED))
    tile_um = st.stride_level0 * st.mpp
    bed = _tumour_bed(tum, max(1, round(cfg.bed_closing_um / tile_um)), cfg.min_tumour_tiles)
    nest_bed = _tumour_bed(tum, 1, cfg.min_tumour_tiles)  # the nests, septa left out
    half = cfg.margin_um / 2.0
    if bed.any():
        d_in = (ndi.distance_transform_edt(np.pad(bed, 1, constant_values=False)) - 0.5)[
            1:-1, 1:-1
        ]
        d_out = ndi.distance_transform_edt(~bed) - 0.5
        band = np.where(bed, d_in, d_out) * tile_um <= half
        band &= tissue | bed
    else:
        band = np.zeros(shape, bool)
    in_bed = bed[ij[:, 1], ij[:, 0]]
    in_band = band[ij[:, 1], ij[:, 0]] & counted
    core = in_bed & ~in_band & counted
    if not core.any():
        core = in_bed & counted
    in_nests = nest_bed[ij[:, 1], ij[:, 0]]
    usable = (cls != "necrosis") & (cls != "vessel") & (cls != "background")
    lymph = st.lymphocytes.astype(float)

    def density(sel: np.ndarray, min_area: float = 0.0) -> float:
        sel = sel & usable
        a = area[sel].sum()
        return float(lymph[sel].sum() / a) if a > min_area else float("nan")

    # intratumoral density over the tumour nests (tumour tiles closed by one tile), not
    # the septa inside the bed: lymphocytes trapped in stroma make a tumour excluded
    # small nodules: the margin band may leave fewer than 4 tiles of nests in the core
    # (a count over ~0.02 mm² is mostly noise); then the bed's nests, then the core
    few = 4 * st.tile_area_mm2
    d_t = density(core & in_nests, few)
    if np.isnan(d_t):
        d_t = density(in_bed & in_nests & counted)
    if np.isnan(d_t):
        d_t = density(core)
    d_m = density(in_band)
    bed_area = area[in_bed].sum()

    def share(name: str) -> float:
        return float(area[in_bed & (cls == name)].sum() / bed_area) if bed_area > 0 else 0.0

    vi = (p_thr >= cfg.vi_min_prob) & counted
    n_tissue = int((st.qc_pass & (cls != "background")).sum())
    unrec_frac = float(unrec.sum() / n_tissue) if n_tissue else 0.0
    unreliable = unrec_frac > cfg.max_unrecognised_fraction
    if unreliable:
        log.warning(
            "%s: the tile classifier does not recognise %.0f%% of the tissue tiles; the TIME "
            "panel is unreliable (time_panel_unreliable=1). Train it on annotated slides from "
            "this site with `hccstrat wsi time --train`",
            st.slide_id, 100 * unrec_frac,
        )
    pheno = _phenotype(0.0 if np.isnan(d_t) else d_t, 0.0 if np.isnan(d_m) else d_m, cfg)
    row: dict[str, Any] = {
        "slide_id": st.slide_id,
        "time_tissue_area_mm2": float(area.sum()),
        "time_tumour_area_mm2": float(bed_area),
        "time_lymphocyte_density_tumour": d_t,
        "time_lymphocyte_density_margin": d_m,
        "time_margin_tumour_ratio": (
            float((d_m + 1) / (d_t + 1)) if not (np.isnan(d_t) or np.isnan(d_m)) else float("nan")
        ),
        "time_immune_dense_fraction": share("immune_dense"),
        "time_stroma_fraction": share("stroma"),
        "time_necrosis_fraction": share("necrosis"),
        "time_vi_tiles": int(vi.sum()),
        "time_vi_score": float(p_thr[counted].max()) if counted.any() else 0.0,
        "time_vascular_invasion": int(vi.sum() >= cfg.vi_min_tiles),
        **{f"time_phenotype_{p}": int(pheno == p) for p in _PHENOTYPES},
        "time_immune_phenotype": pheno,
        "time_n_tiles": int(n),
        "time_qc_pass_fraction": float(st.qc_pass.mean()) if n else 0.0,
        "time_unrecognised_fraction": unrec_frac,
        "time_panel_unreliable": int(unreliable),
    }
    tiles = pd.DataFrame(
        {
            "x": st.coords[:, 0],
            "y": st.coords[:, 1],
            "cls": cls,
            "fine": fine,
            "p_thrombus": p_thr,
            "vi": vi,
            "lymphocytes": st.lymphocytes,
            "area_mm2": area,
            "tumour_bed": in_bed,
            "margin": in_band,
            "core": core,
            "rule": rule,
            "ood_score": ood,
        }
    )
    return TimeResult(row=row, tiles=tiles, slide=st)


def time_panel(
    results: list[TimeResult], patient_ids: list[str] | None = None
) -> pd.DataFrame:
    """One row per patient: ``patient_id`` + :data:`PANEL_COLUMNS` (+ ``slide_id``).

    Parameters
    ----------
    results : list of TimeResult
    patient_ids : list of str, optional
        One per result (default: the slide ids). Several slides of one patient are
        combined: area-weighted means of densities and fractions, sums of counts and
        areas, VI (and the unreliable flag) when any slide shows it, QC-pass and
        unrecognised fractions weighted by tiles; the phenotype is re-derived from the
        combined densities with the default rules.
    """
    if patient_ids is not None and len(patient_ids) != len(results):
        raise ConfigError(
            f"{len(results)} results but {len(patient_ids)} patient ids",
            hint="give one patient id per slide",
        )
    rows = []
    for i, r in enumerate(results):
        rows.append({"patient_id": patient_ids[i] if patient_ids else r.row["slide_id"], **r.row})
    df = pd.DataFrame(rows)
    if df.empty:
        return pd.DataFrame(columns=["patient_id", "slide_id", *PANEL_COLUMNS])
    if not df["patient_id"].duplicated().any():
        return df[["patient_id", "slide_id", *PANEL_COLUMNS]].reset_index(drop=True)
    out = []
    cfg = TimeConfig()
    for pid, g in df.groupby("patient_id", sort=False):
        w = g["time_tumour_area_mm2"].clip(lower=1e-9)
        row: dict[str, Any] = {"patient_id": pid, "slide_id": ";".join(g["slide_id"])}
        for c in PANEL_COLUMNS:
            if c.startswith("time_phenotype") or c == "time_immune_phenotype":
                continue
            unit = PANEL_COLUMNS[c][0]
            if unit in ("count", "mm²"):
                row[c] = g[c].sum()
            elif c in ("time_vascular_invasion", "time_vi_score", "time_panel_unreliable"):
                row[c] = g[c].max()
            elif c in ("time_qc_pass_fraction", "time_unrecognised_fraction"):
                row[c] = float(np.average(g[c].astype(float),
                                          weights=g["time_n_tiles"].clip(lower=1)))
            else:
                v = g[c].astype(float)
                ok = v.notna()
                row[c] = float(np.average(v[ok], weights=w[ok])) if ok.any() else float("nan")
        pheno = _phenotype(
            np.nan_to_num(row["time_lymphocyte_density_tumour"]),
            np.nan_to_num(row["time_lymphocyte_density_margin"]),
            cfg,
        )
        row.update({f"time_phenotype_{p}": int(pheno == p) for p in _PHENOTYPES})
        row["time_immune_phenotype"] = pheno
        out.append(row)
    return pd.DataFrame(out)[["patient_id", "slide_id", *PANEL_COLUMNS]]
