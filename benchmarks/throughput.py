"""Training throughput of the numpy backend against PyTorch peers, side by side.

Run::

    python -m benchmarks.throughput [--quick] [--out benchmarks/results/throughput.json]

Sections (``--sections``, all by default):

``throughput``
    784-1000-10, batch 64, 2 threads each: the numpy backend for every rule
    in ``--rules``, the PyTorch peer of each rule (see
    :mod:`benchmarks.torch_reference`), plain PyTorch backprop, and the bare
    GEMMs of one training step at the same shapes (the BLAS limit), all
    interleaved round by round (:mod:`benchmarks.harness`). Reports
    examples/s, paired speed-ups and FLOP efficiency (achieved FLOP/s over
    the GEMM-only FLOP/s, paired per round).
``accuracy``
    One epoch of each rule in numpy and in PyTorch from the same initial
    weights, feedback and batch order: test accuracy of both.
``scaling``
    Examples/s and efficiency of ``fa`` over hidden widths and depths.
``metrics``
    One epoch of ``cortex_fa.train`` with ``metrics=True`` (default logging
    schedule) against ``metrics=False``, interleaved.
``load``
    Seconds to load MNIST from the cache.

Without PyTorch the torch columns are skipped and the JSON says why.
"""

from __future__ import annotations

import argparse
import json
import os
import statistics
import sys
import time
from pathlib import Path
from types import SimpleNamespace

import numpy as np

from benchmarks import harness
from benchmarks import torch_reference as tref

DEFAULT_OUT = Path(__file__).parent / "results" / "throughput.json"
SECTIONS = ("throughput", "accuracy", "scaling", "metrics", "load")


# -- workloads -----------------------------------------------------------------
def synthetic_data(n_train=6000, n_test=1000, seed=0):
    """MNIST-shaped uint8 digits (noisy prototypes) for runs without the real data."""
    rng = np.random.default_rng(seed)
    protos = rng.integers(0, 256, size=(10, 784))

    def draw(n):
        labels = rng.integers(0, 10, n).astype(np.uint8)
        images = np.clip(protos[labels] + rng.normal(0, 90, (n, 784)), 0, 255).astype(np.uint8)
        return images, labels

    tr, trl = draw(n_train)
    te, tel = draw(n_test)
    return SimpleNamespace(train_images=tr, train_labels=trl, test_images=te, test_labels=tel,
                           data_sha256="synthetic")


def make_config(rule, hidden, args, **extra):
    from cortex_fa.config import RunConfig

    return RunConfig(rule=rule, hidden=tuple(hidden), activation=args.activation, lr=args.lr,
                     momentum=args.momentum, batch_size=args.batch_size, seed=args.seed, **extra)


def make_model(config):
    """The numpy model ``cortex_fa.train`` would build for ``config`` (same draws from the seed)."""
    from cortex_fa import rules
    from cortex_fa.backends.numpy_backend import NumpyModel
    from cortex_fa.network import Network

    return NumpyModel(Network.from_config(config), rules.make(config.rule, config.rule_params), config,
                      np.random.default_rng(config.seed))


class NumpyWorkload:
    """The inner training loop of ``cortex_fa.train``: gather, normalise, one-hot, ``train_batch``."""

    def __init__(self, model, data, order, batch_size, lr):
        self.model, self.data, self.order, self.bs, self.lr = model, data, order, batch_size, lr
        self.pos = 0

    def batches(self, nb):
        from cortex_fa import kernels

        images, labels = self.data.train_images, self.data.train_labels
        for _ in range(nb):
            if self.pos + self.bs > len(self.order):
                self.pos = 0
            idx = self.order[self.pos:self.pos + self.bs]
            self.pos += self.bs
            lab = labels[idx]
            self.model.train_batch(kernels.normalise(images[idx]), kernels.one_hot(lab), lab, self.lr)
        return nb * self.bs


class TorchWorkload:
    """The same loop in PyTorch: rows of a preloaded, normalised float tensor (the usual fast path)."""

    def __init__(self, net, x_all, y_all, order, batch_size):
        import torch

        self.net, self.x_all, self.y_all, self.bs = net, x_all, y_all, batch_size
        self.order = torch.from_numpy(order.astype(np.int64))
        self.pos = 0

    def batches(self, nb):
        for _ in range(nb):
            if self.pos + self.bs > len(self.order):
                self.pos = 0
            idx = self.order[self.pos:self.pos + self.bs]
            self.pos += self.bs
            self.net.train_batch(self.x_all[idx], self.y_all[idx])
        return nb * self.bs


def step_gemms(sizes, pathway, n):
    """The matrix products of one training step as ``(rows, inner, cols, transposed_left)``.

    Forward ``h_{l-1} W_l``; deltas ``delta_l B_l`` (layer-wise, ``l >= 2``) or
    ``e D_l`` (direct); updates ``h_{l-1}^T delta_l``.
    """
    L = len(sizes) - 1
    out = [(n, sizes[l - 1], sizes[l], False) for l in range(1, L + 1)]
    if pathway == "layerwise":
        out += [(n, sizes[l], sizes[l - 1], False) for l in range(L, 1, -1)]
    elif pathway == "direct":
        out += [(n, sizes[L], sizes[l], False) for l in range(1, L)]
    out += [(sizes[l - 1], n, sizes[l], True) for l in range(1, L + 1)]
    return out


def gemm_flops(gemms) -> int:
    return sum(2 * m * k * n for m, k, n, _ in gemms)


class GemmWorkload:
    """Only the GEMMs of a training step, into preallocated outputs: the BLAS limit at these shapes.

    Through :func:`cortex_fa.kernels.gemm`, i.e. the very BLAS library (and
    thread pool) the engine uses: numpy's ``matmul`` would time another
    OpenBLAS build, whose threads also spin into the next candidate's turn.
    """

    def __init__(self, gemms, batch_size, dtype=np.float32, seed=0):
        rng = np.random.default_rng(seed)
        self.ops = []
        for m, k, n, trans in gemms:
            # h^T delta: the left operand is a transposed (N, m) array, as in the real step
            a = rng.standard_normal((k, m), dtype).T if trans else rng.standard_normal((m, k), dtype)
            self.ops.append((a, rng.standard_normal((k, n), dtype), np.empty((m, n), dtype)))
        self.bs = batch_size

    def batches(self, nb):
        from cortex_fa.kernels import gemm

        for _ in range(nb):
            for a, b, c in self.ops:
                gemm(a, b, c)
        return nb * self.bs


def square_sgemm_gflops(size=2048, reps=5) -> float:
    """Median GFLOP/s of one large square SGEMM (the BLAS's best case, for context)."""
    from cortex_fa.kernels import gemm

    rng = np.random.default_rng(0)
    a, b = rng.standard_normal((size, size), np.float32), rng.standard_normal((size, size), np.float32)
    c = np.empty_like(a)
    gemm(a, b, c)
    times = []
    for _ in range(reps):
        t0 = time.perf_counter()
        gemm(a, b, c)
        times.append(time.perf_counter() - t0)
    return 2 * size**3 / statistics.median(times) / 1e9


# -- sections ------------------------------------------------------------------------
def torch_tensors(data):
    import torch

    from cortex_fa import kernels

    x = torch.from_numpy(kernels.normalise(data.train_images))
    y = torch.from_numpy(data.train_labels.astype(np.int64))
    return x, y


def compare(data, hidden, rules, args, torch_data, *, label=""):
    """Interleave numpy rules, their torch peers, torch BP and the GEMM-only step; return a report."""
    from cortex_fa import rules as rule_registry

    order = np.random.default_rng(args.seed + 1).permutation(len(data.train_labels))
    cands, gemm_names, flops = [], {}, {}
    sizes = (784, *hidden, 10)
    for rule in rules:
        model = make_model(make_config(rule, hidden, args))
        cands.append(harness.Candidate(f"numpy {rule}", _runner(NumpyWorkload(model, data, order, args.batch_size, args.lr), args.batches)))
        gemms = step_gemms(sizes, rule_registry.get(rule).pathway, args.batch_size)
        key = tuple(gemms)
        if key not in gemm_names.values():
            gemm_names[f"gemm-only {rule}"] = key
            cands.append(harness.Candidate(f"gemm-only {rule}", _runner(GemmWorkload(gemms, args.batch_size), args.batches)))
        flops[rule] = (gemm_flops(gemms), next(n for n, k in gemm_names.items() if k == key))
        if torch_data is not None and rule in tref.RULES:
            # the same seed gives the peer the numpy model's initial W, b and feedback
            net = tref.TorchNet(make_model(make_config(rule, hidden, args)), rule, args.lr)
            cands.append(harness.Candidate(f"torch {rule}", _runner(TorchWorkload(net, *torch_data, order, args.batch_size), args.batches)))
    if torch_data is not None and "bp" not in rules:
        net = tref.TorchNet(make_model(make_config("bp", hidden, args)), "bp", args.lr)
        cands.append(harness.Candidate("torch bp", _runner(TorchWorkload(net, *torch_data, order, args.batch_size), args.batches)))
    timings = harness.interleave(cands, rounds=args.rounds, warmup=1)
    report = {"network": "-".join(map(str, sizes)), "batch_size": args.batch_size,
              "candidates": {k: t.to_dict() for k, t in timings.items()}, "rules": {}}
    for rule in rules:
        f, gname = flops[rule]
        mine = timings[f"numpy {rule}"]
        eff = harness.speedup(timings, f"numpy {rule}", gname)  # rate(numpy)/rate(gemm) = t_gemm / t_numpy
        row = {"examples_per_s": mine.examples_per_s, "gflop_per_step": f / 1e9,
               "achieved_gflops": f / args.batch_size * mine.examples_per_s / 1e9,
               "gemm_only_gflops": f / args.batch_size * timings[gname].examples_per_s / 1e9,
               "efficiency": eff}
        if f"torch {rule}" in timings:
            row["speedup_vs_torch_same_rule"] = harness.speedup(timings, f"numpy {rule}", f"torch {rule}")
            row["torch_same_rule_examples_per_s"] = timings[f"torch {rule}"].examples_per_s
        if "torch bp" in timings:
            row["speedup_vs_torch_bp"] = harness.speedup(timings, f"numpy {rule}", "torch bp")
        report["rules"][rule] = row
    if "torch bp" in timings:
        report["torch_bp_examples_per_s"] = timings["torch bp"].examples_per_s
    return report


def _runner(workload, nb):
    return lambda: workload.batches(nb)


def accuracy_section(data, rules, args, torch_data):
    """One epoch per rule in numpy and torch from identical initial state and batch order."""
    order = np.random.default_rng(args.seed + 2).permutation(len(data.train_labels))
    n_full = (len(order) // args.batch_size) * args.batch_size
    out = {}
    from cortex_fa import kernels

    x_test = None
    if torch_data is not None:
        import torch

        x_test = torch.from_numpy(kernels.normalise(data.test_images))
        y_test = torch.from_numpy(data.test_labels.astype(np.int64))
    for rule in rules:
        model = make_model(make_config(rule, args.hidden, args))
        net = tref.TorchNet(make_model(make_config(rule, args.hidden, args)), rule, args.lr) \
            if torch_data is not None and rule in tref.RULES else None
        w = NumpyWorkload(model, data, order[:n_full], args.batch_size, args.lr)
        t0 = time.perf_counter()
        w.batches(n_full // args.batch_size)
        t_np = time.perf_counter() - t0
        row = {"numpy_test_accuracy": model.evaluate(data.test_images, data.test_labels)[1], "numpy_epoch_s": t_np}
        if net is not None:
            tw = TorchWorkload(net, *torch_data, order[:n_full], args.batch_size)
            t0 = time.perf_counter()
            tw.batches(n_full // args.batch_size)
            row["torch_epoch_s"] = time.perf_counter() - t0
            row["torch_test_accuracy"] = net.accuracy(x_test, y_test)
            row["difference_pp"] = 100 * (row["numpy_test_accuracy"] - row["torch_test_accuracy"])
            row["max_weight_difference"] = max(float(np.max(np.abs(a - b)))
                                               for a, b in zip(model.weights, net.weights()))
        out[rule] = row
        _say(f"  accuracy {rule}: numpy {row['numpy_test_accuracy']:.4f}"
             + (f"  torch {row['torch_test_accuracy']:.4f}  ({row['difference_pp']:+.2f} pp)" if net else ""))
    return out


def equivalence(data, rules, args, torch_data, steps=10):
    """Largest relative weight difference, numpy against its torch peer, after ``steps`` identical updates.

    Float32 rounding only (~1e-7) if the peer computes the same algorithm.
    """
    order = np.random.default_rng(args.seed + 3).permutation(len(data.train_labels))
    out = {}
    for rule in rules:
        cfg = make_config(rule, args.hidden, args)
        model, net = make_model(cfg), tref.TorchNet(make_model(cfg), rule, args.lr)
        NumpyWorkload(model, data, order, args.batch_size, args.lr).batches(steps)
        TorchWorkload(net, *torch_data, order, args.batch_size).batches(steps)
        out[rule] = max(float(np.max(np.abs(a - b)) / np.max(np.abs(b))) for a, b in zip(model.weights, net.weights()))
        _say(f"  equivalence {rule}: max |W_numpy - W_torch| / max |W| after {steps} steps = {out[rule]:.1e}")
    return out


def metrics_section(data, args):
    """``cortex_fa.train`` for one epoch with metrics on and off, interleaved, plus a cost breakdown."""
    from cortex_fa import kernels, metrics
    from cortex_fa.training import logging_steps, train

    cfg = make_config("fa", args.hidden, args, epochs=1)

    def run(flag):
        return lambda: (train(cfg, data, progress=False, metrics=flag), len(data.train_labels))[1]

    timings = harness.interleave([harness.Candidate("metrics on", run(True)),
                                  harness.Candidate("metrics off", run(False))],
                                 rounds=args.metric_rounds, warmup=0)
    on, off = timings["metrics on"], timings["metrics off"]
    overhead = harness.speedup(timings, "metrics off", "metrics on") - 1.0
    # where the extra time goes: one probe evaluation, timed alone (the test
    # set is evaluated at the epoch end either way, at step 0 by neither)
    model = make_model(cfg)
    idx = np.random.default_rng(0).choice(len(data.train_labels), size=min(cfg.probe_size, len(data.train_labels)), replace=False)
    probe = metrics.Probe(kernels.normalise(data.train_images[idx]), kernels.one_hot(data.train_labels[idx]), cfg.loss)
    state = (model.rule, model.weights, model.biases, model.activations, model.state)
    probe.evaluate(*state)  # allocates the buffers and factors the probe images once per run
    probe_s = _median_time(lambda: probe.evaluate(*state), 9)
    steps = -(-len(data.train_labels) // cfg.batch_size)
    n_logs = len(logging_steps(steps, 1))
    return {"config": "fa " + "-".join(map(str, (784, *args.hidden, 10))) + f", batch {cfg.batch_size}, 1 epoch, "
                      f"probe_size {cfg.probe_size}",
            "metrics_on_s": on.median_s, "metrics_off_s": off.median_s, "overhead": overhead,
            "rounds": {"on": on.seconds, "off": off.seconds},
            "breakdown": {"logging_steps": n_logs, "probe_metrics_s": probe_s,
                          "expected_extra_s": n_logs * probe_s,
                          "expected_overhead": n_logs * probe_s / off.median_s}}


def _median_time(fn, reps):
    times = []
    for _ in range(reps):
        t0 = time.perf_counter()
        fn()
        times.append(time.perf_counter() - t0)
    return statistics.median(times)


def load_section(reps=5):
    from cortex_fa.data import load_mnist

    times = []
    for _ in range(reps):
        t0 = time.perf_counter()
        load_mnist(progress=False, fetch=False)
        times.append(time.perf_counter() - t0)
    return {"median_s": statistics.median(times), "seconds": times}


# -- command line ------------------------------------------------------------------------
def parse_args(argv=None):
    p = argparse.ArgumentParser(prog="python -m benchmarks.throughput", description=__doc__.split("\n\n")[0])
    p.add_argument("--quick", action="store_true", help="fewer rounds and a smaller scaling grid (~2 minutes)")
    p.add_argument("--out", type=Path, default=DEFAULT_OUT, help=f"JSON to write (default {DEFAULT_OUT})")
    p.add_argument("--data", choices=("mnist", "synthetic"), default="mnist")
    p.add_argument("--sections", default=",".join(SECTIONS), help="comma list of " + ", ".join(SECTIONS))
    p.add_argument("--rules", default="fa,dfa,usf,bp")
    p.add_argument("--hidden", default="1000", help="hidden sizes, e.g. 1000 or 500,500")
    p.add_argument("--batch-size", type=int, default=64)
    p.add_argument("--activation", default="relu")
    p.add_argument("--lr", type=float, default=0.01)
    p.add_argument("--momentum", type=float, default=0.9)
    p.add_argument("--seed", type=int, default=0)
    p.add_argument("--threads", type=int, default=2)
    p.add_argument("--rounds", type=int, default=None, help="timed rounds per candidate")
    p.add_argument("--batches", type=int, default=None, help="batches per candidate per round")
    p.add_argument("--metric-rounds", type=int, default=None)
    p.add_argument("--widths", default=None, help="scaling widths (default 240,500,1000)")
    p.add_argument("--depths", default=None, help="scaling depths (default 1,3,7)")
    p.add_argument("--no-torch", action="store_true", help="skip the PyTorch columns")
    args = p.parse_args(argv)
    args.hidden = [int(v) for v in args.hidden.split(",")]
    args.rules = [r.strip() for r in args.rules.split(",") if r.strip()]
    args.sections = [s.strip() for s in args.sections.split(",") if s.strip()]
    bad = set(args.sections) - set(SECTIONS)
    if bad:
        p.error(f"unknown section(s) {', '.join(sorted(bad))}")
    args.rounds = args.rounds or (5 if args.quick else 9)
    args.batches = args.batches or (60 if args.quick else 150)
    args.metric_rounds = args.metric_rounds or (2 if args.quick else 3)
    args.widths = [int(v) for v in (args.widths or ("240,1000" if args.quick else "240,500,1000")).split(",")]
    args.depths = [int(v) for v in (args.depths or ("1,3" if args.quick else "1,3,7")).split(",")]
    return args


def _say(msg):
    print(msg, file=sys.stderr, flush=True)


def main(argv=None) -> int:
    args = parse_args(argv)
    if args.data == "mnist":
        from cortex_fa.data import load_mnist

        data = load_mnist(progress=False)
    else:
        data = synthetic_data()
    torch_note = None
    if args.no_torch:
        torch_note = "skipped: --no-torch"
    elif not tref.available():
        torch_note = "skipped: PyTorch is not installed (pip install torch==2.13.0)"
    result = {"command": "python -m benchmarks.throughput " + " ".join(sys.argv[1:] if argv is None else argv),
              "created": time.strftime("%Y-%m-%dT%H:%M:%S%z"), "threads": args.threads,
              "data": args.data, "torch": torch_note or "ok"}
    if torch_note:
        _say(f"torch columns {torch_note}")
    torch_data = None
    with harness.threads(args.threads):
        if not torch_note:
            torch_data = torch_tensors(data)
        result["environment"] = harness.environment()
        result["blas"] = harness.blas_info()
        if "throughput" in args.sections:
            _say(f"throughput: {args.rounds} rounds x {args.batches} batches per candidate")
            result["throughput"] = compare(data, args.hidden, args.rules, args, torch_data)
            result["square_sgemm_gflops"] = square_sgemm_gflops()
            _print_throughput(result["throughput"])
        if "accuracy" in args.sections:
            _say("accuracy: one epoch per rule, numpy and torch from the same initial state")
            if torch_data is not None:
                result["equivalence"] = equivalence(data, [r for r in args.rules if r in tref.RULES], args, torch_data)
            result["accuracy"] = accuracy_section(data, args.rules, args, torch_data)
        if "scaling" in args.sections:
            result["scaling"] = []
            for depth in args.depths:
                for width in args.widths:
                    _say(f"scaling: fa, depth {depth}, width {width}")
                    # about the same GEMM work per round in every cell: 784-1000-10's step is 0.205 GFLOP
                    step = gemm_flops(step_gemms((784, *[width] * depth, 10), "layerwise", args.batch_size))
                    batches = int(min(400, max(20, args.batches * 0.205e9 / step)))
                    sub = argparse.Namespace(**{**vars(args), "rounds": max(3, args.rounds // 2), "batches": batches})
                    rep = compare(data, [width] * depth, ["fa"], sub, torch_data)
                    result["scaling"].append({"depth": depth, "width": width, **rep["rules"]["fa"],
                                              "torch_bp_examples_per_s": rep.get("torch_bp_examples_per_s")})
        if "metrics" in args.sections:
            _say("metrics: one epoch of cortex_fa.train with metrics on / off")
            result["metrics_overhead"] = metrics_section(data, args)
            _say(f"  overhead {100 * result['metrics_overhead']['overhead']:.1f} %")
        if "load" in args.sections and args.data == "mnist":
            result["mnist_load"] = load_section()
            _say(f"MNIST load {result['mnist_load']['median_s']:.3f} s")
        result["environment"]["loadavg_1min_end"] = os.getloadavg()[0]
    args.out.parent.mkdir(parents=True, exist_ok=True)
    tmp = args.out.with_suffix(".tmp")
    tmp.write_text(json.dumps(result, indent=1, default=float) + "\n")
    os.replace(tmp, args.out)
    _say(f"wrote {args.out}")
    return 0


def _print_throughput(rep):
    _say(f"{rep['network']}, batch {rep['batch_size']}")
    for rule, row in rep["rules"].items():
        line = (f"  {rule:4s} numpy {row['examples_per_s']:8.0f} ex/s  {row['achieved_gflops']:6.1f} GFLOP/s"
                f"  efficiency {100 * row['efficiency']:5.1f} %")
        if "speedup_vs_torch_same_rule" in row:
            line += f"  x{row['speedup_vs_torch_same_rule']:.2f} vs torch {rule}"
        if "speedup_vs_torch_bp" in row:
            line += f"  x{row['speedup_vs_torch_bp']:.2f} vs torch bp"
        _say(line)


if __name__ == "__main__":
    sys.exit(main())
