"""Inter-phase registration (SimpleITK): rigid then affine, Mattes mutual information.

:func:`register_phase` is the fast coarse-to-fine method: both stages run on a
pyramid whose finest level is the image down-sampled by ``finest_shrink`` (2 by
default), with random sampling of the metric. :func:`register_full_resolution` is
the plain single-level full-resolution baseline used by ``benchmarks/mri.py``.

Transforms follow SimpleITK's convention: they map points of the *fixed* image
(portal venous phase) to points of the *moving* image.
"""

from __future__ import annotations

import time
from dataclasses import dataclass, field

import numpy as np

__all__ = [
    "RegistrationResult",
    "downsample",
    "register_full_resolution",
    "register_phase",
    "resample_to",
]


@dataclass
class RegistrationResult:
    """Outcome of one registration.

    Attributes
    ----------
    transform : SimpleITK.Transform
        Fixed → moving point mapping (composite of rigid and affine stages).
    metric : float
        Final Mattes mutual information (more negative is better).
    displacement_mm : float
        Displacement of the reference point (liver or image centre) by the transform.
    seconds : float
        Wall time.
    stages : list of dict
        Per stage: name, iterations, metric, stop condition.
    """

    transform: object
    metric: float
    displacement_mm: float
    seconds: float
    stages: list[dict] = field(default_factory=list)

    def to_dict(self) -> dict:
        tr = self.transform
        return {
            "metric": self.metric, "displacement_mm": self.displacement_mm,
            "seconds": self.seconds, "stages": self.stages,
            "transform": {"class": tr.GetName(), "parameters": list(tr.GetParameters()),
                          "fixed_parameters": list(tr.GetFixedParameters())},
        }


def _as_float(img):
    import SimpleITK as sitk

    return sitk.Cast(img, sitk.sitkFloat32)


def _method(shrink: tuple[int, ...], sigmas: tuple[float, ...], sampling: float, bins: int,
            iterations: int, seed: int, mask=None, lr: float = 2.0, min_step: float = 1e-3):
    import SimpleITK as sitk

    reg = sitk.ImageRegistrationMethod()
    reg.SetMetricAsMattesMutualInformation(numberOfHistogramBins=bins)
    if sampling < 1.0:
        reg.SetMetricSamplingStrategy(reg.RANDOM)
        reg.SetMetricSamplingPercentage(sampling, seed)
    else:
        reg.SetMetricSamplingStrategy(reg.NONE)
    if mask is not None:
        reg.SetMetricFixedMask(mask)
    reg.SetInterpolator(sitk.sitkLinear)
    reg.SetOptimizerAsRegularStepGradientDescent(
        learningRate=lr, minStep=min_step, numberOfIterations=iterations,
        relaxationFactor=0.5, gradientMagnitudeTolerance=1e-6,
    )
    reg.SetOptimizerScalesFromPhysicalShift()
    reg.SetShrinkFactorsPerLevel(list(shrink))
    reg.SetSmoothingSigmasPerLevel(list(sigmas))
    reg.SmoothingSigmasAreSpecifiedInPhysicalUnitsOff()
    return reg


def _unwrap(tr):
    """A composite of one transform → that transform, down-cast to its class."""
    import SimpleITK as sitk

    if tr.GetName() == "CompositeTransform":
        comp = sitk.CompositeTransform(tr)
        if comp.GetNumberOfTransforms() == 1:
            tr = comp.GetNthTransform(0)
    name = tr.GetName()
    if name == "Euler3DTransform":
        return sitk.Euler3DTransform(tr)
    if name == "AffineTransform":
        return sitk.AffineTransform(tr)
    return tr


def _reference_point(fixed, mask) -> np.ndarray:
    import SimpleITK as sitk

    if mask is not None:
        st = sitk.LabelShapeStatisticsImageFilter()
        st.Execute(sitk.Cast(mask > 0, sitk.sitkUInt8))
        if st.HasLabel(1):
            return np.asarray(st.GetCentroid(1))
    size = np.asarray(fixed.GetSize()) - 1
    return np.asarray(fixed.TransformContinuousIndexToPhysicalPoint((size / 2).tolist()))


def _run(fixed, moving, *, shrink, sigmas, sampling, bins, iterations, seed, mask,
         affine: bool, affine_shrink=None, affine_sigmas=None,
         min_step: float = 1e-3) -> RegistrationResult:
    import SimpleITK as sitk

    t0 = time.perf_counter()
    fixed, moving = _as_float(fixed), _as_float(moving)
    init = sitk.CenteredTransformInitializer(
        fixed, moving, sitk.Euler3DTransform(), sitk.CenteredTransformInitializerFilter.GEOMETRY
    )
    stages = []
    reg = _method(shrink, sigmas, sampling, bins, iterations, seed, mask, min_step=min_step)
    reg.SetInitialTransform(init, inPlace=False)
    rigid = _unwrap(reg.Execute(fixed, moving))
    stages.append({"stage": "rigid", "iterations": reg.GetOptimizerIteration(),
                   "metric": reg.GetMetricValue(),
                   "stop": reg.GetOptimizerStopConditionDescription()})
    final = rigid
    if affine:
        # rigid result → affine initial transform (same centre)
        rig = rigid
        aff = sitk.AffineTransform(3)
        aff.SetMatrix(rig.GetMatrix())
        aff.SetTranslation(rig.GetTranslation())
        aff.SetCenter(rig.GetCenter())
        reg2 = _method(affine_shrink or shrink, affine_sigmas or sigmas, sampling, bins,
                       iterations, seed, mask)
        reg2.SetOptimizerAsRegularStepGradientDescent(
            learningRate=0.5, minStep=min_step / 10, numberOfIterations=iterations,
            relaxationFactor=0.6, gradientMagnitudeTolerance=1e-6,
        )
        reg2.SetOptimizerScalesFromPhysicalShift()
        reg2.SetInitialTransform(aff, inPlace=False)
        final = _unwrap(reg2.Execute(fixed, moving))
        stages.append({"stage": "affine", "iterations": reg2.GetOptimizerIteration(),
                       "metric": reg2.GetMetricValue(),
                       "stop": reg2.GetOptimizerStopConditionDescription()})
    p = _reference_point(fixed, mask)
    disp = float(np.linalg.norm(np.asarray(final.TransformPoint(p.tolist())) - p))
    return RegistrationResult(final, float(stages[-1]["metric"]), disp,
                              time.perf_counter() - t0, stages)


def downsample(img, working_spacing_mm: float = 3.0):
    """Gaussian-smoothed, in-plane shrunk copy with spacing close to ``working_spacing_mm``."""
    import SimpleITK as sitk

    sp = img.GetSpacing()
    f = [max(1, round(working_spacing_mm / s)) if i < 2 else 1 for i, s in enumerate(sp)]
    if f == [1, 1, 1]:
        return img
    sig = [0.5 * fi * si if fi > 1 else 0.01 for fi, si in zip(f, sp, strict=True)]
    return sitk.Shrink(sitk.SmoothingRecursiveGaussian(_as_float(img), sig), f)


def register_phase(
    fixed,
    moving,
    *,
    fixed_mask=None,
    affine: bool = True,
    working_spacing_mm: float = 3.0,
    shrink: tuple[int, ...] = (4, 2),
    sigmas: tuple[float, ...] = (2.0, 1.0),
    sampling: float = 0.03,
    bins: int = 32,
    iterations: int = 40,
    seed: int = 0,
) -> RegistrationResult:
    """Coarse-to-fine rigid (+ affine) registration of ``moving`` onto ``fixed``.

    Both images are first smoothed and shrunk in-plane to about
    ``working_spacing_mm``; the pyramid (``shrink``, ``sigmas`` in voxels) runs on
    those copies and the affine stage on the finest pyramid level only. The
    transform is physical, so it applies unchanged to the full-resolution images.

    Parameters
    ----------
    fixed, moving : SimpleITK.Image
        Reference (portal venous) and moving phase, in physical space.
    fixed_mask : SimpleITK.Image, optional
        Region (e.g. dilated liver) where the metric is evaluated.
    affine : bool
        Add an affine stage after the rigid one.
    working_spacing_mm : float
        In-plane spacing of the working copies.
    shrink, sigmas : tuple
        Pyramid on the working copies.
    sampling : float
        Fraction of voxels sampled for the metric.
    iterations : int
        Maximum optimiser iterations per level.
    seed : int
        Seed of the metric sampling.
    """
    import SimpleITK as sitk

    f_small = downsample(fixed, working_spacing_mm)
    m_small = downsample(moving, working_spacing_mm)
    mask = None
    if fixed_mask is not None:
        mask = sitk.Resample(sitk.Cast(fixed_mask > 0, sitk.sitkUInt8), f_small,
                             sitk.Transform(), sitk.sitkNearestNeighbor, 0)
    # never shrink a working copy below 12 voxels along any axis; small images also get a
    # full-resolution level
    min_dim = min(f_small.GetSize())
    sigma_of = dict(zip((int(f) for f in shrink), sigmas, strict=True))
    levels = [int(f) for f in shrink if min_dim / int(f) >= 12] or [1]
    if levels[-1] != 1 and np.prod(f_small.GetSize()) < 400_000:
        levels.append(1)
    shrink = tuple(levels)
    sigmas = tuple(float(sigma_of.get(f, 0.0)) for f in shrink)
    return _run(f_small, m_small, shrink=shrink, sigmas=sigmas, sampling=sampling, bins=bins,
                iterations=iterations, seed=seed, mask=mask, affine=affine,
                affine_shrink=shrink[-1:], affine_sigmas=sigmas[-1:], min_step=0.02)


def register_full_resolution(fixed, moving, *, fixed_mask=None, seed: int = 0,
                             iterations: int = 200) -> RegistrationResult:
    """Baseline: plain rigid then affine Mattes-MI at full resolution, all voxels."""
    return _run(fixed, moving, shrink=(1,), sigmas=(0.0,), sampling=1.0, bins=32,
                iterations=iterations, seed=seed, mask=fixed_mask, affine=True)


def resample_to(moving, reference, transform=None, *, label: bool = False, default: float = 0.0):
    """Resample ``moving`` onto ``reference``'s grid through ``transform`` (fixed → moving)."""
    import SimpleITK as sitk

    tr = transform if transform is not None else sitk.Transform()
    interp = sitk.sitkNearestNeighbor if label else sitk.sitkLinear
    return sitk.Resample(moving, reference, tr, interp, default, moving.GetPixelID())
