"""``backend_params`` of the Brian2 backend: validation, defaults, settling time.

No Brian2 import here: options are checked (and bad input refused in one
line) before anything is built.

The settling time is the number of integration steps after which the
*discrete-time* chain the simulation actually runs has reached its fixed
point to :data:`SETTLE_TOLERANCE`. The membrane equation is linear and
integrated exactly, so one step of length ``dt`` moves every column by

.. math:: u \\leftarrow u + \\alpha\\,(I - u), \\qquad \\alpha = 1 - e^{-dt/\\tau},

and each synapse group adds a one-step delay (it sums the rates of the
previous step). :func:`settle_steps` simulates the step response of that
chain: ``L`` leaky forward stages, then one stage per feedback hop (a pure
delay, or leaky with ``tau_apical``). The fixed point does not depend on
``dt``: a larger ``dt`` settles in fewer steps (with ``dt >> tau`` every stage
settles in one step and the chain in ``L + hops`` steps).
"""

from __future__ import annotations

import math

from cortex_fa.extras import require

require("brian2", "cortex_fa.backends.brian2_options")  # one line naming the extra, not a traceback, without brian2
import brian2 as b2  # noqa: E402
import numpy as np  # noqa: E402

from cortex_fa import kernels  # noqa: E402
from cortex_fa.errors import ConfigError, did_you_mean  # noqa: E402

DEFAULTS = {"tau_ms": 10.0, "dt_ms": None, "settle_time_ms": None, "tau_apical_ms": 0.0,
            "target": "numpy", "eval": "steady_state", "plasticity": "synaptic", "block": None}
TARGETS = ("numpy", "cython", "cpp_standalone")
PLASTICITY = ("synaptic", "python")
SETTLE_TOLERANCE = 1e-5
# An explicit settling time whose chain error is above this cannot be called settled.
UNSETTLED = 1e-3
_MAX_STEPS = 100_000


def chain_error(alphas, steps: int) -> float:
    """Largest distance from the fixed point of a unit step through the chain after ``steps`` steps.

    Stage ``s`` follows :math:`x_s \\leftarrow x_s + \\alpha_s (x_{s-1} - x_s)`
    with the previous step's :math:`x_{s-1}` (the synaptic delay) and
    :math:`x_0 = 1`; all start at rest.
    """
    x = [0.0] * len(alphas)
    for _ in range(steps):
        prev = [1.0, *x[:-1]]
        x = [xi + a * (p - xi) for xi, a, p in zip(x, alphas, prev)]
    return max(abs(1.0 - xi) for xi in x)


def settle_steps(alphas, tol: float = SETTLE_TOLERANCE) -> int:
    """Fewest steps after which :func:`chain_error` is below ``tol``."""
    x = [0.0] * len(alphas)
    for m in range(1, _MAX_STEPS + 1):
        prev = [1.0, *x[:-1]]
        x = [xi + a * (p - xi) for xi, a, p in zip(x, alphas, prev)]
        if max(abs(1.0 - xi) for xi in x) < tol:
            return m
    return _MAX_STEPS


def chain(n_layers: int, pathway: str, tau_ms: float, dt_ms: float, tau_apical_ms: float) -> list[float]:
    """The per-step gains :math:`\\alpha` of the forward stages and the feedback hops."""
    hops = {"layerwise": n_layers - 1, "direct": 1, "indirect": n_layers - 1}.get(pathway, 0)
    a_fb = 1.0 - math.exp(-dt_ms / tau_apical_ms) if tau_apical_ms > 0 else 1.0
    return [1.0 - math.exp(-dt_ms / tau_ms)] * n_layers + [a_fb] * hops


def _positive(p, key):
    v = p[key]
    if isinstance(v, bool) or not isinstance(v, (int, float)) or not math.isfinite(v) or v < 0 \
            or (v == 0 and key != "tau_apical_ms"):
        raise ConfigError(f"backend_params.{key} must be a positive number of milliseconds, got {v!r}")


def options(backend_params: dict, network, rule, config=None) -> dict:
    """Validate ``backend_params`` and fill in the defaults.

    Returns every option plus ``settle_steps`` (``settle_time_ms`` is
    rounded to a whole number of ``dt_ms``) and ``settle_error`` (the chain
    error of that many steps).

    Raises
    ------
    ConfigError
        Unknown keys, invalid values, or a presentation too short for the
        columns to settle, in one line.
    """
    for key in backend_params:
        if key not in DEFAULTS:
            raise ConfigError(f"brian2 backend has no parameter '{key}'{did_you_mean(key, DEFAULTS)}; "
                              f"valid: {', '.join(DEFAULTS)}")
    p = {**DEFAULTS, **backend_params}
    for key in ("tau_ms", "dt_ms", "settle_time_ms", "tau_apical_ms"):
        if p[key] is not None or key not in ("dt_ms", "settle_time_ms"):
            _positive(p, key)
    if p["target"] not in TARGETS:
        raise ConfigError(f"backend_params.target must be one of {', '.join(TARGETS)}, got {p['target']!r}"
                          f"{did_you_mean(p['target'], TARGETS)}")
    if p["plasticity"] not in PLASTICITY:
        raise ConfigError(f"backend_params.plasticity must be 'synaptic' or 'python', got {p['plasticity']!r}")
    if p["eval"] not in ("steady_state", "simulate"):
        raise ConfigError(f"backend_params.eval must be 'steady_state' or 'simulate', got {p['eval']!r}")
    if p["block"] is not None and (isinstance(p["block"], bool) or not isinstance(p["block"], int) or p["block"] < 1):
        raise ConfigError(f"backend_params.block must be a positive whole number of presentations, got {p['block']!r}")
    if rule.name == "per-column":
        raise ConfigError("per-column rules (column_rules) run on the numpy backend only; use --backend numpy "
                          "or one rule for the whole network")
    if p["plasticity"] == "python":
        if p["target"] == "cpp_standalone":
            raise ConfigError("backend_params.target 'cpp_standalone' needs plasticity 'synaptic' "
                              "(a standalone binary cannot call Python); drop plasticity 'python'")
        if rule.pathway == "indirect":
            raise ConfigError(f"rule '{rule.name}' needs backend_params.plasticity 'synaptic' on the brian2 backend")
    elif config is not None:
        if config.optimizer != "sgd":
            raise ConfigError(f"synaptic plasticity implements SGD (with momentum), not {config.optimizer!r}; "
                              "use --optimizer sgd or backend_params.plasticity 'python'")
    if p["dt_ms"] is None:
        p["dt_ms"] = p["tau_ms"] / 5
    alphas = chain(network.n_layers, rule.pathway, p["tau_ms"], p["dt_ms"], p["tau_apical_ms"])
    needed = settle_steps(alphas)
    if p["settle_time_ms"] is None:
        p["settle_steps"] = needed
    else:
        p["settle_steps"] = round(p["settle_time_ms"] / p["dt_ms"])
        if p["settle_steps"] < 1 or chain_error(alphas, p["settle_steps"]) > UNSETTLED:
            raise ConfigError(
                f"backend_params: a presentation of {p['settle_time_ms']:g} ms is {p['settle_steps']} steps of "
                f"dt_ms {p['dt_ms']:g}, too short to settle with tau_ms {p['tau_ms']:g}; use settle_time_ms >= "
                f"{needed * p['dt_ms']:g} ({needed} steps) or leave it out")
    p["settle_time_ms"] = p["settle_steps"] * p["dt_ms"]
    p["settle_error"] = chain_error(alphas, p["settle_steps"])
    return p


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


def attributes(params, training: str) -> dict:
    """Global attributes a Brian2 model adds to its results."""
    return {"tau_ms": float(params["tau_ms"]), "settle_time_ms": float(params["settle_time_ms"]),
            "dt_ms": float(params["dt_ms"]), "tau_apical_ms": float(params["tau_apical_ms"]),
            "settle_steps": int(params["settle_steps"]), "codegen_target": params["target"],
            "plasticity": params["plasticity"], "brian2_version": b2.__version__, "training": training,
            "evaluation": params["eval"], "settle_error": float(params["settle_error"])}
