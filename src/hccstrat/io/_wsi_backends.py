"""Backends of the slide reader: OpenSlide, tiffslide, wsidicom, pydicom, plain images.

Every backend exposes the same small surface (see :class:`Backend`); the public
:class:`hccstrat.io.wsi.SlideReader` adds mpp handling, thumbnails and tiling helpers.
All coordinates given to ``read_region`` are level-0 pixels; images come back as
RGB ``uint8`` arrays of shape (height, width, 3).
"""

from __future__ import annotations

import logging
import re
from pathlib import Path
from typing import Any

import numpy as np

__all__ = [
    "BACKENDS",
    "Backend",
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
