"""HTML validation report built from :class:`~hccstrat.evaluation.validation.ValidationResults`
(or its dict/JSON form): nothing is recomputed here.
"""

from __future__ import annotations

import html
from pathlib import Path
from typing import Any

import pandas as pd

from hccstrat.reports.html import Section, figure_to_html, render_report, table_to_html
from hccstrat.reports.plots import (
    plot_calibration,
    plot_decision_curve,
    plot_drift,
    plot_forest,
    plot_km_groups,
    plot_td_auc,
)
from hccstrat.reports.tripod import tripod_checklist

__all__ = ["build_validation_report", "metrics_table", "validation_sections"]

_METRICS = ("harrell_c", "uno_c", "td_auc", "brier", "oe_ratio", "calibration_slope", "net_benefit")


def _fmt(m: dict[str, Any]) -> str:
    e = m.get("estimate")
    lo, hi = (m.get("ci") or [None, None])[:2]
    if e is None or e != e:
        return "—"
    if lo is None or lo != lo:
        return f"{e:.3f}"
    return f"{e:.3f} ({lo:.3f}–{hi:.3f})"


def metrics_table(perfs: dict[str, dict]) -> pd.DataFrame:
    """One row per cohort: n, events and each metric as "estimate (95 % CI)"."""
    rows = []
    for key, p in perfs.items():
        row = {"cohort": key, "n": p["n"], "events": p["events"]}
        for m in _METRICS:
            row[m] = _fmt(p["metrics"].get(m, {}))
        row["ICI"] = p["calibration"].get("ici", float("nan"))
        rows.append(row)
    return pd.DataFrame(rows)


def _numbers(perfs: dict[str, dict]) -> dict:
    return {
        k: {
            "n": p["n"],
            "events": p["events"],
            "metrics": p["metrics"],
            "calibration": {k2: v for k2, v in p["calibration"].items() if k2 != "curve"},
            "classification": p["classification"],
        }
        for k, p in perfs.items()
    }


def _figs(p: dict, title: str) -> str:
    import matplotlib

    matplotlib.use("Agg", force=False)
    import matplotlib.pyplot as plt

    fig, axes = plt.subplots(1, 3, figsize=(14, 4))
    plot_km_groups(p["km"], horizon=p["horizon"], ax=axes[0])
    axes[0].set_title("Kaplan–Meier by predicted risk")
    plot_calibration(p["calibration"], ax=axes[1])
    axes[1].set_title(f"Calibration at {p['horizon']:g} months")
    plot_decision_curve(p["decision"]["records"], ax=axes[2])
    axes[2].set_title(f"Decision curve at {p['horizon']:g} months")
    fig.tight_layout()
    return figure_to_html(fig, alt=f"{title}: Kaplan–Meier, calibration and decision curves")


def _stage_section(st: dict) -> Section:
    name, kind, perfs = st["name"], st["kind"], st["performance"]
    body = [f"<p>Stage kind: <strong>{html.escape(kind)}</strong>.</p>"]
    numbers: dict[str, Any] = {"kind": kind}
    if st.get("error"):
        body.append(f'<p class="warn">This stage failed: {html.escape(st["error"])}</p>')
        numbers["error"] = st["error"]
        return Section(f"Stage: {name}", "".join(body), numbers)
    if perfs:
        body.append(table_to_html(metrics_table(perfs), caption="Performance (95 % bootstrap CI)"))
        numbers["performance"] = _numbers(perfs)
        main = (
            perfs.get("pooled")
            or perfs.get("overall")
            or perfs.get("before")
            or next(iter(perfs.values()))
        )
        body.append(_figs(main, name))
    if st.get("meta_analysis"):
        ma = st["meta_analysis"]
        body.append(
            table_to_html(
                pd.DataFrame([{"metric": k, **v} for k, v in ma.items()]),
                caption="Random-effects meta-analysis across centres (DerSimonian–Laird)",
            )
        )
        rows = [
            {
                "label": v["name"],
                "c_index": v["metrics"]["harrell_c"]["estimate"],
                "c_low": v["metrics"]["harrell_c"]["ci"][0],
                "c_high": v["metrics"]["harrell_c"]["ci"][1],
            }
            for k, v in perfs.items()
            if k.startswith("centre ")
        ]
        pooled = ma.get("harrell_c") if "estimate" in ma.get("harrell_c", {}) else None
        ax = plot_forest(rows, pooled=pooled)
        ax.set_title("C-index by centre")
        body.append(figure_to_html(ax.figure, alt=f"{name}: forest plot of C-index by centre"))
        numbers["meta_analysis"] = ma
    if st.get("recalibration"):
        body.append(
            table_to_html(
                pd.DataFrame(st["recalibration"]),
                caption="Recalibration (fitted on half, re-validated on the other half)",
            )
        )
        import matplotlib.pyplot as plt

        keys = [k for k in perfs if k != "before"]
        fig, axes = plt.subplots(1, len(keys) + 1, figsize=(4 * (len(keys) + 1), 4))
        for ax, k in zip(axes, ["before", *keys], strict=True):
            plot_calibration(perfs[k]["calibration"], ax=ax, label=k)
            ax.set_title(k)
        body.append(figure_to_html(fig, alt=f"{name}: calibration before and after recalibration"))
        numbers["recalibration"] = st["recalibration"]
    if st.get("agreement"):
        ag = st["agreement"]
        body.append(
            f"<p>Model vs clinician: agreement {ag['agreement']:.3f}, Cohen's kappa "
            f"{ag['kappa']:.3f} (n = {ag['n']}).</p>"
        )
        oc = pd.DataFrame([{"group": k, **v} for k, v in ag["outcomes_by_concordance"].items()])
        if not oc.empty:
            body.append(table_to_html(oc, caption="Observed risk by model/clinician concordance"))
        numbers["agreement"] = ag
    if st.get("drift"):
        dr = st["drift"]
        if dr.get("rolling"):
            ax = plot_drift(dr["rolling"])
            ax.set_title("Performance drift over calendar time")
            body.append(figure_to_html(ax.figure, alt=f"{name}: rolling C-index and O/E over time"))
        if dr.get("inputs"):
            body.append(
                table_to_html(pd.DataFrame(dr["inputs"]), caption="Input drift vs development")
            )
        numbers["drift"] = dr
    if st.get("subgroups"):
        sg = pd.DataFrame(st["subgroups"])
        sg["label"] = sg["variable"] + ": " + sg["level"]
        ok = sg.dropna(subset=["c_index"])
        if not ok.empty:
            ax = plot_forest(ok.to_dict("records"))
            ax.set_title("C-index by subgroup")
            body.append(
                figure_to_html(ax.figure, alt=f"{name}: forest plot of C-index by subgroup")
            )
        body.append(table_to_html(sg.drop(columns="label"), caption="Subgroups"))
        numbers["subgroups"] = st["subgroups"]
    return Section(f"Stage: {name}", "".join(body), numbers)


def validation_sections(results: Any, *, metadata: dict[str, Any] | None = None) -> list[Section]:
    """Report sections from a results object (or its dict form)."""
    d = results.to_dict() if hasattr(results, "to_dict") else dict(results)
    stages = d["stages"]
    sections = [_stage_section(st) for st in stages]
    curves = {
        f"{st['name']} / {k}": p["td_auc"]
        for st in stages
        for k, p in st["performance"].items()
        if not k.startswith("centre ")
    }
    if curves:
        ax = plot_td_auc(curves)
        ax.set_title("Time-dependent AUC over follow-up")
        sections.append(
            Section(
                "Time-dependent AUC",
                figure_to_html(ax.figure, alt="td-AUC over time"),
                {"td_auc": curves},
            )
        )
    meta = {**(d.get("metadata") or {}), **(metadata or {})}
    plan = d.get("plan", {})
    meta.setdefault("outcome", f"event by {plan.get('horizon', 24):g} months")
    meta.setdefault(
        "metrics",
        "Harrell/Uno C, td-AUC, Brier, O/E, slope, ICI, net benefit; "
        f"{plan.get('n_bootstrap', '?')} bootstrap resamples",
    )
    meta.setdefault(
        "meta_analysis", "DerSimonian–Laird" if any(s.get("meta_analysis") for s in stages) else ""
    )
    meta.setdefault(
        "recalibration", ", ".join(r["method"] for s in stages for r in s.get("recalibration", []))
    )
    meta.setdefault("subgroups", ", ".join(plan.get("subgroups", [])))
    meta.setdefault("drift", "rolling windows" if any(s.get("drift") for s in stages) else "")
    meta.setdefault(
        "n_events",
        "; ".join(
            f"{s['name']}/{k}: n={p['n']}, events={p['events']}"
            for s in stages
            for k, p in s["performance"].items()
            if not k.startswith("centre ")
        ),
    )
    meta.setdefault("comparators", ", ".join(plan.get("comparators", [])))
    tab = tripod_checklist(meta)
    sections.append(
        Section(
            "TRIPOD+AI checklist",
            table_to_html(tab, caption="Filled from run metadata"),
            {"tripod": tab.to_dict("records")},
        )
    )
    return sections


def build_validation_report(
    results: Any,
    path: str | Path,
    *,
    title: str = "Validation report",
    metadata: dict[str, Any] | None = None,
) -> Path:
    """Write the HTML report and its JSON sidecar of every number. PDF is not produced."""
    sections = validation_sections(results, metadata=metadata)
    d = results.to_dict() if hasattr(results, "to_dict") else dict(results)
    run_meta = {
        k: v for k, v in (d.get("metadata") or {}).items() if isinstance(v, (str, int, float))
    }
    run_meta.update({k: v for k, v in (metadata or {}).items() if isinstance(v, (str, int, float))})
    return render_report(path, title, sections, metadata=run_meta)
