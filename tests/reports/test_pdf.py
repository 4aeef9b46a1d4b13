"""PDF copies of HTML reports (printed by headless Chromium)."""

from __future__ import annotations

import re

import pytest

from hccstrat.exceptions import ConfigError, InputFileError
from hccstrat.reports.html import Section, render_report
from hccstrat.reports.pdf import find_browser, html_to_pdf


@pytest.mark.browser
def test_report_prints_to_a_multi_page_pdf(tmp_path):
    if find_browser() is None:
        pytest.skip("no Chromium found (.ci/run installs Debian's chromium)")
    rows = "".join(f"<tr><td>row {i}</td><td>{i / 7:.3f}</td></tr>" for i in range(150))
    html = render_report(
        tmp_path / "r.html",
        "PDF test",
        [Section("Long table", f"<table class='data'>{rows}</table>", {"n": 150})],
    )
    pdf = html_to_pdf(html)
    data = pdf.read_bytes()
    assert pdf == tmp_path / "r.pdf" and data[:5] == b"%PDF-"
    pages = len(re.findall(rb"/Type\s*/Page[^s]", data))
    assert pages >= 2  # 150 table rows do not fit on one A4 page


def test_missing_html_and_missing_browser_are_clear_errors(tmp_path, monkeypatch):
    with pytest.raises(InputFileError, match="not found"):
        html_to_pdf(tmp_path / "nope.html")
    page = tmp_path / "p.html"
    page.write_text("<p>x</p>")
    monkeypatch.setenv("HCCSTRAT_BROWSER", str(tmp_path / "no-such-browser"))
    with pytest.raises(ConfigError, match="PDF failed"):
        html_to_pdf(page)
    assert not (tmp_path / "p.pdf").exists()
