"""FastAPI application factory with a lifespan that owns the database and the worker."""

from __future__ import annotations

import contextlib
import logging
import time
from collections.abc import AsyncIterator
from pathlib import Path

from fastapi import FastAPI, Request
from fastapi.exceptions import RequestValidationError
from fastapi.responses import JSONResponse, RedirectResponse
from fastapi.staticfiles import StaticFiles

from hccstrat import __version__
from hccstrat.exceptions import DataValidationError, HccstratError
from hccstrat.service.settings import ServiceSettings, load_secret

__all__ = ["create_app"]

log = logging.getLogger("hccstrat.service")

_STATUS = {
    "HCC-DB-404": 404,
    "HCC-DB-409": 409,
    "HCC-AUTH-401": 401,
    "HCC-AUTH-403": 403,
    "HCC-AUTH-429": 429,
    "HCC-UPLOAD-413": 413,
    "HCC-SCORE-503": 503,
    "HCC-TIME-503": 503,
    "HCC-ENC-422": 422,
    "HCC-TRIAL-001": 409,
    DataValidationError.code: 422,
}

_CSP = (
    "default-src 'self'; img-src 'self' data:; style-src 'self'; script-src 'self'; "
    "object-src 'none'; frame-ancestors 'none'; form-action 'self'; base-uri 'none'"
)
_HEADERS = {
    "X-Content-Type-Options": "nosniff",
    "X-Frame-Options": "DENY",
    "Referrer-Policy": "no-referrer",
    "Content-Security-Policy": _CSP,
    "Permissions-Policy": "camera=(), microphone=(), geolocation=()",
    "Cross-Origin-Opener-Policy": "same-origin",
    "Cache-Control": "no-store",
}

_TAGS = [
    {"name": "auth", "description": "Log in and out; bearer tokens."},
    {"name": "admin", "description": "Centres and accounts (admin only)."},
    {"name": "patients", "description": "Pseudonymised patients and versioned clinical records."},
    {"name": "uploads", "description": "DICOM studies and slides, de-identified at ingest."},
    {"name": "jobs", "description": "Background jobs with status and progress."},
    {"name": "pathology", "description": "TIME panel of stored slides (background job)."},
    {"name": "predictions", "description": "PRE/POST scores with model version and input hash."},
    {"name": "trial", "description": "Screening, enrolment, allocation, visits, adverse events."},
    {"name": "reports", "description": "Report downloads and exports (FHIR, HTML)."},
    {"name": "audit", "description": "Hash-chained audit log."},
]


def create_app(settings: ServiceSettings) -> FastAPI:
    """Build the application.

    Parameters
    ----------
    settings : ServiceSettings
        Data folder, database URL, limits and pluggable scorers.

    Returns
    -------
    FastAPI
        The app; the database is opened and migrated, and the job worker started, in
        its lifespan (so creating it does no work).
    """
    from hccstrat.service.routers import ROUTERS

    @contextlib.asynccontextmanager
    async def lifespan(app: FastAPI) -> AsyncIterator[None]:
        from hccstrat.service.security import LoginRateLimiter, make_hasher
        from hccstrat.service.worker import JobWorker
        from hccstrat.storage import default_url, make_engine, make_sessionmaker, migrate

        settings.data_dir.mkdir(parents=True, exist_ok=True)
        engine = make_engine(settings.db_url or default_url(settings.data_dir))
        migrate(engine)
        app.state.engine = engine
        app.state.sessionmaker = make_sessionmaker(engine)
        app.state.secret = load_secret(settings.data_dir)
        app.state.hasher = make_hasher(**settings.argon2)
        app.state.limiter = LoginRateLimiter(app.state.sessionmaker, settings.login_max_failures,
                                             settings.login_window_s)
        worker = JobWorker(app.state.sessionmaker, settings, app.state.secret)
        app.state.worker = worker
        worker.recover()
        if settings.run_worker:
            worker.start()
        try:
            yield
        finally:
            worker.stop()
            engine.dispose()

    app = FastAPI(
        title="hccstrat registry",
        version=__version__,
        description=(
            "Registry, scoring and trial service of hccstrat. Authenticate with "
            "`POST /api/auth/login`, then send `Authorization: Bearer <token>`. Users of a "
            "centre only see that centre's patients (others answer 404)."
        ),
        openapi_tags=_TAGS,
        lifespan=lifespan,
    )
    app.state.settings = settings

    @app.middleware("http")
    async def _headers_and_log(request: Request, call_next):
        t0 = time.perf_counter()
        response = _too_large(request, settings.max_json_bytes) or await call_next(request)
        for k, v in _HEADERS.items():
            response.headers.setdefault(k, v)
        route = request.scope.get("route")
        # log the route template, never the concrete path, query or body (no PHI in logs)
        log.info(
            "%s %s -> %d (%.1f ms)",
            request.method,
            getattr(route, "path", "?"),
            response.status_code,
            1000 * (time.perf_counter() - t0),
        )
        return response

    @app.exception_handler(HccstratError)
    async def _hcc_error(request: Request, err: HccstratError):
        status = _STATUS.get(err.code, 400)
        if status == 401 and _wants_html(request):
            return RedirectResponse("/login", status_code=303)
        headers = {}
        if status == 429:
            headers["Retry-After"] = str(getattr(err, "retry_after", 60))
        if status == 401:
            headers["WWW-Authenticate"] = "Bearer"
        return JSONResponse(err.to_dict(), status_code=status, headers=headers)

    @app.exception_handler(RequestValidationError)
    async def _validation(_request: Request, err: RequestValidationError):
        problems = [
            {"where": ".".join(str(p) for p in e.get("loc", ())), "expected": e.get("msg")}
            for e in err.errors()
        ]
        return JSONResponse(
            {
                "code": "HCC-API-422",
                "message": "request does not match the API schema",
                "hint": "see /docs for the expected fields",
                "problems": problems,
            },
            status_code=422,
        )

    for router in ROUTERS:
        app.include_router(router)
    static = Path(__file__).resolve().parent / "static"
    app.mount("/static", StaticFiles(directory=static), name="static")
    return app


def _too_large(request: Request, limit: int) -> JSONResponse | None:
    """413 for a JSON or form body declared larger than ``limit`` (uploads have their own
    limits): a request of a million fields must not be parsed and answered field by field."""
    kind = request.headers.get("content-type", "")
    size = request.headers.get("content-length", "")
    if not kind.startswith(("application/json", "application/x-www-form-urlencoded")):
        return None
    if not size.isdigit() or int(size) <= limit:
        return None
    return JSONResponse(
        {"code": "HCC-API-413", "message": f"request body of {size} bytes exceeds the limit "
         f"of {limit} bytes for JSON and form requests",
         "hint": "send fewer records per request (or raise max_json_bytes)"},
        status_code=413,
    )


def _wants_html(request: Request) -> bool:
    return not request.url.path.startswith("/api/") and "text/html" in request.headers.get(
        "accept", ""
    )
