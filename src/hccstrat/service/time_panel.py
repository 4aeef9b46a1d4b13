"""TIME panel of a stored slide: the ``time_panel`` background job and the stored panel.

The job runs :func:`hccstrat.pathology.time_batch.run_time_batch` (the function behind
``hccstrat wsi time``) on one slide with the tile classifier named by
``ServiceSettings.time_classifier``, so the service and the CLI give the same files
(``<data_dir>/derived/<patient>/slide-<id>/time/``: ``time_panel.csv``, per-tile
table, overlay PNG, manifest). Each numeric panel column becomes one
:class:`~hccstrat.storage.models.DerivedFeature` row (``source = "slide:<id>"``), so
the POST and benefit scorers pick the ``time_*`` features up; a rerun adds newer rows
and the newest row of each name wins. :func:`time_tiles_geojson` turns the stored
per-tile table into a QuPath-importable GeoJSON FeatureCollection.
"""

from __future__ import annotations

import math
from pathlib import Path
from typing import Any

from sqlalchemy import select
from sqlalchemy.orm import Session

from hccstrat.exceptions import HccstratError
from hccstrat.storage.models import DerivedFeature, Job, Slide

__all__ = [
    "EXTRACTOR",
    "SlideJobError",
    "TimeNotConfiguredError",
    "check_time_configured",
    "stored_time_panel",
    "time_panel_job",
    "time_tiles_geojson",
]

#: ``DerivedFeature.extractor`` of the TIME panel rows
EXTRACTOR = "hccstrat.pathology.time"


class TimeNotConfiguredError(HccstratError):
    """The service has no tile classifier for the TIME panel (HTTP 503)."""

    code = "HCC-TIME-503"


class SlideJobError(HccstratError):
    """A slide failed in a batch function; carries the manifest's error code."""

    def __init__(self, message: str, *, code: str | None, hint: str | None = None) -> None:
        super().__init__(message, hint=hint)
        if code:
            self.code = code


def check_time_configured(settings) -> Path:
    """Path of the tile classifier, or :class:`TimeNotConfiguredError`."""
    path = getattr(settings, "time_classifier", None)
    if path is None:
        raise TimeNotConfiguredError(
            "the TIME panel is not configured on this server (no tile classifier)",
            hint="train one with `hccstrat wsi time --train ...` and start the service with "
            "ServiceSettings(time_classifier=<tile_classifier.pkl>)")
    return Path(path)


def _clean(v: Any) -> float | None:
    try:
        f = float(v)
    except (TypeError, ValueError):
        return None
    return None if math.isnan(f) or math.isinf(f) else f


def time_panel_job(worker, job: Job, progress) -> dict[str, Any]:
    """Compute the TIME panel of a stored slide and store it as derived features."""
    from hccstrat.pathology.tile_classifier import TileClassifier
    from hccstrat.pathology.time import PANEL_COLUMNS, TimeConfig
    from hccstrat.pathology.time_batch import run_time_batch
    from hccstrat.service.figures import derived_dir
    from hccstrat.service.ingest import job_context
    from hccstrat.storage.audit import append_event

    patient, scope = job_context(worker, job)
    clf_path = check_time_configured(worker.settings)
    with worker.sessionmaker() as s:
        slide = s.get(Slide, int(job.params["slide_id"]))
        src, mpp, slide_id = Path(slide.path), slide.mpp, slide.id
    progress(0.05, "loading the tile classifier")
    clf, meta = TileClassifier.load(clf_path)
    cfg = TimeConfig()
    cfg.context = bool(meta.get("context", True))
    out = derived_dir(worker.settings.data_dir, patient.pseudo_id, f"slide-{slide_id}") / "time"
    progress(0.1, "tiling, classifying tiles and counting lymphocytes")
    panel, manifest = run_time_batch([src], clf, out, config=cfg, mpp=mpp)
    if panel.empty:
        row = manifest.set_index("slide_id").loc[src.stem]
        raise SlideJobError(f"TIME panel of slide {slide_id} failed: {row['error_message']}",
                            code=row["error_code"], hint="check the slide (format, mpp, tissue)")
    geometry = _tile_geometry(src, mpp, cfg)
    values = panel.iloc[0].to_dict()
    numeric = {c: _clean(values[c]) for c in PANEL_COLUMNS if c != "time_immune_phenotype"}
    phenotype = str(values["time_immune_phenotype"])
    progress(0.9, "recording the panel")
    source = f"slide:{slide_id}"
    with worker.sessionmaker() as s:
        s.add_all([DerivedFeature(patient_id=patient.id, source=source, name=k, value=v,
                                  extractor=EXTRACTOR) for k, v in numeric.items()])
        row = s.get(Slide, slide_id)
        before = dict(row.info or {})
        summary = {"job_id": job.id, "immune_phenotype": phenotype,
                   "classifier": clf_path.name, "panel": str(out / "time_panel.csv"),
                   "tiles": str(out / "tiles" / f"{src.stem}.csv"), **geometry}
        row.info = {**before, "time": summary}
        append_event(s, actor=scope.actor, action="create", entity="derived_feature",
                     entity_id=source, centre_id=patient.centre_id,
                     after={"panel": numeric, "immune_phenotype": phenotype})
        s.commit()
    return {"slide_id": slide_id, "immune_phenotype": phenotype, "panel": numeric}


def stored_time_panel(session: Session, slide: Slide) -> dict[str, Any] | None:
    """Newest stored TIME panel of a slide (values, units, phenotype), or None."""
    from hccstrat.pathology.time import PANEL_COLUMNS

    rows = session.scalars(
        select(DerivedFeature).where(DerivedFeature.patient_id == slide.patient_id,
                                     DerivedFeature.source == f"slide:{slide.id}",
                                     DerivedFeature.extractor == EXTRACTOR)
        .order_by(DerivedFeature.id)
    ).all()
    if not rows:
        return None
    latest = {r.name: r for r in rows}
    panel = {k: r.value for k, r in latest.items()}
    phenotype = next((p for p in ("inflamed", "excluded", "desert")
                      if panel.get(f"time_phenotype_{p}") == 1.0), None)
    created = max(r.created_at for r in latest.values())
    return {"slide_id": slide.id, "panel": panel, "immune_phenotype": phenotype,
            "units": {k: PANEL_COLUMNS[k][0] for k in panel if k in PANEL_COLUMNS},
            "extractor": EXTRACTOR, "created_at": created.isoformat()}


def _tile_geometry(src: Path, mpp: float | None, cfg=None) -> dict[str, Any]:
    """Level-0 tile side and slide size of the TIME tiling (``grid_tiles``' geometry)."""
    from hccstrat.io.wsi import open_slide
    from hccstrat.pathology.tiling import level0_size
    from hccstrat.pathology.time import TimeConfig

    cfg = cfg or TimeConfig()
    with open_slide(src, mpp=mpp) as reader:
        width, height = reader.dimensions
        side = level0_size(cfg.patch_size, cfg.target_mpp, reader.mpp)
    return {"tile_size_level0": int(side), "width": int(width), "height": int(height)}


def _rgb255(name: str) -> tuple[int, int, int]:
    from hccstrat.pathology.heatmap import CLASS_COLOURS

    rgb = CLASS_COLOURS.get(name, (0.5, 0.5, 0.5))  # a class without a colour: grey
    return (round(255 * rgb[0]), round(255 * rgb[1]), round(255 * rgb[2]))


def _measurements(t) -> dict[str, float]:
    raw = {"lymphocytes": _clean(t.lymphocytes), "p_thrombus": _clean(t.p_thrombus),
           "vascular_invasion": float(bool(t.vi)), "tumour_bed": float(bool(t.tumour_bed)),
           "invasive_margin": float(bool(t.margin)), "tumour_core": float(bool(t.core))}
    return {k: v for k, v in raw.items() if v is not None}


def time_tiles_geojson(data_dir: Path, pseudo_id: str, slide: Slide) -> dict[str, Any]:
    """The slide's stored TIME tile classes as a QuPath GeoJSON FeatureCollection.

    One ``detection`` polygon per non-background tile, in level-0 pixel coordinates
    (clipped to the slide), classified by the tile's class with the overlay colour,
    with the tile's lymphocyte count, thrombus probability and compartment flags as
    measurements. Call it only when :func:`stored_time_panel` found a panel.

    Raises
    ------
    hccstrat.storage.repositories.RecordNotFoundError
        The per-tile table of the panel is gone (rerun the TIME job).
    """
    import pandas as pd

    from hccstrat.interop.geojson import polygon_feature
    from hccstrat.service.figures import derived_dir
    from hccstrat.storage.repositories import RecordNotFoundError

    info = dict((slide.info or {}).get("time") or {})
    default = (derived_dir(data_dir, pseudo_id, f"slide-{slide.id}") / "time" / "tiles"
               / f"{Path(slide.path).stem}.csv")
    path = Path(info.get("tiles") or default)
    missing = RecordNotFoundError(
        f"the per-tile table of slide {slide.id}'s TIME panel is missing",
        hint=f"POST /api/patients/{pseudo_id}/slides/{slide.id}/time again and wait for the job")
    if not path.is_file():
        raise missing
    if not all(k in info for k in ("tile_size_level0", "width", "height")):
        try:  # panels stored before the geometry was recorded
            info.update(_tile_geometry(Path(slide.path), slide.mpp))
        except HccstratError as err:
            raise missing from err
    side, width, height = (int(info[k]) for k in ("tile_size_level0", "width", "height"))
    tiles = pd.read_csv(path)
    tiles = tiles[tiles["cls"].astype(str) != "background"]
    features = []
    for t in tiles.itertuples(index=False):
        x0, y0 = min(max(int(t.x), 0), width), min(max(int(t.y), 0), height)
        x1, y1 = min(x0 + side, width), min(y0 + side, height)
        if x1 <= x0 or y1 <= y0:
            continue
        name = str(t.cls)
        features.append(polygon_feature(
            [(x0, y0), (x1, y0), (x1, y1), (x0, y1)], classification=name,
            color=_rgb255(name), object_type="detection",
            measurements=_measurements(t)))
    return {"type": "FeatureCollection", "features": features}
