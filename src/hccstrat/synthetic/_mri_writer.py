"""DICOM writing for the synthetic MRI generator (series, localiser, SEG)."""

from __future__ import annotations

import datetime as _dt
from pathlib import Path

import numpy as np

from hccstrat.io.atomic import atomic_path

__all__ = ["write_localiser", "write_seg", "write_series"]

MR_IMAGE_STORAGE = "1.2.840.10008.5.1.4.1.1.4"


def _base(patient_id, study_uid, for_uid, date, style, series_uid, series_number, description,
          protocol, acq_time: _dt.datetime):
    from pydicom.dataset import Dataset

    ds = Dataset()
    ds.SpecificCharacterSet = style.charset
    ds.SOPClassUID = MR_IMAGE_STORAGE
    ds.Modality = "MR"
    ds.PatientID = patient_id
    ds.PatientName = f"SYNTH^{patient_id}"
    ds.PatientSex = "O"
    ds.PatientBirthDate = ""
    ds.StudyInstanceUID = study_uid
    ds.SeriesInstanceUID = series_uid
    ds.FrameOfReferenceUID = for_uid
    ds.StudyID = "1"
    ds.AccessionNumber = ""
    ds.ReferringPhysicianName = ""
    ds.StudyDate = date.strftime("%Y%m%d")
    ds.StudyTime = "080000"
    ds.StudyDescription = "MR LIVER DYNAMIC" if style.charset == "ISO_IR 100" else "肝脏 MR 增强"
    ds.SeriesDate = ds.AcquisitionDate = ds.ContentDate = ds.StudyDate
    t = acq_time.strftime("%H%M%S.%f")[:10]
    ds.SeriesTime = ds.AcquisitionTime = ds.ContentTime = t
    ds.SeriesNumber = series_number
    ds.SeriesDescription = description
    ds.ProtocolName = protocol
    ds.Manufacturer = style.manufacturer
    ds.ManufacturerModelName = style.model
    ds.MagneticFieldStrength = style.field_strength
    ds.InstitutionName = "hccstrat synthetic"
    ds.BodyPartExamined = "LIVER"
    ds.PatientPosition = "FFS"
    ds.ScanningSequence = "GR"
    ds.SequenceVariant = ["SP", "SS"]
    ds.ScanOptions = "FS"
    ds.MRAcquisitionType = "3D"
    ds.RepetitionTime = 3.9
    ds.EchoTime = 1.8
    ds.EchoNumbers = 1
    ds.FlipAngle = 12
    ds.SamplesPerPixel = 1
    ds.PhotometricInterpretation = "MONOCHROME2"
    ds.BitsAllocated = 16
    ds.BitsStored = 12
    ds.HighBit = 11
    ds.PixelRepresentation = 0
    return ds


def _save(ds, path: Path) -> None:
    from pydicom.dataset import FileMetaDataset
    from pydicom.uid import PYDICOM_IMPLEMENTATION_UID, ExplicitVRLittleEndian

    meta = FileMetaDataset()
    meta.MediaStorageSOPClassUID = ds.SOPClassUID
    meta.MediaStorageSOPInstanceUID = ds.SOPInstanceUID
    meta.TransferSyntaxUID = ExplicitVRLittleEndian
    meta.ImplementationClassUID = PYDICOM_IMPLEMENTATION_UID
    ds.file_meta = meta
    with atomic_path(path) as tmp:
        ds.save_as(tmp, enforce_file_format=True)


def write_series(
    series_dir: Path,
    counts: np.ndarray,
    *,
    patient_id: str,
    study_uid: str,
    for_uid: str,
    date: _dt.date,
    style,
    origin,
    spacing,
    series_uid: str,
    series_number: int,
    description: str,
    protocol: str,
    acq_time: _dt.datetime,
    contrast: bool,
    inject_time: _dt.datetime,
    rng: np.random.Generator,
) -> list:
    """Write an axial volume ``counts[z, y, x]`` as one file per slice.

    Returns the datasets in slice (z) order.
    """
    from pydicom.dataset import Dataset
    from pydicom.uid import generate_uid

    nz, ny, nx = counts.shape
    names = rng.permutation(nz)
    # slice-invariant attributes once; every slice gets a copy of the element dict and
    # only adds its own (never-shared) elements
    tpl = _base(patient_id, study_uid, for_uid, date, style, series_uid, series_number,
                description, protocol, acq_time)
    tpl.ImageType = ["ORIGINAL", "PRIMARY", "M", "ND"]
    tpl.ImageOrientationPatient = [1, 0, 0, 0, 1, 0]
    tpl.PixelSpacing = [float(spacing[1]), float(spacing[0])]  # row spacing, column spacing
    tpl.SliceThickness = float(spacing[2])
    tpl.SpacingBetweenSlices = float(spacing[2])
    tpl.Rows, tpl.Columns = ny, nx
    if contrast:
        tpl.ContrastBolusAgent = style.contrast_agent
        tpl.ContrastBolusRoute = "IV"
        tpl.ContrastBolusStartTime = inject_time.strftime("%H%M%S")
        tpl.ContrastBolusVolume = 15
    out = []
    for k in range(nz):
        ds = Dataset(dict(tpl._dict))
        ds.SOPInstanceUID = generate_uid(entropy_srcs=[series_uid, str(k)])
        ds.InstanceNumber = (nz - k) if style.instance_descending else (k + 1)
        ds.ImagePositionPatient = [float(origin[0]), float(origin[1]),
                                   float(origin[2] + k * spacing[2])]
        ds.SliceLocation = float(origin[2] + k * spacing[2])
        ds.PixelData = np.ascontiguousarray(counts[k]).tobytes()
        _save(ds, series_dir / f"IM{names[k]:05d}")
        out.append(ds)
    return out


def write_localiser(series_dir: Path, *, patient_id, study_uid, for_uid, date, style, origin,
                    spacing, series_uid, rng) -> None:
    """A 3-plane localiser: one axial, one coronal and one sagittal slice in one series."""
    from pydicom.uid import generate_uid

    n = 64
    orients = {
        "ax": [1, 0, 0, 0, 1, 0],
        "cor": [1, 0, 0, 0, 0, -1],
        "sag": [0, 1, 0, 0, 0, -1],
    }
    for k, (_name, iop) in enumerate(orients.items()):
        ds = _base(patient_id, study_uid, for_uid, date, style, series_uid, 1, "3-plane loc",
                   "localizer", _dt.datetime.combine(date, _dt.time(8, 55)))
        ds.SOPInstanceUID = generate_uid(entropy_srcs=[series_uid, str(k)])
        ds.InstanceNumber = k + 1
        ds.ImageType = ["ORIGINAL", "PRIMARY", "LOCALIZER"]
        ds.ImageOrientationPatient = iop
        ds.ImagePositionPatient = [-200.0, -200.0, 0.0]
        ds.PixelSpacing = [6.25, 6.25]
        ds.SliceThickness = 8.0
        ds.Rows = ds.Columns = n
        img = (rng.random((n, n)) * 200 + 100).astype(np.uint16)
        ds.PixelData = img.tobytes()
        _save(ds, series_dir / f"LOC{k}")


def write_seg(path: Path, source_datasets: list, masks: dict, entropy: list) -> Path:
    """Liver and tumour masks as one DICOM SEG (binary) referencing the source series."""
    import highdicom as hd
    from pydicom.sr.codedict import codes
    from pydicom.uid import generate_uid

    descs = []
    for number, (label, code) in enumerate(
        [("liver", codes.SCT.Liver), ("tumour", codes.SCT.Neoplasm)], start=1
    ):
        descs.append(hd.seg.SegmentDescription(
            segment_number=number,
            segment_label=label,
            segmented_property_category=codes.SCT.Tissue if label == "liver"
            else codes.SCT.MorphologicallyAbnormalStructure,
            segmented_property_type=code,
            algorithm_type=hd.seg.SegmentAlgorithmTypeValues.MANUAL,
        ))
    arr = np.stack([masks["liver"], masks["tumour"]], axis=-1).astype(np.uint8)
    seg = hd.seg.Segmentation(
        source_images=source_datasets,
        pixel_array=arr,
        segmentation_type=hd.seg.SegmentationTypeValues.BINARY,
        segment_descriptions=descs,
        series_instance_uid=generate_uid(entropy_srcs=[*entropy, "seg"]),
        series_number=99,
        sop_instance_uid=generate_uid(entropy_srcs=[*entropy, "seg-inst"]),
        instance_number=1,
        manufacturer="hccstrat",
        manufacturer_model_name="synthetic",
        software_versions="0.1",
        device_serial_number="0",
        omit_empty_frames=True,
    )
    with atomic_path(path) as tmp:
        seg.save_as(tmp)
    return path
