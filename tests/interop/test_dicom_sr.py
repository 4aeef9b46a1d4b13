"""DICOM SEG and SR export of MRI results, read back with pydicom."""

from __future__ import annotations

import numpy as np
import pydicom
import pytest

from hccstrat.exceptions import DataValidationError
from hccstrat.interop.dicom_sr import (
    export_seg,
    export_sr,
    mask_on_series,
    read_sr_measurements,
    sort_series,
)


@pytest.fixture(scope="module")
def study(tmp_path_factory):
    from hccstrat.synthetic.mri import default_latent, write_study

    info = write_study(tmp_path_factory.mktemp("mri") / "s", default_latent(True), vendor="GE",
                       patient_id="MRN-1", shape=(40, 40, 10), spacing=(6.0, 6.0, 8.0), seed=2,
                       write_dicom_seg=False)
    pv = info.study_dir / info.series["portal"]["dir"]
    datasets = [pydicom.dcmread(f) for f in sorted(pv.iterdir())]
    return info, datasets


def test_seg_and_sr_round_trip(study, tmp_path):
    import SimpleITK as sitk

    info, datasets = study
    masks = {k: mask_on_series(getattr(info, f"{k}_mask"), datasets) for k in ("liver", "tumour")}
    assert masks["tumour"].sum() > 0 and masks["liver"].sum() > masks["tumour"].sum()
    ordered = sort_series(datasets)
    seg_path = export_seg(datasets[::-1], masks, tmp_path / "seg.dcm",
                          algorithm=("hccstrat-roi", "1.0"))
    seg = pydicom.dcmread(seg_path)
    assert seg.Modality == "SEG" and seg.SegmentationType == "BINARY"
    assert [s.SegmentLabel for s in seg.SegmentSequence] == ["Liver", "Tumour"]
    assert seg.SegmentSequence[1].SegmentedPropertyTypeCodeSequence[0].CodeValue == "108369006"
    ref = seg.ReferencedSeriesSequence[0]
    assert ref.SeriesInstanceUID == ordered[0].SeriesInstanceUID
    # pixel data: frames map back to the source images, tumour voxels preserved
    import highdicom as hd

    hseg = hd.seg.Segmentation.from_dataset(seg)
    arr = hseg.get_pixels_by_source_instance(
        source_sop_instance_uids=[d.SOPInstanceUID for d in ordered],
        segment_numbers=[2], combine_segments=False)
    assert np.array_equal(arr[..., 0] > 0, masks["tumour"])
    # the SR carries the tumour volume and the PRE score, and references SEG and series
    m = sitk.ReadImage(str(info.tumour_mask))
    vol = float((sitk.GetArrayFromImage(m) > 0).sum() * np.prod(m.GetSpacing()) / 1000)
    sr_path = export_sr(datasets, seg_path, tmp_path / "sr.dcm", tumour_volume_ml=vol,
                        pre_score=0.734, model=("pre-test", "abc123def456"))
    sr = pydicom.dcmread(sr_path)
    assert sr.Modality == "SR" and sr.SOPClassUID == "1.2.840.10008.5.1.4.1.1.88.34"
    assert sr.ContentTemplateSequence[0].TemplateIdentifier == "1500"
    got = read_sr_measurements(sr_path)
    assert got["tumour_volume_ml"] == pytest.approx(vol)
    assert got["pre_score"] == pytest.approx(0.734)
    assert got["model"] == ("pre-test", "abc123def456")
    assert got["referenced_series_uid"] == ordered[0].SeriesInstanceUID
    assert got["referenced_seg_uid"] == seg.SOPInstanceUID
    evidence = {s.SeriesInstanceUID for st in sr.CurrentRequestedProcedureEvidenceSequence
                for s in st.ReferencedSeriesSequence}
    assert {ordered[0].SeriesInstanceUID, seg.SeriesInstanceUID} <= evidence


def test_bad_inputs_are_reported(study, tmp_path):
    _, datasets = study
    with pytest.raises(DataValidationError, match="tumour"):
        export_seg(datasets, {"tumour": np.zeros((2, 2, 2), bool)}, tmp_path / "x.dcm")
    seg = export_seg(datasets, {"liver": np.ones((10, 40, 40), bool)}, tmp_path / "l.dcm")
    with pytest.raises(Exception, match="Tumour"):
        export_sr(datasets, seg, tmp_path / "sr.dcm", tumour_volume_ml=1.0)


@pytest.mark.parametrize("volume", [float("nan"), float("inf"), -3.0])
def test_sr_rejects_a_volume_that_is_not_a_volume(study, tmp_path, volume):
    _, datasets = study
    tumour = np.zeros((10, 40, 40), bool)
    tumour[4:6, 10:20, 10:20] = True
    seg = export_seg(datasets, {"tumour": tumour}, tmp_path / "t.dcm")
    with pytest.raises(DataValidationError, match="tumour_volume_ml"):
        export_sr(datasets, seg, tmp_path / "sr.dcm", tumour_volume_ml=volume)
    assert not (tmp_path / "sr.dcm").exists()


def test_seg_without_any_mask_is_reported(study, tmp_path):
    _, datasets = study
    with pytest.raises(DataValidationError, match="masks"):
        export_seg(datasets, {}, tmp_path / "none.dcm")
