"""Guards on command-line output paths."""

from __future__ import annotations

from pathlib import Path

from hccstrat.exceptions import ConfigError

__all__ = ["refuse_overwriting_inputs"]


def refuse_overwriting_inputs(outputs: dict[str, Path], inputs: dict[str, Path | None]) -> None:
    """Refuse an output that is one of the command's input files.

    Writing it would replace the input (a patient table, validation results) with
    the output, and the input would be lost.

    Parameters
    ----------
    outputs : dict of str to Path
        What each output file is (``"--out"``, ``"the JSON beside --out"``) → its path.
    inputs : dict of str to Path or None
        Option name → input path (``None`` when the option was not given).

    Raises
    ------
    ConfigError
        Naming the output and the input it would replace.
    """
    given = {name: p.resolve() for name, p in inputs.items() if p is not None}
    for what, out in outputs.items():
        for name, path in given.items():
            if out.resolve() == path:
                raise ConfigError(
                    f"{what} '{out}' is the {name} input: writing it would replace that file",
                    hint="choose another --out",
                )
