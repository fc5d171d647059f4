"""Runtime targets (``numpy``, ``cython``): each run of a block is one ``net.run`` in this process.

The four TimedArrays of :func:`~cortex_fa.backends.brian2.plasticity.timed_inputs`
are made once, with room for ``params["block"]`` presentations: their size is
part of the generated code, so new sizes would mean new code (a Cython
compilation) for every run. The network time is reset to 0 for every run, so
the TimedArrays are indexed from the run's start.
"""

from __future__ import annotations

import numpy as np

from cortex_fa.extras import require

require("brian2", "cortex_fa.backends.brian2.runtime_model")  # one line naming the extra, not a traceback, without brian2
import brian2 as b2  # noqa: E402

from cortex_fa.backends.brian2.block_model import BlockModel  # noqa: E402
from cortex_fa.backends.brian2.plasticity import timed_inputs  # noqa: E402


class SynapticModel(BlockModel):
    """Columns, synapses and learning in Brian2's runtime code objects (numpy or Cython)."""

    def run_part(self, x, y, lrs, *, deltas=False, trace=False, profile=False):
        """One ``net.run`` of ``len(x)`` presentations (at most ``params["block"]``)."""
        n, b = len(x), self.built
        if self._timed is None:
            sizes, cap = self.network.sizes, self.params["block"]
            self._timed = timed_inputs(np.zeros((cap + 1, sizes[0])), np.zeros((cap + 1, sizes[-1])),
                                       np.zeros(cap + 1), np.zeros(cap + 1), self.period)
        ta = self._timed
        ta["images"].values[:n] = x
        ta["targets"].values[:n] = y
        ta["images"].values[n] = ta["targets"].values[n] = 0.0  # tick n loads a blank, never learned
        ta["eta"].values[0], ta["eta"].values[1:n + 1] = 0.0, lrs  # tick k learns from presentation k - 1
        ta["gate"].values[0], ta["gate"].values[1:n + 1] = 0.0, 1.0
        ns = {**b.arrays["namespace"], **ta}
        slow = {"record": True, "clock": b.slow_clock, "when": "start", "order": 0}
        mons = {"a": b2.StateMonitor(b.columns[-1], "u", name="settled_a", **slow)}
        if deltas:
            for l, col in enumerate(b.columns):
                mons[l] = b2.StateMonitor(col, "delta", name=f"settled_delta{l + 1}", **slow)
        if trace:
            for l, col in enumerate(b.columns):
                mons["trace", l] = b2.StateMonitor(col, "u", record=True, clock=b.clock, when="end",
                                                   name=f"trace{l + 1}")
        b.net.add(*mons.values())
        try:
            b.net.t_ = 0.0
            b.net.run((n * self.params["settle_steps"] + 1) * b.clock.dt, namespace=ns, profile=profile)
        finally:
            b.net.remove(*mons.values())
        out = {"a": mons["a"].u_[:, 1:].T.copy()}
        if deltas:
            out["deltas"] = [mons[l].delta_[:, 1:].T.copy() for l in range(len(b.columns))]
        if trace:
            s = self.params["settle_steps"]
            out["traces"] = [[np.vstack([np.zeros((1, len(col))), mons["trace", l].u_[:, k * s:(k + 1) * s].T])
                              for l, col in enumerate(b.columns)] for k in range(n)]
        return out

    def profile_block(self, x, y, lrs):
        """Run one block with Brian2's profiling on (``net.profiling_info`` then has the times)."""
        out = self.run_part(x, y, lrs, profile=True)
        self.pull()
        return out
