"""Description objects: cortical columns and their synapse groups.

These hold validated parameters only, no arrays and no maths; a backend
compiles them (see :mod:`cortex_fa.backends`).

A :class:`Column` is one layer of rate units. Its ``feedforward`` projection
(W) arrives from the column below onto the *basal* compartment; its
``feedback`` projection is the teaching pathway onto the *apical*
compartment, from the column above (layer-wise rules) or straight from the
readout column (direct rules). The readout column has no feedback projection:
its apical signal is the output error itself.

Orientation (row vectors, batch first): column ``l`` computes
``a_l = h_{l-1} @ W_l + b_l`` with ``W_l`` of shape ``(n_{l-1}, n_l)``.
A layer-wise feedback matrix ``B_l`` has the shape of ``W_l.T`` and carries
``delta_l`` down to column ``l - 1``; a direct feedback matrix ``D_l`` has
shape ``(n_L, n_l)`` and carries the output error to column ``l``.
"""

from __future__ import annotations

from dataclasses import dataclass, field

from cortex_fa.activations import ACTIVATIONS
from cortex_fa.errors import ConfigError
from cortex_fa.init import Init

PATHWAYS = ("layerwise", "direct", "indirect", "none")


@dataclass(frozen=True)
class Projection:
    """A synapse group between two populations.

    Parameters
    ----------
    source, target : str
        Names of the presynaptic and postsynaptic populations (``"input"``,
        ``"column1"``, ..., ``"readout"``; ``"target"`` for DRTP feedback).
    shape : tuple of int
        ``(n_source, n_target)``: presynaptic rows, postsynaptic columns.
    init : Init
        How the weights are drawn.
    compartment : {"basal", "apical"}
        Where on the target column the synapses land.
    rule : str or None
        For a layer-wise feedback projection: the learning rule that makes its
        teaching matrix (``"bp"``, ``"fa"``, ``"usf"``, ``"frsf"``, ``"brsf"``,
        ``"kp"`` or a plugin's layer-wise rule), as Nengo attaches a learning
        rule to a connection. ``None``: the network's rule
        (``RunConfig.rule``). Feedforward projections take none.
    """

    source: str
    target: str
    shape: tuple[int, int]
    init: Init = field(default_factory=Init)
    compartment: str = "basal"
    rule: str | None = None

    def __post_init__(self):
        if self.compartment not in ("basal", "apical"):
            raise ConfigError(f"compartment must be 'basal' or 'apical', got {self.compartment!r}")
        if not isinstance(self.shape, tuple):
            object.__setattr__(self, "shape", tuple(self.shape))
        if len(self.shape) != 2 or min(self.shape) < 1:
            raise ConfigError(f"projection {self.source}->{self.target} needs a positive 2-D shape, got {self.shape}")
        if self.rule is not None and not (isinstance(self.rule, str) and self.rule):
            raise ConfigError(f"projection {self.source}->{self.target}: rule must be a rule name or None, got {self.rule!r}")
        if self.rule is not None and self.compartment != "apical":
            raise ConfigError(f"projection {self.source}->{self.target} is feedforward (basal): a learning rule "
                              "attaches to a feedback (apical) projection")


@dataclass(frozen=True)
class Column:
    """A cortical column: ``size`` rate units with one activation.

    Parameters
    ----------
    name : str
    size : int
    activation : str
        One of ``tanh``, ``relu``, ``sigmoid``, ``linear``.
    bias : bool
        Whether the units have a trainable bias.
    feedforward : Projection
        Basal input (W) from the column below.
    feedback : Projection or None
        Apical teaching input, or ``None`` (readout column, readout-only rules).
    """

    name: str
    size: int
    activation: str = "tanh"
    bias: bool = True
    feedforward: Projection | None = None
    feedback: Projection | None = None

    def __post_init__(self):
        if not isinstance(self.size, int) or isinstance(self.size, bool) or self.size < 1:
            raise ConfigError(f"column {self.name!r} size must be a positive integer, got {self.size!r}")
        if self.activation not in ACTIVATIONS:
            raise ConfigError(
                f"column {self.name!r} activation '{self.activation}' is not valid; use one of {', '.join(ACTIVATIONS)}"
            )
