"""Figures of preprocessed MRI studies (matplotlib; axes in, axes out)."""

from __future__ import annotations

from pathlib import Path

import numpy as np

__all__ = ["plot_registered_phases"]

_TITLES = {"pre": "non-contrast", "arterial": "arterial", "portal": "portal venous",
           "delayed": "delayed"}


def plot_registered_phases(study, axes=None):
    """Four registered phases at the tumour's central slice with the tumour contour.

    Parameters
    ----------
    study : PreprocessedStudy or path-like
    axes : sequence of 4 matplotlib axes, optional

    Returns
    -------
    list of matplotlib.axes.Axes
    """
    import matplotlib.pyplot as plt
    import SimpleITK as sitk

    from hccstrat.radiology.preprocess import PreprocessedStudy, load_preprocessed

    pre = study if isinstance(study, PreprocessedStudy) else load_preprocessed(Path(study))
    if axes is None:
        _fig, axes = plt.subplots(1, 4, figsize=(12, 3.4))
    tum = sitk.GetArrayFromImage(sitk.ReadImage(str(pre.tumour))) > 0
    z = int(np.argmax(tum.sum(axis=(1, 2))))
    ys, xs = np.nonzero(tum[z])
    pad = 40
    y0, y1 = max(ys.min() - pad, 0), min(ys.max() + pad, tum.shape[1])
    x0, x1 = max(xs.min() - pad, 0), min(xs.max() + pad, tum.shape[2])
    slices = {}
    for ph in ("pre", "arterial", "portal", "delayed"):
        if ph in pre.phases:
            slices[ph] = sitk.GetArrayFromImage(sitk.ReadImage(str(pre.phases[ph])))[z]
    hi = max(float(np.percentile(s, 99.5)) for s in slices.values()) if slices else 1.0
    for ax, ph in zip(axes, ("pre", "arterial", "portal", "delayed"), strict=False):
        ax.set_axis_off()
        if ph not in slices:
            ax.set_title(f"{_TITLES[ph]} (missing)")
            continue
        ax.imshow(slices[ph][y0:y1, x0:x1], cmap="gray", vmin=0, vmax=hi)
        ax.contour(tum[z, y0:y1, x0:x1], levels=[0.5], colors="#ff5a36", linewidths=1.0)
        ax.set_title(_TITLES[ph])
    return list(axes)
