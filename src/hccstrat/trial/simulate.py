"""Sample size and in-silico trials.

- :func:`schoenfeld_events`, :func:`sample_size_rfs`, :func:`analytic_power`: events and
  patients for a log-rank comparison of RFS (Schoenfeld 1983; exponential event
  probability with uniform accrual, fixed follow-up and exponential drop-out).
- :func:`run_replicates`: the engine. Each replicate samples ``n`` patients from a
  table of per-patient, per-regimen 24-month RFS (an oracle), randomises 1:1, lets each
  arm's *policy* choose a regimen, draws outcomes with an injectable outcome model, and
  computes a vectorised log-rank test (O−E, V, z), a one-step HR estimate
  ``exp((O−E)/V)`` and the KM 24-month RFS per arm, for all replicates at once.
  Replicate chunks run in parallel (joblib) with seeds spawned from one
  ``SeedSequence``, so results do not depend on the number of workers.
- :func:`simulate_power`: a two-arm trial with a known HR (Weibull, proportional
  hazards), for power checks and the benchmark.
- :func:`insilico_trial`: model-assisted vs standard care on a synthetic cohort's
  oracle (``true_rfs24_<regimen>`` columns).

Outcome models are callables ``outcome(s24, rng) -> (time, event)`` where ``s24`` is
the (replicates x n) matrix of each patient's true 24-month RFS under the regimen
given; :class:`WeibullOutcome` is the default (continuous times, so no ties).
"""

from __future__ import annotations

import logging
import math
import time as _time
from collections.abc import Callable
from dataclasses import dataclass

import numpy as np
import pandas as pd
from scipy import stats

from hccstrat.exceptions import ConfigError

__all__ = [
    "REGIMENS",
    "WeibullOutcome",
    "analytic_power",
    "event_probability",
    "insilico_trial",
    "run_replicates",
    "sample_size_rfs",
    "schoenfeld_events",
    "simulate_power",
    "vectorised_logrank",
]

log = logging.getLogger(__name__)

#: Adjuvant regimens of NCT07417800 (oracle column suffixes).
REGIMENS = ("surgery_alone", "TACE", "TACE+TKI")


def schoenfeld_events(hr: float, *, alpha: float = 0.05, power: float = 0.8,
                      allocation: float = 0.5, sides: int = 2) -> int:
    """Events needed to detect ``hr`` with a log-rank test (Schoenfeld).

    ``d = (z_{1-alpha/sides} + z_{power})^2 / (p (1 - p) log(hr)^2)``, rounded up.
    """
    if not 0 < hr != 1:
        raise ConfigError(f"hazard ratio {hr} must be positive and differ from 1")
    for name, v in (("alpha", alpha), ("power", power), ("allocation", allocation)):
        if not 0 < v < 1:
            raise ConfigError(f"{name} {v} must lie strictly between 0 and 1")
    za = stats.norm.ppf(1 - alpha / sides)
    zb = stats.norm.ppf(power)
    return math.ceil((za + zb) ** 2 / (allocation * (1 - allocation) * math.log(hr) ** 2))


def event_probability(hazard: float, *, accrual_months: float, followup_months: float,
                      dropout_hazard: float = 0.0) -> float:
    """Probability of an observed event: exponential event and drop-out hazards, uniform
    accrual over ``accrual_months``, analysis ``followup_months`` after the last entry."""
    h = hazard + dropout_hazard
    a, f = accrual_months, followup_months
    p_any = 1 - (math.exp(-h * f) - math.exp(-h * (a + f))) / (h * a) if a > 0 else \
        1 - math.exp(-h * f)
    return hazard / h * p_any


def _hazards(control_rfs24: float, hr: float) -> tuple[float, float]:
    if not 0 < control_rfs24 < 1:
        raise ConfigError(f"control 2-year RFS {control_rfs24} must lie strictly between 0 "
                          "and 1", hint="give a proportion, e.g. 0.65 for 65 %")
    lam_c = -math.log(control_rfs24) / 24.0
    return lam_c, lam_c * hr


def sample_size_rfs(hr: float, *, control_rfs24: float = 0.65, accrual_months: float = 24,
                    followup_months: float = 24, dropout_24: float = 0.05, alpha: float = 0.05,
                    power: float = 0.8) -> dict[str, float]:
    """Patients needed for an RFS comparison (1:1) under exponential RFS.

    Returns
    -------
    dict
        ``events``, ``p_event`` (average over arms), ``n_total``, ``n_per_arm``.
    """
    d = schoenfeld_events(hr, alpha=alpha, power=power)
    lam_c, lam_t = _hazards(control_rfs24, hr)
    eta = -math.log(1 - dropout_24) / 24.0 if dropout_24 > 0 else 0.0
    p = np.mean([event_probability(x, accrual_months=accrual_months,
                                   followup_months=followup_months, dropout_hazard=eta)
                 for x in (lam_c, lam_t)])
    n_arm = math.ceil(d / p / 2)
    return {"events": d, "p_event": float(p), "n_total": 2 * n_arm, "n_per_arm": n_arm}


def analytic_power(n_total: int, hr: float, *, control_rfs24: float = 0.65,
                   accrual_months: float = 24, followup_months: float = 24,
                   dropout_24: float = 0.05, alpha: float = 0.05) -> float:
    """Power of the two-sided log-rank test for ``n_total`` patients (Schoenfeld)."""
    lam_c, lam_t = _hazards(control_rfs24, hr)
    eta = -math.log(1 - dropout_24) / 24.0 if dropout_24 > 0 else 0.0
    p = np.mean([event_probability(x, accrual_months=accrual_months,
                                   followup_months=followup_months, dropout_hazard=eta)
                 for x in (lam_c, lam_t)])
    d = n_total * p
    return float(stats.norm.cdf(math.sqrt(d * 0.25) * abs(math.log(hr))
                                - stats.norm.ppf(1 - alpha / 2)))


@dataclass
class WeibullOutcome:
    """Weibull RFS matching each patient's true 24-month RFS, with trial censoring.

    ``S(t) = exp(-(t / scale)^shape)``, ``scale = 24 / (-log S24)^(1/shape)``; entry
    uniform over ``accrual_months``, analysis ``followup_months`` after the last entry,
    exponential drop-out giving ``dropout_24`` lost by 24 months.
    """

    shape: float = 1.0
    accrual_months: float = 24.0
    followup_months: float = 24.0
    dropout_24: float = 0.05

    def __call__(self, s24: np.ndarray, rng: np.random.Generator) -> tuple[np.ndarray, np.ndarray]:
        s24 = np.clip(s24, 1e-6, 1 - 1e-9)
        scale = 24.0 / (-np.log(s24)) ** (1.0 / self.shape)
        t = scale * (-np.log(rng.random(s24.shape))) ** (1.0 / self.shape)
        admin = self.accrual_months + self.followup_months \
            - rng.random(s24.shape) * self.accrual_months
        cens = admin
        if self.dropout_24 > 0:
            eta = -math.log(1 - self.dropout_24) / 24.0
            cens = np.minimum(admin, rng.exponential(1 / eta, s24.shape))
        return np.minimum(t, cens), t <= cens


def vectorised_logrank(time: np.ndarray, event: np.ndarray, group1: np.ndarray,
                       horizon: float = 24.0) -> dict[str, np.ndarray]:
    """Log-rank O−E, V and z per row (rows = replicates), assuming no tied times.

    Returns also ``hr`` (one-step ``exp((O−E)/V)``) and KM survival at ``horizon``
    in group 1 (``s_h1``) and group 0 (``s_h0``).
    """
    order = np.argsort(time, axis=1, kind="stable")
    t = np.take_along_axis(time, order, 1)
    e = np.take_along_axis(event, order, 1).astype(float)
    g = np.take_along_axis(group1, order, 1).astype(float)
    n = time.shape[1]
    n_at = (n - np.arange(n))[None, :].astype(float)
    n1 = np.cumsum(g[:, ::-1], axis=1)[:, ::-1]
    n0 = n_at - n1
    frac = n1 / n_at
    o_e = (e * (g - frac)).sum(1)
    v = (e * frac * (1 - frac)).sum(1)
    with np.errstate(divide="ignore", invalid="ignore"):
        z = o_e / np.sqrt(v)
        early = e * (t <= horizon)
        log1 = np.where((early * g) > 0, np.log1p(-1 / np.maximum(n1, 1)), 0).sum(1)
        log0 = np.where((early * (1 - g)) > 0, np.log1p(-1 / np.maximum(n0, 1)), 0).sum(1)
        hr = np.exp(o_e / v)
    return {"o_e": o_e, "v": v, "z": z, "hr": hr, "s_h1": np.exp(log1), "s_h0": np.exp(log0)}


Policy = Callable[[np.ndarray], np.ndarray]


def _chunk(s24_table: np.ndarray, weights: np.ndarray | None, n: int, reps: int,
           policy_exp: np.ndarray, policy_ctl: np.ndarray, outcome, seed: np.random.SeedSequence,
           alpha: float) -> dict[str, np.ndarray]:
    rng = np.random.default_rng(seed)
    idx = rng.choice(s24_table.shape[0], size=(reps, n), p=weights)
    treated = np.zeros((reps, n), bool)
    treated[:, : n // 2] = True
    treated = rng.permuted(treated, axis=1)  # exact 1:1 within each replicate
    reg = np.where(treated, policy_exp[idx], policy_ctl[idx])
    s24 = s24_table[idx, reg]
    time, event = outcome(s24, rng)
    res = vectorised_logrank(time, event, treated)
    crit = stats.norm.ppf(1 - alpha / 2)
    gain = (s24_table[idx, policy_exp[idx]] - s24_table[idx, policy_ctl[idx]]).mean(1)
    return {"reject": res["z"] <= -crit, "z": res["z"], "hr": res["hr"],
            "rfs24_exp": res["s_h1"], "rfs24_ctl": res["s_h0"], "true_gain": gain,
            "events": event.sum(1)}


def run_replicates(
    s24_table: np.ndarray,
    policy_exp: np.ndarray,
    policy_ctl: np.ndarray,
    *,
    n: int,
    n_reps: int = 1000,
    outcome: Callable | None = None,
    weights: np.ndarray | None = None,
    alpha: float = 0.05,
    seed: int = 0,
    n_jobs: int = 1,
    chunk_size: int = 250,
) -> dict[str, object]:
    """Simulate ``n_reps`` two-arm trials (experimental policy vs control policy).

    Parameters
    ----------
    s24_table : ndarray (patients x regimens)
        True 24-month RFS of each source patient under each regimen.
    policy_exp, policy_ctl : int arrays (patients,)
        Regimen (column of ``s24_table``) each arm's policy gives each patient.
    n : int
        Patients per trial (1:1).
    outcome : callable, optional
        ``outcome(s24, rng) -> (time, event)``; default :class:`WeibullOutcome`.
    n_jobs : int
        Parallel workers (joblib); results are identical for any value.

    Returns
    -------
    dict
        ``power`` (two-sided rejection favouring the experimental arm), ``power_se``,
        ``hr_mean``/``hr_median`` (one-step estimates), ``rfs24_exp``/``rfs24_ctl``
        (mean KM), ``rfs24_gain`` (mean KM difference), ``true_rfs24_gain`` (mean oracle
        gain of the sampled patients), ``events_mean``, ``seconds`` and per-replicate
        arrays under ``replicates``.
    """
    if n < 4 or n_reps < 1:
        raise ConfigError(f"need n >= 4 patients and >= 1 replicate (got n={n}, reps={n_reps})")
    outcome = outcome or WeibullOutcome()
    t0 = _time.perf_counter()
    sizes = [min(chunk_size, n_reps - i) for i in range(0, n_reps, chunk_size)]
    seeds = np.random.SeedSequence(seed).spawn(len(sizes))
    args = [(s24_table, weights, n, r, np.asarray(policy_exp), np.asarray(policy_ctl), outcome,
             s, alpha) for r, s in zip(sizes, seeds, strict=True)]
    if n_jobs == 1 or len(args) == 1:
        parts = [_chunk(*a) for a in args]
    else:
        from joblib import Parallel, delayed

        # threads: numpy releases the GIL in sorting and arithmetic; no process start-up
        parts = Parallel(n_jobs=n_jobs, prefer="threads")(delayed(_chunk)(*a) for a in args)
    rep = {k: np.concatenate([p[k] for p in parts]) for k in parts[0]}
    power = float(rep["reject"].mean())
    return {
        "n": n, "n_reps": n_reps, "power": power,
        "power_se": math.sqrt(power * (1 - power) / n_reps),
        "hr_mean": float(np.nanmean(rep["hr"])), "hr_median": float(np.nanmedian(rep["hr"])),
        "rfs24_exp": float(rep["rfs24_exp"].mean()), "rfs24_ctl": float(rep["rfs24_ctl"].mean()),
        "rfs24_gain": float((rep["rfs24_exp"] - rep["rfs24_ctl"]).mean()),
        "true_rfs24_gain": float(rep["true_gain"].mean()),
        "events_mean": float(rep["events"].mean()),
        "seconds": _time.perf_counter() - t0, "replicates": rep,
    }


def simulate_power(n: int, hr: float, *, control_rfs24: float = 0.65, n_reps: int = 1000,
                   outcome: Callable | None = None, alpha: float = 0.05, seed: int = 0,
                   n_jobs: int = 1) -> dict[str, object]:
    """Power of a 1:1 trial with a known HR (proportional hazards) by simulation."""
    s24 = np.array([[control_rfs24, control_rfs24 ** hr]])
    return run_replicates(s24, np.array([1]), np.array([0]), n=n, n_reps=n_reps,
                          outcome=outcome, alpha=alpha, seed=seed, n_jobs=n_jobs)


def insilico_trial(
    oracle: pd.DataFrame,
    *,
    n: int,
    recommend: Callable[[pd.DataFrame], np.ndarray] | str | None = None,
    standard: Callable[[pd.DataFrame], np.ndarray] | str | np.ndarray | None = None,
    n_reps: int = 1000,
    outcome: Callable | None = None,
    model_noise: float = 0.0,
    alpha: float = 0.05,
    seed: int = 0,
    n_jobs: int = 1,
) -> dict[str, object]:
    """Model-assisted vs standard care on a synthetic cohort's oracle.

    Parameters
    ----------
    oracle : DataFrame
        One row per source patient with ``true_rfs24_<regimen>`` for the regimens in
        :data:`REGIMENS` (other columns may feed the policies).
    recommend : callable or column name, optional
        Model-assisted policy: regimen name per patient. Default: the regimen with the
        highest ``true_rfs24`` after adding N(0, ``model_noise``) noise to each (a stand-in
        for an imperfect benefit model; 0 = oracle).
    standard : callable, column name or array, optional
        Standard-care regimen per patient. Default: ``"TACE"`` for everyone.
    """
    cols = [f"true_rfs24_{r}" for r in REGIMENS]
    miss = [c for c in cols if c not in oracle.columns]
    if miss:
        raise ConfigError(f"oracle lacks {miss}", hint="use hccstrat.synthetic.cohort's oracle")
    table = oracle[cols].to_numpy(float)
    code = {r: i for i, r in enumerate(REGIMENS)}

    def resolve(policy, default) -> np.ndarray:
        if policy is None:
            return default
        vals = oracle[policy] if isinstance(policy, str) else (
            policy(oracle) if callable(policy) else policy)
        vals = pd.Series(np.asarray(vals)).astype(str)
        bad = set(vals) - set(REGIMENS)
        if bad:
            raise ConfigError(f"policy returned unknown regimens {sorted(bad)}",
                              hint=f"use {REGIMENS}")
        return vals.map(code).to_numpy(int)

    rng = np.random.default_rng(np.random.SeedSequence(seed).spawn(1)[0])
    noisy = table + rng.normal(0, model_noise, table.shape) if model_noise > 0 else table
    exp = resolve(recommend, np.argmax(noisy, axis=1))
    ctl = resolve(standard, np.full(len(oracle), code["TACE"]))
    out = run_replicates(table, exp, ctl, n=n, n_reps=n_reps, outcome=outcome, alpha=alpha,
                         seed=seed, n_jobs=n_jobs)
    out["share_changed"] = float(np.mean(exp != ctl))
    return out
