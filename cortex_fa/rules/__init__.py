"""Learning rules, registered by name.

A new rule is one small module: subclass :class:`LearningRule`, set ``name``
and ``pathway``, implement ``feedback`` (and ``init_state`` /
``after_update`` if the feedback synapses are random or plastic), then
:func:`register` it. Nothing in the training loop changes.

Rules of other installed packages (entry-point group ``cortex_fa.rules``,
see :mod:`cortex_fa.rules.plugins`) join the registry the first time it is
asked for a name it does not hold or for the list of names, so importing
cortex_fa imports no plugin, and scripts that name built-in rules only
never do. A plugin that fails to load is reported once (a warning on the
``cortex_fa.rules`` logger) and raised only where its rule is asked for.
"""

from __future__ import annotations

import logging
import threading

from cortex_fa.errors import ConfigError, choices_text, did_you_mean
from cortex_fa.rules.backprop import Backprop, ReadoutOnly
from cortex_fa.rules.base import LearningRule, feedback_projections
from cortex_fa.rules.direct import DirectFeedbackAlignment, DirectRandomTargetProjection
from cortex_fa.rules.feedback_alignment import FeedbackAlignment, KolenPollack
from cortex_fa.rules.indirect import IndirectFeedbackAlignment
from cortex_fa.rules.per_column import ColumnRules, compose
from cortex_fa.rules.plugins import load_all
from cortex_fa.rules.sign_symmetry import (
    BatchRandomMagnitudeSignFeedback,
    FixedRandomMagnitudeSignFeedback,
    UniformSignFeedback,
)

_REGISTRY: dict[str, type[LearningRule]] = {}
log = logging.getLogger(__name__)
# Plugin discovery, once per process: rules it registered, and why the failed ones failed.
_PLUGINS: dict = {"done": False, "rules": {}, "failed": {}}
_LOCK = threading.RLock()  # a Panel server may validate configs from several threads


def register(rule_class: type[LearningRule]) -> type[LearningRule]:
    """Add a rule class to the registry (usable as a decorator)."""
    if not rule_class.name:
        raise ValueError("a learning rule needs a non-empty name")
    _REGISTRY[rule_class.name] = rule_class
    return rule_class


def get(name: str) -> type[LearningRule]:
    """Return the rule class registered as ``name``, looking for plugins if there is none.

    Raises
    ------
    ConfigError
        No such rule (naming the rules there are), or ``name`` is the rule of a
        plugin that failed to load (naming the plugin and its error).
    """
    if name not in _REGISTRY:
        _discover()
    try:
        return _REGISTRY[name]
    except KeyError:
        pass
    if name in _PLUGINS["failed"]:
        raise ConfigError(f"rule {name!r} is not available: {_PLUGINS['failed'][name]}") from None
    raise ConfigError(f"rule {name!r} is not known{did_you_mean(name, _REGISTRY)}; use {choices_text(_REGISTRY)}")


def available() -> tuple[str, ...]:
    """Names of every rule: built in, registered by user code, and from installed plugins."""
    _discover()
    return tuple(_REGISTRY)


def _discover() -> None:
    """Register the installed plugins' rules (once); warn about those that fail."""
    with _LOCK:
        if _PLUGINS["done"]:
            return
        _PLUGINS["done"] = True  # first: a plugin that asks the registry while it loads must not recurse
        found = load_all(dict(_REGISTRY))
        for name, rule_class in found.rules.items():
            register(rule_class)
        _PLUGINS["rules"].update(found.rules)
        _PLUGINS["failed"].update(found.failed)
        for name, reason in found.failed.items():
            log.warning("cortex-fa: warning: %s; rule '%s' is unavailable, the other rules work", reason, name)
        for note in found.notes:
            log.warning("cortex-fa: warning: %s", note)


def reset_plugins() -> None:
    """Forget the plugins found so far; the next lookup searches again.

    For tests, and for a session in which a plugin was installed after the
    registry first looked. Rules registered by user code stay.
    """
    with _LOCK:
        for name, rule_class in _PLUGINS["rules"].items():
            if _REGISTRY.get(name) is rule_class:
                del _REGISTRY[name]
        _PLUGINS.update(done=False, rules={}, failed={})


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

__all__ = ["LearningRule", "ColumnRules", "register", "get", "available", "make", "for_network", "reset_plugins",
           "feedback_projections"]
