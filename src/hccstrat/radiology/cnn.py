"""MONAI 3-D CNN encoder over the 4-channel (4-phase) tumour crop.

:class:`TumourCNN` maps a ``[B, 4, D, H, W]`` crop (non-contrast, arterial, portal
venous, delayed; normalised as in :mod:`hccstrat.radiology.normalise`) and a
``[B, 4]`` channel-present mask to an embedding ``[B, out_dim]``. Missing phases are
zero-filled and the mask is concatenated to the pooled features, so the PRE model
can train it end to end with missing phases. :func:`load_crop` reads a preprocessed
study's crop as a float32 array of fixed size.
"""

from __future__ import annotations

from collections.abc import Sequence
from pathlib import Path

import numpy as np

__all__ = ["CROP_PHASES", "TumourCNN", "load_crop"]

CROP_PHASES = ("pre", "arterial", "portal", "delayed")


def load_crop(study, *, size: Sequence[int] = (32, 64, 64),
              phases: Sequence[str] = CROP_PHASES) -> tuple[np.ndarray, np.ndarray]:
    """4-phase tumour crop resized to ``size`` (D, H, W) and the channel-present mask.

    Parameters
    ----------
    study : PreprocessedStudy or path-like
        A preprocessed study (its ``crop/`` folder).
    size : (D, H, W)
        Output size; the crop is resampled (trilinear) to it.

    Returns
    -------
    crop : ndarray, float32, shape (len(phases), D, H, W)
        Missing phases are zeros.
    present : ndarray, bool, shape (len(phases),)
    """
    import SimpleITK as sitk
    from scipy.ndimage import zoom

    from hccstrat.radiology.preprocess import PreprocessedStudy, load_preprocessed

    pre = study if isinstance(study, PreprocessedStudy) else load_preprocessed(Path(study))
    out = np.zeros((len(phases), *size), np.float32)
    present = np.zeros(len(phases), bool)
    for c, ph in enumerate(phases):
        path = pre.crop.get(ph)
        if path is None or not Path(path).is_file():
            continue
        a = sitk.GetArrayFromImage(sitk.ReadImage(str(path))).astype(np.float32)
        factors = [t / s for t, s in zip(size, a.shape, strict=True)]
        out[c] = zoom(a, factors, order=1)[: size[0], : size[1], : size[2]]
        present[c] = True
    return out, present


def _torch_module():
    import torch
    from monai.networks.blocks import ResidualUnit

    class _TumourCNN(torch.nn.Module):
        def __init__(self, in_channels: int = 4, out_dim: int = 64,
                     channels: Sequence[int] = (16, 32, 64), dropout: float = 0.1) -> None:
            super().__init__()
            self.in_channels = in_channels
            self.out_dim = out_dim
            layers = []
            c_in = in_channels
            for c in channels:
                layers.append(ResidualUnit(spatial_dims=3, in_channels=c_in, out_channels=c,
                                           strides=2, subunits=2, norm="INSTANCE",
                                           dropout=dropout))
                c_in = c
            self.features = torch.nn.Sequential(*layers)
            self.pool = torch.nn.AdaptiveAvgPool3d(1)
            self.head = torch.nn.Sequential(
                torch.nn.Linear(c_in + in_channels, out_dim), torch.nn.ReLU(),
                torch.nn.Linear(out_dim, out_dim),
            )

        def forward(self, x, present=None):
            if present is None:
                present = torch.ones(x.shape[0], self.in_channels, device=x.device)
            present = present.to(x.dtype)
            x = x * present[:, :, None, None, None]
            h = self.pool(self.features(x)).flatten(1)
            return self.head(torch.cat([h, present], dim=1))

    return _TumourCNN


def TumourCNN(in_channels: int = 4, out_dim: int = 64, channels: Sequence[int] = (16, 32, 64),
              dropout: float = 0.1):
    """Build the encoder (a ``torch.nn.Module``): residual 3-D CNN from MONAI blocks.

    ``forward(x, present=None)``: ``x`` ``[B, in_channels, D, H, W]``, ``present``
    ``[B, in_channels]`` (1 = phase available); returns ``[B, out_dim]``.
    """
    try:
        cls = _torch_module()
    except ImportError as err:  # pragma: no cover - torch/monai are project deps
        from hccstrat.exceptions import DependencyMissingError

        raise DependencyMissingError("monai", "imaging") from err
    return cls(in_channels=in_channels, out_dim=out_dim, channels=channels, dropout=dropout)
