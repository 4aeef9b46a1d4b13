"""Stain normalisation (Macenko, Reinhard) and stain augmentation, batched.

All three work on batches of RGB ``uint8`` tiles, given either as numpy arrays
``(B, H, W, 3)`` or torch tensors of the same layout (a single ``(H, W, 3)`` image is
accepted too); the output has the input's type.

Macenko has two modes:

``"exact"`` (default for a single image)
    Per-tile stain vectors and concentration percentiles, computed in torch for all
    tiles at once. Conventions follow torchstain (and the original Macenko code):
    optical density ``OD = -log((I + 1) / Io)``, transparent pixels are those with
    OD < ``beta`` in any channel, stain angles at the ``alpha`` / ``100 - alpha``
    percentiles, concentrations scaled by their 99th percentile, output truncated to
    ``uint8``. The test suite checks agreement with torchstain's output.
``"fast"`` (default for a batch of two or more tiles)
    One source stain matrix and one 99th-percentile pair for the whole batch (or for
    the whole slide, after :meth:`MacenkoNormalizer.fit_source`), estimated by the
    same rules on a random subsample of the pixels. Normalisation is then a fixed
    linear map in OD space, ``Io · exp(-M · OD)``, which factorises per channel:
    ``Io · Π_j ((I_j + 1) / Io) ** M_cj`` — so it is applied with lookup tables (a
    65,536-entry table per output channel, or, once per slide, a full 24-bit colour
    table), with no per-pixel exp or percentile. On one image the two modes differ by
    the sampling only: about a grey level on average (tested on the fixture images;
    with ``max_pixels`` >= the pixel count they agree to rounding). On a batch of
    tiles they differ by design: "exact" stretches every tile to the target's
    concentrations on its own (so a pale tile, or one with a single stain, is
    recoloured on a shaky estimate), "fast" applies one slide-level correction to all
    tiles, keeping their differences — typically several grey levels apart on small
    tiles. Use ``method="exact"`` to reproduce torchstain tile by tile.
"""

from __future__ import annotations

import os
from typing import Any

import numpy as np

from hccstrat.pathology._stain_fast import apply_od_map, colour_table, macenko_stains

__all__ = ["MacenkoNormalizer", "ReinhardNormalizer", "StainAugmenter", "lab_to_rgb", "rgb_to_lab"]

_RGB2XYZ = np.array(
    [[0.412453, 0.357580, 0.180423], [0.212671, 0.715160, 0.072169], [0.019334, 0.119193, 0.950227]]
)
_WHITE = np.array([0.95047, 1.0, 1.08883])
_HED = np.array([[0.65, 0.70, 0.29], [0.07, 0.99, 0.11], [0.27, 0.57, 0.78]])


def _as_batch(x: Any):
    """(torch uint8 tensor (B, H, W, 3), was_numpy, was_single)."""
    import torch

    is_np = isinstance(x, np.ndarray)
    if is_np and not (x.flags.writeable and x.flags.c_contiguous):
        x = np.array(x)
    t = torch.from_numpy(x) if is_np else x
    single = t.ndim == 3
    if single:
        t = t[None]
    if t.ndim != 4 or t.shape[-1] != 3:
        raise ValueError(f"expected RGB images (B, H, W, 3) or (H, W, 3), got {tuple(t.shape)}")
    return t, is_np, single


def _restore(t, is_np: bool, single: bool):
    if single:
        t = t[0]
    return t.cpu().numpy() if is_np else t


class MacenkoNormalizer:
    """Macenko et al. (ISBI 2009) stain normalisation, batched.

    Parameters
    ----------
    io : float
        Transmitted light intensity ``Io``.
    alpha : float
        Percentile for the robust extreme stain angles.
    beta : float
        OD threshold below which pixels count as transparent.
    device : str or None
        Torch device for the arithmetic (default: the input's, or CPU for numpy).
    max_pixels : int
        Pixels sampled (at random, with ``seed``) for the pooled stain estimate of the
        ``"fast"`` mode and :meth:`fit_source`.
    seed : int
        Seed of that sample.
    n_threads : int or None
        Threads of the ``"fast"`` lookup kernels (default: one per CPU, at most 4).

    Attributes
    ----------
    stain_matrix_ : ndarray (3, 2)
        Target H and E OD vectors (columns); defaults to the reference of the original
        implementation until :meth:`fit` is called.
    max_conc_ : ndarray (2,)
        Target 99th-percentile concentrations.
    source_stain_matrix_, source_max_conc_ : ndarray or None
        Source stains fixed by :meth:`fit_source` (``None`` until then).
    """

    def __init__(
        self,
        io: float = 240.0,
        alpha: float = 1.0,
        beta: float = 0.15,
        device: str | None = None,
        max_pixels: int = 2**16,
        seed: int = 0,
        n_threads: int | None = None,
    ) -> None:
        self.io = io
        self.alpha = alpha
        self.beta = beta
        self.device = device
        self.max_pixels = max_pixels
        self.seed = seed
        self.n_threads = n_threads
        self.stain_matrix_ = np.array([[0.5626, 0.2159], [0.7201, 0.8012], [0.4062, 0.5581]])
        self.max_conc_ = np.array([1.9705, 1.0308])
        self.source_stain_matrix_: np.ndarray | None = None
        self.source_max_conc_: np.ndarray | None = None
        self._lut3: tuple[bytes, np.ndarray] | None = None  # (key, 24-bit colour table)

    def _od(self, t):
        import torch

        lut = -torch.log((torch.arange(256, dtype=torch.float32, device=t.device) + 1) / self.io)
        return lut[t.reshape(t.shape[0], -1, 3).long()]  # (B, N, 3)

    def _estimate(self, od):
        """Per-image stain matrices (B, 3, 2), concentrations (B, 2, N), 99th pct (B, 2)."""
        import torch

        mask = (od >= self.beta).all(-1)  # (B, N)
        n = mask.sum(1).clamp(min=2).to(od.dtype)
        m = mask.unsqueeze(-1).to(od.dtype)
        mean = (od * m).sum(1) / n[:, None]
        xc = (od - mean[:, None, :]) * m
        cov = xc.transpose(1, 2) @ xc / (n[:, None, None] - 1)
        _, vec = torch.linalg.eigh(cov.double())
        vec = vec[:, :, 1:3].to(od.dtype)  # two largest eigenvalues
        proj = od @ vec
        phi = torch.atan2(proj[..., 1], proj[..., 0])
        phi = torch.where(mask, phi, torch.full_like(phi, float("nan")))
        q = torch.tensor(
            [self.alpha / 100, 1 - self.alpha / 100], dtype=phi.dtype, device=phi.device
        )
        lo, hi = torch.nanquantile(phi.double(), q.double(), dim=1).to(od.dtype)  # (B,), (B,)
        v_min = (vec @ torch.stack([torch.cos(lo), torch.sin(lo)], 1).unsqueeze(-1))[..., 0]
        v_max = (vec @ torch.stack([torch.cos(hi), torch.sin(hi)], 1).unsqueeze(-1))[..., 0]
        first = (v_min[:, 0] > v_max[:, 0]).unsqueeze(-1)
        h = torch.where(first, v_min, v_max)
        e = torch.where(first, v_max, v_min)
        he = torch.stack([h, e], 2)  # (B, 3, 2)
        # a tile without stained pixels (glass) has no stain angles: give it the target's
        # vectors so the batch has no NaN (the caller hands such tiles back unchanged)
        blank = ~torch.isfinite(he).all(2).all(1)
        if bool(blank.any()):
            ref = torch.as_tensor(self.stain_matrix_, dtype=he.dtype, device=he.device)
            he = torch.where(blank[:, None, None], ref, he)
        conc = torch.linalg.pinv(he) @ od.transpose(1, 2)  # (B, 2, N) least squares
        max_c = torch.quantile(conc.double(), 0.99, dim=2).to(od.dtype)  # (B, 2)
        return he, conc, max_c

    def _blank(self, od):
        """Tiles (B,) with fewer than 3 stained pixels: no stain vectors, left as they are."""
        return (od >= self.beta).all(-1).sum(1) < 3

    def fit(self, target) -> MacenkoNormalizer:
        """Estimate the target stain matrix and concentrations from one reference image."""
        t, _, _ = _as_batch(target)
        if self.device:
            t = t.to(self.device)
        he, _, max_c = self._estimate(self._od(t))
        self.stain_matrix_ = he[0].cpu().numpy().astype(np.float64)
        self.max_conc_ = max_c[0].cpu().numpy().astype(np.float64)
        return self

    def estimate_stains(self, images) -> tuple[np.ndarray, np.ndarray]:
        """Pooled source stains of a set of tiles (e.g. of one slide).

        The Macenko rules of the ``"exact"`` mode applied to ``max_pixels`` pixels drawn
        at random (seeded) from all the tiles together.

        Parameters
        ----------
        images : ndarray or tensor, uint8, (B, H, W, 3) or (H, W, 3)

        Returns
        -------
        stain_matrix : ndarray (3, 2)
            H and E OD vectors (columns).
        max_conc : ndarray (2,)
            99th-percentile H and E concentrations.

        Raises
        ------
        ValueError
            When the sampled pixels hold no stain (glass only).
        """
        t, _, _ = _as_batch(images)
        if t.device.type != "cpu":
            t = t.cpu()
        flat = np.ascontiguousarray(t.numpy()).reshape(-1)
        n = flat.size // 3
        if n > self.max_pixels:
            pick = 3 * np.random.default_rng(self.seed).integers(0, n, self.max_pixels)
            rgb = np.stack([np.take(flat, pick + k) for k in range(3)])  # (3, K)
        else:
            rgb = flat.reshape(-1, 3).T
        found = macenko_stains(rgb, self.io, self.alpha, self.beta)
        if found is None:
            raise ValueError(
                f"no stained pixels among the {rgb.shape[1]} sampled: cannot estimate stain "
                "vectors (glass only?)"
            )
        return found

    def fit_source(self, images) -> MacenkoNormalizer:
        """Fix the source stains (e.g. once per slide, from a sample of its tiles).

        Later ``"fast"`` transforms use them instead of a per-batch estimate, and keep
        a 24-bit colour table, so normalising is a single lookup per pixel.
        """
        self.source_stain_matrix_, self.source_max_conc_ = self.estimate_stains(images)
        return self

    def _linear_maps(self, he: np.ndarray, max_c: np.ndarray, stains: bool) -> list[np.ndarray]:
        """OD-space maps ``M`` (3, 3): output OD = M @ input OD (image, then H, E)."""
        scale = np.asarray(self.max_conc_, float) / np.asarray(max_c, float)
        proj = scale[:, None] * np.linalg.pinv(np.asarray(he, float))  # (2, 3)
        ref = np.asarray(self.stain_matrix_, float)
        maps = [ref @ proj]
        if stains:
            maps += [ref[:, :1] @ proj[:1], ref[:, 1:] @ proj[1:]]
        return maps

    def transform(self, images, *, method: str = "auto", return_stains: bool = False):
        """Normalise images (batch or single) to the fitted target.

        Parameters
        ----------
        images : ndarray or tensor, uint8, (B, H, W, 3) or (H, W, 3)
        method : {"auto", "exact", "fast"}
            ``"exact"``: per-tile stains (torchstain's results); ``"fast"``: stains
            pooled over the batch, or those of :meth:`fit_source` when set (see the
            module docstring); ``"auto"``: ``"exact"`` for a single image, ``"fast"``
            for a batch of two or more.
        return_stains : bool
            Also return the H-only and E-only images.
        """
        if method not in ("auto", "exact", "fast"):
            raise ValueError(f"method must be 'auto', 'exact' or 'fast', got {method!r}")
        t, is_np, single = _as_batch(images)
        if method == "auto":
            method = "fast" if t.shape[0] > 1 else "exact"
        if method == "fast":
            return self._transform_fast(t, is_np, single, return_stains)
        return self._transform_exact(t, is_np, single, return_stains)

    def _transform_fast(self, t, is_np: bool, single: bool, return_stains: bool):
        import torch

        if self.source_stain_matrix_ is not None:
            he, max_c = self.source_stain_matrix_, self.source_max_conc_
        else:
            try:
                he, max_c = self.estimate_stains(t)
            except ValueError:  # glass only: nothing to normalise, hand the tiles back
                same = _restore(t.clone(), is_np, single)
                return same if not return_stains else (same, same, same)
        maps = self._linear_maps(he, max_c, return_stains)
        if self.device:
            t = t.to(self.device)
        if t.device.type != "cpu":  # accelerator: stay on the device
            outs = [self._apply_torch(t, m) for m in maps]
        else:
            x = t.numpy()
            table = self.source_stain_matrix_ is not None and not return_stains
            outs = [
                torch.from_numpy(
                    apply_od_map(x, m, self.io, self._table(m) if table else None, self._threads())
                )
                for m in maps
            ]
        res = [_restore(o, is_np, single) for o in outs]
        return res[0] if not return_stains else tuple(res)

    def _threads(self) -> int:
        return self.n_threads or min(4, os.cpu_count() or 1)

    def _table(self, m: np.ndarray) -> np.ndarray:
        """24-bit colour table of the map ``m`` (built once per source/target pair)."""
        key = np.concatenate([m.ravel(), [self.io]]).tobytes()
        if self._lut3 is None or self._lut3[0] != key:
            self._lut3 = (key, colour_table(m, self.io, self._threads()))
        return self._lut3[1]

    def _apply_torch(self, t, m: np.ndarray):
        import torch

        b, hgt, wid, _ = t.shape
        od = self._od(t)  # (B, N, 3)
        mt = torch.as_tensor(m, dtype=od.dtype, device=od.device)
        return self._to_rgb((od @ mt.T).transpose(1, 2), b, hgt, wid)

    def _transform_exact(self, t, is_np: bool, single: bool, return_stains: bool):
        import torch

        if self.device:
            t = t.to(self.device)
        b, hgt, wid, _ = t.shape
        od = self._od(t)
        _, conc, max_c = self._estimate(od)
        ref = torch.as_tensor(self.stain_matrix_, dtype=od.dtype, device=od.device)
        ref_max = torch.as_tensor(self.max_conc_, dtype=od.dtype, device=od.device)
        conc = conc * (ref_max / max_c).unsqueeze(-1)
        blank = self._blank(od)[:, None, None, None]
        outs = [ref @ conc]
        if return_stains:
            outs += [ref[:, :1] @ conc[:, :1], ref[:, 1:] @ conc[:, 1:]]
        res = [
            _restore(torch.where(blank, t, self._to_rgb(o, b, hgt, wid)), is_np, single)
            for o in outs
        ]
        return res[0] if not return_stains else tuple(res)

    def _to_rgb(self, od_t, b, hgt, wid):
        import torch

        img = torch.clamp(self.io * torch.exp(-od_t), max=255.0)  # (B, 3, N)
        return img.transpose(1, 2).reshape(b, hgt, wid, 3).to(torch.uint8)

    def fit_transform(self, target, images):
        return self.fit(target).transform(images)


def rgb_to_lab(rgb):
    """sRGB in [0, 1] (torch, ``(..., 3)``) to CIE L*a*b* (D65)."""
    import torch

    m = torch.as_tensor(_RGB2XYZ, dtype=rgb.dtype, device=rgb.device)
    lin = torch.where(rgb > 0.04045, ((rgb + 0.055) / 1.055) ** 2.4, rgb / 12.92)
    xyz = (lin @ m.T) / torch.as_tensor(_WHITE, dtype=rgb.dtype, device=rgb.device)
    f = torch.where(xyz > 0.008856, torch.pow(xyz.clamp(min=1e-12), 1 / 3), 7.787 * xyz + 16 / 116)
    ell = 116 * f[..., 1] - 16
    a = 500 * (f[..., 0] - f[..., 1])
    bb = 200 * (f[..., 1] - f[..., 2])
    return torch.stack([ell, a, bb], -1)


def lab_to_rgb(lab):
    """CIE L*a*b* (torch, ``(..., 3)``) to sRGB in [0, 1], clipped."""
    import torch

    y = (lab[..., 0] + 16) / 116
    x = lab[..., 1] / 500 + y
    z = y - lab[..., 2] / 200
    xyz = torch.stack([x, y, z], -1)
    xyz = torch.where(xyz > 0.2068966, xyz**3, (xyz - 16 / 116) / 7.787)
    xyz = xyz * torch.as_tensor(_WHITE, dtype=lab.dtype, device=lab.device)
    minv = torch.as_tensor(np.linalg.inv(_RGB2XYZ), dtype=lab.dtype, device=lab.device)
    rgb = xyz @ minv.T
    rgb = torch.where(
        rgb > 0.0031308, 1.055 * torch.pow(rgb.clamp(min=1e-12), 1 / 2.4) - 0.055, rgb * 12.92
    )
    return rgb.clamp(0, 1)


class ReinhardNormalizer:
    """Reinhard et al. (2001) colour transfer in L*a*b*, batched (per-tile statistics).

    Attributes
    ----------
    target_means_, target_stds_ : ndarray (3,)
    """

    def __init__(self, device: str | None = None) -> None:
        self.device = device

    @staticmethod
    def _lab(t):
        import torch

        return rgb_to_lab(t.to(torch.float32) / 255.0).reshape(t.shape[0], -1, 3)

    def fit(self, target) -> ReinhardNormalizer:
        """Store the L*a*b* mean and standard deviation of a reference image."""
        t, _, _ = _as_batch(target)
        lab = self._lab(t.to(self.device) if self.device else t)
        self.target_means_ = lab.mean(1)[0].cpu().numpy()
        self.target_stds_ = lab.std(1, unbiased=False)[0].cpu().numpy()
        return self

    def transform(self, images):
        """Match each image's L*a*b* mean/std to the target's."""
        import torch

        t, is_np, single = _as_batch(images)
        if self.device:
            t = t.to(self.device)
        b, h, w, _ = t.shape
        lab = self._lab(t)
        mu = lab.mean(1, keepdim=True)
        sd = lab.std(1, unbiased=False, keepdim=True).clamp(min=1e-6)
        tm = torch.as_tensor(self.target_means_, dtype=lab.dtype, device=lab.device)
        ts = torch.as_tensor(self.target_stds_, dtype=lab.dtype, device=lab.device)
        rgb = lab_to_rgb((lab - mu) / sd * ts + tm)
        return _restore((rgb * 255).to(torch.uint8).reshape(b, h, w, 3), is_np, single)


class StainAugmenter:
    """Random H&E stain jitter for training (Tellez et al. 2018, HED space).

    Each tile's haematoxylin, eosin and residual concentrations are scaled by
    ``1 + U(-sigma_alpha, sigma_alpha)`` and shifted by ``U(-sigma_beta, sigma_beta)``.

    Parameters
    ----------
    sigma_alpha, sigma_beta : float
    seed : int
        Seed of the augmenter's own random generator.
    """

    def __init__(self, sigma_alpha: float = 0.1, sigma_beta: float = 0.05, seed: int = 0) -> None:
        self.sigma_alpha = sigma_alpha
        self.sigma_beta = sigma_beta
        self.seed = seed
        self._gen = None

    def __call__(self, images):
        """Augment a batch (or one image); returns the input's type."""
        import torch

        t, is_np, single = _as_batch(images)
        if self._gen is None:
            self._gen = torch.Generator().manual_seed(self.seed)
        b, h, w, _ = t.shape
        m = torch.as_tensor(_HED / np.linalg.norm(_HED, axis=1, keepdims=True), dtype=torch.float32)
        od = -torch.log((t.to(torch.float32).reshape(b, -1, 3) + 1) / 256)
        conc = od @ torch.linalg.inv(m)
        a = 1 + (torch.rand(b, 1, 3, generator=self._gen) * 2 - 1) * self.sigma_alpha
        s = (torch.rand(b, 1, 3, generator=self._gen) * 2 - 1) * self.sigma_beta
        out = 256 * torch.exp(-((conc * a + s) @ m)) - 1
        out = out.clamp(0, 255).round().to(torch.uint8).reshape(b, h, w, 3)
        return _restore(out.to(t.device), is_np, single)
