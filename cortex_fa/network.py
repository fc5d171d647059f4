"""Network: a stack of cortical columns from the 784-pixel input to a readout."""

from __future__ import annotations

import dataclasses
from dataclasses import dataclass

from cortex_fa.column import PATHWAYS, Column, Projection
from cortex_fa.errors import ConfigError
from cortex_fa.init import Init

INPUT_SIZE = 784
N_CLASSES = 10


@dataclass(frozen=True)
class Network:
    """An input population followed by columns ``1..L`` (``L`` is the readout).

    ``depth`` is the number of hidden columns, ``L - 1``. The feedback
    projections follow ``pathway``: ``"layerwise"`` (column ``l`` is taught by
    column ``l + 1``), ``"direct"`` (every hidden column is taught by the
    readout, or by the target for DRTP), ``"indirect"`` (only column 1 has a
    feedback projection, from the readout; the columns above are taught
    through their forward weights) or ``"none"`` (readout-only learning).

    A network composed by hand is checked when it is built: every column has
    a basal feedforward projection from the population below, and the
    feedback projections are apical, land on their own column and come from
    where ``pathway`` says. Each mistake is a :class:`ConfigError` naming the
    column and the fix.
    """

    columns: tuple[Column, ...]
    input_size: int = INPUT_SIZE
    pathway: str = "layerwise"

    def __post_init__(self):
        if not isinstance(self.columns, tuple):
            object.__setattr__(self, "columns", tuple(self.columns))
        if not self.columns:
            raise ConfigError("a network needs at least a readout column")
        if self.pathway not in PATHWAYS:
            raise ConfigError(f"pathway must be one of {', '.join(PATHWAYS)}, got {self.pathway!r}")
        names = ["input"] + [c.name for c in self.columns]
        if len(set(names)) != len(names):
            raise ConfigError(f"population names must be unique, got {', '.join(names)}")
        below, below_name = self.input_size, "input"
        for col in self.columns:
            _check_feedforward(col, below, below_name)
            below, below_name = col.size, col.name
        for l, col in enumerate(self.columns, start=1):
            _check_feedback(self, l, col)

    @classmethod
    def mlp(
        cls,
        hidden,
        activation: str = "tanh",
        *,
        output_activation: str = "linear",
        n_classes: int = N_CLASSES,
        input_size: int = INPUT_SIZE,
        init: Init = Init(),
        init_above_first: Init | None = None,
        feedback_init: Init = Init(),
        pathway: str = "layerwise",
        bias: bool = True,
        column_rules=None,
    ) -> "Network":
        """Build from hidden sizes, e.g. ``Network.mlp([240] * 7, activation="tanh")``.

        ``init`` draws every forward projection, or only the first if
        ``init_above_first`` is given for the ones above it.

        ``column_rules``, one layer-wise rule name per hidden column from the
        input up (e.g. ``("fa", "fa", "bp")``), attaches a rule to each
        column's feedback projection; ``None`` leaves them to the run's rule.
        """
        hidden = [hidden] if isinstance(hidden, int) else list(hidden)
        sizes = [input_size, *hidden, n_classes]
        L = len(sizes) - 1
        if column_rules is not None:
            column_rules = tuple(column_rules)
            if pathway != "layerwise":
                raise ConfigError(f"column_rules need layer-wise feedback, but the pathway is {pathway!r}; "
                                  "use a layer-wise rule (bp, fa, usf, frsf, brsf, kp) as the run's rule")
            if len(column_rules) != L - 1:
                raise ConfigError(f"column_rules lists {len(column_rules)} rule(s) for {L - 1} hidden column(s); "
                                  "give one per hidden column, from the input up, e.g. fa,fa,bp")
        names = ["input"] + [f"column{i}" for i in range(1, L)] + ["readout"]
        columns = []
        for l in range(1, L + 1):
            ff_init = init if l == 1 or init_above_first is None else init_above_first
            ff = Projection(names[l - 1], names[l], (sizes[l - 1], sizes[l]), ff_init, "basal")
            fb = None
            if l < L and pathway == "layerwise":
                rule = column_rules[l - 1] if column_rules is not None else None
                fb = Projection(names[l + 1], names[l], (sizes[l + 1], sizes[l]), feedback_init, "apical", rule)
            elif (l < L and pathway == "direct") or (l == 1 < L and pathway == "indirect"):
                fb = Projection("readout", names[l], (n_classes, sizes[l]), feedback_init, "apical")
            act = activation if l < L else output_activation
            columns.append(Column(names[l], sizes[l], act, bias, ff, fb))
        return cls(tuple(columns), input_size, pathway)

    @classmethod
    def from_config(cls, config) -> "Network":
        """The network a :class:`~cortex_fa.config.RunConfig` describes."""
        from cortex_fa import rules

        return cls.mlp(
            config.hidden,
            config.activation,
            output_activation=config.output_activation,
            init=Init(config.init, config.init_distribution, config.init_scale),
            init_above_first=(None if config.init_above_first == "same"
                              else Init(config.init_above_first, config.init_distribution, config.init_scale)),
            feedback_init=Init(config.feedback_init, config.feedback_distribution, config.feedback_scale),
            pathway=rules.get(config.rule).pathway,
            column_rules=config.column_rules,
        )

    # -- plain data in and out (checkpoints store the description) ------------
    def to_dict(self) -> dict:
        return dataclasses.asdict(self)

    @classmethod
    def from_dict(cls, d: dict) -> "Network":
        def projection(p):
            return None if p is None else Projection(**{**p, "shape": tuple(p["shape"]), "init": Init(**p["init"])})

        columns = tuple(Column(**{**c, "feedforward": projection(c["feedforward"]), "feedback": projection(c["feedback"])})
                        for c in d["columns"])
        return cls(columns, d["input_size"], d["pathway"])

    @property
    def sizes(self) -> tuple[int, ...]:
        """``(n_0, n_1, ..., n_L)`` with ``n_0`` the input size."""
        return (self.input_size, *(c.size for c in self.columns))

    @property
    def hidden(self) -> tuple[int, ...]:
        """Sizes of the hidden columns, bottom to top."""
        return tuple(c.size for c in self.columns[:-1])

    @property
    def depth(self) -> int:
        return len(self.columns) - 1

    @property
    def n_layers(self) -> int:
        return len(self.columns)

    @property
    def n_parameters(self) -> int:
        s = self.sizes
        return sum(a * b + b for a, b in zip(s[:-1], s[1:]))

    @property
    def column_rules(self) -> tuple | None:
        """The rule named by each hidden column's feedback projection (None: the run's), or None if none names one."""
        named = tuple(c.feedback.rule if c.feedback is not None else None for c in self.columns[:-1])
        return named if any(r is not None for r in named) else None


def _check_feedforward(col: Column, below: int, below_name: str) -> None:
    ff = col.feedforward
    if ff is None:
        raise ConfigError(f"column {col.name!r} has no feedforward projection; give it "
                          f"Projection({below_name!r}, {col.name!r}, ({below}, {col.size}), compartment='basal')")
    if ff.compartment != "basal":
        raise ConfigError(f"column {col.name!r}: its feedforward projection lands on the {ff.compartment} "
                          "compartment; feedforward input is basal (compartment='basal')")
    if ff.shape != (below, col.size):
        raise ConfigError(f"column {col.name!r}: feedforward shape {ff.shape} != {(below, col.size)} "
                          f"(from {below_name!r}, {below} units, to {col.size} units)")
    if (ff.source, ff.target) != (below_name, col.name):
        raise ConfigError(f"column {col.name!r}: feedforward projection runs {ff.source}->{ff.target}; "
                          f"it must run {below_name}->{col.name}")


def _check_feedback(net: Network, l: int, col: Column) -> None:
    """The feedback projection of column ``l`` against the network's pathway."""
    L, fb = net.n_layers, col.feedback
    readout = net.columns[-1]
    if net.pathway == "layerwise" and l < L:
        source = net.columns[l]
        expected = (source.name, (source.size, col.size))
    elif (net.pathway == "direct" and l < L) or (net.pathway == "indirect" and l == 1 < L):
        expected = (readout.name, (readout.size, col.size))
    else:
        if fb is not None:
            where = "the readout" if l == L else f"a column of a {net.pathway} network"
            raise ConfigError(f"column {col.name!r} is {where} and takes no feedback projection; set feedback=None")
        return
    if fb is None:
        raise ConfigError(f"column {col.name!r} has no feedback projection; a {net.pathway} network needs "
                          f"Projection({expected[0]!r}, {col.name!r}, {expected[1]}, compartment='apical')")
    if fb.compartment != "apical":
        raise ConfigError(f"column {col.name!r}: its feedback projection lands on the basal compartment; "
                          "teaching input is apical (compartment='apical')")
    if (fb.source, fb.target, fb.shape) != (expected[0], col.name, expected[1]):
        raise ConfigError(f"column {col.name!r}: feedback projection {fb.source}->{fb.target} {fb.shape}; "
                          f"a {net.pathway} network needs {expected[0]}->{col.name} {expected[1]}")
