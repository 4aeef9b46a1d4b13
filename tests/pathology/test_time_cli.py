"""CLI commands wsi time|annotate|mil|heatmap and the TIME demo stage."""

from __future__ import annotations

import numpy as np
import pandas as pd
import pytest
from typer.testing import CliRunner

from hccstrat.cli.wsi import app
from hccstrat.synthetic.wsi import default_latent, read_truth, write_slide


@pytest.fixture(scope="module")
def slides(tmp_path_factory):
    d = tmp_path_factory.mktemp("cli_time")
    out = []
    for i, ph in enumerate(("inflamed", "desert")):
        lat = default_latent(immune_phenotype=ph, vascular_invasion=True)
        out.append(write_slide(d / f"S{i}.tiff", lat, size=(2048, 2048), seed=7 + i,
                               texture_size=256))
    return out


def test_cli_annotate_time_mil_heatmap(slides, tmp_path):
    from hccstrat.io.store import write_features
    from hccstrat.synthetic.annotations import make_reader_annotations

    run = CliRunner()
    lab, truth = read_truth(slides[0].path)
    rs = make_reader_annotations(lab, downsample=truth["downsample"], seed=1)
    paths = rs.write(tmp_path / "ann", stem="S0")
    r = run.invoke(app, ["annotate", str(paths["reader1"]), str(paths["reader2"]),
                         "--arbiter", str(paths["arbiter"]), "--width", "2048",
                         "--height", "2048", "--downsample", str(truth["downsample"]),
                         "--tile", "4", "-o", str(tmp_path / "agree")])
    assert r.exit_code == 0, r.output
    ag = pd.read_csv(tmp_path / "agree" / "agreement.csv")
    assert 0.3 < ag["kappa_tiles"].iloc[0] < 1 and "dice" in ag
    assert (tmp_path / "agree" / "consensus.geojson").exists()

    r = run.invoke(app, ["time", str(slides[1].path), "--train", str(slides[0].path),
                         "--margin-um", "200", "-o", str(tmp_path / "time")])
    assert r.exit_code == 0, r.output
    panel = pd.read_csv(tmp_path / "time" / "time_panel.csv")
    assert len(panel) == 1 and panel.loc[0, "time_tumour_area_mm2"] > 0
    assert (tmp_path / "time" / "overlays" / "S1.png").stat().st_size > 10_000
    r = run.invoke(app, ["time", str(tmp_path / "nothing.tiff"), "--classifier",
                         str(tmp_path / "time" / "tile_classifier.pkl"),
                         "-o", str(tmp_path / "time2")])
    assert r.exit_code == 0, r.output  # the failure is a manifest row, not a crash
    man = pd.read_csv(tmp_path / "time2" / "manifest_time.csv")
    assert man.loc[0, "status"] == "failed" and man.loc[0, "error_code"] == "HCC-WSI-001"

    # MIL on feature files: 12 bags cut from one slide's tiles, label = immune share
    tiles = pd.read_csv(tmp_path / "time" / "tiles" / "S1.csv")
    rng = np.random.default_rng(0)
    feats = rng.normal(size=(len(tiles), 6)).astype(np.float32)
    feats[:, 0] += 3 * (tiles["cls"] == "immune_dense").to_numpy()
    rows = []
    for i in range(12):
        idx = rng.choice(len(tiles), 30)
        write_features(tmp_path / "feat" / f"B{i}.h5", feats[idx],
                       tiles[["x", "y"]].to_numpy()[idx], patch_size_level0=128)
        rows.append({"slide_id": f"B{i}", "label": int(i % 2)})
    pd.DataFrame(rows).to_csv(tmp_path / "targets.csv", index=False)
    r = run.invoke(app, ["mil", str(tmp_path / "feat"), "--targets", str(tmp_path / "targets.csv"),
                         "--epochs", "3", "-o", str(tmp_path / "mil")])
    assert r.exit_code == 0, r.output
    emb = pd.read_csv(tmp_path / "mil" / "slide_embeddings.csv")
    assert len(emb) == 12 and emb.columns[1] == "wsi_emb_00"
    r = run.invoke(app, ["heatmap", str(slides[1].path), "--features",
                         str(tmp_path / "feat" / "B0.h5"), "--model",
                         str(tmp_path / "mil" / "mil_model.pt"), "-o", str(tmp_path / "hm.png")])
    assert r.exit_code == 0, r.output
    assert (tmp_path / "hm.png").stat().st_size > 5_000


@pytest.mark.slow
def test_demo_stage_time(tmp_path):
    import time

    from hccstrat.cli._demo_time import demo_stage_time
    from hccstrat.synthetic.cohort import generate_cohort

    cohort = generate_cohort(30, 3, seed=0)
    seen = []
    t0 = time.perf_counter()
    sections = demo_stage_time(cohort, tmp_path, seed=0, progress=seen.append)
    took = time.perf_counter() - t0
    assert len(sections) == 1 and "tumour cells/mm²" in sections[0].body
    num = sections[0].numbers
    assert num["tile_accuracy"] > 0.8 and num["mil_c"] > num["mil_c_shuffled"]
    assert (tmp_path / "time" / "mil_attention.png").exists()
    assert len(seen) >= 8
    assert took < 180  # ~40 s on an idle 2-core machine
    from hccstrat.cli._demo_time import find_fixtures

    if find_fixtures() is not None:  # CI: the real slide's overlay is in the report
        assert (tmp_path / "time" / "real_CMU-1_time.png").stat().st_size > 20_000
        assert "Real H&amp;E slide" in sections[0].body and num["real_tissue_tiles"] > 50


def test_find_fixtures_follows_the_environment(tmp_path, monkeypatch):
    from hccstrat.cli._demo_time import REAL_SLIDE, find_fixtures

    (tmp_path / "wsi").mkdir()
    (tmp_path / "wsi" / REAL_SLIDE).write_bytes(b"x")
    monkeypatch.setenv("HCCSTRAT_FIXTURES_DIR", str(tmp_path))
    assert find_fixtures() == tmp_path
    monkeypatch.setenv("HCCSTRAT_FIXTURES_DIR", str(tmp_path / "nowhere"))
    monkeypatch.chdir(tmp_path)  # no ../shared/fixtures beside the working folder
    found = find_fixtures()
    assert found is None or (found / "wsi" / REAL_SLIDE).is_file()
