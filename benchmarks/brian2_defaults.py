"""The Brian2 backend at its defaults against the numpy backend (a benchmark, not a test).

What a new user gets from ``--backend brian2`` with no backend parameters,
784-100-10 FA, batch size 1, training time read from the results file
(``wall_time`` at the last step: metrics and test passes excluded), against
the numpy backend at batch size 1 on the same digits:

- the first-run cost: generating and compiling the C++ standalone program
  into an empty cache (a temporary one: the user's cache is not touched);
- a 2000-digit run, with the program cached (every run after the first);
- a full 60,000-digit epoch;

each timed in interleaved rounds (numpy, brian2, numpy, brian2, ... by
:mod:`benchmarks.harness`), medians over rounds, ratio = median of the
per-round ratios. Test accuracies after the runs are compared: the two
backends make the same updates (float64 synapses, float32 numpy), and where
the accuracies differ the numpy backend is run again in float64. At the
default rate (0.05 per digit) online SGD on MNIST is chaotic: runs that
differ only in rounding separate after ~100 digits, so the same check is
also made at ``--stable-lr`` (0.01), where rounding stays rounding.

    python -m benchmarks.brian2_defaults                 # ~10 min on 2 cores
    python -m benchmarks.brian2_defaults --quick --out /tmp/b.json
"""

from __future__ import annotations

import argparse
import json
import os
import statistics
import tempfile
import time
from pathlib import Path

import numpy as np

from benchmarks import harness

OUT = Path(__file__).resolve().parent / "results" / "brian2_defaults.json"


def config(backend: str, n: int, hidden: int, seed: int = 0, **overrides):
    from cortex_fa.config import RunConfig

    return RunConfig(rule="fa", hidden=(hidden,), backend=backend, batch_size=1, train_subset=n, epochs=1, seed=seed,
                     **overrides)


def to_float64(model) -> None:
    """The numpy model in float64 (weights, state, optimiser), as the Brian2 synapses hold them."""
    from cortex_fa import optim

    model.weights = [np.asfortranarray(W, np.float64) for W in model.weights]
    model.biases = [None if b is None else b.astype(np.float64) for b in model.biases]
    for key, value in model.state.items():
        if isinstance(value, dict):
            model.state[key] = {k: v.astype(np.float64) if isinstance(v, np.ndarray) else v for k, v in value.items()}
    model._params = model.weights + [b for b in model.biases if b is not None]
    model.optimizer = optim.SGD(model._params, model.config.momentum, dtype=np.float64)
    model._workspaces.clear()


def train(cfg, data, *, float64: bool = False) -> dict:
    """One run; its training time (results file), test accuracy and wall time including set-up."""
    from cortex_fa.simulation import Simulation

    t0 = time.perf_counter()
    sim = Simulation(config=cfg, data=data, progress=False)
    if float64:
        to_float64(sim.model)
    ds = sim.run().results
    out = {"train_s": float(ds.wall_time[-1]), "test_accuracy": float(ds.test_accuracy[-1]),
           "total_s": time.perf_counter() - t0, "attrs": {k: ds.attrs.get(k) for k in (
               "codegen_target", "dynamics", "dt_ms", "settle_steps", "block", "brian2_version")}}
    close = getattr(sim.model, "close", None)
    if close is not None:
        close()
    return out


def compare(data, n: int, hidden: int, rounds: int) -> dict:
    """numpy and brian2 on ``n`` digits, interleaved; medians and the median per-round ratio."""
    runs = {"numpy": [], "brian2": []}

    def candidate(backend):
        def run():
            runs[backend].append(train(config(backend, n, hidden), data))
            return n
        return harness.Candidate(backend, run)

    harness.interleave([candidate("numpy"), candidate("brian2")], rounds=rounds, warmup=0)
    ratios = [b["train_s"] / a["train_s"] for a, b in zip(runs["numpy"], runs["brian2"])]
    row = {"digits": n, "rounds": rounds, "ratio_train_time": statistics.median(ratios), "ratios": ratios}
    for backend, rs in runs.items():
        row[backend] = {"train_s": statistics.median(r["train_s"] for r in rs),
                        "total_s": statistics.median(r["total_s"] for r in rs),
                        "ms_per_digit": statistics.median(r["train_s"] for r in rs) / n * 1e3,
                        "test_accuracy": [r["test_accuracy"] for r in rs], "runs_train_s": [r["train_s"] for r in rs]}
    row["brian2"]["attrs"] = runs["brian2"][0]["attrs"]
    acc_np, acc_b2 = row["numpy"]["test_accuracy"][0], row["brian2"]["test_accuracy"][0]
    row["accuracy_equal"] = acc_np == acc_b2
    if not row["accuracy_equal"]:
        row["numpy_float64_test_accuracy"] = train(config("numpy", n, hidden), data, float64=True)["test_accuracy"]
    return row


def stable_accuracy(data, n: int, hidden: int, lr: float) -> dict:
    """Test accuracies at a per-digit rate where online SGD is not chaotic: numpy float32 and float64, brian2."""
    return {"lr": lr, "digits": n,
            "numpy": train(config("numpy", n, hidden, lr=lr), data)["test_accuracy"],
            "numpy_float64": train(config("numpy", n, hidden, lr=lr), data, float64=True)["test_accuracy"],
            "brian2": train(config("brian2", n, hidden, lr=lr), data)["test_accuracy"]}


def first_compile(data, hidden: int) -> dict:
    """Model creation with an empty cache (generation and compilation), then with it warm."""
    from cortex_fa import backends, rules
    from cortex_fa.network import Network

    cfg = config("brian2", 10, hidden)
    out = {}
    for label in ("empty_cache", "warm_cache"):
        t0 = time.perf_counter()
        model = backends.get("brian2").compile(Network.from_config(cfg), rules.make("fa"), cfg, np.random.default_rng(0))
        out[label] = {"model_s": time.perf_counter() - t0, "compiled": bool(getattr(model, "compiled", False)),
                      "target": model.params["target"]}
        if hasattr(model, "close"):
            model.close()
    return out


def main(argv=None):
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--short", type=int, default=2000, help="digits of the short run (default 2000)")
    parser.add_argument("--epoch", type=int, default=60_000, help="digits of the long run (default 60000)")
    parser.add_argument("--rounds", type=int, default=3, help="interleaved rounds of the short run (default 3)")
    parser.add_argument("--epoch-rounds", type=int, default=2, help="interleaved rounds of the epoch (default 2)")
    parser.add_argument("--hidden", type=int, default=100)
    parser.add_argument("--stable-lr", type=float, default=0.01,
                        help="per-digit rate of the accuracy check where online SGD is not chaotic (default 0.01)")
    parser.add_argument("--quick", action="store_true", help="tiny run: 200 and 1000 digits, 1 round, hidden 16")
    parser.add_argument("--cache", help="compile cache to use (default: a new temporary directory)")
    parser.add_argument("--out", default=str(OUT), help="JSON file to write")
    args = parser.parse_args(argv)
    if args.quick:
        args.short, args.epoch, args.rounds, args.epoch_rounds, args.hidden = 200, 1000, 1, 1, 16
    from cortex_fa.data import load_mnist

    with tempfile.TemporaryDirectory(prefix="cortex_fa_brian2_cache_") as tmp:
        os.environ["CORTEX_FA_BRIAN2_CACHE"] = args.cache or tmp
        load0 = os.getloadavg()[0]
        data = load_mnist(progress=False)
        compile_info = first_compile(data, args.hidden)  # BLAS threads as a user has them (no limit)
        short = compare(data, args.short, args.hidden, args.rounds)
        epoch = compare(data, args.epoch, args.hidden, args.epoch_rounds)
        stable = [stable_accuracy(data, n, args.hidden, args.stable_lr) for n in (args.short, args.epoch)]
    result = {"network": f"784-{args.hidden}-10", "rule": "fa", "batch_size": 1, "backend_params": {},
              "first_run": compile_info, "short_run": short, "epoch": epoch, "accuracy_at_stable_lr": stable, "environment": harness.environment(),
              "load_average_start_end": [load0, os.getloadavg()[0]], "blas": harness.blas_info(),
              "targets": {"epoch_ratio_max": 5, "short_ratio_max": 20}}
    Path(args.out).parent.mkdir(parents=True, exist_ok=True)
    Path(args.out).write_text(json.dumps(result, indent=1))
    print(f"{result['network']} fa, batch size 1, brian2 with no backend parameters "
          f"({short['brian2']['attrs']['codegen_target']}, dynamics {short['brian2']['attrs']['dynamics']}), "
          f"load average {load0:.1f} -> {result['load_average_start_end'][1]:.1f}")
    print(f"first run: model made in {compile_info['empty_cache']['model_s']:.1f} s with an empty cache "
          f"(compiled: {compile_info['empty_cache']['compiled']}), {compile_info['warm_cache']['model_s']:.1f} s warm")
    for label, row in (("short run", short), ("epoch", epoch)):
        acc = (f"test accuracy numpy {row['numpy']['test_accuracy'][0]:.4f}, brian2 {row['brian2']['test_accuracy'][0]:.4f}"
               + ("" if row["accuracy_equal"] else f", numpy float64 {row['numpy_float64_test_accuracy']:.4f}"))
        print(f"{label}, {row['digits']} digits: numpy {row['numpy']['train_s']:.2f} s, brian2 "
              f"{row['brian2']['train_s']:.2f} s, ratio {row['ratio_train_time']:.2f} ({acc})")
    for row in stable:
        print(f"accuracy at lr {row['lr']:g} per digit, {row['digits']} digits: numpy {row['numpy']:.4f}, "
              f"numpy float64 {row['numpy_float64']:.4f}, brian2 {row['brian2']:.4f}")
    print(f"wrote {args.out}")
    return result


if __name__ == "__main__":
    main()
