"""Which run and which snapshot the synapse view shows.

A results file with ``--snapshots`` (see :mod:`cortex_fa.snapshots`) may be a
study: :func:`run_view` narrows it to one run that has snapshots,
:func:`snapshot_steps` lists that run's snapshot steps, :func:`at_snapshot`
picks one, and :func:`default_pair` proposes two runs to compare. Strings
from files reach titles only through :func:`text`. The plots themselves are
in :mod:`cortex_fa.viz.synapses`.
"""

from __future__ import annotations

import math
import re

import numpy as np

from cortex_fa.errors import ResultsError
from cortex_fa.snapshots import has_snapshots
from cortex_fa.viz.data import RUN_DIMS, as_study, select

_UNSAFE = re.compile(r"[\x00-\x1f\x7f$\\<>]")  # control characters; $$ and \( start Bokeh math


def text(value, limit: int = 40) -> str:
    """A file's string made safe for a plot title: no control, math or markup characters, short."""
    s = _UNSAFE.sub("?", str(value))
    return s if len(s) <= limit else s[: limit - 1] + "…"


def run_view(ds, sel=None):
    """One run of ``ds`` (a run or a study) with its snapshots; ``sel`` picks rule/n_hidden/seed.

    Raises
    ------
    ResultsError
        No snapshots in the file or in the selected run, or a selection not in the file.
    """
    if not has_snapshots(ds):
        raise ResultsError("this results file has no synapse snapshots; train with --snapshots 2000")
    sel = dict(sel or {})
    for dim in RUN_DIMS:  # a run already taken out of a study: its scalar coords become dims again
        if dim in ds.coords and dim not in ds.dims:
            ds = ds.expand_dims(dim)
    study = select(as_study(ds), **{k: v for k, v in sel.items() if k not in RUN_DIMS})
    picks = {}
    for dim in RUN_DIMS:
        values = list(study[dim].values)
        want = sel.get(dim, values[0])
        if want not in values:
            raise ResultsError(f"{dim} {text(want)} is not in the file; it has {', '.join(text(v) for v in values)}")
        picks[dim] = want
    run = study.sel(picks)
    if not np.isfinite(run["snapshot_forward"].values).any():
        raise ResultsError(f"the run {', '.join(f'{k}={text(v)}' for k, v in picks.items())} has no snapshots")
    return run


def snapshot_steps(ds, sel=None) -> list[int]:
    """Steps at which the selected run has a snapshot."""
    run = run_view(ds, sel)
    taken = np.isfinite(run["snapshot_forward"]).any([d for d in run["snapshot_forward"].dims if d != "snapshot_step"])
    return [int(s) for s in run["snapshot_step"].values[taken.values]]


def at_snapshot(run, snapshot):
    """``(run at the snapshot, its step)``; ``snapshot`` None is the last one."""
    steps = snapshot_steps(run)
    step = steps[-1] if snapshot is None else int(snapshot)
    if step not in steps:
        raise ResultsError(f"no snapshot at step {step}; snapshots were taken at steps {', '.join(map(str, steps))}")
    return run.sel(snapshot_step=step), step


def who(run) -> str:
    """The run's rule, depth and seed, for a title."""
    return f"{text(run['rule'].item())}, depth {int(run['n_hidden'])}, seed {int(run['seed'])}"


def when(snap, step) -> str:
    """``step N (epoch E)`` of a snapshot, for a title."""
    epoch = float(np.asarray(snap["snapshot_epoch"]).ravel()[0]) if "snapshot_epoch" in snap.coords else math.nan
    return f"step {step}" + (f" (epoch {epoch:.3g})" if np.isfinite(epoch) else "")


def default_pair(ds, depth=None) -> list[dict]:
    """Up to two runs to compare, as selections: bp and fa if both have snapshots, else the first two rules.

    Runs of network ``depth`` (default: the deepest) and the first seed with
    snapshots; one selection if only one run qualifies, none if no run does.
    """
    study = as_study(ds)
    depth = int(study["n_hidden"].max()) if depth is None else int(depth)
    found = {}
    for rule in study["rule"].values:
        for seed in study["seed"].values:
            pick = {"rule": rule, "n_hidden": depth, "seed": seed}
            try:
                run_view(study, pick)
            except ResultsError:
                continue
            found.setdefault(str(rule), pick)
    preferred = [r for r in ("bp", "fa") if r in found]
    names = preferred if len(preferred) == 2 else list(found)[:2]
    if len(names) == 2 and found[names[0]]["seed"] != found[names[1]]["seed"]:
        names = names[:1]  # never compare runs of different seeds side by side
    return [found[r] for r in names]
