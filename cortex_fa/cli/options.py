"""Run options shared by ``run``, ``sweep`` and ``reproduce``.

Every :class:`~cortex_fa.config.RunConfig` field is a flag (``--batch-size``
for ``batch_size``); only the flags a user gives override the config file
or preset, so ``--config`` + flags compose predictably.
"""

from __future__ import annotations

import argparse
import dataclasses
import json

from cortex_fa.config import RunConfig, load_toml, parse_sizes
from cortex_fa.errors import ConfigError

# Tables of a config file that are not run options.
NON_RUN_TABLES = ("sweep", "grid", "quick", "published", "meta", "preset", "protocol")

HELP = {
    "rule": "learning rule: bp, fa, usf, frsf, brsf, dfa, ifa, kp, drtp, shallow, or an installed plugin's",
    "hidden": "hidden column sizes, e.g. 500 or 240,240,240 or 240x3",
    "activation": "hidden activation: tanh, relu, sigmoid, linear",
    "output_activation": "readout activation (linear for cross-entropy)",
    "loss": "cross_entropy, mse, or bce (sigmoid outputs, binary cross-entropy on one-hot targets)",
    "loss_reduction": "mean or sum: the output error averaged or summed over the batch (sum: the update grows with the batch)",
    "optimizer": "sgd, adam or rmsprop",
    "rmsprop_alpha": "RMSprop smoothing constant: v = alpha v + (1 - alpha) g^2",
    "rmsprop_eps": "RMSprop epsilon: step = lr g / (sqrt(v) + eps)",
    "input_scaling": "pixels to inputs: standardise (zero mean, unit variance) or unit (pixel/255 in [0, 1])",
    "stop_train_error": "stop after the first epoch whose running training error (percent) is at or below this, e.g. 0.01 (none: never)",
    "lr": "learning rate",
    "init": "forward init scale rule: xavier, he, lecun, fixed, zero",
    "init_above_first": "forward init of every projection above the first: same (as --init), xavier, he, lecun, "
                        "fixed, zero (Nøkland's FA: random first layer, zero above)",
    "feedback_init": "feedback init scale rule: xavier, he, lecun, fixed, zero",
    "train_subset": "use only this many training images (quick runs)",
    "probe_size": "training images in the fixed probe batch for alignment metrics",
    "rule_params": "JSON object of rule parameters, e.g. '{\"decay\": 0.001}'",
    "backend_params": "JSON object of backend parameters",
    "seed": "seed of the run's random streams (one per purpose: data order, weights, feedback, dropout, probe)",
    "validation": "hold out the last N training images as a validation split (0: none)",
    "patience": "stop after this many epochs without a better validation accuracy (none: never)",
    "dropout": "inverted dropout rate of the hidden columns, training only",
    "input_dropout": "inverted dropout rate of the input pixels, training only",
    "column_rules": "one layer-wise rule per hidden column, from the input up, e.g. fa,fa,bp (default: --rule everywhere)",
    "snapshots": "store W/B snapshots: at most this many synapse pairs per column (0: none), e.g. 2000",
    "lr_schedule": "learning-rate schedule: constant, step, cosine or plateau (cut by --lr-decay when the "
                   "validation accuracy has not improved for --lr-patience epochs)",
    "lr_patience": "plateau schedule: epochs without a better validation accuracy before the rate is cut",
    "label": "name of this variant of its rule in a study (e.g. bp_wd); the study's rule coordinate",
}


def _bool(text: str) -> bool:
    low = text.strip().lower()
    if low in ("1", "true", "yes", "on"):
        return True
    if low in ("0", "false", "no", "off"):
        return False
    raise argparse.ArgumentTypeError(f"expected true or false, got {text!r}")


def _json_object(text: str) -> dict:
    try:
        value = json.loads(text)
    except ValueError:
        raise argparse.ArgumentTypeError(f"expected a JSON object such as '{{\"decay\": 0.001}}', got {text!r}") from None
    if not isinstance(value, dict):
        raise argparse.ArgumentTypeError(f"expected a JSON object, got {text!r}")
    return value


# What --train-subset none / --patience none parse to: argparse's "not given" is
# None too, and a flag that says none must still override a --config value.
EXPLICIT_NONE = "none"


def _optional_int(text: str):
    if text.strip().lower() in ("none", "all", "0"):
        return EXPLICIT_NONE
    try:
        return int(text)
    except ValueError:
        raise argparse.ArgumentTypeError(f"expected an integer, got {text!r}") from None


def _optional_count(text: str):
    if text.strip().lower() in ("none", "off"):
        return EXPLICIT_NONE
    try:
        return int(text)
    except ValueError:
        raise argparse.ArgumentTypeError(f"expected a positive integer or 'none', got {text!r}") from None


def _optional_float(text: str):
    if text.strip().lower() in ("none", "off"):
        return EXPLICIT_NONE
    try:
        return float(text)
    except ValueError:
        raise argparse.ArgumentTypeError(f"expected a number or 'none', got {text!r}") from None


def _hidden(text: str):
    try:
        return parse_sizes(text)
    except ConfigError as exc:
        raise argparse.ArgumentTypeError(str(exc)) from None


def _type_for(field: dataclasses.Field):
    if field.name == "hidden":
        return _hidden
    if field.name in ("rule_params", "backend_params"):
        return _json_object
    if field.name == "train_subset":
        return _optional_int
    if field.name == "patience":
        return _optional_count
    if field.name == "stop_train_error":
        return _optional_float
    default = field.default
    if isinstance(default, bool):
        return _bool
    if isinstance(default, int):
        return int
    if isinstance(default, float):
        return float
    return str


def add_run_options(parser: argparse.ArgumentParser, *, skip=()) -> None:
    """Add one flag per RunConfig field (default: not given), plus ``--config``."""
    group = parser.add_argument_group("run options (override --config)")
    group.add_argument("--config", metavar="FILE.toml", help="TOML file with run options (a [run] table or top-level keys)")
    for field in dataclasses.fields(RunConfig):
        if field.name in skip:
            continue
        flag = "--" + field.name.replace("_", "-")
        default = field.default if field.default is not dataclasses.MISSING else field.default_factory()
        shown = ",".join(map(str, default)) if isinstance(default, tuple) else default
        group.add_argument(
            flag, dest=field.name, type=_type_for(field), default=None, metavar=field.name.upper(),
            help=f"{HELP.get(field.name, field.name.replace('_', ' '))} (default {shown})",
        )


def run_options(args, *, skip=()) -> dict:
    """The run options a user set: the config file's, then the flags given."""
    values: dict = {}
    if getattr(args, "config", None):
        table = load_toml(args.config)
        if isinstance(table.get("run"), dict):
            stray = [k for k, v in table.items() if k != "run" and not isinstance(v, dict)]
            if stray:  # a key outside [run] would be silently ignored: refuse it
                raise ConfigError(
                    f"config file {args.config}: key {stray[0]!r} is outside the [run] table; move it under [run]"
                )
            values.update(table["run"])
        else:  # top-level keys, minus the tables other commands read (sweep, grid, ...)
            values.update({k: v for k, v in table.items() if k not in NON_RUN_TABLES})
    for field in dataclasses.fields(RunConfig):
        if field.name in skip:
            continue
        value = getattr(args, field.name, None)
        if value is not None:
            values[field.name] = None if value is EXPLICIT_NONE else value
    return values
