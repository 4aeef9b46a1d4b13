"""PyTorch networks for multiple-instance learning on tile-feature bags (CPU friendly).

- :class:`GatedAttentionMIL`: Ilse, Tomczak & Welling (ICML 2018) gated attention
  pooling: ``a_k = softmax_k(w^T (tanh(V h_k) ⊙ sigmoid(U h_k)))``, ``z = Σ a_k h_k``.
- :class:`TransMILLite`: a small transformer MIL in the spirit of TransMIL (Shao et al.,
  NeurIPS 2021) without the convolutional position encoding: linear projection, a
  learnable class token, ``n_layers`` self-attention layers over the tiles, then the
  class token attends to the tiles once more (one head), giving the slide embedding
  and per-tile attention weights.

Both take one bag ``[N, D]`` and return ``(output [n_out], attention [N], embedding
[H])``, or a padded mini-batch ``[B, N_max, D]`` with a boolean ``mask [B, N_max]``
(``True`` = real tile, ``False`` = padding) and return ``(output [B, n_out],
attention [B, N_max], embedding [B, H])``. Padding never takes attention (its weight
is exactly zero) and never changes the result: a padded bag gives the same output as
the bag alone (see :func:`pad_bags`).
"""

from __future__ import annotations

from collections.abc import Sequence

import torch
from torch import nn

__all__ = ["GatedAttentionMIL", "TransMILLite", "cox_partial_nll", "pad_bags"]


def pad_bags(bags: Sequence[torch.Tensor]) -> tuple[torch.Tensor, torch.Tensor]:
    """Stack bags ``[N_i, D]`` into ``[B, max N_i, D]`` (zero padding) and a mask.

    Returns
    -------
    x : Tensor (B, N_max, D)
    mask : Tensor of bool (B, N_max)
        ``True`` on real tiles.
    """
    n = max(len(b) for b in bags)
    x = bags[0].new_zeros((len(bags), n, bags[0].shape[-1]))
    mask = torch.zeros((len(bags), n), dtype=torch.bool, device=bags[0].device)
    for i, b in enumerate(bags):
        x[i, : len(b)] = b
        mask[i, : len(b)] = True
    return x, mask


def _batched(x: torch.Tensor, mask: torch.Tensor | None) -> tuple[torch.Tensor, torch.Tensor, bool]:
    """(x [B, N, D], mask [B, N], single) for one bag or a padded batch."""
    single = x.ndim == 2
    if single:
        x = x[None]
    if mask is None:
        mask = torch.ones(x.shape[:2], dtype=torch.bool, device=x.device)
    elif single and mask.ndim == 1:
        mask = mask[None]
    if mask.shape != x.shape[:2]:
        raise ValueError(f"mask {tuple(mask.shape)} does not match bags {tuple(x.shape)}")
    return x, mask.to(torch.bool), single


class GatedAttentionMIL(nn.Module):
    """Gated attention MIL (Ilse et al. 2018)."""

    def __init__(
        self, in_dim: int, n_out: int, *, hidden: int = 64, attn_dim: int = 32, dropout: float = 0.1
    ) -> None:
        super().__init__()
        self.proj = nn.Sequential(nn.Linear(in_dim, hidden), nn.ReLU(), nn.Dropout(dropout))
        self.att_v = nn.Linear(hidden, attn_dim)
        self.att_u = nn.Linear(hidden, attn_dim)
        self.att_w = nn.Linear(attn_dim, 1)
        self.head = nn.Linear(hidden, n_out)

    def forward(
        self, x: torch.Tensor, mask: torch.Tensor | None = None
    ) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor]:
        x, mask, single = _batched(x, mask)
        h = self.proj(x)  # [B, N, H]
        logits = self.att_w(torch.tanh(self.att_v(h)) * torch.sigmoid(self.att_u(h))).squeeze(-1)
        logits = logits.masked_fill(~mask, float("-inf"))
        a = torch.softmax(logits, 1)
        a = torch.where(mask, a, torch.zeros_like(a))  # exact zeros (and no NaN) on padding
        z = torch.einsum("bn,bnh->bh", a, h)
        out = self.head(z)
        if single:
            return out[0], a[0], z[0]
        return out, a, z


class TransMILLite(nn.Module):
    """Transformer MIL: self-attention over tiles + class-token attention pooling."""

    def __init__(
        self,
        in_dim: int,
        n_out: int,
        *,
        hidden: int = 64,
        n_layers: int = 1,
        n_heads: int = 4,
        dropout: float = 0.1,
    ) -> None:
        super().__init__()
        self.proj = nn.Sequential(nn.Linear(in_dim, hidden), nn.ReLU())
        self.cls = nn.Parameter(torch.zeros(1, hidden))
        layer = nn.TransformerEncoderLayer(
            hidden, n_heads, dim_feedforward=2 * hidden, dropout=dropout, batch_first=True
        )
        self.encoder = nn.TransformerEncoder(layer, n_layers, enable_nested_tensor=False)
        self.pool = nn.MultiheadAttention(hidden, 1, batch_first=True)
        self.norm = nn.LayerNorm(hidden)
        self.head = nn.Linear(hidden, n_out)

    def forward(
        self, x: torch.Tensor, mask: torch.Tensor | None = None
    ) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor]:
        x, mask, single = _batched(x, mask)
        b = x.shape[0]
        h = self.proj(x)  # [B, N, H]
        pad = torch.cat([torch.zeros((b, 1), dtype=torch.bool, device=x.device), ~mask], 1)
        # padding as an additive float mask: the same (slow-path) kernels with or without
        # padding, so a padded bag matches the bag alone to float rounding
        pad_f = torch.zeros(pad.shape, dtype=h.dtype, device=x.device).masked_fill(
            pad, float("-inf")
        )
        t = self.encoder(torch.cat([self.cls[None].expand(b, -1, -1), h], 1),
                         src_key_padding_mask=pad_f)
        q, tiles = t[:, :1], t[:, 1:]
        z, w = self.pool(q, tiles, tiles, key_padding_mask=pad_f[:, 1:], need_weights=True)
        z = self.norm(z[:, 0] + q[:, 0])
        a = torch.where(mask, w[:, 0], torch.zeros_like(w[:, 0]))
        out = self.head(z)
        if single:
            return out[0], a[0], z[0]
        return out, a, z


def cox_partial_nll(risk: torch.Tensor, time: torch.Tensor, event: torch.Tensor) -> torch.Tensor:
    """Negative Cox partial log-likelihood (Breslow ties), mean over events."""
    order = torch.argsort(time, descending=True)
    risk, ev = risk[order], event[order].float()
    log_risk_set = torch.logcumsumexp(risk, 0)
    return -((risk - log_risk_set) * ev).sum() / ev.sum().clamp_min(1.0)
