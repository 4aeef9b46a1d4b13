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


def TumourCNN(in_channels: int = 4, out_dim: int = 64, channels: Sequence[int] = (16, 32, 64),
              dropout: float = 0.1):
    """Build the encoder (a ``torch.nn.Module``): residual 3-D CNN from MONAI blocks.

    ``forward(x, present=None)``: ``x`` ``[B, in_channels, D, H, W]``, ``present``
    ``[B, in_channels]`` (1 = phase available); returns ``[B, out_dim]``.
    """
    try:
        from hccstrat.radiology._cnn_net import TumourCNNNet
    except ImportError as err:  # pragma: no cover - torch/monai are project deps
        from hccstrat.exceptions import DependencyMissingError

        raise DependencyMissingError("monai", "imaging") from err
    return TumourCNNNet(
        in_channels=in_channels, out_dim=out_dim, channels=channels, dropout=dropout
    )
