"""Job handlers: DICOM zip and slide ingest (de-identified), background scoring.

Uploads wait in ``<data_dir>/quarantine`` (they may hold PHI) until their job has
de-identified them into ``<data_dir>/studies`` or ``<data_dir>/slides``; the
quarantined file is then deleted. The original-id -> pseudonym links go to
``<data_dir>/pseudonyms/pseudonyms.sqlite``, a file apart from the registry.
"""

from __future__ import annotations

import hashlib
import io
import logging
import zipfile
from pathlib import Path
from typing import Any

from hccstrat.exceptions import InputFileError
from hccstrat.io.atomic import atomic_path, sha256_file
from hccstrat.storage import repositories as repo
from hccstrat.storage.models import DerivedFeature, ImagingStudy, Job, Patient, Slide

__all__ = [
    "embed_wsi_job",
    "ingest_dicom_job",
    "ingest_wsi_job",
    "job_context",
    "preprocess_mri_job",
    "pseudonym_table",
    "score_job",
]

log = logging.getLogger(__name__)

_MAX_MEMBERS = 50_000


def pseudonym_table(data_dir: Path):
    """The pseudonym table of a data folder (kept out of the registry database)."""
    from hccstrat.interop.deid import PseudonymTable

    return PseudonymTable(Path(data_dir) / "pseudonyms" / "pseudonyms.sqlite")


def job_context(worker, job: Job) -> tuple[Patient, repo.Scope]:
    """The job's patient and the audit scope its writes are recorded under."""
    with worker.sessionmaker() as s:
        patient = s.get(Patient, job.patient_id)
        actor = job.params.get("actor", "system")
        return patient, repo.Scope(actor=f"{actor} (job {job.id})", user_id=job.created_by)


def ingest_dicom_job(worker, job: Job, progress) -> dict[str, Any]:
    """De-identify every DICOM file of an uploaded zip and register the studies."""
    import pydicom
    from pydicom.errors import InvalidDicomError

    from hccstrat.interop.deid import (
        UIDRemapper,
        date_offset_days,
        deidentify_dataset,
        is_slide_label,
    )

    settings = worker.settings
    src = Path(job.params["path"])
    patient, scope = job_context(worker, job)
    uid_map = UIDRemapper(worker.secret)
    shift = date_offset_days(worker.secret, patient.pseudo_id)
    table = pseudonym_table(settings.data_dir)
    studies: dict[str, dict[str, Any]] = {}
    skipped = labels = 0
    try:
        zf = zipfile.ZipFile(src)
    except (zipfile.BadZipFile, OSError) as err:
        raise InputFileError("upload is not a valid zip file",
                             hint="zip the DICOM folder and upload the .zip") from err
    with zf:
        members = [m for m in zf.infolist() if not m.is_dir()]
        total = sum(m.file_size for m in members)
        if len(members) > _MAX_MEMBERS or total > settings.max_unzipped_bytes:
            raise InputFileError(
                f"zip holds {len(members)} files, {total} bytes uncompressed: over the limit",
                hint="split the upload by study")
        for i, m in enumerate(members):
            try:
                ds = pydicom.dcmread(io.BytesIO(zf.read(m)), force=False)
            except (InvalidDicomError, EOFError, ValueError, TypeError):
                skipped += 1
                continue
            if "SOPInstanceUID" not in ds:
                skipped += 1
                continue
            if is_slide_label(ds):
                labels += 1
                continue
            original_id = str(ds.get("PatientID", ""))
            if original_id:
                issuer = str(ds.get("IssuerOfPatientID", "") or "dicom")
                table.link(issuer, original_id, patient.pseudo_id)
            res = deidentify_dataset(ds, pseudo_id=patient.pseudo_id, uid_map=uid_map,
                                     date_shift_days=shift)
            study_uid = str(ds.StudyInstanceUID)
            folder = settings.data_dir / "studies" / patient.pseudo_id / study_uid
            rel = Path(str(ds.get("SeriesInstanceUID", "series"))) / f"{ds.SOPInstanceUID}.dcm"
            with atomic_path(folder / rel) as tmp:
                ds.save_as(tmp, enforce_file_format=True)
            st = studies.setdefault(study_uid, {
                "folder": folder, "files": [], "burned": False, "series": {},
                "modality": str(ds.get("Modality", ""))})
            st["files"].append((str(rel), sha256_file(folder / rel)))
            st["burned"] |= res.burned_in_flag
            desc = str(ds.get("SeriesDescription", ""))
            st["series"].setdefault(str(ds.get("SeriesInstanceUID", "")), desc)
            if i % 10 == 0:
                progress(0.95 * (i + 1) / max(len(members), 1), f"{i + 1}/{len(members)} files")
    if not studies:
        raise InputFileError(f"no DICOM file found in the upload ({skipped} other files)",
                             hint="upload a zip of DICOM files")
    out = []
    with worker.sessionmaker() as s:
        for study_uid, st in studies.items():
            digest = hashlib.sha256()
            for rel, h in sorted(st["files"]):
                digest.update(f"{rel}:{h}\n".encode())
            row = ImagingStudy(patient_id=patient.id, modality=st["modality"] or "MR",
                               study_uid=study_uid, path=str(st["folder"]),
                               sha256=digest.hexdigest(), n_files=len(st["files"]),
                               burned_in_flag=st["burned"],
                               info={"series": st["series"], "skipped_files": skipped,
                                     "labels_removed": labels})
            repo.audited_add(s, scope, row, entity="imaging_study", centre_id=patient.centre_id)
            out.append({"study_id": row.id, "n_files": row.n_files,
                        "burned_in_flag": row.burned_in_flag})
        s.commit()
    src.unlink(missing_ok=True)
    return {"studies": out, "skipped_files": skipped, "labels_removed": labels}


def ingest_wsi_job(worker, job: Job, progress) -> dict[str, Any]:
    """Scrub an uploaded slide (label/macro removed) and register it."""
    from hccstrat.interop.deid import scrub_wsi

    src = Path(job.params["path"])
    patient, scope = job_context(worker, job)
    progress(0.1, "scrubbing")
    tmp_dst = worker.settings.data_dir / "slides" / patient.pseudo_id / f"job{job.id}.tiff"
    res = scrub_wsi(src, tmp_dst)
    checksum = sha256_file(tmp_dst)
    dst = tmp_dst.with_name(f"{checksum[:16]}.tiff")
    tmp_dst.replace(dst)
    with worker.sessionmaker() as s:
        row = Slide(patient_id=patient.id, path=str(dst), sha256=checksum, mpp=res.mpp,
                    info={"removed": res.removed_pages, "width": res.width, "height": res.height})
        repo.audited_add(s, scope, row, entity="slide", centre_id=patient.centre_id)
        s.commit()
    src.unlink(missing_ok=True)
    return {"slide_id": row.id, "removed": res.removed_pages, "mpp": res.mpp}


def score_job(worker, job: Job, progress) -> dict[str, Any]:
    """Compute a prediction in the background."""
    from hccstrat.service.predict import run_prediction

    patient, scope = job_context(worker, job)
    with worker.sessionmaker() as s:
        patient = s.get(Patient, patient.id)
        pred = run_prediction(s, worker.settings.scorers, scope, patient, job.params["kind"])
        s.commit()
        return {"prediction_id": pred.id, "score": pred.score}


def preprocess_mri_job(worker, job: Job, progress) -> dict[str, Any]:
    """Preprocess a stored 4-phase study (registration, normalisation, ROI) for the viewer.

    Masks come from a DICOM SEG uploaded with the study (or ``masks/`` NIfTI files);
    the tumour volume is stored as the derived feature ``mri_tumour_volume_ml``.
    """
    from hccstrat.radiology.batch import stage_preprocess
    from hccstrat.radiology.preprocess import PreprocessConfig, load_preprocessed
    from hccstrat.service.figures import derived_dir, tumour_volume_ml

    patient, scope = job_context(worker, job)
    with worker.sessionmaker() as s:
        study = s.get(ImagingStudy, int(job.params["study_id"]))
        src = Path(study.path)
    out = derived_dir(worker.settings.data_dir, patient.pseudo_id, f"study-{study.id}")
    progress(0.1, "registering and normalising the phases")
    stage_preprocess((src, out, PreprocessConfig()))
    pre = load_preprocessed(out)
    volume = tumour_volume_ml(pre.tumour) if pre.tumour and pre.tumour.is_file() else None
    progress(0.9, "recording the result")
    with worker.sessionmaker() as s:
        row = s.get(ImagingStudy, study.id)
        before = dict(row.info or {})
        row.info = {**before, "preprocessed": str(out)}
        if volume is not None:
            repo.audited_add(s, scope, DerivedFeature(
                patient_id=patient.id, source=f"study:{study.id}", name="mri_tumour_volume_ml",
                value=volume, extractor="hccstrat.radiology.preprocess"),
                entity="derived_feature", centre_id=patient.centre_id)
        from hccstrat.storage.audit import append_event

        append_event(s, actor=scope.actor, action="update", entity="imaging_study",
                     entity_id=study.id, centre_id=patient.centre_id, before=before,
                     after=row.info)
        s.commit()
    return {"study_id": study.id, "tumour_volume_ml": volume,
            "phases": sorted(pre.phases)}


def embed_wsi_job(worker, job: Job, progress) -> dict[str, Any]:
    """Tile, QC and embed a stored slide into the HDF5 feature store.

    Runs :func:`hccstrat.pathology.batch.process_slide`, the function behind
    ``hccstrat wsi embed``, so the service and the CLI give the same files. The encoder
    is the one named in the job (``"builtin"`` by default, else a name from
    ``ServiceSettings.encoders``; its weights' checksum is verified on loading). The
    built-in encoder writes under ``slide-<id>/features/``, a named one under
    ``slide-<id>/encoders/<name>/features/``. The feature file, its checksum, the
    encoder name and the weights' checksum are recorded on the slide
    (``info["embedding"]``: the newest run; ``info["embeddings"][name]``: one per encoder).
    """
    from hccstrat.pathology.batch import WsiJobConfig, process_slide
    from hccstrat.service.encoders import BUILTIN, resolve_encoder
    from hccstrat.service.figures import derived_dir
    from hccstrat.storage.audit import append_event

    patient, scope = job_context(worker, job)
    name, spec = resolve_encoder(worker.settings, job.params.get("encoder"))
    with worker.sessionmaker() as s:
        slide = s.get(Slide, int(job.params["slide_id"]))
        src, mpp = Path(slide.path), slide.mpp
    out = derived_dir(worker.settings.data_dir, patient.pseudo_id, f"slide-{slide.id}")
    if name != BUILTIN:
        out = out / "encoders" / name
    progress(0.05, f"loading the {name} encoder")
    encoder = worker.encoder(spec)  # kept between jobs while the weights are unchanged
    progress(0.1, "detecting tissue, tiling and embedding")
    res = process_slide(src, out, WsiJobConfig(stage="embed", mpp=mpp),
                        slide_id=f"slide-{slide.id}", encoder=encoder)
    summary = {"features": res.row["output_path"], "features_sha256": res.row["sha256"],
               "n_tiles_pass": res.row.get("n_tiles_pass"), "encoder": name,
               "encoder_kind": spec.kind, "encoder_sha256": encoder.sha256,
               "feature_dim": res.row.get("feature_dim")}
    progress(0.9, "recording the result")
    with worker.sessionmaker() as s:
        row = s.get(Slide, slide.id)
        before = dict(row.info or {})
        embeddings = {**(before.get("embeddings") or {}), name: summary}
        row.info = {**before, "embedding": summary, "embeddings": embeddings}
        append_event(s, actor=scope.actor, action="update", entity="slide", entity_id=slide.id,
                     centre_id=patient.centre_id, before=before, after=row.info)
        s.commit()
    return {"slide_id": slide.id, **summary}
