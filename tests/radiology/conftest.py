"""Fixtures of the MRI tests: small synthetic studies written once per session."""

from __future__ import annotations

import pytest

SMALL = {"shape": (64, 64, 24), "spacing": (6.0, 6.0, 8.0)}


@pytest.fixture(scope="session")
def mri_root(tmp_path_factory):
    """Four small studies, one per vendor (aggressive for GE and UIH)."""
    from hccstrat.synthetic.mri import default_latent, write_study

    root = tmp_path_factory.mktemp("mri")
    infos = {}
    for k, vendor in enumerate(("GE", "Siemens", "Philips", "UIH")):
        infos[vendor] = write_study(
            root / vendor, default_latent(vendor in ("GE", "UIH")), vendor=vendor,
            patient_id=f"P{vendor}", seed=k, study_date="2024-01-10",
            write_dicom_seg=vendor == "GE", **SMALL,
        )
    return root, infos


@pytest.fixture(scope="session")
def small():
    """Size of the small synthetic studies (quick tests)."""
    return dict(SMALL)
