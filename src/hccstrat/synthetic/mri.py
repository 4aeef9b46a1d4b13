"""Synthetic 4-phase liver MRI written as real DICOM files.

:func:`write_study` renders one patient's non-contrast, arterial, portal venous and
delayed phases from an analytic phantom (:mod:`hccstrat.synthetic._mri_phantom`)
whose tumour appearance follows the patient's latent imaging traits, and writes:

- one DICOM series per phase (MR Image Storage, one file per slice, valid UIDs,
  geometry tags, vendor-style descriptions, acquisition times, contrast tags);
  file names are shuffled and some vendors number instances head-to-feet, so a
  reader must sort by position;
- an optional 3-plane localiser series (mixed orientations in one series);
- liver and tumour masks as NIfTI in the portal venous geometry and, optionally,
  as one DICOM SEG (highdicom) referencing the portal venous series;
- ``truth.json``: the simulated motion and tumour centres (for benchmarks).

The generator takes one latent row as a plain mapping, so it does not depend on the
cohort module.
"""

from __future__ import annotations

import datetime as _dt
import json
import logging
from collections.abc import Mapping
from dataclasses import asdict, dataclass, field
from pathlib import Path

import numpy as np
from scipy import ndimage

from hccstrat.io.atomic import atomic_write
from hccstrat.synthetic._mri_phantom import (
    PHASES,
    AxialGrid,
    RigidMotion,
    make_tumours,
    parenchymal_texture,
    render_phase,
)
from hccstrat.synthetic._mri_vendors import VENDORS, vendor_style
from hccstrat.synthetic._mri_writer import write_localiser, write_seg, write_series

__all__ = [
    "PHASES",
    "VENDORS",
    "StudyInfo",
    "default_latent",
    "sample_latent",
    "write_study",
]

log = logging.getLogger(__name__)

#: Seconds after injection at which each post-contrast phase starts (DOMAIN.md).
PHASE_DELAY_S = {"arterial": 35.0, "portal": 70.0, "delayed": 180.0}


@dataclass
class StudyInfo:
    """What :func:`write_study` wrote, with the ground truth.

    Attributes
    ----------
    study_dir : Path
        Folder holding the study (DICOM under ``DICOM/``, masks under ``masks/``).
    series : dict
        Phase → ``{"uid", "description", "number", "time", "dir", "n_files"}``.
    motion : dict
        Phase → ``{"translation", "rotation_deg", "centre"}`` (anatomy → world).
    tumour_centres : list
        Tumour centres in millimetres, portal-venous (= anatomy) frame.
    """

    study_dir: Path
    patient_id: str
    vendor: str
    study_uid: str
    study_date: str
    series: dict[str, dict] = field(default_factory=dict)
    motion: dict[str, dict] = field(default_factory=dict)
    tumour_centres: list[list[float]] = field(default_factory=list)
    tumour_radii_mm: list[float] = field(default_factory=list)
    liver_mask: Path | None = None
    tumour_mask: Path | None = None
    seg_file: Path | None = None
    traits: dict[str, float] = field(default_factory=dict)

    def to_json(self) -> dict:
        """JSON-serialisable form (paths as strings)."""
        d = asdict(self)
        return {k: (str(v) if isinstance(v, Path) else v) for k, v in d.items()}


def default_latent(aggressive: bool) -> dict[str, float]:
    """A plausible latent record for tests: aggressive or indolent tumour."""
    if aggressive:
        return {
            "patient_id": "AGG001", "aggressiveness": 1.5, "tumour_size_cm": 7.0,
            "tumour_number": 2, "mri_arterial_enhancement": 1.4, "mri_rim": 0.85,
            "mri_washout": 0.9, "mri_capsule": 0.15, "mri_margin_irregularity": 0.85,
            "mri_peritumoral": 0.8, "vascular_invasion": True,
        }
    return {
        "patient_id": "IND001", "aggressiveness": -1.0, "tumour_size_cm": 3.0,
        "tumour_number": 1, "mri_arterial_enhancement": 0.9, "mri_rim": 0.05,
        "mri_washout": 0.5, "mri_capsule": 0.8, "mri_margin_irregularity": 0.05,
        "mri_peritumoral": 0.05, "vascular_invasion": False,
    }


def sample_latent(rng: np.random.Generator) -> dict[str, float]:
    """A random latent record whose imaging traits follow its aggressiveness."""
    a = float(rng.normal())
    s = 1 / (1 + np.exp(-1.5 * a))
    def trait(w: float) -> float:
        return float(np.clip(w * s + (1 - w) * 0.5 + rng.normal(0, 0.12), 0, 1))
    return {
        "aggressiveness": a, "tumour_size_cm": float(np.clip(rng.lognormal(1.4 + 0.2 * a, 0.4),
                                                              1, 12)),
        "tumour_number": int(1 + (rng.random() < 0.15 + 0.1 * s)),
        "mri_arterial_enhancement": float(np.clip(0.8 + 0.7 * s + rng.normal(0, 0.08),
                                                  0.8, 1.5)),
        "mri_rim": trait(0.8), "mri_washout": trait(0.5), "mri_capsule": 1 - trait(0.6),
        "mri_margin_irregularity": trait(0.8), "mri_peritumoral": trait(0.8),
        "vascular_invasion": bool(rng.random() < s),
    }


def _as_date(study_date) -> _dt.date:
    if study_date is None:
        return _dt.date(2024, 1, 15)
    if isinstance(study_date, _dt.datetime):
        return study_date.date()
    if isinstance(study_date, _dt.date):
        return study_date
    import pandas as pd

    return pd.Timestamp(study_date).date()


def _grid(shape, spacing) -> tuple[AxialGrid, np.ndarray]:
    """World axes of an axial grid centred near the liver, and its origin (x, y, z)."""
    nx, ny, nz = shape
    sx, sy, sz = spacing
    origin = np.array([-(nx - 1) * sx / 2, -(ny - 1) * sy / 2 + 5.0, -(nz - 1) * sz / 2])
    grid = AxialGrid(np.arange(nx) * sx + origin[0], np.arange(ny) * sy + origin[1],
                     np.arange(nz) * sz + origin[2])
    return grid, origin


def _to_counts(img: np.ndarray, scale: float, noise: float, rng, spacing) -> np.ndarray:
    """Scanner units: partial-volume blur, coil bias, Rician noise, 12-bit clip."""
    sig = np.asarray([0.5, 0.5, 0.5 * spacing[0] / spacing[2]])[::-1]
    img = ndimage.gaussian_filter(img, sigma=sig)
    _nz, ny, nx = img.shape
    yy, xx = np.meshgrid(np.linspace(-1, 1, ny), np.linspace(-1, 1, nx), indexing="ij")
    bias = 1.0 + 0.06 * xx - 0.05 * yy  # receive-coil shading, same in every phase
    s = img * (bias[None] * scale).astype(np.float32)
    sd = np.float32(noise * scale)
    n1 = rng.standard_normal(s.shape, dtype=np.float32)
    n1 *= sd
    n1 += s
    n2 = rng.standard_normal(s.shape, dtype=np.float32)
    n2 *= sd
    mag = np.sqrt(n1 * n1 + n2 * n2)
    return np.clip(np.rint(mag), 0, 4095).astype(np.uint16)


def write_study(
    out_dir: str | Path,
    latent_row: Mapping,
    *,
    vendor: str,
    patient_id: str,
    study_date=None,
    seed: int = 0,
    shape: tuple[int, int, int] = (128, 128, 40),
    spacing: tuple[float, float, float] = (3.0, 3.0, 5.0),
    motion_mm: float = 3.0,
    rotation_deg: float = 1.5,
    strip_descriptions: bool = False,
    strip_timing: bool = False,
    phases: tuple[str, ...] = PHASES,
    localiser: bool = True,
    write_dicom_seg: bool = True,
    description_variant: int | None = None,
) -> StudyInfo:
    """Write one synthetic 4-phase liver MRI study.

    Parameters
    ----------
    out_dir : path-like
        Study folder to create (``DICOM/``, ``masks/``, ``truth.json``).
    latent_row : Mapping
        One row of the cohort's ``latent`` table (keys as in :func:`default_latent`).
    vendor : {"GE", "Siemens", "Philips", "UIH"}
        Scanner style (tags, descriptions, intensity scale, noise).
    patient_id : str
        PatientID written to every file.
    study_date : date-like, optional
        StudyDate (default 2024-01-15).
    seed : int
        Seed of every random draw (anatomy, motion, noise, file names).
    shape : (nx, ny, nz)
        Matrix (columns, rows, slices).
    spacing : (sx, sy, sz)
        Pixel spacing and slice spacing in millimetres.
    motion_mm : float
        Standard deviation of the per-axis translation between phases (z doubled,
        breathing); the portal venous phase is the reference.
    rotation_deg : float
        Standard deviation of the in-plane rotation between phases.
    strip_descriptions : bool
        Write the same generic SeriesDescription/ProtocolName in every phase and
        drop the contrast tags (tests the timing/enhancement fallbacks).
    strip_timing : bool
        Write the same AcquisitionTime/SeriesTime in every phase.
    phases : tuple of str
        Phases to write (subset of ``PHASES``; fewer to simulate a missing phase).
    localiser : bool
        Also write a 3-plane localiser series.
    write_dicom_seg : bool
        Also write the masks as DICOM SEG (highdicom).
    description_variant : int, optional
        Index of the vendor's description variant (drawn at random when omitted).

    Returns
    -------
    StudyInfo
    """
    from pydicom.uid import generate_uid

    style = vendor_style(vendor)
    vendor_key = next(k for k in VENDORS if VENDORS[k] is style)
    out_dir = Path(out_dir)
    rng = np.random.default_rng(seed)
    date = _as_date(study_date)
    ph = make_tumours(latent_row, rng)
    grid, origin = _grid(shape, spacing)
    variant = (
        int(rng.integers(len(style.descriptions))) if description_variant is None
        else description_variant % len(style.descriptions)
    )
    descr = dict(zip(PHASES, style.descriptions[variant], strict=True))
    # per-centre/scanner variation on top of the vendor scale
    scale = style.intensity_scale * float(rng.uniform(0.85, 1.15))
    start = _dt.datetime.combine(date, _dt.time(9, 0, 0)) + _dt.timedelta(
        seconds=int(rng.integers(0, 8 * 3600))
    )
    inject = start + _dt.timedelta(seconds=float(rng.uniform(45, 90)))
    times = {"pre": start}
    for p, d in PHASE_DELAY_S.items():
        times[p] = inject + _dt.timedelta(seconds=d + float(rng.normal(0, d * 0.06)))
    centre = tuple(float(c) for c in ph.liver_centre)
    entropy = [str(patient_id), str(seed), vendor_key]
    study_uid = generate_uid(entropy_srcs=[*entropy, "study"])
    for_uid = generate_uid(entropy_srcs=[*entropy, "for"])
    info = StudyInfo(
        study_dir=out_dir, patient_id=str(patient_id), vendor=vendor_key, study_uid=study_uid,
        study_date=date.isoformat(), traits=dict(ph.traits),
        tumour_centres=[list(map(float, t.centre)) for t in ph.tumours],
        tumour_radii_mm=[float(t.radius) for t in ph.tumours],
    )
    common = {
        "patient_id": str(patient_id), "study_uid": study_uid, "for_uid": for_uid,
        "date": date, "style": style, "origin": origin, "spacing": spacing,
    }
    pv_datasets = None
    masks = None
    texture = None
    for k, phase in enumerate(PHASES):
        if phase not in phases:
            continue
        if phase == "portal":
            motion = RigidMotion(centre=centre)
        else:
            t = rng.normal(0, motion_mm, 3) * np.array([1.0, 1.0, 2.0])
            motion = RigidMotion(tuple(map(float, t)), float(rng.normal(0, rotation_deg)), centre)
        if texture is None:
            texture = parenchymal_texture(grid.shape, rng)
        img, m = render_phase(ph, grid, phase, motion, rng, with_masks=phase == "portal",
                              texture=texture)
        if phase == "portal":
            masks = m
        counts = _to_counts(img, scale, style.noise_fraction, rng, spacing)
        series_uid = generate_uid(entropy_srcs=[*entropy, phase])
        t_acq = start if strip_timing else times[phase]
        description = "T1 3D FS" if strip_descriptions else descr[phase]
        series_dir = out_dir / "DICOM" / f"S{1000 + 100 * k + int(rng.integers(0, 99)):04d}"
        datasets = write_series(
            series_dir, counts, **common, series_uid=series_uid, series_number=5 + k,
            description=description, protocol=description if strip_descriptions else style.protocol,
            acq_time=t_acq, contrast=(phase != "pre") and not strip_descriptions,
            inject_time=inject, rng=rng,
        )
        if phase == "portal":
            pv_datasets = datasets
        info.series[phase] = {
            "uid": series_uid, "description": description, "number": 5 + k,
            "time": t_acq.strftime("%H%M%S"), "dir": str(series_dir), "n_files": len(datasets),
        }
        info.motion[phase] = {
            "translation": list(motion.translation), "rotation_deg": motion.rotation_deg,
            "centre": list(motion.centre),
        }
    if localiser:
        write_localiser(out_dir / "DICOM" / "S0001", **common, rng=rng,
                        series_uid=generate_uid(entropy_srcs=[*entropy, "loc"]))
    if masks is not None:
        _write_masks(info, masks, origin, spacing, pv_datasets if write_dicom_seg else None,
                     entropy)
    with atomic_write(out_dir / "truth.json") as fh:
        json.dump(info.to_json(), fh, indent=2, ensure_ascii=False)
    log.debug("wrote synthetic study %s (%s) to %s", patient_id, vendor_key, out_dir)
    return info


def _write_masks(info: StudyInfo, masks, origin, spacing, pv_datasets, entropy) -> None:
    import SimpleITK as sitk

    from hccstrat.io.nifti import write_image

    mdir = info.study_dir / "masks"
    for name in ("liver", "tumour"):
        im = sitk.GetImageFromArray(masks[name].astype(np.uint8))
        im.SetSpacing(tuple(float(s) for s in spacing))
        im.SetOrigin(tuple(float(o) for o in origin))
        path = write_image(im, mdir / f"{name}.nii.gz")
        setattr(info, f"{name}_mask", path)
    if pv_datasets is not None:
        info.seg_file = write_seg(mdir / "seg.dcm", pv_datasets, masks, entropy)
