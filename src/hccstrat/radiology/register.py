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
    "ResidualCheck",
    "downsample",
    "nmi",
    "register_full_resolution",
    "register_phase",
    "resample_to",
    "residual_misalignment",
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
    residual : ResidualCheck, optional
        Misalignment left after registration (:func:`residual_misalignment`).
    """

    transform: object
    metric: float
    displacement_mm: float
    seconds: float
    stages: list[dict] = field(default_factory=list)
    residual: ResidualCheck | None = None

    def to_dict(self) -> dict:
        tr = self.transform
        return {
            "metric": self.metric, "displacement_mm": self.displacement_mm,
            "seconds": self.seconds, "stages": self.stages,
            "residual": None if self.residual is None else self.residual.to_dict(),
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
        # SimpleITK reads seed 0 as sitkWallClock (a new random sample every run): shift
        # by one so every seed, 0 included, gives the same samples each time
        reg.SetMetricSamplingPercentage(sampling, int(seed) + 1)
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


def downsample(img, working_spacing_mm: float = 3.0, *, shrink_z: bool = True):
    """Block-averaged (``BinShrink``) copy with spacing close to ``working_spacing_mm``.

    Averaging is the anti-aliasing filter (no full-resolution Gaussian pass); slices
    are averaged too when ``shrink_z`` and the slice spacing is at most half the
    working spacing.
    """
    import SimpleITK as sitk

    sp = img.GetSpacing()
    f = [max(1, round(working_spacing_mm / s)) for s in sp]
    if not shrink_z:
        f[2] = 1
    if f == [1, 1, 1]:
        return _as_float(img)
    return sitk.BinShrink(_as_float(img), f)


def register_phase(
    fixed,
    moving,
    *,
    fixed_mask=None,
    affine: bool = True,
    working_spacing_mm: float = 6.0,
    shrink: tuple[int, ...] = (4, 2),
    sigmas: tuple[float, ...] = (2.0, 1.0),
    sampling: float = 0.03,
    bins: int = 32,
    iterations: int = 40,
    seed: int = 0,
    fixed_small=None,
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
    fixed_small : SimpleITK.Image, optional
        ``downsample(fixed, working_spacing_mm)`` computed once for several moving
        phases.
    """
    import SimpleITK as sitk

    f_small = fixed_small if fixed_small is not None else downsample(fixed, working_spacing_mm)
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
                             iterations: int = 200, sampling: float = 0.05,
                             ) -> RegistrationResult:
    """Baseline: plain rigid then affine Mattes-MI on the full-resolution images.

    One level, no smoothing, regular-step gradient descent, random sampling of
    ``sampling`` of the voxels (the usual SimpleITK set-up; ``sampling=1.0`` uses
    every voxel and costs several CPU seconds per iteration at 256×256×80).
    """
    return _run(fixed, moving, shrink=(1,), sigmas=(0.0,), sampling=sampling, bins=32,
                iterations=iterations, seed=seed, mask=fixed_mask, affine=True)


def resample_to(moving, reference, transform=None, *, label: bool = False, default: float = 0.0):
    """Resample ``moving`` onto ``reference``'s grid through ``transform`` (fixed → moving)."""
    import SimpleITK as sitk

    tr = transform if transform is not None else sitk.Transform()
    interp = sitk.sitkNearestNeighbor if label else sitk.sitkLinear
    return sitk.Resample(moving, reference, tr, interp, default, moving.GetPixelID())


@dataclass
class ResidualCheck:
    """Residual misalignment of a registered phase against the reference.

    Attributes
    ----------
    residual_mm : float
        Norm of the per-axis shift (sub-voxel, parabolic fit) that would further
        maximise the normalised mutual information; ~0 when well registered.
    shift_mm : tuple
        That shift along x, y, z.
    nmi : float
        Normalised mutual information (H(A) + H(B)) / H(A, B) at the registered
        position, in [1, 2].
    nmi_unregistered : float
        The same before registration (identity transform), for comparison.
    """

    residual_mm: float
    shift_mm: tuple[float, float, float]
    nmi: float
    nmi_unregistered: float

    def to_dict(self) -> dict:
        return {"residual_mm": self.residual_mm, "shift_mm": list(self.shift_mm),
                "nmi": self.nmi, "nmi_unregistered": self.nmi_unregistered}


def nmi(a: np.ndarray, b: np.ndarray, bins: int = 32) -> float:
    """Normalised mutual information (H(A) + H(B)) / H(A, B) of two samples."""
    def q(x: np.ndarray) -> np.ndarray:
        lo, hi = np.percentile(x, [0.5, 99.5])
        return np.clip(((x - lo) / max(hi - lo, 1e-9) * bins).astype(np.int64), 0, bins - 1)

    joint = np.bincount(q(a) * bins + q(b), minlength=bins * bins).astype(np.float64)
    joint /= joint.sum()
    pa, pb = joint.reshape(bins, bins).sum(1), joint.reshape(bins, bins).sum(0)

    def h(p: np.ndarray) -> float:
        p = p[p > 0]
        return float(-(p * np.log(p)).sum())

    return (h(pa) + h(pb)) / max(h(joint), 1e-12)


def residual_misalignment(fixed_small, moving, transform, mask=None, *,
                          max_shift: int = 2) -> ResidualCheck:
    """Measure what misalignment is left after registration.

    ``moving`` (any resolution) is resampled through ``transform`` onto the working
    grid ``fixed_small``; the NMI inside ``mask`` (dilated liver, or the body) is
    evaluated for integer voxel shifts of up to ``max_shift`` along each axis and the
    optimum refined by a parabola. A well-registered phase has its NMI maximum at
    zero shift.
    """
    import SimpleITK as sitk

    f = sitk.GetArrayFromImage(fixed_small).astype(np.float32)
    m_img = sitk.Resample(moving, fixed_small, transform, sitk.sitkLinear, 0.0, sitk.sitkFloat32)
    m = sitk.GetArrayFromImage(m_img)
    m0 = sitk.GetArrayFromImage(sitk.Resample(moving, fixed_small, sitk.Transform(),
                                              sitk.sitkLinear, 0.0, sitk.sitkFloat32))
    if mask is not None:
        sel = sitk.GetArrayFromImage(sitk.Resample(mask, fixed_small, sitk.Transform(),
                                                   sitk.sitkNearestNeighbor, 0)) > 0
    else:
        sel = f > 0.15 * np.percentile(f, 99)
    k = max_shift
    inner = np.zeros_like(sel)
    inner[k:-k or None, k:-k or None, k:-k or None] = True
    sel &= inner
    if sel.sum() < 200:
        return ResidualCheck(float("nan"), (float("nan"),) * 3, float("nan"), float("nan"))
    idx = np.nonzero(sel)
    fv = f[idx]
    base = nmi(fv, m[idx])
    spacing_zyx = np.asarray(fixed_small.GetSpacing())[::-1]
    shift = np.zeros(3)
    for ax in range(3):
        vals = {0: base}
        for d in [v for v in range(-k, k + 1) if v]:
            j = list(idx)
            j[ax] = idx[ax] + d
            vals[d] = nmi(fv, m[tuple(j)])
        best = max(vals, key=vals.get)
        off = float(best)
        if -k < best < k:
            y0, y1, y2 = vals[best - 1], vals[best], vals[best + 1]
            den = y0 - 2 * y1 + y2
            if den < 0:
                off += 0.5 * (y0 - y2) / den
        shift[ax] = off * spacing_zyx[ax]
    # array axes are z, y, x: report x, y, z
    sx, sy, sz = float(shift[2]), float(shift[1]), float(shift[0])
    return ResidualCheck(float(np.linalg.norm(shift)), (sx, sy, sz), base,
                         nmi(fv, m0[idx]))
