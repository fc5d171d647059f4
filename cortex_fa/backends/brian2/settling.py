"""Settling: how many integration steps a presentation needs, for a given ``dt``.

The settling time is the number of integration steps after which the
*discrete-time* chain the simulation actually runs has reached its fixed
point to :data:`SETTLE_TOLERANCE`. The membrane equation is linear and
integrated exactly, so one step of length ``dt`` moves every column by

.. math:: u \\leftarrow u + \\alpha\\,(I - u), \\qquad \\alpha = 1 - e^{-dt/\\tau},

and each synapse group adds a one-step delay (it sums the rates of the
previous step). :func:`settle_steps` simulates the step response of that
chain: ``L`` leaky forward stages, the softmax normaliser (cross-entropy,
a pure delay), then one stage per feedback hop (a pure
delay, or leaky with ``tau_apical``). The fixed point does not depend on
``dt``: a larger ``dt`` settles in fewer steps (with ``dt >> tau`` every stage
settles in one step and the chain in ``L + 1 + hops`` steps).

No Brian2 import here.
"""

from __future__ import annotations

import math

SETTLE_TOLERANCE = 1e-5
# An explicit settling time whose chain error is above this cannot be called settled.
UNSETTLED = 1e-3
_MAX_STEPS = 100_000


def chain_error(alphas, steps: int) -> float:
    """Largest distance from the fixed point of a unit step through the chain after ``steps`` steps.

    Stage ``s`` follows :math:`x_s \\leftarrow x_s + \\alpha_s (x_{s-1} - x_s)`
    with the previous step's :math:`x_{s-1}` (the synaptic delay) and
    :math:`x_0 = 1`; all start at rest.
    """
    x = [0.0] * len(alphas)
    for _ in range(steps):
        prev = [1.0, *x[:-1]]
        x = [xi + a * (p - xi) for xi, a, p in zip(x, alphas, prev)]
    return max(abs(1.0 - xi) for xi in x)


def settle_steps(alphas, tol: float = SETTLE_TOLERANCE) -> int:
    """Fewest steps after which :func:`chain_error` is below ``tol``."""
    x = [0.0] * len(alphas)
    for m in range(1, _MAX_STEPS + 1):
        prev = [1.0, *x[:-1]]
        x = [xi + a * (p - xi) for xi, a, p in zip(x, alphas, prev)]
        if max(abs(1.0 - xi) for xi in x) < tol:
            return m
    return _MAX_STEPS


def chain(n_layers: int, pathway: str, tau_ms: float, dt_ms: float, tau_apical_ms: float,
          loss: str = "cross_entropy") -> list[float]:
    """The per-step gains :math:`\\alpha` of the forward stages, the softmax normaliser and the feedback hops.

    With the cross-entropy loss the readout's error :math:`1/Z - y` needs
    :math:`Z`, summed by the readout-to-readout synapses from the previous
    step's potentials: one more pure delay between the last forward stage
    and the error (invisible at small ``dt``, where it only adds a step to
    many; at ``dt >> tau`` the chain would otherwise be one step short).
    """
    hops = {"layerwise": n_layers - 1, "direct": 1, "indirect": n_layers - 1}.get(pathway, 0)
    a_fb = 1.0 - math.exp(-dt_ms / tau_apical_ms) if tau_apical_ms > 0 else 1.0
    softmax = [1.0] if loss == "cross_entropy" else []
    return [1.0 - math.exp(-dt_ms / tau_ms)] * n_layers + softmax + [a_fb] * hops
