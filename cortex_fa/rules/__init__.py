"""Learning rules, registered by name.

A new rule is one small module: subclass :class:`LearningRule`, set ``name``
and ``pathway``, implement ``feedback`` (and ``init_state`` /
``after_update`` if the feedback synapses are random or plastic), then
:func:`register` it. Nothing in the training loop changes.
"""

from __future__ import annotations

from cortex_fa.errors import ConfigError, choices_text, did_you_mean
from cortex_fa.rules.backprop import Backprop, ReadoutOnly
from cortex_fa.rules.base import LearningRule, feedback_projections
from cortex_fa.rules.direct import DirectFeedbackAlignment, DirectRandomTargetProjection
from cortex_fa.rules.feedback_alignment import FeedbackAlignment, KolenPollack
from cortex_fa.rules.indirect import IndirectFeedbackAlignment
from cortex_fa.rules.per_column import ColumnRules, compose
from cortex_fa.rules.sign_symmetry import (
    BatchRandomMagnitudeSignFeedback,
    FixedRandomMagnitudeSignFeedback,
    UniformSignFeedback,
)

_REGISTRY: dict[str, type[LearningRule]] = {}


def register(rule_class: type[LearningRule]) -> type[LearningRule]:
    """Add a rule class to the registry (usable as a decorator)."""
    if not rule_class.name:
        raise ValueError("a learning rule needs a non-empty name")
    _REGISTRY[rule_class.name] = rule_class
    return rule_class


def get(name: str) -> type[LearningRule]:
    """Return the rule class registered as ``name``."""
    try:
        return _REGISTRY[name]
    except KeyError:
        raise ConfigError(f"rule {name!r} is not known{did_you_mean(name, _REGISTRY)}; use {choices_text(_REGISTRY)}") from None


def available() -> tuple[str, ...]:
    return tuple(_REGISTRY)


def make(name: str, params: dict | None = None) -> LearningRule:
    """Instantiate a rule with its parameters."""
    return get(name)(**(params or {}))


def for_network(network, name: str, params: dict | None = None) -> LearningRule:
    """The rule that trains ``network``: rule ``name``, or one per feedback projection.

    Feedback projections that name a rule (``Projection.rule``) get it; the
    others get ``name``. See :class:`~cortex_fa.rules.per_column.ColumnRules`.
    """
    return compose(network, name, params, make)


for _cls in (
    Backprop,
    FeedbackAlignment,
    UniformSignFeedback,
    FixedRandomMagnitudeSignFeedback,
    BatchRandomMagnitudeSignFeedback,
    DirectFeedbackAlignment,
    KolenPollack,
    DirectRandomTargetProjection,
    IndirectFeedbackAlignment,
    ReadoutOnly,
):
    register(_cls)

__all__ = ["LearningRule", "ColumnRules", "register", "get", "available", "make", "for_network",
           "feedback_projections"]
