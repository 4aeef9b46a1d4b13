"""The 3-D CNN of :func:`hccstrat.radiology.cnn.TumourCNN` (imports torch and MONAI).

Kept in its own module, at module level, so that models holding it can be pickled
(:func:`hccstrat.models.save_model`) and :mod:`hccstrat.radiology.cnn` stays importable
without torch.
"""

from __future__ import annotations

from collections.abc import Sequence

import torch
from monai.networks.blocks import ResidualUnit

__all__ = ["TumourCNNNet"]


class TumourCNNNet(torch.nn.Module):
    """Residual 3-D CNN over a ``[B, C, D, H, W]`` crop with a phase-present mask.

    Parameters
    ----------
    in_channels : int
        Phases (4).
    out_dim : int
        Embedding size.
    channels : sequence of int
        Channels of the residual stages (each halves the resolution).
    dropout : float
        Dropout inside the residual units.
    """

    def __init__(
        self,
        in_channels: int = 4,
        out_dim: int = 64,
        channels: Sequence[int] = (16, 32, 64),
        dropout: float = 0.1,
    ) -> None:
        super().__init__()
        self.in_channels = in_channels
        self.out_dim = out_dim
        layers = []
        c_in = in_channels
        for c in channels:
            layers.append(
                ResidualUnit(
                    spatial_dims=3, in_channels=c_in, out_channels=c, strides=2, subunits=2,
                    norm="INSTANCE", dropout=dropout,
                )
            )
            c_in = c
        self.features = torch.nn.Sequential(*layers)
        self.pool = torch.nn.AdaptiveAvgPool3d(1)
        self.head = torch.nn.Sequential(
            torch.nn.Linear(c_in + in_channels, out_dim),
            torch.nn.ReLU(),
            torch.nn.Linear(out_dim, out_dim),
        )

    def forward(self, x: torch.Tensor, present: torch.Tensor | None = None) -> torch.Tensor:
        """Embedding ``[B, out_dim]``; missing phases (``present`` 0) are zeroed."""
        if present is None:
            present = torch.ones(x.shape[0], self.in_channels, device=x.device)
        present = present.to(x.dtype)
        x = x * present[:, :, None, None, None]
        h = self.pool(self.features(x)).flatten(1)
        return self.head(torch.cat([h, present], dim=1))
