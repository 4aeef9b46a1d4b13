"""``hccstrat cohort``: build cohorts (synthetic ground truth; imports of real data).

Commands are thin: they parse options, call the library and render with rich.
Heavy imports happen inside the commands so ``hccstrat --help`` stays fast.
"""

from __future__ import annotations

from pathlib import Path

import typer

__all__ = ["app", "import_", "synth"]

app = typer.Typer(
    help="Build cohorts: synthetic cohorts with an oracle (synth), registry imports (import).",
    no_args_is_help=True,
)

#: DOMAIN.md ranges shown beside the generated figures (fractions / months / years)
_REFERENCE = {
    "median age": "52-58 (Asian), 62-68 (Western)",
    "male": "0.80-0.88",
    "HBV": "0.70-0.85 in China",
    "cirrhosis": "0.50-0.70",
    "median AFP (ng/mL)": "20-60",
    "AFP >= 400": "0.25-0.35",
    "median size (cm)": "4-5",
    "MVI": "0.30-0.45",
    "recurrence by 24 mo (KM)": "0.30-0.40",
    "OS at 60 mo (KM)": "0.60-0.70",
}


@app.callback()
def _group() -> None:
    """Build cohorts: synthetic multi-centre cohorts with an oracle, or registry imports."""


def _console():
    from rich.console import Console

    return Console(stderr=True)


@app.command("synth")
def synth(
    out: Path = typer.Option(..., "--out", help="Output folder (created if needed)."),
    n: int = typer.Option(1000, "--n", help="Number of patients (>= 1)."),
    centres: int = typer.Option(8, "--centres", help="Number of centres (1-99)."),
    seed: int = typer.Option(0, "--seed", help="Random seed (>= 0); same seed, same cohort."),
    image_signal: float = typer.Option(
        1.0,
        "--image-signal",
        help="How strongly image traces reflect latent aggressiveness (0 = none, 1 = default).",
    ),
    treatment: str = typer.Option(
        "observational", "--treatment", help="Adjuvant assignment: observational or randomised."
    ),
    start_date: str = typer.Option("2018-01-01", "--start-date", help="First day of accrual."),
    accrual_years: float = typer.Option(4.0, "--accrual-years", help="Accrual period (years)."),
    followup_years: float = typer.Option(
        5.0, "--followup-years", help="Follow-up after accrual until the database lock (years)."
    ),
    western_centres: int | None = typer.Option(
        None, "--western-centres", help="Number of Western centres (default depends on --centres)."
    ),
    overwrite: bool = typer.Option(False, "--overwrite", help="Replace a cohort already in --out."),
) -> None:
    """Generate a synthetic cohort and write clinical/latent/oracle/centres CSVs + config."""
    from rich.progress import Progress, SpinnerColumn, TextColumn, TimeElapsedColumn
    from rich.table import Table

    from hccstrat.exceptions import ConfigError
    from hccstrat.synthetic.cohort import generate_cohort

    if out.exists() and not out.is_dir():
        raise ConfigError(f"--out '{out}' is a file", hint="give a folder path")
    if (out / "config.json").exists() and not overwrite:
        raise ConfigError(
            f"'{out}' already holds a cohort", hint="pass --overwrite or choose another --out"
        )
    console = _console()
    with Progress(
        SpinnerColumn(),
        TextColumn("{task.description}"),
        TimeElapsedColumn(),
        console=console,
        transient=True,
    ) as progress:
        task = progress.add_task(f"Generating {n} patients in {centres} centres", total=None)
        cohort = generate_cohort(
            n,
            centres,
            seed=seed,
            image_signal=image_signal,
            start_date=start_date,
            accrual_years=accrual_years,
            followup_years=followup_years,
            treatment=treatment,  # type: ignore[arg-type]
            western_centres=western_centres,
        )
        progress.update(task, description=f"Writing the cohort to {out}")
        cohort.save(out)
    table = Table(title=f"Synthetic cohort (seed {seed}) written to {out}")
    table.add_column("figure")
    table.add_column("value", justify="right")
    table.add_column("DOMAIN.md", style="dim")
    for key, value in cohort.summary().items():
        shown = f"{value:.0f}" if key in ("patients", "centres") else f"{value:.3g}"
        table.add_row(key, shown, _REFERENCE.get(key, ""))
    console.print(table)
    typer.echo(str(out))


@app.command("import")
def import_(
    source: Path = typer.Argument(
        ..., help="Registry export: CSV, TSV or Excel, one row per patient."
    ),
    out: Path = typer.Option(
        ..., "--out", help="Canonical CSV to write (only if the file is valid)."
    ),
    mapping: Path | None = typer.Option(
        None, "--mapping", help="YAML mapping: column renames, units, value maps, date formats."
    ),
    report: Path | None = typer.Option(
        None, "--report", help="Also write every problem found as a CSV (row, column, value...)."
    ),
) -> None:
    """Import a registry export into the canonical table; reject it whole on any problem."""
    from rich.table import Table

    from hccstrat.cli._paths import refuse_overwriting_inputs
    from hccstrat.clinical.importer import import_table, write_canonical
    from hccstrat.exceptions import DataValidationError
    from hccstrat.io.atomic import atomic_write

    refuse_overwriting_inputs(
        {"--out": out, "--report": report} if report else {"--out": out},
        {"registry export": source, "--mapping": mapping},
    )
    console = _console()
    try:
        table = import_table(source, mapping)
    except DataValidationError as err:
        if report is not None:
            with atomic_write(report, newline="") as fh:
                err.report.to_frame().to_csv(fh, index=False)
            console.print(f"problem list written to {report}")
        raise
    write_canonical(table, out)
    summary = Table(title=f"Imported {len(table)} patients from {source.name}")
    summary.add_column("group")
    summary.add_column("columns present")
    from hccstrat.schema import COLUMNS

    groups: dict[str, list[str]] = {}
    for c in COLUMNS:
        if c.name in table.columns and table[c.name].notna().any():
            groups.setdefault(c.group, []).append(c.name)
    for group, cols in groups.items():
        summary.add_row(group, ", ".join(cols))
    console.print(summary)
    console.print(f"[green]canonical table written:[/] {out}")
