"""Synthetic H&E whole-slide images: tiled pyramidal TIFF + ground-truth regions.

A slide renders one patient's latent tumour immune microenvironment (TIME): tumour
(trabecular plates of hepatocyte-like cells; thick plates when macrotrabecular),
fibrous stroma, lymphoid infiltrates (inside tumour for *inflamed*, trapped in stroma
and at the margin for *excluded*, sparse for *desert*), necrosis, vessels with and
without tumour thrombus (vascular invasion), normal liver, glass, and artefacts (pen,
fold, out-of-focus patch), with per-centre stain and scanner shifts.

Outputs of :func:`write_slide` for ``slide.tiff``:

* ``slide.tiff`` — BigTIFF/TIFF, JPEG tiles (RGB), pyramid levels with
  downsamples 1, 4, 16, … as reduced-resolution pages; mpp in the X/YResolution tags
  (unit centimetre). Opens with OpenSlide (generic TIFF), tiffslide and tifffile.
* ``slide.labels.png`` — uint8 label map, one pixel per ``downsample`` level-0 pixels,
  values from :data:`CLASS_CODES`.
* ``slide.artefacts.png`` — uint8 bit flags on the same grid (1 pen, 2 fold, 4 blur).
* ``slide.regions.geojson`` — QuPath-style FeatureCollection of the regions in level-0
  pixel coordinates (``properties.classification.name``, ``properties.class_code``).
* ``slide.truth.json`` — class table, downsample, area fractions, latent row, stain.

Class code table (:data:`CLASS_CODES`):

====  ==========================  =================================================
code  name                        meaning
====  ==========================  =================================================
0     background                  glass
1     tumour                      viable tumour (trabecular hepatocyte-like plates)
2     stroma                      fibrous capsule, septa, vessel walls
3     immune_dense                dense lymphoid infiltrate
4     necrosis                    coagulative necrosis with nuclear debris
5     normal_liver                non-tumoural liver parenchyma
6     vessel                      vessel lumen (red cells)
7     vessel_tumour_thrombus      vessel filled with tumour (vascular invasion)
8     pen_artefact                pen ink or tissue fold (not usable tissue)
====  ==========================  =================================================
"""

from __future__ import annotations

import collections
import concurrent.futures as cf
import json
import logging
import os
import time
from collections.abc import Iterator, Mapping
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any

import numpy as np

from hccstrat.exceptions import ConfigError
from hccstrat.io.atomic import atomic_path, atomic_write
from hccstrat.pathology.classes import CLASS_CODES, CLASS_NAMES

__all__ = [
    "CLASS_CODES",
    "CLASS_NAMES",
    "SlideInfo",
    "default_latent",
    "read_truth",
    "write_slide",
]

log = logging.getLogger(__name__)

_COLOURS = {
    0: [255, 255, 255],
    1: [200, 0, 0],
    2: [150, 200, 150],
    3: [160, 90, 160],
    4: [5, 5, 5],
    5: [250, 200, 100],
    6: [0, 120, 255],
    7: [255, 0, 255],
    8: [60, 60, 60],
}


@dataclass
class SlideInfo:
    """What :func:`write_slide` wrote.

    Attributes
    ----------
    path : Path
        The pyramidal TIFF.
    labels_path, artefacts_path, geojson_path, truth_path : Path
        Ground-truth files (see the module docstring).
    size : (int, int)
        Level-0 width and height in pixels.
    mpp : float
        Level-0 micrometres per pixel.
    level_downsamples : list of int
        Downsample of each pyramid level.
    downsample : int
        Level-0 pixels per label-map pixel.
    class_fractions : dict
        Share of the tissue area (labels 1–8) per class name.
    seconds : float
        Wall time to write.
    """

    path: Path
    labels_path: Path
    artefacts_path: Path
    geojson_path: Path
    truth_path: Path
    size: tuple[int, int]
    mpp: float
    level_downsamples: list[int]
    downsample: int
    class_fractions: dict[str, float] = field(default_factory=dict)
    seconds: float = 0.0


def default_latent(**overrides: Any) -> dict[str, Any]:
    """A plausible latent TIME row for tests and examples.

    Parameters
    ----------
    **overrides
        Values replacing the defaults (same keys as the cohort's ``latent`` table).
    """
    row: dict[str, Any] = {
        "patient_id": "SYN-0001",
        "aggressiveness": 0.0,  # cohort latent scale, N(0, 1): an average tumour
        "immune_phenotype": "inflamed",
        "lymphocyte_density": 0.4,
        "margin_lymphocyte_density": 0.5,
        "stroma_fraction": 0.2,
        "necrosis_fraction": 0.08,
        "vascular_invasion": True,
        "macrotrabecular": False,
    }
    row.update(overrides)
    return row


def _grid_downsample(size: tuple[int, int]) -> int:
    m = max(size)
    return 8 if m <= 12000 else 16 if m <= 40000 else 32


def _level_factors(size: tuple[int, int], tile: int) -> list[int]:
    factors = [1]
    while max(size) / (factors[-1] * 4) >= max(2 * tile, 512):
        factors.append(factors[-1] * 4)
    return factors


def _geojson(labels: np.ndarray, ds: int) -> dict:
    """Region polygons (outer ring + holes) per connected component, level-0 px."""
    from skimage import measure

    feats = []
    for code, name in CLASS_CODES.items():
        if code == 0:
            continue
        comp, _n = measure.label(labels == code, return_num=True, connectivity=1)
        for sl_idx, sl in enumerate(__import__("scipy").ndimage.find_objects(comp), start=1):
            if sl is None:
                continue
            m = np.pad(comp[sl] == sl_idx, 1)
            if m.sum() < 4:
                continue
            rings = []
            for c in measure.find_contours(m.astype(np.uint8), 0.5):
                c = _drop_collinear(c)
                if len(c) < 4:
                    continue
                # pixel k covers [k*ds, (k+1)*ds): the 0.5 contour lies on cell edges
                xy = np.stack(
                    [(c[:, 1] - 0.5 + sl[1].start) * ds, (c[:, 0] - 0.5 + sl[0].start) * ds], 1
                )
                xy = np.clip(xy, 0, [labels.shape[1] * ds, labels.shape[0] * ds])
                rings.append(np.round(xy).astype(int).tolist())
            if not rings:
                continue
            rings.sort(key=len, reverse=True)
            feats.append(
                {
                    "type": "Feature",
                    "geometry": {"type": "Polygon", "coordinates": rings},
                    "properties": {
                        "objectType": "annotation",
                        "class_code": code,
                        "classification": {"name": name, "color": _COLOURS[code]},
                    },
                }
            )
    return {"type": "FeatureCollection", "features": feats}


def _drop_collinear(c: np.ndarray) -> np.ndarray:
    """Keep only the corners of a closed pixel contour (first point repeated at the end)."""
    d = np.diff(c, axis=0)
    prev = np.roll(d, 1, axis=0)
    turn = np.abs(prev[:, 0] * d[:, 1] - prev[:, 1] * d[:, 0]) > 1e-9
    pts = c[:-1][turn]
    return np.vstack([pts, pts[:1]]) if len(pts) else pts


def write_slide(
    path: str | Path,
    latent_row: Mapping,
    *,
    size: tuple[int, int] = (4096, 4096),
    mpp: float = 0.5,
    stain_shift: Mapping | None = None,
    seed: int = 0,
    artefacts: bool = True,
    tile: int = 256,
    geojson: bool = True,
    write_mpp: bool = True,
    texture_size: int = 512,
    workers: int | None = None,
) -> SlideInfo:
    """Write one synthetic pyramidal H&E slide and its ground truth.

    Parameters
    ----------
    path : path-like
        Output ``.tiff`` path; sidecars are written beside it.
    latent_row : Mapping
        One row of the cohort's ``latent`` table, as it is (see :func:`default_latent`;
        ``aggressiveness`` on the cohort's N(0, 1) scale sets the rendered grade).
    size : (int, int)
        Level-0 width and height in pixels (20,000 × 20,000 takes seconds).
    mpp : float
        Level-0 micrometres per pixel, stored in the resolution tags.
    stain_shift : Mapping, optional
        The centre's stain/scanner shift (see ``StainParams.from_mapping``).
    seed : int
        Random seed; the same inputs give the same pixels.
    artefacts : bool
        Draw a pen mark, a fold and an out-of-focus patch.
    tile : int
        TIFF tile size (multiple of 16).
    geojson : bool
        Also write the GeoJSON regions.
    write_mpp : bool
        Store the resolution tags (``False`` makes a slide without mpp, for tests).
    texture_size : int
        Period in level-0 px of the seamless class textures (power of two; larger is
        less repetitive and slower).
    workers : int, optional
        Threads that render and JPEG-encode tiles (default: up to 4, one per CPU);
        the output does not depend on it.

    Returns
    -------
    SlideInfo
    """
    import tifffile
    from PIL import Image

    from hccstrat.synthetic._wsi_geometry import draw_geometry
    from hccstrat.synthetic._wsi_texture import (
        LevelTiles,
        StainParams,
        build_textures,
        downsample_textures,
        texture_index_map,
    )

    t0 = time.perf_counter()
    width, height = (int(size[0]), int(size[1]))
    if width < 64 or height < 64 or tile % 16 or not (0.05 <= mpp <= 20):
        raise ConfigError(
            f"invalid synthetic slide request: size={size}, tile={tile}, mpp={mpp}",
            hint="use size >= 64 px, a tile multiple of 16 and 0.05 <= mpp <= 20",
        )
    path = Path(path)
    workers = workers or min(4, os.cpu_count() or 1)
    rng = np.random.default_rng(seed)
    ds = _grid_downsample((width, height))
    grid = (-(-height // ds), -(-width // ds))
    geom = draw_geometry(latent_row, grid, ds, mpp, rng, artefacts=artefacts)
    stain = StainParams.from_mapping(stain_shift, rng)
    factors = _level_factors((width, height), tile)
    t = texture_size
    while t // factors[-1] < 4:
        t *= 2
    tex0 = build_textures(latent_row, stain, mpp, rng, t=t)
    jit = np.round(np.stack([_jitter(rng, 256, ds), _jitter(rng, 256, ds)])).astype(np.int64)
    fine = texture_index_map(geom, jit)
    coarse = texture_index_map(geom)
    big = width * height * 3 > 2**31
    res = (1e4 / mpp, 1e4 / mpp)
    with atomic_path(path) as tmp, tifffile.TiffWriter(tmp, bigtiff=big) as tw:
        for i, f in enumerate(factors):
            shp = (-(-height // f), -(-width // f))
            tex = downsample_textures(tex0, f)
            imap, cell = fine if f == 1 else coarse
            tiles = _encoded_tiles(
                LevelTiles(imap, cell, tex, f, shp, tile), stain.jpeg_quality, workers
            )
            kw: dict[str, Any] = {}
            if write_mpp:
                kw.update(resolution=(res[0] / f, res[1] / f), resolutionunit="CENTIMETER")
            tw.write(
                tiles,  # JPEG tiles encoded above with tifffile's own JPEG settings
                shape=(*shp, 3),
                dtype=np.uint8,
                tile=(tile, tile),
                photometric="rgb",
                compression="jpeg",
                compressionargs={"level": stain.jpeg_quality},
                subfiletype=0 if i == 0 else 1,
                description=(f"hccstrat synthetic H&E slide; mpp={mpp}" if i == 0 else None),
                metadata=None,
                **kw,
            )
    stem = path.with_suffix("")
    labels_path = Path(f"{stem}.labels.png")
    art_path = Path(f"{stem}.artefacts.png")
    gj_path = Path(f"{stem}.regions.geojson")
    truth_path = Path(f"{stem}.truth.json")
    with atomic_path(labels_path) as tmp:
        Image.fromarray(geom.labels).save(tmp, format="PNG")
    with atomic_path(art_path) as tmp:
        Image.fromarray(geom.artefacts).save(tmp, format="PNG")
    if geojson:
        with atomic_write(gj_path) as fh:
            json.dump(_geojson(geom.labels, ds), fh)
    tissue = geom.labels > 0
    fractions = {
        CLASS_CODES[c]: float((geom.labels == c).sum() / max(1, tissue.sum())) for c in range(1, 9)
    }
    truth = {
        "class_codes": {str(k): v for k, v in CLASS_CODES.items()},
        "downsample": ds,
        "mpp": mpp if write_mpp else None,
        "size": [width, height],
        "level_downsamples": factors,
        "class_fractions": fractions,
        "seed": seed,
        "latent": {k: (v.item() if hasattr(v, "item") else v) for k, v in dict(latent_row).items()},
        "stain": {
            k: (np.asarray(v).tolist() if isinstance(v, np.ndarray) else v)
            for k, v in asdict(stain).items()
        },
    }
    with atomic_write(truth_path) as fh:
        json.dump(truth, fh, indent=1, default=str)
    info = SlideInfo(
        path=path,
        labels_path=labels_path,
        artefacts_path=art_path,
        geojson_path=gj_path,
        truth_path=truth_path,
        size=(width, height),
        mpp=mpp,
        level_downsamples=factors,
        downsample=ds,
        class_fractions=fractions,
        seconds=time.perf_counter() - t0,
    )
    log.info("wrote %s (%dx%d, %.1f s)", path, width, height, info.seconds)
    return info


def _encoded_tiles(level, quality: int, workers: int) -> Iterator[bytes]:
    """JPEG bytes of every tile of ``level`` (a ``LevelTiles``) in row-major order.

    Rows are rendered and encoded by ``workers`` threads (imagecodecs releases the GIL),
    at most ``2 × workers`` rows ahead of the writer. The encoder settings are those
    tifffile uses for ``compression="jpeg"`` on RGB data (YCbCr, 4:2:0), so the file
    is the same as if tifffile had encoded the tiles itself.
    """
    import imagecodecs

    def job(ty: int) -> list[bytes]:
        return [
            imagecodecs.jpeg_encode(
                t, level=quality, subsampling=(2, 2), colorspace="RGB", outcolorspace="YCBCR"
            )
            for t in level.row(ty)
        ]

    if workers <= 1:
        for ty in range(level.n_rows):
            yield from job(ty)
        return
    with cf.ThreadPoolExecutor(workers) as ex:
        pending: collections.deque = collections.deque()
        rows = iter(range(level.n_rows))
        for ty in rows:
            pending.append(ex.submit(job, ty))
            if len(pending) >= 2 * workers:
                break
        while pending:
            done = pending.popleft().result()
            nxt = next(rows, None)
            if nxt is not None:
                pending.append(ex.submit(job, nxt))
            yield from done


def _jitter(rng: np.random.Generator, j: int, ds: int) -> np.ndarray:
    """Periodic smooth displacement field of amplitude ~ds/2 (level-0 px)."""
    from hccstrat.synthetic._wsi_texture import _noise

    return _noise(rng, j, 12.0) * ds * 0.6


def read_truth(tiff_path: str | Path) -> tuple[np.ndarray, dict]:
    """Read the label map and truth JSON written beside a synthetic slide.

    Returns
    -------
    labels : ndarray of uint8
        Label map (one pixel per ``truth['downsample']`` level-0 pixels).
    truth : dict
        Contents of ``*.truth.json``.
    """
    from PIL import Image

    stem = Path(tiff_path).with_suffix("")
    labels = np.asarray(Image.open(f"{stem}.labels.png"))
    truth = json.loads(Path(f"{stem}.truth.json").read_text())
    return labels, truth
