"""Backpropagation: the reference, with weight transport (:math:`B_l = W_l^T`)."""

from __future__ import annotations

from cortex_fa.rules.base import LearningRule


class Backprop(LearningRule):
    """Exact gradient: the feedback synapses are the transpose of W.

    .. math:: B_l = W_l^T
    """

    name = "bp"
    reads_weights = True
    pathway = "layerwise"
    summary = "backpropagation (feedback = W^T, weight transport)"

    def feedback(self, weights, state, layer):
        return weights[layer - 1].T


class ReadoutOnly(LearningRule):
    """Only the readout column learns; hidden columns keep their random weights.

    The "shallow" control of Lillicrap et al. (2016): :math:`\\delta_l = 0`
    for every hidden column.
    """

    name = "shallow"
    pathway = "none"
    summary = "readout-only learning (hidden columns stay random)"

    def feedback(self, weights, state, layer):  # never asked: no feedback pathway
        raise RuntimeError("the readout-only rule has no feedback pathway")
