"""What every Brian2 model that learns by itself shares: parameters in synapses, training in blocks.

Python hands a block of images, targets and learning rates to Brian2
(TimedArrays, see :mod:`cortex_fa.backends.brian2.plasticity`), runs it, and
reads back what the metrics need: the weights, biases and plastic feedback
(copied into the float32 arrays ``weights``, ``biases``, ``state``), and the
readout potential each digit settled to (a monitor on the presentation
clock), from which the loss and accuracy before each update are computed.

A block of ``n`` presentations runs for ``n T + dt`` from ``t = 0``: tick
``k`` learns from presentation ``k - 1`` (gated off at ``k = 0``) and loads
presentation ``k``; tick ``n`` only learns. How a block runs is the
subclass's business: :mod:`~cortex_fa.backends.brian2.runtime_model`
(``net.run`` in this process) or
:mod:`~cortex_fa.backends.brian2.standalone_model` (a compiled program).
Long blocks are split into runs of at most ``backend_params.block``
presentations.
"""

from __future__ import annotations

import numpy as np

from cortex_fa.extras import require

require("brian2", "cortex_fa.backends.brian2.block_model")  # one line naming the extra, not a traceback, without brian2
import brian2 as b2  # noqa: E402

from cortex_fa import init as initializers  # noqa: E402
from cortex_fa.backends.brian2.plasticity import SHADOW_RULES, build_plastic  # noqa: E402
from cortex_fa.backends.brian2.readout import evaluate_by_presenting, readout_losses  # noqa: E402
from cortex_fa.backends.numpy_backend import NumpyModel  # noqa: E402
from cortex_fa.rules.base import feedback_projections  # noqa: E402


class BlockModel(NumpyModel):
    """Columns, synapses and learning all in Brian2; numpy float32 copies for the metrics.

    The Brian2 variables (float64) are the model; ``weights``, ``biases`` and
    the rule's plastic feedback in ``state`` are refreshed from them after
    every block. After changing those arrays from outside, call
    :meth:`sync_synapses` to write them into the network.
    """

    backend = "brian2"

    def __init__(self, network, rule, config, rng, params, codeobj_class=None):
        super().__init__(network, rule, config, rng)
        self.params = params
        self._prepare_device()
        spread = {}
        if rule.name == "brsf":
            for layer, proj, fan_in, fan_out in feedback_projections(network):
                spread[layer] = (proj.init.distribution, initializers.spread(proj.init, fan_in, fan_out))
        self.built = build_plastic(network.sizes, [c.activation for c in network.columns], rule, loss=config.loss,
                                   momentum=config.momentum, weight_decay=config.weight_decay,
                                   feedback_spread=spread, tau_ms=params["tau_ms"],
                                   tau_apical_ms=params["tau_apical_ms"], dt_ms=params["dt_ms"],
                                   settle_steps=params["settle_steps"], codeobj_class=codeobj_class)
        self.period = params["settle_steps"] * params["dt_ms"] * b2.ms
        self._timed = None
        self.sync_synapses()

    # -- numpy <-> Brian2 ----------------------------------------------------------
    def _prepare_device(self):
        """Runtime targets use Brian2's default device."""

    def _write(self, obj, name, values):
        obj.variables[name].set_value(values)

    def _read(self, obj, name):
        return obj.variables[name].get_value()

    def plastic_variables(self):
        """``[(group, variable name)]`` of every variable learning changes."""
        out = []
        for group in [*self.built.ff, *self.built.fb.values(), *self.built.columns]:
            for name in ("w", "wf", "mag", "m_w", "m_wf", "b", "m_b"):
                var = group.variables.get(name)
                # (a synapse group also sees its postsynaptic variables without suffix: not its own)
                if var is not None and not var.read_only and getattr(var.owner, "name", None) == group.name:
                    out.append((group, name))
        return out

    def sync_synapses(self):
        """Write ``weights``, ``biases`` and the rule's feedback into the network.

        Feedback synapses get :math:`B_l` (FA, KP), :math:`D_l`, or, for the
        shadow rules, the shadow :math:`W_l^T` and the magnitudes :math:`|R_l|`.
        """
        b, f64 = self.built, (lambda a: np.asarray(a, np.float64).ravel())  # noqa: E731
        for obj, name in self.plastic_variables():
            if name.startswith("m_"):  # velocities start at rest
                size = len(obj) if isinstance(obj, b2.NeuronGroup) else len(obj.source) * len(obj.target)
                self._write(obj, name, np.zeros(size))
        for syn, W in zip(b.ff, self.weights):
            self._write(syn, "w", f64(W))
        for group, bias in zip(b.columns, self.biases):
            if bias is not None:
                self._write(group, "b", f64(bias))
        for l, syn in b.fb.items():
            if self.rule.name in SHADOW_RULES:
                self._write(syn, "wf", f64(self.weights[l - 1].T))
                if self.rule.name != "bp":
                    self._write(syn, "mag", f64(np.abs(self.rule.feedback(self.weights, self.state, l))))
            else:
                self._write(syn, "w", f64(self.rule.feedback(self.weights, self.state, l)))

    def pull(self):
        """Copy the network's weights, biases and plastic feedback into the float32 arrays."""
        b = self.built
        for syn, W in zip(b.ff, self.weights):
            W[...] = self._read(syn, "w").reshape(W.shape)
        for group, bias in zip(b.columns, self.biases):
            if bias is not None:
                bias[...] = self._read(group, "b")
        for l, syn in b.fb.items():
            if self.rule.name == "kp":
                B = self.state["B"][l]
                B[...] = self._read(syn, "w").reshape(B.shape)
            elif self.rule.name == "brsf":
                M = self.state["magnitude"][l]
                M[...] = self._read(syn, "mag").reshape(M.shape)

    def synaptic_weights(self):
        """Float64 ``W_l`` matrices as the synapses hold them."""
        return [self._read(syn, "w").reshape(W.shape).copy() for syn, W in zip(self.built.ff, self.weights)]

    # -- blocks ----------------------------------------------------------------------
    def run_block(self, x, y, lrs, *, deltas=False, trace=False):
        """Present the rows of ``x``, learning with rate ``lrs[k]`` from presentation ``k``.

        Returns the settled readout potentials ``(n, n_L)`` (``"a"``), and
        with ``deltas`` the settled deltas per column, with ``trace`` the
        ``u`` of every column at every step. Runs of at most
        ``params["block"]`` presentations (:meth:`run_part`), then
        :meth:`pull`.
        """
        size = self.params["block"]
        if len(x) == 0:
            n_out = self.network.sizes[-1]
            return {"a": np.zeros((0, n_out)), "deltas": [np.zeros((0, s)) for s in self.network.sizes[1:]],
                    "traces": []}
        parts = [self.run_part(x[s:s + size], y[s:s + size], lrs[s:s + size], deltas=deltas, trace=trace)
                 for s in range(0, len(x), size)]
        out = {"a": np.concatenate([p["a"] for p in parts])}
        if deltas:
            out["deltas"] = [np.concatenate([p["deltas"][l] for p in parts]) for l in range(len(self.built.columns))]
        if trace:
            out["traces"] = [tr for p in parts for tr in p["traces"]]
        self.pull()
        return out

    def run_part(self, x, y, lrs, *, deltas=False, trace=False):
        """One run of at most ``params["block"]`` presentations (see :meth:`run_block`)."""
        raise NotImplementedError

    def train_block(self, x, y, labels, lrs):
        """Train online on the rows of ``x`` (learning rate ``lrs[k]`` for row ``k``) in one run.

        Returns per-presentation losses and correctness, measured on the
        settled state before each presentation's own update.
        """
        a = self.run_block(x, y, lrs)["a"]
        losses, scores = readout_losses(a, y, self.config.loss, self.activations[-1])
        return losses, np.argmax(scores, axis=1) == labels

    # -- backend API ----------------------------------------------------------------------
    def train_batch(self, x, y, labels, lr: float):
        """Present the batch one example at a time, updating after each (lr / batch size)."""
        losses, correct = self.train_block(x, y, labels, np.full(len(labels), lr / len(labels)))
        return float(losses.sum()), int(correct.sum())

    def present(self, x, y=None, *, trace: bool = False) -> dict:
        """Settle each row of ``x`` without learning (see the legacy model's ``present``)."""
        targets = np.zeros((len(x), self.network.sizes[-1])) if y is None else y
        out = self.run_block(x, targets, np.zeros(len(x)), deltas=y is not None, trace=trace)
        res = {"a": out["a"].astype(np.float32)}
        if y is not None:
            res["deltas"] = [d.astype(np.float32) for d in out["deltas"]]
        if trace:
            res["traces"] = out["traces"]
        return res

    def evaluate(self, images_uint8, labels, chunk: int = 2000):
        """Mean loss and accuracy; ``eval="simulate"`` presents every image to the network."""
        if self.params["eval"] == "steady_state":
            return super().evaluate(images_uint8, labels, chunk)
        return evaluate_by_presenting(self, images_uint8, labels, chunk)

    def close(self):
        """Release what the model holds between blocks (nothing, for runtime targets)."""
