"""Phase identification without descriptions: aorta/portal-vein enhancement and timing;
partially named dynamic groups; multi-echo series split by EchoNumbers."""

from __future__ import annotations

import shutil
from pathlib import Path

import numpy as np
import pydicom
import pytest

from hccstrat.io.dicom import load_volume, scan_folder
from hccstrat.synthetic.mri import default_latent, sample_latent, write_study

TRUTH = {5: "pre", 6: "arterial", 7: "portal", 8: "delayed"}
VENDORS = ("GE", "Siemens", "Philips", "UIH")


@pytest.fixture(scope="module")
def stripped_root(tmp_path_factory, small):
    """12 studies (3 per vendor, random latent traits) with every description stripped;
    two thirds also have identical acquisition times (enhancement only)."""
    root = tmp_path_factory.mktemp("stripped")
    rng = np.random.default_rng(42)
    for i in range(12):
        write_study(root / f"s{i:02d}", sample_latent(rng), vendor=VENDORS[i % 4],
                    patient_id=f"X{i:02d}", seed=300 + i, strip_descriptions=True,
                    strip_timing=i % 3 != 0, motion_mm=4.0, localiser=False,
                    write_dicom_seg=False, **small)
    return root


def test_stripped_descriptions_identified_from_vessel_enhancement(stripped_root):
    scan = scan_folder(stripped_root)
    assert len(scan.studies) == 12
    rows = []
    for study in scan.studies:
        for s in study.series:
            rows.append((study.patient_id, s.number, s.phase, s.phase_confidence,
                         s.phase_reason))
    right = sum(ph == TRUTH[num] for _, num, ph, _, _ in rows)
    # the figure the issue asks for: share of stripped series identified correctly
    print(f"stripped descriptions: {right}/{len(rows)} series = {right / len(rows):.1%}")
    assert len(rows) == 48
    assert right / len(rows) >= 0.95
    reasons = [r for *_, r in rows]
    assert all("description" not in r for r in reasons)
    assert sum("aorta" in r for r in reasons) == 48  # the vessels were measured each time
    enh_only = [c for (*_x, c, r) in rows if "acquisition-time" not in r]
    assert len(enh_only) == 32 and min(enh_only) >= 0.5


def test_vessel_finder_lands_on_the_phantom_aorta_and_portal_vein(stripped_root):
    import json

    from hccstrat.radiology.vessels import measure_vessels
    from hccstrat.synthetic._mri_phantom import AORTA_XYR, PORTAL_HILUM

    portal_ok = 0
    for i in (0, 1, 2, 3):
        study = scan_folder(stripped_root / f"s{i:02d}", use_enhancement=False).study()
        series = sorted(study.series, key=lambda s: s.number)
        vs = measure_vessels([load_volume(s, max_slices=40, in_plane_mm=4.0) for s in series])
        # the portal venous phase has no motion: the phantom's aorta is where it was drawn
        assert np.hypot(vs.aorta_xy_mm[0] - AORTA_XYR[0], vs.aorta_xy_mm[1] - AORTA_XYR[1]) < 8
        assert vs.aorta_confidence > 0.5
        assert int(np.argmin(vs.aorta)) == 0 and int(np.argmax(vs.aorta)) == 1  # pre, arterial
        if vs.portal is not None:
            truth = json.loads((stripped_root / f"s{i:02d}" / "truth.json").read_text())
            hilum = np.asarray(PORTAL_HILUM)
            # the phantom's vein runs from the hilum to 20 mm right of / 10 mm above the
            # liver centre (the motion centre in truth.json)
            end = np.asarray(truth["motion"]["portal"]["centre"]) + np.array([-20.0, 0, 10.0])
            c = np.asarray(vs.portal_xyz_mm)
            ab = end - hilum
            t = np.clip((c - hilum) @ ab / (ab @ ab), 0, 1)
            if np.linalg.norm(c - hilum - t * ab) < 15 and int(np.argmax(vs.portal)) == 2:
                portal_ok += 1
    assert portal_ok >= 3


def _strip(series_dir, *, keep_time: bool, time: str | None = None) -> None:
    """Remove the phase name and contrast tags of one written series."""
    for f in series_dir.iterdir():
        ds = pydicom.dcmread(f)
        ds.SeriesDescription = ds.ProtocolName = "T1 3D FS"
        for tag in ("ContrastBolusAgent", "ContrastBolusStartTime", "ContrastBolusRoute",
                    "ContrastBolusVolume"):
            if tag in ds:
                delattr(ds, tag)
        if not keep_time:
            ds.AcquisitionTime = ds.SeriesTime = ds.ContentTime = time
        ds.save_as(f)


@pytest.mark.parametrize("keep_time", [True, False])
def test_partially_named_dynamic_group(tmp_path, mri_root, keep_time):
    """Two series named by their descriptions, two unnamed (no tags, no bolus time):
    the time order relative to the named series and/or the enhancement resolve them."""
    root, infos = mri_root
    pairs = {"GE": ("arterial", "delayed"), "Siemens": ("pre", "portal"),
             "Philips": ("arterial", "portal"), "UIH": ("pre", "delayed")}
    right = 0
    for vendor, unnamed in pairs.items():
        shutil.copytree(root / vendor, tmp_path / vendor)
        info = infos[vendor]
        for ph in unnamed:
            d = tmp_path / vendor / "DICOM" / Path(info.series[ph]["dir"]).name
            _strip(d, keep_time=keep_time, time=info.series["pre"]["time"])
        study = scan_folder(tmp_path / vendor).study()
        for s in study.series:
            if s.number not in TRUTH:
                continue
            right += s.phase == TRUTH[s.number]
            if TRUTH[s.number] in unnamed:
                assert "description" not in s.phase_reason
                expected = "acquisition-time order" if keep_time else "enhancement"
                assert expected in s.phase_reason, s.phase_reason
                assert s.phase_confidence >= (0.8 if keep_time else 0.5)
    assert right == 16


def test_two_echo_series_split_by_echo_numbers(tmp_path, mri_root):
    root, infos = mri_root
    shutil.copytree(root / "Siemens", tmp_path / "st")
    d = tmp_path / "st" / "DICOM" / Path(infos["Siemens"].series["portal"]["dir"]).name
    # second echo: same positions, same series UID, EchoNumbers 2 and half the signal
    for f in sorted(d.iterdir()):
        ds = pydicom.dcmread(f)
        ds.EchoNumbers = 2
        ds.EchoTime = 3.6
        ds.SOPInstanceUID = pydicom.uid.generate_uid(entropy_srcs=[ds.SOPInstanceUID, "e2"])
        ds.PixelData = (ds.pixel_array // 2).astype(np.uint16).tobytes()
        ds.save_as(d / f"E2_{f.name}")
    study = scan_folder(tmp_path / "st").study()
    parts = [s for s in study.series if s.number == 7]
    assert [s.split_tag for s in parts] == ["e1", "e2"]
    assert [s.echo for s in parts] == ["1", "2"]
    n = infos["Siemens"].series["portal"]["n_files"]
    assert all(s.n_slices == n and not s.problems for s in parts)
    a, b = (load_volume(s) for s in parts)
    import SimpleITK as sitk

    ra, rb = sitk.GetArrayViewFromImage(a), sitk.GetArrayViewFromImage(b)
    assert np.allclose(rb, np.floor(ra / 2))
    # the phase goes to the first echo; the four phases are still found once each
    assert parts[0].phase == "portal" and parts[1].phase is None
    assert "another echo" in parts[1].phase_reason
    assert sorted(s.phase for s in study.series if s.phase) == sorted(TRUTH.values())


def test_default_latent_studies_identified_with_time_order(tmp_path, small):
    """Descriptions stripped but times kept: time order and enhancement agree (0.9)."""
    write_study(tmp_path / "t", default_latent(True), vendor="Philips", patient_id="T1",
                seed=9, strip_descriptions=True, localiser=False, write_dicom_seg=False,
                **small)
    study = scan_folder(tmp_path / "t").study()
    assert [s.phase for s in study.series] == ["pre", "arterial", "portal", "delayed"]
    assert all(s.phase_confidence == 0.9 and "agree" in s.phase_reason for s in study.series)
