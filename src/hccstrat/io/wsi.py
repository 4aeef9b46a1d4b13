"""One reader for whole-slide images, whatever the format.

:func:`open_slide` picks a backend (OpenSlide, tiffslide, wsidicom, a pydicom fallback
for non-conformant DICOM, or Pillow for plain images) and returns a
:class:`SlideReader`. Coordinates are always level-0 pixels; physical size is always
micrometres per pixel (mpp). When a file stores no pixel size, asking for
:attr:`SlideReader.mpp` raises :class:`MppMissingError` telling the user to pass
``--mpp``; magnification strings are reported but never converted into mpp.

:meth:`SlideReader.read_region_level` (level-pixel coordinates) is the fast path of the
tiler: for tiled generic TIFF and Aperio SVS files it decodes the stored tiles itself
(tifffile + imagecodecs, each tile once, thread-safe), with the same pixels as
OpenSlide; other files go through their backend.

Examples
--------
>>> from hccstrat.io.wsi import open_slide
>>> with open_slide("slide.svs") as s:                        # doctest: +SKIP
...     s.mpp, s.dimensions, s.read_region((0, 0), 0, (256, 256)).shape
(0.499, (2220, 2967), (256, 256, 3))
"""

from __future__ import annotations

import logging
import os
import threading
from pathlib import Path
from typing import Any

import numpy as np

from hccstrat.exceptions import InputFileError
from hccstrat.io._wsi_backends import BACKENDS, Backend, DirectTiffTiles, objective_power

__all__ = [
    "SLIDE_EXTENSIONS",
    "MppMissingError",
    "NoTissueError",
    "SlideOpenError",
    "SlideReadError",
    "SlideReader",
    "SlideTooSmallError",
    "open_slide",
]

log = logging.getLogger(__name__)

#: file name endings treated as slides when a folder is scanned
SLIDE_EXTENSIONS = (
    ".svs",
    ".tif",
    ".tiff",
    ".ndpi",
    ".mrxs",
    ".scn",
    ".bif",
    ".vms",
    ".dcm",
    ".png",
    ".jpg",
    ".jpeg",
    ".btf",
)
_ORDER = {
    ".dcm": ("wsidicom", "openslide", "pydicom"),
    ".png": ("image",),
    ".jpg": ("image",),
    ".jpeg": ("image",),
    ".bmp": ("image",),
}
_DEFAULT_ORDER = ("openslide", "tiffslide", "image")
_MPP_RANGE = (0.05, 50.0)
_DIRECT_BACKENDS = ("openslide", "tiffslide")
# layouts whose stored tiles are the image as it is (no overlaps or stitching offsets as
# in Ventana BIF, no vendor quirks): only these are decoded directly
_DIRECT_VENDORS = ("generic-tiff", "generic", "aperio")


class SlideOpenError(InputFileError):
    """No backend could open the file as a slide (not a slide, corrupt, or unsupported)."""

    code = "HCC-WSI-001"


class MppMissingError(InputFileError):
    """The slide stores no pixel size and none was given."""

    code = "HCC-WSI-002"


class SlideTooSmallError(InputFileError):
    """The slide (or its tissue) is smaller than one tile at the requested mpp."""

    code = "HCC-WSI-003"


class NoTissueError(InputFileError):
    """Tissue detection found no tissue (blank glass, or over-exposed scan)."""

    code = "HCC-WSI-004"


class SlideReadError(InputFileError):
    """Pixels could not be decoded (truncated or corrupt file)."""

    code = "HCC-WSI-005"


class SlideReader:
    """Format-independent slide access.

    Parameters
    ----------
    path : path-like
        The slide file.
    backend : Backend
        An opened backend (see :func:`open_slide`).
    mpp : float, optional
        User-given level-0 mpp; overrides the file's value.
    direct : bool
        Let :meth:`read_region_level` decode the stored tiles of tiled generic TIFF and
        Aperio SVS files directly (each tile once, in parallel threads) instead of
        going through the backend; pixels are the same (see ``DirectTiffTiles``).

    Attributes
    ----------
    path : Path
    backend_name : str
    vendor : str
    level_dimensions : list of (int, int)
        (width, height) per level.
    level_downsamples : list of float
    properties : dict
    """

    def __init__(
        self,
        path: str | os.PathLike,
        backend: Backend,
        *,
        mpp: float | None = None,
        direct: bool = True,
    ) -> None:
        self.path = Path(path)
        self._b = backend
        self._direct_wanted = (
            direct and backend.name in _DIRECT_BACKENDS and backend.vendor in _DIRECT_VENDORS
        )
        self._direct: DirectTiffTiles | None = None
        self._direct_lock = threading.Lock()
        self.backend_name = backend.name
        self.vendor = backend.vendor
        self.level_dimensions = list(backend.level_dimensions)
        self.level_downsamples = list(backend.level_downsamples)
        self.properties = dict(backend.properties)
        self._user_mpp = mpp
        if mpp is not None and not (_MPP_RANGE[0] <= mpp <= _MPP_RANGE[1]):
            raise MppMissingError(
                f"--mpp {mpp} for {self.path.name} is outside "
                f"{_MPP_RANGE[0]}–{_MPP_RANGE[1]} µm/px",
                hint="give the scanner's level-0 pixel size, e.g. --mpp 0.25 "
                "(40x) or --mpp 0.5 (20x)",
            )
        if mpp is not None and backend.mpp_xy and abs(backend.mpp_xy[0] - mpp) / mpp > 0.1:
            log.warning(
                "%s: file says mpp=%.4f but --mpp %.4f was given; using --mpp",
                self.path.name,
                backend.mpp_xy[0],
                mpp,
            )

    # -- geometry ---------------------------------------------------------------
    @property
    def dimensions(self) -> tuple[int, int]:
        """Level-0 (width, height)."""
        return self.level_dimensions[0]

    @property
    def level_count(self) -> int:
        return len(self.level_dimensions)

    @property
    def mpp_or_none(self) -> float | None:
        """Level-0 mpp (user value first), or ``None`` when unknown."""
        if self._user_mpp is not None:
            return float(self._user_mpp)
        if self._b.mpp_xy is None:
            return None
        mx, my = self._b.mpp_xy
        if not (_MPP_RANGE[0] <= mx <= _MPP_RANGE[1]):
            return None
        if abs(mx - my) / mx > 0.02:
            log.warning(
                "%s: non-square pixels (%.4f x %.4f µm); using the mean", self.path.name, mx, my
            )
            return (mx + my) / 2
        return float(mx)

    @property
    def mpp(self) -> float:
        """Level-0 micrometres per pixel.

        Raises
        ------
        MppMissingError
            When neither the file nor the user gives a pixel size.
        """
        m = self.mpp_or_none
        if m is not None:
            return m
        obj = objective_power(self.properties)
        extra = (
            (
                f"; the file names an objective power of {obj}x, but magnification alone "
                "does not fix the pixel size, so it is not used"
            )
            if obj
            else ""
        )
        raise MppMissingError(
            f"{self.path.name} stores no pixel size (mpp){extra}",
            hint="pass the scanner's level-0 micrometres per pixel with --mpp "
            "(e.g. --mpp 0.25 for 40x, --mpp 0.5 for 20x scans), or mpp=... in Python",
        )

    def level_mpp(self, level: int) -> float:
        """Micrometres per pixel at ``level``."""
        return self.mpp * self.level_downsamples[level]

    def best_level_for_downsample(self, downsample: float) -> int:
        """Deepest level whose downsample does not exceed ``downsample`` (1 % tolerance)."""
        best = 0
        for i, d in enumerate(self.level_downsamples):
            if d <= downsample * 1.01:
                best = i
        return best

    # -- pixels -----------------------------------------------------------------
    def read_region(
        self, location: tuple[int, int], level: int, size: tuple[int, int]
    ) -> np.ndarray:
        """RGB ``uint8`` array (h, w, 3) of ``size`` at ``level``, top-left at level-0 ``location``.

        Raises
        ------
        SlideReadError
            When the pixels cannot be decoded (truncated or corrupt file).
        """
        try:
            return self._b.read_region(location, level, size)
        except Exception as ex:  # every backend has its own error classes
            raise SlideReadError(
                f"cannot decode pixels of {self.path.name} at {location}, level {level} "
                f"({type(ex).__name__}: {ex})",
                hint="the file is probably truncated or corrupt; re-export or re-copy it",
            ) from ex

    def _direct_tiles(self) -> DirectTiffTiles | None:
        """The direct tile decoder, opened on first use (``None`` when not applicable)."""
        if self._direct is not None or not self._direct_wanted:
            return self._direct
        with self._direct_lock:
            if self._direct is None and self._direct_wanted:
                try:
                    d = DirectTiffTiles(self.path, self.level_dimensions)
                except Exception as ex:  # not a TIFF tifffile understands: use the backend
                    log.debug("%s: no direct tile access (%s)", self.path.name, ex)
                    self._direct_wanted = False
                    return None
                if not any(d.has_level(i) for i in range(self.level_count)):
                    d.close()
                    self._direct_wanted = False
                    return None
                self._direct = d
            return self._direct

    def stored_tile_size(self, level: int) -> tuple[int, int] | None:
        """(width, height) of the stored tiles of ``level`` when decoded directly, else None."""
        d = self._direct_tiles()
        return d.tile_size(level) if d is not None and d.has_level(level) else None

    def read_region_level(
        self, level: int, location: tuple[int, int], size: tuple[int, int]
    ) -> np.ndarray:
        """Like :meth:`read_region`, but ``location`` is in pixels *of* ``level``.

        Decodes the stored tiles directly when the file allows it (tiled TIFF/SVS with
        JPEG, deflate, LZW, zstd, WebP or no compression), each tile once thanks to a
        small cache; otherwise calls the backend at level-0 ``location × downsample``.
        Safe to call from several threads.

        Raises
        ------
        SlideReadError
            When the pixels cannot be decoded (truncated or corrupt file).
        """
        d = self._direct_tiles()
        if d is None or not d.has_level(level):
            ds = self.level_downsamples[level]
            loc0 = (round(location[0] * ds), round(location[1] * ds))
            return self.read_region(loc0, level, size)
        try:
            return d.read(level, location, size)
        except Exception as ex:  # imagecodecs and tifffile raise their own classes
            raise SlideReadError(
                f"cannot decode pixels of {self.path.name} at level {level}, level px "
                f"{tuple(location)} ({type(ex).__name__}: {ex})",
                hint="the file is probably truncated or corrupt; re-export or re-copy it",
            ) from ex

    def read_level(self, level: int, *, max_pixels: int = 64_000_000) -> np.ndarray:
        """The whole of one level (refuses levels above ``max_pixels``)."""
        w, h = self.level_dimensions[level]
        if w * h > max_pixels:
            raise InputFileError(
                f"level {level} of {self.path.name} has {w}x{h} px; too large to read at once",
                hint="read a lower level or use tiles",
            )
        return self.read_region((0, 0), level, (w, h))

    def get_thumbnail(self, max_size: int = 2048) -> tuple[np.ndarray, float]:
        """Thumbnail whose longer side is at most ``max_size``.

        Returns
        -------
        image : ndarray of uint8, (h, w, 3)
        downsample : float
            Level-0 pixels per thumbnail pixel (same in x and y up to rounding).
        """
        from PIL import Image

        W, H = self.dimensions
        ds = max(1.0, max(W, H) / max_size)
        level = self.best_level_for_downsample(ds)
        lw, lh = self.level_dimensions[level]
        lds = self.level_downsamples[level]
        tw, th = max(1, round(W / ds)), max(1, round(H / ds))
        out = np.empty((th, tw, 3), np.uint8)
        chunk = 4096
        scale = lds / ds  # thumbnail px per level px
        for y in range(0, lh, chunk):
            for x in range(0, lw, chunk):
                cw, ch = min(chunk, lw - x), min(chunk, lh - y)
                a = self.read_region_level(level, (x, y), (cw, ch))
                ty0, tx0 = round(y * scale), round(x * scale)
                ty1, tx1 = min(th, round((y + ch) * scale)), min(tw, round((x + cw) * scale))
                if ty1 <= ty0 or tx1 <= tx0:
                    continue
                if a.shape[:2] == (ty1 - ty0, tx1 - tx0):  # level at the thumbnail's scale
                    out[ty0:ty1, tx0:tx1] = a
                    continue
                small = Image.fromarray(a).resize(
                    (tx1 - tx0, ty1 - ty0), Image.BILINEAR, reducing_gap=2.0
                )
                out[ty0:ty1, tx0:tx1] = np.asarray(small)
        return out, W / tw

    def associated_images(self) -> dict[str, np.ndarray]:
        """Label, macro, thumbnail… images stored with the slide (may be empty)."""
        try:
            return self._b.associated_images()
        except Exception as ex:  # optional content: report and go on
            log.warning("%s: cannot read associated images (%s)", self.path.name, ex)
            return {}

    def info(self) -> dict[str, Any]:
        """Summary for manifests and reports."""
        return {
            "backend": self.backend_name,
            "vendor": self.vendor,
            "width": self.dimensions[0],
            "height": self.dimensions[1],
            "levels": self.level_count,
            "mpp": self.mpp_or_none,
            "objective_power": objective_power(self.properties),
        }

    def close(self) -> None:
        if self._direct is not None:
            self._direct.close()
            self._direct = None
        self._b.close()

    def __enter__(self) -> SlideReader:
        return self

    def __exit__(self, *exc) -> None:
        self.close()

    def __repr__(self) -> str:
        return (
            f"SlideReader({self.path.name!r}, backend={self.backend_name}, "
            f"dims={self.dimensions}, levels={self.level_count}, mpp={self.mpp_or_none})"
        )


def open_slide(
    path: str | os.PathLike,
    *,
    mpp: float | None = None,
    backend: str = "auto",
    direct: bool = True,
) -> SlideReader:
    """Open a slide with the first backend that accepts it.

    Parameters
    ----------
    path : path-like
        Slide file (SVS, NDPI, MRXS, TIFF, DICOM, PNG/JPEG…).
    mpp : float, optional
        Level-0 micrometres per pixel, overriding (or supplying) the file's value.
    backend : str
        ``"auto"`` or one of ``openslide``, ``tiffslide``, ``wsidicom``, ``pydicom``,
        ``image``.
    direct : bool
        Allow direct decoding of stored TIFF tiles in :meth:`SlideReader.read_region_level`
        (the fast path of the tiler); ``False`` always goes through the backend.

    Raises
    ------
    SlideOpenError
        When the file is missing or no backend can open it.
    """
    p = Path(path)
    if not p.exists():
        raise SlideOpenError(f"slide file not found: {p}", hint="check the path")
    if p.is_file() and p.stat().st_size == 0:
        raise SlideOpenError(f"{p.name} is empty (0 bytes)", hint="re-copy the file")
    if backend != "auto" and backend not in BACKENDS:
        raise SlideOpenError(
            f"unknown backend {backend!r}", hint=f"use one of: auto, {', '.join(BACKENDS)}"
        )
    order = (backend,) if backend != "auto" else _ORDER.get(p.suffix.lower(), _DEFAULT_ORDER)
    errors = []
    for name in order:
        try:
            b = BACKENDS[name](p)
        except ImportError as ex:
            errors.append(f"{name}: not installed ({ex})")
            continue
        except Exception as ex:  # each library raises its own error types
            errors.append(f"{name}: {type(ex).__name__}: {str(ex)[:200]}")
            continue
        if not b.level_dimensions or min(b.level_dimensions[0]) <= 0:
            errors.append(f"{name}: empty image")
            continue
        log.debug("opened %s with %s", p, name)
        return SlideReader(p, b, mpp=mpp, direct=direct)
    raise SlideOpenError(
        f"cannot open {p.name} as a slide; tried " + "; ".join(errors),
        hint="check that the file is a complete whole-slide image (SVS, NDPI, MRXS, pyramidal "
        "TIFF, DICOM WSI) or a plain PNG/JPEG image",
    )
