"""Demo stage: TIME panel, two-reader arbitration and a MIL attention heatmap.

Small synthetic slides (2,048 px at 0.5 µm/px) keep the stage well under a minute on
two cores: four annotated training slides (all with vascular invasion, so the rare
thrombus class has examples) fit the tile classifier; the TIME panel is computed for
the first six cohort patients and compared with their latent TIME; the arbitration
runs on simulated readers of one slide; a gated-attention MIL survival model is
trained on bags whose risk is carried by immune-dense tiles and its attention is drawn
over one slide.
"""

from __future__ import annotations

import pathlib

__all__ = ["REAL_SLIDE", "demo_stage_time", "find_fixtures"]

_SIZE = 2048


def demo_stage_time(cohort, out_dir: pathlib.Path, *, seed: int, progress) -> list:
    """Run the TIME / annotation / MIL demo; returns report sections.

    Parameters
    ----------
    cohort : object
        Synthetic cohort with a ``latent`` DataFrame (``clinical``/``centres`` optional).
    out_dir : pathlib.Path
    seed : int
    progress : callable
        ``progress(description)``.
    """
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt
    import numpy as np
    import pandas as pd

    from hccstrat.cli.wsi import _centre_shifts
    from hccstrat.io.atomic import atomic_write
    from hccstrat.models.mil import MILModel, planted_bags
    from hccstrat.pathology.annotate import agreement, arbitrate
    from hccstrat.pathology.heatmap import plot_score_heatmap, save_png
    from hccstrat.pathology.time import (
        TimeConfig,
        extract_tiles,
        measure_time,
        plot_time_overlay,
        time_panel,
    )
    from hccstrat.pathology.time_batch import labels_for_slide, train_tile_classifier
    from hccstrat.reports.html import Section, table_to_html
    from hccstrat.synthetic.annotations import make_reader_annotations
    from hccstrat.synthetic.wsi import default_latent, read_truth, write_slide

    out = pathlib.Path(out_dir) / "time"
    cfg = TimeConfig(margin_um=200.0)  # 1-mm-wide demo slides: a narrow margin band
    rng = np.random.default_rng(seed)
    progress("time: writing annotated training slides")
    train = []
    for i, ph in enumerate(("inflamed", "excluded", "desert", "inflamed")):
        lat = default_latent(
            patient_id=f"TRAIN-{i}", immune_phenotype=ph, vascular_invasion=True,
            lymphocyte_density=float(rng.uniform(0.05, 0.7)),
            aggressiveness=float(rng.uniform(-2.0, 2.0)),
            stroma_fraction=float(rng.uniform(0.05, 0.4)),
            necrosis_fraction=float(rng.uniform(0.0, 0.2)),
        )
        info = write_slide(out / "train" / f"TRAIN-{i}.tiff", lat, size=(_SIZE, _SIZE),
                           seed=seed + 50 + i, texture_size=256, geojson=False)
        train.append(info.path)
    clf, train_tiles = train_tile_classifier(train, config=cfg, progress=progress)

    latent = getattr(cohort, "latent", None)
    if latent is None or len(latent) == 0:
        latent = pd.DataFrame([default_latent()])
    rows = latent.head(6).to_dict("records")
    shifts = _centre_shifts(cohort)
    results, truths = [], []
    for i, lat in enumerate(rows):
        pid = str(lat.get("patient_id", f"P{i}"))
        progress(f"time: TIME panel of {pid} ({i + 1}/{len(rows)})")
        info = write_slide(out / "slides" / f"{pid}.tiff", lat, size=(_SIZE, _SIZE),
                           stain_shift=shifts.get(pid), seed=seed + i, texture_size=256,
                           geojson=False)
        st = extract_tiles(info.path, config=cfg, slide_id=pid)
        results.append(measure_time(st, clf, cfg))
        truths.append(labels_for_slide(info.path, st))
    panel = time_panel(results, [r.row["slide_id"] for r in results])
    lat_df = pd.DataFrame(rows)
    show = pd.DataFrame({
        "patient": panel["patient_id"],
        "phenotype (latent)": lat_df["immune_phenotype"].astype(str).to_numpy(),
        "phenotype (H&E)": panel["time_immune_phenotype"],
        "lymph. density latent": lat_df["lymphocyte_density"].round(2).to_numpy(),
        "tumour cells/mm²": panel["time_lymphocyte_density_tumour"].round(0),
        "margin cells/mm²": panel["time_lymphocyte_density_margin"].round(0),
        "stroma": panel["time_stroma_fraction"].round(2),
        "necrosis": panel["time_necrosis_fraction"].round(2),
        "VI latent": lat_df["vascular_invasion"].astype(bool).to_numpy(),
        "VI (H&E)": panel["time_vascular_invasion"].astype(bool),
    })
    acc = np.mean([
        (r.tiles["cls"].to_numpy()[[v is not None for v in y]]
         == np.where(y[[v is not None for v in y]] == "vessel_tumour_thrombus", "vessel",
                     y[[v is not None for v in y]])).mean()
        for r, y in zip(results, truths, strict=True)
    ])
    ov = save_png(plot_time_overlay(results[0]), out / f"{results[0].row['slide_id']}_time.png")
    with atomic_write(out / "time_panel.csv") as fh:
        panel.to_csv(fh, index=False)

    progress("time: two readers + arbiter")
    lab, truth = read_truth(train[0])
    rs = make_reader_annotations(lab, downsample=truth["downsample"], seed=seed,
                                 arbiter_accuracy=0.8)
    rs.write(out / "annotations", stem="TRAIN-0")
    kappa, per_class = agreement(rs.reader1, rs.reader2, tile=4)
    arb = arbitrate(rs.reader1, rs.reader2, rs.arbiter)
    right = rs.arbiter_right & arb.disagreement
    ann = {
        "kappa (tiles)": kappa,
        "disagreement regions": arb.n_regions,
        "reader 1 accuracy": float((rs.reader1 == rs.truth).mean()),
        "reader 2 accuracy": float((rs.reader2 == rs.truth).mean()),
        "consensus accuracy": float((arb.consensus == rs.truth).mean()),
        "consensus = truth where arbiter right": float(
            (arb.consensus[right] == rs.truth[right]).mean()) if right.any() else float("nan"),
    }

    progress("time: gated-attention MIL on planted bags")
    pool = np.concatenate([st.features for st in train_tiles])
    labs = np.concatenate([labels_for_slide(p, st) for p, st in zip(train, train_tiles,
                                                                     strict=True)])
    keep = np.array([v is not None for v in labs])
    bags, _masks, y, _f = planted_bags(pool[keep], labs[keep] == "immune_dense", n_bags=120,
                                       effect=4.0, seed=seed)
    mil = MILModel(epochs=15, random_state=seed).fit(bags[:80], y[:80])
    c_model = mil.score(bags[80:], y[80:])
    c_shuf = MILModel(epochs=15, random_state=seed).fit(
        bags[:80], y[:80][rng.permutation(80)]).score(bags[80:], y[80:])
    st0 = train_tiles[0]
    att = mil.attention([st0.features])[0]
    imm = labs[: len(st0.coords)] == "immune_dense"
    fig, ax = plt.subplots(figsize=(6.5, 6))
    plot_score_heatmap(st0.thumbnail, st0.thumb_downsample, st0.coords, st0.patch_size_level0,
                       att, highlight=imm, ax=ax,
                       title="MIL attention (cyan: true immune-dense tiles)")
    hm = save_png(fig, out / "mil_attention.png")
    k = max(1, len(att) // 10)
    top_hit = float(imm[np.argsort(att)[::-1][:k]].mean())

    real_html, real_numbers = _real_slide(clf, cfg, out, progress)

    def fig_of(path: pathlib.Path, alt: str) -> str:
        import base64
        import html

        data = base64.b64encode(path.read_bytes()).decode("ascii")
        return (f'<figure><img src="data:image/png;base64,{data}" alt="{html.escape(alt)}">'
                f"<figcaption>{html.escape(alt)}</figcaption></figure>")

    body = (
        table_to_html(show, caption="TIME panel from H&E vs the latent truth (6 patients)")
        + f"<p>Tile-class accuracy on these slides: {acc:.1%}. Densities are lymphocytes "
        "per mm² (nuclear detection on the haematoxylin channel).</p>"
        + fig_of(ov, "TIME overlay: classes, lymphocyte density, compartments")
        + table_to_html(per_class.round(3), caption=f"Reader agreement: tile kappa {kappa:.3f}")
        + table_to_html(pd.DataFrame([ann]).round(3), caption="Arbitration")
        + f"<p>Gated-attention MIL (Cox loss): test C-index {c_model:.3f} vs {c_shuf:.3f} "
        f"with shuffled labels; {top_hit:.0%} of the top-10 % attention tiles are immune-dense "
        f"(slide share {imm.mean():.0%}).</p>"
        + fig_of(hm, "MIL attention heatmap")
        + real_html
    )
    numbers = {"tile_accuracy": float(acc), "kappa": float(kappa), "mil_c": float(c_model),
               "mil_c_shuffled": float(c_shuf), **real_numbers}
    return [Section(title="Tumour immune microenvironment, annotation and MIL", body=body,
                    numbers=numbers)]


#: the real H&E fixture the demo runs on when ../shared/fixtures is beside the checkout
REAL_SLIDE = "CMU-1-Small-Region.svs"


def find_fixtures() -> pathlib.Path | None:
    """The shared fixtures folder: ``$HCCSTRAT_FIXTURES_DIR``, else ``../shared/fixtures``
    beside the current folder or beside the source checkout; None when absent."""
    import os

    env = os.environ.get("HCCSTRAT_FIXTURES_DIR")
    here = pathlib.Path(__file__).resolve()
    candidates = [pathlib.Path(env)] if env else []
    candidates += [pathlib.Path.cwd().parent / "shared" / "fixtures"]
    if len(here.parents) > 4:
        candidates.append(here.parents[4] / "shared" / "fixtures")
    return next((c for c in candidates if (c / "wsi" / REAL_SLIDE).is_file()), None)


def _real_slide(clf, cfg, out: pathlib.Path, progress) -> tuple[str, dict]:
    """TIME overlay of a real H&E slide (CMU-1, a skin biopsy) with the demo's classifier.

    Shows what the synthetic-trained classifier does on real tissue; returns report
    HTML and numbers (empty numbers when the fixture is absent).
    """
    import base64
    import dataclasses
    import html

    import numpy as np

    from hccstrat.exceptions import HccstratError
    from hccstrat.pathology.heatmap import save_png
    from hccstrat.pathology.time import extract_tiles, measure_time, plot_time_overlay

    root = find_fixtures()
    if root is None:
        return ("<p>Real H&amp;E: the shared fixtures folder was not found (set "
                "<code>HCCSTRAT_FIXTURES_DIR</code> or place <code>../shared/fixtures</code> "
                "beside the checkout), so no real slide was processed.</p>", {})
    progress(f"time: real H&E slide {REAL_SLIDE}")
    real_cfg = dataclasses.replace(cfg, tile_all=True)
    try:
        res = measure_time(extract_tiles(root / "wsi" / REAL_SLIDE, config=real_cfg,
                                         slide_id="CMU-1"), clf, real_cfg)
    except HccstratError as err:  # recorded in the report; the demo goes on
        return f"<p>Real H&amp;E slide {REAL_SLIDE} failed: {html.escape(str(err))}</p>", {}
    png = save_png(plot_time_overlay(res), out / "real_CMU-1_time.png")
    cls = res.tiles["cls"].astype(str)
    tissue = ~cls.isin(["background", "excluded"])
    shares = cls[tissue].value_counts(normalize=True)
    row = res.row
    data = base64.b64encode(png.read_bytes()).decode("ascii")
    alt = (f"Real H&E ({REAL_SLIDE}, a skin biopsy, CC0): tile classes, lymphocyte "
           "density and compartments from the classifier trained on synthetic liver slides")
    share_txt = ", ".join(f"{k.replace('_', ' ')} {v:.0%}" for k, v in shares.items())
    dens = float(row.get("time_lymphocyte_density_margin", float("nan")))
    unrec = (
        f"The classifier did not recognise {row['time_unrecognised_fraction']:.0%} of the "
        "tissue tiles and flags the panel as unreliable. "
        if row.get("time_panel_unreliable")
        else ""
    )
    html_out = (
        "<h3>Real H&amp;E slide</h3>"
        f'<figure><img src="data:image/png;base64,{data}" alt="{html.escape(alt)}">'
        f"<figcaption>{html.escape(alt)}</figcaption></figure>"
        f"<p>{int(tissue.sum())} tissue tiles: {html.escape(share_txt)}. Phenotype "
        f"{html.escape(str(row.get('time_immune_phenotype')))}; lymphocytes at the margin "
        f"{'not measured (no tumour bed)' if np.isnan(dens) else f'{dens:.0f}/mm²'}. "
        f"{unrec}This slide is skin, not liver: a classifier trained on synthetic "
        "liver tissue should not be trusted on it. Train the tile classifier on annotated "
        "slides of your own site (<code>hccstrat wsi annotate</code>, then "
        "<code>hccstrat wsi time --train</code>) before reading TIME panels of real "
        "slides.</p>"
    )
    numbers = {"real_tissue_tiles": int(tissue.sum()),
               "real_share_tumour": float(shares.get("tumour", 0.0)),
               "real_margin_lymphocytes_mm2": None if np.isnan(dens) else dens}
    return html_out, numbers
