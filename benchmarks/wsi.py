"""WSI benchmark: hccstrat vs TIAToolbox (or a plain OpenSlide loop); Macenko vs torchstain.

Prints, side by side on the same synthetic JPEG-tiled pyramidal TIFF:

* tissue detection + tiling + reading (0.5 µm/px, 224 px tiles): tiles/s and peak RSS
  for hccstrat and for TIAToolbox's patch extractor — TIAToolbox 2.1.3 pins
  torch<2.13, so the script installs it into its own venv (/tmp/hccstrat-tiatoolbox);
  when that is impossible it says why and compares with a plain OpenSlide
  ``read_region`` loop at the nearest pyramid level (1 and 2 processes);
* Macenko stain normalisation tiles/s: hccstrat (batched torch) vs torchstain (numpy).

Usage: ``python benchmarks/wsi.py [--quick] [--size 40000]``.
"""

from __future__ import annotations

import argparse
import json
import multiprocessing as mp
import resource
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import numpy as np

TIA_VENV = Path("/tmp/hccstrat-tiatoolbox")


def _peak_rss_mb() -> float:
    return resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024


def run_hccstrat(path: str, workers: int, q) -> None:
    from hccstrat.io.wsi import open_slide
    from hccstrat.pathology.tiling import grid_tiles, iter_tile_batches
    from hccstrat.pathology.tissue import detect_tissue

    t0 = time.perf_counter()
    n = 0
    with open_slide(path) as s:
        g = grid_tiles(s, detect_tissue(s), target_mpp=0.5, patch_size=224)
        for tiles, _ in iter_tile_batches(s, g, batch_size=128, workers=workers):
            n += len(tiles)
    dt = time.perf_counter() - t0
    q.put({"tiles": n, "seconds": dt, "rss_mb": _peak_rss_mb()})


def _openslide_part(path: str, coords: list, level: int, size: int, q) -> None:
    import openslide

    s = openslide.OpenSlide(path)
    for x, y in coords:
        s.read_region((int(x), int(y)), level, (size, size))
    q.put(_peak_rss_mb())


def run_openslide_loop(path: str, procs: int, q) -> None:
    """Plain loop: Otsu-free grid on the thumbnail's non-white cells, read_region per tile."""
    import openslide

    t0 = time.perf_counter()
    s = openslide.OpenSlide(path)
    mpp = float(s.properties["openslide.mpp-x"])
    p0 = round(224 * 0.5 / mpp)
    level = s.get_best_level_for_downsample(p0 / 224)
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
    qq = mp.get_context("fork").Queue()
    ps = [
        mp.get_context("fork").Process(
            target=_openslide_part, args=(path, coords[i::procs], level, size, qq)
        )
        for i in range(procs)
    ]
    for p in ps:
        p.start()
    rss = [qq.get() for _ in ps]
    for p in ps:
        p.join()
    q.put(
        {
            "tiles": len(coords),
            "seconds": time.perf_counter() - t0,
            "rss_mb": _peak_rss_mb() + sum(rss),
        }
    )


def _measure(target, *args) -> dict:
    q = mp.get_context("fork").Queue()
    p = mp.get_context("fork").Process(target=target, args=(*args, q))
    p.start()
    out = q.get()
    p.join()
    return out


_TIA_SCRIPT = """
import json, resource, sys, time
from tiatoolbox.tools import patchextraction
from tiatoolbox.wsicore.wsireader import WSIReader
t0 = time.perf_counter()
r = WSIReader.open(sys.argv[1])
mask = r.tissue_mask(resolution=8.0, units="mpp")
ext = patchextraction.get_patch_extractor("slidingwindow", input_img=r, input_mask=mask,
      patch_size=(224, 224), resolution=0.5, units="mpp")
n = sum(1 for _ in ext)
print(json.dumps({"tiles": n, "seconds": time.perf_counter() - t0,
      "rss_mb": resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024}))
"""


def run_tiatoolbox(path: str, install: bool) -> tuple[dict | None, str]:
    py = TIA_VENV / "bin" / "python"
    if not py.exists():
        if not install:
            return None, "TIAToolbox venv absent and --quick skips the install"
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
                timeout=1200,
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


def bench_macenko(n_tiles: int) -> tuple[float, float, float]:
    from torchstain.numpy.normalizers import NumpyMacenkoNormalizer

    from hccstrat.io.wsi import open_slide
    from hccstrat.pathology.stain import MacenkoNormalizer
    from hccstrat.synthetic.wsi import default_latent, write_slide

    with tempfile.TemporaryDirectory() as d:
        info = write_slide(
            Path(d) / "m.tiff",
            default_latent(),
            size=(2048, 2048),
            seed=9,
            artefacts=False,
            geojson=False,
        )
        with open_slide(info.path) as s:
            img = s.read_region((512, 512), 0, (1024, 1024))
    tiles = np.stack(
        [img[y : y + 224, x : x + 224] for y in range(0, 800, 224) for x in range(0, 800, 224)]
    )
    tiles = np.concatenate([tiles] * (n_tiles // len(tiles) + 1))[:n_tiles]
    target = img[:448, :448]
    ours = MacenkoNormalizer().fit(target)
    ours.transform(tiles[:8])
    t0 = time.perf_counter()
    for i in range(0, len(tiles), 64):
        ours.transform(tiles[i : i + 64])
    ours_rate = len(tiles) / (time.perf_counter() - t0)
    ref = NumpyMacenkoNormalizer()
    ref.fit(target)
    k = max(8, n_tiles // 4)
    t0 = time.perf_counter()
    for t in tiles[:k]:
        ref.normalize(t, stains=False)
    ref_rate = k / (time.perf_counter() - t0)
    diff = float(
        np.abs(
            ours.transform(tiles[:4]).astype(int)
            - np.stack([ref.normalize(t, stains=False)[0] for t in tiles[:4]])
        ).mean()
    )
    return ours_rate, ref_rate, diff


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--quick", action="store_true", help="small slide, no TIAToolbox install")
    ap.add_argument("--size", type=int, default=None, help="slide side in px (default 20000)")
    ap.add_argument("--slide", type=Path, default=None, help="benchmark this slide instead")
    a = ap.parse_args(argv)
    size = a.size or (3072 if a.quick else 20000)
    from hccstrat.synthetic.wsi import default_latent, write_slide

    with tempfile.TemporaryDirectory() as d:
        if a.slide is None:
            t0 = time.perf_counter()
            info = write_slide(
                Path(d) / "bench.tiff", default_latent(), size=(size, size), seed=0, geojson=False
            )
            path = str(info.path)
            print(f"synthetic slide {size}x{size} px written in {time.perf_counter() - t0:.1f} s")
        else:
            path = str(a.slide)
        rows = []
        for w in (1, 2):
            r = _measure(run_hccstrat, path, w)
            rows.append((f"hccstrat ({w} reader thread{'s' if w > 1 else ''})", r))
        tia, why = run_tiatoolbox(path, install=not a.quick)
        if tia is not None:
            rows.append(("TIAToolbox 2.1.3 patch extractor", tia))
        else:
            print(f"TIAToolbox not run: {why}; comparing with a plain OpenSlide loop instead")
            for pcount in (1, 2):
                rows.append(
                    (
                        f"OpenSlide read_region loop ({pcount} proc)",
                        _measure(run_openslide_loop, path, pcount),
                    )
                )
        print(
            f"\n{'tissue + tiling + reading (0.5 mpp, 224 px)':48s} {'tiles':>8s} "
            f"{'tiles/s':>9s} {'peak RSS MB':>12s}"
        )
        for name, r in rows:
            print(
                f"{name:48s} {r['tiles']:8d} {r['tiles'] / r['seconds']:9.0f} {r['rss_mb']:12.0f}"
            )
    ours, ref, diff = bench_macenko(128 if a.quick else 1024)
    print(f"\n{'Macenko normalisation (224 px tiles)':48s} {'tiles/s':>9s}")
    print(f"{'hccstrat (batched torch, per-tile stains)':48s} {ours:9.0f}")
    print(f"{'torchstain 1.3 (numpy)':48s} {ref:9.0f}")
    print(f"speed-up {ours / ref:.1f}x; mean |difference| {diff:.3f} grey levels")
    return 0


if __name__ == "__main__":
    sys.exit(main())
