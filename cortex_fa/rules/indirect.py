"""Indirect feedback alignment: the error enters the bottom column and climbs the forward weights."""

from __future__ import annotations

from cortex_fa.errors import ConfigError
from cortex_fa.rules.direct import DirectFeedbackAlignment


class IndirectFeedbackAlignment(DirectFeedbackAlignment):
    """IFA (Nøkland 2016, Fig. 1d).

    One fixed random matrix :math:`D_1` (shape ``(n_L, n_1)``) carries the
    output error to the first hidden column; every column above is taught
    from below, through its own forward weights:

    .. math::

        \\delta_1 = (e D_1) \\odot f'_1(a_1), \\qquad
        \\delta_l = (\\delta_{l-1} W_l) \\odot f'_l(a_l) \\quad (2 \\le l < L),
        \\qquad \\delta_L = e.

    Only column 1 has a feedback (apical) projection, from the readout; the
    deeper columns receive their teaching signal on the same basal synapses
    ``W_l`` that carry their input, so no synapse ever needs the value of
    another. At depth 1 the rule is DFA (and FA, whose ``B_2`` is drawn
    like ``D_1``); it shares DFA's draw of ``D_1`` and its checks.
    """

    name = "ifa"
    reads_weights = False  # D_1 is fixed; the climb through W is the pathway itself
    pathway = "indirect"
    signal = "error"
    summary = "indirect feedback alignment (output error -> column 1 -> up the forward weights)"

    def feedback(self, weights, state, layer):
        """``D_1`` for ``layer == 1``; the columns above have no feedback matrix."""
        if layer != 1:
            raise ValueError(f"ifa has a feedback matrix for column 1 only, asked for column {layer}")
        return state["D"][1]

    @classmethod
    def check_config(cls, config):
        super().check_config(config)  # DFA's: zero feedback sends no signal
        if config.backend == "brian2" and (config.backend_params or {}).get("plasticity") == "python":
            raise ConfigError(f"rule '{cls.name}' on the brian2 backend needs plasticity 'synaptic'; "
                              "drop backend_params.plasticity")
