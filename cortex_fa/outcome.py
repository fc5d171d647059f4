"""How a run ended and what it gives back: the stop reason and the results Dataset.

Functions of a :class:`~cortex_fa.simulation.Simulation` (read through its
attributes only, so this module does not import it): :func:`end_reason` is
``sim.end_reason()`` and :func:`results_dataset` is ``sim.results``.
"""

from __future__ import annotations

import numpy as np

from cortex_fa.results import annotate
from cortex_fa.schedule import best_epoch

# A run that ends below this accuracy (twice chance for 10 classes) never learned: "stalled_at_chance".
STALLED_ACCURACY = 0.2


def end_reason(sim) -> str:
    """Why training ended (or has not): ``early_stop``, ``epoch_cap``, ``diverged``,
    ``stalled_at_chance`` (ended with a best validation accuracy, else a last test
    accuracy, under :data:`STALLED_ACCURACY`), ``interrupted``, ``running``, or a callback's reason."""
    if sim.status in ("diverged", "interrupted"):
        return sim.status
    if sim.current is not None or (sim.stop_reason is None and sim.epoch < sim.config.epochs):
        return "running" if sim.stop_reason is None else sim.stop_reason
    accuracy = max(sim.validation_history) if sim.validation_history else (
        sim.recorder.rows[-1].get("test_accuracy", np.nan) if sim.recorder.rows else np.nan)
    if np.isfinite(accuracy) and accuracy < STALLED_ACCURACY:
        return "stalled_at_chance"
    return sim.stop_reason or "epoch_cap"


def results_dataset(sim) -> "xarray.Dataset":  # noqa: F821
    """The run's results so far (dims ``step``, ``layer``; the schema of :mod:`cortex_fa.results`)."""
    status = "running" if sim.current is not None and sim.status == "ok" else sim.status
    extra = {}
    if sim.validation_history:
        extra = dict(validation_size=len(sim.validation_index),
                     validation_split=f"last {len(sim.validation_index)} images of the training file",
                     best_validation_epoch=best_epoch(sim.validation_history)[0] + 1,
                     stopped_epoch=len(sim.validation_history),
                     stopped_early=int(sim.stop_reason == "early_stop"))
    extra["stop_reason"] = end_reason(sim)
    if sim.resumed_at:
        extra["resumed_at_steps"] = ",".join(map(str, sim.resumed_at))
    ds = sim.recorder.to_dataset(status=status, diverged_at=sim.diverged_at, extra=extra)
    if sim.snapshots is not None:
        ds = annotate(ds.merge(sim.snapshots.to_dataset(sim.steps_per_epoch), combine_attrs="override"))
    return ds
