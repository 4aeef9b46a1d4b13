"""Region annotations: QuPath GeoJSON in and out, rasterisation, arbitration.

Workflow (two independent readers + a third reader's arbitration):

1. Each reader exports their regions from QuPath as GeoJSON (one file per reader;
   polygons in level-0 pixels, class in ``properties.classification.name``).
2. :func:`read_geojson_regions` + :func:`rasterise` turn each file into a label map on
   a common grid (one pixel per ``downsample`` level-0 pixels; code = index in
   ``classes``; 0 = not annotated / background).
3. :func:`agreement` compares the two readers on tiles (Cohen's kappa, computed
   here and equal to ``sklearn.metrics.cohen_kappa_score``) and per class (Dice, IoU).
4. :func:`disagreement_geojson` exports the regions where the readers differ; the
   third reader labels only those; :func:`arbitrate` builds the consensus: the
   readers' label where they agree, the arbiter's label where they do not (code
   :data:`UNRESOLVED` where the arbiter left a disagreement unlabelled).
5. :func:`label_map_to_geojson` exports the consensus for QuPath.
"""

from __future__ import annotations

import json
import logging
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd

from hccstrat.exceptions import ConfigError, InputFileError
from hccstrat.io.atomic import atomic_write
from hccstrat.pathology.classes import REGION_CLASSES

__all__ = [
    "ANNOTATION_CLASSES",
    "UNRESOLVED",
    "Arbitration",
    "Region",
    "agreement",
    "arbitrate",
    "cohen_kappa",
    "dice_iou",
    "disagreement_geojson",
    "label_map_to_geojson",
    "rasterise",
    "read_geojson_regions",
    "tile_majority",
    "write_geojson",
]

log = logging.getLogger(__name__)

#: default class list (code = index), see :mod:`hccstrat.pathology.classes`
ANNOTATION_CLASSES: list[str] = list(REGION_CLASSES)
#: consensus code of a disagreement the arbiter did not label
UNRESOLVED = 255
_ALIASES = {
    "tumor": "tumour",
    "tumour": "tumour",
    "stroma": "stroma",
    "immune cells": "immune_dense",
    "immune": "immune_dense",
    "lymphocytes": "immune_dense",
    "necrosis": "necrosis",
    "normal": "normal_liver",
    "liver": "normal_liver",
    "normal liver": "normal_liver",
    "vessel": "vessel",
    "tumour thrombus": "vessel_tumour_thrombus",
    "tumor thrombus": "vessel_tumour_thrombus",
    "ignore*": "background",
    "other": "background",
    "region*": "background",
}


@dataclass
class Region:
    """One annotated polygon (outer ring + holes) in level-0 pixels."""

    cls: str
    rings: list[np.ndarray]


def _class_name(props: Mapping[str, Any], aliases: Mapping[str, str]) -> str | None:
    c = props.get("classification") or {}
    name = c.get("name") if isinstance(c, Mapping) else c
    name = name or props.get("name")
    if name is None:
        return None
    key = str(name).strip().lower().replace("-", " ")
    return aliases.get(key, key.replace(" ", "_"))


def read_geojson_regions(
    path: str | Path,
    *,
    classes: Sequence[str] = ANNOTATION_CLASSES,
    aliases: Mapping[str, str] | None = None,
) -> list[Region]:
    """Read a QuPath GeoJSON export (FeatureCollection or a list of features).

    Parameters
    ----------
    path : path-like
    classes : sequence of str
        Known class names; features of other classes raise an error.
    aliases : mapping, optional
        Lower-case QuPath class name → class name (default: common QuPath names such
        as ``Tumor``, ``Immune cells``, ``Necrosis``).

    Raises
    ------
    InputFileError
        Unreadable file, unsupported geometry, or a class not in ``classes``.
    """
    path = Path(path)
    amap = {**_ALIASES, **{k.lower(): v for k, v in (aliases or {}).items()}}
    try:
        data = json.loads(path.read_text())
    except (OSError, json.JSONDecodeError) as ex:
        raise InputFileError(
            f"cannot read annotation file {path}: {ex}", hint="export GeoJSON from QuPath"
        ) from ex
    feats = data.get("features", []) if isinstance(data, dict) else data
    if isinstance(data, dict) and data.get("type") == "Feature":
        feats = [data]
    out: list[Region] = []
    for k, f in enumerate(feats):
        geom = f.get("geometry") or {}
        name = _class_name(f.get("properties") or {}, amap)
        if name is None:
            log.warning("%s: feature %d has no class; skipped", path.name, k)
            continue
        if name not in classes:
            raise InputFileError(
                f"{path.name}, feature {k}: class {name!r} is not one of {list(classes)}",
                hint="rename the class in QuPath or pass aliases={'<qupath name>': '<class>'}",
            )
        gtype = geom.get("type")
        polys = (
            [geom["coordinates"]]
            if gtype == "Polygon"
            else geom.get("coordinates", [])
            if gtype == "MultiPolygon"
            else None
        )
        if polys is None:
            log.warning("%s: feature %d is a %s, not a polygon; skipped", path.name, k, gtype)
            continue
        for poly in polys:
            out.append(Region(name, [np.asarray(r, float)[:, :2] for r in poly if len(r) >= 3]))
    return out


def rasterise(
    regions: Sequence[Region],
    shape: tuple[int, int],
    downsample: float,
    *,
    classes: Sequence[str] = ANNOTATION_CLASSES,
) -> np.ndarray:
    """Label map (h, w) uint8 of ``regions``; larger regions are drawn first.

    A grid pixel belongs to a polygon when its centre lies inside it (holes excluded).

    Parameters
    ----------
    regions : sequence of Region
    shape : (int, int)
        Height and width of the label grid.
    downsample : float
        Level-0 pixels per grid pixel.
    classes : sequence of str
        Code of a class = its index.
    """
    from matplotlib.path import Path as MplPath

    h, w = shape
    out = np.zeros((h, w), np.uint8)

    def area(r: Region) -> float:
        x, y = r.rings[0][:, 0], r.rings[0][:, 1]
        return 0.5 * abs(float(np.dot(x, np.roll(y, 1)) - np.dot(y, np.roll(x, 1))))

    for r in sorted((r for r in regions if r.rings), key=area, reverse=True):
        rings = [ring / downsample - 0.5 for ring in r.rings]  # grid-pixel-centre coords
        x0 = max(0, int(np.floor(rings[0][:, 0].min())))
        x1 = min(w, int(np.ceil(rings[0][:, 0].max())) + 1)
        y0 = max(0, int(np.floor(rings[0][:, 1].min())))
        y1 = min(h, int(np.ceil(rings[0][:, 1].max())) + 1)
        if x1 <= x0 or y1 <= y0:
            continue
        gy, gx = np.mgrid[y0:y1, x0:x1]
        pts = np.stack([gx.ravel(), gy.ravel()], 1)
        inside = MplPath(rings[0]).contains_points(pts)
        for hole in rings[1:]:
            inside &= ~MplPath(hole).contains_points(pts)
        sub = out[y0:y1, x0:x1]
        sub[inside.reshape(sub.shape)] = classes.index(r.cls)
    return out


def tile_majority(label_map: np.ndarray, tile: int, *, ignore: int | None = None) -> np.ndarray:
    """Majority code of each ``tile × tile`` block of a label map (cropped to whole tiles).

    Blocks where ``ignore`` is the only code keep it.
    """
    h, w = label_map.shape
    th, tw = h // tile, w // tile
    if th == 0 or tw == 0:
        raise ConfigError(
            f"tile {tile} is larger than the label map {label_map.shape}",
            hint="use a smaller tile",
        )
    blocks = label_map[: th * tile, : tw * tile].reshape(th, tile, tw, tile).swapaxes(1, 2)
    flat = blocks.reshape(th * tw, -1).astype(np.int64)
    n = int(flat.max()) + 1
    counts = np.zeros((len(flat), n), np.int64)
    np.add.at(counts, (np.repeat(np.arange(len(flat)), flat.shape[1]), flat.ravel()), 1)
    if ignore is not None and ignore < n:
        only = counts[:, ignore] == flat.shape[1]
        counts[:, ignore] = np.where(only, counts[:, ignore], -1)
    return counts.argmax(1).reshape(th, tw)


def cohen_kappa(a: np.ndarray, b: np.ndarray, labels: Sequence[int] | None = None) -> float:
    """Cohen's kappa of two label arrays (same result as scikit-learn's).

    ``kappa = (p_o - p_e) / (1 - p_e)`` with ``p_o`` the observed agreement and ``p_e``
    the agreement expected from the two readers' marginal class frequencies.
    """
    a, b = np.ravel(a), np.ravel(b)
    if a.shape != b.shape or a.size == 0:
        raise ConfigError(
            f"label arrays differ in size ({a.size} vs {b.size}) or are empty",
            hint="rasterise both readers on the same grid",
        )
    labs = np.unique(np.concatenate([a, b])) if labels is None else np.asarray(labels)
    keep = np.isin(a, labs) & np.isin(b, labs)
    idx = {v: i for i, v in enumerate(labs.tolist())}
    ia = np.array([idx[v] for v in a[keep].tolist()], np.int64)
    ib = np.array([idx[v] for v in b[keep].tolist()], np.int64)
    k = len(labs)
    cm = np.bincount(ia * k + ib, minlength=k * k).reshape(k, k).astype(float)
    n = cm.sum()
    po = np.trace(cm) / n
    pe = float((cm.sum(1) * cm.sum(0)).sum() / n**2)
    return float((po - pe) / (1 - pe)) if pe < 1 else 1.0


def dice_iou(
    a: np.ndarray, b: np.ndarray, classes: Sequence[str] = ANNOTATION_CLASSES
) -> pd.DataFrame:
    """Per-class Dice and IoU of two label maps (classes present in either)."""
    rows = []
    for code, name in enumerate(classes):
        ma, mb = a == code, b == code
        sa, sb = int(ma.sum()), int(mb.sum())
        if sa == 0 and sb == 0:
            continue
        inter = int((ma & mb).sum())
        rows.append(
            {
                "class": name,
                "dice": 2 * inter / (sa + sb),
                "iou": inter / (sa + sb - inter),
                "area_reader1": sa,
                "area_reader2": sb,
            }
        )
    return pd.DataFrame(rows, columns=["class", "dice", "iou", "area_reader1", "area_reader2"])


def agreement(
    a: np.ndarray,
    b: np.ndarray,
    *,
    tile: int = 8,
    classes: Sequence[str] = ANNOTATION_CLASSES,
) -> tuple[float, pd.DataFrame]:
    """Tile-level Cohen's kappa and per-class Dice/IoU of two readers' label maps.

    Parameters
    ----------
    a, b : ndarray (h, w)
        Label maps on the same grid.
    tile : int
        Grid pixels per tile side (tiles take their majority class).
    classes : sequence of str

    Returns
    -------
    kappa : float
    per_class : DataFrame
    """
    if a.shape != b.shape:
        raise ConfigError(
            f"reader maps differ in shape: {a.shape} vs {b.shape}",
            hint="rasterise both on the same grid (same shape and downsample)",
        )
    ta, tb = tile_majority(a, tile), tile_majority(b, tile)
    tissue = (ta > 0) | (tb > 0)
    kappa = cohen_kappa(ta[tissue], tb[tissue]) if tissue.any() else float("nan")
    return kappa, dice_iou(a, b, classes)


@dataclass
class Arbitration:
    """Consensus of two readers and an arbiter.

    Attributes
    ----------
    consensus : ndarray uint8 (h, w)
        Agreed label, the arbiter's label on disagreements, :data:`UNRESOLVED` where
        the arbiter did not label a disagreement.
    disagreement : ndarray bool (h, w)
    n_regions : int
        Connected disagreement regions.
    resolved_fraction : float
        Share of disagreement pixels the arbiter labelled.
    """

    consensus: np.ndarray
    disagreement: np.ndarray
    n_regions: int
    resolved_fraction: float


def arbitrate(r1: np.ndarray, r2: np.ndarray, arbiter: np.ndarray) -> Arbitration:
    """Consensus of two readers; the arbiter decides where they disagree.

    ``arbiter`` is the third reader's label map (0 where they did not annotate);
    only its labels inside the disagreement are used.
    """
    from scipy import ndimage as ndi

    if not (r1.shape == r2.shape == arbiter.shape):
        raise ConfigError(
            f"maps differ in shape: {r1.shape}, {r2.shape}, {arbiter.shape}",
            hint="rasterise the three readers on the same grid",
        )
    dis = r1 != r2
    cons = r1.astype(np.uint8).copy()
    has = dis & (arbiter > 0)
    cons[has] = arbiter[has]
    cons[dis & ~has] = UNRESOLVED
    _, n = ndi.label(dis)
    return Arbitration(
        consensus=cons,
        disagreement=dis,
        n_regions=int(n),
        resolved_fraction=float(has.sum() / dis.sum()) if dis.any() else 1.0,
    )


def _contours(mask: np.ndarray, downsample: float) -> list[list[list[float]]]:
    from skimage import measure

    rings = []
    for c in measure.find_contours(np.pad(mask, 1).astype(np.uint8), 0.5):
        if len(c) < 4:
            continue
        xy = np.stack([(c[:, 1] - 0.5) * downsample, (c[:, 0] - 0.5) * downsample], 1)
        xy = np.clip(xy, 0, [mask.shape[1] * downsample, mask.shape[0] * downsample])
        rings.append(np.round(xy, 1).tolist())
    rings.sort(key=len, reverse=True)
    return rings


def label_map_to_geojson(
    label_map: np.ndarray,
    downsample: float,
    *,
    classes: Sequence[str] = ANNOTATION_CLASSES,
    skip: Sequence[int] = (0, UNRESOLVED),
    min_pixels: int = 2,
) -> dict[str, Any]:
    """QuPath FeatureCollection of a label map: one polygon (outer ring + holes) per region."""
    from scipy import ndimage as ndi

    feats = []
    for code in np.unique(label_map):
        if int(code) in skip:
            continue
        comp, _n = ndi.label(label_map == code)
        for i, sl in enumerate(ndi.find_objects(comp), start=1):
            if sl is None:
                continue
            m = comp[sl] == i
            if m.sum() < min_pixels:
                continue
            rings = _contours(m, downsample)
            if not rings:
                continue
            off = [sl[1].start * downsample, sl[0].start * downsample]
            rings = [[[x + off[0], y + off[1]] for x, y in r] for r in rings]
            feats.append(
                {
                    "type": "Feature",
                    "geometry": {"type": "Polygon", "coordinates": rings},
                    "properties": {
                        "objectType": "annotation",
                        "classification": {"name": classes[int(code)]},
                    },
                }
            )
    return {"type": "FeatureCollection", "features": feats}


def disagreement_geojson(arb: Arbitration, downsample: float) -> dict[str, Any]:
    """The disagreement regions as QuPath annotations (class ``disagreement``) for the arbiter."""
    fc = label_map_to_geojson(
        arb.disagreement.astype(np.uint8), downsample, classes=["none", "disagreement"]
    )
    return fc


def write_geojson(path: str | Path, collection: Mapping[str, Any]) -> Path:
    """Write a FeatureCollection atomically."""
    path = Path(path)
    with atomic_write(path) as fh:
        json.dump(collection, fh)
    return path
