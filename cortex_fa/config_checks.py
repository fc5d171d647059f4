"""The checks behind :class:`cortex_fa.config.RunConfig`: valid choices and per-field validation.

:func:`validate` runs when a config is built and raises
:class:`~cortex_fa.errors.ConfigError` naming the field, the value and the
valid choices. It reads the config's fields only, so it imports nothing from
:mod:`cortex_fa.config` (which re-exports everything here).
"""

from __future__ import annotations

import contextvars
import math
import re
from types import SimpleNamespace

from cortex_fa.errors import ConfigError, choices_text, did_you_mean
from cortex_fa.parsing import parse_sizes

ACTIVATIONS = ("tanh", "relu", "sigmoid", "linear")
OUTPUT_ACTIVATIONS = ("linear", "sigmoid", "tanh")
LOSSES = ("cross_entropy", "mse", "bce")
LOSS_REDUCTIONS = ("mean", "sum")
INPUT_SCALINGS = ("standardise", "unit")
OPTIMIZERS = ("sgd", "adam", "rmsprop")
SCHEDULES = ("constant", "step", "cosine", "plateau")
INITS = ("xavier", "he", "lecun", "fixed", "zero")
DISTRIBUTIONS = ("uniform", "normal")
BACKENDS = ("numpy", "brian2")

# MNIST's training file; the validation split is carved from its end.
N_TRAIN_IMAGES = 60_000
# Largest synapse sample per column that --snapshots accepts (see cortex_fa.snapshots.MAX_PAIRS).
MAX_SNAPSHOT_PAIRS = 100_000
# Set while a config is rebuilt from a results file: there the rule is a label, which need not be installed.
RULE_AS_LABEL = contextvars.ContextVar("rule_as_label", default=False)


def parse_rules(value) -> tuple[str, ...]:
    """``"fa,fa,bp"``, ``"[fa,fa,bp]"`` (a sweep's grid value) or ``["fa", "fa", "bp"]`` -> ``("fa", "fa", "bp")``."""
    items = value.strip().strip("[]\"'").split(",") if isinstance(value, str) else value
    if not isinstance(items, (list, tuple)) or not all(isinstance(r, str) and r.strip() for r in items):
        raise ConfigError(f"column_rules must list one rule name per hidden column, e.g. fa,fa,bp; got {value!r}")
    return tuple(r.strip() for r in items)


def check_column_rules(cfg, rules) -> None:
    """The rules of ``column_rules`` are installed, layer-wise, and the run can take them."""
    for i, name in enumerate(cfg.column_rules, start=1):
        if name not in rules.available():
            raise ConfigError(f"column_rules: column {i} asks for rule {name!r}, which is not known"
                              f"{did_you_mean(name, rules.available())}; use {choices_text(rules.available())}")
        if rules.get(name).pathway != "layerwise":
            raise ConfigError(f"column_rules: column {i} asks for {name!r}, which is {rules.get(name).pathway}; "
                              "a column's feedback projection takes a layer-wise rule: bp, fa, usf, frsf, brsf or kp")
    if rules.get(cfg.rule).pathway != "layerwise":
        raise ConfigError(f"column_rules need a layer-wise rule as the run's rule, got {cfg.rule!r}; "
                          "e.g. rule fa with column_rules fa,fa,bp")
    if cfg.backend != "numpy":
        raise ConfigError("column_rules run on the numpy backend only; use --backend numpy")


def _check_choice(cfg, name, choices):
    value = getattr(cfg, name)
    if value not in choices:
        raise ConfigError(f"{name} {value!r} is not valid{did_you_mean(value, choices)}; use {choices_text(choices)}")


def _check_number(cfg, name, *, minimum=None, strict=False, integer=False, allow_none=False):
    value = getattr(cfg, name)
    if value is None and allow_none:
        return
    kind = "an integer" if integer else "a number"
    if isinstance(value, bool) or not isinstance(value, (int, float)) or (integer and not isinstance(value, int)):
        raise ConfigError(f"{name} must be {kind}, got {value!r}")
    if not math.isfinite(value):
        raise ConfigError(f"{name} must be finite, got {value!r}")
    if minimum is not None and (value <= minimum if strict else value < minimum):
        bound = f"> {minimum}" if strict else f">= {minimum}"
        raise ConfigError(f"{name} must be {bound}, got {value!r}")


def validate(cfg) -> None:
    """Check every field of the RunConfig ``cfg`` (normalising ``hidden`` and ``column_rules`` to tuples)."""
    from cortex_fa import rules  # late: rules import nothing from config at import time

    if not isinstance(cfg.hidden, tuple):
        object.__setattr__(cfg, "hidden", parse_sizes(cfg.hidden, "hidden"))
    if len(cfg.hidden) == 0:
        raise ConfigError("hidden must list at least one hidden column size, e.g. 500 or 240,240")
    if not isinstance(cfg.rule, str) or not cfg.rule:
        raise ConfigError(f"rule must be one rule's name, got {cfg.rule!r}; use {choices_text(rules.available())}")
    rule_as_label = RULE_AS_LABEL.get()
    if not rule_as_label:
        rules.get(cfg.rule)  # looks for plugins only if the name is not a rule here
    for name, choices in (
        ("activation", ACTIVATIONS), ("output_activation", OUTPUT_ACTIVATIONS), ("loss", LOSSES),
        ("optimizer", OPTIMIZERS), ("lr_schedule", SCHEDULES), ("init", INITS),
        ("init_distribution", DISTRIBUTIONS), ("feedback_init", INITS), ("init_above_first", ("same", *INITS)),
        ("feedback_distribution", DISTRIBUTIONS), ("backend", BACKENDS),
    ):
        _check_choice(cfg, name, choices)
    _check_number(cfg, "lr", minimum=0, strict=True)
    for name in ("momentum", "weight_decay", "init_scale", "feedback_scale"):
        _check_number(cfg, name, minimum=0)
    _check_number(cfg, "lr_decay", minimum=0, strict=True)
    if cfg.momentum >= 1:
        raise ConfigError(f"momentum must be in [0, 1), got {cfg.momentum!r}")
    for name in ("batch_size", "epochs", "probe_size", "log_every", "lr_step_epochs", "lr_patience", "max_parameters"):
        _check_number(cfg, name, minimum=1, integer=True)
    _check_number(cfg, "train_subset", minimum=1, integer=True, allow_none=True)
    _check_number(cfg, "validation", minimum=0, integer=True)
    _check_number(cfg, "patience", minimum=1, integer=True, allow_none=True)
    if cfg.validation >= N_TRAIN_IMAGES:
        raise ConfigError(
            f"validation {cfg.validation} leaves no training images (the training file has {N_TRAIN_IMAGES:,}); "
            f"use 0 to {N_TRAIN_IMAGES - 1}, e.g. 10000"
        )
    if cfg.train_subset is not None and cfg.validation and cfg.train_subset > N_TRAIN_IMAGES - cfg.validation:
        raise ConfigError(
            f"train_subset {cfg.train_subset} is larger than the {N_TRAIN_IMAGES - cfg.validation:,} images left "
            f"after a validation split of {cfg.validation}; use train_subset <= {N_TRAIN_IMAGES - cfg.validation}"
        )
    if cfg.lr_schedule == "plateau" and not cfg.validation:
        raise ConfigError("lr_schedule 'plateau' watches the validation accuracy; set validation, e.g. 10000")
    check_label(cfg.label)
    if cfg.patience is not None and not cfg.validation:
        raise ConfigError(f"patience {cfg.patience} needs a validation split to watch; set validation, e.g. 10000")
    for name in ("dropout", "input_dropout"):
        _check_number(cfg, name, minimum=0)
        if getattr(cfg, name) >= 1:
            raise ConfigError(f"{name} must be in [0, 1) (the fraction of units dropped), got {getattr(cfg, name)!r}")
    _check_number(cfg, "seed", minimum=0, integer=True)
    _check_number(cfg, "snapshots", minimum=0, integer=True)
    if cfg.snapshots > MAX_SNAPSHOT_PAIRS:
        raise ConfigError(f"snapshots {cfg.snapshots} is more than {MAX_SNAPSHOT_PAIRS:,} synapse pairs per column; "
                          "a few thousand show the alignment cloud, e.g. 2000")
    for name in ("log_early", "metrics"):
        if not isinstance(getattr(cfg, name), bool):
            raise ConfigError(f"{name} must be true or false, got {getattr(cfg, name)!r}")
    for name in ("rule_params", "backend_params"):
        if not isinstance(getattr(cfg, name), dict):
            raise ConfigError(f"{name} must be a table/dict, got {getattr(cfg, name)!r}")
    if cfg.loss == "cross_entropy" and cfg.output_activation != "linear":
        raise ConfigError(
            f"loss 'cross_entropy' applies its own softmax: output_activation must be 'linear', got '{cfg.output_activation}'"
        )
    sizes = (784, *cfg.hidden, 10)
    n_params = sum(a * b for a, b in zip(sizes[:-1], sizes[1:]))
    if n_params > cfg.max_parameters:
        raise ConfigError(
            f"hidden {list(cfg.hidden)} gives {n_params:,} weights, more than max_parameters={cfg.max_parameters:,}; "
            "use smaller columns or raise max_parameters"
        )
    if cfg.backend == "numpy" and cfg.backend_params:
        raise ConfigError(
            f"backend 'numpy' takes no backend_params, got {sorted(cfg.backend_params)}; "
            "backend_params are for --backend brian2 (tau_ms, settle_time_ms, dt_ms, target, ...)"
        )
    if cfg.column_rules is not None and not isinstance(cfg.column_rules, tuple):
        object.__setattr__(cfg, "column_rules", parse_rules(cfg.column_rules))
    if cfg.column_rules is not None and len(cfg.column_rules) != len(cfg.hidden):
        raise ConfigError(f"column_rules lists {len(cfg.column_rules)} rule(s) for {len(cfg.hidden)} hidden column(s); "
                          "give one per hidden column, from the input up, e.g. fa,fa,bp")
    if cfg.backend == "brian2" and (cfg.dropout or cfg.input_dropout):
        raise ConfigError("dropout is implemented by the numpy backend only; use --backend numpy or --dropout 0")
    check_recipe_options(cfg)
    if not rule_as_label:
        cfg.check_rule()
        from cortex_fa import rules  # late, as in check_rule

        if cfg.label and cfg.label != cfg.rule and cfg.label in rules.available():
            raise ConfigError(f"label {cfg.label!r} is the name of another rule; a {cfg.rule} variant needs its own "
                              f"name, e.g. {cfg.rule}_{cfg.label}")


LABEL_PATTERN = re.compile(r"[A-Za-z][A-Za-z0-9_.+-]{0,63}")


def check_label(label) -> None:
    """A variant's label: a short name that can be a study coordinate (``bp_wd``)."""
    if not isinstance(label, str) or (label and not LABEL_PATTERN.fullmatch(label)):
        raise ConfigError(f"label must be a short name of letters, digits and _.+- starting with a letter "
                          f"(e.g. bp_wd), got {label!r}")


def check_column_rule_params(cfg, rules) -> None:
    """Per-column rules: each checks the rule_params it accepts; a key no rule accepts is a typo."""
    names = sorted(set(cfg.column_rules), key=cfg.column_rules.index)
    for name in names:
        cls = rules.get(name)
        accepted = {k: v for k, v in cfg.rule_params.items() if k in cls.defaults}
        cls.check_config(SimpleNamespace(**{**cfg.__dict__, "rule": name, "rule_params": accepted}))
    unused = sorted(set(cfg.rule_params) - {k for n in names for k in rules.get(n).defaults})
    if unused:
        raise ConfigError(f"rule_params {', '.join(map(repr, unused))} fit none of the column rules "
                          f"{', '.join(names)}; remove them")


def check_recipe_options(cfg) -> None:
    """The options of Nøkland's recipe: bce, loss_reduction, rmsprop, stop_train_error, input_scaling."""
    _check_choice(cfg, "loss_reduction", LOSS_REDUCTIONS)
    _check_choice(cfg, "input_scaling", INPUT_SCALINGS)
    _check_number(cfg, "rmsprop_alpha", minimum=0)
    if cfg.rmsprop_alpha >= 1:
        raise ConfigError(f"rmsprop_alpha must be in [0, 1), got {cfg.rmsprop_alpha!r}")
    _check_number(cfg, "rmsprop_eps", minimum=0, strict=True)
    _check_number(cfg, "stop_train_error", minimum=0, allow_none=True)
    if cfg.stop_train_error is not None and cfg.stop_train_error >= 100:
        raise ConfigError(f"stop_train_error is a training error in percent below 100, e.g. 0.01; "
                          f"got {cfg.stop_train_error!r}")
    if cfg.optimizer == "rmsprop" and cfg.momentum:
        raise ConfigError(f"momentum {cfg.momentum!r} is for sgd; rmsprop here has none (torch's default): use --momentum 0")
    if cfg.loss == "bce" and cfg.output_activation != "sigmoid":
        raise ConfigError(f"loss 'bce' is binary cross-entropy of sigmoid outputs: output_activation must be "
                          f"'sigmoid', got '{cfg.output_activation}'")
    if cfg.backend == "brian2":
        refused = [text for flag, text in ((cfg.loss == "bce", "loss bce"),
                                            (cfg.loss_reduction == "sum", "loss_reduction sum"),
                                            (cfg.optimizer == "rmsprop", "optimizer rmsprop"),
                                            (cfg.input_scaling == "unit", "input_scaling unit")) if flag]
        if refused:
            raise ConfigError(f"{', '.join(refused)}: implemented by the numpy backend only; use --backend numpy")
