"""``hccstrat scores``: compute the clinical scores of a patient table.

Registers a top-level command on the root app (imported by :mod:`hccstrat.cli`
after ``app`` exists).
"""

from __future__ import annotations

from pathlib import Path

import typer

from hccstrat.cli import app

__all__ = ["scores"]


def _counts(series) -> str:
    """``"A: 10, B: 2, missing: 1"`` in the categories' order (zero counts left out)."""
    import pandas as pd

    if isinstance(series.dtype, pd.CategoricalDtype):
        counts = series.value_counts(sort=False, dropna=False)
    else:
        counts = series.value_counts(dropna=False).sort_index(na_position="last")
    return ", ".join(f"{'missing' if pd.isna(k) else k}: {v}" for k, v in counts.items() if v)


@app.command("scores")
def scores(
    input: Path = typer.Argument(
        ..., help="Patient table: canonical CSV, or any CSV/Excel with --mapping."
    ),
    out: Path = typer.Option(..., "--out", "-o", help="CSV file to write the scores to."),
    mapping: Path | None = typer.Option(
        None, "--mapping", "-m", help="YAML column/unit mapping of a non-canonical export."
    ),
    erasl_pre: Path | None = typer.Option(
        None,
        "--erasl-pre",
        help="YAML with verified ERASL-pre coefficients (default: provisional).",
    ),
    erasl_post: Path | None = typer.Option(
        None,
        "--erasl-post",
        help="YAML with verified ERASL-post coefficients (default: provisional).",
    ),
    all_columns: bool = typer.Option(
        False,
        "--all-columns",
        help="Keep every input column in the output, not only patient_id/centre.",
    ),
) -> None:
    """Child-Pugh, ALBI, BCLC 2022, AJCC 8th TNM and ERASL-pre/post for every patient."""
    import pandas as pd
    from rich.console import Console
    from rich.table import Table

    from hccstrat.cli._paths import refuse_overwriting_inputs
    from hccstrat.clinical import scores as sc
    from hccstrat.clinical.importer import import_table
    from hccstrat.exceptions import InputFileError
    from hccstrat.io.atomic import atomic_write

    inputs = {"patient table": input, "--mapping": mapping}
    refuse_overwriting_inputs(
        {"--out": out}, {**inputs, "--erasl-pre": erasl_pre, "--erasl-post": erasl_post}
    )
    if not input.is_file():
        raise InputFileError(f"input file '{input}' not found", hint="check the path")
    if mapping is not None and not mapping.is_file():
        raise InputFileError(f"mapping file '{mapping}' not found", hint="check the path")
    table = import_table(input, mapping)
    models = {
        "erasl_pre": sc.load_erasl_model(erasl_pre) if erasl_pre else sc.ERASL_PRE,
        "erasl_post": sc.load_erasl_model(erasl_post) if erasl_post else sc.ERASL_POST,
    }
    result = sc.compute_scores(table, **models)
    keep = (
        [c for c in table.columns if c not in result.columns]
        if all_columns
        else [c for c in ("centre",) if c in table.columns]
    )
    output = pd.concat([table[keep], result], axis=1) if keep else result
    if "patient_id" in output.columns:
        output = output[["patient_id", *[c for c in output.columns if c != "patient_id"]]]
    for col in output.columns:
        if pd.api.types.is_datetime64_any_dtype(output[col]):
            output[col] = output[col].dt.strftime("%Y-%m-%d")
    with atomic_write(out, newline="") as fh:
        output.to_csv(fh, index=False)

    console = Console()
    summary = Table(title=f"Clinical scores of {len(result)} patients", show_lines=False)
    summary.add_column("score")
    summary.add_column("distribution")
    for label, col in (
        ("Child-Pugh class", "child_pugh_class"),
        ("ALBI grade", "albi_grade"),
        ("BCLC stage", "bclc_stage"),
        ("BCLC source", "bclc_source"),
        ("TNM stage (AJCC 8)", "tnm_stage"),
        ("ERASL-pre group", "erasl_pre_group"),
        ("ERASL-post group", "erasl_post_group"),
    ):
        summary.add_row(label, _counts(result[col]))
    console.print(summary)
    lacked = sc.scores_lacked(result)
    why = Table(title="Missing scores and the inputs responsible")
    for col in ("score", "n_missing", "n_recorded", "inputs"):
        why.add_column(col, overflow="fold")
    for row in lacked.itertuples(index=False):
        why.add_row(row.score, str(row.n_missing), str(row.n_recorded), row.inputs or "-")
    console.print(why)
    for model in models.values():
        if not model.verified:
            console.print(
                f"[yellow]warning[/] {model.name}: provisional coefficients, not verified against "
                "Chan et al. J Hepatol 2018; groups are indicative only and no 2-year risk is "
                f"given (pass --{model.name.lower()} with the published table).",
                highlight=False,
            )
    console.print(f"wrote {out}", highlight=False)
