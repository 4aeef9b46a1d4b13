"""PRE model variant (b): 3D CNN over the 4-phase MRI tumour crop + clinical MLP.

Input: the wide patient table with, per patient, the tumour crop in the object
column ``volume_column`` (a float array ``[4, D, H, W]``: non-contrast, arterial,
portal venous, delayed; all patients the same shape, e.g. from
``hccstrat.radiology``) and optionally which phases are present in
``phase_column`` (4 booleans; otherwise a channel that is all zero / NaN counts as
missing). A patient without a crop (``None``) is predicted from clinical data only.

Training uses *modality dropout*: each present phase is dropped with probability
``phase_dropout`` (at least one kept), so the net learns to predict with a missing
phase; at inference the missing phases are masked. The survival head is
discrete-time (hazards over ``n_bins`` intervals up to the horizon) or Cox (partial
likelihood, Breslow baseline); its probability of aggressive recurrence by the
horizon is Platt-recalibrated on an internal validation split, which also picks the
epoch (early stopping).
"""

from __future__ import annotations

import logging

import numpy as np
import pandas as pd
from sklearn.base import BaseEstimator

from hccstrat.exceptions import ModelError, NotFittedError
from hccstrat.models._base import check_target, discrete_time_bins, training_summary
from hccstrat.models._features import FeatureAssembler
from hccstrat.models._risk import ThresholdMixin
from hccstrat.models.operating import HorizonCalibrator

__all__ = ["DeepPreModel"]

log = logging.getLogger(__name__)


def _volumes(
    X: pd.DataFrame, col: str, phase_col: str, shape=None
) -> tuple[np.ndarray, np.ndarray]:
    if col not in X.columns:
        raise ModelError(
            f"the table has no '{col}' column of MRI tumour crops",
            hint="add one [4, D, H, W] array per patient (None where no MRI), or use PreModel",
        )
    arrays = [
        None if v is None or (np.isscalar(v) and pd.isna(v)) else np.asarray(v, np.float32)
        for v in X[col]
    ]
    if shape is None:
        shapes = {a.shape for a in arrays if a is not None}
        if len(shapes) != 1:
            raise ModelError(
                f"MRI crops must all have one shape [4, D, H, W]; found {sorted(shapes)[:3]}",
                hint="resample the crops to a common size",
            )
        shape = shapes.pop()
    if len(shape) != 4:
        raise ModelError(f"MRI crops must be 4-D [phases, D, H, W], got shape {shape}")
    V = np.zeros((len(arrays), *shape), np.float32)
    M = np.zeros((len(arrays), shape[0]), np.float32)
    for i, a in enumerate(arrays):
        if a is None:
            continue
        if a.shape != tuple(shape):
            raise ModelError(f"row {i + 1}: MRI crop of shape {a.shape}, expected {tuple(shape)}")
        present = np.isfinite(a).any(axis=(1, 2, 3)) & (np.nan_to_num(a) != 0).any(axis=(1, 2, 3))
        V[i] = np.nan_to_num(a)
        M[i] = present
    if phase_col in X.columns:
        for i, ph in enumerate(X[phase_col]):
            if ph is not None and not (np.isscalar(ph) and pd.isna(ph)):
                M[i] = M[i] * np.asarray(ph, np.float32)
    return V, M


class DeepPreModel(ThresholdMixin, BaseEstimator):
    """Multimodal deep PRE model (3D CNN + clinical MLP, survival head).

    Parameters
    ----------
    head : {"discrete", "cox"}
        Survival head.
    n_bins : int
        Intervals of the discrete-time head over ``[0, horizon]``.
    horizon : float
        Months.
    threshold : float
        High risk when the PRE score >= threshold.
    epochs, batch_size : int
        Training length.
    lr, weight_decay : float
        AdamW settings.
    channels : tuple of int
        3D CNN widths (one strided block each).
    clinical_hidden : int
        Width of the clinical MLP.
    phase_dropout : float
        Probability of dropping each present phase during training.
    val_fraction : float
        Internal validation share (early stopping and calibration).
    volume_column, phase_column : str
        Columns holding the crops and the phase-present flags.
    device : str
        ``"cpu"``, ``"cuda"`` or ``"auto"``.
    num_threads : int or None
        Torch CPU threads during fit (``None`` leaves the setting alone).
    random_state : int
        Seed.
    """

    def __init__(
        self,
        head: str = "discrete",
        n_bins: int = 6,
        horizon: float = 24.0,
        threshold: float = 0.5,
        epochs: int = 30,
        batch_size: int = 32,
        lr: float = 2e-3,
        weight_decay: float = 1e-4,
        channels: tuple[int, ...] = (8, 16, 32),
        clinical_hidden: int = 32,
        phase_dropout: float = 0.25,
        val_fraction: float = 0.2,
        volume_column: str = "mri_crop",
        phase_column: str = "mri_phases",
        device: str = "cpu",
        num_threads: int | None = None,
        random_state: int = 0,
    ) -> None:
        self.head = head
        self.n_bins = n_bins
        self.horizon = horizon
        self.threshold = threshold
        self.epochs = epochs
        self.batch_size = batch_size
        self.lr = lr
        self.weight_decay = weight_decay
        self.channels = channels
        self.clinical_hidden = clinical_hidden
        self.phase_dropout = phase_dropout
        self.val_fraction = val_fraction
        self.volume_column = volume_column
        self.phase_column = phase_column
        self.device = device
        self.num_threads = num_threads
        self.random_state = random_state

    # -- helpers ---------------------------------------------------------------------
    def _device(self):
        import torch

        if self.device == "auto":
            return torch.device("cuda" if torch.cuda.is_available() else "cpu")
        return torch.device(self.device)

    def _inputs(self, X: pd.DataFrame):
        V, M = _volumes(X, self.volume_column, self.phase_column, self.volume_shape_)
        V = (V - self.channel_mean_[None, :, None, None, None]) / self.channel_std_[
            None, :, None, None, None
        ]
        V *= M[:, :, None, None, None]
        C = self.features_.transform(X).to_numpy(np.float32)
        return V.astype(np.float32), M, C

    def _bins(self, y) -> tuple[np.ndarray, np.ndarray]:
        return discrete_time_bins(y, self.horizon, self.n_bins)

    def _forward(self, V, M, C, *, grad: bool = False):
        import torch

        dev = self._device()
        self.net_.eval()
        outs = []
        ctx = torch.enable_grad() if grad else torch.no_grad()
        with ctx:
            for s in range(0, len(V), 128):
                outs.append(
                    self.net_(
                        torch.from_numpy(V[s : s + 128]).to(dev),
                        torch.from_numpy(M[s : s + 128]).to(dev),
                        torch.from_numpy(C[s : s + 128]).to(dev),
                    ).cpu()
                )
        return torch.cat(outs).numpy()

    def _raw_probability(self, out: np.ndarray) -> np.ndarray:
        if self.head == "discrete":
            return 1.0 - np.prod(1.0 / (1.0 + np.exp(out)), axis=1)
        return 1.0 - np.exp(-self.baseline_hazard_ * np.exp(out[:, 0]))

    # -- fit -------------------------------------------------------------------------
    def fit(self, X: pd.DataFrame, y):
        """Train the net (modality dropout), early-stop and calibrate on a validation split."""
        import torch

        from hccstrat.models._nets import PreNet, cox_nll, discrete_nll

        if self.head not in ("discrete", "cox"):
            raise ModelError(f"unknown head {self.head!r}", hint="use 'discrete' or 'cox'")
        check_target(y, len(X))
        rng = np.random.default_rng(self.random_state)
        torch.manual_seed(self.random_state)
        old_threads = torch.get_num_threads()
        if self.num_threads:
            torch.set_num_threads(int(self.num_threads))
        try:
            self.features_ = FeatureAssembler(stage="pre", image_prefixes=()).fit(X)
            V, M = _volumes(X, self.volume_column, self.phase_column)
            self.volume_shape_ = V.shape[1:]
            present = M.astype(bool)
            self.channel_mean_ = np.array(
                [
                    V[present[:, c], c].mean() if present[:, c].any() else 0.0
                    for c in range(V.shape[1])
                ],
                np.float32,
            )
            self.channel_std_ = np.array(
                [
                    V[present[:, c], c].std() + 1e-6 if present[:, c].any() else 1.0
                    for c in range(V.shape[1])
                ],
                np.float32,
            )
            V, M, C = self._inputs(X)
            idx, ev = self._bins(y)
            n = len(y)
            perm = rng.permutation(n)
            n_val = round(self.val_fraction * n) if self.val_fraction > 0 else 0
            val, tr = perm[:n_val], perm[n_val:]
            dev = self._device()
            n_out = self.n_bins if self.head == "discrete" else 1
            self.net_ = PreNet(
                C.shape[1],
                n_out,
                in_channels=V.shape[1],
                channels=tuple(self.channels),
                clinical_hidden=self.clinical_hidden,
            ).to(dev)
            opt = torch.optim.AdamW(
                self.net_.parameters(), lr=self.lr, weight_decay=self.weight_decay
            )
            t_all = torch.from_numpy(y["time"].astype(np.float32))
            e_all = torch.from_numpy(y["event"].astype(bool))

            def loss_of(out, rows):
                if self.head == "discrete":
                    return discrete_nll(
                        out,
                        torch.from_numpy(idx[rows]).long().to(dev),
                        torch.from_numpy(ev[rows]).to(dev),
                    )
                return cox_nll(out[:, 0], t_all[rows].to(dev), e_all[rows].to(dev))

            best, best_state, self.history_ = np.inf, None, []
            bs = max(int(self.batch_size), 8 if self.head == "cox" else 1)
            for epoch in range(int(self.epochs)):
                self.net_.train()
                order = rng.permutation(tr)
                total = 0.0
                for s in range(0, len(order), bs):
                    rows = order[s : s + bs]
                    if len(rows) < 2:
                        continue
                    m = M[rows].copy()
                    drop = (rng.random(m.shape) < self.phase_dropout) & (m > 0)
                    keep_one = drop.sum(1) >= m.sum(1)
                    drop[keep_one] = False
                    m[drop] = 0.0
                    v = V[rows] * m[:, :, None, None, None]
                    for ax in (2, 3, 4):  # random flips: orientation carries no signal here
                        if rng.random() < 0.5:
                            v = np.flip(v, axis=ax)
                    out = self.net_(
                        torch.from_numpy(np.ascontiguousarray(v)).to(dev),
                        torch.from_numpy(m).to(dev),
                        torch.from_numpy(C[rows]).to(dev),
                    )
                    loss = loss_of(out, rows)
                    opt.zero_grad()
                    loss.backward()
                    opt.step()
                    total += float(loss) * len(rows)
                val_loss = np.nan
                if n_val and ev[val].any():
                    out = torch.from_numpy(self._forward(V[val], M[val], C[val]))
                    val_loss = float(loss_of(out.to(dev), val))
                self.history_.append(
                    {
                        "epoch": epoch + 1,
                        "train_loss": total / max(len(tr), 1),
                        "val_loss": val_loss,
                    }
                )
                score = val_loss if np.isfinite(val_loss) else total
                if score < best:
                    best = score
                    best_state = {k: v.detach().clone() for k, v in self.net_.state_dict().items()}
            if best_state is not None:
                self.net_.load_state_dict(best_state)
            if self.head == "cox":
                lp = self._forward(V[tr], M[tr], C[tr])[:, 0]
                self.baseline_hazard_ = _breslow_at(lp, y[tr], self.horizon)
            cal_rows = val if n_val and ev[val].any() and (~ev[val]).any() else None
            raw = self._raw_probability(self._forward(V, M, C))
            if cal_rows is not None:
                self.calibrator_ = HorizonCalibrator("platt", self.horizon).fit(
                    raw[cal_rows], y[cal_rows]
                )
            else:
                log.warning("no usable validation split: the deep PRE score is not recalibrated")
                self.calibrator_ = HorizonCalibrator("none", self.horizon).fit(raw, y)
        finally:
            if self.num_threads:
                torch.set_num_threads(old_threads)
        self.training_summary_ = training_summary(X, y)
        self.feature_names_in_ = np.asarray(list(X.columns), dtype=object)
        return self

    def _check_fitted(self) -> None:
        if not hasattr(self, "net_"):
            raise NotFittedError("this DeepPreModel is not fitted yet", hint="call fit(X, y) first")

    @property
    def lacking_(self):
        """Clinical inputs lacking at fit time."""
        self._check_fitted()
        return self.features_.lacking_

    def predict_score(self, X: pd.DataFrame) -> np.ndarray:
        """PRE score: calibrated probability of aggressive recurrence by the horizon."""
        self._check_fitted()
        V, M, C = self._inputs(X)
        return self.calibrator_.transform(self._raw_probability(self._forward(V, M, C)))

    def score(self, X: pd.DataFrame, y) -> float:
        """Harrell's C of the PRE score."""
        from hccstrat.models._base import concordance

        return concordance(y, self.predict_score(X))

    def saliency(self, X: pd.DataFrame) -> tuple[np.ndarray, pd.DataFrame]:
        """Gradient explanations of the raw risk output.

        Returns
        -------
        volume_saliency : ndarray [n, 4, D, H, W]
            Absolute gradient of the risk logit with respect to each input voxel
            (zero for masked phases).
        clinical : DataFrame
            Gradient × input of each clinical feature, one row per patient.
        """
        import torch

        self._check_fitted()
        V, M, C = self._inputs(X)
        dev = self._device()
        self.net_.eval()
        v = torch.from_numpy(V).to(dev).requires_grad_(True)
        c = torch.from_numpy(C).to(dev).requires_grad_(True)
        out = self.net_(v, torch.from_numpy(M).to(dev), c)
        risk = out.sum(1) if self.head == "discrete" else out[:, 0]
        risk.sum().backward()
        sal = (v.grad.abs() * torch.from_numpy(M).to(dev)[:, :, None, None, None]).cpu().numpy()
        contrib = (c.grad * c).detach().cpu().numpy()
        return sal, pd.DataFrame(contrib, columns=self.features_.feature_names_out_, index=X.index)


def _breslow_at(lp: np.ndarray, y: np.ndarray, horizon: float) -> float:
    """Breslow cumulative baseline hazard at ``horizon``."""
    t, e = y["time"], y["event"]
    risk = np.exp(lp - lp.max())
    order = np.argsort(t)
    t, e, risk = t[order], e[order], risk[order]
    at_risk = np.cumsum(risk[::-1])[::-1]
    h = np.sum((e / at_risk)[(t <= horizon)])
    return float(h * np.exp(-lp.max()))
