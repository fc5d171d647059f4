"""How big must the probe batch be? Precision and cost of the alignment metrics.

Run::

    python -m benchmarks.probe_size [--quick] [--out benchmarks/results/probe_size.json]

Trains one network (``fa``, 784-240-240-240-10, tanh, batch 64, one epoch of
MNIST; ``--quick``: 6,000 images), then evaluates the probe metrics on
``--draws`` independent probe batches of each size. A probe's
``delta_alignment`` and ``update_alignment`` are estimates of the angle the
rule makes with backprop over the whole training set; their spread across
draws (standard deviation, degrees) is the precision a probe of that size
buys. ``weight_alignment`` does not depend on the probe. The cost is the
median time of one :meth:`cortex_fa.metrics.Probe.evaluate` call, and the
share of the epoch's training time that twelve of them (the default
schedule of a 938-batch epoch) add.
"""

from __future__ import annotations

import argparse
import json
import os
import statistics
import sys
import time
from pathlib import Path

import numpy as np

DEFAULT_OUT = Path(__file__).parent / "results" / "probe_size.json"
SIZES = (64, 128, 256, 500, 1000)


def main(argv=None) -> int:
    p = argparse.ArgumentParser(prog="python -m benchmarks.probe_size", description=__doc__.split("\n\n")[0])
    p.add_argument("--quick", action="store_true", help="train on 6,000 images and use 5 draws")
    p.add_argument("--draws", type=int, default=None)
    p.add_argument("--out", type=Path, default=DEFAULT_OUT)
    args = p.parse_args(argv)
    from cortex_fa import backends, kernels, metrics, rules
    from cortex_fa.config import RunConfig
    from cortex_fa.data import load_mnist
    from cortex_fa.network import Network

    data = load_mnist(progress=False)
    draws = args.draws or (5 if args.quick else 20)
    n_train = 6000 if args.quick else len(data.train_labels)
    cfg = RunConfig(rule="fa", hidden=(240, 240, 240), activation="tanh", batch_size=64, lr=0.05)
    rng = np.random.default_rng(0)
    rule = rules.make(cfg.rule, cfg.rule_params)
    model = backends.get("numpy").compile(Network.from_config(cfg), rule, cfg, rng)
    order = rng.permutation(n_train)
    t0 = time.perf_counter()
    for start in range(0, n_train, cfg.batch_size):
        idx = order[start:start + cfg.batch_size]
        model.train_batch(kernels.normalise(data.train_images[idx]), kernels.one_hot(data.train_labels[idx]),
                          data.train_labels[idx], cfg.lr)
    epoch_s = time.perf_counter() - t0
    print(f"trained {cfg.rule} 784-{'-'.join(map(str, cfg.hidden))}-10 on {n_train} images in {epoch_s:.1f} s",
          file=sys.stderr)
    state = (rule, model.weights, model.biases, model.activations, model.state)
    rows = []
    print(f"{'probe':>6} {'ms/eval':>8} {'12 evals':>9}  SD over {draws} draws (deg): delta / update, layers 1..4")
    for size in SIZES:
        values = {"delta_alignment": [], "update_alignment": []}
        times = []
        for _ in range(draws):
            idx = rng.choice(len(data.train_labels), size=size, replace=False)
            probe = metrics.Probe(kernels.normalise(data.train_images[idx]), kernels.one_hot(data.train_labels[idx]),
                                  cfg.loss)
            m = probe.evaluate(*state)  # the first call allocates buffers and factors the images
            for _ in range(3):
                t1 = time.perf_counter()
                probe.evaluate(*state)
                times.append(time.perf_counter() - t1)
            for name in values:
                values[name].append(m[name])
        sd = {name: np.nanstd(np.array(v), axis=0, ddof=1).tolist() for name, v in values.items()}
        mean = {name: np.nanmean(np.array(v), axis=0).tolist() for name, v in values.items()}
        ms = 1e3 * statistics.median(times)
        share = 12 * ms / 1e3 / (epoch_s * len(data.train_labels) / n_train)
        rows.append({"probe_size": size, "ms_per_evaluation": ms, "share_of_epoch_12_evals": share,
                     "sd_deg": sd, "mean_deg": mean})
        fmt = " ".join(f"{d:.2f}/{u:.2f}" for d, u in zip(sd["delta_alignment"], sd["update_alignment"]))
        print(f"{size:>6} {ms:>8.1f} {100 * share:>8.1f}%  {fmt}")
    result = {"network": "fa 784-240-240-240-10 tanh, one epoch", "train_images": n_train, "draws": draws,
              "epoch_seconds": epoch_s, "rows": rows, "loadavg_1min": os.getloadavg()[0]}
    args.out.parent.mkdir(parents=True, exist_ok=True)
    tmp = args.out.with_suffix(".tmp")
    tmp.write_text(json.dumps(result, indent=1) + "\n")
    os.replace(tmp, args.out)
    print(f"wrote {args.out}", file=sys.stderr)
    return 0


if __name__ == "__main__":
    sys.exit(main())
