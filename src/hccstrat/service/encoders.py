"""Tile encoders the service may use for the ``embed_wsi`` job.

The service knows the built-in H&E encoder (``"builtin"``, always available) and the
encoders named in ``ServiceSettings.encoders``: name -> :class:`EncoderSpec` (registry
kind, LOCAL weights file, expected SHA-256). ``hccstrat serve --encoder
NAME=KIND:PATH[:SHA256]`` fills that mapping through :func:`parse_encoder_option`.
Weights are never downloaded; the checksum is verified when the job builds the encoder
(:func:`hccstrat.encoders.registry.create_encoder`).
"""

from __future__ import annotations

import re
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from hccstrat.exceptions import ConfigError, HccstratError

__all__ = [
    "BUILTIN",
    "EncoderSpec",
    "UnknownEncoderError",
    "build_encoder",
    "encoder_cache_key",
    "encoder_names",
    "normalise_encoders",
    "parse_encoder_option",
    "resolve_encoder",
]

#: name of the weight-free encoder every service has
BUILTIN = "builtin"
_NAME = re.compile(r"^[A-Za-z0-9][A-Za-z0-9._-]{0,63}$")
_SHA = re.compile(r"^[0-9a-fA-F]{64}$")


class UnknownEncoderError(HccstratError):
    """An embed request names an encoder the service is not configured with (HTTP 422)."""

    code = "HCC-ENC-422"

    def __init__(self, name: str, known: list[str]) -> None:
        super().__init__(
            f"unknown encoder {name!r}; configured encoders: {', '.join(known)}",
            hint="use one of the configured names, or start the service with "
            "`hccstrat serve --encoder NAME=KIND:PATH[:SHA256]`",
        )
        self.encoders = list(known)

    def to_dict(self) -> dict[str, Any]:
        return {**super().to_dict(), "encoders": self.encoders}


@dataclass
class EncoderSpec:
    """What :func:`~hccstrat.encoders.registry.create_encoder` needs for one encoder.

    Attributes
    ----------
    kind : str
        Registered encoder kind: ``builtin``, ``uni``, ``ctranspath``, ``timm:<model>``.
    checkpoint : Path or None
        Local weights file (required for every kind but ``builtin``).
    sha256 : str or None
        Expected SHA-256 of the weights; the job refuses a file that differs. Without
        it the file is loaded unverified (its checksum is still recorded).
    options : dict
        Further factory arguments (``device``, ``batch_size``, ``model_kwargs``).
    """

    kind: str
    checkpoint: Path | None = None
    sha256: str | None = None
    options: dict[str, Any] = field(default_factory=dict)

    def __post_init__(self) -> None:
        self.kind = str(self.kind).strip()
        if self.checkpoint is not None:
            self.checkpoint = Path(self.checkpoint)
        if self.sha256 is not None:
            self.sha256 = str(self.sha256).lower()
            if not _SHA.match(self.sha256):
                raise ConfigError(f"encoder sha256 {self.sha256!r} is not 64 hex digits",
                                  hint="give the SHA-256 of the weights file (sha256sum FILE)")
        if self.kind.lower() != BUILTIN and self.checkpoint is None:
            raise ConfigError(f"encoder kind {self.kind!r} needs a local weights file",
                              hint="give KIND:PATH; weights are never downloaded")

    def to_dict(self) -> dict[str, Any]:
        """JSON-friendly form (for logs and job records)."""
        return {"kind": self.kind, "checkpoint": str(self.checkpoint) if self.checkpoint
                else None, "sha256": self.sha256}


def normalise_encoders(encoders: dict[str, Any] | None) -> dict[str, EncoderSpec]:
    """Validate ``ServiceSettings.encoders`` (specs or keyword dicts) into specs.

    Raises
    ------
    ConfigError
        Bad name, ``builtin`` redefined, unknown kind or missing weights path.
    """
    out: dict[str, EncoderSpec] = {}
    for name, spec in (encoders or {}).items():
        if not _NAME.match(str(name)):
            raise ConfigError(f"encoder name {name!r} is not allowed",
                              hint="use letters, digits, '.', '_' or '-' (at most 64)")
        if str(name).lower() == BUILTIN:
            raise ConfigError("the name 'builtin' is reserved for the built-in encoder",
                              hint="give your encoder another name")
        if isinstance(spec, dict):
            spec = EncoderSpec(**spec)
        if not isinstance(spec, EncoderSpec):
            raise ConfigError(f"encoder {name!r}: expected an EncoderSpec or a dict, got "
                              f"{type(spec).__name__}", hint="see ServiceSettings.encoders")
        from hccstrat.encoders.registry import check_encoder_name

        check_encoder_name(spec.kind)
        out[str(name)] = spec
    return out


def parse_encoder_option(text: str) -> tuple[str, EncoderSpec]:
    """Parse ``NAME=KIND:PATH[:SHA256]`` (``KIND`` may be ``timm:<model>``).

    Examples
    --------
    >>> name, spec = parse_encoder_option("r=timm:resnet18:/w/r18.pth")  # doctest: +SKIP
    >>> name, spec.kind, str(spec.checkpoint)                            # doctest: +SKIP
    ('r', 'timm:resnet18', '/w/r18.pth')

    Raises
    ------
    ConfigError
        Malformed text, bad checksum, unknown kind.
    """
    name, sep, rest = str(text).partition("=")
    name = name.strip()
    hint = "write NAME=KIND:PATH[:SHA256], e.g. uni=uni:/models/uni.bin:<sha256>"
    if not sep or not name or not rest:
        raise ConfigError(f"--encoder {text!r} is not NAME=KIND:PATH[:SHA256]", hint=hint)
    parts = rest.split(":")
    n_kind = 2 if parts[0].lower() == "timm" else 1
    kind = ":".join(parts[:n_kind])
    tail = parts[n_kind:]
    sha = None
    if len(tail) >= 2:  # the last field is the checksum
        sha = tail.pop()
        if not _SHA.match(sha):
            raise ConfigError(f"--encoder {text!r}: {sha!r} is not a 64-digit SHA-256",
                              hint=hint)
    path = ":".join(tail)
    if kind.lower() == BUILTIN and not path:
        spec = EncoderSpec(BUILTIN)
    else:
        if not path:
            raise ConfigError(f"--encoder {text!r} has no weights path", hint=hint)
        spec = EncoderSpec(kind, Path(path).expanduser(), sha)
        if not spec.checkpoint.is_file():
            raise ConfigError(f"--encoder {name}: weights file {spec.checkpoint} not found",
                              hint="give the path of the locally downloaded weights")
    normalise_encoders({name: spec})
    return name, spec


def encoder_names(settings) -> list[str]:
    """Names an embed request may use: ``builtin`` and the configured encoders."""
    return [BUILTIN, *sorted(getattr(settings, "encoders", None) or {})]


def resolve_encoder(settings, name: str | None) -> tuple[str, EncoderSpec]:
    """The spec of a requested encoder name (None: ``builtin``).

    Raises
    ------
    UnknownEncoderError
        The name is not configured.
    """
    name = name or BUILTIN
    configured = getattr(settings, "encoders", None) or {}
    if name == BUILTIN:
        return BUILTIN, EncoderSpec(BUILTIN)
    if name not in configured:
        raise UnknownEncoderError(name, encoder_names(settings))
    return name, configured[name]


def encoder_cache_key(spec: EncoderSpec) -> tuple:
    """Identity of the encoder a spec builds: kind, options, and the weights file as it
    is now (path, size, modification time, expected checksum), so a replaced file is
    built (and verified) again."""
    import json

    weights = None
    if spec.checkpoint is not None:
        try:
            st = spec.checkpoint.stat()
            weights = (str(spec.checkpoint.resolve()), st.st_size, st.st_mtime_ns)
        except OSError:
            weights = (str(spec.checkpoint), None, None)
    opts = json.dumps(spec.options, sort_keys=True, default=str)
    return (spec.kind.lower(), weights, spec.sha256, opts)


def build_encoder(spec: EncoderSpec):
    """Build the encoder of a spec; the weights' checksum is verified when one is given.

    Raises
    ------
    ConfigError, ModelError
        Unknown kind, missing or corrupt weights, wrong architecture.
    """
    from hccstrat.encoders.registry import create_encoder

    if spec.kind.lower() == BUILTIN:
        return create_encoder(BUILTIN, **spec.options)
    return create_encoder(spec.kind, checkpoint=spec.checkpoint, sha256=spec.sha256,
                          **spec.options)
