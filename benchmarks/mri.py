"""Benchmark of the MRI pipeline: seconds per study, registration accuracy, peak RSS.

For synthetic 4-phase studies with known simulated motion (default 256×256×80,
1.5×1.5×2.5 mm) it times ingest + QC + registration + normalisation per study
(``hccstrat.radiology`` coarse-to-fine registration), measures the tumour-centre
residual (mm) of every registered phase against the simulated motion, and runs in
the same process a plain SimpleITK rigid+affine Mattes-MI registration at full
resolution as the reference.

Reference (issue 4): the plain full-resolution registration was measured at about
38 s per study with 0.2 mm residual; goal: 10 s or less per study for the whole
pipeline on 2 cores, residual 1 mm or less.

Usage::

    .venv/bin/python benchmarks/mri.py            # 3 studies, 256×256×80
    .venv/bin/python benchmarks/mri.py --quick    # 1 small study, seconds
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


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--quick", action="store_true", help="one small study (smoke test)")
    ap.add_argument("--studies", type=int, default=3)
    ap.add_argument("--threads", type=int, default=2, help="ITK threads (2 = the target)")
    ap.add_argument("--no-baseline", action="store_true", help="skip the full-res reference")
    ap.add_argument("--baseline-iterations", type=int, default=100,
                    help="optimiser iterations per stage of the full-res reference")
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
    ours_s, ours_res, base_s, base_res = [], [], [], []
    with tempfile.TemporaryDirectory(prefix="hcc-mri-bench-") as tmp:
        tmp = Path(tmp)
        for i in range(n):
            vendor = ("GE", "Siemens", "Philips", "UIH")[i % 4]
            t0 = time.perf_counter()
            info = write_study(tmp / f"s{i}", default_latent(i % 2 == 0), vendor=vendor,
                               patient_id=f"B{i}", seed=args.seed + i, shape=shape,
                               spacing=spacing, motion_mm=3.0, localiser=False,
                               write_dicom_seg=False)
            gen = time.perf_counter() - t0
            t0 = time.perf_counter()
            study = scan_folder(tmp / f"s{i}").study()
            masks = find_masks(tmp / f"s{i}", study)
            pre = preprocess_study(study, tmp / f"p{i}", tumour_mask=masks["tumour"],
                                   liver_mask=masks["liver"])
            regs = pre.summary["_registrations"]
            qc = qc_study(study, reference_date=info.study_date, registrations=regs)
            sec = time.perf_counter() - t0
            res = _residuals(info, {p: r.transform for p, r in regs.items()})
            ours_s.append(sec)
            ours_res.extend(res.values())
            line = (f"study {i + 1}/{n} ({vendor}, {shape[0]}x{shape[1]}x{shape[2]}): "
                    f"generated in {gen:.1f} s; pipeline {sec:.1f} s; residual mm "
                    + ", ".join(f"{p} {v:.2f}" for p, v in res.items())
                    + f"; QC {qc.verdict}")
            if not args.no_baseline:
                from hccstrat.io.dicom import load_volume

                vols = {p: load_volume(study.phase_series(p))
                        for p in ("pre", "arterial", "portal", "delayed")}
                t0 = time.perf_counter()
                b = {p: register_full_resolution(vols["portal"], vols[p],
                                                 iterations=base_it).transform
                     for p in ("pre", "arterial", "delayed")}
                base_s.append(time.perf_counter() - t0)
                bres = _residuals(info, b)
                base_res.extend(bres.values())
                line += f"; baseline {base_s[-1]:.1f} s, residual max {max(bres.values()):.2f}"
            print(line, flush=True)
    rss_mb = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024
    print()
    print(f"{'measure':44s} {'hccstrat':>12s} {'plain full-res':>15s} {'issue reference':>18s}")
    b_s = f"{np.mean(base_s):.1f}" if base_s else "skipped"
    b_r = f"{np.mean(base_res):.2f}" if base_res else "skipped"
    bmax = f"{np.max(base_res):.2f}" if base_res else "skipped"
    print(f"{'seconds per study (ours: ingest+QC+reg+norm)':44s} {np.mean(ours_s):12.1f} "
          f"{b_s:>15s} {'38 s / goal <= 10':>18s}")
    print(f"{'tumour-centre residual, mean (mm)':44s} {np.mean(ours_res):12.2f} {b_r:>15s} "
          f"{'0.2 / goal <= 1':>18s}")
    print(f"{'tumour-centre residual, max (mm)':44s} {np.max(ours_res):12.2f} {bmax:>15s}")
    print(f"{'peak RSS of this process (MB)':44s} {rss_mb:12.0f}")
    if base_s:
        print(f"speed-up of the registration pipeline vs plain full-res registration alone: "
              f"{np.mean(base_s) / np.mean(ours_s):.1f}x")
    print(f"(ITK threads: {args.threads}; reference: {base_it} iterations per stage, timed on "
          "registration only" + ("; --quick: figures are a smoke test only)" if args.quick
                                 else ")"))
    return 0


if __name__ == "__main__":
    sys.exit(main())
