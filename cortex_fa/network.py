"""Network: a stack of cortical columns from the 784-pixel input to a readout."""

from __future__ import annotations

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
    """

    columns: tuple[Column, ...]
    input_size: int = INPUT_SIZE
    pathway: str = "layerwise"

    def __post_init__(self):
        if not self.columns:
            raise ConfigError("a network needs at least a readout column")
        if self.pathway not in PATHWAYS:
            raise ConfigError(f"pathway must be one of {', '.join(PATHWAYS)}, got {self.pathway!r}")
        below = self.input_size
        for col in self.columns:
            ff = col.feedforward
            if ff is not None and ff.shape != (below, col.size):
                raise ConfigError(f"column {col.name!r}: feedforward shape {ff.shape} != {(below, col.size)}")
            below = col.size

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
        feedback_init: Init = Init(),
        pathway: str = "layerwise",
        bias: bool = True,
    ) -> "Network":
        """Build from hidden sizes, e.g. ``Network.mlp([240] * 7, activation="tanh")``."""
        hidden = [hidden] if isinstance(hidden, int) else list(hidden)
        sizes = [input_size, *hidden, n_classes]
        L = len(sizes) - 1
        names = ["input"] + [f"column{i}" for i in range(1, L)] + ["readout"]
        columns = []
        for l in range(1, L + 1):
            ff = Projection(names[l - 1], names[l], (sizes[l - 1], sizes[l]), init, "basal")
            fb = None
            if l < L and pathway == "layerwise":
                fb = Projection(names[l + 1], names[l], (sizes[l + 1], sizes[l]), feedback_init, "apical")
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
            feedback_init=Init(config.feedback_init, config.feedback_distribution, config.feedback_scale),
            pathway=rules.get(config.rule).pathway,
        )

    @property
    def sizes(self) -> tuple[int, ...]:
        """``(n_0, n_1, ..., n_L)`` with ``n_0`` the input size."""
        return (self.input_size, *(c.size for c in self.columns))

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
