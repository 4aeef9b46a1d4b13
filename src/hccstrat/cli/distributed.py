"""``hccstrat distributed`` (Ray batch jobs) and ``hccstrat federated`` (Flower).

Two Typer apps: :data:`app` for the ``distributed`` group and :data:`federated_app`
for the ``federated`` group. Ray and Flower are imported inside the commands.
"""

from __future__ import annotations

import json
from pathlib import Path

import typer

__all__ = ["app", "federated_app"]

app = typer.Typer(help="Batch jobs on a Ray cluster (WSI embedding, MRI stages, scoring), "
                       "with the single-machine manifests and resume.", no_args_is_help=True)
federated_app = typer.Typer(help="Federated Cox training across centres with Flower: "
                                 "server, client, simulate.", no_args_is_help=True)

_ADDRESS = typer.Option(None, "--address",
                        help="Ray cluster ('auto', 'ray://head:10001'); default: local Ray.")
_CPUS = typer.Option(None, "--num-cpus", min=1, help="CPUs of a local Ray.")
_RETRIES = typer.Option(3, "--max-retries", min=0, help="Retries of a task whose worker died.")


def _progress():
    from rich.console import Console

    console = Console(stderr=True)
    return lambda msg: console.print(msg, highlight=False)


def _summary(df, key: str) -> None:
    from rich.console import Console

    con = Console()
    n_ok = int(df["status"].isin(["ok", "skipped"]).sum())
    con.print(f"{n_ok}/{len(df)} ok or done before")
    for _, r in df[df["status"] == "failed"].iterrows():
        con.print(f"  {r[key]}: [{r['error_code']}] {r['error_message']}", highlight=False,
                  markup=False)  # messages quote lists: "[...]"


@app.command("info")
def info(address: str = _ADDRESS, num_cpus: int = _CPUS) -> None:
    """Show the resources of the Ray cluster (or of a local Ray)."""
    from hccstrat.distributed.ray_jobs import init_ray

    ray = init_ray(address, num_cpus=num_cpus)
    typer.echo(json.dumps({k: float(v) for k, v in ray.cluster_resources().items()
                           if not k.startswith("node:")}, indent=2))


@app.command("wsi")
def wsi(
    inputs: list[Path] = typer.Argument(..., exists=True, help="Slide files and/or folders."),
    out: Path = typer.Option(Path("out/wsi"), "--out"),
    stage: str = typer.Option("embed", "--stage", help="tile, qc or embed."),
    encoder: str = typer.Option("builtin", "--encoder"),
    checkpoint: Path = typer.Option(None, "--checkpoint", help="Local encoder weights."),
    device: str = typer.Option(None, "--device", help="Encoder device, e.g. cuda."),
    mpp: float = typer.Option(None, "--mpp", help="Level-0 mpp for slides without one."),
    target_mpp: float = typer.Option(0.5, "--target-mpp"),
    patch_size: int = typer.Option(224, "--patch-size"),
    actors: int = typer.Option(1, "--actors", min=1, help="Encoder actors (model copies)."),
    gpus_per_actor: float = typer.Option(None, "--gpus-per-actor",
                                         help="Default: 1 if the cluster has GPUs, else 0."),
    address: str = _ADDRESS,
    num_cpus: int = _CPUS,
    max_retries: int = _RETRIES,
    no_resume: bool = typer.Option(False, "--no-resume"),
) -> None:
    """Tile, QC and embed slides on Ray; same outputs and manifest as 'hccstrat wsi'."""
    from hccstrat.distributed.ray_jobs import init_ray, wsi_batch
    from hccstrat.pathology.batch import WsiJobConfig

    kw = {}
    if checkpoint:
        kw["checkpoint"] = str(checkpoint)
    if device:
        kw["device"] = device
    cfg = WsiJobConfig(stage=stage, mpp=mpp, target_mpp=target_mpp, patch_size=patch_size,
                       encoder=encoder, encoder_kwargs=kw)
    init_ray(address, num_cpus=num_cpus)
    df = wsi_batch(inputs, out, cfg, resume=not no_resume, progress=_progress(),
                   encoder_actors=actors, gpus_per_actor=gpus_per_actor,
                   max_retries=max_retries)
    _summary(df, "slide_id")


@app.command("mri")
def mri(
    stage: str = typer.Argument(..., help="ingest, qc or preprocess."),
    root: Path = typer.Argument(..., exists=True, help="Folder of study folders."),
    out: Path = typer.Option(Path("out/mri"), "--out"),
    no_register: bool = typer.Option(False, "--no-register"),
    reference_date: str = typer.Option(None, "--reference-date"),
    address: str = _ADDRESS,
    num_cpus: int = _CPUS,
    max_retries: int = _RETRIES,
    no_resume: bool = typer.Option(False, "--no-resume"),
) -> None:
    """Run one MRI stage over study folders on Ray (same outputs as 'hccstrat mri')."""
    from hccstrat.distributed.ray_jobs import init_ray, map_items
    from hccstrat.exceptions import ConfigError
    from hccstrat.radiology import batch as mb

    dirs = mb.study_dirs(root)
    if stage == "ingest":
        fn, items = mb.stage_ingest, [(d.name, (d, out / d.name / "ingest", None)) for d in dirs]
    elif stage == "qc":
        fn, items = mb.stage_qc, [(d.name, (d, out / d.name, reference_date)) for d in dirs]
    elif stage == "preprocess":
        from hccstrat.radiology.preprocess import PreprocessConfig

        cfg = PreprocessConfig(register=not no_register)
        fn = mb.stage_preprocess
        items = [(d.name, (d, out / d.name / "preprocessed", cfg)) for d in dirs]
    else:
        raise ConfigError(f"unknown MRI stage {stage!r}", hint="use ingest, qc or preprocess")
    init_ray(address, num_cpus=num_cpus)
    df = map_items(items, fn, out / f"manifest_{stage}.csv", stage=stage,
                   resume=not no_resume, progress=_progress(), max_retries=max_retries)
    _summary(df, "item")


def _load_model(path: Path):
    if path.suffix == ".npz":
        from hccstrat.distributed.flower_net import load_global

        return load_global(path)
    from hccstrat.models.persist import load_model

    return load_model(path)


@app.command("score")
def score(
    model: Path = typer.Argument(..., exists=True, help="A .hccmodel or federated .npz."),
    features: Path = typer.Argument(..., exists=True, help="CSV, one row per patient."),
    out: Path = typer.Option(Path("out/scores"), "--out"),
    index_col: str = typer.Option(None, "--index-col", help="Patient id column."),
    chunk_rows: int = typer.Option(1000, "--chunk-rows", min=1),
    address: str = _ADDRESS,
    num_cpus: int = _CPUS,
    max_retries: int = _RETRIES,
    no_resume: bool = typer.Option(False, "--no-resume"),
) -> None:
    """Score a feature table in chunks on Ray; writes scores.csv and a manifest."""
    import pandas as pd

    from hccstrat.distributed.ray_jobs import init_ray, score_batch

    X = pd.read_csv(features, index_col=index_col)
    est = _load_model(model)
    init_ray(address, num_cpus=num_cpus)
    risk = score_batch(est, X, out, chunk_rows=chunk_rows, resume=not no_resume,
                       progress=_progress(), max_retries=max_retries)
    typer.echo(f"scored {len(risk)} rows -> {out / 'scores.csv'}")


# --- federated -------------------------------------------------------------------------


def _fed_config(algorithm, rounds, mu, hidden, local_steps, lr, secret_file, clip, noise, seed):
    from hccstrat.distributed._fed_models import CoxHeadConfig
    from hccstrat.distributed.federated import FederatedConfig

    secret = secret_file.read_text().strip() if secret_file else None
    return FederatedConfig(
        algorithm=algorithm, rounds=rounds, proximal_mu=mu,
        head=CoxHeadConfig(hidden=hidden, local_steps=local_steps, lr=lr, seed=seed),
        secure=secret is not None, secret=secret, clip=clip, noise_multiplier=noise, seed=seed,
    ).check()


_ALG = typer.Option("fedavg", "--algorithm", help="fedavg or fedprox.")
_ROUNDS = typer.Option(30, "--rounds", min=1)
_MU = typer.Option(0.1, "--mu", help="FedProx proximal weight.")
_HIDDEN = typer.Option(0, "--hidden", min=0, help="0: linear Cox; >0: MLP width.")
_STEPS = typer.Option(5, "--local-steps", min=1)
_LR = typer.Option(0.05, "--lr")
_SECRET = typer.Option(None, "--secret-file", exists=True,
                       help="Federation secret (centres only): enables secure aggregation.")
_CLIP = typer.Option(None, "--clip", help="DP: L2 clipping norm of each update.")
_NOISE = typer.Option(0.0, "--noise", help="DP: noise multiplier (std = noise x clip).")
_SEED = typer.Option(0, "--seed")


@federated_app.command("simulate")
def simulate_cmd(
    patients: int = typer.Option(1200, "--patients", min=50),
    centres: int = typer.Option(4, "--centres", min=2),
    algorithm: str = _ALG, rounds: int = _ROUNDS, mu: float = _MU, hidden: int = _HIDDEN,
    local_steps: int = _STEPS, lr: float = _LR, secure: bool = typer.Option(
        False, "--secure", help="Secure aggregation with a random federation secret."),
    clip: float = _CLIP, noise: float = _NOISE, seed: int = _SEED,
    out: Path = typer.Option(None, "--out", help="Folder for the model and tables."),
) -> None:
    """Federation of the synthetic cohort split by centre, compared with pooled training."""
    import secrets

    from hccstrat.distributed.compare import compare_with_pooled
    from hccstrat.synthetic.cohort import generate_cohort

    cfg = _fed_config(algorithm, rounds, mu, hidden, local_steps, lr, None, clip, noise, seed)
    if secure:
        cfg.secure, cfg.secret = True, secrets.token_hex(16)
    cohort = generate_cohort(patients, centres, seed=seed)
    cmp = compare_with_pooled(cohort, cfg, seed=seed)
    typer.echo(cmp.summary())
    if out is not None:
        cmp.save(out)
        typer.echo(f"wrote {out}")


@federated_app.command("server")
def server_cmd(
    centres: int = typer.Option(..., "--centres", min=2, help="Centres that must join."),
    address: str = typer.Option("0.0.0.0:8080", "--address"),
    algorithm: str = _ALG, rounds: int = _ROUNDS, mu: float = _MU,
    secure: bool = typer.Option(False, "--secure",
                                help="Expect masked uploads (clients give --secret-file)."),
    eval_every: int = typer.Option(10, "--eval-every", min=1),
    hidden: int = _HIDDEN,
    out: Path = typer.Option(Path("out/federated/global"), "--out",
                             help="Stem of the model (.npz) and evaluation (.csv) files."),
) -> None:
    """Coordinate a federation over gRPC (the server never sees patient data)."""
    from hccstrat.distributed.flower_net import run_server

    cfg = _fed_config(algorithm, rounds, mu, hidden, 1, 0.05, None, None, 0.0, 0)
    cfg.eval_every, cfg.secure = eval_every, secure
    res = run_server(address, cfg, centres, out=out)
    if res.meta is not None:
        typer.echo(f"pooled C-index (random effects): {res.meta.estimate:.3f} "
                   f"[{res.meta.ci_low:.3f}, {res.meta.ci_high:.3f}]")
    typer.echo(f"global model -> {Path(out).with_suffix('.npz')}")


@federated_app.command("client")
def client_cmd(
    data: Path = typer.Argument(..., exists=True, help="This centre's CSV table."),
    centre: str = typer.Option(..., "--centre", help="Unique name of this centre."),
    address: str = typer.Option("127.0.0.1:8080", "--address"),
    time_col: str = typer.Option("time", "--time-col", help="Follow-up in months."),
    event_col: str = typer.Option("event", "--event-col"),
    features: str = typer.Option(None, "--features",
                                 help="Comma-separated covariates (default: all others)."),
    test_size: float = typer.Option(0.3, "--test-size"),
    hidden: int = _HIDDEN, local_steps: int = _STEPS, lr: float = _LR,
    secret_file: Path = _SECRET, clip: float = _CLIP, noise: float = _NOISE, seed: int = _SEED,
    max_wait_s: float = typer.Option(60.0, "--max-wait", help="Give up connecting after."),
) -> None:
    """Join a federation with this centre's data (only model weights and aggregates leave)."""
    from hccstrat.distributed.fed_data import read_centre_table
    from hccstrat.distributed.flower_net import run_client

    cfg = _fed_config("fedavg", 1, 0.0, hidden, local_steps, lr, secret_file, clip, noise, seed)
    train, test = read_centre_table(data, centre, time_col=time_col, event_col=event_col,
                                    features=features.split(",") if features else None,
                                    test_size=test_size, seed=seed)
    run_client(address, train, test, cfg, max_wait_s=max_wait_s)
    typer.echo(f"{centre}: federation finished")


@federated_app.command("export-demo")
def export_demo(
    out: Path = typer.Option(..., "--out", "-o", help="Folder for one CSV per centre."),
    patients: int = typer.Option(1200, "--patients", min=50),
    centres: int = typer.Option(4, "--centres", min=2),
    seed: int = _SEED,
) -> None:
    """Write the synthetic cohort's clinical design matrix as one CSV per centre."""
    from hccstrat.distributed.fed_data import export_centre_tables
    from hccstrat.synthetic.cohort import generate_cohort

    paths = export_centre_tables(generate_cohort(patients, centres, seed=seed), out)
    for p in paths:
        typer.echo(str(p))
