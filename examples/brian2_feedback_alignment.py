"""Feedback alignment in continuous time: Brian2 rate columns learn MNIST online.

Every digit is presented to 784-100-10 tanh columns until their rate dynamics
settle (15 membrane time constants); then each feedforward synapse takes one
local update from its presynaptic rate and the apical error that the fixed
random feedback synapses delivered. The script prints how the feedback comes
into alignment while digits are presented and the final test accuracy, and
plots (``--out``) the rates of a few units while one test digit settles
together with the alignment curves.

    python examples/brian2_feedback_alignment.py          # 2,000 digits, under a minute
    python examples/brian2_feedback_alignment.py --full   # 20,000 digits, Cython if a compiler is present
"""

from __future__ import annotations

import argparse

import numpy as np

from cortex_fa import backends, kernels, metrics, rules
from cortex_fa.config import RunConfig
from cortex_fa.data import load_mnist
from cortex_fa.network import Network


def cython_available() -> bool:
    from brian2.codegen.runtime.cython_rt import CythonCodeObject

    return CythonCodeObject.is_available()


def main(argv=None) -> int:
    parser = argparse.ArgumentParser(description="FA in a Brian2 rate network on MNIST; plot settling and alignment.")
    parser.add_argument("--full", action="store_true", help="20,000 digits (Cython target if available)")
    parser.add_argument("--examples", type=int, help="digits to present (default 2,000; 20,000 with --full)")
    parser.add_argument("--out", default="brian2_fa.png", help="figure to write (default brian2_fa.png)")
    parser.add_argument("--seed", type=int, default=0)
    args = parser.parse_args(argv)
    n_train = args.examples or (20_000 if args.full else 2_000)
    target = "cython" if args.full and cython_available() else "numpy"

    # 20 presentations per training-loop batch at lr 0.2: each digit updates with lr 0.01.
    config = RunConfig(rule="fa", hidden=(100,), lr=0.2, batch_size=20, seed=args.seed, backend="brian2",
                       backend_params={"target": target})
    rng = np.random.default_rng(config.seed)
    data = load_mnist(progress=False)
    order = rng.permutation(len(data.train_labels))
    train, probe = order[:n_train], order[-500:]
    probe_x, probe_y = kernels.normalise(data.train_images[probe]), kernels.one_hot(data.train_labels[probe])
    network = Network.from_config(config)
    rule = rules.make(config.rule)
    model = backends.get("brian2").compile(network, rule, config, rng)
    a = model.attrs
    print(f"Brian2 {a['brian2_version']} ({a['codegen_target']}): tau {a['tau_ms']:g} ms, dt {a['dt_ms']:g} ms, "
          f"settling {a['settle_time_ms']:g} ms per digit, {n_train} digits")

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
    seen, correct, every = 0, 0, max(config.batch_size, n_train // 10)
    for start in range(0, n_train, config.batch_size):
        idx = train[start:start + config.batch_size]
        labels = data.train_labels[idx]
        _, c = model.train_batch(kernels.normalise(data.train_images[idx]), kernels.one_hot(labels), labels, config.lr)
        seen, correct = seen + len(idx), correct + c
        if seen % every == 0 or seen == n_train:
            w, d = alignment()
            log["digits"].append(seen)
            log["weight"].append(w)
            log["delta"].append(d)
            print(f"{seen:>7} {correct / seen:9.3f} {w:11.1f} {d:12.1f}")
    _, acc = model.evaluate(data.test_images, data.test_labels)
    print(f"test accuracy {acc:.4f}")

    digit = kernels.normalise(data.test_images[:1])
    trace = model.present(digit, trace=True)["traces"][0]
    model.close()
    plot(args.out, trace, model.attrs["dt_ms"], int(data.test_labels[0]), log)
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
