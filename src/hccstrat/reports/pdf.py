"""PDF copies of HTML reports, printed by a headless Chromium.

The HTML reports are self-contained (figures embedded), so printing them with the
browser keeps the layout, tables and figures exactly as on screen. Chromium (or
Chrome) is looked up on the PATH and at Debian's ``/usr/bin/chromium``; nothing is
downloaded.
"""

from __future__ import annotations

import os
import shutil
import subprocess
import tempfile
from pathlib import Path

from hccstrat.exceptions import ConfigError, InputFileError
from hccstrat.io.atomic import atomic_path

__all__ = ["find_browser", "html_to_pdf"]

_CANDIDATES = ("chromium", "chromium-browser", "google-chrome", "google-chrome-stable")


def find_browser() -> str | None:
    """Path of a Chromium-family browser, or ``None``."""
    env = os.environ.get("HCCSTRAT_BROWSER")
    if env:
        return env
    for name in _CANDIDATES:
        path = shutil.which(name)
        if path:
            return path
    return "/usr/bin/chromium" if Path("/usr/bin/chromium").exists() else None


def html_to_pdf(
    html_path: str | os.PathLike,
    pdf_path: str | os.PathLike | None = None,
    *,
    browser: str | None = None,
    timeout: float = 120.0,
) -> Path:
    """Print an HTML report to PDF (A4, backgrounds kept), atomically.

    Parameters
    ----------
    html_path : path-like
        The report to print.
    pdf_path : path-like, optional
        Destination; defaults to the HTML name with ``.pdf``.
    browser : str, optional
        Browser executable; default :func:`find_browser` (``HCCSTRAT_BROWSER`` wins).
    timeout : float
        Seconds before giving up.

    Raises
    ------
    InputFileError
        If the HTML file is missing.
    ConfigError
        If no browser is found or printing fails.
    """
    html_path = Path(html_path).resolve()
    if not html_path.is_file():
        raise InputFileError(f"report '{html_path}' not found", hint="write the HTML report first")
    pdf_path = Path(pdf_path) if pdf_path is not None else html_path.with_suffix(".pdf")
    exe = browser or find_browser()
    if exe is None:
        raise ConfigError(
            "no Chromium or Chrome found to print the PDF",
            hint="install Debian's chromium (apt-get install chromium) or set HCCSTRAT_BROWSER",
        )
    with (
        tempfile.TemporaryDirectory(prefix="hccstrat-pdf-") as profile,
        atomic_path(pdf_path) as tmp,
    ):
        cmd = [
            exe,
            "--headless",
            "--no-sandbox",
            "--disable-gpu",
            "--disable-background-networking",
            "--disable-component-update",
            "--disable-sync",
            "--no-first-run",
            f"--user-data-dir={profile}",
            "--no-pdf-header-footer",
            f"--print-to-pdf={tmp}",
            html_path.as_uri(),
        ]
        try:
            proc = subprocess.run(cmd, capture_output=True, timeout=timeout, check=False)
        except (OSError, subprocess.TimeoutExpired) as exc:
            raise ConfigError(f"printing '{html_path.name}' to PDF failed: {exc}") from exc
        if proc.returncode != 0 or not tmp.exists() or tmp.stat().st_size == 0:
            err = proc.stderr.decode(errors="replace").strip().splitlines()[-1:] or ["no output"]
            raise ConfigError(
                f"printing '{html_path.name}' to PDF failed (exit {proc.returncode}): {err[0]}",
                hint="check that the browser runs headless on this machine",
            )
        if tmp.read_bytes()[:5] != b"%PDF-":
            raise ConfigError(f"the browser did not write a PDF for '{html_path.name}'")
    return pdf_path
