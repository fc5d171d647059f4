"""The sign-concordant family (Liao, Leibo & Poggio 2016).

Feedback has the sign of the forward weights and a magnitude that is
constant (uSF), fixed random (frSF) or redrawn every batch (brSF):

.. math::

    B_l = \\operatorname{sign}(W_l^T) \\odot M_l .

For uSF, :math:`M_l` is the constant :math:`E|r|` of the feedback
initialiser, so that uSF and frSF feedback have the same scale (only the
direction matters for learning; the scale keeps deltas in range in deep
stacks). The angle to :math:`W^T` at initialisation is
:math:`\\arccos(E|w| / \\sqrt{E w^2})`: 30° for uniform, 37° for Gaussian W.
"""

from __future__ import annotations

import numpy as np

from cortex_fa import init as initializers
from cortex_fa.rules.base import LearningRule, feedback_projections


def _signed(weights, state, layer, magnitude):
    """:math:`\\operatorname{sign}(W_l^T) \\odot M` into a buffer kept in ``state`` (reused every step).

    W changes every step, so B is rebuilt every step; the buffer saves two
    W-sized temporaries (and their page faults) per layer and step. The
    array returned is overwritten by the next call for this layer.
    """
    Wt = weights[layer - 1].T
    buffers = state.setdefault("buffers", {})
    buf = buffers.get(layer)
    if buf is None or buf.shape != Wt.shape or buf.dtype != Wt.dtype:
        buf = buffers[layer] = np.empty(Wt.shape, Wt.dtype)
    np.sign(Wt, out=buf)
    return np.multiply(buf, magnitude, out=buf)


class UniformSignFeedback(LearningRule):
    """uSF: :math:`B_l = \\operatorname{sign}(W_l^T) \\cdot E|r|`."""

    name = "usf"
    reads_weights = True
    summary = "uniform sign-concordant feedback (sign(W^T) x constant)"

    def init_state(self, network, rng):
        scale = {
            layer: np.float32(initializers.mean_magnitude(proj.init, fan_in, fan_out))
            for layer, proj, fan_in, fan_out in feedback_projections(network)
        }
        return {"scale": scale}

    def feedback(self, weights, state, layer):
        return _signed(weights, state, layer, state["scale"][layer])


class FixedRandomMagnitudeSignFeedback(LearningRule):
    """frSF: :math:`B_l = \\operatorname{sign}(W_l^T) \\odot |R_l|`, R fixed."""

    name = "frsf"
    reads_weights = True
    summary = "sign-concordant feedback with fixed random magnitudes"

    def init_state(self, network, rng):
        return {"magnitude": self.draw_feedback(network, rng, magnitude_only=True)}

    def feedback(self, weights, state, layer):
        return _signed(weights, state, layer, state["magnitude"][layer])


class BatchRandomMagnitudeSignFeedback(FixedRandomMagnitudeSignFeedback):
    """brSF: as frSF but :math:`|R_l|` is redrawn after every batch.

    The magnitude used for batch ``t + 1`` is drawn after batch ``t``, so the
    metrics logged at step ``t`` describe the feedback the next update uses.
    """

    name = "brsf"
    summary = "sign-concordant feedback with magnitudes redrawn every batch"

    def init_state(self, network, rng):
        state = super().init_state(network, rng)
        state["network"] = network  # redraws need the projections' initialisers
        return state

    def after_update(self, weights, steps, state, *, lr, weight_decay, rng):
        state["magnitude"] = self.draw_feedback(state["network"], rng, magnitude_only=True)
