"""Direct feedback alignment (DFA) vs layer-wise feedback alignment (FA).

Trains backprop (reference), FA and DFA on the same deep tanh network and
prints test accuracy after every epoch, training time, and convergence: the
epochs and seconds each rule needs to reach a test accuracy, computed with
``cortex_fa.analysis.convergence`` on the combined study.

    python examples/dfa_vs_fa.py          # 3 x 240 units, 10,000 images, 3 epochs
    python examples/dfa_vs_fa.py --full   # 3 x 240 units, 60,000 images, 10 epochs
"""

from __future__ import annotations

import argparse

import numpy as np

import cortex_fa as cfa
from cortex_fa import analysis
from cortex_fa.data import load_mnist
from cortex_fa.study import combine_runs

RULES = ("bp", "fa", "dfa")


def main(argv=None) -> int:
    parser = argparse.ArgumentParser(description="DFA vs FA: accuracy, training time, convergence.")
    parser.add_argument("--full", action="store_true", help="all 60,000 training images, 10 epochs")
    parser.add_argument("--depth", type=int, default=3)
    parser.add_argument("--seed", type=int, default=0)
    args = parser.parse_args(argv)

    data = load_mnist(progress=False)
    base = cfa.RunConfig(hidden=(240,) * args.depth, activation="tanh", lr=0.05,
                         epochs=10 if args.full else 3, train_subset=None if args.full else 10_000, seed=args.seed)
    runs = [cfa.train(base.replace(rule=rule), data, progress=False) for rule in RULES]
    study = combine_runs(runs).squeeze(["n_hidden", "seed"])

    steps = study.step.values
    ends = steps[np.isfinite(study.test_accuracy.sel(rule="bp").values) & (steps > 0)]  # the epoch ends
    print(f"depth {args.depth}  width 240  images {base.train_subset or 60000}  epochs {base.epochs}")
    print("test accuracy after each epoch")
    print(f"{'rule':<5} " + " ".join(f"{'ep ' + str(i + 1):>7}" for i in range(len(ends))))
    for rule in RULES:
        acc = study.test_accuracy.sel(rule=rule, step=ends).values
        print(f"{rule:<5} " + " ".join(f"{a:7.4f}" for a in acc))

    conv = analysis.convergence(study, thresholds=(0.85, 0.90, 0.95))
    print("convergence: epochs (seconds of training) to reach a test accuracy; '-' = not reached")
    print(f"{'rule':<5} {'s/epoch':>8} " + " ".join(f"{'acc ' + format(t, '.2f'):>14}" for t in conv.threshold.values))
    for rule in RULES:
        c = conv.sel(rule=rule)
        cells = []
        for t in conv.threshold.values:
            ep, sec = float(c.epochs_to.sel(threshold=t)), float(c.seconds_to.sel(threshold=t))
            cells.append(f"{ep:5.0f} ({sec:5.1f}s)" if np.isfinite(ep) else f"{'-':>14}")
        print(f"{rule:<5} {float(c.seconds_per_epoch):8.2f} " + " ".join(f"{x:>14}" for x in cells))

    last = study.isel(step=-1)
    print("final angle to backprop's delta per hidden column (deg):")
    for rule in RULES:
        angles = last.delta_alignment.sel(rule=rule).values[: args.depth]
        print(f"{rule:<5} " + " ".join(f"{a:6.1f}" for a in angles))
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
