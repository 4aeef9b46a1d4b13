"""Server-rendered pages (Jinja2); forms post with a CSRF token, uploads use fetch.

CSRF protection of the forms:

- logged-in forms carry ``csrf`` = :func:`~hccstrat.service.security.csrf_token` of
  the session token (checked in :func:`hccstrat.service.deps.get_principal`);
- the login form (no session yet) uses a double-submit token: ``GET /login`` sets a
  random token in the ``hcc_login_csrf`` cookie and in the hidden field ``csrf``;
  ``POST /login`` compares the two in constant time. Either check failing is a 403.
"""

from __future__ import annotations

import hmac
import secrets
from pathlib import Path
from typing import Annotated, Any

from fastapi import APIRouter, Form, Request
from fastapi import Path as PathParam
from fastapi.responses import HTMLResponse, RedirectResponse
from fastapi.templating import Jinja2Templates
from sqlalchemy import select

from hccstrat.exceptions import HccstratError
from hccstrat.service.deps import COOKIE, DB, Allowed
from hccstrat.service.security import Principal, csrf_token, revoke_token, role_has
from hccstrat.storage import repositories as repo
from hccstrat.storage.models import (
    Centre,
    Enrolment,
    ImagingStudy,
    Job,
    Prediction,
    Slide,
)

__all__ = ["LOGIN_CSRF_COOKIE", "router"]

#: cookie holding the login form's double-submit CSRF token
LOGIN_CSRF_COOKIE = "hcc_login_csrf"

router = APIRouter(include_in_schema=False)
templates = Jinja2Templates(directory=str(Path(__file__).resolve().parents[1] / "templates"))
_READ = Allowed("patients:read")
_WRITE = Allowed("patients:write")
_PRED = Allowed("predictions:write")
_TRIAL = Allowed("trial:write")
_TRIAL_READ = Allowed("trial:read")
_EID = Annotated[int, PathParam(ge=1, le=2**31 - 1)]
_FORM_FIELDS = ("age", "sex", "ecog", "tumour_size_cm", "tumour_number", "afp_ng_ml",
                "albumin_g_l", "bilirubin_umol_l", "inr", "histology")


def _page(request: Request, name: str, p: Principal | None, **ctx: Any) -> HTMLResponse:
    ctx.setdefault("csrf", csrf_token(p.token) if p else "")
    ctx.update(principal=p,
               can=lambda perm: p is not None and role_has(p.role, perm),
               trials=["NCT07282184", "NCT07417800"])
    return templates.TemplateResponse(request, name, ctx)


def _back(url: str) -> RedirectResponse:
    return RedirectResponse(url, status_code=303)


@router.get("/", response_class=HTMLResponse)
def home() -> RedirectResponse:
    return _back("/patients")


def _login_page(request: Request, error: str | None = None, status: int = 200) -> HTMLResponse:
    """The login form with a fresh double-submit CSRF token (cookie + hidden field)."""
    token = secrets.token_urlsafe(32)
    resp = _page(request, "login.html", None, error=error, csrf=token)
    resp.status_code = status
    resp.set_cookie(LOGIN_CSRF_COOKIE, token, httponly=True, samesite="strict", path="/login",
                    secure=request.app.state.settings.secure_cookies, max_age=3600)
    return resp


@router.get("/login", response_class=HTMLResponse)
def login_page(request: Request, error: str | None = None):
    return _login_page(request, error)


@router.post("/login")
def login_form(request: Request, session: DB, username: Annotated[str, Form()],
               password: Annotated[str, Form()], csrf: Annotated[str, Form()] = ""):
    from hccstrat.service.routers.auth import login_user

    cookie = request.cookies.get(LOGIN_CSRF_COOKIE, "")
    if not (csrf and cookie and hmac.compare_digest(csrf.encode(), cookie.encode())):
        return _login_page(request, "The form expired (missing or wrong CSRF token): "
                           "log in again.", status=403)
    try:
        tok = login_user(request, session, username, password)
    except HccstratError as err:
        return _login_page(request, err.message)
    resp = _back("/patients")
    resp.set_cookie(COOKIE, tok.access_token, httponly=True, samesite="strict",
                    secure=request.app.state.settings.secure_cookies,
                    max_age=60 * request.app.state.settings.token_ttl_minutes)
    resp.delete_cookie(LOGIN_CSRF_COOKIE, path="/login")
    return resp


@router.post("/logout")
def logout_form(session: DB, p: _READ):
    revoke_token(session, p.token)
    session.commit()
    resp = _back("/login")
    resp.delete_cookie(COOKIE)
    return resp


@router.get("/patients", response_class=HTMLResponse)
def patients_page(request: Request, session: DB, p: _READ, error: str | None = None):
    rows, total = repo.list_patients(session, p.scope, limit=200)
    return _page(request, "patients.html", p, patients=rows, total=total,
                 fields=_FORM_FIELDS, error=error)


@router.post("/patients")
async def create_patient_form(request: Request, session: DB, p: _WRITE):
    from hccstrat.service.clinical import validate_clinical

    form = await request.form()
    clinical = {k: form.get(k) for k in _FORM_FIELDS if form.get(k) not in (None, "")}
    centre_code = form.get("centre")
    if not centre_code and p.centre_id is not None:
        centre_code = session.get(Centre, p.centre_id).code
    try:
        centre = repo.get_centre(session, str(centre_code))
        pid = repo.new_pseudo_id()
        data = validate_clinical(clinical, patient_id=pid, centre=centre.code)
        repo.create_patient(session, p.scope, centre=centre, pseudo_id=pid, clinical=data)
        session.commit()
    except HccstratError as err:
        session.rollback()
        rows, total = repo.list_patients(session, p.scope, limit=200)
        return _page(request, "patients.html", p, patients=rows, total=total,
                     fields=_FORM_FIELDS, error=err.message)
    return _back(f"/patients/{pid}")


@router.get("/patients/{patient_id}", response_class=HTMLResponse)
def patient_page(patient_id: str, request: Request, session: DB, p: _READ,
                 error: str | None = None):
    patient = repo.get_patient(session, p.scope, patient_id)
    rec = repo.latest_clinical(session, patient)
    preds = session.scalars(select(Prediction).where(Prediction.patient_id == patient.id)
                            .order_by(Prediction.id.desc())).all()
    studies = session.scalars(select(ImagingStudy).where(
        ImagingStudy.patient_id == patient.id)).all()
    slides = session.scalars(select(Slide).where(Slide.patient_id == patient.id)).all()
    jobs = session.scalars(select(Job).where(Job.patient_id == patient.id)
                           .order_by(Job.id.desc()).limit(10)).all()
    enrolments = session.scalars(select(Enrolment).where(
        Enrolment.patient_id == patient.id)).all()
    from hccstrat.service.figures import heatmap_path
    from hccstrat.service.predict import latest_features
    from hccstrat.service.routers.trial import _out

    viewer = [s for s in studies if (s.info or {}).get("preprocessed")
              and (Path(s.info["preprocessed"]) / "preprocess.json").is_file()]
    heat = {s.id: heatmap_path(s.path, s.info or {}) is not None for s in slides}
    benefit = next((r for r in preds if r.kind == "BENEFIT"
                    and isinstance(r.explanation.get("regimen"), dict)), None)
    return _page(request, "patient.html", p, patient=patient, record=rec,
                 predictions=[r for r in preds if r.kind != "BENEFIT"], studies=studies,
                 viewer=viewer, slides=slides, heat=heat, benefit=benefit, jobs=jobs,
                 features=latest_features(session, patient), error=error,
                 enrolments=[_out(session, e) for e in enrolments])


def _guard(call, url: str, session) -> RedirectResponse:
    try:
        call()
    except HccstratError as err:
        session.rollback()
        from urllib.parse import quote

        return _back(f"{url}?error={quote(err.message[:200])}")
    return _back(url)


@router.post("/patients/{patient_id}/predict")
def predict_form(patient_id: str, request: Request, session: DB, p: _PRED,
                 kind: Annotated[str, Form()] = "PRE"):
    from hccstrat.service.predict import run_prediction

    def call():
        patient = repo.get_patient(session, p.scope, patient_id)
        run_prediction(session, request.app.state.settings.scorers, p.scope, patient, kind)
        session.commit()

    return _guard(call, f"/patients/{patient_id}", session)


@router.post("/patients/{patient_id}/screen")
def screen_form(patient_id: str, session: DB, p: _TRIAL, trial: Annotated[str, Form()],
                consent: Annotated[str, Form()] = "no"):
    from hccstrat.service.routers.trial import screen
    from hccstrat.service.schemas import ScreenIn

    answers = {"consent": consent == "yes"}
    return _guard(lambda: screen(trial, ScreenIn(patient_id=patient_id, answers=answers),
                                 session, p), f"/patients/{patient_id}", session)


@router.post("/enrolments/{enrolment_id}/enrol")
def enrol_form(enrolment_id: _EID, session: DB, p: _TRIAL, patient_id: Annotated[str, Form()]):
    from hccstrat.service.routers.trial import enrol
    from hccstrat.service.schemas import EnrolIn

    return _guard(lambda: enrol(enrolment_id, EnrolIn(consent=True), session, p),
                  f"/patients/{patient_id}", session)


@router.post("/enrolments/{enrolment_id}/allocate")
def allocate_form(enrolment_id: _EID, request: Request, session: DB, p: _TRIAL,
                  patient_id: Annotated[str, Form()], method: Annotated[str, Form()]):
    from hccstrat.service.routers.trial import allocate
    from hccstrat.service.schemas import AllocateIn

    return _guard(lambda: allocate(enrolment_id, AllocateIn(method=method), request, session, p),
                  f"/patients/{patient_id}", session)


@router.get("/trial/{trial}", response_class=HTMLResponse)
def trial_page(trial: str, request: Request, session: DB, p: _TRIAL_READ):
    from hccstrat.service.routers.trial import trial_summary

    return _page(request, "trial.html", p, summary=trial_summary(session, p, trial))


@router.get("/monitoring", response_class=HTMLResponse)
def monitoring_page(request: Request, session: DB, p: _READ):
    """Drift of scores and inputs, and rolling performance, per model version."""
    from hccstrat.service.monitoring import MIN_PER_PERIOD, monitoring_report

    return _page(request, "monitoring.html", p, models=monitoring_report(session, p.scope),
                 min_per_period=MIN_PER_PERIOD)


@router.post("/patients/{patient_id}/studies/{study_id}/preprocess")
def preprocess_form(patient_id: str, study_id: _EID, request: Request, session: DB,
                    p: Allowed("studies:write")):
    from hccstrat.service.routers.uploads import preprocess_study

    return _guard(lambda: preprocess_study(patient_id, study_id, request, session, p),
                  f"/patients/{patient_id}", session)
