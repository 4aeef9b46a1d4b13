"""QuPath-compatible GeoJSON export of annotations and tile heatmaps.

QuPath reads a FeatureCollection whose features have a polygon geometry (level-0
pixel coordinates) and ``properties.objectType`` ("annotation" or "detection"),
``properties.classification`` (``name`` and ``color`` as [r, g, b]) and
``properties.measurements`` (name -> number).
"""

from __future__ import annotations

import json
import uuid
from collections.abc import Iterable, Sequence
from pathlib import Path
from typing import Any

import numpy as np

from hccstrat.exceptions import InputFileError
from hccstrat.io.atomic import atomic_write

__all__ = ["heatmap_to_features", "polygon_feature", "read_geojson", "write_geojson"]


def _ring(coords: Sequence[Sequence[float]]) -> list[list[float]]:
    ring = [[float(x), float(y)] for x, y in coords]
    if len(ring) < 3:
        raise InputFileError("a polygon needs at least 3 points", hint="check the annotation")
    if ring[0] != ring[-1]:
        ring.append(list(ring[0]))
    return ring


def polygon_feature(
    coords: Sequence[Sequence[float]],
    *,
    name: str | None = None,
    classification: str | None = None,
    color: tuple[int, int, int] = (255, 0, 0),
    object_type: str = "annotation",
    measurements: dict[str, float] | None = None,
) -> dict[str, Any]:
    """One GeoJSON polygon feature in QuPath's flavour (level-0 pixel coordinates)."""
    props: dict[str, Any] = {"objectType": object_type}
    if name:
        props["name"] = name
    if classification:
        props["classification"] = {"name": classification, "color": list(color)}
    if measurements:
        props["measurements"] = {k: float(v) for k, v in measurements.items()}
    return {"type": "Feature", "id": str(uuid.uuid4()),
            "geometry": {"type": "Polygon", "coordinates": [_ring(coords)]},
            "properties": props}


def heatmap_to_features(
    coords: np.ndarray,
    scores: np.ndarray,
    patch_size_level0: int,
    *,
    name: str = "score",
    classification: str = "Tumor",
) -> list[dict[str, Any]]:
    """Tiles (top-left level-0 ``coords`` [N, 2]) with scores as QuPath detections."""
    coords = np.asarray(coords)
    scores = np.asarray(scores, dtype=float)
    if coords.ndim != 2 or coords.shape[1] != 2 or len(coords) != len(scores):
        raise InputFileError("coords must be [N, 2] and match the scores",
                             hint="pass the feature store's coords and one score per tile")
    s = int(patch_size_level0)
    out = []
    for (x, y), v in zip(coords.tolist(), scores.tolist(), strict=True):
        red = round(255 * min(max(v, 0.0), 1.0))
        out.append(polygon_feature([(x, y), (x + s, y), (x + s, y + s), (x, y + s)],
                                   classification=classification, color=(red, 0, 255 - red),
                                   object_type="detection", measurements={name: v}))
    return out


def write_geojson(path: str | Path, features: Iterable[dict[str, Any]]) -> Path:
    """Write a FeatureCollection (atomic)."""
    path = Path(path)
    with atomic_write(path) as fh:
        json.dump({"type": "FeatureCollection", "features": list(features)}, fh)
    return path


def read_geojson(path: str | Path) -> list[dict[str, Any]]:
    """Features of a GeoJSON file (FeatureCollection, Feature list or single Feature)."""
    try:
        data = json.loads(Path(path).read_text(encoding="utf-8"))
    except (OSError, json.JSONDecodeError) as err:
        raise InputFileError(f"cannot read GeoJSON {path}: {err}",
                             hint="export the annotations from QuPath as GeoJSON") from err
    if isinstance(data, list):
        return data
    if data.get("type") == "FeatureCollection":
        return list(data.get("features", []))
    if data.get("type") == "Feature":
        return [data]
    raise InputFileError(f"{path} is not GeoJSON features", hint="export as GeoJSON")
