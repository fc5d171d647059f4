"""Milliseconds per presented digit of the Brian2 backend, every target side by side (a benchmark, not a test).

Trains 784-100-10 with FA online on real MNIST digits and times, in one run
and in interleaved rounds (medians over rounds):

- ``legacy cython``: learning in numpy at every presentation boundary
  (``plasticity: "python"``), the implementation this one replaces;
- ``synaptic <target>``: learning as Brian2 synaptic code, one ``net.run``
  (or one standalone execution) per block, for the ``numpy``, ``cython`` and
  ``cpp_standalone`` targets, at the default ``dt = tau / 5`` and at the
  fast ``dt`` (``--fast-dt-ms``, fewer integration steps per digit);

then where the time of one block goes (Brian2's ``profile=True``: settling =
state updaters and summed variables, plasticity = the learning statements,
I/O = loading the TimedArrays and the monitors, Python = the rest) and how
the time grows with the hidden width, and writes everything to JSON.

    python -m benchmarks.brian2_speed                        # the full comparison (~15 min)
    python -m benchmarks.brian2_speed --quick --out /tmp/b.json
"""

from __future__ import annotations

import argparse
import json
import os
import platform
import statistics
import time
from pathlib import Path

import numpy as np

from cortex_fa import backends, kernels, rules
from cortex_fa.config import RunConfig
from cortex_fa.data import load_mnist
from cortex_fa.network import Network

EPOCH = 60_000
OUT = Path(__file__).resolve().parent / "results" / "brian2_speed.json"


def compile_model(hidden, params, seed=0):
    config = RunConfig(rule="fa", hidden=hidden, backend="brian2", batch_size=1, backend_params=params)
    return backends.get("brian2").compile(Network.from_config(config), rules.make("fa"), config,
                                          np.random.default_rng(seed))


def cpu_seconds():
    """CPU time of this process and its finished children (the standalone binary is a child)."""
    t = os.times()
    return t.user + t.system + t.children_user + t.children_system


def time_block(model, x, y, labels, lr=0.01):
    """Wall and CPU seconds for one block of len(labels) presentations (one call).

    On a machine shared with other jobs the wall time includes waiting for a
    core; the CPU time does not, and is the figure to compare.
    """
    t0, c0 = time.perf_counter(), cpu_seconds()
    model.train_batch(x, y, labels, lr * len(labels))
    return time.perf_counter() - t0, cpu_seconds() - c0


def profile_split(model, x, y, labels):
    """Milliseconds per digit of one block per part (runtime targets), from Brian2's code-object profile."""
    n = len(labels)
    t0 = time.perf_counter()
    model.profile_block(x, y, np.full(n, 0.01))
    wall = time.perf_counter() - t0
    parts = {"settling": 0.0, "plasticity": 0.0, "io": 0.0}
    for name, seconds in model.built.net.profiling_info:
        io = "load" in name or "settled" in name or name.endswith("_rate") or "_rate_" in name
        key = "plasticity" if "plasticity" in name else "io" if io else "settling"
        parts[key] += float(seconds)
    parts["python_and_run_setup"] = max(0.0, wall - sum(parts.values()))
    return {k: v / n * 1e3 for k, v in parts.items()}


def main(argv=None):
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--examples", type=int, default=500, help="presentations per timed block (default 500)")
    parser.add_argument("--rounds", type=int, default=3, help="interleaved rounds (default 3)")
    parser.add_argument("--targets", default="numpy,cython,cpp_standalone")
    parser.add_argument("--fast-dt-ms", type=float, default=30.0, help="dt of the fast setting (default 30 = 3 tau: 8 steps)")
    parser.add_argument("--widths", default="100,300,1000", help="hidden widths for the scaling (cython, fast dt)")
    parser.add_argument("--quick", action="store_true", help="tiny run: 20 digits, 1 round, widths 16,32, no numpy target")
    parser.add_argument("--out", default=str(OUT), help="JSON file to write")
    args = parser.parse_args(argv)
    if args.quick:
        args.examples, args.rounds, args.widths = 20, 1, "16,32"
        args.targets = ",".join(t for t in args.targets.split(",") if t != "numpy")
    load0 = os.getloadavg()[0]
    data = load_mnist(progress=False)
    n = args.examples
    x = kernels.normalise(data.train_images[:n]).astype(np.float64)
    labels = data.train_labels[:n]
    y = kernels.one_hot(labels).astype(np.float64)
    hidden = (16,) if args.quick else (100,)
    fast = {"dt_ms": args.fast_dt_ms}
    fine = {"dynamics": "resolved"}  # dt = tau / 5, the default before dynamics "fast"
    cands = {"legacy cython (python plasticity)": {"target": "cython", "plasticity": "python", **fine}}
    for target in args.targets.split(","):
        cands[f"synaptic {target}"] = {"target": target, "block": n, **fine}
        cands[f"synaptic {target}, fast dt"] = {"target": target, "block": n, **fast}
    if "synaptic cpp_standalone" in cands:  # the fine-dt standalone row is not measured (one more compilation)
        del cands["synaptic cpp_standalone"]
    models, rows = {}, {}
    for name, params in cands.items():
        t0 = time.perf_counter()
        models[name] = compile_model(hidden, params)
        time_block(models[name], x[:2], y[:2], labels[:2])  # warm-up: thread start, code generation, C++ build
        rows[name] = {"setup_s": time.perf_counter() - t0, "wall": [], "cpu": [],
                      "steps_per_digit": models[name].params["settle_steps"], "dt_ms": models[name].params["dt_ms"],
                      "settle_error": models[name].params["settle_error"]}
    for r in range(args.rounds):
        names = list(models)
        for name in names[r % len(names):] + names[:r % len(names)]:
            wall, cpu = time_block(models[name], x, y, labels)
            rows[name]["wall"].append(wall / n * 1e3)
            rows[name]["cpu"].append(cpu / n * 1e3)
    legacy = statistics.median(rows["legacy cython (python plasticity)"]["wall"])
    legacy_cpu = statistics.median(rows["legacy cython (python plasticity)"]["cpu"])
    for name, row in rows.items():
        row["ms_per_digit"] = statistics.median(row["wall"])
        row["cpu_ms_per_digit"] = statistics.median(row["cpu"])
        row["epoch_s"] = row["ms_per_digit"] * EPOCH / 1e3
        row["epoch_cpu_s"] = row["cpu_ms_per_digit"] * EPOCH / 1e3
        row["speedup_vs_legacy_cython"] = legacy / row["ms_per_digit"]
        # (a tiny --quick block can take less CPU than os.times resolves: 0 ms)
        row["cpu_speedup_vs_legacy_cython"] = legacy_cpu / row["cpu_ms_per_digit"] if row["cpu_ms_per_digit"] else None
    split = {}
    for name in ("synaptic cython", "synaptic cython, fast dt"):
        if name in models:
            split[name] = profile_split(models[name], x, y, labels)
    for m in models.values():
        m.close()
    scaling = {}
    for width in [int(w) for w in args.widths.split(",")]:
        m = compile_model((width,), {"target": "cython", "block": n, **fast})
        time_block(m, x[:2], y[:2], labels[:2])
        wall, cpu = time_block(m, x, y, labels)
        scaling[width] = {"ms_per_digit": wall / n * 1e3, "cpu_ms_per_digit": cpu / n * 1e3}
        scaling[width]["split_ms"] = profile_split(m, x, y, labels)
    result = {"network": f"784-{hidden[0]}-10", "rule": "fa", "examples_per_block": n, "rounds": args.rounds,
              "machine": f"{platform.machine()}, {os.cpu_count()} cores",
              "load_average_start_end": [load0, os.getloadavg()[0]],
              "python": platform.python_version(), "candidates": rows, "time_split_ms_per_digit": split,
              "width_scaling_cython_fast_dt": scaling}
    Path(args.out).parent.mkdir(parents=True, exist_ok=True)
    Path(args.out).write_text(json.dumps(result, indent=1))
    print(f"{result['network']}, fa, blocks of {n} digits, {args.rounds} rounds, {result['machine']}, "
          f"load average {load0:.1f} -> {result['load_average_start_end'][1]:.1f}")
    print(f"{'candidate':<36} {'steps':>5} {'ms/digit':>9} {'cpu ms':>7} {'epoch s':>8} {'cpu s':>6} {'x legacy':>8} "
          f"{'cpu x':>6}")
    for name, row in rows.items():
        print(f"{name:<36} {row['steps_per_digit']:>5} {row['ms_per_digit']:9.3f} {row['cpu_ms_per_digit']:7.3f} "
              f"{row['epoch_s']:8.0f} {row['epoch_cpu_s']:6.0f} {row['speedup_vs_legacy_cython']:8.2f} "
              f"{row['cpu_speedup_vs_legacy_cython'] or float('nan'):6.2f}")
    for name, parts in split.items():
        print(f"time split, {name} (ms/digit): " + ", ".join(f"{k} {v:.3f}" for k, v in parts.items()))
    for width, row in scaling.items():
        print(f"width {width}: {row['ms_per_digit']:.3f} ms/digit, {row['cpu_ms_per_digit']:.3f} cpu ms/digit (cython, fast dt)")
    print(f"wrote {args.out}")
    return result


if __name__ == "__main__":
    main()
