"""Reader abstraction on the real fixture slides."""

from __future__ import annotations

import numpy as np
import pytest

from hccstrat.io.wsi import MppMissingError, SlideOpenError, open_slide


def test_svs_openslide_and_tiffslide(fixtures_dir):
    p = fixtures_dir / "wsi" / "CMU-1-Small-Region.svs"
    for backend in ("openslide", "tiffslide"):
        with open_slide(p, backend=backend) as s:
            assert s.dimensions == (2220, 2967)
            assert s.mpp == pytest.approx(0.499, abs=1e-3)
            a = s.read_region((1000, 1000), 0, (64, 32))
            assert a.shape == (32, 64, 3) and a.dtype == np.uint8
    with open_slide(p) as s:
        assert {"label", "macro"} <= set(s.associated_images())
        thumb, ds = s.get_thumbnail(256)
        assert max(thumb.shape[:2]) <= 256 and ds == pytest.approx(2967 / thumb.shape[0], rel=0.01)


def test_dicom_conformant_and_fallback(fixtures_dir):
    with open_slide(fixtures_dir / "wsi" / "sm_image.dcm") as s:
        assert s.backend_name == "wsidicom" and s.mpp == pytest.approx(0.499, abs=1e-3)
    with pytest.warns(UserWarning), open_slide(fixtures_dir / "wsi" / "small_dicom.dcm") as s:
        assert s.backend_name == "pydicom"
        assert s.properties["dicom.frame_order"] == "col"
        assert s.dimensions == (3236, 2638)
        with pytest.raises(MppMissingError, match="--mpp"):
            _ = s.mpp


def test_plain_image_needs_mpp(fixtures_dir):
    p = fixtures_dir / "wsi" / "tcga-red-pen.png"
    with open_slide(p) as s:
        with pytest.raises(MppMissingError) as ei:
            _ = s.mpp
        assert "--mpp" in str(ei.value) and ei.value.code == "HCC-WSI-002"
    with open_slide(p, mpp=0.5) as s:
        assert s.mpp == 0.5 and s.read_region((-10, -10), 0, (20, 20))[0, 0].tolist() == [255] * 3


def test_objective_power_is_reported_not_used(tmp_path, fixtures_dir):
    with open_slide(fixtures_dir / "wsi" / "CMU-1-Small-Region.svs") as s:
        s._b.mpp_xy = None  # pretend the file had only AppMag
        with pytest.raises(MppMissingError, match="objective power of 20x"):
            _ = s.mpp


def test_not_a_slide_and_missing(tmp_path):
    bad = tmp_path / "x.svs"
    bad.write_text("not a slide")
    with pytest.raises(SlideOpenError, match="cannot open"):
        open_slide(bad)
    with pytest.raises(SlideOpenError, match="not found"):
        open_slide(tmp_path / "missing.svs")
