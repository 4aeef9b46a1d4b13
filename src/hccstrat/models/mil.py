"""Multiple-instance learning (MIL) on whole-slide tile-feature bags.

A *bag* is one slide's tile features ``[N_i, D]`` (e.g. the ``features`` of the HDF5
feature store). :class:`MILModel` follows the scikit-learn contract:
``fit(bags, y)`` with ``y`` a survival target (sksurv structured array with
``event``/``time``, see :func:`hccstrat.survival.make_surv`) for ``task="survival"``
(Cox partial-likelihood loss) or class labels for ``task="classification"``
(cross-entropy); ``predict_risk(bags)`` (log relative hazard, or the positive-class
probability), ``predict_proba`` (classification), ``attention(bags)`` (one weight
per tile, summing to one per bag) and ``embed(bags)`` / ``embedding_frame(...)``
(slide embeddings as ``wsi_*`` columns for the POST and benefit models).

Architectures (``arch``): ``"gated"`` — gated attention MIL (Ilse et al. 2018);
``"transmil"`` — a small transformer MIL (see :mod:`hccstrat.models._mil_nets`).
Runs on the CPU; torch is imported lazily.
"""

from __future__ import annotations

import io
import logging
import pickle
from collections.abc import Sequence
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd
from sklearn.base import BaseEstimator

from hccstrat.exceptions import InputFileError, ModelError, NotFittedError
from hccstrat.io.atomic import atomic_path

__all__ = ["MILModel", "load_bags", "planted_bags"]

log = logging.getLogger(__name__)
_ARCHS = ("gated", "transmil")
_TASKS = ("survival", "classification")
_MAX_PADDED = 65_536  # padded tiles per inference batch (bounds memory on large slides)


def load_bags(paths: Sequence[str | Path]) -> tuple[list[np.ndarray], list[np.ndarray]]:
    """Features and coords of HDF5 feature files (:func:`hccstrat.io.store.read_features`)."""
    from hccstrat.io.store import read_features

    feats, coords = [], []
    for p in paths:
        f = read_features(p)
        feats.append(f.features)
        coords.append(f.coords)
    return feats, coords


def planted_bags(
    pool: np.ndarray,
    planted: np.ndarray,
    *,
    n_bags: int = 100,
    size: tuple[int, int] = (40, 120),
    max_fraction: float = 0.4,
    effect: float = 2.0,
    censor_rate: float = 0.3,
    seed: int = 0,
) -> tuple[list[np.ndarray], list[np.ndarray], np.ndarray, np.ndarray]:
    """Synthetic survival bags whose risk is carried by one class of tiles.

    Each bag draws ``size`` tiles from ``pool``; a share ``f`` (uniform in
    ``[0, max_fraction]``) comes from the planted tiles. Event times are exponential
    with log-hazard ``effect * f / max_fraction``; censoring is exponential.

    Parameters
    ----------
    pool : ndarray (M, D)
        Tile features (e.g. from synthetic slides).
    planted : ndarray of bool (M,)
        Tiles of the planted class (e.g. immune-dense tiles from the label masks).
    n_bags, size, max_fraction, effect, censor_rate, seed : see above

    Returns
    -------
    bags : list of ndarray (N_i, D)
    masks : list of ndarray of bool (N_i,)
        Which tiles of each bag are planted.
    y : structured array (event, time)
    fraction : ndarray (n_bags,)
    """
    from hccstrat.survival import make_surv

    pool, planted = np.asarray(pool, np.float32), np.asarray(planted, bool)
    if planted.sum() == 0 or (~planted).sum() == 0:
        raise ModelError(
            "the pool needs both planted and other tiles", hint="check the planted mask"
        )
    rng = np.random.default_rng(seed)
    pi, oi = np.flatnonzero(planted), np.flatnonzero(~planted)
    bags, masks, fr = [], [], []
    for _ in range(n_bags):
        n = int(rng.integers(size[0], size[1] + 1))
        f = rng.uniform(0, max_fraction)
        k = round(f * n)
        idx = np.concatenate([rng.choice(pi, k), rng.choice(oi, n - k)])
        m = np.r_[np.ones(k, bool), np.zeros(n - k, bool)]
        perm = rng.permutation(n)
        bags.append(pool[idx[perm]])
        masks.append(m[perm])
        fr.append(k / n)
    fraction = np.array(fr)
    t_event = rng.exponential(12.0 * np.exp(-effect * fraction / max_fraction))
    t_cens = rng.exponential(12.0 / max(censor_rate, 1e-6), n_bags)
    return bags, masks, make_surv(t_event <= t_cens, np.minimum(t_event, t_cens)), fraction


class MILModel(BaseEstimator):
    """Attention MIL for slide-level survival or classification.

    Parameters
    ----------
    arch : {"gated", "transmil"}
    task : {"survival", "classification"}
    hidden : int
        Width of the tile projection (and of the slide embedding).
    attn_dim : int
        Width of the gated-attention layer.
    dropout : float
    lr, weight_decay : float
        Adam settings.
    epochs : int
    batch_size : int
        Bags per optimisation step (the Cox loss is computed within a batch). The bags
        of a step are padded to the longest one and go through the network as one
        masked mini-batch (padding takes no attention and leaves the outputs as they
        are bag by bag); ``batch_size=1`` gives one bag per step (classification only:
        the Cox loss needs at least two bags).
    max_instances : int
        Tiles sampled per bag and step during training (all tiles at prediction).
    random_state : int
    """

    def __init__(
        self,
        arch: str = "gated",
        task: str = "survival",
        hidden: int = 64,
        attn_dim: int = 32,
        dropout: float = 0.1,
        lr: float = 2e-3,
        weight_decay: float = 1e-4,
        epochs: int = 40,
        batch_size: int = 32,
        max_instances: int = 512,
        random_state: int = 0,
    ) -> None:
        self.arch = arch
        self.task = task
        self.hidden = hidden
        self.attn_dim = attn_dim
        self.dropout = dropout
        self.lr = lr
        self.weight_decay = weight_decay
        self.epochs = epochs
        self.batch_size = batch_size
        self.max_instances = max_instances
        self.random_state = random_state

    # -- validation ----------------------------------------------------------------
    def _bags(self, bags: Sequence[np.ndarray], *, fitting: bool = False) -> list[np.ndarray]:
        if len(bags) == 0:
            raise ModelError("no bags given", hint="pass a list of [N_i, D] feature arrays")
        out = []
        for i, b in enumerate(bags):
            a = np.asarray(b, np.float32)
            if a.ndim != 2 or len(a) == 0:
                raise ModelError(
                    f"bag {i} has shape {a.shape}; expected [N_i, D] with N_i >= 1",
                    hint="drop slides without tiles before fitting",
                )
            out.append(np.nan_to_num(a))
        dims = {a.shape[1] for a in out}
        want = {self.n_features_in_} if not fitting and hasattr(self, "n_features_in_") else dims
        if len(dims) != 1 or dims != want:
            raise ModelError(
                f"bags have feature sizes {sorted(dims)}; expected {sorted(want)}",
                hint="use the same encoder for every slide (and the one used in fit)",
            )
        return out

    def _target(self, y: Any, n: int) -> dict[str, np.ndarray]:
        if self.task == "survival":
            y = np.asarray(y)
            if y.dtype.names is None or not {"event", "time"} <= set(y.dtype.names):
                raise ModelError(
                    "task='survival' needs a structured array with fields event and time",
                    hint="build it with hccstrat.survival.make_surv(event, time)",
                )
            if len(y) != n or not y["event"].any():
                raise ModelError(
                    f"{len(y)} targets for {n} bags, {int(y['event'].sum())} events",
                    hint="give one target per bag and at least one event",
                )
            return {"time": y["time"].astype(np.float32), "event": y["event"].astype(bool)}
        labels = np.asarray(y)
        if len(labels) != n:
            raise ModelError(f"{len(labels)} labels for {n} bags", hint="one label per bag")
        self.classes_, codes = np.unique(labels, return_inverse=True)
        if len(self.classes_) < 2:
            raise ModelError("classification needs at least two classes", hint="check y")
        return {"label": codes.astype(np.int64)}

    def _net(self, in_dim: int, n_out: int):
        from hccstrat.models._mil_nets import GatedAttentionMIL, TransMILLite

        if self.arch == "gated":
            return GatedAttentionMIL(
                in_dim, n_out, hidden=self.hidden, attn_dim=self.attn_dim, dropout=self.dropout
            )
        return TransMILLite(in_dim, n_out, hidden=self.hidden, dropout=self.dropout)

    # -- fitting -------------------------------------------------------------------
    def fit(self, bags: Sequence[np.ndarray], y: Any) -> MILModel:
        """Fit on bags ``[N_i, D]`` and a survival target or class labels."""
        import torch

        if self.arch not in _ARCHS or self.task not in _TASKS:
            raise ModelError(
                f"arch={self.arch!r}, task={self.task!r}",
                hint=f"use arch in {_ARCHS} and task in {_TASKS}",
            )
        if int(self.batch_size) < 1 or int(self.max_instances) < 1:
            raise ModelError(
                f"batch_size={self.batch_size}, max_instances={self.max_instances}",
                hint="use batch_size >= 1 (>= 2 for survival) and max_instances >= 1",
            )
        bags = self._bags(bags, fitting=True)
        tgt = self._target(y, len(bags))
        self.n_features_in_ = bags[0].shape[1]
        allx = np.concatenate(bags)
        self.mean_ = allx.mean(0)
        self.scale_ = np.where(allx.std(0) > 1e-8, allx.std(0), 1.0).astype(np.float32)
        n_out = 1 if self.task == "survival" else len(self.classes_)
        torch.manual_seed(self.random_state)
        rng = np.random.default_rng(self.random_state)
        net = self._net(self.n_features_in_, n_out)
        opt = torch.optim.AdamW(net.parameters(), lr=self.lr, weight_decay=self.weight_decay)
        xs = [torch.from_numpy((b - self.mean_) / self.scale_) for b in bags]
        self.loss_curve_ = []
        threads = torch.get_num_threads()
        torch.set_num_threads(1)  # bags are small: intra-op threads only add overhead
        try:
            self._train(net, opt, xs, tgt, rng)
        finally:
            torch.set_num_threads(threads)
        net.eval()
        self.net_ = net
        return self

    def _train(self, net, opt, xs, tgt, rng) -> None:
        import torch
        from torch.nn import functional as F

        from hccstrat.models._mil_nets import cox_partial_nll, pad_bags

        with torch.set_grad_enabled(True):
            for _epoch in range(self.epochs):
                net.train()
                order = rng.permutation(len(xs))
                total = 0.0
                for s in range(0, len(order), self.batch_size):
                    idx = order[s : s + self.batch_size]
                    if self.task == "survival" and not tgt["event"][idx].any():
                        continue
                    sub = []
                    for i in idx:
                        x = xs[i]
                        if len(x) > self.max_instances:
                            x = x[torch.from_numpy(rng.choice(len(x), self.max_instances, False))]
                        sub.append(x)
                    out = net(*pad_bags(sub))[0]  # one padded forward for the whole batch
                    if self.task == "survival":
                        loss = cox_partial_nll(
                            out[:, 0],
                            torch.from_numpy(tgt["time"][idx]),
                            torch.from_numpy(tgt["event"][idx]),
                        )
                    else:
                        loss = F.cross_entropy(out, torch.from_numpy(tgt["label"][idx]))
                    opt.zero_grad()
                    loss.backward()
                    opt.step()
                    total += float(loss.detach()) * len(idx)
                self.loss_curve_.append(total / len(xs))

    # -- inference -----------------------------------------------------------------
    def _forward(self, bags: Sequence[np.ndarray]) -> tuple[np.ndarray, list, np.ndarray]:
        import torch

        if not hasattr(self, "net_"):
            raise NotFittedError("MILModel is not fitted", hint="call fit() or MILModel.load()")
        from hccstrat.models._mil_nets import pad_bags

        bags = self._bags(bags)
        n = len(bags)
        outs: list = [None] * n
        atts: list = [None] * n
        embs: list = [None] * n
        # bags of similar length share a padded batch (little padding, same results)
        order = np.argsort([len(b) for b in bags], kind="stable")
        self.net_.eval()
        with torch.no_grad():
            s = 0
            while s < n:
                e = s + 1
                while (
                    e < n
                    and e - s < max(1, int(self.batch_size))
                    and len(bags[order[e]]) * (e - s + 1) <= _MAX_PADDED
                ):
                    e += 1
                idx = order[s:e]
                xs = [torch.from_numpy((bags[i] - self.mean_) / self.scale_) for i in idx]
                o, a, z = self.net_(*pad_bags(xs))
                for k, i in enumerate(idx):
                    outs[i] = o[k].numpy()
                    atts[i] = a[k, : len(bags[i])].numpy().astype(np.float64)
                    embs[i] = z[k].numpy()
                s = e
        return np.stack(outs), atts, np.stack(embs)

    def predict_risk(self, bags: Sequence[np.ndarray]) -> np.ndarray:
        """Log relative hazard (survival) or positive-class probability (binary)."""
        out, _, _ = self._forward(bags)
        if self.task == "survival":
            return out[:, 0].astype(float)
        return self.predict_proba(bags)[:, -1]

    def predict_proba(self, bags: Sequence[np.ndarray]) -> np.ndarray:
        """Class probabilities (classification only)."""
        if self.task != "classification":
            raise ModelError("predict_proba needs task='classification'", hint="use predict_risk")
        out, _, _ = self._forward(bags)
        e = np.exp(out - out.max(1, keepdims=True))
        return e / e.sum(1, keepdims=True)

    def predict(self, bags: Sequence[np.ndarray]) -> np.ndarray:
        """Class labels (classification) or risks (survival)."""
        if self.task == "survival":
            return self.predict_risk(bags)
        return self.classes_[self.predict_proba(bags).argmax(1)]

    def attention(self, bags: Sequence[np.ndarray]) -> list[np.ndarray]:
        """Attention weight of every tile (each bag's weights sum to one)."""
        return self._forward(bags)[1]

    def embed(self, bags: Sequence[np.ndarray]) -> np.ndarray:
        """Slide embeddings ``[n_bags, hidden]`` (attention-pooled tile representation)."""
        return self._forward(bags)[2]

    def embedding_frame(
        self, bags: Sequence[np.ndarray], patient_ids: Sequence[str], *, prefix: str = "wsi_"
    ) -> pd.DataFrame:
        """``patient_id`` + ``wsi_emb_00…`` + ``wsi_mil_risk`` (one row per bag)."""
        if len(patient_ids) != len(bags):
            raise ModelError(
                f"{len(patient_ids)} patient ids for {len(bags)} bags", hint="one id per bag"
            )
        out, _, emb = self._forward(bags)
        df = pd.DataFrame(emb, columns=[f"{prefix}emb_{i:02d}" for i in range(emb.shape[1])])
        df.insert(0, "patient_id", list(patient_ids))
        df[f"{prefix}mil_risk"] = (
            out[:, 0] if self.task == "survival" else self.predict_risk(bags)
        )
        return df

    def score(self, bags: Sequence[np.ndarray], y: Any) -> float:
        """Harrell's C-index (survival) or accuracy (classification)."""
        if self.task == "survival":
            from sksurv.metrics import concordance_index_censored

            y = np.asarray(y)
            return float(
                concordance_index_censored(y["event"], y["time"], self.predict_risk(bags))[0]
            )
        return float(np.mean(self.predict(bags) == np.asarray(y)))

    # -- persistence ---------------------------------------------------------------
    def save(self, path: str | Path) -> Path:
        """Write parameters, scaler and network weights (torch format)."""
        import torch

        if not hasattr(self, "net_"):
            raise NotFittedError("MILModel is not fitted", hint="fit before saving")
        blob = {
            "format": "hccstrat-mil-v1",
            "params": self.get_params(),
            "n_features_in": self.n_features_in_,
            "mean": self.mean_,
            "scale": self.scale_,
            "classes": getattr(self, "classes_", None),
            "state": self.net_.state_dict(),
        }
        buf = io.BytesIO()
        torch.save(blob, buf)
        path = Path(path)
        with atomic_path(path) as tmp:
            tmp.write_bytes(buf.getvalue())
        return path

    @classmethod
    def load(cls, path: str | Path) -> MILModel:
        """Load a model written by :meth:`save`."""
        import torch

        # weights only (no arbitrary pickle), plus the numpy arrays of the scaler/classes
        reconstruct = np.ndarray.__reduce__(np.zeros(1))[0]  # numpy 1.x and 2.x alike
        arrays = [np.ndarray, np.dtype, reconstruct]
        arrays += [type(np.dtype(t)) for t in ("f4", "f8", "i4", "i8", "b1", "U1", "O")]
        try:
            with torch.serialization.safe_globals(arrays):
                blob = torch.load(Path(path), map_location="cpu", weights_only=True)
        except (OSError, RuntimeError, EOFError, pickle.UnpicklingError) as ex:
            raise InputFileError(f"cannot read MIL model {path}: {ex}", hint="re-save it") from ex
        if not isinstance(blob, dict) or blob.get("format") != "hccstrat-mil-v1":
            raise InputFileError(f"{path} is not a hccstrat MIL model", hint="re-save it")
        m = cls(**blob["params"])
        m.n_features_in_ = int(blob["n_features_in"])
        m.mean_, m.scale_ = blob["mean"], blob["scale"]
        if blob["classes"] is not None:
            m.classes_ = blob["classes"]
        n_out = 1 if m.task == "survival" else len(m.classes_)
        m.net_ = m._net(m.n_features_in_, n_out)
        m.net_.load_state_dict(blob["state"])
        m.net_.eval()
        return m
