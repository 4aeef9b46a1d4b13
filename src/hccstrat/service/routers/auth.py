"""Log in and out."""

from __future__ import annotations

from fastapi import APIRouter, Request
from sqlalchemy import select
from sqlalchemy.orm import Session

from hccstrat.service.deps import DB, Authenticated
from hccstrat.service.schemas import LoginIn, TokenOut
from hccstrat.service.security import (
    AuthError,
    issue_token,
    revoke_token,
    verify_password,
)
from hccstrat.storage.audit import append_event
from hccstrat.storage.models import User

__all__ = ["login_user", "router"]

router = APIRouter(prefix="/api/auth", tags=["auth"])


def login_user(request: Request, session: Session, username: str, password: str) -> TokenOut:
    """Check credentials (rate limited) and issue a token; audits the login."""
    state = request.app.state
    address = request.client.host if request.client else "?"
    state.limiter.attempt(username, address)
    user = session.scalar(select(User).where(User.username == username))
    if user is None or not user.active or not verify_password(
        state.hasher, user.password_hash, password
    ):
        raise AuthError("wrong username or password", hint="check both and retry")
    state.limiter.succeeded(username, address)
    token, expires = issue_token(session, user, state.settings.token_ttl_minutes)
    append_event(session, actor=user.username, action="login", entity="user",
                 entity_id=user.id, centre_id=user.centre_id)
    session.commit()
    return TokenOut(access_token=token, expires_at=expires, role=user.role,
                    centre=user.centre.code if user.centre else None)


@router.post("/login", response_model=TokenOut, summary="Log in; returns a bearer token",
             responses={401: {"description": "wrong credentials"},
                        429: {"description": "too many failed logins"}})
def login(body: LoginIn, request: Request, session: DB) -> TokenOut:
    return login_user(request, session, body.username, body.password)


@router.post("/logout", summary="Revoke the current token")
def logout(principal: Authenticated,
           session: DB) -> dict[str, str]:
    revoke_token(session, principal.token)
    append_event(session, actor=principal.username, action="logout", entity="user",
                 entity_id=principal.user_id, centre_id=principal.centre_id)
    session.commit()
    return {"status": "revoked"}


@router.get("/me", summary="Who am I")
def me(principal: Authenticated) -> dict[str, object]:
    return {"username": principal.username, "role": principal.role,
            "centre_id": principal.centre_id}
