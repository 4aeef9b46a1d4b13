"""Audit log: verification and listing (admin and monitor)."""

from __future__ import annotations

from typing import Annotated

from fastapi import APIRouter, Query
from sqlalchemy import select

from hccstrat.service.deps import DB, Allowed
from hccstrat.storage.audit import verify_chain
from hccstrat.storage.models import AuditEvent

__all__ = ["router"]

router = APIRouter(prefix="/api/audit", tags=["audit"])
_READ = Allowed("audit:read")


@router.get("/verify", summary="Recompute the hash chain")
def verify(session: DB, p: _READ):
    res = verify_chain(session)
    return {"ok": res.ok, "n_events": res.n_events, "first_bad_seq": res.first_bad_seq,
            "problems": res.problems[:20]}


@router.get("/events", summary="Latest audit events (of your centre unless you see all)")
def events(session: DB, p: _READ, limit: Annotated[int, Query(ge=1, le=1000)] = 100):
    q = select(AuditEvent)
    if p.centre_id is not None:
        q = q.where(AuditEvent.centre_id == p.centre_id)
    rows = session.scalars(q.order_by(AuditEvent.seq.desc()).limit(limit)).all()
    return [{"seq": e.seq, "ts": e.ts, "actor": e.actor, "action": e.action, "entity": e.entity,
             "entity_id": e.entity_id, "hash": e.hash} for e in rows]
