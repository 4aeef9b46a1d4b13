"""Tile-encoder registry: name → factory; registering a name twice is refused.

An encoder turns a batch of RGB ``uint8`` tiles ``(B, H, W, 3)`` at a known mpp into
float32 features ``(B, D)``. Factories take keyword arguments (checkpoint path,
expected checksum, device…) and return an object following :class:`Encoder`.

Examples
--------
>>> from hccstrat.encoders import registry
>>> enc = registry.create_encoder("builtin")                  # doctest: +SKIP
>>> enc.encode(tiles, mpp=0.5).shape                           # doctest: +SKIP
(64, 48)
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Any, Protocol, runtime_checkable

import numpy as np

from hccstrat.exceptions import ConfigError

__all__ = [
    "Encoder",
    "available_encoders",
    "check_encoder_name",
    "create_encoder",
    "register_encoder",
    "unregister_encoder",
]


@runtime_checkable
class Encoder(Protocol):
    """What the pipeline needs from an encoder.

    Attributes
    ----------
    name : str
    dim : int
        Feature length.
    sha256 : str
        Checksum of the weights ("builtin-<version>" for weight-free encoders).
    input_size : int
        Tile side the encoder expects (tiles of another size are resized).
    """

    name: str
    dim: int
    sha256: str
    input_size: int

    def encode(self, tiles: np.ndarray, *, mpp: float) -> np.ndarray: ...


_REGISTRY: dict[str, Callable[..., Encoder]] = {}
_BUILTINS_LOADED = False


def register_encoder(name: str, factory: Callable[..., Encoder] | None = None):
    """Register ``factory`` under ``name`` (usable as a decorator).

    Raises
    ------
    ConfigError
        When ``name`` is already registered.
    """

    def deco(f: Callable[..., Encoder]) -> Callable[..., Encoder]:
        key = name.lower()
        if key in _REGISTRY:
            raise ConfigError(
                f"an encoder named {name!r} is already registered",
                hint="pick another name or unregister_encoder() the old one first",
            )
        _REGISTRY[key] = f
        return f

    return deco(factory) if factory is not None else deco


def unregister_encoder(name: str) -> None:
    """Remove a registered encoder (mainly for tests and plugins)."""
    _REGISTRY.pop(name.lower(), None)


def _ensure_builtins() -> None:
    global _BUILTINS_LOADED
    if not _BUILTINS_LOADED:
        _BUILTINS_LOADED = True
        from hccstrat.encoders import builtin, foundation

        builtin.register()
        foundation.register()


def available_encoders() -> list[str]:
    """Names of the registered encoders."""
    _ensure_builtins()
    return sorted(_REGISTRY)


def check_encoder_name(name: str) -> None:
    """Raise :class:`ConfigError` unless ``name`` is registered or ``timm:<model>``."""
    _ensure_builtins()
    key = name.lower()
    if (key.startswith("timm:") and len(key) > 5) or key in _REGISTRY:
        return
    raise ConfigError(
        f"unknown encoder {name!r}",
        hint=f"use one of: {', '.join(sorted(_REGISTRY))}, or timm:<model>",
    )


def create_encoder(name: str = "builtin", **kwargs: Any) -> Encoder:
    """Build an encoder by name; ``timm:<model>`` builds any timm architecture.

    Raises
    ------
    ConfigError
        Unknown name.
    """
    check_encoder_name(name)
    key = name.lower()
    if key.startswith("timm:"):
        return _REGISTRY["timm"](model_name=name.split(":", 1)[1], **kwargs)
    return _REGISTRY[key](**kwargs)
