"""De-identification: no PHI tag left on pydicom's test corpus; UIDs remapped consistently."""

from __future__ import annotations

import numpy as np
import pydicom
import pytest
from pydicom.data import get_testdata_file

from hccstrat.interop.deid import (
    BASIC_PROFILE,
    PseudonymTable,
    UIDRemapper,
    date_offset_days,
    deidentify_dataset,
    scrub_wsi,
)

CORPUS = [
    "CT_small.dcm",
    "MR_small.dcm",
    "rtplan.dcm",
    "rtdose.dcm",
    "JPEG2000.dcm",
    "SC_rgb_small_odd.dcm",
    "examples_overlay.dcm",
    "nested_priv_SQ.dcm",
    "reportsi.dcm",
    "liver_1frame.dcm",
    "examples_palette.dcm",
    "rtstruct.dcm",
]
KEY = b"k" * 32


def _load(name):
    path = get_testdata_file(name, download=False)  # never download at test time
    if path is None:
        pytest.skip(f"pydicom test file {name} not shipped with this pydicom")
    return pydicom.dcmread(path, force=True)


def _all_elements(ds):
    yield from ds.iterall()


@pytest.mark.parametrize("name", CORPUS)
def test_no_phi_tag_remains(name):
    ds = _load(name)
    original = _load(name)
    # patient identifiers must not survive anywhere (institution etc. are removed by the
    # profile table, checked below; their text may legitimately recur in e.g. Manufacturer)
    phi_values = {
        str(original.get(k))
        for k in ("PatientName", "PatientID", "PatientBirthDate")
        if original.get(k) not in (None, "")
    }
    uid_map = UIDRemapper(KEY)
    res = deidentify_dataset(ds, pseudo_id="P-TEST", uid_map=uid_map, date_shift_days=-30)
    for elem in _all_elements(ds):
        action = BASIC_PROFILE.get(elem.keyword)
        assert not elem.tag.is_private, f"private tag {elem.tag} left"
        if action == "X":
            pytest.fail(f"{elem.keyword} should have been removed")
        if action == "Z":
            assert elem.value in ("", None, []) or len(elem.value) == 0, elem.keyword
        if elem.VR == "PN" and elem.keyword not in ("PatientName",):
            assert not elem.value, elem.keyword
        if (
            elem.VR == "UI"
            and elem.value
            and elem.keyword
            not in ("SOPClassUID", "ReferencedSOPClassUID", "TransferSyntaxUID", "CodingSchemeUID")
        ):
            vals = elem.value if elem.VM > 1 else [elem.value]
            assert all(v.startswith("2.25.") or v.startswith("1.2.840.10008.") for v in vals), (
                elem.keyword,
                elem.value,
            )
        if isinstance(elem.value, str):
            for v in phi_values:
                assert v not in elem.value or len(v) < 3, (elem.keyword, "carries PHI")
    assert ds.PatientName == "P-TEST" and ds.PatientID == "P-TEST"
    assert ds.PatientIdentityRemoved == "YES"
    assert {c.CodeValue for c in ds.DeidentificationMethodCodeSequence} >= {"113100", "113107"}
    if name.startswith("SC_"):
        assert res.burned_in_flag  # modalities that often carry burned-in text are flagged
    # the file is still valid DICOM after de-identification
    from io import BytesIO

    buf = BytesIO()
    ds.save_as(buf, enforce_file_format=False)
    assert pydicom.dcmread(BytesIO(buf.getvalue()), force=True).PatientID == "P-TEST"


def test_uids_consistent_within_a_study_and_dates_shifted():
    a, b = _load("CT_small.dcm"), _load("CT_small.dcm")
    b.SOPInstanceUID = a.SOPInstanceUID + ".2"
    study, date = str(a.StudyInstanceUID), str(a.StudyDate)
    uid_map = UIDRemapper(KEY)
    shift = date_offset_days(KEY, "P-1")
    for ds in (a, b):
        deidentify_dataset(ds, pseudo_id="P-1", uid_map=uid_map, date_shift_days=shift)
    assert a.StudyInstanceUID == b.StudyInstanceUID != study
    assert a.SeriesInstanceUID == b.SeriesInstanceUID
    assert a.SOPInstanceUID != b.SOPInstanceUID
    assert a.file_meta.MediaStorageSOPInstanceUID == a.SOPInstanceUID
    assert UIDRemapper(KEY)(study) == a.StudyInstanceUID  # same key, same mapping
    assert UIDRemapper(b"other" * 8)(study) != a.StudyInstanceUID
    assert -365 <= shift <= -1
    # modified-dates option: every date moves by the same per-patient shift
    import datetime as dt

    orig = dt.datetime.strptime(date, "%Y%m%d")
    assert dt.datetime.strptime(a.StudyDate, "%Y%m%d") == orig + dt.timedelta(days=shift)
    assert date_offset_days(KEY, "P-1") == shift != date_offset_days(KEY, "P-2")


def test_pseudonym_table_is_a_separate_file(tmp_path):
    t = PseudonymTable(tmp_path / "keys" / "pseudonyms.sqlite")
    assert t.link("hospital", "MRN-123", "P-1") == "P-1"
    assert t.link("hospital", "MRN-123", "P-2") == "P-1"  # an existing link is kept
    assert t.lookup("hospital", "MRN-123") == "P-1" and t.count() == 1
    assert (tmp_path / "keys" / "pseudonyms.sqlite").exists()


def _svs_like(path):
    import tifffile

    rng = np.random.default_rng(0)
    base = rng.integers(0, 255, (512, 512, 3), dtype=np.uint8)
    label = np.full((64, 96, 3), 123, np.uint8)
    desc0 = (
        "Aperio Image Library v12.0.15\r\n512x512 [0,0 512x512] (256x256) RAW|AppMag = 20"
        "|Filename = SMITH_JOHN_S12-3456|Date = 03/14/24|Time = 09:59:15|User = jsmith"
        "|MPP = 0.4990"
    )
    with tifffile.TiffWriter(path) as tw:
        tw.write(
            base, tile=(256, 256), description=desc0, datetime="2024:03:14 09:59:15", metadata=None
        )
        tw.write(
            base[::4, ::4],
            description="Aperio Image Library v12.0.15\r\n128x128 -> thumb",
            metadata=None,
        )
        tw.write(
            label,
            description="Aperio Image Library v12.0.15\r\nlabel 96x64",
            metadata=None,
            subfiletype=1,
        )
        tw.write(
            label + 1,
            description="Aperio Image Library v12.0.15\r\nmacro 96x64",
            metadata=None,
            subfiletype=9,
        )


def test_wsi_label_and_macro_removed_and_metadata_scrubbed(tmp_path):
    import tifffile

    src, dst = tmp_path / "slide.svs", tmp_path / "out" / "slide.svs"
    _svs_like(src)
    res = scrub_wsi(src, dst)
    assert len(res.removed_pages) == 2 and res.mpp == pytest.approx(0.499)
    raw = dst.read_bytes()
    for secret in (b"SMITH_JOHN", b"jsmith", b"03/14/24", b"2024:03:14"):
        assert secret not in raw
    with tifffile.TiffFile(dst) as tif:
        assert len(tif.pages) == 2
        assert "label" not in " ".join(p.description for p in tif.pages)
        np.testing.assert_array_equal(tif.pages[0].asarray(), tifffile.imread(src, key=0))
        assert "MPP = 0.4990" in tif.pages[0].description
    with tifffile.TiffFile(src) as tif:  # the original is untouched
        assert len(tif.pages) == 4
