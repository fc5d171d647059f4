"""Feedback alignment in continuous time: Brian2 rate columns learn MNIST online, learning included.

Every digit is presented to 784-100-10 tanh columns until their rate dynamics
settle; then each feedforward synapse updates itself, in Brian2 code, from its
presynaptic rate and the apical error that the fixed random feedback synapses
delivered. Python only hands Brian2 a block of digits between two logging
points and reads the weights back to print how the feedback comes into
alignment. The fastest target is used (C++ standalone if a compiler is
there, else Cython, else numpy) with ``dt = 3 tau`` (7 exact steps per digit).
At the end the trained weights are copied into a numpy-target model at
``dt = tau / 5`` to plot a test digit settling (``--out``).

    python examples/brian2_feedback_alignment.py          # 2,000 digits, about a minute
    python examples/brian2_feedback_alignment.py --full   # the full epoch of 60,000 digits
"""

from __future__ import annotations

import argparse
import shutil
import time

import numpy as np

from cortex_fa import backends, kernels, metrics, rules
from cortex_fa.config import RunConfig
from cortex_fa.data import load_mnist
from cortex_fa.network import Network


def fastest_target() -> str:
    if shutil.which("g++"):
        return "cpp_standalone"
    from brian2.codegen.runtime.cython_rt import CythonCodeObject

    return "cython" if CythonCodeObject.is_available() else "numpy"


def compile_model(config, rng):
    return backends.get("brian2").compile(Network.from_config(config), rules.make(config.rule), config, rng)


def main(argv=None) -> int:
    parser = argparse.ArgumentParser(description="FA in a Brian2 rate network on MNIST; alignment over an epoch.")
    parser.add_argument("--full", action="store_true", help="the full epoch of 60,000 digits")
    parser.add_argument("--examples", type=int, help="digits to present (default 2,000; 60,000 with --full)")
    parser.add_argument("--target", default=fastest_target(), help="Brian2 target (default: the fastest available)")
    parser.add_argument("--out", default="brian2_fa.png", help="figure to write (default brian2_fa.png)")
    parser.add_argument("--seed", type=int, default=0)
    args = parser.parse_args(argv)
    data = load_mnist(progress=False)
    n_train = min(args.examples or (60_000 if args.full else 2_000), len(data.train_labels))

    config = RunConfig(rule="fa", hidden=(100,), lr=0.01, batch_size=1, seed=args.seed, backend="brian2",
                       backend_params={"target": args.target, "dt_ms": 30.0, "block": max(1, n_train // 10)})
    rng = np.random.default_rng(config.seed)
    order = rng.permutation(len(data.train_labels))
    train, probe = order[:n_train], order[-500:]
    probe_x, probe_y = kernels.normalise(data.train_images[probe]), kernels.one_hot(data.train_labels[probe])
    t0 = time.perf_counter()
    model = compile_model(config, rng)
    rule = model.rule
    a = model.attrs
    print(f"Brian2 {a['brian2_version']} ({a['codegen_target']}): tau {a['tau_ms']:g} ms, dt {a['dt_ms']:g} ms, "
          f"{a['settle_steps']} steps ({a['settle_time_ms']:g} ms) per digit, {n_train} digits")

    def alignment():
        m = metrics.probe_metrics(rule, model.weights, model.biases, model.activations, model.state,
                                  probe_x, probe_y, config.loss)
        return m["weight_alignment"][1], m["delta_alignment"][0]

    print(f"{'digits':>7} {'train acc':>9} {'B2 vs W2^T':>11} {'delta col 1':>12}")
    log = {"digits": [0], "weight": [], "delta": []}
    w, d = alignment()
    log["weight"].append(w)
    log["delta"].append(d)
    print(f"{0:>7} {'-':>9} {w:11.1f} {d:12.1f}")
    bounds = np.linspace(0, n_train, 11).astype(int)
    seen, correct = 0, 0
    for start, stop in zip(bounds[:-1], bounds[1:]):
        idx = train[start:stop]
        labels = data.train_labels[idx]
        # one block: a single Brian2 run (or standalone execution), learning inside it
        _, ok = model.train_block(kernels.normalise(data.train_images[idx]), kernels.one_hot(labels), labels,
                                  np.full(len(idx), config.lr))
        seen, correct = stop, correct + int(ok.sum())
        w, d = alignment()
        log["digits"].append(seen)
        log["weight"].append(w)
        log["delta"].append(d)
        print(f"{seen:>7} {correct / seen:9.3f} {w:11.1f} {d:12.1f}")
    _, acc = model.evaluate(data.test_images, data.test_labels)
    print(f"test accuracy {acc:.4f}")
    print(f"{time.perf_counter() - t0:.1f} s for {n_train} digits, build included")
    model.close()

    # The trained weights in a numpy-target model with a fine time step, to watch one digit settle.
    viewer = compile_model(config.replace(backend_params={"target": "numpy", "dynamics": "resolved"}),
                           np.random.default_rng(0))
    for W_view, W in zip(viewer.weights, model.weights):
        W_view[...] = W
    for b_view, b in zip(viewer.biases, model.biases):
        b_view[...] = b
    viewer.state = model.state
    viewer.sync_synapses()
    trace = viewer.present(kernels.normalise(data.test_images[:1]), trace=True)["traces"][0]
    plot(args.out, trace, viewer.params["dt_ms"], int(data.test_labels[0]), log)
    print(f"wrote {args.out}")
    return 0


def plot(path, trace, dt_ms, label, log):
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    hidden_u, readout_u = trace
    t = np.arange(len(hidden_u)) * dt_ms
    p = np.exp(readout_u - readout_u.max(axis=1, keepdims=True))
    p /= p.sum(axis=1, keepdims=True)
    fig, axes = plt.subplots(1, 3, figsize=(14, 3.8), layout="constrained")
    axes[0].plot(t, np.tanh(hidden_u[:, :8]))
    axes[0].set(xlabel="time (ms)", ylabel="rate r = tanh(u)", title="column 1: 8 units settling")
    for k in range(p.shape[1]):
        axes[1].plot(t, p[:, k], lw=2.5 if k == label else 1, color="C3" if k == label else "0.6")
    axes[1].set(xlabel="time (ms)", ylabel="softmax(u)", title=f"readout while digit {label} settles")
    axes[2].plot(log["digits"], log["weight"], "o-", label="B2 vs W2^T (weights)")
    axes[2].plot(log["digits"], log["delta"], "s-", label="column 1 delta vs backprop")
    axes[2].set(xlabel="digits presented", ylabel="angle (degrees)", ylim=(0, 95), title="feedback alignment")
    axes[2].legend()
    fig.savefig(path, dpi=110)


if __name__ == "__main__":
    raise SystemExit(main())
