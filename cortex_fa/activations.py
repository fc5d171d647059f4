"""Activation functions as (f, f') pairs working in place on float32 arrays.

The derivative is computed from the pre-activation ``a`` *and* the output
``h = f(a)`` because for tanh and sigmoid it is cheapest from ``h``:

.. math::

    \\tanh'(a) = 1 - h^2, \\qquad \\sigma'(a) = h (1 - h), \\qquad
    \\mathrm{relu}'(a) = [a > 0], \\qquad \\mathrm{linear}'(a) = 1.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Callable

import numpy as np
from scipy.special import expit

from cortex_fa.errors import ConfigError, choices_text, did_you_mean


@dataclass(frozen=True)
class Activation:
    """A named non-linearity with its derivative.

    ``forward(a, out)`` writes ``f(a)`` into ``out`` (which may be ``a``) and
    returns it; ``derivative(a, h, out)`` writes ``f'(a)`` into ``out``.
    """

    name: str
    forward: Callable[[np.ndarray, np.ndarray], np.ndarray]
    derivative: Callable[[np.ndarray, np.ndarray, np.ndarray], np.ndarray]


def _tanh(a, out):
    return np.tanh(a, out=out)


def _tanh_prime(a, h, out):
    np.multiply(h, h, out=out)
    np.subtract(1.0, out, out=out)
    return out


def _sigmoid(a, out):
    return expit(a, out=out)


def _sigmoid_prime(a, h, out):
    np.subtract(1.0, h, out=out)
    np.multiply(out, h, out=out)
    return out


def _relu(a, out):
    return np.maximum(a, 0.0, out=out)


def _relu_prime(a, h, out):
    np.greater(a, 0.0, out=out)  # bools cast to 0.0 / 1.0 in the float out
    return out


def _linear(a, out):
    if out is not a:
        np.copyto(out, a)
    return out


def _linear_prime(a, h, out):
    out.fill(1.0)
    return out


ACTIVATIONS: dict[str, Activation] = {
    "tanh": Activation("tanh", _tanh, _tanh_prime),
    "sigmoid": Activation("sigmoid", _sigmoid, _sigmoid_prime),
    "relu": Activation("relu", _relu, _relu_prime),
    "linear": Activation("linear", _linear, _linear_prime),
}


def dropped(act: Activation, mask: np.ndarray) -> Activation:
    """``act`` followed by inverted dropout with a fixed ``mask`` (entries 0 or 1/(1-p)).

    .. math:: h = m \\odot f(a), \\qquad \\partial h / \\partial a = m \\odot f'(a)

    The derivative recomputes :math:`f(a)` (the stored ``h`` is masked), so
    every delta kernel applies the mask with no change of its own: a dropped
    unit neither sends activity up nor learns.
    """

    def forward(a, out):
        act.forward(a, out)
        out *= mask
        return out

    def derivative(a, h, out):
        fa = act.forward(a, np.empty_like(a))
        act.derivative(a, fa, out)
        out *= mask
        return out

    return Activation(f"{act.name}+dropout", forward, derivative)


def get(name: str) -> Activation:
    """Look up an activation by name."""
    try:
        return ACTIVATIONS[name]
    except KeyError:
        raise ConfigError(
            f"activation '{name}' is not known{did_you_mean(name, ACTIVATIONS)}; use {choices_text(ACTIVATIONS)}"
        ) from None
