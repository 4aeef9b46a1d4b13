"""Short version of the bounded loopback load test (benchmarks/load.py)."""

from __future__ import annotations

import importlib.util
from pathlib import Path

import pytest

BENCH = Path(__file__).resolve().parents[2] / "benchmarks" / "load.py"


@pytest.mark.slow
def test_short_load_no_errors_no_lost_writes(capsys):
    spec = importlib.util.spec_from_file_location("hcc_load_bench", BENCH)
    mod = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(mod)
    rc = mod.run(clients=6, duration=3.0, db=None)
    out = capsys.readouterr().out
    assert rc == 0, out
    assert "audit chain intact" in out
    acked = int(
        next(line.split()[2] for line in out.splitlines() if line.startswith("acknowledged writes"))
    )
    assert acked > 20  # the test did real work
