"""DICOM series discovery and volume loading for liver MRI.

:func:`scan_folder` walks a folder (nested, several patients and studies, non-DICOM
files, DICOMDIR), groups images by study and series, splits series that mix
orientations, echoes or time points, sorts slices by position along the slice
normal (never by file name or InstanceNumber), handles enhanced (multi-frame) MR,
and identifies the contrast phases (:mod:`hccstrat.io._phase`). Every file that is
not used is listed with a reason. :func:`load_volume` turns a series into a
SimpleITK image with spacing, origin and direction.

Examples
--------
>>> scan = scan_folder("exports/P001")           # doctest: +SKIP
>>> study = scan.study()                          # doctest: +SKIP
>>> pv = load_volume(study.phase_series("portal"))  # doctest: +SKIP
"""

from __future__ import annotations

import datetime as _dt
import logging
import os
from collections import defaultdict
from collections.abc import Mapping
from pathlib import Path

import numpy as np

from hccstrat.exceptions import InputFileError
from hccstrat.io._dicom_model import (
    DicomGeometryError,
    DicomReadError,
    FrameRef,
    MissingPhaseError,
    NotImageError,
    ScanResult,
    Series,
    SkippedFile,
    Study,
    WrongModalityError,
)
from hccstrat.io._dicom_report import ingest_report, write_ingest_report
from hccstrat.io._phase import PHASE_NAMES, identify_phases

__all__ = [
    "PHASE_NAMES",
    "DicomGeometryError",
    "DicomReadError",
    "FrameRef",
    "MissingPhaseError",
    "NotImageError",
    "ScanResult",
    "Series",
    "SkippedFile",
    "Study",
    "WrongModalityError",
    "ingest_report",
    "load_volume",
    "require_mr",
    "scan_folder",
    "write_ingest_report",
]

log = logging.getLogger(__name__)

_IGNORED_SUFFIXES = (".json", ".nii", ".nii.gz", ".nrrd", ".csv", ".txt", ".md", ".png",
                     ".jpg", ".xml", ".html", ".yaml", ".yml", ".log", ".tmp")
_OS_FILES = {"thumbs.db", "ehthumbs.db", "desktop.ini"}  # written by file browsers
_DICOMDIR_UID = "1.2.840.10008.1.3.10"
#: MR and CT image storage SOP classes (classic and enhanced)
_IMAGE_SOPS = {"1.2.840.10008.5.1.4.1.1.4", "1.2.840.10008.5.1.4.1.1.4.1",
               "1.2.840.10008.5.1.4.1.1.2", "1.2.840.10008.5.1.4.1.1.2.1"}
_SEG_UID = "1.2.840.10008.5.1.4.1.1.66.4"
_UNCOMPRESSED = {"1.2.840.10008.1.2", "1.2.840.10008.1.2.1", "1.2.840.10008.1.2.2"}
#: largest relative deviation of a slice gap from the median gap that still makes a volume
#: (the fail threshold of the ``slice_spacing`` QC check)
_GAP_TOLERANCE = 0.10


def _tm_seconds(value) -> float | None:
    """DICOM TM (HHMMSS.frac) → seconds after midnight."""
    if value in (None, ""):
        return None
    s = str(value).strip().replace(":", "")
    try:
        hh, mm = int(s[0:2]), int(s[2:4] or 0)
        ss = float(s[4:] or 0)
    except ValueError:
        return None
    return hh * 3600 + mm * 60 + ss


def _da(value) -> _dt.date | None:
    try:
        return _dt.datetime.strptime(str(value).strip()[:8], "%Y%m%d").date()
    except (TypeError, ValueError):
        return None


def _floats(value, n: int) -> tuple[float, ...] | None:
    try:
        out = tuple(float(v) for v in value)
    except (TypeError, ValueError):
        return None
    return out if len(out) == n else None


def _text(ds, key: str) -> str:
    v = ds.get(key, "")
    if isinstance(v, (list, tuple)) or type(v).__name__ == "MultiValue":
        return "\\".join(str(x) for x in v)
    return str(v or "").strip()


def _check_pixels(ds, path: Path) -> str | None:
    """Reason why the pixel data cannot be used, or None."""
    if "PixelData" not in ds:
        return None  # caller decides (non-image)
    ts = str(getattr(getattr(ds, "file_meta", None), "TransferSyntaxUID", "") or "")
    if ts and ts not in _UNCOMPRESSED:
        return None
    try:
        rows, cols = int(ds.Rows), int(ds.Columns)
        bits = int(ds.BitsAllocated)
        spp = int(ds.get("SamplesPerPixel", 1))
        nf = int(ds.get("NumberOfFrames", 1) or 1)
    except (AttributeError, TypeError, ValueError):
        return "image size tags (Rows/Columns/BitsAllocated) are missing"
    expected = rows * cols * spp * nf * bits // 8
    got = len(ds.PixelData)
    if got < expected:
        return f"pixel data truncated ({got} of {expected} bytes)"
    return None


def _frames_of(ds, path: Path) -> list[FrameRef]:
    """Frame references of a single- or multi-frame image file."""
    nf = int(ds.get("NumberOfFrames", 1) or 1)
    if nf <= 1 or "PerFrameFunctionalGroupsSequence" not in ds:
        ps = _floats(ds.get("PixelSpacing"), 2)
        return [FrameRef(
            path=path, frame=None,
            position=_floats(ds.get("ImagePositionPatient"), 3),
            orientation=_floats(ds.get("ImageOrientationPatient"), 6),
            pixel_spacing=ps,
            instance_number=int(ds.InstanceNumber) if ds.get("InstanceNumber") else None,
            slice_thickness=float(ds.SliceThickness) if ds.get("SliceThickness") else None,
            temporal=str(ds.get("TemporalPositionIdentifier", "") or ""),
            echo=_text(ds, "EchoNumbers") or _text(ds, "EchoTime"),
        )]
    shared = ds.get("SharedFunctionalGroupsSequence", [None])[0]
    out = []
    for i, fg in enumerate(ds.PerFrameFunctionalGroupsSequence):
        def pick(seq: str, attr: str, fg=fg):
            for grp in (fg, shared):
                if grp is not None and seq in grp and attr in grp[seq][0]:
                    return grp[seq][0].get(attr)
            return None

        temporal = pick("FrameContentSequence", "TemporalPositionIndex")
        echo = pick("MREchoSequence", "EffectiveEchoTime")
        out.append(FrameRef(
            path=path, frame=i,
            position=_floats(pick("PlanePositionSequence", "ImagePositionPatient"), 3),
            orientation=_floats(pick("PlaneOrientationSequence", "ImageOrientationPatient"), 6),
            pixel_spacing=_floats(pick("PixelMeasuresSequence", "PixelSpacing"), 2),
            instance_number=i + 1,
            slice_thickness=(lambda v: float(v) if v is not None else None)(
                pick("PixelMeasuresSequence", "SliceThickness")),
            temporal="" if temporal is None else str(temporal),
            echo="" if echo is None else str(echo),
        ))
    return out


def _read(path: Path):
    """Read one file; returns (dataset, None) or (None, SkippedFile)."""
    import pydicom
    from pydicom.errors import InvalidDicomError

    try:
        ds = pydicom.dcmread(path)
    except InvalidDicomError:
        return None, SkippedFile(path, "HCC-MRI-001", "not a DICOM file")
    except (OSError, ValueError, EOFError, KeyError, TypeError) as err:
        return None, SkippedFile(path, "HCC-MRI-001", f"unreadable DICOM ({err})")
    return ds, None


def _walk(root: Path):
    for dirpath, dirnames, filenames in os.walk(root):
        dirnames.sort()
        for name in sorted(filenames):
            yield Path(dirpath) / name


def scan_folder(
    root: str | Path,
    *,
    phase_mapping: Mapping[str, str] | None = None,
    use_enhancement: bool = True,
) -> ScanResult:
    """Find every DICOM study and series under ``root`` and identify the phases.

    Parameters
    ----------
    root : path-like
        Folder (searched recursively) or a single file.
    phase_mapping : mapping, optional
        User mapping: SeriesInstanceUID, series number or exact SeriesDescription →
        phase; it overrides automatic identification.
    use_enhancement : bool
        Allow the enhancement fallback (reads pixel data of the candidate series).

    Returns
    -------
    ScanResult
        Studies with their series; ``skipped`` lists files not used, with reasons.
    """
    root = Path(root)
    if not root.exists():
        raise InputFileError(f"DICOM folder not found: {root}", hint="check the path")
    result = ScanResult(root=root)
    files = [root] if root.is_file() else list(_walk(root))
    groups: dict[tuple[str, str], list] = defaultdict(list)
    headers: dict[tuple[str, str], object] = {}
    study_meta: dict[str, dict] = {}
    seg_files: dict[str, list[Path]] = defaultdict(list)
    for path in files:
        name = path.name.lower()
        if name.startswith(".") or name.endswith(_IGNORED_SUFFIXES) or name in _OS_FILES:
            continue
        result.n_files += 1
        ds, skip = _read(path)
        if skip is not None:
            result.skipped.append(skip)
            continue
        sop = str(ds.get("SOPClassUID", "") or getattr(ds.get("file_meta", {}),
                                                      "MediaStorageSOPClassUID", ""))
        if sop == _DICOMDIR_UID or "DirectoryRecordSequence" in ds:
            result.skipped.append(SkippedFile(
                path, "HCC-MRI-002", "DICOMDIR index (not needed: the folder is walked)"))
            continue
        modality = _text(ds, "Modality").upper()
        if sop == _SEG_UID or modality == "SEG":
            seg_files[str(ds.get("StudyInstanceUID", ""))].append(path)
            result.skipped.append(SkippedFile(path, "HCC-MRI-002",
                                              "DICOM SEG (kept as a mask source)"))
            continue
        if "PixelData" not in ds and sop in _IMAGE_SOPS:  # the file ends before its pixels
            result.skipped.append(SkippedFile(
                path, "HCC-MRI-001", "unreadable DICOM (an image without pixel data: the "
                "file is truncated)"))
            continue
        if "PixelData" not in ds:
            result.skipped.append(SkippedFile(
                path, "HCC-MRI-002", f"non-image DICOM object (modality {modality or '?'})"))
            continue
        bad = _check_pixels(ds, path)
        if bad:
            result.skipped.append(SkippedFile(path, "HCC-MRI-001", bad))
            continue
        study_uid = str(ds.get("StudyInstanceUID", "") or "unknown-study")
        series_uid = str(ds.get("SeriesInstanceUID", "") or f"unknown-series-{path.parent}")
        key = (study_uid, series_uid)
        groups[key].extend(_frames_of(ds, path))
        headers.setdefault(key, _header_of(ds))
        study_meta.setdefault(study_uid, {
            "patient_id": _text(ds, "PatientID") or "unknown",
            "date": _da(ds.get("StudyDate")) or _da(ds.get("SeriesDate")),
        })
    studies: dict[str, Study] = {}
    for (study_uid, series_uid), frames in groups.items():
        meta = study_meta[study_uid]
        study = studies.setdefault(study_uid, Study(study_uid, meta["patient_id"], meta["date"]))
        for part in _split(frames):
            hdr = dict(headers[(study_uid, series_uid)])
            if part[1] and part[1][0].echo:
                hdr["echo"] = part[1][0].echo
            s = Series(uid=series_uid, study_uid=study_uid, patient_id=meta["patient_id"],
                       frames=part[1], split_tag=part[0], **hdr)
            _geometry_problems(s)
            study.series.append(s)
    for study in studies.values():
        study.series.sort(key=lambda s: (s.number if s.number is not None else 10**6, s.key))
        study.seg_files = seg_files.get(study.uid, [])
        study.skipped = [k for k in result.skipped if _belongs(k, study)]
        identify_phases(study, mapping=phase_mapping, use_enhancement=use_enhancement,
                        loader=_preview)
    result.studies = sorted(studies.values(), key=lambda s: (s.patient_id, s.uid))
    return result


def _belongs(skip: SkippedFile, study: Study) -> bool:
    dirs = {f.path.parent for s in study.series for f in s.frames}
    return skip.path.parent in dirs or skip.path in study.seg_files


def _header_of(ds) -> dict:
    echo = _text(ds, "EchoNumbers") or _text(ds, "EchoTime")
    return {
        "modality": _text(ds, "Modality").upper() or "?",
        "number": int(ds.SeriesNumber) if ds.get("SeriesNumber") not in (None, "") else None,
        "description": _text(ds, "SeriesDescription"),
        "protocol": _text(ds, "ProtocolName"),
        "manufacturer": _text(ds, "Manufacturer"),
        "sop_class": str(ds.get("SOPClassUID", "")),
        "image_type": tuple(str(x) for x in (ds.get("ImageType") or ())),
        "acquisition_time": _tm_seconds(ds.get("AcquisitionTime") or ds.get("SeriesTime")
                                        or ds.get("ContentTime")),
        "bolus_start_time": _tm_seconds(ds.get("ContrastBolusStartTime")),
        "contrast_agent": _text(ds, "ContrastBolusAgent"),
        "series_date": _da(ds.get("SeriesDate")) or _da(ds.get("StudyDate")),
        "rows": int(ds.get("Rows", 0) or 0),
        "columns": int(ds.get("Columns", 0) or 0),
        "echo": echo,
    }


def _split(frames: list[FrameRef]) -> list[tuple[str, list[FrameRef]]]:
    """Split a series' frames by orientation, then echo, then time point.

    Orientation parts are tagged ``o<i>``, echoes ``e<echo number>`` (only when the
    series holds several), time points ``t<id>`` (only when positions repeat).
    """
    by_orient: dict[tuple, list[FrameRef]] = defaultdict(list)
    for f in frames:
        key = tuple(np.round(f.orientation, 3)) if f.orientation else ("none",)
        by_orient[key].append(f)
    out = []
    multi = len(by_orient) > 1
    for i, (_k, fo) in enumerate(by_orient.items()):
        tag_o = f"o{i}" if multi else ""
        by_echo: dict[str, list[FrameRef]] = defaultdict(list)
        for f in fo:
            by_echo[f.echo].append(f)
        echoes = sorted(by_echo, key=_echo_sort_key) if len(by_echo) > 1 else list(by_echo)
        for e in echoes:
            fs = by_echo[e]
            tag = tag_o + (f"e{e}" if len(by_echo) > 1 else "")
            positions = [tuple(np.round(f.position, 2)) for f in fs if f.position]
            if len(set(positions)) < len(positions) and len({f.temporal for f in fs}) > 1:
                by_t: dict[str, list[FrameRef]] = defaultdict(list)
                for f in fs:
                    by_t[f.temporal].append(f)
                for t, ft in sorted(by_t.items()):
                    out.append(((tag + "t" + t).strip(), ft))
            else:
                out.append((tag, fs))
    return out


def _echo_sort_key(e: str) -> tuple:
    try:
        return (0, float(e), e)
    except ValueError:
        return (1, 0.0, e)


def _geometry_problems(s: Series) -> None:
    """Sort frames and record geometry problems found in a series."""
    if s.pixel_spacing is None or any(f.pixel_spacing is None for f in s.frames):
        s.problems.append("PixelSpacing missing")
    if any(f.position is None or f.orientation is None for f in s.frames):
        s.problems.append("ImagePositionPatient/ImageOrientationPatient missing")
        return
    spacings = {tuple(np.round(f.pixel_spacing, 3)) for f in s.frames if f.pixel_spacing}
    if len(spacings) > 1:
        s.problems.append("PixelSpacing differs between slices ("
                          + ", ".join("x".join(f"{v:g}" for v in sp) for sp in sorted(spacings))
                          + " mm)")
    s.sort_by_position()
    d = s.slice_positions()
    if d.size > 1 and np.any(np.diff(d) < 1e-3):
        s.problems.append("several images at the same slice position")
        return
    gaps = np.diff(d)
    if gaps.size > 1:
        med = float(np.median(gaps))
        k = int(np.argmax(np.abs(gaps - med)))
        if abs(gaps[k] - med) > _GAP_TOLERANCE * med:
            s.problems.append(
                f"uneven slice gaps: {gaps[k]:.2f} mm after slice {k + 1} of {d.size} "
                f"(median {med:.2f} mm: a slice was not exported or is unreadable)")


def load_volume(series: Series, *, dtype=np.float32, max_slices: int | None = None,
                in_plane_mm: float | None = None):
    """Read a series as a 3-D SimpleITK image (geometry from the DICOM tags).

    Parameters
    ----------
    series : Series
    dtype : numpy dtype
        Voxel type after the modality LUT.
    max_slices : int, optional
        Preview: read only every k-th slice so that at most ``max_slices`` are decoded
        (the slice spacing is multiplied by k).
    in_plane_mm : float, optional
        Preview: average-shrink in-plane to about this pixel spacing.

    Raises
    ------
    DicomGeometryError
        Missing PixelSpacing/position/orientation, duplicate positions, uneven slice
        gaps (a missing slice), PixelSpacing differing between slices, < 2 slices.
    DicomReadError
        Pixel data that cannot be decoded.
    """
    import pydicom
    import SimpleITK as sitk
    from pydicom.pixels import apply_modality_lut

    where = f"series {series.number} '{series.description}' ({series.key})"
    if "PixelSpacing missing" in series.problems:
        raise DicomGeometryError(f"{where}: PixelSpacing (0028,0030) is missing",
                                 hint="re-export the series from the scanner/PACS with full "
                                      "headers, or give a NIfTI with the correct spacing")
    geo = [p for p in series.problems if "missing" in p or "same slice position" in p]
    if geo:
        raise DicomGeometryError(f"{where}: {'; '.join(geo)}",
                                 hint="split the series or re-export it with geometry tags")
    uneven = [p for p in series.problems if p.startswith(("uneven", "PixelSpacing differs"))]
    if uneven:
        raise DicomGeometryError(f"{where}: {'; '.join(uneven)}",
                                 hint="re-export the complete series from the scanner/PACS "
                                      "(see skipped.csv of the ingest report for files that "
                                      "could not be read)")
    if series.n_slices < 2:
        raise DicomGeometryError(f"{where}: only {series.n_slices} slice(s), not a volume",
                                 hint="give a 3-D series")
    stride = 1
    if max_slices is not None and series.n_slices > max_slices:
        stride = -(-series.n_slices // max(2, int(max_slices)))
    frames = series.frames[::stride]
    cache: dict[Path, np.ndarray] = {}
    planes = []
    for f in frames:
        if f.path not in cache:
            try:
                ds = pydicom.dcmread(f.path)
                arr = apply_modality_lut(ds.pixel_array, ds)
            except Exception as err:
                raise DicomReadError(f"{where}: cannot decode pixel data of {f.path}: {err}",
                                     hint="check the file is complete; re-export it") from err
            cache[f.path] = np.asarray(arr)
        arr = cache[f.path]
        planes.append(arr[f.frame] if f.frame is not None and arr.ndim == 3 else arr)
    vol = np.stack(planes).astype(dtype, copy=False)
    img = sitk.GetImageFromArray(vol)
    d = series.slice_positions()
    dz = float(np.median(np.diff(d))) * stride
    row_sp, col_sp = series.pixel_spacing
    img.SetSpacing((float(col_sp), float(row_sp), dz))
    img.SetOrigin(tuple(float(v) for v in series.frames[0].position))
    o = np.asarray(series.orientation)
    n = series.normal
    img.SetDirection(tuple(np.column_stack([o[:3], o[3:], n]).ravel().tolist()))
    if in_plane_mm is not None:
        f = [max(1, round(in_plane_mm / float(col_sp))), max(1, round(in_plane_mm / float(row_sp))),
             1]
        if f != [1, 1, 1]:
            img = sitk.BinShrink(img, f)
    return img


def _preview(series: Series):
    """Low-resolution volume for the enhancement fallback (4 mm in-plane, <= 40 slices)."""
    return load_volume(series, max_slices=40, in_plane_mm=4.0)


def require_mr(study: Study) -> None:
    """Raise :class:`WrongModalityError` when the study has no MR image series."""
    if not study.mr_series:
        mods = sorted({s.modality for s in study.series})
        raise WrongModalityError(
            f"study {study.uid} of patient {study.patient_id} has no MR images "
            f"(found {', '.join(mods) or 'no images'})",
            hint="give the pre-operative contrast-enhanced liver MRI, not CT",
        )

