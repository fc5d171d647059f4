"""CF metadata of results files: conventions, coordinates, the names on disk, history.

The floor under the results modules: :mod:`cortex_fa.combine`,
:mod:`cortex_fa.results` and :mod:`cortex_fa.study` import it, it imports
none of them. What it settles:

* One set of names: what plain ``xarray.open_dataset`` shows is what
  :func:`cortex_fa.open_results` shows (dims, coordinates and their values).
* ``Conventions``: files hold 64-bit integers (``step``, ``layer``,
  ``n_hidden``, ``seed``, ``steps_per_epoch``), which CF allows from 1.9 on.
* The network depth is the dim ``n_hidden``, in memory and on disk: CF tools
  take a coordinate named ``depth`` for the vertical axis (metres below the
  surface) and ask it for ``standard_name = "depth"``.
* A string-valued dim such as ``rule`` keeps its values in a variable of its
  own name, stored as a ``char`` array ``rule(rule, string2)``: xarray
  reads it as the ``rule`` index, and for CF it is a string-valued label
  (section 6.1), not a coordinate variable (those are numeric). A ``string``
  variable ``rule(rule)`` would be one, which CF forbids and compliance
  checker 6.1 stops on with an exception. (CF-1.12 also forbids the ``char``
  form; the files declare CF-1.9.) A numeric dim given out of order
  (``--depths 3,1,2``) is stored sorted, as CF asks of a coordinate variable.
* ``layer_from_top``: a coordinate on ``layer`` counting down from the
  readout (0 = readout, 1 = the top hidden column, ...); in a study it also
  varies with ``n_hidden`` and is missing (NaN) on padded layers.
* Older files (0.2: ``depth``; 0.3 development versions: ``n_hidden`` with a
  label variable ``rule_label(rule)``) get today's names from :func:`from_file`.
* ``history``: every write appends one line, ``<UTC time>: <command>``.
"""

from __future__ import annotations

import datetime as _dt
import os
import shlex
import sys

import numpy as np
import xarray as xr

SCHEMA_TITLE = "cortex_fa results"
CONVENTIONS = "CF-1.9"
DEPTH = "n_hidden"  # the dim of network depth (number of hidden columns)
OLD_NAMES = {"depth": DEPTH}  # files of version 0.2 and older -> today's names
OLD_LABEL = "{}_label"  # a string dim's values in files of 0.3 development versions
FROM_TOP = "layer_from_top"
# name -> (long_name, units); units None for string coordinates (CF gives them none)
COORDINATES = {
    "step": ("updates done", "1"),
    "epoch": ("epochs done", "1"),
    "layer": ("column index (L = readout)", "1"),
    FROM_TOP: ("columns below the readout (0 = readout, 1 = top hidden column)", "1"),
    "rule": ("learning rule", None),
    DEPTH: ("network depth: number of hidden columns", "1"),
    "seed": ("seed of the run's random generator", "1"),
    "width": ("units per hidden column", "1"),
    "snapshot_step": ("updates done when the synapse snapshot was taken", "1"),
    "snapshot_epoch": ("epochs done when the synapse snapshot was taken", "1"),
    "unit": ("unit index in column 1 (0-based)", "1"),
    "pixel_row": ("input image row (0 = top)", "1"),
    "pixel_col": ("input image column (0 = left)", "1"),
}
# Dims inside one run (a study adds run dims around them): the log, and the synapse snapshots.
RUN_INTERNAL_DIMS = ("step", "layer", "snapshot_step", "pair", "unit", "pixel_row", "pixel_col")


def annotate_coords(ds: xr.Dataset) -> xr.Dataset:
    """Give every coordinate (and an ``epoch`` variable) ``long_name`` and, if numeric, ``units``.

    Known names get the texts of :data:`COORDINATES`; any other coordinate is a
    swept run option and is described as such unless it has a ``long_name``.
    Modifies ``ds`` in place and returns it.
    """
    names = [n for n in ds.variables if n in ds.coords or n in COORDINATES]
    for name in names:
        attrs = ds[name].attrs
        if name in COORDINATES:
            long_name, units = COORDINATES[name]
            attrs["long_name"] = long_name
        else:
            attrs.setdefault("long_name", f"run option {name} (a RunConfig field)")
            units = "1"
        if ds[name].dtype.kind in "iuf" and units:
            attrs["units"] = units
        else:
            attrs.pop("units", None)  # strings have no units in CF
    return ds


def invocation() -> str:
    """What is writing: the ``cortex-fa`` command line, else the Python program."""
    from cortex_fa import __version__

    argv = [a.replace("\n", " ") for a in sys.argv] or [""]
    main = argv[0].replace(os.sep, "/")
    if os.path.basename(main) == "cortex-fa" or main.endswith("cortex_fa/cli/__main__.py"):
        return shlex.join(["cortex-fa", *argv[1:]])
    program = shlex.join(argv) if argv[0] else "python"
    return f"cortex_fa.save_results (cortex_fa {__version__}) in: {program}"


def history_line(what: str | None = None) -> str:
    """One CF history line: ``2026-01-31T12:00:00Z: <what>`` (default :func:`invocation`)."""
    now = _dt.datetime.now(_dt.timezone.utc).strftime("%Y-%m-%dT%H:%M:%SZ")
    return f"{now}: {what or invocation()}"


def append_history(history, line: str) -> str:
    """``history`` (str or missing) with ``line`` appended, oldest line first."""
    old = str(history or "").rstrip("\n")
    return f"{old}\n{line}" if old else line


def with_layer_from_top(ds: xr.Dataset) -> xr.Dataset:
    """``ds`` with the coordinate ``layer_from_top``: columns between a layer and the readout.

    A network of depth ``d`` has layers ``1..d+1`` (``d+1`` is the readout),
    so layer ``l`` is ``d + 1 - l`` columns below the top: 0 for the readout,
    1 for the top hidden column, ``d`` for column 1. A run (no ``n_hidden``
    dim) takes ``d + 1`` from its ``layer`` dim and gets int64 values on
    ``layer``; a study gets float64 values on ``(n_hidden, layer)``, NaN on
    the layers padded beyond a shallower network's readout.
    """
    layer = ds["layer"]
    if DEPTH in ds.dims:
        top = ds[DEPTH].astype(np.int64) + 1 - layer
        value = top.where(top >= 0).astype(np.float64).transpose(DEPTH, "layer")
    else:
        value = (int(layer.max()) - layer).astype(np.int64)
    long_name, units = COORDINATES[FROM_TOP]
    return ds.assign_coords({FROM_TOP: xr.Variable(value.dims, value.values, {"long_name": long_name, "units": units})})


def to_file(ds: xr.Dataset, *, what: str | None = None) -> xr.Dataset:
    """The Dataset as written: CF encodings, ``Conventions`` and one more ``history`` line.

    Names and values stay as they are, so that plain xarray reads back what
    :func:`cortex_fa.open_results` gives; only their encoding changes (see
    the module notes). ``what`` describes the writer (default:
    :func:`invocation`). Returns a shallow copy; ``ds`` is not modified.
    """
    out = ds.copy(deep=False)
    out.attrs = dict(ds.attrs)
    for name in out.variables:  # a `coordinates` read from an older file may name variables gone since
        out[name].encoding = {k: v for k, v in out[name].encoding.items() if k != "coordinates"}
    for dim in [d for d in out.dims if d in out.indexes]:
        index = out.indexes[dim]
        if out[dim].dtype.kind in "OUS":
            # char array: a string-valued label to CF, the `dim` index to xarray (see the module notes)
            out[dim].encoding = {"dtype": "S1"}  # xarray names the character dim stringN
        else:
            if not index.is_unique or not (index.is_monotonic_increasing or index.is_monotonic_decreasing):
                out = out.sortby(dim)
            # xarray gives float variables a _FillValue; CF forbids one on a coordinate variable
            out[dim].encoding = {**out[dim].encoding, "_FillValue": None}
    if FROM_TOP in out.coords and out[FROM_TOP].dtype.kind == "f":
        # whole numbers, NaN on padded layers: int64 with a fill value (CF allows one on an auxiliary coordinate)
        out[FROM_TOP].encoding = {**out[FROM_TOP].encoding, "dtype": "int64", "_FillValue": -1}
    out.attrs["Conventions"] = CONVENTIONS
    out.attrs["history"] = append_history(out.attrs.get("history"), history_line(what))
    return out


def from_file(ds: xr.Dataset) -> xr.Dataset:
    """The Dataset as read: files of today come back as they are; older ones get today's names.

    Files of version 0.2 and older name the depth dim ``depth``; files of 0.3
    development versions hold a string dim's values in a label variable
    ``rule_label(rule)``. Both come back as ``n_hidden`` and a ``rule`` index,
    and a file without ``layer_from_top`` gets it (see :func:`with_layer_from_top`).
    """
    names = {old: new for old, new in OLD_NAMES.items()
             if old in ds.dims and new not in ds.variables and new not in ds.dims}
    if names:
        ds = ds.rename(names)
    for dim in ds.dims:
        label = OLD_LABEL.format(dim)
        if dim not in ds.variables and label in ds.variables and ds[label].dims == (dim,):
            ds = ds.set_coords(label).rename_vars({label: dim}).set_xindex(dim)
    if "layer" in ds.dims and "layer" in ds.variables and FROM_TOP not in ds.variables:
        ds = with_layer_from_top(ds)
    return ds
