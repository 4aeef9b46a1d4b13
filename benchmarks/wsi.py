"""WSI benchmark: hccstrat vs TIAToolbox and a plain OpenSlide loop; Macenko vs torchstain.

Prints, side by side in one run on the same synthetic JPEG-tiled pyramidal TIFF
(default 40,000 × 40,000 px at 0.5 µm/px, 256-px JPEG tiles):

* goal 4 — time to write a 20,000 × 20,000 synthetic slide;
* goal 1 — tissue detection + tiling + reading (0.5 µm/px, 224-px tiles), tiles/s and
  peak RSS, for hccstrat (1 and 2 reader threads), for TIAToolbox 2.1.3's patch
  extractor and for a plain OpenSlide ``read_region`` loop at the nearest pyramid
  level (1 and 2 processes). TIAToolbox pins torch<2.13, so the script installs it
  into its own venv (``/tmp/hccstrat-tiatoolbox``); when that is impossible it says
  why and the OpenSlide loop is the reference, as the issue allows;
* goal 2 — peak RSS of streamed iteration over >= 100,000 tiles (same slide, tiles
  overlapping until the grid holds 100,000);
* goal 3 — Macenko stain normalisation tiles/s: hccstrat per-slide stains, per-batch
  pooled stains (the default for a batch) and per-tile exact mode, vs torchstain.

Every measured side runs in its own fresh Python process (``resource.getrusage``
gives its peak RSS); import time is excluded everywhere. On a shared machine the
figures move with the load: compare rows of the same run.

Usage: ``python benchmarks/wsi.py [--quick] [--size 40000] [--no-tiatoolbox]``.
"""

from __future__ import annotations

import argparse
import json
import os
import subprocess
import sys
import tempfile
import time
from pathlib import Path

TIA_VENV = Path("/tmp/hccstrat-tiatoolbox")
TARGET_MPP, PATCH = 0.5, 224
RSS_LIMIT_MB = 2048


# -- workers (run in fresh subprocesses: python benchmarks/wsi.py --worker NAME ...) ------
def _rss_mb() -> float:
    import resource

    return resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024


def worker_hccstrat(path: str, threads: int, min_tiles: int = 0) -> dict:
    """Tissue detection + tiling + reading every tile; with ``min_tiles``, overlap grows
    until the grid holds that many tiles (the 100,000-tile memory check)."""
    from hccstrat.io.wsi import open_slide
    from hccstrat.pathology.tiling import grid_tiles, iter_tile_batches
    from hccstrat.pathology.tissue import detect_tissue

    t0, c0 = time.perf_counter(), time.process_time()
    n = 0
    with open_slide(path) as s:
        tissue = detect_tissue(s)
        overlap = 0
        g = grid_tiles(s, tissue, target_mpp=TARGET_MPP, patch_size=PATCH)
        while len(g) < min_tiles and overlap < PATCH - 16:
            overlap += 8
            g = grid_tiles(s, tissue, target_mpp=TARGET_MPP, patch_size=PATCH, overlap=overlap)
        for tiles, _ in iter_tile_batches(s, g, batch_size=128, workers=threads):
            n += len(tiles)
    dt, cpu = time.perf_counter() - t0, time.process_time() - c0
    return {"tiles": n, "seconds": dt, "cpu_s": cpu, "rss_mb": _rss_mb(), "overlap": overlap}


def _openslide_part(path: str, coords: list, level: int, size: int, q) -> None:
    import openslide

    s = openslide.OpenSlide(path)
    for x, y in coords:
        s.read_region((int(x), int(y)), level, (size, size))
    q.put(_rss_mb())


def worker_openslide(path: str, procs: int) -> dict:
    """Plain loop: grid on the thumbnail's non-white cells, one read_region per tile."""
    import multiprocessing as mp
    import resource

    import numpy as np
    import openslide

    t0, c0 = time.perf_counter(), time.process_time()
    s = openslide.OpenSlide(path)
    mpp = float(s.properties["openslide.mpp-x"])
    p0 = round(PATCH * TARGET_MPP / mpp)
    level = s.get_best_level_for_downsample(p0 / PATCH)
    size = round(p0 / s.level_downsamples[level])
    w, h = s.dimensions
    thumb = np.asarray(s.get_thumbnail((w // 32, h // 32)).convert("L"))
    ds = w / thumb.shape[1]
    coords = [
        (x, y)
        for y in range(0, h - p0 + 1, p0)
        for x in range(0, w - p0 + 1, p0)
        if thumb[int((y + p0 / 2) / ds), int((x + p0 / 2) / ds)] < 220
    ]
    ctx = mp.get_context("fork")
    q = ctx.Queue()
    ps = [
        ctx.Process(target=_openslide_part, args=(path, coords[i::procs], level, size, q))
        for i in range(procs)
    ]
    for p in ps:
        p.start()
    rss = [q.get() for _ in ps]
    for p in ps:
        p.join()
    dt = time.perf_counter() - t0
    ch = resource.getrusage(resource.RUSAGE_CHILDREN)
    cpu = time.process_time() - c0 + ch.ru_utime + ch.ru_stime
    return {"tiles": len(coords), "seconds": dt, "cpu_s": cpu, "rss_mb": _rss_mb() + sum(rss)}


def _macenko_tiles(path: str, n: int):
    import numpy as np

    from hccstrat.io.wsi import open_slide
    from hccstrat.pathology.tiling import grid_tiles, iter_tile_batches
    from hccstrat.pathology.tissue import detect_tissue

    with open_slide(path) as s:
        g = grid_tiles(s, detect_tissue(s), target_mpp=TARGET_MPP, patch_size=PATCH)
        pick = np.linspace(0, len(g) - 1, min(n, len(g))).astype(int)
        tiles = np.concatenate([t for t, _ in iter_tile_batches(s, g, indices=pick)])
    return np.concatenate([tiles] * -(-n // len(tiles)))[:n]


def worker_macenko(path: str, n: int) -> dict:
    """tiles/s of hccstrat's three Macenko modes and of torchstain on the same tiles."""
    import numpy as np
    from torchstain.numpy.normalizers import NumpyMacenkoNormalizer

    from hccstrat.pathology.stain import MacenkoNormalizer

    tiles = _macenko_tiles(path, n)
    target = tiles[len(tiles) // 2]
    out: dict = {"tiles": len(tiles)}

    def rate(fn, count: int, batch: int = 64) -> tuple[float, float]:
        """(tiles per wall second, tiles per CPU second of all threads)."""
        fn(tiles[:batch])  # warm-up (thread pools, tables)
        t0, c0 = time.perf_counter(), time.process_time()
        for i in range(0, count, batch):
            fn(tiles[i : i + batch])
        return count / (time.perf_counter() - t0), count / (time.process_time() - c0)

    per_slide = MacenkoNormalizer().fit(target)
    t0 = time.perf_counter()
    per_slide.fit_source(tiles[:256])  # once per slide: stains + 24-bit colour table
    per_slide.transform(tiles[:1], method="fast")
    out["slide_setup_s"] = time.perf_counter() - t0
    out["per_slide"] = rate(lambda b: per_slide.transform(b), len(tiles))
    pooled = MacenkoNormalizer().fit(target)
    out["per_batch"] = rate(lambda b: pooled.transform(b), len(tiles))
    exact = MacenkoNormalizer().fit(target)
    k = max(32, len(tiles) // 8)
    out["exact"] = rate(lambda b: exact.transform(b, method="exact"), k)
    ref = NumpyMacenkoNormalizer()
    ref.fit(target)
    out["torchstain"] = rate(lambda b: [ref.normalize(t, stains=False) for t in b], k, 16)
    sample = tiles[:16]
    ts = np.stack([ref.normalize(t, stains=False)[0] for t in sample]).astype(int)
    out["diff_exact"] = float(np.abs(exact.transform(sample, method="exact") - ts).mean())
    out["diff_per_batch"] = float(np.abs(pooled.transform(sample) - ts).mean())
    out["diff_per_slide"] = float(np.abs(per_slide.transform(sample) - ts).mean())
    return out


def worker_synth(path: str, size: int) -> dict:
    from hccstrat.synthetic.wsi import default_latent, write_slide

    t0 = time.perf_counter()
    write_slide(Path(path), default_latent(), size=(size, size), seed=0, geojson=False)
    return {"seconds": time.perf_counter() - t0, "rss_mb": _rss_mb()}


_WORKERS = {
    "hccstrat": worker_hccstrat,
    "openslide": worker_openslide,
    "macenko": worker_macenko,
    "synth": worker_synth,
}


def _run(name: str, *args) -> dict:
    """Run a worker in a fresh interpreter; its last stdout line is JSON."""
    cmd = [sys.executable, __file__, "--worker", name, *map(str, args)]
    env = dict(os.environ)
    if name == "macenko":
        # torchstain's lstsq/cov go through numpy's BLAS, whose worker threads only
        # slow it down on 2 busy cores (measured ~3x): give it its fastest setting
        env["OPENBLAS_NUM_THREADS"] = "1"
    r = subprocess.run(cmd, capture_output=True, text=True, timeout=3600, env=env)
    if r.returncode != 0:
        raise RuntimeError(f"worker {name} failed:\n{r.stderr[-2000:]}")
    return json.loads(r.stdout.strip().splitlines()[-1])


# -- TIAToolbox in its own venv ---------------------------------------------------------
_TIA_SCRIPT = """
import json, resource, sys, time
from tiatoolbox.tools import patchextraction
from tiatoolbox.wsicore.wsireader import OpenSlideWSIReader
t0, c0 = time.perf_counter(), time.process_time()
# OpenSlideWSIReader: WSIReader.open() picks a tifffile reader that sees neither the
# reduced-resolution pages nor the resolution tags of a generic pyramidal TIFF
r = OpenSlideWSIReader(sys.argv[1])
mask = r.tissue_mask(resolution=8.0, units="mpp")
ext = patchextraction.get_patch_extractor("slidingwindow", input_img=r, input_mask=mask,
      patch_size=(224, 224), resolution=0.5, units="mpp")
n = sum(1 for _ in ext)
print(json.dumps({"tiles": n, "seconds": time.perf_counter() - t0,
      "cpu_s": time.process_time() - c0,
      "rss_mb": resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024}))
"""


def run_tiatoolbox(path: str, install: bool) -> tuple[dict | None, str]:
    py = TIA_VENV / "bin" / "python"
    if not py.exists():
        if not install:
            return None, f"no TIAToolbox venv at {TIA_VENV} and the install was not asked for"
        try:
            subprocess.run(
                [sys.executable, "-m", "venv", str(TIA_VENV)],
                check=True,
                capture_output=True,
                timeout=300,
            )
            r = subprocess.run(
                [str(py), "-m", "pip", "install", "-q", "tiatoolbox==2.1.3"],
                capture_output=True,
                text=True,
                timeout=2400,
            )
        except (subprocess.SubprocessError, OSError) as ex:
            return None, f"cannot create the TIAToolbox venv: {ex}"
        if r.returncode != 0:
            last = (r.stderr or r.stdout).strip().splitlines()[-1:] or ["unknown error"]
            return None, f"pip install tiatoolbox==2.1.3 failed: {last[0][:200]}"
    r = subprocess.run(
        [str(py), "-c", _TIA_SCRIPT, path], capture_output=True, text=True, timeout=3600
    )
    if r.returncode != 0:
        return None, f"TIAToolbox run failed: {(r.stderr.strip().splitlines() or ['?'])[-1][:200]}"
    return json.loads(r.stdout.strip().splitlines()[-1]), "ok"


# -- report ------------------------------------------------------------------------------
def _verdict(ok: bool) -> str:
    return "goal met" if ok else "NOT met"


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--quick", action="store_true", help="small slides, no TIAToolbox")
    ap.add_argument("--size", type=int, default=None, help="slide side in px (default 40000)")
    ap.add_argument("--slide", type=Path, default=None, help="benchmark this slide instead")
    ap.add_argument("--no-tiatoolbox", action="store_true", help="skip TIAToolbox")
    ap.add_argument("--min-tiles", type=int, default=None, help="tiles of the RSS check")
    ap.add_argument("--worker", nargs="+", help=argparse.SUPPRESS)
    a = ap.parse_args(argv)
    if a.worker:
        name, *args = a.worker
        print(json.dumps(_WORKERS[name](args[0], *map(int, args[1:]))))
        return 0
    size = a.size or (3072 if a.quick else 40000)
    synth_size = 4096 if a.quick else 20000
    min_tiles = a.min_tiles or (2000 if a.quick else 100_000)
    print(f"machine: {os.cpu_count()} CPU cores; load average {os.getloadavg()[0]:.1f}")
    with tempfile.TemporaryDirectory() as d:
        if not a.quick:
            syn = _run("synth", Path(d) / "synth.tiff", synth_size)
            print(f"synthetic slide {synth_size}x{synth_size} px written in {syn['seconds']:.1f} s")
            os.unlink(Path(d) / "synth.tiff")
        if a.slide is None:
            path = str(Path(d) / "bench.tiff")
            r = _run("synth", path, size)
            print(
                f"benchmark slide {size}x{size} px (JPEG q85, 256-px tiles, 0.5 µm/px) "
                f"written in {r['seconds']:.1f} s"
            )
            if a.quick:
                syn, synth_size = r, size
        else:
            path = str(a.slide)
            if a.quick:
                syn = _run("synth", Path(d) / "synth.tiff", synth_size)
        rows = [
            (f"hccstrat ({w} reader thread{'s' if w > 1 else ''})", _run("hccstrat", path, w))
            for w in (1, 2)
        ]
        ours = rows[-1][1]
        tia, why = (None, "skipped (--quick)") if a.quick else (None, "skipped (--no-tiatoolbox)")
        if not (a.quick or a.no_tiatoolbox):
            tia, why = run_tiatoolbox(path, install=True)
        if tia is not None:
            rows.append(("TIAToolbox 2.1.3 patch extractor (OpenSlide)", tia))
        else:
            print(f"TIAToolbox not run: {why}; the OpenSlide loop is the reference")
        for procs in (1, 2):
            r = _run("openslide", path, procs)
            rows.append((f"OpenSlide read_region loop ({procs} proc)", r))
        big = _run("hccstrat", path, 2, min_tiles)
        mac = _run("macenko", path, 128 if a.quick else 1024)
    print(
        f"\n{'tissue + tiling + reading (0.5 µm/px, 224 px)':50s} {'tiles':>8s} "
        f"{'tiles/s':>9s} {'tiles/CPU-s':>12s} {'peak RSS MB':>12s}"
    )
    big_name = f"hccstrat, 2 threads, overlap {big['overlap']} px (memory check)"
    for name, r in [*rows, (big_name, big)]:
        print(
            f"{name:50s} {r['tiles']:8d} {r['tiles'] / r['seconds']:9.0f} "
            f"{r['tiles'] / r['cpu_s']:12.0f} {r['rss_mb']:12.0f}"
        )
    rate = {name: r["tiles"] / r["seconds"] for name, r in rows}
    ref_name = rows[2][0]  # TIAToolbox when it ran, else the 1-process OpenSlide loop
    ours_rate = ours["tiles"] / ours["seconds"]
    print(
        f"\n{'Macenko normalisation (224-px tiles, batches of 64)':50s} {'tiles/s':>9s} "
        f"{'tiles/CPU-s':>12s} {'|Δ| vs torchstain':>18s}"
    )
    for label, key, diff in [
        ("hccstrat fast, per-slide stains (fit_source once)", "per_slide", "diff_per_slide"),
        ("hccstrat fast, per-batch pooled stains (default)", "per_batch", "diff_per_batch"),
        ("hccstrat exact, per-tile stains (torch)", "exact", "diff_exact"),
        ("torchstain NumpyMacenkoNormalizer, per tile", "torchstain", None),
    ]:
        print(
            f"{label:50s} {mac[key][0]:9.0f} {mac[key][1]:12.0f} {mac[diff] if diff else 0.0:18.2f}"
        )
    print(
        f"(per-slide setup: stains + 24-bit colour table in {mac['slide_setup_s']:.2f} s. "
        "|Δ|: mean grey-level difference on 16 tiles. The fast modes pool the stains and "
        "the 99th-percentile concentrations of many tiles, so pale or one-stain tiles keep "
        "their look instead of being stretched tile by tile as in torchstain. numpy's BLAS "
        "runs on one thread here, torchstain's fastest setting on this machine)"
    )
    g1 = ours_rate / rate[ref_name]
    g3 = mac["per_batch"][0] / mac["torchstain"][0]
    g3s = mac["per_slide"][0] / mac["torchstain"][0]
    print("\nGoals (2 cores)")
    print(
        f"1. reading: hccstrat {ours_rate:.0f} tiles/s = {g1:.1f}x {ref_name} "
        f"(goal >= 3x; vs 2-process OpenSlide loop "
        f"{ours_rate / rate['OpenSlide read_region loop (2 proc)']:.1f}x) -> {_verdict(g1 >= 3)}"
    )
    print(
        f"2. peak RSS over {big['tiles']:,} tiles: {big['rss_mb']:.0f} MB (goal <= "
        f"{RSS_LIMIT_MB} MB, >= {min_tiles:,} tiles) -> "
        f"{_verdict(big['rss_mb'] <= RSS_LIMIT_MB and big['tiles'] >= min_tiles)}"
    )
    print(
        f"3. Macenko (goal >= 10x torchstain): per-slide stains {g3s:.1f}x -> "
        f"{_verdict(g3s >= 10)}; default per-batch pooled stains {g3:.1f}x -> "
        f"{_verdict(g3 >= 10)}"
    )
    print(
        f"4. synthetic {synth_size}x{synth_size} slide in {syn['seconds']:.1f} s (goal: seconds, "
        f"here <= 10 s; was 15-18 s) -> {_verdict(syn['seconds'] <= 10)}"
    )
    print(
        f"load average at the end {os.getloadavg()[0]:.1f} on {os.cpu_count()} cores: with "
        "other work on the machine, tiles/CPU-s is the steadier comparison"
    )
    if a.quick:
        print("--quick is a smoke test (tiny slide, few tiles): judge the goals on a full run")
    if size < 40000 and a.slide is None:
        print(f"(slide side {size} px instead of the issue's 40,000: --quick or --size)")
    return 0


if __name__ == "__main__":
    sys.exit(main())
