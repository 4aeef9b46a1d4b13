"""Out-of-distribution model of a tile classifier's training tiles.

Used by :class:`hccstrat.pathology.tile_classifier.TileClassifier` to abstain
(``unrecognised``) on tiles unlike anything it was trained on; see that module for the
calibration of the threshold.
"""

from __future__ import annotations

import numpy as np

__all__ = ["OodModel"]


class OodModel:
    """Where the training tiles lie: whitened PCA space, class centroids and spreads.

    Score of a tile = the larger of (a) its distance to the nearest class centroid in
    the whitened space of the first principal components, divided by that class's
    spread, and (b) its distance off that subspace (PCA residual) divided by the
    training tiles' median residual. (b) catches tissue that differs from the training
    tiles along directions in which they hardly vary. Both are about 1 for a typical
    training tile.

    Parameters
    ----------
    n_components : int
        Most PCA components kept (fewer when the data have fewer dimensions).
    quantile : float
        Quantile of the training tiles' scores that sets the base threshold.
    n_folds : int
        The training scores behind the threshold are cross-fitted (each tile scored by
        a model fitted without it), so a small training set does not make the
        threshold optimistic; in-sample scores below ``5 * n_folds`` tiles.
    random_state : int or None
        Seed of the fold assignment and of the subsample.
    max_tiles : int
        Fit on a random subsample of at most this many tiles (memory and time on
        large training sets with wide foundation-model features).

    Attributes
    ----------
    mean_, scale_ : ndarray (D,)
        Standardisation.
    axes_, sd_ : ndarray (K, D), (K,)
        Principal axes of the standardised features and the SD along each (whitening).
    centroids_, spreads_, classes_ : ndarray (C, K), (C,), (C,)
        Class centroids in whitened space and median distance of each class's tiles to
        its centroid (floored at half the median spread: a tight rare class must not
        flag its own neighbours).
    resid_scale_ : float
        Median PCA residual of the training tiles.
    train_quantile_ : float
        The ``quantile`` of the cross-fitted training scores, from a log-normal fitted
        robustly (median and MAD of the log scores): stable on small training sets.
    """

    def __init__(
        self,
        n_components: int = 16,
        quantile: float = 0.995,
        n_folds: int = 5,
        random_state: int | None = 0,
        max_tiles: int = 10_000,
    ) -> None:
        self.n_components = n_components
        self.quantile = quantile
        self.n_folds = n_folds
        self.random_state = random_state
        self.max_tiles = max_tiles

    def _fit_core(self, X: np.ndarray, y: np.ndarray) -> OodModel:
        self.mean_ = X.mean(0)
        sd = X.std(0)
        self.scale_ = np.where(sd > 1e-9 * (1 + np.abs(self.mean_)), sd, 1.0)
        Z = (X - self.mean_) / self.scale_
        _, sv, vt = np.linalg.svd(Z, full_matrices=False)
        var = sv**2 / max(len(Z) - 1, 1)
        k = max(1, int(min(self.n_components, (var > 1e-9 * var.max()).sum())))
        self.axes_, self.sd_ = vt[:k], np.sqrt(var[:k])
        W = Z @ self.axes_.T / self.sd_
        self.classes_ = np.unique(y)
        self.centroids_ = np.stack([W[y == c].mean(0) for c in self.classes_])
        spreads = np.array([
            np.median(np.linalg.norm(W[y == c] - self.centroids_[i], axis=1))
            for i, c in enumerate(self.classes_)
        ])
        self.spreads_ = np.maximum(spreads, 0.5 * np.median(spreads) + 1e-9)
        self.resid_scale_ = float(np.median(self._residual(Z))) + 1e-9
        return self

    def _residual(self, Z: np.ndarray) -> np.ndarray:
        return np.linalg.norm(Z - (Z @ self.axes_.T) @ self.axes_, axis=1)

    def fit(self, X: np.ndarray, y: np.ndarray) -> OodModel:
        """Fit on finite features ``X`` (N, D) and class names ``y`` (N,)."""
        rng = np.random.default_rng(self.random_state)
        y = np.asarray(y).astype(str)
        if len(X) > self.max_tiles:
            keep = np.sort(rng.choice(len(X), self.max_tiles, replace=False))
            X, y = np.asarray(X)[keep], y[keep]
        X = np.asarray(X, np.float64)
        if self.n_folds >= 2 and len(X) >= 5 * self.n_folds:
            fold = rng.permutation(len(X)) % self.n_folds
            cv = np.zeros(len(X))
            for f in range(self.n_folds):
                part = OodModel(self.n_components)._fit_core(X[fold != f], y[fold != f])
                cv[fold == f] = part.score(X[fold == f])
            self._fit_core(X, y)
        else:
            cv = self._fit_core(X, y).score(X)
        # robust log-normal quantile: a few hundred tiles make the empirical 99.5 %
        # quantile their maximum, i.e. one odd tile
        from scipy.stats import norm

        log_s = np.log(np.maximum(cv, 1e-9))
        med = float(np.median(log_s))
        mad = 1.4826 * float(np.median(np.abs(log_s - med)))
        self.train_quantile_ = float(np.exp(med + norm.ppf(self.quantile) * mad))
        return self

    def score(self, X: np.ndarray) -> np.ndarray:
        """OOD score of each tile (N,); about 1 for a typical training tile."""
        X = np.nan_to_num(np.asarray(X, np.float64), posinf=1e12, neginf=-1e12)
        if len(X) == 0:
            return np.zeros(0)
        Z = (X - self.mean_) / self.scale_
        W = Z @ self.axes_.T / self.sd_
        d = np.linalg.norm(W[:, None, :] - self.centroids_[None], axis=2) / self.spreads_
        return np.maximum(d.min(1), self._residual(Z) / self.resid_scale_)
