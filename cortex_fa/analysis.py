"""Depth-study analysis: errors with seed intervals, breaking depth, convergence, alignment.

Pure-numpy kernels work along the last axis; thin xarray wrappers take a
study (dims ``rule``, ``n_hidden``, ``seed``, swept options, ``step``, ``layer``;
see :mod:`cortex_fa.study`) and return DataArrays/Datasets. Errors are in
percent, angles in degrees, times in epochs or seconds.

Conventions
-----------
* "selected" is the headline: the test error at the epoch of best
  validation accuracy (the first maximum), i.e. model selection on held-out
  training images. NaN for runs trained without a validation split.
* "final" is the last logged test accuracy of a run. A diverged run counts
  at chance (90 % error) for the final error, since its network is broken;
  its selected error is taken before it diverged. Missing runs are NaN.
* "oracle_best" is the test-set minimum over training: chosen *on the test
  set*, so optimistic; it is reported under that name only, never as a default.
* A run "converged" if early stopping ended it: ``patience`` epochs passed
  without a better validation accuracy before the maximum ``epochs``.
* Seed intervals are two-sided 95 % Student-t intervals; with fewer than two
  finite seeds the interval is NaN.
"""

from __future__ import annotations

import numpy as np
import xarray as xr
from scipy import stats

CHANCE_ERROR = 90.0
# Test-error kinds: the headline first; "oracle_best" is chosen on the test set.
ERROR_KINDS = ("selected", "final", "oracle_best")
THRESHOLDS = (0.90, 0.95, 0.97)
ANGLES = (60.0, 45.0)


# -- kernels (numpy, last axis) -------------------------------------------------------

def t_interval(x, axis: int = -1, level: float = 0.95):
    """Mean and two-sided Student-t interval over ``axis``, ignoring NaN.

    .. math:: \\bar x \\pm t_{(1+level)/2,\\, n-1}\\, s / \\sqrt{n}

    Returns
    -------
    mean, lo, hi, n : numpy.ndarray
        ``lo``/``hi`` are NaN where fewer than two values are finite.
    """
    x = np.moveaxis(np.asarray(x, dtype=float), axis, -1)
    n = np.isfinite(x).sum(-1)
    with np.errstate(invalid="ignore", divide="ignore"):
        mean = np.where(n > 0, np.nansum(x, -1) / np.maximum(n, 1), np.nan)
        dev = np.where(np.isfinite(x), x - mean[..., None], 0.0)
        sd = np.sqrt((dev**2).sum(-1) / (n - 1))
        half = stats.t.ppf(0.5 + level / 2, np.maximum(n - 1, 1)) * sd / np.sqrt(n)
    half = np.where(n >= 2, half, np.nan)
    return mean, mean - half, mean + half, n


def last_finite(x, axis: int = -1):
    """The last finite value along ``axis`` (NaN if there is none)."""
    x = np.moveaxis(np.asarray(x, dtype=float), axis, -1)
    ok = np.isfinite(x)
    idx = x.shape[-1] - 1 - np.argmax(ok[..., ::-1], axis=-1)
    out = np.take_along_axis(x, idx[..., None], -1)[..., 0]
    return np.where(ok.any(-1), out, np.nan)


def first_index(condition):
    """Index of the first True along the last axis, as float (NaN if never)."""
    condition = np.asarray(condition, dtype=bool)
    idx = np.argmax(condition, axis=-1).astype(float)
    return np.where(condition.any(-1), idx, np.nan)


def take(x, idx):
    """``x[..., idx]`` for a float index array with NaN meaning "none"."""
    idx = np.asarray(idx, dtype=float)
    x = np.asarray(x, dtype=float)
    x = np.broadcast_to(x, np.broadcast_shapes(x.shape[:-1], idx.shape) + x.shape[-1:])
    safe = np.broadcast_to(np.nan_to_num(idx, nan=0).astype(int), x.shape[:-1])
    out = np.take_along_axis(x, safe[..., None], -1)[..., 0]
    return np.where(np.isfinite(idx), out, np.nan)


# -- xarray wrappers ------------------------------------------------------------------

def _over(da, dim, func):
    """Reduce ``dim`` of ``da`` with a last-axis kernel."""
    return xr.apply_ufunc(func, da, input_core_dims=[[dim]])


def _take(da, idx):
    """Values of ``da`` at the (NaN-able) ``step`` index ``idx``."""
    return xr.apply_ufunc(take, da, idx, input_core_dims=[["step"], []])


def epoch_of(study: xr.Dataset) -> xr.DataArray:
    """``epoch`` broadcast to every run (works for the 1-D coord and the N-D variable)."""
    ep = study["epoch"].reset_coords(drop=True) if "epoch" in study.variables else study["step"].astype(float)
    return ep.broadcast_like(study["test_accuracy"])


def epochs_trained(study: xr.Dataset, logged: xr.DataArray | None = None) -> xr.DataArray:
    """The last epoch at which each run logged ``logged`` (the test accuracy by default; NaN if never)."""
    logged = study["test_accuracy"] if logged is None else logged
    return _over(epoch_of(study).where(np.isfinite(logged)), "step", last_finite)


def _status(study):
    return study["status"] if "status" in study else xr.full_like(study["test_accuracy"].isel(step=0), "ok", dtype=object)


def first_argmax(x):
    """Index of the first maximum along the last axis ignoring NaN, as float (NaN if all NaN)."""
    x = np.asarray(x, dtype=float)
    ok = np.isfinite(x).any(-1)
    idx = np.argmax(np.where(np.isfinite(x), x, -np.inf), axis=-1).astype(float)
    return np.where(ok, idx, np.nan)


def has_validation(study: xr.Dataset) -> bool:
    """Whether any run of ``study`` logged a validation accuracy."""
    return "validation_accuracy" in study and bool(np.isfinite(study["validation_accuracy"].values).any())


def test_errors(study: xr.Dataset) -> xr.Dataset:
    """Per-run ``selected_error``, ``final_error`` and ``oracle_best_error`` in percent.

    See the module conventions: ``selected_error`` is the test error at the
    first epoch of best validation accuracy; ``oracle_best_error`` is the
    test-set minimum and is never a default.
    """
    acc = study["test_accuracy"]
    final = 100.0 * (1.0 - _over(acc, "step", last_finite))
    best = 100.0 * (1.0 - acc.max("step", skipna=True))
    if "validation_accuracy" in study:
        selected = 100.0 * (1.0 - _take(acc, _over(study["validation_accuracy"], "step", first_argmax)))
    else:
        selected = xr.full_like(final, np.nan)
    status = _status(study)
    final = xr.where(status == "diverged", CHANCE_ERROR, final).where(status != "missing")
    return xr.Dataset({"selected_error": selected.where(status != "missing"), "final_error": final,
                       "oracle_best_error": best.where(status != "missing")})


def default_metric(study: xr.Dataset) -> str:
    """``"selected"`` when the study has a validation split, else ``"final"``."""
    return "selected" if has_validation(study) else "final"


def seed_summary(da: xr.DataArray, dim: str = "seed") -> xr.Dataset:
    """Mean, 95 % t-interval (``lo``, ``hi``) and finite count ``n`` over ``dim``."""
    mean, lo, hi, n = xr.apply_ufunc(t_interval, da, input_core_dims=[[dim]], output_core_dims=[[], [], [], []])
    return xr.Dataset({"mean": mean, "lo": lo, "hi": hi, "n": n})


def error_summary(study: xr.Dataset) -> xr.Dataset:
    """Selected, final and oracle-best test error (percent) per rule x depth (``n_hidden``) x options, over seeds.

    Returns
    -------
    xarray.Dataset
        ``{kind}_mean``, ``{kind}_lo``, ``{kind}_hi`` for each kind of
        :data:`ERROR_KINDS`, and ``n`` (runs with a final error).
    """
    errs = test_errors(study)
    out = {}
    for kind in ERROR_KINDS:
        s = seed_summary(errs[f"{kind}_error"])
        out.update({f"{kind}_{k}": s[k] for k in ("mean", "lo", "hi")})
        if kind == "final":
            out["n"] = s["n"]
    return xr.Dataset(out)


def breaking_depth(study: xr.Dataset, margin: float = 0.5, reference: str = "bp", metric: str | None = None) -> xr.DataArray:
    """Smallest depth at which each rule falls clearly behind ``reference``.

    At depth ``d`` a rule is broken if its ``metric`` test error exceeds the
    reference's by more than ``margin`` percentage points on average over
    seeds, and the 95 % t-interval of the paired (same seed) difference
    excludes zero. NaN if that never happens (or with a single seed).
    ``metric`` is one of :data:`ERROR_KINDS`; by default ``"selected"``
    when the study has a validation split, else ``"final"``.

    Superseded by :func:`cortex_fa.verdicts.breaking_depth`, which
    ``cortex-fa report``, the figures and the app use: it compares counts
    of misclassified images, so no float tie decides it (a gap of exactly
    the margin is stored as 0.5000000000000004 points and counts as beyond
    it here), and it can answer "undetermined". Kept for old callers.
    """
    from cortex_fa.errors import ResultsError

    metric = metric or default_metric(study)
    if reference not in study["rule"].values:
        raise ResultsError(f"reference rule '{reference}' is not in the study (rules: {', '.join(map(str, study.rule.values))})")
    err = test_errors(study)[f"{metric}_error"]
    diff = err - err.sel(rule=reference, drop=True)
    mean, lo, _, _ = xr.apply_ufunc(t_interval, diff, input_core_dims=[["seed"]], output_core_dims=[[], [], [], []])
    broken = (mean > margin) & (lo > 0)
    depth = xr.where(broken, broken["n_hidden"], np.nan).min("n_hidden", skipna=True)
    depth.attrs.update(long_name=f"breaking depth vs {reference} ({metric} test error, margin {margin} pp)",
                       units="1", margin=margin, reference=reference, metric=metric)
    return depth.rename("breaking_depth")


def convergence(study: xr.Dataset, thresholds=THRESHOLDS, on: str | None = None) -> xr.Dataset:
    """Epochs and training seconds until an accuracy first reaches each threshold.

    ``on`` is ``"validation"`` (the default when the study has a validation
    split) or ``"test"``.

    Returns
    -------
    xarray.Dataset
        Per run: ``epochs_to`` and ``seconds_to`` over (``threshold``, run dims),
        NaN if never reached; ``seconds_per_epoch`` (training time / epochs done).
    """
    on = on or ("validation" if has_validation(study) else "test")
    acc, ep, wall = study[f"{on}_accuracy"], epoch_of(study), study["wall_time"]
    th = xr.DataArray(list(thresholds), dims="threshold", coords={"threshold": list(thresholds)})
    idx = _over(acc >= th, "step", first_index)
    epochs, seconds = _take(ep, idx), _take(wall, idx)
    done = _over(ep.where(np.isfinite(wall)), "step", last_finite)
    per_epoch = (_over(wall, "step", last_finite) / done.where(done > 0)).where(_status(study) == "ok")
    return xr.Dataset({"epochs_to": epochs, "seconds_to": seconds, "seconds_per_epoch": per_epoch})


def alignment_summary(study: xr.Dataset, var: str = "delta_alignment", angles=ANGLES) -> xr.Dataset:
    """Per-layer alignment at the end and the epoch it first falls below each angle.

    Returns
    -------
    xarray.Dataset
        ``final`` (run dims, ``layer``) in degrees and ``epochs_below``
        (``angle``, run dims, ``layer``), NaN if never below (or not measured).
    """
    a = study[var].transpose(..., "step")
    ep = epoch_of(study).broadcast_like(a).transpose(*a.dims)
    th = xr.DataArray(list(angles), dims="angle", coords={"angle": list(angles)})
    idx = _over(a < th, "step", first_index)
    final = final_value(study, var)
    return xr.Dataset({"final": final, "epochs_below": _take(ep, idx).where(np.isfinite(final))})


def final_value(study: xr.Dataset, var: str) -> xr.DataArray:
    """The last finite value of ``var`` over ``step`` in each run (NaN if never measured)."""
    return _over(study[var].transpose(..., "step"), "step", last_finite)


def gradient_flow(study: xr.Dataset) -> xr.DataArray:
    """``delta_norm`` per layer at the end, relative to the readout layer (``layer_from_top`` 0)."""
    dn = final_value(study, "delta_norm")
    readout = dn.sel(layer=study["n_hidden"] + 1) if "n_hidden" in study.dims else dn.isel(layer=-1)
    out = (dn / readout.where(readout > 0)).rename("gradient_flow")
    out.attrs.update(long_name="delta_norm relative to the readout layer at the end", units="1")
    return out

