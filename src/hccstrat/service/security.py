"""Accounts and access control: password hashes, bearer tokens, roles, rate limits.

- Passwords are hashed with Argon2id (argon2-cffi).
- Bearer tokens are 256-bit random strings; only their SHA-256 is stored, they
  expire after ``token_ttl_minutes`` and are revoked at logout.
- :data:`PERMISSIONS` maps each permission to the roles that hold it; the role
  matrix test checks every endpoint against it.
- :class:`LoginRateLimiter` refuses a username/address pair after too many
  failures in a sliding window (HTTP 429); failures are kept in the database, so
  the limit holds across worker processes and restarts.
"""

from __future__ import annotations

import datetime as dt
import hashlib
import hmac
import secrets
from dataclasses import dataclass

from sqlalchemy import delete, select, update
from sqlalchemy.orm import Session

from hccstrat.exceptions import HccstratError
from hccstrat.storage.models import ROLES, ApiToken, LoginFailure, User, utcnow
from hccstrat.storage.repositories import Scope

__all__ = [
    "PERMISSIONS",
    "AuthError",
    "CsrfError",
    "LoginRateLimiter",
    "PermissionDeniedError",
    "Principal",
    "RateLimitedError",
    "csrf_token",
    "hash_password",
    "issue_token",
    "make_hasher",
    "resolve_token",
    "revoke_token",
    "role_has",
    "verify_password",
]

_ALL = frozenset(ROLES)
_WRITE_CLINICAL = frozenset({"admin", "investigator", "data_manager"})

#: permission -> roles holding it
PERMISSIONS: dict[str, frozenset[str]] = {
    "patients:read": _ALL,
    "patients:write": _WRITE_CLINICAL,
    "studies:write": frozenset({"admin", "radiologist", "data_manager"}),
    "slides:write": frozenset({"admin", "pathologist", "data_manager"}),
    "jobs:read": _ALL,
    "predictions:read": _ALL,
    "predictions:write": frozenset({"admin", "investigator", "radiologist", "pathologist"}),
    "trial:read": _ALL,
    "trial:write": _WRITE_CLINICAL,
    "reports:read": _ALL,
    "audit:read": frozenset({"admin", "monitor"}),
    "users:admin": frozenset({"admin"}),
}


class AuthError(HccstratError):
    """Missing, invalid, expired or revoked credentials (HTTP 401)."""

    code = "HCC-AUTH-401"


class PermissionDeniedError(HccstratError):
    """The role does not allow the operation (HTTP 403)."""

    code = "HCC-AUTH-403"


class CsrfError(PermissionDeniedError):
    """A form post without, or with a wrong, CSRF token (HTTP 403)."""


class RateLimitedError(HccstratError):
    """Too many failed logins (HTTP 429)."""

    code = "HCC-AUTH-429"

    def __init__(self, message: str, *, retry_after: int, hint: str | None = None) -> None:
        super().__init__(message, hint=hint)
        self.retry_after = retry_after


def role_has(role: str, permission: str) -> bool:
    """Whether ``role`` holds ``permission``."""
    return role in PERMISSIONS.get(permission, frozenset())


def make_hasher(time_cost: int = 3, memory_kib: int = 65536, parallelism: int = 2):
    """Argon2id hasher (defaults follow argon2-cffi's recommendation)."""
    from argon2 import PasswordHasher

    return PasswordHasher(time_cost=time_cost, memory_cost=memory_kib, parallelism=parallelism)


def hash_password(hasher, password: str) -> str:
    """Hash a password; refuses ones shorter than 10 characters."""
    if len(password) < 10:
        raise HccstratError(
            "password too short", hint="use at least 10 characters (a passphrase is best)"
        )
    return hasher.hash(password)


def verify_password(hasher, stored: str, password: str) -> bool:
    """Check a password against its hash (constant time)."""
    from argon2.exceptions import InvalidHashError, VerificationError

    try:
        return hasher.verify(stored, password)
    except (VerificationError, InvalidHashError):
        return False


def _sha(token: str) -> str:
    return hashlib.sha256(token.encode("utf-8")).hexdigest()


def csrf_token(token: str) -> str:
    """CSRF token bound to a session token (sent in forms, checked on POST)."""
    return hmac.new(token.encode("utf-8"), b"hccstrat-csrf", hashlib.sha256).hexdigest()


@dataclass(frozen=True)
class Principal:
    """The authenticated caller."""

    user_id: int
    username: str
    role: str
    centre_id: int | None
    token: str

    @property
    def scope(self) -> Scope:
        """Repository scope (centre isolation, audit actor)."""
        return Scope(actor=self.username, centre_id=self.centre_id, user_id=self.user_id)


def issue_token(session: Session, user: User, ttl_minutes: int) -> tuple[str, dt.datetime]:
    """Create a bearer token for ``user``; returns the token and its expiry."""
    token = secrets.token_urlsafe(32)
    expires = utcnow() + dt.timedelta(minutes=ttl_minutes)
    session.add(ApiToken(token_sha256=_sha(token), user_id=user.id, expires_at=expires))
    return token, expires


def _aware(t: dt.datetime) -> dt.datetime:
    return t if t.tzinfo is not None else t.replace(tzinfo=dt.UTC)


def resolve_token(session: Session, token: str | None) -> Principal:
    """Principal of a valid token, or :class:`AuthError`."""
    if not token:
        raise AuthError("not authenticated", hint="log in and send 'Authorization: Bearer <token>'")
    row = session.scalar(select(ApiToken).where(ApiToken.token_sha256 == _sha(token)))
    if row is None or row.revoked_at is not None or _aware(row.expires_at) <= utcnow():
        raise AuthError("token invalid, expired or revoked", hint="log in again")
    user = row.user
    if not user.active:
        raise AuthError("account disabled", hint="ask an administrator")
    return Principal(user.id, user.username, user.role, user.centre_id, token)


def revoke_token(session: Session, token: str) -> None:
    """Revoke one token (logout)."""
    session.execute(
        update(ApiToken).where(ApiToken.token_sha256 == _sha(token)).values(revoked_at=utcnow())
    )


class LoginRateLimiter:
    """Sliding-window limit on failed logins per (username, address), kept in the database.

    Attempts are rows of :class:`~hccstrat.storage.models.LoginFailure`, so the limit
    holds across worker processes sharing the database and survives a restart. Each
    call uses its own short session (an attempt is recorded even though the login
    request itself is rolled back). Every attempt is recorded up front and a success
    clears the pair, so what remains in the window are failures.

    Parameters
    ----------
    sessionmaker : sessionmaker
        Session factory of the registry.
    max_failures : int
        Failures allowed within ``window_s`` before logins are refused.
    window_s : float
        Window length in seconds.
    """

    def __init__(self, sessionmaker, max_failures: int = 5, window_s: float = 300.0) -> None:
        self.sessionmaker = sessionmaker
        self.max_failures = max_failures
        self.window_s = window_s

    @staticmethod
    def _key(username: str, address: str) -> str:
        return hashlib.sha256(f"{username.lower()}\x00{address}".encode()).hexdigest()

    def _since(self) -> dt.datetime:
        return utcnow() - dt.timedelta(seconds=self.window_s)

    def attempt(self, username: str, address: str) -> None:
        """Record a login attempt; raise :class:`RateLimitedError` when over the limit.

        The attempt is written (and committed) *before* the window is counted, so
        concurrent attempts see each other: at most ``max_failures`` of them reach the
        password check however many arrive at once. A successful login then clears the
        pair (:meth:`succeeded`); refused attempts count too, so hammering a locked
        account keeps it locked.
        """
        key = self._key(username, address)
        with self.sessionmaker() as s:
            s.execute(delete(LoginFailure).where(LoginFailure.at <= self._since()))
            s.add(LoginFailure(key_sha256=key, at=utcnow()))
            s.commit()
            times = s.scalars(
                select(LoginFailure.at)
                .where(LoginFailure.key_sha256 == key, LoginFailure.at > self._since())
                .order_by(LoginFailure.at)
            ).all()
        if len(times) > self.max_failures:
            oldest = _aware(times[-self.max_failures])
            wait = max(int(self.window_s - (utcnow() - oldest).total_seconds()) + 1, 1)
            raise RateLimitedError(
                "too many failed logins", retry_after=wait, hint=f"wait {wait} s and retry"
            )

    def succeeded(self, username: str, address: str) -> None:
        """Forget the pair's failures after a successful login."""
        with self.sessionmaker() as s:
            s.execute(delete(LoginFailure).where(
                LoginFailure.key_sha256 == self._key(username, address)))
            s.commit()
