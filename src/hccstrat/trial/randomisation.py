"""Concealed randomisation for the NCT07417800 RCT (model-assisted vs standard care).

Two methods:

- :class:`BlockRandomiser` — stratified permuted blocks with random block sizes. The
  whole sequence is generated up front (:class:`SealedSequence`) for declared strata
  (centre x risk group); each assignment is sealed by a hash commitment
  ``sha256(stratum|index|arm|nonce)`` whose list is published in the log's first entry;
  an assignment is revealed only when a patient is enrolled.
- :class:`MinimisationRandomiser` — Pocock–Simon minimisation (range of marginal
  totals, weighted factors) with a biased coin (probability ``p`` of the minimising
  arm). Its random numbers are pre-generated from the seed.

Both write to an :class:`~hccstrat.trial.allocation_log.AllocationLog` and can be
reproduced from the seed by :func:`audit_log`. The seed is the key of the whole
sequence: keep it secret until unblinding and use a large one (default: 128 random bits).
"""

from __future__ import annotations

import hashlib
import secrets
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np

from hccstrat.exceptions import ConfigError
from hccstrat.trial.allocation_log import AllocationLog, AllocationLogError, read_log, verify_log

__all__ = [
    "RCT_ARMS",
    "BlockRandomiser",
    "MinimisationRandomiser",
    "SealedSequence",
    "audit_log",
    "seed_digest",
    "stratum_key",
]

#: Arms of the NCT07417800 RCT.
RCT_ARMS = ("model_assisted", "standard_care")


def stratum_key(*levels: Any) -> str:
    """Stratum name from its levels (``stratum_key("C01", "high") == "C01|high"``)."""
    return "|".join(str(v) for v in levels)


def seed_digest(seed: int) -> str:
    """Commitment to the seed, recorded in the log (audit checks it)."""
    return hashlib.sha256(f"hccstrat-seed:{int(seed)}".encode()).hexdigest()


def _rng(seed: int, *labels: str) -> np.random.Generator:
    """Generator for ``labels`` under ``seed``, independent of creation order."""
    h = hashlib.sha256(("|".join(labels)).encode()).digest()
    return np.random.default_rng([int(seed) % (2**128), int.from_bytes(h[:16], "little")])


def _commit(stratum: str, index: int, arm: str, nonce: str) -> str:
    return hashlib.sha256(f"{stratum}|{index}|{arm}|{nonce}".encode()).hexdigest()


@dataclass
class SealedSequence:
    """Pre-generated, hash-committed assignments for every declared stratum.

    The arms are held privately; :meth:`reveal` opens one envelope. ``commitments``
    and :meth:`digest` can be published without disclosing any assignment.
    """

    arms: tuple[str, ...]
    block_sizes: tuple[int, ...]
    capacity: int
    strata: tuple[str, ...]
    _arms: dict[str, list[str]]
    _nonces: dict[str, list[str]]
    _blocks: dict[str, list[int]]
    commitments: dict[str, list[str]]

    @classmethod
    def generate(
        cls,
        strata: Sequence[str],
        *,
        seed: int,
        arms: Sequence[str] = RCT_ARMS,
        block_sizes: Sequence[int] = (4, 6),
        capacity: int = 1000,
    ) -> SealedSequence:
        """Generate permuted blocks (random size among ``block_sizes``) per stratum."""
        arms = tuple(str(a) for a in arms)
        if len(arms) < 2 or any(b % len(arms) for b in block_sizes) or not block_sizes:
            raise ConfigError(f"block sizes {tuple(block_sizes)} must be multiples of the "
                              f"number of arms ({len(arms)})", hint="e.g. block_sizes=(4, 6)")
        if len(set(strata)) != len(strata) or not strata:
            raise ConfigError("strata must be a non-empty list of distinct names")
        seq_arms, nonces, blocks, commits = {}, {}, {}, {}
        for s in strata:
            rng = _rng(seed, "blocks", s)
            out: list[str] = []
            bid: list[int] = []
            b = 0
            while len(out) < capacity:
                size = int(rng.choice(block_sizes))
                block = np.repeat(np.arange(len(arms)), size // len(arms))
                rng.shuffle(block)
                out += [arms[i] for i in block]
                bid += [b] * size
                b += 1
            seq_arms[s], blocks[s] = out[:capacity], bid[:capacity]
            nonces[s] = [rng.bytes(16).hex() for _ in range(capacity)]
            commits[s] = [_commit(s, i, a, n) for i, (a, n) in
                          enumerate(zip(seq_arms[s], nonces[s], strict=True))]
        return cls(arms, tuple(int(b) for b in block_sizes), int(capacity), tuple(strata),
                   seq_arms, nonces, blocks, commits)

    def digest(self) -> str:
        """SHA-256 over every commitment, in stratum order (published in the log)."""
        h = hashlib.sha256()
        for s in self.strata:
            for c in self.commitments[s]:
                h.update(c.encode())
        return h.hexdigest()

    def reveal(self, stratum: str, index: int) -> tuple[str, str, int]:
        """Open envelope ``index`` of ``stratum``: (arm, nonce, block id)."""
        if stratum not in self._arms:
            raise ConfigError(f"stratum {stratum!r} was not declared when the sequence was sealed",
                              hint=f"declared strata: {', '.join(self.strata[:10])}...")
        if index >= self.capacity:
            raise ConfigError(f"stratum {stratum!r} has used all {self.capacity} envelopes",
                              hint="seal a new sequence with a larger capacity")
        return self._arms[stratum][index], self._nonces[stratum][index], \
            self._blocks[stratum][index]


class BlockRandomiser:
    """Stratified permuted-block randomisation with a sealed sequence.

    Parameters
    ----------
    strata : sequence of str
        Every stratum (e.g. ``stratum_key(centre, risk_group)``), declared up front.
    seed : int, optional
        Key of the sequence; random 128-bit when omitted (read it from ``seed`` to
        archive it securely).
    arms, block_sizes, capacity
        See :meth:`SealedSequence.generate`.
    log : AllocationLog or path, optional
        Where assignments are recorded; the first entry (genesis) holds the parameters,
        the seed commitment and the sequence digest.
    study : str
    """

    method = "permuted_blocks"

    def __init__(self, strata: Sequence[str], *, seed: int | None = None,
                 arms: Sequence[str] = RCT_ARMS, block_sizes: Sequence[int] = (4, 6),
                 capacity: int = 1000, log: AllocationLog | str | Path | None = None,
                 study: str = "NCT07417800") -> None:
        self.seed = secrets.randbits(128) if seed is None else int(seed)
        self.sequence = SealedSequence.generate(list(strata), seed=self.seed, arms=arms,
                                                block_sizes=block_sizes, capacity=capacity)
        self.study = study
        self._used = dict.fromkeys(self.sequence.strata, 0)
        self.log = AllocationLog(log) if isinstance(log, (str, Path)) else log
        if self.log is not None:
            self._used = _resume(self.log, self.params())
            if len(self.log) == 0:
                self.log.append({"type": "genesis", **self.params()})

    def params(self) -> dict[str, Any]:
        """Parameters that reproduce the sequence (without the seed itself)."""
        return {"study": self.study, "method": self.method, "arms": list(self.sequence.arms),
                "block_sizes": list(self.sequence.block_sizes), "capacity": self.sequence.capacity,
                "strata": list(self.sequence.strata), "seed_sha256": seed_digest(self.seed),
                "sequence_sha256": self.sequence.digest()}

    def enrol(self, patient_id: str, stratum: str) -> dict[str, Any]:
        """Reveal the next assignment of ``stratum`` for ``patient_id`` and log it."""
        if self.log is not None and self.log.has_patient(str(patient_id)):
            raise AllocationLogError(f"patient {patient_id} is already allocated")
        idx = self._used.get(stratum, 0)
        arm, nonce, block = self.sequence.reveal(stratum, idx)
        rec = {"patient_id": str(patient_id), "stratum": stratum, "index": idx, "arm": arm,
               "block": block, "nonce": nonce,
               "commitment": self.sequence.commitments[stratum][idx],
               "method": self.method}
        self._used[stratum] = idx + 1
        if self.log is not None:
            self.log.append(rec)
        return rec


class MinimisationRandomiser:
    """Pocock–Simon minimisation with a biased coin.

    Parameters
    ----------
    factors : mapping of str to sequence
        Prognostic factors and their levels, e.g. ``{"centre": [...], "risk": [...]}``.
    weights : mapping, optional
        Factor weights (default 1 each).
    p : float
        Probability of assigning the arm that minimises imbalance (0.5 < p <= 1).
    seed, arms, log, study
        As for :class:`BlockRandomiser`; random numbers are pre-generated from ``seed``.
    """

    method = "minimisation"

    def __init__(self, factors: Mapping[str, Sequence[Any]], *, weights: Mapping[str, float]
                 | None = None, p: float = 0.8, seed: int | None = None,
                 arms: Sequence[str] = RCT_ARMS, capacity: int = 100_000,
                 log: AllocationLog | str | Path | None = None,
                 study: str = "NCT07417800") -> None:
        if not 0.5 < p <= 1.0:
            raise ConfigError(f"p={p} must be in (0.5, 1]", hint="Pocock–Simon uses e.g. 0.8")
        self.seed = secrets.randbits(128) if seed is None else int(seed)
        self.factors = {k: [str(v) for v in lv] for k, lv in factors.items()}
        self.weights = {k: float((weights or {}).get(k, 1.0)) for k in self.factors}
        self.p, self.arms, self.study, self.capacity = float(p), tuple(arms), study, capacity
        self._u = _rng(self.seed, "minimisation").random((capacity, 2))
        self._counts = {f: {lv: np.zeros(len(self.arms), int) for lv in lvls}
                        for f, lvls in self.factors.items()}
        self._n = 0
        self.log = AllocationLog(log) if isinstance(log, (str, Path)) else log
        if self.log is not None:
            _resume(self.log, self.params())
            for e in read_log(self.log.path):
                if e.get("type") == "allocation":
                    self._record(e["factors"], self.arms.index(e["arm"]))
            if len(self.log) == 0:
                self.log.append({"type": "genesis", **self.params()})

    def params(self) -> dict[str, Any]:
        """Parameters that reproduce the assignments (without the seed itself)."""
        return {"study": self.study, "method": self.method, "arms": list(self.arms),
                "factors": self.factors, "weights": self.weights, "p": self.p,
                "capacity": self.capacity, "seed_sha256": seed_digest(self.seed)}

    def _record(self, values: Mapping[str, Any], arm: int) -> None:
        for f in self.factors:
            self._counts[f][str(values[f])][arm] += 1
        self._n += 1

    def imbalance(self, values: Mapping[str, Any]) -> np.ndarray:
        """Weighted sum of ranges of marginal totals if the patient joined each arm."""
        g = np.zeros(len(self.arms))
        for f, w in self.weights.items():
            base = self._counts[f][str(values[f])]
            for a in range(len(self.arms)):
                c = base.copy()
                c[a] += 1
                g[a] += w * (c.max() - c.min())
        return g

    def enrol(self, patient_id: str, values: Mapping[str, Any]) -> dict[str, Any]:
        """Assign ``patient_id`` with factor levels ``values`` and log it."""
        for f, lvls in self.factors.items():
            if str(values.get(f)) not in lvls:
                raise ConfigError(f"patient {patient_id}: factor {f!r} level {values.get(f)!r} "
                                  f"is not declared", hint=f"declared levels: {lvls}")
        if self.log is not None and self.log.has_patient(str(patient_id)):
            raise AllocationLogError(f"patient {patient_id} is already allocated")
        if self._n >= self.capacity:
            raise ConfigError(f"minimisation capacity {self.capacity} reached")
        g = self.imbalance(values)
        best = np.flatnonzero(g == g.min())
        u_coin, u_pick = self._u[self._n]
        if len(best) == len(self.arms):
            arm = int(best[int(u_pick * len(best))])
        elif u_coin < self.p:
            arm = int(best[int(u_pick * len(best))])
        else:
            others = np.setdiff1d(np.arange(len(self.arms)), best)
            arm = int(others[int(u_pick * len(others))])
        rec = {"patient_id": str(patient_id), "index": self._n, "arm": self.arms[arm],
               "factors": {f: str(values[f]) for f in self.factors},
               "imbalance": [float(x) for x in g], "method": self.method}
        self._record(values, arm)
        if self.log is not None:
            self.log.append(rec)
        return rec


def _resume(log: AllocationLog, params: dict[str, Any]) -> dict[str, int]:
    """Check an existing log belongs to these parameters; return envelopes used per stratum."""
    entries = read_log(log.path)
    used: dict[str, int] = dict.fromkeys(params.get("strata", []), 0)
    if not entries:
        return used
    genesis = entries[0]
    if genesis.get("type") != "genesis" or any(genesis.get(k) != v for k, v in params.items()):
        raise AllocationLogError(f"{log.path} was started with other parameters or another seed",
                                 hint="open the log with the randomiser that created it")
    for e in entries[1:]:
        if e.get("type") == "allocation" and "stratum" in e:
            used[e["stratum"]] = max(used.get(e["stratum"], 0), int(e["index"]) + 1)
    return used


def audit_log(path: str | Path, seed: int, *, expected_head: str | None = None) -> dict[str, Any]:
    """Verify a log's chain and reproduce every assignment from ``seed``.

    Returns
    -------
    dict
        ``ok``, ``chain_ok``, ``seed_ok``, ``n_allocations``, ``mismatches`` (list of
        patient ids whose logged arm differs from the reproduced one) and ``problems``.
    """
    ver = verify_log(path, expected_head=expected_head)
    entries = read_log(path) if ver.ok else []
    out: dict[str, Any] = {"chain_ok": ver.ok, "problems": list(ver.problems), "mismatches": [],
                           "n_allocations": 0, "seed_ok": False}
    if not entries or entries[0].get("type") != "genesis":
        out["problems"].append("no genesis entry")
        out["ok"] = False
        return out
    g = entries[0]
    out["seed_ok"] = g.get("seed_sha256") == seed_digest(seed)
    allocs = [e for e in entries if e.get("type") == "allocation"]
    out["n_allocations"] = len(allocs)
    if g["method"] == "permuted_blocks":
        seq = SealedSequence.generate(g["strata"], seed=seed, arms=g["arms"],
                                      block_sizes=g["block_sizes"], capacity=g["capacity"])
        if seq.digest() != g["sequence_sha256"]:
            out["problems"].append("sequence reproduced from the seed differs from the sealed one")
        for e in allocs:
            arm, nonce, _ = seq.reveal(e["stratum"], int(e["index"]))
            if arm != e["arm"] or nonce != e["nonce"]:
                out["mismatches"].append(e["patient_id"])
    else:
        rz = MinimisationRandomiser(g["factors"], weights=g["weights"], p=g["p"], seed=seed,
                                    arms=g["arms"], capacity=g["capacity"], study=g["study"])
        for e in allocs:
            if rz.enrol(e["patient_id"], e["factors"])["arm"] != e["arm"]:
                out["mismatches"].append(e["patient_id"])
    out["ok"] = bool(out["chain_ok"] and out["seed_ok"] and not out["mismatches"]
                     and not out["problems"])
    return out
