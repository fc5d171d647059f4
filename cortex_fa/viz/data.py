"""Shape results Datasets into what the figures draw (xarray in, tables out).

Every figure works on the *study* layout (dims ``rule``, ``n_hidden``, ``seed``,
``step``, ``layer``); a single run is promoted by :func:`as_study`, so one code
path serves both. Seed aggregation is a mean with a Student-t 95 % interval.
"""

from __future__ import annotations

import os

import numpy as np
import pandas as pd
import xarray as xr

from cortex_fa.errors import ResultsError

RUN_DIMS = ("rule", "n_hidden", "seed")
LAYER_VARS = ("weight_alignment", "delta_alignment", "update_alignment", "learned_alignment",
              "delta_norm", "grad_norm", "feedback_norm_ratio", "weight_change")
STEP_VARS = ("test_accuracy", "test_loss", "validation_accuracy", "validation_loss", "train_accuracy", "train_loss",
             "wall_time")


def load_results(path) -> xr.Dataset:
    """Open and validate a results file with :func:`cortex_fa.results.open_results`.

    Raises
    ------
    ResultsError
        The file is missing or is not a cortex_fa NetCDF file.
    """
    from cortex_fa.results import open_results

    return open_results(os.fspath(path))


def as_study(ds: xr.Dataset) -> xr.Dataset:
    """Give a run the study dims (``rule``, ``n_hidden``, ``seed``) of length 1.

    The run's ``rule`` and ``seed`` attrs become coordinate values and its depth
    is the number of layers minus the readout. Missing study dims of a partial
    study are added the same way. ``epoch`` becomes a coordinate if stored as a
    variable, and falls back to ``step`` if absent.
    """
    if "epoch" in ds.data_vars:
        ds = ds.set_coords("epoch")
    if "epoch" not in ds.coords:
        ds = ds.assign_coords(epoch=ds["step"].astype(float))
    try:
        seed = int(ds.attrs.get("seed", 0))
    except (TypeError, ValueError):
        seed = 0
    depth = int(ds.sizes.get("layer", 1)) - 1  # the readout is the last layer
    defaults = {"rule": str(ds.attrs.get("rule", "run")), "n_hidden": depth, "seed": seed}
    for dim in reversed(RUN_DIMS):
        if dim not in ds.dims:
            ds = ds.expand_dims({dim: [defaults[dim]]})
    return ds


def extra_dims(ds: xr.Dataset) -> list[str]:
    """Swept dimensions beyond rule/n_hidden/seed/step/layer (e.g. ``lr``)."""
    from cortex_fa.cf import RUN_INTERNAL_DIMS  # step, layer and the synapse snapshots' dims

    return [d for d in ds.dims if d not in (*RUN_DIMS, *RUN_INTERNAL_DIMS)]


def select(ds: xr.Dataset, **sel) -> xr.Dataset:
    """Fix every extra swept dim: to ``sel[dim]`` if given, else its first value."""
    picks = {d: sel.get(d, ds[d].values[0]) for d in extra_dims(ds)}
    return ds.sel(picks) if picks else ds


def run_epoch(ds: xr.Dataset) -> xr.DataArray:
    """``epoch`` broadcast over the run dims and ``step`` (1-D or N-D coord)."""
    ep = ds["epoch"].reset_coords(drop=True) if "epoch" in ds else ds["step"].astype(float)
    shape = xr.zeros_like(ds["step"], dtype=float)
    for dim in RUN_DIMS:
        if dim in ds.dims:
            shape = shape + xr.zeros_like(ds[dim], dtype=float)
    return (ep + shape).rename("epoch")


def epoch_is_shared(ds: xr.Dataset) -> bool:
    """True if all runs map each step to the same epoch (same batch and data size)."""
    ep = run_epoch(ds)
    runs = [d for d in ep.dims if d != "step"]
    spread = ep.max(runs) - ep.min(runs)
    return bool((spread.fillna(0) < 1e-9).all())


def value_range(name: str, units: str | None = None) -> tuple[float, float] | None:
    """The values variable ``name`` can take (a seed band is clipped to them), or None if unbounded.

    Percentages (``units`` ``"%"``, e.g. the figures' test error): [0, 100];
    angles (``"degree"`` or a name ending in ``alignment``): [0, 180];
    accuracies and errors stored as fractions: [0, 1]; losses, norms, ratios
    and times: [0, inf).
    """
    if units == "%":
        return (0.0, 100.0)
    if units in ("degree", "degrees") or name.endswith("alignment"):
        return (0.0, 180.0)
    if name.endswith(("accuracy", "error")):
        return (0.0, 1.0)
    if name.endswith(("loss", "norm", "ratio", "time")):
        return (0.0, np.inf)
    return None


def seed_stats(da: xr.DataArray, dim: str = "seed", bounds=None, complete_along: str | None = None) -> xr.Dataset:
    """Mean over ``dim`` with a two-sided 95 % Student-t interval.

    Returns a Dataset with ``mean``, ``lo``, ``hi`` and ``n`` (finite count).
    With one seed the interval collapses onto the mean.

    Parameters
    ----------
    bounds : (float, float), optional
        The variable's range (see :func:`value_range`): ``lo`` and ``hi`` are
        clipped to it, so a band never shows an accuracy above 1 or an angle
        below 0 that no seed can have.
    complete_along : str, optional
        A dim such as ``step``. The seeds of a curve are those with a value
        somewhere along it; ``mean``, ``lo`` and ``hi`` are NaN wherever one
        of them has none (a run that stopped early is NaN after its last
        epoch). The mean of the seeds still running is another quantity
        (survivors only, with a t-interval that balloons as they thin out), so
        a curve and its band stop together at the last step every seed
        reached; per-seed views show each run to its end.
    """
    from scipy.stats import t as student_t

    n = da.count(dim)
    mean = da.mean(dim, skipna=True)
    sd = da.std(dim, ddof=1, skipna=True) if da.sizes[dim] > 1 else xr.zeros_like(mean)
    tq = xr.apply_ufunc(lambda k: student_t.ppf(0.975, np.maximum(k - 1, 1)), n)
    half = (tq * sd / np.sqrt(n.where(n > 0))).where(n > 1, 0.0)
    lo, hi = mean - half, mean + half
    if bounds is not None:
        lo, hi = lo.clip(*bounds), hi.clip(*bounds)
    if complete_along is not None and complete_along in da.dims:
        everyone = n >= da.notnull().any(complete_along).sum(dim)
        mean, lo, hi = mean.where(everyone), lo.where(everyone), hi.where(everyone)
    return xr.Dataset({"mean": mean, "lo": lo, "hi": hi, "n": n})


def tidy(ds: xr.Dataset, var: str, seeds: str = "mean") -> pd.DataFrame:
    """Long table of ``var`` with its per-run ``epoch`` and NaN rows dropped.

    Parameters
    ----------
    ds : xarray.Dataset
        A study (see :func:`as_study`) with extra dims already selected.
    var : str
        Variable to tabulate.
    seeds : {"mean", "each"}
        ``"mean"`` aggregates seeds into columns ``var``, ``lo``, ``hi``, ``n``
        (see :func:`seed_stats`: the interval is clipped to the variable's
        :func:`value_range`, and a curve has rows only at the steps where
        every one of its seeds has a value); ``"each"`` keeps one row per seed.
    """
    da = ds[var].reset_coords(drop=True)
    ep = run_epoch(ds)
    if seeds == "mean":
        st = seed_stats(da, bounds=value_range(var, da.attrs.get("units")), complete_along="step")
        out = xr.Dataset({var: st["mean"], "lo": st["lo"], "hi": st["hi"], "n": st["n"],
                          "epoch": ep.mean("seed")})
    else:
        out = xr.Dataset({var: da, "epoch": ep})
    df = out.to_dataframe().reset_index()
    return df.dropna(subset=[var]).reset_index(drop=True)


def layer_view(da: xr.DataArray, layer="last") -> xr.DataArray:
    """Reduce the ``layer`` dim: an int, ``"last"`` hidden (= depth) or ``"mean"`` hidden.

    ``"last"`` and ``"mean"`` depend on each network's depth, so they are taken
    per ``n_hidden`` value; a depth-0 network has no hidden layer and gives NaN.
    """
    if "layer" not in da.dims:
        return da
    if layer not in ("last", "mean"):
        return da.sel(layer=int(layer))
    hidden = (da["layer"] <= da["n_hidden"])  # broadcast: layer x depth mask
    if layer == "mean":
        return da.where(hidden).mean("layer", skipna=True)
    return da.where(da["layer"] == da["n_hidden"]).max("layer", skipna=True)


def last_valid(da: xr.DataArray, dim: str = "step") -> xr.DataArray:
    """Value at the last finite position along ``dim`` (NaN if none)."""
    ok = np.isfinite(da)
    idx = (ok * xr.DataArray(np.arange(da.sizes[dim]), dims=dim)).argmax(dim)
    return da.isel({dim: idx}).where(ok.any(dim)).reset_coords(drop=True)


def final_test_error(ds: xr.Dataset) -> xr.DataArray:
    """The headline test error in percent, per run, as ``cortex-fa report`` reports it.

    With a validation split, the test error at the best-validation epoch
    (``selected``); without one, the final test error (a diverged run counts
    at chance). Falls back to the last finite ``test_accuracy``.
    """
    try:
        from cortex_fa.analysis import default_metric, test_errors

        kind = default_metric(ds)
        err = test_errors(ds)[f"{kind}_error"]
    except ImportError:
        kind, err = "final", 100.0 * (1.0 - last_valid(ds["test_accuracy"]))
    return err.rename("test_error").assign_attrs(long_name=f"{kind} test error", units="%", kind=kind)


def depth_verdicts(ds: xr.Dataset, margin: float = 0.5, reference: str = "bp") -> xr.Dataset | None:
    """Per rule and depth, the verdict against ``reference`` (:func:`cortex_fa.verdicts.verdicts`).

    On the headline metric (selected with a validation split, else final);
    None if ``reference`` is not in ``ds`` (no comparison to draw).
    """
    from cortex_fa import verdicts

    if reference not in [str(r) for r in ds["rule"].values]:
        return None
    return verdicts.verdicts(ds, margin=margin, reference=reference)


def breaking_depth(ds: xr.Dataset, margin: float = 0.5, reference: str = "bp") -> xr.DataArray:
    """Breaking depth per rule from the verdicts (:func:`cortex_fa.verdicts.breaking_depth`), as strings.

    A depth (``"5"``), ``"none"`` (the rule never falls behind) or
    ``"undetermined"`` (an earlier depth is undetermined). A reference rule
    missing from ``ds`` gives ``"no data"`` for every rule rather than an
    error, so figures of studies without ``bp`` still draw.
    """
    from cortex_fa import verdicts

    v = depth_verdicts(ds, margin, reference)
    if v is None:
        rules = ds["rule"].values
        return xr.DataArray(np.full(len(rules), verdicts.NO_DATA, dtype=object), dims="rule",
                            coords={"rule": rules}, name="breaking_depth").astype(str)
    return verdicts.breaking_depth(v)


def load_many(paths) -> list[tuple[str, xr.Dataset]]:
    """Open several results files as ``(label, Dataset)``; labels are file names.

    Every file is opened (and validated) before anything is returned, so a bad
    path fails fast. Equal file names in different folders keep their path.
    """
    paths = [os.fspath(p) for p in paths]
    if not paths:
        raise ResultsError("no results files given")
    names = [os.path.basename(p) for p in paths]
    return [(name if names.count(name) == 1 else path, load_results(path))
            for name, path in zip(names, paths)]
