"""``backend_params`` of the Brian2 backend: validation, defaults, and what the results record.

Checked before anything is built, and bad input refused in one line. The
defaults are the fast path: ``target = "auto"`` (C++ standalone when a C++
compiler is found, else the best runtime target, see
:mod:`cortex_fa.backends.brian2.targets`), ``dynamics = "fast"`` (``dt = 40
tau``: every stage of the chain settles in one exact step, so a presentation
takes ``L + 1 + hops`` steps) and blocks of 1000 presentations per run.
``dynamics = "resolved"`` (``dt = tau / 5``) resolves the rate dynamics in
time, for those who want to watch them; an explicit ``dt_ms`` overrides both.
Settling steps: :mod:`cortex_fa.backends.brian2.settling`.
"""

from __future__ import annotations

import math

from cortex_fa.extras import require

require("brian2", "cortex_fa.backends.brian2.options")  # one line naming the extra, not a traceback, without brian2
import brian2 as b2  # noqa: E402

from cortex_fa.backends.brian2.settling import UNSETTLED, chain, chain_error, settle_steps  # noqa: E402
from cortex_fa.backends.brian2.targets import resolve_target  # noqa: E402
from cortex_fa.errors import ConfigError, did_you_mean  # noqa: E402

DEFAULTS = {"tau_ms": 10.0, "dynamics": "fast", "dt_ms": None, "settle_time_ms": None, "tau_apical_ms": 0.0,
            "target": "auto", "eval": "steady_state", "plasticity": "synaptic", "block": 1000}
TARGETS = ("auto", "numpy", "cython", "cpp_standalone")
PLASTICITY = ("synaptic", "python")
# dt as a multiple of tau for each named setting of ``dynamics``.
DYNAMICS = {"fast": 40.0, "resolved": 0.2}


def _positive(p, key):
    v = p[key]
    if isinstance(v, bool) or not isinstance(v, (int, float)) or not math.isfinite(v) or v < 0 \
            or (v == 0 and key != "tau_apical_ms"):
        raise ConfigError(f"backend_params.{key} must be a positive number of milliseconds, got {v!r}")


def options(backend_params: dict, network, rule, config=None) -> dict:
    """Validate ``backend_params`` and fill in the defaults.

    Returns every option (``target`` resolved, ``dynamics`` "custom" when
    ``dt_ms`` is given) plus ``settle_steps`` (``settle_time_ms`` is
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
    if p["dynamics"] not in DYNAMICS:
        raise ConfigError(f"backend_params.dynamics must be 'fast' or 'resolved', got {p['dynamics']!r}"
                          f"{did_you_mean(str(p['dynamics']), DYNAMICS)}")
    if p["target"] not in TARGETS:
        raise ConfigError(f"backend_params.target must be one of {', '.join(TARGETS[1:])} or auto, got {p['target']!r}"
                          f"{did_you_mean(p['target'], TARGETS)}")
    if p["plasticity"] not in PLASTICITY:
        raise ConfigError(f"backend_params.plasticity must be 'synaptic' or 'python', got {p['plasticity']!r}")
    if p["eval"] not in ("steady_state", "simulate"):
        raise ConfigError(f"backend_params.eval must be 'steady_state' or 'simulate', got {p['eval']!r}")
    if p["block"] is None:
        p["block"] = DEFAULTS["block"]
    if (isinstance(p["block"], bool) or not isinstance(p["block"], int) or p["block"] < 1):
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
        p["dt_ms"] = p["tau_ms"] * DYNAMICS[p["dynamics"]]
    else:
        p["dynamics"] = "custom"  # an explicit dt_ms: neither named setting
    p["target"] = resolve_target(p["target"], p["plasticity"])
    alphas = chain(network.n_layers, rule.pathway, p["tau_ms"], p["dt_ms"], p["tau_apical_ms"],
                   config.loss if config is not None else "cross_entropy")
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



def attributes(params, training: str) -> dict:
    """Global attributes a Brian2 model adds to its results."""
    return {"tau_ms": float(params["tau_ms"]), "settle_time_ms": float(params["settle_time_ms"]),
            "dt_ms": float(params["dt_ms"]), "dynamics": params["dynamics"], "tau_apical_ms": float(params["tau_apical_ms"]),
            "settle_steps": int(params["settle_steps"]), "codegen_target": params["target"],
            "plasticity": params["plasticity"], "brian2_version": b2.__version__, "training": training,
            "evaluation": params["eval"], "block": int(params["block"]), "settle_error": float(params["settle_error"])}
