"""Batch TIME jobs: train the tile classifier from annotated slides, panel over many slides.

Training labels come from a label map beside each slide: the synthetic slides'
``<stem>.labels.png`` (with ``<stem>.truth.json``), or a QuPath GeoJSON
``<stem>.geojson`` / ``<stem>.regions.geojson`` rasterised on an 8× grid.
:func:`run_time_batch` writes ``time_panel.csv`` (one row per slide), ``tiles/<id>.csv``,
``overlays/<id>.png`` and ``manifest_time.csv``; one failing slide is recorded in the
manifest and the batch goes on.
"""

from __future__ import annotations

import logging
from collections.abc import Callable, Sequence
from pathlib import Path

import numpy as np
import pandas as pd

from hccstrat.exceptions import HccstratError, InputFileError
from hccstrat.io.atomic import atomic_write
from hccstrat.pathology.tile_classifier import TileClassifier, tile_labels_from_map
from hccstrat.pathology.time import (
    PANEL_COLUMNS,
    SlideTiles,
    TimeConfig,
    extract_tiles,
    measure_time,
    plot_time_overlay,
)
from hccstrat.pathology.time_tiles import pooled_stains

__all__ = ["labels_for_slide", "run_time_batch", "train_tile_classifier"]

log = logging.getLogger(__name__)


def labels_for_slide(path: str | Path, st: SlideTiles) -> np.ndarray:
    """Fine class label of each tile of ``st`` from the annotations beside the slide.

    Raises
    ------
    InputFileError
        No ``.labels.png`` / GeoJSON annotation next to the slide.
    """
    path = Path(path)
    stem = path.with_suffix("")
    if Path(f"{stem}.labels.png").exists():
        from hccstrat.synthetic.wsi import read_truth

        lab, truth = read_truth(path)
        ds = truth["downsample"]
        return tile_labels_from_map(st.coords, st.patch_size_level0, lab, ds)[0]
    for cand in (Path(f"{stem}.geojson"), Path(f"{stem}.regions.geojson")):
        if cand.exists():
            from hccstrat.io.wsi import open_slide
            from hccstrat.pathology.annotate import rasterise, read_geojson_regions

            with open_slide(path, mpp=st.mpp) as r:
                w, h = r.dimensions
            ds = 8.0
            lab = rasterise(read_geojson_regions(cand), (int(h // ds), int(w // ds)), ds)
            return tile_labels_from_map(st.coords, st.patch_size_level0, lab, ds)[0]
    raise InputFileError(
        f"no annotation found beside {path.name}",
        hint=f"put {stem.name}.geojson (QuPath export) or {stem.name}.labels.png next to it",
    )


def train_tile_classifier(
    slides: Sequence[str | Path],
    *,
    config: TimeConfig | None = None,
    progress: Callable[[str], None] | None = None,
    normalise_stains: bool = False,
) -> tuple[TileClassifier, list[SlideTiles]]:
    """Fit a :class:`TileClassifier` on the annotated tiles of ``slides``.

    With ``normalise_stains``, the pooled stains of the training slides
    (:func:`~hccstrat.pathology.time_tiles.pooled_stains`) become the classifier's
    ``stain_target_``: training tiles are normalised to it, and so are the tiles of
    every slide it measures later (:func:`run_time_batch`), so a slide from a scanner
    or laboratory with other stains is judged in the training slides' colours.
    """
    cfg = config or TimeConfig()
    target = pooled_stains(slides, config=cfg) if normalise_stains else None
    if progress and target is not None:
        progress("time: stains of the training slides estimated (normalisation target)")
    xs, ys, tiles = [], [], []
    for p in slides:
        st = extract_tiles(p, config=cfg, stain_target=target)
        xs.append(st.classifier_input(cfg.context))
        ys.append(labels_for_slide(p, st))
        tiles.append(st)
        if progress:
            progress(f"time: training tiles from {Path(p).name}")
    clf = TileClassifier().fit(np.concatenate(xs), np.concatenate(ys))
    clf.stain_target_ = target
    return clf, tiles


def run_time_batch(
    slides: Sequence[str | Path],
    classifier: TileClassifier,
    out_dir: str | Path,
    *,
    config: TimeConfig | None = None,
    mpp: float | None = None,
    overlays: bool = True,
    progress: Callable[[str], None] | None = None,
) -> tuple[pd.DataFrame, pd.DataFrame]:
    """TIME panel of many slides; returns ``(panel, manifest)``.

    The panel has one row per successful slide (``patient_id`` = slide id; use
    :func:`hccstrat.pathology.time.time_panel` to merge several slides of a patient).
    """
    from hccstrat.io.store import Manifest
    from hccstrat.pathology.heatmap import save_png

    cfg = config or TimeConfig()
    out = Path(out_dir)
    out.mkdir(parents=True, exist_ok=True)
    manifest = Manifest(out / "manifest_time.csv")
    rows = []
    for p in map(Path, slides):
        sid = p.stem
        try:
            st = extract_tiles(p, config=cfg, mpp=mpp,
                               stain_target=getattr(classifier, "stain_target_", None))
            res = measure_time(st, classifier, cfg)
            tpath = out / "tiles" / f"{sid}.csv"
            with atomic_write(tpath) as fh:
                res.tiles.to_csv(fh, index=False)
            if overlays:
                save_png(plot_time_overlay(res), out / "overlays" / f"{sid}.png")
            rows.append({"patient_id": sid, **res.row})
            manifest.record(sid, input_path=str(p), status="ok", output_path=str(tpath),
                            error_code=None, error_message=None)
            msg = f"{sid}: {res.row['time_immune_phenotype']}"
        except HccstratError as err:
            manifest.record(sid, input_path=str(p), status="failed", error_code=err.code,
                            error_message=str(err), output_path=None)
            msg = f"{sid}: failed [{err.code}]"
        except Exception as ex:  # unexpected: record it and keep the batch going
            log.exception("TIME failed on %s", p)
            manifest.record(sid, input_path=str(p), status="failed", error_code="HCC-TIME-999",
                            error_message=f"internal error: {type(ex).__name__}: {ex}",
                            output_path=None)
            msg = f"{sid}: failed (internal error)"
        if progress:
            progress(msg)
    panel = pd.DataFrame(rows, columns=["patient_id", "slide_id", *PANEL_COLUMNS])
    with atomic_write(out / "time_panel.csv") as fh:
        panel.to_csv(fh, index=False)
    return panel, manifest.to_frame()
