"""Alignment and norm metrics: pure-numpy kernels on one probe batch.

All angles are in degrees,

.. math:: \\angle(a, b) = \\arccos\\left(\\mathrm{clip}\\left(
          \\frac{\\langle a, b\\rangle}{\\|a\\| \\|b\\|}, -1, 1\\right)\\right),

computed in float64 on the flattened arrays, NaN when a norm is zero.
One forward pass is shared by the rule and the backprop reference.
"""

from __future__ import annotations

import numpy as np
import scipy.linalg
import scipy.linalg.blas

from cortex_fa import kernels

PER_LAYER = (
    "weight_alignment",
    "delta_alignment",
    "update_alignment",
    "delta_norm",
    "grad_norm",
    "feedback_norm_ratio",
    "learned_alignment",  # cortex_fa.learned: what learning wrote into W
    "weight_change",
)


def angle(a: np.ndarray, b: np.ndarray) -> float:
    """Angle in degrees between two arrays taken as flat vectors (NaN if a norm is 0)."""
    return _angle_and_norm(a, b)[0]


def _dot64(a, b) -> float:
    """:math:`\\langle a, b \\rangle` of two same-shape arrays, accumulated in float64.

    einsum casts in small chunks (no float64 copy of an MB-sized ``dW``) and
    does not call numpy's BLAS, whose thread pool would fight the one of
    :func:`cortex_fa.kernels.gemm` for the cores (a ``dot`` right after a
    GEMM took 2 ms instead of 0.1 ms).
    """
    # flatten both in one order (a view when it is the arrays' own, e.g. column-major W)
    order = "F" if a.flags.f_contiguous and (b is None or b.flags.f_contiguous) else "C"
    a = np.ravel(a, order=order)
    b = a if b is None else np.ravel(b, order=order)
    return float(np.einsum("i,i->", a, b, dtype=np.float64))


def _angle_and_norm(a, b) -> tuple[float, float]:
    """``(angle(a, b), |a|)`` in float64 arithmetic."""
    same = b is a
    na = np.sqrt(_dot64(a, None))
    nb = na if same else np.sqrt(_dot64(b, None))
    if na == 0.0 or nb == 0.0 or not (np.isfinite(na) and np.isfinite(nb)):
        return float("nan"), float(na)
    if same:
        return 0.0, float(na)
    cosine = _dot64(a, b) / (na * nb)
    if cosine > 1.0 - 1e-12 and np.array_equal(a, b):
        # equal arrays are 0 degrees apart; the rounding of the dot product alone would say ~1e-6
        return 0.0, float(na)
    return float(np.degrees(np.arccos(np.clip(cosine, -1.0, 1.0)))), float(na)


def rms(a: np.ndarray) -> float:
    """Root mean square over all entries."""
    a = np.asarray(a)
    return float(np.sqrt(_dot64(a, None) / a.size)) if a.size else float("nan")


def linear_path(weights, layer: int) -> np.ndarray:
    """:math:`W_{l+1} W_{l+2} \\cdots W_L`, shape ``(n_l, n_L)``: the linear route from column l to the readout."""
    return _linear_paths(weights)[layer]


def _linear_paths(weights) -> dict[int, np.ndarray]:
    """Every :func:`linear_path` at once, multiplied from the readout down.

    Right to left each product is ``(n, n) @ (n, n_L)``: with ``n_L = 10``
    that is ~100x fewer FLOPs than left to right, and layer ``l`` reuses
    layer ``l + 1``'s product.
    """
    L = len(weights)
    paths = {L - 1: weights[L - 1]} if L > 1 else {}
    for l in range(L - 2, 0, -1):
        paths[l] = kernels.matmul(weights[l], paths[l + 1])
    return paths


def _feedback_of(rule, weights, state, feedback):
    return feedback if feedback is not None else (lambda l: rule.feedback(weights, state, l))


def weight_alignment(rule, weights, state, feedback=None) -> np.ndarray:
    """Angle between the feedback actually used and what backprop would use.

    Layer-wise rules: :math:`\\angle(B_l, W_l^T)` for ``l = 2..L``; layer 1 is NaN
    because ``B_1`` (feedback into the input) is never used. Direct rules:
    :math:`\\angle(D_l, (W_{l+1} \\cdots W_L)^T)` for ``l = 1..L-1`` (the linear
    path; exact for linear columns, a reference direction otherwise); the
    readout is NaN. Indirect feedback alignment: the same angle for ``D_1``,
    NaN above (those columns have no feedback matrix). Readout-only learning: all NaN. ``feedback(l)``, if
    given, returns the rule's matrix for column ``l`` (e.g. from a cache).
    """
    feedback = _feedback_of(rule, weights, state, feedback)
    L = len(weights)
    out = np.full(L, np.nan)
    if rule.pathway == "layerwise":
        for l in range(2, L + 1):
            out[l - 1] = angle(feedback(l), weights[l - 1].T)
    elif rule.pathway == "direct":
        paths = _linear_paths(weights)
        for l in range(1, L):
            out[l - 1] = angle(feedback(l), paths[l].T)
    elif rule.pathway == "indirect" and L > 1:  # only D_1 exists; the columns above have no feedback matrix
        out[0] = angle(feedback(1), _linear_paths(weights)[1].T)
    return out


def feedback_norm_ratio(rule, weights, state, feedback=None) -> np.ndarray:
    """:math:`\\|B_l\\|_F / \\|W_l\\|_F` for layer-wise rules (``l >= 2``); NaN elsewhere."""
    feedback = _feedback_of(rule, weights, state, feedback)
    L = len(weights)
    out = np.full(L, np.nan)
    if rule.pathway == "layerwise":
        for l in range(2, L + 1):
            nw = np.sqrt(_dot64(weights[l - 1], None))
            if nw > 0:
                out[l - 1] = np.sqrt(_dot64(feedback(l), None)) / nw
    return out


def probe_metrics(rule, weights, biases, activations, state, x, y, loss, *, pre_post=None) -> dict[str, np.ndarray]:
    """Every per-layer metric of DESIGN.md on one probe batch (a one-off :class:`Probe`).

    Parameters
    ----------
    rule : LearningRule
    weights, biases : list of ndarray
    activations : list of Activation
    state : dict
        The rule's feedback synapses (as they will be used by the next update).
    x, y : ndarray
        Probe inputs (normalised float32) and one-hot targets.
    loss : str
    pre_post : tuple, optional
        The forward pass of ``x`` if the caller already has it.

    Returns
    -------
    dict of name -> ndarray of shape (L,)
    """
    return Probe(x, y, loss).evaluate(rule, weights, biases, activations, state, pre_post=pre_post)


class Probe:
    """A run's fixed probe batch, and what its metrics reuse between logging steps.

    The training loop builds one per run and calls :meth:`evaluate` at every
    logging step. Kept between calls: the forward, delta and update buffers
    (a logging step allocates and page-faults nothing MB-sized) and a factor
    of the probe images. With the reduced QR decomposition
    :math:`X^T = Q R` (:math:`Q^T Q = I`, :math:`R` of shape
    :math:`k \\times P`, :math:`k = \\min(n_0, P)`),

    .. math::

        \\Delta W_1 = X^T \\delta_1 = Q (R \\delta_1), \\qquad
        \\langle \\Delta W_1, \\Delta W_1' \\rangle_F = \\langle R\\delta_1, R\\delta_1' \\rangle_F ,

    so the first column's ``update_alignment`` and ``grad_norm`` come from
    the :math:`k \\times n_1` products :math:`R\\delta_1` instead of the
    :math:`n_0 \\times n_1` updates (a 256-image probe of 784 pixels: a sixth
    of the FLOPs, R being triangular). Both products are rounded alike, so identical deltas still
    give exactly 0 degrees. Deeper columns, whose inputs change, use
    :math:`h_{l-1}^T \\delta_l` directly.
    """

    def __init__(self, x, y, loss: str):
        self.x, self.y, self.loss = x, y, loss
        self._r_factor = False  # computed on first use; None when it would not pay
        self._buffers: dict = {}

    @property
    def _r(self):
        if self._r_factor is False:
            n_probe, n_in = self.x.shape
            # only worth it when the probe is smaller than the image (k < n_0)
            self._r_factor = None
            if n_probe < n_in:
                # scipy's LAPACK: the library (and thread pool) of kernels.gemm; rows >= n_probe of R are 0
                r = scipy.linalg.qr(np.asarray(self.x, np.float64).T, mode="r")[0]
                self._r_factor = np.ascontiguousarray(r[:n_probe], dtype=self.x.dtype)
        return self._r_factor

    def _buffer(self, key, shape, dtype) -> np.ndarray:
        buf = self._buffers.get(key)
        if buf is None or buf.shape != shape or buf.dtype != dtype:
            buf = self._buffers[key] = np.empty(shape, dtype)
        return buf

    def _layer_buffers(self, name, pre) -> list:
        return [self._buffer((name, i), a.shape, a.dtype) for i, a in enumerate(pre)]

    def _forward(self, weights, biases, activations):
        n = self.x.shape[0]
        pre = [self._buffer(("pre", i), (n, W.shape[1]), np.result_type(self.x.dtype, W.dtype))
               for i, W in enumerate(weights)]
        post = [None] + [a if act.name == "linear" else self._buffer(("post", i), a.shape, a.dtype)
                         for i, (a, act) in enumerate(zip(pre, activations))]
        return kernels.forward_into(self.x, weights, biases, activations, pre, post)

    def _update_factors(self, i, h, d_rule, d_bp):
        """Matrices with the Frobenius geometry of the rule's and BP's ``dW`` of column ``i + 1``."""
        if i == 0 and self._r is not None:
            m_rule = _upper_times(self._r, d_rule, self._buffer(("dw_rule", i), d_rule.shape, d_rule.dtype))
            if d_rule is d_bp:
                return m_rule, m_rule
            return m_rule, _upper_times(self._r, d_bp, self._buffer(("dw_bp", i), d_bp.shape, d_bp.dtype))
        shape, dtype = (h.shape[1], d_rule.shape[1]), np.result_type(h.dtype, d_rule.dtype)
        m_rule = kernels.gemm(h.T, d_rule, self._buffer(("dw_rule", i), shape, dtype))
        if d_rule is d_bp:
            return m_rule, m_rule
        return m_rule, kernels.gemm(h.T, d_bp, self._buffer(("dw_bp", i), shape, dtype))

    def evaluate(self, rule, weights, biases, activations, state, *, pre_post=None) -> dict[str, np.ndarray]:
        """The per-layer metrics for the current weights and feedback state (see :func:`probe_metrics`)."""
        pre, post = pre_post if pre_post is not None else self._forward(weights, biases, activations)
        _, e = kernels.loss_and_error(pre[-1], post[-1], self.y, self.loss, activations[-1])
        cache: dict = {}

        def feedback(l):  # uSF/frSF build B from W: once per layer and logging step
            if l not in cache:
                cache[l] = rule.feedback(weights, state, l)
            return cache[l]

        bp = kernels.layerwise_deltas_into(e, lambda l: weights[l - 1].T, pre, post, activations,
                                           self._layer_buffers("bp", pre), self._layer_buffers("fprime", pre))
        if rule.name == "bp":
            ours = bp
        elif rule.pathway == "none":
            ours = kernels.readout_only_deltas(e, pre)
        else:
            ours = kernels.rule_deltas_into(rule, weights, state, e, self.y, pre, post, activations,
                                            self._layer_buffers("delta", pre), self._layer_buffers("fprime", pre),
                                            feedback=feedback)
        L = len(weights)
        delta_al, update_al = np.full(L, np.nan), np.full(L, np.nan)
        delta_norm, grad_norm = np.full(L, np.nan), np.full(L, np.nan)
        for i in range(L):
            d_rule, d_bp = ours[i], bp[i]
            delta_al[i], norm = _angle_and_norm(d_rule, d_bp)
            delta_norm[i] = norm / np.sqrt(d_rule.size) if d_rule.size else np.nan  # the RMS
            update_al[i], grad_norm[i] = _angle_and_norm(*self._update_factors(i, post[i], d_rule, d_bp))
        return {
            "weight_alignment": weight_alignment(rule, weights, state, feedback),
            "delta_alignment": delta_al,
            "update_alignment": update_al,
            "delta_norm": delta_norm,
            "grad_norm": grad_norm,
            "feedback_norm_ratio": feedback_norm_ratio(rule, weights, state, feedback),
        }


def _upper_times(r, d, out):
    """``out <- r @ d`` for upper-triangular ``r`` (BLAS ``trmm``: half a GEMM's FLOPs)."""
    np.copyto(out, d)
    fn = {np.float32: scipy.linalg.blas.strmm, np.float64: scipy.linalg.blas.dtrmm}.get(out.dtype.type)
    if fn is None or r.dtype != out.dtype or not out.flags.c_contiguous:
        np.matmul(r, d, out=out)
        return out
    # column-major view: out.T <- out.T @ r.T, with r.T a lower-triangular Fortran array
    res = fn(1.0, r.T, out.T, side=1, lower=1, overwrite_b=1)
    if not np.shares_memory(res, out):  # f2py copied (not for contiguous arrays)
        np.copyto(out, res.T)
    return out
