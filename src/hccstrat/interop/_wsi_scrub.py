"""Whole-slide image scrubbing: drop label and macro images, blank identifying metadata.

Works on TIFF-based slides (Aperio SVS, generic pyramidal TIFF, BigTIFF). The
scrubbed copy is written atomically; in it, label/macro IFDs are unlinked from
the IFD chain and their pixel bytes overwritten with zeros, and identifying
metadata (dates, user, file name, barcode, scanner id; TIFF DateTime, Artist,
HostComputer, DocumentName) are overwritten with spaces of the same length, so
tile offsets stay valid and no re-encoding is needed.
"""

from __future__ import annotations

import re
import shutil
import struct
from dataclasses import dataclass, field
from pathlib import Path

from hccstrat.exceptions import InputFileError
from hccstrat.io.atomic import atomic_path

__all__ = ["WsiScrubResult", "scrub_wsi"]

_ASSOCIATED = re.compile(r"\b(label|macro|overview|barcode)\b", re.IGNORECASE)
_SENSITIVE_KEYS = re.compile(
    r"(\|\s*(?:Filename|Date|Time|User|ScanScope ID|Barcode|Patient[^=|]*|Slide ?ID|"
    r"Case[^=|]*|Operator|Accession[^=|]*)\s*=\s*)([^|\r\n]*)",
    re.IGNORECASE,
)
_DATES = re.compile(r"\b(\d{4}[-:/]\d{2}[-:/]\d{2}|\d{1,2}/\d{1,2}/\d{2,4})\b")
_BLANK_TAGS = (269, 306, 315, 316)  # DocumentName, DateTime, Artist, HostComputer


@dataclass
class WsiScrubResult:
    """What :func:`scrub_wsi` did."""

    removed_pages: list[str] = field(default_factory=list)
    blanked_tags: int = 0
    mpp: float | None = None
    width: int | None = None
    height: int | None = None


def _blank(text: str) -> str:
    text = _SENSITIVE_KEYS.sub(lambda m: m.group(1) + " " * len(m.group(2)), text)
    return _DATES.sub(lambda m: " " * len(m.group(0)), text)


def _mpp(description: str) -> float | None:
    m = re.search(r"MPP\s*=\s*([0-9.]+)", description)
    return float(m.group(1)) if m else None


def scrub_wsi(src: str | Path, dst: str | Path) -> WsiScrubResult:
    """Write a scrubbed copy of slide ``src`` to ``dst``.

    Raises
    ------
    InputFileError
        If ``src`` is not a readable TIFF-based slide.
    """
    import tifffile

    src, dst = Path(src), Path(dst)
    result = WsiScrubResult()
    try:
        with tifffile.TiffFile(src) as tif:
            fmt = tif.tiff
            byteorder = tif.byteorder
            pages = []
            for i, page in enumerate(tif.pages):
                desc = page.description or ""
                series_name = ""
                subtype = page.tags.get(254)
                reduced = bool(subtype.value & 1) if subtype is not None else False
                first_line = desc.splitlines()[1] if len(desc.splitlines()) > 1 else desc
                assoc = i > 0 and bool(_ASSOCIATED.search(first_line) or _ASSOCIATED.search(
                    desc[:200]))
                if i > 0 and not page.is_tiled and reduced and "macro" in desc.lower():
                    assoc = True
                tags = {}
                for code in (270, *_BLANK_TAGS):
                    t = page.tags.get(code)
                    if t is not None:
                        tags[code] = (t.valueoffset, t.count, t.value)
                pages.append({
                    "index": i, "offset": page.offset, "assoc": assoc, "tags": tags,
                    "data": list(zip(page.dataoffsets, page.databytecounts, strict=False)),
                    "name": series_name or (first_line.strip()[:40] if assoc else ""),
                    "shape": page.shape,
                })
                if i == 0:
                    result.mpp = _mpp(desc)
                    result.height, result.width = int(page.imagelength), int(page.imagewidth)
    except (tifffile.TiffFileError, OSError, ValueError) as err:
        raise InputFileError(
            f"cannot read slide {src.name!r} as TIFF: {err}",
            hint="upload an SVS or pyramidal TIFF slide",
        ) from err

    off_fmt = {4: "I", 8: "Q"}[fmt.offsetsize]
    cnt_fmt = {2: "H", 8: "Q"}[fmt.tagnosize]
    bo = "<" if byteorder == "<" else ">"
    with atomic_path(dst) as tmp:
        shutil.copyfile(src, tmp)
        with open(tmp, "r+b") as fh:

            def next_ptr(ifd_offset: int) -> int:
                fh.seek(ifd_offset)
                (n,) = struct.unpack(bo + cnt_fmt, fh.read(fmt.tagnosize))
                return ifd_offset + fmt.tagnosize + n * fmt.tagsize

            kept = [p for p in pages if not p["assoc"]]
            for j, p in enumerate(kept):
                nxt = kept[j + 1]["offset"] if j + 1 < len(kept) else 0
                fh.seek(next_ptr(p["offset"]))
                fh.write(struct.pack(bo + off_fmt, nxt))
            for p in pages:
                if p["assoc"]:
                    result.removed_pages.append(p["name"] or f"page {p['index']}")
                    for off, n in p["data"]:
                        fh.seek(off)
                        fh.write(b"\x00" * n)
                for code, (off, count, value) in p["tags"].items():
                    if not isinstance(value, str) or count <= 1:
                        continue
                    if p["assoc"] or code in _BLANK_TAGS:
                        new = " " * len(value.encode("utf-8", "replace"))
                    else:
                        new = _blank(value)
                    raw = new.encode("utf-8", "replace")[: count - 1]
                    if raw != value.encode("utf-8", "replace")[: count - 1]:
                        fh.seek(off)
                        fh.write(raw)
                        result.blanked_tags += 1
    return result
