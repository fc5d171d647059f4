"""The default backend: vectorised mini-batch training in float32 numpy.

Per batch of ``N`` examples the model runs one forward pass, asks the rule
for its deltas, forms :math:`\\Delta W_l = h_{l-1}^T \\delta_l`, lets the
optimiser turn gradients into increments :math:`U_l`, applies

.. math:: W_l \\leftarrow (1 - \\eta\\lambda) W_l + U_l, \\qquad b_l \\leftarrow b_l + U^b_l,

and finally lets the rule update its feedback synapses.
"""

from __future__ import annotations

import numpy as np

from cortex_fa import activations as acts
from cortex_fa import init as initializers
from cortex_fa import kernels, optim

DTYPE = np.float32


class NumpyModel:
    """A compiled network: arrays for W, b and the rule's feedback state."""

    backend = "numpy"

    def __init__(self, network, rule, config, rng: np.random.Generator):
        self.network, self.rule, self.config = network, rule, config
        sizes = network.sizes
        self.weights = [
            initializers.draw(col.feedforward.init, (sizes[i], sizes[i + 1]), sizes[i], sizes[i + 1], rng, DTYPE)
            for i, col in enumerate(network.columns)
        ]
        self.biases = [np.zeros(col.size, DTYPE) if col.bias else None for col in network.columns]
        self.activations = [acts.get(col.activation) for col in network.columns]
        self.state = rule.init_state(network, rng)
        self._params = self.weights + [b for b in self.biases if b is not None]
        self.optimizer = optim.make(config.optimizer, [p.shape for p in self._params], config.momentum)
        self.rng = rng

    # -- training -----------------------------------------------------------
    def train_batch(self, x, y, labels, lr: float):
        """One update on a batch. Returns ``(summed loss, number correct)``."""
        pre, post = kernels.forward(x, self.weights, self.biases, self.activations)
        loss, e = kernels.loss_and_error(pre[-1], post[-1], y, self.config.loss, self.activations[-1])
        n = x.shape[0]
        correct = int(np.count_nonzero(np.argmax(pre[-1] if self.config.loss == "cross_entropy" else post[-1], axis=1) == labels))
        if not np.isfinite(loss):
            return loss * n, correct
        deltas = kernels.rule_deltas(self.rule, self.weights, self.state, e, y, pre, post, self.activations)
        if self.rule.pathway == "none":
            deltas = deltas[-1:]
            first = len(self.weights) - 1
        else:
            first = 0
        grads_w = [post[first + i].T @ d for i, d in enumerate(deltas)]
        grads_b = [d.sum(axis=0) for i, d in enumerate(deltas) if self.biases[first + i] is not None]
        self._apply(first, grads_w, grads_b, lr)
        return loss * n, correct

    def _apply(self, first, grads_w, grads_b, lr):
        cfg = self.config
        n_w = len(self.weights)
        # The optimiser keeps one buffer per parameter; hidden parameters of a
        # readout-only rule get zero gradients so its indexing stays fixed.
        if first:
            grads_w = [np.zeros_like(W) for W in self.weights[:first]] + grads_w
            grads_b = [np.zeros_like(b) for b in self.biases[:first] if b is not None] + grads_b
        steps = self.optimizer.steps(grads_w + grads_b, lr)
        decay = np.float32(1.0 - lr * cfg.weight_decay)
        for W, s in zip(self.weights, steps[:n_w]):
            if cfg.weight_decay:
                W *= decay
            W += s
        for b, s in zip([b for b in self.biases if b is not None], steps[n_w:]):
            b += s
        self.rule.after_update(self.weights, steps[:n_w], self.state, lr=lr, weight_decay=cfg.weight_decay, rng=self.rng)

    # -- evaluation -----------------------------------------------------------
    def outputs(self, x):
        """Readout pre-activations and outputs for a batch."""
        pre, post = kernels.forward(x, self.weights, self.biases, self.activations)
        return pre[-1], post[-1]

    def evaluate(self, images_uint8, labels, chunk: int = 2000):
        """Mean loss and accuracy over a whole set, in chunks to bound memory."""
        total_loss, correct = 0.0, 0
        for start in range(0, len(labels), chunk):
            lab = labels[start:start + chunk]
            x = kernels.normalise(images_uint8[start:start + chunk])
            a, h = self.outputs(x)
            value, _ = kernels.loss_and_error(a, h, kernels.one_hot(lab), self.config.loss, self.activations[-1])
            total_loss += value * len(lab)
            scores = a if self.config.loss == "cross_entropy" else h
            correct += int(np.count_nonzero(np.argmax(scores, axis=1) == lab))
        n = len(labels)
        return total_loss / n, correct / n


def compile(network, rule, config, rng):  # noqa: A001 - backend API name
    """Build a :class:`NumpyModel` (draws W, then the feedback state, from ``rng``)."""
    return NumpyModel(network, rule, config, rng)
