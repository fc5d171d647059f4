"""A sweep on a Dask cluster: your own scheduler, or a LocalCluster started here.

Without ``--scheduler`` this starts a ``distributed.LocalCluster`` (worker
processes on this machine) and hands its address to
``cortex_fa.sweep.run_sweep`` exactly as it would a remote cluster's. With
``--scheduler tcp://host:8786`` the runs go to a cluster you started with
``dask scheduler`` and ``dask worker tcp://host:8786`` on other machines
(each worker needs cortex_fa installed and MNIST in its cache, e.g. from
``cortex-fa data fetch``).

    python examples/dask_cluster_sweep.py                      # LocalCluster, 2 workers, 4 tiny runs
    python examples/dask_cluster_sweep.py --scheduler tcp://10.0.0.5:8786
    python examples/dask_cluster_sweep.py --full               # 3 rules x depths 1-3 x 2 seeds, full MNIST
"""

from __future__ import annotations

import argparse
import tempfile
from pathlib import Path

import numpy as np


def main(argv=None) -> int:
    parser = argparse.ArgumentParser(description="Run a small cortex_fa sweep on a Dask cluster.")
    parser.add_argument("--scheduler", help="address of a running Dask scheduler (default: start a LocalCluster)")
    parser.add_argument("--workers", type=int, default=2, help="LocalCluster worker processes (default 2)")
    parser.add_argument("--full", action="store_true", help="a bigger sweep on the full training set")
    parser.add_argument("--out", help="study file (default: in a temporary directory)")
    args = parser.parse_args(argv)

    from distributed import LocalCluster

    from cortex_fa import analysis
    from cortex_fa.sweep import SweepSpec, run_sweep

    if args.full:
        spec = SweepSpec(rules=("bp", "fa", "dfa"), depths=(1, 2, 3), seeds=(0, 1), width=240, base={"epochs": 5})
    else:
        spec = SweepSpec(rules=("fa", "dfa"), depths=(1, 2), seeds=(0,), width=64,
                         base={"epochs": 2, "train_subset": 5000})
    out = Path(args.out) if args.out else Path(tempfile.mkdtemp(prefix="cortex_fa_sweep_")) / "sweep.nc"

    cluster = None
    scheduler = args.scheduler
    if scheduler is None:
        cluster = LocalCluster(n_workers=args.workers, threads_per_worker=1, processes=True, dashboard_address=":0",
                               env={"OMP_NUM_THREADS": "1", "OPENBLAS_NUM_THREADS": "1"})
        scheduler = cluster.scheduler_address
        print(f"started a LocalCluster with {args.workers} workers at {scheduler} (dashboard {cluster.dashboard_link})")
    else:
        print(f"using the Dask scheduler at {scheduler}")
    try:
        study, failures = run_sweep(spec, out, scheduler=scheduler, progress=False)
    finally:
        if cluster is not None:
            cluster.close()

    print(f"{len(spec.configs())} runs, {len(failures)} failed; wrote {out}")
    print(f"study dims: {dict(study.sizes)}")
    final = 1 - analysis.test_errors(study).final_error / 100  # last logged test accuracy of each run
    print(f"{'rule':<5} {'depth':>5} {'seed':>4} {'test acc':>8} {'status':>8}")
    for rule in study.rule.values:
        for depth in study.n_hidden.values:  # the network depth: number of hidden columns
            for seed in study.seed.values:
                acc = float(final.sel(rule=rule, n_hidden=depth, seed=seed))
                status = str(study.status.sel(rule=rule, n_hidden=depth, seed=seed).values)
                print(f"{rule:<5} {int(depth):>5} {int(seed):>4} {acc:8.4f} {status:>8}" if np.isfinite(acc)
                      else f"{rule:<5} {int(depth):>5} {int(seed):>4} {'-':>8} {status:>8}")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
