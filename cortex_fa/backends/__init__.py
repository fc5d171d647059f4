"""Backends compile a :class:`~cortex_fa.network.Network` and a rule into a model.

A backend module exposes ``compile(network, rule, config, rng) -> model``;
the model offers ``train_batch(x, y, labels, lr) -> (loss_sum, n_correct)``,
``evaluate(x, labels) -> (mean_loss, accuracy)`` and the attributes
``weights``, ``biases``, ``activations``, ``state`` (read by the metrics).
Optional backends are imported only when asked for.
"""

from __future__ import annotations

import importlib

from cortex_fa.errors import BackendUnavailable, ConfigError, choices_text, did_you_mean

_BACKENDS = {
    "numpy": ("cortex_fa.backends.numpy_backend", None),
    "brian2": ("cortex_fa.backends.brian2", "pip install 'cortex_fa[brian2]'"),
}


def available() -> tuple[str, ...]:
    return tuple(_BACKENDS)


def get(name: str):
    """Import and return the backend module called ``name``."""
    if name not in _BACKENDS:
        raise ConfigError(f"backend {name!r} is not known{did_you_mean(name, _BACKENDS)}; use {choices_text(_BACKENDS)}")
    module, install = _BACKENDS[name]
    try:
        return importlib.import_module(module)
    except ImportError as exc:
        missing = getattr(exc, "name", None) or str(exc)
        if install is None or module == missing:
            raise
        raise BackendUnavailable(f"the {name} backend needs {missing}, which is not installed; install it with: {install}") from None
