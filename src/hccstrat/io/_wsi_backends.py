"""Backends of the slide reader: OpenSlide, tiffslide, wsidicom, pydicom, plain images.

Every backend exposes the same small surface (see :class:`Backend`); the public
:class:`hccstrat.io.wsi.SlideReader` adds mpp handling, thumbnails and tiling helpers.
All coordinates given to ``read_region`` are level-0 pixels; images come back as
RGB ``uint8`` arrays of shape (height, width, 3).
"""

from __future__ import annotations

import collections
import logging
import os
import re
import threading
from pathlib import Path
from typing import Any

import numpy as np

__all__ = [
    "BACKENDS",
    "Backend",
    "DirectTiffTiles",
    "ImageBackend",
    "OpenSlideBackend",
    "PydicomBackend",
    "TiffSlideBackend",
    "WsiDicomBackend",
]

log = logging.getLogger(__name__)


def _rgba_to_rgb(a: np.ndarray) -> np.ndarray:
    """Composite (premultiplied) RGBA over white; transparent pixels become white."""
    if a.ndim == 2:
        return np.repeat(a[..., None], 3, axis=2)
    if a.shape[2] == 3:
        return a
    rgb = a[..., :3]
    alpha = a[..., 3]
    if alpha.min() == 255:
        return np.ascontiguousarray(rgb)
    out = rgb.astype(np.uint16) + (255 - alpha.astype(np.uint16))[..., None]
    return np.minimum(out, 255).astype(np.uint8)


class Backend:
    """Common surface of the slide backends.

    Attributes
    ----------
    name : str
    level_dimensions : list of (int, int)
        (width, height) per level.
    level_downsamples : list of float
    properties : dict
        Vendor metadata, as strings.
    mpp_xy : (float, float) or None
        Level-0 micrometres per pixel found in the metadata.
    vendor : str
    """

    name = "base"
    level_dimensions: list[tuple[int, int]]
    level_downsamples: list[float]
    properties: dict[str, Any]
    mpp_xy: tuple[float, float] | None = None
    vendor: str = "unknown"

    def read_region(
        self, location: tuple[int, int], level: int, size: tuple[int, int]
    ) -> np.ndarray:
        raise NotImplementedError

    def associated_images(self) -> dict[str, np.ndarray]:
        return {}

    def close(self) -> None:  # pragma: no cover - trivial
        pass


def _mpp_from_props(props: dict, keys: tuple[str, str]) -> tuple[float, float] | None:
    try:
        mx, my = float(props[keys[0]]), float(props[keys[1]])
    except (KeyError, TypeError, ValueError):
        return None
    return (mx, my) if mx > 0 and my > 0 else None


class OpenSlideBackend(Backend):
    """OpenSlide: SVS, NDPI, MRXS, SCN, generic tiled TIFF, DICOM."""

    name = "openslide"

    def __init__(self, path: Path) -> None:
        import openslide

        self._s = openslide.OpenSlide(str(path))
        self.level_dimensions = [tuple(map(int, d)) for d in self._s.level_dimensions]
        self.level_downsamples = [float(d) for d in self._s.level_downsamples]
        self.properties = dict(self._s.properties)
        self.vendor = self.properties.get("openslide.vendor", "unknown")
        self.mpp_xy = _mpp_from_props(self.properties, ("openslide.mpp-x", "openslide.mpp-y"))

    def read_region(self, location, level, size):
        img = self._s.read_region(
            (int(location[0]), int(location[1])), int(level), (int(size[0]), int(size[1]))
        )
        return _rgba_to_rgb(np.asarray(img))

    def associated_images(self):
        return {k: _rgba_to_rgb(np.asarray(v)) for k, v in self._s.associated_images.items()}

    def close(self):
        self._s.close()


class TiffSlideBackend(Backend):
    """tiffslide (tifffile + zarr): SVS, generic pyramidal TIFF, NDPI, SCN."""

    name = "tiffslide"

    def __init__(self, path: Path) -> None:
        import tiffslide

        self._s = tiffslide.TiffSlide(str(path))
        self.level_dimensions = [tuple(map(int, d)) for d in self._s.level_dimensions]
        self.level_downsamples = [float(d) for d in self._s.level_downsamples]
        self.properties = {k: v for k, v in self._s.properties.items() if v is not None}
        self.vendor = str(self.properties.get("tiffslide.vendor", "generic"))
        self.mpp_xy = _mpp_from_props(self.properties, ("tiffslide.mpp-x", "tiffslide.mpp-y"))

    def read_region(self, location, level, size):
        a = self._s.read_region(
            (int(location[0]), int(location[1])),
            int(level),
            (int(size[0]), int(size[1])),
            as_array=True,
        )
        return _rgba_to_rgb(np.asarray(a))

    def associated_images(self):
        return {k: _rgba_to_rgb(np.asarray(v)) for k, v in self._s.associated_images.items()}

    def close(self):
        self._s.close()


class WsiDicomBackend(Backend):
    """wsidicom: conformant DICOM WSI (VL Whole Slide Microscopy Image)."""

    name = "wsidicom"

    def __init__(self, path: Path) -> None:
        from wsidicom import WsiDicom

        self._s = WsiDicom.open(str(path))
        levels = list(self._s.levels)
        base = levels[0].size
        self._levels = [lv.level for lv in levels]
        self.level_dimensions = [(int(lv.size.width), int(lv.size.height)) for lv in levels]
        self.level_downsamples = [base.width / lv.size.width for lv in levels]
        self.properties = {"wsidicom.levels": str(self._levels)}
        self.vendor = "dicom"
        mpp = self._s.mpp
        self.mpp_xy = (float(mpp.width), float(mpp.height)) if mpp is not None else None

    def read_region(self, location, level, size):
        ds = self.level_downsamples[level]
        loc = (round(location[0] / ds), round(location[1] / ds))
        img = self._s.read_region(loc, self._levels[level], (int(size[0]), int(size[1])))
        return _rgba_to_rgb(np.asarray(img.convert("RGB")))

    def close(self):
        self._s.close()


class PydicomBackend(Backend):
    """Fallback for single-file DICOM WSI that wsidicom/OpenSlide reject.

    Frames are placed row by row (DICOM TILED_FULL) unless column-by-column placement
    gives clearly smoother frame seams, as in some non-conformant exporters. Pixel
    spacing comes from ``SharedFunctionalGroupsSequence/PixelMeasuresSequence`` when
    present; ``ImagedVolumeWidth`` alone is not trusted.
    """

    name = "pydicom"

    def __init__(self, path: Path) -> None:
        import pydicom

        ds = pydicom.dcmread(str(path))
        if "PixelData" not in ds or int(getattr(ds, "NumberOfFrames", 1)) < 1:
            raise ValueError("DICOM file has no pixel data")
        frames = ds.pixel_array
        if frames.ndim == 3 and int(getattr(ds, "NumberOfFrames", 1)) == 1:
            frames = frames[None]
        if frames.ndim == 3:
            frames = np.repeat(frames[..., None], 3, axis=3)
        tw, th = int(ds.Columns), int(ds.Rows)
        total_w = int(getattr(ds, "TotalPixelMatrixColumns", tw))
        total_h = int(getattr(ds, "TotalPixelMatrixRows", th))
        nx, ny = -(-total_w // tw), -(-total_h // th)
        if nx * ny != len(frames):
            raise ValueError(f"{len(frames)} frames do not tile a {total_w}x{total_h} matrix")
        row_major = self._mosaic(frames, nx, ny, order="row")
        col_major = self._mosaic(frames, nx, ny, order="col")
        self.frame_order = "row"
        img = row_major
        if (
            nx > 1
            and ny > 1
            and self._seam(col_major, tw, th) < 0.5 * self._seam(row_major, tw, th)
        ):
            self.frame_order, img = "col", col_major
            log.warning("%s: frames are stored column by column (non-conformant DICOM)", path)
        self._img = np.ascontiguousarray(img[:total_h, :total_w])
        self.level_dimensions = [(total_w, total_h)]
        self.level_downsamples = [1.0]
        self.properties = {
            "dicom.frame_order": self.frame_order,
            "dicom.PatientID": str(getattr(ds, "PatientID", "")),
        }
        self.vendor = "dicom-pydicom"
        self.mpp_xy = None
        try:
            ps = ds.SharedFunctionalGroupsSequence[0].PixelMeasuresSequence[0].PixelSpacing
            self.mpp_xy = (float(ps[1]) * 1000.0, float(ps[0]) * 1000.0)
        except (AttributeError, IndexError, KeyError):
            pass

    @staticmethod
    def _mosaic(frames: np.ndarray, nx: int, ny: int, order: str) -> np.ndarray:
        th, tw = frames.shape[1:3]
        out = np.empty((ny * th, nx * tw, 3), np.uint8)
        for k in range(len(frames)):
            r, c = (k // nx, k % nx) if order == "row" else (k % ny, k // ny)
            out[r * th : (r + 1) * th, c * tw : (c + 1) * tw] = frames[k]
        return out

    @staticmethod
    def _seam(img: np.ndarray, tw: int, th: int) -> float:
        g = img.astype(np.float32).mean(2)
        xs = np.arange(tw, g.shape[1], tw)
        ys = np.arange(th, g.shape[0], th)
        d = [np.abs(g[:, x] - g[:, x - 1]).mean() for x in xs]
        d += [np.abs(g[y] - g[y - 1]).mean() for y in ys]
        return float(np.mean(d)) if d else 0.0

    def read_region(self, location, level, size):
        return _crop(self._img, location, size)


def _crop(img: np.ndarray, location, size) -> np.ndarray:
    """Crop with white padding outside the image."""
    x, y = int(location[0]), int(location[1])
    w, h = int(size[0]), int(size[1])
    out = np.full((h, w, 3), 255, np.uint8)
    H, W = img.shape[:2]
    x0, y0, x1, y1 = max(x, 0), max(y, 0), min(x + w, W), min(y + h, H)
    if x1 > x0 and y1 > y0:
        out[y0 - y : y1 - y, x0 - x : x1 - x] = img[y0:y1, x0:x1]
    return out


class ImageBackend(Backend):
    """Plain images (PNG, JPEG, non-pyramidal TIFF) via Pillow; one level, in memory.

    Pillow's DPI is a print resolution, not a microscope pixel size, so it is never
    used as mpp.
    """

    name = "image"

    def __init__(self, path: Path) -> None:
        from PIL import Image

        Image.MAX_IMAGE_PIXELS = 2_000_000_000
        with Image.open(str(path)) as im:
            im.load()
            self._img = _rgba_to_rgb(np.asarray(im.convert("RGBA")))
            fmt = im.format or "image"
        h, w = self._img.shape[:2]
        self.level_dimensions = [(w, h)]
        self.level_downsamples = [1.0]
        self.properties = {"image.format": fmt}
        self.vendor = fmt.lower()
        self.mpp_xy = None

    def read_region(self, location, level, size):
        return _crop(self._img, location, size)


# TIFF compressions whose tiles are decoded directly (imagecodecs releases the GIL)
_DIRECT_COMPRESSIONS = {1, 5, 7, 8, 32946, 50000, 50001}  # none, LZW, JPEG, deflate, zstd, webp


class DirectTiffTiles:
    """The stored tiles of a tiled TIFF pyramid, each decoded once (tifffile + imagecodecs).

    Whole-slide readers decode every stored tile a region touches on every call; when
    regions are read block by block (as the tiler does) this reader instead reads the
    compressed bytes with ``os.pread`` (no lock, so threads decode in parallel) and keeps
    the most recent decoded tiles in a small LRU cache, so a tile shared by two
    neighbouring blocks is decoded once. Pixels are bit-identical to OpenSlide's for
    JPEG tiles (both use libjpeg-turbo).

    Only levels stored as tiled, 8-bit, 3-sample, chunky RGB/YCbCr pages with a
    compression in ``_DIRECT_COMPRESSIONS`` are served; :meth:`has_level` says which.

    Parameters
    ----------
    path : Path
        The TIFF (or SVS/BTF) file.
    level_dimensions : list of (int, int)
        (width, height) of the slide levels as the main backend reports them; each is
        matched with the TIFF page of the same size.
    cache_bytes : int
        Capacity of the decoded-tile cache.
    """

    def __init__(self, path: Path, level_dimensions, *, cache_bytes: int = 96 * 2**20) -> None:
        import tifffile

        self._tf = tifffile.TiffFile(str(path))
        self._fd = os.open(str(path), os.O_RDONLY)
        self._size = os.fstat(self._fd).st_size
        self._pages: dict[int, Any] = {}
        by_shape = {}
        for series in self._tf.series:
            for lv in series.levels:
                page = lv.keyframe
                by_shape.setdefault(tuple(page.shape[:2]), page)
        for i, (w, h) in enumerate(level_dimensions):
            page = by_shape.get((int(h), int(w)))
            if page is not None and self._usable(page):
                self._pages[i] = page
        self._decoders = {i: p.decode for i, p in self._pages.items()}
        self._cache: collections.OrderedDict = collections.OrderedDict()
        self._cache_bytes = cache_bytes
        self._cached = 0
        self._lock = threading.Lock()

    @staticmethod
    def _usable(page) -> bool:
        rgb, ycbcr_jpeg = (
            int(page.photometric) == 2,
            (int(page.photometric), int(page.compression)) == (6, 7),
        )
        ntiles = -(-page.imagelength // page.tilelength) * -(-page.imagewidth // page.tilewidth)
        return bool(
            page.is_tiled
            and not page.is_ndpi
            and page.imagedepth == 1
            and page.samplesperpixel == 3
            and page.bitspersample == 8
            and page.planarconfig == 1
            and int(page.compression) in _DIRECT_COMPRESSIONS
            and (rgb or ycbcr_jpeg)
            and len(page.dataoffsets) == ntiles
        )

    def has_level(self, level: int) -> bool:
        """Whether ``level`` is served by direct tile decoding."""
        return level in self._pages

    def tile_size(self, level: int) -> tuple[int, int]:
        """Stored tile (width, height) of ``level``."""
        p = self._pages[level]
        return int(p.tilewidth), int(p.tilelength)

    def _tile(self, level: int, index: int) -> np.ndarray:
        key = (level, index)
        with self._lock:
            hit = self._cache.get(key)
            if hit is not None:
                self._cache.move_to_end(key)
                return hit
        page = self._pages[level]
        off, count = int(page.dataoffsets[index]), int(page.databytecounts[index])
        if count == 0 or off == 0:  # sparse TIFF: tile never written, show glass
            return np.full((page.tilelength, page.tilewidth, 3), 255, np.uint8)
        if off + count > self._size:
            raise ValueError(
                f"tile {index} of level {level} lies beyond the end of the file "
                f"({off + count} > {self._size} bytes)"
            )
        data = os.pread(self._fd, count, off)
        seg = self._decoders[level](
            data, index, jpegtables=page.jpegtables, jpegheader=page.jpegheader
        )[0]
        tile = seg.reshape(seg.shape[-3:])
        with self._lock:
            if key not in self._cache:
                self._cache[key] = tile
                self._cached += tile.nbytes
                while self._cached > self._cache_bytes and len(self._cache) > 1:
                    _, old = self._cache.popitem(last=False)
                    self._cached -= old.nbytes
        return tile

    def read(self, level: int, location: tuple[int, int], size: tuple[int, int]) -> np.ndarray:
        """RGB ``(h, w, 3)`` at ``level``, top-left at *level* pixel ``location``.

        Pixels outside the level are white (glass), as OpenSlide's transparent ones.
        """
        page = self._pages[level]
        x, y = int(location[0]), int(location[1])
        w, h = int(size[0]), int(size[1])
        tw, th = int(page.tilewidth), int(page.tilelength)
        lw, lh = int(page.imagewidth), int(page.imagelength)
        ntx = -(-lw // tw)
        x0, y0, x1, y1 = max(x, 0), max(y, 0), min(x + w, lw), min(y + h, lh)
        inside = x0 == x and y0 == y and x1 == x + w and y1 == y + h
        out = np.empty((h, w, 3), np.uint8) if inside else np.full((h, w, 3), 255, np.uint8)
        if x1 <= x0 or y1 <= y0:
            return out
        for ty in range(y0 // th, (y1 - 1) // th + 1):
            sy0, sy1 = max(y0, ty * th), min(y1, (ty + 1) * th)
            for tx in range(x0 // tw, (x1 - 1) // tw + 1):
                sx0, sx1 = max(x0, tx * tw), min(x1, (tx + 1) * tw)
                t = self._tile(level, ty * ntx + tx)
                out[sy0 - y : sy1 - y, sx0 - x : sx1 - x] = t[
                    sy0 - ty * th : sy1 - ty * th, sx0 - tx * tw : sx1 - tx * tw
                ]
        return out

    def close(self) -> None:
        with self._lock:
            self._cache.clear()
            self._cached = 0
        if self._fd >= 0:
            os.close(self._fd)
            self._fd = -1
        self._tf.close()


BACKENDS: dict[str, type[Backend]] = {
    "openslide": OpenSlideBackend,
    "tiffslide": TiffSlideBackend,
    "wsidicom": WsiDicomBackend,
    "pydicom": PydicomBackend,
    "image": ImageBackend,
}

_OBJECTIVE_KEYS = ("openslide.objective-power", "aperio.AppMag", "tiffslide.objective-power")


def objective_power(props: dict) -> str | None:
    """Objective power string from metadata (reported in errors, never turned into mpp)."""
    for k in _OBJECTIVE_KEYS:
        v = props.get(k)
        if v not in (None, ""):
            return str(v)
    desc = str(props.get("tiff.ImageDescription", ""))
    m = re.search(r"AppMag\s*=\s*([\d.]+)", desc)
    return m.group(1) if m else None
