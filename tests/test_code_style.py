"""The code base stays ruff clean (the rules in pyproject.toml), checked in CI."""

from __future__ import annotations

import shutil
import subprocess
import sys
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[1]


def test_ruff_reports_nothing():
    # the environment's own ruff (pinned by the test extra) before one on PATH
    ruff = Path(sys.executable).with_name("ruff")
    ruff = str(ruff) if ruff.is_file() else shutil.which("ruff")
    if ruff is None:
        pytest.skip("ruff is not installed: pip install 'hccstrat[test]'")
    res = subprocess.run(
        [ruff, "check", "--no-cache", "src", "tests", "benchmarks"],
        cwd=ROOT, capture_output=True, text=True, timeout=120,
    )
    assert res.returncode == 0, res.stdout + res.stderr
