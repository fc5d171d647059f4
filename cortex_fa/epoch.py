"""One epoch in progress, the blocks of block-trained models, the progress bar and the Ctrl-C handler."""

from __future__ import annotations

import signal
import sys
import threading
from collections import deque
from contextlib import contextmanager
from dataclasses import dataclass

import numpy as np

from cortex_fa import kernels, optim


@dataclass
class Epoch:
    """The state of an epoch in progress: enough to continue it after a stop or a restore.

    Attributes
    ----------
    number : int
        0-based index of the epoch.
    order : ndarray
        Training-image indices in this epoch's order (one permutation drawn
        from the data stream when the epoch starts).
    position : int
        Images of ``order`` already trained on.
    loss, correct, seen : float, int, int
        Running sums for ``train_loss`` and ``train_accuracy``.
    lr_drops : int
        Cuts of the rate a plateau schedule made before this epoch (fixed
        for the epoch; see :func:`cortex_fa.schedule.plateau_drops`).
    """

    number: int
    order: np.ndarray
    position: int = 0
    loss: float = 0.0
    correct: int = 0
    seen: int = 0
    lr_drops: int = 0

    def add(self, loss_sum: float, correct: int, n: int) -> None:
        self.loss += loss_sum
        self.correct += correct
        self.seen += n

    def learning_rate(self, config, step: int, total: int) -> float:
        """The rate of the update after ``step`` (constant, step and plateau schedules change per epoch only)."""
        return optim.learning_rate(config, self.number, step, total, self.lr_drops)


def next_block(model, data, epoch: Epoch, bs, step, steps_per_epoch, logged, config, total) -> deque:
    """Train every batch up to the next logged step or epoch end in one ``model.train_block`` call.

    For models that run many presentations per call (the Brian2 backend):
    Python then steps in only where the loop needs the weights. Batch ``k``
    of the block presents its ``N`` digits with ``lr_k / N`` each, exactly as
    ``train_batch`` would. Returns ``(loss_sum, correct)`` per batch.
    """
    order, start = epoch.order, epoch.position
    end = step + 1
    while end % steps_per_epoch and not logged(end) and (end - step) * bs < len(order) - start:
        end += 1
    stop = min(len(order), start + (end - step) * bs)
    idx = order[start:stop]
    sizes = [min(bs, stop - s) for s in range(start, stop, bs)]
    lrs = np.concatenate([np.full(n, epoch.learning_rate(config, step + k, total) / n) for k, n in enumerate(sizes)])
    labels = data.train_labels[idx]
    losses, correct = model.train_block(kernels.normalise(data.train_images[idx]), kernels.one_hot(labels), labels, lrs)
    bounds = np.cumsum([0, *sizes])
    return deque((float(losses[a:b].sum()), int(correct[a:b].sum())) for a, b in zip(bounds[:-1], bounds[1:]))


def progress_bar(enabled: bool, total: int, desc: str, initial: int = 0):
    """An epoch's bar: stays on screen in a terminal, tqdm's widget in Jupyter, nothing in pipes or CI logs."""
    if not enabled:
        return None
    bar, notebook = bar_class()
    # In a terminal disable=None shows the bar only on a TTY (never in pipes or CI logs). A
    # notebook's stderr is no TTY, so there the widget is enabled explicitly.
    # leave=True: a finished epoch's bar stays, so the terminal shows the run's history.
    return bar(total=total, initial=initial, desc=desc, unit="batch", leave=True, dynamic_ncols=True,
               disable=False if notebook else None, **({} if notebook else {"file": sys.stderr}))


def bar_class():
    """``(tqdm class, whether it is the notebook widget)``: tqdm.auto's choice."""
    from tqdm.auto import tqdm

    return tqdm, tqdm.__module__.startswith("tqdm.notebook")


@contextmanager
def sigint_stops(sim):
    """Ctrl-C asks the run to stop at the next batch boundary; a second Ctrl-C interrupts at once.

    ``sim`` is the :class:`~cortex_fa.simulation.Simulation` whose ``_stop_request`` the handler sets.
    """
    if threading.current_thread() is not threading.main_thread():
        yield
        return

    def handler(signum, frame):
        if sim._stop_request == "interrupted":
            raise KeyboardInterrupt
        sim._stop_request = "interrupted"

    previous = signal.signal(signal.SIGINT, handler)
    try:
        yield
    finally:
        signal.signal(signal.SIGINT, previous)
