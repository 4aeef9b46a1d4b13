"""HTML reports assembled from results objects.

A report is a list of :class:`Section` objects; each section holds HTML built from
results (tables, numbers) and figures embedded as PNG. Reports never re-run an
analysis: they only render what they are given.
"""

from __future__ import annotations

import base64
import datetime as _dt
import html
import io
from collections.abc import Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import pandas as pd
from jinja2 import Environment, PackageLoader, select_autoescape

from hccstrat.io.atomic import atomic_write

__all__ = ["Section", "figure_to_html", "render_report", "table_to_html"]


@dataclass
class Section:
    """One section of an HTML report.

    Attributes
    ----------
    title : str
        Heading.
    body : str
        Trusted HTML (built with :func:`table_to_html`, :func:`figure_to_html` or
        escaped text).
    numbers : dict
        Key figures of the section, also written to the report's JSON sidecar.
    """

    title: str
    body: str = ""
    numbers: dict[str, Any] = field(default_factory=dict)


def figure_to_html(fig, *, alt: str, dpi: int = 110) -> str:
    """Embed a matplotlib figure as a base64 PNG ``<figure>`` with alt text; closes it."""
    import matplotlib.pyplot as plt

    buf = io.BytesIO()
    fig.savefig(buf, format="png", dpi=dpi, bbox_inches="tight")
    plt.close(fig)
    data = base64.b64encode(buf.getvalue()).decode("ascii")
    alt_e = html.escape(alt)
    return (
        f'<figure><img src="data:image/png;base64,{data}" alt="{alt_e}">'
        f"<figcaption>{alt_e}</figcaption></figure>"
    )


def table_to_html(
    df: pd.DataFrame, *, caption: str | None = None, float_format: str = "{:.3f}"
) -> str:
    """Render a DataFrame as an accessible HTML table."""
    fmt = {c: float_format.format for c in df.columns if pd.api.types.is_float_dtype(df[c])}
    out = df.to_html(index=False, classes="data", border=0, formatters=fmt, na_rep="—", escape=True)
    if caption:
        out = out.replace(
            '<table border="0" class="dataframe data">',
            f'<table class="data"><caption>{html.escape(caption)}</caption>',
            1,
        )
    return out


def _env() -> Environment:
    return Environment(
        loader=PackageLoader("hccstrat", "reports/templates"),
        autoescape=select_autoescape(["html"]),
    )


def render_report(
    path: str | Path,
    title: str,
    sections: Sequence[Section],
    *,
    metadata: dict[str, Any] | None = None,
) -> Path:
    """Write a self-contained HTML report (atomic) and a JSON file of its numbers.

    Parameters
    ----------
    path : path-like
        Destination ``.html``; the numbers go to the same name with ``.json``.
    title : str
        Report title.
    sections : sequence of Section
        Content, in order.
    metadata : dict, optional
        Run metadata shown in the header (version, seed, data source...).

    Returns
    -------
    Path
        The HTML file written.
    """
    import json

    from hccstrat import __version__

    path = Path(path)
    meta = {
        "hccstrat_version": __version__,
        "created": _dt.datetime.now().isoformat(timespec="seconds"),
    }
    meta.update(metadata or {})
    page = _env().get_template("report.html").render(title=title, sections=sections, metadata=meta)
    with atomic_write(path) as fh:
        fh.write(page)
    numbers = {"metadata": meta, "sections": {s.title: s.numbers for s in sections}}
    with atomic_write(path.with_suffix(".json")) as fh:
        json.dump(numbers, fh, indent=2, default=_json_default)
    return path


def _json_default(obj):
    import numpy as np

    if isinstance(obj, np.generic):
        return obj.item()
    if isinstance(obj, np.ndarray):
        return obj.tolist()
    if isinstance(obj, (_dt.date, _dt.datetime, pd.Timestamp)):
        return obj.isoformat()
    return str(obj)
