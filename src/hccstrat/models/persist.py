"""Saving and loading models with a model card and checksums.

A saved model is one ZIP archive (``*.hccmodel``) holding ``card.json`` (the model
card) and ``model.pkl`` (the pickled estimator), plus a detached ``<file>.sha256``
(``sha256sum`` format) written beside it. The card records the SHA-256 of the
pickle; :func:`load_model` checks both checksums *before* unpickling and refuses a
file that was altered, that comes from an incompatible format or library version,
or whose class differs from the card — each with a :class:`~hccstrat.exceptions.ModelError`
saying what and how to fix.

Pickles can run code when loaded. The checksums detect corruption and tampering
after saving, not a malicious author, so the payload is unpickled with an allow-list
(:func:`hccstrat.io.safe_pickle.restricted_loads`: estimator classes of hccstrat and
the libraries it builds on, and the functions that rebuild their arrays); a file that
names anything else is refused (``trusted=True`` lifts this for a file you trust
completely). Still load models only from sources you trust.
"""

from __future__ import annotations

import datetime as _dt
import hashlib
import io
import json
import pickle
import zipfile
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any

from hccstrat.exceptions import InputFileError, ModelError
from hccstrat.io.atomic import atomic_path, atomic_write, sha256_file
from hccstrat.io.safe_pickle import UnsafePickleError, restricted_loads

__all__ = ["FORMAT_VERSION", "ModelCard", "load_model", "read_model_card", "save_model"]

#: Version of the archive layout; bumped when it changes incompatibly.
FORMAT_VERSION = 1
_LIBS = ("numpy", "pandas", "scikit-learn", "scikit-survival", "torch")


def _versions() -> dict[str, str]:
    from importlib.metadata import PackageNotFoundError, version

    out = {}
    for lib in _LIBS:
        try:
            out[lib] = version(lib)
        except PackageNotFoundError:
            out[lib] = "absent"
    return out


def _major_minor(v: str) -> str:
    return ".".join(v.split("+")[0].split(".")[:2])


@dataclass
class ModelCard:
    """What a saved model is, how it was trained and how it may be used."""

    name: str
    model_class: str
    intended_use: str
    hccstrat_version: str
    created: str
    format_version: int = FORMAT_VERSION
    parameters: dict[str, Any] = field(default_factory=dict)
    features: list[str] = field(default_factory=list)
    lacking_inputs: dict[str, Any] = field(default_factory=dict)
    training_data: dict[str, Any] = field(default_factory=dict)
    metrics: dict[str, Any] = field(default_factory=dict)
    limitations: list[str] = field(default_factory=list)
    library_versions: dict[str, str] = field(default_factory=dict)
    payload_sha256: str = ""

    def to_markdown(self) -> str:
        """Human-readable card."""
        lines = [
            f"# Model card: {self.name}",
            "",
            f"- class: `{self.model_class}`",
            f"- hccstrat {self.hccstrat_version}, created {self.created}",
            f"- intended use: {self.intended_use}",
            "",
            "## Training data",
        ]
        lines += [f"- {k}: {v}" for k, v in self.training_data.items()]
        lines += [
            "",
            "## Features",
            ", ".join(self.features) or "(none recorded)",
            "",
            "## Lacking inputs",
            json.dumps(self.lacking_inputs),
            "",
            "## Metrics",
        ]
        lines += [f"- {k}: {v}" for k, v in self.metrics.items()] or ["(none recorded)"]
        if self.limitations:
            lines += ["", "## Limitations"] + [f"- {x}" for x in self.limitations]
        return "\n".join(lines) + "\n"


def _jsonable(v: Any) -> Any:
    try:
        json.dumps(v)
        return v
    except TypeError:
        return repr(v)


def save_model(
    model,
    path: str | Path,
    *,
    name: str,
    intended_use: str,
    metrics: dict[str, Any] | None = None,
    limitations: list[str] | None = None,
) -> ModelCard:
    """Save a fitted model with its card (atomic) and a detached checksum.

    Parameters
    ----------
    model : estimator
        A fitted hccstrat model.
    path : path-like
        Destination, conventionally ``*.hccmodel``.
    name : str
        Model name shown on the card.
    intended_use : str
        Who may use it for what (and what not).
    metrics : dict, optional
        Validation figures to record.
    limitations : list of str, optional
        Known limitations.

    Returns
    -------
    ModelCard
    """
    from hccstrat import __version__

    path = Path(path)
    try:
        payload = pickle.dumps(model, protocol=pickle.HIGHEST_PROTOCOL)
    except (pickle.PicklingError, AttributeError, TypeError) as err:
        raise ModelError(
            f"the {type(model).__name__} cannot be saved to {path}: {err}",
            hint="report this as a bug (every hccstrat model should be savable)",
        ) from err
    features: list[str] = []
    lacking: dict[str, Any] = {}
    feats = getattr(model, "features_", None)
    if feats is not None:
        features = list(getattr(feats, "feature_names_out_", []))
        rep = getattr(feats, "lacking_", None)
        lacking = rep.to_dict() if rep is not None else {}
    params = (
        {k: _jsonable(v) for k, v in model.get_params(deep=False).items()}
        if hasattr(model, "get_params")
        else {}
    )
    card = ModelCard(
        name=name,
        model_class=f"{type(model).__module__}.{type(model).__qualname__}",
        intended_use=intended_use,
        hccstrat_version=__version__,
        created=_dt.datetime.now().isoformat(timespec="seconds"),
        parameters=params,
        features=features,
        lacking_inputs=lacking,
        training_data={k: _jsonable(v) for k, v in getattr(model, "training_summary_", {}).items()},
        metrics={k: _jsonable(v) for k, v in (metrics or {}).items()},
        limitations=list(limitations or []),
        library_versions=_versions(),
        payload_sha256=hashlib.sha256(payload).hexdigest(),
    )
    with atomic_path(path) as tmp:
        with zipfile.ZipFile(tmp, "w", compression=zipfile.ZIP_DEFLATED) as zf:
            zf.writestr("card.json", json.dumps(asdict(card), indent=2))
            zf.writestr("model.pkl", payload)
    with atomic_write(_checksum_path(path)) as fh:
        fh.write(f"{sha256_file(path)}  {path.name}\n")
    return card


def _checksum_path(path: Path) -> Path:
    return path.with_name(path.name + ".sha256")


def _read_archive(path: Path) -> tuple[ModelCard, bytes]:
    if not path.is_file():
        raise InputFileError(f"model file not found: {path}", hint="check the path")
    try:
        with zipfile.ZipFile(path) as zf:
            card_dict = json.loads(zf.read("card.json"))
            payload = zf.read("model.pkl")
    except (zipfile.BadZipFile, KeyError, json.JSONDecodeError, OSError) as err:
        raise ModelError(
            f"{path} is not a readable hccstrat model archive ({err})",
            hint="save models with hccstrat.models.save_model; the file may be truncated",
        ) from err
    if card_dict.get("format_version") != FORMAT_VERSION:
        raise ModelError(
            f"{path}: model format version {card_dict.get('format_version')!r}, this hccstrat "
            f"reads version {FORMAT_VERSION}",
            hint="re-save the model with this hccstrat version, or use the version that saved it",
        )
    known = set(ModelCard.__dataclass_fields__)
    return ModelCard(**{k: v for k, v in card_dict.items() if k in known}), payload


def read_model_card(path: str | Path) -> ModelCard:
    """Read the card of a saved model without unpickling it."""
    return _read_archive(Path(path))[0]


def load_model(
    path: str | Path,
    *,
    expected_sha256: str | None = None,
    require_checksum_file: bool = True,
    allow_version_mismatch: bool = False,
    trusted: bool = False,
):
    """Load a model saved by :func:`save_model`, refusing altered or incompatible files.

    Parameters
    ----------
    path : path-like
        The ``*.hccmodel`` archive.
    expected_sha256 : str, optional
        SHA-256 of the archive, from a trusted record (e.g. the registry).
    require_checksum_file : bool
        Refuse when the detached ``.sha256`` file is absent.
    allow_version_mismatch : bool
        Load even when hccstrat / scikit-learn / scikit-survival / torch major.minor
        versions differ from those that saved it (predictions may change).
    trusted : bool
        Unpickle without the allow-list (a model holding objects of other libraries;
        only for a file whose author you trust completely).

    Returns
    -------
    estimator
        With the card in ``model_card_``.
    """
    from hccstrat import __version__

    path = Path(path)
    if not path.is_file():
        raise InputFileError(f"model file not found: {path}", hint="check the path")
    digest = sha256_file(path)
    if expected_sha256 is not None and digest != expected_sha256.lower():
        raise ModelError(
            f"{path}: checksum {digest[:12]}… differs from the expected one",
            hint="the file was altered or is not the model you meant; do not use it",
        )
    ck = _checksum_path(path)
    if ck.is_file():
        parts = ck.read_text(encoding="utf-8").split()
        recorded = parts[0].lower() if parts else ""
        if recorded != digest:
            raise ModelError(
                f"{path}: checksum does not match {ck.name} — the file was altered",
                hint="restore the original model file, or re-train and save it",
            )
    elif require_checksum_file and expected_sha256 is None:
        raise ModelError(
            f"{path}: checksum file {ck.name} is missing",
            hint="keep the .sha256 file beside the model, or pass expected_sha256",
        )
    card, payload = _read_archive(path)
    if hashlib.sha256(payload).hexdigest() != card.payload_sha256:
        raise ModelError(
            f"{path}: the model payload does not match the checksum in its card (tampered)",
            hint="restore the original model file, or re-train and save it",
        )
    if not allow_version_mismatch:
        current = _versions() | {"hccstrat": __version__}
        saved = card.library_versions | {"hccstrat": card.hccstrat_version}
        bad = [
            f"{lib} {saved[lib]} (now {current.get(lib)})"
            for lib in saved
            if saved[lib] != "absent"
            and _major_minor(saved[lib]) != _major_minor(current.get(lib, ""))
        ]
        if bad:
            raise ModelError(
                f"{path}: saved with incompatible versions: {', '.join(bad)}",
                hint="install the versions it was saved with, re-train, or pass "
                "allow_version_mismatch=True after checking predictions",
            )
    try:
        if trusted:
            model = pickle.load(io.BytesIO(payload))
        else:
            model = restricted_loads(payload, source=str(path))
    except UnsafePickleError:
        raise
    except Exception as err:
        raise ModelError(
            f"{path}: the model cannot be unpickled ({type(err).__name__}: {err})",
            hint="load it with the hccstrat version that saved it",
        ) from err
    cls = f"{type(model).__module__}.{type(model).__qualname__}"
    if cls != card.model_class:
        raise ModelError(
            f"{path}: holds a {cls}, its card says {card.model_class}",
            hint="the archive was assembled by hand or altered; re-save the model",
        )
    model.model_card_ = card
    return model
