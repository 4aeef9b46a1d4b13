"""Feature assembly and the report of lacking inputs."""

from __future__ import annotations

import numpy as np
import pandas as pd
import pytest

from hccstrat.exceptions import DataValidationError, ModelError
from hccstrat.models import FeatureAssembler, join_feature_tables


def test_pre_uses_clinical_mri_report_and_radiomics(wide):
    fa = FeatureAssembler(stage="pre").fit(wide)
    names = fa.feature_names_out_
    assert "log_afp" in names and "mri_rim_aphe" in names
    assert any(n.startswith("rad_") for n in names)
    assert not any(n.startswith("time_") for n in names)  # WSI is not a PRE input
    assert "mvi" not in names  # pathology is POST only
    assert not fa.lacking_
    Z = fa.transform(wide)
    assert not Z.isna().any().any()
    np.testing.assert_allclose(Z.mean().to_numpy(), 0, atol=1e-8)


def test_post_adds_pathology_and_wsi(wide):
    names = FeatureAssembler(stage="post").fit(wide).feature_names_out_
    assert {"mvi", "satellite_nodules", "edmondson_grade", "margin_r1"} <= set(names)
    assert any(n.startswith("time_") for n in names)


def test_clinical_only_table_reports_lacking_modalities(cohort):
    fa = FeatureAssembler(stage="post").fit(cohort.clinical)
    assert fa.lacking_.missing_modalities == ["mri", "wsi"]
    assert "MRI image features" in fa.lacking_.summary()


def test_categorical_version_replaces_missing_number(cohort):
    df = cohort.clinical.drop(columns=["afp_ng_ml", "tumour_size_cm"])
    fa = FeatureAssembler(stage="pre", image_prefixes=()).fit(df)
    assert fa.lacking_.substitutions == {
        "afp_ng_ml": "afp_ge_400",
        "tumour_size_cm": "tumour_size_gt_5cm",
    }
    assert "afp_ge_400" in fa.feature_names_out_ and "log_afp" not in fa.feature_names_out_
    assert "afp_ge_400 for afp_ng_ml" in fa.lacking_.summary()


def test_row_missing_number_imputed_within_its_category(cohort):
    df = cohort.clinical.copy()
    hi = df.index[df["afp_ge_400"]][:5]
    lo = df.index[~df["afp_ge_400"]][:5]
    df.loc[hi.union(lo), "afp_ng_ml"] = np.nan
    fa = FeatureAssembler(stage="pre", image_prefixes=(), standardize=False).fit(df)
    Z = fa.transform(df)
    assert Z.loc[hi, "log_afp"].min() >= np.log1p(400)  # high category → median of the >= 400 group
    assert Z.loc[lo, "log_afp"].max() < np.log1p(400)
    assert fa.lacking_.row_missing_fraction["log_afp"] == pytest.approx(10 / len(df))


def test_missing_column_at_predict_is_imputed_and_reported(wide):
    fa = FeatureAssembler(stage="pre").fit(wide)
    reduced = wide.drop(columns=[c for c in wide if c.startswith("rad_")] + ["albumin_g_l"])
    rep = fa.lacking_at_predict(reduced)
    assert rep.missing_modalities == ["mri"] and "albumin_g_l" in rep.missing_inputs
    Z = fa.transform(reduced)
    assert Z.filter(like="rad_").nunique().eq(1).all()  # everyone gets the training median


def test_errors_are_clear():
    with pytest.raises(ModelError, match="DataFrame"):
        FeatureAssembler().fit(np.zeros((3, 2)))
    with pytest.raises(DataValidationError):
        FeatureAssembler().fit(pd.DataFrame({"foo": [1, 2]}))
    clin = pd.DataFrame({"patient_id": ["a", "b"]})
    with pytest.raises(ModelError, match="duplicated"):
        join_feature_tables(clin, {"rad_": pd.DataFrame({"patient_id": ["a", "a"], "x": [1, 2]})})
    with pytest.raises(ModelError, match="prefix"):
        join_feature_tables(clin, {"foo_": pd.DataFrame({"patient_id": ["a"], "x": [1]})})


def test_text_cells_in_a_numeric_feature_column_are_listed():
    """Before: 'n.d.' made the column text; fit dropped the feature without a word."""
    clin = pd.DataFrame({"patient_id": ["a", "b", "c"]})
    rad = pd.DataFrame(
        {"patient_id": ["a", "b", "c"], "glcm": [1.5, "n.d.", "12,5"], "slide": ["s1", "s2", "s3"]}
    )
    with pytest.raises(DataValidationError) as info:
        join_feature_tables(clin, {"rad_": rad})
    msg = str(info.value)
    assert "2 problem(s) in the MRI radiomic features table" in msg
    assert "row 2 (patient b), column 'glcm': got 'n.d.'; expected a finite number" in msg
    assert "row 3 (patient c), column 'glcm': got '12,5'" in msg
    assert "slide" not in msg  # a column without numbers is not a feature: left alone
    with pytest.raises(DataValidationError, match="column 'glcm': got inf; expected a finite"):
        join_feature_tables(clin, {"rad_": rad.assign(glcm=[1.5, float("inf"), 2.0])})
    ok = join_feature_tables(clin, {"rad_": rad.assign(glcm=[1.5, None, 2.0])})
    assert ok["rad_glcm"].isna().tolist() == [False, True, False]


def test_join_matches_ids_as_text_and_refuses_tables_with_no_common_patient():
    """Before: numeric ids in an image table ('00123' read as 123) against text ids in the
    clinical table were a pandas merge error (internal error, exit 70)."""
    clin = pd.DataFrame({"patient_id": pd.array(["00123", "00124"], dtype="string")})
    out = join_feature_tables(clin, {"rad_": pd.DataFrame({"patient_id": ["00124"], "g": [2.0]})})
    assert out["rad_g"].tolist()[1] == 2.0 and np.isnan(out["rad_g"].tolist()[0])
    with pytest.raises(ModelError) as info:
        join_feature_tables(clin, {"rad_": pd.DataFrame({"patient_id": [123, 124], "g": [1, 2]})})
    assert str(info.value).startswith(
        "none of the 2 patient_id values of the MRI radiomic features table is in the clinical "
        "table (e.g. '123' there, '00123' in the clinical table)"
    )


def test_join_adds_prefix_and_keeps_rows():
    clin = pd.DataFrame({"patient_id": ["a", "b", "c"]}, index=[10, 11, 12])
    out = join_feature_tables(
        clin, {"rad_": pd.DataFrame({"patient_id": ["c", "a"], "glcm": [3.0, 1.0]})}
    )
    assert list(out.index) == [10, 11, 12]
    assert out["rad_glcm"].tolist()[0] == 1.0 and np.isnan(out["rad_glcm"].tolist()[1])


def test_slide_qc_columns_are_not_model_features(wide):
    from hccstrat.models._features import QC_COLUMNS

    X = wide.assign(time_n_tiles=np.arange(len(wide)), time_qc_pass_fraction=0.9,
                    time_unrecognised_fraction=np.linspace(0, 1, len(wide)),
                    time_panel_unreliable=0, time_tissue_area_mm2=3.0)
    cols = set(FeatureAssembler(stage="post").fit(X).transform(X).columns)
    assert not cols & QC_COLUMNS
    assert any(c.startswith("time_") for c in cols)  # the biology of the panel stays
