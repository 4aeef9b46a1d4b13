"""Deep multi-head survival network for the treatment-benefit model.

A shared MLP trunk learns a representation of the patient; one discrete-time
hazard head per regimen gives the RFS curve under that regimen. Each patient's
likelihood only involves the head of the regimen received, weighted by inverse
propensity (IPTW) so every head targets the whole population. Used by
:class:`~hccstrat.models.benefit.TreatmentBenefitModel` with
``outcome_model="deep"``; works on the already assembled numeric features.
"""

from __future__ import annotations

import numpy as np
from sklearn.base import BaseEstimator

from hccstrat.exceptions import ModelError, NotFittedError
from hccstrat.models._base import discrete_time_bins

__all__ = ["MultiArmSurvivalNet"]


class MultiArmSurvivalNet(BaseEstimator):
    """Multi-head discrete-time survival net (numeric features, arm codes 0..A-1).

    Parameters
    ----------
    n_arms : int
    horizon : float
        Months covered by the ``n_bins`` intervals.
    n_bins : int
    hidden : int
        Trunk width.
    epochs, batch_size : int
    lr, weight_decay, dropout : float
    num_threads : int or None
        Torch CPU threads while fitting (1 suits this small net; ``None`` = unchanged).
    random_state : int
    """

    def __init__(
        self,
        n_arms: int = 3,
        horizon: float = 24.0,
        n_bins: int = 24,
        hidden: int = 64,
        epochs: int = 60,
        batch_size: int = 64,
        lr: float = 2e-3,
        weight_decay: float = 1e-3,
        dropout: float = 0.2,
        num_threads: int | None = 1,
        random_state: int = 0,
    ) -> None:
        self.n_arms = n_arms
        self.horizon = horizon
        self.n_bins = n_bins
        self.hidden = hidden
        self.epochs = epochs
        self.batch_size = batch_size
        self.lr = lr
        self.weight_decay = weight_decay
        self.dropout = dropout
        self.num_threads = num_threads
        self.random_state = random_state

    def fit(self, Z: np.ndarray, y, arm: np.ndarray, sample_weight: np.ndarray | None = None):
        """Train on features ``Z``, RFS target ``y`` and regimen codes ``arm``."""
        import torch

        Z = np.asarray(Z, np.float32)
        arm = np.asarray(arm, int)
        if arm.min() < 0 or arm.max() >= self.n_arms:
            raise ModelError(f"arm codes must be in 0..{self.n_arms - 1}")
        old_threads = torch.get_num_threads()
        if self.num_threads:
            torch.set_num_threads(int(self.num_threads))
        try:
            self._train(Z, y, arm, sample_weight)
        finally:
            if self.num_threads:
                torch.set_num_threads(old_threads)
        return self

    def _train(self, Z, y, arm, sample_weight) -> None:
        import torch

        from hccstrat.models._nets import MultiArmNet, discrete_nll

        torch.manual_seed(self.random_state)
        rng = np.random.default_rng(self.random_state)
        edges = np.linspace(0, self.horizon, self.n_bins + 1)
        idx, ev = discrete_time_bins(y, self.horizon, self.n_bins)
        w = np.ones(len(Z)) if sample_weight is None else np.asarray(sample_weight, float)
        self.net_ = MultiArmNet(Z.shape[1], self.n_arms, self.n_bins, self.hidden, self.dropout)
        opt = torch.optim.AdamW(self.net_.parameters(), lr=self.lr, weight_decay=self.weight_decay)
        tZ, tI = torch.from_numpy(Z), torch.from_numpy(idx).long()
        tE, tW = torch.from_numpy(ev), torch.from_numpy(w.astype(np.float32))
        tA = torch.from_numpy(arm).long()
        self.net_.train()
        for _ in range(int(self.epochs)):
            order = torch.from_numpy(rng.permutation(len(Z)))
            for s in range(0, len(Z), self.batch_size):
                rows = order[s : s + self.batch_size]
                logits = self.net_(tZ[rows])[torch.arange(len(rows)), tA[rows]]
                loss = discrete_nll(logits, tI[rows], tE[rows], tW[rows])
                opt.zero_grad()
                loss.backward()
                opt.step()
        self.net_.eval()
        self.edges_ = edges

    def predict_survival(self, Z: np.ndarray) -> np.ndarray:
        """Survival at the interval edges (``n_bins + 1`` points from 0) per arm: [n, A, T]."""
        import torch

        from hccstrat.models._nets import discrete_survival

        if not hasattr(self, "net_"):
            raise NotFittedError(
                "this MultiArmSurvivalNet is not fitted yet", hint="call fit first"
            )
        with torch.no_grad():
            s = discrete_survival(self.net_(torch.from_numpy(np.asarray(Z, np.float32)))).numpy()
        return np.concatenate([np.ones((*s.shape[:2], 1)), s], axis=2)
