"""Lazy imports of the optional heavy dependencies (Ray, Flower, torch)."""

from __future__ import annotations

import importlib
import os
from types import ModuleType

from hccstrat.exceptions import DependencyMissingError

__all__ = ["require", "require_flwr", "require_ray"]


def require(module: str, extra: str) -> ModuleType:
    """Import ``module`` or raise :class:`DependencyMissingError` naming ``extra``."""
    try:
        return importlib.import_module(module)
    except ImportError as err:
        raise DependencyMissingError(module.split(".")[0], extra) from err


def require_ray() -> ModuleType:
    """The ``ray`` module (extra ``distributed``)."""
    return require("ray", "distributed")


def require_flwr() -> ModuleType:
    """The ``flwr`` module (extra ``distributed``); Flower's telemetry is switched off."""
    os.environ.setdefault("FLWR_TELEMETRY_ENABLED", "0")
    return require("flwr", "distributed")
