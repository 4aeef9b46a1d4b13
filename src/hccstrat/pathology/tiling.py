"""Tiling at a target resolution: grid over tissue, then fast block reading.

:func:`grid_tiles` lays a grid of ``patch_size`` px tiles at ``target_mpp`` over the
tissue mask and keeps tiles with enough tissue; coordinates are level-0 pixels
(top-left), as in CLAM/TRIDENT. :func:`iter_tile_batches` reads them from the deepest
pyramid level that is at least as sharp as the target: tiles are read in blocks of
``block × block`` neighbours with one region read each, resized once per block when
the target is not a pyramid level, cut, and handed out in batches. For tiled
TIFF/SVS files the region comes from
:meth:`hccstrat.io.wsi.SlideReader.read_region_level`, which decodes the stored JPEG
tiles directly; block sizes are chosen so that block edges fall on stored-tile edges,
so every stored tile is decoded once. Threads overlap decoding (the decoders release
the GIL); memory stays bounded whatever the number of tiles.
"""

from __future__ import annotations

import collections
import concurrent.futures as cf
from collections.abc import Iterator
from dataclasses import dataclass

import numpy as np

from hccstrat.io.wsi import NoTissueError, SlideTooSmallError

__all__ = ["TileGrid", "grid_tiles", "iter_tile_batches", "level0_size", "read_tiles"]


@dataclass
class TileGrid:
    """Tile coordinates of one slide.

    Attributes
    ----------
    coords : ndarray of int64, (N, 2)
        Level-0 (x, y) of each tile's top-left corner.
    tissue_fraction : ndarray of float32, (N,)
    patch_size : int
        Tile side at ``target_mpp``.
    patch_size_level0 : int
        Tile side in level-0 pixels.
    stride_level0 : int
    target_mpp, mpp : float
        Target and slide level-0 µm/px.
    read_level : int
        Pyramid level the pixels are read from.
    read_downsample : float
        Downsample of ``read_level``.
    """

    coords: np.ndarray
    tissue_fraction: np.ndarray
    patch_size: int
    patch_size_level0: int
    stride_level0: int
    target_mpp: float
    mpp: float
    read_level: int
    read_downsample: float

    def __len__(self) -> int:
        return len(self.coords)

    def attrs(self) -> dict:
        """HDF5 attributes (CLAM/TRIDENT names)."""
        return {
            "patch_size": self.patch_size,
            "patch_size_level0": self.patch_size_level0,
            "stride_level0": self.stride_level0,
            "target_mpp": self.target_mpp,
            "mpp": self.mpp,
            "patch_level": self.read_level,
            "downsample": self.read_downsample,
        }


def level0_size(pixels: int, target_mpp: float, mpp: float) -> int:
    """Level-0 pixels spanned by ``pixels`` pixels at ``target_mpp`` on a slide of ``mpp``."""
    return round(pixels * target_mpp / mpp)


def grid_tiles(
    reader,
    tissue,
    *,
    target_mpp: float = 0.5,
    patch_size: int = 224,
    overlap: int = 0,
    min_tissue: float = 0.5,
) -> TileGrid:
    """Tiles of ``patch_size`` px at ``target_mpp`` that hold at least ``min_tissue`` tissue.

    Parameters
    ----------
    reader : hccstrat.io.wsi.SlideReader
    tissue : hccstrat.pathology.tissue.TissueMask
    target_mpp : float
        Tile resolution in µm/px.
    patch_size : int
        Tile side in pixels at ``target_mpp``.
    overlap : int
        Overlap between neighbours in pixels at ``target_mpp``.
    min_tissue : float
        Lowest tissue share (from the mask) of a kept tile.

    Raises
    ------
    SlideTooSmallError
        The slide is smaller than one tile.
    NoTissueError
        No tile holds enough tissue.
    """
    mpp = reader.mpp
    W, H = reader.dimensions
    p0 = level0_size(patch_size, target_mpp, mpp)
    s0 = level0_size(patch_size - overlap, target_mpp, mpp)
    if p0 < 1 or s0 < 1:
        raise SlideTooSmallError(
            f"invalid tile geometry: patch_size={patch_size}, overlap={overlap}",
            hint="use overlap < patch_size",
        )
    if W < p0 or H < p0:
        raise SlideTooSmallError(
            f"{reader.path.name} is {W}x{H} px at {mpp:.3f} µm/px, smaller than one "
            f"{patch_size}-px tile at {target_mpp} µm/px ({p0} level-0 px)",
            hint="use a smaller --tile-size or a coarser --target-mpp, or check --mpp",
        )
    xs = np.arange(0, W - p0 + 1, s0, dtype=np.int64)
    ys = np.arange(0, H - p0 + 1, s0, dtype=np.int64)
    m = tissue.mask.astype(np.float64)
    sat = np.zeros((m.shape[0] + 1, m.shape[1] + 1))
    sat[1:, 1:] = m.cumsum(0).cumsum(1)
    ds = tissue.downsample

    def idx(v, n):
        return np.clip(np.round(v / ds).astype(np.int64), 0, n)

    x0, x1 = idx(xs, m.shape[1]), idx(xs + p0, m.shape[1])
    y0, y1 = idx(ys, m.shape[0]), idx(ys + p0, m.shape[0])
    x1 = np.maximum(x1, np.minimum(x0 + 1, m.shape[1]))
    y1 = np.maximum(y1, np.minimum(y0 + 1, m.shape[0]))
    tot = sat[y1][:, x1] - sat[y0][:, x1] - sat[y1][:, x0] + sat[y0][:, x0]
    area = np.maximum((y1 - y0)[:, None] * (x1 - x0)[None, :], 1)
    frac = (tot / area).astype(np.float32)
    keep = frac >= min_tissue
    if not keep.any():
        raise NoTissueError(
            f"no {patch_size}-px tile of {reader.path.name} has >= {min_tissue:.0%} tissue "
            f"(tissue covers {tissue.tissue_fraction:.1%} of the slide)",
            hint="check the scan (blank or over-exposed glass?) or lower --min-tissue",
        )
    jy, jx = np.nonzero(keep)
    coords = np.stack([xs[jx], ys[jy]], 1)
    level = reader.best_level_for_downsample(p0 / patch_size)
    return TileGrid(
        coords=coords,
        tissue_fraction=frac[jy, jx],
        patch_size=patch_size,
        patch_size_level0=p0,
        stride_level0=s0,
        target_mpp=target_mpp,
        mpp=mpp,
        read_level=level,
        read_downsample=float(reader.level_downsamples[level]),
    )


def _blocks(grid: TileGrid, block: int) -> list[np.ndarray]:
    """Group tile indices into square neighbourhoods of ``block × block`` grid cells."""
    cell = grid.coords // (grid.stride_level0 * block)
    key = cell[:, 1] * (int(cell[:, 0].max()) + 1) + cell[:, 0]
    order = np.argsort(key, kind="stable")
    _, starts = np.unique(key[order], return_index=True)
    return np.split(order, starts[1:])


def _block_size(reader, grid: TileGrid, default: int) -> int:
    """Grid cells per block side, chosen so block edges fall on stored-tile edges.

    Blocks whose edges coincide with the edges of the stored (JPEG) tiles never share
    a stored tile, so each is decoded exactly once (e.g. 224-px tiles over 256-px
    stored tiles: 8 cells = 7 stored tiles). Without such a size within 4–16 cells, or
    without direct tile access, ``default`` is kept.
    """
    size = getattr(reader, "stored_tile_size", lambda level: None)(grid.read_level)
    if size is None:
        return default
    stride = grid.stride_level0 / grid.read_downsample  # read-level px
    best = default
    for b in sorted(range(4, 17), key=lambda b: abs(b - default)):
        span = b * stride
        if abs(span - round(span)) < 1e-6 and round(span) % size[0] == 0 == round(span) % size[1]:
            best = b
            break
    return best


def _read_block(reader, grid: TileGrid, idx: np.ndarray) -> np.ndarray:
    from PIL import Image

    c = grid.coords[idx]
    bx, by = int(c[:, 0].min()), int(c[:, 1].min())
    ex = int(c[:, 0].max()) + grid.patch_size_level0
    ey = int(c[:, 1].max()) + grid.patch_size_level0
    ds = grid.read_downsample
    rw, rh = max(1, round((ex - bx) / ds)), max(1, round((ey - by) / ds))
    lx, ly = bx / ds, by / ds
    if (
        abs(lx - round(lx)) < 1e-6
        and abs(ly - round(ly)) < 1e-6
        and hasattr(reader, "read_region_level")
    ):
        region = reader.read_region_level(grid.read_level, (round(lx), round(ly)), (rw, rh))
    else:  # block origin between two read-level pixels: let the backend place it
        region = reader.read_region((bx, by), grid.read_level, (rw, rh))
    scale = grid.patch_size / grid.patch_size_level0  # target px per level-0 px
    tw, th = round((ex - bx) * scale), round((ey - by) * scale)
    if (tw, th) != (rw, rh):
        region = np.asarray(
            Image.fromarray(region).resize((tw, th), Image.BILINEAR, reducing_gap=3.0)
        )
    p = grid.patch_size
    out = np.empty((len(idx), p, p, 3), np.uint8)
    ox = np.round((c[:, 0] - bx) * scale).astype(int)
    oy = np.round((c[:, 1] - by) * scale).astype(int)
    for k in range(len(idx)):
        t = region[oy[k] : oy[k] + p, ox[k] : ox[k] + p]
        if t.shape[:2] != (p, p):  # rounding at the block's far edge
            t = np.pad(t, ((0, p - t.shape[0]), (0, p - t.shape[1]), (0, 0)), mode="edge")
        out[k] = t
    return out


def _iter_blocks(reader, grid: TileGrid, blocks: list[np.ndarray], workers: int):
    """Read blocks in order, ``workers`` threads ahead of the consumer (bounded memory)."""
    if workers <= 1:
        for b in blocks:
            yield _read_block(reader, grid, b), b
        return
    with cf.ThreadPoolExecutor(workers) as ex:
        pending: collections.deque = collections.deque()
        it = iter(blocks)
        for b in it:
            pending.append((ex.submit(_read_block, reader, grid, b), b))
            if len(pending) >= 2 * workers:
                break
        try:
            while pending:
                fut, b = pending.popleft()
                nxt = next(it, None)
                if nxt is not None:
                    pending.append((ex.submit(_read_block, reader, grid, nxt), nxt))
                yield fut.result(), b
        finally:  # consumer stopped early or a read failed: drop what is queued
            for fut, _ in pending:
                fut.cancel()


def iter_tile_batches(
    reader,
    grid: TileGrid,
    *,
    batch_size: int = 64,
    block: int = 8,
    workers: int = 2,
    indices: np.ndarray | None = None,
) -> Iterator[tuple[np.ndarray, np.ndarray]]:
    """Yield ``(tiles, index)`` batches: tiles ``(B, P, P, 3)`` uint8 and their grid indices.

    Tiles come block by block (row-major over blocks), so memory stays bounded
    whatever the number of tiles: at most ``2 × workers`` blocks are in flight.

    Parameters
    ----------
    reader : hccstrat.io.wsi.SlideReader
    grid : TileGrid
    batch_size : int
    block : int
        Tiles per side of a read block (adjusted by up to a few cells so that block
        edges fall on the edges of the stored tiles when the file is read directly).
    workers : int
        Reader threads (0 or 1 reads in the calling thread).
    indices : ndarray, optional
        Subset of tiles to read (default: all).
    """
    sub = (
        grid
        if indices is None
        else TileGrid(
            **{
                **grid.__dict__,
                "coords": grid.coords[indices],
                "tissue_fraction": grid.tissue_fraction[indices],
            }
        )
    )
    base = np.arange(len(grid)) if indices is None else np.asarray(indices)
    if len(sub) == 0:
        return
    blocks = _blocks(sub, _block_size(reader, sub, block))
    p = grid.patch_size
    held_t: collections.deque = collections.deque()  # (tiles, grid indices) not yet emitted
    n_held = 0
    for tiles, b in _iter_blocks(reader, sub, blocks, workers):
        held_t.append((tiles, base[b]))
        n_held += len(b)
        while n_held >= batch_size:
            out = np.empty((batch_size, p, p, 3), np.uint8)
            out_i = np.empty(batch_size, np.int64)
            k = 0
            while k < batch_size:
                t, i = held_t.popleft()
                take = min(batch_size - k, len(t))
                out[k : k + take] = t[:take]
                out_i[k : k + take] = i[:take]
                if take < len(t):
                    held_t.appendleft((t[take:], i[take:]))
                k += take
            n_held -= batch_size
            yield out, out_i
    if n_held:
        yield (
            np.concatenate([t for t, _ in held_t]),
            np.concatenate([i for _, i in held_t]).astype(np.int64),
        )


def read_tiles(reader, grid: TileGrid, indices) -> np.ndarray:
    """Read selected tiles (in the given order) as ``(n, P, P, 3)`` uint8."""
    indices = np.asarray(indices)
    out = np.empty((len(indices), grid.patch_size, grid.patch_size, 3), np.uint8)
    pos = {int(v): k for k, v in enumerate(indices)}
    for tiles, idx in iter_tile_batches(
        reader, grid, indices=indices, workers=1, batch_size=max(1, len(indices))
    ):
        for t, i in zip(tiles, idx, strict=True):
            out[pos[int(i)]] = t
    return out
