"""Atomic file writes: write to a temporary file beside the target, then rename.

A reader never sees a half-written file and a crash never leaves one behind.
"""

from __future__ import annotations

import contextlib
import hashlib
import os
import tempfile
from collections.abc import Iterator
from pathlib import Path
from typing import IO

__all__ = ["atomic_path", "atomic_write", "ensure_output_dir", "sha256_file"]


def ensure_output_dir(path: str | os.PathLike, option: str = "--out") -> Path:
    """Create the output folder ``path`` and check that files can be written in it.

    Parameters
    ----------
    path : path-like
    option : str
        Command-line option that names the folder (for the hint).

    Returns
    -------
    Path

    Raises
    ------
    InputFileError
        The folder cannot be created or written to (a file in the way, no permission,
        read-only or full disk).
    """
    from hccstrat.exceptions import InputFileError

    path = Path(path)
    try:
        path.mkdir(parents=True, exist_ok=True)
        with tempfile.TemporaryFile(dir=path):
            pass
    except OSError as err:
        raise InputFileError(
            f"cannot write to the output folder '{path}': {err.strerror or err}",
            hint=f"choose a folder you can write to with {option}",
        ) from err
    return path


@contextlib.contextmanager
def atomic_path(path: str | os.PathLike) -> Iterator[Path]:
    """Yield a temporary path in the target's folder; rename it over ``path`` on success.

    Use this for libraries that want a file name (HDF5, matplotlib, pandas).
    On an exception the temporary file is removed and ``path`` is untouched.

    Raises
    ------
    ConfigError
        When ``path`` is a folder, or its folder cannot be created or written to.
    """
    from hccstrat.exceptions import ConfigError

    path = Path(path)
    if path.is_dir():
        raise ConfigError(
            f"cannot write '{path}': it is a folder", hint="give a file path inside it"
        )
    try:
        path.parent.mkdir(parents=True, exist_ok=True)
        fd, tmp = tempfile.mkstemp(prefix=f".{path.name}.", suffix=".tmp", dir=path.parent)
    except OSError as err:
        raise ConfigError(
            f"cannot write '{path}': {err.strerror or err}"
            + (f" ('{err.filename}')" if err.filename else ""),
            hint="choose an output path in a folder you can write to",
        ) from err
    os.close(fd)
    tmp_path = Path(tmp)
    # mkstemp creates 0600 files; give the result the usual permissions (0666 & ~umask)
    umask = os.umask(0)
    os.umask(umask)
    os.chmod(tmp_path, 0o666 & ~umask)
    try:
        yield tmp_path
        os.replace(tmp_path, path)
    finally:
        if tmp_path.exists():
            tmp_path.unlink()


@contextlib.contextmanager
def atomic_write(path: str | os.PathLike, mode: str = "w", **kwargs) -> Iterator[IO]:
    """Open a temporary file for writing and atomically move it to ``path`` on close.

    Parameters
    ----------
    path : path-like
        Final destination.
    mode : str
        ``"w"`` (text, UTF-8 by default) or ``"wb"``.
    """
    if "b" not in mode:
        kwargs.setdefault("encoding", "utf-8")
    with atomic_path(path) as tmp, open(tmp, mode, **kwargs) as fh:
        yield fh
        fh.flush()
        os.fsync(fh.fileno())


def sha256_file(path: str | os.PathLike, chunk: int = 1 << 20) -> str:
    """SHA-256 hex digest of a file, read in chunks."""
    h = hashlib.sha256()
    with open(path, "rb") as fh:
        while block := fh.read(chunk):
            h.update(block)
    return h.hexdigest()
