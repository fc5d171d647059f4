"""Direct rules: one fixed random projection from the top to every column."""

from __future__ import annotations

from cortex_fa.errors import ConfigError
from cortex_fa.rules.base import LearningRule


class DirectFeedbackAlignment(LearningRule):
    """DFA (Nøkland 2016): the output error reaches each hidden column directly.

    .. math:: \\delta_l = (e D_l) \\odot f'_l(a_l), \\qquad D_l \\text{ fixed random}.

    The readout column learns from :math:`e` exactly as in backprop.
    """

    name = "dfa"
    reads_weights = False
    pathway = "direct"
    signal = "error"
    summary = "direct feedback alignment (output error -> every column)"

    def init_state(self, network, rng):
        return {"D": self.draw_feedback(network, rng)}

    def feedback(self, weights, state, layer):
        return state["D"][layer]

    @classmethod
    def check_config(cls, config):
        super().check_config(config)
        if config.feedback_init == "zero":
            raise ConfigError(f"rule '{cls.name}' with feedback_init 'zero' sends no signal; use xavier, he, lecun or fixed")


class DirectRandomTargetProjection(DirectFeedbackAlignment):
    """DRTP (Frenkel et al. 2021): project the target instead of the error.

    .. math:: \\delta_l = (-\\tfrac{1}{N} y D_l) \\odot f'_l(a_l)

    with ``y`` the one-hot targets of a batch of ``N``. The sign and scale make
    the signal the target part of the softmax error :math:`(p - y)/N`, so the
    hidden columns need no error from the output at all.
    """

    name = "drtp"
    reads_weights = False
    signal = "target"
    summary = "direct random target projection (target -> every column)"

    @classmethod
    def check_config(cls, config):
        super().check_config(config)
        if getattr(config, "loss_reduction", "mean") != "mean":
            raise ConfigError("rule 'drtp' projects the batch-mean target -y/N; use loss_reduction 'mean'")
