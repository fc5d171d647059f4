"""The hybrid-study figure: test error and per-column alignment against k symmetric columns.

Left, the selected test error (seed mean and 95 % interval) against ``k``,
the number of hidden columns whose feedback is backprop's, with one line for
``bp`` in the top ``k`` columns and one for the bottom ``k`` (both lines
share the all-``fa`` and all-``bp`` ends). Right, each column's
``delta_alignment`` at the selected epoch (seed mean), one panel per side.
"""

from __future__ import annotations

import holoviews as hv
import numpy as np

from cortex_fa import hybrid
from cortex_fa.viz import style

SIDES = {"top": "bp in the top k columns", "bottom": "bp in the bottom k columns"}


def _rows(s, side):
    """Indices of the layouts on one side's line, by k (the shared ends included)."""
    keep = [i for i in range(s.sizes[hybrid.DIM]) if str(s.side.values[i]) in (side, "none", "all")]
    return sorted(keep, key=lambda i: int(s.k.values[i]))


def error_vs_k(s) -> hv.Overlay:
    parts = []
    x, y = "k (columns with symmetric feedback)", "selected test error (%)"
    for side, label in SIDES.items():
        rows = _rows(s, side)
        k = [int(s.k.values[i]) for i in rows]
        mean = np.array([float(s.error_mean.values[i]) for i in rows])
        lo = np.array([float(s.error_lo.values[i]) for i in rows])
        hi = np.array([float(s.error_hi.values[i]) for i in rows])
        colour = style.RULE_COLORS["bp" if side == "top" else "fa"]
        parts.append(style.line(hv.Curve((k, mean), x, y, label=label), colour))
        spread = hv.Spread((k, mean, mean - lo, hi - mean), x, [y, "lo", "hi"], label=label)
        spread = spread.opts(color=colour, fill_alpha=0.15, line_alpha=0.0, backend="bokeh")
        parts.append(spread.opts(color=colour, alpha=0.15, linewidth=0, backend="matplotlib"))
    return style.panel(hv.Overlay(parts), f"Selected test error vs k ({int(s.n.max())} paired seeds)", x, y)


def alignment_map(s, side: str) -> hv.HeatMap:
    rows = _rows(s, side)
    cells = []
    n_hidden = s.sizes["layer"] - 1
    for i in rows:
        for layer in range(1, n_hidden + 1):
            cells.append((int(s.k.values[i]), layer, float(s.delta_alignment.isel({hybrid.DIM: i}).sel(layer=layer))))
    where = "on top" if side == "top" else "at the bottom"
    common = dict(title=f"delta angle to backprop, bp {where}", colorbar=True, cmap="viridis", clim=(0, 90),
                  xlabel="k", ylabel="hidden column (1 = bottom)")
    heat = hv.HeatMap(cells, ["k", "column"], "delta alignment (deg)")
    heat = heat.opts(tools=["hover"], width=380, height=300, backend="bokeh", **common)
    return heat.opts(fig_size=110, show_values=False, backend="matplotlib", **common)


def hybrid_figure(study) -> hv.Layout:
    """The figure of a study with a ``column_rules`` dim (see the module docstring)."""
    style.ensure_backends()
    s = hybrid.summary(study)
    return style.grid([error_vs_k(s), alignment_map(s, "top"), alignment_map(s, "bottom")], 3).opts(
        hspace=0.5, backend="matplotlib")
