"""One ``net.run`` for the life of a model, paused between batches.

``Network.run`` costs ~0.1-0.25 s before its first step (a full
``gc.collect()`` and re-creation of every code object), longer than a whole
presentation. Calling it per example would dominate online training, so the
network runs once, on a worker thread, for as long as the model lives. A
network operation on the presentation clock marks the boundaries between
presentations: it hands the settled example to the current job (which learns
from it), loads the next example, and, when the job is finished, posts the
result and blocks until the next job arrives. The main thread and the
simulation therefore strictly alternate; no array is touched by both at once.

Jobs: :class:`TrainJob` (present and learn, one update per example) and
:class:`PresentJob` (present only, optionally recording :class:`Trace`).
"""

from __future__ import annotations

import queue
import threading

from cortex_fa.extras import require

require("brian2", "cortex_fa.backends.brian2.presentation_thread")  # one line naming the extra, not a traceback, without brian2
import brian2 as b2  # noqa: E402
import numpy as np

_STOP = object()
# Steps in the never-ending run: ~17 years at dt = 2 ms, below Brian2's
# warning threshold for float precision of t (2**40 steps).
_FOREVER_STEPS = 2**38


class Job:
    """``n`` presentations: ``load(k)`` sets example ``k`` up, ``settled(k)`` reads it.

    ``result()`` is what :meth:`Runner.submit` returns once all ``n`` settled.
    """

    n = 0
    ticket = 0

    def load(self, k: int) -> None:
        raise NotImplementedError

    def settled(self, k: int) -> None:
        raise NotImplementedError

    def result(self):
        return None


class Runner:
    """Drive ``net`` on a worker thread; :meth:`submit` runs one job to completion.

    Parameters
    ----------
    net : brian2.Network
    presentation_clock : brian2.Clock
        Ticks once per presentation (``settle_steps * dt``).
    clock : brian2.Clock
        The integration clock.
    step_hook : callable, optional
        Called at the end of every integration step with no argument (used
        to record rate traces); adds one Python call per step.
    """

    def __init__(self, net, presentation_clock, clock, *, step_hook=None):
        self.net = net
        self._duration = _FOREVER_STEPS * clock.dt
        self._jobs: queue.SimpleQueue = queue.SimpleQueue()
        self._done: queue.SimpleQueue = queue.SimpleQueue()
        self._job: Job | None = None
        self._k = 0
        self._thread: threading.Thread | None = None
        self._dead: BaseException | None = None
        self._closing = False
        self._tickets = 0
        net.add(b2.NetworkOperation(self._boundary, clock=presentation_clock, when="start",
                                    name="presentation_boundary"))
        if step_hook is not None:
            net.add(b2.NetworkOperation(step_hook, clock=clock, when="end", name="step_hook"))

    # -- main thread -----------------------------------------------------------
    def submit(self, job: Job):
        """Present the job's examples in the running simulation; return ``job.result()``."""
        if self._dead is not None:
            raise RuntimeError(f"the Brian2 simulation has ended ({self._dead!r}); compile a new model")
        if job.n == 0:
            return job.result()
        if self._thread is None:
            self._thread = threading.Thread(target=self._run, name="cortex_fa-brian2", daemon=True)
            self._thread.start()
        self._tickets += 1
        job.ticket = self._tickets
        self._jobs.put(job)
        while True:
            ticket, status, payload = self._done.get()
            # A stale answer belongs to a job whose caller was interrupted.
            if ticket in (job.ticket, None):
                break
        if status == "error":
            raise payload
        return payload

    def close(self, timeout: float = 10.0) -> None:
        """End the simulation and its thread (idempotent)."""
        self._closing = True
        if self._thread is not None and self._thread.is_alive():
            self._jobs.put(_STOP)
            self._thread.join(timeout)
        self._dead = self._dead or RuntimeError("the model was closed")

    # -- worker thread -----------------------------------------------------------
    def _run(self):
        try:
            self.net.run(self._duration, namespace={})
        except BaseException as exc:  # noqa: BLE001 - reported to the main thread
            self._dead = exc
            self._done.put((None, "error", exc))
            return
        if not self._closing:
            # Brian2's SIGINT handler stops running networks on Ctrl+C instead
            # of raising; pass the interrupt on to the waiting main thread.
            self._dead = KeyboardInterrupt("Brian2 simulation stopped")
            self._done.put((None, "error", self._dead))

    def _boundary(self):
        job = self._job
        try:
            if job is not None:
                job.settled(self._k)
                self._k += 1
                if self._k < job.n:
                    job.load(self._k)
                    return
                self._done.put((job.ticket, "ok", job.result()))
        except Exception as exc:  # noqa: BLE001 - the run goes on; the caller gets the error
            self._done.put((job.ticket, "error", exc))
        # Drop every reference to the finished job (and so to its model)
        # before blocking: an idle simulation must not keep a model alive.
        self._job = job = None
        while True:
            job = self._jobs.get()
            if job is _STOP:
                self.net.stop()
                return
            try:
                job.load(0)
            except Exception as exc:  # noqa: BLE001
                self._done.put((job.ticket, "error", exc))
                job = None
                continue
            self._job, self._k = job, 0
            return


class TrainJob(Job):
    """Present ``x`` one row at a time; after each settles, ``model.learn`` updates the weights."""

    def __init__(self, model, x, y, labels, lr):
        self.model, self.x, self.y, self.labels, self.lr = model, x, y, labels, lr
        self.n = len(labels)
        self.loss, self.correct = 0.0, 0

    def load(self, k):
        self.model.load(self.x[k], self.y[k])

    def settled(self, k):
        loss, correct = self.model.learn(self.x[k], self.y[k], self.labels[k], self.lr)
        self.loss += loss
        self.correct += correct
        if not np.isfinite(loss):
            self.n = k + 1  # diverged: stop presenting, the training loop stops too

    def result(self):
        return self.loss, self.correct


class PresentJob(Job):
    """Present ``x`` without learning; collect readout potentials, deltas and traces."""

    def __init__(self, model, x, y, trace):
        self.model, self.x, self.trace = model, x, trace
        self.n = len(x)
        sizes = model.network.sizes
        self.y = np.zeros((self.n, sizes[-1]), np.float32) if y is None else y
        self.out = {"a": np.empty((self.n, sizes[-1]), np.float32)}
        if y is not None:
            self.out["deltas"] = [np.empty((self.n, s), np.float32) for s in sizes[1:]]
        if trace is not None:
            self.out["traces"] = []

    def load(self, k):
        self.model.load(self.x[k], self.y[k])
        if self.trace is not None:
            self.trace.start()

    def settled(self, k):
        post, a = self.model.steady_state(self.x[k])
        self.out["a"][k] = a
        if "deltas" in self.out:
            for store, d in zip(self.out["deltas"], self.model.apical_deltas(post, a, self.y[k])):
                store[k] = d
        if self.trace is not None:
            self.out["traces"].append(self.trace.stop())

    def result(self):
        return self.out


class Trace:
    """Records every column's ``u`` once per step while active (for plots)."""

    def __init__(self, u_arrays):
        self.u = u_arrays
        self.rows = None

    def start(self):
        self.rows = [[a.copy()] for a in self.u]  # the state at rest, t = 0

    def step(self):
        if self.rows is not None:
            for rows, a in zip(self.rows, self.u):
                rows.append(a.copy())

    def stop(self):
        out = [np.array(rows) for rows in self.rows]
        self.rows = None
        return out
