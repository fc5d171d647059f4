"""C++ standalone target: one compiled binary per model, one execution per block.

Brian2's standalone mode turns the network into a C++ program. The choice
made here: the program is built *once* (in a temporary directory, removed
when the model is closed or collected) for a block of ``capacity``
presentations, and then executed once per block with ``run_args``: the
block's images, targets, learning rates and gates (TimedArray values), and
the current weights, biases, velocities and feedback synapses as initial
values. After each execution the plastic variables and the settled readout
potentials are read back from its results. So the weights are back in Python
at every logging step and epoch end (every ``train_block`` call), and
nothing is recompiled. The alternative, one program for all of training with
monitors at the logging steps, would need the whole schedule and data up
front and write every image into the build.

A block shorter than ``capacity`` is padded with blank presentations whose
learning rate and gate are 0 (they cost simulation time, not correctness);
``capacity`` is ``backend_params.block`` or the length of the first block.
"""

from __future__ import annotations

import os
import shutil
import tempfile
import weakref

from cortex_fa.extras import require

require("brian2", "cortex_fa.backends.brian2_standalone")  # one line naming the extra, not a traceback, without brian2
import brian2 as b2  # noqa: E402
import numpy as np  # noqa: E402

from cortex_fa.backends.brian2_options import attributes  # noqa: E402
from cortex_fa.backends.brian2_plastic import timed_inputs  # noqa: E402
from cortex_fa.backends.brian2_synaptic import SynapticModel  # noqa: E402
from cortex_fa.errors import ConfigError  # noqa: E402

NO_COMPILER = ("backend_params.target 'cpp_standalone' could not compile its C++ code ({why}); install a C++ "
               "compiler (e.g. apt-get install g++, or set CXX to one) or use target 'cython' or 'numpy'")


def check_compiler() -> None:
    """One-line :class:`ConfigError` if the C++ compiler ``make`` will call (``$CXX`` or g++) is missing."""
    cxx = os.environ.get("CXX", "g++").split()[0] if os.environ.get("CXX", "g++").strip() else "g++"
    if shutil.which(cxx) is None:
        raise ConfigError(NO_COMPILER.format(why=f"compiler {cxx!r} not found"))


class _Quiet:
    """Send file descriptors 1 and 2 to a log file (compiler output is not for the user's terminal)."""

    def __init__(self, path):
        self.path = path

    def __enter__(self):
        self.log = open(self.path, "w")
        self.saved = [os.dup(1), os.dup(2)]
        for fd in (1, 2):
            os.dup2(self.log.fileno(), fd)
        return self

    def __exit__(self, *exc):
        for fd, saved in zip((1, 2), self.saved):
            os.dup2(saved, fd)
            os.close(saved)
        self.log.close()
        return False


class StandaloneModel(SynapticModel):
    """:class:`SynapticModel` compiled to C++; see the module docstring for how blocks run."""

    def __init__(self, network, rule, config, rng, params):
        check_compiler()
        self.directory = tempfile.mkdtemp(prefix="cortex_fa_standalone_")
        self._cleanup = weakref.finalize(self, shutil.rmtree, self.directory, True)
        self.capacity = params["block"]
        self._values = {}
        self._dev = None
        super().__init__(network, rule, config, rng, params, codeobj_class=None)

        self.attrs = attributes(params, "online: one update per presentation, in Brian2 synaptic code (C++ standalone)")

    def _prepare_device(self):
        b2.prefs.devices.cpp_standalone.extra_make_args_unix = [f"-j{len(os.sched_getaffinity(0))}"]
        b2.set_device("cpp_standalone", build_on_run=False, directory=self.directory)
        b2.device.reinit()  # one standalone model per process at a time: a new one starts afresh
        b2.device.activate(build_on_run=False, directory=self.directory)
        self._dev = b2.get_device()

    # Before the build, and between executions, the plastic state lives here (float64).
    def _write(self, obj, name, values):
        self._values[obj, name] = np.array(values, np.float64)

    def _read(self, obj, name):
        if (obj, name) in self._values:
            return self._values[obj, name]
        return obj.variables[name].get_value()

    def _build(self, capacity: int) -> None:
        """Generate and compile the program for blocks of ``capacity`` presentations."""
        b = self.built
        S = self.params["settle_steps"]
        zeros = np.zeros(capacity + 1)
        tas = timed_inputs(np.zeros((capacity + 1, self.network.sizes[0])),
                           np.zeros((capacity + 1, self.network.sizes[-1])), zeros, zeros, self.period)
        slow = {"record": True, "clock": b.slow_clock, "when": "start", "order": 0}
        self.monitors = {"a": b2.StateMonitor(b.columns[-1], "u", name="settled_a", **slow)}
        for l, col in enumerate(b.columns):
            self.monitors[l] = b2.StateMonitor(col, "delta", name=f"settled_delta{l + 1}", **slow)
        b.net.add(*self.monitors.values())
        b.net.run((capacity * S + 1) * b.clock.dt, namespace={**b.arrays["namespace"], **tas})
        self.timed = tas
        log = os.path.join(self.directory, "build.log")
        try:
            with _Quiet(log):
                self._dev.build(directory=self.directory, compile=True, run=False, with_output=False)
        except Exception as exc:  # noqa: BLE001 - a compiler failure becomes one line
            raise ConfigError(NO_COMPILER.format(why=f"{type(exc).__name__}, log in {log}")) from None
        finally:
            b2.set_device("runtime")
        self.capacity = capacity

    def run_block(self, x, y, lrs, *, deltas=False, trace=False):
        if trace:
            raise ConfigError("rate traces need a runtime target; use backend_params.target 'numpy' or 'cython'")
        if not getattr(self, "monitors", None):
            self._build(self.capacity or len(x))
        outs = [self._run_chunk(x[s:s + self.capacity], y[s:s + self.capacity], lrs[s:s + self.capacity])
                for s in range(0, len(x), self.capacity)]
        out = {"a": np.concatenate([o["a"] for o in outs])}
        out["deltas"] = [np.concatenate([o["deltas"][l] for o in outs]) for l in range(len(self.built.columns))]
        self.pull()
        return out

    def _run_chunk(self, x, y, lrs):
        n, C = len(x), self.capacity
        full = lambda a, width: np.concatenate([np.zeros((1, width)), np.asarray(a, np.float64),  # noqa: E731
                                                np.zeros((C - n, width))])[1:]
        images = np.vstack([full(x, x.shape[1]), np.zeros((1, x.shape[1]))])
        targets = np.vstack([full(y, y.shape[1]), np.zeros((1, y.shape[1]))])
        eta = np.zeros(C + 1)
        eta[1:n + 1] = lrs
        gate = np.zeros(C + 1)
        gate[1:n + 1] = 1.0
        args = {self.timed[k]: v for k, v in (("images", images), ("targets", targets), ("eta", eta), ("gate", gate))
                if self.timed[k] in self._dev.timed_arrays}  # (the gate exists only where something needs it)
        for (obj, name), values in self._values.items():
            args[getattr(obj, name)] = values
        try:
            self._dev.run(directory=self.directory, with_output=False, run_args=args)
        finally:
            for fname in self._dev.run_args_arrays:  # each execution's inputs: gone once read
                try:
                    os.remove(os.path.join(self.directory, "static_arrays", fname))
                except OSError:
                    pass
        for obj, name in list(self._values):
            self._values[obj, name] = np.array(obj.variables[name].get_value(), np.float64)
        return {"a": self.monitors["a"].u_[:, 1:n + 1].T.copy(),
                "deltas": [self.monitors[l].delta_[:, 1:n + 1].T.copy() for l in range(len(self.built.columns))]}

    def close(self):
        """Remove the build directory."""
        self._cleanup()
