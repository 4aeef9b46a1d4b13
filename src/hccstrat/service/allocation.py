"""Trial allocation of the service, on the library's randomisers and allocation log.

The API and the ``hccstrat trial allocate`` command share one implementation:

- **PRE rule** (NCT07282184): :func:`hccstrat.trial.allocation.allocate_pre` with the
  patient's latest stored PRE score and its model version;
- **randomisation**: :class:`hccstrat.trial.randomisation.BlockRandomiser` (permuted
  blocks of random size 4 or 6) stratified by centre x risk group (PRE score >= the
  threshold: ``high``; below: ``low``; no score: ``unknown``).

Concealment: each stratum's whole sequence is generated up front from the trial's
secret seed and sealed by hash commitments recorded in the first entry of that
stratum's log; an assignment is revealed only when an enrolled patient is allocated.
The seed is 128 random bits kept in ``<data_dir>/keys/<trial>.seed`` (mode 0600, never
in the database). Nothing else is kept in memory: on every allocation the randomiser
is rebuilt from the seed and the log (the number of envelopes already opened), so the
state survives restarts and several server processes, which are serialised by the
registry's write lock taken by the caller.

Every decision is appended to a hash-chained
:class:`~hccstrat.trial.allocation_log.AllocationLog` (one file per stratum, and one
for the PRE rule, under ``<data_dir>/trials/<trial>/``) *before* the database row is
committed; the row stores the entry's hash. If the commit fails after the entry was
written, a retry for the same patient reuses the logged decision instead of opening a
new envelope. :func:`audit_allocations` checks each log's chain, reproduces every
randomised arm from the seed (:func:`hccstrat.trial.randomisation.audit_log`) and
checks that every allocation in the database is in its log.
"""

from __future__ import annotations

import logging
import os
import secrets
from collections.abc import Iterable
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from hccstrat.exceptions import ConfigError

__all__ = [
    "BLOCK_SIZES",
    "CAPACITY",
    "RISK_GROUPS",
    "TRIALS",
    "AllocationDecision",
    "allocate_by_pre_rule",
    "audit_allocations",
    "randomisation_seed",
    "randomise",
    "risk_group",
    "trial_config",
    "trial_dir",
]

log = logging.getLogger(__name__)

#: Risk groups used as the second stratification factor.
RISK_GROUPS = ("high", "low", "unknown")
#: Block sizes of the permuted blocks (chosen at random per block).
BLOCK_SIZES = (4, 6)
#: Envelopes sealed per stratum.
CAPACITY = 1000


def _trials() -> dict[str, dict[str, Any]]:
    from hccstrat.trial.allocation import PRE_ARMS
    from hccstrat.trial.randomisation import RCT_ARMS

    return {
        "NCT07282184": {"ruleset": "nct07282184", "threshold": 0.5, "pre_arms": PRE_ARMS,
                        "random_arms": PRE_ARMS},
        "NCT07417800": {"ruleset": "nct07417800", "threshold": 0.5, "pre_arms": None,
                        "random_arms": RCT_ARMS},
    }


#: trial id -> eligibility rule set, PRE threshold and arms (the library's labels)
TRIALS: dict[str, dict[str, Any]] = _trials()


def trial_config(trial: str) -> dict[str, Any]:
    """Configuration of a trial.

    Raises
    ------
    RecordNotFoundError
        When the trial is unknown.
    """
    from hccstrat.storage.repositories import RecordNotFoundError

    if trial not in TRIALS:
        raise RecordNotFoundError(f"trial {trial!r} unknown", hint="one of " + ", ".join(TRIALS))
    return TRIALS[trial]


def trial_dir(data_dir: str | Path, trial: str) -> Path:
    """Folder of a trial's allocation logs."""
    trial_config(trial)
    return Path(data_dir) / "trials" / trial


def randomisation_seed(data_dir: str | Path, trial: str) -> int:
    """The trial's secret randomisation seed (128 bits), created on first use.

    Kept in ``<data_dir>/keys/<trial>.seed`` with mode 0600; archive it with the trial
    master file: :func:`audit_allocations` (and the statistician at unblinding) needs it.
    """
    trial_config(trial)
    path = Path(data_dir) / "keys" / f"{trial}.seed"
    if not path.exists():
        path.parent.mkdir(parents=True, exist_ok=True)
        try:
            fd = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o600)
        except FileExistsError:  # another process created it first
            pass
        else:
            with os.fdopen(fd, "w") as fh:
                fh.write(str(secrets.randbits(128)))
                fh.flush()
                os.fsync(fh.fileno())
    text = path.read_text().strip()
    if not text.isdigit():
        raise ConfigError(f"randomisation seed file {path} is damaged",
                          hint="restore it from the trial master file backup")
    return int(text)


def risk_group(score: float | None, threshold: float) -> str:
    """``high`` (score >= threshold), ``low``, or ``unknown`` when there is no score."""
    if score is None:
        return "unknown"
    return "high" if float(score) >= threshold else "low"


@dataclass(frozen=True)
class AllocationDecision:
    """An arm with its provenance (what the database row mirrors)."""

    arm: str
    method: str  # "pre_rule" or "permuted_blocks"
    stratum: str | None
    index: int | None
    score: float | None
    model_version: str | None
    log_path: str
    log_hash: str
    reused: bool = False


def _logged(path: Path, patient_key: str) -> dict[str, Any] | None:
    from hccstrat.trial.allocation_log import read_log

    for e in read_log(path):
        if e.get("type") == "allocation" and e.get("patient_id") == patient_key:
            return e
    return None


def _blocks_log(data_dir: str | Path, trial: str, centre: str, risk: str) -> Path:
    if risk not in RISK_GROUPS:
        raise ConfigError(f"risk group {risk!r} unknown", hint=f"one of {RISK_GROUPS}")
    return trial_dir(data_dir, trial) / f"blocks-{centre}.{risk}.jsonl"


def randomise(data_dir: str | Path, trial: str, *, patient_key: str, centre: str,
              risk: str) -> AllocationDecision:
    """Reveal the next sealed assignment of stratum ``centre|risk`` for ``patient_key``.

    The caller holds the registry's write lock (allocations are serialised).

    Parameters
    ----------
    data_dir : path-like
        Service data folder (logs and seed).
    trial : str
    patient_key : str
        Pseudonymised patient id (one allocation per patient and trial).
    centre : str
        Centre code.
    risk : {"high", "low", "unknown"}
    """
    from hccstrat.trial.randomisation import BlockRandomiser, stratum_key

    cfg = trial_config(trial)
    path = _blocks_log(data_dir, trial, centre, risk)
    stratum = stratum_key(centre, risk)
    prev = _logged(path, patient_key)
    if prev is not None:
        log.warning("allocation of a patient found in %s: reusing the logged envelope", path.name)
        return AllocationDecision(prev["arm"], "permuted_blocks", stratum, int(prev["index"]),
                                  None, None, str(path), prev["hash"], reused=True)
    rz = BlockRandomiser([stratum], seed=randomisation_seed(data_dir, trial),
                         arms=cfg["random_arms"], block_sizes=BLOCK_SIZES, capacity=CAPACITY,
                         log=path, study=trial)
    rec = rz.enrol(patient_key, stratum)
    return AllocationDecision(rec["arm"], "permuted_blocks", stratum, int(rec["index"]), None,
                              None, str(path), rz.log.head)


def allocate_by_pre_rule(data_dir: str | Path, trial: str, *, patient_key: str, score: float,
                         model_version: str) -> AllocationDecision:
    """Assign by the PRE rule (:func:`hccstrat.trial.allocation.allocate_pre`) and log it."""
    import pandas as pd

    from hccstrat.trial.allocation import allocate_pre
    from hccstrat.trial.allocation_log import AllocationLog

    cfg = trial_config(trial)
    if not cfg["pre_arms"]:
        from hccstrat.storage.repositories import ConflictError

        raise ConflictError(f"{trial} does not allocate by the PRE rule",
                            hint="use method 'randomised'")
    path = trial_dir(data_dir, trial) / "pre_rule.jsonl"
    prev = _logged(path, patient_key)
    if prev is not None:
        return AllocationDecision(prev["arm"], "pre_rule", None, None, prev["pre_score"],
                                  prev["model_version"], str(path), prev["hash"], reused=True)
    alog = AllocationLog(path)
    res = allocate_pre(pd.DataFrame({"patient_id": [patient_key], "pre_score": [float(score)]}),
                       threshold=cfg["threshold"], model_version=model_version, log=alog,
                       time_col=None)
    return AllocationDecision(str(res["arm"].iloc[0]), "pre_rule", None, None, float(score),
                              model_version, str(path), alog.head)


def audit_allocations(data_dir: str | Path, trial: str,
                      rows: Iterable[dict[str, Any]] = ()) -> dict[str, Any]:
    """Check a trial's allocation logs against the seed and the database.

    Parameters
    ----------
    data_dir : path-like
    trial : str
    rows : iterable of dict
        Allocations of the database: ``patient_id``, ``arm``, ``log_path``, ``log_hash``.

    Returns
    -------
    dict
        ``ok``, ``logs`` (per file: chain, seed and reproduction results) and
        ``problems`` (allocations of the database missing from, or differing from, the logs).
    """
    from hccstrat.trial.allocation_log import read_log, verify_log
    from hccstrat.trial.randomisation import audit_log

    folder = trial_dir(data_dir, trial)
    seed_file = Path(data_dir) / "keys" / f"{trial}.seed"
    seed = randomisation_seed(data_dir, trial) if seed_file.exists() else None
    logs: dict[str, Any] = {}
    by_hash: dict[str, dict[str, Any]] = {}
    ok = True
    for path in sorted(folder.glob("*.jsonl")) if folder.is_dir() else []:
        if path.name.startswith("blocks-") and seed is not None:
            rep = audit_log(path, seed)
        else:
            ver = verify_log(path)
            rep = {"ok": ver.ok, "chain_ok": ver.ok, "problems": list(ver.problems),
                   "n_allocations": sum(e.get("type") == "allocation" for e in read_log(path))
                   if ver.ok else 0, "mismatches": []}
        logs[path.name] = rep
        ok &= bool(rep["ok"])
        if rep["chain_ok"]:
            for e in read_log(path):
                by_hash[e["hash"]] = e
    problems = []
    for r in rows:
        e = by_hash.get(str(r.get("log_hash")))
        if e is None:
            problems.append(f"allocation of {r['patient_id']} is missing from the logs")
        elif e.get("patient_id") != r["patient_id"] or e.get("arm") != r["arm"]:
            problems.append(f"allocation of {r['patient_id']} differs from its log entry")
    return {"ok": bool(ok and not problems), "logs": logs, "problems": problems}
