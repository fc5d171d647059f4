"""Pure-numpy kernels of the forward and backward passes.

No state, no rules objects: arrays in, arrays out, so that the numpy
backend, the metrics and the Brian2 backend's readout share one
implementation. Layer indices in docstrings are 1-based (``W_l`` is
``weights[l - 1]``); lists are 0-based.
"""

from __future__ import annotations

import numpy as np
from scipy.special import log_softmax, softmax

from cortex_fa.activations import Activation

# Train-set pixel statistics after division by 255 (DESIGN.md).
PIXEL_MEAN = 0.1307
PIXEL_STD = 0.3081
# uint8 pixel -> normalised float32, applied per batch by indexing (cheap).
PIXEL_TABLE = ((np.arange(256, dtype=np.float64) / 255.0 - PIXEL_MEAN) / PIXEL_STD).astype(np.float32)


def normalise(images_uint8: np.ndarray) -> np.ndarray:
    """Map uint8 pixels to zero-mean, unit-variance float32 (per batch)."""
    return PIXEL_TABLE[images_uint8]


def one_hot(labels: np.ndarray, n_classes: int = 10, dtype=np.float32) -> np.ndarray:
    out = np.zeros((labels.shape[0], n_classes), dtype=dtype)
    out[np.arange(labels.shape[0]), labels] = 1
    return out


def forward(x, weights, biases, activations: list[Activation]):
    """Run the columns bottom to top.

    .. math:: a_l = h_{l-1} W_l + b_l, \\qquad h_l = f_l(a_l), \\qquad h_0 = x

    Returns
    -------
    pre, post : list of ndarray
        ``pre[l-1] = a_l`` for ``l = 1..L``; ``post[l] = h_l`` for ``l = 0..L``.
    """
    pre, post = [], [x]
    h = x
    for W, b, act in zip(weights, biases, activations):
        a = h @ W
        if b is not None:
            a += b
        h = act.forward(a, np.empty_like(a)) if act.name != "linear" else a
        pre.append(a)
        post.append(h)
    return pre, post


def loss_and_error(a_out, h_out, y, loss: str, out_act: Activation):
    """Mean loss over the batch and the output error :math:`e = \\partial \\mathcal{L} / \\partial a_L`.

    Softmax cross-entropy: :math:`e = (\\mathrm{softmax}(a_L) - y) / N`.
    Squared error :math:`\\tfrac{1}{2N}\\sum |h_L - y|^2`: :math:`e = (h_L - y) \\odot f'_L(a_L) / N`.
    """
    n = a_out.shape[0]
    if loss == "cross_entropy":
        logp = log_softmax(a_out, axis=1)
        value = -float(np.sum(logp * y, dtype=np.float64)) / n
        e = np.exp(logp, out=logp)
        e -= y
    else:
        diff = h_out - y
        value = 0.5 * float(np.sum(diff.astype(np.float64) ** 2)) / n
        e = diff * out_act.derivative(a_out, h_out, np.empty_like(a_out))
    e /= n
    return value, e.astype(a_out.dtype, copy=False)


def predict_proba(a_out, h_out, loss: str):
    """Class scores used for accuracy: softmax for cross-entropy, h_L otherwise."""
    return softmax(a_out, axis=1) if loss == "cross_entropy" else h_out


def layerwise_deltas(e, feedback, pre, post, activations, *, skip_first=False):
    """Deltas of a layer-wise rule: :math:`\\delta_{l-1} = (\\delta_l B_l) \\odot f'_{l-1}(a_{l-1})`.

    ``feedback(l)`` returns ``B_l`` (shape of ``W_l.T``) for ``l = 2..L``.
    """
    L = len(pre)
    deltas = [None] * L
    deltas[-1] = e
    for l in range(L, 1, -1):
        d = deltas[l - 1] @ feedback(l)
        d *= activations[l - 2].derivative(pre[l - 2], post[l - 1], np.empty_like(d))
        deltas[l - 2] = d
    return deltas


def direct_deltas(e, signal, feedback, pre, post, activations):
    """Deltas of a direct rule: :math:`\\delta_l = (s D_l) \\odot f'_l(a_l)`, :math:`\\delta_L = e`.

    ``feedback(l)`` returns ``D_l`` of shape ``(n_L, n_l)`` for ``l = 1..L-1``.
    """
    L = len(pre)
    deltas = [None] * L
    deltas[-1] = e
    for l in range(1, L):
        d = signal @ feedback(l)
        d *= activations[l - 1].derivative(pre[l - 1], post[l], np.empty_like(d))
        deltas[l - 1] = d
    return deltas


def readout_only_deltas(e, pre):
    """Hidden columns get no teaching signal: :math:`\\delta_l = 0` for ``l < L``."""
    deltas = [np.zeros_like(a) for a in pre]
    deltas[-1] = e
    return deltas


def weight_gradients(post, deltas):
    """:math:`\\Delta W_l = h_{l-1}^T \\delta_l` and :math:`\\Delta b_l = \\sum_n \\delta_l`."""
    dW = [post[l].T @ deltas[l] for l in range(len(deltas))]
    db = [d.sum(axis=0) for d in deltas]
    return dW, db


def rule_deltas(rule, weights, state, e, y, pre, post, activations):
    """Dispatch on the rule's pathway: the deltas the rule actually produces."""
    if rule.pathway == "layerwise":
        return layerwise_deltas(e, lambda l: rule.feedback(weights, state, l), pre, post, activations)
    if rule.pathway == "direct":
        signal = e if rule.signal == "error" else y * np.float32(-1.0 / y.shape[0])
        return direct_deltas(e, signal, lambda l: rule.feedback(weights, state, l), pre, post, activations)
    return readout_only_deltas(e, pre)
