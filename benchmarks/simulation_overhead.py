"""What the Simulation costs over a bare training loop (issue 23: under 2 % of an FA epoch).

Run::

    python -m benchmarks.simulation_overhead [--quick] [--rounds N] [--out benchmarks/results/simulation_overhead.json]

One epoch of ``fa`` on 784-240x7-10 (tanh, batch 100, the default logging
schedule and metrics), two ways, interleaved A B A B by
:mod:`benchmarks.harness`:

* **Simulation**: ``cortex_fa.Simulation(config).run()``, as ``cortex_fa.train`` runs it
  (callbacks, stop checks, epoch state, the SIGINT handler, the result Dataset);
* **bare loop**: the least any loop must do for the same numbers: the same
  model and batches, ``train_batch`` per batch, the probe and learned-weight
  metrics at the same logged steps and the test pass at the epoch end,
  nothing else (no results Dataset, no callbacks, no stop checks).

Both train the same network from the same seed; the benchmark checks that
they end with identical weights before it reports the median of the
per-round time ratios. ``--quick``: 6,000 images, 2 rounds.
"""

from __future__ import annotations

import argparse
import json
import sys
from pathlib import Path

import numpy as np

from benchmarks import harness

DEFAULT_OUT = Path(__file__).parent / "results" / "simulation_overhead.json"


def bare_epoch(config, data):
    """One epoch by hand: the reference loop. Returns the model."""
    from cortex_fa import kernels, learned
    from cortex_fa.simulation import Simulation

    sim = Simulation(config, data=data, progress=False)  # only to build the identical model, probe and index
    model, probe, rule = sim.model, sim.probe, sim.rule
    order = sim.train_index[sim.streams.data.permutation(len(sim.train_index))]
    logged = sim._logged
    bs = config.batch_size
    initial = [W.copy() for W in model.weights]

    def metrics():  # the same numbers the Simulation records at a logged step
        probe.evaluate(rule, model.weights, model.biases, model.activations, model.state)
        learned.metrics(rule, model.weights, initial, model.state)

    metrics()
    for step, start in enumerate(range(0, len(order), bs), start=1):
        idx = order[start:start + bs]
        labels = data.train_labels[idx]
        model.train_batch(kernels.normalise(data.train_images[idx]), kernels.one_hot(labels), labels, config.lr)
        if logged(step):
            metrics()
    model.evaluate(data.test_images, data.test_labels)
    return model


def main(argv=None) -> int:
    p = argparse.ArgumentParser(prog="python -m benchmarks.simulation_overhead", description=__doc__.split("\n\n")[0])
    p.add_argument("--quick", action="store_true", help="6,000 training images and 2 rounds")
    p.add_argument("--rounds", type=int, default=None, help="A/B rounds (default 7; --quick 2)")
    p.add_argument("--hidden", default="240x7", help="hidden columns (default 240x7)")
    p.add_argument("--out", type=Path, default=DEFAULT_OUT)
    args = p.parse_args(argv)
    from cortex_fa.config import RunConfig, parse_sizes
    from cortex_fa.data import load_mnist
    from cortex_fa.simulation import Simulation

    data = load_mnist(progress=False)
    cfg = RunConfig(rule="fa", hidden=parse_sizes(args.hidden), activation="tanh", batch_size=100, lr=0.1, epochs=1,
                    train_subset=6000 if args.quick else None)
    rounds = args.rounds or (2 if args.quick else 7)
    n = len(Simulation(cfg, data=data, progress=False).train_index)
    finals = {}

    def simulation():
        finals["simulation"] = Simulation(cfg, data=data, progress=False).run().model
        return n

    def bare():
        finals["bare"] = bare_epoch(cfg, data)
        return n

    with harness.threads(1):
        timings = harness.interleave([harness.Candidate("simulation", simulation),
                                      harness.Candidate("bare loop", bare)], rounds=rounds, warmup=1)
    for a, b in zip(finals["simulation"].weights, finals["bare"].weights):
        if not np.array_equal(a, b):
            print("the two loops trained different weights: not comparable", file=sys.stderr)
            return 1
    sim, ref = timings["simulation"], timings["bare loop"]
    result = {
        "config": f"fa 784-{args.hidden}-10 tanh, batch 100, 1 epoch of {n} images, default logging and metrics",
        "environment": harness.environment(),
        "simulation_s": sim.median_s, "bare_loop_s": ref.median_s,
        "overhead": harness.speedup(timings, "bare loop", "simulation") - 1.0,
        "rounds": {"simulation": sim.seconds, "bare loop": ref.seconds},
    }
    args.out.parent.mkdir(parents=True, exist_ok=True)
    args.out.write_text(json.dumps(result, indent=1) + "\n")
    print(f"Simulation over the bare loop: {100 * result['overhead']:+.2f} % (median of {rounds} paired rounds; "
          f"{sim.median_s:.2f} s vs {ref.median_s:.2f} s per epoch)")
    return 0


if __name__ == "__main__":
    sys.exit(main())
