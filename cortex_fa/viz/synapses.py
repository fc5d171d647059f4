"""The synapse view: sampled forward/feedback pairs and receptive fields, as HoloViews objects.

Needs a results file written with ``--snapshots`` (see :mod:`cortex_fa.snapshots`).
Every function takes a run or a study Dataset; a study is narrowed to one run
by ``sel`` (``{"rule": "fa", "n_hidden": 2, "seed": 0}``; dims not named take
their first value, extra swept dims too). ``snapshot`` is a step at which a
snapshot was taken (:func:`snapshot_steps` lists them); None is the last.

- :func:`synapse_scatter`: per column, feedback against forward value of each
  sampled pair. Feedback aligned with :math:`W^T` puts the cloud on a line
  through the origin (``G = c F^T``): the tilt onto the dashed diagonal is
  the alignment, and the title prints the logged ``weight_alignment``.
- :func:`receptive_fields`: column 1's receptive fields of two runs side by side.
- :func:`synapse_figures`: both, for ``cortex-fa plot``.

Picking the run and the snapshot (:func:`run_view`, :func:`snapshot_steps`,
:func:`default_pair`, :func:`text`) is in :mod:`cortex_fa.viz.snapshot_runs`.
Strings from files (rule names) reach titles only through :func:`text`, and
:func:`caption` gives HTML-escaped text for a page around the plots.
"""

from __future__ import annotations

import html
import math

import holoviews as hv
import numpy as np

from cortex_fa.errors import ResultsError
from cortex_fa.snapshots import KINDS, has_snapshots
from cortex_fa.viz import style
from cortex_fa.viz.data import as_study, select
# Picking a run and a snapshot lives in snapshot_runs; text, run_view, snapshot_steps and
# default_pair are re-exported here, where the app and the CLI find them.
from cortex_fa.viz.snapshot_runs import (  # noqa: F401 - re-exported
    at_snapshot, default_pair, run_view, snapshot_steps, text, when, who,
)

FIGURES = ("synapses", "receptive_fields")
_SUB = str.maketrans("0123456789", "₀₁₂₃₄₅₆₇₈₉")


def _labels(kind: int, layer: int, n_layers: int):
    """Axis labels of a column's pairs: what F and G are (see cortex_fa.snapshots)."""
    l, L = str(layer).translate(_SUB), str(n_layers).translate(_SUB)
    if kind == KINDS["layerwise"]:
        return f"forward Wᵀ{l}[j, i]", f"feedback B{l}[j, i]"
    if kind == KINDS["direct"]:
        first = str(layer + 1).translate(_SUB)
        path = f"W{first}" if layer + 1 == n_layers else f"W{first}⋯W{L}"
        return f"forward path ({path})ᵀ[k, j]", f"direct feedback D{l}[k, j]"
    return f"forward W{l}[i, j]", "count"


def pair_angle(forward, feedback) -> float:
    """Angle (degrees) between the sampled feedback and forward values (NaN pairs dropped)."""
    ok = np.isfinite(forward) & np.isfinite(feedback)
    a, b = np.asarray(forward, np.float64)[ok], np.asarray(feedback, np.float64)[ok]
    na, nb = np.linalg.norm(a), np.linalg.norm(b)
    if na == 0 or nb == 0:
        return math.nan
    return float(np.degrees(np.arccos(np.clip(a @ b / (na * nb), -1.0, 1.0))))


def logged_angle(run, layer: int, step: int) -> float:
    """The run's logged ``weight_alignment`` of ``layer`` at ``step`` (NaN if not logged)."""
    if "weight_alignment" not in run or step not in run["step"].values:
        return math.nan
    return float(run["weight_alignment"].sel(step=step, layer=layer))


def synapse_scatter(ds, layer: int, snapshot=None, *, sel=None, size: int = 340):
    """Feedback against forward value of the sampled pairs of one column at one snapshot.

    Parameters
    ----------
    ds : xarray.Dataset
        A run or study with snapshots.
    layer : int
        Column ``1..L``.
    snapshot : int, optional
        Step of the snapshot (default: the last).
    sel : dict, optional
        ``rule``/``n_hidden``/``seed`` (and swept dims) of a study.

    Returns
    -------
    holoviews.Overlay or holoviews.Histogram
        The scatter of :math:`G_l[j, i]` against :math:`F_l^T[j, i]` with the
        diagonal :math:`G = (\\lVert G \\rVert / \\lVert F \\rVert) F^T` dashed; the title
        gives the logged angle :math:`\\angle(B_l, W_l^T)` and the angle of the
        sample. A column without feedback synapses (kind ``forward_only``)
        gives a histogram of its forward weights instead.
    """
    style.ensure_backends()
    run = run_view(ds, sel)
    snap, step = at_snapshot(run, snapshot)
    n_layers = int((run["snapshot_kind"] >= 0).sum())
    if not 1 <= int(layer) <= n_layers:
        raise ResultsError(f"layer {layer} is not in this network; it has columns 1 to {n_layers}")
    kind = int(run["snapshot_kind"].sel(layer=layer))
    fwd = snap["snapshot_forward"].sel(layer=layer).values
    fb = snap["snapshot_feedback"].sel(layer=layer).values
    fwd_ok = fwd[np.isfinite(fwd)]
    xlabel, ylabel = _labels(kind, int(layer), n_layers)
    head = f"{who(run)}: column {int(layer)}"
    if kind == KINDS["forward_only"]:
        counts, edges = np.histogram(fwd_ok, bins=40)
        hist = hv.Histogram((edges, counts), kdims=[hv.Dimension("w", label=xlabel)], vdims=[ylabel])
        title = f"{head}\n{when(snap, step)}: no feedback synapses"
        return _size(hist.opts(title=title, color="#7f7f7f", backend="bokeh")
                     .opts(title=title, color="#7f7f7f", backend="matplotlib"), size)
    ok = np.isfinite(fwd) & np.isfinite(fb)
    x, y = fwd[ok].astype(np.float64), fb[ok].astype(np.float64)
    logged, sample = logged_angle(run, int(layer), step), pair_angle(x, y)
    angle = f"∠ {logged:.1f}°" if np.isfinite(logged) else "∠ not logged"
    title = f"{head}\n{when(snap, step)}: {angle}, sample {sample:.1f}°"
    xd, yd = hv.Dimension("forward", label=xlabel), hv.Dimension("feedback", label=ylabel)
    color = style.rule_color(str(run["rule"].item()), [])
    dots = hv.Scatter((x, y), xd, yd).opts(color=color, size=3, alpha=0.35, tools=["hover"], backend="bokeh")
    dots = dots.opts(color=color, s=4, alpha=0.35, backend="matplotlib")
    reach = float(np.max(np.abs(x), initial=0.0)) or 1.0
    slope = float(np.linalg.norm(y) / np.linalg.norm(x)) if np.linalg.norm(x) > 0 else 1.0
    diag = hv.Curve(([-reach, reach], [-slope * reach, slope * reach]), xd, yd)
    diag = style.line(diag, "#333333", width=1.2, dash=True)
    return _size((dots * diag).opts(title=title, backend="bokeh").opts(title=title, backend="matplotlib"), size)


def _size(obj, size: int):
    obj = obj.opts(width=size, height=size, fontsize={"title": "9pt"}, backend="bokeh")
    return obj.opts(fig_size=130, aspect=1, fontsize={"title": 10}, backend="matplotlib")


def synapse_scatters(ds, snapshot=None, *, sel=None):
    """:func:`synapse_scatter` for every column of the selected run, in one row."""
    run = run_view(ds, sel)
    n_layers = int((run["snapshot_kind"] >= 0).sum())
    panels = [synapse_scatter(run, layer, snapshot) for layer in range(1, n_layers + 1)]
    return style.grid(panels, min(4, len(panels)))


def tile(fields, n: int) -> np.ndarray:
    """``n`` images ``(units, rows, cols)`` tiled into one array, a NaN line between them."""
    fields = np.asarray(fields, np.float32)[:n]
    k, (h, w) = len(fields), fields.shape[1:]
    cols = max(1, math.ceil(math.sqrt(k)))
    rows = max(1, math.ceil(k / cols))
    out = np.full((rows * (h + 1) - 1, cols * (w + 1) - 1), np.nan, np.float32)
    for u, image in enumerate(fields):
        r, c = divmod(u, cols)
        out[r * (h + 1): r * (h + 1) + h, c * (w + 1): c * (w + 1) + w] = image
    return out


def _field_image(ds, snapshot, n, sel):
    run = run_view(ds, sel)
    snap, step = at_snapshot(run, snapshot)
    fields = snap["receptive_field"].transpose("unit", "pixel_row", "pixel_col").values
    fields = fields[np.isfinite(fields).any(axis=(1, 2))]
    if not len(fields):
        raise ResultsError("the selected run stores no receptive fields")
    n = min(int(n), len(fields))
    grid = tile(fields, n)
    peak = float(np.nanmax(np.abs(grid))) or 1.0
    h, w = grid.shape
    image = hv.Image(grid, bounds=(0, 0, w, h), kdims=["pixel column", "pixel row"], vdims=["weight"])
    title = f"{who(run)}\nW₁ of units 0-{n - 1}, {when(snap, step)}"
    common = dict(cmap="RdBu_r", clim=(-peak, peak), colorbar=True, xaxis=None, yaxis=None, title=title)
    image = image.opts(tools=["hover"], width=380, height=360, fontsize={"title": "9pt"}, backend="bokeh",
                       **common)
    return image.opts(fig_size=120, aspect=w / h, backend="matplotlib", **common)


def receptive_fields(ds_a, ds_b=None, snapshot=None, n: int = 16, *, sel_a=None, sel_b=None):
    """Receptive fields of column 1 (the first ``n`` units) of one or two runs, side by side.

    Parameters
    ----------
    ds_a, ds_b : xarray.Dataset
        Runs or studies with snapshots (``ds_b`` None: one run only). Pass
        the same study twice with ``sel_a={"rule": "bp"}``, ``sel_b={"rule": "fa"}``
        to compare two of its runs.
    snapshot : int, optional
        Step of the snapshot in both runs (default: each run's last).
    n : int
        Units shown per run (at most those stored, the first 64).

    Returns
    -------
    holoviews.Layout
        One image per run: the units' 28 x 28 weight maps tiled row by row,
        red positive, blue negative, on a colour scale symmetric about 0.
    """
    style.ensure_backends()
    if int(n) < 1:
        raise ValueError(f"n must be at least 1, got {n}")
    panels = [_field_image(ds_a, snapshot, n, sel_a)]
    if ds_b is not None:
        panels.append(_field_image(ds_b, snapshot, n, sel_b))
    return style.grid(panels, len(panels))


def caption(ds, layer: int, snapshot=None, *, sel=None) -> str:
    """HTML (every file string escaped) explaining one :func:`synapse_scatter` panel."""
    run = run_view(ds, sel)
    snap, step = at_snapshot(run, snapshot)
    kind = int(run["snapshot_kind"].sel(layer=layer))
    logged = logged_angle(run, int(layer), step)
    what = {KINDS["layerwise"]: "feedback B against the forward weight it mirrors (W transposed)",
            KINDS["direct"]: "direct feedback D against the forward path from this column to the readout",
            KINDS["forward_only"]: "no feedback synapses: the forward weights' distribution"}[kind]
    angle = f"{logged:.1f}°" if np.isfinite(logged) else "not logged"
    pairs = int(np.isfinite(snap["snapshot_forward"].sel(layer=layer).values).sum())
    esc = lambda v: html.escape(str(v), quote=True)  # noqa: E731
    return (f"<p><b>{esc(run['rule'].item())}</b>, depth {int(run['n_hidden'])}, seed {int(run['seed'])}, "
            f"column {int(layer)} at {esc(when(snap, step))}: {esc(what)} ({pairs} sampled pairs); "
            f"weight alignment {esc(angle)}.</p>")


def synapse_figures(ds, depth=None, sel=None) -> tuple[dict, dict]:
    """The synapse figures of a file for ``cortex-fa plot``: ``(figures, skipped)``.

    ``synapses``: the scatters of every column at the last snapshot, one row
    per rule (network ``depth``, default the deepest; first seed).
    ``receptive_fields``: two runs side by side (:func:`default_pair`).
    """
    if not has_snapshots(ds):
        why = "the file has no synapse snapshots (train with --snapshots 2000)"
        return {}, {name: why for name in FIGURES}
    study = select(as_study(ds), **(sel or {}))
    depth = int(study["n_hidden"].max()) if depth is None else int(depth)
    seed = study["seed"].values[0]
    rows = []
    for rule in study["rule"].values:
        try:
            rows.append(synapse_scatters(study, sel={"rule": rule, "n_hidden": depth, "seed": seed}))
        except ResultsError:
            continue  # a missing run, or one without snapshots
    figs, skipped = {}, {}
    if rows:
        panels = [p for row in rows for p in row]
        figs["synapses"] = style.grid(panels, len(rows[0]))
    else:
        skipped["synapses"] = f"no run of depth {depth} has snapshots"
    pair = default_pair(study, depth)
    if pair:
        second = pair[1] if len(pair) > 1 else None
        figs["receptive_fields"] = receptive_fields(study, study if second else None, sel_a=pair[0], sel_b=second)
    else:
        skipped["receptive_fields"] = f"no run of depth {depth} has snapshots"
    return figs, skipped
