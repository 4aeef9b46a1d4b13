"""Data model of a scanned DICOM folder: files, series, studies, and the MRI error codes."""

from __future__ import annotations

import datetime as _dt
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np

from hccstrat.exceptions import InputFileError

__all__ = [
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
]


class DicomReadError(InputFileError):
    """A DICOM file cannot be read (not DICOM, truncated, corrupt pixel data)."""

    code = "HCC-MRI-001"


class NotImageError(InputFileError):
    """A DICOM object holds no image (plan, report, DICOMDIR...)."""

    code = "HCC-MRI-002"


class WrongModalityError(InputFileError):
    """A study has no MR images (e.g. CT was given instead of MRI)."""

    code = "HCC-MRI-003"


class DicomGeometryError(InputFileError):
    """Geometry tags are missing or inconsistent (PixelSpacing, positions, orientation)."""

    code = "HCC-MRI-004"


class MissingPhaseError(InputFileError):
    """A required contrast phase is missing or cannot be identified."""

    code = "HCC-MRI-005"


@dataclass(frozen=True)
class SkippedFile:
    """A file that was found but not used, with the reason."""

    path: Path
    code: str
    reason: str


@dataclass(frozen=True)
class FrameRef:
    """One 2-D image: a single-frame file or one frame of a multi-frame file."""

    path: Path
    frame: int | None  # None for a single-frame file, else 0-based frame index
    position: tuple[float, float, float] | None
    orientation: tuple[float, ...] | None
    pixel_spacing: tuple[float, float] | None  # (row spacing, column spacing) mm
    instance_number: int | None
    slice_thickness: float | None = None
    temporal: str = ""  # temporal position / acquisition time, for split of dynamic series
    echo: str = ""  # EchoNumbers (or effective echo time of a multi-frame image)


@dataclass
class Series:
    """One image series (after splitting mixed orientations, echoes or time points).

    ``frames`` are sorted by position along the slice normal once
    :meth:`sort_by_position` has run; ``problems`` lists geometry problems found.
    """

    uid: str
    study_uid: str
    patient_id: str
    modality: str
    number: int | None
    description: str
    protocol: str
    manufacturer: str
    sop_class: str
    image_type: tuple[str, ...]
    acquisition_time: float | None  # seconds after midnight
    bolus_start_time: float | None
    contrast_agent: str
    series_date: _dt.date | None
    rows: int
    columns: int
    echo: str = ""
    frames: list[FrameRef] = field(default_factory=list)
    split_tag: str = ""
    problems: list[str] = field(default_factory=list)
    phase: str | None = None
    phase_confidence: float = 0.0
    phase_reason: str = ""

    @property
    def key(self) -> str:
        """Unique key (series UID plus the split suffix when a series was split)."""
        return self.uid + (f"#{self.split_tag}" if self.split_tag else "")

    @property
    def n_slices(self) -> int:
        return len(self.frames)

    @property
    def orientation(self) -> tuple[float, ...] | None:
        return self.frames[0].orientation if self.frames else None

    @property
    def normal(self) -> np.ndarray | None:
        o = self.orientation
        if o is None or len(o) != 6:
            return None
        n = np.cross(np.asarray(o[:3]), np.asarray(o[3:]))
        return n / (np.linalg.norm(n) or 1.0)

    @property
    def pixel_spacing(self) -> tuple[float, float] | None:
        return self.frames[0].pixel_spacing if self.frames else None

    def slice_positions(self) -> np.ndarray:
        """Signed distance of every frame along the normal (mm), in frame order."""
        n = self.normal
        if n is None or any(f.position is None for f in self.frames):
            return np.array([])
        return np.array([np.dot(np.asarray(f.position), n) for f in self.frames])

    def slice_spacings(self) -> np.ndarray:
        """Gaps between consecutive sorted slices (mm)."""
        d = self.slice_positions()
        return np.diff(d) if d.size > 1 else np.array([])

    def sort_by_position(self) -> None:
        """Sort frames along the normal (never by file name or InstanceNumber)."""
        d = self.slice_positions()
        if d.size == len(self.frames) and d.size:
            self.frames = [self.frames[i] for i in np.argsort(d, kind="stable")]

    @property
    def is_localiser(self) -> bool:
        text = " ".join([self.description, self.protocol, *self.image_type]).lower()
        return any(k in text for k in ("localizer", "localiser", "scout", "survey", "3-plane",
                                       "3 plane", "定位"))

    def summary(self) -> dict:
        """One row of the ingest report."""
        sp = self.slice_spacings()
        ps = self.pixel_spacing
        return {
            "study_uid": self.study_uid, "patient_id": self.patient_id, "series_key": self.key,
            "series_number": self.number, "description": self.description,
            "modality": self.modality, "manufacturer": self.manufacturer,
            "n_slices": self.n_slices, "rows": self.rows, "columns": self.columns,
            "pixel_spacing_mm": None if ps is None else f"{ps[0]:.3g}x{ps[1]:.3g}",
            "slice_spacing_mm": float(np.median(sp)) if sp.size else None,
            "acquisition_time_s": self.acquisition_time,
            "contrast_agent": self.contrast_agent or None,
            "phase": self.phase, "phase_confidence": round(self.phase_confidence, 2),
            "phase_reason": self.phase_reason,
            "problems": "; ".join(self.problems) or None,
        }


@dataclass
class Study:
    """One imaging study (StudyInstanceUID) of one patient."""

    uid: str
    patient_id: str
    study_date: _dt.date | None
    series: list[Series] = field(default_factory=list)
    seg_files: list[Path] = field(default_factory=list)
    skipped: list[SkippedFile] = field(default_factory=list)

    def phase_series(self, phase: str) -> Series | None:
        """The series identified as ``phase`` (None when absent)."""
        for s in self.series:
            if s.phase == phase:
                return s
        return None

    @property
    def phases(self) -> dict[str, Series]:
        return {s.phase: s for s in self.series if s.phase}

    @property
    def mr_series(self) -> list[Series]:
        return [s for s in self.series if s.modality == "MR"]


@dataclass
class ScanResult:
    """Everything found under a folder."""

    root: Path
    studies: list[Study] = field(default_factory=list)
    skipped: list[SkippedFile] = field(default_factory=list)
    n_files: int = 0

    def study(self, patient_id: str | None = None) -> Study:
        """The only study (or the only one of ``patient_id``); raises when ambiguous."""
        cands = [s for s in self.studies if patient_id is None or s.patient_id == patient_id]
        if len(cands) != 1:
            raise InputFileError(
                f"expected one study under {self.root}"
                + (f" for patient {patient_id}" if patient_id else "")
                + f", found {len(cands)}",
                hint="point to one study's folder or give the patient id",
            )
        return cands[0]
