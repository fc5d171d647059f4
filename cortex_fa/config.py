"""Run configuration: one plain, validated, hashable record of a training run.

A :class:`RunConfig` is pure data. Building it validates every field and
raises :class:`~cortex_fa.errors.ConfigError` naming the field and the valid
choices. It serialises to JSON (stored in every results file) and to a short
hash that names run files in a sweep. The valid choices and the checks of
each field are in :mod:`cortex_fa.config_checks`.
"""

from __future__ import annotations

import dataclasses
import hashlib
import json
from dataclasses import dataclass, field
from typing import Any

# The choice tuples and the per-field checks live in cortex_fa.config_checks; re-exported here.
from cortex_fa.config_checks import (  # noqa: F401 - re-exported
    ACTIVATIONS, BACKENDS, DISTRIBUTIONS, INITS, LOSS_REDUCTIONS, LOSSES, MAX_SNAPSHOT_PAIRS, N_TRAIN_IMAGES, OPTIMIZERS,
    OUTPUT_ACTIVATIONS, RULE_AS_LABEL, SCHEDULES, check_column_rule_params, check_column_rules, parse_rules, validate,
)
from cortex_fa.errors import ConfigError, did_you_mean
from cortex_fa.parsing import MAX_COLUMNS, load_toml, parse_sizes  # noqa: F401 - re-exported

# Networks larger than this are refused before anything is allocated.
DEFAULT_MAX_PARAMETERS = 50_000_000
# Options added in 0.3 and their defaults, which keep 0.2 behaviour (and 0.2 hashes).
HASH_NEUTRAL_DEFAULTS = {"validation": 0, "patience": None, "dropout": 0.0, "input_dropout": 0.0,
                         "snapshots": 0, "column_rules": None, "lr_patience": 3, "label": ""}
# Options added for the author's recipe of Nøkland 2016 (0.4); their defaults keep earlier hashes.
HASH_NEUTRAL_DEFAULTS.update({"loss_reduction": "mean", "rmsprop_alpha": 0.99, "rmsprop_eps": 1e-8,
                              "stop_train_error": None, "input_scaling": "standardise",
                              "init_above_first": "same"})


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
    loss : {"cross_entropy", "mse", "bce"}
        Softmax cross-entropy, squared error ``1/2 |y_hat - y|^2``, or binary
        cross-entropy of sigmoid outputs against one-hot targets (``bce``,
        needs ``output_activation="sigmoid"``; output error ``sigmoid(a) - y``).
    loss_reduction : {"mean", "sum"}
        How the output error is reduced over a batch: ``mean`` divides it by
        the batch size; ``sum`` does not (Nøkland's code), so an update
        grows with the batch. Reported losses are per-example means either way.
    optimizer, lr, momentum, weight_decay, lr_schedule, lr_decay, lr_step_epochs, lr_patience
        Optimiser settings (``sgd``, ``adam`` or ``rmsprop``). ``weight_decay``
        is L2 decay applied as ``W <- W - lr * weight_decay * W`` each step.
        ``lr_schedule="plateau"`` multiplies the rate by ``lr_decay`` whenever
        the validation accuracy has not improved for ``lr_patience`` epochs
        (needs a validation split; see :func:`cortex_fa.schedule.plateau_drops`).
    rmsprop_alpha, rmsprop_eps
        RMSprop's smoothing constant and epsilon (torch's semantics,
        :class:`cortex_fa.optim.RMSprop`); used only with ``optimizer="rmsprop"``.
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
    stop_train_error : float or None
        Stop at the end of the first epoch whose running training error
        (percent, measured while training, dropout included) is at or below
        this, e.g. ``0.01`` (Nøkland's code). Stop reason ``train_error_target``.
        None: never.
    dropout, input_dropout : float
        Inverted dropout rate of every hidden column and of the input pixels,
        during training only (probe, validation and test passes see none).
    init, init_distribution, init_scale
        Forward weight initialiser: scale rule, distribution and multiplier
        (for ``init="fixed"`` the multiplier *is* the bound/standard deviation).
    init_above_first : {"same", "xavier", "he", "lecun", "fixed", "zero"}
        Scale rule of every forward projection above the first (columns 2 and
        up and the readout), with ``init_distribution`` and ``init_scale``;
        ``same`` (default) uses ``init``. Nøkland's code trains FA from a
        random first layer and zero weights above it: ``init_above_first="zero"``.
    feedback_init, feedback_distribution, feedback_scale
        The same for fixed random feedback matrices (FA, frSF, DFA, ...).
    input_scaling : {"standardise", "unit"}
        Pixels to inputs: ``standardise`` (``(p/255 - 0.1307) / 0.3081``,
        zero mean and unit variance over the training set) or ``unit``
        (``p/255`` in [0, 1], Nøkland's code). numpy backend only for ``unit``.
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
    loss_reduction: str = "mean"
    optimizer: str = "sgd"
    lr: float = 0.05
    momentum: float = 0.0
    weight_decay: float = 0.0
    rmsprop_alpha: float = 0.99
    rmsprop_eps: float = 1e-8
    lr_schedule: str = "constant"
    lr_decay: float = 0.1
    lr_step_epochs: int = 10
    lr_patience: int = 3
    batch_size: int = 100
    epochs: int = 1
    train_subset: int | None = None
    validation: int = 0
    patience: int | None = None
    stop_train_error: float | None = None
    dropout: float = 0.0
    input_dropout: float = 0.0
    init: str = "xavier"
    init_distribution: str = "uniform"
    init_scale: float = 1.0
    init_above_first: str = "same"
    feedback_init: str = "xavier"
    feedback_distribution: str = "uniform"
    feedback_scale: float = 1.0
    input_scaling: str = "standardise"
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
        validate(self)

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
            check_column_rules(self, rules)
            check_column_rule_params(self, rules)

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
        token = RULE_AS_LABEL.set(rule_as_label)
        try:
            return cls(**values)
        finally:
            RULE_AS_LABEL.reset(token)

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
