"""A learning rule per feedback projection (hybrid networks).

Nengo attaches a learning rule to each connection; here each layer-wise
feedback projection names the rule that makes its teaching matrix
(:attr:`cortex_fa.column.Projection.rule`), and the network's rule is the
default for projections that name none. :class:`ColumnRules` presents such a
network to the training loop, the metrics and the backends as one ordinary
layer-wise rule:

.. math::

    \\delta_{l-1} = (\\delta_l B_l) \\odot f'_{l-1}(a_{l-1}), \\qquad
    B_l = B_l^{(r_{l-1})}(W, \\text{state}),

where :math:`r_{l-1}` is the rule of column ``l - 1``'s feedback projection
(the one carrying :math:`\\delta_l` down onto column ``l - 1``'s apical side).

Each distinct rule is instantiated once and sees a view of the network in
which only its own projections exist, so it draws, keeps and updates only
those; with one rule on every projection the draws, the state and every
update are those of that rule alone, bit for bit.
"""

from __future__ import annotations

import dataclasses

from cortex_fa.errors import ConfigError
from cortex_fa.rules.base import LearningRule, feedback_projections


@dataclasses.dataclass(frozen=True)
class _View:
    """A network holding only some of its feedback projections: what one rule of several sees.

    Has what rules read of a :class:`~cortex_fa.network.Network` (``columns``,
    ``sizes``, ``pathway``), without its checks: a layer-wise network lacking
    feedback projections is not trainable on its own, and this one never is.
    """

    columns: tuple
    input_size: int
    pathway: str

    @property
    def sizes(self) -> tuple[int, ...]:
        return (self.input_size, *(c.size for c in self.columns))

    @property
    def n_layers(self) -> int:
        return len(self.columns)


class ColumnRules(LearningRule):
    """Several layer-wise rules in one network, one per feedback projection.

    Parameters
    ----------
    parts : dict of str -> LearningRule
        The rule instances, by name.
    owner : dict of int -> str
        For each layer ``l = 2..L`` of a feedback matrix ``B_l``, the name of
        the rule that makes it.
    """

    name = "per-column"
    pathway = "layerwise"
    summary = "a layer-wise rule per feedback projection"

    def __init__(self, parts: dict[str, LearningRule], owner: dict[int, str]):
        super().__init__()
        self.parts, self.owner = dict(parts), dict(owner)
        flags = [rule.reads_weights for rule in self.parts.values()]
        self.reads_weights = None if None in flags else any(flags)

    @property
    def label(self) -> str:
        """The rules from the bottom column up, e.g. ``"fa,fa,bp"``."""
        return ",".join(self.owner[l] for l in sorted(self.owner))

    def _views(self, network):
        """``name -> network`` in which only that rule's feedback projections remain."""
        columns = network.columns
        views = {}
        for name in self.parts:
            kept = [col if col.feedback is None or self.owner.get(i + 2) == name
                    else dataclasses.replace(col, feedback=None) for i, col in enumerate(columns)]
            views[name] = _View(tuple(kept), network.input_size, network.pathway)
        return views

    def init_state(self, network, rng):
        # rules in order of their lowest column: the draws are a function of the layout alone
        return {name: self.parts[name].init_state(view, rng) for name, view in self._views(network).items()}

    def feedback(self, weights, state, layer):
        name = self.owner[layer]
        return self.parts[name].feedback(weights, state[name], layer)

    def changes_feedback(self) -> bool:
        return any(rule.changes_feedback() for rule in self.parts.values())

    def after_update(self, weights, steps, state, *, lr, weight_decay, rng):
        for name, rule in self.parts.items():
            rule.after_update(weights, steps, state[name], lr=lr, weight_decay=weight_decay, rng=rng)


def compose(network, default: str, params: dict | None, make) -> LearningRule:
    """The rule that trains ``network``: ``make(default)``, or a :class:`ColumnRules`.

    Parameters
    ----------
    network : Network
        Its feedback projections may name a rule (``Projection.rule``).
    default : str
        The network's rule, for projections that name none.
    params : dict
        ``rule_params``, given to every rule that accepts them (unknown keys
        are refused only when no rule of the network accepts them).
    make : callable
        ``make(name, params) -> LearningRule`` (the registry's).
    """
    named = {layer: proj.rule for layer, proj, _, _ in feedback_projections(network) if proj.rule is not None}
    if not named:
        return make(default, params)
    if network.pathway != "layerwise":
        raise ConfigError(f"per-column rules need layer-wise feedback; the {network.pathway} pathway of rule "
                          f"{default!r} is network-wide (use a layer-wise rule: bp, fa, usf, frsf, brsf, kp)")
    owner = {layer: named.get(layer, default) for layer, _, _, _ in feedback_projections(network)}
    ordered = sorted(set(owner.values()), key=lambda n: min(l for l, m in owner.items() if m == n))
    parts = {}
    for name in ordered:
        rule_class = make(name, None).__class__
        if rule_class.pathway != "layerwise":
            column = network.columns[min(l for l, m in owner.items() if m == name) - 2].name
            raise ConfigError(f"column {column!r}: rule {name!r} is {rule_class.pathway}, not layer-wise; "
                              "a feedback projection takes bp, fa, usf, frsf, brsf or kp")
        accepted = {k: v for k, v in (params or {}).items() if k in rule_class.defaults}
        parts[name] = make(name, accepted)
    unused = sorted(set(params or {}) - {k for p in parts.values() for k in p.defaults})
    if unused:
        raise ConfigError(f"rule_params {', '.join(map(repr, unused))} fit none of the rules "
                          f"{', '.join(parts)}; remove them")
    return ColumnRules(parts, owner)
