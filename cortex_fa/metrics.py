"""Alignment and norm metrics: pure-numpy kernels on one probe batch.

All angles are in degrees,

.. math:: \\angle(a, b) = \\arccos\\left(\\mathrm{clip}\\left(
          \\frac{\\langle a, b\\rangle}{\\|a\\| \\|b\\|}, -1, 1\\right)\\right),

computed in float64 on the flattened arrays, NaN when a norm is zero.
One forward pass is shared by the rule and the backprop reference.
"""

from __future__ import annotations

import numpy as np

from cortex_fa import kernels

PER_LAYER = (
    "weight_alignment",
    "delta_alignment",
    "update_alignment",
    "delta_norm",
    "grad_norm",
    "feedback_norm_ratio",
)


def angle(a: np.ndarray, b: np.ndarray) -> float:
    """Angle in degrees between two arrays taken as flat vectors (NaN if a norm is 0)."""
    return _angle_and_norm(a, b)[0]


def _angle_and_norm(a, b) -> tuple[float, float]:
    """``(angle(a, b), |a|)``: one float64 copy of each array serves both (they are MB-sized for dW)."""
    same = b is a
    a = np.asarray(a, dtype=np.float64).ravel()
    b = a if same else np.asarray(b, dtype=np.float64).ravel()
    na, nb = np.linalg.norm(a), np.linalg.norm(b)
    if na == 0.0 or nb == 0.0 or not (np.isfinite(na) and np.isfinite(nb)):
        return float("nan"), float(na)
    return float(np.degrees(np.arccos(np.clip(np.dot(a, b) / (na * nb), -1.0, 1.0)))), float(na)


def rms(a: np.ndarray) -> float:
    """Root mean square over all entries."""
    a = np.asarray(a, dtype=np.float64)
    return float(np.sqrt(np.mean(a * a))) if a.size else float("nan")


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
        paths[l] = weights[l] @ paths[l + 1]
    return paths


def weight_alignment(rule, weights, state) -> np.ndarray:
    """Angle between the feedback actually used and what backprop would use.

    Layer-wise rules: :math:`\\angle(B_l, W_l^T)` for ``l = 2..L``; layer 1 is NaN
    because ``B_1`` (feedback into the input) is never used. Direct rules:
    :math:`\\angle(D_l, (W_{l+1} \\cdots W_L)^T)` for ``l = 1..L-1`` (the linear
    path; exact for linear columns, a reference direction otherwise); the
    readout is NaN. Readout-only learning: all NaN.
    """
    L = len(weights)
    out = np.full(L, np.nan)
    if rule.pathway == "layerwise":
        for l in range(2, L + 1):
            out[l - 1] = angle(rule.feedback(weights, state, l), weights[l - 1].T)
    elif rule.pathway == "direct":
        paths = _linear_paths(weights)
        for l in range(1, L):
            out[l - 1] = angle(rule.feedback(weights, state, l), paths[l].T)
    return out


def feedback_norm_ratio(rule, weights, state) -> np.ndarray:
    """:math:`\\|B_l\\|_F / \\|W_l\\|_F` for layer-wise rules (``l >= 2``); NaN elsewhere."""
    L = len(weights)
    out = np.full(L, np.nan)
    if rule.pathway == "layerwise":
        for l in range(2, L + 1):
            nw = np.linalg.norm(weights[l - 1])
            if nw > 0:
                out[l - 1] = np.linalg.norm(rule.feedback(weights, state, l)) / nw
    return out


def probe_metrics(rule, weights, biases, activations, state, x, y, loss, *, pre_post=None) -> dict[str, np.ndarray]:
    """Every per-layer metric of DESIGN.md on one probe batch.

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

    Returns
    -------
    dict of name -> ndarray of shape (L,)
    """
    pre, post = pre_post if pre_post is not None else kernels.forward(x, weights, biases, activations)
    _, e = kernels.loss_and_error(pre[-1], post[-1], y, loss, activations[-1])
    bp = kernels.layerwise_deltas(e, lambda l: weights[l - 1].T, pre, post, activations)
    ours = bp if rule.name == "bp" else kernels.rule_deltas(rule, weights, state, e, y, pre, post, activations)
    L = len(weights)
    delta_al, update_al = np.full(L, np.nan), np.full(L, np.nan)
    delta_norm, grad_norm = np.full(L, np.nan), np.full(L, np.nan)
    for i in range(L):
        d_rule, d_bp = ours[i], bp[i]
        # kernels.matmul: the same BLAS library (and thread pool) as the training step
        dw_rule = kernels.matmul(post[i].T, d_rule)
        dw_bp = dw_rule if d_rule is d_bp else kernels.matmul(post[i].T, d_bp)
        delta_al[i] = angle(d_rule, d_bp)
        update_al[i], grad_norm[i] = _angle_and_norm(dw_rule, dw_bp)
        delta_norm[i] = rms(d_rule)
    return {
        "weight_alignment": weight_alignment(rule, weights, state),
        "delta_alignment": delta_al,
        "update_alignment": update_al,
        "delta_norm": delta_norm,
        "grad_norm": grad_norm,
        "feedback_norm_ratio": feedback_norm_ratio(rule, weights, state),
    }
