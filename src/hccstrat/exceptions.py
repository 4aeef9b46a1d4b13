"""Error hierarchy of hccstrat.

Every error carries a stable ``code`` (used in manifests, logs and the API), a
message saying *what* went wrong and *where*, and a ``hint`` saying how to fix it.
The CLI maps each class to a distinct exit code and prints one line unless
``--debug`` is given.

Examples
--------
>>> from hccstrat.exceptions import InputFileError
>>> err = InputFileError("cannot read 'x.csv'", hint="check the path")
>>> err.code, err.exit_code
('HCC-IO-001', 3)
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any

__all__ = [
    "ConfigError",
    "DataValidationError",
    "DependencyMissingError",
    "HccstratError",
    "InputFileError",
    "MappingError",
    "ModelError",
    "NotFittedError",
    "Problem",
    "ValidationReport",
]


class HccstratError(Exception):
    """Base class of every error hccstrat raises on purpose.

    Parameters
    ----------
    message : str
        What went wrong and where.
    hint : str, optional
        How to fix it.
    """

    code = "HCC-000"
    exit_code = 1

    def __init__(self, message: str, *, hint: str | None = None) -> None:
        super().__init__(message)
        self.message = message
        self.hint = hint

    def __str__(self) -> str:
        if self.hint:
            return f"{self.message} (how to fix: {self.hint})"
        return self.message

    def to_dict(self) -> dict[str, Any]:
        """Serialisable form for manifests and API responses."""
        return {"code": self.code, "message": self.message, "hint": self.hint}


class ConfigError(HccstratError):
    """A configuration value or command-line option is invalid."""

    code = "HCC-CFG-001"
    exit_code = 2


class InputFileError(HccstratError):
    """An input file is missing, unreadable or of the wrong format."""

    code = "HCC-IO-001"
    exit_code = 3


class MappingError(HccstratError):
    """A YAML import mapping file is malformed or refers to unknown columns."""

    code = "HCC-MAP-001"
    exit_code = 4


@dataclass(frozen=True)
class Problem:
    """One problem found while validating a table.

    Attributes
    ----------
    row : int or None
        1-based data row in the source file (header excluded); ``None`` for
        table-level problems such as an unknown column.
    patient_id : str or None
        Patient identifier of the row, when known.
    column : str
        Column concerned (source name when the problem is about the input file).
    value : Any
        The offending value, as read.
    expected : str
        What was expected instead.
    """

    row: int | None
    patient_id: str | None
    column: str
    value: Any
    expected: str

    def __str__(self) -> str:
        where = "table" if self.row is None else f"row {self.row}"
        pid = f" (patient {self.patient_id})" if self.patient_id else ""
        got = _display(self.value)
        return f"{where}{pid}, column '{self.column}': got {got}; expected {self.expected}"


def _display(value: Any) -> str:
    """Short, user-facing rendering of an offending value."""
    if hasattr(value, "isoformat"):  # dates and timestamps
        return value.isoformat()[:10] if getattr(value, "hour", 0) == 0 else value.isoformat()
    if hasattr(value, "item"):  # numpy scalars
        value = value.item()
    if isinstance(value, float):
        return f"{value:g}"
    return repr(value)


@dataclass
class ValidationReport:
    """All problems found in one table; empty when the table is valid."""

    problems: list[Problem] = field(default_factory=list)
    source: str | None = None

    def __bool__(self) -> bool:  # truthy when there are problems
        return bool(self.problems)

    def __len__(self) -> int:
        return len(self.problems)

    def add(self, problem: Problem) -> None:
        """Append one problem."""
        self.problems.append(problem)

    def extend(self, problems: list[Problem]) -> None:
        """Append several problems."""
        self.problems.extend(problems)

    def to_frame(self):  # pandas imported lazily: this module has no heavy imports
        """Problems as a DataFrame (one row each)."""
        import pandas as pd

        return pd.DataFrame(
            [p.__dict__ for p in self.problems],
            columns=["row", "patient_id", "column", "value", "expected"],
        )

    def format(self, limit: int | None = 50) -> str:
        """Human-readable listing of the problems."""
        head = f"{len(self.problems)} problem(s)"
        if self.source:
            head += f" in {self.source}"
        shown = self.problems if limit is None else self.problems[:limit]
        lines = [head + ":"] + [f"  - {p}" for p in shown]
        if limit is not None and len(self.problems) > limit:
            lines.append(f"  ... and {len(self.problems) - limit} more not shown")
        return "\n".join(lines)


class DataValidationError(HccstratError):
    """A table failed validation; ``report`` lists every problem found."""

    code = "HCC-DATA-001"
    exit_code = 5

    def __init__(self, report: ValidationReport, *, hint: str | None = None) -> None:
        super().__init__(
            report.format(limit=20),
            hint=hint or "correct the listed values or the mapping file; nothing was written",
        )
        self.report = report

    def to_dict(self) -> dict[str, Any]:
        out = super().to_dict()
        out["problems"] = [p.__dict__ | {"value": repr(p.value)} for p in self.report.problems]
        return out


class ModelError(HccstratError):
    """A model cannot be fitted, used, saved or loaded."""

    code = "HCC-MODEL-001"
    exit_code = 6


class NotFittedError(ModelError, ValueError):
    """An estimator method needing fitted state was called before ``fit``."""

    code = "HCC-MODEL-002"


class DependencyMissingError(HccstratError, ImportError):
    """An optional dependency is not installed."""

    code = "HCC-DEP-001"
    exit_code = 7

    def __init__(self, package: str, extra: str) -> None:
        super().__init__(
            f"optional dependency '{package}' is not installed",
            hint=f"pip install 'hccstrat[{extra}]'",
        )
        self.package = package
        self.extra = extra
