"""Run configuration: one plain, validated, hashable record of a training run.

A :class:`RunConfig` is pure data. Building it validates every field and
raises :class:`~cortex_fa.errors.ConfigError` naming the field and the valid
choices. It serialises to JSON (stored in every results file) and to a short
hash that names run files in a sweep.
"""

from __future__ import annotations

import contextvars
import dataclasses
import hashlib
import json
import math
import re
from dataclasses import dataclass, field
from types import SimpleNamespace
from typing import Any

from cortex_fa.errors import ConfigError, choices_text, did_you_mean
from cortex_fa.parsing import MAX_COLUMNS, load_toml, parse_sizes  # noqa: F401 - re-exported

ACTIVATIONS = ("tanh", "relu", "sigmoid", "linear")
OUTPUT_ACTIVATIONS = ("linear", "sigmoid", "tanh")
LOSSES = ("cross_entropy", "mse")
OPTIMIZERS = ("sgd", "adam")
SCHEDULES = ("constant", "step", "cosine", "plateau")
INITS = ("xavier", "he", "lecun", "fixed", "zero")
DISTRIBUTIONS = ("uniform", "normal")
BACKENDS = ("numpy", "brian2")

# Networks larger than this are refused before anything is allocated.
DEFAULT_MAX_PARAMETERS = 50_000_000
# MNIST's training file; the validation split is carved from its end.
N_TRAIN_IMAGES = 60_000
# Options added in 0.3 and their defaults, which keep 0.2 behaviour (and 0.2 hashes).
HASH_NEUTRAL_DEFAULTS = {"validation": 0, "patience": None, "dropout": 0.0, "input_dropout": 0.0,
                         "snapshots": 0, "column_rules": None, "lr_patience": 3, "label": ""}
# Largest synapse sample per column that --snapshots accepts (see cortex_fa.snapshots.MAX_PAIRS).
MAX_SNAPSHOT_PAIRS = 100_000
# Set while a config is rebuilt from a results file: there the rule is a label, which need not be installed.
_RULE_AS_LABEL = contextvars.ContextVar("rule_as_label", default=False)


@dataclass(frozen=True)
class RunConfig:
    """Everything that defines one training run.

    Parameters
    ----------
    rule : str
        Learning rule name, see :func:`cortex_fa.rules.available`.
    hidden : tuple of int
        Sizes of the hidden columns, bottom to top. Depth is ``len(hidden)``.
    activation, output_activation : str
        Non-linearity of hidden columns and of the readout column.
    loss : {"cross_entropy", "mse"}
        Softmax cross-entropy or squared error ``1/2 |y_hat - y|^2``.
    optimizer, lr, momentum, weight_decay, lr_schedule, lr_decay, lr_step_epochs, lr_patience
        Optimiser settings. ``weight_decay`` is L2 decay applied as
        ``W <- W - lr * weight_decay * W`` each step. ``lr_schedule="plateau"``
        multiplies the rate by ``lr_decay`` whenever the validation accuracy
        has not improved for ``lr_patience`` epochs (needs a validation split;
        see :func:`cortex_fa.schedule.plateau_drops`).
    batch_size, epochs, train_subset
        Mini-batch size, number of epochs (the maximum when ``patience`` is
        set), and an optional number of training examples to use (the first
        ``train_subset`` of a seeded permutation of the training pool).
    validation : int
        Hold out the *last* ``validation`` images of the 60,000-image training
        file as a validation split: the same images for every seed and rule,
        never trained on, evaluated at every epoch end. 0: no split.
    patience : int or None
        Early stopping: end the run after ``patience`` epochs without a new
        best validation accuracy (``epochs`` is then the maximum). Needs a
        validation split. None: train for ``epochs``.
    dropout, input_dropout : float
        Inverted dropout rate of every hidden column and of the input pixels,
        during training only (probe, validation and test passes see none).
    init, init_distribution, init_scale
        Forward weight initialiser: scale rule, distribution and multiplier
        (for ``init="fixed"`` the multiplier *is* the bound/standard deviation).
    feedback_init, feedback_distribution, feedback_scale
        The same for fixed random feedback matrices (FA, frSF, DFA, ...).
    seed : int
        Seeds one independent :class:`numpy.random.Generator` per purpose
        (data order, forward weights, feedback, dropout, probe batch; see
        :mod:`cortex_fa.streams`): one seed gives every rule the same data
        order and initial forward weights.
    probe_size : int
        Training images in the fixed probe batch on which alignment is measured
        (256: angles within ~1 degree of the training-set value at ~5 % of an
        epoch's cost; see docs/performance.md).
    log_early : bool
        Log at steps 1, 2, 4, 8, ... during the first epoch.
    log_every : int
        Log at the end of every ``log_every``-th epoch (the last epoch is always logged).
    metrics : bool
        Compute alignment and norm metrics at logging steps (test metrics are
        always computed at epoch ends).
    snapshots : int
        Store synapse snapshots: at step 0, steps 1, 8, 64, ... of the first
        epoch and every epoch end (where logged), a fixed random sample of at
        most ``snapshots`` forward/feedback pairs per column and the receptive
        fields of the first 64 units of column 1 (see :mod:`cortex_fa.snapshots`).
        0: none. A column with fewer synapses is stored whole.
    column_rules : tuple of str or None
        One layer-wise rule per hidden column, from the input up (e.g.
        ``("fa", "fa", "bp")``): the rule of that column's feedback
        projection. ``None``: ``rule`` everywhere. ``rule`` must then be
        layer-wise too; it names the run in tables.
    backend : str
        ``"numpy"`` or ``"brian2"``.
    rule_params, backend_params : dict
        Extra parameters for the rule (e.g. ``{"decay": 1e-3}``) and backend.
    max_parameters : int
        Refuse networks with more weights than this (a guard against typos
        such as ``--hidden 1000000``).
    label : str
        Name of the run's variant of its rule in a study (``"bp_wd"``: bp
        with weight decay, a control): the study's ``rule`` coordinate is
        :attr:`study_label`, the label or else the rule. Part of the run's
        identity (hash); ``""``: none.
    """

    rule: str = "fa"
    hidden: tuple[int, ...] = (500,)
    activation: str = "tanh"
    output_activation: str = "linear"
    loss: str = "cross_entropy"
    optimizer: str = "sgd"
    lr: float = 0.05
    momentum: float = 0.0
    weight_decay: float = 0.0
    lr_schedule: str = "constant"
    lr_decay: float = 0.1
    lr_step_epochs: int = 10
    lr_patience: int = 3
    batch_size: int = 100
    epochs: int = 1
    train_subset: int | None = None
    validation: int = 0
    patience: int | None = None
    dropout: float = 0.0
    input_dropout: float = 0.0
    init: str = "xavier"
    init_distribution: str = "uniform"
    init_scale: float = 1.0
    feedback_init: str = "xavier"
    feedback_distribution: str = "uniform"
    feedback_scale: float = 1.0
    seed: int = 0
    probe_size: int = 256
    log_early: bool = True
    log_every: int = 1
    metrics: bool = True
    snapshots: int = 0
    column_rules: tuple[str, ...] | None = None
    backend: str = "numpy"
    rule_params: dict = field(default_factory=dict)
    backend_params: dict = field(default_factory=dict)
    max_parameters: int = DEFAULT_MAX_PARAMETERS
    label: str = ""

    def __post_init__(self):
        _validate(self)

    # -- conversions -------------------------------------------------------
    @property
    def depth(self) -> int:
        return len(self.hidden)

    @property
    def study_label(self) -> str:
        """The run's name in a study's ``rule`` coordinate: its :attr:`label`, else its rule."""
        return self.label or self.rule

    def to_dict(self) -> dict[str, Any]:
        d = dataclasses.asdict(self)
        d["hidden"] = list(self.hidden)
        if self.column_rules is not None:
            d["column_rules"] = list(self.column_rules)
        return d

    def to_json(self) -> str:
        return json.dumps(self.to_dict(), sort_keys=True)

    def hash(self, length: int = 16) -> str:
        """Stable short hash of the configuration (names run files).

        Options added after 0.2 are left out while at their defaults. The
        random-stream scheme (:data:`cortex_fa.streams.SCHEME`) is part of
        the hash: a run made under another scheme draws other numbers from
        the same seed, so a sweep directory of such runs is not taken as done.
        """
        from cortex_fa.streams import SCHEME

        d = self.to_dict()
        for name, default in HASH_NEUTRAL_DEFAULTS.items():
            if d.get(name) == default:
                del d[name]
        d["random_streams"] = SCHEME
        return hashlib.sha256(json.dumps(d, sort_keys=True).encode()).hexdigest()[:length]

    def replace(self, **changes) -> "RunConfig":
        return RunConfig.from_dict({**self.to_dict(), **changes})

    def check_rule(self) -> None:
        """Raise ConfigError if the rule is not installed here or refuses ``rule_params``.

        Building a RunConfig checks this, except from a results file
        (:meth:`from_json`); :func:`cortex_fa.train` checks again.
        """
        from cortex_fa import rules

        if self.column_rules is None:
            rules.get(self.rule).check_config(self)
        else:
            _check_column_rules(self, rules)
            _check_column_rule_params(self, rules)

    @classmethod
    def from_dict(cls, values: dict[str, Any], *, rule_as_label: bool = False) -> "RunConfig":
        """Build from a mapping, refusing unknown keys with a suggestion (``rule_as_label``: see :meth:`from_json`)."""
        if not isinstance(values, dict):
            raise ConfigError(f"a run configuration must be a table/dict, got {type(values).__name__}")
        names = [f.name for f in dataclasses.fields(cls)]
        for key in values:
            if key not in names:
                raise ConfigError(f"unknown run option {key!r}{did_you_mean(key, names)}; valid options: {', '.join(names)}")
        values = dict(values)
        if "hidden" in values:
            values["hidden"] = parse_sizes(values["hidden"], "hidden")
        if values.get("column_rules") is not None:
            values["column_rules"] = parse_rules(values["column_rules"])
        token = _RULE_AS_LABEL.set(rule_as_label)
        try:
            return cls(**values)
        finally:
            _RULE_AS_LABEL.reset(token)

    @classmethod
    def from_json(cls, text: str, *, rule_as_label: bool = True) -> "RunConfig":
        """Rebuild the config :meth:`to_json` stored (a results file's ``config`` attribute).

        With ``rule_as_label`` (the default) the rule is only a label, as
        everywhere a file is read: a rule not installed here (a plugin's) is
        accepted and its ``rule_params`` unchecked; every other option is
        validated. Training checks the rule (:meth:`check_rule`).
        """
        try:
            values = json.loads(text)
        except (TypeError, ValueError) as exc:
            raise ConfigError(f"run configuration is not valid JSON ({exc})") from None
        return cls.from_dict(values, rule_as_label=rule_as_label)


def parse_rules(value) -> tuple[str, ...]:
    """``"fa,fa,bp"``, ``"[fa,fa,bp]"`` (a sweep's grid value) or ``["fa", "fa", "bp"]`` -> ``("fa", "fa", "bp")``."""
    items = value.strip().strip("[]\"'").split(",") if isinstance(value, str) else value
    if not isinstance(items, (list, tuple)) or not all(isinstance(r, str) and r.strip() for r in items):
        raise ConfigError(f"column_rules must list one rule name per hidden column, e.g. fa,fa,bp; got {value!r}")
    return tuple(r.strip() for r in items)


def _check_column_rules(cfg, rules) -> None:
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


def _validate(cfg: RunConfig) -> None:
    from cortex_fa import rules  # late: rules import nothing from config at import time

    if not isinstance(cfg.hidden, tuple):
        object.__setattr__(cfg, "hidden", parse_sizes(cfg.hidden, "hidden"))
    if len(cfg.hidden) == 0:
        raise ConfigError("hidden must list at least one hidden column size, e.g. 500 or 240,240")
    if not isinstance(cfg.rule, str) or not cfg.rule:
        raise ConfigError(f"rule must be one rule's name, got {cfg.rule!r}; use {choices_text(rules.available())}")
    rule_as_label = _RULE_AS_LABEL.get()
    if not rule_as_label:
        rules.get(cfg.rule)  # looks for plugins only if the name is not a rule here
    for name, choices in (
        ("activation", ACTIVATIONS), ("output_activation", OUTPUT_ACTIVATIONS), ("loss", LOSSES),
        ("optimizer", OPTIMIZERS), ("lr_schedule", SCHEDULES), ("init", INITS),
        ("init_distribution", DISTRIBUTIONS), ("feedback_init", INITS),
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
    _check_label(cfg.label)
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
    if not rule_as_label:
        cfg.check_rule()
        if cfg.label and cfg.label != cfg.rule and cfg.label in rules.available():
            raise ConfigError(f"label {cfg.label!r} is the name of another rule; a {cfg.rule} variant needs its own "
                              f"name, e.g. {cfg.rule}_{cfg.label}")


LABEL_PATTERN = re.compile(r"[A-Za-z][A-Za-z0-9_.+-]{0,63}")


def _check_label(label) -> None:
    """A variant's label: a short name that can be a study coordinate (``bp_wd``)."""
    if not isinstance(label, str) or (label and not LABEL_PATTERN.fullmatch(label)):
        raise ConfigError(f"label must be a short name of letters, digits and _.+- starting with a letter "
                          f"(e.g. bp_wd), got {label!r}")


def _check_column_rule_params(cfg, rules) -> None:
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
