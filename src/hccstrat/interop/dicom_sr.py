"""DICOM SEG and SR export of MRI results (highdicom).

- :func:`export_seg`: a binary Segmentation (liver, tumour) on the geometry of the
  source series (usually the portal venous phase), each frame referencing its source
  image;
- :func:`export_sr`: a Comprehensive 3D SR holding a TID 1500 measurement report: a
  volumetric ROI group for the tumour (referencing the SEG segment and the source
  series) with the tumour volume (mL) and the PRE score (probability of aggressive
  recurrence within 24 months, with its model version as algorithm identification);
- :func:`mask_on_series`: resample a mask (NIfTI/NRRD, any grid in the same frame of
  reference) onto the source series' grid (nearest neighbour) so it can become a SEG.

The PRE score is coded with a private coding scheme (``99HCCSTRAT``, code ``PRE``),
as no standard code exists for it; the volume uses SNOMED CT "Volume" and UCUM ``ml``.
"""

from __future__ import annotations

import math
from collections.abc import Mapping, Sequence
from pathlib import Path
from typing import Any

import numpy as np

from hccstrat.exceptions import DataValidationError, InputFileError, Problem, ValidationReport
from hccstrat.io.atomic import atomic_path

__all__ = [
    "PRE_SCORE_CODE",
    "SEGMENTS",
    "export_seg",
    "export_sr",
    "mask_on_series",
    "read_sr_measurements",
    "sort_series",
]

#: private code of the PRE score in SR content
PRE_SCORE_CODE = ("PRE", "99HCCSTRAT", "PRE score (aggressive recurrence within 24 months)")
#: segment number -> (label, category attribute of codes.SCT, type attribute)
SEGMENTS = {1: ("Liver", "Organ", "Liver"),
            2: ("Tumour", "MorphologicallyAbnormalStructure", "Neoplasm")}


def sort_series(datasets: Sequence[Any]) -> list[Any]:
    """Datasets of one series sorted along the slice normal (ImagePositionPatient)."""
    if not datasets:
        raise InputFileError("no source image given", hint="pass the series' DICOM datasets")
    iop = np.asarray(datasets[0].ImageOrientationPatient, float)
    normal = np.cross(iop[:3], iop[3:])
    return sorted(datasets, key=lambda d: float(np.dot(normal, np.asarray(
        d.ImagePositionPatient, float))))


def _reference_image(datasets: Sequence[Any]):
    import SimpleITK as sitk

    ds = sort_series(datasets)
    iop = np.asarray(ds[0].ImageOrientationPatient, float)
    row, col = iop[:3], iop[3:]
    normal = np.cross(row, col)
    pos = [np.asarray(d.ImagePositionPatient, float) for d in ds]
    dz = float(np.dot(normal, pos[1] - pos[0])) if len(pos) > 1 else float(
        getattr(ds[0], "SliceThickness", 1.0) or 1.0)
    ps = [float(v) for v in ds[0].PixelSpacing]  # row spacing, column spacing
    img = sitk.Image(int(ds[0].Columns), int(ds[0].Rows), len(ds), sitk.sitkUInt8)
    img.SetSpacing((ps[1], ps[0], abs(dz) or 1.0))
    img.SetOrigin(tuple(pos[0]))
    img.SetDirection(tuple(np.column_stack([row, col, normal]).ravel()))
    return img, ds


def mask_on_series(mask, datasets: Sequence[Any]) -> np.ndarray:
    """Resample a mask onto the grid of a DICOM series.

    Parameters
    ----------
    mask : path-like or SimpleITK.Image
        Binary mask in the same frame of reference (any grid).
    datasets : sequence of pydicom.Dataset
        The source series.

    Returns
    -------
    ndarray of bool, shape (n_slices, rows, columns)
        In the order of :func:`sort_series`.
    """
    import SimpleITK as sitk

    img = mask if isinstance(mask, sitk.Image) else sitk.ReadImage(str(mask))
    ref, _ = _reference_image(datasets)
    res = sitk.Resample(img > 0 if img.GetPixelID() != sitk.sitkUInt8 else img, ref,
                        sitk.Transform(), sitk.sitkNearestNeighbor, 0, sitk.sitkUInt8)
    return sitk.GetArrayFromImage(res) > 0


def _algorithm(name: str, version: str):
    from highdicom.content import AlgorithmIdentificationSequence
    from pydicom.sr.codedict import codes

    return AlgorithmIdentificationSequence(name=name, version=version,
                                           family=codes.cid7162.ArtificialIntelligence)


def export_seg(
    datasets: Sequence[Any],
    masks: Mapping[str, np.ndarray],
    out_path: str | Path,
    *,
    algorithm: tuple[str, str] = ("hccstrat", ""),
    series_number: int = 300,
) -> Path:
    """Write a binary DICOM SEG of the liver and tumour masks.

    Parameters
    ----------
    datasets : sequence of pydicom.Dataset
        The source series (any order).
    masks : mapping
        ``"liver"`` and/or ``"tumour"`` -> bool array (n_slices, rows, columns) in the
        order of :func:`sort_series` (as returned by :func:`mask_on_series`).
    out_path : path-like
    algorithm : (name, version)
        Recorded as the segmentation algorithm.
    series_number : int

    Returns
    -------
    Path
    """
    import highdicom as hd
    from pydicom.sr.codedict import codes
    from pydicom.uid import generate_uid

    from hccstrat import __version__

    ds = sort_series(datasets)
    shape = (len(ds), int(ds[0].Rows), int(ds[0].Columns))
    rep = ValidationReport(source="SEG export")
    names = {"liver": 1, "tumour": 2}
    for k, m in masks.items():
        if k not in names:
            rep.add(Problem(None, None, k, "(unknown mask)", "liver or tumour"))
        elif np.shape(m) != shape:
            rep.add(Problem(None, None, k, str(np.shape(m)), f"shape {shape} of the series"))
    if not masks:
        rep.add(Problem(None, None, "masks", "(none)", "a liver and/or tumour mask"))
    if rep:
        raise DataValidationError(rep)
    numbers = sorted(names[k] for k in masks)
    pixels = np.zeros((*shape, len(numbers)), bool)
    for k, m in masks.items():
        pixels[..., numbers.index(names[k])] = np.asarray(m, bool)
    alg = _algorithm(algorithm[0], algorithm[1] or __version__)
    descriptions = []
    for i, n in enumerate(numbers, 1):
        label, cat, typ = SEGMENTS[n]
        descriptions.append(hd.seg.SegmentDescription(
            segment_number=i, segment_label=label,
            segmented_property_category=getattr(codes.SCT, cat),
            segmented_property_type=getattr(codes.SCT, typ),
            algorithm_type=hd.seg.SegmentAlgorithmTypeValues.AUTOMATIC,
            algorithm_identification=alg, tracking_uid=generate_uid(), tracking_id=label))
    seg = hd.seg.Segmentation(
        source_images=ds, pixel_array=pixels,
        segmentation_type=hd.seg.SegmentationTypeValues.BINARY,
        segment_descriptions=descriptions, series_instance_uid=generate_uid(),
        series_number=series_number, sop_instance_uid=generate_uid(), instance_number=1,
        manufacturer="hccstrat", manufacturer_model_name="hccstrat MRI pipeline",
        software_versions=__version__, device_serial_number="0",
        series_description="hccstrat liver/tumour segmentation", omit_empty_frames=False)
    out_path = Path(out_path)
    with atomic_path(out_path) as tmp:
        seg.save_as(tmp)
    return out_path


def export_sr(
    datasets: Sequence[Any],
    seg,
    out_path: str | Path,
    *,
    tumour_volume_ml: float,
    pre_score: float | None = None,
    model: tuple[str, str] | None = None,
    series_number: int = 301,
) -> Path:
    """Write a Comprehensive 3D SR (TID 1500) with the tumour volume and the PRE score.

    Parameters
    ----------
    datasets : sequence of pydicom.Dataset
        The source series the SEG was made on.
    seg : pydicom.Dataset or path-like
        The SEG written by :func:`export_seg` (must hold the tumour segment).
    out_path : path-like
    tumour_volume_ml : float
    pre_score : float, optional
        PRE score in [0, 1].
    model : (name, version), optional
        The model that produced the score (algorithm identification).
    series_number : int
    """
    import highdicom as hd
    import pydicom
    from pydicom.sr.codedict import codes
    from pydicom.uid import generate_uid

    if isinstance(seg, (str, Path)):
        seg = pydicom.dcmread(str(seg))
    rep = ValidationReport(source="SR export")
    if pre_score is not None and not 0.0 <= float(pre_score) <= 1.0:
        rep.add(Problem(None, None, "pre_score", str(pre_score), "a probability in [0, 1]"))
    if not (math.isfinite(float(tumour_volume_ml)) and float(tumour_volume_ml) >= 0.0):
        rep.add(Problem(None, None, "tumour_volume_ml", str(tumour_volume_ml),
                        "a finite volume >= 0 mL"))
    if rep:
        raise DataValidationError(rep)
    tumour_no = next((int(s.SegmentNumber) for s in seg.SegmentSequence
                      if str(s.SegmentLabel) == "Tumour"), None)
    if tumour_no is None:
        raise InputFileError("the SEG holds no 'Tumour' segment",
                             hint="export the SEG with a tumour mask first")
    ds = sort_series(datasets)
    alg = hd.sr.AlgorithmIdentification(name=model[0], version=model[1]) if model else None
    measurements = [hd.sr.Measurement(
        name=codes.SCT.Volume, value=float(tumour_volume_ml),
        unit=hd.sr.CodedConcept("ml", "UCUM", "milliliter"))]
    if pre_score is not None:
        measurements.append(hd.sr.Measurement(
            name=hd.sr.CodedConcept(*PRE_SCORE_CODE), value=float(pre_score),
            unit=hd.sr.CodedConcept("1", "UCUM", "no units"), algorithm_id=alg))
    group = hd.sr.VolumetricROIMeasurementsAndQualitativeEvaluations(
        tracking_identifier=hd.sr.TrackingIdentifier(uid=generate_uid(), identifier="Tumour"),
        referenced_segment=hd.sr.ReferencedSegment(
            sop_class_uid=seg.SOPClassUID, sop_instance_uid=seg.SOPInstanceUID,
            segment_number=tumour_no,
            source_series=hd.sr.SourceSeriesForSegmentation(ds[0].SeriesInstanceUID)),
        finding_type=codes.SCT.Neoplasm, measurements=measurements)
    observer = hd.sr.ObserverContext(
        observer_type=codes.DCM.Device,
        observer_identifying_attributes=hd.sr.DeviceObserverIdentifyingAttributes(
            uid=generate_uid(), name="hccstrat"))
    report = hd.sr.MeasurementReport(
        observation_context=hd.sr.ObservationContext(observer_device_context=observer),
        procedure_reported=hd.sr.CodedConcept("76498-0", "LN", "MR Abdomen"),
        imaging_measurements=[group])
    sr = hd.sr.Comprehensive3DSR(
        evidence=[*ds, seg], content=report[0], series_instance_uid=generate_uid(),
        series_number=series_number, sop_instance_uid=generate_uid(), instance_number=1,
        manufacturer="hccstrat", series_description="hccstrat MRI measurement report")
    out_path = Path(out_path)
    with atomic_path(out_path) as tmp:
        sr.save_as(tmp)
    return out_path


def read_sr_measurements(path: str | Path) -> dict[str, Any]:
    """Measurements of an SR written by :func:`export_sr` (for checks and imports).

    Returns
    -------
    dict
        ``tumour_volume_ml``, ``pre_score`` (or None), ``model`` (algorithm name and
        version, or None), ``referenced_series_uid``, ``referenced_seg_uid``.
    """
    import pydicom

    sr = pydicom.dcmread(str(path))
    out: dict[str, Any] = {"tumour_volume_ml": None, "pre_score": None, "model": None,
                           "referenced_series_uid": None, "referenced_seg_uid": None}

    def walk(items):
        for it in items:
            name = it.ConceptNameCodeSequence[0] if "ConceptNameCodeSequence" in it else None
            code = (str(name.CodeValue), str(name.CodingSchemeDesignator)) if name else None
            if it.ValueType == "NUM" and code == ("118565006", "SCT"):
                out["tumour_volume_ml"] = float(it.MeasuredValueSequence[0].NumericValue)
            elif it.ValueType == "NUM" and code == PRE_SCORE_CODE[:2]:
                out["pre_score"] = float(it.MeasuredValueSequence[0].NumericValue)
                walk(getattr(it, "ContentSequence", []))
            elif it.ValueType == "TEXT" and code == ("111001", "DCM"):
                out["model"] = [str(it.TextValue), out["model"][1] if out["model"] else None]
            elif it.ValueType == "TEXT" and code == ("111003", "DCM"):
                out["model"] = [out["model"][0] if out["model"] else None, str(it.TextValue)]
            elif it.ValueType == "UIDREF" and code == ("112040", "DCM"):
                pass  # tracking uid
            elif it.ValueType == "UIDREF" and code == ("121232", "DCM"):
                out["referenced_series_uid"] = str(it.UID)
            elif it.ValueType == "IMAGE" and "ReferencedSOPSequence" in it:
                out["referenced_seg_uid"] = str(it.ReferencedSOPSequence[0]
                                                .ReferencedSOPInstanceUID)
            if "ContentSequence" in it and it.ValueType != "NUM":
                walk(it.ContentSequence)

    walk(sr.ContentSequence)
    if out["model"] is not None:
        out["model"] = tuple(out["model"])
    return out
