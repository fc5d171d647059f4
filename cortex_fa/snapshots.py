"""Snapshots of the synapses: sampled forward/feedback pairs and receptive fields.

With ``RunConfig.snapshots = K`` (K > 0) a run stores, at a sparse subset of
its logging steps (:func:`snapshot_steps`), for every column ``l`` a fixed
random sample of at most ``K`` synapse *pairs*: a forward value ``F_l[i, j]``
and the feedback value that carries the teaching signal back along the same
path, ``G_l[j, i]``. What ``F`` and ``G`` are depends on the rule's pathway
(the same pairing as ``weight_alignment``, so that
:math:`\\angle(\\mathrm{vec}\\, G_l, \\mathrm{vec}\\, F_l^T)` *is* the logged angle):

- ``layerwise`` (code 1): :math:`F_l = W_l`, shape ``(n_{l-1}, n_l)``, and
  :math:`G_l = B_l` as the rule uses it (backprop: :math:`W_l^T`).
- ``direct`` (code 2): :math:`F_l = P_l = W_{l+1} \\cdots W_L`, shape
  ``(n_l, n_L)``, and :math:`G_l = D_l`, shape ``(n_L, n_l)``.
- ``forward_only`` (code 0): :math:`F_l = W_l` and no feedback (NaN).

``forward_only`` columns are those without a feedback matrix: column 1 of a
layer-wise rule (``B_1`` is never used), the readout of a direct rule, the
columns above the first under ``ifa`` and every column of readout-only
learning. The pairs are drawn once, from a generator of their own
(:func:`sample_generator`), so a run with snapshots consumes exactly the
random numbers of one without and trains identically. The first
:data:`RF_UNITS` units of column 1 also store their receptive fields (their
columns of :math:`W_1` as 28 x 28 images).

Pure numpy; :mod:`cortex_fa.training` calls :class:`SnapshotRecorder`, and
:meth:`SnapshotRecorder.to_dataset` gives the variables merged into the run's Dataset.
"""

from __future__ import annotations

import numpy as np
import xarray as xr

# Spawn key of the snapshot sample's own stream: a child of SeedSequence(seed),
# independent of the run's generator (which is the root SeedSequence(seed) itself).
STREAM_KEY = 0x5A4B
RF_UNITS = 64  # receptive fields stored: the first units of column 1
MAX_PAIRS = 100_000  # refused above this: 20 snapshots x 8 layers x 1e5 pairs is already 128 MB
EARLY_FACTOR = 8  # early snapshots at steps 1, 8, 64, 512, ... (a subset of the 1, 2, 4, ... log)
IMAGE_SHAPE = (28, 28)
KINDS = {"forward_only": 0, "layerwise": 1, "direct": 2}
FILL_INDEX = -1  # index variables where a column has fewer synapses than the sample

# name -> (long_name, units) of the float variables
VARIABLES = {
    "snapshot_forward": ("sampled forward weight F_l[i, j] (W_l, or the path W_l+1...W_L for direct rules)", "1"),
    "snapshot_feedback": ("feedback weight G_l[j, i] carrying the error back along the same path (B_l or D_l)", "1"),
    "receptive_field": ("weights from the input pixels onto a unit of column 1 (a column of W_1)", "1"),
}
INDEX_VARIABLES = {
    "snapshot_pre": "index i (0-based) of the sampled pair's sending unit, in column l-1 (direct: in column l)",
    "snapshot_post": "index j (0-based) of the sampled pair's receiving unit, in column l (direct: readout unit)",
}
KIND_VARIABLE = "snapshot_kind"


def sample_generator(seed: int) -> np.random.Generator:
    """The snapshot sample's generator: a spawned child of the run's seed, not its stream."""
    return np.random.default_rng(np.random.SeedSequence(int(seed), spawn_key=(STREAM_KEY,)))


def snapshot_steps(steps_per_epoch: int, epochs: int, logged) -> list[int]:
    """Steps at which snapshots are taken: a sparse subset of the logged steps ``logged``.

    Step 0, the early steps ``1, 8, 64, ...`` inside the first epoch, every
    epoch end and the last step, where they are logged.
    """
    wanted = {0, steps_per_epoch * epochs}
    k = 1
    while k < steps_per_epoch:
        wanted.add(k)
        k *= EARLY_FACTOR
    wanted.update(e * steps_per_epoch for e in range(1, epochs + 1))
    return sorted(wanted & set(int(s) for s in logged))


def layer_kinds(pathway: str, n_layers: int) -> list[int]:
    """The :data:`KINDS` code of every column ``1..L`` for a rule's pathway."""
    kinds = [KINDS["forward_only"]] * n_layers
    if pathway == "layerwise":
        kinds[1:] = [KINDS["layerwise"]] * (n_layers - 1)
    elif pathway == "direct":
        kinds[:-1] = [KINDS["direct"]] * (n_layers - 1)
    elif pathway == "indirect" and n_layers > 1:
        kinds[0] = KINDS["direct"]
    return kinds


def forward_shapes(sizes, kinds) -> list[tuple[int, int]]:
    """Shape of ``F_l`` per column: ``(n_{l-1}, n_l)``, or ``(n_l, n_L)`` for a direct pair."""
    return [(sizes[l], sizes[-1]) if kind == KINDS["direct"] else (sizes[l - 1], sizes[l])
            for l, kind in enumerate(kinds, start=1)]


def sample_pairs(shapes, cap: int, rng: np.random.Generator) -> list[tuple[np.ndarray, np.ndarray]]:
    """``(i, j)`` index arrays per column: ``min(cap, n_rows * n_cols)`` distinct entries, sorted.

    A column with at most ``cap`` entries is stored whole.
    """
    out = []
    for rows, cols in shapes:
        n = rows * cols
        flat = np.arange(n) if n <= cap else np.sort(rng.choice(n, size=cap, replace=False))
        out.append(np.divmod(flat, cols))
    return out


def forward_and_feedback(rule, weights, state, kinds):
    """``(F_l, G_l or None)`` per column (see the module table); G is what the rule uses now."""
    paths, L = {}, len(weights)
    for l in range(L - 1, 0, -1):  # P_l = W_{l+1} P_{l+1}, from the readout down
        paths[l] = weights[l] if l == L - 1 else weights[l] @ paths[l + 1]
    out = []
    for l, kind in enumerate(kinds, start=1):
        if kind == KINDS["layerwise"]:
            out.append((weights[l - 1], rule.feedback(weights, state, l)))
        elif kind == KINDS["direct"]:
            out.append((paths[l], rule.feedback(weights, state, l)))
        else:
            out.append((weights[l - 1], None))
    return out


def receptive_fields(w1: np.ndarray, n_units: int = RF_UNITS, shape=IMAGE_SHAPE) -> np.ndarray:
    """The first ``n_units`` columns of :math:`W_1` as images: ``(units, rows, cols)``, float32."""
    n = min(n_units, w1.shape[1])
    # a copy: for column-major W_1 the transpose-reshape is a view that training would overwrite
    return np.array(w1[:, :n].T, dtype=np.float32, order="C").reshape(n, *shape)


class SnapshotRecorder:
    """Collects the snapshots of one run (see the module docstring).

    Parameters
    ----------
    sizes : sequence of int
        Column sizes, input first (``784, n_1, ..., n_L``).
    pathway : str
        The rule's pathway.
    cap : int
        Pairs per column at most.
    seed : int
        The run's seed (the sample has its own stream, see :func:`sample_generator`).
    steps : sequence of int
        Steps at which :meth:`take` is to be called (from :func:`snapshot_steps`).
    """

    def __init__(self, sizes, pathway: str, cap: int, seed: int, steps):
        self.sizes = tuple(sizes)
        self.kinds = layer_kinds(pathway, len(self.sizes) - 1)
        self.pairs = sample_pairs(forward_shapes(self.sizes, self.kinds), cap, sample_generator(seed))
        self.steps = set(int(s) for s in steps)
        self.taken: list[int] = []
        self.forward: list[list[np.ndarray]] = []
        self.feedback: list[list[np.ndarray]] = []
        self.fields: list[np.ndarray] = []

    def take(self, step: int, rule, weights, state) -> None:
        """Record the sampled pairs and the receptive fields at ``step``."""
        fwd, fb = [], []
        for (i, j), (F, G) in zip(self.pairs, forward_and_feedback(rule, weights, state, self.kinds)):
            fwd.append(np.asarray(F[i, j], np.float32))
            fb.append(np.full(len(i), np.nan, np.float32) if G is None else np.asarray(G[j, i], np.float32))
        self.taken.append(int(step))
        self.forward.append(fwd)
        self.feedback.append(fb)
        self.fields.append(receptive_fields(weights[0]))

    def to_dataset(self, steps_per_epoch: int) -> xr.Dataset:
        """The snapshot variables of the run (dims ``snapshot_step``, ``layer``, ``pair``, ``unit``, ...)."""
        n_pair = max(len(i) for i, _ in self.pairs)
        L, S = len(self.kinds), len(self.taken)
        values = {name: np.full((S, L, n_pair), np.nan, np.float32) for name in VARIABLES if name != "receptive_field"}
        index = {name: np.full((L, n_pair), FILL_INDEX, np.int32) for name in INDEX_VARIABLES}
        for l, (i, j) in enumerate(self.pairs):
            index["snapshot_pre"][l, :len(i)], index["snapshot_post"][l, :len(j)] = i, j
            for s in range(S):
                values["snapshot_forward"][s, l, :len(i)] = self.forward[s][l]
                values["snapshot_feedback"][s, l, :len(i)] = self.feedback[s][l]
        fields = np.stack(self.fields) if self.fields else np.zeros((0, 0, *IMAGE_SHAPE), np.float32)
        steps = np.array(self.taken, dtype=np.int64)
        ds = xr.Dataset(
            {**{k: (("snapshot_step", "layer", "pair"), v) for k, v in values.items()},
             **{k: (("layer", "pair"), v) for k, v in index.items()},
             KIND_VARIABLE: ("layer", np.array(self.kinds, np.int8)),
             "receptive_field": (("snapshot_step", "unit", "pixel_row", "pixel_col"), fields)},
            coords={"snapshot_step": steps, "snapshot_epoch": ("snapshot_step", steps / steps_per_epoch),
                    "unit": np.arange(fields.shape[1]), "pixel_row": np.arange(IMAGE_SHAPE[0]),
                    "pixel_col": np.arange(IMAGE_SHAPE[1])},
        )
        return annotate(ds)


def annotate(ds: xr.Dataset) -> xr.Dataset:
    """Descriptions of the snapshot variables present in ``ds`` (in place; returns it)."""
    for name, (long_name, units) in VARIABLES.items():
        if name in ds:
            ds[name].attrs.update(long_name=long_name, units=units)
    for name, long_name in INDEX_VARIABLES.items():
        if name in ds:
            ds[name].attrs.update(long_name=long_name, units="1")
    if KIND_VARIABLE in ds:
        # a CF flag variable: what F and G are in this column
        ds[KIND_VARIABLE].attrs.update(
            long_name="what the pairs of a column are (see docs/metrics.md#synapse-snapshots)",
            flag_values=np.array(list(KINDS.values()), np.int8), flag_meanings=" ".join(KINDS))
        ds[KIND_VARIABLE].attrs.pop("units", None)
    return ds


def has_snapshots(ds) -> bool:
    """Whether a run or study Dataset holds synapse snapshots."""
    return "snapshot_forward" in ds and ds.sizes.get("snapshot_step", 0) > 0


def file_encoding(ds: xr.Dataset) -> dict:
    """NetCDF packing of the receptive fields: int16 with a ``scale_factor`` (CF section 8.1).

    NetCDF has no 16-bit float; packing to 16-bit integers halves the largest
    snapshot variable at a rounding error of at most ``max|W_1| / 65534``.
    """
    if "receptive_field" not in ds or ds["receptive_field"].size == 0:
        return {}
    peak = float(np.nanmax(np.abs(ds["receptive_field"].values), initial=0.0))
    scale = peak / 32766.0 if np.isfinite(peak) and peak > 0 else 1.0
    return {"receptive_field": {"dtype": "int16", "scale_factor": np.float32(scale), "_FillValue": np.int16(-32768)}}
