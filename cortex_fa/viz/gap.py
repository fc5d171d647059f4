"""The verdict figure: each rule's paired gap to the reference against depth, inside or outside the margin.

One point per rule and depth: :math:`\\bar d`, the mean over seeds of the
rule's misclassified test images minus the reference's at the same seed, in
percentage points, with its paired 95 % interval :math:`[\\ell, u]` as a
whisker (:func:`cortex_fa.verdicts.verdicts`). The shaded band is
:math:`\\pm m`, the declared margin. The verdict is read off the picture:
a whisker wholly inside the band *keeps up*, wholly above it *falls behind*,
wholly below it is *ahead*, and one that crosses an edge is *undetermined*
(an open marker). This is the figure of the headline; the error itself is in
:func:`cortex_fa.viz.figures.test_error_vs_depth`.
"""

from __future__ import annotations

import holoviews as hv
import numpy as np

from cortex_fa import verdicts
from cortex_fa.viz import style
from cortex_fa.viz.figures import prepare, rules_in

NAME = "gap_vs_depth"
DODGE = 0.06  # depths apart per rule, so that whiskers at one depth do not hide each other


def _reference(ds, reference=None) -> str:
    """``reference`` if given, else the one a protocol study declared, else ``"bp"``."""
    return reference or verdicts.declared_defaults(ds).get("reference") or "bp"


def cannot_draw(ds, reference=None, sel=None) -> str | None:
    """Why :func:`gap_vs_depth` cannot draw ``ds`` (no reference rule, fewer than 2 seeds), or None."""
    ds = prepare(ds, sel)
    reference = _reference(ds, reference)
    if reference not in rules_in(ds, None) or len(rules_in(ds, None)) < 2:
        return f"needs a study of the reference rule {reference} and at least one other rule"
    if ds.sizes.get("seed", 1) < 2:
        return "needs at least 2 seeds, paired across rules"
    return None


def gap_table(ds, margin=None, reference=None):
    """The verdicts of ``ds`` as rows (rule, depth, gap, lo, hi, n, verdict), with the defaults a protocol declared."""
    declared = verdicts.declared_defaults(ds)
    reference = _reference(ds, reference)
    margin = margin if margin is not None else (declared.get("margin") or 0.5)
    v = verdicts.verdicts(ds, margin=margin, reference=reference, metric=declared.get("metric"))
    table = v[["diff_mean_pp", "diff_lo_pp", "diff_hi_pp", "n", "verdict"]].to_dataframe().reset_index()
    table = table.rename(columns={"diff_mean_pp": "gap", "diff_lo_pp": "lo", "diff_hi_pp": "hi"})
    return table[table["rule"] != reference].dropna(subset=["gap"]), v


def gap_vs_depth(ds, rules=None, margin=None, reference=None, sel=None):
    """Paired gap to ``reference`` (points of test error) against depth, one colour per rule.

    ``margin`` (points) and ``reference`` default to a protocol study's
    declared ones, else 0.5 and ``"bp"``. Raises
    :class:`cortex_fa.errors.ResultsError` when ``reference`` is not in the study.
    """
    ds = prepare(ds, sel)
    table, v = gap_table(ds, margin, reference)
    every = rules_in(ds, None)
    shown = [r for r in rules_in(ds, rules) if r in set(table["rule"])]
    m = float(v.attrs["margin_pp"])
    depths = [int(d) for d in ds["n_hidden"].values]
    x, y = "depth", f"gap to {v.attrs['reference']} (pp)"
    lo_x, hi_x = min(depths) - 0.5, max(depths) + 0.5
    band = hv.Area(([lo_x, hi_x], [m, m], [-m, -m]), kdims=[x], vdims=[y, "lower"])
    band = band.opts(color="#999999", fill_alpha=0.15, line_alpha=0.0, backend="bokeh")
    items = [band.opts(color="#999999", facecolor="#999999", alpha=0.15, linewidth=0, backend="matplotlib"),
             hv.HLine(0.0).opts(color="#666666", line_width=1, line_dash="dashed", backend="bokeh")
             .opts(color="#666666", linewidth=0.8, linestyle="--", backend="matplotlib")]
    for i, rule in enumerate(shown):
        color = style.rule_color(rule, every)
        df = table[table["rule"] == rule].assign(
            **{x: lambda d, k=i: d["n_hidden"] + (k - (len(shown) - 1) / 2) * DODGE, y: lambda d: d["gap"]})
        hover = [y, "lo", "hi", "n", "verdict", "n_hidden"]
        items.append(style.line(hv.Curve(df, x, hover, label=rule), color, 1.5, 0.6))
        err = hv.ErrorBars((df[x], df[y], df[y] - df["lo"], df["hi"] - df[y]), kdims=[x],
                           vdims=[y, "below", "above"])
        items.append(err.opts(color=color, line_width=2, backend="bokeh").opts(edgecolor=color, linewidth=1.5,
                                                                                backend="matplotlib"))
        decided = df["verdict"] != verdicts.UNDETERMINED
        if decided.any():
            items.append(style.markers(hv.Scatter(df[decided], x, hover, label=rule), color, 8))
        if (~decided).any():
            items.append(style.hollow(hv.Scatter(df[~decided], x, hover, label=rule), color, 10))
    n = int(np.nanmax(v["n"].values)) if v["n"].size else 0
    title = (f"Gap to {v.attrs['reference']} vs depth ({n} paired seeds)\n"
             f"band: ±{verdicts.margin_text(v)}; ○ undetermined")
    fig = style.panel(hv.Overlay(items), title, "depth (hidden columns)", y, legend="outside",
                      width=560, height=380)
    fig = fig.opts(xticks=depths, xlim=(lo_x, hi_x), legend_limit=100, backend="bokeh")
    return fig.opts(xticks=depths, xlim=(lo_x, hi_x), legend_limit=100, backend="matplotlib")
