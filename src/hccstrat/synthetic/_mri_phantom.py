"""Analytic abdominal phantom for synthetic 4-phase liver MRI.

The phantom is defined in patient (LPS) millimetres: ``x`` towards the patient's
left, ``y`` posterior, ``z`` superior; the volume is centred on the liver dome.
Each tissue has a non-contrast signal and a multiplicative enhancement per phase
(figures from DOMAIN.md: liver +20–40 % arterial, +60–80 % portal venous, ~+50 %
delayed; HCC +80–150 % arterial then below the liver). The tumour's appearance
follows the patient's latent imaging traits (arterial enhancement, rim, washout,
capsule, margin irregularity, peritumoral enhancement).

Motion between phases is a rigid transform of the anatomy: the world point ``x``
of phase ``p`` shows the anatomy found at ``M_p^{-1}(x)``. The portal venous phase
is the reference (no motion), so the ideal registration transform of phase ``p``
(fixed = portal venous, moving = ``p``, SimpleITK convention: fixed point →
moving point) is ``M_p`` itself.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass, field

import numpy as np
from scipy import ndimage

__all__ = [
    "AORTA_XYR",
    "IVC_XYR",
    "PHASES",
    "PORTAL_HILUM",
    "PORTAL_RADIUS",
    "SPINE_XYR",
    "AxialGrid",
    "Phantom",
    "RigidMotion",
    "TumourSpec",
    "make_tumours",
    "parenchymal_texture",
    "portal_end",
    "render_phase",
]

#: Phase keys in acquisition order.
PHASES: tuple[str, ...] = ("pre", "arterial", "portal", "delayed")
_PI = {p: i for i, p in enumerate(PHASES)}

# Non-contrast signal (arbitrary units, liver = 1) and enhancement factors per phase
# (pre, arterial, portal venous, delayed).
_TISSUES: dict[str, tuple[float, tuple[float, float, float, float]]] = {
    "background": (0.0, (1, 1, 1, 1)),
    "fat": (0.22, (1.0, 1.0, 1.05, 1.05)),  # fat-suppressed T1 GRE
    "muscle": (0.45, (1.0, 1.1, 1.25, 1.25)),
    "bone": (0.30, (1.0, 1.0, 1.05, 1.05)),
    "liver": (1.0, (1.0, 1.3, 1.7, 1.5)),
    "spleen": (0.70, (1.0, 2.1, 1.9, 1.6)),
    "kidney": (0.75, (1.0, 2.6, 2.2, 1.7)),
    "aorta": (0.50, (1.0, 6.5, 3.6, 2.6)),
    "ivc": (0.50, (1.0, 1.3, 3.4, 2.6)),
    "portal_vein": (0.50, (1.0, 1.8, 5.2, 3.0)),
}


@dataclass(frozen=True)
class RigidMotion:
    """Rigid motion of the anatomy: rotation about ``z`` (degrees) then translation (mm)."""

    translation: tuple[float, float, float] = (0.0, 0.0, 0.0)
    rotation_deg: float = 0.0
    centre: tuple[float, float, float] = (0.0, 0.0, 0.0)

    def matrix(self) -> np.ndarray:
        """3×3 rotation matrix."""
        a = np.deg2rad(self.rotation_deg)
        c, s = np.cos(a), np.sin(a)
        return np.array([[c, -s, 0.0], [s, c, 0.0], [0.0, 0.0, 1.0]])

    def apply(self, pts: np.ndarray) -> np.ndarray:
        """Map anatomy points ``[N, 3]`` to world points: ``R (p - c) + c + t``."""
        c = np.asarray(self.centre)
        return (np.asarray(pts) - c) @ self.matrix().T + c + np.asarray(self.translation)

    def inverse_apply(self, pts: np.ndarray) -> np.ndarray:
        """Map world points ``[..., 3]`` back to anatomy points: ``R^T (x - c - t) + c``."""
        pts = np.asarray(pts)
        dt = pts.dtype if pts.dtype.kind == "f" else np.float64
        c = np.asarray(self.centre, dt)
        d = [pts[..., i] - (c[i] + dt.type(self.translation[i])) for i in range(3)]
        r = self.matrix().astype(dt)
        out = np.empty(pts.shape, dt)
        for j in range(3):  # (R^T d)_j = sum_i R[i, j] d_i
            out[..., j] = r[0, j] * d[0] + r[1, j] * d[1] + r[2, j] * d[2] + c[j]
        return out


@dataclass(frozen=True)
class TumourSpec:
    """One tumour: centre (mm, anatomy frame), radius (mm) and shape harmonics."""

    centre: tuple[float, float, float]
    radius: float
    harmonics: tuple[tuple[float, float, float, float], ...] = ()  # (amp, l-freq, m-freq, phase)


@dataclass
class Phantom:
    """Geometry and appearance of one synthetic abdomen.

    Attributes
    ----------
    traits : dict
        Latent imaging traits in [0, 1] (``arterial_enhancement`` in 0.8–1.5).
    tumours : list of TumourSpec
        The first is the index (largest) tumour.
    liver_centre, liver_axes : tuple
        Liver ellipsoid (mm).
    """

    traits: dict[str, float]
    tumours: list[TumourSpec]
    liver_centre: tuple[float, float, float] = (-55.0, 5.0, 0.0)
    liver_axes: tuple[float, float, float] = (88.0, 75.0, 78.0)
    lobulation: tuple[float, float, float] = (0.0, 0.0, 0.0)
    extra: dict[str, float] = field(default_factory=dict)


def _trait(row: Mapping, key: str, default: float) -> float:
    val = row.get(key, default)
    try:
        val = float(val)
    except (TypeError, ValueError):
        return default
    return default if not np.isfinite(val) else val


def make_tumours(latent: Mapping, rng: np.random.Generator) -> Phantom:
    """Draw the phantom (liver shape, tumours) for one latent record.

    Parameters
    ----------
    latent : Mapping
        One row of the synthetic cohort's ``latent`` table (see
        :func:`hccstrat.synthetic.mri.default_latent` for the keys used).
    rng : numpy.random.Generator
        Source of randomness.
    """
    traits = {
        "arterial_enhancement": float(
            np.clip(_trait(latent, "mri_arterial_enhancement", 1.1), 0.3, 2.0)
        ),
        "rim": float(np.clip(_trait(latent, "mri_rim", 0.2), 0, 1)),
        "washout": float(np.clip(_trait(latent, "mri_washout", 0.6), 0, 1)),
        "capsule": float(np.clip(_trait(latent, "mri_capsule", 0.5), 0, 1)),
        "margin": float(np.clip(_trait(latent, "mri_margin_irregularity", 0.2), 0, 1)),
        "peritumoral": float(np.clip(_trait(latent, "mri_peritumoral", 0.2), 0, 1)),
        "aggressiveness": float(_trait(latent, "aggressiveness", 0.0)),
    }
    size_cm = float(np.clip(_trait(latent, "tumour_size_cm", 4.0), 1.0, 12.0))
    number = int(np.clip(round(_trait(latent, "tumour_number", 1)), 1, 4))
    liver_c = np.array([-55.0, 5.0, 0.0]) + rng.normal(0, 3, 3)
    liver_ax = np.array([88.0, 75.0, 78.0]) * rng.uniform(0.93, 1.07, 3)
    # index tumour: radius capped so that it stays inside the liver
    radius = min(size_cm * 5.0, 0.45 * float(liver_ax.min()))
    free = (liver_ax - radius) * 0.55
    centre = liver_c + rng.uniform(-1, 1, 3) * free * np.array([0.6, 0.6, 0.5])
    amp = 0.28 * traits["margin"]
    harm = tuple(
        (float(amp * rng.uniform(0.5, 1.0) / (k + 1) ** 0.5), float(rng.integers(2, 6)),
         float(rng.integers(2, 6)), float(rng.uniform(0, 2 * np.pi)))
        for k in range(4)
    )
    tumours = [TumourSpec(tuple(centre), radius, harm)]
    for _ in range(number - 1):
        r = float(rng.uniform(0.25, 0.5) * radius)
        r = max(r, 5.0)
        for _try in range(20):
            c = liver_c + rng.uniform(-1, 1, 3) * (liver_ax - r) * 0.6
            if all(np.linalg.norm(c - np.array(t.centre)) > t.radius + r + 8 for t in tumours):
                break
        tumours.append(TumourSpec(tuple(c), r, ()))
    return Phantom(
        traits=traits,
        tumours=tumours,
        liver_centre=tuple(liver_c),
        liver_axes=tuple(liver_ax),
        lobulation=tuple(rng.uniform(0, 2 * np.pi, 3)),
    )


@dataclass(frozen=True)
class AxialGrid:
    """World axes (mm) of an axial voxel grid: ``xs`` (columns), ``ys`` (rows), ``zs`` (slices)."""

    xs: np.ndarray
    ys: np.ndarray
    zs: np.ndarray

    @property
    def shape(self) -> tuple[int, int, int]:
        """Array shape ``(nz, ny, nx)``."""
        return (len(self.zs), len(self.ys), len(self.xs))


class _Coords:
    """Anatomy coordinates of a grid, factorised: in-plane ``x, y`` ``[1, ny, nx]`` and
    ``z`` ``[nz, 1, 1]`` (the motion rotates about ``z`` only, so this is exact)."""

    def __init__(self, grid: AxialGrid, motion: RigidMotion) -> None:
        yy, xx = np.meshgrid(grid.ys.astype(np.float32), grid.xs.astype(np.float32),
                             indexing="ij")
        c = np.asarray(motion.centre, np.float32)
        t = np.asarray(motion.translation, np.float32)
        r = motion.matrix().astype(np.float32)
        dx, dy = xx - (c[0] + t[0]), yy - (c[1] + t[1])
        # R^T d (+ c): rotation about z mixes x and y only
        self.x = (r[0, 0] * dx + r[1, 0] * dy + c[0])[None]
        self.y = (r[0, 1] * dx + r[1, 1] * dy + c[1])[None]
        self.z = (grid.zs.astype(np.float32) - t[2])[:, None, None]
        self.shape = grid.shape

    def box(self, centre, reach: float) -> tuple[slice, slice, slice] | None:
        """Index box holding every point within ``reach`` (mm, per axis) of ``centre``."""
        m2 = (np.abs(self.x[0] - centre[0]) < reach) & (np.abs(self.y[0] - centre[1]) < reach)
        m1 = np.abs(self.z[:, 0, 0] - centre[2]) < reach
        if not m2.any() or not m1.any():
            return None
        rows, cols = np.nonzero(m2.any(1))[0], np.nonzero(m2.any(0))[0]
        zs = np.nonzero(m1)[0]
        return (slice(zs[0], zs[-1] + 1), slice(rows[0], rows[-1] + 1),
                slice(cols[0], cols[-1] + 1))

    def points(self, box: tuple[slice, slice, slice]) -> np.ndarray:
        """Anatomy points ``[bz, by, bx, 3]`` of an index box."""
        zs, ys, xs = box
        x, y, z = self.x[:, ys, xs], self.y[:, ys, xs], self.z[zs]
        shp = (z.shape[0], x.shape[1], x.shape[2])
        return np.stack([np.broadcast_to(x, shp), np.broadcast_to(y, shp),
                         np.broadcast_to(z, shp)], -1)


def _ellipsoid2(x, y, z, c, ax) -> np.ndarray:
    """Squared normalised ellipsoid radius (< 1 inside), broadcast over the factors."""
    return ((x - c[0]) / ax[0]) ** 2 + ((y - c[1]) / ax[1]) ** 2 + ((z - c[2]) / ax[2]) ** 2


def _cylinder_z(x, y, cx: float, cy: float, r: float) -> np.ndarray:
    return ((x - cx) ** 2 + (y - cy) ** 2) < r * r


def tumour_radius_field(p: np.ndarray, t: TumourSpec) -> np.ndarray:
    """Distance to the tumour centre divided by its (direction-dependent) radius."""
    d = p - np.asarray(t.centre)
    r = np.sqrt((d**2).sum(-1)) + 1e-6
    if not t.harmonics:
        return r / t.radius
    theta = np.arccos(np.clip(d[..., 2] / r, -1, 1))
    phi = np.arctan2(d[..., 1], d[..., 0])
    mod = np.ones_like(r)
    for amp, lf, mf, ph in t.harmonics:
        mod += amp * np.sin(lf * theta + ph) * np.cos(mf * phi + ph)
    return r / (t.radius * np.clip(mod, 0.5, 1.6))



#: Where the phantom's vessels are (anatomy frame, mm): aorta and IVC are vertical
#: cylinders ``(x, y, radius)``; the portal vein runs from ``PORTAL_HILUM`` towards the
#: right lobe. Known positions let the tests check the vessel finder of the phase
#: identification (``hccstrat.io._vessels``).
AORTA_XYR: tuple[float, float, float] = (18.0, 52.0, 11.0)
IVC_XYR: tuple[float, float, float] = (-22.0, 42.0, 10.0)
SPINE_XYR: tuple[float, float, float] = (0.0, 80.0, 20.0)
PORTAL_HILUM: tuple[float, float, float] = (0.0, 20.0, -30.0)
PORTAL_RADIUS: float = 7.0


def portal_end(ph: Phantom) -> np.ndarray:
    """Intrahepatic end of the portal vein (anatomy frame, mm)."""
    lc = ph.liver_centre
    return np.array([lc[0] - 20.0, lc[1], lc[2] + 10.0])


def _labels(q: _Coords, ph: Phantom) -> dict[str, np.ndarray]:
    """Boolean masks of every structure, broadcastable to the grid shape."""
    x, y, z = q.x, q.y, q.z
    body = ((x / 165.0) ** 2 + ((y - 5) / 115.0) ** 2) < 1
    muscle_inner = ((x / 150.0) ** 2 + ((y - 5) / 100.0) ** 2) < 1
    lc, la = ph.liver_centre, ph.liver_axes
    lob = ph.lobulation
    wobble = (1 + 0.06 * np.sin(x / 23.0 + lob[0]) * np.cos(y / 31.0 + lob[1])
              + 0.04 * np.sin(z / 19.0 + lob[2]))
    liver = (_ellipsoid2(x, y, z, lc, la) < wobble**2) & (x < 45) & body
    spleen = _ellipsoid2(x, y, z, (85.0, 40.0, 20.0), (32.0, 38.0, 50.0)) < 1
    kidney = (_ellipsoid2(x, y, z, (-65.0, 60.0, -75.0), (28.0, 24.0, 45.0)) < 1) | (
        _ellipsoid2(x, y, z, (70.0, 60.0, -65.0), (28.0, 24.0, 45.0)) < 1
    )
    bone = _cylinder_z(x, y, *SPINE_XYR)
    aorta = _cylinder_z(x, y, *AORTA_XYR)
    ivc = _cylinder_z(x, y, *IVC_XYR)
    # portal vein: an oblique tube from the hilum into the right lobe
    a = np.asarray(PORTAL_HILUM, np.float32)
    ab = (portal_end(ph) - a).astype(np.float32)
    dx, dy, dz = x - a[0], y - a[1], z - a[2]
    tt = np.clip(((dx * ab[0] + dy * ab[1]) + dz * ab[2]) / float(ab @ ab), 0, 1)
    dist2 = (dx - tt * ab[0]) ** 2 + (dy - tt * ab[1]) ** 2 + (dz - tt * ab[2]) ** 2
    portal = dist2 < PORTAL_RADIUS**2
    return {
        "body": body, "muscle_inner": muscle_inner, "liver": liver, "spleen": spleen,
        "kidney": kidney, "bone": bone, "aorta": aorta, "ivc": ivc, "portal_vein": portal,
    }


def _tissue(name: str, phase: str) -> float:
    base, enh = _TISSUES[name]
    return base * enh[_PI[phase]]


def parenchymal_texture(shape: tuple[int, int, int], rng: np.random.Generator) -> np.ndarray:
    """Smooth multiplicative texture (mean 1, sd 5 %), drawn once per study."""
    tex = ndimage.gaussian_filter(rng.standard_normal(shape, dtype=np.float32), 1.2)
    return 1 + 0.05 * tex / (tex.std() + 1e-6)


def render_phase(
    ph: Phantom,
    grid: AxialGrid,
    phase: str,
    motion: RigidMotion,
    rng: np.random.Generator,
    *,
    with_masks: bool = False,
    texture: np.ndarray | None = None,
) -> tuple[np.ndarray, dict[str, np.ndarray]]:
    """Noise-free signal of one phase on an axial grid.

    Parameters
    ----------
    ph : Phantom
    grid : AxialGrid
        World axes of the voxel grid.
    phase : str
        One of :data:`PHASES`.
    motion : RigidMotion
        Anatomy → world motion of this phase.
    rng : numpy.random.Generator
        Used for the texture when ``texture`` is not given.
    with_masks : bool
        Also return the liver and tumour masks.
    texture : ndarray, optional
        Multiplicative parenchymal texture of shape ``grid.shape``
        (:func:`parenchymal_texture`); drawn here when omitted.

    Returns
    -------
    image : ndarray
        Signal in liver units, shape ``grid.shape`` (z, y, x).
    masks : dict
        ``liver`` and ``tumour`` boolean masks (only when ``with_masks``).
    """
    shp = grid.shape
    q = _Coords(grid, motion)
    lab = _labels(q, ph)
    img = np.zeros(shp, np.float32)

    def put(mask, value: float) -> None:
        np.copyto(img, np.float32(value), where=np.broadcast_to(mask, shp))

    put(lab["body"], _tissue("fat", phase))
    put(lab["muscle_inner"], _tissue("muscle", phase))
    for name in ("kidney", "spleen", "bone", "liver", "aorta", "ivc"):
        put(lab[name], _tissue(name, phase))
    put(lab["portal_vein"] & lab["body"], _tissue("portal_vein", phase))
    liver_sig = _tissue("liver", phase)
    liver_full = np.broadcast_to(lab["liver"], shp)
    tr = ph.traits
    tumour_any = np.zeros(shp, bool) if with_masks else None
    for k, t in enumerate(ph.tumours):
        # work in an index box around the tumour (+ peritumoral ring)
        box = q.box(t.centre, t.radius * 1.7 + 12.0)
        if box is None:
            continue
        pts = q.points(box)
        rho = tumour_radius_field(pts, t)
        inside = rho < 1.0
        out = img[box]
        ring_mm = (rho - 1.0) * t.radius  # approximate distance outside the boundary
        liver_here = liver_full[box]
        # peritumoral arterial enhancement (patchy), hypo-intense in the other phases
        peri = liver_here & (ring_mm > 0) & (ring_mm < 8.0) & ~inside
        if phase == "arterial" and tr["peritumoral"] > 0:
            patch = 0.5 + 0.5 * np.sin(pts[..., 0] / 4.0 + k) * np.cos(pts[..., 1] / 5.0)
            out[peri] = liver_sig * (1 + 0.7 * tr["peritumoral"] * patch[peri])
        # capsule: thin enhancing shell in portal venous / delayed phases
        caps = liver_here & (ring_mm >= 0) & (ring_mm < 2.5) & ~inside
        if phase in ("portal", "delayed") and tr["capsule"] > 0:
            out[caps] = liver_sig * (1 + 0.55 * tr["capsule"])
        pre = 0.78 * _tissue("liver", "pre")
        if phase == "pre":
            val = np.full(inside.sum(), pre, np.float32)
        elif phase == "arterial":
            e = tr["arterial_enhancement"]
            rim_zone = rho[inside] > 0.72
            core = pre * (1 + e * (1 - 0.85 * tr["rim"]))
            rim = pre * (1 + e * (1 + 0.35 * tr["rim"]))
            val = np.where(rim_zone, rim, core).astype(np.float32)
        else:
            drop = 0.38 if phase == "portal" else 0.5
            val = np.full(inside.sum(), liver_sig * (1 - drop * tr["washout"]), np.float32)
        # central necrosis for large aggressive tumours
        if k == 0 and t.radius > 25 and tr["aggressiveness"] > 0.5:
            nec = rho[inside] < 0.35
            val[nec] = 0.55 * _tissue("liver", "pre")
        out[inside] = val
        if tumour_any is not None:
            tumour_any[box] |= inside
    # smooth parenchymal texture (multiplicative), common to every phase
    img *= texture if texture is not None else parenchymal_texture(shp, rng)
    masks: dict[str, np.ndarray] = {}
    if with_masks:
        masks = {"liver": liver_full | tumour_any, "tumour": tumour_any}
    return img, masks
