"""C++ standalone target: a model compiled once (cached), executed once per run of a block.

Brian2's standalone mode turns the network into a C++ program. Here the
program is generated when the model is made, for runs of up to ``capacity =
backend_params.block`` presentations (1000 by default), and compiled only if
the cache holds no program with the same generated content
(:mod:`~cortex_fa.backends.brian2.standalone_build`,
:mod:`~cortex_fa.backends.brian2.compile_cache`): a second model of the same
shape, in this process or any later one, reuses it. Then it is executed
once per run with Brian2's ``run_args`` (the maintainers' build-once,
run-many pattern): the run's images, targets, learning rates and gates (the
TimedArray values), the current weights, biases, velocities and feedback
synapses as initial values, and the time the run stops at. After each
execution the plastic variables and the settled readout potentials and
deltas are read back from its results. So the weights are back in Python at
every logging step and epoch end (every ``train_block`` call), and nothing
is recompiled.

A run shorter than ``capacity`` is not padded: it stops after its last
presentation (:data:`~cortex_fa.backends.brian2.standalone_build.STOP_AT`).
Every model has a Brian2 device and a run directory of its own
(:mod:`~cortex_fa.backends.brian2.standalone_runs`), so several models, of
any shapes, train in one process.
"""

from __future__ import annotations

import numpy as np

from cortex_fa.extras import require

require("brian2", "cortex_fa.backends.brian2.standalone_model")  # one line naming the extra, not a traceback, without brian2
import brian2 as b2  # noqa: E402

from cortex_fa.backends.brian2 import standalone_build  # noqa: E402
from cortex_fa.backends.brian2.block_model import BlockModel  # noqa: E402
from cortex_fa.backends.brian2.plasticity import timed_inputs  # noqa: E402
from cortex_fa.backends.brian2.standalone_runs import RunDirectory  # noqa: E402
from cortex_fa.errors import ConfigError  # noqa: E402


class StandaloneModel(BlockModel):
    """:class:`BlockModel` compiled to C++; see the module docstring for how runs execute.

    Attributes
    ----------
    build_directory : str
        The compiled project in the cache (shared, never written).
    directory : str
        This model's run directory (removed by :meth:`close`).
    compiled : bool
        Whether making this model compiled the program (False: the cache had it).
    build_seconds : float
        Time spent generating (and compiling, if ``compiled``) the program.
    """

    def __init__(self, network, rule, config, rng, params):
        standalone_build.check_compiler()
        self.capacity = params["block"]
        self._values = {}
        self.device = standalone_build.new_device()
        try:
            super().__init__(network, rule, config, rng, params, codeobj_class=None)
            self._build()
        finally:
            standalone_build.restore_device()
        self.runs = RunDirectory(self.build_directory)
        self.directory = str(self.runs.path)

    # Before the build, and between executions, the plastic state lives here (float64).
    def _write(self, obj, name, values):
        self._values[obj, name] = np.array(values, np.float64)

    def _read(self, obj, name):
        if (obj, name) in self._values:
            return self._values[obj, name]
        return obj.variables[name].get_value()

    def _build(self) -> None:
        """Generate the program for runs of ``capacity`` presentations; compile it unless cached."""
        b, C = self.built, self.capacity
        S = self.params["settle_steps"]
        zeros = np.zeros(C + 1)
        self.timed = timed_inputs(np.zeros((C + 1, self.network.sizes[0])),
                                  np.zeros((C + 1, self.network.sizes[-1])), zeros, zeros, self.period)
        slow = {"record": True, "clock": b.slow_clock, "when": "start", "order": 0}
        self.monitors = {"a": b2.StateMonitor(b.columns[-1], "u", name="settled_a", **slow)}
        for l, col in enumerate(b.columns):
            self.monitors[l] = b2.StateMonitor(col, "delta", name=f"settled_delta{l + 1}", **slow)
        # Ends the run after tick n (learning from the last presentation): t_stop is a run argument.
        self.block_end = b2.NeuronGroup(1, "t_stop : second\nstopped : 1", clock=b.slow_clock, name="block_end")
        self.block_end.run_regularly("stopped = cortex_fa_stop_at(t, t_stop)", when="start", order=3,
                                     name="block_end_check")
        self.block_end.t_stop = (C * S + 2) * b.clock.dt
        b.net.add(*self.monitors.values(), self.block_end)
        b.net.run((C * S + 1) * b.clock.dt,
                  namespace={**b.arrays["namespace"], **self.timed, "cortex_fa_stop_at": standalone_build.STOP_AT})
        self.build_directory, self.compiled, self.build_seconds = standalone_build.build(self.device)

    def run_part(self, x, y, lrs, *, deltas=False, trace=False):
        """One execution of the program: ``len(x)`` presentations, then the plastic state read back."""
        if trace:
            raise ConfigError("rate traces need a runtime target; use backend_params.target 'numpy' or 'cython'")
        if self.runs.removed:
            raise RuntimeError("this standalone model was closed; compile a new model")
        n, C, dt = len(x), self.capacity, self.built.clock.dt_
        images = np.zeros((C + 1, x.shape[1]))
        images[:n] = x  # tick k loads presentation k; tick n loads a blank, never learned
        targets = np.zeros((C + 1, y.shape[1]))
        targets[:n] = y
        eta = np.zeros(C + 1)
        eta[1:n + 1] = lrs  # tick k learns from presentation k - 1
        gate = np.zeros(C + 1)
        gate[1:n + 1] = 1.0
        args = {self.timed[k]: v for k, v in (("images", images), ("targets", targets), ("eta", eta), ("gate", gate))
                if self.timed[k] in self.device.timed_arrays}  # (the gate exists only where something needs it)
        # Stop half a step before tick n + 1 could start: right after tick n (float-safe).
        args[self.block_end.t_stop] = (n * self.params["settle_steps"] - 0.5) * dt * b2.second
        for (obj, name), values in self._values.items():
            args[getattr(obj, name)] = values
        self.runs.execute(self.device, args)
        for obj, name in list(self._values):
            self._values[obj, name] = np.array(obj.variables[name].get_value(), np.float64)
        for mon in self.monitors.values():  # records of this run: n + 1 rows (Brian2 keeps the last run's shape)
            for name in mon.record_variables:
                var = mon.variables[name]
                var.size = (0, var.size[1])
        out = {"a": self.monitors["a"].u_[:, 1:n + 1].T.copy()}
        out["deltas"] = [self.monitors[l].delta_[:, 1:n + 1].T.copy() for l in range(len(self.built.columns))]
        return out

    def close(self):
        """Remove this model's run directory (the compiled program stays in the cache)."""
        self.runs.remove()
