"""Benchmark of the MRI pipeline: seconds per study, registration accuracy, peak RSS.

For synthetic 4-phase studies with known simulated motion (default 256×256×80,
1.5×1.5×2.5 mm) it times ingest + QC + registration + normalisation per study
(``hccstrat.radiology`` coarse-to-fine registration), measures the tumour-centre
residual (mm) of every registered phase against the simulated motion, and runs in
the same process a plain SimpleITK rigid+affine Mattes-MI registration at full
resolution as the reference (one level, no smoothing, 100 iterations per stage,
5 % random sampling; ``--baseline-sampling 1`` samples every voxel, which costs
several CPU seconds per iteration at 256×256×80, i.e. tens of CPU minutes per study).

Reference (issue 4): the plain full-resolution registration was measured at about
38 s per study with 0.2 mm residual; goal: 10 s or less per study for the whole
pipeline on 2 cores, residual 1 mm or less.

Usage::

    .venv/bin/python benchmarks/mri.py            # 3 studies, 256×256×80
    .venv/bin/python benchmarks/mri.py --quick    # 1 small study, seconds
    .venv/bin/python benchmarks/mri.py --studies 1 --profile   # + cProfile of stage costs

Per-stage CPU seconds (``time.process_time``: every thread of the process) and wall
seconds are printed; on a shared machine the CPU figure is the comparable one.
"""

from __future__ import annotations

import argparse
import resource
import sys
import tempfile
import time
from pathlib import Path

import numpy as np


def _residuals(info, transforms: dict) -> dict[str, float]:
    from hccstrat.synthetic._mri_phantom import RigidMotion

    c = np.asarray(info.tumour_centres[0])
    out = {}
    for phase, tr in transforms.items():
        m = info.motion[phase]
        truth = RigidMotion(tuple(m["translation"]), m["rotation_deg"],
                            tuple(m["centre"])).apply(c[None])[0]
        out[phase] = float(np.linalg.norm(np.asarray(tr.TransformPoint(c.tolist())) - truth))
    return out


def _clock() -> tuple[float, float]:
    return time.process_time(), time.perf_counter()


def _lap(t: tuple[float, float]) -> tuple[float, float]:
    c, w = _clock()
    return c - t[0], w - t[1]


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--quick", action="store_true", help="one small study (smoke test)")
    ap.add_argument("--studies", type=int, default=3)
    ap.add_argument("--threads", type=int, default=2, help="ITK threads (2 = the target)")
    ap.add_argument("--no-baseline", action="store_true", help="skip the full-res reference")
    ap.add_argument("--baseline-iterations", type=int, default=100,
                    help="optimiser iterations per stage of the full-res reference")
    ap.add_argument("--baseline-sampling", type=float, default=0.05,
                    help="fraction of voxels the full-res reference samples (1 = all: hours)")
    ap.add_argument("--profile", action="store_true",
                    help="cProfile the pipeline of the first study (top 15 by own time)")
    ap.add_argument("--seed", type=int, default=0)
    args = ap.parse_args(argv)

    import SimpleITK as sitk

    from hccstrat.io.dicom import scan_folder
    from hccstrat.radiology.preprocess import find_masks, preprocess_study
    from hccstrat.radiology.qc import qc_study
    from hccstrat.radiology.register import register_full_resolution
    from hccstrat.synthetic.mri import default_latent, write_study

    sitk.ProcessObject_SetGlobalDefaultNumberOfThreads(args.threads)
    base_it = args.baseline_iterations
    if args.quick:  # smoke test: small study, reference capped at 5 iterations per stage
        n, shape, spacing, base_it = 1, (96, 96, 32), (4.0, 4.0, 6.25), 5
    else:
        n, shape, spacing = args.studies, (256, 256, 80), (1.5, 1.5, 2.5)
    stages: dict[str, list[tuple[float, float]]] = {}
    ours_res, base_res, base_t, gen_t = [], [], [], []
    with tempfile.TemporaryDirectory(prefix="hcc-mri-bench-") as tmp:
        tmp = Path(tmp)
        for i in range(n):
            vendor = ("GE", "Siemens", "Philips", "UIH")[i % 4]
            t = _clock()
            info = write_study(tmp / f"s{i}", default_latent(i % 2 == 0), vendor=vendor,
                               patient_id=f"B{i}", seed=args.seed + i, shape=shape,
                               spacing=spacing, motion_mm=3.0, localiser=False,
                               write_dicom_seg=False)
            gen_t.append(_lap(t))
            prof = None
            if args.profile and i == 0:
                import cProfile

                prof = cProfile.Profile()
                prof.enable()
            t = _clock()
            study = scan_folder(tmp / f"s{i}").study()
            masks = find_masks(tmp / f"s{i}", study)
            stages.setdefault("ingest (scan + phase id)", []).append(_lap(t))
            pre = preprocess_study(study, tmp / f"p{i}", tumour_mask=masks["tumour"],
                                   liver_mask=masks["liver"])
            for name, v in pre.timing.items():
                stages.setdefault(f"preprocess: {name}", []).append((v["cpu_s"], v["wall_s"]))
            regs = pre.summary["_registrations"]
            t = _clock()
            qc = qc_study(study, reference_date=info.study_date, registrations=regs,
                          volumes=pre.volumes)
            stages.setdefault("QC (with residual check)", []).append(_lap(t))
            if prof is not None:
                import pstats

                prof.disable()
                pstats.Stats(prof).sort_stats("tottime").print_stats(15)
            res = _residuals(info, {p: r.transform for p, r in regs.items()})
            ours_res.extend(res.values())
            total = [sum(v[-1][k] for v in stages.values()) for k in (0, 1)]
            line = (f"study {i + 1}/{n} ({vendor}, {shape[0]}x{shape[1]}x{shape[2]}): "
                    f"generated in {gen_t[-1][0]:.1f} s CPU; pipeline {total[0]:.1f} s CPU "
                    f"/ {total[1]:.1f} s wall; residual mm "
                    + ", ".join(f"{p} {v:.2f}" for p, v in res.items())
                    + f"; QC {qc.verdict} (misregistration "
                    f"{qc.check('misregistration').value:.2f} mm)")
            if not args.no_baseline:
                vols = pre.volumes
                t = _clock()
                b = {p: register_full_resolution(vols["portal"], vols[p], iterations=base_it,
                                                 sampling=args.baseline_sampling).transform
                     for p in ("pre", "arterial", "delayed")}
                base_t.append(_lap(t))
                bres = _residuals(info, b)
                base_res.extend(bres.values())
                line += (f"; baseline {base_t[-1][0]:.1f} s CPU / {base_t[-1][1]:.1f} s wall, "
                         f"residual max {max(bres.values()):.2f}")
            print(line, flush=True)
    rss_mb = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024
    print()
    print("per-stage seconds per study (mean): CPU = all threads of this process; the")
    print("machine may be shared, so CPU seconds are the comparable figure")
    print(f"{'stage':44s} {'CPU s':>8s} {'wall s':>8s}")
    for name, v in stages.items():
        print(f"{name:44s} {np.mean([x[0] for x in v]):8.2f} {np.mean([x[1] for x in v]):8.2f}")
    ours_cpu = sum(np.mean([x[0] for x in v]) for v in stages.values())
    ours_wall = sum(np.mean([x[1] for x in v]) for v in stages.values())
    print(f"{'TOTAL ingest+QC+register+normalise(+write)':44s} {ours_cpu:8.2f} {ours_wall:8.2f}")
    print(f"{'(synthetic study generation, not counted)':44s} "
          f"{np.mean([x[0] for x in gen_t]):8.2f} {np.mean([x[1] for x in gen_t]):8.2f}")
    print()
    print(f"{'measure':44s} {'hccstrat':>12s} {'plain full-res':>15s} {'issue reference':>18s}")
    b_cpu = f"{np.mean([x[0] for x in base_t]):.1f}" if base_t else "skipped"
    b_wall = f"{np.mean([x[1] for x in base_t]):.1f}" if base_t else "skipped"
    b_r = f"{np.mean(base_res):.2f}" if base_res else "skipped"
    bmax = f"{np.max(base_res):.2f}" if base_res else "skipped"
    print(f"{'CPU seconds per study':44s} {ours_cpu:12.1f} {b_cpu:>15s} {'':>18s}")
    print(f"{'wall seconds per study':44s} {ours_wall:12.1f} {b_wall:>15s} "
          f"{'38 s / goal <= 10':>18s}")
    print(f"{'tumour-centre residual, mean (mm)':44s} {np.mean(ours_res):12.2f} {b_r:>15s} "
          f"{'0.2 / goal <= 1':>18s}")
    print(f"{'tumour-centre residual, max (mm)':44s} {np.max(ours_res):12.2f} {bmax:>15s}")
    print(f"{'peak RSS of this process (MB)':44s} {rss_mb:12.0f}")
    if base_t:
        print("speed-up (CPU) of the whole pipeline vs plain full-res registration alone: "
              f"{np.mean([x[0] for x in base_t]) / ours_cpu:.1f}x "
              f"(wall {np.mean([x[1] for x in base_t]) / ours_wall:.1f}x)")
    note = "; --quick: figures are a smoke test only)" if args.quick else ")"
    print(f"(ITK threads: {args.threads}; reference: {base_it} iterations per stage, "
          f"{args.baseline_sampling:.0%} of the voxels sampled, timed on registration only"
          + note)
    return 0


if __name__ == "__main__":
    sys.exit(main())
