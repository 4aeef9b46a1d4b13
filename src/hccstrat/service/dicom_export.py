"""DICOM SEG and SR of a stored MRI study's results (:mod:`hccstrat.interop.dicom_sr`).

Needs a study preprocessed by the ``preprocess_mri`` job (tumour mask on the
reference-phase grid) and the de-identified DICOM files of the reference phase (the
portal venous series by default), found through the phase's provenance sidecar.

- The SEG (tumour segment on the source series' grid) is written once per mask and
  series under ``<data_dir>/derived/<patient>/study-<id>/dicom/seg.dcm`` and reused,
  so every SR references the SEG the user can download.
- The SR (TID 1500: tumour volume, and the newest PRE score with its model version
  when there is one) is written afresh on each request.

Patient identity in both objects comes from the de-identified source images (the
pseudonym), never from anything else.
"""

from __future__ import annotations

import json
from dataclasses import dataclass
from pathlib import Path

from sqlalchemy import select
from sqlalchemy.orm import Session

from hccstrat.io.atomic import atomic_write, sha256_file
from hccstrat.storage.models import (
    DerivedFeature,
    ImagingStudy,
    ModelVersion,
    Patient,
    Prediction,
)
from hccstrat.storage.repositories import ConflictError

__all__ = ["StudyExport", "reference_series", "study_seg", "study_sr"]

_SEG_UID = "1.2.840.10008.5.1.4.1.1.66.4"
#: type 2 attributes (present, may be empty) that highdicom copies from the source
#: images; de-identification may have removed them
_TYPE2 = ("PatientName", "PatientID", "PatientBirthDate", "PatientSex", "AccessionNumber",
          "StudyID", "StudyDate", "StudyTime", "ReferringPhysicianName")


@dataclass
class StudyExport:
    """What the SEG/SR of a study are built from."""

    folder: Path  # preprocessed folder
    series_uid: str
    datasets: list
    tumour_mask: Path
    out_dir: Path


def reference_series(study: ImagingStudy, out_dir: Path) -> StudyExport:
    """The preprocessed tumour mask and the source DICOM series it was drawn on.

    Raises
    ------
    ConflictError
        The study is not preprocessed, has no tumour mask, or its reference series
        is not among the stored files (HTTP 409).
    """
    import pydicom
    from pydicom.errors import InvalidDicomError

    folder = (study.info or {}).get("preprocessed")
    hint = f"run POST .../studies/{study.id}/preprocess (with a tumour mask or SEG) first"
    if not folder or not (Path(folder) / "preprocess.json").is_file():
        raise ConflictError(f"study {study.id} is not preprocessed: no results to export",
                            hint=hint)
    folder = Path(folder)
    mask = folder / "tumour.nii.gz"
    if not mask.is_file():
        raise ConflictError(f"study {study.id} has no tumour mask", hint=hint)
    summary = json.loads((folder / "preprocess.json").read_text(encoding="utf-8"))
    ref = summary.get("reference_phase", "portal")
    name = str(summary.get("phases", {}).get(ref, ""))
    stem = name[: -len(".nii.gz")] if name.endswith(".nii.gz") else Path(name).stem
    sidecar = folder / f"{stem}.json"
    try:
        series_uid = str(json.loads(sidecar.read_text(encoding="utf-8"))["source"]["series_uid"])
    except (OSError, ValueError, KeyError, TypeError) as err:
        raise ConflictError(f"study {study.id}: the source series of the {ref} phase is not "
                            "recorded", hint="preprocess the study again") from err
    root = Path(study.path)
    files = sorted((root / series_uid).glob("*.dcm")) or sorted(root.rglob("*.dcm"))
    datasets = []
    for f in files:
        try:  # headers first: only the reference series' pixels are read
            head = pydicom.dcmread(str(f), stop_before_pixels=True)
            if (str(head.get("SeriesInstanceUID", "")) != series_uid
                    or head.get("SOPClassUID") == _SEG_UID):
                continue
            ds = pydicom.dcmread(str(f))
        except (InvalidDicomError, OSError, EOFError, ValueError):
            continue
        for kw in _TYPE2:  # in memory only: empty, as the standard allows for type 2
            if kw not in ds:
                setattr(ds, kw, "")
        datasets.append(ds)
    if not datasets:
        raise ConflictError(f"study {study.id}: the DICOM files of the {ref} series are not "
                            "stored", hint="upload the study's DICOM files again and preprocess it")
    return StudyExport(folder, series_uid, datasets, mask, out_dir)


def study_seg(exp: StudyExport) -> Path:
    """The study's DICOM SEG (tumour), written once per mask and source series."""
    from hccstrat.interop.dicom_sr import export_seg, mask_on_series

    seg = exp.out_dir / "seg.dcm"
    key = {"mask_sha256": sha256_file(exp.tumour_mask), "series_uid": exp.series_uid}
    key_file = exp.out_dir / "seg.json"
    if seg.is_file() and key_file.is_file():
        try:
            if json.loads(key_file.read_text(encoding="utf-8")) == key:
                return seg
        except ValueError:
            pass
    tumour = mask_on_series(exp.tumour_mask, exp.datasets)
    export_seg(exp.datasets, {"tumour": tumour}, seg, algorithm=("hccstrat", ""))
    with atomic_write(key_file) as fh:
        json.dump(key, fh)
    return seg


def study_sr(session: Session, patient: Patient, study: ImagingStudy, exp: StudyExport) -> Path:
    """A fresh Comprehensive 3D SR: tumour volume and the newest PRE score, if any."""
    from hccstrat.interop.dicom_sr import export_sr
    from hccstrat.service.figures import tumour_volume_ml

    seg = study_seg(exp)
    vol_row = session.scalar(
        select(DerivedFeature).where(DerivedFeature.patient_id == patient.id,
                                     DerivedFeature.source == f"study:{study.id}",
                                     DerivedFeature.name == "mri_tumour_volume_ml")
        .order_by(DerivedFeature.id.desc()).limit(1))
    volume = (vol_row.value if vol_row is not None and vol_row.value is not None
              else tumour_volume_ml(exp.tumour_mask))
    pred = session.scalar(select(Prediction).where(Prediction.patient_id == patient.id,
                                                   Prediction.kind == "PRE")
                          .order_by(Prediction.id.desc()).limit(1))
    score = model = None
    if pred is not None:
        mv = session.get(ModelVersion, pred.model_version_id)
        score, model = float(pred.score), (str(mv.name), str(mv.version))
    return export_sr(exp.datasets, seg, exp.out_dir / "sr.dcm", tumour_volume_ml=float(volume),
                     pre_score=score, model=model)
