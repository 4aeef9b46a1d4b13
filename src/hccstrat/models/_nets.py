"""PyTorch networks and survival losses (imported lazily by the deep models).

- :class:`PreNet`: the MRI pipeline's residual 3D CNN
  (:func:`hccstrat.radiology.cnn.TumourCNN`, MONAI blocks) over the [C, D, H, W]
  four-phase tumour crop + a clinical MLP, fused, with a survival head
  (discrete-time hazards or a Cox log-risk). The phase-present mask is applied to
  the input (missing phases zeroed) by the encoder and also given to the fusion
  layer, so the net knows which phases it saw.
- :class:`MultiArmNet`: shared trunk + one discrete-time head per treatment arm.
"""

from __future__ import annotations

import torch
from torch import nn
from torch.nn import functional as F

__all__ = ["MultiArmNet", "PreNet", "cox_nll", "discrete_nll", "discrete_survival"]


class PreNet(nn.Module):
    """3D CNN + clinical MLP with a survival head of ``n_out`` outputs."""

    def __init__(
        self,
        n_clinical: int,
        n_out: int,
        *,
        in_channels: int = 4,
        channels: tuple[int, ...] = (8, 16, 32),
        image_dim: int = 32,
        clinical_hidden: int = 32,
        dropout: float = 0.2,
    ) -> None:
        super().__init__()
        from hccstrat.radiology.cnn import TumourCNN

        self.encoder = TumourCNN(
            in_channels=in_channels, out_dim=image_dim, channels=channels, dropout=dropout
        )
        self.clinical = (
            nn.Sequential(nn.Linear(n_clinical, clinical_hidden), nn.ReLU(), nn.Dropout(dropout))
            if n_clinical
            else None
        )
        fused = image_dim + in_channels + (clinical_hidden if n_clinical else 0)
        self.head = nn.Sequential(
            nn.Linear(fused, 32), nn.ReLU(), nn.Dropout(dropout), nn.Linear(32, n_out)
        )

    def forward(
        self, volume: torch.Tensor, mask: torch.Tensor, clinical: torch.Tensor
    ) -> torch.Tensor:
        img = self.encoder(volume, mask)
        # no phase present: the image branch says nothing
        img = img * (mask.sum(1, keepdim=True) > 0)
        parts = [img, mask]
        if self.clinical is not None:
            parts.append(self.clinical(clinical))
        return self.head(torch.cat(parts, 1))


class MultiArmNet(nn.Module):
    """Shared MLP trunk, one discrete-time hazard head per arm → logits [B, arms, bins]."""

    def __init__(
        self, n_features: int, n_arms: int, n_bins: int, hidden: int = 64, dropout: float = 0.2
    ):
        super().__init__()
        self.n_arms, self.n_bins = n_arms, n_bins
        self.trunk = nn.Sequential(
            nn.Linear(n_features, hidden),
            nn.ReLU(),
            nn.Dropout(dropout),
            nn.Linear(hidden, hidden),
            nn.ReLU(),
            nn.Dropout(dropout),
        )
        self.heads = nn.Linear(hidden, n_arms * n_bins)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.heads(self.trunk(x)).view(-1, self.n_arms, self.n_bins)


def discrete_nll(
    logits: torch.Tensor,
    bin_idx: torch.Tensor,
    event: torch.Tensor,
    weight: torch.Tensor | None = None,
) -> torch.Tensor:
    """Negative log-likelihood of a discrete-time hazard model.

    Parameters
    ----------
    logits : [B, K]
        Hazard logits per interval.
    bin_idx : [B] long
        Interval of the event/censoring time (``K`` when beyond the last interval).
    event : [B] bool
        Event observed in interval ``bin_idx``; censored patients survive the
        intervals before ``bin_idx``.
    weight : [B], optional
        Sample weights (e.g. inverse propensity).
    """
    K = logits.shape[1]
    ks = torch.arange(K, device=logits.device)[None, :]
    survived = (ks < bin_idx[:, None]).float()
    hit = ((ks == bin_idx[:, None]) & event[:, None]).float()
    ll = -(survived * F.softplus(logits)).sum(1) - (hit * F.softplus(-logits)).sum(1)
    if weight is None:
        return -ll.mean()
    return -(weight * ll).sum() / weight.sum().clamp_min(1e-8)


def discrete_survival(logits: torch.Tensor) -> torch.Tensor:
    """Survival at the end of each interval: cumulative product of (1 − hazard)."""
    return torch.cumprod(torch.sigmoid(-logits), dim=-1)


def cox_nll(lp: torch.Tensor, time: torch.Tensor, event: torch.Tensor) -> torch.Tensor:
    """Negative Cox partial log-likelihood (Breslow ties) of log-risks ``lp``."""
    order = torch.argsort(time, descending=True)
    lp, event = lp[order], event[order].float()
    log_risk_set = torch.logcumsumexp(lp, 0)
    n_events = event.sum().clamp_min(1.0)
    return -((lp - log_risk_set) * event).sum() / n_events
