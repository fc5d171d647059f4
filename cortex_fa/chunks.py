"""One study from chunks: study files of the same sweep that each hold some depths, seeds or grid values.

A long study is run in chunks that each fit a working session (``cortex-fa
protocol study --depths 7`` today, ``--depths 5,6`` tomorrow; or a sweep
``--seeds 0`` today, ``--seeds 1,2`` tomorrow; or a grid extended by
``--grid NAME=...`` with new values; or a depth and a seed at a time);
:func:`combine_chunks` joins their files into the study file one run would
have written. Per-cell variables (``chosen_lr``, ``selection_score``, ...)
are joined with the runs; variables without the joined dim must agree.
Steps and layers are the union (NaN-padded), as in
:func:`cortex_fa.combine.combine_runs`.
"""

from __future__ import annotations

import json

import numpy as np
import xarray as xr

from cortex_fa.cf import DEPTH, annotate_coords, with_layer_from_top
from cortex_fa.combine import RUN_DIMS
from cortex_fa.errors import ResultsError

# Attributes that must be equal in every chunk: they say which study a chunk belongs to.
_SAME = ("data_sha256", "protocol", "protocol_preset", "title", "Conventions")


def _merge_json(texts):
    """Several JSON objects -> one: equal keys kept, lists joined in order, differing values dropped."""
    dicts = [json.loads(t) for t in texts]
    if not all(isinstance(d, dict) for d in dicts):
        return json.dumps(sorted(set(texts)))
    out = {}
    for key in dict.fromkeys(k for d in dicts for k in d):
        values = [d[key] for d in dicts if key in d]
        if all(isinstance(v, list) for v in values):
            out[key] = list(dict.fromkeys(json.dumps(x, sort_keys=True) for v in values for x in v))
            out[key] = [json.loads(x) for x in out[key]]
        elif all(isinstance(v, dict) for v in values):
            out[key] = json.loads(_merge_json([json.dumps(v, sort_keys=True) for v in values]))
        elif len({json.dumps(v, sort_keys=True) for v in values}) == 1 and len(values) == len(dicts):
            out[key] = values[0]
    return json.dumps(out, sort_keys=True, default=str)


def join_attrs(attrs_list) -> dict:
    """The attributes of a study made of parts: shared values kept, ``n_runs`` summed, JSON merged.

    Raises
    ------
    ResultsError
        The parts were trained on different data or under different protocols.
    """
    out = {}
    for key in dict.fromkeys(k for a in attrs_list for k in a):
        values = [a[key] for a in attrs_list if key in a]
        distinct = list(dict.fromkeys(str(v) for v in values))
        if key in _SAME and (len(distinct) > 1 or len(values) < len(attrs_list)):
            raise ResultsError(f"the chunks differ in {key} ({', '.join(d[:60] for d in distinct)}); "
                               "they are not parts of one study")
        if key == "n_runs":
            out[key] = int(sum(int(v) for v in values))
        elif len(distinct) == 1 and len(values) == len(attrs_list):
            out[key] = values[0]
        elif key == "created":
            out[key] = max(distinct)
        elif key == "history":
            out[key] = "\n".join(distinct)
        elif key in ("config", "sweep"):
            out[key] = _merge_json(distinct)
        else:
            out[key] = json.dumps(sorted(distinct))
    return out


def concat_studies(parts, dim: str) -> xr.Dataset:
    """Join studies along one run dim (``n_hidden``, ``seed`` or a swept option); the other run dims must be equal.

    Raises
    ------
    ResultsError
        Not studies, overlapping values of ``dim``, or other run dims that differ.
    """
    parts = list(parts)
    if not parts:
        raise ResultsError("no study files to combine")
    for i, part in enumerate(parts):
        missing = [d for d in RUN_DIMS if d not in part.dims]
        if missing:
            raise ResultsError(f"part {i + 1} is not a study (no {', '.join(missing)} dim); combine study files")
    seen = [v for p in parts for v in p[dim].values.tolist()]
    if len(set(seen)) < len(seen):
        raise ResultsError(f"the parts overlap in {dim} ({sorted(seen)}); each {dim} must come from one part")
    first = parts[0]
    for i, part in enumerate(parts[1:], start=2):
        for other in (d for d in part.dims if d not in (dim, "step", "layer", "snapshot_step", "pair", "unit")):
            if other not in first.dims or part[other].values.tolist() != first[other].values.tolist():
                raise ResultsError(f"part {i} has {other} {part[other].values.tolist() if other in part.dims else '-'}, "
                                   f"part 1 {first[other].values.tolist() if other in first.dims else '-'}: "
                                   f"parts of one study differ only in {dim}")
    spe = {int(s) for p in parts for s in np.unique(p["steps_per_epoch"].values) if s > 0}
    shared_epoch = all(p["epoch"].ndim == 1 for p in parts) and len(spe) == 1
    numeric = all(p[dim].dtype.kind in "iuf" for p in parts)
    order = np.argsort([float(p[dim].values.min()) for p in parts], kind="stable") if numeric else range(len(parts))
    ready = []
    for k in order:
        p = parts[k].drop_vars(["layer_from_top", *(["epoch"] if shared_epoch else [])], errors="ignore")
        ready.append(p)
    with xr.set_options(keep_attrs=True):
        out = xr.concat(ready, dim=dim, join="outer", data_vars="minimal", coords="minimal", compat="equals",
                        combine_attrs="drop", fill_value=_fill(ready))
    for name in out.variables:  # a part's on-disk encoding (e.g. its width of text) fits that part only
        out[name].encoding = {}
    for name in out.data_vars:  # the parts' descriptions of their variables
        for p in ready:
            if name in p:
                out[name].attrs = dict(p[name].attrs)
                break
    if numeric and not out.indexes[dim].is_monotonic_increasing:  # interleaved grid values
        out = out.sortby(dim)
    if shared_epoch:
        out = out.assign_coords(epoch=("step", out["step"].values / next(iter(spe))))
        out["epoch"].attrs.update(first["epoch"].attrs)
    out = annotate_coords(with_layer_from_top(out))
    out.attrs = join_attrs([p.attrs for p in parts])
    return out


def _fill(parts) -> dict:
    """Fill values for padded cells: ``missing`` for status, empty text, -1 for run counters, else NaN."""
    fill = {}
    for p in parts:
        for name, var in p.data_vars.items():
            if name == "status":
                fill[name] = "missing"
            elif var.dtype.kind in "US":
                fill[name] = ""
            elif var.dtype.kind in "iu":
                fill[name] = -1
            elif var.dtype.kind == "b":
                fill[name] = False
    return fill


def combine_chunks(parts) -> xr.Dataset:
    """Chunk files of one study -> the study, joined along the run dims in which they differ.

    That dim is the depth for per-depth chunks, ``seed`` for a sweep run seed
    by seed, or a swept option (``--grid feedback_scale=1,2`` after
    ``--grid feedback_scale=0.05,0.2``): a grid extended later. Chunks may
    differ in several dims when they tile a grid, e.g. one chunk per depth
    and seed (see :func:`combine_planned`).
    """
    return combine_planned(*chunk_plan(parts))


def chunk_plan(parts) -> tuple[list, list[str]]:
    """The parts as :func:`combine_chunks` joins them (single-valued options as dims) and the dims they differ in."""
    parts = with_single_values_as_dims(list(parts))
    return parts, _differing_dims(parts) or [DEPTH]


def combine_planned(parts, dims) -> xr.Dataset:
    """Join ``parts`` along ``dims``: one dim by :func:`concat_studies`, several as blocks of a grid.

    Chunks that differ in several dims must tile their grid: one chunk per
    depth and seed, or chunks of several rules at one depth beside one chunk
    per rule at another. The blocks are joined along an inner dim first
    (each group of parts that agree in the other dims), then the groups
    along the rest; every dim is tried as the inner one.

    Raises
    ------
    ResultsError
        The parts differ in several dims and do not tile a grid, or as
        :func:`concat_studies`.
    """
    if len(dims) == 1:
        return concat_studies(parts, dims[0])
    join_attrs([p.attrs for p in parts])  # parts of different studies are refused as such, not as a bad grid
    for inner in dims:
        others = [d for d in dims if d != inner]
        groups: dict[str, list] = {}
        for part in parts:  # parts with the same values of every other dim form one block
            key = json.dumps([part[d].values.tolist() if d in part.dims else None for d in others], default=str)
            groups.setdefault(key, []).append(part)
        if len(groups) == len(parts):
            continue  # no two parts differ in the inner dim alone: it is not inner
        try:
            blocks = [concat_studies(group, inner) for group in groups.values()]
            return combine_planned(blocks, _differing_dims(blocks) or [DEPTH])
        except ResultsError:
            continue
    raise ResultsError(f"the chunks differ in {' and '.join(dims)} and do not tile a grid of them; give one chunk "
                       "per cell of the grid (e.g. per depth and seed), each holding the same values of the other dims")


# Dims of a study that are not run dims, and run options that are not swept options.
_NOT_RUN_DIMS = ("step", "layer", "snapshot_step", "pair", "unit")
_NOT_OPTIONS = ("rule", "label", "seed", "hidden", "depth", "width")


def _single_values(part) -> dict:
    """Options that every run of a study shares, with their (scalar) values."""
    configs = [json.loads(c) for c in np.ravel(part["config"].values) if c] if "config" in part else []
    if not configs:
        return {}
    same = {k: v for k, v in configs[0].items() if k not in _NOT_OPTIONS and isinstance(v, (int, float, str))}
    return {k: v for k, v in same.items() if all(c.get(k) == v for c in configs[1:])}


def with_single_values_as_dims(parts) -> list:
    """Give a chunk a dim for an option that other chunks set differently and it fixes at one value.

    A sweep of one value of an option (``--grid feedback_scale=5``) has no dim
    for it; the value is read from its runs' ``config`` (all must agree). An
    option becomes a dim where another chunk sweeps it, or, when the chunks
    agree in every dim, where two chunks fix it at different values.
    """
    fixed = [_single_values(p) for p in parts]
    names = dict.fromkeys(d for p in parts for d in p.dims if d not in _NOT_RUN_DIMS)
    if not _differing_dims(parts):  # e.g. --grid b=5 today, --grid b=10 tomorrow
        names.update(dict.fromkeys(k for f in fixed for k in f if len({json.dumps(g.get(k)) for g in fixed}) > 1))
    out = []
    for part, values in zip(parts, fixed):
        for name in (n for n in names if n not in part.dims and n in values):
            # the new dim goes after the other run dims, as a sweep lays them out
            order = [*part["status"].dims, name]
            part = part.drop_vars(name, errors="ignore").expand_dims({name: [values[name]]}).transpose(*order, ...)
        out.append(part)
    return out


def _differing_dims(parts) -> list[str]:
    """Run dims whose values are not the same in every part (or that some parts lack)."""
    if len(parts) < 2:
        return []
    first = parts[0]
    dims = dict.fromkeys(d for p in parts for d in p.dims if d not in _NOT_RUN_DIMS)
    return [d for d in dims if d not in first.dims or any(
        d not in p.dims or p[d].values.tolist() != first[d].values.tolist() for p in parts[1:])]


def split_by_depth(study: xr.Dataset) -> list[xr.Dataset]:
    """The chunks of a study, one per depth (the inverse of :func:`combine_chunks`)."""
    parts = [study.sel({DEPTH: [d]}) for d in study[DEPTH].values]
    for part in parts:  # each chunk counts its own runs, as the sweep that wrote it would
        part.attrs = {**study.attrs, "n_runs": int((part["status"] != "missing").sum())}
    return parts
