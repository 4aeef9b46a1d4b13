"""Trial endpoints: screening, enrolment, allocation, visits, adverse events.

Eligibility comes from :mod:`hccstrat.trial.eligibility`. Allocation goes through
:mod:`hccstrat.service.allocation`, which drives the library's PRE rule
(:func:`hccstrat.trial.allocation.allocate_pre`) and concealed stratified block
randomisation (:class:`hccstrat.trial.randomisation.BlockRandomiser`) with the
hash-chained allocation log, under the registry's write lock.
"""

from __future__ import annotations

import datetime as dt
import os
from typing import Annotated, Any

from fastapi import APIRouter, Path, Request, Response
from sqlalchemy import select, text
from sqlalchemy.orm import Session

from hccstrat.exceptions import DataValidationError, Problem, ValidationReport
from hccstrat.service.allocation import TRIALS, trial_config
from hccstrat.service.deps import DB, Allowed
from hccstrat.service.schemas import AdverseEventIn, AllocateIn, EnrolIn, ScreenIn, VisitIn
from hccstrat.service.security import Principal
from hccstrat.storage import repositories as repo
from hccstrat.storage.audit import append_event
from hccstrat.storage.models import (
    AdverseEvent,
    Allocation,
    Enrolment,
    Patient,
    Prediction,
    Visit,
)

__all__ = ["TRIALS", "router", "trial_summary"]

router = APIRouter(prefix="/api/trial", tags=["trial"])
_READ = Allowed("trial:read")
_WRITE = Allowed("trial:write")
_AUDIT = Allowed("audit:read")
_EID = Annotated[int, Path(ge=1, le=2**31 - 1)]



def _trial(trial: str) -> dict[str, Any]:
    return trial_config(trial)


def _enrolment(session: Session, p: Principal, enrolment_id: int) -> Enrolment:
    e = session.get(Enrolment, enrolment_id)
    if e is None or not p.scope.allows(e.patient.centre_id):
        raise repo.RecordNotFoundError(f"enrolment {enrolment_id} not found",
                                       hint="check the id and your centre")
    return e


def _out(session: Session, e: Enrolment) -> dict[str, Any]:
    alloc = session.scalar(select(Allocation).where(Allocation.enrolment_id == e.id))
    return {"id": e.id, "trial": e.trial, "patient_id": e.patient.pseudo_id, "status": e.status,
            "eligible": e.eligible, "reasons": e.reasons, "consent": e.consent,
            "arm": alloc.arm if alloc else None, "method": alloc.method if alloc else None,
            "stratum": alloc.stratum if alloc else None}


def _audit(session, p: Principal, action: str, entity: str, eid, centre_id, before, after):
    append_event(session, actor=p.username, action=action, entity=entity, entity_id=eid,
                 centre_id=centre_id, before=before, after=after)


@router.post("/{trial}/screen", status_code=201, summary="Screen a patient for a trial")
def screen(trial: str, body: ScreenIn, session: DB, p: _WRITE):
    import pandas as pd

    from hccstrat.schema import coerce
    from hccstrat.trial.eligibility import evaluate
    from hccstrat.trial.screening import validate_screening

    cfg = _trial(trial)
    patient = repo.get_patient(session, p.scope, body.patient_id)
    # an unreadable answer ('maybe', Child-Pugh 20) must not pass for a missing one
    answers = pd.DataFrame([{**body.answers, "patient_id": patient.pseudo_id}])
    validate_screening(answers, source="screening answers")
    rep = ValidationReport(source="screening answers")
    coerce(answers, rep)  # clinical columns among the answers (age, ecog...)
    if rep:
        raise DataValidationError(rep, hint="correct the listed answers; nothing was stored")
    rec = repo.latest_clinical(session, patient)
    row = {**(rec.data if rec else {}), **body.answers, "patient_id": patient.pseudo_id}
    result = evaluate(pd.DataFrame([row]), cfg["ruleset"], as_of=body.as_of)
    pr = result.patients.iloc[0]
    status = str(pr["status"])
    reasons = [r for r in str(pr.get("reasons", "") or "").split("\n") if r] or []
    e = session.scalar(select(Enrolment).where(Enrolment.patient_id == patient.id,
                                               Enrolment.trial == trial))
    before = repo.snapshot(e) if e else None
    if e is None:
        e = Enrolment(patient_id=patient.id, trial=trial)
        session.add(e)
    elif e.status not in ("screened",):
        raise repo.ConflictError(f"patient already {e.status} in {trial}",
                                 hint="screening is only repeated before enrolment")
    e.eligible = {"eligible": True, "ineligible": False}.get(status)
    e.reasons = reasons
    e.status = "screened"
    repo.flush_or_conflict(session, f"patient {patient.pseudo_id!r} is being screened for "
                           f"{trial} by another request")
    _audit(session, p, "screen", "enrolment", e.id, patient.centre_id, before,
           repo.snapshot(e))
    session.commit()
    return {**_out(session, e), "eligibility": status}


@router.post("/enrolments/{enrolment_id}/enrol", summary="Enrol an eligible, consenting patient")
def enrol(enrolment_id: _EID, body: EnrolIn, session: DB, p: _WRITE):
    e = _enrolment(session, p, enrolment_id)
    # the registry's write lock: of two identical concurrent requests one enrols, one is told
    session.execute(text("UPDATE audit_head SET seq = seq WHERE id = 1"))
    session.refresh(e)
    if e.status != "screened" or e.eligible is not True or not body.consent:
        raise repo.ConflictError(
            f"cannot enrol: status {e.status}, eligible {e.eligible}, consent {body.consent}",
            hint="only screened, eligible patients who consented can be enrolled")
    before = repo.snapshot(e)
    e.consent, e.status, e.enrolled_at = True, "enrolled", dt.datetime.now(dt.UTC)
    session.flush()
    _audit(session, p, "enrol", "enrolment", e.id, e.patient.centre_id, before, repo.snapshot(e))
    session.commit()
    return _out(session, e)


def _latest_pre(session: Session, patient_id: int) -> Prediction | None:
    return session.scalar(select(Prediction).where(
        Prediction.patient_id == patient_id, Prediction.kind == "PRE")
        .order_by(Prediction.id.desc()).limit(1))


@router.post("/enrolments/{enrolment_id}/allocate", status_code=201,
             summary="Assign an arm (PRE rule, or concealed stratified block randomisation)",
             description="`pre_rule`: the latest stored PRE score and its model version decide "
             "the arm (NCT07282184). `randomised`: the next sealed envelope of the stratum "
             "centre x risk group (PRE >= threshold: high, below: low, no score: unknown) is "
             "opened. Every decision is appended to the trial's hash-chained allocation log.")
def allocate(enrolment_id: _EID, body: AllocateIn, request: Request, session: DB, p: _WRITE):
    from hccstrat.service.allocation import allocate_by_pre_rule, randomise, risk_group

    e = _enrolment(session, p, enrolment_id)
    cfg = _trial(e.trial)
    # take the registry's write lock first: allocations (and their logs) are serialised
    session.execute(text("UPDATE audit_head SET seq = seq WHERE id = 1"))
    session.refresh(e)
    if session.scalar(select(Allocation.id).where(Allocation.enrolment_id == e.id)):
        raise repo.ConflictError(f"enrolment {e.id} already has an arm allocated",
                                 hint="allocation is final; a patient is allocated once")
    if e.status != "enrolled":
        raise repo.ConflictError(f"enrolment is {e.status}", hint="enrol the patient first")
    data_dir = request.app.state.settings.data_dir
    pred = _latest_pre(session, e.patient_id)
    version = (f"{pred.model_version.name}:{pred.model_version.version}" if pred else None)
    if body.method == "pre_rule":
        if not cfg["pre_arms"]:
            raise repo.ConflictError(f"{e.trial} does not allocate by the PRE rule",
                                     hint="use method 'randomised'")
        if pred is None:
            raise repo.ConflictError("no PRE prediction stored for this patient",
                                     hint="score the patient first")
        d = allocate_by_pre_rule(data_dir, e.trial, patient_key=e.patient.pseudo_id,
                                 score=pred.score, model_version=version)
    else:
        d = randomise(data_dir, e.trial, patient_key=e.patient.pseudo_id,
                      centre=e.patient.centre.code,
                      risk=risk_group(pred.score if pred else None, cfg["threshold"]))
    alloc = Allocation(enrolment_id=e.id, arm=d.arm, method=d.method,
                       score=pred.score if pred else None, sequence_number=d.index,
                       stratum=d.stratum, model_version=version,
                       log_path=os.path.basename(d.log_path),
                       log_hash=d.log_hash, allocated_by=p.user_id)
    repo.audited_add(session, p.scope, alloc, entity="allocation", centre_id=e.patient.centre_id)
    e.status = "allocated"
    session.commit()
    return {**_out(session, e), "score": alloc.score, "model_version": version,
            "stratum": d.stratum, "sequence_number": d.index, "log_hash": d.log_hash}


def _check_visit(session: Session, e: Enrolment, body: VisitIn) -> Visit | None:
    """Refuse a visit of a patient not enrolled or with contradictory status and dates;
    return the planned visit of the same name this record completes (None: a new one)."""
    if e.enrolled_at is None:
        raise repo.ConflictError(f"enrolment {e.id} is {e.status}: visits are recorded for "
                                 "enrolled patients only", hint="enrol the patient first")
    rep = ValidationReport(source=f"visit {body.name!r} of enrolment {e.id}")
    where = (None, e.patient.pseudo_id)
    enrolled, today = e.enrolled_at.date(), dt.date.today()
    if body.status == "done" and body.done_date is None:
        rep.add(Problem(*where, "done_date", None, "the date the visit took place"))
    if body.status != "done" and body.done_date is not None:
        rep.add(Problem(*where, "status", body.status, "'done' for a visit with a done_date"))
    if body.status == "planned" and body.due_date is None:
        rep.add(Problem(*where, "due_date", None, "the date a planned visit is due"))
    for name in ("due_date", "done_date"):
        day = getattr(body, name)
        if day is not None and day < enrolled:
            rep.add(Problem(*where, name, day, f"on or after enrolment ({enrolled.isoformat()})"))
    if body.done_date is not None and body.done_date > today:
        rep.add(Problem(*where, "done_date", body.done_date, "not after today"))
    if rep:
        raise DataValidationError(rep, hint="correct the listed fields; nothing was stored")
    prev = session.scalar(select(Visit).where(Visit.enrolment_id == e.id,
                                              Visit.name == body.name))
    if prev is not None and (prev.status != "planned" or body.status == "planned"):
        raise repo.ConflictError(
            f"visit {body.name!r} of enrolment {e.id} is already recorded ({prev.status})",
            hint="record a planned visit's outcome (done with its date, or missed) once; "
                 "give another name to a new visit")
    return prev


@router.post("/enrolments/{enrolment_id}/visits", status_code=201,
             summary="Record a visit, or the outcome of a planned one (same name)")
def add_visit(enrolment_id: _EID, body: VisitIn, response: Response, session: DB, p: _WRITE):
    e = _enrolment(session, p, enrolment_id)
    session.execute(text("UPDATE audit_head SET seq = seq WHERE id = 1"))  # write lock
    prev = _check_visit(session, e, body)
    if prev is None:
        v = repo.audited_add(session, p.scope, Visit(enrolment_id=e.id, **body.model_dump()),
                             entity="visit", centre_id=e.patient.centre_id)
    else:  # the outcome of a planned visit: the same record, audited as an update
        v, before = prev, repo.snapshot(prev)
        v.status, v.done_date = body.status, body.done_date
        v.due_date = body.due_date or v.due_date
        session.flush()
        _audit(session, p, "update", "visit", v.id, e.patient.centre_id, before,
               repo.snapshot(v))
        response.status_code = 200
    session.commit()
    return {"id": v.id, "name": v.name, "due_date": v.due_date, "done_date": v.done_date,
            "status": v.status}


def _check_ae(e: Enrolment, body: AdverseEventIn) -> None:
    """Refuse an AE of a patient not (yet) enrolled, or one CTCAE v5 or its dates forbid."""
    from hccstrat.trial.adverse_events import CTCAE_TERMS

    if e.enrolled_at is None:
        raise repo.ConflictError(f"enrolment {e.id} is {e.status}: adverse events are recorded "
                                 "for enrolled patients only", hint="enrol the patient first")
    rep = ValidationReport(source=f"adverse event of enrolment {e.id}")
    where = (None, e.patient.pseudo_id)
    spec = CTCAE_TERMS.get(body.term)
    if spec is None:
        rep.add(Problem(*where, "term", body.term, "a CTCAE v5.0 term of the trial catalogue, "
                        "e.g. 'Hypertension' (spelled as in CTCAE)"))
    elif body.grade > spec.max_grade:
        rep.add(Problem(*where, "grade", body.grade,
                        f"an integer 1..{spec.max_grade} for {spec.term} (CTCAE v5.0)"))
    enrolled = e.enrolled_at.date()
    if body.onset_date is not None and body.onset_date < enrolled:
        rep.add(Problem(*where, "onset_date", body.onset_date,
                        f"on or after the enrolment date {enrolled.isoformat()}"))
    if body.onset_date and body.resolved_date and body.resolved_date < body.onset_date:
        rep.add(Problem(*where, "resolved_date", body.resolved_date, "on or after onset_date"))
    if rep:
        raise DataValidationError(rep, hint="correct the listed fields; nothing was stored")


@router.post("/enrolments/{enrolment_id}/adverse-events", status_code=201,
             summary="Record an adverse event (CTCAE v5)")
def add_ae(enrolment_id: _EID, body: AdverseEventIn, session: DB, p: _WRITE):
    e = _enrolment(session, p, enrolment_id)
    _check_ae(e, body)
    data = body.model_dump()
    data["serious"] = bool(data["serious"] or data["grade"] >= 4)
    ae = repo.audited_add(session, p.scope, AdverseEvent(enrolment_id=e.id, **data),
                          entity="adverse_event", centre_id=e.patient.centre_id)
    session.commit()
    return {"id": ae.id, **{k: (v.isoformat() if isinstance(v, dt.date) else v)
                            for k, v in data.items()}}


@router.get("/enrolments/{enrolment_id}", summary="One enrolment with visits and AEs")
def get_enrolment(enrolment_id: _EID, session: DB, p: _READ):
    e = _enrolment(session, p, enrolment_id)
    visits = session.scalars(select(Visit).where(Visit.enrolment_id == e.id)).all()
    aes = session.scalars(select(AdverseEvent).where(AdverseEvent.enrolment_id == e.id)).all()
    return {**_out(session, e),
            "visits": [{"name": v.name, "due_date": v.due_date, "done_date": v.done_date,
                        "status": v.status} for v in visits],
            "adverse_events": [{"term": a.term, "grade": a.grade, "serious": a.serious}
                               for a in aes]}


def _enrolments(session: Session, p: Principal, trial: str):
    q = select(Enrolment).join(Patient, Patient.id == Enrolment.patient_id).where(
        Enrolment.trial == trial, Patient.deleted_at.is_(None))
    if p.centre_id is not None:
        q = q.where(Patient.centre_id == p.centre_id)
    return session.scalars(q.order_by(Enrolment.id)).all()


@router.get("/{trial}/enrolments", summary="Screened and enrolled patients of your centre")
def list_enrolments(trial: str, session: DB, p: _READ):
    _trial(trial)
    return [_out(session, e) for e in _enrolments(session, p, trial)]


def trial_summary(session: Session, p: Principal, trial: str) -> dict[str, Any]:
    """CONSORT-style counts, arms, AEs by grade and upcoming visits (caller's centres)."""
    _trial(trial)
    rows = _enrolments(session, p, trial)
    ids = [e.id for e in rows]
    arms: dict[str, int] = {}
    for a in session.scalars(select(Allocation).where(Allocation.enrolment_id.in_(ids))).all():
        arms[a.arm] = arms.get(a.arm, 0) + 1
    aes = session.scalars(select(AdverseEvent).where(AdverseEvent.enrolment_id.in_(ids))).all()
    today = dt.date.today()
    upcoming = session.scalars(select(Visit).where(
        Visit.enrolment_id.in_(ids), Visit.status == "planned", Visit.due_date >= today,
        Visit.due_date <= today + dt.timedelta(days=30)).order_by(Visit.due_date)).all()
    pid = {e.id: e.patient.pseudo_id for e in rows}
    return {
        "trial": trial,
        "screened": len(rows),
        "eligible": sum(e.eligible is True for e in rows),
        "ineligible": sum(e.eligible is False for e in rows),
        "pending": sum(e.eligible is None for e in rows),
        "enrolled": sum(e.status in ("enrolled", "allocated") for e in rows),
        "allocated": sum(e.status == "allocated" for e in rows),
        "arms": arms,
        "adverse_events": {f"grade_{g}": sum(a.grade == g for a in aes) for g in range(1, 6)},
        "serious_adverse_events": sum(a.serious for a in aes),
        "upcoming_visits": [{"patient_id": pid[v.enrolment_id], "name": v.name,
                             "due_date": v.due_date.isoformat()} for v in upcoming],
    }


@router.get("/{trial}/allocation-audit",
            summary="Verify the allocation logs: hash chains, arms reproduced from the seed, "
            "and every stored allocation present in its log")
def allocation_audit(trial: str, request: Request, session: DB, p: _AUDIT):
    from hccstrat.service.allocation import audit_allocations

    _trial(trial)
    q = (select(Allocation, Patient.pseudo_id).join(Enrolment, Enrolment.id ==
         Allocation.enrolment_id).join(Patient, Patient.id == Enrolment.patient_id)
         .where(Enrolment.trial == trial))
    rows = [{"patient_id": pid, "arm": a.arm, "log_hash": a.log_hash}
            for a, pid in session.execute(q).all()]
    rep = audit_allocations(request.app.state.settings.data_dir, trial, rows)
    # a centre-bound monitor gets the verdict, not other centres' log details
    if p.centre_id is not None:
        rep = {"ok": rep["ok"], "n_logs": len(rep["logs"]), "problems": len(rep["problems"])}
    return rep


@router.get("/{trial}/summary", summary="CONSORT counts, arms, AEs and upcoming visits")
def summary(trial: str, session: DB, p: _READ):
    return trial_summary(session, p, trial)
