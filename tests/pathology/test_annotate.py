"""Two-reader annotation workflow: GeoJSON round trip, agreement, arbitration."""

from __future__ import annotations

import json

import numpy as np
import pytest
from sklearn.metrics import cohen_kappa_score

from hccstrat.exceptions import InputFileError
from hccstrat.pathology.annotate import (
    UNRESOLVED,
    agreement,
    arbitrate,
    cohen_kappa,
    dice_iou,
    disagreement_geojson,
    label_map_to_geojson,
    rasterise,
    read_geojson_regions,
    tile_majority,
    write_geojson,
)
from hccstrat.synthetic.annotations import make_reader_annotations
from hccstrat.synthetic.wsi import read_truth


@pytest.fixture(scope="module")
def readers(synth_slide, tmp_path_factory):
    labels, truth = read_truth(synth_slide.path)
    rs = make_reader_annotations(
        labels, downsample=truth["downsample"], n_errors=6, arbiter_accuracy=0.7, seed=4
    )
    rs.write(tmp_path_factory.mktemp("readers"), stem="slide")
    return rs


def _load(rs, name):
    regions = read_geojson_regions(rs.paths[name])
    return rasterise(regions, rs.truth.shape, rs.downsample)


def test_geojson_round_trip_is_exact(readers):
    for name in ("reader1", "reader2", "arbiter"):
        back = _load(readers, name)
        assert (back == getattr(readers, name)).mean() > 0.999, name


def test_synthetic_geojson_of_the_slide_rasterises_to_its_labels(synth_slide):
    labels, truth = read_truth(synth_slide.path)
    regions = read_geojson_regions(synth_slide.geojson_path)
    back = rasterise(regions, labels.shape, truth["downsample"])
    assert (back == labels).mean() > 0.995


def test_kappa_equals_sklearn_and_detects_disagreement(readers):
    rng = np.random.default_rng(0)
    a, b = rng.integers(0, 5, 500), rng.integers(0, 5, 500)
    b[:300] = a[:300]
    assert cohen_kappa(a, b) == pytest.approx(cohen_kappa_score(a, b), abs=1e-12)
    ta, tb = tile_majority(readers.reader1, 4), tile_majority(readers.reader2, 4)
    tissue = (ta > 0) | (tb > 0)
    k, per_class = agreement(readers.reader1, readers.reader2, tile=4)
    assert k == pytest.approx(cohen_kappa_score(ta[tissue], tb[tissue]), abs=1e-12)
    assert 0.5 < k < 0.999  # readers differ on some regions only
    k_self, _ = agreement(readers.truth, readers.truth, tile=4)
    assert k_self == pytest.approx(1.0)
    assert (per_class["dice"] <= 1).all() and (per_class["dice"] >= per_class["iou"]).all()
    tum = per_class.set_index("class").loc["tumour"]
    m1, m2 = readers.reader1 == 1, readers.reader2 == 1
    assert tum["dice"] == pytest.approx(2 * (m1 & m2).sum() / (m1.sum() + m2.sum()))
    same = dice_iou(readers.truth, readers.truth)
    assert np.allclose(same["dice"], 1.0) and np.allclose(same["iou"], 1.0)


def test_consensus_equals_truth_where_arbiter_is_right(readers, tmp_path):
    r1, r2, arb = (_load(readers, n) for n in ("reader1", "reader2", "arbiter"))
    res = arbitrate(r1, r2, arb)
    truth = readers.truth
    assert res.n_regions >= 6 and res.resolved_fraction > 0.99
    agree = ~res.disagreement
    assert (res.consensus[agree] == truth[agree]).mean() > 0.999
    right = readers.arbiter_right & res.disagreement
    wrong = res.disagreement & ~readers.arbiter_right
    assert right.sum() > 0 and wrong.sum() > 0
    assert (res.consensus[right] == truth[right]).mean() > 0.99
    assert (res.consensus[wrong] != truth[wrong]).mean() > 0.95  # a wrong arbiter is wrong
    # consensus beats either reader against the truth
    acc = {n: (m == truth).mean() for n, m in (("r1", r1), ("r2", r2), ("c", res.consensus))}
    assert acc["c"] > max(acc["r1"], acc["r2"])
    # consensus exported as GeoJSON reads back the same
    p = write_geojson(tmp_path / "consensus.geojson", label_map_to_geojson(res.consensus, 8))
    back = rasterise(read_geojson_regions(p), truth.shape, 8)
    assert (back == res.consensus).mean() > 0.999
    dis = disagreement_geojson(res, 8)
    assert len(dis["features"]) >= res.n_regions * 0.8
    assert dis["features"][0]["properties"]["classification"]["name"] == "disagreement"


def test_unlabelled_disagreement_is_unresolved():
    a = np.zeros((20, 20), np.uint8)
    b = a.copy()
    a[2:6, 2:6] = 1
    b[10:14, 10:14] = 2
    arb = np.zeros_like(a)
    arb[2:6, 2:6] = 1
    res = arbitrate(a, b, arb)
    assert (res.consensus[2:6, 2:6] == 1).all()
    assert (res.consensus[10:14, 10:14] == UNRESOLVED).all()
    assert res.resolved_fraction == pytest.approx(0.5)


def test_qupath_names_and_bad_classes(tmp_path):
    sq = [[0, 0], [80, 0], [80, 80], [0, 80], [0, 0]]
    fc = [
        {"type": "Feature", "geometry": {"type": "Polygon", "coordinates": [sq]},
         "properties": {"classification": {"name": "Tumor"}}},
    ]
    p = tmp_path / "qupath.geojson"
    p.write_text(json.dumps(fc))  # QuPath may export a bare list of features
    regions = read_geojson_regions(p)
    assert [r.cls for r in regions] == ["tumour"]
    lab = rasterise(regions, (20, 20), 8)
    assert lab[:10, :10].mean() == pytest.approx(1.0) and lab[11:, 11:].max() == 0
    fc[0]["properties"]["classification"]["name"] = "Kidney"
    p.write_text(json.dumps(fc))
    with pytest.raises(InputFileError, match="aliases"):
        read_geojson_regions(p)
    assert read_geojson_regions(p, aliases={"kidney": "normal_liver"})[0].cls == "normal_liver"
    (tmp_path / "bad.geojson").write_text("{not json")
    with pytest.raises(InputFileError):
        read_geojson_regions(tmp_path / "bad.geojson")
