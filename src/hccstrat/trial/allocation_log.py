"""Append-only, hash-chained allocation log (JSON lines, SHA-256 chain).

Each line is one JSON object with ``seq`` (0, 1, ...), ``prev`` (hash of the previous
entry; 64 zeros for the first) and ``hash`` = SHA-256 of ``prev`` followed by the
canonical JSON of the entry without ``hash``. Editing, inserting, reordering or deleting
any entry breaks the chain from that entry on; truncating the tail is detected by
comparing :attr:`AllocationLog.head` with a copy kept elsewhere (``expected_head``).

The file is opened in append mode and every entry is flushed (and fsync'ed unless
``fsync=False``): an allocation log is never rewritten, so the atomic write-then-rename
used for other outputs does not apply here.
"""

from __future__ import annotations

import datetime as _dt
import hashlib
import json
import os
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from hccstrat.exceptions import HccstratError

__all__ = [
    "GENESIS_PREV",
    "AllocationLog",
    "AllocationLogError",
    "LogVerification",
    "canonical_json",
    "entry_hash",
    "read_log",
    "verify_log",
]

GENESIS_PREV = "0" * 64


class AllocationLogError(HccstratError):
    """The allocation log is corrupt, was edited, or an allocation cannot be logged."""

    code = "HCC-TRIAL-001"
    exit_code = 8


def canonical_json(obj: Any) -> str:
    """Deterministic JSON text (sorted keys, no spaces, ASCII)."""
    return json.dumps(obj, sort_keys=True, separators=(",", ":"), ensure_ascii=True,
                      default=str)


def entry_hash(entry: dict[str, Any]) -> str:
    """SHA-256 of ``entry['prev']`` + canonical JSON of the entry without ``hash``."""
    body = {k: v for k, v in entry.items() if k != "hash"}
    return hashlib.sha256((entry["prev"] + canonical_json(body)).encode("ascii")).hexdigest()


@dataclass
class LogVerification:
    """Result of :func:`verify_log`.

    Attributes
    ----------
    ok : bool
    n_entries : int
    head : str
        Hash of the last valid entry.
    problems : list of str
        One message per problem, naming the line (1-based).
    first_bad_line : int or None
    """

    ok: bool
    n_entries: int
    head: str
    problems: list[str] = field(default_factory=list)
    first_bad_line: int | None = None


def read_log(path: str | os.PathLike) -> list[dict[str, Any]]:
    """Read every entry of a log (no verification)."""
    path = Path(path)
    if not path.exists():
        return []
    out = []
    with open(path, encoding="ascii") as fh:
        for i, line in enumerate(fh, 1):
            if not line.strip():
                continue
            try:
                out.append(json.loads(line))
            except json.JSONDecodeError as err:
                raise AllocationLogError(f"{path}: line {i} is not valid JSON ({err})",
                                         hint="the log was damaged; restore it from a backup") \
                    from err
    return out


def verify_log(path: str | os.PathLike, *, expected_head: str | None = None) -> LogVerification:
    """Check the hash chain of a log file.

    Parameters
    ----------
    path : path-like
    expected_head : str, optional
        Head hash recorded elsewhere (e.g. in the trial master file); detects truncation.
    """
    problems: list[str] = []
    first_bad = None
    prev = GENESIS_PREV
    entries: list[dict[str, Any]] = []
    try:
        entries = read_log(path)
    except AllocationLogError as err:
        return LogVerification(False, 0, prev, [str(err)], 1)
    for i, e in enumerate(entries):
        line = i + 1
        msg = None
        if not isinstance(e, dict) or "hash" not in e or "prev" not in e:
            msg = f"line {line}: entry lacks 'prev'/'hash'"
        elif e.get("seq") != i:
            msg = (f"line {line}: seq {e.get('seq')!r} where {i} was expected "
                   "(entry removed or moved)")
        elif e["prev"] != prev:
            msg = f"line {line}: 'prev' does not match the hash of line {line - 1}"
        elif entry_hash(e) != e["hash"]:
            msg = f"line {line}: content does not match its hash (entry was edited)"
        if msg:
            problems.append(msg)
            first_bad = first_bad or line
            break
        prev = e["hash"]
    if not problems and expected_head is not None and prev != expected_head:
        problems.append(f"head {prev[:12]}... differs from the expected {expected_head[:12]}... "
                        "(entries were removed from the end)")
        first_bad = len(entries)
    return LogVerification(not problems, len(entries), prev, problems, first_bad)


class AllocationLog:
    """Append-only hash-chained JSON-lines log.

    Parameters
    ----------
    path : path-like
        Log file; created when absent. An existing file is verified first.
    fsync : bool
        Force every entry to disk (default). Turn off only for simulations.

    Raises
    ------
    AllocationLogError
        When an existing log fails verification.
    """

    def __init__(self, path: str | os.PathLike, *, fsync: bool = True) -> None:
        self.path = Path(path)
        self.fsync = fsync
        ver = verify_log(self.path)
        if not ver.ok:
            raise AllocationLogError(
                f"allocation log {self.path} failed verification: {'; '.join(ver.problems)}",
                hint="do not append to a damaged log; investigate and restore it")
        self._n = ver.n_entries
        self._head = ver.head
        self._patients = {e.get("patient_id") for e in read_log(self.path)
                          if e.get("type") == "allocation"}

    @property
    def head(self) -> str:
        """Hash of the last entry (keep a copy elsewhere to detect truncation)."""
        return self._head

    def __len__(self) -> int:
        return self._n

    def has_patient(self, patient_id: str) -> bool:
        """Whether ``patient_id`` already has an allocation entry."""
        return str(patient_id) in self._patients

    def append(self, record: dict[str, Any]) -> dict[str, Any]:
        """Append one record (``type`` defaults to ``"allocation"``); return the entry."""
        entry = {"type": "allocation", **record}
        if entry["type"] == "allocation":
            pid = str(entry.get("patient_id"))
            if pid in self._patients:
                raise AllocationLogError(f"patient {pid} is already allocated in {self.path}",
                                         hint="a patient is allocated once; check the id")
        entry.update(seq=self._n, prev=self._head,
                     logged_at=_dt.datetime.now(_dt.UTC).isoformat(timespec="microseconds"))
        entry["hash"] = entry_hash(entry)
        self.path.parent.mkdir(parents=True, exist_ok=True)
        with open(self.path, "a", encoding="ascii") as fh:
            fh.write(canonical_json(entry) + "\n")
            fh.flush()
            if self.fsync:
                os.fsync(fh.fileno())
        self._n += 1
        self._head = entry["hash"]
        if entry["type"] == "allocation":
            self._patients.add(str(entry.get("patient_id")))
        return entry
