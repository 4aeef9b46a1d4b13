"""Split a feature table by centre into the per-centre data of a federation.

Used by the simulation and the tests; in a real deployment each hospital builds its
own :class:`~hccstrat.distributed._fed_models.CentreData` from its local table.
"""

from __future__ import annotations

import numpy as np
import pandas as pd

from hccstrat.distributed._fed_models import CentreData
from hccstrat.exceptions import ConfigError

__all__ = [
    "centres_from_cohort",
    "centres_from_frame",
    "export_centre_tables",
    "read_centre_table",
]


def centres_from_frame(
    X: pd.DataFrame,
    y: np.ndarray,
    centre,
    *,
    test_size: float = 0.3,
    seed: int = 0,
    min_patients: int = 20,
) -> dict[str, tuple[CentreData, CentreData | None]]:
    """Per-centre (train, test) data from one table.

    Parameters
    ----------
    X : DataFrame (n, p)
        Numeric covariates, no missing values.
    y : structured array (n,)
        Survival target (``event``, ``time`` in months).
    centre : array-like (n,)
        Centre label of each row.
    test_size : float
        Fraction of each centre held out for validation (0 = no test split).
    seed : int
    min_patients : int
        Centres with fewer patients are left out (logged in the returned dict's keys).
    """
    if not 0 <= test_size < 1:
        raise ConfigError(f"test_size={test_size} must be in [0, 1)", hint="e.g. 0.3")
    centre = np.asarray(centre).astype(str)
    Xv = np.asarray(X, np.float64)
    if len(centre) != len(Xv) or len(y) != len(Xv):
        raise ConfigError(
            f"X has {len(Xv)} rows, y {len(y)}, centre {len(centre)}",
            hint="pass aligned covariates, target and centre labels",
        )
    out: dict[str, tuple[CentreData, CentreData | None]] = {}
    rng = np.random.default_rng(seed)
    for name in sorted(set(centre)):
        idx = np.flatnonzero(centre == name)
        if len(idx) < min_patients:
            continue
        idx = rng.permutation(idx)
        n_test = round(test_size * len(idx))
        te, tr = idx[:n_test], idx[n_test:]

        def part(ix, nm=name):
            return CentreData(Xv[ix], y["time"][ix], y["event"][ix], name=nm)

        out[name] = (part(tr), part(te) if n_test else None)
    return out


def centres_from_cohort(
    cohort, *, endpoint: str = "rfs", test_size: float = 0.3, seed: int = 0
) -> tuple[dict[str, tuple[CentreData, CentreData | None]], list[str]]:
    """Federation data from a synthetic cohort: clinical design matrix split by centre.

    Returns
    -------
    (centres, feature_names)
    """
    from hccstrat.clinical.design import clinical_design_matrix
    from hccstrat.clinical.scores import compute_scores
    from hccstrat.survival import endpoint as make_endpoint

    clinical = cohort.clinical.reset_index(drop=True)
    X = clinical_design_matrix(clinical, compute_scores(clinical))
    y = make_endpoint(clinical, endpoint)
    return (
        centres_from_frame(X, y, clinical["centre"], test_size=test_size, seed=seed),
        list(X.columns),
    )


def read_centre_table(
    path,
    centre: str,
    *,
    time_col: str = "time",
    event_col: str = "event",
    features: list[str] | None = None,
    test_size: float = 0.3,
    seed: int = 0,
) -> tuple[CentreData, CentreData | None]:
    """One hospital's CSV (covariates + follow-up) as its (train, test) data.

    Parameters
    ----------
    path : path-like
        CSV with ``time_col`` (months), ``event_col`` (0/1) and numeric covariates.
    centre : str
        This centre's unique name.
    features : list of str, optional
        Covariates in the order agreed by the federation (default: every other column
        in file order).
    """
    from hccstrat.exceptions import (
        DataValidationError,
        InputFileError,
        Problem,
        ValidationReport,
    )
    from hccstrat.survival import make_surv

    try:
        df = pd.read_csv(path)
    except (OSError, ValueError) as err:
        raise InputFileError(f"cannot read {path}: {err}", hint="give a CSV file") from err
    features = features or [c for c in df.columns if c not in (time_col, event_col)]
    report = ValidationReport(source=str(path))
    for c in [time_col, event_col, *features]:
        if c not in df:
            report.add(Problem(None, None, c, "(missing column)", "a column of the table"))
        elif not pd.api.types.is_numeric_dtype(df[c]) or df[c].isna().any():
            report.add(Problem(None, None, c, str(df[c].dtype), "numbers without gaps"))
    if report:
        raise DataValidationError(report, hint="use the federation's agreed columns")
    y = make_surv(df[event_col].astype(bool).to_numpy(), df[time_col].to_numpy(float))
    parts = centres_from_frame(df[features], y, np.full(len(df), centre), test_size=test_size,
                               seed=seed, min_patients=1)
    return parts[centre]


def export_centre_tables(cohort, out_dir, *, endpoint: str = "rfs") -> list:
    """Write the cohort's design matrix + RFS as one CSV per centre (demo deployments)."""
    from pathlib import Path

    from hccstrat.clinical.design import clinical_design_matrix
    from hccstrat.clinical.scores import compute_scores
    from hccstrat.io.atomic import atomic_write
    from hccstrat.survival import endpoint as make_endpoint

    clinical = cohort.clinical.reset_index(drop=True)
    X = clinical_design_matrix(clinical, compute_scores(clinical))
    y = make_endpoint(clinical, endpoint)
    X["time"], X["event"] = y["time"], y["event"].astype(int)
    paths = []
    for name, part in X.groupby(clinical["centre"].astype(str)):
        p = Path(out_dir) / f"{name}.csv"
        with atomic_write(p) as fh:
            part.to_csv(fh, index=False)
        paths.append(p)
    return paths
