"""What early stopping with a shorter patience would have done, replayed from a longer run.

A run trained with patience :math:`P` holds the validation history an
otherwise identical run with patience :math:`p \\le P` would have seen: the
patience decides only when a run ends, never what it does before (a plateau
schedule cuts the rate on ``lr_patience``, not ``patience``, and every random
stream is fixed by the seed). So one run at the longest patience answers
"did the shorter wait end on a real plateau?" for every shorter one, at no
extra training.

With validation accuracies :math:`v_1, v_2, \\dots` at epoch ends and
:math:`b_e` the first epoch of the best of :math:`v_1..v_e` (later ties are no
improvement), patience :math:`p` stops at the first epoch :math:`e` with
:math:`e - b_e \\ge p`, exactly as :class:`cortex_fa.callbacks.EarlyStopping`
does; its selected test error is the test error at :math:`b_e`.
"""

from __future__ import annotations

import numpy as np
import xarray as xr

from cortex_fa.errors import ResultsError
from cortex_fa.verdicts import N_TEST

VALUES = ("stop_epoch", "best_epoch", "best_validation_accuracy", "selected_misclassified")


def replay_run(validation, test, patience: int, ended_by_cap: bool = False) -> tuple[float, float, float, float]:
    """``(stop_epoch, best_epoch, best validation accuracy, test accuracy at best)`` of one run under ``patience``.

    Parameters
    ----------
    validation, test : array_like
        One run's accuracies over logged steps; epoch ends are the steps
        with a finite test accuracy (a NaN validation accuracy there is an
        epoch without improvement).
    patience : int
        Epochs without a better validation accuracy before the replayed stop.
    ended_by_cap : bool
        Whether the run ended at its epoch cap: a replay that finds no stop
        then ends where the run ended. Otherwise it is NaN (the run stopped
        on a shorter patience than this one, so its history is too short).

    Epochs are counted from 1. NaN everywhere for a run without epoch ends.
    """
    validation, test = np.asarray(validation, dtype=float), np.asarray(test, dtype=float)
    ends = np.flatnonzero(np.isfinite(test))
    best_value, best_at = -np.inf, None
    for epoch, step in enumerate(ends, start=1):
        value = validation[step]
        if np.isfinite(value) and value > best_value:
            best_value, best_at = value, (epoch, step)
        if best_at is not None and epoch - best_at[0] >= patience:
            return float(epoch), float(best_at[0]), float(best_value), float(test[best_at[1]])
    if best_at is None or not ended_by_cap:
        return (np.nan,) * 4
    return float(len(ends)), float(best_at[0]), float(best_value), float(test[best_at[1]])


def replay(study: xr.Dataset, patience, n_test: int = N_TEST) -> xr.Dataset:
    """Replay early stopping at each of ``patience`` on every run of ``study``.

    Parameters
    ----------
    study : xarray.Dataset
        A study or run file with ``validation_accuracy`` and
        ``test_accuracy`` over ``step`` (and ``stop_reason`` per run, which
        tells runs that reached the epoch cap).
    patience : int or sequence of int
        The patiences to replay; a new dim ``replay_patience``.

    Returns
    -------
    xarray.Dataset
        Per run and patience: ``stop_epoch``, ``best_epoch``,
        ``best_validation_accuracy`` and ``selected_misclassified`` (test
        images wrong at the best epoch, an integer). NaN where the run ended
        before that patience would have stopped it.
    """
    if "validation_accuracy" not in study or "test_accuracy" not in study:
        raise ResultsError("replaying early stopping needs validation_accuracy and test_accuracy; "
                           "train with a validation split (validation = N)")
    patiences = [int(p) for p in np.atleast_1d(patience)]
    if any(p < 1 for p in patiences):
        raise ResultsError(f"patience must be integers >= 1, got {patiences}")
    # a study holds stop_reason per run; a single run's file in its attributes
    reason = study["stop_reason"] if "stop_reason" in study else study.attrs.get("stop_reason", "")
    capped = xr.DataArray(reason == "epoch_cap") if isinstance(reason, str) else reason == "epoch_cap"

    def kernel(val, tst, cap, p):
        out = np.full(val.shape[:-1] + (4,), np.nan)
        for idx in np.ndindex(val.shape[:-1]):
            out[idx] = replay_run(val[idx], tst[idx], p, bool(cap[idx]))
        return out

    parts = []
    for p in patiences:
        res = xr.apply_ufunc(kernel, study["validation_accuracy"], study["test_accuracy"], capped, kwargs={"p": p},
                             input_core_dims=[["step"], ["step"], []], output_core_dims=[["value"]],
                             dask_gufunc_kwargs={"output_sizes": {"value": 4}})
        parts.append(res.expand_dims(replay_patience=[p]))
    res = xr.concat(parts, "replay_patience")
    out = xr.Dataset({name: res.isel(value=i, drop=True) for i, name in enumerate(VALUES)})
    out["selected_misclassified"] = np.round((1.0 - out["selected_misclassified"]) * n_test)
    out["replay_patience"].attrs.update(long_name="patience replayed (epochs without a better validation accuracy)", units="1")
    out["stop_epoch"].attrs.update(long_name="epoch the replayed early stopping ends the run", units="1")
    out["best_epoch"].attrs.update(long_name="epoch of best validation accuracy before the replayed stop", units="1")
    out["best_validation_accuracy"].attrs.update(long_name="best validation accuracy before the replayed stop", units="1")
    out["selected_misclassified"].attrs.update(long_name="misclassified test images at the replayed best epoch", units="1")
    return out


def replay_cost(study: xr.Dataset, patience: int, n_test: int = N_TEST) -> xr.Dataset:
    """What stopping at ``patience`` instead of the run's own would have cost, paired seed by seed.

    Returns
    -------
    xarray.Dataset
        Per run cell (seeds reduced): ``cost_mean``, ``cost_lo``, ``cost_hi``
        (95 % t-interval) of the extra misclassified test images at the
        replayed selection, replayed minus own (0: the longer wait bought
        nothing, the run had ended on a plateau), ``n`` (seeds), and
        ``epochs_saved`` (mean epochs the shorter wait would not have trained).
    """
    from cortex_fa import analysis

    both = replay(study, sorted({int(patience), own_patience(study)}), n_test)
    short = both.sel(replay_patience=int(patience), drop=True)
    own = both.sel(replay_patience=own_patience(study), drop=True)
    cost = analysis.seed_summary(short["selected_misclassified"] - own["selected_misclassified"])
    saved = (own["stop_epoch"] - short["stop_epoch"]).mean("seed")
    return xr.Dataset({"cost_mean": cost["mean"], "cost_lo": cost["lo"], "cost_hi": cost["hi"], "n": cost["n"],
                       "epochs_saved": saved})


def own_patience(study: xr.Dataset) -> int:
    """The patience the study's runs trained with (one value: a study swept over patience is refused)."""
    from cortex_fa.selection import _run_option

    if "patience" in study.dims:
        raise ResultsError("the study sweeps patience; select one value (study.sel(patience=...)) before replaying")
    values = np.unique(_run_option(study, "patience").values)
    values = values[np.isfinite(values)]
    if values.size != 1:
        raise ResultsError("the study does not say which one patience its runs trained with (their config)")
    return int(values[0])
