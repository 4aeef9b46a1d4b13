"""Tile tissue-class classifier on encoder features, and tile labels from annotations.

Classes (:data:`TILE_CLASSES`, the reported 7-class scheme): ``background``,
``tumour``, ``stroma``, ``immune_dense``, ``necrosis``, ``normal_liver``, ``vessel``.
Internally the classifier may also learn the *fine* class ``vessel_tumour_thrombus``
(:data:`FINE_CLASSES`), a vessel filled with tumour (vascular invasion); it is reported
as ``vessel`` by :meth:`TileClassifier.predict` and used by the TIME panel for
vascular invasion. Pen ink and folds (synthetic code 8) are not a tissue class: such
tiles are left out of training (label ``None``) and flagged by tile QC at prediction.

Out of distribution: :meth:`TileClassifier.fit` also models where its training tiles
lie (:class:`~hccstrat.pathology.tile_ood.OodModel`): features are standardised and
PCA-whitened (at most
``ood_components`` components, fitted on the training tiles), each fine class gets a
centroid and a robust spread (median distance of its tiles to the centroid). A tile's
OOD score is its distance to the nearest centroid divided by that class's spread, or
its distance off the PCA subspace relative to the training tiles' when that is larger;
the threshold is the ``ood_quantile`` (99.5 %) quantile of the training tiles'
cross-fitted scores times ``ood_margin``. :meth:`TileClassifier.in_distribution` is
``score <= threshold``; the TIME panel calls tiles outside it ``unrecognised`` instead
of forcing a class on tissue the classifier never saw (another organ, another stain
protocol). The default margin (2.5) was set on synthetic slides: those of other
centres (stain-vector rotation, stain scaling, background shifts of the synthetic
centre table) have <= 1 % of tiles flagged, while the real skin biopsy CMU-1 (the
fixtures) has ~90-100 % flagged (tests/pathology/test_ood.py). A very strong stain
shift (haematoxylin 1.5 x) flags 5-15 %: the panel says so rather than guessing.

Labels for training come from a label map (the synthetic slides' ``*.labels.png`` or
an annotation rasterised by :mod:`hccstrat.pathology.annotate`): a tile takes its
majority class when that class covers at least ``min_purity`` of it.
"""

from __future__ import annotations

import logging
import pickle
from pathlib import Path
from typing import Any

import numpy as np
from sklearn.base import BaseEstimator, ClassifierMixin

from hccstrat.exceptions import ConfigError, InputFileError, ModelError, NotFittedError
from hccstrat.io.atomic import atomic_path
from hccstrat.io.safe_pickle import restricted_loads
from hccstrat.pathology.classes import CLASS_CODES
from hccstrat.pathology.tile_ood import OodModel

__all__ = [
    "CODE_TO_FINE",
    "FINE_CLASSES",
    "TILE_CLASSES",
    "TileClassifier",
    "add_context",
    "tile_labels_from_map",
    "to_coarse",
]

log = logging.getLogger(__name__)

#: the reported tissue classes
TILE_CLASSES: list[str] = [
    "background",
    "tumour",
    "stroma",
    "immune_dense",
    "necrosis",
    "normal_liver",
    "vessel",
]
#: classes the classifier may learn (``vessel_tumour_thrombus`` is reported as vessel)
FINE_CLASSES: list[str] = [*TILE_CLASSES, "vessel_tumour_thrombus"]
#: label-map code (:data:`hccstrat.pathology.classes.CLASS_CODES`) → fine class (None: ignore)
CODE_TO_FINE: dict[int, str | None] = {
    code: (name if name in FINE_CLASSES else None) for code, name in CLASS_CODES.items()
}
_FORMAT = "hccstrat-tile-classifier-v1"


def to_coarse(labels: np.ndarray) -> np.ndarray:
    """Map fine class names to the 7 reported classes (thrombus → vessel)."""
    a = np.asarray(labels, dtype=object)
    return np.where(a == "vessel_tumour_thrombus", "vessel", a)


def tile_labels_from_map(
    coords: np.ndarray,
    patch_size_level0: int,
    label_map: np.ndarray,
    downsample: float,
    *,
    min_purity: float = 0.6,
    code_to_class: dict[int, str | None] | None = None,
) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """Majority class of each tile from a coarse label map.

    Parameters
    ----------
    coords : ndarray (N, 2)
        Level-0 (x, y) top-left corners.
    patch_size_level0 : int
        Tile side in level-0 pixels.
    label_map : ndarray of int, (h, w)
        Class codes, one pixel per ``downsample`` level-0 pixels.
    downsample : float
    min_purity : float
        Lowest share of the majority class; purer tiles only get a label.
    code_to_class : dict, optional
        Code → class name (default :data:`CODE_TO_FINE`).

    Returns
    -------
    labels : ndarray of object (N,)
        Class name, or ``None`` (impure tile, or an ignored code such as pen).
    purity : ndarray of float (N,)
        Share of the majority code.
    fractions : ndarray of float (N, C)
        Share of every code (C = max code + 1).
    """
    mapping = CODE_TO_FINE if code_to_class is None else code_to_class
    lab = np.asarray(label_map)
    n_codes = max(int(lab.max()) + 1, max(mapping) + 1)
    coords = np.asarray(coords, np.int64)
    h, w = lab.shape
    x0 = np.clip(np.floor(coords[:, 0] / downsample).astype(int), 0, w - 1)
    y0 = np.clip(np.floor(coords[:, 1] / downsample).astype(int), 0, h - 1)
    x1 = np.clip(np.ceil((coords[:, 0] + patch_size_level0) / downsample).astype(int), 1, w)
    y1 = np.clip(np.ceil((coords[:, 1] + patch_size_level0) / downsample).astype(int), 1, h)
    # one cumulative-sum table per code: fractions of every tile in O(N * C)
    onehot = np.zeros((n_codes, h + 1, w + 1), np.int64)
    for c in range(n_codes):
        onehot[c, 1:, 1:] = (lab == c).cumsum(0).cumsum(1)
    x1 = np.maximum(x1, x0 + 1)
    y1 = np.maximum(y1, y0 + 1)
    counts = onehot[:, y1, x1] - onehot[:, y0, x1] - onehot[:, y1, x0] + onehot[:, y0, x0]
    fractions = (counts / np.maximum(counts.sum(0), 1)).T
    major = fractions.argmax(1)
    purity = fractions[np.arange(len(major)), major]
    labels = np.array([mapping.get(int(c)) for c in major], dtype=object)
    labels[purity < min_purity] = None
    return labels, purity, fractions


def add_context(features: np.ndarray, coords: np.ndarray, stride: int) -> np.ndarray:
    """Append the mean features of each tile's 8 grid neighbours (context).

    Tiles without neighbours get their own features as context.

    Parameters
    ----------
    features : ndarray (N, D)
    coords : ndarray (N, 2)
        Level-0 top-left corners on a regular grid of step ``stride``.
    stride : int

    Returns
    -------
    ndarray (N, 2 D)
    """
    features = np.asarray(features, np.float32)
    if len(features) == 0:
        return np.zeros((0, 2 * features.shape[1]), np.float32)
    ij = (np.asarray(coords) - np.asarray(coords).min(0)) // max(int(stride), 1)
    gw, gh = int(ij[:, 0].max()) + 3, int(ij[:, 1].max()) + 3
    d = features.shape[1]
    acc = np.zeros((gh, gw, d), np.float64)
    cnt = np.zeros((gh, gw), np.float64)
    acc[ij[:, 1] + 1, ij[:, 0] + 1] = features
    cnt[ij[:, 1] + 1, ij[:, 0] + 1] = 1
    sacc = np.zeros_like(acc)
    scnt = np.zeros_like(cnt)
    for dy in (-1, 0, 1):
        for dx in (-1, 0, 1):
            if dy == 0 and dx == 0:
                continue
            sacc += np.roll(acc, (dy, dx), axis=(0, 1))
            scnt += np.roll(cnt, (dy, dx), axis=(0, 1))
    n = scnt[ij[:, 1] + 1, ij[:, 0] + 1]
    ctx = sacc[ij[:, 1] + 1, ij[:, 0] + 1] / np.maximum(n, 1)[:, None]
    ctx[n == 0] = features[n == 0]
    return np.concatenate([features, ctx.astype(np.float32)], 1)


class TileClassifier(ClassifierMixin, BaseEstimator):
    """Random-forest tissue-class classifier on tile features.

    Parameters
    ----------
    n_estimators : int
        Trees.
    min_samples_leaf : int
    max_features : str or float
        Features tried per split (scikit-learn meaning).
    class_weight : {"balanced_subsample", "balanced", None}
        Balanced weights up-weight rare classes (vessels, thrombus, necrosis).
    n_jobs : int
    random_state : int or None
    ood : bool
        Fit the out-of-distribution model
        (:class:`~hccstrat.pathology.tile_ood.OodModel`); ``False``: every tile is in
        distribution.
    ood_components : int
        Most whitened PCA components of the OOD model.
    ood_quantile : float
        Quantile of the training tiles' OOD scores that sets the base threshold.
    ood_margin : float
        Threshold = training quantile × margin (read at prediction time, so it may
        be changed after fitting with ``set_params``).

    Attributes
    ----------
    classes_ : ndarray of str
        Classes seen in ``fit`` (may include ``vessel_tumour_thrombus``).
    n_features_in_ : int
    model_ : RandomForestClassifier
    ood_ : OodModel or None
        ``None`` when ``ood=False`` (or in a pickle saved before the OOD model).
    stain_target_ : (ndarray (3, 2), ndarray (2,)) or None
        Stains that tiles are normalised to before they are classified (set by
        :func:`hccstrat.pathology.time_batch.train_tile_classifier` with
        ``normalise_stains=True``); ``None``: tiles are used as read.
    """

    def __init__(
        self,
        n_estimators: int = 200,
        min_samples_leaf: int = 1,
        max_features: str | float = "sqrt",
        class_weight: str | None = "balanced_subsample",
        n_jobs: int = 1,
        random_state: int | None = 0,
        ood: bool = True,
        ood_components: int = 16,
        ood_quantile: float = 0.995,
        ood_margin: float = 2.5,
    ) -> None:
        self.n_estimators = n_estimators
        self.min_samples_leaf = min_samples_leaf
        self.max_features = max_features
        self.class_weight = class_weight
        self.n_jobs = n_jobs
        self.random_state = random_state
        self.ood = ood
        self.ood_components = ood_components
        self.ood_quantile = ood_quantile
        self.ood_margin = ood_margin

    def __setstate__(self, state: dict) -> None:
        # pickles written before the OOD model: new parameters at their defaults, no
        # OOD model (every tile in distribution); logged once, at load
        import inspect

        super().__setstate__(state)
        for k, p in inspect.signature(type(self).__init__).parameters.items():
            if k != "self":
                self.__dict__.setdefault(k, p.default)
        if hasattr(self, "model_") and "ood_" not in self.__dict__:
            self.ood_ = None
            log.warning(
                "this tile classifier was saved without an out-of-distribution model: "
                "every tile is treated as recognised; retrain it (`hccstrat wsi time "
                "--train`) to let the TIME panel abstain on unfamiliar tissue"
            )

    def fit(self, X: np.ndarray, y: np.ndarray) -> TileClassifier:
        """Fit on features ``X`` (N, D) and class names ``y`` (N,); ``None`` labels are dropped."""
        from sklearn.ensemble import RandomForestClassifier

        X = np.asarray(X, np.float32)
        y = np.asarray(y, dtype=object)
        if X.ndim != 2 or len(X) != len(y):
            raise ModelError(
                f"X must be (N, D) and y (N,), got {X.shape} and {y.shape}",
                hint="pass one feature row and one class name per tile",
            )
        keep = np.array([v is not None for v in y], bool)
        X, y = X[keep], y[keep].astype(str)
        unknown = sorted(set(y) - set(FINE_CLASSES))
        if unknown:
            raise ModelError(
                f"unknown tile classes {unknown}", hint=f"use names from {FINE_CLASSES}"
            )
        if len(set(y)) < 2:
            raise ModelError(
                f"need at least two tissue classes to fit, got {sorted(set(y))}",
                hint="annotate more regions or lower min_purity",
            )
        if self.class_weight not in ("balanced", "balanced_subsample", None):
            raise ConfigError(
                f"class_weight={self.class_weight!r}",
                hint="use 'balanced_subsample', 'balanced' or None",
            )
        self.model_ = RandomForestClassifier(
            n_estimators=self.n_estimators,
            min_samples_leaf=self.min_samples_leaf,
            max_features=self.max_features,
            class_weight=self.class_weight,
            n_jobs=self.n_jobs,
            random_state=self.random_state,
        ).fit(np.nan_to_num(X), y)
        self.classes_ = self.model_.classes_
        self.n_features_in_ = X.shape[1]
        self.stain_target_ = None
        if self.ood:
            if not (0.5 <= self.ood_quantile < 1 and self.ood_margin > 0
                    and self.ood_components >= 1):
                raise ConfigError(
                    f"ood_quantile={self.ood_quantile}, ood_margin={self.ood_margin}, "
                    f"ood_components={self.ood_components}",
                    hint="use 0.5 <= ood_quantile < 1, ood_margin > 0, ood_components >= 1",
                )
            self.ood_ = OodModel(
                self.ood_components, self.ood_quantile, random_state=self.random_state
            ).fit(np.nan_to_num(X), y)
        else:
            self.ood_ = None
        log.info("tile classifier fitted on %d tiles, classes %s", len(y), list(self.classes_))
        return self

    @property
    def ood_threshold_(self) -> float:
        """OOD score above which a tile is out of distribution (inf without OOD model)."""
        ood = getattr(self, "ood_", None)
        if ood is None:
            return float("inf")
        return float(ood.train_quantile_ * self.ood_margin)

    def ood_score(self, X: np.ndarray) -> np.ndarray:
        """Out-of-distribution score of each tile (N,); 0 everywhere without OOD model.

        Distance to the nearest class centroid in whitened feature space, in units of
        that class's spread (see :class:`OodModel`); compare with
        :attr:`ood_threshold_`.
        """
        X = self._check(X)
        ood = getattr(self, "ood_", None)
        if ood is None:
            return np.zeros(len(X))
        return ood.score(X)

    def in_distribution(self, X: np.ndarray) -> np.ndarray:
        """True for tiles like the training tiles (``ood_score <= ood_threshold_``)."""
        return self.ood_score(X) <= self.ood_threshold_

    def _check(self, X: np.ndarray) -> np.ndarray:
        if not hasattr(self, "model_"):
            raise NotFittedError(
                "TileClassifier is not fitted", hint="call fit() or TileClassifier.load()"
            )
        X = np.asarray(X, np.float32)
        if X.ndim != 2 or X.shape[1] != self.n_features_in_:
            raise ModelError(
                f"expected (N, {self.n_features_in_}) features, got {X.shape}",
                hint="use the encoder and context setting the classifier was trained with",
            )
        return X

    def predict_proba(self, X: np.ndarray) -> np.ndarray:
        """Class probabilities (N, len(classes_))."""
        X = self._check(X)
        if len(X) == 0:
            return np.zeros((0, len(self.classes_)))
        return self.model_.predict_proba(np.nan_to_num(X))

    def predict_fine(self, X: np.ndarray) -> np.ndarray:
        """Most probable class among :attr:`classes_` (thrombus kept apart)."""
        p = self.predict_proba(X)
        return self.classes_[p.argmax(1)] if len(p) else np.array([], dtype=object)

    def predict(self, X: np.ndarray) -> np.ndarray:
        """Most probable of the 7 reported classes (thrombus probability added to vessel)."""
        p = self.coarse_proba(X)
        return np.array(TILE_CLASSES, dtype=object)[p.argmax(1)] if len(p) else p[:, 0]

    def coarse_proba(self, X: np.ndarray) -> np.ndarray:
        """Probabilities of the 7 reported classes (N, 7), in :data:`TILE_CLASSES` order."""
        p = self.predict_proba(X)
        out = np.zeros((len(p), len(TILE_CLASSES)))
        for j, c in enumerate(self.classes_):
            out[:, TILE_CLASSES.index(str(to_coarse(np.array([c]))[0]))] += p[:, j]
        return out

    def score(self, X: np.ndarray, y: np.ndarray, sample_weight=None) -> float:
        """Accuracy on the 7 reported classes (``None`` labels ignored)."""
        y = np.asarray(y, dtype=object)
        keep = np.array([v is not None for v in y], bool)
        pred = self.predict(np.asarray(X)[keep])
        return float(np.mean(pred == to_coarse(y[keep]))) if keep.any() else float("nan")

    def save(self, path: str | Path, **metadata: Any) -> Path:
        """Pickle the fitted classifier with ``metadata`` (encoder name, context…).

        Only load files you trust: pickles can run code.
        """
        self._check(np.zeros((0, getattr(self, "n_features_in_", 0)), np.float32))
        path = Path(path)
        from hccstrat import __version__

        blob = {"format": _FORMAT, "hccstrat_version": __version__, "model": self, "meta": metadata}
        with atomic_path(path) as tmp, open(tmp, "wb") as fh:
            pickle.dump(blob, fh, protocol=pickle.HIGHEST_PROTOCOL)
        return path

    @classmethod
    def load(cls, path: str | Path, *, trusted: bool = False) -> tuple[TileClassifier, dict]:
        """Load a classifier written by :meth:`save`; returns ``(classifier, metadata)``.

        The pickle is read with an allow-list (:mod:`hccstrat.io.safe_pickle`);
        ``trusted=True`` lifts it, for a file whose author you trust completely.
        """
        path = Path(path)
        try:
            data = path.read_bytes()
            blob = pickle.loads(data) if trusted else restricted_loads(data, source=str(path))
        except ModelError:  # UnsafePickleError: refused, and says why
            raise
        except (OSError, pickle.UnpicklingError, EOFError, AttributeError, ImportError,
                TypeError, ValueError) as ex:  # not a pickle, or of another version
            raise InputFileError(
                f"cannot read tile classifier {path}: {ex}",
                hint="give a file written by TileClassifier.save / `hccstrat wsi time --train`",
            ) from ex
        if not isinstance(blob, dict) or blob.get("format") != _FORMAT:
            raise InputFileError(
                f"{path} is not a hccstrat tile classifier", hint="retrain and save it again"
            )
        return blob["model"], dict(blob.get("meta", {}))
