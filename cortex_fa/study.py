"""Studies: combine single runs into one Dataset, and keep a sweep's run files on disk.

A study has dims ``rule``, ``depth``, ``seed``, one dim per run option that
differs between runs (e.g. ``lr``), then ``step`` (union, NaN-padded) and
``layer`` (NaN-padded for shallower networks). ``epoch`` is a 1-D coordinate
on ``step`` if all runs share ``steps_per_epoch``, else a variable over the
run dims and ``step``. Per-run attributes become variables over the run dims
(``status`` is ``ok``, ``diverged`` or ``missing``). See ``docs/schema.md``.
"""

from __future__ import annotations

import datetime as _dt
import itertools
import json
import logging
import os
from pathlib import Path

import numpy as np
import xarray as xr

from cortex_fa import __version__
from cortex_fa.config import RunConfig
from cortex_fa.errors import ResultsError
from cortex_fa.results import SCHEMA_TITLE, annotate, validate

log = logging.getLogger(__name__)
MANIFEST = "sweep.json"

RUN_DIMS = ("rule", "depth", "seed")
# Options that define a run's identity but never become a swept dim of their own.
_STRUCTURAL = ("rule", "hidden", "seed")
_RUN_ATTRS = ("status", "config_hash", "config", "created")


def _coord_value(value):
    """A NetCDF-safe coordinate value: numbers and strings as they are, the rest as JSON."""
    if isinstance(value, bool) or value is None or isinstance(value, (dict, list, tuple)):
        return json.dumps(value, sort_keys=True)
    return value


def _config_of(run: xr.Dataset, index: int) -> RunConfig:
    if "rule" in run.dims or "depth" in run.dims:
        raise ResultsError(f"run {index} is already a study (has a rule/depth dim); combine single runs only")
    try:
        return RunConfig.from_json(run.attrs["config"])
    except KeyError:
        raise ResultsError(f"run {index} has no 'config' attribute; it was not written by cortex_fa.train") from None
    except Exception as exc:  # ConfigError or JSON error from a foreign/old file
        raise ResultsError(f"run {index} has an unusable config attribute: {exc}") from None


def _option_value(config: RunConfig, name: str):
    return config.hidden[0] if name == "width" else _coord_value(getattr(config, name))


def swept_options(configs) -> dict[str, list]:
    """Run options (besides rule/hidden/seed) that differ between ``configs``.

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
                f"({sorted(map(list, hiddens))}); they cannot share a 'depth' dim, combine them separately"
            )
        names.append("width")
    out = {}
    for name in names:
        values = {json.dumps(_option_value(c, name), sort_keys=True) for c in configs}
        if len(values) > 1:
            coords = [json.loads(v) for v in values]
            out[name] = sorted(coords) if len({type(c) for c in coords}) == 1 else sorted(map(str, coords))
    return out


def _cell(config: RunConfig, swept: dict) -> tuple:
    extra = []
    for name, coords in swept.items():
        value = _option_value(config, name)
        extra.append(str(value) if isinstance(coords[0], str) else value)
    return (config.rule, config.depth, config.seed, *extra)


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


def combine_runs(runs, *, sweep: dict | None = None, coords: dict | None = None) -> xr.Dataset:
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

    Returns
    -------
    xarray.Dataset
        Dims ``rule``, ``depth``, ``seed``, swept options, ``step``, ``layer``.

    Raises
    ------
    ResultsError
        No runs, a study among the runs, two runs for the same cell, runs on
        different data, or hidden sizes that cannot be described by depth (and width).
    """
    runs = list(runs)
    if not runs:
        raise ResultsError("no runs to combine")
    configs = [_config_of(r, i) for i, r in enumerate(runs)]
    shas = {r.attrs.get("data_sha256", "unknown") for r in runs}
    if len(shas) > 1:
        raise ResultsError(f"runs were trained on different data (data_sha256 {sorted(shas)}); refusing to combine")
    swept = swept_options(configs)
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
    out["status"].attrs.update(long_name="run status: ok, diverged or missing")
    shared = {int(s) for s in np.unique(spe) if s > 0}
    if len(shared) == 1:
        out = out.assign_coords(epoch=("step", steps / shared.pop()))
    else:
        out["epoch"] = ((*dims, "step"), epoch)
    out = annotate(out)
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
        sweep = {"rules": coords["rule"], "depths": coords["depth"], "seeds": coords["seed"],
                 "grid": {k: coords[k] for k in swept}}
    attrs = {
        "Conventions": "CF-1.8",
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


# -- a study on disk: a run dir of <config hash>.nc files plus a sweep.json manifest ----

def default_run_dir(out) -> Path:
    """``study.nc`` -> ``study.runs`` next to it."""
    out = Path(out)
    return out.with_name(out.stem + ".runs")


def check_run_dir(run_dir: Path, manifest: dict) -> None:
    """Refuse a run dir that belongs to another sweep (never mix runs of two sweeps)."""
    path = Path(run_dir) / MANIFEST
    if path.exists():
        try:
            other = json.loads(path.read_text())
        except (OSError, ValueError):
            raise ResultsError(f"{path} is not a readable sweep manifest; remove it or choose another --run-dir") from None
        if other.get("runs") != manifest["runs"]:  # the run set is the identity; the spec may be spelt differently
            raise ResultsError(
                f"run dir {run_dir} belongs to a different sweep ({_describe(other.get('spec', {}))}); "
                "use another --run-dir (or --out) or delete that directory"
            )
    elif Path(run_dir).is_dir() and any(Path(run_dir).glob("*.nc")):
        raise ResultsError(f"run dir {run_dir} holds .nc files but no {MANIFEST}; use another --run-dir")


def _describe(spec: dict) -> str:
    return " ".join(f"{k}={','.join(map(str, v)) if isinstance(v, list) else v}"
                    for k, v in spec.items() if k in ("rules", "depths", "seeds", "width"))


def write_manifest(run_dir: Path, manifest: dict) -> None:
    """Create the run dir and write ``sweep.json`` atomically (if not there yet)."""
    run_dir = Path(run_dir)
    run_dir.mkdir(parents=True, exist_ok=True)
    if (run_dir / MANIFEST).exists():
        return
    tmp = run_dir / f".{MANIFEST}.{os.getpid()}.tmp"
    tmp.write_text(json.dumps(manifest, indent=1, sort_keys=True, default=str))
    os.replace(tmp, run_dir / MANIFEST)


def clean_temporaries(run_dir: Path) -> int:
    """Delete partial files left by a killed writer (``save_results`` temporaries)."""
    stale = list(Path(run_dir).glob(".*.nc.*.tmp"))
    for path in stale:
        path.unlink(missing_ok=True)
    return len(stale)


def run_file_ok(path: Path, config_hash: str) -> bool:
    """True if ``path`` is a complete run file for ``config_hash``.

    A file that exists but is unreadable, breaks the schema or belongs to
    another config is renamed ``<name>.corrupt`` with a warning, so the run
    is computed again.
    """
    path = Path(path)
    if not path.exists():
        return False
    try:
        with xr.open_dataset(path, engine="netcdf4") as ds:
            validate(ds, path)
            if ds.attrs.get("config_hash") != config_hash:
                raise ResultsError(f"{path} has config_hash {ds.attrs.get('config_hash')!r}, expected {config_hash}")
        return True
    except Exception as exc:  # noqa: BLE001 - junk of any kind: move it aside and recompute
        aside = path.with_name(path.name + ".corrupt")
        os.replace(path, aside)
        log.warning("cortex-fa: warning: %s is not a valid run file (%s); moved it to %s and computing it again",
                    path, str(exc).splitlines()[0][:120], aside.name)
        return False


def load_runs(paths) -> list[xr.Dataset]:
    """Open run files (fully loaded, files closed again)."""
    out = []
    for path in paths:
        with xr.open_dataset(path, engine="netcdf4") as ds:
            out.append(validate(ds.load(), path))
    return out
