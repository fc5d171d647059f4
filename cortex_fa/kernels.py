"""Pure-numpy kernels of the forward and backward passes.

No state, no rules objects: arrays in, arrays out, so that the numpy
backend, the metrics and the Brian2 backend's readout share one
implementation. Layer indices in docstrings are 1-based (``W_l`` is
``weights[l - 1]``); lists are 0-based.

Every kernel that returns arrays has an ``*_into`` twin writing into
caller-owned buffers: the numpy backend reuses one set of buffers per batch
size, so a training step allocates (and page-faults) nothing large. The
plain versions allocate those buffers and call the twins, so both give
bit-identical results.
"""

from __future__ import annotations

import numpy as np
from scipy.linalg import blas as _blas
from scipy.special import softmax

from cortex_fa.activations import Activation

# Train-set pixel statistics after division by 255 (DESIGN.md).
PIXEL_MEAN = 0.1307
PIXEL_STD = 0.3081
# uint8 pixel -> normalised float32, applied per batch by indexing (cheap).
PIXEL_TABLE = ((np.arange(256, dtype=np.float64) / 255.0 - PIXEL_MEAN) / PIXEL_STD).astype(np.float32)


def normalise(images_uint8: np.ndarray) -> np.ndarray:
    """Map uint8 pixels to zero-mean, unit-variance float32 (per batch)."""
    # np.take is the same table lookup as PIXEL_TABLE[images] at ~60% of the
    # cost (no general fancy-indexing machinery); the values are identical.
    return np.take(PIXEL_TABLE, images_uint8)


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


def loss_and_error(a_out, h_out, y, loss: str, out_act: Activation):
    """Mean loss over the batch and the output error :math:`e = \\partial \\mathcal{L} / \\partial a_L`.

    Softmax cross-entropy: :math:`e = (\\mathrm{softmax}(a_L) - y) / N`.
    Squared error :math:`\\tfrac{1}{2N}\\sum |h_L - y|^2`: :math:`e = (h_L - y) \\odot f'_L(a_L) / N`.
    """
    n = a_out.shape[0]
    if loss == "cross_entropy":
        logp = _log_softmax(a_out)
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


# -- BLAS calls ----------------------------------------------------------------------
# numpy's matmul cannot accumulate into its output, so ``W += alpha * h.T @ d``
# costs a GEMM into a temporary plus two passes over a W-sized array; BLAS
# does it in one call (C <- alpha A B + beta C). That call comes from scipy,
# which ships its *own* OpenBLAS with its own thread pool. Mixing the two
# libraries step by step would leave one pool's threads spinning while the
# other's work, i.e. more busy threads than cores; so every GEMM of the
# training step (forward, deltas, updates) goes through :func:`gemm` and
# thus through one library.


def _blas_gemm(*arrays):
    """scipy's ``sgemm``/``dgemm`` if every array has that one dtype, else None."""
    dtype = arrays[0].dtype
    if any(a.dtype != dtype for a in arrays):
        return None
    return _blas.sgemm if dtype == np.float32 else _blas.dgemm if dtype == np.float64 else None


def _fortran_view(m):
    """``(array, trans)`` such that ``op(array)`` in Fortran order is the matrix ``m.T``."""
    # a C-ordered m is the Fortran-ordered m.T (no transpose needed); an
    # F-ordered m (e.g. W.T or h.T) is passed as itself with op = transpose.
    return (m, 1) if m.flags.f_contiguous and not m.flags.c_contiguous else (m.T, 0)


def gemm(a, b, out, alpha: float = 1.0, beta: float = 0.0) -> np.ndarray:
    """In place :math:`\\mathrm{out} \\leftarrow \\alpha A B + \\beta\\, \\mathrm{out}` for 2-D arrays.

    One BLAS call when the dtypes agree (float32 or float64) and ``out`` is
    C-contiguous; ``a`` and ``b`` may be transposed views (no copies).
    Otherwise the same arithmetic in numpy. ``beta = 0`` ignores ``out``'s
    old contents. Returns ``out``.
    """
    if out.ndim == 2 and out.flags.f_contiguous and not out.flags.c_contiguous:
        gemm(b.T, a.T, out.T, alpha, beta)  # out.T = B^T A^T is C-ordered: the same BLAS call
        return out
    fn = _blas_gemm(a, b, out) if out.flags.c_contiguous and a.ndim == b.ndim == 2 else None
    if fn is None:
        if beta == 0.0:
            if alpha == 1.0 and np.result_type(a, b) == out.dtype:
                return np.matmul(a, b, out=out)
            out[...] = alpha * (a @ b)
            return out
        prod = a @ b
        if beta != 1.0:
            out *= beta
        out += alpha * prod
        return out
    # BLAS is column-major: the C-ordered out is the Fortran-ordered out.T = b.T @ a.T.
    bf, tb = _fortran_view(b)
    af, ta = _fortran_view(a)
    res = fn(alpha, bf, af, beta=beta, c=out.T, trans_a=tb, trans_b=ta, overwrite_c=1)
    if not np.may_share_memory(res, out):  # f2py had to copy (never for contiguous inputs)
        np.copyto(out, res.T)
    return out


def matmul(a, b) -> np.ndarray:
    """``a @ b`` for 2-D arrays through :func:`gemm` (a new C-ordered array)."""
    return gemm(a, b, np.empty((a.shape[0], b.shape[1]), np.result_type(a, b)))


def gemm_tn_into(c, a, b, alpha: float, beta: float) -> np.ndarray:
    """In place :math:`C \\leftarrow \\alpha A^T B + \\beta C` (``a``: (N, m), ``b``: (N, n), ``c``: (m, n)).

    Rounding differs from a separate ``a.T @ b`` followed by ``*``/``+`` in
    the last bit only.
    """
    return gemm(a.T, b, c, alpha, beta)


def axpy_into(y, x, alpha: float) -> np.ndarray:
    """In place :math:`y \\leftarrow y + \\alpha x` for same-shape arrays (one BLAS ``axpy`` if contiguous)."""
    if y.ndim == 2 and y.flags.f_contiguous and x.flags.f_contiguous and not y.flags.c_contiguous:
        axpy_into(y.T, x.T, alpha)  # two column-major arrays: their C-ordered transposes
        return y
    if y.dtype in (np.float32, np.float64) and x.dtype == y.dtype and y.flags.c_contiguous and x.flags.c_contiguous:
        axpy = _blas.daxpy if y.dtype == np.float64 else _blas.saxpy
        res = axpy(x.reshape(-1), y.reshape(-1), a=alpha)
        if not np.may_share_memory(res, y):
            np.copyto(y, res.reshape(y.shape))
        return y
    y += alpha * x
    return y
