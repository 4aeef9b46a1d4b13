"""Command-line interface (Typer). One module per command group; commands are thin.

Errors derived from :class:`hccstrat.exceptions.HccstratError` print one line and
exit with the class's exit code; ``--debug`` shows the traceback.
"""

from __future__ import annotations

import importlib
import logging
import sys

import typer

from hccstrat import __version__
from hccstrat.exceptions import HccstratError

__all__ = ["app", "main"]

app = typer.Typer(
    name="hccstrat",
    help="Perioperative risk stratification and adjuvant-therapy selection in HCC.",
    no_args_is_help=True,
    pretty_exceptions_enable=False,
    add_completion=False,
)

#: (module, group name[, attribute]) of the command groups; the attribute defaults to ``app``.
_GROUPS: list[tuple[str, ...]] = [
    ("hccstrat.cli.cohort", "cohort"),
    ("hccstrat.cli.trial", "trial"),
    ("hccstrat.cli.wsi", "wsi"),
    ("hccstrat.cli.mri", "mri"),
    ("hccstrat.cli.distributed", "distributed"),
    ("hccstrat.cli.distributed", "federated", "federated_app"),
]
#: modules that register top-level commands on :data:`app`
_COMMANDS: list[str] = ["hccstrat.cli.scores", "hccstrat.cli.validate", "hccstrat.cli.demo"]

_state = {"debug": False}


def _version(value: bool) -> None:
    if value:
        typer.echo(f"hccstrat {__version__}")
        raise typer.Exit()


@app.callback()
def _root(
    debug: bool = typer.Option(False, "--debug", help="Show full tracebacks and debug logs."),
    version: bool = typer.Option(
        False, "--version", callback=_version, is_eager=True, help="Print the version and exit."
    ),
) -> None:
    _state["debug"] = debug
    logging.basicConfig(
        level=logging.DEBUG if debug else logging.WARNING,
        format="%(levelname)s %(name)s: %(message)s",
    )


for _module, _name, *_attr in _GROUPS:
    app.add_typer(getattr(importlib.import_module(_module), *(_attr or ["app"])), name=_name)
for _module in _COMMANDS:
    importlib.import_module(_module)
for _module in ("hccstrat.cli.serve", "hccstrat.cli.models"):
    importlib.import_module(_module).register(app)


def main(argv: list[str] | None = None) -> int:
    """Entry point: run the CLI and map hccstrat errors to exit codes."""
    args = list(sys.argv[1:] if argv is None else argv)
    _state["debug"] = "--debug" in args
    try:
        # without standalone mode click *returns* the code of a ``typer.Exit`` raised in
        # a command (e.g. ``validate`` with failed stages) instead of raising it
        rc = app(args=args, standalone_mode=False)
    except HccstratError as err:
        if _state["debug"]:
            raise
        from rich.console import Console
        from rich.markup import escape

        # escape: a message quoting "[...]" (a list, a regex) must not be eaten as markup
        Console(stderr=True).print(
            f"[bold red]error[/] {escape(f'[{err.code}] {err}')}", highlight=False,
            soft_wrap=True,
        )
        return err.exit_code
    except typer.Exit as ex:
        return ex.exit_code
    except typer.Abort:
        typer.echo("aborted", err=True)
        return 130
    except Exception as ex:  # click usage errors and the like
        import click

        if isinstance(ex, click.ClickException):
            ex.show()
            return ex.exit_code
        if _state["debug"]:
            raise
        typer.echo(
            f"internal error: {type(ex).__name__}: {ex} (rerun with --debug for the traceback "
            "and report it)",
            err=True,
        )
        return 70
    return rc if isinstance(rc, int) else 0


if __name__ == "__main__":  # pragma: no cover
    sys.exit(main())
