"""Callbacks: code that watches a :class:`~cortex_fa.simulation.Simulation` run and may stop it.

A callback is any object with some of these methods; each gets the
simulation, whose ``step``, ``epoch``, ``recorder``, ``validation_history``,
``weights`` and ``results`` it may read:

* ``on_log(sim)``: after every logged step (its row is in ``sim.recorder``);
* ``on_epoch_end(sim)``: after every epoch end (after its ``on_log``).

``sim.stop(reason)`` ends the current :meth:`~cortex_fa.simulation.Simulation.run`
at the next batch boundary. Early stopping, the live writer and periodic
checkpoints are callbacks; none of them is a branch inside the loop.
"""

from __future__ import annotations

from pathlib import Path

from cortex_fa.schedule import best_epoch


class Callback:
    """Base class with do-nothing hooks (subclassing it is optional)."""

    def on_log(self, sim) -> None:
        """After a logged step."""

    def on_epoch_end(self, sim) -> None:
        """After an epoch end."""


class EarlyStopping(Callback):
    """Stop once ``patience`` epochs have passed without a better validation accuracy.

    Reads ``sim.validation_history`` (one accuracy per epoch end, kept by the
    simulation and stored in its checkpoints), so it holds no state of its
    own and a restored simulation stops exactly where an unbroken one would.
    Added by the simulation itself when ``config.patience`` is set.
    """

    def __init__(self, patience: int):
        self.patience = int(patience)

    def on_epoch_end(self, sim) -> None:
        if sim.validation_history and best_epoch(sim.validation_history, self.patience)[1]:
            sim.stop("early_stop")


class TrainErrorTarget(Callback):
    """Stop once an epoch's running training error (percent) is at or below ``target``.

    The error is the one measured while the epoch trained (on the batches as
    they were presented, dropout included), as Nøkland's code measures it;
    it is compared in counts, ``100 * wrong <= target * seen``. Reads
    ``sim.last_epoch`` (the epoch that just ended), so it holds no state.
    Added by the simulation itself when ``config.stop_train_error`` is set;
    the stop reason is ``train_error_target``.
    """

    def __init__(self, target: float):
        self.target = float(target)

    def on_epoch_end(self, sim) -> None:
        ep = sim.last_epoch
        if ep is not None and ep.seen and 100 * (ep.seen - ep.correct) <= self.target * ep.seen:
            sim.stop("train_error_target")


class OnLog(Callback):
    """Adapter for ``on_log=fn``: calls ``fn(recorder)`` after every logged step."""

    def __init__(self, fn):
        self.fn = fn

    def on_log(self, sim) -> None:
        self.fn(sim.recorder)


class Checkpoint(Callback):
    """Store the simulation to ``path`` every ``every`` epochs (see :meth:`Simulation.store`).

    Written atomically, so a run killed while storing keeps the previous
    checkpoint. ``cortex-fa run --checkpoint PATH`` adds one.
    """

    def __init__(self, path, every: int = 1):
        self.path, self.every = Path(path), max(1, int(every))
        self.writes = 0

    def on_epoch_end(self, sim) -> None:
        if sim.epoch % self.every == 0:
            sim.store(self.path)
            self.writes += 1


def as_callbacks(callbacks, on_log=None) -> list:
    """The list of callbacks for one ``run``: ``callbacks`` plus ``on_log`` wrapped."""
    out = list(callbacks or ())
    if on_log is not None:
        out.append(OnLog(on_log))
    for cb in out:
        if not (hasattr(cb, "on_log") or hasattr(cb, "on_epoch_end")):
            raise TypeError(f"a callback needs on_log(sim) or on_epoch_end(sim); {type(cb).__name__} has neither")
    return out
