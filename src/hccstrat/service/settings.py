"""Settings of the web service."""

from __future__ import annotations

import os
import secrets
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

__all__ = ["ServiceSettings", "load_secret"]


@dataclass
class ServiceSettings:
    """Configuration of :func:`hccstrat.service.create_app`.

    Attributes
    ----------
    data_dir : Path
        Folder for uploads, de-identified images, reports and the secret key.
    db_url : str or None
        SQLAlchemy URL; default SQLite ``<data_dir>/registry.sqlite`` (WAL).
    token_ttl_minutes : int
        Lifetime of bearer tokens.
    max_study_bytes, max_slide_bytes : int
        Upload size limits (HTTP 413 beyond).
    max_unzipped_bytes : int
        Limit on the uncompressed size of a DICOM zip (zip bombs).
    max_json_bytes : int
        Limit on a JSON or form request body (HTTP 413 beyond; uploads have theirs).
    login_max_failures, login_window_s : int
        Failed logins allowed per username/address within the window.
    run_worker : bool
        Start the background job worker thread.
    worker_poll_s : float
        How often the worker looks for queued jobs.
    argon2 : dict
        Argon2 parameters (``time_cost``, ``memory_kib``, ``parallelism``).
    secure_cookies : bool
        Mark the session cookie ``Secure`` (set when served over HTTPS).
    scorers : dict
        Prediction kind ("PRE", "POST") -> scorer (see :mod:`hccstrat.service.scoring`).
    time_classifier : Path or None
        Tile classifier (``TileClassifier.save`` pickle, e.g. from ``hccstrat wsi time
        --train``) used by the TIME panel job; None disables the TIME endpoints (503).
        Load only files you trust (pickle).
    encoders : dict
        Name -> :class:`~hccstrat.service.encoders.EncoderSpec` (or its keyword dict:
        ``kind``, ``checkpoint``, ``sha256``, ``options``) of the tile encoders an embed
        request may name besides ``"builtin"``; weights are local files, verified by
        checksum when the job loads them.
    """

    data_dir: Path
    db_url: str | None = None
    token_ttl_minutes: int = 30
    max_study_bytes: int = 2 * 1024**3
    max_slide_bytes: int = 8 * 1024**3
    max_unzipped_bytes: int = 8 * 1024**3
    max_json_bytes: int = 1024**2
    login_max_failures: int = 5
    login_window_s: int = 300
    run_worker: bool = True
    worker_poll_s: float = 0.5
    argon2: dict[str, int] = field(default_factory=dict)
    secure_cookies: bool = False
    scorers: dict[str, Any] = field(default_factory=dict)
    time_classifier: Path | None = None
    encoders: dict[str, Any] = field(default_factory=dict)

    def __post_init__(self) -> None:
        self.data_dir = Path(self.data_dir)
        if self.time_classifier is not None:
            self.time_classifier = Path(self.time_classifier)
        from hccstrat.service.encoders import normalise_encoders

        self.encoders = normalise_encoders(self.encoders)


def load_secret(data_dir: Path) -> bytes:
    """Server secret (UID remapping, randomisation concealment); created on first use.

    Kept in ``<data_dir>/secret.key`` with mode 0600, never in the database.
    """
    path = Path(data_dir) / "secret.key"
    if not path.exists():
        path.parent.mkdir(parents=True, exist_ok=True)
        fd = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o600)
        with os.fdopen(fd, "w") as fh:
            fh.write(secrets.token_hex(32))
    return bytes.fromhex(path.read_text().strip())
