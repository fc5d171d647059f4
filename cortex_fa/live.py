"""Partial results written while a run trains, for the live app (``cortex-fa serve --live``).

A run that is still training keeps ``NAME.partial.nc`` next to the ``NAME.nc``
it will write: a complete, schema-checked results file of the steps logged so
far, with ``attrs["status"] = "running"`` and ``attrs["partial"] = 1``. It is
rewritten atomically (:func:`cortex_fa.results.save_results`) at logging
steps, never more often than every ``interval`` seconds, and removed once the
final file is in place. The name and the status both say "not finished":
readers of a directory skip partial files unless asked for them, and a
resumed sweep deletes the ones a killed run left behind.
"""

from __future__ import annotations

import os
import time
from pathlib import Path

from cortex_fa.results import PARTIAL_SUFFIX, partial_path, save_results

__all__ = ["PARTIAL_SUFFIX", "PartialWriter", "partial_path"]
DEFAULT_INTERVAL = 2.0  # seconds: live enough for a person watching, cheap for the run


class PartialWriter:
    """A callback (:mod:`cortex_fa.callbacks`) that keeps a partial file while a simulation runs.

    Pass it as ``sim.run(callbacks=[writer])``; as ``train(on_log=writer)`` it
    is called with the recorder directly.

    Parameters
    ----------
    path : path-like
        The partial file to keep (see :func:`cortex_fa.results.partial_path`).
    interval : float, optional
        Fewest seconds between two writes (default 2, or
        ``$CORTEX_FA_LIVE_INTERVAL``). The first logged step is written at
        once, so a reader sees the run as soon as it starts.
    budget : float
        Largest share of the run's time spent writing: after a write that took
        ``t`` seconds the next waits at least ``t / budget`` (a slow disk writes
        less often instead of slowing training).

    Notes
    -----
    Writing goes through ``save_results`` (temporary file, then ``os.replace``),
    so a reader never sees half a file; an error while writing (disk full) is
    remembered in :attr:`error` and stops further writes rather than the run.
    """

    def __init__(self, path, *, interval: float | None = None, budget: float = 0.02):
        self.path = Path(path)
        if interval is None:
            interval = float(os.environ.get("CORTEX_FA_LIVE_INTERVAL", DEFAULT_INTERVAL))
        self.interval, self.budget = float(interval), float(budget)
        self.next_at = 0.0  # monotonic time of the earliest next write
        self.writes, self.seconds, self.error = 0, 0.0, None

    def on_log(self, sim) -> None:
        """After every logged step of a :class:`~cortex_fa.simulation.Simulation` run."""
        self(sim.recorder)

    def __call__(self, recorder) -> None:
        now = time.monotonic()
        if self.error is not None or now < self.next_at:
            return
        ds = recorder.to_dataset(status="running")
        ds.attrs["partial"] = 1
        try:
            save_results(ds, self.path, compress=False, history="partial results of a run in progress")
        except Exception as exc:  # noqa: BLE001 - live output is a convenience; training goes on
            self.error = exc
            return
        spent = time.monotonic() - now
        self.writes += 1
        self.seconds += spent
        # The first write pays the NetCDF writer's one-time imports, which the final
        # save would pay anyway: only later writes set the pace of the budget.
        pause = self.interval if self.writes == 1 else max(self.interval, spent / self.budget)
        self.next_at = time.monotonic() + pause

    def discard(self) -> None:
        """Remove the partial file (call once the final file is written)."""
        self.path.unlink(missing_ok=True)
