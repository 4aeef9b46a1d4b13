"""Quality control of a 4-phase liver MRI study.

Each check returns ``pass``, ``warn`` or ``fail`` with the number it measured and the
threshold it used. A study is *acceptable* (the trial's "4-phase MRI within 1 month
with acceptable quality" criterion) when no check fails.

Checks
------
``phases_present``      the four dynamic phases were identified (fail if one is missing)
``phase_confidence``    lowest identification confidence (warn below 0.7)
``study_age_days``      days from the MRI to the reference date (fail > 31 or after it)
``slice_spacing``       largest relative deviation of slice gaps from the median
                        (warn > 1 %, fail > 10 %: gaps, overlaps, missing slices)
``n_slices``            fewest slices over phases (fail < 20, warn < 30)
``orientation``         largest angle between phase slice normals, and obliquity
                        (warn > 1°, fail > 10°)
``geometry_tags``       PixelSpacing/positions present in every phase series
``unreadable_files``    truncated or unreadable files in the study folders
``snr``                 lowest signal-to-noise ratio over phases (warn < 10, fail < 5);
                        noise from the Rayleigh-distributed air background
``saturation``          largest fraction of body voxels at the maximum value
                        (warn > 0.5 %, fail > 2 %)
``misregistration``     residual misalignment AFTER registration to the portal venous
                        phase: for each registered phase, the shift (mm, sub-voxel) that
                        would further maximise the normalised mutual information inside
                        the dilated liver (or body) on the 3 mm working grid
                        (:func:`hccstrat.radiology.register.residual_misalignment`);
                        largest over phases (warn > 2.5 mm, fail > 5 mm). A registered
                        phase measures ~0.1–1 mm; 2 mm of residual offset measures ~3 mm.
``motion``              displacement at the liver centre found by the registration
                        (patient motion between phases; warn > 10 mm, fail > 20 mm)
"""

from __future__ import annotations

import datetime as _dt
from collections.abc import Mapping
from dataclasses import asdict, dataclass, field
from typing import Literal

import numpy as np
import pandas as pd

__all__ = ["QCCheck", "QCReport", "QCThresholds", "qc_study", "snr_of"]

Status = Literal["pass", "warn", "fail"]
DYNAMIC = ("pre", "arterial", "portal", "delayed")


@dataclass(frozen=True)
class QCThresholds:
    """Thresholds of the QC checks (defaults documented in the module docstring)."""

    max_age_days: int = 31
    min_phase_confidence: float = 0.7
    spacing_warn: float = 0.01
    spacing_fail: float = 0.10
    min_slices_fail: int = 20
    min_slices_warn: int = 30
    angle_warn_deg: float = 1.0
    angle_fail_deg: float = 10.0
    snr_warn: float = 10.0
    snr_fail: float = 5.0
    saturation_warn: float = 0.005
    saturation_fail: float = 0.02
    misreg_warn_mm: float = 2.5
    misreg_fail_mm: float = 5.0
    motion_warn_mm: float = 10.0
    motion_fail_mm: float = 20.0


@dataclass
class QCCheck:
    """Result of one check."""

    name: str
    status: Status
    value: float | str | None
    threshold: str
    message: str


@dataclass
class QCReport:
    """All checks of one study; ``acceptable`` when none failed."""

    study_uid: str
    patient_id: str
    checks: list[QCCheck] = field(default_factory=list)

    @property
    def acceptable(self) -> bool:
        return all(c.status != "fail" for c in self.checks)

    @property
    def verdict(self) -> str:
        if not self.acceptable:
            return "fail"
        return "warn" if any(c.status == "warn" for c in self.checks) else "pass"

    def check(self, name: str) -> QCCheck:
        """The check called ``name``."""
        return next(c for c in self.checks if c.name == name)

    def failed(self) -> list[QCCheck]:
        return [c for c in self.checks if c.status == "fail"]

    def to_frame(self) -> pd.DataFrame:
        return pd.DataFrame([asdict(c) for c in self.checks])

    def to_dict(self) -> dict:
        return {"study_uid": self.study_uid, "patient_id": self.patient_id,
                "acceptable": self.acceptable, "verdict": self.verdict,
                "checks": [asdict(c) for c in self.checks]}

    def summary_row(self) -> dict:
        """One row for a multi-study QC summary table."""
        row = {"patient_id": self.patient_id, "verdict": self.verdict}
        for c in self.checks:
            row[c.name] = c.status if c.value is None or isinstance(c.value, str) else (
                f"{c.status} ({c.value:.3g})")
        return row


def _grade(value: float, warn: float, fail: float, *, higher_is_bad: bool = True) -> Status:
    if higher_is_bad:
        return "fail" if value > fail else "warn" if value > warn else "pass"
    return "fail" if value < fail else "warn" if value < warn else "pass"


def snr_of(img) -> float:
    """SNR = mean body signal / noise σ, σ from the air background (Rayleigh mean / 1.2533).

    Returns ``nan`` when the background is zero-filled (noise not measurable).
    """

    arr = _sample(img)
    hi = float(np.percentile(arr, 99))
    body = arr > 0.15 * hi
    air = arr < 0.05 * hi
    if body.sum() < 100 or air.sum() < 100:
        return float("nan")
    bg = arr[air]
    bg = bg[bg > 0]
    if bg.size < 100:
        return float("nan")
    sigma = float(bg.mean()) / 1.2533
    return float(arr[body].mean() / sigma) if sigma > 0 else float("nan")


def _sample(img) -> np.ndarray:
    """Every other voxel along each axis (1/8): enough for percentiles and means."""
    import SimpleITK as sitk

    arr = sitk.GetArrayViewFromImage(img)
    return np.asarray(arr[::2, ::2, ::2], dtype=np.float32)


def _saturation(img) -> float:
    import SimpleITK as sitk

    arr = sitk.GetArrayViewFromImage(img)
    mx = arr.max()
    sub = _sample(img)
    body_frac = float((sub > 0.15 * np.percentile(sub, 99)).mean())
    n = max(int(body_frac * arr.size), 1)
    return float((arr == mx).sum() - 1) / n if mx > 0 else 0.0


def qc_study(
    study,
    *,
    reference_date: _dt.date | str | None = None,
    volumes: Mapping | None = None,
    registrations: Mapping | None = None,
    thresholds: QCThresholds | None = None,
    required_phases: tuple[str, ...] = DYNAMIC,
) -> QCReport:
    """Run every QC check on a scanned study.

    Parameters
    ----------
    study : hccstrat.io.dicom.Study
        Study from :func:`hccstrat.io.dicom.scan_folder` (phases identified).
    reference_date : date or str, optional
        Date the MRI must precede by at most ``max_age_days`` (e.g. enrolment or
        planned surgery). Without it the age check warns.
    volumes : mapping, optional
        Phase → SimpleITK image, to avoid reading the pixels again; read when absent.
    registrations : mapping, optional
        Phase → :class:`hccstrat.radiology.register.RegistrationResult` (moving phase to
        portal venous); the misregistration check is skipped (warn) without it.
    thresholds : QCThresholds, optional
    required_phases : tuple of str

    Returns
    -------
    QCReport
    """
    from hccstrat.io.dicom import load_volume

    th = thresholds or QCThresholds()
    rep = QCReport(study.uid, study.patient_id)
    add = rep.checks.append
    phases = study.phases
    missing = [p for p in required_phases if p not in phases]
    add(QCCheck("phases_present", "fail" if missing else "pass",
                float(len(required_phases) - len(missing)), f"all of {', '.join(required_phases)}",
                f"missing: {', '.join(missing)}" if missing else "all phases identified"))
    if phases:
        low = min(phases.values(), key=lambda s: s.phase_confidence)
        conf = low.phase_confidence
        add(QCCheck("phase_confidence", "warn" if conf < th.min_phase_confidence else "pass",
                    conf, f">= {th.min_phase_confidence}",
                    f"lowest: {low.phase} series {low.number} ({low.phase_reason})"))
    # study age
    if reference_date is None or study.study_date is None:
        add(QCCheck("study_age_days", "warn", None, f"<= {th.max_age_days}",
                    "no reference date given" if reference_date is None else "StudyDate missing"))
    else:
        ref = pd.Timestamp(reference_date).date()
        age = (ref - study.study_date).days
        status: Status = "fail" if age > th.max_age_days or age < 0 else "pass"
        msg = ("MRI after the reference date" if age < 0 else
               f"MRI {age} days before {ref.isoformat()}")
        add(QCCheck("study_age_days", status, float(age), f"0..{th.max_age_days}", msg))
    present = [phases[p] for p in required_phases if p in phases]
    # geometry tags
    geo = [f"{s.phase}: {'; '.join(s.problems)}" for s in present if s.problems]
    add(QCCheck("geometry_tags", "fail" if geo else "pass", float(len(geo)), "0 problems",
                "; ".join(geo) or "complete"))
    # slice spacing
    worst, where = 0.0, ""
    for s in present:
        gaps = s.slice_spacings()
        if gaps.size:
            med = float(np.median(gaps))
            dev = float(np.max(np.abs(gaps - med)) / med) if med > 0 else 1.0
            if dev >= worst:
                worst, where = dev, f"{s.phase} (median gap {med:.2f} mm)"
    add(QCCheck("slice_spacing", _grade(worst, th.spacing_warn, th.spacing_fail), worst,
                f"<= {th.spacing_fail:.0%}", f"largest relative gap deviation in {where}"
                if where else "no slices"))
    # number of slices
    if present:
        n = min(s.n_slices for s in present)
        add(QCCheck("n_slices", _grade(n, th.min_slices_warn, th.min_slices_fail,
                                       higher_is_bad=False), float(n),
                    f">= {th.min_slices_fail}", "fewest slices over phases"))
        # orientation
        normals = [s.normal for s in present if s.normal is not None]
        ang = 0.0
        for a in normals:
            for b in normals:
                ang = max(ang, float(np.degrees(np.arccos(np.clip(abs(a @ b), -1, 1)))))
        oblique = max(float(np.degrees(np.arccos(min(1.0, abs(n[2]))))) for n in normals) \
            if normals else 0.0
        status = _grade(ang, th.angle_warn_deg, th.angle_fail_deg)
        if status == "pass" and oblique > 30:
            status = "warn"
        add(QCCheck("orientation", status, ang, f"<= {th.angle_fail_deg}°",
                    f"max angle between phases {ang:.1f}°, obliquity to axial {oblique:.0f}°"))
    # unreadable files
    bad = [k for k in study.skipped if k.code == "HCC-MRI-001"]
    dirs = {f.path.parent for s in present for f in s.frames}
    # a broken DICOM beside a phase's slices fails the study (a slice may be lost); a
    # file that is no DICOM at all (notes, a scanner's thumbnail index) only warns
    in_phase = [k for k in bad if k.path.parent in dirs and k.reason != "not a DICOM file"]
    add(QCCheck("unreadable_files", "fail" if in_phase else "warn" if bad else "pass",
                float(len(bad)), "0", "; ".join(f"{k.path.name}: {k.reason}" for k in bad[:5])
                or "none"))
    # pixel-based checks
    vols = dict(volumes or {})
    snrs, sats = {}, {}
    for s in present:
        if s.phase not in vols:
            try:
                vols[s.phase] = load_volume(s)
            except Exception:
                continue
        snrs[s.phase] = snr_of(vols[s.phase])
        sats[s.phase] = _saturation(vols[s.phase])
    finite = {k: v for k, v in snrs.items() if np.isfinite(v)}
    if finite:
        ph, val = min(finite.items(), key=lambda kv: kv[1])
        add(QCCheck("snr", _grade(val, th.snr_warn, th.snr_fail, higher_is_bad=False), val,
                    f">= {th.snr_fail}", f"lowest in {ph}"))
    else:
        add(QCCheck("snr", "warn", None, f">= {th.snr_fail}",
                    "not measurable (no readable phase or zero-filled background)"))
    if sats:
        ph, val = max(sats.items(), key=lambda kv: kv[1])
        add(QCCheck("saturation", _grade(val, th.saturation_warn, th.saturation_fail), val,
                    f"<= {th.saturation_fail:.1%}", f"highest in {ph}"))
    if registrations:
        resid = {p: r.residual.residual_mm for p, r in registrations.items()
                 if getattr(r, "residual", None) is not None
                 and np.isfinite(r.residual.residual_mm)}
        if resid:
            ph, val = max(resid.items(), key=lambda kv: kv[1])
            rc = registrations[ph].residual
            add(QCCheck("misregistration", _grade(val, th.misreg_warn_mm, th.misreg_fail_mm),
                        val, f"<= {th.misreg_fail_mm} mm",
                        f"largest residual misalignment after registration: {ph} "
                        f"(shift x/y/z {', '.join(f'{v:.1f}' for v in rc.shift_mm)} mm, "
                        f"NMI {rc.nmi:.3f})"))
        else:
            add(QCCheck("misregistration", "warn", None, f"<= {th.misreg_fail_mm} mm",
                        "residual not measurable (no overlap between phases)"))
        ph, r = max(registrations.items(), key=lambda kv: kv[1].displacement_mm)
        add(QCCheck("motion", _grade(r.displacement_mm, th.motion_warn_mm, th.motion_fail_mm),
                    r.displacement_mm, f"<= {th.motion_fail_mm} mm",
                    f"largest displacement at the liver centre corrected by registration: "
                    f"{ph}"))
    else:
        add(QCCheck("misregistration", "warn", None, f"<= {th.misreg_fail_mm} mm",
                    "not assessed (no registration run)"))
    return rep
