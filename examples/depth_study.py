"""A depth study: at which depth does feedback alignment fall behind backprop?

Runs rules x depths x seeds as a sweep on Dask (``cortex_fa.sweep``; a local
cluster with one worker per core unless ``--scheduler`` is given), combines
the runs into one study Dataset, and prints the final test error per rule and
depth (mean over seeds with a 95 % t-interval) and each rule's breaking depth
(``cortex_fa.analysis.breaking_depth``: the first depth at which it is worse
than backprop by more than 0.5 percentage points, significantly over seeds).

    python examples/depth_study.py            # tiny: width 64, 8,000 images, 2 epochs, 2 seeds
    python examples/depth_study.py --full     # width 240, depths 1-7, 60,000 images, 10 epochs, 3 seeds
    python examples/depth_study.py --serial   # no Dask: train the runs one after another
"""

from __future__ import annotations

import argparse
from pathlib import Path

import numpy as np

import cortex_fa as cfa
from cortex_fa import analysis

QUICK = dict(rules=("bp", "fa", "dfa"), depths=(1, 2, 4), seeds=(0, 1), width=64,
             base={"epochs": 2, "train_subset": 8000, "lr": 0.05})
FULL = dict(rules=("bp", "fa", "usf", "frsf", "dfa"), depths=(1, 2, 3, 4, 5, 6, 7), seeds=(0, 1, 2), width=240,
            base={"epochs": 10, "lr": 0.05})


def run_serial(spec):
    """The same runs without Dask: ``cortex_fa.train`` in a loop, then ``combine_runs``."""
    from cortex_fa.data import load_mnist
    from cortex_fa.study import combine_runs

    data = load_mnist(progress=False)
    return combine_runs([cfa.train(config, data, progress=False) for config in spec.configs()])


def main(argv=None) -> int:
    parser = argparse.ArgumentParser(description="Depth study: test error and breaking depth per rule.")
    parser.add_argument("--full", action="store_true", help="the full-size study (hours on a laptop)")
    parser.add_argument("--serial", action="store_true", help="train in this process, without Dask")
    parser.add_argument("--scheduler", help="address of a running Dask scheduler, e.g. tcp://host:8786")
    parser.add_argument("--workers", type=int, help="local Dask worker processes (default: one per core)")
    parser.add_argument("--out", help="study file (default depth_study_quick.nc or depth_study_full.nc)")
    args = parser.parse_args(argv)

    from cortex_fa.sweep import SweepSpec, run_sweep

    size = FULL if args.full else QUICK
    spec = SweepSpec(**size)
    out = Path(args.out or f"depth_study_{'full' if args.full else 'quick'}.nc")
    print(f"{len(spec.configs())} runs: rules {','.join(spec.rules)}  depths {','.join(map(str, spec.depths))}  "
          f"seeds {','.join(map(str, spec.seeds))}  width {spec.width}  {spec.base}")
    if args.serial:
        study = run_serial(spec)
        cfa.save_results(study, out)
    else:
        study, failures = run_sweep(spec, out, workers=args.workers, scheduler=args.scheduler, progress=False)
        for config, error in failures:
            print(f"failed: {config.rule} depth {config.depth} seed {config.seed}: {error}")
    print(f"wrote {out}  dims {dict(study.sizes)}")

    summary = analysis.error_summary(study)
    print("final test error (%), mean over seeds [95% interval]")
    print(f"{'rule':<5} " + " ".join(f"{'depth ' + str(d):>20}" for d in spec.depths))
    for rule in spec.rules:
        row = summary.sel(rule=rule)
        cells = []
        for d in spec.depths:
            m, lo, hi = (float(row[k].sel(n_hidden=d)) for k in ("final_mean", "final_lo", "final_hi"))
            cells.append(f"{m:5.2f} [{lo:5.2f},{hi:5.2f}]" if np.isfinite(lo) else f"{m:5.2f}")
        print(f"{rule:<5} " + " ".join(f"{c:>20}" for c in cells))
    breaking = analysis.breaking_depth(study, margin=0.5, reference="bp")
    for rule in spec.rules:
        if rule != "bp":
            d = float(breaking.sel(rule=rule))
            print(f"breaking depth of {rule}: {int(d) if np.isfinite(d) else 'none up to depth ' + str(max(spec.depths))}")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
