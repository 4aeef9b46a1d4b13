"""Batch jobs on Ray: WSI tiling/QC/embedding, MRI stages and batch scoring.

Each job keeps the single-machine semantics: one manifest row per input (written by
the driver only, after every finished item, atomically), a rerun skips what is done
(``resume``), one failure is recorded and the batch goes on. Work runs as Ray tasks
that call the very functions of the single-machine path
(:func:`hccstrat.pathology.batch.process_slide`, the MRI ``stage_*`` functions, the
model's ``predict_risk``), so outputs are identical.

* WSI: a CPU task per slide reads, tiles, QCs and writes; for ``embed`` it sends the
  QC-passed tiles to an encoder *actor* holding the model (one GPU each when the
  cluster has GPUs). Tasks and actors are retried when their worker dies
  (``max_retries``); outputs are written atomically under fixed names, so a retried
  item replaces, never duplicates, and its manifest row is written once.
* MRI: :func:`map_items` runs any module-level ``fn(arg) -> output path`` per study.
* Scoring: :func:`score_batch` splits the feature table into chunks.

Start Ray with :func:`init_ray` (local: ``num_cpus``; cluster: ``address="auto"`` or
``ray://head:10001``).
"""

from __future__ import annotations

import logging
from collections.abc import Callable, Iterable
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd

from hccstrat.distributed._lazy import require_ray
from hccstrat.exceptions import ConfigError, HccstratError, ModelError

__all__ = [
    "DIST_ERROR_CODE",
    "init_ray",
    "map_items",
    "release_encoders",
    "score_batch",
    "score_local",
    "wsi_batch",
]

log = logging.getLogger(__name__)
DIST_ERROR_CODE = "HCC-DIST-001"  # a worker died more often than max_retries allows


def init_ray(
    address: str | None = None,
    *,
    num_cpus: int | None = None,
    num_gpus: int | None = None,
    object_store_mb: int | None = None,
):
    """Connect to a Ray cluster (``address``) or start a local one; reuse a running one.

    Parameters
    ----------
    address : str, optional
        ``"auto"`` (a node of a running cluster), ``"ray://head:10001"`` (Ray client) or
        ``"head:6379"``. None starts a local Ray with ``num_cpus``/``num_gpus``.
    num_cpus, num_gpus : int, optional
        Resources of the local Ray (default: all of the machine).
    object_store_mb : int, optional
        Size of the local object store.

    Returns
    -------
    module
        The ``ray`` module.
    """
    ray = require_ray()
    if ray.is_initialized():
        return ray
    if address:
        ray.init(address=address, log_to_driver=False)
    else:
        ray.init(
            num_cpus=num_cpus,
            num_gpus=num_gpus,
            include_dashboard=False,
            log_to_driver=False,
            object_store_memory=object_store_mb * 2**20 if object_store_mb else None,
        )
    log.info("ray resources: %s", ray.cluster_resources())
    return ray


def _ray():
    ray = require_ray()
    if not ray.is_initialized():
        init_ray()
    return ray


# --- generic item map with the MRI manifest (item, stage, status, ...) ----------------


def _run_item(fn: Callable, item: str, arg: Any, stage: str) -> dict:
    """One item → one manifest row, exactly as :func:`hccstrat.radiology.batch.run_item`."""
    from hccstrat.radiology.batch import run_item

    return run_item(fn, item, arg, stage)


def _died_row(key: str, err: BaseException, max_retries: int) -> dict:
    return {"status": "failed", "error_code": DIST_ERROR_CODE,
            "error_message": f"worker lost {max_retries + 1} times ({type(err).__name__}); "
                             "the item was not processed (how to fix: check the node's "
                             "memory and logs, then rerun: resume retries it)"}


def _gather(refs: dict, on_done: Callable[[str, dict], None], max_retries: int) -> None:
    """Wait for task refs (key → ref) and hand each finished row to ``on_done``."""
    ray = _ray()
    pending = dict(refs)
    by_ref = {r: k for k, r in pending.items()}
    while by_ref:
        ready, _ = ray.wait(list(by_ref), num_returns=1)
        for ref in ready:
            key = by_ref.pop(ref)
            try:
                row = ray.get(ref)
            except Exception as err:  # the task's worker died more than max_retries times
                log.error("item %s: %s", key, err)
                row = _died_row(key, err, max_retries)
            on_done(key, row)


def map_items(
    items: Iterable[tuple[str, Any]],
    fn: Callable,
    manifest_path: str | Path,
    *,
    stage: str,
    resume: bool = True,
    progress: Callable[[str], None] | None = None,
    max_retries: int = 3,
    num_cpus: float = 1,
    num_gpus: float = 0,
) -> pd.DataFrame:
    """Ray counterpart of :func:`hccstrat.radiology.batch.run_batch`.

    ``fn(arg)`` (a module-level function) runs as a Ray task per ``(item_id, arg)`` and
    returns the output path; the driver records each row in the manifest.
    """
    from hccstrat.radiology.batch import Manifest

    ray = _ray()
    man = Manifest(Path(manifest_path))
    done = man.done() if resume else set()
    todo = [(str(i), a) for i, a in items if str(i) not in done]
    for i in sorted(done):
        if progress:
            progress(f"{stage}: {i} already done (skipped)")
    task = ray.remote(_run_item).options(max_retries=max_retries, num_cpus=num_cpus,
                                         num_gpus=num_gpus)
    refs = {i: task.remote(fn, i, a, stage) for i, a in todo}

    def on_done(key: str, row: dict) -> None:
        row = {"item": key, "stage": stage, **row}
        man.record(row)
        if progress:
            progress(f"{stage}: {key} {row['status']}")

    _gather(refs, on_done, max_retries)
    return man.load()


# --- WSI -------------------------------------------------------------------------------


class _EncoderActor:
    """Holds one encoder (on a GPU when the actor was given one)."""

    def __init__(self, name: str, kwargs: dict):
        from hccstrat.encoders.registry import create_encoder

        self.encoder = create_encoder(name, **kwargs)

    def info(self) -> dict:
        e = self.encoder
        return {"name": e.name, "dim": int(e.dim), "sha256": e.sha256,
                "input_size": int(getattr(e, "input_size", 224))}

    def encode(self, tiles: np.ndarray, mpp: float) -> np.ndarray:
        return self.encoder.encode(tiles, mpp=mpp)


class _RemoteEncoder:
    """Encoder interface of the pipeline, forwarding batches to an encoder actor."""

    def __init__(self, actor, info: dict):
        self.actor = actor
        self.name, self.dim, self.sha256 = info["name"], info["dim"], info["sha256"]
        self.input_size = info["input_size"]

    def encode(self, tiles: np.ndarray, *, mpp: float = 0.5) -> np.ndarray:
        import ray

        return ray.get(self.actor.encode.remote(tiles, mpp))


_ACTORS: dict[tuple, list] = {}


def _encoder_actors(cfg, n: int, gpus: float, max_retries: int) -> list:
    """Encoder actors of this Ray session, created once and reused by later batches."""
    import json

    ray = _ray()
    ctx = ray.get_runtime_context()  # node id: unique per cluster start, unlike job ids
    key = (ctx.get_node_id(), ctx.get_job_id(), cfg.encoder,
           json.dumps(cfg.encoder_kwargs, sort_keys=True, default=str), gpus)
    pool = _ACTORS.setdefault(key, [])
    cls = ray.remote(_EncoderActor).options(
        num_cpus=0, num_gpus=gpus, max_restarts=max_retries, max_task_retries=max_retries)
    while len(pool) < n:
        pool.append(cls.remote(cfg.encoder, cfg.encoder_kwargs))
    return pool[:n]


def release_encoders() -> None:
    """Stop the cached encoder actors (they otherwise live as long as the Ray session)."""
    ray = require_ray()
    for pool in _ACTORS.values():
        for a in pool:
            if ray.is_initialized():
                ray.kill(a)
    _ACTORS.clear()


def _clean_partial(out_dir: Path, sid: str) -> None:
    """Remove temporary files a killed attempt on this slide may have left."""
    for sub in ("masks", "coords", "qc", "features"):
        for tmp in (out_dir / sub).glob(f".{sid}.*.tmp"):
            tmp.unlink(missing_ok=True)


def _slide_task(path: Path, out_dir: Path, cfg, sid: str, actor, info, slide_fn) -> dict:
    """One slide, as :func:`hccstrat.pathology.batch.run_batch` records it."""
    from hccstrat.pathology.batch import process_slide

    _clean_partial(out_dir, sid)
    encoder = _RemoteEncoder(actor, info) if actor is not None else None
    try:
        res = (slide_fn or process_slide)(path, out_dir, cfg, slide_id=sid, encoder=encoder)
        return dict(input_path=str(path), status="ok", error_code=None, error_message=None,
                    **res.row)
    except HccstratError as err:
        return dict(input_path=str(path), status="failed", error_code=err.code,
                    error_message=str(err), output_path=None, sha256=None)
    except Exception as ex:
        log.exception("unexpected error on %s", path)
        return dict(input_path=str(path), status="failed", error_code="HCC-WSI-999",
                    error_message=f"internal error: {type(ex).__name__}: {ex}",
                    output_path=None, sha256=None)


def _slide_ids(paths: list[Path]) -> list[str]:
    """Slide ids exactly as the single-machine batch assigns them (stem; name if reused)."""
    ids, seen = [], set()
    for p in paths:
        sid = p.stem if p.stem not in seen else p.name.replace(".", "_")
        seen.add(sid)
        ids.append(sid)
    return ids


def wsi_batch(
    inputs: Iterable[str | Path],
    out_dir: str | Path,
    cfg=None,
    *,
    resume: bool = True,
    progress: Callable[[str], None] | None = None,
    encoder_actors: int = 1,
    gpus_per_actor: float | None = None,
    max_retries: int = 3,
    cpus_per_task: float = 1,
    slide_fn: Callable | None = None,
) -> pd.DataFrame:
    """Ray counterpart of :func:`hccstrat.pathology.batch.run_batch` (same outputs).

    Parameters
    ----------
    inputs : iterable of path-like
        Slide files and/or folders.
    out_dir : path-like
    cfg : WsiJobConfig, optional
    resume : bool
        Skip slides done before (output present with the recorded checksum).
    progress : callable, optional
    encoder_actors : int
        Encoder actors for the ``embed`` stage (one model copy each).
    gpus_per_actor : float, optional
        GPUs per encoder actor; default 1 when the cluster has GPUs, else 0.
    max_retries : int
        Retries of a slide task (and of an actor call) whose worker died.
    cpus_per_task : float
        CPUs reserved per slide task (raise it to match ``cfg.workers`` reader threads).
    slide_fn : callable, optional
        Replacement of ``process_slide`` with the same signature (custom pipelines,
        fault-injection tests).

    Returns
    -------
    DataFrame
        The manifest, rows in input order.
    """
    from hccstrat.io.store import Manifest
    from hccstrat.pathology.batch import STAGES, WsiJobConfig, discover_slides

    ray = _ray()
    cfg = cfg or WsiJobConfig()
    if cfg.stage not in STAGES:
        raise ConfigError(f"unknown stage {cfg.stage!r}", hint=f"use one of {STAGES}")
    if encoder_actors < 1:
        raise ConfigError("encoder_actors must be >= 1", hint="e.g. --actors 2")
    out_dir = Path(out_dir)
    out_dir.mkdir(parents=True, exist_ok=True)
    manifest = Manifest(out_dir / f"manifest_{cfg.stage}.csv")
    paths = discover_slides(inputs)
    ids = _slide_ids(paths)
    todo = []
    settings = cfg.fingerprint()
    for p, sid in zip(paths, ids, strict=True):
        if resume and manifest.done(sid, settings):
            manifest.record(sid, status="skipped", error_message="done before (resumed)")
            if progress:
                progress(f"{sid}: skipped (done)")
        else:
            todo.append((p, sid))
    actors, info = [None], None
    if cfg.stage == "embed" and todo:
        if gpus_per_actor is None:
            gpus_per_actor = 1.0 if ray.cluster_resources().get("GPU", 0) >= 1 else 0.0
        actors = _encoder_actors(cfg, encoder_actors, gpus_per_actor, max_retries)
        info = ray.get(actors[0].info.remote())
    task = ray.remote(_slide_task).options(max_retries=max_retries, num_cpus=cpus_per_task)
    refs = {sid: task.remote(p, out_dir, cfg, sid, actors[k % len(actors)], info, slide_fn)
            for k, (p, sid) in enumerate(todo)}

    def on_done(sid: str, row: dict) -> None:
        if row.get("error_code") == DIST_ERROR_CODE:
            row.update(output_path=None, sha256=None)
        manifest.record(sid, **row, settings=settings if row.get("status") == "ok" else None)
        if progress:
            status = row["status"]
            progress(f"{sid}: {status}" + (f" ({row.get('n_tiles', 0)} tiles)"
                                           if status == "ok" else f" [{row['error_code']}]"))

    _gather(refs, on_done, max_retries)
    order = {sid: k for k, sid in enumerate(ids)}
    manifest.rows = dict(sorted(manifest.rows.items(), key=lambda kv: order.get(kv[0], 1e9)))
    manifest.save()
    return manifest.to_frame()


# --- scoring ---------------------------------------------------------------------------


def score_local(model, X) -> np.ndarray:
    """Risk of each row: ``model.predict_risk(X)`` when it exists, else ``predict(X)``."""
    fn = getattr(model, "predict_risk", None) or getattr(model, "predict", None)
    if fn is None:
        raise ConfigError(f"{type(model).__name__} has neither predict_risk nor predict",
                          hint="pass a fitted hccstrat or scikit-survival estimator")
    return np.asarray(fn(X), dtype=float).reshape(len(X), -1)[:, 0]


def _score_chunk(arg) -> Path:
    model_ref, X, out = arg
    import ray

    from hccstrat.io.atomic import atomic_write

    model = ray.get(model_ref) if isinstance(model_ref, ray.ObjectRef) else model_ref
    risk = pd.Series(score_local(model, X), index=X.index, name="risk")
    with atomic_write(out) as fh:
        risk.to_csv(fh, index_label="row")
    return out


def score_batch(
    model,
    X: pd.DataFrame,
    out_dir: str | Path,
    *,
    chunk_rows: int = 1000,
    resume: bool = True,
    progress: Callable[[str], None] | None = None,
    max_retries: int = 3,
    cpus_per_task: float = 1,
) -> pd.Series:
    """Score a large feature table in chunks on Ray, with a manifest and resume.

    Writes ``scores/chunk_NNNNN.csv``, ``manifest_score.csv`` and ``scores.csv`` under
    ``out_dir``; returns the risks (index of ``X``), equal to :func:`score_local`.
    """
    if chunk_rows < 1:
        raise ConfigError("chunk_rows must be >= 1", hint="e.g. --chunk-rows 1000")
    if not isinstance(X, pd.DataFrame):
        X = pd.DataFrame(np.asarray(X))
    ray = _ray()
    out_dir = Path(out_dir)
    model_ref = ray.put(model)
    items = []
    for k, start in enumerate(range(0, len(X), chunk_rows)):
        chunk = X.iloc[start : start + chunk_rows]
        cid = f"chunk_{k:05d}"
        items.append((cid, (model_ref, chunk, out_dir / "scores" / f"{cid}.csv")))
    man = map_items(items, _score_chunk, out_dir / "manifest_score.csv", stage="score",
                    resume=resume, progress=progress, max_retries=max_retries,
                    num_cpus=cpus_per_task)
    bad = man[man["status"] != "ok"]
    if len(bad):
        raise ModelError(f"{len(bad)} scoring chunk(s) failed: "
                            f"{bad['error_message'].iloc[0]}",
                            hint=f"see {out_dir / 'manifest_score.csv'}, fix and rerun")
    parts = [pd.read_csv(out_dir / "scores" / f"{i}.csv", index_col=0,
                         float_precision="round_trip")["risk"] for i, _ in items]
    risk = pd.concat(parts) if parts else pd.Series(dtype=float, name="risk")
    risk.index = X.index
    from hccstrat.io.atomic import atomic_write

    with atomic_write(out_dir / "scores.csv") as fh:
        risk.to_csv(fh, index_label="row")
    return risk
