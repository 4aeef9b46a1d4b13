"""``hccstrat demo``: the end-to-end demonstration on the embedded synthetic cohort.

Stages run in order; each returns report sections. A stage that fails is reported
in the HTML (with its error) and the demo goes on with the next one, so one broken
component never hides the others; the exit code is non-zero if any stage failed.
"""

from __future__ import annotations

import importlib
import logging
import time
from pathlib import Path

import typer

from hccstrat.cli import app

__all__ = ["STAGES", "demo"]

log = logging.getLogger(__name__)

#: (label, "module:function") of the demo stages after the clinical foundation.
STAGES: list[tuple[str, str]] = [
    ("clinical baseline", "hccstrat.cli._demo_clinical:demo_stage"),
    ("MRI", "hccstrat.cli.mri:demo_stage"),
    ("prediction models", "hccstrat.cli.models:demo_stage"),
    ("validation", "hccstrat.cli.validate:demo_stage"),
    ("whole-slide images", "hccstrat.cli.wsi:demo_stage"),
    ("tumour immune microenvironment", "hccstrat.cli._demo_time:demo_stage_time"),
    ("trial", "hccstrat.cli._demo_trial:demo_stage"),
]


def _load(target: str):
    module, func = target.split(":")
    return getattr(importlib.import_module(module), func)


@app.command("demo")
def demo(
    out: Path = typer.Option(Path("out/demo"), "--out", help="Output folder for the report."),
    n_patients: int = typer.Option(600, "--n", min=50, help="Synthetic patients."),
    n_centres: int = typer.Option(8, "--centres", min=2, help="Synthetic centres."),
    seed: int = typer.Option(0, "--seed", help="Random seed (the demo is deterministic)."),
    only: list[str] = typer.Option(
        None, "--only", help="Run only the named stage(s) (see the report's contents)."
    ),
) -> None:
    """Generate a synthetic cohort, run every pipeline stage and write out/demo/report.html."""
    from rich.console import Console
    from rich.progress import BarColumn, Progress, SpinnerColumn, TextColumn, TimeElapsedColumn

    from hccstrat.exceptions import HccstratError
    from hccstrat.reports.html import Section, render_report
    from hccstrat.synthetic.cohort import generate_cohort

    console = Console()
    out.mkdir(parents=True, exist_ok=True)
    stages = [s for s in STAGES if not only or s[0] in only]
    sections: list[Section] = []
    failures: list[str] = []
    t0 = time.perf_counter()
    with Progress(
        SpinnerColumn(),
        TextColumn("[bold]{task.description}"),
        BarColumn(),
        TextColumn("{task.completed}/{task.total} stages"),
        TimeElapsedColumn(),
        console=console,
        transient=False,
    ) as bar:
        task = bar.add_task("generating synthetic cohort", total=len(stages) + 1)
        cohort = generate_cohort(n_patients=n_patients, n_centres=n_centres, seed=seed)
        cohort.save(out / "cohort")
        bar.advance(task)
        for label, target in stages:

            def progress(desc: str, _label: str = label) -> None:
                bar.update(task, description=f"{_label}: {desc}")

            progress("starting")
            try:
                sections.extend(_load(target)(cohort, out, seed=seed, progress=progress))
            except (HccstratError, ImportError, RuntimeError, ValueError, OSError) as exc:
                log.exception("demo stage %s failed", label)
                failures.append(label)
                sections.append(
                    Section(
                        f"Stage failed: {label}",
                        f'<p class="warn">This stage failed: {type(exc).__name__}: {exc}</p>',
                    )
                )
            bar.advance(task)
        bar.update(task, description="writing report")
    report = render_report(
        out / "report.html",
        "hccstrat demo: synthetic multi-centre HCC cohort",
        sections,
        metadata={
            "patients": n_patients,
            "centres": n_centres,
            "seed": seed,
            "run time (s)": round(time.perf_counter() - t0, 1),
        },
    )
    console.print(f"[green]report written:[/] {report.resolve()}")
    if failures:
        console.print(f"[red]stages failed:[/] {', '.join(failures)} (details in the report)")
        raise typer.Exit(1)
