"""``hccstrat wsi``: whole-slide tiling, tile QC, embedding, synthetic slides.

Commands are thin wrappers over :mod:`hccstrat.pathology.batch`. Other command groups
add commands to :data:`app` (e.g. TIME panel, MIL), so keep this module importable
without heavy libraries.
"""

from __future__ import annotations

import pathlib
from typing import Any

import typer

from hccstrat.cli._time_commands import register as _register_time_commands

__all__ = ["app", "demo_stage"]

app = typer.Typer(help="H&E whole-slide images: tile, QC, embed, synthesise.", no_args_is_help=True)

_register_time_commands(app)  # time | annotate | mil | heatmap

_INPUTS = typer.Argument(..., help="Slide files and/or folders of slides.")
_OUT = typer.Option(..., "--out", "-o", help="Output folder (manifest, masks, outputs).")
# options shared by tile / qc / embed (one definition: same defaults and help everywhere)
_MPP = typer.Option(None, help="Level-0 µm/px for slides that store none.")
_TARGET_MPP = typer.Option(0.5, help="Tile resolution (µm/px).")
_TILE_SIZE = typer.Option(224, help="Tile side in px at --target-mpp.")
_MIN_TISSUE = typer.Option(0.5, help="Lowest tissue share of a tile.")
_RESUME = typer.Option(True, help="Skip slides done before.")


def _run(
    stage: str, inputs: list[pathlib.Path], out: pathlib.Path, resume: bool, **kw: Any
) -> None:
    from rich.console import Console
    from rich.markup import escape
    from rich.progress import Progress

    from hccstrat.pathology.batch import WsiJobConfig, discover_slides, run_batch
    from hccstrat.pathology.qc import TileQCConfig

    qc_kw = {k: kw.pop(k) for k in list(kw) if k in TileQCConfig.__dataclass_fields__}
    cfg = WsiJobConfig(stage=stage, qc=TileQCConfig(**qc_kw), **kw)
    cfg.check()  # before the progress bar: a wrong option is one clear error
    n = len(discover_slides(inputs, require=True))
    console = Console(stderr=True)
    with Progress(console=console, transient=False) as bar:
        task = bar.add_task(f"wsi {stage}", total=n)

        def step(msg: str) -> None:
            bar.update(task, advance=1, description=msg[:60])

        df = run_batch(inputs, out, cfg, resume=resume, progress=step)
    ok = int((df["status"] != "failed").sum()) if len(df) else 0
    console.print(f"{ok}/{len(df)} slides done; manifest: {out / f'manifest_{stage}.csv'}")
    for r in df[df["status"] == "failed"].itertuples():
        console.print(
            f"  [red]failed[/] {escape(f'{r.slide_id}: [{r.error_code}] {r.error_message}')}",
            highlight=False,
            soft_wrap=True,
        )


@app.command()
def tile(
    inputs: list[pathlib.Path] = _INPUTS,
    out: pathlib.Path = _OUT,
    mpp: float = _MPP,
    target_mpp: float = _TARGET_MPP,
    tile_size: int = _TILE_SIZE,
    overlap: int = typer.Option(0, help="Overlap in px at --target-mpp."),
    min_tissue: float = _MIN_TISSUE,
    resume: bool = _RESUME,
) -> None:
    """Detect tissue and write tile coordinates (coords/<slide>.h5)."""
    _run(
        "tile",
        inputs,
        out,
        resume,
        mpp=mpp,
        target_mpp=target_mpp,
        patch_size=tile_size,
        overlap=overlap,
        min_tissue=min_tissue,
    )


@app.command()
def qc(
    inputs: list[pathlib.Path] = _INPUTS,
    out: pathlib.Path = _OUT,
    mpp: float = _MPP,
    target_mpp: float = _TARGET_MPP,
    tile_size: int = _TILE_SIZE,
    min_tissue: float = _MIN_TISSUE,
    max_pen: float = typer.Option(0.05, help="Highest accepted pen-ink share."),
    min_blur_var: float = typer.Option(60.0, help="Lowest accepted Laplacian variance."),
    resume: bool = _RESUME,
) -> None:
    """Tile and measure tile quality (qc/<slide>.csv)."""
    _run(
        "qc",
        inputs,
        out,
        resume,
        mpp=mpp,
        target_mpp=target_mpp,
        patch_size=tile_size,
        min_tissue=min_tissue,
        max_pen=max_pen,
        min_blur_var=min_blur_var,
    )


@app.command()
def embed(
    inputs: list[pathlib.Path] = _INPUTS,
    out: pathlib.Path = _OUT,
    encoder: str = typer.Option("builtin", help="builtin, uni, ctranspath, timm:<name>."),
    checkpoint: pathlib.Path = typer.Option(None, help="Local weights (foundation models)."),
    sha256: str = typer.Option(None, help="Expected SHA-256 of the checkpoint."),
    device: str = typer.Option(None, help="cpu or cuda (default: cuda if available)."),
    mpp: float = _MPP,
    target_mpp: float = _TARGET_MPP,
    tile_size: int = _TILE_SIZE,
    min_tissue: float = _MIN_TISSUE,
    batch_size: int = typer.Option(64),
    workers: int = typer.Option(2, help="Reader threads."),
    resume: bool = _RESUME,
) -> None:
    """Tile, QC and embed QC-passed tiles into the feature store (features/<slide>.h5)."""
    kw: dict[str, Any] = {}
    if encoder != "builtin":
        kw = {"checkpoint": checkpoint, "sha256": sha256, "device": device}
    _run(
        "embed",
        inputs,
        out,
        resume,
        mpp=mpp,
        target_mpp=target_mpp,
        patch_size=tile_size,
        min_tissue=min_tissue,
        encoder=encoder,
        encoder_kwargs=kw,
        batch_size=batch_size,
        workers=workers,
    )


@app.command()
def synth(
    out: pathlib.Path = _OUT,
    n: int = typer.Option(3, help="Number of slides."),
    size: int = typer.Option(4096, help="Level-0 side in px."),
    mpp: float = typer.Option(0.5),
    seed: int = typer.Option(0),
) -> None:
    """Write synthetic pyramidal H&E slides with ground-truth regions."""
    import numpy as np
    from rich.console import Console

    from hccstrat.io.atomic import ensure_output_dir
    from hccstrat.synthetic.wsi import default_latent, write_slide

    ensure_output_dir(out)
    rng = np.random.default_rng(seed)
    for i in range(n):
        lat = default_latent(
            patient_id=f"SYN-{i + 1:04d}",
            aggressiveness=float(rng.normal()),
            immune_phenotype=str(rng.choice(["inflamed", "excluded", "desert"])),
            lymphocyte_density=float(rng.uniform()),
            margin_lymphocyte_density=float(rng.uniform()),
            stroma_fraction=float(rng.uniform(0.05, 0.4)),
            necrosis_fraction=float(rng.uniform(0, 0.2)),
            vascular_invasion=bool(rng.uniform() < 0.4),
            macrotrabecular=bool(rng.uniform() < 0.2),
        )
        info = write_slide(
            out / f"{lat['patient_id']}.tiff", lat, size=(size, size), mpp=mpp, seed=seed + i
        )
        Console(stderr=True).print(f"wrote {info.path} ({info.seconds:.1f} s)")


def _qc_figure(res, reader_path: pathlib.Path):
    import matplotlib.pyplot as plt
    from matplotlib.patches import Rectangle

    tm, grid, qc = res.tissue, res.grid, res.qc
    fig, axes = plt.subplots(1, 3, figsize=(13, 4.5))
    axes[0].imshow(tm.thumbnail)
    axes[0].set_title(f"{reader_path.stem}: thumbnail")
    axes[1].imshow(tm.mask, cmap="gray")
    axes[1].set_title(f"tissue mask ({tm.tissue_fraction:.0%} of slide)")
    axes[2].imshow(tm.thumbnail)
    s = grid.patch_size_level0 / tm.downsample
    colours = {"pass": "#1a9850", "blur": "#fdae61", "pen": "#2c7bb6", "other": "#d7191c"}
    for r in qc.itertuples():
        key = "pass" if r.qc_pass else "pen" if r.has_pen else "blur" if r.is_blurred else "other"
        axes[2].add_patch(
            Rectangle(
                (r.x / tm.downsample, r.y / tm.downsample),
                s,
                s,
                lw=0.4,
                edgecolor=colours[key],
                facecolor="none",
            )
        )
    axes[2].set_title(
        f"tiles: {int(qc.qc_pass.sum())}/{len(qc)} pass (green); pen blue, blur orange", fontsize=9
    )
    for a in axes:
        a.set_axis_off()
    fig.tight_layout()
    return fig


def demo_stage(cohort, out_dir: pathlib.Path, *, seed: int, progress) -> list:
    """Write, tile, QC and embed synthetic slides of a few cohort patients.

    Parameters
    ----------
    cohort : object
        Synthetic cohort with a ``latent`` DataFrame (and optionally ``centres`` and a
        ``centre`` column in ``clinical``).
    out_dir : pathlib.Path
    seed : int
    progress : callable
        ``progress(description)``.

    Returns
    -------
    list of hccstrat.reports.html.Section
    """
    import pandas as pd

    from hccstrat.pathology.batch import WsiJobConfig, process_slide, run_batch
    from hccstrat.reports.html import Section, figure_to_html, table_to_html
    from hccstrat.synthetic.wsi import default_latent, write_slide

    out_dir = pathlib.Path(out_dir)
    slide_dir = out_dir / "slides"
    latent = getattr(cohort, "latent", None)
    if latent is None or len(latent) == 0:
        latent = pd.DataFrame([default_latent()])
    rows = latent.head(6).to_dict("records")
    shifts = _centre_shifts(cohort)
    paths = []
    for i, lat in enumerate(rows):
        pid = str(lat.get("patient_id", f"P{i}"))
        progress(f"wsi: synthesising slide {i + 1}/{len(rows)} ({pid})")
        info = write_slide(
            slide_dir / f"{pid}.tiff",
            lat,
            size=(4000, 4000),
            mpp=0.5,
            stain_shift=shifts.get(pid),
            seed=seed + i,
            geojson=False,
        )
        paths.append(info.path)
    progress("wsi: tiling, QC and builtin embedding")
    cfg = WsiJobConfig(stage="embed")
    manifest = run_batch(paths, out_dir / "wsi", cfg, progress=progress)
    res = process_slide(paths[0], out_dir / "wsi_overview", WsiJobConfig(stage="qc"))
    fig = _qc_figure(res, paths[0])
    cols = [
        c
        for c in [
            "slide_id",
            "status",
            "n_tiles",
            "n_tiles_pass",
            "tissue_fraction",
            "seconds",
            "error_code",
        ]
        if c in manifest.columns
    ]
    body = table_to_html(
        manifest[cols], caption="Slide manifest (builtin encoder)"
    ) + figure_to_html(fig, alt="Tissue detection and tile QC of one synthetic slide")
    numbers = {
        "slides": len(manifest),
        "ok": int((manifest["status"] == "ok").sum()),
        "tiles": int(pd.to_numeric(manifest.get("n_tiles"), errors="coerce").sum()),
    }
    return [Section(title="H&E whole-slide images", body=body, numbers=numbers)]


def _centre_shifts(cohort) -> dict[str, dict]:
    """patient_id → stain-shift mapping of the patient's centre, when the cohort has them."""
    centres = getattr(cohort, "centres", None)
    clinical = getattr(cohort, "clinical", None)
    if centres is None or clinical is None or "centre" not in getattr(clinical, "columns", []):
        return {}
    ckey = "centre" if "centre" in centres.columns else centres.columns[0]
    table = {r[ckey]: r for r in centres.to_dict("records")}
    pid = "patient_id" if "patient_id" in clinical.columns else clinical.columns[0]
    return {str(r[pid]): table.get(r["centre"], {}) for r in clinical.to_dict("records")}
