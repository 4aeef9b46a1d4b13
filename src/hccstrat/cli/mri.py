"""``hccstrat mri``: synthetic studies, ingest, QC, preprocessing and features of liver MRI.

Every command runs over study folders (the sub-folders of ROOT, or ROOT itself), keeps
a manifest CSV in the output folder (per study status, error code and message) and
resumes from it; one broken study never stops the batch.
"""

from __future__ import annotations

from pathlib import Path

import typer

__all__ = ["app", "demo_stage"]

app = typer.Typer(help="Pre-operative 4-phase liver MRI: synth, ingest, qc, preprocess, "
                       "features.", no_args_is_help=True)


def _progress():
    from rich.console import Console

    console = Console(stderr=True)
    return lambda msg: console.print(msg, highlight=False)


def _summary(df, stage: str) -> None:
    from rich.console import Console

    console = Console()
    n_ok = int((df["status"] == "ok").sum())
    failed = df[df["status"] != "ok"]
    console.print(f"{stage}: {n_ok}/{len(df)} ok" + ("; failed:" if len(failed) else ""))
    for _, r in failed.iterrows():
        console.print(f"  {r['item']}: [{r['error_code']}] {r['error_message']}",
                      highlight=False, markup=False)  # messages quote lists: "[...]"


def _load_mapping(path: Path | None) -> dict | None:
    if path is None:
        return None
    import yaml

    from hccstrat.exceptions import MappingError

    try:
        data = yaml.safe_load(path.read_text(encoding="utf-8"))
    except (OSError, yaml.YAMLError) as err:
        raise MappingError(f"cannot read phase mapping {path}: {err}",
                           hint="give a YAML mapping 'series uid|number|description: phase'") \
            from err
    if not isinstance(data, dict):
        raise MappingError(f"phase mapping {path} is not a mapping",
                           hint="write lines like '7: portal' or 'Ax LAVA 3: arterial'")
    return {str(k): str(v) for k, v in data.items()}


@app.command("synth")
def synth(
    out: Path = typer.Option(..., "--out", "-o", help="Folder to write the studies into."),
    n: int = typer.Option(4, "--n", min=1, help="Number of studies."),
    seed: int = typer.Option(0, "--seed"),
    size: int = typer.Option(128, "--size", min=8, help="In-plane matrix."),
    slices: int = typer.Option(40, "--slices", min=2, help="Slices per phase."),
    strip: bool = typer.Option(False, "--strip-descriptions",
                               help="Write generic descriptions (tests the fallbacks)."),
) -> None:
    """Write synthetic 4-phase liver MRI studies (DICOM + NIfTI/SEG masks)."""
    import numpy as np

    from hccstrat.io.atomic import ensure_output_dir
    from hccstrat.synthetic.mri import VENDORS, sample_latent, write_study

    ensure_output_dir(out)
    rng = np.random.default_rng(seed)
    vendors = list(VENDORS)
    for i in range(n):
        pid = f"SYN{i + 1:03d}"
        write_study(out / pid, sample_latent(rng), vendor=vendors[i % len(vendors)],
                    patient_id=pid, seed=seed * 1000 + i, shape=(size, size, slices),
                    spacing=(384.0 / size, 384.0 / size, 200.0 / slices),
                    strip_descriptions=strip)
        typer.echo(f"wrote {out / pid} ({vendors[i % len(vendors)]})")


@app.command("ingest")
def ingest(
    root: Path = typer.Argument(..., exists=True, help="Folder of study folders."),
    out: Path = typer.Option(Path("out/mri"), "--out"),
    mapping: Path = typer.Option(None, "--mapping", help="YAML phase mapping file."),
    workers: int = typer.Option(1, "--workers", min=1),
    no_resume: bool = typer.Option(False, "--no-resume"),
) -> None:
    """Find series, sort slices, identify phases; write per-study reports and a manifest."""
    from hccstrat.radiology.batch import run_batch, stage_ingest, study_dirs

    m = _load_mapping(mapping)
    items = [(d.name, (d, out / d.name / "ingest", m)) for d in study_dirs(root)]
    df = run_batch(items, stage_ingest, out / "manifest_ingest.csv", stage="ingest",
                   resume=not no_resume, workers=workers, progress=_progress())
    _summary(df, "ingest")


@app.command("qc")
def qc(
    root: Path = typer.Argument(..., exists=True),
    out: Path = typer.Option(Path("out/mri"), "--out"),
    reference_date: str = typer.Option(None, "--reference-date",
                                       help="MRI must be within 1 month before it."),
    workers: int = typer.Option(1, "--workers", min=1),
    no_resume: bool = typer.Option(False, "--no-resume"),
) -> None:
    """Quality control per study (pass/warn/fail per check, study verdict)."""
    import datetime as dt

    from hccstrat.exceptions import ConfigError
    from hccstrat.radiology.batch import run_batch, stage_qc, study_dirs

    if reference_date is not None:
        try:
            reference_date = dt.date.fromisoformat(reference_date.strip()).isoformat()
        except ValueError as err:
            raise ConfigError(f"--reference-date {reference_date!r} is not a valid date",
                              hint="give it as YYYY-MM-DD, e.g. the planned surgery date "
                                   "--reference-date 2024-02-01") from err
    items = [(d.name, (d, out / d.name, reference_date)) for d in study_dirs(root)]
    df = run_batch(items, stage_qc, out / "manifest_qc.csv", stage="qc",
                   resume=not no_resume, workers=workers, progress=_progress())
    _summary(df, "qc")


@app.command("preprocess")
def preprocess(
    root: Path = typer.Argument(..., exists=True),
    out: Path = typer.Option(Path("out/mri"), "--out"),
    spacing: str = typer.Option(None, "--spacing", help="Target spacing 'x,y,z' in mm."),
    no_register: bool = typer.Option(False, "--no-register"),
    n4: bool = typer.Option(False, "--n4", help="N4 bias-field correction."),
    workers: int = typer.Option(1, "--workers", min=1),
    no_resume: bool = typer.Option(False, "--no-resume"),
) -> None:
    """Resample, register to portal venous, normalise, crop the tumour; NIfTI + JSON."""
    from hccstrat.exceptions import ConfigError
    from hccstrat.radiology.batch import run_batch, stage_preprocess, study_dirs
    from hccstrat.radiology.preprocess import PreprocessConfig

    sp = None
    if spacing:
        try:
            sp = tuple(float(v) for v in spacing.split(","))
        except ValueError as err:
            raise ConfigError(f"--spacing {spacing!r} is not 'x,y,z'", hint="e.g. 1.5,1.5,3") \
                from err
        if len(sp) != 3 or min(sp) <= 0:
            raise ConfigError(f"--spacing {spacing!r} needs 3 positive numbers",
                              hint="e.g. 1.5,1.5,3")
    cfg = PreprocessConfig(spacing=sp, register=not no_register, n4=n4)
    items = [(d.name, (d, out / d.name / "preprocessed", cfg)) for d in study_dirs(root)]
    df = run_batch(items, stage_preprocess, out / "manifest_preprocess.csv",
                   stage="preprocess", resume=not no_resume, workers=workers,
                   progress=_progress())
    _summary(df, "preprocess")


@app.command("features")
def features(
    out: Path = typer.Option(Path("out/mri"), "--out", help="Output folder of preprocess."),
    table: Path = typer.Option(None, "--table", help="CSV (default OUT/features.csv)."),
    no_resume: bool = typer.Option(False, "--no-resume"),
) -> None:
    """Radiomic + inter-phase features of every preprocessed study; one CSV row each.

    The table is indexed by study folder and has a ``patient_id`` column (DICOM
    PatientID) for joining with the clinical data (hccstrat.models.join_feature_tables).
    """
    import json

    import pandas as pd

    from hccstrat.exceptions import InputFileError
    from hccstrat.io.atomic import atomic_write, ensure_output_dir
    from hccstrat.radiology.batch import run_batch, stage_features

    table = table or out / "features.csv"
    ensure_output_dir(table.parent, "--table")
    dirs = sorted(p.parent for p in out.glob("*/preprocessed/preprocess.json"))
    if not dirs:
        raise InputFileError(
            f"no preprocessed studies in '{out}' (looked for */preprocessed/preprocess.json)",
            hint="run 'hccstrat mri preprocess ROOT --out OUT' first and give the same --out",
        )
    items = [(d.parent.name, (d, d.parent)) for d in dirs]
    df = run_batch(items, stage_features, out / "manifest_features.csv", stage="features",
                   resume=not no_resume, progress=_progress())
    rows = {}
    for _, r in df[df["status"] == "ok"].iterrows():
        rows[r["item"]] = json.loads(Path(r["output"]).read_text())
    tab = pd.DataFrame.from_dict(rows, orient="index")
    tab.index.name = "study"
    if "patient_id" in tab:  # first column: the join key of hccstrat.models
        tab.insert(0, "patient_id", tab.pop("patient_id").astype(str))
    with atomic_write(table) as fh:
        tab.to_csv(fh)
    _summary(df, "features")


def demo_stage(cohort, out_dir: Path, *, seed: int, progress) -> list:
    """MRI stage of ``hccstrat demo``: 4 synthetic studies → ingest, QC, preprocess, figure."""
    import matplotlib.pyplot as plt
    import pandas as pd

    from hccstrat.io.dicom import ingest_report, scan_folder
    from hccstrat.radiology.features import extract_features
    from hccstrat.radiology.plots import plot_registered_phases
    from hccstrat.radiology.preprocess import find_masks, preprocess_study
    from hccstrat.radiology.qc import qc_study
    from hccstrat.reports.html import Section, figure_to_html, table_to_html
    from hccstrat.synthetic.mri import VENDORS, write_study

    out_dir = Path(out_dir) / "mri"
    latent = cohort.latent.reset_index(drop=True)
    clinical = getattr(cohort, "clinical", None)
    vendor_of = {}
    centres = getattr(cohort, "centres", None)
    if centres is not None and "scanner_vendor" in centres:
        vendor_of = dict(zip(centres["centre"], centres["scanner_vendor"], strict=False))
    vendors = list(VENDORS)
    picks = latent.sort_values("aggressiveness").iloc[
        [0, len(latent) // 3, 2 * len(latent) // 3, len(latent) - 1]]
    rows, reports, pre_dirs, feats = [], [], {}, []
    for k, (_, lat) in enumerate(picks.iterrows()):
        pid = str(lat.get("patient_id", f"P{k}"))
        vendor = vendor_of.get(lat.get("centre"), vendors[k % len(vendors)])
        if vendor not in VENDORS:
            vendor = vendors[k % len(vendors)]
        mri_date, ref = None, None
        if clinical is not None and "mri_date" in clinical:
            rec = clinical.loc[clinical["patient_id"] == lat.get("patient_id")]
            if len(rec):
                mri_date = rec["mri_date"].iloc[0]
                ref = rec["surgery_date"].iloc[0] if "surgery_date" in rec else None
        progress(f"MRI: writing synthetic study {pid} ({vendor})")
        study_dir = out_dir / "studies" / pid
        write_study(study_dir, lat.to_dict(), vendor=vendor, patient_id=pid,
                    study_date=mri_date if pd.notna(mri_date) else None, seed=seed + k,
                    shape=(112, 112, 36), spacing=(3.4, 3.4, 5.5), write_dicom_seg=(k == 0))
        progress(f"MRI: ingest + QC {pid}")
        scan = scan_folder(study_dir)
        study = scan.study()
        ser, _ = ingest_report(scan)
        rows.append(ser.assign(vendor=vendor))
        masks = find_masks(study_dir, study)
        progress(f"MRI: preprocess {pid}")
        pre = preprocess_study(study, out_dir / "preprocessed" / pid,
                               tumour_mask=masks["tumour"], liver_mask=masks["liver"])
        rep = qc_study(study, reference_date=ref if pd.notna(ref) else None,
                       registrations=pre.summary.get("_registrations"), volumes=pre.volumes)
        reports.append(rep)
        pre_dirs[pid] = pre
        feats.append(extract_features(pre).rename(pid))
    series = pd.concat(rows, ignore_index=True)
    series = series[series["phase"].notna()][["patient_id", "vendor", "description", "phase",
                                              "phase_confidence", "phase_reason"]]
    qc_tab = pd.DataFrame([r.summary_row() for r in reports])
    ftab = pd.DataFrame(feats)[["shape_volume_ml", "ie_arterial_enhancement", "ie_rim_ratio",
                                "ie_washout_portal", "ie_peritumoral_arterial",
                                "shape_margin_irregularity"]].reset_index(names="patient_id")
    first = max(feats, key=lambda f: f["shape_volume_ml"]).name
    progress("MRI: figure")
    fig, axes = plt.subplots(1, 4, figsize=(12, 3.4))
    plot_registered_phases(pre_dirs[first], axes=axes)
    fig.suptitle(f"Patient {first}: registered phases, tumour contour")
    body = (
        "<p>Synthetic 4-phase liver MRI written as DICOM in each centre's vendor style, "
        "ingested (phases identified from tags, timing or enhancement), quality-checked, "
        "registered to the portal venous phase and normalised to the non-contrast liver.</p>"
        + table_to_html(qc_tab, caption="QC summary (verdict and per-check status)")
        + figure_to_html(fig, alt=f"Four registered phases of patient {first} with the "
                                  "tumour contour")
        + table_to_html(series, caption="Phase identification")
        + table_to_html(ftab, caption="Selected imaging features (index tumour)")
    )
    numbers = {"n_studies": len(reports),
               "n_acceptable": int(sum(r.acceptable for r in reports)),
               "phase_identification_rate": float(series["phase"].notna().mean())}
    return [Section("Pre-operative MRI", body, numbers)]
