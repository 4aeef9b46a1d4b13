"""Synthetic DICOM generator, series discovery, phase identification and bad inputs."""

from __future__ import annotations

import shutil

import numpy as np
import pydicom
import pytest
from pydicom.data import get_testdata_file

from hccstrat.io._phase import phase_from_text
from hccstrat.io.dicom import (
    DicomGeometryError,
    WrongModalityError,
    load_volume,
    require_mr,
    scan_folder,
)
from hccstrat.synthetic.mri import default_latent, write_study

TRUTH = {5: "pre", 6: "arterial", 7: "portal", 8: "delayed"}


def test_generator_writes_valid_vendor_dicom(mri_root, small):
    root, infos = mri_root
    uih = infos["UIH"]
    files = sorted((root / "UIH" / "DICOM").rglob("IM*"))
    assert len(files) == 4 * small["shape"][2]
    ds = pydicom.dcmread(files[0])
    assert ds.SOPClassUID == "1.2.840.10008.5.1.4.1.1.4"
    assert ds.Modality == "MR" and ds.Manufacturer == "UIH"
    assert any("\u4e00" <= ch <= "\u9fff" for ch in uih.series["arterial"]["description"])
    assert pydicom.uid.UID(ds.SOPInstanceUID).is_valid
    assert ds.pixel_array.shape == (64, 64)
    # Philips numbers instances head to feet: InstanceNumber order is reversed z order
    ph = [pydicom.dcmread(f, stop_before_pixels=True)
          for f in (root / "Philips" / "DICOM").rglob("IM*")]
    series = [d for d in ph if d.SeriesNumber == 7]
    z = {int(d.InstanceNumber): float(d.ImagePositionPatient[2]) for d in series}
    assert z[1] > z[len(z)]
    assert (root / "GE" / "masks" / "seg.dcm").is_file()
    assert uih.tumour_mask.is_file() and uih.liver_mask.is_file()


@pytest.mark.parametrize("vendor", ["GE", "Siemens", "Philips", "UIH"])
def test_phase_identification_every_vendor(mri_root, vendor):
    root, _ = mri_root
    scan = scan_folder(root / vendor)
    study = scan.study()
    dyn = [s for s in study.series if s.number in TRUTH]
    assert [s.phase for s in dyn] == [TRUTH[s.number] for s in dyn]
    assert all(s.phase_confidence >= 0.9 for s in dyn)
    # the 3-plane localiser was split by orientation and not given a phase
    loc = [s for s in study.series if s.is_localiser]
    assert len(loc) == 3 and all(s.phase is None for s in loc)


def test_slices_sorted_by_position_not_file_name(mri_root, small):
    root, _infos = mri_root
    study = scan_folder(root / "Philips").study()
    s = study.phase_series("portal")
    d = s.slice_positions()
    assert np.all(np.diff(d) > 0)
    img = load_volume(s)
    assert img.GetSpacing() == pytest.approx(small["spacing"])
    # intensity of the volume matches the file whose position is the first slice
    first = min((pydicom.dcmread(f.path) for f in s.frames),
                key=lambda ds: float(ds.ImagePositionPatient[2]))
    import SimpleITK as sitk

    assert np.array_equal(sitk.GetArrayFromImage(img)[0], first.pixel_array.astype(np.float32))


def test_phase_keywords():
    assert phase_from_text("Ax LAVA-Flex DELAY 3min")[0] == "delayed"
    assert phase_from_text("t1_vibe_fs_tra_art")[0] == "arterial"
    assert phase_from_text("增强 门静脉期")[0] == "portal"
    assert phase_from_text("HBP 20min")[0] == "hepatobiliary"
    assert phase_from_text("T2 HASTE")[0] is None


def test_identical_descriptions_and_user_mapping(tmp_path, small):
    write_study(tmp_path / "s", default_latent(False), vendor="GE", patient_id="ID1", seed=3,
                strip_descriptions=True, localiser=False, write_dicom_seg=False, **small)
    study = scan_folder(tmp_path).study()
    # identical descriptions: never decided by the description
    assert all("description" not in s.phase_reason for s in study.series)
    assert [s.phase for s in study.series] == ["pre", "arterial", "portal", "delayed"]
    mapped = scan_folder(tmp_path, phase_mapping={"5": "delayed", "8": "pre"}).study()
    by_num = {s.number: s for s in mapped.series}
    assert by_num[5].phase == "delayed" and by_num[5].phase_confidence == 1.0
    assert by_num[8].phase == "pre"


def test_bad_inputs_each_reported(tmp_path, mri_root):
    root, _ = mri_root
    shutil.copytree(root / "Siemens", tmp_path / "study")
    extra = tmp_path / "study" / "junk"
    extra.mkdir()
    shutil.copy(get_testdata_file("MR_truncated.dcm"), extra / "trunc.dcm")
    shutil.copy(get_testdata_file("rtplan.dcm"), extra / "plan.dcm")
    (extra / "notes.bin").write_bytes(b"not dicom at all")
    dicomdir = get_testdata_file("DICOMDIR")
    shutil.copy(dicomdir, extra / "DICOMDIR")
    scan = scan_folder(tmp_path / "study")
    reasons = {k.path.name: (k.code, k.reason) for k in scan.skipped}
    assert reasons["trunc.dcm"][0] == "HCC-MRI-001" and "truncated" in reasons["trunc.dcm"][1]
    assert reasons["plan.dcm"][0] == "HCC-MRI-002"
    assert reasons["notes.bin"] == ("HCC-MRI-001", "not a DICOM file")
    assert "DICOMDIR" in reasons["DICOMDIR"][1]
    # nothing else lost: the Siemens study is still complete (truncated MR is its own study)
    study = next(s for s in scan.studies if s.patient_id == "PSiemens")
    assert set(study.phases) == {"pre", "arterial", "portal", "delayed"}


def test_ct_is_not_mr(tmp_path):
    shutil.copy(get_testdata_file("CT_small.dcm"), tmp_path / "ct.dcm")
    study = scan_folder(tmp_path).study()
    with pytest.raises(WrongModalityError, match="no MR images") as ei:
        require_mr(study)
    assert ei.value.code == "HCC-MRI-003"


def test_pydicom_mr_file_and_missing_pixel_spacing(tmp_path):
    shutil.copy(get_testdata_file("MR_small.dcm"), tmp_path / "mr.dcm")
    study = scan_folder(tmp_path).study()
    (s,) = study.series
    assert s.modality == "MR" and s.n_slices == 1 and s.phase is None
    with pytest.raises(DicomGeometryError, match="only 1 slice"):
        load_volume(s)
    ds = pydicom.dcmread(tmp_path / "mr.dcm")
    del ds.PixelSpacing
    ds.save_as(tmp_path / "mr.dcm")
    (s,) = scan_folder(tmp_path).study().series
    with pytest.raises(DicomGeometryError, match="PixelSpacing") as ei:
        load_volume(s)
    assert ei.value.code == "HCC-MRI-004" and "re-export" in str(ei.value)


def test_missing_slice_or_mixed_pixel_spacing_is_refused(tmp_path, mri_root):
    """A series with a hole or a slice of another pixel size is not stacked as a volume."""
    root, _ = mri_root
    shutil.copytree(root / "Siemens", tmp_path / "gap")
    portal = scan_folder(tmp_path / "gap").study().phase_series("portal")
    portal.frames[10].path.unlink()  # an export that lost one slice
    other = portal.frames[5].path
    ds = pydicom.dcmread(other)
    ds.PixelSpacing = [5.0, 5.0]
    ds.save_as(other)
    s = scan_folder(tmp_path / "gap").study().phase_series("portal")
    assert any(p.startswith("uneven slice gaps") for p in s.problems)
    with pytest.raises(DicomGeometryError) as ei:
        load_volume(s)
    msg = str(ei.value)
    assert ei.value.code == "HCC-MRI-004"
    assert "uneven slice gaps: 16.00 mm" in msg and "median 8.00 mm" in msg
    assert "PixelSpacing differs between slices (5x5, 6x6 mm)" in msg
    assert "re-export the complete series" in msg


def test_enhanced_multiframe_mr(tmp_path, mri_root):
    import highdicom as hd

    root, _ = mri_root
    study = scan_folder(root / "GE").study()
    pv = study.phase_series("portal")
    dss = [pydicom.dcmread(f.path) for f in pv.frames]
    for ds in dss:  # highdicom's legacy converter needs a few more tags
        ds.PatientBirthDate = ""
    mf = hd.legacy.LegacyConvertedEnhancedMRImage(
        dss, series_instance_uid=hd.UID(), series_number=70,
        sop_instance_uid=hd.UID(), instance_number=1)
    mf.SeriesDescription = "LAVA pv multiframe"
    (tmp_path / "mf").mkdir()
    mf.save_as(tmp_path / "mf" / "enhanced.dcm")
    (s,) = scan_folder(tmp_path).study().series
    assert s.n_slices == pv.n_slices and s.phase == "portal"
    a = load_volume(s)
    b = load_volume(pv)
    import SimpleITK as sitk

    assert np.allclose(sitk.GetArrayFromImage(a), sitk.GetArrayFromImage(b))
    assert np.allclose(a.GetOrigin(), b.GetOrigin())
