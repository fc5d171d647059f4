"""Combine single runs into one study Dataset (the layout of a study file).

A study has dims ``rule``, ``n_hidden`` (network depth), ``seed``, one dim
per run option that differs between runs (e.g. ``lr``), then ``step``
(union, NaN-padded) and ``layer`` (NaN-padded for shallower networks;
coordinate ``layer_from_top`` over ``n_hidden`` and ``layer``). ``epoch`` is a 1-D coordinate
on ``step`` if all runs share ``steps_per_epoch``, else a variable over the
run dims and ``step``. Per-run attributes become variables over the run dims
(``status`` is ``ok``, ``diverged`` or ``missing``). See ``docs/schema.md``.

The synapse snapshots' own layout (``snapshot_step``, ``pair``, ``unit``) is
built by :mod:`cortex_fa.combine_snapshots`.

Pure and in memory: :mod:`cortex_fa.results` (reading several files) and
:mod:`cortex_fa.study` (a sweep's run files) build on it.
"""

from __future__ import annotations

import datetime as _dt
import itertools
import json
import math

import numpy as np
import xarray as xr

from cortex_fa import __version__
from cortex_fa.cf import CONVENTIONS, DEPTH, SCHEMA_TITLE, annotate_coords, with_layer_from_top
from cortex_fa.combine_snapshots import add_snapshots, snapshot_layout
from cortex_fa.config import RunConfig
from cortex_fa.errors import ResultsError
from cortex_fa.limits import Limits, check_sizes

RUN_DIMS = ("rule", DEPTH, "seed")  # DEPTH is "n_hidden"
# Options that define a run's identity but never become a swept dim of their own.
_STRUCTURAL = ("rule", "hidden", "seed", "label")
# per-run attribute -> long_name of the study variable that holds it
_RUN_ATTRS = {"status": "run status: ok, diverged or missing", "config_hash": "SHA-256 (16 hex digits) of config",
              "config": "the run's full RunConfig (JSON)", "created": "UTC time the run was created",
              "stop_reason": "why training ended: early_stop, epoch_cap, train_error_target, diverged, stalled_at_chance, ..."}


def _coord_value(value):
    """A NetCDF-safe coordinate value: numbers and strings as they are, the rest as JSON."""
    if isinstance(value, bool) or value is None or isinstance(value, (dict, list, tuple)):
        return json.dumps(value, sort_keys=True)
    return value


def _config_of(run: xr.Dataset, index: int) -> RunConfig:
    if "rule" in run.dims or DEPTH in run.dims or "depth" in run.dims:
        raise ResultsError(f"run {index} is already a study (has a rule/{DEPTH} dim); combine single runs only")
    try:
        # the rule is a label here: a file of a plugin's rule combines where the plugin is not installed
        return RunConfig.from_json(run.attrs["config"], rule_as_label=True)
    except KeyError:
        raise ResultsError(f"run {index} has no 'config' attribute; it was not written by cortex_fa.train") from None
    except Exception as exc:  # ConfigError or JSON error from a foreign/old file
        raise ResultsError(f"run {index} has an unusable config attribute: {exc}") from None


def _option_value(config: RunConfig, name: str):
    if name == "width":
        return config.hidden[0]
    if name == "column_rules":  # "fa,fa,bp" reads better as a coordinate than JSON
        return ",".join(config.column_rules) if config.column_rules else "none"
    return _coord_value(getattr(config, name))


def swept_options(configs, per_cell=()) -> dict[str, list]:
    """Run options (besides rule/hidden/seed/label) that differ between ``configs``.

    An option with one value per rule (e.g. each rule at its own learning
    rate), or one value per rule and depth for the options named in
    ``per_cell`` (a sweep's ``per_cell`` options: rates chosen per rule and
    depth), is not a dim: it belongs to the cell, and each run's ``config``
    variable records it. Rules are told apart by their
    :attr:`~cortex_fa.config.RunConfig.study_label` (variants too).

    Returns
    -------
    dict
        Option name -> sorted distinct coordinate values (all strings if the
        values are of mixed types, e.g. ``None`` and ``1000``). A ``width``
        entry appears when networks of uniform width differ in width.
    """
    names = [n for n in configs[0].to_dict() if n not in _STRUCTURAL]
    hiddens = {c.hidden for c in configs}
    if len({len(h) for h in hiddens}) < len(hiddens):  # two hidden tuples share a depth
        if not all(len(set(h)) == 1 for h in hiddens):
            raise ResultsError(
                "runs of the same depth have different non-uniform hidden sizes "
                f"({sorted(map(list, hiddens))}); they cannot share an '{DEPTH}' dim, combine them separately"
            )
        names.append("width")
    out = {}
    for name in names:
        values = {json.dumps(_option_value(c, name), sort_keys=True) for c in configs}
        groups = {}
        for c in configs:
            key = (c.study_label, c.depth) if name in per_cell else c.study_label
            groups.setdefault(key, set()).add(json.dumps(_option_value(c, name), sort_keys=True))
        if len(groups) > 1 and all(len(v) == 1 for v in groups.values()):
            continue  # set per rule or per cell (each rule at its own lr): not a dim; kept in `config`
        if len(values) > 1:
            coords = [json.loads(v) for v in values]
            out[name] = sorted(coords) if len({type(c) for c in coords}) == 1 else sorted(map(str, coords))
    return out


def _cell(config: RunConfig, swept: dict) -> tuple:
    extra = []
    for name, coords in swept.items():
        value = _option_value(config, name)
        extra.append(str(value) if isinstance(coords[0], str) else value)
    return (config.study_label, config.depth, config.seed, *extra)


def _steps_per_epoch(run: xr.Dataset) -> int:
    """The run's ``steps_per_epoch`` attr, else inferred from its ``epoch`` coordinate."""
    if "steps_per_epoch" in run.attrs:
        return int(run.attrs["steps_per_epoch"])
    ep, st = run["epoch"].values, run["step"].values
    ok = ep > 0
    return int(round(float(st[ok][-1] / ep[ok][-1]))) if ok.any() else 0


def _ordered(given, seen) -> list:
    """``given`` in its order, then values only seen in runs, sorted."""
    return list(dict.fromkeys(given)) + sorted(set(seen) - set(given))


def combine_runs(runs, *, sweep: dict | None = None, coords: dict | None = None, limits=None) -> xr.Dataset:
    """Combine single-run Datasets into one study Dataset.

    Parameters
    ----------
    runs : sequence of xarray.Dataset
        Runs as written by :func:`cortex_fa.training.train` (dims ``step``, ``layer``).
    sweep : dict, optional
        The sweep specification, stored as the JSON attribute ``sweep``; by
        default a summary of the coordinates is stored.
    coords : dict, optional
        Expected coordinate values per dim (``{"rule": [...], "lr": [...]}``):
        kept in this order and present even where every run is missing.
    limits : Limits or mapping, optional
        Bounds on the combined size (see :class:`cortex_fa.limits.Limits`):
        runs that differ in many options span a grid far larger than themselves.

    Returns
    -------
    xarray.Dataset
        Dims ``rule``, ``n_hidden``, ``seed``, swept options, ``step``, ``layer``.

    Raises
    ------
    ResultsError
        No runs, a study among the runs, two runs for the same cell, runs on
        different data, hidden sizes that cannot be described by depth (and width),
        or a combined study larger than ``limits``.
    """
    runs = list(runs)
    if not runs:
        raise ResultsError("no runs to combine")
    configs = [_config_of(r, i) for i, r in enumerate(runs)]
    shas = {r.attrs.get("data_sha256", "unknown") for r in runs}
    if len(shas) > 1:
        raise ResultsError(f"runs were trained on different data (data_sha256 {sorted(shas)}); refusing to combine")
    per_cell = {n for options in (sweep or {}).get("per_cell", {}).values() for n in options}
    swept = swept_options(configs, per_cell)
    coords = {k: [_coord_value(v) for v in vals] for k, vals in (coords or {}).items()}
    for name, values in coords.items():
        if name not in RUN_DIMS and name not in swept:
            swept[name] = [_coord_value(getattr(configs[0], name))]
        if name in swept and isinstance(swept[name][0], str):
            coords[name] = [str(v) for v in values]
    cells = [_cell(c, swept) for c in configs]
    seen = {}
    for i, cell in enumerate(cells):
        if cell in seen:
            j = seen[cell]
            raise ResultsError(
                f"two runs for the same cell {dict(zip((*RUN_DIMS, *swept), cell))} "
                f"(config hashes {configs[j].hash()} and {configs[i].hash()}); remove one of them"
            )
        seen[cell] = i

    dims = (*RUN_DIMS, *swept)
    coords = {d: _ordered(coords.get(d, []), {cell[k] for cell in cells}) for k, d in enumerate(dims)}
    position = [tuple(coords[d].index(cell[k]) for k, d in enumerate(dims)) for cell in cells]
    steps = np.array(sorted(set(itertools.chain.from_iterable(r["step"].values.tolist() for r in runs))), dtype=np.int64)
    n_layer = max(int(r.sizes["layer"]) for r in runs)
    shape = tuple(len(coords[d]) for d in dims)

    # per-step and per-layer variables present in every run (others cannot share the layout)
    variables = [v for v in runs[0].data_vars if runs[0][v].dims in (("step",), ("step", "layer"))
                 and all(v in r and set(r[v].dims) == set(runs[0][v].dims) for r in runs)]
    _check_size(runs, variables, shape, len(steps), n_layer, Limits.resolve(limits))
    snaps = snapshot_layout(runs)
    check_sizes(f"combining {len(runs)} run(s)", Limits.resolve(limits), runs=math.prod(shape),
                nbytes=math.prod(shape) * snaps["bytes"], verb="would make a study of")
    data = {v: np.full(shape + tuple(n_layer if d == "layer" else len(steps) for d in runs[0][v].dims), np.nan)
            for v in variables}
    per_run = {a: np.full(shape, "" if a != "status" else "missing", dtype=object) for a in _RUN_ATTRS}
    spe = np.zeros(shape, dtype=np.int64)
    diverged_at = np.full(shape, -1, dtype=np.int64)
    epoch = np.full(shape + (len(steps),), np.nan)
    for run, pos in zip(runs, position):
        rows = np.searchsorted(steps, run["step"].values)
        for v in variables:
            arr = run[v].transpose(*runs[0][v].dims).values
            if arr.ndim == 2:
                data[v][pos][rows, : arr.shape[1]] = arr
            else:
                data[v][pos][rows] = arr
        for a in _RUN_ATTRS:
            per_run[a][pos] = str(run.attrs.get(a, ""))
        spe[pos] = _steps_per_epoch(run)
        diverged_at[pos] = int(run.attrs.get("diverged_at_step", -1))
        epoch[pos][rows] = run["epoch"].values

    out = xr.Dataset(coords={**{d: coords[d] for d in dims}, "step": steps, "layer": np.arange(1, n_layer + 1)})
    for v in variables:
        out[v] = ((*dims, *runs[0][v].dims), data[v])
    for a in _RUN_ATTRS:
        out[a] = (dims, per_run[a].astype("U8" if a == "status" else str))
    out["steps_per_epoch"] = (dims, spe, {"long_name": "updates per epoch (0: missing run)", "units": "1"})
    out["diverged_at_step"] = (dims, diverged_at, {"long_name": "step where the loss became non-finite (-1: never)",
                                                   "units": "1"})
    for a, long_name in _RUN_ATTRS.items():
        out[a].attrs["long_name"] = long_name
    shared = {int(s) for s in np.unique(spe) if s > 0}
    if snaps["steps"] is not None:
        out = add_snapshots(out, runs, position, dims, shape, snaps, spe, shared)
    if len(shared) == 1:
        out = out.assign_coords(epoch=("step", steps / next(iter(shared))))
    else:
        out["epoch"] = ((*dims, "step"), epoch)
    for v in variables:  # the runs carry the descriptions of their variables
        out[v].attrs.update(runs[0][v].attrs)
    if out["epoch"].ndim > 1:
        out["epoch"].attrs.update(runs[0]["epoch"].attrs)
    out = annotate_coords(with_layer_from_top(out))
    out["epoch"].attrs["comment"] = ("1-D: all runs share steps_per_epoch" if out["epoch"].ndim == 1
                                     else "per run: step / steps_per_epoch of that run, NaN where not logged")
    out.attrs.update(_global_attrs(runs, configs, swept, coords, sweep))
    return out


def _global_attrs(runs, configs, swept, coords, sweep) -> dict:
    first = configs[0].to_dict()
    fixed = {k: v for k, v in first.items() if k not in _STRUCTURAL and k not in swept}
    if "width" not in swept and all(len(set(c.hidden)) == 1 for c in configs) and len({c.hidden[0] for c in configs}) == 1:
        fixed["width"] = configs[0].hidden[0]
    if sweep is None:
        sweep = {"rules": coords["rule"], "depths": coords[DEPTH], "seeds": coords["seed"],
                 "grid": {k: coords[k] for k in swept}}
    attrs = {
        "Conventions": CONVENTIONS,
        "title": SCHEMA_TITLE,
        "cortex_fa_version": __version__,
        "config": json.dumps(fixed, sort_keys=True),
        "sweep": json.dumps(sweep, sort_keys=True, default=str),
        "swept": json.dumps(list(swept)),
        "n_runs": len(runs),
        "created": _dt.datetime.now(_dt.timezone.utc).isoformat(timespec="seconds"),
    }
    for key in ("data_sha256", "backend", "numpy_version", "blas"):
        values = {str(r.attrs.get(key, "unknown")) for r in runs}
        attrs[key] = values.pop() if len(values) == 1 else json.dumps(sorted(values))
    return attrs


def _check_size(runs, variables, shape, n_steps, n_layer, limits) -> None:
    """Refuse a study beyond ``limits`` before allocating it (runs spanning many options make a huge grid)."""
    cells = math.prod(shape)
    per_cell = sum(n_steps * (n_layer if "layer" in runs[0][v].dims else 1) for v in variables) * 8
    per_cell += n_steps * 8 + 16  # epoch, steps_per_epoch, diverged_at_step
    per_cell += 4 * sum(max(len(str(r.attrs.get(a, ""))) for r in runs) for a in _RUN_ATTRS)  # fixed-width text
    check_sizes(f"combining {len(runs)} run(s)", limits, steps=n_steps, layers=n_layer, runs=cells,
                nbytes=cells * per_cell, verb="would make a study of")
