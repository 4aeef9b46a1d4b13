"""Study preprocessing: resample, register to portal venous, normalise, ROI, crop.

Derivatives are cached as NIfTI with a JSON provenance sidecar each, under
``out_dir``::

    <phase>.nii               registered, normalised phase on the reference grid
                              (uncompressed by default: gzip of float volumes costs
                              ~0.5 s CPU each; ``compress_phases=True`` → .nii.gz)
    liver.nii.gz, tumour.nii.gz
    crop/<phase>.nii.gz       tumour crop with a peritumoral margin
    crop/tumour.nii.gz, crop/liver.nii.gz
    preprocess.json           summary: phases, transforms, metrics, ROI source, QC

The reference grid is the portal venous series resampled to ``spacing`` (or kept
as is). Geometry (spacing, origin, direction) is kept throughout.
"""

from __future__ import annotations

import datetime as _dt
import json
import logging
import time
from dataclasses import dataclass, field
from pathlib import Path

from hccstrat.io.atomic import atomic_write
from hccstrat.io.nifti import write_image, write_sidecar

__all__ = ["PreprocessConfig", "PreprocessedStudy", "find_masks", "load_preprocessed",
           "preprocess_study"]

log = logging.getLogger(__name__)
DYNAMIC = ("pre", "arterial", "portal", "delayed")


@dataclass(frozen=True)
class PreprocessConfig:
    """Options of :func:`preprocess_study`.

    ``working_spacing_mm`` is the finest registration level (block-averaged copies;
    a coarser level at twice that spacing runs first); ``residual_spacing_mm`` the
    grid of the post-registration misalignment check; ``compress_phases`` writes the
    full-size registered phases as ``.nii.gz`` instead of ``.nii``.
    """

    spacing: tuple[float, float, float] | None = None
    reference_phase: str = "portal"
    register: bool = True
    affine: bool = True
    n4: bool = False
    normalisation: str = "pre_liver_ratio"
    crop_margin_mm: float = 15.0
    working_spacing_mm: float = 6.0
    residual_spacing_mm: float = 3.0
    compress_phases: bool = False
    seed: int = 0


@dataclass
class PreprocessedStudy:
    """Paths of a preprocessed study and its summary."""

    out_dir: Path
    phases: dict[str, Path] = field(default_factory=dict)
    tumour: Path | None = None
    liver: Path | None = None
    crop: dict[str, Path] = field(default_factory=dict)
    summary: dict = field(default_factory=dict)
    #: phase → the volume read from DICOM (not saved; lets QC skip a second read)
    volumes: dict = field(default_factory=dict, repr=False)
    #: step → {"cpu_s", "wall_s"} of this run (also in ``summary["timing"]``)
    timing: dict[str, dict[str, float]] = field(default_factory=dict)


class _Clock:
    """CPU (all threads of the process) and wall seconds per step."""

    def __init__(self) -> None:
        self.steps: dict[str, dict[str, float]] = {}
        self._c, self._w = time.process_time(), time.perf_counter()

    def lap(self, name: str) -> None:
        c, w = time.process_time(), time.perf_counter()
        step = self.steps.setdefault(name, {"cpu_s": 0.0, "wall_s": 0.0})
        step["cpu_s"] += c - self._c
        step["wall_s"] += w - self._w
        self._c, self._w = c, w


def find_masks(study_dir: str | Path, study=None) -> dict[str, Path]:
    """Mask files for a study: ``masks/{tumour,liver}.nii.gz|.nrrd`` or a SEG of the study."""
    study_dir = Path(study_dir)
    found: dict[str, Path] = {}
    for name in ("tumour", "liver"):
        for cand in (study_dir / "masks" / f"{name}.nii.gz", study_dir / "masks" /
                     f"{name}.nrrd", study_dir / f"{name}.nii.gz"):
            if cand.is_file():
                found[name] = cand
                break
    if study is not None and study.seg_files:
        for name in ("tumour", "liver"):
            found.setdefault(name, study.seg_files[0])
    return found


def _provenance(**kw) -> dict:
    from hccstrat import __version__

    return {"hccstrat_version": __version__,
            "created": _dt.datetime.now().isoformat(timespec="seconds"), **kw}


def preprocess_study(
    study,
    out_dir: str | Path,
    *,
    config: PreprocessConfig | None = None,
    tumour_mask: str | Path | None = None,
    liver_mask: str | Path | None = None,
    seed_mm=None,
    box_mm=None,
    volumes: dict | None = None,
) -> PreprocessedStudy:
    """Preprocess one scanned study (phases identified) and cache the derivatives.

    Parameters
    ----------
    study : hccstrat.io.dicom.Study
    out_dir : path-like
    config : PreprocessConfig, optional
    tumour_mask, liver_mask : path-like, optional
        NIfTI/NRRD/DICOM SEG masks (any grid in the same frame of reference).
    seed_mm, box_mm : optional
        Documented ROI fallbacks when there is no tumour mask
        (:func:`hccstrat.radiology.roi.load_roi`).
    volumes : dict, optional
        Phase → SimpleITK image already loaded (saves reading the DICOM again).

    Returns
    -------
    PreprocessedStudy
    """
    import SimpleITK as sitk

    from hccstrat.io.dicom import MissingPhaseError, load_volume
    from hccstrat.radiology import roi as R
    from hccstrat.radiology.normalise import n4_correct, normalise_phases
    from hccstrat.radiology.register import (
        downsample,
        register_phase,
        resample_to,
        residual_misalignment,
    )
    from hccstrat.radiology.resample import resample_to_spacing

    cfg = config or PreprocessConfig()
    out_dir = Path(out_dir)
    t0 = time.perf_counter()
    clock = _Clock()
    phases = {p: s for p, s in study.phases.items() if p in (*DYNAMIC, "hepatobiliary")}
    ref_name = cfg.reference_phase
    if ref_name not in phases:
        raise MissingPhaseError(
            f"patient {study.patient_id}: reference phase '{ref_name}' not identified "
            f"(found {', '.join(phases) or 'none'})",
            hint="check the ingest report; give a phase mapping file for unnamed series")
    vols = dict(volumes or {})
    for p, s in phases.items():
        if p not in vols:
            vols[p] = load_volume(s)
    vols = {p: sitk.Cast(v, sitk.sitkFloat32) for p, v in vols.items()}
    loaded = dict(vols)
    clock.lap("load")
    if cfg.n4:
        vols = {p: n4_correct(v) for p, v in vols.items()}
    reference = resample_to_spacing(vols[ref_name], cfg.spacing)
    liver = (R.read_mask(liver_mask, reference, label="liver") if liver_mask is not None
             else None)
    tumour, roi_how = R.load_roi(reference, mask_path=tumour_mask, label="tumour",
                                 seed_mm=seed_mm, box_mm=box_mm, image_for_growing=reference)
    tumour = R.largest_component(tumour)
    clock.lap("roi")
    reg_info, registered, regs = {}, {}, {}
    fixed_mask = None
    fixed_small = downsample(vols[ref_name], cfg.working_spacing_mm) if cfg.register else None
    if liver is not None:
        # dilate on the working grid (cheap) rather than at full resolution
        small_liver = sitk.Resample(liver, fixed_small if fixed_small is not None else reference,
                                    sitk.Transform(),
                                    sitk.sitkNearestNeighbor, 0)
        fixed_mask = sitk.BinaryDilate(small_liver, [2, 2, 1])
    check_grid, check_mask = None, None
    if cfg.register:
        check_grid = downsample(vols[ref_name], cfg.residual_spacing_mm)
        if fixed_mask is not None:
            check_mask = sitk.Resample(fixed_mask, check_grid, sitk.Transform(),
                                       sitk.sitkNearestNeighbor, 0)
    for p, v in vols.items():
        if p == ref_name:
            registered[p] = reference
            continue
        if cfg.register:
            r = register_phase(vols[ref_name], v, fixed_mask=fixed_mask, affine=cfg.affine,
                               working_spacing_mm=cfg.working_spacing_mm, seed=cfg.seed,
                               fixed_small=fixed_small)
            clock.lap("register")
            r.residual = residual_misalignment(check_grid, v, r.transform, check_mask)
            clock.lap("residual_check")
            regs[p] = r
            reg_info[p] = r.to_dict()
            registered[p] = resample_to(v, reference, r.transform)
        else:
            registered[p] = resample_to(v, reference)
        clock.lap("resample")
    normed, norm_params = normalise_phases(registered, liver, method=cfg.normalisation)
    clock.lap("normalise")
    res = PreprocessedStudy(out_dir=out_dir)
    src = {p: {"series_uid": s.uid, "series_number": s.number, "description": s.description,
               "phase_confidence": s.phase_confidence, "phase_reason": s.phase_reason}
           for p, s in phases.items()}
    for p, img in normed.items():
        ext = ".nii.gz" if cfg.compress_phases else ".nii"
        path = write_image(img, out_dir / f"{p}{ext}")
        write_sidecar(path, _provenance(
            step="register+normalise", phase=p, source=src[p], reference_phase=ref_name,
            registration=reg_info.get(p), normalisation=norm_params,
            spacing=img.GetSpacing(), origin=img.GetOrigin(), direction=img.GetDirection()))
        res.phases[p] = path
    res.tumour = write_image(tumour, out_dir / "tumour.nii.gz")
    write_sidecar(res.tumour, _provenance(step="roi", source=roi_how))
    if liver is not None:
        res.liver = write_image(liver, out_dir / "liver.nii.gz")
        write_sidecar(res.liver, _provenance(step="roi", source=str(liver_mask)))
    box = R.crop_box(tumour, cfg.crop_margin_mm)
    for p, img in normed.items():
        res.crop[p] = write_image(R.crop_to_box(img, box), out_dir / "crop" / f"{p}.nii.gz")
    res.crop["tumour"] = write_image(R.crop_to_box(tumour, box), out_dir / "crop" /
                                     "tumour.nii.gz")
    if liver is not None:
        res.crop["liver"] = write_image(R.crop_to_box(liver, box), out_dir / "crop" /
                                        "liver.nii.gz")
    clock.lap("write")
    res.timing = clock.steps
    res.volumes = loaded
    res.summary = _provenance(
        patient_id=study.patient_id, study_uid=study.uid, timing=clock.steps,
        study_date=None if study.study_date is None else study.study_date.isoformat(),
        phases={p: str(v.name) for p, v in res.phases.items()}, reference_phase=ref_name,
        config=cfg.__dict__, roi=roi_how, registration=reg_info, normalisation=norm_params,
        crop_box={"start": box[0], "size": box[1]}, seconds=time.perf_counter() - t0,
        motion_mm={p: r.displacement_mm for p, r in regs.items()},
        residual_misalignment_mm={p: r.residual.residual_mm for p, r in regs.items()
                                  if r.residual is not None},
    )
    # every file written, with its size: a resumed batch redoes a study missing one
    written = [*res.phases.values(), res.tumour, res.liver, *res.crop.values()]
    res.summary["files"] = {str(f.relative_to(out_dir)): f.stat().st_size
                            for f in written if f is not None}
    with atomic_write(out_dir / "preprocess.json") as fh:
        json.dump(res.summary, fh, indent=2, ensure_ascii=False, default=str)
    res.summary["_registrations"] = regs
    return res


def load_preprocessed(out_dir: str | Path) -> PreprocessedStudy:
    """Paths of a study preprocessed earlier (reads ``preprocess.json``)."""
    from hccstrat.exceptions import InputFileError

    out_dir = Path(out_dir)
    meta = out_dir / "preprocess.json"
    if not meta.is_file():
        raise InputFileError(f"no preprocessed study in {out_dir} (preprocess.json missing)",
                             hint="run `hccstrat mri preprocess` first")
    summary = json.loads(meta.read_text(encoding="utf-8"))
    res = PreprocessedStudy(out_dir=out_dir, summary=summary)
    res.phases = {p: out_dir / name for p, name in summary["phases"].items()}
    res.tumour = out_dir / "tumour.nii.gz"
    res.liver = out_dir / "liver.nii.gz" if (out_dir / "liver.nii.gz").is_file() else None
    crop = out_dir / "crop"
    res.crop = {f.name.split(".")[0]: f for f in sorted(crop.glob("*.nii.gz"))}
    return res
