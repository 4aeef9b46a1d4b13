"""Batch processing of many MRI studies with a resumable manifest.

Each stage (``ingest``, ``qc``, ``preprocess``, ``features``) runs over study
folders (the sub-folders of a root, or the root itself when it holds the DICOM
files). A manifest CSV records per study: status (ok/failed/skipped), error code and
message, output path, checksum and seconds. A failure is recorded and the batch
goes on; a rerun skips the studies already ``ok`` (resume).
"""

from __future__ import annotations

import datetime as _dt
import json
import logging
import time
from collections.abc import Callable, Iterable
from dataclasses import dataclass
from pathlib import Path

import pandas as pd

from hccstrat.exceptions import HccstratError
from hccstrat.io.atomic import atomic_write, ensure_output_dir, sha256_file

__all__ = [
    "MANIFEST_COLUMNS",
    "Manifest",
    "run_batch",
    "run_item",
    "stage_features",
    "stage_ingest",
    "stage_preprocess",
    "stage_qc",
    "study_dirs",
]

log = logging.getLogger(__name__)

MANIFEST_COLUMNS = [
    "item",
    "stage",
    "status",
    "error_code",
    "error_message",
    "output",
    "sha256",
    "seconds",
    "finished",
]

_TEXT_COLUMNS = ("item", "stage", "status", "error_code", "error_message", "output", "sha256",
                 "finished")


@dataclass
class Manifest:
    """Per-item status table stored as CSV (written atomically after every item)."""

    path: Path

    def load(self) -> pd.DataFrame:
        if self.path.is_file():
            # text columns read as text: type inference on a hex checksum such as
            # '382e2949…' (a float with a huge exponent) crashes pandas' parser
            return pd.read_csv(self.path, dtype=dict.fromkeys(_TEXT_COLUMNS, str))
        return pd.DataFrame(columns=MANIFEST_COLUMNS)

    def done(self) -> set[str]:
        """Items finished before whose recorded output is still there, unchanged.

        An item whose output was deleted or altered since (a cleaned-up folder, an
        interrupted copy) is not done: a rerun redoes it. A JSON output listing the
        files it describes (``"files": {relative path: size}``, e.g. preprocess.json)
        is done only while each of them is there with its size.
        """
        df = self.load()
        out = set()
        for r in df[df["status"] == "ok"].itertuples():
            path = None if pd.isna(r.output) else Path(str(r.output))
            if path is not None and not path.exists():
                continue
            if path is not None and path.is_file() and not pd.isna(r.sha256) \
                    and sha256_file(path) != r.sha256:
                continue
            if path is not None and path.suffix == ".json" and not _files_intact(path):
                continue
            out.add(str(r.item))
        return out

    def record(self, row: dict) -> None:
        df = self.load()
        rows = df[df["item"].astype(str) != str(row["item"])].to_dict("records")
        rows.append({c: row.get(c) for c in MANIFEST_COLUMNS})
        df = pd.DataFrame(rows, columns=MANIFEST_COLUMNS)
        with atomic_write(self.path) as fh:
            df.to_csv(fh, index=False)


def _files_intact(summary: Path) -> bool:
    """Whether every file a JSON summary lists under ``"files"`` exists with its size."""
    import json

    try:
        files = json.loads(summary.read_text(encoding="utf-8")).get("files", {})
    except (OSError, ValueError, AttributeError):
        return False
    return all((summary.parent / name).is_file() and (summary.parent / name).stat().st_size
               == size for name, size in files.items())


def study_dirs(root: str | Path) -> list[Path]:
    """Study folders under ``root``: its sub-folders, or ``root`` itself if it holds files."""
    root = Path(root)
    subs = sorted(p for p in root.iterdir() if p.is_dir() and not p.name.startswith("."))
    direct = [p for p in root.iterdir() if p.is_file() and not p.name.startswith(".")]
    return [root] if direct or not subs else subs


def run_item(fn: Callable, item: str, arg, stage: str) -> dict:
    """Run ``fn(arg)`` for one item and return its manifest row (never raises).

    A :class:`~hccstrat.exceptions.HccstratError` is recorded with its code; any other
    error as ``HCC-INTERNAL``. Shared by the local and the Ray batch runners.
    """
    t0 = time.perf_counter()
    row = {"item": item, "stage": stage}
    try:
        out = fn(arg)
        row.update(status="ok", output=str(out) if out is not None else None)
        if out is not None and Path(out).is_file():
            row["sha256"] = sha256_file(out)
    except HccstratError as err:
        row.update(status="failed", error_code=err.code, error_message=str(err))
    except Exception as err:
        log.exception("unexpected error on %s", item)
        row.update(
            status="failed", error_code="HCC-INTERNAL", error_message=f"{type(err).__name__}: {err}"
        )
    row["seconds"] = round(time.perf_counter() - t0, 3)
    row["finished"] = _dt.datetime.now().isoformat(timespec="seconds")
    return row


def run_batch(
    items: Iterable[tuple[str, object]],
    fn: Callable,
    manifest_path: str | Path,
    *,
    stage: str,
    resume: bool = True,
    workers: int = 1,
    progress: Callable[[str], None] | None = None,
) -> pd.DataFrame:
    """Apply ``fn(arg)`` to every ``(item_id, arg)``; record each result in the manifest.

    ``fn`` returns the output path (or None). With ``workers > 1`` items run in
    separate processes (``fn`` must then be a module-level function).
    """
    man = Manifest(Path(manifest_path))
    ensure_output_dir(man.path.parent)
    done = man.done() if resume else set()
    todo = [(i, a) for i, a in items if str(i) not in done]
    for i in done:
        if progress:
            progress(f"{stage}: {i} already done (skipped)")
    if workers > 1 and len(todo) > 1:
        from concurrent.futures import ProcessPoolExecutor

        with ProcessPoolExecutor(max_workers=workers) as ex:
            futs = [ex.submit(run_item, fn, i, a, stage) for i, a in todo]
            for f in futs:
                row = f.result()
                man.record(row)
                if progress:
                    progress(f"{stage}: {row['item']} {row['status']}")
    else:
        for i, a in todo:
            row = run_item(fn, i, a, stage)
            man.record(row)
            if progress:
                progress(f"{stage}: {i} {row['status']}")
    return man.load()


# --- stage functions (module level so that they can run in worker processes) ---------


def stage_ingest(args: tuple[Path, Path, dict | None]) -> Path:
    """Scan one study folder and write its ingest report; fails on no MR / no phases."""
    from hccstrat.io.dicom import require_mr, scan_folder, write_ingest_report

    src, out, mapping = args
    scan = scan_folder(src, phase_mapping=mapping)
    paths = write_ingest_report(scan, out)
    if not scan.studies:
        from hccstrat.io.dicom import NotImageError

        raise NotImageError(
            f"no DICOM image found in {src} ({len(scan.skipped)} files skipped: "
            + "; ".join(sorted({k.reason for k in scan.skipped}))[:300]
            + ")",
            hint="check the folder holds the MRI export",
        )
    for st in scan.studies:
        require_mr(st)
    return paths["series"]


def stage_qc(args: tuple[Path, Path, str | None]) -> Path:
    """QC of one study folder; writes ``qc.json``; returns it (verdict inside)."""
    from hccstrat.io.dicom import require_mr, scan_folder
    from hccstrat.radiology.qc import qc_study

    src, out, ref_date = args
    study = scan_folder(src).study()
    require_mr(study)
    rep = qc_study(study, reference_date=ref_date)
    path = Path(out) / "qc.json"
    with atomic_write(path) as fh:
        json.dump(rep.to_dict(), fh, indent=2, ensure_ascii=False, default=str)
    return path


def stage_preprocess(args: tuple[Path, Path, object]) -> Path:
    """Scan and preprocess one study folder (masks found by ``find_masks``).

    The four dynamic phases are required (the pipeline is a 4-phase one): a study
    missing one fails with :class:`~hccstrat.io.dicom.MissingPhaseError`.
    """
    from hccstrat.io.dicom import MissingPhaseError, require_mr, scan_folder
    from hccstrat.radiology.preprocess import find_masks, preprocess_study

    src, out, cfg = args
    study = scan_folder(src).study()
    require_mr(study)
    missing = [p for p in ("pre", "arterial", "portal", "delayed") if p not in study.phases]
    if missing:
        raise MissingPhaseError(
            f"{src}: phase(s) not found or not identified: "
            f"{', '.join(missing)} (found: "
            f"{', '.join(study.phases) or 'none'})",
            hint="check the ingest report (series.csv); give a phase "
            "mapping file (--mapping) for unnamed series",
        )
    masks = find_masks(src, study)
    res = preprocess_study(
        study, out, config=cfg, tumour_mask=masks.get("tumour"), liver_mask=masks.get("liver")
    )
    return res.out_dir / "preprocess.json"


def stage_features(args: tuple[Path, Path]) -> Path:
    """Features of one preprocessed study; writes ``features.json`` (with ``patient_id``
    from the DICOM PatientID, ``study_uid`` and ``study_date``)."""
    from hccstrat.radiology.features import extract_features
    from hccstrat.radiology.preprocess import load_preprocessed

    src, out = args
    pre = load_preprocessed(src)
    row = extract_features(pre)
    path = Path(out) / "features.json"
    keys = {
        "patient_id": str(pre.summary.get("patient_id", row.name)),
        "study_uid": str(pre.summary.get("study_uid", "")),
        "study_date": str(pre.summary.get("study_date", "")),
    }
    with atomic_write(path) as fh:
        json.dump(
            {**keys, **{k: (v if isinstance(v, str) else float(v)) for k, v in row.items()}},
            fh,
            indent=2,
        )
    return path
