"""PyTorch networks for multiple-instance learning on tile-feature bags (CPU friendly).

- :class:`GatedAttentionMIL`: Ilse, Tomczak & Welling (ICML 2018) gated attention
  pooling: ``a_k = softmax_k(w^T (tanh(V h_k) ⊙ sigmoid(U h_k)))``, ``z = Σ a_k h_k``.
- :class:`TransMILLite`: a small transformer MIL in the spirit of TransMIL (Shao et al.,
  NeurIPS 2021) without the convolutional position encoding: linear projection, a
  learnable class token, ``n_layers`` self-attention layers over the tiles, then the
  class token attends to the tiles once more (one head), giving the slide embedding
  and per-tile attention weights.

Both take one bag ``[N, D]`` and return ``(output [n_out], attention [N], embedding [H])``.
"""

from __future__ import annotations

import torch
from torch import nn

__all__ = ["GatedAttentionMIL", "TransMILLite", "cox_partial_nll"]


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

    def forward(self, x: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor]:
        h = self.proj(x)
        logits = self.att_w(torch.tanh(self.att_v(h)) * torch.sigmoid(self.att_u(h))).squeeze(-1)
        a = torch.softmax(logits, 0)
        z = (a[:, None] * h).sum(0)
        return self.head(z), a, z


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

    def forward(self, x: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor]:
        h = self.proj(x)[None]  # [1, N, H]
        t = self.encoder(torch.cat([self.cls[None], h], 1))
        q, tiles = t[:, :1], t[:, 1:]
        z, w = self.pool(q, tiles, tiles, need_weights=True)
        z = self.norm(z[0, 0] + q[0, 0])
        return self.head(z), w[0, 0], z


def cox_partial_nll(risk: torch.Tensor, time: torch.Tensor, event: torch.Tensor) -> torch.Tensor:
    """Negative Cox partial log-likelihood (Breslow ties), mean over events."""
    order = torch.argsort(time, descending=True)
    risk, ev = risk[order], event[order].float()
    log_risk_set = torch.logcumsumexp(risk, 0)
    return -((risk - log_risk_set) * ev).sum() / ev.sum().clamp_min(1.0)
