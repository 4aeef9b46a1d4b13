"""Shared synthetic slides for the pathology tests (written once per session)."""

from __future__ import annotations

import pytest

from hccstrat.synthetic.wsi import default_latent, write_slide


@pytest.fixture(scope="session")
def synth_slide(tmp_path_factory):
    """A 2048 x 2048 synthetic slide with artefacts (mpp 0.5)."""
    d = tmp_path_factory.mktemp("synth")
    return write_slide(d / "slide.tiff", default_latent(), size=(2048, 2048), seed=3)
