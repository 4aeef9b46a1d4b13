"""Ingest reports of :func:`hccstrat.io.dicom.scan_folder`: what was found, what was skipped."""

from __future__ import annotations

from pathlib import Path

import pandas as pd

from hccstrat.io._dicom_model import ScanResult

__all__ = ["ingest_report", "write_ingest_report"]


def ingest_report(scan: ScanResult) -> tuple[pd.DataFrame, pd.DataFrame]:
    """Tables of what was found: one row per series, and one per skipped file."""
    rows = []
    for study in scan.studies:
        for s in study.series:
            rows.append({"study_date": study.study_date, **s.summary()})
    series = pd.DataFrame(rows)
    skipped = pd.DataFrame(
        [{"path": str(k.path), "code": k.code, "reason": k.reason} for k in scan.skipped],
        columns=["path", "code", "reason"],
    )
    return series, skipped


def write_ingest_report(scan: ScanResult, out_dir: str | Path) -> dict[str, Path]:
    """Write ``series.csv``, ``skipped.csv`` and ``ingest.json`` under ``out_dir``."""
    import json

    from hccstrat.io.atomic import atomic_write

    out_dir = Path(out_dir)
    series, skipped = ingest_report(scan)
    paths = {"series": out_dir / "series.csv", "skipped": out_dir / "skipped.csv",
             "summary": out_dir / "ingest.json"}
    with atomic_write(paths["series"]) as fh:
        series.to_csv(fh, index=False)
    with atomic_write(paths["skipped"]) as fh:
        skipped.to_csv(fh, index=False)
    summary = {
        "root": str(scan.root), "n_files": scan.n_files, "n_skipped": len(scan.skipped),
        "studies": [
            {"uid": st.uid, "patient_id": st.patient_id, "date": str(st.study_date),
             "phases": {p: s.key for p, s in st.phases.items()},
             "n_series": len(st.series)}
            for st in scan.studies
        ],
    }
    with atomic_write(paths["summary"]) as fh:
        json.dump(summary, fh, indent=2, ensure_ascii=False)
    return paths
