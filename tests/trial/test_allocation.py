"""PRE-rule allocation, concealed randomisation, hash-chained log and audit."""

from __future__ import annotations

import json

import numpy as np
import pandas as pd
import pytest

from hccstrat.exceptions import ConfigError, ModelError
from hccstrat.trial.allocation import ARM_NEOADJUVANT, ARM_RESECTION, allocate_pre
from hccstrat.trial.allocation_log import AllocationLog, AllocationLogError, verify_log
from hccstrat.trial.randomisation import (
    BlockRandomiser,
    MinimisationRandomiser,
    audit_log,
    stratum_key,
)


class _Model:
    model_version = "pre-test-1"

    def predict_risk(self, X):
        return X["x"].to_numpy(float)


def test_pre_rule_threshold_and_recording(tmp_path):
    df = pd.DataFrame({"patient_id": list("abcde"), "x": [0.49, 0.5, 0.51, 0.9, np.nan]})
    log = AllocationLog(tmp_path / "pre.jsonl", fsync=False)
    out = allocate_pre(df, risk=_Model(), eligible=[True, True, True, False, True], log=log)
    assert list(out["arm"][:3]) == [ARM_RESECTION, ARM_NEOADJUVANT, ARM_NEOADJUVANT]
    assert out["arm"][3] is None and "not eligible" in out["decision"][3]
    assert out["arm"][4] is None and "missing" in out["decision"][4]
    assert (out["model_version"] == "pre-test-1").all()
    assert len(log) == 3 and verify_log(log.path).ok
    # custom threshold, precomputed column
    df2 = pd.DataFrame({"patient_id": ["a", "b"], "pre_score": [0.3, 0.35]})
    out2 = allocate_pre(df2, threshold=0.33, model_version="v0")
    assert list(out2["arm"]) == [ARM_RESECTION, ARM_NEOADJUVANT]
    with pytest.raises(ConfigError, match="model version"):
        allocate_pre(df2)
    with pytest.raises(ModelError, match=r"\[0, 1\]"):
        allocate_pre(df2.assign(pre_score=[0.2, 1.7]), model_version="v0")


def _simulate_blocks(n, seed, strata, log=None):
    rz = BlockRandomiser(strata, seed=seed, block_sizes=(2, 4, 6), capacity=3000, log=log)
    rng = np.random.default_rng(0)
    picks = rng.choice(len(strata), size=n, p=np.linspace(1, 3, len(strata)) /
                       np.linspace(1, 3, len(strata)).sum())
    recs = [rz.enrol(f"P{i}", strata[k]) for i, k in enumerate(picks)]
    return rz, pd.DataFrame(recs)


def test_block_balance_over_10000_enrolments():
    strata = [stratum_key(c, r) for c in ("C1", "C2", "C3", "C4", "C5") for r in ("low", "high")]
    _, recs = _simulate_blocks(10_000, 11, strata)
    assert len(recs) == 10_000
    for _s, g in recs.groupby("stratum"):
        diff = np.cumsum(np.where(g["arm"] == "model_assisted", 1, -1))
        assert np.abs(diff).max() <= 3  # half the largest block
    # overall balance and random block sizes actually used
    counts = recs["arm"].value_counts()
    assert abs(counts.iloc[0] - counts.iloc[1]) <= 3 * len(strata)
    sizes = recs.groupby(["stratum", "block"]).size()
    assert set(sizes.iloc[:-1].unique()) >= {2, 4, 6}


def test_minimisation_balance_over_10000_enrolments():
    factors = {"centre": [f"C{i}" for i in range(5)], "risk": ["low", "high"]}
    rz = MinimisationRandomiser(factors, p=0.8, seed=5)
    rng = np.random.default_rng(1)
    rows = [rz.enrol(f"P{i}", {"centre": f"C{rng.integers(5)}",
                               "risk": "high" if rng.random() < 0.3 else "low"})
            for i in range(10_000)]
    df = pd.DataFrame([{**r["factors"], "arm": r["arm"]} for r in rows])
    for f in ("centre", "risk"):
        tab = pd.crosstab(df[f], df["arm"])
        assert (tab.max(axis=1) - tab.min(axis=1)).max() <= 3, tab
    # minimisation is not deterministic: the biased coin picks the other arm ~20 % of the time
    arms = ("model_assisted", "standard_care")
    decided = [r for r in rows if r["imbalance"][0] != r["imbalance"][1]]
    against = np.mean([r["arm"] != arms[int(np.argmin(r["imbalance"]))] for r in decided])
    assert 0.15 < against < 0.25


def test_same_seed_reproduces_and_concealment(tmp_path):
    strata = ["A|low", "A|high"]
    r1 = BlockRandomiser(strata, seed=123, capacity=50)
    r2 = BlockRandomiser(strata, seed=123, capacity=50)
    r3 = BlockRandomiser(strata, seed=124, capacity=50)
    a1 = [r1.enrol(f"p{i}", strata[i % 2])["arm"] for i in range(40)]
    a2 = [r2.enrol(f"p{i}", strata[i % 2])["arm"] for i in range(40)]
    a3 = [r3.enrol(f"p{i}", strata[i % 2])["arm"] for i in range(40)]
    assert a1 == a2 and a1 != a3
    assert r1.sequence.digest() == r2.sequence.digest()
    # the public commitments disclose no arm
    assert "model_assisted" not in json.dumps(r1.sequence.commitments)
    with pytest.raises(ConfigError, match="not declared"):
        r1.enrol("x", "B|low")


def test_log_tamper_detection_and_audit(tmp_path):
    path = tmp_path / "alloc.jsonl"
    strata = ["C1|low", "C1|high", "C2|low"]
    rz = BlockRandomiser(strata, seed=99, capacity=100, log=path)
    for i in range(30):
        rz.enrol(f"P{i}", strata[i % 3])
    head = rz.log.head
    assert verify_log(path, expected_head=head).ok
    rep = audit_log(path, seed=99, expected_head=head)
    assert rep["ok"] and rep["n_allocations"] == 30
    assert not audit_log(path, seed=98)["seed_ok"]
    with pytest.raises(AllocationLogError, match="already allocated"):
        rz.enrol("P3", "C1|low")
    # resume: a new randomiser continues the same sequence
    rz2 = BlockRandomiser(strata, seed=99, capacity=100, log=path)
    rz2.enrol("P30", "C1|low")
    assert audit_log(path, seed=99)["ok"]

    lines = path.read_text().splitlines()
    for k in range(1, len(lines)):  # editing any entry is detected at that entry
        bad = list(lines)
        entry = json.loads(bad[k])
        entry["arm"] = "standard_care" if entry.get("arm") == "model_assisted" else "model_assisted"
        bad[k] = json.dumps(entry)
        path.write_text("\n".join(bad) + "\n")
        ver = verify_log(path)
        assert not ver.ok and ver.first_bad_line == k + 1
    # deletion of a middle entry and truncation of the tail
    path.write_text("\n".join(lines[:5] + lines[6:]) + "\n")
    assert not verify_log(path).ok
    path.write_text("\n".join(lines[:-1]) + "\n")
    assert verify_log(path).ok and not verify_log(path, expected_head=rz2.log.head).ok
    # a damaged log refuses further appends
    path.write_text("\n".join([lines[0], lines[1].replace("P0", "PX")]) + "\n")
    with pytest.raises(AllocationLogError, match="failed verification"):
        AllocationLog(path)


def test_minimisation_log_audit(tmp_path):
    path = tmp_path / "min.jsonl"
    factors = {"centre": ["C1", "C2"], "risk": ["low", "high"]}
    rz = MinimisationRandomiser(factors, seed=7, log=AllocationLog(path, fsync=False))
    for i in range(50):
        rz.enrol(f"P{i}", {"centre": f"C{1 + i % 2}", "risk": "high" if i % 3 else "low"})
    assert audit_log(path, seed=7)["ok"]
    lines = path.read_text().splitlines()
    # forge a whole new chain (an insider rewriting the file): the chain verifies, but
    # the seed reproduces the true sequence and exposes the change
    from hccstrat.trial.allocation_log import entry_hash

    entries = [json.loads(x) for x in lines]
    e = entries[10]
    e["arm"] = "standard_care" if e["arm"] == "model_assisted" else "model_assisted"
    for k in range(10, len(entries)):
        entries[k]["prev"] = entries[k - 1]["hash"]
        entries[k]["hash"] = entry_hash(entries[k])
    path.write_text("\n".join(json.dumps(x) for x in entries) + "\n")
    assert verify_log(path).ok
    rep = audit_log(path, seed=7)
    assert not rep["ok"] and rep["mismatches"][0] == e["patient_id"]


def test_pre_rule_never_allocates_a_patient_twice(tmp_path):
    from hccstrat.exceptions import DataValidationError

    log = AllocationLog(tmp_path / "l.jsonl", fsync=False)
    dup = pd.DataFrame({"patient_id": ["a", "b", "a"], "pre_score": [0.7, 0.3, 0.2]})
    with pytest.raises(DataValidationError, match=r"row 3 \(patient a\).*occurs once"):
        allocate_pre(dup, model_version="v1", log=log)
    assert len(log) == 0  # refused before anything was logged
    allocate_pre(dup.iloc[:2], model_version="v1", log=log)
    again = allocate_pre(pd.DataFrame({"patient_id": ["a", "c"], "pre_score": [0.2, 0.9]}),
                         model_version="v1", log=log).set_index("patient_id")
    assert again.at["a", "arm"] == ARM_NEOADJUVANT  # keeps the logged arm, not re-decided
    assert "already allocated" in again.at["a", "decision"]
    assert again.at["c", "arm"] == ARM_NEOADJUVANT and len(log) == 3


@pytest.mark.parametrize("method", ["blocks", "minimisation"])
def test_cli_randomisation_rerun_and_bad_rows(tmp_path, method):
    from typer.testing import CliRunner

    from hccstrat.cli import main
    from hccstrat.cli.trial import app

    log, first = tmp_path / "l.jsonl", tmp_path / "p1.csv"
    pd.DataFrame({"patient_id": ["a", "b"], "centre": "A", "risk_group": "low"}).to_csv(
        first, index=False)
    args = ["allocate", "--method", method, "--seed", "3", "--log", str(log)]
    r = CliRunner().invoke(app, [*args, str(first), "--out", str(tmp_path / "o1.csv")])
    assert r.exit_code == 0, r.output
    arms = pd.read_csv(tmp_path / "o1.csv").set_index("patient_id")["arm"]
    second = tmp_path / "p2.csv"
    pd.DataFrame({"patient_id": ["a", "b", "c"], "centre": "A", "risk_group": "low"}).to_csv(
        second, index=False)
    r = CliRunner().invoke(app, [*args, str(second), "--out", str(tmp_path / "o2.csv")])
    assert r.exit_code == 0, r.output  # before: 'patient a is already allocated', no output
    out = pd.read_csv(tmp_path / "o2.csv").set_index("patient_id")
    assert out.loc[["a", "b"], "arm"].tolist() == arms.tolist()
    assert out.at["c", "arm"] in ("model_assisted", "standard_care")
    assert verify_log(log).n_entries == 4  # genesis + a, b, c: nobody randomised twice
    bad = tmp_path / "bad.csv"
    bad.write_text("patient_id,centre,risk_group\nd,A,low\nd,A,low\ne,,low\n")
    assert main(["trial", *args, str(bad), "--out", str(tmp_path / "o3.csv")]) == 5
    assert verify_log(log).n_entries == 4 and not (tmp_path / "o3.csv").exists()
