"""Synthetic two-reader annotations with known disagreement and an arbiter.

From a ground-truth label map (e.g. a synthetic slide's ``*.labels.png``), each of two
readers mislabels ``n_errors`` blob-shaped patches of tissue with a plausible confusion
(:data:`CONFUSIONS`: tumour ↔ normal liver, immune-dense → stroma, necrosis → tumour,
…). The two readers' error patches never overlap, so wherever they agree they are
right, and every disagreement is one reader's error. The arbiter labels the
disagreement regions only: right (the truth) with probability ``arbiter_accuracy`` per
region, otherwise the wrong reader's label. ``arbiter_right`` records which.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from pathlib import Path

import numpy as np
from scipy import ndimage as ndi

from hccstrat.exceptions import ConfigError

__all__ = ["CONFUSIONS", "ReaderSet", "make_reader_annotations"]

#: true class code → code a reader may confuse it with (codes of synthetic CLASS_CODES)
CONFUSIONS: dict[int, int] = {1: 5, 5: 1, 3: 2, 2: 3, 4: 1, 6: 2, 7: 1}


@dataclass
class ReaderSet:
    """Truth, two readers, the arbiter's map and where the arbiter was right.

    Attributes
    ----------
    truth, reader1, reader2, arbiter : ndarray uint8 (h, w)
        Label maps (``arbiter`` is 0 outside the disagreement regions).
    arbiter_right : ndarray bool (h, w)
        Disagreement pixels where the arbiter gave the true label.
    downsample : float
        Level-0 pixels per label pixel.
    paths : dict
        GeoJSON files written by :meth:`write` (reader name → path).
    """

    truth: np.ndarray
    reader1: np.ndarray
    reader2: np.ndarray
    arbiter: np.ndarray
    arbiter_right: np.ndarray
    downsample: float
    paths: dict[str, Path] = field(default_factory=dict)

    def write(self, out_dir: str | Path, *, stem: str = "slide") -> dict[str, Path]:
        """Write ``<stem>.<reader>.geojson`` for reader1, reader2 and arbiter (QuPath style)."""
        from hccstrat.pathology.annotate import label_map_to_geojson, write_geojson

        out = Path(out_dir)
        for name in ("reader1", "reader2", "arbiter"):
            fc = label_map_to_geojson(getattr(self, name), self.downsample)
            self.paths[name] = write_geojson(out / f"{stem}.{name}.geojson", fc)
        return dict(self.paths)


def make_reader_annotations(
    truth: np.ndarray,
    *,
    downsample: float,
    n_errors: int = 6,
    error_radius: float = 6.0,
    arbiter_accuracy: float = 0.8,
    ignore_codes: tuple[int, ...] = (8,),
    seed: int = 0,
) -> ReaderSet:
    """Simulate two readers and an arbiter on a truth label map.

    Parameters
    ----------
    truth : ndarray of uint8 (h, w)
        Ground-truth codes (0 background).
    downsample : float
        Level-0 pixels per label pixel (kept for GeoJSON export).
    n_errors : int
        Error patches per reader.
    error_radius : float
        Typical patch radius in label pixels.
    arbiter_accuracy : float
        Probability that the arbiter labels a disagreement region correctly.
    ignore_codes : tuple of int
        Codes not annotated by readers (pen, folds): set to 0 in every map.
    seed : int

    Returns
    -------
    ReaderSet
    """
    if not (0 <= arbiter_accuracy <= 1) or n_errors < 0 or error_radius <= 0:
        raise ConfigError(
            f"invalid reader simulation: n_errors={n_errors}, error_radius={error_radius}, "
            f"arbiter_accuracy={arbiter_accuracy}",
            hint="use n_errors >= 0, error_radius > 0 and 0 <= arbiter_accuracy <= 1",
        )
    rng = np.random.default_rng(seed)
    t = np.asarray(truth, np.uint8).copy()
    t[np.isin(t, ignore_codes)] = 0
    h, w = t.shape
    yy, xx = np.mgrid[0:h, 0:w]
    taken = np.zeros((h, w), bool)
    readers = []
    for _r in range(2):
        lab = t.copy()
        cand = np.argwhere(np.isin(t, list(CONFUSIONS)) & ~taken)
        for _ in range(n_errors):
            if len(cand) == 0:
                break
            cy, cx = cand[rng.integers(len(cand))]
            rad = error_radius * rng.uniform(0.6, 1.4)
            wob = ndi.gaussian_filter(rng.standard_normal((h, w)), 3) * rad * 3
            blob = np.hypot(yy - cy, xx - cx) + wob <= rad
            blob &= (t == t[cy, cx]) & ~ndi.binary_dilation(taken, iterations=2)
            lab[blob] = CONFUSIONS[int(t[cy, cx])]
            taken |= blob
            cand = cand[~taken[cand[:, 0], cand[:, 1]]]
        readers.append(lab)
    r1, r2 = readers
    dis = r1 != r2
    comp, n = ndi.label(dis)
    arbiter = np.zeros_like(t)
    right = np.zeros((h, w), bool)
    for k in range(1, n + 1):
        m = comp == k
        if rng.random() < arbiter_accuracy:
            arbiter[m] = t[m]
            right |= m
        else:  # sides with the reader who is wrong here
            wrong = np.where(r1[m] != t[m], r1[m], r2[m])
            arbiter[m] = wrong
    return ReaderSet(
        truth=t, reader1=r1, reader2=r2, arbiter=arbiter, arbiter_right=right,
        downsample=float(downsample),
    )
