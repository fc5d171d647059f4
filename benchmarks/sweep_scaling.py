"""Sweep scaling: the same 8-run sweep on a LocalCluster with 1 and with 2 workers.

Run::

    python -m benchmarks.sweep_scaling [--quick] [--out benchmarks/results/sweep_scaling.json]

The sweep is ``fa,bp x depths 1,2 x seeds 0,1`` at one width on a subset of
MNIST. Each measurement is a whole :func:`cortex_fa.sweep.run_sweep` into a
fresh run directory (cluster start-up, data loading in the workers,
training, combining the study), interleaved ``1 2 1 2 ...``. The BLAS
thread count inside a worker is read with threadpoolctl to show that the
workers do not oversubscribe the cores (one BLAS thread per worker).
"""

from __future__ import annotations

import argparse
import json
import os
import statistics
import sys
import tempfile
import time
from pathlib import Path

DEFAULT_OUT = Path(__file__).parent / "results" / "sweep_scaling.json"


def _worker_threads():
    try:
        from threadpoolctl import threadpool_info
    except ImportError:
        return "threadpoolctl not installed"
    return [{"prefix": i.get("prefix"), "num_threads": i.get("num_threads")} for i in threadpool_info()]


def worker_blas(workers: int):
    """BLAS thread counts inside the workers of a cluster built the way sweeps build it."""
    from cortex_fa import sweep

    client = sweep.connect(workers=workers)
    try:
        # import numpy/scipy in the worker first so that their BLAS libraries are loaded
        client.run(lambda: __import__("cortex_fa.kernels"))
        return client.run(_worker_threads)
    finally:
        sweep.close(client)


def main(argv=None) -> int:
    p = argparse.ArgumentParser(prog="python -m benchmarks.sweep_scaling", description=__doc__.split("\n\n")[0])
    p.add_argument("--quick", action="store_true", help="smaller runs and one round")
    p.add_argument("--rounds", type=int, default=None)
    p.add_argument("--width", type=int, default=None)
    p.add_argument("--train-subset", type=int, default=None)
    p.add_argument("--out", type=Path, default=DEFAULT_OUT)
    args = p.parse_args(argv)
    try:
        from cortex_fa import sweep
    except ImportError as exc:  # the module is optional in older trees
        print(f"cortex_fa.sweep is not available ({exc})", file=sys.stderr)
        return 1
    rounds = args.rounds or (1 if args.quick else 2)
    width = args.width or (128 if args.quick else 500)
    subset = args.train_subset or (3000 if args.quick else 20000)
    base = {"epochs": 1, "batch_size": 64, "train_subset": subset, "activation": "relu", "lr": 0.01,
            "momentum": 0.9}
    spec = sweep.SweepSpec(rules=("fa", "bp"), depths=(1, 2), seeds=(0, 1), width=width, base=base)
    n_runs = len(spec.configs())
    times = {1: [], 2: []}
    with tempfile.TemporaryDirectory() as tmp:
        for r in range(rounds):
            for workers in ((1, 2) if r % 2 == 0 else (2, 1)):
                out = Path(tmp) / f"study-{workers}-{r}.nc"
                t0 = time.perf_counter()
                _, failures = sweep.run_sweep(spec, out, workers=workers, progress=False)
                dt = time.perf_counter() - t0
                if failures:
                    raise SystemExit(f"sweep runs failed: {failures[0][1]}")
                times[workers].append(dt)
                print(f"round {r + 1}: {workers} worker(s) {dt:.1f} s", file=sys.stderr, flush=True)
    speedups = [a / b for a, b in zip(times[1], times[2])]
    result = {"sweep": spec.to_dict(), "runs": n_runs, "seconds_1_worker": times[1], "seconds_2_workers": times[2],
              "median_1_worker_s": statistics.median(times[1]), "median_2_workers_s": statistics.median(times[2]),
              "speedup": statistics.median(speedups), "goal": 1.7,
              "worker_blas_threads": worker_blas(2), "cpu_count": os.cpu_count(),
              "loadavg_1min": os.getloadavg()[0]}
    print(f"speedup with 2 workers: x{result['speedup']:.2f}", file=sys.stderr)
    args.out.parent.mkdir(parents=True, exist_ok=True)
    tmp_out = args.out.with_suffix(".tmp")
    tmp_out.write_text(json.dumps(result, indent=1, default=str) + "\n")
    os.replace(tmp_out, args.out)
    print(f"wrote {args.out}", file=sys.stderr)
    return 0


if __name__ == "__main__":
    sys.exit(main())
