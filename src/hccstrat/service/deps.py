"""FastAPI dependencies: database session, authenticated principal, permissions."""

from __future__ import annotations

import hmac
from collections.abc import Callable, Iterator
from typing import Annotated

from fastapi import Depends, Request
from fastapi.concurrency import run_in_threadpool
from sqlalchemy.orm import Session

from hccstrat.service.security import (
    CsrfError,
    PermissionDeniedError,
    Principal,
    csrf_token,
    resolve_token,
    role_has,
)

__all__ = ["COOKIE", "DB", "Allowed", "Authenticated", "get_principal", "get_session", "require"]

#: name of the session cookie used by the web pages
COOKIE = "hcc_session"
_SAFE = {"GET", "HEAD", "OPTIONS"}


def get_session(request: Request) -> Iterator[Session]:
    """One database session per request (rolled back if not committed)."""
    with request.app.state.sessionmaker() as session:
        yield session


#: database session parameter type
DB = Annotated[Session, Depends(get_session)]


async def get_principal(request: Request, session: DB) -> Principal:
    """Authenticate from ``Authorization: Bearer`` or, for the pages, the session cookie.

    Cookie-authenticated writes must carry the CSRF token (header ``X-CSRF-Token`` or
    form field ``csrf``), else 403; bearer-authenticated calls are not exposed to CSRF.
    """
    auth = request.headers.get("authorization", "")
    token = None
    from_cookie = False
    if auth.lower().startswith("bearer "):
        token = auth[7:].strip()
    elif COOKIE in request.cookies:
        token = request.cookies[COOKIE]
        from_cookie = True
    # the lookup blocks: run it in the thread pool, not on the event loop
    principal = await run_in_threadpool(resolve_token, session, token)
    if from_cookie and request.method not in _SAFE:
        sent = request.headers.get("x-csrf-token")
        if sent is None and request.headers.get("content-type", "").startswith(
            ("application/x-www-form-urlencoded", "multipart/form-data")
        ):
            sent = (await request.form()).get("csrf")
        if not sent or not hmac.compare_digest(str(sent), csrf_token(token)):
            raise CsrfError("missing or wrong CSRF token", hint="reload the page and retry")
    request.state.principal = principal
    return principal


def require(permission: str) -> Callable[..., Principal]:
    """Dependency factory: the principal, if its role holds ``permission`` (else 403)."""

    def _dep(principal: Annotated[Principal, Depends(get_principal)]) -> Principal:
        if not role_has(principal.role, permission):
            raise PermissionDeniedError(
                f"role {principal.role!r} may not do this ({permission})",
                hint="ask an administrator for a role that allows it",
            )
        return principal

    _dep.__name__ = f"require_{permission.replace(':', '_')}"
    _dep.permission = permission  # type: ignore[attr-defined]
    return _dep


#: any authenticated caller
Authenticated = Annotated[Principal, Depends(get_principal)]


def Allowed(permission: str):
    """Parameter type: the principal, required to hold ``permission``."""
    return Annotated[Principal, Depends(require(permission))]
