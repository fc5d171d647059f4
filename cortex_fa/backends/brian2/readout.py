"""Scores from settled readout potentials: per-digit loss, and accuracy by presenting digits."""

from __future__ import annotations

import numpy as np

from cortex_fa import kernels


def readout_losses(a, y, loss, act):
    """Per-presentation loss and the scores whose argmax is the answer, from settled readout potentials ``a``."""
    if loss == "cross_entropy":
        shifted = a - a.max(axis=1, keepdims=True)
        logp = shifted - np.log(np.exp(shifted).sum(axis=1, keepdims=True))
        return -(logp * y).sum(axis=1), a
    h = a if act.name == "linear" else act.forward(a, np.empty_like(a))
    return 0.5 * ((h - y) ** 2).sum(axis=1), h


def evaluate_by_presenting(model, images_uint8, labels, chunk: int = 2000):
    """Mean loss and accuracy with every image presented to the network (``eval="simulate"``)."""
    total, correct = 0.0, 0
    for start in range(0, len(labels), chunk):
        lab = labels[start:start + chunk]
        a = model.present(kernels.normalise(images_uint8[start:start + chunk]))["a"].astype(np.float64)
        losses, scores = readout_losses(a, kernels.one_hot(lab), model.config.loss, model.activations[-1])
        total += float(losses.sum())
        correct += int(np.count_nonzero(np.argmax(scores, 1) == lab))
    return total / len(labels), correct / len(labels)
