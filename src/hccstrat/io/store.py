"""Per-slide HDF5 feature store and batch manifests (DESIGN §6).

Feature file (one per slide, written to a temporary file then renamed):

* ``features`` float32 (N, D); ``coords`` int64 (N, 2) level-0 (x, y) top-left;
* attributes on the file *and* on ``coords`` (CLAM/TRIDENT read the latter):
  ``patch_size``, ``patch_size_level0``, ``mpp``, ``target_mpp``, ``encoder``,
  ``encoder_sha256``, ``slide_sha256``, ``hccstrat_version``, ``created``, plus any
  extra attributes given (e.g. ``patch_level``).

Manifest (CSV, one row per input): ``slide_id``, ``input_path``, ``status``
(ok/failed/skipped), ``error_code``, ``error_message``, ``output_path``, ``sha256`` (of
the output), plus stage-specific numbers. It is rewritten atomically after every slide,
so an interrupted batch resumes from it.
"""

from __future__ import annotations

import datetime as _dt
import os
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd

from hccstrat import __version__
from hccstrat.exceptions import InputFileError
from hccstrat.io.atomic import atomic_path, atomic_write, sha256_file

__all__ = ["MANIFEST_COLUMNS", "FeatureFile", "Manifest", "read_features", "write_features"]

MANIFEST_COLUMNS = [
    "slide_id",
    "input_path",
    "status",
    "error_code",
    "error_message",
    "output_path",
    "sha256",
]


def write_features(
    path: str | os.PathLike, features: np.ndarray, coords: np.ndarray, **attrs: Any
) -> str:
    """Write one slide's features atomically; returns the file's SHA-256.

    Parameters
    ----------
    path : path-like
    features : ndarray (N, D)
    coords : ndarray (N, 2)
        Level-0 top-left (x, y).
    **attrs
        Attributes (see the module docstring); ``hccstrat_version`` and ``created``
        are added.
    """
    import h5py

    features = np.asarray(features, np.float32)
    coords = np.asarray(coords, np.int64)
    if features.ndim != 2 or coords.shape != (len(features), 2):
        raise ValueError(f"features {features.shape} and coords {coords.shape} do not match")
    meta = {
        **attrs,
        "hccstrat_version": __version__,
        "created": _dt.datetime.now(_dt.UTC).isoformat(timespec="seconds"),
    }
    with atomic_path(path) as tmp:
        with h5py.File(tmp, "w") as f:
            f.create_dataset("features", data=features, chunks=True if len(features) else None)
            c = f.create_dataset("coords", data=coords)
            for k, v in meta.items():
                if v is None:
                    continue
                f.attrs[k] = v
                c.attrs[k] = v
    return sha256_file(path)


@dataclass
class FeatureFile:
    """Contents of a feature file."""

    features: np.ndarray
    coords: np.ndarray
    attrs: dict[str, Any]


def read_features(path: str | os.PathLike) -> FeatureFile:
    """Read a feature file written by :func:`write_features` (or CLAM/TRIDENT)."""
    import h5py

    try:
        with h5py.File(path, "r") as f:
            attrs = {k: (v.item() if hasattr(v, "item") else v) for k, v in f.attrs.items()}
            attrs.update(
                {
                    k: (v.item() if hasattr(v, "item") else v)
                    for k, v in f["coords"].attrs.items()
                    if k not in attrs
                }
            )
            return FeatureFile(np.asarray(f["features"]), np.asarray(f["coords"]), attrs)
    except (OSError, KeyError) as ex:
        raise InputFileError(
            f"cannot read feature file {path}: {ex}", hint="rerun the embed step for this slide"
        ) from ex


class Manifest:
    """A batch job's per-input status table, persisted as CSV.

    Parameters
    ----------
    path : path-like
        CSV file; loaded when it exists.
    """

    def __init__(self, path: str | os.PathLike) -> None:
        self.path = Path(path)
        self.rows: dict[str, dict[str, Any]] = {}
        if self.path.exists():
            # identifiers and paths stay text: slide '00123' must not come back as 123
            df = pd.read_csv(self.path, dtype=dict.fromkeys([*MANIFEST_COLUMNS, "settings"], str))
            for r in df.to_dict("records"):
                self.rows[str(r["slide_id"])] = {
                    k: (None if pd.isna(v) else v) for k, v in r.items()
                }

    def done(self, slide_id: str, settings: str | None = None) -> bool:
        """True when the slide finished before and its output still has the recorded checksum.

        With ``settings`` (a job's settings fingerprint), also only when the slide was
        processed with those settings; a row that recorded none (a manifest written
        before settings were recorded) counts as processed with them.
        """
        r = self.rows.get(slide_id)
        if not r or r.get("status") not in ("ok", "skipped") or not r.get("output_path"):
            return False
        if settings is not None and r.get("settings") not in (None, settings):
            return False
        out = Path(str(r["output_path"]))
        return out.exists() and (not r.get("sha256") or sha256_file(out) == r["sha256"])

    def record(self, slide_id: str, **values: Any) -> None:
        """Set (and persist) the row of ``slide_id``."""
        row = {c: None for c in MANIFEST_COLUMNS}
        row.update(self.rows.get(slide_id, {}))
        row.update(
            values,
            slide_id=slide_id,
            updated=_dt.datetime.now(_dt.UTC).isoformat(timespec="seconds"),
        )
        self.rows[slide_id] = row
        self.save()

    def to_frame(self) -> pd.DataFrame:
        df = pd.DataFrame(list(self.rows.values()))
        if df.empty:
            return pd.DataFrame(columns=MANIFEST_COLUMNS)
        cols = MANIFEST_COLUMNS + [c for c in df.columns if c not in MANIFEST_COLUMNS]
        return df.reindex(columns=cols)

    def save(self) -> None:
        with atomic_write(self.path) as fh:
            self.to_frame().to_csv(fh, index=False)
