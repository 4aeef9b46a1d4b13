"""Shared pytest fixtures."""

from __future__ import annotations

from pathlib import Path

import pytest

REPO = Path(__file__).resolve().parents[1]
FIXTURES = REPO.parent / "shared" / "fixtures"


@pytest.fixture(scope="session")
def fixtures_dir() -> Path:
    """Path to ../shared/fixtures (real, openly licensed slides); skips when absent."""
    if not (FIXTURES / "wsi").is_dir():
        pytest.skip(
            f"real-image fixtures not found at {FIXTURES} (clone with ../shared beside the repo)"
        )
    return FIXTURES
