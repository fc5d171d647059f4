"""Pure-numpy kernels of the forward and backward passes.

No state, no rules objects: arrays in, arrays out, so that the numpy
backend, the metrics and the Brian2 backend's readout share one
implementation. Layer indices in docstrings are 1-based (``W_l`` is
``weights[l - 1]``); lists are 0-based.

Every kernel that returns arrays has an ``*_into`` twin writing into
caller-owned buffers: the numpy backend reuses one set of buffers per batch
size, so a training step allocates (and page-faults) nothing large. The
plain versions allocate those buffers and call the twins, so both give
bit-identical results. Every GEMM goes through :func:`cortex_fa.blas.gemm`
(re-exported here with the other BLAS helpers).
"""

from __future__ import annotations

import numpy as np
from scipy.special import softmax

from cortex_fa.activations import Activation
# The BLAS helpers live in cortex_fa.blas; re-exported here, where callers have always found them.
from cortex_fa.blas import axpy_into, gemm, gemm_tn_into, matmul  # noqa: F401

# Train-set pixel statistics after division by 255 (DESIGN.md).
PIXEL_MEAN = 0.1307
PIXEL_STD = 0.3081
# uint8 pixel -> normalised float32, applied per batch by indexing (cheap).
PIXEL_TABLE = ((np.arange(256, dtype=np.float64) / 255.0 - PIXEL_MEAN) / PIXEL_STD).astype(np.float32)


# uint8 pixel -> pixel / 255 in [0, 1] (``input_scaling="unit"``, Nøkland's code).
UNIT_PIXEL_TABLE = (np.arange(256, dtype=np.float64) / 255.0).astype(np.float32)


def pixel_table(scaling: str = "standardise") -> np.ndarray:
    """The uint8 -> float32 lookup table of ``input_scaling``: ``standardise`` or ``unit``."""
    return UNIT_PIXEL_TABLE if scaling == "unit" else PIXEL_TABLE


def normalise(images_uint8: np.ndarray, scaling: str = "standardise") -> np.ndarray:
    """Map uint8 pixels to zero-mean, unit-variance float32 (per batch); ``scaling="unit"``: to [0, 1]."""
    # np.take is the same table lookup as PIXEL_TABLE[images] at ~60% of the
    # cost (no general fancy-indexing machinery); the values are identical.
    return np.take(pixel_table(scaling), images_uint8)


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
    n = x.shape[0]
    pre, post = [], [x]
    for W, act in zip(weights, activations):
        dtype = np.result_type(x.dtype, W.dtype)
        a = np.empty((n, W.shape[1]), dtype)
        pre.append(a)
        post.append(a if act.name == "linear" else np.empty_like(a))
    return forward_into(x, weights, biases, activations, pre, post)


def forward_into(x, weights, biases, activations, pre, post):
    """:func:`forward` into preallocated ``pre`` and ``post`` buffers.

    ``post[l]`` may be the same array as ``pre[l - 1]`` for linear columns;
    ``post[0]`` is set to ``x``. Returns ``(pre, post)``.
    """
    post[0] = h = x
    for l, (W, b, act) in enumerate(zip(weights, biases, activations)):
        a = gemm(h, W, pre[l])
        if b is not None:
            a += b
        h = a if act.name == "linear" else act.forward(a, post[l + 1])
        post[l + 1] = h
    return pre, post


def _log_softmax(a):
    """Row-wise log-softmax, the same operations as ``scipy.special.log_softmax``.

    Written out because scipy's array-API dispatch costs ~30 us per call,
    more than the arithmetic on a (64, 10) batch; the results are identical.
    """
    a_max = np.max(a, axis=1, keepdims=True)
    a_max[~np.isfinite(a_max)] = 0
    tmp = a - a_max
    s = np.exp(tmp).sum(axis=1, keepdims=True)
    with np.errstate(divide="ignore"):
        tmp -= np.log(s)
    return tmp


def loss_and_error(a_out, h_out, y, loss: str, out_act: Activation, reduction: str = "mean"):
    """Mean loss over the batch and the output error :math:`e = \\partial \\mathcal{L} / \\partial a_L`.

    Softmax cross-entropy: :math:`e = (\\mathrm{softmax}(a_L) - y) / N`.
    Squared error :math:`\\tfrac{1}{2N}\\sum |h_L - y|^2`: :math:`e = (h_L - y) \\odot f'_L(a_L) / N`.
    Binary cross-entropy of sigmoid outputs :math:`h_L = \\sigma(a_L)`,
    :math:`-\\tfrac{1}{N}\\sum [y \\log h_L + (1 - y) \\log(1 - h_L)]` (summed over the
    classes, computed from :math:`a_L` as :math:`\\mathrm{softplus}(a_L) - y a_L`):
    :math:`e = (h_L - y) / N`.

    With ``reduction="sum"`` the loss is summed over the batch rather than
    averaged, so ``e`` is not divided by :math:`N` (the returned value stays
    the per-example mean, for logs and divergence checks).
    """
    n = a_out.shape[0]
    if loss == "cross_entropy":
        logp = _log_softmax(a_out)
        value = -float(np.sum(logp * y, dtype=np.float64)) / n
        e = np.exp(logp, out=logp)
        e -= y
    elif loss == "bce":
        a64 = a_out.astype(np.float64)
        softplus = np.maximum(a64, 0.0) + np.log1p(np.exp(-np.abs(a64)))
        value = float(np.sum(softplus - y * a64)) / n
        e = h_out - y
    else:
        diff = h_out - y
        value = 0.5 * float(np.sum(diff.astype(np.float64) ** 2)) / n
        e = diff * out_act.derivative(a_out, h_out, np.empty_like(a_out))
    if reduction == "mean":
        e /= n
    return value, e.astype(a_out.dtype, copy=False)


def predict_proba(a_out, h_out, loss: str):
    """Class scores used for accuracy: softmax for cross-entropy, h_L otherwise."""
    return softmax(a_out, axis=1) if loss == "cross_entropy" else h_out


def _buffers(pre, e):
    """Delta and f' scratch buffers shaped like ``pre`` (for the allocating kernels)."""
    out = [np.empty(a.shape, np.result_type(a.dtype, e.dtype)) for a in pre]
    return out, [np.empty_like(d) for d in out]


def _matmul_into(a, b, buf):
    """``a @ b`` into ``buf`` unless that would change the result's dtype (then a new array)."""
    if np.result_type(a.dtype, b.dtype) != buf.dtype:
        return a @ b
    return gemm(a, b, buf)


def _times_fprime(d, act, a, h, scratch):
    """``d *= f'(a)`` with f' written into ``scratch`` (or a fresh array of d's dtype)."""
    fp = act.derivative(a, h, scratch if scratch.dtype == d.dtype else np.empty_like(d))
    d *= fp
    return d


def layerwise_deltas(e, feedback, pre, post, activations, *, skip_first=False):
    """Deltas of a layer-wise rule: :math:`\\delta_{l-1} = (\\delta_l B_l) \\odot f'_{l-1}(a_{l-1})`.

    ``feedback(l)`` returns ``B_l`` (shape of ``W_l.T``) for ``l = 2..L``.
    """
    out, scratch = _buffers(pre, e)
    return layerwise_deltas_into(e, feedback, pre, post, activations, out, scratch)


def layerwise_deltas_into(e, feedback, pre, post, activations, out, scratch):
    """:func:`layerwise_deltas` into ``out`` (deltas) using ``scratch`` for f'.

    ``out[-1]`` is replaced by ``e`` itself (no copy); ``out[l]`` and
    ``scratch[l]`` have the shape of ``pre[l]``. ``delta_1 @ B_1`` (the
    input's delta) is never formed: nothing learns from it.
    """
    L = len(pre)
    out[-1] = e
    for l in range(L, 1, -1):
        d = _matmul_into(out[l - 1], feedback(l), out[l - 2])
        out[l - 2] = _times_fprime(d, activations[l - 2], pre[l - 2], post[l - 1], scratch[l - 2])
    return out


def direct_deltas(e, signal, feedback, pre, post, activations):
    """Deltas of a direct rule: :math:`\\delta_l = (s D_l) \\odot f'_l(a_l)`, :math:`\\delta_L = e`.

    ``feedback(l)`` returns ``D_l`` of shape ``(n_L, n_l)`` for ``l = 1..L-1``.
    """
    out, scratch = _buffers(pre, e)
    return direct_deltas_into(e, signal, feedback, pre, post, activations, out, scratch)


def direct_deltas_into(e, signal, feedback, pre, post, activations, out, scratch):
    """:func:`direct_deltas` into ``out`` using ``scratch`` for f'."""
    L = len(pre)
    out[-1] = e
    for l in range(1, L):
        d = _matmul_into(signal, feedback(l), out[l - 1])
        out[l - 1] = _times_fprime(d, activations[l - 1], pre[l - 1], post[l], scratch[l - 1])
    return out


def indirect_deltas_into(e, feedback, weights, pre, post, activations, out, scratch):
    """Deltas of indirect feedback alignment into ``out`` (``scratch`` holds f').

    .. math::

        \\delta_1 = (e D_1) \\odot f'_1(a_1), \\qquad
        \\delta_l = (\\delta_{l-1} W_l) \\odot f'_l(a_l) \\ (2 \\le l < L), \\qquad \\delta_L = e,

    with ``feedback(1)`` returning ``D_1`` of shape ``(n_L, n_1)``.
    """
    L = len(pre)
    out[-1] = e
    for l in range(1, L):
        src, M = (e, feedback(1)) if l == 1 else (out[l - 2], weights[l - 1])
        d = _matmul_into(src, M, out[l - 1])
        out[l - 1] = _times_fprime(d, activations[l - 1], pre[l - 1], post[l], scratch[l - 1])
    return out


def readout_only_deltas(e, pre):
    """Hidden columns get no teaching signal: :math:`\\delta_l = 0` for ``l < L``."""
    deltas = [np.zeros_like(a) for a in pre]
    deltas[-1] = e
    return deltas


def weight_gradients(post, deltas):
    """:math:`\\Delta W_l = h_{l-1}^T \\delta_l` and :math:`\\Delta b_l = \\sum_n \\delta_l`."""
    dW = [matmul(post[l].T, deltas[l]) for l in range(len(deltas))]
    db = [d.sum(axis=0) for d in deltas]
    return dW, db


def rule_deltas(rule, weights, state, e, y, pre, post, activations):
    """Dispatch on the rule's pathway: the deltas the rule actually produces."""
    if rule.pathway == "none":
        return readout_only_deltas(e, pre)
    out, scratch = _buffers(pre, e)
    return rule_deltas_into(rule, weights, state, e, y, pre, post, activations, out, scratch)


def rule_deltas_into(rule, weights, state, e, y, pre, post, activations, out, scratch, *, feedback=None):
    """:func:`rule_deltas` into ``out`` (``scratch`` holds f'); layer-wise, direct and indirect rules.

    ``feedback(l)``, if given, stands in for ``rule.feedback(weights, state, l)``
    (the metrics pass it a per-step cache).
    """
    if feedback is None:
        def feedback(l):
            return rule.feedback(weights, state, l)
    if rule.pathway == "layerwise":
        return layerwise_deltas_into(e, feedback, pre, post, activations, out, scratch)
    if rule.pathway == "direct":
        signal = e if rule.signal == "error" else y * np.float32(-1.0 / y.shape[0])
        return direct_deltas_into(e, signal, feedback, pre, post, activations, out, scratch)
    if rule.pathway == "indirect":
        return indirect_deltas_into(e, feedback, weights, pre, post, activations, out, scratch)
    return readout_only_deltas(e, pre)
