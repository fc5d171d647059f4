"""When a run logs, holds out, stops and gives up: small pure helpers of the training loop.

With ``config.validation = N`` the last ``N`` images of the training file are
held out (the same images for every seed and rule: the split draws nothing
random), evaluated at every epoch end, and early stopping
(``config.patience``) watches their accuracy.
"""

from __future__ import annotations

import numpy as np

from cortex_fa.errors import ConfigError

# A mean batch loss this many times the chance-level loss (or NaN/inf) ends the
# run as diverged: a network that learns never comes near it, one that blew up
# rarely comes back (tanh units saturated at +-1 keep a finite but huge loss).
DIVERGED_FACTOR = 100.0


def chance_loss(loss: str, n_classes: int = 10) -> float:
    """Loss of an uninformed network: ln(n) for cross-entropy, 1/2 |y|^2 = 0.5 for MSE,
    n ln 2 for binary cross-entropy (every sigmoid output at 1/2)."""
    if loss == "bce":
        return float(n_classes * np.log(2.0))
    return float(np.log(n_classes)) if loss == "cross_entropy" else 0.5


def is_logged(step: int, steps_per_epoch: int, epochs: int, *, log_early: bool = True, log_every: int = 1) -> bool:
    """Whether metrics are logged after ``step`` updates (see :func:`logging_steps`).

    Epoch ends beyond ``epochs`` (a simulation run on past its budget) follow
    the same ``log_every`` rule.
    """
    if step == 0 or step == steps_per_epoch * epochs:
        return True
    if step % steps_per_epoch == 0:
        return (step // steps_per_epoch) % log_every == 0
    return log_early and step < steps_per_epoch and step & (step - 1) == 0


def logging_steps(steps_per_epoch: int, epochs: int, *, log_early: bool = True, log_every: int = 1) -> list[int]:
    """Steps at which metrics are logged.

    Step 0 (before any update), ``1, 2, 4, 8, ...`` inside the first epoch if
    ``log_early``, the end of every ``log_every``-th epoch and the last step.
    """
    total = steps_per_epoch * epochs
    steps = {0, total}
    if log_early:
        k = 1
        while k < steps_per_epoch:
            steps.add(k)
            k *= 2
    steps.update(e * steps_per_epoch for e in range(log_every, epochs + 1, log_every))
    return sorted(steps)


def validation_split(n_train: int, validation: int) -> tuple[np.ndarray, np.ndarray]:
    """``(training pool, validation indices)``: the last ``validation`` images are held out.

    The split is a fixed cut of the training file, not a random draw, so it
    is identical for every seed and rule and consumes no randomness.
    """
    if validation >= n_train:
        raise ConfigError(f"validation {validation} leaves none of the {n_train} training images; use fewer")
    return np.arange(n_train - validation), np.arange(n_train - validation, n_train)


def best_epoch(accuracies, patience: int | None = None) -> tuple[int, bool]:
    """``(index of the best accuracy, whether early stopping ends here)``.

    The best is the first maximum (later ties are not improvements); the run
    stops once ``patience`` epochs have passed without a new best.
    """
    acc = np.asarray(accuracies, dtype=float)
    best = int(np.nanargmax(acc)) if np.isfinite(acc).any() else 0
    return best, patience is not None and len(acc) - 1 - best >= patience


def plateau_drops(accuracies, patience: int) -> int:
    """How often a plateau schedule has cut the rate after these epoch-end accuracies.

    Walks the validation history: a value above the best so far is an
    improvement (ties are not, as in :func:`best_epoch`); after ``patience``
    epochs in a row without one the rate is cut (multiplied by
    ``lr_decay``) and the count of epochs without improvement starts again,
    so a long plateau cuts it every ``patience`` epochs. Non-finite values
    (a diverged evaluation) never improve. Pure: a run restored from a
    checkpoint gets the same count from its restored history.

    Examples
    --------
    >>> plateau_drops([0.90, 0.95, 0.95, 0.94], patience=2)
    1
    >>> plateau_drops([0.90, 0.91, 0.92], patience=1)
    0
    """
    if isinstance(patience, bool) or not isinstance(patience, (int, np.integer)) or patience < 1:
        raise ConfigError(f"lr_patience must be an integer >= 1, got {patience!r}")
    drops, waited, best = 0, 0, -np.inf
    for value in accuracies:
        value = float(value)
        if np.isfinite(value) and value > best:
            best, waited = value, 0
            continue
        waited += 1
        if waited >= patience:
            drops, waited = drops + 1, 0
    return drops
