"""Synapse snapshots in a study: each run's ``snapshot_step``/``pair``/``unit`` variables on shared dims.

:func:`cortex_fa.combine.combine_runs` lays out the per-step and per-layer
variables; the snapshots (see :mod:`cortex_fa.snapshots`) have dims of their
own, so their union of steps, their padding (NaN for values, ``FILL_INDEX``
for the pre/post indices) and their size estimate live here.
"""

from __future__ import annotations

import itertools
import math

import numpy as np
import xarray as xr

from cortex_fa.errors import ResultsError
from cortex_fa.snapshots import FILL_INDEX, INDEX_VARIABLES, KIND_VARIABLE


def snapshot_layout(runs) -> dict:
    """Union of the runs' snapshot steps and the largest pair/unit counts (``steps`` None: no snapshots)."""
    have = [r for r in runs if "snapshot_step" in r.dims]
    if not have:
        return {"steps": None, "bytes": 0}
    steps = np.array(sorted(set(itertools.chain.from_iterable(r["snapshot_step"].values.tolist() for r in have))),
                     dtype=np.int64)
    n_pair = max(int(r.sizes.get("pair", 0)) for r in have)
    n_unit = max(int(r.sizes.get("unit", 0)) for r in have)
    pixels = next((r.sizes["pixel_row"], r.sizes["pixel_col"]) for r in have if "pixel_row" in r.dims)
    n_layer = max(int(r.sizes["layer"]) for r in runs)
    nbytes = 4 * (len(steps) * n_layer * n_pair * 2 + n_layer * n_pair * 2 + len(steps) * n_unit * math.prod(pixels))
    return {"steps": steps, "pair": n_pair, "unit": n_unit, "pixels": pixels, "layer": n_layer,
            "bytes": nbytes + n_layer + 8 * len(steps)}


def add_snapshots(out, runs, position, dims, shape, snaps, spe, shared) -> xr.Dataset:
    """The synapse snapshots of every run, NaN-padded (indices -1) to the union of steps, layers, pairs, units.

    A study keeps each run's own sample: ``snapshot_pre``/``snapshot_post``
    say which synapses a run's pairs are, so they have the run dims too.
    """
    steps, n_layer, n_pair, n_unit = snaps["steps"], snaps["layer"], snaps["pair"], snaps["unit"]
    sizes = {"snapshot_step": len(steps), "layer": n_layer, "pair": n_pair, "unit": n_unit,
             "pixel_row": snaps["pixels"][0], "pixel_col": snaps["pixels"][1]}
    template = next(r for r in runs if "snapshot_step" in r.dims)
    names = [v for v in template.data_vars if set(template[v].dims) & {"snapshot_step", "pair", "unit"}
             or v == KIND_VARIABLE]
    data = {}
    for v in names:
        vdims = template[v].dims
        fill, dtype = ((FILL_INDEX, template[v].dtype) if v in INDEX_VARIABLES or v == KIND_VARIABLE
                       else (np.nan, np.float32))
        data[v] = (vdims, np.full(shape + tuple(sizes[d] for d in vdims), fill, dtype))
    epoch = np.full(shape + (len(steps),), np.nan)
    for run, pos in zip(runs, position):
        if "snapshot_step" not in run.dims:
            continue
        rows = np.searchsorted(steps, run["snapshot_step"].values)
        for v, (vdims, arr) in data.items():
            if v not in run:
                continue
            src = run[v].transpose(*vdims).values
            index = tuple(rows if d == "snapshot_step" else slice(0, src.shape[k]) for k, d in enumerate(vdims))
            if "snapshot_step" in vdims and vdims[0] != "snapshot_step":
                raise ResultsError(f"snapshot variable {v} must have snapshot_step as its first dim")
            arr[pos][index] = src
        epoch[pos][rows] = run["snapshot_epoch"].values
    for v, (vdims, arr) in data.items():
        out[v] = ((*dims, *vdims), arr, dict(template[v].attrs))
    coords = {"snapshot_step": steps, "pixel_row": np.arange(sizes["pixel_row"]),
              "pixel_col": np.arange(sizes["pixel_col"]), "unit": np.arange(n_unit)}
    out = out.assign_coords(coords)
    if len(shared) == 1:
        return out.assign_coords(snapshot_epoch=("snapshot_step", steps / next(iter(shared))))
    out["snapshot_epoch"] = ((*dims, "snapshot_step"), epoch)
    return out.set_coords("snapshot_epoch")
