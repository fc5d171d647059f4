"""Sign-symmetric feedback: does sharing only the sign of W rescue depth?

Trains the same deep, narrow tanh network with backprop (bp), feedback
alignment (fa) and the three sign-concordant rules of Liao, Leibo & Poggio
(2016): unit magnitude (usf), fixed random magnitude (frsf) and magnitude
redrawn every batch (brsf). Prints test accuracy and the alignment of the
feedback with W^T at the start and at the end.

    python examples/sign_symmetry.py          # 5 hidden columns of 100, 10,000 images, 2 epochs
    python examples/sign_symmetry.py --full   # 5 hidden columns of 240, 60,000 images, 5 epochs
"""

from __future__ import annotations

import argparse

import numpy as np

import cortex_fa as cfa
from cortex_fa.data import load_mnist

RULES = ("bp", "fa", "usf", "frsf", "brsf")


def mean_angle(values) -> float:
    values = np.asarray(values, dtype=float)
    return float(np.nanmean(values)) if np.isfinite(values).any() else float("nan")


def main(argv=None) -> int:
    parser = argparse.ArgumentParser(description="bp vs fa vs sign-symmetric feedback in a deep network.")
    parser.add_argument("--full", action="store_true", help="width 240, all 60,000 training images, 5 epochs")
    parser.add_argument("--depth", type=int, default=5, help="number of hidden columns (default 5)")
    parser.add_argument("--seed", type=int, default=0)
    args = parser.parse_args(argv)

    data = load_mnist(progress=False)
    base = cfa.RunConfig(hidden=(240 if args.full else 100,) * args.depth, activation="tanh", lr=0.05,
                         epochs=5 if args.full else 2, train_subset=None if args.full else 10_000, seed=args.seed)
    print(f"depth {args.depth}  width {base.hidden[0]}  images {base.train_subset or 60000}  epochs {base.epochs}")
    print("weight alignment: mean over layers 2..L of angle(B_l, W_l^T); delta L1: angle to backprop's delta in column 1")
    print(f"{'rule':<5} {'test acc':>8} {'weight@0':>9} {'weight@end':>10} {'delta L1@end':>12}")
    for rule in RULES:
        ds = cfa.train(base.replace(rule=rule), data, progress=False)
        first, last = ds.isel(step=0), ds.isel(step=-1)
        print(f"{rule:<5} {float(last.test_accuracy):8.4f} {mean_angle(first.weight_alignment):9.1f} "
              f"{mean_angle(last.weight_alignment):10.1f} {float(last.delta_alignment.sel(layer=1)):12.1f}")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
