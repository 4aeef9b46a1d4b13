"""Per-class H&E textures and the tile renderer of synthetic slides.

Each class gets a periodic (seamless) texture of ``T × T`` level-0 pixels drawn in
optical-density space (haematoxylin and eosin concentrations, Beer–Lambert), then
converted to RGB with the slide's (centre-shifted) stain vectors. A slide is rendered
tile by tile: the coarse label map picks, per pixel, which texture to sample. Three
variants of each texture exist: plain, folded (double tissue layer) and out of focus.
Lower pyramid levels sample block-averaged textures, so every level is rendered
directly, never by resampling level 0.
"""

from __future__ import annotations

from collections.abc import Iterator, Mapping
from dataclasses import dataclass, field

import numpy as np
from scipy import ndimage as ndi

from hccstrat.synthetic._wsi_geometry import ARTEFACT_BITS, Geometry, render_grade

__all__ = [
    "N_RENDER_CLASSES",
    "LevelTiles",
    "StainParams",
    "build_textures",
    "downsample_textures",
    "iter_level_tiles",
    "texture_index_map",
]

N_RENDER_CLASSES = 9
N_VARIANTS = 3  # plain, fold, blur

_H_OD = np.array([0.650, 0.704, 0.286])  # Ruifrok & Johnston haematoxylin
_E_OD = np.array([0.072, 0.990, 0.105])  # eosin
_INKS = {"green": [0.95, 0.20, 0.70], "blue": [1.00, 0.55, 0.12], "black": [1.2, 1.15, 1.1]}


@dataclass
class StainParams:
    """Stain and scanner appearance of one slide (per-centre shift applied).

    Attributes
    ----------
    h_od, e_od : ndarray (3,)
        Unit optical-density vectors of haematoxylin and eosin.
    h_scale, e_scale : float
        Multipliers of the stain concentrations (staining intensity).
    background : ndarray (3,)
        RGB of empty glass (illumination).
    noise : float
        Standard deviation of per-pixel sensor noise (grey levels).
    blur_sigma : float
        Scanner blur in level-0 pixels (0 = sharp).
    jpeg_quality : int
        JPEG quality of the stored tiles.
    ink : str
        Pen colour: ``green``, ``blue`` or ``black``.
    """

    h_od: np.ndarray = field(default_factory=lambda: _H_OD.copy())
    e_od: np.ndarray = field(default_factory=lambda: _E_OD.copy())
    h_scale: float = 1.0
    e_scale: float = 1.0
    background: np.ndarray = field(default_factory=lambda: np.array([242.0, 240.0, 244.0]))
    noise: float = 3.0
    blur_sigma: float = 0.0
    jpeg_quality: int = 85
    ink: str = "green"

    @classmethod
    def from_mapping(cls, shift: Mapping | None, rng: np.random.Generator) -> StainParams:
        """Build from a centre's stain-shift mapping (keys may carry a ``stain_`` prefix).

        Recognised keys: ``h_od``, ``e_od`` (3-vectors, or their components ``h_r``,
        ``h_g``, ``h_b`` / ``e_r``, ``e_g``, ``e_b`` as in the centre table), ``h_shift``,
        ``e_shift`` (3-vectors added to the default OD vectors), ``h_scale``, ``e_scale``,
        ``background`` (scalar or RGB), ``noise``, ``blur_sigma``, ``jpeg_quality``,
        ``ink``. Other keys are ignored.
        """
        p = cls(ink=str(rng.choice(list(_INKS))))
        if not shift:
            return p
        s = {str(k).removeprefix("stain_"): v for k, v in dict(shift).items()}
        for name in ("h", "e"):
            base = getattr(p, f"{name}_od")
            if s.get(f"{name}_od") is not None:
                base = np.asarray(s[f"{name}_od"], float)
            elif all(s.get(f"{name}_{c}") is not None for c in "rgb"):  # centre-table columns
                base = np.array([float(s[f"{name}_{c}"]) for c in "rgb"])
            if s.get(f"{name}_shift") is not None:
                base = base + np.asarray(s[f"{name}_shift"], float)
            base = np.clip(base, 1e-3, None)
            setattr(p, f"{name}_od", base / np.linalg.norm(base))
        for key in ("h_scale", "e_scale", "noise", "blur_sigma"):
            if s.get(key) is not None:
                setattr(p, key, float(s[key]))
        if s.get("background") is not None:
            p.background = np.broadcast_to(np.asarray(s["background"], float), (3,)).copy()
        if s.get("jpeg_quality") is not None:
            p.jpeg_quality = int(s["jpeg_quality"])
        if s.get("ink") in _INKS:
            p.ink = str(s["ink"])
        return p


def _noise(
    rng: np.random.Generator,
    t: int,
    sigma_px: float,
    aniso: tuple[float, float] = (1, 1),
    angle: float = 0.0,
) -> np.ndarray:
    """Periodic Gaussian-filtered noise, zero mean, unit std (FFT filtering keeps it seamless)."""
    from scipy import fft

    fy = np.fft.fftfreq(t).astype(np.float32)[:, None]
    fx = np.fft.rfftfreq(t).astype(np.float32)[None, :]
    ca, sa = np.cos(angle), np.sin(angle)
    u = (fx * ca + fy * sa) * aniso[0]
    v = (-fx * sa + fy * ca) * aniso[1]
    filt = np.exp(-2 * (np.pi * sigma_px) ** 2 * (u * u + v * v)).astype(np.float32)
    spec = fft.rfft2(rng.standard_normal((t, t), dtype=np.float32), workers=2) * filt
    out = fft.irfft2(spec, s=(t, t), workers=2)
    return ((out - out.mean()) / (out.std() + 1e-8)).astype(np.float32)


def _nuclei(
    rng: np.random.Generator,
    t: int,
    mpp: float,
    density: float,
    radius_um: float,
    *,
    intensity: float = 1.0,
    spread: float = 0.12,
    where: np.ndarray | None = None,
    elong: float = 1.0,
) -> np.ndarray:
    """Stamp round (or elongated) nuclei onto a periodic ``t × t`` concentration map.

    ``density`` is in nuclei per µm²; when ``where`` is given, only nuclei whose
    centre falls inside it are kept (density is relative to the ``where`` area).
    """
    out = np.zeros(t * t, np.float32)
    area = (t * mpp) ** 2 * (where.mean() if where is not None else 1.0)
    n = rng.poisson(density * area)
    if n == 0:
        return out.reshape(t, t)
    if where is not None:
        cand = np.flatnonzero(where.ravel())
        flat = rng.choice(cand, size=n)
        py, px = flat // t, flat % t
    else:
        py, px = rng.integers(0, t, n), rng.integers(0, t, n)
    radii = radius_um / mpp * np.exp(rng.normal(0, spread, n))
    bins = np.quantile(radii, [0.1, 0.35, 0.65, 0.9]) if n > 8 else radii[:1]
    which = np.abs(radii[:, None] - bins[None, :]).argmin(1)
    orient = rng.integers(0, 4, n) if elong != 1.0 else np.zeros(n, int)
    for b, r in enumerate(bins):
        for o in np.unique(orient):
            sel = (which == b) & (orient == o)
            if not sel.any():
                continue
            rr = int(np.ceil(r * max(elong, 1.0))) + 1
            dy, dx = np.mgrid[-rr : rr + 1, -rr : rr + 1]
            a = o * np.pi / 4
            u = (dx * np.cos(a) + dy * np.sin(a)) / (r * elong)
            v = (-dx * np.sin(a) + dy * np.cos(a)) / (r / max(elong, 1.0) if elong > 1 else r)
            d2 = u * u + v * v
            keep = d2 <= 1.0
            w = (0.75 + 0.25 * (1 - d2[keep])).astype(np.float32) * intensity
            iy = (py[sel][:, None] + dy[keep][None, :]) % t
            ix = (px[sel][:, None] + dx[keep][None, :]) % t
            out += np.bincount(
                (iy * t + ix).ravel(), weights=np.tile(w, sel.sum()), minlength=t * t
            ).astype(np.float32)
    return np.minimum(out, intensity * 1.15).reshape(t, t)


def _plates(
    rng: np.random.Generator, t: int, mpp: float, period_um: float, gap_um: float
) -> np.ndarray:
    """Trabecular plates: periodic wavy stripes; True on hepatocyte plates, False in sinusoids."""
    n = max(1, round(t * mpp / period_um))
    ang = rng.uniform(0, np.pi)
    ky, kx = round(n * np.sin(ang)), round(n * np.cos(ang))
    if ky == 0 and kx == 0:
        kx = 1
    yy, xx = np.mgrid[0:t, 0:t].astype(np.float32) / t
    warp = _noise(rng, t, 20.0 / mpp) * 0.35 + _noise(rng, t, 6.0 / mpp) * 0.08
    phase = np.mod(kx * xx + ky * yy + warp, 1.0)
    return phase >= gap_um / period_um


def _concentrations(
    latent: Mapping, rng: np.random.Generator, t: int, mpp: float
) -> list[tuple[np.ndarray, np.ndarray, np.ndarray]]:
    """(H, E, ink) concentration maps per render class, in class-code order."""
    a = render_grade(latent)
    lym = float(np.clip(latent.get("lymphocyte_density", 0.3), 0, 1))
    macro = bool(latent.get("macrotrabecular", False))
    z = np.zeros((t, t), np.float32)
    lymph = dict(radius_um=3.2, intensity=1.35, spread=0.07)

    def tumour(extra: float = 0.0) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
        aa = min(1.0, a + extra)
        period = 95.0 if macro else 32.0 + 18.0 * aa
        plate = _plates(rng, t, mpp, period, 6.0)
        e = np.where(plate, 0.40 + 0.06 * _noise(rng, t, 3 / mpp), 0.03).astype(np.float32)
        h = _nuclei(
            rng,
            t,
            mpp,
            1 / (300 - 150 * aa),
            4.6 + 2.0 * aa,
            intensity=0.85 + 0.35 * aa,
            spread=0.12 + 0.2 * aa,
            where=plate,
        )
        h += _nuclei(rng, t, mpp, lym * 0.004, **lymph)
        return h + 0.05 * plate, e, z

    def normal() -> tuple[np.ndarray, np.ndarray, np.ndarray]:
        plate = _plates(rng, t, mpp, 26.0, 7.0)
        e = np.where(plate, 0.30 + 0.05 * _noise(rng, t, 3 / mpp), 0.02).astype(np.float32)
        h = _nuclei(rng, t, mpp, 1 / 520, 3.8, intensity=0.75, spread=0.08, where=plate)
        return h + 0.04 * plate, e, z

    fib = _noise(rng, t, 2.0 / mpp, aniso=(0.15, 1.0), angle=rng.uniform(0, np.pi))
    stroma_e = np.clip(0.55 + 0.18 * fib, 0.2, 1.0).astype(np.float32)
    stroma_h = (
        _nuclei(rng, t, mpp, 1 / 900, 2.2, intensity=0.9, elong=3.0)
        + _nuclei(rng, t, mpp, lym * 0.003 + 0.0005, **lymph)
        + 0.03
    )
    immune_h = _nuclei(rng, t, mpp, 1 / 42, **lymph) + _nuclei(
        rng, t, mpp, 1 / 900, 5.0, intensity=0.7
    )
    immune_e = 0.12 + 0.03 * _noise(rng, t, 4 / mpp)
    nec_e = np.clip(0.30 + 0.10 * _noise(rng, t, 8 / mpp), 0.05, None).astype(np.float32)
    nec_h = (
        _nuclei(rng, t, mpp, 1 / 110, 1.4, intensity=0.95, spread=0.3)
        + _nuclei(rng, t, mpp, 1 / 350, 4.5, intensity=0.15)
        + 0.07
    )
    clump = _noise(rng, t, 10 / mpp) > 0.2
    rbc = _nuclei(rng, t, mpp, 1 / 55, 3.6, intensity=0.9, spread=0.05, where=clump)
    th_h, th_e, _ = tumour(0.2)
    ink = np.clip(0.85 + 0.12 * _noise(rng, t, 15 / mpp), 0.3, None).astype(np.float32)
    return [
        (z, z, z),  # background
        tumour(),
        (stroma_h, stroma_e, z),
        (immune_h, immune_e, z),
        (nec_h, nec_e, z),
        normal(),
        (z + 0.01, rbc + 0.02, z),  # vessel lumen with red cells
        (th_h, np.maximum(th_e, rbc), z),  # tumour thrombus in a vessel
        (z, z, ink),  # pen ink
    ]


def build_textures(
    latent: Mapping, stain: StainParams, mpp: float, rng: np.random.Generator, t: int = 1024
) -> np.ndarray:
    """RGB textures of every class and variant.

    Returns
    -------
    ndarray of uint8, shape (N_RENDER_CLASSES * 3, t, t, 3)
        Index ``class * 3 + variant`` (variant 0 plain, 1 fold, 2 blur).
    """
    ink = np.asarray(_INKS[stain.ink], np.float32)
    out = np.empty((N_RENDER_CLASSES * N_VARIANTS, t, t, 3), np.uint8)
    bg = stain.background.astype(np.float32)
    box = max(3, round(2.5 / mpp * 2.5))  # ~2.5 µm Gaussian, as a box filter
    sensor = rng.normal(0, stain.noise, (t, t, 3)).astype(np.float32)
    hv = (stain.h_scale * stain.h_od).astype(np.float32)
    ev = (stain.e_scale * stain.e_od).astype(np.float32)
    for c, (h, e, k) in enumerate(_concentrations(latent, rng, t, mpp)):
        od = h[..., None] * hv + e[..., None] * ev
        if c == N_RENDER_CLASSES - 1:
            od += k[..., None] * ink
        if stain.blur_sigma > 0:
            od = ndi.gaussian_filter(od, (stain.blur_sigma, stain.blur_sigma, 0), mode="wrap")
        variants = (od, od * 1.9 + 0.08, ndi.uniform_filter(od, (box, box, 1), mode="wrap"))
        for v, odv in enumerate(variants):
            rgb = np.exp(-odv, out=odv if v else None)
            rgb *= bg
            rgb += sensor
            out[c * N_VARIANTS + v] = np.clip(rgb, 0, 255, out=rgb)
    return out


def downsample_textures(tex: np.ndarray, factor: int) -> np.ndarray:
    """Block-average textures by an integer ``factor`` (for lower pyramid levels)."""
    if factor == 1:
        return tex
    n, t, _, _ = tex.shape
    k = t // factor
    acc = tex.reshape(n, k, factor, k, factor, 3).sum(axis=4, dtype=np.uint32).sum(axis=2)
    return ((acc + factor * factor // 2) // (factor * factor)).astype(np.uint8)


def texture_index_map(
    geom: Geometry, jitter: np.ndarray | None = None, fine: int = 2
) -> tuple[np.ndarray, int]:
    """Texture index (``class * 3 + variant``) per cell, optionally on a finer jittered grid.

    Parameters
    ----------
    geom : Geometry
        Label and artefact maps.
    jitter : ndarray, shape (2, J, J), optional
        Periodic displacement field (level-0 px) that roughens region borders.
    fine : int
        Subdivision of each label cell when ``jitter`` is given.

    Returns
    -------
    index_map : ndarray of uint8
    cell : int
        Level-0 pixels per cell of ``index_map``.
    """
    variant = np.zeros(geom.artefacts.shape, np.uint8)
    variant[(geom.artefacts & ARTEFACT_BITS["blur"]) > 0] = 2
    variant[(geom.artefacts & ARTEFACT_BITS["fold"]) > 0] = 1
    tidx = (geom.render * N_VARIANTS + variant).astype(np.uint8)
    if jitter is None or geom.downsample < fine:
        return tidx, geom.downsample
    cell = geom.downsample // fine
    gh, gw = tidx.shape
    j = jitter.shape[1]
    yc = np.arange(gh * fine, dtype=np.int32) * cell + cell // 2
    xc = np.arange(gw * fine, dtype=np.int32) * cell + cell // 2
    jit = jitter.astype(np.int32)
    xcol = xc % j
    gy = jit[0][yc % j][:, xcol]
    gy += yc[:, None]
    gy //= geom.downsample
    np.clip(gy, 0, gh - 1, out=gy)
    gx = jit[1][yc % j][:, xcol]
    gx += xc[None, :]
    gx //= geom.downsample
    np.clip(gx, 0, gw - 1, out=gx)
    gy *= gw
    gy += gx
    del gx
    return np.take(tidx.ravel(), gy), cell


class LevelTiles:
    """Renderer of the RGB tiles of one pyramid level, row by row (thread-safe).

    Pixel ``(y, x)`` of the level takes its texture from the index map cell that holds
    level-0 pixel ``(y·factor + factor/2, x·factor + factor/2)`` and its colour from that
    texture at ``(y mod Tk, x mod Tk)``. Tiles inside one texture are plain slices.
    When a cell spans a whole number ``c`` of level pixels (level 0 and the first
    levels), the textures are re-laid out as ``c × c`` blocks so that a mixed tile is
    one gather of contiguous blocks plus one transpose (several times faster than a
    per-pixel gather, same pixels).

    Parameters
    ----------
    index_map : ndarray of uint8
        Texture index per cell (:func:`texture_index_map`).
    cell : int
        Level-0 pixels per cell of ``index_map``.
    tex : ndarray of uint8, shape (C, Tk, Tk, 3)
        Textures at this level (see :func:`downsample_textures`).
    factor : int
        Level downsample relative to level 0.
    shape : (int, int)
        Level height and width.
    tile : int
        Tile size.
    """

    def __init__(
        self,
        index_map: np.ndarray,
        cell: int,
        tex: np.ndarray,
        factor: int,
        shape: tuple[int, int],
        tile: int,
    ) -> None:
        self.index_map, self.cell, self.tex = index_map, cell, tex
        self.factor, self.tile = factor, tile
        h, w = shape
        self.n_cols, self.n_rows = -(-w // tile), -(-h // tile)
        n_tex, self.tk = tex.shape[0], tex.shape[1]
        c = cell // factor if cell % factor == 0 else 0
        self.c = c if c >= 2 and self.tk % c == 0 and tile % c == 0 else 0
        self.blocks = None
        if self.c:
            k = self.tk // c
            self.blocks = np.ascontiguousarray(
                tex.reshape(n_tex, k, c, k, c, 3).transpose(0, 1, 3, 2, 4, 5)
            )

    def __len__(self) -> int:
        return self.n_rows * self.n_cols

    def _uniform(self, ty: int, tx: int) -> int:
        """Texture index when the whole tile lies in one texture, else -1."""
        gh, gw = self.index_map.shape
        span, cell = self.tile * self.factor, self.cell
        g0, g1 = (ty * span) // cell, min(gh, -(-(ty + 1) * span // cell))
        c0, c1 = (tx * span) // cell, min(gw, -(-(tx + 1) * span // cell))
        block = self.index_map[g0:g1, c0:c1]
        if not block.size:
            return 0
        first = int(block.flat[0])
        return first if (block == first).all() else -1

    def row(self, ty: int) -> list[np.ndarray]:
        """The tiles of tile row ``ty``, left to right, each ``(tile, tile, 3)`` uint8."""
        tile, tk, tex = self.tile, self.tk, self.tex
        gh, gw = self.index_map.shape
        aligned = tk % tile == 0
        out: list[np.ndarray] = []
        if self.c:
            k, m = self.tk // self.c, tile // self.c
            cy = np.arange(ty * m, (ty + 1) * m)
            rows = self.index_map[np.minimum(cy, gh - 1)]
            ky = (cy % k)[:, None]
        else:
            ys = np.arange(ty * tile, (ty + 1) * tile, dtype=np.int64)
            gy = np.clip((ys * self.factor + self.factor // 2) // self.cell, 0, gh - 1)
            rows = self.index_map[gy]
            yoff = ((ys % tk) * tk).astype(np.int32)[:, None]
            flat_tex = tex.reshape(-1, 3)
        for tx in range(self.n_cols):
            first = self._uniform(ty, tx) if aligned else -1
            if first >= 0:
                oy, ox = (ty * tile) % tk, (tx * tile) % tk
                out.append(np.ascontiguousarray(tex[first, oy : oy + tile, ox : ox + tile]))
                continue
            if self.c:
                cx = np.arange(tx * m, (tx + 1) * m)
                cls = rows[:, np.minimum(cx, gw - 1)]
                g = self.blocks[cls, ky, (cx % k)[None, :]]  # (m, m, c, c, 3)
                out.append(g.transpose(0, 2, 1, 3, 4).reshape(tile, tile, 3))
                continue
            xs = np.arange(tx * tile, (tx + 1) * tile, dtype=np.int64)
            gx = np.clip((xs * self.factor + self.factor // 2) // self.cell, 0, gw - 1)
            tidx = rows[:, gx].astype(np.int32)
            flat = tidx * (tk * tk) + yoff + (xs % tk).astype(np.int32)[None, :]
            out.append(flat_tex[flat.ravel()].reshape(tile, tile, 3))
        return out


def iter_level_tiles(
    index_map: np.ndarray,
    cell: int,
    tex: np.ndarray,
    factor: int,
    shape: tuple[int, int],
    tile: int,
) -> Iterator[np.ndarray]:
    """Yield the RGB tiles of one pyramid level in row-major order (see :class:`LevelTiles`)."""
    lt = LevelTiles(index_map, cell, tex, factor, shape, tile)
    for ty in range(lt.n_rows):
        yield from lt.row(ty)
