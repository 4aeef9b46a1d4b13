"""Synthetic pyramidal slides: format, metadata, ground truth, latent signal."""

from __future__ import annotations

import json

import numpy as np
import pytest

from hccstrat.synthetic.wsi import CLASS_CODES, default_latent, read_truth, write_slide


def test_pyramidal_tiff_opens_everywhere_with_mpp(synth_slide):
    import openslide
    import tifffile
    import tiffslide

    s = openslide.OpenSlide(str(synth_slide.path))
    assert s.level_dimensions[0] == (2048, 2048)
    assert len(s.level_dimensions) == 2 and s.level_downsamples[1] == pytest.approx(4.0)
    assert float(s.properties["openslide.mpp-x"]) == pytest.approx(0.5)
    assert tiffslide.TiffSlide(str(synth_slide.path)).properties["tiffslide.mpp-x"] == 0.5
    with tifffile.TiffFile(synth_slide.path) as tf:
        page = tf.pages[0]
        assert page.is_tiled and page.compression == 7  # JPEG


def test_ground_truth_files(synth_slide):
    labels, truth = read_truth(synth_slide.path)
    assert labels.shape == (2048 // truth["downsample"],) * 2
    assert set(np.unique(labels)) <= set(CLASS_CODES)
    assert {0, 1, 5} <= set(np.unique(labels).tolist())
    gj = json.loads(synth_slide.geojson_path.read_text())
    names = {f["properties"]["classification"]["name"] for f in gj["features"]}
    assert "tumour" in names and "normal_liver" in names
    xy = np.array([p for f in gj["features"] for p in f["geometry"]["coordinates"][0]])
    assert xy.min() >= 0 and xy.max() <= 2048


def test_rendering_follows_the_labels(synth_slide):
    """Glass is bright, tumour is stained: the pixels carry the ground truth."""
    import openslide

    labels, truth = read_truth(synth_slide.path)
    ds = truth["downsample"]
    s = openslide.OpenSlide(str(synth_slide.path))
    img = np.asarray(s.read_region((0, 0), 0, (2048, 2048)).convert("RGB"))
    small = img.reshape(2048 // ds, ds, 2048 // ds, ds, 3).mean((1, 3))
    grey = small.mean(-1)
    assert grey[labels == 0].mean() > 225
    assert grey[labels == 1].mean() < grey[labels == 0].mean() - 30


def test_deterministic_and_latent_driven(tmp_path):
    hot = default_latent(
        immune_phenotype="inflamed",
        lymphocyte_density=0.95,
        margin_lymphocyte_density=0.9,
        vascular_invasion=True,
    )
    cold = default_latent(
        immune_phenotype="desert",
        lymphocyte_density=0.02,
        margin_lymphocyte_density=0.02,
        vascular_invasion=False,
    )
    a = write_slide(tmp_path / "a.tiff", hot, size=(1024, 1024), seed=1, geojson=False)
    b = write_slide(tmp_path / "b.tiff", hot, size=(1024, 1024), seed=1, geojson=False)
    c = write_slide(tmp_path / "c.tiff", cold, size=(1024, 1024), seed=1, geojson=False)
    assert a.path.read_bytes() == b.path.read_bytes()
    assert a.class_fractions["immune_dense"] > 3 * c.class_fractions["immune_dense"]
    assert c.class_fractions["vessel_tumour_thrombus"] == 0


def test_slide_without_mpp_and_bad_request(tmp_path):
    import tifffile

    from hccstrat.exceptions import ConfigError

    info = write_slide(tmp_path / "n.tiff", default_latent(), size=(512, 512), write_mpp=False)
    with tifffile.TiffFile(info.path) as tf:
        assert (
            "XResolution" not in tf.pages[0].tags or tf.pages[0].tags["ResolutionUnit"].value == 1
        )
    with pytest.raises(ConfigError):
        write_slide(tmp_path / "x.tiff", default_latent(), size=(10, 10))
