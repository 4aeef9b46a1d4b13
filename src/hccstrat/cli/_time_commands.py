"""``hccstrat wsi time|annotate|mil|heatmap``: TIME panel, reader agreement, MIL, heatmaps.

Registered on the ``wsi`` Typer app by :func:`register`; heavy libraries are imported
inside the commands.
"""

from __future__ import annotations

import pathlib

import typer

__all__ = ["register"]


def time_cmd(
    inputs: list[pathlib.Path] = typer.Argument(..., help="Slide files and/or folders."),
    out: pathlib.Path = typer.Option(..., "--out", "-o", help="Output folder."),
    classifier: pathlib.Path = typer.Option(None, help="Tile classifier (.pkl) to use."),
    train: list[pathlib.Path] = typer.Option(
        None, help="Annotated slides to train the tile classifier on (GeoJSON/labels beside)."
    ),
    mpp: float = typer.Option(None, help="Level-0 µm/px for slides that store none."),
    margin_um: float = typer.Option(1000.0, help="Invasive-margin band width (µm)."),
    normalise_stains: bool = typer.Option(
        False, "--normalise-stains",
        help="With --train: normalise every slide to the training slides' stains (Macenko).",
    ),
) -> None:
    """TIME panel (time_panel.csv), per-tile tables and overlay PNGs."""
    from rich.console import Console

    from hccstrat.exceptions import ConfigError
    from hccstrat.pathology.batch import discover_slides
    from hccstrat.pathology.tile_classifier import TileClassifier
    from hccstrat.pathology.time import TimeConfig
    from hccstrat.pathology.time_batch import run_time_batch, train_tile_classifier

    console = Console(stderr=True)
    cfg = TimeConfig(margin_um=margin_um)
    if classifier is None and not train:
        raise ConfigError(
            "no tile classifier", hint="pass --classifier FILE or --train SLIDE (annotated)"
        )
    slides = discover_slides(inputs, require=True)  # before a long training run
    if train:
        clf, _ = train_tile_classifier(discover_slides(train, require=True), config=cfg,
                                       progress=console.print,
                                       normalise_stains=normalise_stains)
        clf.save(out / "tile_classifier.pkl", encoder="builtin", context=cfg.context)
    else:
        clf, meta = TileClassifier.load(classifier)
        cfg.context = bool(meta.get("context", True))
    panel, man = run_time_batch(
        slides, clf, out, config=cfg, mpp=mpp, progress=console.print
    )
    console.print(f"{len(panel)}/{len(man)} slides; panel: {out / 'time_panel.csv'}")
    for r in man[man["status"] == "failed"].itertuples():
        console.print(f"  failed {r.slide_id}: [{r.error_code}] {r.error_message}",
                      highlight=False, markup=False, soft_wrap=True)


def annotate_cmd(
    reader1: pathlib.Path = typer.Argument(..., help="Reader 1 GeoJSON (QuPath export)."),
    reader2: pathlib.Path = typer.Argument(..., help="Reader 2 GeoJSON."),
    out: pathlib.Path = typer.Option(..., "--out", "-o", help="Output folder."),
    width: int = typer.Option(..., help="Slide level-0 width (px)."),
    height: int = typer.Option(..., help="Slide level-0 height (px)."),
    arbiter: pathlib.Path = typer.Option(None, help="Arbiter GeoJSON (disagreements)."),
    downsample: float = typer.Option(8.0, help="Level-0 px per raster pixel."),
    tile: int = typer.Option(16, help="Raster pixels per agreement tile."),
) -> None:
    """Agreement (kappa, Dice/IoU), disagreement regions, and the arbitrated consensus."""
    import numpy as np
    from rich.console import Console

    from hccstrat.io.atomic import atomic_write
    from hccstrat.pathology.annotate import (
        agreement,
        arbitrate,
        disagreement_geojson,
        label_map_to_geojson,
        rasterise,
        read_geojson_regions,
        write_geojson,
    )

    shape = (int(np.ceil(height / downsample)), int(np.ceil(width / downsample)))
    r1, r2 = (rasterise(read_geojson_regions(p), shape, downsample) for p in (reader1, reader2))
    kappa, per_class = agreement(r1, r2, tile=tile)
    per_class.insert(0, "kappa_tiles", kappa)
    with atomic_write(out / "agreement.csv") as fh:
        per_class.to_csv(fh, index=False)
    arb_map = (
        rasterise(read_geojson_regions(arbiter), shape, downsample)
        if arbiter
        else np.zeros_like(r1)
    )
    res = arbitrate(r1, r2, arb_map)
    write_geojson(out / "disagreement.geojson", disagreement_geojson(res, downsample))
    write_geojson(out / "consensus.geojson", label_map_to_geojson(res.consensus, downsample))
    Console(stderr=True).print(
        f"kappa (tiles) {kappa:.3f}; {res.n_regions} disagreement regions, "
        f"{res.resolved_fraction:.0%} resolved; outputs in {out}"
    )


def mil_cmd(
    features: list[pathlib.Path] = typer.Argument(..., help="Feature files (.h5) or folders."),
    targets: pathlib.Path = typer.Option(
        ..., help="CSV: slide_id (file stem) and time+event (survival) or label."
    ),
    out: pathlib.Path = typer.Option(..., "--out", "-o", help="Output folder."),
    arch: str = typer.Option("gated", help="gated or transmil."),
    epochs: int = typer.Option(40),
    seed: int = typer.Option(0),
) -> None:
    """Train a MIL model on feature bags; write the model and slide embeddings."""
    import pandas as pd
    from rich.console import Console

    from hccstrat.exceptions import ConfigError
    from hccstrat.io.atomic import atomic_write
    from hccstrat.models.mil import MILModel, load_bags
    from hccstrat.survival import make_surv

    files = [q for p in features for q in (sorted(p.glob("*.h5")) if p.is_dir() else [p])]
    tab = pd.read_csv(targets).set_index("slide_id")
    files = [f for f in files if f.stem in tab.index]
    if not files:
        raise ConfigError("no feature file matches a slide_id of --targets", hint="check names")
    bags, _ = load_bags(files)
    t = tab.loc[[f.stem for f in files]]
    if {"time", "event"} <= set(t.columns):
        task, y = "survival", make_surv(t["event"].astype(bool), t["time"])
    elif "label" in t.columns:
        task, y = "classification", t["label"].to_numpy()
    else:
        raise ConfigError("--targets needs time+event or label columns", hint="add them")
    m = MILModel(arch=arch, task=task, epochs=epochs, random_state=seed).fit(bags, y)
    m.save(out / "mil_model.pt")
    with atomic_write(out / "slide_embeddings.csv") as fh:
        m.embedding_frame(bags, [f.stem for f in files]).to_csv(fh, index=False)
    Console(stderr=True).print(f"trained {arch} MIL ({task}) on {len(bags)} slides → {out}")


def heatmap_cmd(
    slide: pathlib.Path = typer.Argument(..., help="Slide file."),
    features: pathlib.Path = typer.Option(..., help="Its feature file (.h5)."),
    model: pathlib.Path = typer.Option(..., help="MIL model (.pt)."),
    out: pathlib.Path = typer.Option(..., "--out", "-o", help="PNG to write."),
    mpp: float = typer.Option(None, help="Level-0 µm/px when the slide stores none."),
) -> None:
    """Attention heatmap of a MIL model over the slide thumbnail (PNG)."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    from hccstrat.io.store import read_features
    from hccstrat.io.wsi import open_slide
    from hccstrat.models.mil import MILModel
    from hccstrat.pathology.heatmap import plot_score_heatmap, save_png

    f = read_features(features)
    m = MILModel.load(model)
    att = m.attention([f.features])[0]
    with open_slide(slide, mpp=mpp) as r:
        thumb, ds = r.get_thumbnail(1024)
    fig, ax = plt.subplots(figsize=(7, 7))
    plot_score_heatmap(thumb, ds, f.coords, int(f.attrs["patch_size_level0"]), att, ax=ax,
                       title=f"{slide.stem}: MIL attention")
    save_png(fig, out)


def register(app: typer.Typer) -> None:
    """Add the TIME/annotation/MIL/heatmap commands to the ``wsi`` app."""
    app.command("time")(time_cmd)
    app.command("annotate")(annotate_cmd)
    app.command("mil")(mil_cmd)
    app.command("heatmap")(heatmap_cmd)
