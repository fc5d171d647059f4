"""What learning wrote: the alignment and size of the change of W since initialisation.

In wide columns :math:`\\angle(B_l, W_l^T)` is dominated by the random
initial :math:`W_l(0)`: a column can learn updates well aligned with its
feedback while the angle to the whole :math:`W_l` barely moves from 90
degrees. These kernels look at the part of W that learning wrote,
:math:`\\Delta W_l = W_l - W_l(0)`:

.. math::

    \\text{learned\\_alignment}_l = \\angle(B_l, \\Delta W_l^T), \\qquad
    \\text{weight\\_change}_l = \\|\\Delta W_l\\|_F / \\|W_l(0)\\|_F .

Layer-wise rules give ``learned_alignment`` for ``l = 2..L`` (layer 1 has no
feedback matrix, NaN). Direct rules compare :math:`D_l` with the change of
their linear path, :math:`(P_l - P_l(0))^T` with
:math:`P_l = W_{l+1} \\cdots W_L` (as ``weight_alignment`` does with
:math:`P_l` itself); indirect feedback alignment the same for ``D_1``.
``weight_change`` exists for every column (NaN where :math:`W_l(0) = 0`,
e.g. zero initialisation).
"""

from __future__ import annotations

import numpy as np

from cortex_fa.metrics import _dot64, angle, linear_path

NAMES = ("learned_alignment", "weight_change")


def weight_change(weights, initial, changes=None) -> np.ndarray:
    """:math:`\\|W_l - W_l(0)\\|_F / \\|W_l(0)\\|_F` per column (NaN if :math:`W_l(0) = 0`)."""
    changes = changes if changes is not None else [np.subtract(W, W0) for W, W0 in zip(weights, initial)]
    out = np.full(len(weights), np.nan)
    for i, (dW, W0) in enumerate(zip(changes, initial)):
        n0 = np.sqrt(_dot64(W0, None))
        if n0 > 0:
            out[i] = np.sqrt(_dot64(dW, None)) / n0  # float64 sums of the float32 change
    return out


def learned_alignment(rule, weights, initial, state, changes=None) -> np.ndarray:
    """:math:`\\angle(B_l, (W_l - W_l(0))^T)` per column (see the module docstring)."""
    L = len(weights)
    out = np.full(L, np.nan)
    if rule.pathway == "layerwise":
        changes = changes if changes is not None else [np.subtract(W, W0) for W, W0 in zip(weights, initial)]
        for l in range(2, L + 1):
            out[l - 1] = angle(rule.feedback(weights, state, l), changes[l - 1].T)
    elif rule.pathway in ("direct", "indirect"):
        top = L if rule.pathway == "direct" else min(L, 2)
        for l in range(1, top):
            change = linear_path(weights, l) - linear_path(initial, l)
            out[l - 1] = angle(rule.feedback(weights, state, l), change.T)
    return out


def metrics(rule, weights, initial, state) -> dict[str, np.ndarray]:
    """Both kernels, by their results-variable names (each change :math:`W_l - W_l(0)` formed once)."""
    changes = [np.subtract(W, W0) for W, W0 in zip(weights, initial)]
    return {"learned_alignment": learned_alignment(rule, weights, initial, state, changes),
            "weight_change": weight_change(weights, initial, changes)}
