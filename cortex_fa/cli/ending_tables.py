"""Report tables of how runs ended: chosen rates, stop reasons, and early stopping replayed.

Part of ``cortex-fa report`` (:mod:`cortex_fa.cli.report`): a protocol study's
declared defaults and chosen rates, every study's stop reasons (no run is
dropped), and, with ``--replay-patience``, what a shorter early-stopping wait
would have cost (:mod:`cortex_fa.stopping`).
"""

from __future__ import annotations

import numpy as np

from cortex_fa.cli.tables import Table, interval, wide
from cortex_fa.errors import ConfigError, CortexFAError


def stop_reasons(study):
    """Per run cell (rule, depth, any swept option) and stop reason: how many seeds ended that way.

    Missing runs count as ``missing``. Only seeds are summed: a swept option
    such as ``lr_schedule`` keeps its own rows.
    """
    import xarray as xr

    reason = study["stop_reason"].where(study["stop_reason"] != "", study["status"])
    reason = reason.where(study["status"] != "missing", "missing")
    names = sorted({str(v) for v in np.unique(reason.values)})
    counts = [(reason == name).sum("seed").expand_dims(stop_reason=[name]) for name in names]
    return xr.concat(counts, "stop_reason")


def protocol_tables(study) -> list[Table]:
    """The chosen rates of a protocol study, and every study's stop reasons (no run dropped)."""
    tables = []
    if "chosen_lr" in study:
        tables.append(wide(study["chosen_lr"], "n_hidden", "g", "chosen_lr",
                           "Learning rate chosen per rule and depth by the declared protocol (best eligible "
                           "validation score of the grid on the selection seeds; exact ties to the smaller rate)"))
    if "stop_reason" in study and (study["stop_reason"] != "").any():
        counts = stop_reasons(study)
        cells = ["rule", "n_hidden", *(d for d in counts.dims if d not in ("rule", "n_hidden", "stop_reason"))]
        frame = counts.transpose(*cells, "stop_reason").to_dataframe(name="n")["n"].unstack("stop_reason")
        frame.index = frame.index.set_names(["rule", "depth", *cells[2:]])
        frame.columns = [str(c) for c in frame.columns]
        tables.append(Table("stop_reasons", "Stop reasons: runs per rule and depth that ended by each reason "
                            "(diverged and stalled runs are counted here and enter the tables above)",
                            frame.map(str), frame))
    return tables


def replay_tables(study, patiences) -> list[Table]:
    """Per shorter patience: extra misclassified test images (paired, replayed - own) and epochs saved."""
    from cortex_fa import stopping

    tables = []
    for p in patiences:
        cost = stopping.replay_cost(study, p)
        tables.append(interval(cost, "cost", "n_hidden", f"patience_{p}_cost",
                               f"Early stopping replayed at patience {p}: extra misclassified test images against the "
                               f"runs' own patience (replayed - own, paired by seed), mean [95% t-interval]; "
                               "0: the longer wait bought nothing"))
        tables.append(wide(cost.epochs_saved, "n_hidden", ".1f", f"patience_{p}_epochs_saved",
                           f"Early stopping replayed at patience {p}: epochs it would not have trained (mean over seeds)"))
    return tables


def replay_patiences(text, study) -> list[int]:
    """``--replay-patience 3,6`` as integers, each shorter than the runs' own patience."""
    from cortex_fa import analysis, stopping

    if text is None:
        return []
    try:
        values = [int(v) for v in str(text).split(",")]
    except ValueError:
        values = []
    if not values or any(v < 1 for v in values):
        raise ConfigError(f"--replay-patience takes integers >= 1 separated by commas (e.g. 3,6), got {text!r}")
    if not analysis.has_validation(study):
        raise ConfigError("--replay-patience needs runs trained with a validation split (validation = N)")
    try:
        own = stopping.own_patience(study)
    except CortexFAError as exc:
        raise ConfigError(f"--replay-patience: {exc}") from None
    longer = [v for v in values if v > own]
    if longer:
        raise ConfigError(f"--replay-patience {','.join(map(str, longer))}: the runs trained with patience {own}, "
                          f"so only shorter waits can be replayed (1 to {own})")
    return values
