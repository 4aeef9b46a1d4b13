"""Shared machinery of the clinical scores: typed inputs, three-valued logic, reasons.

Scores read a canonical table once into :class:`Inputs` (numpy arrays, ``NaN`` for
missing) and decide with *three-valued* (Kleene) logic: every condition is a pandas
``BooleanArray`` that is ``True``, ``False`` or ``<NA>`` (not decidable from what is
recorded). A stage is given only when the conditions that decide it are definite, so
missing inputs make a result missing, never wrong.
"""

from __future__ import annotations

from collections.abc import Iterable

import numpy as np
import pandas as pd

from hccstrat.exceptions import DataValidationError, Problem, ValidationReport
from hccstrat.schema import coerce, spec

__all__ = [
    "DECIMALS",
    "SCORE_INPUTS",
    "Inputs",
    "certain",
    "cmp",
    "from_codes",
    "kleene",
    "reasons",
]

#: Canonical columns read by the scores (others are ignored).
SCORE_INPUTS: tuple[str, ...] = (
    "sex",
    "ecog",
    "ascites",
    "encephalopathy",
    "bilirubin_umol_l",
    "albumin_g_l",
    "inr",
    "afp_ng_ml",
    "afp_ge_400",
    "tumour_size_cm",
    "tumour_size_gt_5cm",
    "tumour_number",
    "tumour_multiple",
    "macrovascular_invasion",
    "extrahepatic_spread",
    "mvi",
    "bclc_recorded",
)

#: Rounding applied to numbers before they are compared with a cut-off, so that
#: unit-conversion noise (2.8 g/dL x 10 = 28.000000000000004 g/L) never moves a
#: value across a boundary. 1e-6 is far below any clinical precision.
DECIMALS = 6

_OPS = {
    "<": np.less,
    "<=": np.less_equal,
    ">": np.greater,
    ">=": np.greater_equal,
    "==": np.equal,
}

_CATEGORY_CODES = {
    "ascites": ("none", "mild", "moderate_severe"),
    "encephalopathy": ("none", "grade_1_2", "grade_3_4"),
}


def kleene(values: np.ndarray, known: np.ndarray) -> pd.arrays.BooleanArray:
    """Three-valued boolean array: ``values`` where ``known``, else ``<NA>``."""
    values = np.asarray(values, dtype=bool)
    known = np.asarray(known, dtype=bool)
    return pd.arrays.BooleanArray(values & known, ~known)


def cmp(x: np.ndarray, op: str, cut: float) -> pd.arrays.BooleanArray:
    """Compare a float array (``NaN`` = missing) with a cut-off, three-valued."""
    known = ~np.isnan(x)
    xr = np.round(np.where(known, x, 0.0), DECIMALS)
    return kleene(_OPS[op](xr, cut), known)


def certain(b: pd.arrays.BooleanArray) -> np.ndarray:
    """Rows where ``b`` is definitely ``True``."""
    return b.to_numpy(dtype=bool, na_value=False)


def from_codes(codes: np.ndarray, categories: Iterable[str], index: pd.Index) -> pd.Series:
    """Ordered categorical Series from integer codes (``-1`` = missing)."""
    cat = pd.Categorical.from_codes(
        np.asarray(codes, dtype=np.int64), list(categories), ordered=True
    )
    return pd.Series(cat, index=index)


def reasons(parts: Iterable[tuple[str, np.ndarray]], index: pd.Index) -> pd.Series:
    """Comma-separated list of the labels whose mask is true, per row (``<NA>`` if none).

    Labels repeated in ``parts`` are merged; their first position sets the order.
    Vectorised: rows are grouped by their bit pattern, one string is built per pattern.
    """
    merged: dict[str, np.ndarray] = {}
    for label, mask in parts:
        m = np.asarray(mask, dtype=bool)
        merged[label] = merged[label] | m if label in merged else m
    labels = list(merged)
    if not labels or len(index) == 0:
        return pd.Series(pd.NA, index=index, dtype="string")
    if len(labels) > 62:  # pragma: no cover - guards the bit packing
        raise ValueError("too many reason labels")
    code = np.zeros(len(index), dtype=np.int64)
    for i, label in enumerate(labels):
        code |= merged[label].astype(np.int64) << i

    def text(u) -> str | None:
        return ", ".join(lab for i, lab in enumerate(labels) if (int(u) >> i) & 1) or None

    if len(labels) <= 20:  # dense lookup table indexed by the bit pattern: O(n), no sort
        present = np.flatnonzero(np.bincount(code))
        lookup = np.empty(int(present.max()) + 1, dtype=object)
        for u in present:
            lookup[u] = text(u)
        values = lookup[code]
    else:
        uniq, inv = np.unique(code, return_inverse=True)
        values = np.array([text(u) for u in uniq], dtype=object)[np.ravel(inv)]
    return pd.Series(values, index=index, dtype="string")


class Inputs:
    """Score inputs of a canonical table as numpy arrays (``NaN`` = missing).

    Booleans are floats (1.0, 0.0, ``NaN``); ``ascites``, ``encephalopathy`` and
    ``bclc_recorded`` are codes 0, 1, 2... in the order of their categories; ``sex``
    is 1.0 for M and 0.0 for F.
    Columns absent from the table are all-missing.

    Raises
    ------
    DataValidationError
        If a score input holds a value that cannot be parsed or lies outside the
        schema's possible range (often a unit error); the report lists every one.
    """

    def __init__(self, df: pd.DataFrame) -> None:
        if not isinstance(df, pd.DataFrame):
            raise TypeError(f"scores need a pandas DataFrame, got {type(df).__name__}")
        self.index = df.index
        self.n = len(df)
        self.columns = frozenset(c for c in SCORE_INPUTS if c in df.columns)
        self._arrays: dict[str, np.ndarray] = {}
        report = ValidationReport(source="clinical scores input")
        for name in (c for c in SCORE_INPUTS if c in self.columns):
            self._arrays[name] = self._read(df, name, report)
        if report:
            raise DataValidationError(
                report,
                hint="correct the listed values (check units: bilirubin umol/L, albumin g/L, "
                "AFP ng/mL, size cm) before computing scores",
            )

    def _read(self, df: pd.DataFrame, name: str, report: ValidationReport) -> np.ndarray:
        """One column as an array; clean typed columns take a fast path, others go
        through :func:`hccstrat.schema.coerce`, which reports unparseable values."""
        cs = spec(name)
        arr = self._fast(df[name], name)
        if arr is None:
            cols = [name, "patient_id"] if "patient_id" in df.columns else [name]
            arr = self._convert(coerce(df[cols], report)[name], name)
        if cs.bounds is not None:
            lo, hi = cs.bounds
            with np.errstate(invalid="ignore"):
                bad = ~np.isnan(arr) & ((arr < lo) | (arr > hi))
            for pos in np.flatnonzero(bad):
                pid = df["patient_id"].iloc[pos] if "patient_id" in df.columns else None
                report.add(
                    Problem(
                        int(pos) + 1,
                        None if pd.isna(pid) else str(pid),
                        name,
                        arr[pos],
                        cs.expected() + " (outside the possible range)",
                    )
                )
            arr = np.where(bad, np.nan, arr)
        return arr

    @staticmethod
    def _fast(col: pd.Series, name: str) -> np.ndarray | None:
        """Array for an already clean column, or ``None`` when it needs coercion."""
        cs = spec(name)
        dtype = col.dtype
        if cs.kind in ("float", "int"):
            if not pd.api.types.is_numeric_dtype(dtype) or pd.api.types.is_bool_dtype(dtype):
                return None
            x = col.astype("Float64").to_numpy(dtype=float, na_value=np.nan)
            if cs.kind == "int" and np.any(~np.isnan(x) & (x != np.round(x))):
                return None  # fractional counts: coerce reports them
            return x
        if cs.kind == "bool":
            if pd.api.types.is_bool_dtype(dtype):
                return (
                    col.astype("boolean").astype("Float64").to_numpy(dtype=float, na_value=np.nan)
                )
            return None
        categories = _CATEGORY_CODES.get(name, cs.categories)
        if name == "sex":
            categories = ("F", "M")
        if (
            isinstance(dtype, pd.CategoricalDtype)
            or pd.api.types.is_object_dtype(dtype)
            or pd.api.types.is_string_dtype(dtype)
        ):
            values = col.astype("object") if isinstance(dtype, pd.CategoricalDtype) else col
            codes = pd.Categorical(values, categories=list(categories or ())).codes
            if np.any((codes < 0) & col.notna().to_numpy()):
                return None  # unknown spellings: coerce normalises or reports them
            return np.where(codes < 0, np.nan, codes.astype(float))
        return None

    @staticmethod
    def _convert(col: pd.Series, name: str) -> np.ndarray:
        """Array from a column already coerced by :func:`hccstrat.schema.coerce`."""
        cs = spec(name)
        if cs.kind in ("float", "int"):
            return col.astype("Float64").to_numpy(dtype=float, na_value=np.nan)
        if cs.kind == "bool":
            return col.astype("boolean").astype("Float64").to_numpy(dtype=float, na_value=np.nan)
        categories = ("F", "M") if name == "sex" else _CATEGORY_CODES.get(name, cs.categories)
        codes = pd.Categorical(col.astype("object"), categories=list(categories or ())).codes
        return np.where(codes < 0, np.nan, codes.astype(float))

    def get(self, name: str) -> np.ndarray:
        """Array of a score input (all ``NaN`` when the column is absent)."""
        if name not in SCORE_INPUTS:
            raise KeyError(f"{name!r} is not a score input")
        arr = self._arrays.get(name)
        return np.full(self.n, np.nan) if arr is None else arr

    def missing(self, name: str) -> np.ndarray:
        """Rows where ``name`` is missing."""
        return np.isnan(self.get(name))

    def flag(self, name: str) -> pd.arrays.BooleanArray:
        """A boolean input as a three-valued array."""
        x = self.get(name)
        return kleene(x == 1.0, ~np.isnan(x))

    # --- tumour burden from the number or, failing that, its categorical version ---

    def size_cmp(self, op: str, cut: float) -> pd.arrays.BooleanArray:
        """Largest tumour compared with ``cut`` cm, using ``tumour_size_gt_5cm`` if no size.

        The categorical version decides only what it can: ``gt_5cm`` true means
        ``size > cut`` for any ``cut <= 5``; false means ``size <= cut`` for ``cut >= 5``.
        """
        out = cmp(self.get("tumour_size_cm"), op, cut)
        gt5 = self.get("tumour_size_gt_5cm")
        fill = np.isnan(self.get("tumour_size_cm")) & ~np.isnan(gt5)
        if not fill.any():
            return out
        big, small = fill & (gt5 == 1.0), fill & (gt5 == 0.0)
        known = ~out.isna()
        values = out.to_numpy(dtype=bool, na_value=False)
        greater = op in (">", ">=")
        if cut <= 5:  # a tumour > 5 cm is > cut (and not <= cut)
            values = np.where(big, greater, values)
            known |= big
        if cut >= 5 and op in (">", "<="):  # a tumour <= 5 cm is <= cut
            values = np.where(small, not greater, values)
            known |= small
        return kleene(values, known)

    def number_cmp(self, op: str, k: int) -> pd.arrays.BooleanArray:
        """Number of nodules compared with ``k``, using ``tumour_multiple`` if no number.

        ``tumour_multiple`` false means exactly one nodule; true means two or more.
        """
        n = self.get("tumour_number")
        multi = self.get("tumour_multiple")
        out = cmp(n, op, k)
        fill = np.isnan(n) & ~np.isnan(multi)
        if not fill.any():
            return out
        known = ~out.isna()
        values = out.to_numpy(dtype=bool, na_value=False)
        one = fill & (multi == 0.0)
        two_plus = fill & (multi == 1.0)
        ops = _OPS
        values = np.where(one, ops[op](1, k), values)
        known |= one
        # with two or more nodules the answer is certain when it holds for 2 and for "many"
        at2, at_many = bool(ops[op](2, k)), bool(ops[op](10**6, k))
        if at2 == at_many:
            values = np.where(two_plus, at2, values)
            known |= two_plus
        return kleene(values, known)

    def burden_reasons(self, which: str, rows: np.ndarray) -> list[tuple[str, np.ndarray]]:
        """Reason labels for a lacking tumour size (``"size"``) or number (``"number"``).

        Says when only the categorical version was recorded and could not decide.
        """
        num, cat = (
            ("tumour_size_cm", "tumour_size_gt_5cm")
            if which == "size"
            else ("tumour_number", "tumour_multiple")
        )
        no_num = self.missing(num) & rows
        only_cat = no_num & ~self.missing(cat)
        return [(num, no_num & ~only_cat), (f"{num} (only {cat} given)", only_cat)]
