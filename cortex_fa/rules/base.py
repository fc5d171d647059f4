"""The learning-rule interface.

A rule says two things only: which feedback matrix carries the teaching
signal to each column (:meth:`LearningRule.feedback`) and how the feedback
synapses change (:meth:`LearningRule.after_update`). The training loop, the
optimiser and the forward pass are shared by every rule.

With row vectors and batch first, the backward pass of a ``layerwise`` rule is

.. math::

    \\delta_L = e = \\partial \\mathcal{L} / \\partial a_L, \\qquad
    \\delta_{l-1} = (\\delta_l B_l) \\odot f'_{l-1}(a_{l-1}),

with ``B_l`` of shape ``(n_l, n_{l-1})``; a ``direct`` rule sends a signal
``s`` (the output error, or the target for DRTP) to every hidden column:

.. math::

    \\delta_l = (s D_l) \\odot f'_l(a_l), \\qquad D_l \\in \\mathbb{R}^{n_L \\times n_l}.

Every rule then updates ``W_l`` with :math:`\\Delta W_l \\propto -h_{l-1}^T \\delta_l`.
"""

from __future__ import annotations

from typing import Any, ClassVar

import numpy as np

from cortex_fa import init as initializers
from cortex_fa.errors import ConfigError, did_you_mean


class LearningRule:
    """Base class; subclasses set the class attributes and override hooks.

    Attributes
    ----------
    name : str
        Registry name (``--rule NAME``).
    pathway : {"layerwise", "direct", "indirect", "none"}
        Topology of the feedback projections.
    signal : {"error", "target"}
        What a direct rule projects: the output error or the (negated) target.
    defaults : dict
        Allowed rule parameters (``rule_params``) and their default values.
    reads_weights : bool or None
        Whether :meth:`feedback` is computed from the forward weights (BP,
        the sign-symmetric family), so that it changes whenever W does.
        ``None`` (unknown): backends assume it does unless ``feedback``
        returns the same stored array on every call.
    """

    name: ClassVar[str] = ""
    pathway: ClassVar[str] = "layerwise"
    signal: ClassVar[str] = "error"
    summary: ClassVar[str] = ""
    defaults: ClassVar[dict[str, Any]] = {}
    reads_weights: ClassVar[bool | None] = None

    def __init__(self, **params):
        for key in params:
            if key not in self.defaults:
                allowed = ", ".join(self.defaults) or "none"
                raise ConfigError(
                    f"rule '{self.name}' has no parameter {key!r}{did_you_mean(key, self.defaults)}; valid: {allowed}"
                )
        self.params = {**self.defaults, **params}

    @classmethod
    def check_config(cls, config) -> None:
        """Refuse option combinations that make no sense for this rule."""
        cls(**config.rule_params)  # validates parameter names

    # -- hooks ------------------------------------------------------------
    def init_state(self, network, rng: np.random.Generator) -> dict[str, dict[int, np.ndarray]]:
        """Draw the feedback synapses. Default: nothing (e.g. backprop)."""
        return {}

    def feedback(self, weights, state, layer: int) -> np.ndarray:
        """The matrix actually used to carry the teaching signal.

        ``weights[l - 1]`` is ``W_l``. For layer-wise rules ``layer`` runs over
        ``2..L`` and the result has the shape of ``W_layer.T``; for direct
        rules over ``1..L-1`` with shape ``(n_L, n_layer)``.
        """
        raise NotImplementedError

    def after_update(self, weights, steps, state, *, lr: float, weight_decay: float, rng) -> None:
        """Plasticity of the feedback synapses after the forward weights moved.

        ``steps[l - 1]`` is the optimiser's increment of ``W_l`` (without
        weight decay). Default: feedback synapses are fixed.
        """

    def changes_feedback(self) -> bool:
        """Whether :meth:`after_update` changes anything (the fused SGD path skips it otherwise)."""
        return type(self).after_update is not LearningRule.after_update

    # -- helpers for subclasses ---------------------------------------------
    @staticmethod
    def draw_feedback(network, rng, *, magnitude_only=False) -> dict[int, np.ndarray]:
        """Draw one fixed random matrix per feedback projection, keyed by layer.

        Layer-wise: ``B_l`` for ``l = 2..L`` (projection onto column ``l - 1``),
        drawn with the fans of ``W_l`` so that B and W have the same scale.
        Direct: ``D_l`` for ``l = 1..L-1``.
        """
        out = {}
        for layer, proj, fan_in, fan_out in feedback_projections(network):
            m = initializers.draw(proj.init, proj.shape, fan_in, fan_out, rng)
            out[layer] = np.abs(m) if magnitude_only else m
        return out


def feedback_projections(network):
    """Yield ``(layer, projection, fan_in, fan_out)`` for each feedback projection.

    Columns without one are skipped (a per-column rule sees a view of the
    network holding only its own projections, see :mod:`cortex_fa.rules.per_column`).
    """
    cols = network.columns
    sizes = network.sizes
    if network.pathway == "layerwise":
        # B_l lives on column l-1's apical side; it has the fans of W_l.
        found = ((l, cols[l - 2].feedback, sizes[l - 1], sizes[l]) for l in range(2, len(cols) + 1))
    elif network.pathway == "direct":
        found = ((l, cols[l - 1].feedback, sizes[-1], sizes[l]) for l in range(1, len(cols)))
    elif network.pathway == "indirect" and len(cols) > 1:
        # D_1 is drawn exactly like DFA's D_1 (same shape, fans and order)
        found = iter([(1, cols[0].feedback, sizes[-1], sizes[1])])
    else:
        found = iter(())
    yield from (item for item in found if item[1] is not None)
