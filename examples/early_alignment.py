"""How fast do W and B come into alignment in the first epoch?

Feedback alignment with small, centred initial forward weights (``init="fixed"``,
uniform in [-s, s] with a small s) versus the usual Xavier initialisation.
Metrics are logged at log-spaced steps (1, 2, 4, 8, ...) inside the first
epoch; the tables show the angle between the feedback B_l and W_l^T and the
angle between FA's and backprop's deltas, per layer.

    python examples/early_alignment.py          # 10,000 images, batch 50, 1 epoch
    python examples/early_alignment.py --full   # 60,000 images, batch 50, 1 epoch
"""

from __future__ import annotations

import argparse

import numpy as np

import cortex_fa as cfa
from cortex_fa.data import load_mnist


def cells(values) -> str:
    return " ".join(f"{v:6.1f}" if np.isfinite(v) else f"{'-':>6}" for v in values)


def table(ds, title: str) -> None:
    L = ds.sizes["layer"]
    print(title)
    print("  w<l>: angle(B_l, W_l^T) (none for layer 1);  d<l>: angle between FA's and backprop's delta_l")
    print(f"{'step':>6} {'epoch':>6}  " + " ".join(f"{'w' + str(l):>6}" for l in range(2, L + 1))
          + "  " + " ".join(f"{'d' + str(l):>6}" for l in range(1, L)))
    for step in ds.step.values:
        row = ds.sel(step=step)
        print(f"{int(step):>6} {float(row.epoch):6.3f}  {cells(row.weight_alignment.values[1:])}  "
              f"{cells(row.delta_alignment.values[:-1])}")
    print(f"test accuracy after the epoch: {float(ds.test_accuracy.isel(step=-1)):.4f}")


def main(argv=None) -> int:
    parser = argparse.ArgumentParser(description="Alignment in the first epoch: small centred init vs Xavier.")
    parser.add_argument("--full", action="store_true", help="all 60,000 training images")
    parser.add_argument("--init-scale", type=float, default=0.005,
                        help="bound s of the small uniform init U[-s, s] (default 0.005)")
    parser.add_argument("--seed", type=int, default=0)
    args = parser.parse_args(argv)

    data = load_mnist(progress=False)
    base = cfa.RunConfig(rule="fa", hidden=(240, 240), activation="tanh", lr=0.05, batch_size=50, epochs=1,
                         train_subset=None if args.full else 10_000, log_early=True, seed=args.seed)
    small = cfa.train(base.replace(init="fixed", init_scale=args.init_scale), data, progress=False)
    xavier = cfa.train(base, data, progress=False)
    table(small, f"FA, small centred init W ~ U[-{args.init_scale}, {args.init_scale}]")
    table(xavier, "FA, Xavier init")
    for name, ds in (("small", small), ("xavier", xavier)):
        a = ds.delta_alignment.sel(layer=1).values
        below = ds.step.values[np.nonzero(a < 60)[0]]
        print(f"{name}: first step with delta alignment in column 1 below 60 deg: "
              f"{int(below[0]) if below.size else 'not reached'}")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
