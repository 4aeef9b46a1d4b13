"""Privacy options of federated training: pairwise-mask secure aggregation and DP noise.

Secure aggregation (a simplified, dropout-free variant of Bonawitz et al., CCS 2017):
each centre encodes its example-weighted update in fixed point (int64, scale 2**20)
and adds, for every other participating centre, a pseudo-random mask drawn from a
seed that only the two centres can derive (from a federation secret the server never
sees); centre *a* adds the mask of pair (a, b) and centre *b* subtracts it. Arithmetic
is modulo 2**64, so the masks cancel exactly in the server's sum while every single
upload looks uniformly random. Limits: every masked centre must report in the round
(no dropout recovery), and a client colluding with the server can unmask a peer.

Differential privacy (client side): the model update ``w_local - w_global`` is clipped
to an L2 norm ``C`` and Gaussian noise of standard deviation ``noise_multiplier * C``
is added before upload (local DP of the Gaussian mechanism per round).
"""

from __future__ import annotations

import hashlib

import numpy as np

from hccstrat.exceptions import ConfigError

__all__ = [
    "FIXED_POINT_SCALE",
    "clip_and_noise",
    "decode_sum",
    "mask_update",
    "pair_seed",
]

FIXED_POINT_SCALE = float(2**20)
_MAX_ABS = 2.0**62 / FIXED_POINT_SCALE  # headroom for the sum of a few thousand centres


def pair_seed(secret: str, a: str, b: str, server_round: int) -> int:
    """Seed shared by centres ``a`` and ``b`` for one round (order of a, b irrelevant)."""
    lo, hi = sorted((a, b))
    digest = hashlib.sha256(f"{secret}|{lo}|{hi}|{server_round}".encode()).digest()
    return int.from_bytes(digest[:8], "little")


def _encode(x: np.ndarray) -> np.ndarray:
    x = np.asarray(x, np.float64)
    if not np.isfinite(x).all() or np.abs(x).max(initial=0.0) > _MAX_ABS:
        raise ConfigError(
            "a model update is not finite or too large for fixed-point secure aggregation",
            hint="lower the learning rate or enable clipping (--clip)",
        )
    return np.round(x * FIXED_POINT_SCALE).astype(np.int64).view(np.uint64)


def mask_update(
    arrays: list[np.ndarray],
    weight: float,
    *,
    me: str,
    peers: list[str],
    secret: str,
    server_round: int,
) -> list[np.ndarray]:
    """Fixed-point encode ``weight * arrays`` and add the pairwise masks (uint64).

    Parameters
    ----------
    arrays : list of ndarray
    weight : float
        Example count of this centre (FedAvg weight).
    me : str
        This centre's name; must be in ``peers``.
    peers : list of str
        Every centre taking part in the round.
    secret : str
        Federation secret shared by the centres, not by the server.
    server_round : int
    """
    if me not in peers:
        raise ConfigError(
            f"centre {me!r} is not among the round's participants {peers}",
            hint="give each client a unique --centre name",
        )
    out = []
    for k, a in enumerate(arrays):
        enc = _encode(weight * np.asarray(a, np.float64))
        for other in peers:
            if other == me:
                continue
            rng = np.random.default_rng([pair_seed(secret, me, other, server_round), k])
            m = rng.integers(0, 2**64, size=enc.shape, dtype=np.uint64, endpoint=False)
            enc = enc + m if me < other else enc - m  # wraps modulo 2**64
        out.append(enc)
    return out


def decode_sum(masked: list[list[np.ndarray]], total_weight: float) -> list[np.ndarray]:
    """Sum the masked uploads of all centres (masks cancel) and divide by the total weight."""
    if not masked:
        return []
    out = []
    for k in range(len(masked[0])):
        s = np.zeros_like(masked[0][k], dtype=np.uint64)
        for upload in masked:
            s = s + np.asarray(upload[k]).astype(np.uint64)
        out.append(s.view(np.int64).astype(np.float64) / FIXED_POINT_SCALE / total_weight)
    return out


def clip_and_noise(
    new: list[np.ndarray],
    old: list[np.ndarray],
    *,
    clip: float,
    noise_multiplier: float,
    rng: np.random.Generator,
) -> tuple[list[np.ndarray], float]:
    """Clip the update ``new - old`` to L2 norm ``clip``, add N(0, (σ·clip)²) noise.

    Returns
    -------
    (weights, norm_before_clipping)
    """
    if clip <= 0 or noise_multiplier < 0:
        raise ConfigError(
            f"clip={clip}, noise_multiplier={noise_multiplier}",
            hint="clip must be > 0 and the noise multiplier >= 0",
        )
    delta = [np.asarray(n, np.float64) - np.asarray(o, np.float64) for n, o in zip(new, old,
                                                                                    strict=True)]
    norm = float(np.sqrt(sum(float((d**2).sum()) for d in delta)))
    factor = min(1.0, clip / norm) if norm > 0 else 1.0
    out = []
    for d, o in zip(delta, old, strict=True):
        noisy = d * factor + rng.normal(0.0, noise_multiplier * clip, size=d.shape)
        out.append(np.asarray(o, np.float64) + noisy)
    return out, norm
