"""Tile maps over a slide thumbnail: class overlays and score (attention) heatmaps.

Tiles are given by their level-0 top-left ``coords`` (N, 2) and their side in level-0
pixels; the thumbnail by its RGB array and its downsample (level-0 pixels per
thumbnail pixel), as returned by :meth:`hccstrat.io.wsi.SlideReader.get_thumbnail`.
Plot functions take ``ax=None`` and return the axes; :func:`save_png` writes a figure
atomically.

Tiles of class ``unrecognised`` (out of the tile classifier's training distribution,
see :mod:`hccstrat.pathology.time`) are tinted grey and hatched, with their own legend
entry, so that abstentions are never mistaken for a tissue class.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from pathlib import Path

import numpy as np

from hccstrat.exceptions import ConfigError
from hccstrat.io.atomic import atomic_path

__all__ = [
    "CLASS_COLOURS",
    "UNRECOGNISED_HATCH",
    "plot_class_overlay",
    "plot_score_heatmap",
    "plot_time_overlay",
    "save_png",
    "tile_raster",
]

#: RGB colour of each tissue class in overlays (0–1)
CLASS_COLOURS: dict[str, tuple[float, float, float]] = {
    "background": (1.0, 1.0, 1.0),
    "tumour": (0.85, 0.10, 0.10),
    "stroma": (0.45, 0.75, 0.45),
    "immune_dense": (0.35, 0.20, 0.75),
    "necrosis": (0.25, 0.25, 0.25),
    "normal_liver": (0.98, 0.78, 0.35),
    "vessel": (0.10, 0.55, 0.95),
    "vessel_tumour_thrombus": (1.0, 0.0, 1.0),
    "unrecognised": (0.62, 0.62, 0.62),
}
#: hatch pattern of ``unrecognised`` tiles in class overlays
UNRECOGNISED_HATCH = "////"
_HATCH_EDGE = (0.25, 0.25, 0.25)


def tile_raster(
    shape: tuple[int, int],
    downsample: float,
    coords: np.ndarray,
    size_level0: int,
    values: np.ndarray,
    *,
    fill: float = np.nan,
) -> np.ndarray:
    """Paint per-tile values onto a ``shape`` (h, w) grid of the thumbnail.

    Parameters
    ----------
    shape : (int, int)
        Thumbnail height and width.
    downsample : float
        Level-0 pixels per thumbnail pixel.
    coords : ndarray (N, 2)
        Level-0 (x, y) top-left corners.
    size_level0 : int
        Tile side in level-0 pixels.
    values : ndarray (N,) or (N, C)
    fill : float
        Value where no tile lies.

    Returns
    -------
    ndarray (h, w) or (h, w, C) of float
    """
    coords = np.asarray(coords)
    values = np.asarray(values, float)
    if len(coords) != len(values):
        raise ConfigError(
            f"{len(coords)} tile coordinates but {len(values)} values",
            hint="pass one value per tile",
        )
    h, w = shape
    out = np.full((h, w, *values.shape[1:]), fill, float)
    x0 = np.clip(np.floor(coords[:, 0] / downsample).astype(int), 0, w)
    y0 = np.clip(np.floor(coords[:, 1] / downsample).astype(int), 0, h)
    x1 = np.clip(np.ceil((coords[:, 0] + size_level0) / downsample).astype(int), 0, w)
    y1 = np.clip(np.ceil((coords[:, 1] + size_level0) / downsample).astype(int), 0, h)
    for k in range(len(coords)):
        out[y0[k] : y1[k], x0[k] : x1[k]] = values[k]
    return out


def plot_class_overlay(
    thumbnail: np.ndarray,
    downsample: float,
    coords: np.ndarray,
    size_level0: int,
    classes: Sequence[str],
    *,
    alpha: float = 0.45,
    ax=None,
    title: str | None = None,
    legend: bool = True,
):
    """Thumbnail with each tile tinted by its tissue class; returns the axes.

    ``unrecognised`` tiles are tinted grey and hatched (:data:`UNRECOGNISED_HATCH`).
    """
    import matplotlib.pyplot as plt
    from matplotlib.collections import PatchCollection
    from matplotlib.patches import Patch, Rectangle

    ax = ax or plt.gca()
    names = [str(c) for c in classes]
    rgb = np.array([CLASS_COLOURS.get(c, (0.5, 0.5, 0.5)) for c in names], float).reshape(-1, 3)
    tint = tile_raster(thumbnail.shape[:2], downsample, coords, size_level0, rgb)
    img = thumbnail.astype(float) / 255.0
    has = ~np.isnan(tint[..., 0])
    img[has] = (1 - alpha) * img[has] + alpha * tint[has]
    ax.imshow(img)
    unrec = np.array([c == "unrecognised" for c in names], bool)
    if unrec.any():
        side = size_level0 / downsample
        boxes = [Rectangle((x / downsample, y / downsample), side, side)
                 for x, y in np.asarray(coords)[unrec]]
        ax.add_collection(PatchCollection(
            boxes, facecolor="none", edgecolor=_HATCH_EDGE, linewidth=0.0,
            hatch=UNRECOGNISED_HATCH))
    if legend:
        present = [c for c in CLASS_COLOURS if c in set(names)]
        handles = [
            Patch(facecolor=CLASS_COLOURS[c], edgecolor=_HATCH_EDGE, hatch=UNRECOGNISED_HATCH,
                  label="unrecognised (unlike training tissue)")
            if c == "unrecognised"
            else Patch(color=CLASS_COLOURS[c], label=c.replace("_", " "))
            for c in present
        ]
        ax.legend(handles=handles, loc="lower left", fontsize=6, framealpha=0.8)
    ax.set_title(title or "tile classes")
    ax.set_axis_off()
    return ax


def plot_score_heatmap(
    thumbnail: np.ndarray,
    downsample: float,
    coords: np.ndarray,
    size_level0: int,
    scores: np.ndarray,
    *,
    cmap: str = "inferno",
    alpha: float = 0.6,
    normalise: str = "rank",
    highlight: np.ndarray | None = None,
    ax=None,
    title: str | None = None,
    colorbar: bool = True,
):
    """Thumbnail with a per-tile score heatmap (e.g. MIL attention); returns the axes.

    Parameters
    ----------
    normalise : {"rank", "minmax", "none"}
        ``rank`` maps scores to percentiles (attention is heavy-tailed).
    highlight : ndarray of bool (N,), optional
        Tiles outlined in cyan (e.g. the planted or annotated class).
    """
    import matplotlib.pyplot as plt
    from matplotlib.patches import Rectangle

    ax = ax or plt.gca()
    s = np.asarray(scores, float)
    if normalise == "rank" and len(s) > 1:
        s = (np.argsort(np.argsort(s)) / (len(s) - 1)).astype(float)
    elif normalise == "minmax" and len(s) and np.ptp(s) > 0:
        s = (s - s.min()) / np.ptp(s)
    elif normalise not in ("rank", "minmax", "none"):
        raise ConfigError(f"normalise={normalise!r}", hint="use rank, minmax or none")
    grid = tile_raster(thumbnail.shape[:2], downsample, coords, size_level0, s)
    ax.imshow(thumbnail)
    im = ax.imshow(np.ma.masked_invalid(grid), cmap=cmap, alpha=alpha, vmin=0, vmax=1)
    if highlight is not None:
        side = size_level0 / downsample
        for x, y in np.asarray(coords)[np.asarray(highlight, bool)]:
            ax.add_patch(
                Rectangle(
                    (x / downsample, y / downsample), side, side, fill=False, lw=0.6, ec="cyan"
                )
            )
    if colorbar:
        plt.colorbar(im, ax=ax, fraction=0.035, pad=0.01, label=f"score ({normalise})")
    ax.set_title(title or "tile scores")
    ax.set_axis_off()
    return ax


def plot_time_overlay(result, *, fig=None):
    """Three panels over the thumbnail: classes, lymphocyte density, compartments + VI.

    Parameters
    ----------
    result : hccstrat.pathology.time.TimeResult
    fig : matplotlib Figure, optional

    Returns
    -------
    matplotlib Figure
    """
    import matplotlib.pyplot as plt

    st, t = result.slide, result.tiles
    fig = fig or plt.figure(figsize=(15, 5.6))
    axes = fig.subplots(1, 3)
    coords = t[["x", "y"]].to_numpy()
    shown = t["cls"].replace({"excluded": "background"}).to_numpy()
    plot_class_overlay(
        st.thumbnail, st.thumb_downsample, coords, st.patch_size_level0, shown, ax=axes[0],
        title=f"{st.slide_id}: tile classes",
    )
    dens = t["lymphocytes"] / t["area_mm2"].where(t["area_mm2"] > 0)
    dens = dens.fillna(0).where(t["cls"] != "unrecognised")  # unrecognised: not drawn
    plot_score_heatmap(
        st.thumbnail, st.thumb_downsample, coords, st.patch_size_level0,
        np.log10(1 + dens.to_numpy()), normalise="none", cmap="viridis", ax=axes[1],
        title="lymphocytes, log10(1 + cells/mm²)"
        + ("\n(unrecognised tiles not drawn)" if dens.isna().any() else ""), alpha=0.7,
    )
    axes[1].images[-1].set_clim(0, 4.5)
    comp = np.where(t["core"], 1.0, np.where(t["margin"], 2.0, np.nan))
    grid = tile_raster(st.thumbnail.shape[:2], st.thumb_downsample, coords,
                       st.patch_size_level0, comp)
    axes[2].imshow(st.thumbnail)
    axes[2].imshow(np.ma.masked_invalid(grid), cmap="coolwarm", alpha=0.45, vmin=1, vmax=2)
    vi = t[t["vi"]]
    side = st.patch_size_level0 / st.thumb_downsample
    for x, y in vi[["x", "y"]].to_numpy():
        axes[2].add_patch(plt.Rectangle((x / st.thumb_downsample, y / st.thumb_downsample),
                                        side, side, fill=False, ec="magenta", lw=1.5))
    r = result.row
    unrec = float(r.get("time_unrecognised_fraction", 0.0) or 0.0)
    flag = (f"\nUNRELIABLE: {unrec:.0%} of tissue unrecognised (retrain on this site)"
            if r.get("time_panel_unreliable") else
            (f"; {unrec:.0%} unrecognised" if unrec > 0 else ""))
    axes[2].set_title(
        f"core (blue) / margin (red); VI tiles magenta\n{r['time_immune_phenotype']}, "
        f"tumour {r['time_lymphocyte_density_tumour']:.0f}, margin "
        f"{r['time_lymphocyte_density_margin']:.0f} cells/mm²{flag}",
        fontsize=9, color="darkred" if r.get("time_panel_unreliable") else "black",
    )
    axes[2].set_axis_off()
    fig.tight_layout()
    return fig


def save_png(fig, path: str | Path, *, dpi: int = 110, metadata: Mapping | None = None) -> Path:
    """Write a matplotlib figure as PNG atomically and close it."""
    import matplotlib.pyplot as plt

    path = Path(path)
    with atomic_path(path) as tmp:
        fig.savefig(tmp, format="png", dpi=dpi, metadata=dict(metadata or {}))
    plt.close(fig)
    return path
