"""End-to-end batch: every fixture slide and every kind of bad input gets a manifest row."""

from __future__ import annotations

import numpy as np
import pandas as pd
import pytest

from hccstrat.io.store import read_features
from hccstrat.pathology.batch import WsiJobConfig, run_batch
from hccstrat.synthetic.wsi import default_latent, write_slide


@pytest.fixture(scope="module")
def bad_inputs(tmp_path_factory, synth_slide):
    d = tmp_path_factory.mktemp("bad")
    (d / "truncated.tiff").write_bytes(synth_slide.path.read_bytes()[:200_000])
    (d / "notes.svs").write_text("this is not a slide")
    write_slide(d / "nompp.tiff", default_latent(), size=(512, 512), seed=1, write_mpp=False)
    write_slide(d / "tiny.tiff", default_latent(), size=(96, 96), seed=1)
    import tifffile

    tifffile.imwrite(
        d / "blank.tiff",
        np.full((1024, 1024, 3), 244, np.uint8),
        tile=(256, 256),
        resolution=(2e4, 2e4),
        resolutionunit="CENTIMETER",
    )
    return d


@pytest.mark.slow
def test_every_fixture_and_bad_input_gets_a_row(fixtures_dir, bad_inputs, synth_slide, tmp_path):
    inputs = [fixtures_dir / "wsi", bad_inputs, synth_slide.path]
    seen = []
    df = run_batch(inputs, tmp_path, WsiJobConfig(stage="embed"), progress=seen.append)
    n_fixture = len([p for p in (fixtures_dir / "wsi").iterdir() if p.is_file()])
    assert len(df) == n_fixture + 5 + 1 == len(seen)
    by = df.set_index("slide_id")
    assert by.loc["CMU-1-Small-Region", "status"] == "ok"
    assert by.loc["slide", "status"] == "ok"
    expect = {
        "truncated": "HCC-WSI-005",
        "notes": "HCC-WSI-001",
        "nompp": "HCC-WSI-002",
        "tiny": "HCC-WSI-003",
        "blank": "HCC-WSI-004",
        "small_dicom": "HCC-WSI-002",
        "tcga-red-pen": "HCC-WSI-002",
    }
    for sid, code in expect.items():
        assert by.loc[sid, "status"] == "failed", sid
        assert by.loc[sid, "error_code"] == code, (sid, by.loc[sid, "error_message"])
    assert "--mpp" in by.loc["nompp", "error_message"]
    assert by.loc["sm_image", "status"] == "failed"  # 50 px: smaller than one tile
    f = read_features(by.loc["slide", "output_path"])
    assert f.features.shape[0] == f.coords.shape[0] > 0 and f.features.dtype == np.float32
    assert f.attrs["encoder"] == "builtin" and f.attrs["patch_size"] == 224
    assert f.attrs["slide_sha256"] and f.attrs["mpp"] == pytest.approx(0.5)
    m = pd.read_csv(tmp_path / "manifest_embed.csv")
    assert {"status", "error_code", "error_message", "output_path", "sha256"} <= set(m.columns)


def test_resume_and_mpp_override(fixtures_dir, tmp_path, synth_slide):
    png = fixtures_dir / "wsi" / "tiatoolbox_target_image.png"
    cfg = WsiJobConfig(stage="tile", mpp=0.25, patch_size=128)
    df = run_batch([png, synth_slide.path], tmp_path, cfg)
    assert (df["status"] == "ok").all(), df["error_message"].tolist()
    again = run_batch([png, synth_slide.path], tmp_path, cfg)
    assert (again["status"] == "skipped").all()
    (tmp_path / "coords" / "slide.h5").write_bytes(b"corrupted")  # checksum no longer matches
    third = run_batch([png, synth_slide.path], tmp_path, cfg).set_index("slide_id")
    assert third.loc["slide", "status"] == "ok"


def test_resume_redoes_slides_processed_with_other_settings(tmp_path, synth_slide):
    """A rerun with another tile size redoes the slide instead of keeping 224-px tiles;
    throughput settings (batch size, reader threads) do not count as a change."""
    seen: list[str] = []
    first = run_batch([synth_slide.path], tmp_path, WsiJobConfig(stage="tile"))
    n224 = int(first["n_tiles"].iloc[0])
    fast = WsiJobConfig(stage="tile", batch_size=8, workers=1)
    assert run_batch([synth_slide.path], tmp_path, fast)["status"].tolist() == ["skipped"]
    small = WsiJobConfig(stage="tile", patch_size=112)
    df = run_batch([synth_slide.path], tmp_path, small, progress=seen.append)
    assert df["status"].tolist() == ["ok"]
    assert seen[0] == "slide: done before with other settings: redone"
    assert seen[1] == f"slide: ok ({df['n_tiles'].iloc[0]} tiles)"
    assert int(df["n_tiles"].iloc[0]) > 3 * n224  # 112-px tiles: about four times as many
    assert df["settings"].iloc[0] == small.fingerprint() != WsiJobConfig(stage="tile").fingerprint()
    # a manifest from before settings were recorded: its slides count as done
    m = tmp_path / "manifest_tile.csv"
    pd.read_csv(m).drop(columns="settings").to_csv(m, index=False)
    assert run_batch([synth_slide.path], tmp_path, small)["status"].tolist() == ["skipped"]


def test_tiles_cover_tissue_and_respect_truth(synth_slide):
    from hccstrat.io.wsi import open_slide
    from hccstrat.pathology.tiling import grid_tiles, iter_tile_batches
    from hccstrat.pathology.tissue import detect_tissue
    from hccstrat.synthetic.wsi import read_truth

    labels, truth = read_truth(synth_slide.path)
    with open_slide(synth_slide.path) as s:
        tm = detect_tissue(s)
        g = grid_tiles(s, tm, target_mpp=1.0, patch_size=112)
        assert g.patch_size_level0 == 224 and g.read_level == 0
        ds = truth["downsample"]
        cx = (g.coords[:, 0] + 112) // ds
        cy = (g.coords[:, 1] + 112) // ds
        assert (labels[cy, cx] > 0).mean() > 0.9  # tile centres fall on tissue/pen, not glass
        n = 0
        for tiles, idx in iter_tile_batches(s, g, batch_size=16):
            assert tiles.shape[1:] == (112, 112, 3)
            ref = s.read_region(tuple(g.coords[idx[0]]), 0, (224, 224))[::2, ::2]
            assert np.abs(tiles[0].astype(int) - ref).mean() < 12
            n += len(idx)
        assert n == len(g)


def test_cli_tile_and_synth(tmp_path, synth_slide):
    from typer.testing import CliRunner

    from hccstrat.cli.wsi import app

    r = CliRunner().invoke(
        app, ["synth", "--out", str(tmp_path / "s"), "--n", "1", "--size", "768"]
    )
    assert r.exit_code == 0, r.output
    r = CliRunner().invoke(
        app, ["tile", str(tmp_path / "s"), "--out", str(tmp_path / "o"), "--tile-size", "128"]
    )
    assert r.exit_code == 0, r.output
    m = pd.read_csv(tmp_path / "o" / "manifest_tile.csv")
    assert m["status"].tolist() == ["ok"]


@pytest.mark.slow
def test_demo_stage_with_centre_shifts(tmp_path):
    import types

    from hccstrat.cli.wsi import demo_stage

    lat = pd.DataFrame([default_latent(patient_id=f"P{i}") for i in range(2)])
    cohort = types.SimpleNamespace(
        latent=lat,
        clinical=pd.DataFrame({"patient_id": lat["patient_id"], "centre": ["A", "B"]}),
        oracle=None,
        centres=pd.DataFrame({"centre": ["A", "B"], "h_scale": [1.0, 1.4]}),
    )
    steps = []
    sections = demo_stage(cohort, tmp_path, seed=0, progress=steps.append)
    assert sections[0].numbers["ok"] == 2 and sections[0].numbers["tiles"] > 100
    assert "<img" in sections[0].body and len(steps) >= 3
    assert len(list((tmp_path / "wsi" / "features").glob("*.h5"))) == 2


def test_discover_slides_keeps_each_slide_once(tmp_path):
    from hccstrat.pathology.batch import discover_slides

    for name in ("a.tiff", "b.svs", "a.labels.png", "notes.txt"):
        (tmp_path / name).write_bytes(b"x")
    got = discover_slides([tmp_path / "b.svs", tmp_path, tmp_path / "a.tiff"])
    assert [p.name for p in got] == ["b.svs", "a.tiff"]


def test_resume_keeps_numeric_slide_ids(tmp_path, synth_slide):
    """Hospital slide names like '00123' stay text: resumed, not redone under id 123."""
    import shutil

    shutil.copy(synth_slide.path, tmp_path / "00123.tiff")
    cfg = WsiJobConfig(stage="tile")
    assert run_batch([tmp_path / "00123.tiff"], tmp_path / "o", cfg)["status"].tolist() == ["ok"]
    again = run_batch([tmp_path / "00123.tiff"], tmp_path / "o", cfg)
    assert again["slide_id"].tolist() == ["00123"]
    assert again["status"].tolist() == ["skipped"]


@pytest.mark.parametrize(
    ("option", "value", "expected"),
    [("--tile-size", "0", ">= 16 px"), ("--target-mpp", "0", "> 0 µm/px"),
     ("--overlap", "-3", ">= 0 px"), ("--batch-size", "0", ">= 1"),
     ("--min-tissue", "2", "0 to 1")],
)
def test_cli_rejects_bad_option_values_before_any_slide(tmp_path, synth_slide, capsys,
                                                        option, value, expected):
    """One clear error naming the option; --batch-size 0 used to hang, the rest to fail
    every slide with a misleading message."""
    from hccstrat.cli import main

    stage = "embed" if option == "--batch-size" else "tile"
    out = tmp_path / "o"
    code = main(["wsi", stage, str(synth_slide.path), "--out", str(out), option, value])
    err = capsys.readouterr().err
    assert code == 2, err
    assert f"[HCC-CFG-001] {option} " in err and expected in err
    assert not out.exists()


def test_cli_unwritable_output_folder_is_one_clear_error(tmp_path, synth_slide, capsys):
    from hccstrat.cli import main

    (tmp_path / "afile").write_text("x")  # a file where the output folder should go
    code = main(["wsi", "tile", str(synth_slide.path), "--out", str(tmp_path / "afile" / "o")])
    err = capsys.readouterr().err
    assert code == 3, err
    assert "[HCC-IO-001] cannot write to the output folder" in err and "--out" in err
    assert "internal error" not in err


def test_cli_no_slides_found_is_an_error(tmp_path, capsys):
    """An empty folder or a mistyped extension is an error naming where it looked,
    not '0/0 slides done' with exit 0."""
    from hccstrat.cli import main

    (tmp_path / "in").mkdir()
    (tmp_path / "in" / "slide.svs.bak").write_text("x")
    for cmd in (["wsi", "tile"], ["wsi", "time", "--classifier", str(tmp_path / "c.pkl")]):
        code = main([*cmd, str(tmp_path / "in"), "--out", str(tmp_path / "o")])
        err = capsys.readouterr().err
        assert code == 3, err
        assert f"[HCC-IO-001] no slides found in '{tmp_path / 'in'}'" in err
        assert ".svs" in err and "recursively" in err
    assert not (tmp_path / "o" / "manifest_tile.csv").exists()
