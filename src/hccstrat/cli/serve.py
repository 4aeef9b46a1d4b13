"""``hccstrat serve``, ``hccstrat users ...`` and ``hccstrat audit verify``.

Wiring: call :func:`register` on the root Typer app (adds the top-level ``serve``
command and the ``users`` and ``audit`` groups). :data:`app` bundles the same
commands for stand-alone use and tests.
"""

from __future__ import annotations

from pathlib import Path

import typer

__all__ = ["app", "audit_app", "register", "serve", "users_app"]

users_app = typer.Typer(help="Accounts and centres of the registry.", no_args_is_help=True)
audit_app = typer.Typer(help="Audit trail of the registry.", no_args_is_help=True)

_DATA = typer.Option(Path("hccstrat-data"), "--data-dir", help="Folder of the registry data.")
_DB = typer.Option(None, "--db", help="Database URL (default: SQLite in --data-dir).")


def _session(data_dir: Path, db: str | None, *, existing: bool = False):
    """Engine and session factory of the registry; ``existing``: refuse to create one
    (a check of a mistyped --data-dir must not pass on a new, empty registry)."""
    from hccstrat.exceptions import InputFileError
    from hccstrat.storage import default_url, make_engine, make_sessionmaker, migrate

    if existing and db is None and not (data_dir / "registry.sqlite").is_file():
        raise InputFileError(f"no registry in {data_dir} (registry.sqlite not found)",
                             hint="give the --data-dir the service uses, or --db")
    if existing and db is not None and db.startswith("sqlite:///") \
            and not Path(db.removeprefix("sqlite:///")).is_file():
        raise InputFileError(f"no registry database at {db}", hint="check the --db URL")
    data_dir.mkdir(parents=True, exist_ok=True)
    engine = make_engine(db or default_url(data_dir))
    migrate(engine)
    return engine, make_sessionmaker(engine)


def serve(
    host: str = typer.Option("127.0.0.1", help="Address to listen on (loopback by default)."),
    port: int = typer.Option(8000, help="TCP port."),
    data_dir: Path = _DATA,
    db: str = _DB,
    model: list[str] = typer.Option(
        [], "--model", help="KIND=path of a saved model, KIND one of PRE, POST, BENEFIT, e.g. "
        "PRE=models/pre.hccmodel (checksum verified; repeatable)."
    ),
    scorer: list[str] = typer.Option(
        [], "--scorer", help="KIND=package.module:factory, e.g. PRE=mypkg.pre:make (repeatable)."
    ),
    token_ttl: int = typer.Option(30, help="Bearer token lifetime in minutes."),
    secure_cookies: bool = typer.Option(False, help="Mark cookies Secure (behind HTTPS)."),
    time_classifier: Path = typer.Option(
        None, "--time-classifier", exists=True, dir_okay=False,
        help="Tile classifier of the TIME panel job (from `hccstrat wsi time --train`); "
        "without it the slide TIME endpoints answer 503. Load only files you trust.",
    ),
    encoder: list[str] = typer.Option(
        [], "--encoder", help="NAME=KIND:PATH[:SHA256]: a tile encoder the slide embed job may "
        "use by name (body {\"encoder\": NAME}), from LOCAL weights, e.g. "
        "uni=uni:/models/uni.bin:<sha256> or r18=timm:resnet18:/models/r18.pth; KIND is uni, "
        "ctranspath or timm:<model>; the checksum is verified when the job loads the weights "
        "(repeatable; 'builtin' is always available).",
    ),
) -> None:
    """Start the registry web service (API under /api, pages at /, docs at /docs)."""
    import logging

    import uvicorn

    from hccstrat.exceptions import ConfigError
    from hccstrat.service import ServiceSettings, create_app
    from hccstrat.service.encoders import parse_encoder_option
    from hccstrat.service.model_scorer import parse_model_specs
    from hccstrat.service.scoring import load_scorer

    scorers: dict = dict(parse_model_specs(model))
    for spec in scorer:
        kind, _, target = spec.partition("=")
        if kind not in ("PRE", "POST", "BENEFIT") or not target:
            raise ConfigError(f"--scorer {spec!r} is not KIND=module:factory",
                              hint="KIND is PRE, POST or BENEFIT")
        if kind in scorers:
            raise ConfigError(f"two scorers for {kind} (--model and --scorer)",
                              hint="give one scorer per kind")
        scorers[kind] = load_scorer(target)
    encoders: dict = {}
    for spec in encoder:
        name, enc_spec = parse_encoder_option(spec)
        if name in encoders:
            raise ConfigError(f"two --encoder options named {name!r}",
                              hint="give each encoder its own name")
        encoders[name] = enc_spec
    if host not in ("127.0.0.1", "localhost", "::1"):
        logging.getLogger(__name__).warning(
            "listening on %s: put the service behind HTTPS and use --secure-cookies", host)
    settings = ServiceSettings(data_dir=data_dir, db_url=db, scorers=scorers,
                               token_ttl_minutes=token_ttl, secure_cookies=secure_cookies,
                               time_classifier=time_classifier, encoders=encoders)
    typer.echo(f"hccstrat registry on http://{host}:{port}/ (data in {data_dir})")
    uvicorn.run(create_app(settings), host=host, port=port, log_level="warning",
                access_log=False)  # uvicorn's access log prints full paths: keep it off


def _validated(model, **fields):
    """``model(**fields)``; a pydantic ValidationError becomes a ConfigError naming the
    option and what it must be."""
    from pydantic import ValidationError

    from hccstrat.exceptions import ConfigError

    try:
        return model(**fields)
    except ValidationError as err:
        msgs = "; ".join(f"{'.'.join(map(str, e['loc']))}: {e['msg']}" for e in err.errors())
        raise ConfigError(f"invalid value: {msgs}", hint="correct the option and rerun; "
                          "nothing was stored") from err


def _create_user(data_dir, db, username, password, role, centre) -> None:
    from hccstrat.service.routers.admin import create_user
    from hccstrat.service.schemas import UserIn
    from hccstrat.service.security import make_hasher
    from hccstrat.storage.repositories import Scope

    body = _validated(UserIn, username=username, password=password, role=role, centre=centre)
    engine, Session = _session(data_dir, db)
    try:
        with Session() as s:
            create_user(s, make_hasher(), Scope(actor="cli"), body)
            s.commit()
    finally:
        engine.dispose()
    typer.echo(f"created {role} account {username!r}" + (f" of centre {centre}" if centre else ""))


@users_app.command("create-admin")
def create_admin(
    username: str = typer.Option("admin", help="Account name."),
    password: str = typer.Option(..., prompt=True, hide_input=True, confirmation_prompt=True,
                                 help="At least 10 characters."),
    data_dir: Path = _DATA,
    db: str = _DB,
) -> None:
    """Create the first administrator (sees every centre)."""
    _create_user(data_dir, db, username, password, "admin", None)


@users_app.command("create")
def create(
    username: str = typer.Option(..., help="Account name."),
    role: str = typer.Option(..., help="admin, investigator, radiologist, pathologist, "
                                       "data_manager, statistician or monitor."),
    centre: str = typer.Option(None, help="Centre code (omit: all centres)."),
    password: str = typer.Option(..., prompt=True, hide_input=True, confirmation_prompt=True),
    data_dir: Path = _DATA,
    db: str = _DB,
) -> None:
    """Create an account."""
    _create_user(data_dir, db, username, password, role, centre)


@users_app.command("add-centre")
def add_centre(
    code: str = typer.Argument(..., help="Short centre code, e.g. GZ1."),
    name: str = typer.Argument(..., help="Full name."),
    data_dir: Path = _DATA,
    db: str = _DB,
) -> None:
    """Register a centre."""
    from sqlalchemy import select

    from hccstrat.service.schemas import CentreIn
    from hccstrat.storage.models import Centre
    from hccstrat.storage.repositories import ConflictError, Scope, audited_add

    body = _validated(CentreIn, code=code, name=name)  # the rules of POST /api/centres
    engine, Session = _session(data_dir, db)
    try:
        with Session() as s:
            if s.scalar(select(Centre.id).where(Centre.code == body.code)) is not None:
                raise ConflictError(f"centre {body.code!r} already exists",
                                    hint="use another code")
            audited_add(s, Scope(actor="cli"), Centre(code=body.code, name=body.name),
                        entity="centre", centre_id=None)
            s.commit()
    finally:
        engine.dispose()
    typer.echo(f"centre {code} added")


@audit_app.command("verify")
def verify(data_dir: Path = _DATA, db: str = _DB) -> None:
    """Recompute the audit hash chain; exit code 9 when it is broken."""
    from hccstrat.storage import verify_chain

    engine, Session = _session(data_dir, db, existing=True)
    try:
        with Session() as s:
            res = verify_chain(s)
    finally:
        engine.dispose()
    typer.echo(res.summary())
    if not res.ok:
        raise typer.Exit(code=9)


@audit_app.command("allocations")
def allocations(
    trial: str = typer.Argument(..., help="Trial id, e.g. NCT07417800."),
    data_dir: Path = _DATA,
    db: str = _DB,
) -> None:
    """Verify a trial's allocation logs (chain, arms reproduced from the seed, database rows);
    exit code 9 when a check fails."""
    import json

    from sqlalchemy import select

    from hccstrat.service.allocation import audit_allocations
    from hccstrat.storage.models import Allocation, Enrolment, Patient

    engine, Session = _session(data_dir, db, existing=True)
    try:
        with Session() as s:
            q = (select(Allocation, Patient.pseudo_id)
                 .join(Enrolment, Enrolment.id == Allocation.enrolment_id)
                 .join(Patient, Patient.id == Enrolment.patient_id)
                 .where(Enrolment.trial == trial))
            rows = [{"patient_id": pid, "arm": a.arm, "log_hash": a.log_hash}
                    for a, pid in s.execute(q).all()]
    finally:
        engine.dispose()
    rep = audit_allocations(data_dir, trial, rows)
    typer.echo(json.dumps(rep, indent=2, default=str))
    if not rep["ok"]:
        raise typer.Exit(code=9)


def register(root: typer.Typer) -> None:
    """Add ``serve``, ``users`` and ``audit`` to the root CLI app."""
    root.command("serve")(serve)
    root.add_typer(users_app, name="users")
    root.add_typer(audit_app, name="audit")


#: stand-alone app with the same commands (tests, ``python -m``)
app = typer.Typer(help="Registry service commands.", no_args_is_help=True)
register(app)
