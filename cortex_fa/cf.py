"""CF metadata of results files: conventions, coordinate attributes, on-disk names, history.

The floor under the results modules: :mod:`cortex_fa.combine`,
:mod:`cortex_fa.results` and :mod:`cortex_fa.study` import it, it imports
none of them. What it settles:

* ``Conventions``: files hold 64-bit integers (``step``, ``layer``, ``depth``,
  ``seed``, ``steps_per_epoch``), which CF allows from version 1.9 on.
* Every coordinate has ``long_name``, numeric ones ``units`` too.
* On disk the ``depth`` dimension is called ``n_hidden``: CF tools take a
  coordinate named ``depth`` for the vertical axis (metres below the surface)
  and ask for ``standard_name = "depth"``. In memory it stays ``depth``; files
  of version 0.2 and older, which use ``depth``, are read as they are.
* A CF coordinate variable is numeric and strictly monotonic. On disk a
  string-valued dimension such as ``rule`` has no coordinate variable; its
  values are a label variable ``rule_label(rule)`` (CF section 6.1), and a
  numeric dimension given out of order (``--depths 3,1,2``) is stored sorted.
* ``history``: every write appends one line, ``<UTC time>: <command>``.
"""

from __future__ import annotations

import datetime as _dt
import os
import shlex
import sys

import xarray as xr

SCHEMA_TITLE = "cortex_fa results"
CONVENTIONS = "CF-1.9"
# in-memory name -> on-disk name
FILE_NAMES = {"depth": "n_hidden"}
LABEL = "{}_label"  # on-disk label variable of a string-valued dimension
# name -> (long_name, units); units None for string coordinates (CF gives them none)
COORDINATES = {
    "step": ("updates done", "1"),
    "epoch": ("epochs done", "1"),
    "layer": ("column index (L = readout)", "1"),
    "rule": ("learning rule", None),
    "depth": ("network depth: number of hidden columns", "1"),
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


def to_file(ds: xr.Dataset, *, what: str | None = None) -> xr.Dataset:
    """The Dataset as written: on-disk names, ``Conventions`` and one more ``history`` line.

    ``what`` describes the writer (default: :func:`invocation`). Returns a shallow copy; ``ds`` is not modified.
    """
    out = ds.copy(deep=False)
    out.attrs = dict(ds.attrs)
    for dim in [d for d in out.dims if d in out.indexes]:
        index = out.indexes[dim]
        if out[dim].dtype.kind in "OUS":
            label = LABEL.format(dim)
            out = out.drop_indexes(dim).rename_vars({dim: label})
            if any(ch.isspace() for ch in label):
                # a CF `coordinates` attribute is a space-separated list of names: a name
                # with a space (a user's option name) cannot be listed there, so it stays data
                out = out.reset_coords(label)
        else:
            if not index.is_unique or not (index.is_monotonic_increasing or index.is_monotonic_decreasing):
                out = out.sortby(dim)
            # xarray gives float variables a _FillValue; CF forbids one on a coordinate variable
            out[dim].encoding = {**out[dim].encoding, "_FillValue": None}
    names = {k: v for k, v in FILE_NAMES.items() if k in out.variables or k in out.dims}
    if names:
        out = out.rename(names)
    out.attrs["Conventions"] = CONVENTIONS
    out.attrs["history"] = append_history(out.attrs.get("history"), history_line(what))
    return out


def from_file(ds: xr.Dataset) -> xr.Dataset:
    """The Dataset as read: in-memory names and indexes back (older files that have them are left alone)."""
    names = {v: k for k, v in FILE_NAMES.items()
             if (v in ds.variables or v in ds.dims) and k not in ds.variables and k not in ds.dims}
    if names:
        ds = ds.rename(names)
    for dim in ds.dims:
        label = LABEL.format(dim)
        if dim not in ds.variables and label in ds.variables and ds[label].dims == (dim,):
            ds = ds.set_coords(label).rename_vars({label: dim}).set_xindex(dim)
    return ds
