"""Discrimination: Harrell's and Uno's concordance, cumulative/dynamic time-dependent AUC.

All functions take a survival target ``y`` (fields ``event``, ``time``; months) and a
risk score (higher = worse). Optional ``weights`` of shape ``(B, n)`` evaluate ``B``
bootstrap resamples at once (one value per row).

Harrell's C is computed in O(n log² n) by counting, level by level of a binary
partition of the time order, the pairs whose earlier member is an event (a
vectorised merge-sort count, no Python loop over patients). Pairs are comparable as
in lifelines and scikit-survival: the earlier time is an event; at tied times an
event is comparable to a censored case; tied risks count one half.
"""

from __future__ import annotations

import numpy as np

from hccstrat.evaluation._core import as_weights, censoring_at, check_pred, check_surv, squeeze
from hccstrat.exceptions import DataValidationError, Problem, ValidationReport

__all__ = ["concordance_sums", "cumulative_dynamic_auc", "harrell_c", "uno_c"]


def concordance_sums(
    time: np.ndarray,
    event: np.ndarray,
    risk: np.ndarray,
    point_weight: np.ndarray,
    query_weight: np.ndarray,
    *,
    chunk: int = 128,
) -> tuple[np.ndarray, np.ndarray]:
    """Weighted concordant and comparable pair sums.

    For every comparable pair (i, j) — i an event, j leaving later (or censored at the
    same time) — adds ``point_weight[b, i] * query_weight[b, j]`` to the denominator
    and that times 1 (risk_i > risk_j) or 0.5 (tied risks) to the numerator.

    Parameters
    ----------
    time, event, risk : ndarray (n,)
    point_weight, query_weight : ndarray (B, n)
        Weight of each patient as the earlier (event) and as the later member.
    chunk : int
        Resamples processed together (memory bound).

    Returns
    -------
    numerator, denominator : ndarray (B,)
    """
    n = time.shape[0]
    died = np.flatnonzero(event)
    # combined sequence: every patient as a query, every event also as a point.
    # order at equal times: event queries < points < censored queries
    seq_subject = np.concatenate([np.arange(n), died])
    is_point = np.concatenate([np.zeros(n, bool), np.ones(died.size, bool)])
    typecode = np.where(is_point, 1, np.where(event[seq_subject], 0, 2))
    order = np.lexsort((typecode, time[seq_subject]))
    seq_subject, is_point = seq_subject[order], is_point[order]
    rr = np.unique(risk, return_inverse=True)[1].astype(np.int64)[seq_subject]
    m = seq_subject.size
    big = np.int64(rr.max() + 2) if m else np.int64(1)
    pos = np.arange(m, dtype=np.int64)
    n_b = point_weight.shape[0]
    num = np.zeros(n_b)
    den = np.zeros(n_b)
    levels = int(np.ceil(np.log2(max(m, 2))))
    unweighted = n_b == 1 and np.all(point_weight == 1) and np.all(query_weight == 1)
    for k in range(levels):
        blk = pos >> (k + 1)
        side = (pos >> k) & 1
        left = is_point & (side == 0)
        right = ~is_point & (side == 1)
        if not left.any() or not right.any():
            continue
        keys = blk[left] * big + rr[left]
        o = np.argsort(keys, kind="stable")
        sk = keys[o]
        qb = blk[right] * big
        qr = qb + rr[right]
        i_start = np.searchsorted(sk, qb, "left")
        i_lo = np.searchsorted(sk, qr, "left")
        i_hi = np.searchsorted(sk, qr, "right")
        i_end = np.searchsorted(sk, qb + big, "left")
        if unweighted:
            num += (i_end - i_hi).sum() + 0.5 * (i_hi - i_lo).sum()
            den += (i_end - i_start).sum()
            continue
        lsub = seq_subject[left][o]
        rsub = seq_subject[right]
        for b0 in range(0, n_b, chunk):
            pw = point_weight[b0 : b0 + chunk][:, lsub]
            cs = np.zeros((pw.shape[0], pw.shape[1] + 1))
            np.cumsum(pw, axis=1, out=cs[:, 1:])
            qw = query_weight[b0 : b0 + chunk][:, rsub]
            c_end, c_hi = cs[:, i_end], cs[:, i_hi]
            num[b0 : b0 + chunk] += ((c_end - c_hi + 0.5 * (c_hi - cs[:, i_lo])) * qw).sum(axis=1)
            den[b0 : b0 + chunk] += ((c_end - cs[:, i_start]) * qw).sum(axis=1)
    return num, den


def _no_pairs(where: str) -> DataValidationError:
    return DataValidationError(
        ValidationReport(
            [
                Problem(
                    None,
                    None,
                    where,
                    "no comparable pairs",
                    "at least one event followed by a longer follow-up",
                )
            ],
            source=where,
        ),
        hint="check the event indicator and follow-up times",
    )


def harrell_c(y: np.ndarray, risk, *, weights=None):
    """Harrell's concordance index.

    Parameters
    ----------
    y : structured array
        Survival target.
    risk : array-like (n,)
        Risk score, higher = earlier event.
    weights : array-like (n,) or (B, n), optional
        Case weights (bootstrap counts); 2-D gives one C per row.

    Returns
    -------
    float or ndarray (B,)
        Equal to ``lifelines.utils.concordance_index(time, -risk, event)`` and to
        ``sksurv.metrics.concordance_index_censored``.
    """
    y = check_surv(y)
    n = y.shape[0]
    risk = check_pred(risk, n, where="risk")
    w, two_d = as_weights(weights, n)
    num, den = concordance_sums(
        np.asarray(y["time"], float), np.asarray(y["event"], bool), risk, w, w
    )
    if np.any(den == 0) and not two_d:
        raise _no_pairs("harrell_c")
    with np.errstate(invalid="ignore", divide="ignore"):
        return squeeze(num / den, two_d)


def uno_c(y: np.ndarray, risk, *, tau: float | None = None, weights=None, y_train=None):
    """Uno's IPCW concordance index truncated at ``tau``.

    Events before ``tau`` are weighted by 1/G(T−)², G the Kaplan–Meier estimate of the
    censoring distribution (from ``y_train`` when given, else from ``y``). Matches
    ``sksurv.metrics.concordance_index_ipcw`` when no event time equals a censoring
    time (tie convention as in :func:`cumulative_dynamic_auc`).
    """
    y = check_surv(y)
    n = y.shape[0]
    risk = check_pred(risk, n, where="risk")
    w, two_d = as_weights(weights, n)
    time = np.asarray(y["time"], float)
    event = np.asarray(y["event"], bool)
    if y_train is None:
        g = censoring_at(y, time, w)  # (B, n)
    else:
        y_train = check_surv(y_train, where="y_train")
        g = np.broadcast_to(censoring_at(y_train, time, np.ones((1, y_train.shape[0]))), w.shape)
    keep = event & (time < tau if tau is not None else True)
    with np.errstate(divide="ignore"):
        pw = np.where(keep & (g > 0), w / np.where(g > 0, g, 1.0) ** 2, 0.0)
    num, den = concordance_sums(time, event, risk, pw, w)
    if np.any(den == 0) and not two_d:
        raise _no_pairs("uno_c")
    with np.errstate(invalid="ignore", divide="ignore"):
        return squeeze(num / den, two_d)


def cumulative_dynamic_auc(y: np.ndarray, risk, times, *, weights=None, y_train=None):
    """Cumulative/dynamic time-dependent AUC with IPCW (Uno 2007; Hung & Chiang 2010).

    Cases at ``t``: events with T <= t, weighted 1/G(T−); controls: T > t.

    Parameters
    ----------
    y : structured array
    risk : array-like (n,) or (n, len(times))
        Risk score (higher = worse); a 2-D array gives a score per time.
    times : float or sequence of float
        Horizons in months.
    weights : (n,) or (B, n), optional
    y_train : structured array, optional
        Data for the censoring distribution (default ``y``).

    Returns
    -------
    ndarray (len(times),) or (B, len(times))
        NaN at a time without cases or without controls. Matches
        ``sksurv.metrics.cumulative_dynamic_auc`` with ``survival_train = y`` when no
        event time equals a censoring time; at such ties G is the plain reverse
        Kaplan–Meier taken at T− (as in :func:`uno_c` and
        :func:`hccstrat.evaluation.brier.brier_score`), while scikit-survival drops the
        tied events from the censoring risk set and takes G(T).
    """
    y = check_surv(y)
    n = y.shape[0]
    times = np.atleast_1d(np.asarray(times, dtype=float))
    r2 = np.asarray(risk, dtype=float)
    r2 = np.repeat(r2[:, None], times.size, axis=1) if r2.ndim == 1 else r2
    if r2.shape != (n, times.size) or not np.isfinite(r2).all():
        check_pred(np.zeros(0), n, where="risk")
    w, two_d = as_weights(weights, n)
    time = np.asarray(y["time"], float)
    event = np.asarray(y["event"], bool)
    if y_train is None:
        g = censoring_at(y, time, w)
    else:
        g = np.broadcast_to(
            censoring_at(
                check_surv(y_train, where="y_train"), time, np.ones((1, y_train.shape[0]))
            ),
            w.shape,
        )
    with np.errstate(divide="ignore"):
        ipcw = np.where(g > 0, 1.0 / np.where(g > 0, g, 1.0), 0.0)
    out = np.full((w.shape[0], times.size), np.nan)
    for k, t in enumerate(times):
        case = event & (time <= t)
        ctrl = time > t
        if not case.any() or not ctrl.any():
            continue
        r = r2[:, k]
        oc = np.argsort(r[ctrl], kind="stable")
        rc = r[ctrl][oc]
        wc = w[:, ctrl][:, oc]
        cs = np.zeros((w.shape[0], wc.shape[1] + 1))
        np.cumsum(wc, axis=1, out=cs[:, 1:])
        lo = np.searchsorted(rc, r[case], "left")
        hi = np.searchsorted(rc, r[case], "right")
        wcase = (w * ipcw)[:, case]
        score = (cs[:, lo] + 0.5 * (cs[:, hi] - cs[:, lo])) * wcase
        with np.errstate(invalid="ignore", divide="ignore"):
            out[:, k] = score.sum(axis=1) / (wcase.sum(axis=1) * cs[:, -1])
    return out if two_d else out[0]
