"""The default backend: vectorised mini-batch training in float32 numpy.

Per batch of ``N`` examples the model runs one forward pass, asks the rule
for its deltas, forms :math:`\\Delta W_l = h_{l-1}^T \\delta_l`, lets the
optimiser turn gradients into increments :math:`U_l`, applies

.. math:: W_l \\leftarrow (1 - \\eta\\lambda) W_l + U_l, \\qquad b_l \\leftarrow b_l + U^b_l,

and finally lets the rule update its feedback synapses.

Performance notes (measured in docs/performance.md): a step reuses one set
of activation and delta buffers per batch size (no per-step allocation of
MB-sized arrays), and with SGD the gradient of ``W`` is never materialised:
the optimiser folds it into ``W`` (or the velocity) with one BLAS call. The
unfused path is kept for Adam, readout-only learning and rules whose
feedback plasticity needs the increments (Kolen-Pollack, brSF).
"""

from __future__ import annotations

from collections import OrderedDict

import numpy as np

from cortex_fa import activations as acts
from cortex_fa import init as initializers
from cortex_fa import kernels, optim
from cortex_fa.streams import RandomStreams

DTYPE = np.float32
# Buffer sets kept per model: the training batch size, the short last batch
# of an epoch, and a spare; least recently used sets are dropped beyond this.
_MAX_WORKSPACES = 3


class _Workspace:
    """Reusable per-layer arrays for one batch size and dtype.

    ``pre[l]``/``post[l + 1]`` hold :math:`a_{l+1}` and :math:`h_{l+1}` (the same
    array for linear columns), ``delta[l]`` the rule's deltas and ``scratch[l]``
    the activation derivative.
    """

    def __init__(self, n, sizes, dtype, activations):
        self.pre = [np.empty((n, s), dtype) for s in sizes[1:]]
        self.post = [None] + [a if act.name == "linear" else np.empty_like(a)
                              for a, act in zip(self.pre, activations)]
        self.delta = [np.empty_like(a) for a in self.pre]
        self.scratch = [np.empty_like(a) for a in self.pre]


class NumpyModel:
    """A compiled network: arrays for W, b and the rule's feedback state."""

    backend = "numpy"

    def __init__(self, network, rule, config, streams):
        self.network, self.rule, self.config = network, rule, config
        self.streams = streams = RandomStreams.coerce(streams)
        sizes = network.sizes
        # Column-major W (the same values; W.T is C-ordered): the forward product h W
        # and the update of W^T = delta^T h then both run ~1.5x faster in OpenBLAS at
        # these shapes (batch 64 x 784 x 1000), see docs/performance.md.
        self.weights = [
            np.asfortranarray(initializers.draw(col.feedforward.init, (sizes[i], sizes[i + 1]), sizes[i],
                                                sizes[i + 1], streams.forward, DTYPE))
            for i, col in enumerate(network.columns)
        ]
        self.biases = [np.zeros(col.size, DTYPE) if col.bias else None for col in network.columns]
        self.activations = [acts.get(col.activation) for col in network.columns]
        self.state = rule.init_state(network, streams.feedback)
        self._params = self.weights + [b for b in self.biases if b is not None]
        self.optimizer = optim.make(config.optimizer, self._params, config.momentum,
                                    alpha=config.rmsprop_alpha, eps=config.rmsprop_eps)
        self._workspaces: OrderedDict = OrderedDict()

    # -- training -----------------------------------------------------------
    def _dropout(self, x):
        """Inverted-dropout masks for this batch: the input, and activations with hidden masks.

        Masks hold 0 or :math:`1/(1-p)`, so expected activity is unchanged and
        evaluation needs no rescaling. Nothing is drawn when both rates are 0.
        """
        cfg = self.config
        if cfg.input_dropout:
            x = x * self._mask(x.shape, cfg.input_dropout, x.dtype)
        acts_ = self.activations
        if cfg.dropout:
            acts_ = [acts.dropped(act, self._mask((x.shape[0], W.shape[1]), cfg.dropout, W.dtype))
                     for act, W in zip(self.activations[:-1], self.weights[:-1])] + [self.activations[-1]]
        return x, acts_

    def _mask(self, shape, rate, dtype):
        keep = self.streams.dropout.random(shape, dtype=np.float32) >= rate
        return keep.astype(dtype) * np.asarray(1.0 / (1.0 - rate), dtype)

    def train_batch(self, x, y, labels, lr: float):
        """One update on a batch. Returns ``(summed loss, number correct)``."""
        x, activations = self._dropout(x) if (self.config.dropout or self.config.input_dropout) else (x, self.activations)
        ws = self._workspace(x, activations)
        pre, post = kernels.forward_into(x, self.weights, self.biases, activations, ws.pre, list(ws.post))
        loss, e = kernels.loss_and_error(pre[-1], post[-1], y, self.config.loss, activations[-1],
                                         self.config.loss_reduction)
        n = x.shape[0]
        correct = int(np.count_nonzero(np.argmax(pre[-1] if self.config.loss == "cross_entropy" else post[-1], axis=1) == labels))
        if not np.isfinite(loss):
            return loss * n, correct
        if self._fusable():
            deltas = kernels.rule_deltas_into(self.rule, self.weights, self.state, e, y, pre, post,
                                              activations, list(ws.delta), ws.scratch)
            self._apply_fused(post, deltas, lr)
            return loss * n, correct
        deltas = kernels.rule_deltas(self.rule, self.weights, self.state, e, y, pre, post, activations)
        if self.rule.pathway == "none":
            deltas = deltas[-1:]
            first = len(self.weights) - 1
        else:
            first = 0
        grads_w = [kernels.matmul(post[first + i].T, d) for i, d in enumerate(deltas)]
        grads_b = [d.sum(axis=0) for i, d in enumerate(deltas) if self.biases[first + i] is not None]
        self._apply(first, grads_w, grads_b, lr)
        return loss * n, correct

    def _workspace(self, x, activations) -> _Workspace:
        """The buffer set for this batch size, dtype and activations (created on first use)."""
        dtype = np.result_type(x.dtype, *(W.dtype for W in self.weights))
        names = tuple(a.name for a in activations)  # a dropped linear column needs its own h buffer
        key = (x.shape[0], x.shape[1], dtype, tuple(W.shape for W in self.weights), names)
        ws = self._workspaces.get(key)
        if ws is None:
            sizes = (x.shape[1], *(W.shape[1] for W in self.weights))
            ws = self._workspaces[key] = _Workspace(x.shape[0], sizes, dtype, activations)
            while len(self._workspaces) > _MAX_WORKSPACES:
                self._workspaces.popitem(last=False)
        else:
            self._workspaces.move_to_end(key)
        return ws

    def _fusable(self) -> bool:
        """Whether the fused SGD path applies (it skips materialising the increments)."""
        return (isinstance(self.optimizer, optim.SGD)
                and self.rule.pathway in ("layerwise", "direct", "indirect")
                and not self.rule.changes_feedback())

    def _apply_fused(self, post, deltas, lr):
        """:meth:`_apply` for SGD without materialised gradients or increments.

        Called only after every delta is formed, so feedback that reads W
        (backprop, sign symmetry) saw the weights before this update, as in
        the unfused path.
        """
        opt = self.optimizer
        decay = self.weights[0].dtype.type(1.0 - lr * self.config.weight_decay)  # float64 models stay float64
        for i, (W, d) in enumerate(zip(self.weights, deltas)):
            opt.update_weight(i, W, post[i], d, lr, decay)
        j = len(self.weights)
        for b, d in zip(self.biases, deltas):
            if b is not None:
                b += opt.step(j, d.sum(axis=0), lr)
                j += 1

    def _apply(self, first, grads_w, grads_b, lr):
        cfg = self.config
        n_w = len(self.weights)
        # The optimiser keeps one buffer per parameter; hidden parameters of a
        # readout-only rule get zero gradients so its indexing stays fixed.
        if first:
            grads_w = [np.zeros_like(W) for W in self.weights[:first]] + grads_w
            grads_b = [np.zeros_like(b) for b in self.biases[:first] if b is not None] + grads_b
        steps = self.optimizer.steps(grads_w + grads_b, lr)
        decay = self.weights[0].dtype.type(1.0 - lr * cfg.weight_decay)
        for W, s in zip(self.weights, steps[:n_w]):
            if cfg.weight_decay:
                W *= decay
            W += s
        for b, s in zip([b for b in self.biases if b is not None], steps[n_w:]):
            b += s
        self.rule.after_update(self.weights, steps[:n_w], self.state, lr=lr, weight_decay=cfg.weight_decay,
                               rng=self.streams.feedback)

    # -- evaluation -----------------------------------------------------------
    def outputs(self, x):
        """Readout pre-activations and outputs for a batch."""
        pre, post = kernels.forward(x, self.weights, self.biases, self.activations)
        return pre[-1], post[-1]

    def _outputs_inplace(self, x, bufs):
        """:meth:`outputs` into ``bufs`` (one per layer); hidden activations overwrite their pre-activations."""
        h, L = x, len(self.weights)
        for l, (W, b, act, buf) in enumerate(zip(self.weights, self.biases, self.activations, bufs), start=1):
            a = kernels.gemm(h, W, buf)
            if b is not None:
                a += b
            if l == L:
                return a, (a if act.name == "linear" else act.forward(a, np.empty_like(a)))
            h = a if act.name == "linear" else act.forward(a, a)

    def evaluate(self, images_uint8, labels, chunk: int = 2000):
        """Mean loss and accuracy over a whole set, in chunks to bound memory."""
        total_loss, correct = 0.0, 0
        # One buffer per layer for the whole call (sliced for a short last
        # chunk): 5 chunks of the test set then page-fault ~20 MB once, not 5 times.
        dtype = np.result_type(*(W.dtype for W in self.weights))
        size = min(chunk, len(labels))
        table = kernels.pixel_table(self.config.input_scaling)
        x_buf = np.empty((size, images_uint8.shape[1]), table.dtype)
        bufs = [np.empty((size, W.shape[1]), dtype) for W in self.weights]
        for start in range(0, len(labels), chunk):
            lab = labels[start:start + chunk]
            x = np.take(table, images_uint8[start:start + chunk], out=x_buf[:len(lab)])
            a, h = self._outputs_inplace(x, [b[:len(lab)] for b in bufs])
            value, _ = kernels.loss_and_error(a, h, kernels.one_hot(lab), self.config.loss, self.activations[-1])
            total_loss += value * len(lab)
            scores = a if self.config.loss == "cross_entropy" else h
            correct += int(np.count_nonzero(np.argmax(scores, axis=1) == lab))
        n = len(labels)
        return total_loss / n, correct / n


def compile(network, rule, config, streams):  # noqa: A001 - backend API name
    """Build a :class:`NumpyModel`: W from ``streams.forward``, the feedback state from ``streams.feedback``.

    ``streams`` is a :class:`~cortex_fa.streams.RandomStreams` (or one
    Generator, which then serves every purpose in the order W, feedback).
    """
    return NumpyModel(network, rule, config, streams)
