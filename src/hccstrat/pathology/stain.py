"""Stain normalisation (Macenko, Reinhard) and stain augmentation, batched.

All three work on batches of RGB ``uint8`` tiles, given either as numpy arrays
``(B, H, W, 3)`` or torch tensors of the same layout (a single ``(H, W, 3)`` image is
accepted too); the output has the input's type. The arithmetic runs in torch (CPU or
GPU), vectorised over the whole batch: per-tile stain vectors, percentiles and
least-squares solves are computed for all tiles at once.

Conventions follow torchstain (and the original Macenko code): optical density
``OD = -log((I + 1) / Io)``, transparent pixels are those with OD < ``beta`` in any
channel, stain angles at the ``alpha`` / ``100 - alpha`` percentiles, concentrations
scaled by their 99th percentile, output truncated to ``uint8``. The test suite checks
agreement with torchstain's output.
"""

from __future__ import annotations

from typing import Any

import numpy as np

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

    Attributes
    ----------
    stain_matrix_ : ndarray (3, 2)
        Target H and E OD vectors (columns); defaults to the reference of the original
        implementation until :meth:`fit` is called.
    max_conc_ : ndarray (2,)
        Target 99th-percentile concentrations.
    """

    def __init__(
        self, io: float = 240.0, alpha: float = 1.0, beta: float = 0.15, device: str | None = None
    ) -> None:
        self.io = io
        self.alpha = alpha
        self.beta = beta
        self.device = device
        self.stain_matrix_ = np.array([[0.5626, 0.2159], [0.7201, 0.8012], [0.4062, 0.5581]])
        self.max_conc_ = np.array([1.9705, 1.0308])

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
        conc = torch.linalg.pinv(he) @ od.transpose(1, 2)  # (B, 2, N) least squares
        max_c = torch.quantile(conc.double(), 0.99, dim=2).to(od.dtype)  # (B, 2)
        return he, conc, max_c

    def fit(self, target) -> MacenkoNormalizer:
        """Estimate the target stain matrix and concentrations from one reference image."""
        t, _, _ = _as_batch(target)
        if self.device:
            t = t.to(self.device)
        he, _, max_c = self._estimate(self._od(t))
        self.stain_matrix_ = he[0].cpu().numpy().astype(np.float64)
        self.max_conc_ = max_c[0].cpu().numpy().astype(np.float64)
        return self

    def transform(self, images, *, return_stains: bool = False):
        """Normalise images (batch or single) to the fitted target.

        Parameters
        ----------
        images : ndarray or tensor, uint8, (B, H, W, 3) or (H, W, 3)
        return_stains : bool
            Also return the H-only and E-only images.
        """
        import torch

        t, is_np, single = _as_batch(images)
        if self.device:
            t = t.to(self.device)
        b, hgt, wid, _ = t.shape
        od = self._od(t)
        _, conc, max_c = self._estimate(od)
        ref = torch.as_tensor(self.stain_matrix_, dtype=od.dtype, device=od.device)
        ref_max = torch.as_tensor(self.max_conc_, dtype=od.dtype, device=od.device)
        conc = conc * (ref_max / max_c).unsqueeze(-1)
        out = self._to_rgb(ref @ conc, b, hgt, wid)
        result = _restore(out, is_np, single)
        if not return_stains:
            return result
        h_img = self._to_rgb(ref[:, :1] @ conc[:, :1], b, hgt, wid)
        e_img = self._to_rgb(ref[:, 1:] @ conc[:, 1:], b, hgt, wid)
        return result, _restore(h_img, is_np, single), _restore(e_img, is_np, single)

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
