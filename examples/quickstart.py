"""Quick start: one feedback-alignment (FA) run on the real MNIST.

Trains a 784-240-240-10 tanh network whose hidden columns learn through fixed
random feedback matrices B, then prints how the feedback came into alignment
with the forward weights, layer by layer, at the logged steps.

    python examples/quickstart.py          # 20,000 training images, 2 epochs (a few seconds)
    python examples/quickstart.py --full   # all 60,000 images, 5 epochs
"""

from __future__ import annotations

import argparse

import numpy as np

import cortex_fa as cfa
from cortex_fa.data import load_mnist


def fmt(values) -> str:
    return " ".join(f"{v:6.1f}" if np.isfinite(v) else f"{'-':>6}" for v in values)


def main(argv=None) -> int:
    parser = argparse.ArgumentParser(description="One FA run on MNIST; print alignment per layer.")
    parser.add_argument("--full", action="store_true", help="all 60,000 training images, 5 epochs")
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--out", help="also save the results to this .nc file")
    args = parser.parse_args(argv)

    config = cfa.RunConfig(
        rule="fa", hidden=(240, 240), activation="tanh", lr=0.05, batch_size=100,
        epochs=5 if args.full else 2, train_subset=None if args.full else 20_000, seed=args.seed,
    )
    ds = cfa.train(config, load_mnist(progress=False), progress=False)

    layers = ds.layer.values
    print(f"rule {ds.attrs['rule']}  hidden {list(config.hidden)}  "
          f"images {config.train_subset or 60000}  epochs {config.epochs}  seed {config.seed}")
    print("angle to backprop's delta, per layer (degrees; layer 3 is the readout)")
    print(f"{'step':>6} {'epoch':>6} {'loss':>7} " + " ".join(f"{'L' + str(l):>6}" for l in layers))
    for step in ds.step.values:
        row = ds.sel(step=step)
        print(f"{int(step):>6} {float(row.epoch):6.2f} {float(row.train_loss):7.3f} {fmt(row.delta_alignment.values)}")
    last = ds.isel(step=-1)
    print("final weight alignment angle(B_l, W_l^T) per layer:", fmt(last.weight_alignment.values))
    print("final delta alignment per layer:                   ", fmt(last.delta_alignment.values))
    print(f"test accuracy {float(last.test_accuracy):.4f}  training time {float(last.wall_time):.1f} s")
    if args.out:
        cfa.save_results(ds, args.out)
        print(f"wrote {args.out}")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
