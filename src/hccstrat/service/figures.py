"""Server-side figures of the patient page (matplotlib, Agg; cached as PNG).

- :func:`phases_png`: the four registered MRI phases at the tumour's central slice with
  the tumour contour (:func:`hccstrat.radiology.plots.plot_registered_phases`), from a
  study preprocessed by the ``preprocess_mri`` job;
- :func:`slide_png`: a slide thumbnail, with the heatmap overlaid when a heatmap PNG
  exists (``Slide.info["heatmap"]`` or ``<slide>.heatmap.png`` beside the slide).

Figures are written once with :func:`hccstrat.io.atomic.atomic_path` under
``<data_dir>/derived/<patient>/`` and served from there.
"""

from __future__ import annotations

from pathlib import Path

from hccstrat.io.atomic import atomic_path

__all__ = ["derived_dir", "heatmap_path", "phases_png", "slide_png", "tumour_volume_ml"]


def derived_dir(data_dir: str | Path, pseudo_id: str, what: str) -> Path:
    """Folder of a patient's derivatives (``what`` like ``study-3`` or ``slide-2``)."""
    return Path(data_dir) / "derived" / pseudo_id / what


def heatmap_path(slide_path: str | Path, info: dict) -> Path | None:
    """The slide's heatmap PNG, if one exists."""
    cands = [Path(info["heatmap"])] if info.get("heatmap") else []
    cands.append(Path(str(slide_path) + ".heatmap.png"))
    cands.append(Path(slide_path).with_suffix(".heatmap.png"))
    return next((c for c in cands if c.is_file()), None)


def tumour_volume_ml(mask_path: str | Path) -> float:
    """Volume of a binary mask (NIfTI/NRRD) in millilitres."""
    import numpy as np
    import SimpleITK as sitk

    img = sitk.ReadImage(str(mask_path))
    n = int((sitk.GetArrayViewFromImage(img) > 0).sum())
    return float(n * np.prod(img.GetSpacing()) / 1000.0)


def phases_png(preprocessed_dir: str | Path) -> Path:
    """PNG of the registered phases with the tumour contour (rendered once)."""
    from matplotlib.figure import Figure

    from hccstrat.radiology.plots import plot_registered_phases
    from hccstrat.radiology.preprocess import load_preprocessed

    folder = Path(preprocessed_dir)
    out = folder / "phases.png"
    if out.is_file():
        return out
    study = load_preprocessed(folder)
    fig = Figure(figsize=(10, 2.9), dpi=100)
    axes = fig.subplots(1, 4)
    plot_registered_phases(study, axes=axes)
    fig.tight_layout()
    with atomic_path(out) as tmp:
        fig.savefig(tmp, format="png")
    return out


def slide_png(slide_path: str | Path, out_dir: str | Path, *, info: dict | None = None,
              max_size: int = 768) -> Path:
    """PNG thumbnail of a slide, with its heatmap overlaid when there is one."""
    import numpy as np
    from matplotlib.figure import Figure

    from hccstrat.io.wsi import open_slide

    heat = heatmap_path(slide_path, info or {})
    out = Path(out_dir) / ("thumbnail-heatmap.png" if heat else "thumbnail.png")
    if out.is_file() and (heat is None or out.stat().st_mtime >= heat.stat().st_mtime):
        return out
    with open_slide(slide_path) as reader:
        thumb, _ = reader.get_thumbnail(max_size=max_size)
    h, w = thumb.shape[:2]
    fig = Figure(figsize=(6, 6 * h / max(w, 1)), dpi=100)
    ax = fig.add_axes((0, 0, 1, 1))
    ax.set_axis_off()
    ax.imshow(thumb)
    if heat is not None:
        import matplotlib.image as mpimg

        hm = np.asarray(mpimg.imread(heat))
        ax.imshow(hm, extent=(0, w, h, 0), alpha=0.45, cmap=None if hm.ndim == 3 else "inferno",
                  interpolation="nearest")
        ax.set_xlim(0, w)
        ax.set_ylim(h, 0)
    with atomic_path(out) as tmp:
        fig.savefig(tmp, format="png")
    return out
