"""Model selection over a study: the best-validation epoch, convergence, and option choice.

Everything here reads the validation split only (the last training images,
never trained on); the test set plays no part. Built on the kernels and
wrappers of :mod:`cortex_fa.analysis`, which gives the selected test error
itself (:func:`cortex_fa.analysis.test_errors`).
"""

from __future__ import annotations

import json

import numpy as np
import xarray as xr

from cortex_fa.analysis import _over, _take, epoch_of, epochs_trained, first_argmax


def selection(study: xr.Dataset) -> xr.Dataset:
    """Per run: the best-validation epoch, the epochs trained and whether early stopping ended it.

    Returns
    -------
    xarray.Dataset
        ``best_validation_epoch``, ``epochs_done`` (NaN without validation)
        and ``converged`` (bool: early stopping fired before ``epochs``).
    """
    ep = epoch_of(study)
    if "validation_accuracy" in study:
        val = study["validation_accuracy"]
    else:
        val = xr.full_like(study["test_accuracy"], np.nan)
    best = _take(ep, _over(val, "step", first_argmax))
    done = epochs_trained(study, val)
    patience = _run_option(study, "patience")
    converged = (done - best >= patience) & np.isfinite(patience)
    return xr.Dataset({"best_validation_epoch": best, "epochs_done": done, "converged": converged})


def _run_option(study, name):
    """A numeric run option per run, from the per-run ``config`` JSON (NaN if absent or None)."""
    def value(text):
        try:
            v = json.loads(str(text)).get(name)
        except (TypeError, ValueError, AttributeError):
            return np.nan
        return float(v) if isinstance(v, (int, float)) and not isinstance(v, bool) else np.nan

    if "config" in study:
        return xr.apply_ufunc(np.vectorize(value, otypes=[float]), study["config"])
    return xr.DataArray(value(study.attrs.get("config", "{}")))


def choose_option(study: xr.Dataset, dim: str = "lr") -> xr.Dataset:
    """Per rule, the value of swept option ``dim`` with the best validation accuracy.

    The score of a value is its best validation accuracy during training
    (the accuracy early stopping would select), averaged over every other run
    dim (depths, seeds). The test set plays no part.

    Returns
    -------
    xarray.Dataset
        ``score`` (rule x ``dim``, percent validation accuracy) and ``chosen``
        (per rule: the value with the highest score; NaN if none was validated).
    """
    if dim not in study.dims:
        from cortex_fa.errors import ResultsError

        raise ResultsError(f"'{dim}' is not a swept dimension of the study (dims: {', '.join(map(str, study.dims))})")
    cell = choose_cell(study, [dim])
    return xr.Dataset({"score": cell["score"], "chosen": cell[f"chosen_{dim}"]})


def choose_cell(study: xr.Dataset, dims) -> xr.Dataset:
    """Per rule, the joint values of several swept options with the best validation accuracy.

    Choosing each option on its own score (:func:`choose_option`, averaged
    over the others) can pick a cell that is not the best one: with a forward
    bound w and a feedback bound b swept together, the w that is best on
    average over b need not be best at the best b. Scores as in
    :func:`choose_option`, averaged over depths and seeds only.

    Returns
    -------
    xarray.Dataset
        ``score`` (rule x ``dims``, percent) and ``chosen_<dim>`` per rule and
        dim (the first best cell in grid order; NaN if none was validated).
    """
    dims = list(dims)
    best = 100.0 * study["validation_accuracy"].max("step", skipna=True)
    score = best.mean([d for d in best.dims if d not in ("rule", *dims)], skipna=True)
    stacked = score.stack(cell=dims)
    ok = stacked.notnull().any("cell")
    pick = stacked.isel(cell=stacked.fillna(-np.inf).argmax("cell"))
    out = xr.Dataset({"score": score})
    for dim in dims:
        out[f"chosen_{dim}"] = pick[dim].reset_coords(drop=True).where(ok)
    return out
