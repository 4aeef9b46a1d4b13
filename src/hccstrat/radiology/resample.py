"""Resampling to a common spacing, geometry (spacing, origin, direction) kept."""

from __future__ import annotations

from collections.abc import Sequence

import numpy as np

__all__ = ["resample_to_spacing"]


def resample_to_spacing(image, spacing: Sequence[float] | None, *, label: bool = False):
    """Resample ``image`` to ``spacing`` (mm, x/y/z) over the same physical extent.

    ``None`` returns the image unchanged. Linear interpolation for images,
    nearest neighbour for labels; origin and direction are kept.
    """
    import SimpleITK as sitk

    if spacing is None:
        return image
    spacing = tuple(float(s) for s in spacing)
    if np.allclose(spacing, image.GetSpacing()):
        return image
    old_sp = np.asarray(image.GetSpacing())
    old_size = np.asarray(image.GetSize())
    size = np.maximum(1, np.round(old_size * old_sp / np.asarray(spacing))).astype(int)
    interp = sitk.sitkNearestNeighbor if label else sitk.sitkLinear
    return sitk.Resample(image, [int(s) for s in size], sitk.Transform(), interp,
                         image.GetOrigin(), spacing, image.GetDirection(), 0,
                         image.GetPixelID())
