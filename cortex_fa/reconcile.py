"""A hand-built network and a run configuration: agree, or say which field contradicts which column.

A :class:`~cortex_fa.config.RunConfig` can describe a network's shape
(``hidden``, ``activation``, ``output_activation``, the initialisers,
``column_rules``, and through its rule the feedback pathway). When a
:class:`~cortex_fa.simulation.Simulation` is given a network as well, the
network is the truth: a shape field left at its default takes the network's
value (so the results file describes what was trained), a field set to
something else is a :class:`ConfigError` naming the field, the column and
the fix.
"""

from __future__ import annotations

import dataclasses

from cortex_fa.errors import ConfigError


def _uniform(values):
    """The one value all items share, or None."""
    values = list(values)
    return values[0] if values and all(v == values[0] for v in values) else None


def network_fields(network) -> dict:
    """The RunConfig fields that ``network`` determines (only those it determines uniquely)."""
    hidden_cols, readout = network.columns[:-1], network.columns[-1]
    fields = {"hidden": network.hidden, "output_activation": readout.activation,
              "column_rules": network.column_rules}
    act = _uniform(c.activation for c in hidden_cols)
    if act is not None:
        fields["activation"] = act
    # a config says: one init for the first projection, one scale rule (same distribution, scale) for all above
    first, above = network.columns[0].feedforward.init, _uniform(c.feedforward.init for c in network.columns[1:])
    if above is not None and (above.distribution, above.scale) == (first.distribution, first.scale):
        fields.update(init=first.scheme, init_distribution=first.distribution, init_scale=first.scale,
                      init_above_first="same" if above == first else above.scheme)
    fb = _uniform(c.feedback.init for c in network.columns if c.feedback is not None)
    if fb is not None:
        fields.update(feedback_init=fb.scheme, feedback_distribution=fb.distribution, feedback_scale=fb.scale)
    return fields


def reconcile(network, config):
    """``config`` with the network's shape fields, or a ConfigError where they contradict it."""
    from cortex_fa import rules
    from cortex_fa.config import RunConfig

    if network.input_size != 784:
        raise ConfigError(f"the network's input has {network.input_size} units; MNIST images have 784 pixels")
    if network.columns[-1].size != 10:
        raise ConfigError(f"column {network.columns[-1].name!r} (the readout) has {network.columns[-1].size} units; "
                          "MNIST has 10 classes")
    defaults = {f.name: f.default for f in dataclasses.fields(RunConfig)}
    changes = {}
    for name, value in network_fields(network).items():
        given = getattr(config, name)
        if given == value:
            continue
        if given != defaults[name]:
            raise ConfigError(f"config {name} {_show(given)} contradicts the network ({_show(value)}); "
                              f"leave {name} out of the config or make it {_show(value)}")
        changes[name] = value
    pathway = rules.get(config.rule).pathway
    if pathway != network.pathway:
        fits = [n for n in rules.available() if rules.get(n).pathway == network.pathway]
        raise ConfigError(f"rule {config.rule!r} sends its teaching signal by the {pathway} pathway, but the "
                          f"network's feedback projections are {network.pathway}; use a {network.pathway} rule "
                          f"({', '.join(fits)}) or build the network with pathway={pathway!r}")
    if config.backend != "numpy" and network.column_rules is not None:
        raise ConfigError("per-column rules run on the numpy backend only; use backend 'numpy'")
    return config.replace(**changes) if changes else config


def _show(value) -> str:
    if isinstance(value, tuple):
        return ",".join(map(str, value))
    return repr(value)
