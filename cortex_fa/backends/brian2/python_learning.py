"""Learning in numpy between presentations (``plasticity: "python"``, the legacy path).

Each column is a :class:`brian2.NeuronGroup` of rate units, each projection
its own :class:`brian2.Synapses` (see :mod:`cortex_fa.backends.brian2.groups`
for the equations). Training is *online*: every example is presented for a
settling time of many ``tau``; then a network operation reads the steady-state
rates ``h_{l-1}`` and apical errors ``delta_l`` and applies the local update

.. math::

    \\Delta W_l = -\\frac{\\eta}{N} \\, h_{l-1}^T \\delta_l,
    \\qquad \\Delta b_l = -\\frac{\\eta}{N} \\, \\delta_l

through the run's optimiser, weight decay and the rule's feedback plasticity
(the same code as the numpy backend), before the next example is presented.
``N`` is the training loop's batch size: a batch of ``N`` presentations moves
the weights as far as one numpy step on that batch, to first order, and with
``batch_size=1`` the two backends compute the same updates (up to settling
error and float32/float64 rounding). The feedback synapses are rewritten from
``rule.feedback`` after every update unless the rule's feedback is fixed.

This is the *legacy* path (``backend_params.plasticity = "python"``), kept
as the reference the synaptic path is measured against; the default,
``"synaptic"``, runs the learning itself in Brian2
(:mod:`cortex_fa.backends.brian2.runtime_model`). Options: see
:mod:`cortex_fa.backends.brian2.options`.
"""

from __future__ import annotations

import weakref

from cortex_fa.extras import require

require("brian2", "cortex_fa.backends.brian2.python_learning")  # one line naming the extra, not a traceback, without brian2
import numpy as np

from cortex_fa import kernels
from cortex_fa.backends.brian2.groups import build
from cortex_fa.backends.brian2.options import attributes
from cortex_fa.backends.brian2.presentation_thread import PresentJob, Runner, Trace, TrainJob
from cortex_fa.backends.brian2.readout import evaluate_by_presenting
from cortex_fa.backends.brian2.targets import code_object_class
from cortex_fa.backends.numpy_backend import NumpyModel


def _fixed_feedback(rule, weights, state, layer) -> bool:
    """True if the rule's feedback matrix never changes (FA, DFA, DRTP).

    Feedback computed from W (``rule.reads_weights``: BP, uSF, frSF) or
    changed by feedback plasticity is not; for a rule that does not say, one
    stored array returned on every call is taken as fixed.
    """
    if rule.changes_feedback() or rule.reads_weights:
        return False
    if rule.reads_weights is False:
        return True
    return rule.feedback(weights, state, layer) is rule.feedback(weights, state, layer)


class Brian2Model(NumpyModel):
    """A network simulated in Brian2, with the numpy model's parameters and optimiser.

    ``weights``, ``biases`` and ``state`` are the float32 numpy arrays the
    metrics read (drawn exactly as by the numpy backend); the synapse groups
    hold float64 copies, rewritten after every update.
    """

    backend = "brian2"

    def __init__(self, network, rule, config, rng, params):
        super().__init__(network, rule, config, rng)
        self.params = params
        self.built = build(network.sizes, [c.activation for c in network.columns], pathway=rule.pathway,
                           signal=rule.signal, loss=config.loss, tau_ms=params["tau_ms"],
                           tau_apical_ms=params["tau_apical_ms"], dt_ms=params["dt_ms"],
                           settle_steps=params["settle_steps"], codeobj_class=code_object_class(params["target"]))
        # Initial values through Brian2's interface (all-to-all connect() order
        # is W.flatten()'s); updates then write the same arrays directly.
        for syn, W in zip(self.built.ff, self.weights):
            syn.w[:] = W.flatten()
        for l, syn in self.built.fb.items():
            syn.w[:] = rule.feedback(self.weights, self.state, l).flatten()
        for group, b in zip(self.built.columns, self.biases):
            if b is not None:
                group.b[:] = b
        self._plastic_fb = [l for l in self.built.fb if not _fixed_feedback(rule, self.weights, self.state, l)]
        self.trace = Trace(self.built.arrays["u"])
        self.runner = Runner(self.built.net, self.built.slow_clock, self.built.clock, step_hook=self.trace.step)
        weakref.finalize(self, self.runner.close).atexit = False
        self.attrs = attributes(params, "online: one update per presentation, in numpy between presentations")

    # -- parameters <-> synapses ------------------------------------------------
    def sync_synapses(self):
        """Copy W, b and the feedback matrices that can change into the synapse groups.

        Done after every update; call it after changing ``weights`` or
        ``biases`` in place from outside.
        """
        arr = self.built.arrays
        for w, W in zip(arr["w"], self.weights):
            w[:] = W.ravel()
        for b_arr, b in zip(arr["b"], self.biases):
            if b is not None:
                b_arr[:] = b
        for l in self._plastic_fb:
            arr["fb"][l][:] = self.rule.feedback(self.weights, self.state, l).ravel()

    def load(self, x, y):
        """Set the input rates and the target; put every column back at rest."""
        arr = self.built.arrays
        arr["x"][:] = x
        arr["y"][-1][:] = y
        for name in ("u", "v"):
            for a in arr[name]:
                if a is not None:
                    a.fill(0.0)
        if arr["Z"][-1] is not None:
            arr["Z"][-1].fill(len(y))  # the softmax normaliser of u = 0

    def steady_state(self, x):
        """Rates ``h_0..h_L`` and readout potential ``a_L`` of the settled network (float32)."""
        arr = self.built.arrays
        post = [x]
        for u, act in zip(arr["u"], self.activations):
            u32 = u.astype(np.float32)
            post.append(u32 if act.name == "linear" else act.forward(u32, np.empty_like(u32)))
        return post, arr["u"][-1].astype(np.float32)

    def apical_deltas(self, post, a_out, y):
        """The errors the simulation delivered: readout error and apical signal times f'(u)."""
        arr = self.built.arrays
        out_act = self.activations[-1]
        if self.config.loss == "cross_entropy":
            e = 1.0 / arr["Z"][-1] - y
        else:
            e = (post[-1] - y) * out_act.derivative(a_out, post[-1], np.empty_like(a_out))
        deltas = [np.asarray(e, np.float32)]
        for l in range(len(self.weights) - 1, 0, -1):
            apical = arr["v"][l - 1] if self.params["tau_apical_ms"] > 0 else arr["I_fb"][l - 1]
            u = arr["u"][l - 1].astype(np.float32)
            fprime = self.activations[l - 1].derivative(u, post[l], np.empty_like(u))
            deltas.insert(0, apical.astype(np.float32) * fprime)
        return deltas

    def learn(self, x, y, label, lr):
        """Online update from the settled example; returns ``(loss, correct)`` measured before it."""
        post, a_out = self.steady_state(x)
        loss, _ = kernels.loss_and_error(a_out[None], post[-1][None], y[None], self.config.loss, self.activations[-1])
        scores = a_out if self.config.loss == "cross_entropy" else post[-1]
        correct = int(np.argmax(scores) == label)
        if not np.isfinite(loss):
            return loss, correct
        deltas = self.apical_deltas(post, a_out, y)
        first = len(self.weights) - 1 if self.rule.pathway == "none" else 0
        grads_w = [np.outer(post[l], deltas[l]) for l in range(first, len(deltas))]
        grads_b = [deltas[l].copy() for l in range(first, len(deltas)) if self.biases[l] is not None]
        self._apply(first, grads_w, grads_b, lr)
        self.sync_synapses()
        return loss, correct

    # -- backend API --------------------------------------------------------------
    def train_batch(self, x, y, labels, lr: float):
        """Present the batch one example at a time, updating after each (lr / batch size)."""
        return self.runner.submit(TrainJob(self, x, y, labels, lr / len(labels)))

    def present(self, x, y=None, *, trace: bool = False) -> dict:
        """Settle each row of ``x`` without learning and report what the network computed.

        Returns a dict with ``"a"``: readout potentials ``(N, n_L)`` (the
        pre-activations :math:`a_L`); with targets ``y``, ``"deltas"``: the
        errors delivered to every column, ``deltas[l - 1]`` of shape
        ``(N, n_l)``; with ``trace=True``, ``"traces"``: per example, one
        ``(steps + 1, n_l)`` array of ``u`` per column, sampled every ``dt``
        from rest.
        """
        return self.runner.submit(PresentJob(self, x, y, self.trace if trace else None))

    def evaluate(self, images_uint8, labels, chunk: int = 2000):
        """Mean loss and accuracy; ``eval="simulate"`` presents every image to the network."""
        if self.params["eval"] == "steady_state":
            return super().evaluate(images_uint8, labels, chunk)
        return evaluate_by_presenting(self, images_uint8, labels, chunk)

    def close(self):
        """Stop the simulation thread (also done when the model is garbage collected)."""
        self.runner.close()
