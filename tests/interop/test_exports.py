"""FHIR RiskAssessment and QuPath GeoJSON exports."""

from __future__ import annotations

import datetime as dt

import numpy as np
import pytest

from hccstrat.exceptions import InputFileError
from hccstrat.interop.fhir import risk_assessment
from hccstrat.interop.geojson import (
    heatmap_to_features,
    polygon_feature,
    read_geojson,
    write_geojson,
)


def test_risk_assessment_is_valid_r4():
    pytest.importorskip("fhir.resources", reason="fhir.resources not installed")
    res = risk_assessment(
        patient_id="P-1",
        kind="PRE",
        score=0.62,
        model="pre",
        model_version="2",
        when=dt.datetime(2025, 1, 2, 3, 4, 5),
        input_sha256="ab" * 32,
        prediction_id=7,
    )
    assert res["prediction"][0]["probabilityDecimal"] == 0.62
    assert res["prediction"][0]["qualitativeRisk"]["coding"][0]["code"] == "high"
    assert res["occurrenceDateTime"] == "2025-01-02T03:04:05+00:00"
    low = risk_assessment(
        patient_id="P-1",
        kind="POST",
        score=0.1,
        model="post",
        model_version="1",
        when=dt.datetime.now(dt.UTC),
        input_sha256="0",
        prediction_id=8,
    )
    assert low["prediction"][0]["qualitativeRisk"]["coding"][0]["code"] == "low"
    from pydantic import ValidationError

    bad = dict(res, prediction=[{"probabilityDecimal": "very likely"}])
    from hccstrat.interop.fhir import validate_risk_assessment

    with pytest.raises(ValidationError):
        validate_risk_assessment(bad)


def test_geojson_roundtrip_and_heatmap(tmp_path):
    ann = polygon_feature(
        [(0, 0), (100, 0), (100, 50)], name="tumour", classification="Tumor", color=(200, 0, 0)
    )
    assert ann["geometry"]["coordinates"][0][0] == ann["geometry"]["coordinates"][0][-1]
    tiles = heatmap_to_features(np.array([[0, 0], [256, 0]]), np.array([0.1, 0.9]), 256)
    assert tiles[1]["geometry"]["coordinates"][0][2] == [512.0, 256.0]
    assert tiles[1]["properties"]["measurements"]["score"] == 0.9
    assert tiles[1]["properties"]["classification"]["color"] == [230, 0, 25]
    path = write_geojson(tmp_path / "a.geojson", [ann, *tiles])
    back = read_geojson(path)
    assert len(back) == 3 and back[0]["properties"]["name"] == "tumour"
    with pytest.raises(InputFileError):
        polygon_feature([(0, 0), (1, 1)])
    with pytest.raises(InputFileError):
        heatmap_to_features(np.zeros((3, 2)), np.zeros(2), 256)


@pytest.mark.parametrize(
    ("field", "value"),
    [("score", float("nan")), ("score", 1.5), ("score", -0.2), ("score", None),
     ("kind", "PREOP"), ("patient_id", ""), ("input_sha256", "")],
)
def test_risk_assessment_rejects_bad_input_clearly(field, value):
    from hccstrat.exceptions import DataValidationError

    args = dict(patient_id="P-1", kind="PRE", score=0.3, model="pre", model_version="2",
                when=dt.datetime(2025, 1, 2), input_sha256="ab" * 32, prediction_id=7)
    args[field] = value
    with pytest.raises(DataValidationError) as err:
        risk_assessment(**args, validate=False)
    assert err.value.report.problems[0].column == field
