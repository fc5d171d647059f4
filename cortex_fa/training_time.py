"""What a study cost: the training time of its runs, chunk by chunk, each run counted once.

A protocol study is made of selection and study chunks, and a study chunk
takes its selection seeds' runs from the selection file (the same
configuration, the same hash). Adding the chunks' times would count those
runs twice; :func:`training_time` counts a run once, in the first chunk that
holds it.

The time of a run is its own ``wall_time`` at its last step: the seconds it
spent training, with metric and test evaluation excluded. The wall clock of a
chunk is longer (evaluation, start-up, workers waiting on each other) and is
not stored in the files; with ``w`` workers it is roughly the chunk's
training time divided by ``w``.
"""

from __future__ import annotations

import numpy as np
import xarray as xr

from cortex_fa.errors import ResultsError


def _runs(study: xr.Dataset):
    """(config hash, training seconds) of every run present in ``study``."""
    for name in ("config_hash", "wall_time", "status"):
        if name not in study:
            raise ResultsError(f"the file has no {name!r}: not a cortex_fa study file")
    run_dims = list(study["config_hash"].dims)
    wall = study["wall_time"].transpose(*run_dims, "step").values.reshape(-1, study.sizes["step"])
    hashes = study["config_hash"].values.ravel()
    status = study["status"].transpose(*run_dims).values.ravel()
    for h, s, row in zip(hashes, status, wall):
        if str(s) == "missing":
            continue
        finite = row[np.isfinite(row)]
        yield str(h), float(finite[-1]) if finite.size else 0.0


def training_time(parts) -> list[dict]:
    """Per chunk: its runs, the runs first counted there and their training seconds.

    Parameters
    ----------
    parts : iterable of (label, xarray.Dataset)
        The chunks, e.g. file names and opened study files, in the order to count them.

    Returns
    -------
    list of dict
        One row per chunk with ``label``, ``stage`` (the file's ``protocol_stage``, or ``""``),
        ``depths``, ``runs``, ``counted`` (runs not met in an earlier chunk) and ``seconds``
        (their summed training time).
    """
    seen: set[str] = set()
    rows = []
    for label, study in parts:
        runs = list(_runs(study))
        new = [(h, s) for h, s in runs if h not in seen]
        seen.update(h for h, _ in new)
        depths = [int(d) for d in np.atleast_1d(study["n_hidden"].values)] if "n_hidden" in study.coords else []
        rows.append(dict(label=label, stage=str(study.attrs.get("protocol_stage", "")), depths=depths,
                         runs=len(runs), counted=len(new), seconds=sum(s for _, s in new)))
    return rows


def hours_minutes(seconds: float) -> str:
    """``5 h 07 min`` (or ``12 min`` under an hour), rounded to the minute."""
    minutes = int(round(seconds / 60.0))
    return f"{minutes // 60} h {minutes % 60:02d} min" if minutes >= 60 else f"{minutes} min"
