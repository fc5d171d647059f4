"""Schema-exact synthetic results for tests that must not train anything.

The curves are plausible rather than simulated: alignment angles fall from
about 90 degrees towards 30-60 degrees (worse for deeper layers and deeper
networks under ``fa``), accuracy rises towards a depth-dependent ceiling and
norms shrink towards the input. All randomness comes from one seeded
:class:`numpy.random.Generator` per run, so equal arguments give equal data.

Functions
---------
make_run_dataset
    One run: dims ``step``, ``layer``.
make_study_dataset
    A study: dims ``rule``, ``n_hidden``, ``seed``, ``step``, ``layer``.
make_count_study
    A bare study whose runs end with given counts of misclassified test images.
"""

from __future__ import annotations

import zlib

import numpy as np
import xarray as xr

from cortex_fa.cf import with_layer_from_top
from cortex_fa.config import RunConfig
from cortex_fa.results import annotate, run_attrs
from cortex_fa.study import combine_runs

SYNTHETIC_SHA = "0" * 64  # all synthetic runs share "data", so they can be combined

# Rules whose feedback is exactly W.T (no alignment lag, no depth penalty).
_EXACT = {"bp"}
# Per-rule difficulty: how far alignment stays from 0 and accuracy from 100 %.
_PENALTY = {"bp": 0.0, "kp": 0.1, "usf": 0.3, "frsf": 0.35, "brsf": 0.4, "fa": 1.0,
            "dfa": 0.8, "drtp": 1.2}

LAYER_VARS = ("weight_alignment", "delta_alignment", "update_alignment",
              "delta_norm", "grad_norm", "feedback_norm_ratio")
STEP_VARS = ("train_loss", "train_accuracy", "test_loss", "test_accuracy", "wall_time")


def log_steps(epochs: int, steps_per_epoch: int) -> np.ndarray:
    """Logging schedule: 0, 1, 2, 4, ... inside epoch 1, then every epoch end."""
    early = [0] + [2**k for k in range(32) if 2**k < steps_per_epoch]
    ends = [steps_per_epoch * e for e in range(1, epochs + 1)]
    return np.array(sorted(set(early + ends)), dtype=np.int64)


def _rng(rule: str, depth: int, seed: int) -> np.random.Generator:
    # crc32 rather than hash(): str hashes change between interpreter runs.
    return np.random.default_rng([zlib.crc32(rule.encode()), depth, seed])


def make_run_dataset(rule: str = "fa", depth: int = 2, epochs: int = 3, seed: int = 0,
                     steps_per_epoch: int = 100) -> xr.Dataset:
    """Return one synthetic run following the results schema.

    Parameters
    ----------
    rule : str
        Learning-rule name; ``"bp"`` gives zero angles, others lag.
    depth : int
        Number of hidden columns; the readout is layer ``depth + 1``.
    epochs : int
        Number of epochs logged.
    seed : int
        Seeds the noise (together with ``rule`` and ``depth``).
    steps_per_epoch : int
        Updates per epoch; sets the log-spaced early steps.

    Returns
    -------
    xarray.Dataset
        Dims ``step``, ``layer`` (coordinates ``epoch``, ``layer_from_top``); test metrics are NaN at the log-spaced steps
        strictly inside epoch 1, ``weight_alignment`` is NaN for layer 1. Attrs
        come from :func:`cortex_fa.results.run_attrs` with a real ``RunConfig``.
    """
    rng = _rng(rule, depth, seed)
    steps = log_steps(epochs, steps_per_epoch)
    epoch = steps / steps_per_epoch
    n_layers = depth + 1
    layers = np.arange(1, n_layers + 1)
    pen = _PENALTY.get(rule, 1.0)
    exact = rule in _EXACT
    # Progress 0 -> 1 on a log-ish time scale, so the first epoch moves visibly.
    prog = 1.0 - np.exp(-(steps / (0.3 * steps_per_epoch)) ** 0.6)
    prog = prog[:, None]
    # Distance from the readout: 0 at layer L, larger towards the input.
    dist = (n_layers - layers)[None, :]
    floor = 25.0 + 8.0 * pen * dist + 3.0 * pen * depth
    noise = lambda: rng.normal(0.0, 1.5, (steps.size, n_layers))  # noqa: E731
    if exact:
        w_al = np.zeros((steps.size, n_layers))
        d_al = np.zeros((steps.size, n_layers))
    else:
        w_al = 90.0 - (90.0 - floor) * prog + noise()
        d_al = 90.0 - (90.0 - np.minimum(floor + 5.0, 85.0)) * prog + noise()
        d_al[:, -1] = 0.0  # the readout gets the true output error under every rule
    w_al = np.clip(w_al, 0.0, 180.0)
    w_al[:, 0] = np.nan  # B_1 feeds into the input: never used, never measured
    d_al = np.clip(d_al, 0.0, 180.0)
    u_al = d_al.copy() if exact else np.clip(d_al + 3.0 + noise(), 0.0, 180.0)
    decay = 0.6 + 0.3 * (1 - min(pen, 1.0))  # per-layer shrink of the error signal
    d_norm = 0.05 * decay ** dist * (1.0 - 0.5 * prog) * np.exp(noise() / 30.0)
    g_norm = 8.0 * d_norm * np.exp(noise() / 30.0)
    ratio = np.ones((steps.size, n_layers))
    if not exact:
        ratio = ratio + 2.0 * (1.0 - prog)
    ratio[:, 0] = np.nan

    ceiling = 0.985 - 0.004 * depth - 0.012 * pen * max(depth - 1, 0) ** 1.5
    p = prog[:, 0]
    test_acc = 0.1 + (ceiling - 0.1) * p + rng.normal(0, 0.002, steps.size)
    test_loss = -np.log(np.clip(test_acc, 1e-3, 1.0)) * 1.3
    mid_epoch1 = (steps > 0) & (steps < steps_per_epoch)
    test_acc[mid_epoch1] = np.nan
    test_loss[mid_epoch1] = np.nan
    train_acc = np.clip(0.1 + (ceiling + 0.01 - 0.1) * p + rng.normal(0, 0.003, steps.size), 0, 1)
    train_loss = -np.log(np.clip(train_acc, 1e-3, 1.0)) * 1.2
    wall = steps * (0.004 * (1 + depth)) + rng.uniform(0.0, 0.01, steps.size)

    data = {}
    for name, arr in zip(LAYER_VARS, (w_al, d_al, u_al, d_norm, g_norm, ratio)):
        data[name] = (("step", "layer"), arr)
    for name, arr in zip(STEP_VARS, (train_loss, train_acc, test_loss, test_acc, wall)):
        data[name] = (("step",), arr)
    ds = with_layer_from_top(xr.Dataset(data, coords={"step": steps, "epoch": ("step", epoch), "layer": layers}))
    # The package's own attribute and annotation code keeps the factory schema-exact.
    config = RunConfig(rule=rule, hidden=(100,) * depth, epochs=epochs, seed=seed,
                       batch_size=max(1, 60000 // steps_per_epoch))
    ds.attrs.update(run_attrs(config, backend="numpy", data_sha256=SYNTHETIC_SHA, status="ok"))
    ds.attrs.update(steps_per_epoch=int(steps_per_epoch), created="2024-01-01T00:00:00+00:00")
    return annotate(ds)


def make_study_dataset(rules=("bp", "fa"), depths=(1, 2, 3), seeds=(0, 1), epochs: int = 3,
                       steps_per_epoch: int = 100) -> xr.Dataset:
    """Return a synthetic study: runs combined by :func:`cortex_fa.study.combine_runs`.

    Parameters
    ----------
    rules, depths, seeds : sequence
        Grid values; every combination is one :func:`make_run_dataset`.
    epochs : int
        Epochs of every run.
    steps_per_epoch : int or callable
        Shared by all runs (``epoch`` is then a 1-D coordinate on ``step``), or
        ``f(rule, depth, seed) -> int`` to give runs different epoch lengths
        (``epoch`` becomes a variable over the run dims and ``step``).

    Returns
    -------
    xarray.Dataset
        Dims ``rule``, ``n_hidden``, ``seed``, ``step``, ``layer``; ``layer`` runs to
        ``max(depths) + 1`` and is NaN-padded for shallower networks; per-run
        ``status``, ``config``, ``steps_per_epoch`` ... are variables.
    """
    spe = steps_per_epoch if callable(steps_per_epoch) else (lambda *_: steps_per_epoch)
    runs = [make_run_dataset(r, d, epochs, s, spe(r, d, s))
            for r in rules for d in depths for s in seeds]
    study = combine_runs(runs, coords={"rule": list(rules), "n_hidden": [int(d) for d in depths],
                                       "seed": [int(s) for s in seeds]})
    study.attrs["created"] = "2024-01-01T00:00:00+00:00"
    return study


def make_count_study(errors: dict, depths=(1, 3, 5), dim="n_hidden", n_test: int = 10_000) -> xr.Dataset:
    """A study whose runs end with the given misclassified counts: ``{rule: [[count per seed] per depth]}``.

    Two steps (0 and 100); validation accuracy peaks at the last step, so the
    selected error is the last test error. Only ``test_accuracy``,
    ``validation_accuracy`` and ``status``: enough for verdicts, the report's
    verdict tables and the error-vs-depth figure.
    """
    rules = list(errors)
    seeds = len(next(iter(errors.values()))[0])
    acc = np.zeros((len(rules), len(depths), seeds, 2))
    for i, rule in enumerate(rules):
        for j, per_seed in enumerate(errors[rule]):
            acc[i, j, :, 0] = 0.1
            acc[i, j, :, 1] = 1.0 - np.asarray(per_seed, float) / n_test
    val = np.broadcast_to(np.array([0.1, 0.9]), acc.shape).copy()
    dims = ("rule", dim, "seed", "step")
    return xr.Dataset({"test_accuracy": (dims, acc), "validation_accuracy": (dims, val),
                       "status": (dims[:3], np.full(acc.shape[:3], "ok"))},
                      coords={"rule": rules, dim: list(depths), "seed": list(range(seeds)), "step": [0, 100]})
