"""Lookup-table kernels of the fast Macenko mode (see :mod:`hccstrat.pathology.stain`).

With the stains fixed, Macenko normalisation is a linear map ``M`` in optical density,
``out = Io · exp(-M · OD(in))`` with ``OD(v) = -log((v + 1) / Io)``; per output channel
it factorises into ``Io · Π_j ((in_j + 1) / Io) ** M_cj``, so it needs lookups and
products only: a 65,536-entry (R, G) table times a 256-entry B table, or one 24-bit
colour table built once per slide.
"""

from __future__ import annotations

import concurrent.futures as cf

import numpy as np

__all__ = ["apply_od_map", "channel_tables", "colour_table", "macenko_stains"]


def macenko_stains(
    rgb: np.ndarray, io: float, alpha: float, beta: float
) -> tuple[np.ndarray, np.ndarray] | None:
    """Macenko stain matrix (3, 2) and 99th-percentile concentrations (2,) of pixels.

    numpy float64 version of ``MacenkoNormalizer._estimate`` for one pooled set of
    pixels (same rules), channel-major for speed.

    Parameters
    ----------
    rgb : ndarray of uint8, (3, N)
        R, G and B rows of the pixels.

    Returns
    -------
    (stain_matrix, max_conc) or None
        ``None`` when fewer than 3 pixels are stained (glass only).
    """
    od = -np.log((np.arange(256, dtype=np.float64) + 1) / io)[rgb]  # (3, N)
    tissue = od[:, (od[0] >= beta) & (od[1] >= beta) & (od[2] >= beta)]
    n = tissue.shape[1]
    if n < 3:
        return None
    xc = tissue - tissue.mean(1, keepdims=True)
    _, vec = np.linalg.eigh(xc @ xc.T / (n - 1))  # covariance of the stained pixels
    vec = vec[:, 1:3]
    proj = vec.T @ tissue
    phi = np.arctan2(proj[1], proj[0])
    lo, hi = np.percentile(phi, [alpha, 100 - alpha])
    v_min = vec @ np.array([np.cos(lo), np.sin(lo)])
    v_max = vec @ np.array([np.cos(hi), np.sin(hi)])
    he = np.stack([v_min, v_max] if v_min[0] > v_max[0] else [v_max, v_min], 1)
    conc = np.linalg.pinv(he) @ od
    return he, np.percentile(conc, 99, axis=1)


def channel_tables(m: np.ndarray, io: float) -> np.ndarray:
    """``T[c, j, v] = ((v + 1) / io) ** m[c, j]`` as float32 (3, 3, 256)."""
    base = (np.arange(256, dtype=np.float64) + 1) / io
    with np.errstate(over="ignore"):
        tab = base[None, None, :] ** np.asarray(m, float)[:, :, None]
    # products of three entries times io stay finite in float32 (extreme maps only
    # arise from near-glass input; their output is clipped to 255 anyway)
    return np.minimum(tab, 1e12).astype(np.float32)


def colour_table(m: np.ndarray, io: float, threads: int) -> np.ndarray:
    """Output RGB for every 24-bit input colour (index ``B<<16 | G<<8 | R``), as ``V3`` items."""
    tab = channel_tables(m, io)
    out = np.empty((256, 65536, 3), np.uint8)

    def fill(c: int) -> None:
        rg = (io * tab[c, 1][:, None] * tab[c, 0][None, :]).ravel()  # index G*256 + R
        for b0 in range(0, 256, 32):  # 32 blue values at a time: bounded temporaries
            v = tab[c, 2][b0 : b0 + 32, None] * rg[None, :]
            np.minimum(v, 255.0, out=v)
            out[b0 : b0 + 32, :, c] = v

    with cf.ThreadPoolExecutor(max(1, min(3, threads))) as ex:
        list(ex.map(fill, range(3)))
    return out.reshape(-1, 3).view("V3").reshape(-1)


def apply_od_map(x: np.ndarray, m: np.ndarray, io: float, table, threads: int) -> np.ndarray:
    """``min(io · exp(-m @ OD(x)), 255)`` truncated to uint8, via lookup tables.

    ``x`` is a C-contiguous uint8 array whose last axis is RGB. With ``table`` (see
    :func:`colour_table`) each pixel is one lookup; otherwise each output channel is
    a 65,536-entry (R, G) lookup times a 256-entry B lookup. Pixels are processed in
    chunks by ``threads`` threads (numpy releases the GIL in ``take``).
    """
    x = np.ascontiguousarray(x)
    flat = x.reshape(-1)
    n = flat.size // 3
    out = np.empty_like(x)
    oflat = out.reshape(-1, 3)
    if table is None:
        tab = channel_tables(m, io)
        rg_tab = [(io * tab[c, 1][:, None] * tab[c, 0][None, :]).ravel() for c in range(3)]

    def run(a: int, b: int) -> None:
        if b <= a:
            return
        if table is not None:
            k = b - a if b < n else b - a - 1  # a 4-byte read must stay inside the buffer
            idx = np.empty(b - a, np.intp)  # take() wants intp: no hidden conversion
            if k:
                u4 = np.ndarray((k,), "<u4", flat, offset=3 * a, strides=(3,))  # R | G<<8 | ...
                np.bitwise_and(u4, 0xFFFFFF, out=idx[:k], casting="unsafe")
            if k < b - a:
                r, g, bl = (int(v) for v in flat[3 * (b - 1) : 3 * b])
                idx[k] = bl << 16 | g << 8 | r
            np.take(table, idx, out=oflat[a:b].view("V3").reshape(-1))
            return
        rg = np.ndarray((b - a,), "<u2", flat, offset=3 * a, strides=(3,)).astype(np.intp)
        blue = flat[3 * a + 2 : 3 * b : 3].astype(np.intp)  # G*256 + R and B, reused below
        v = np.empty(b - a, np.float32)
        w = np.empty(b - a, np.float32)
        for c in range(3):
            np.take(rg_tab[c], rg, out=v)
            np.take(tab[c, 2], blue, out=w)
            v *= w
            np.minimum(v, 255.0, out=v)
            oflat[a:b, c] = v

    chunk = 1 << 18
    bounds = [(a, min(n, a + chunk)) for a in range(0, n, chunk)]
    if threads <= 1 or len(bounds) == 1:
        for a, b in bounds:
            run(a, b)
    else:
        with cf.ThreadPoolExecutor(threads) as ex:
            list(ex.map(lambda ab: run(*ab), bounds))
    return out
