"""Regions of interest: tumour and liver masks, fallbacks, crops and peritumoral rings.

Masks are read from NIfTI, NRRD/MHA or DICOM SEG (highdicom) and resampled (nearest
neighbour) onto the reference image grid. Without a mask there are two documented
fallbacks, both explicit: region growing from a user seed point, or a user bounding
box. There is never a silent whole-image ROI: :func:`load_roi` raises
:class:`RoiError` when nothing is given.
"""

from __future__ import annotations

from collections.abc import Sequence
from pathlib import Path

import numpy as np

from hccstrat.exceptions import InputFileError

__all__ = [
    "RoiError",
    "crop_box",
    "crop_to_box",
    "largest_component",
    "load_roi",
    "mask_from_box",
    "peritumoral_ring",
    "read_mask",
    "read_seg",
    "region_grow",
]


class RoiError(InputFileError):
    """No usable region of interest (no mask, empty mask, seed outside the image)."""

    code = "HCC-MRI-006"


def read_seg(path: str | Path, label: str | int) -> object:
    """One segment of a DICOM SEG as a SimpleITK image in the SEG's own geometry.

    Parameters
    ----------
    path : path-like
        DICOM Segmentation file.
    label : str or int
        Segment label (case-insensitive, e.g. ``"tumour"``; ``"tumor"`` also matches)
        or segment number.
    """
    import highdicom as hd
    import SimpleITK as sitk

    try:
        seg = hd.seg.segread(str(path))
    except Exception as err:
        raise RoiError(f"cannot read DICOM SEG {path}: {err}",
                       hint="give a valid DICOM Segmentation object") from err
    numbers = {int(d.SegmentNumber): str(d.SegmentLabel).lower() for d in seg.SegmentSequence}
    if isinstance(label, int):
        number = label
    else:
        want = {str(label).lower(), str(label).lower().replace("our", "or")}
        matches = [n for n, lab in numbers.items() if lab in want or lab.replace("our", "or")
                   in want]
        if not matches:
            raise RoiError(f"DICOM SEG {path} has no segment labelled {label!r}",
                           hint=f"segments present: {numbers}")
        number = matches[0]
    vol = seg.get_volume(segment_numbers=[number], combine_segments=True)
    arr = np.asarray(vol.array)
    if arr.ndim == 4:
        arr = arr[..., 0]
    img = sitk.GetImageFromArray((arr > 0).astype(np.uint8))
    aff = np.asarray(vol.affine, float)
    sp = np.linalg.norm(aff[:3, :3], axis=0)  # (slice, row, col) spacings
    img.SetSpacing((float(sp[2]), float(sp[1]), float(sp[0])))
    img.SetOrigin(tuple(float(v) for v in aff[:3, 3]))
    cols = [aff[:3, 2] / sp[2], aff[:3, 1] / sp[1], aff[:3, 0] / sp[0]]
    img.SetDirection(tuple(np.column_stack(cols).ravel().tolist()))
    return img


def read_mask(path: str | Path, reference=None, *, label: str | int = 1):
    """Read a binary mask (NIfTI, NRRD, MHA or DICOM SEG); resample onto ``reference``.

    For label images (NIfTI/NRRD) ``label`` may be an integer value; any non-zero
    voxel counts when ``label`` is a string.
    """
    import SimpleITK as sitk

    from hccstrat.io.nifti import read_image

    path = Path(path)
    if path.suffix.lower() in (".dcm", "") and _is_dicom(path):
        img = read_seg(path, label)
    else:
        img = read_image(path)
        arr = sitk.GetArrayViewFromImage(img)
        sel = (arr == label) if isinstance(label, int) and arr.max() > 1 else (arr > 0)
        out = sitk.GetImageFromArray(sel.astype(np.uint8))
        out.CopyInformation(img)
        img = out
    if reference is not None:
        img = sitk.Resample(img, reference, sitk.Transform(), sitk.sitkNearestNeighbor, 0,
                            sitk.sitkUInt8)
    return img


def _is_dicom(path: Path) -> bool:
    try:
        with open(path, "rb") as fh:
            fh.seek(128)
            return fh.read(4) == b"DICM"
    except OSError:
        return False


def largest_component(mask):
    """Largest connected component of a binary mask (the index tumour)."""
    import SimpleITK as sitk

    cc = sitk.RelabelComponent(sitk.ConnectedComponent(sitk.Cast(mask > 0, sitk.sitkUInt8)),
                               sortByObjectSize=True)
    return sitk.Cast(cc == 1, sitk.sitkUInt8)


def region_grow(image, seed_mm: Sequence[float], *, radius_mm: float = 60.0,
                multiplier: float = 2.5):
    """Fallback tumour mask: confidence-connected region growing from a seed point.

    The region accepts voxels within ``multiplier`` standard deviations of the
    intensity around the seed, is limited to ``radius_mm`` around it, and is
    closed morphologically. Review the result: it is a fallback, not a segmentation.
    """
    import SimpleITK as sitk

    idx = image.TransformPhysicalPointToIndex(tuple(float(v) for v in seed_mm))
    if any(i < 0 or i >= s for i, s in zip(idx, image.GetSize(), strict=True)):
        raise RoiError(f"seed point {tuple(seed_mm)} mm lies outside the image",
                       hint="give the seed in patient (LPS) millimetres inside the volume")
    smooth = sitk.CurvatureFlow(sitk.Cast(image, sitk.sitkFloat32), timeStep=0.1,
                                numberOfIterations=3)
    grown = sitk.ConfidenceConnected(smooth, seedList=[idx], numberOfIterations=3,
                                     multiplier=multiplier, initialNeighborhoodRadius=1,
                                     replaceValue=1)
    ball = sitk.Image(image.GetSize(), sitk.sitkUInt8)
    ball.CopyInformation(image)
    ball[idx] = 1
    dist = sitk.SignedMaurerDistanceMap(ball, insideIsPositive=False, useImageSpacing=True,
                                        squaredDistance=False)
    grown = sitk.And(sitk.Cast(grown, sitk.sitkUInt8), sitk.Cast(dist < radius_mm, sitk.sitkUInt8))
    grown = sitk.BinaryMorphologicalClosing(grown, [1, 1, 1])
    return largest_component(grown)


def mask_from_box(reference, lower_mm: Sequence[float], upper_mm: Sequence[float]):
    """Fallback ROI: an axis-aligned box given by two opposite corners in mm (LPS)."""
    import SimpleITK as sitk

    size = reference.GetSize()
    a = np.asarray(reference.TransformPhysicalPointToContinuousIndex(tuple(map(float, lower_mm))))
    b = np.asarray(reference.TransformPhysicalPointToContinuousIndex(tuple(map(float, upper_mm))))
    lo = np.clip(np.floor(np.minimum(a, b)), 0, np.asarray(size) - 1).astype(int)
    hi = np.clip(np.ceil(np.maximum(a, b)), 0, np.asarray(size) - 1).astype(int)
    arr = np.zeros(size[::-1], np.uint8)
    arr[lo[2]:hi[2] + 1, lo[1]:hi[1] + 1, lo[0]:hi[0] + 1] = 1
    if arr.sum() == 0:
        raise RoiError("the bounding box does not overlap the image",
                       hint="give the corners in patient (LPS) millimetres")
    out = sitk.GetImageFromArray(arr)
    out.CopyInformation(reference)
    return out


def load_roi(reference, *, mask_path: str | Path | None = None, label: str | int = "tumour",
             seed_mm: Sequence[float] | None = None, box_mm: Sequence[Sequence[float]] | None
             = None, image_for_growing=None) -> tuple[object, str]:
    """Tumour mask on ``reference``'s grid, and how it was obtained.

    Order: a mask file; else region growing from ``seed_mm``; else ``box_mm``
    (two corners). Raises :class:`RoiError` when none is given or the mask is empty.
    """
    import SimpleITK as sitk

    if mask_path is not None:
        m, how = read_mask(mask_path, reference, label=label), f"mask file {Path(mask_path).name}"
    elif seed_mm is not None:
        m = region_grow(image_for_growing if image_for_growing is not None else reference, seed_mm)
        how = f"region growing from seed {tuple(round(float(v), 1) for v in seed_mm)} mm"
    elif box_mm is not None:
        m, how = mask_from_box(reference, box_mm[0], box_mm[1]), "user bounding box"
    else:
        raise RoiError("no tumour ROI: no mask file, seed point or bounding box was given",
                       hint="give a mask (NIfTI/NRRD/DICOM SEG), a seed point (--seed x,y,z mm) "
                            "or a box; hccstrat never falls back to the whole image")
    if sitk.GetArrayViewFromImage(m).sum() == 0:
        raise RoiError(f"the tumour ROI from {how} is empty on the reference grid",
                       hint="check that the mask belongs to this study (same frame of reference)")
    return m, how


def crop_box(mask, margin_mm: float) -> tuple[tuple[int, int, int], tuple[int, int, int]]:
    """Index box (start, size) around a mask's bounding box plus ``margin_mm``."""
    import SimpleITK as sitk

    st = sitk.LabelShapeStatisticsImageFilter()
    st.Execute(sitk.Cast(mask > 0, sitk.sitkUInt8))
    if not st.HasLabel(1):
        raise RoiError("empty mask: cannot crop", hint="check the tumour mask")
    bb = st.GetBoundingBox(1)
    start = np.asarray(bb[:3])
    size = np.asarray(bb[3:])
    pad = np.ceil(margin_mm / np.asarray(mask.GetSpacing())).astype(int)
    lo = np.maximum(start - pad, 0)
    hi = np.minimum(start + size + pad, np.asarray(mask.GetSize()))
    return tuple(int(v) for v in lo), tuple(int(v) for v in hi - lo)


def crop_to_box(image, box):
    """Region of an image given ``(start, size)`` indices; geometry is kept."""
    import SimpleITK as sitk

    start, size = box
    return sitk.RegionOfInterest(image, size=list(size), index=list(start))


def peritumoral_ring(tumour, liver=None, *, width_mm: float = 5.0):
    """Ring of ``width_mm`` outside the tumour boundary (inside the liver when given)."""
    import SimpleITK as sitk

    dist = sitk.SignedMaurerDistanceMap(sitk.Cast(tumour > 0, sitk.sitkUInt8),
                                        insideIsPositive=False, useImageSpacing=True,
                                        squaredDistance=False)
    ring = sitk.And(dist > 0, dist <= width_mm)
    if liver is not None:
        ring = sitk.And(ring, sitk.Cast(liver > 0, sitk.sitkUInt8))
    return sitk.Cast(ring, sitk.sitkUInt8)
