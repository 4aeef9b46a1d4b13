"""Batch runner over many slides: tile → QC → embed, with a manifest and resume.

Each slide is processed on its own: a failure (not a slide, truncated file, missing
mpp, no tissue, smaller than one tile…) becomes a ``failed`` manifest row with the
error code and message, and the batch goes on. A rerun skips slides whose output is
present with the recorded checksum.

Outputs under ``out_dir``: ``masks/<id>.png`` (tissue mask), ``coords/<id>.h5``
(tile stage), ``qc/<id>.csv`` (tile QC, qc and embed stages), ``features/<id>.h5``
(embed stage; QC-passed tiles only), and ``manifest_<stage>.csv``.
"""

from __future__ import annotations

import logging
import time
from collections.abc import Callable, Iterable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd

from hccstrat.exceptions import HccstratError
from hccstrat.io.atomic import atomic_path, atomic_write, ensure_output_dir, sha256_file
from hccstrat.pathology.qc import TileQCConfig

__all__ = ["STAGES", "SlideResult", "WsiJobConfig", "discover_slides", "process_slide", "run_batch"]

log = logging.getLogger(__name__)
STAGES = ("tile", "qc", "embed")


@dataclass
class WsiJobConfig:
    """Settings of a tile/QC/embed batch.

    Attributes
    ----------
    stage : str
        ``tile``, ``qc`` or ``embed`` (each includes the previous ones).
    target_mpp, patch_size, overlap, min_tissue : see :func:`grid_tiles`
    mpp : float or None
        Level-0 mpp for slides that store none (applied to every slide).
    qc : TileQCConfig
    encoder : str
        Registered encoder name.
    encoder_kwargs : dict
        Arguments of the encoder factory (checkpoint, sha256, device…).
    batch_size : int
    workers : int
        Reader threads.
    """

    stage: str = "embed"
    target_mpp: float = 0.5
    patch_size: int = 224
    overlap: int = 0
    min_tissue: float = 0.5
    mpp: float | None = None
    qc: TileQCConfig = field(default_factory=TileQCConfig)
    encoder: str = "builtin"
    encoder_kwargs: dict[str, Any] = field(default_factory=dict)
    batch_size: int = 64
    workers: int = 2

    def fingerprint(self) -> str:
        """Short hash of the settings that shape a slide's outputs.

        Recorded in the manifest (column ``settings``): a resumed run redoes a slide
        processed with other settings (tile size, resolution, QC rules, encoder and its
        weights) instead of keeping its old outputs. Throughput settings (batch size,
        reader threads, device) are left out.
        """
        import hashlib
        import json
        from dataclasses import asdict

        enc = {k: v for k, v in self.encoder_kwargs.items() if k not in ("device",)}
        keys = ("stage", "target_mpp", "patch_size", "overlap", "min_tissue", "mpp", "encoder")
        payload = {k: getattr(self, k) for k in keys}
        payload.update(qc=asdict(self.qc), encoder_kwargs=enc)
        text = json.dumps(payload, sort_keys=True, default=str)
        return hashlib.sha256(text.encode()).hexdigest()[:16]

    def check(self) -> None:
        """Raise :class:`~hccstrat.exceptions.ConfigError` naming the first invalid setting.

        Checked once before any slide is read, so that a wrong option value is one
        clear error rather than a misleading failure on every slide (or a hang).
        """
        from hccstrat.exceptions import ConfigError

        q = self.qc
        rules = [  # (option, value, valid, what to give instead)
            ("stage", self.stage, self.stage in STAGES, f"one of {', '.join(STAGES)}"),
            ("--target-mpp", self.target_mpp, self.target_mpp > 0, "> 0 µm/px, e.g. 0.5"),
            ("--tile-size", self.patch_size, self.patch_size >= 16, ">= 16 px, e.g. 224"),
            ("--overlap", self.overlap, 0 <= self.overlap < self.patch_size,
             f">= 0 px and < --tile-size ({self.patch_size})"),
            ("--min-tissue", self.min_tissue, 0 <= self.min_tissue <= 1, "0 to 1, e.g. 0.5"),
            ("--mpp", self.mpp, self.mpp is None or self.mpp > 0, "> 0 µm/px, e.g. 0.25"),
            ("--batch-size", self.batch_size, self.batch_size >= 1, ">= 1, e.g. 64"),
            ("--workers", self.workers, self.workers >= 0, ">= 0 reader threads"),
            ("--max-pen", q.max_pen, 0 <= q.max_pen <= 1, "0 to 1, e.g. 0.05"),
            ("--min-blur-var", q.min_blur_var, q.min_blur_var >= 0, ">= 0, e.g. 60"),
        ]
        for name, value, valid, expected in rules:
            if not valid:
                raise ConfigError(f"{name} {value!r} is invalid", hint=f"give {expected}")


@dataclass
class SlideResult:
    """What processing one slide produced (for demos and reports)."""

    row: dict[str, Any]
    tissue: Any = None
    grid: Any = None
    qc: pd.DataFrame | None = None


def discover_slides(paths: Iterable[str | Path], *, require: bool = False) -> list[Path]:
    """Files given directly, plus slide-like files found (non-recursively) in folders.

    A slide named twice (a file also inside a given folder, a repeated glob) is kept
    once, at its first place: a batch must not process, or count, a slide twice.

    Raises
    ------
    InputFileError
        With ``require=True``, when no slide is found (an empty folder, a mistyped
        path or extension): a batch of nothing is a mistake, not a success.
    """
    from hccstrat.io.wsi import SLIDE_EXTENSIONS

    paths = list(paths)
    found: list[Path] = []
    for p in map(Path, paths):
        if p.is_dir():
            found.extend(
                sorted(
                    q
                    for q in p.iterdir()
                    if q.is_file()
                    and q.name.lower().endswith(SLIDE_EXTENSIONS)
                    and not q.name.endswith((".labels.png", ".artefacts.png"))
                )
            )
        else:
            found.append(p)
    out: list[Path] = []
    seen: set[Path] = set()
    for p in found:
        key = p.resolve()
        if key not in seen:
            seen.add(key)
            out.append(p)
    if require and not out:
        from hccstrat.exceptions import InputFileError

        where = ", ".join(f"'{p}'" for p in map(str, paths)) or "(no input given)"
        raise InputFileError(
            f"no slides found in {where}",
            hint="give slide files, or folders holding files ending in "
            + ", ".join(SLIDE_EXTENSIONS) + " (folders are not searched recursively)",
        )
    return out


def _slide_ids(paths: list[Path]) -> list[str]:
    ids, seen = [], set()
    for p in paths:
        sid = p.stem
        if sid in seen:
            sid = p.name.replace(".", "_")
        seen.add(sid)
        ids.append(sid)
    return ids


def _save_mask(path: Path, mask: np.ndarray) -> None:
    from PIL import Image

    with atomic_path(path) as tmp:
        Image.fromarray((mask * 255).astype(np.uint8)).save(tmp, format="PNG")


def process_slide(
    path: str | Path,
    out_dir: str | Path,
    cfg: WsiJobConfig,
    *,
    slide_id: str | None = None,
    encoder=None,
) -> SlideResult:
    """Run the configured stage on one slide; raises hccstrat errors on bad input."""
    import h5py

    from hccstrat.io.store import write_features
    from hccstrat.io.wsi import open_slide
    from hccstrat.pathology.qc import tile_qc
    from hccstrat.pathology.tiling import grid_tiles, iter_tile_batches
    from hccstrat.pathology.tissue import detect_tissue

    t0 = time.perf_counter()
    path, out_dir = Path(path), Path(out_dir)
    sid = slide_id or path.stem
    with open_slide(path, mpp=cfg.mpp) as reader:
        row: dict[str, Any] = {**reader.info()}
        tissue = detect_tissue(reader)
        _save_mask(out_dir / "masks" / f"{sid}.png", tissue.mask)
        grid = grid_tiles(
            reader,
            tissue,
            target_mpp=cfg.target_mpp,
            patch_size=cfg.patch_size,
            overlap=cfg.overlap,
            min_tissue=cfg.min_tissue,
        )
        row.update(
            mpp=grid.mpp,
            tissue_fraction=tissue.tissue_fraction,
            n_tiles=len(grid),
            read_level=grid.read_level,
        )
        slide_sha = sha256_file(path) if path.is_file() else None
        attrs = {**grid.attrs(), "slide_sha256": slide_sha, "slide_id": sid}
        if cfg.stage == "tile":
            out = out_dir / "coords" / f"{sid}.h5"
            with atomic_path(out) as tmp, h5py.File(tmp, "w") as f:
                c = f.create_dataset("coords", data=grid.coords)
                f.create_dataset("tissue_fraction", data=grid.tissue_fraction)
                for k, v in attrs.items():
                    if v is not None:
                        c.attrs[k] = v
                        f.attrs[k] = v
            row.update(
                output_path=str(out), sha256=sha256_file(out), seconds=time.perf_counter() - t0
            )
            return SlideResult(row, tissue, grid)
        qcs, feats, idxs = [], [], []
        for tiles, idx in iter_tile_batches(
            reader, grid, batch_size=cfg.batch_size, workers=cfg.workers
        ):
            q = tile_qc(tiles, cfg.qc)
            q.index = idx
            qcs.append(q)
            if encoder is not None:
                ok = q["qc_pass"].to_numpy()
                if ok.any():
                    feats.append(encoder.encode(tiles[ok], mpp=cfg.target_mpp))
                    idxs.append(idx[ok])
        qc = pd.concat(qcs).sort_index()
        qc.insert(0, "x", grid.coords[qc.index, 0])
        qc.insert(1, "y", grid.coords[qc.index, 1])
        qc_path = out_dir / "qc" / f"{sid}.csv"
        with atomic_write(qc_path) as fh:
            qc.to_csv(fh, index_label="tile")
        n_pass = int(qc["qc_pass"].sum())
        row.update(
            n_tiles_pass=n_pass,
            blurred_frac=float(qc["is_blurred"].mean()),
            pen_frac=float(qc["has_pen"].mean()),
        )
        if encoder is None:
            row.update(output_path=str(qc_path), sha256=sha256_file(qc_path))
        else:
            if n_pass == 0:
                from hccstrat.io.wsi import NoTissueError

                raise NoTissueError(
                    f"all {len(grid)} tiles of {path.name} failed QC",
                    hint="see qc/<slide>.csv for the reasons; relax the QC "
                    "thresholds if they are too strict for this scanner",
                )
            idx = np.concatenate(idxs)
            out = out_dir / "features" / f"{sid}.h5"
            digest = write_features(
                out,
                np.concatenate(feats),
                grid.coords[idx],
                **attrs,
                encoder=encoder.name,
                encoder_sha256=encoder.sha256,
            )
            row.update(output_path=str(out), sha256=digest, feature_dim=int(encoder.dim))
        row["seconds"] = time.perf_counter() - t0
        row["tiles_per_s"] = len(grid) / max(row["seconds"], 1e-9)
        return SlideResult(row, tissue, grid, qc)


def run_batch(
    inputs: Iterable[str | Path],
    out_dir: str | Path,
    cfg: WsiJobConfig | None = None,
    *,
    resume: bool = True,
    progress: Callable[[str], None] | None = None,
) -> pd.DataFrame:
    """Process many slides; one manifest row each; failures never stop the batch.

    Parameters
    ----------
    inputs : iterable of path-like
        Slide files and/or folders.
    out_dir : path-like
    cfg : WsiJobConfig, optional
    resume : bool
        Skip slides already done (output present with the recorded checksum).
    progress : callable, optional
        Called with a short description after each slide.

    Returns
    -------
    DataFrame
        The manifest.
    """
    from hccstrat.encoders.registry import create_encoder
    from hccstrat.io.store import Manifest

    cfg = cfg or WsiJobConfig()
    cfg.check()
    out_dir = ensure_output_dir(out_dir)
    manifest = Manifest(out_dir / f"manifest_{cfg.stage}.csv")
    encoder = create_encoder(cfg.encoder, **cfg.encoder_kwargs) if cfg.stage == "embed" else None
    paths = discover_slides(inputs)
    settings = cfg.fingerprint()
    for p, sid in zip(paths, _slide_ids(paths), strict=True):
        if resume and manifest.done(sid, settings):
            manifest.record(sid, status="skipped", error_message="done before (resumed)")
            if progress:
                progress(f"{sid}: skipped (done)")
            continue
        if resume and manifest.done(sid) and progress:
            progress(f"{sid}: done before with other settings: redone")
        try:
            res = process_slide(p, out_dir, cfg, slide_id=sid, encoder=encoder)
            manifest.record(
                sid, input_path=str(p), status="ok", error_code=None, error_message=None,
                settings=settings, **res.row,
            )
            msg = f"{sid}: ok ({res.row.get('n_tiles', 0)} tiles)"
        except HccstratError as err:
            manifest.record(
                sid,
                input_path=str(p),
                status="failed",
                error_code=err.code,
                error_message=str(err),
                output_path=None,
                sha256=None,
            )
            msg = f"{sid}: failed [{err.code}]"
        except Exception as ex:  # unexpected: record it, keep the batch going
            log.exception("unexpected error on %s", p)
            manifest.record(
                sid,
                input_path=str(p),
                status="failed",
                error_code="HCC-WSI-999",
                error_message=f"internal error: {type(ex).__name__}: {ex}",
                output_path=None,
                sha256=None,
            )
            msg = f"{sid}: failed (internal error)"
        if progress:
            progress(msg)
    return manifest.to_frame()
