"""Feedback alignment and Kolen-Pollack: random, separate feedback synapses."""

from __future__ import annotations

import numpy as np

from cortex_fa.errors import ConfigError
from cortex_fa.rules.base import LearningRule


class FeedbackAlignment(LearningRule):
    """Fixed random feedback (Lillicrap et al. 2016).

    .. math:: B_l \\sim \\text{feedback init}, \\text{ fixed during learning}

    The forward weights come to align with :math:`B_l^T` because every update
    :math:`\\Delta W_l \\propto -h_{l-1}^T \\delta_l` pushes ``W_{l}`` along
    directions that make :math:`\\delta_l B_l` a descent direction.
    """

    name = "fa"
    reads_weights = False
    summary = "feedback alignment (fixed random B)"

    def init_state(self, network, rng):
        return {"B": self.draw_feedback(network, rng)}

    def feedback(self, weights, state, layer):
        return state["B"][layer]


class KolenPollack(FeedbackAlignment):
    """Kolen-Pollack: feedback gets the same update and decay as :math:`W^T`.

    .. math::

        W_l \\leftarrow (1 - \\eta\\lambda) W_l + U_l, \\qquad
        B_l \\leftarrow (1 - \\eta\\lambda) B_l + U_l^T,

    with :math:`U_l` the optimiser's increment and :math:`\\lambda` the run's
    ``weight_decay`` plus the rule's own ``decay`` (``rule_params``; applied
    to both W and B). The mismatch :math:`W_l^T - B_l` shrinks by
    :math:`(1 - \\eta\\lambda)` every step, so B converges to :math:`W^T`
    without any weight being transported. With :math:`\\lambda = 0` the
    mismatch stays at its initial value and alignment comes only from the
    shared updates growing both matrices.
    """

    name = "kp"
    reads_weights = False
    summary = "Kolen-Pollack (B gets W^T's update and decay)"
    defaults = {"decay": 0.0}

    @classmethod
    def check_config(cls, config):
        rule = cls(**config.rule_params)
        decay = rule.params["decay"]
        if isinstance(decay, bool) or not isinstance(decay, (int, float)) or not (0 <= decay < float("inf")):
            raise ConfigError(f"rule_params.decay for 'kp' must be a finite number >= 0, got {decay!r}")

    def after_update(self, weights, steps, state, *, lr, weight_decay, rng):
        extra = float(self.params["decay"])
        for layer, B in state["B"].items():
            # the factor in B's own dtype: a float64 reference must not round it to float32
            B *= B.dtype.type(1.0 - lr * (weight_decay + extra))
            B += steps[layer - 1].T
        if extra:
            # the run's weight decay already shrank W; add the rule's own share
            for W in weights:
                W *= W.dtype.type(1.0 - lr * extra)
