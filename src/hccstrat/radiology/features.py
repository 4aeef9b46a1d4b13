"""Radiomic and inter-phase features of a preprocessed 4-phase liver MRI study.

pyradiomics is not used: on Python 3.11 the registry only offers its source
distribution, whose build fails (it needs numpy at build time and C extensions).
The features here are a documented IBSI-consistent subset
(:mod:`hccstrat.radiology._texture`), computed on the normalised phases
(``pre_liver_ratio``: every phase divided by the non-contrast liver median).

Columns of :func:`extract_features` (one row per study)
-----------------------------------------------------
``shape_volume_ml``, ``shape_surface_mm2``, ``shape_sphericity``,
``shape_max_diameter_mm``, ``shape_margin_irregularity`` (1 − sphericity)
    Index tumour morphology.
``{phase}_tumour_{stat}``
    First-order statistics of the tumour per phase (pre, arterial, portal, delayed):
    mean, median, std, skewness, kurtosis, p10, p90, entropy, uniformity. The
    histogram (entropy, uniformity) uses fixed bins of width ``hist_bin_width`` from a
    fixed lower bound (IBSI fixed bin size: 0.0 for ``pre_liver_ratio``, −10 IQR for
    ``liver_zscore``; see :data:`HIST_LOWER_BOUND`).
``{phase}_ring_mean``
    Mean of the 5 mm peritumoral ring (inside the liver when a mask exists).
``{arterial,portal}_glcm_{feature}``
    GLCM contrast, correlation, joint_energy, joint_entropy, idm (fixed bin number,
    32 bins over the tumour range, distance 1, 13 directions, IBSI "3D: averaged").
``ie_arterial_enhancement``  tumour arterial / non-contrast mean − 1.
``ie_tlr_{phase}``           tumour-to-liver ratio (tumour mean / liver median).
``ie_washout_portal``, ``ie_washout_delayed``  1 − tumour-to-liver ratio.
``ie_rim_ratio``             arterial mean of the outer 30 % shell / core mean.
``ie_capsule_ratio``         delayed mean of a 0–2.5 mm ring (at least one in-plane
                             voxel) / liver delayed median.
``ie_peritumoral_arterial``  arterial ring mean / liver arterial median.
``n_tumour_voxels``, ``roi_source``   bookkeeping.

The shape, first-order and GLCM columns equal MIRP's IBSI features on the same crop
(no resampling, no re-segmentation); ``tests/radiology/test_ibsi_reference.py`` checks
it and :mod:`hccstrat.radiology._texture` lists the IBSI identifiers.
"""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pandas as pd

from hccstrat.radiology._texture import first_order, glcm_features, shape_features

__all__ = ["FEATURE_PHASES", "HIST_LOWER_BOUND", "extract_features", "extract_features_many"]

FEATURE_PHASES = ("pre", "arterial", "portal", "delayed")

#: Fixed lower bound of the intensity-histogram bins per normalisation method (IBSI
#: fixed bin size needs one bound for every image, never the ROI minimum).
HIST_LOWER_BOUND = {"pre_liver_ratio": 0.0, "liver_zscore": -10.0}


def _arr(img) -> np.ndarray:
    import SimpleITK as sitk

    return sitk.GetArrayFromImage(img)


def _dist_inside_outside(mask_img):
    """Signed distance (mm): negative inside the mask, positive outside."""
    import SimpleITK as sitk

    return _arr(sitk.SignedMaurerDistanceMap(sitk.Cast(mask_img, sitk.sitkUInt8),
                                             insideIsPositive=False, useImageSpacing=True,
                                             squaredDistance=False))


def extract_features(study, *, glcm_bins: int = 32, ring_mm: float = 5.0,
                     hist_bin_width: float = 0.05,
                     hist_low: float | None = None) -> pd.Series:
    """Feature row of one preprocessed study.

    Parameters
    ----------
    study : PreprocessedStudy or path-like
        Output of :func:`hccstrat.radiology.preprocess.preprocess_study` or its folder.
    glcm_bins : int
        Grey levels of the GLCM discretisation.
    ring_mm : float
        Width of the peritumoral ring.
    hist_bin_width : float
        Bin width of the intensity histogram (entropy, uniformity), in normalised units.
    hist_low : float, optional
        Fixed lower bound of the histogram bins; by default
        ``HIST_LOWER_BOUND[normalisation method]`` (0.0 when the method is unknown).

    Returns
    -------
    pandas.Series
        Named by the patient id (DICOM PatientID); columns documented in the module
        docstring.
    """
    import SimpleITK as sitk

    from hccstrat.radiology.preprocess import PreprocessedStudy, load_preprocessed
    from hccstrat.radiology.roi import RoiError

    pre = study if isinstance(study, PreprocessedStudy) else load_preprocessed(Path(study))
    crop = pre.crop
    if "tumour" not in crop:
        raise RoiError(f"no tumour crop in {pre.out_dir}", hint="rerun preprocessing")
    tum_img = sitk.ReadImage(str(crop["tumour"]))
    tum = _arr(tum_img) > 0
    liver = _arr(sitk.ReadImage(str(crop["liver"]))) > 0 if "liver" in crop else None
    spacing_zyx = tuple(tum_img.GetSpacing()[::-1])
    dist = _dist_inside_outside(tum_img)
    ring_mm = max(ring_mm, 1.01 * max(spacing_zyx[1:]))  # at least one in-plane voxel
    ring = (dist > 0) & (dist <= ring_mm)
    caps = (dist > 0) & (dist <= max(2.5, 1.01 * max(spacing_zyx[1:])))
    far_liver = None
    if liver is not None:
        ring &= liver
        caps &= liver
        far_liver = liver & (dist > ring_mm + 5)
    inner = -dist[tum]
    depth = inner / max(float(inner.max()), 1e-6)  # 0 at the boundary, 1 at the centre
    shell = np.zeros_like(tum)
    shell[tum] = depth < 0.3
    core = tum & ~shell
    norm = pre.summary.get("normalisation") or {}
    method = norm.get("method", "pre_liver_ratio") if isinstance(norm, dict) else str(norm)
    low = HIST_LOWER_BOUND.get(method, 0.0) if hist_low is None else float(hist_low)
    row: dict[str, float | str] = {}
    shp = shape_features(tum, spacing_zyx)
    row.update({f"shape_{k}": v for k, v in shp.items()})
    row["shape_margin_irregularity"] = 1.0 - shp["sphericity"]
    means, liv = {}, {}
    arrays = {}
    for ph in FEATURE_PHASES:
        if ph not in crop:
            continue
        a = _arr(sitk.ReadImage(str(crop[ph]))).astype(np.float64)
        arrays[ph] = a
        fo = first_order(a[tum], bin_width=hist_bin_width, low=low)
        row.update({f"{ph}_tumour_{k}": v for k, v in fo.items()})
        row[f"{ph}_ring_mean"] = float(a[ring].mean()) if ring.any() else float("nan")
        means[ph] = fo["mean"]
        ref = far_liver if far_liver is not None and far_liver.sum() > 20 else ring
        liv[ph] = float(np.median(a[ref])) if ref.any() else float("nan")
        if ph in ("arterial", "portal"):
            g = glcm_features(a, tum, n_bins=glcm_bins)
            row.update({f"{ph}_glcm_{k}": v for k, v in g.items()})
    nan = float("nan")
    row["ie_arterial_enhancement"] = (means["arterial"] / means["pre"] - 1
                                      if {"arterial", "pre"} <= means.keys() else nan)
    for ph in means:
        row[f"ie_tlr_{ph}"] = means[ph] / liv[ph] if liv[ph] else nan
    row["ie_washout_portal"] = 1 - row.get("ie_tlr_portal", nan)
    row["ie_washout_delayed"] = 1 - row.get("ie_tlr_delayed", nan)
    if "arterial" in arrays and core.any() and shell.any():
        a = arrays["arterial"]
        row["ie_rim_ratio"] = float(a[shell].mean() / a[core].mean())
    else:
        row["ie_rim_ratio"] = nan
    row["ie_capsule_ratio"] = (float(arrays["delayed"][caps].mean() / liv["delayed"])
                               if "delayed" in arrays and caps.any() else nan)
    row["ie_peritumoral_arterial"] = (row["arterial_ring_mean"] / liv["arterial"]
                                      if "arterial" in arrays else nan)
    row["n_tumour_voxels"] = float(tum.sum())
    row["roi_source"] = str(pre.summary.get("roi", ""))
    return pd.Series(row, name=str(pre.summary.get("patient_id", pre.out_dir.name)))


def extract_features_many(studies) -> pd.DataFrame:
    """Feature table, one row per study, keyed by a ``patient_id`` column (PatientID).

    The ``patient_id`` column lets :func:`hccstrat.models.join_feature_tables` join
    the table onto the clinical data (prefix ``rad_``).
    """
    rows = [extract_features(s) for s in studies]
    df = pd.DataFrame(rows)
    df.insert(0, "patient_id", [str(r.name) for r in rows])
    return df.reset_index(drop=True)
