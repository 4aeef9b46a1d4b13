"""Centres and accounts (admin only)."""

from __future__ import annotations

from fastapi import APIRouter, Request
from sqlalchemy import select
from sqlalchemy.orm import Session

from hccstrat.service.deps import DB, Allowed
from hccstrat.service.schemas import CentreIn, UserIn, UserPatch
from hccstrat.service.security import hash_password
from hccstrat.storage.audit import append_event
from hccstrat.storage.models import Centre, User
from hccstrat.storage.repositories import (
    ConflictError,
    RecordNotFoundError,
    audited_add,
    get_centre,
    snapshot,
)

__all__ = ["create_user", "router"]

router = APIRouter(prefix="/api", tags=["admin"])
_ADMIN = Allowed("users:admin")


def _user_out(u: User) -> dict[str, object]:
    return {"username": u.username, "role": u.role, "active": u.active,
            "centre": u.centre.code if u.centre else None}


def create_user(session: Session, hasher, actor_scope, body: UserIn) -> User:
    """Create an account (shared by the API and ``hccstrat users create-admin``)."""
    if session.scalar(select(User.id).where(User.username == body.username)) is not None:
        raise ConflictError(f"user {body.username!r} already exists", hint="pick another name")
    centre = get_centre(session, body.centre) if body.centre else None
    user = User(username=body.username, password_hash=hash_password(hasher, body.password),
                role=body.role, centre_id=centre.id if centre else None)
    return audited_add(session, actor_scope, user, entity="user",
                       centre_id=centre.id if centre else None)


@router.get("/centres", summary="List centres")
def list_centres(_p: _ADMIN, session: DB):
    return [{"code": c.code, "name": c.name} for c in session.scalars(select(Centre)).all()]


@router.post("/centres", status_code=201, summary="Create a centre")
def create_centre(body: CentreIn, p: _ADMIN,
                  session: DB):
    if session.scalar(select(Centre.id).where(Centre.code == body.code)) is not None:
        raise ConflictError(f"centre {body.code!r} already exists", hint="use another code")
    c = audited_add(session, p.scope, Centre(code=body.code, name=body.name), entity="centre",
                    centre_id=None)
    session.commit()
    return {"code": c.code, "name": c.name}


@router.get("/users", summary="List accounts")
def list_users(p: _ADMIN, session: DB):
    q = select(User).order_by(User.id)
    if p.centre_id is not None:  # a centre's admin manages that centre's accounts only
        q = q.where(User.centre_id == p.centre_id)
    return [_user_out(u) for u in session.scalars(q).all()]


@router.post("/users", status_code=201, summary="Create an account")
def post_user(body: UserIn, request: Request, p: _ADMIN,
              session: DB):
    if p.centre_id is not None:
        own = session.get(Centre, p.centre_id).code
        if body.centre != own:
            raise RecordNotFoundError(f"centre {body.centre!r} not found",
                                      hint=f"you can only create accounts of centre {own}")
    user = create_user(session, request.app.state.hasher, p.scope, body)
    session.commit()
    return _user_out(user)


@router.patch("/users/{username}", summary="Disable/enable an account or change its role")
def patch_user(username: str, body: UserPatch, p: _ADMIN,
               session: DB):
    user = session.scalar(select(User).where(User.username == username))
    if user is None or not p.scope.allows(user.centre_id):
        raise RecordNotFoundError(f"user {username!r} not found", hint="check the name")
    before = snapshot(user)
    if body.active is not None:
        user.active = body.active
    if body.role is not None:
        user.role = body.role
    session.flush()
    append_event(session, actor=p.username, action="update", entity="user", entity_id=user.id,
                 centre_id=user.centre_id, before=before, after=snapshot(user))
    session.commit()
    return _user_out(user)
