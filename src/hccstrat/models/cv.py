"""Cross-validation for hccstrat models: patient-grouped and leave-one-centre-out.

The splitters follow the scikit-learn splitter protocol, so they plug into
:func:`sklearn.model_selection.cross_validate`, ``GridSearchCV`` and
``RandomizedSearchCV`` with any hccstrat estimator (whose ``score`` is Harrell's C).
Groups are read from the table itself (``patient_id`` or ``centre``) unless given.
"""

from __future__ import annotations

from collections.abc import Iterator

import numpy as np
import pandas as pd
from sklearn.base import clone
from sklearn.model_selection import GroupKFold

from hccstrat.exceptions import ModelError

__all__ = ["LeaveOneCentreOut", "PatientGroupKFold", "cross_validate_model"]


def _groups(X, groups, column: str) -> np.ndarray:
    if groups is not None:
        return np.asarray(groups)
    if isinstance(X, pd.DataFrame) and column in X.columns:
        return X[column].astype(str).to_numpy()
    raise ModelError(
        f"cannot group rows: no groups given and no '{column}' column",
        hint=f"pass groups=... or include the '{column}' column",
    )


class PatientGroupKFold:
    """K-fold CV keeping all rows of a patient in one fold (groups = ``patient_id``).

    Parameters
    ----------
    n_splits : int
    shuffle : bool
        Shuffle patients before assigning folds.
    random_state : int or None
    """

    def __init__(
        self, n_splits: int = 5, shuffle: bool = True, random_state: int | None = 0
    ) -> None:
        self.n_splits = n_splits
        self.shuffle = shuffle
        self.random_state = random_state

    def get_n_splits(self, X=None, y=None, groups=None) -> int:
        """Number of folds."""
        return self.n_splits

    def split(self, X, y=None, groups=None) -> Iterator[tuple[np.ndarray, np.ndarray]]:
        """Yield (train, test) row indices."""
        g = _groups(X, groups, "patient_id")
        uniq = np.unique(g)
        if len(uniq) < self.n_splits:
            raise ModelError(
                f"{len(uniq)} patients for {self.n_splits} folds", hint="use fewer folds"
            )
        if self.shuffle:
            rng = np.random.default_rng(self.random_state)
            codes = {p: i for i, p in enumerate(rng.permutation(uniq))}
            g = np.array([codes[p] for p in g])
        yield from GroupKFold(self.n_splits).split(np.zeros(len(g)), groups=g)


class LeaveOneCentreOut:
    """Each centre in turn is the test set (groups = ``centre``)."""

    def get_n_splits(self, X=None, y=None, groups=None) -> int:
        """Number of centres."""
        return len(np.unique(_groups(X, groups, "centre")))

    def split(self, X, y=None, groups=None) -> Iterator[tuple[np.ndarray, np.ndarray]]:
        """Yield (train, test) row indices, one split per centre."""
        g = _groups(X, groups, "centre")
        uniq = np.unique(g)
        if len(uniq) < 2:
            raise ModelError(
                "leave-one-centre-out needs at least two centres",
                hint="use PatientGroupKFold for single-centre data",
            )
        for c in uniq:
            yield np.flatnonzero(g != c), np.flatnonzero(g == c)


def cross_validate_model(model, X: pd.DataFrame, y, cv=None, *, progress=None) -> pd.DataFrame:
    """Fit clones of ``model`` per split and score each test set (Harrell's C).

    A split whose fit fails is recorded with its error and the rest go on.

    Returns
    -------
    DataFrame
        One row per split: ``split``, ``test_group`` (centre when LOCO), ``n_train``,
        ``n_test``, ``c_index``, ``error``.
    """
    cv = cv or PatientGroupKFold()
    rows = []
    for i, (tr, te) in enumerate(cv.split(X, y)):
        if progress is not None:
            progress(f"cross-validation split {i + 1}")
        group = None
        if isinstance(cv, LeaveOneCentreOut) and "centre" in X.columns:
            group = str(X["centre"].iloc[te[0]])
        row = {
            "split": i + 1,
            "test_group": group,
            "n_train": len(tr),
            "n_test": len(te),
            "c_index": np.nan,
            "error": None,
        }
        try:
            fitted = clone(model).fit(X.iloc[tr], y[tr])
            row["c_index"] = fitted.score(X.iloc[te], y[te])
        except (ModelError, ValueError) as err:
            row["error"] = f"{type(err).__name__}: {err}"
        rows.append(row)
    return pd.DataFrame(rows)
