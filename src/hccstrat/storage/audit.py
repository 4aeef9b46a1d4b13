"""Append-only, hash-chained audit log.

Every write of the registry appends one :class:`~hccstrat.storage.models.AuditEvent`
(who, what, when, state before and after). Each event's ``hash`` is the SHA-256 of
its canonical JSON, which includes the previous event's hash, so changing, removing
or reordering any event breaks the chain from that point on; :func:`verify_chain`
finds the first broken link. The database also refuses UPDATE and DELETE on the
table (triggers created by the initial migration).

Appending first updates the single ``audit_head`` row, which takes the write lock
(SQLite) or a row lock (PostgreSQL): concurrent writers therefore extend the chain
one at a time, without forks.
"""

from __future__ import annotations

import datetime as dt
import hashlib
import json
from dataclasses import dataclass, field
from typing import Any

from sqlalchemy import select, text
from sqlalchemy.orm import Session

from hccstrat.storage.models import AuditEvent

__all__ = ["GENESIS", "AuditVerification", "append_event", "event_hash", "jsonable", "verify_chain"]

#: hash preceding the first event
GENESIS = "0" * 64


def jsonable(obj: Any) -> Any:
    """Round-trip ``obj`` through JSON (dates become ISO strings) so hashes are stable."""
    if obj is None:
        return None
    return json.loads(json.dumps(obj, default=_default, sort_keys=True))


def _default(obj: Any) -> Any:
    if isinstance(obj, (dt.date, dt.datetime)):
        return obj.isoformat()
    if hasattr(obj, "item"):  # numpy scalars
        return obj.item()
    return str(obj)


def event_hash(fields: dict[str, Any]) -> str:
    """SHA-256 of the canonical JSON of an event's fields (``hash`` excluded)."""
    payload = {k: v for k, v in fields.items() if k != "hash"}
    blob = json.dumps(payload, sort_keys=True, separators=(",", ":"), ensure_ascii=True)
    return hashlib.sha256(blob.encode("utf-8")).hexdigest()


def _fields(ev: AuditEvent) -> dict[str, Any]:
    return {
        "seq": ev.seq,
        "ts": ev.ts,
        "actor": ev.actor,
        "action": ev.action,
        "entity": ev.entity,
        "entity_id": ev.entity_id,
        "centre_id": ev.centre_id,
        "before": ev.before,
        "after": ev.after,
        "prev_hash": ev.prev_hash,
    }


def append_event(
    session: Session,
    *,
    actor: str,
    action: str,
    entity: str,
    entity_id: str | int,
    centre_id: int | None = None,
    before: dict[str, Any] | None = None,
    after: dict[str, Any] | None = None,
) -> AuditEvent:
    """Append one event to the chain in the caller's transaction (not committed here).

    Parameters
    ----------
    session : Session
        Session whose transaction also holds the write being audited.
    actor : str
        Username (or ``"system"``) responsible for the write.
    action : str
        Verb such as ``"create"``, ``"update"``, ``"login"``.
    entity, entity_id : str
        Kind and identifier of the object written.
    centre_id : int, optional
        Centre the object belongs to.
    before, after : dict, optional
        State before and after the write (never raw PHI: the registry holds none).
    """
    # lock the head first: serialises concurrent appenders on both back ends
    session.execute(text("UPDATE audit_head SET seq = seq + 1 WHERE id = 1"))
    seq, prev = session.execute(text("SELECT seq, hash FROM audit_head WHERE id = 1")).one()
    ev = AuditEvent(
        seq=int(seq),
        ts=dt.datetime.now(dt.UTC).isoformat(timespec="microseconds"),
        actor=str(actor),
        action=action,
        entity=entity,
        entity_id=str(entity_id),
        centre_id=centre_id,
        before=jsonable(before),
        after=jsonable(after),
        prev_hash=prev,
        hash="",
    )
    ev.hash = event_hash(_fields(ev))
    session.add(ev)
    session.execute(
        text("UPDATE audit_head SET hash = :h WHERE id = 1").bindparams(h=ev.hash)
    )
    return ev


@dataclass
class AuditVerification:
    """Result of :func:`verify_chain`."""

    n_events: int = 0
    ok: bool = True
    problems: list[str] = field(default_factory=list)
    first_bad_seq: int | None = None

    def summary(self) -> str:
        """One-line summary."""
        if self.ok:
            return f"audit chain intact: {self.n_events} event(s)"
        return f"audit chain BROKEN at event {self.first_bad_seq}: " + "; ".join(self.problems[:5])


def verify_chain(session: Session, *, batch: int = 2000) -> AuditVerification:
    """Recompute every hash and check the links, the sequence and the head row."""
    out = AuditVerification()
    prev = GENESIS
    expected_seq = 1

    def bad(seq: int, msg: str) -> None:
        out.ok = False
        out.problems.append(msg)
        if out.first_bad_seq is None:
            out.first_bad_seq = seq

    last = 0
    while True:
        rows = session.scalars(
            select(AuditEvent).where(AuditEvent.seq > last).order_by(AuditEvent.seq).limit(batch)
        ).all()
        if not rows:
            break
        for ev in rows:
            out.n_events += 1
            if ev.seq != expected_seq:
                bad(ev.seq, f"event {expected_seq} is missing (next is {ev.seq})")
            if ev.prev_hash != prev:
                bad(ev.seq, f"event {ev.seq} does not link to the previous event")
            if event_hash(_fields(ev)) != ev.hash:
                bad(ev.seq, f"event {ev.seq} content does not match its hash")
            prev = ev.hash
            expected_seq = ev.seq + 1
            last = ev.seq
    head_seq, head_hash = session.execute(
        text("SELECT seq, hash FROM audit_head WHERE id = 1")
    ).one()
    if head_seq != expected_seq - 1 or head_hash != prev:
        bad(expected_seq, f"chain head (event {head_seq}) does not match the last event")
    return out
