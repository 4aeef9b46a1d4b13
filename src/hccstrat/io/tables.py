"""Delimited text tables as hospitals export them.

Spreadsheet exports in much of Europe (and of Chinese hospital information systems
set to such locales) separate fields with ``;`` because ``,`` is their decimal mark;
others use tabs or ``|``. Read with ``,``, such a file becomes one giant column and
every canonical column looks missing. :func:`csv_delimiter` finds the delimiter from
the header row, where field names hold none of these characters.
"""

from __future__ import annotations

import os
import re
from pathlib import Path

__all__ = ["DELIMITERS", "csv_delimiter"]

#: Delimiters recognised, in order of preference on a tie.
DELIMITERS = (",", ";", "\t", "|")

_QUOTED = re.compile(r'"[^"]*"')


def csv_delimiter(path: str | os.PathLike, default: str = ",") -> str:
    """Delimiter of a delimited text file, from its header row.

    Parameters
    ----------
    path : path-like
        CSV/TSV file (UTF-8, with or without a byte-order mark).
    default : str
        Returned when the header holds none of :data:`DELIMITERS` (a one-column file).

    Returns
    -------
    str
        The delimiter occurring most often in the header row outside quoted names.

    Examples
    --------
    A header ``patient_id;age;afp_ng_ml`` gives ``";"``; ``patient_id,age`` gives ``","``.
    """
    with open(Path(path), encoding="utf-8-sig", errors="replace", newline="") as fh:
        header = fh.readline()
    header = _QUOTED.sub("", header.rstrip("\r\n"))
    counts = {d: header.count(d) for d in DELIMITERS}
    best = max(DELIMITERS, key=lambda d: counts[d])  # max keeps the first on a tie
    return best if counts[best] else default
