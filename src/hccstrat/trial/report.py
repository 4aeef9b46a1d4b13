"""Figures and report sections of a trial: CONSORT flow diagram, KM curves, tables.

Everything here renders results objects (:class:`~hccstrat.trial.analysis.TrialResults`,
CONSORT count dicts from :func:`hccstrat.trial.screening.consort_counts`); nothing
re-runs an analysis.
"""

from __future__ import annotations

import html
from typing import Any

import pandas as pd

from hccstrat.reports.html import Section, figure_to_html, table_to_html
from hccstrat.trial.analysis import TrialResults

__all__ = ["consort_figure", "plot_km", "results_table", "trial_sections"]


def plot_km(results: TrialResults, ax=None, *, ci: bool = True, at_risk_times=(0, 6, 12, 18, 24)):
    """Kaplan–Meier curves per arm (step functions with CI bands); returns the axes."""
    import matplotlib.pyplot as plt

    if ax is None:
        _, ax = plt.subplots(figsize=(6.4, 4.2))
    for arm in results.arms:
        km = results.km[arm]
        line, = ax.step(km["time"], km["survival"], where="post",
                        label=f"{arm} (n={results.n[arm]}, events={results.events[arm]})")
        if ci:
            ax.fill_between(km["time"], km["ci_lower"], km["ci_upper"], step="post",
                            alpha=0.15, color=line.get_color())
        cens = km[km["censored"] > 0]
        ax.plot(cens["time"], cens["survival"], "|", color=line.get_color(), ms=5)
    ax.axvline(results.horizon, color="grey", lw=0.8, ls=":")
    ax.set_xlabel("Months since surgery" if results.endpoint != "ORR" else "Months")
    ax.set_ylabel(f"{results.endpoint} probability")
    ax.set_ylim(0, 1.02)
    ax.set_title(f"{results.endpoint} by arm ({results.population}); HR "
                 f"{results.cox['hr']:.2f} ({results.cox['ci_lower']:.2f}–"
                 f"{results.cox['ci_upper']:.2f}), log-rank p={results.logrank['p_value']:.3g}",
                 fontsize=9)
    rows = [[_at_risk(results.km[arm], t) for t in at_risk_times] for arm in results.arms]
    ax.legend(loc="lower left", fontsize=8)
    txt = "At risk: " + "; ".join(
        f"{a}: " + " ".join(str(v) for v in r) for a, r in zip(results.arms, rows, strict=True))
    ax.text(0.0, -0.2, f"{txt} (at months {', '.join(str(t) for t in at_risk_times)})",
            transform=ax.transAxes, fontsize=7, va="top")
    return ax


def _at_risk(km: pd.DataFrame, t: float) -> int:
    later = km["time"] >= t
    return int(km.loc[later, "at_risk"].max()) if later.any() else 0


def _box(ax, x, y, text, w=0.36, h=0.1):
    from matplotlib.patches import FancyBboxPatch

    ax.add_patch(FancyBboxPatch((x - w / 2, y - h / 2), w, h, boxstyle="round,pad=0.01",
                                fc="white", ec="black", lw=0.8))
    ax.text(x, y, text, ha="center", va="center", fontsize=7, wrap=True)


def _arrow(ax, x0, y0, x1, y1):
    ax.annotate("", xy=(x1, y1), xytext=(x0, y0),
                arrowprops={"arrowstyle": "->", "lw": 0.8})


def consort_figure(counts: dict[str, Any], ax=None):
    """CONSORT 2010 flow diagram from :func:`consort_counts`; returns the axes."""
    import matplotlib.pyplot as plt

    if ax is None:
        _, ax = plt.subplots(figsize=(7.5, 6.5))
    ax.set_xlim(0, 1)
    ax.set_ylim(0, 1)
    ax.axis("off")
    exc = counts["excluded"]
    items = [f"{k}: {v}" for k, v in exc["by_criterion"].items()]
    by = "\n".join(", ".join(items[i:i + 4]) for i in range(0, len(items), 4)) or "—"
    _box(ax, 0.3, 0.92, f"Assessed for eligibility (n={counts['assessed']})")
    _box(ax, 0.76, 0.8, f"Excluded (n={exc['total']})\nNot meeting criteria: "
         f"{exc['not_meeting_criteria']}\nPending data: {exc['pending']}\n{by}",
         w=0.46, h=0.2)
    _arrow(ax, 0.3, 0.87, 0.3, 0.73)
    _arrow(ax, 0.3, 0.8, 0.54, 0.8)
    _box(ax, 0.3, 0.68, f"Enrolled / allocated (n={counts['enrolled']})")
    arms = list(counts.get("arms", {}).items())
    xs = [0.25, 0.75] if len(arms) == 2 else [(i + 0.5) / max(len(arms), 1)
                                              for i in range(len(arms))]
    for x, (arm, a) in zip(xs, arms, strict=False):
        _arrow(ax, 0.3, 0.63, x, 0.55)
        _box(ax, x, 0.5, f"Allocated to {arm} (n={a['allocated']})\n"
             f"Received allocated intervention: {a['received']}", w=0.44)
        ex = a["excluded_postop"]
        det = ", ".join(f"{k}: {v}" for k, v in ex.items() if k != "total") or "—"
        _arrow(ax, x, 0.45, x, 0.35)
        _box(ax, x, 0.3, f"Excluded after surgery (n={ex['total']})\n{det}\n"
             f"Post-operative data pending: {a['pending_postop']}", w=0.44)
        _arrow(ax, x, 0.25, x, 0.15)
        _box(ax, x, 0.1, f"Analysed (n={a['analysed']})", w=0.44)
    ax.set_title(f"CONSORT flow — {counts.get('study', '')} "
                 f"(rules v{counts.get('ruleset_version', '?')})", fontsize=9)
    return ax


def results_table(results: TrialResults) -> pd.DataFrame:
    """One row per arm: n, events, landmark survival with CI, RMST."""
    rows = []
    for i, arm in enumerate(results.rmst["groups"]):
        lm = results.landmark[arm]
        rows.append({"arm": arm, "n": results.n[arm], "events": results.events[arm],
                     f"{results.endpoint} at {results.horizon:g} m": lm["survival"],
                     "95% CI": f"{lm['ci_lower']:.3f}–{lm['ci_upper']:.3f}",
                     f"RMST {results.horizon:g} m": results.rmst["rmst"][i]})
    return pd.DataFrame(rows)


def trial_sections(
    results: list[TrialResults],
    *,
    consort: dict[str, Any] | None = None,
    extra_tables: dict[str, pd.DataFrame] | None = None,
    title: str = "Trial analysis",
    notes: str = "",
) -> list[Section]:
    """Report sections: CONSORT diagram, then per endpoint a KM figure and tables."""
    import matplotlib.pyplot as plt

    secs: list[Section] = []
    if consort is not None:
        fig, ax = plt.subplots(figsize=(7.5, 6.5))
        consort_figure(consort, ax=ax)
        secs.append(Section(f"{title}: CONSORT flow", figure_to_html(
            fig, alt=f"CONSORT flow diagram: {consort['assessed']} assessed, "
                     f"{consort['enrolled']} enrolled"), numbers={"consort": consort}))
    for r in results:
        fig, ax = plt.subplots(figsize=(6.4, 4.4))
        plot_km(r, ax=ax)
        body = figure_to_html(fig, alt=f"Kaplan–Meier {r.endpoint} by arm ({r.population})")
        body += table_to_html(results_table(r), caption=f"{r.endpoint} by arm ({r.population})")
        c, lr, rm = r.cox, r.logrank, r.rmst
        body += (f"<p>Stratified Cox HR ({html.escape(rm['groups'][1])} vs "
                 f"{html.escape(rm['groups'][0])}) {c['hr']:.3f} (95% CI {c['ci_lower']:.3f}–"
                 f"{c['ci_upper']:.3f}, p={c['p_value']:.3g}); log-rank chi2="
                 f"{lr['statistic']:.2f}, p={lr['p_value']:.3g}; RMST difference at "
                 f"{r.horizon:g} months {rm['difference']:.2f} months (95% CI "
                 f"{rm['ci_lower']:.2f}–{rm['ci_upper']:.2f}).</p>")
        secs.append(Section(f"{title}: {r.endpoint} ({r.population})", body, r.numbers()))
    for name, tab in (extra_tables or {}).items():
        secs.append(Section(f"{title}: {name}", table_to_html(tab, caption=name)))
    if notes:
        secs.append(Section(f"{title}: notes", f"<p>{html.escape(notes)}</p>"))
    return secs
