"""Seconds per presented example of the Brian2 backend (a benchmark, not a test).

Trains a 784-100-10 network with FA online on real MNIST digits under each
Brian2 code-generation target and reports the time per presentation (settling
plus the update), the full-MNIST epoch time that implies, and the numpy
backend's epoch time for scale. The first batch of each target is a warm-up
(it starts the simulation thread and, for Cython, may compile the code:
~30-60 s the first time an equation set is seen; cached afterwards).

Run from the repository root::

    python benchmarks/brian2_speed.py                 # numpy and cython targets
    python benchmarks/brian2_speed.py --examples 1000 --targets cython
"""

from __future__ import annotations

import argparse
import platform
import time

import numpy as np

from cortex_fa import backends, kernels, rules
from cortex_fa.config import RunConfig
from cortex_fa.data import load_mnist
from cortex_fa.network import Network

EPOCH = 60_000


def compile_model(backend, hidden, backend_params, batch_size, seed=0):
    config = RunConfig(rule="fa", hidden=hidden, backend=backend, batch_size=batch_size,
                       backend_params=backend_params if backend == "brian2" else {})
    network = Network.from_config(config)
    return backends.get(backend).compile(network, rules.make("fa"), config, np.random.default_rng(seed))


def time_training(model, images, labels, batch_size, lr=0.05):
    """Train on batches after one warm-up batch; return wall and CPU seconds per example.

    CPU time counts every thread of this process (the simulation runs on a
    worker thread); it is the fairer figure on a machine shared with other jobs.
    """
    def batch(start):
        x = kernels.normalise(images[start:start + batch_size])
        lab = labels[start:start + batch_size]
        model.train_batch(x, kernels.one_hot(lab), lab, lr)

    batch(0)  # warm-up
    t0, c0 = time.perf_counter(), time.process_time()
    for start in range(batch_size, len(labels), batch_size):
        batch(start)
    n = len(labels) - batch_size
    return (time.perf_counter() - t0) / n, (time.process_time() - c0) / n


def main(argv=None):
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--examples", type=int, default=500, help="presentations to time per target (default 500)")
    parser.add_argument("--batch-size", type=int, default=50, help="presentations per train_batch call (default 50)")
    parser.add_argument("--hidden", type=int, default=100, help="hidden column size (default 100)")
    parser.add_argument("--targets", default="numpy,cython", help="comma-separated Brian2 targets")
    parser.add_argument("--tau-ms", type=float, default=10.0)
    parser.add_argument("--dt-ms", type=float, default=None, help="integration step (default tau / 5)")
    parser.add_argument("--settle-time-ms", type=float, default=None, help="default: automatic (15 tau here)")
    args = parser.parse_args(argv)

    data = load_mnist(progress=False)
    n = args.examples + args.batch_size
    images, labels = data.train_images[:n], data.train_labels[:n]
    params = {"tau_ms": args.tau_ms}
    if args.dt_ms:
        params["dt_ms"] = args.dt_ms
    if args.settle_time_ms:
        params["settle_time_ms"] = args.settle_time_ms

    print(f"784-{args.hidden}-10, rule fa, {args.examples} timed presentations, "
          f"{platform.processor() or platform.machine()}, python {platform.python_version()}")
    ref = compile_model("numpy", (args.hidden,), {}, 100)
    wall, cpu = time_training(ref, data.train_images[:20_100], data.train_labels[:20_100], 100)
    print(f"{'backend':<30} {'wall ms/ex':>10} {'cpu ms/ex':>10} {'epoch (wall)':>13}")
    print(f"{'numpy (batch 100)':<30} {wall * 1e3:10.3f} {cpu * 1e3:10.3f} {wall * EPOCH:11.1f} s")
    for target in args.targets.split(","):
        model = compile_model("brian2", (args.hidden,), {**params, "target": target}, args.batch_size)
        try:
            wall, cpu = time_training(model, images, labels, args.batch_size)
        finally:
            model.close()
        a = model.attrs
        label = f"brian2 {target}, {a['settle_time_ms'] / a['dt_ms']:.0f} steps of {a['dt_ms']:g} ms"
        print(f"{label:<30} {wall * 1e3:10.3f} {cpu * 1e3:10.3f} {wall * EPOCH / 60:9.1f} min")


if __name__ == "__main__":
    main()
