"""The five standard figures of a depth study, as HoloViews objects.

Each function takes a results Dataset (a study, or a single run, which is
treated as a study of one rule, depth (``n_hidden``) and seed) and returns a HoloViews object
styled for both Bokeh (interactive HTML, the app; hover shows exact values)
and Matplotlib (PNG). Seeds are averaged with a 95 % Student-t band unless
``seeds="each"``. Swept dims beyond rule/n_hidden/seed are fixed by ``sel``
(default: their first value).

Run ``python -m cortex_fa.viz.figures STUDY.nc OUTDIR`` (same as
``cortex-fa plot STUDY.nc --out OUTDIR``) to write all of them.
"""

from __future__ import annotations

import holoviews as hv
import numpy as np

from cortex_fa.viz import style
from cortex_fa.viz.data import (LAYER_VARS, as_study, depth_verdicts, final_test_error, layer_view,
                                seed_stats, select, tidy, value_range)

SPARSE = 12  # lines with at most this many points also get markers
DEPTH_KEY = hv.Dimension("n_hidden", label="depth")  # panels keyed by network depth
FIGURES = ("test_error_vs_depth", "learning_curves", "alignment_curves",
           "alignment_heatmap", "gradient_flow")


def prepare(ds, sel=None):
    """Study layout with extra swept dims fixed; loads the plotting backends."""
    style.ensure_backends()
    return select(as_study(ds), **(sel or {}))


def rules_in(ds, rules):
    """Rules of ``ds`` in file order, filtered to ``rules`` (None = all)."""
    have = [str(r) for r in ds["rule"].values]
    return have if rules is None else [r for r in have if r in set(map(str, rules))]


def lines(groups, x, var, seeds="mean", logy=False):
    """Mean curves with seed bands, or thin per-seed curves, as a list of elements.

    ``groups`` holds ``(table, colour, label, dashed)`` per line. All bands go
    into one ``Polygons`` element: far fewer elements than one ``Area`` per
    line, which keeps rendering fast. On a log y axis a band's lower edge is
    clipped at a tenth of the mean (with few seeds the t-interval reaches
    below zero).
    """
    items, bands = [], []
    for df, color, label, dash in groups:
        hover = [c for c in (var, "lo", "hi", "n", "verdict", "epoch", "step") if c in df and c != x]
        if seeds != "mean":
            items += [style.line(hv.Curve(g, x, hover + ["seed"], label=label), color, 1.2, 0.75,
                                 dash) for _, g in df.groupby("seed")]
            continue
        if (df["n"] > 1).any():
            lo = np.maximum(df["lo"], df[var] / 10) if logy else df["lo"]
            ok = np.isfinite(lo) & np.isfinite(df["hi"])
            xs = df[x].to_numpy()[ok]
            bands.append({x: np.r_[xs, xs[::-1]], var: np.r_[df["hi"][ok], lo[ok][::-1]],
                          "color": color})
        items.append(style.line(hv.Curve(df, x, hover, label=label), color, dash=dash))
        if len(df) <= SPARSE:  # a line through a handful of points: show where they are
            items.append(style.markers(hv.Scatter(df, x, hover, label=label), color, 6))
    if bands:
        items.insert(0, style.band(hv.Polygons(bands, [x, var], vdims="color")))
    return items


def time_axis(df, logx):
    """Use ``step + 1`` on a log axis (shows step 0 and the early log-spaced steps)."""
    if logx:
        df = df.assign(updates=df["step"] + 1)
        return df, "updates"
    return df, "epoch"


def test_error_vs_depth(ds, rules=None, margin=0.5, reference="bp", sel=None):
    """Headline test error (%) against depth, one line per rule, breaking depths marked.

    With a validation split the error is the test error at the best-validation
    epoch (see :func:`cortex_fa.analysis.test_errors`), else the final one.

    The band is the 95 % interval over seeds (clipped to [0, 100] %); faint
    dots are single seeds. Each depth is compared with ``reference`` on
    counts of misclassified images, paired by seed
    (:func:`cortex_fa.verdicts.verdicts`, ``margin`` in percentage points);
    hovering a point shows its verdict. A large cross marks a rule's breaking
    depth, the first depth that *falls behind*
    (:func:`cortex_fa.verdicts.breaking_depth`). Where that depth is
    *undetermined*, an open circle marks the first undetermined depth
    (legend: "breaking depth undetermined") and no cross is drawn: the
    breaking depth is not known, not "never".
    """
    from cortex_fa import verdicts

    ds = prepare(ds, sel)
    err = final_test_error(ds)
    st = seed_stats(err, bounds=value_range("test_error", "%"))
    table = st.rename(mean="test_error").to_dataframe().reset_index().dropna(subset=["test_error"])
    seeds = err.to_dataframe().reset_index().dropna(subset=["test_error"])
    v = depth_verdicts(ds, margin=margin, reference=reference)
    if v is not None:
        words = v["verdict"].to_dataframe()["verdict"]
        table = table.assign(verdict=[words.get((r, d), verdicts.NO_DATA)
                                      for r, d in zip(table["rule"], table["n_hidden"])])
        bdepth = verdicts.breaking_depth(v)
    items = []
    for rule in rules_in(ds, rules):
        color = style.rule_color(rule, rules_in(ds, None))
        df = table[table["rule"] == rule]
        if df.empty:
            continue
        items += lines([(df, color, rule, False)], "n_hidden", "test_error")
        dots = hv.Scatter(seeds[seeds["rule"] == rule], "n_hidden", ["test_error", "seed"], label=rule)
        items.append(style.markers(dots, color, size=5, alpha=0.4))
        bd = str(bdepth.sel(rule=rule).item()) if v is not None and rule != reference else verdicts.NO_DATA
        if bd.isdigit():
            at = df[df["n_hidden"] == int(bd)].assign(breaking_depth=int(bd))
            cross = hv.Scatter(at, "n_hidden", ["test_error", "breaking_depth", "verdict"], label=rule)
            items.append(style.markers(cross, color, size=14, marker="x"))
        elif bd == verdicts.UNDETERMINED:
            at = df[df["verdict"].isin([verdicts.UNDETERMINED, verdicts.NO_DATA])].head(1)
            ring = hv.Scatter(at, "n_hidden", ["test_error", "verdict"], label="breaking depth undetermined")
            items.append(style.hollow(ring, color))
    kind = "Selected" if err.attrs.get("kind") == "selected" else "Final"
    note = (f"×: breaking depth vs {reference}, ○: undetermined; margin {verdicts.margin_text(v)}"
            if v is not None else f"no {reference} to compare with")
    title = f"{kind} test error vs depth\n{note}"  # two lines: one is too wide for the panel
    depths = [int(d) for d in ds["n_hidden"].values]  # integer ticks only
    ylabel = f"{kind.lower()} test error (%)"  # selected: at the best-validation epoch
    fig = style.panel(hv.Overlay(items), title, "depth (hidden columns)", ylabel,
                      legend="top_left", width=620, height=380)  # errors grow to the right
    # Four or five elements per rule: past HoloViews' default of 25 the legend would vanish.
    fig = fig.opts(xticks=depths, legend_limit=100, backend="bokeh")
    return fig.opts(xticks=depths, legend_limit=100, backend="matplotlib")


test_error_vs_depth.__test__ = False  # not a pytest test, despite its name


def learning_curves(ds, metric="test_accuracy", rules=None, depths=None, seeds="mean",
                    layer="last", logx=False, facet=True, sel=None):
    """``metric`` against epoch, one line per rule, one panel per depth.

    Returns an ``NdLayout`` over depth if ``facet`` else a ``HoloMap`` (a depth
    slider in HTML). Per-layer metrics are reduced with
    :func:`~cortex_fa.viz.data.layer_view` (``layer``: int, "last" or "mean").
    """
    ds = prepare(ds, sel)
    if metric in LAYER_VARS:
        ds = ds.assign({metric: layer_view(ds[metric], layer)})
    df, x = time_axis(tidy(ds, metric, seeds), logx)
    all_rules = rules_in(ds, None)
    legend = "bottom_right" if "accuracy" in metric else "top_right"  # away from the curves
    panels = {}
    for depth in ds["n_hidden"].values:
        if depths is not None and int(depth) not in set(map(int, depths)):
            continue
        groups = [(df[(df["rule"] == rule) & (df["n_hidden"] == depth)],
                   style.rule_color(rule, all_rules), rule, False) for rule in rules_in(ds, rules)]
        items = lines([g for g in groups if not g[0].empty], x, metric, seeds)
        if items:
            panels[int(depth)] = style.panel(hv.Overlay(items), f"depth {int(depth)}",
                                             style.label(x), style.label(metric), logx=logx,
                                             legend=legend)
    if facet:
        return hv.NdLayout(panels, kdims=DEPTH_KEY).cols(3)
    return hv.HoloMap(panels, kdims=DEPTH_KEY)


def _per_layer(ds, var, depth, rules, logx, logy, seeds):
    """One panel per rule with one line per layer of the ``depth`` network."""
    depth = int(ds["n_hidden"].max()) if depth is None else int(depth)
    ds = ds.sel(n_hidden=[depth])
    df, x = time_axis(tidy(ds, var, seeds), logx)
    layers = [int(v) for v in ds["layer"].values if v <= depth + 1]
    colors = style.layer_colors(len(layers))
    groups = []
    for rule in rules_in(ds, rules):
        per_layer = [(df[(df["rule"] == rule) & (df["layer"] == layer)], color,
                      f"layer {layer}" + (" (readout)" if layer == depth + 1 else ""),
                      layer == depth + 1) for layer, color in zip(layers, colors)]
        items = lines([g for g in per_layer if not g[0].empty], x, var, seeds, logy)
        if items:
            groups.append((rule, items))
    # Layer colours are the same in every panel: one legend, right of the last, is enough.
    all_rules = rules_in(ds, None)
    return [style.panel(hv.Overlay(items), f"{rule}, depth {depth}", style.label(x),
                        style.label(var), logx=logx, logy=logy,
                        legend="outside" if i == len(groups) - 1 else False).opts(
                            hooks=[style.title_color(style.rule_color(rule, all_rules))], backend="bokeh")
            for i, (rule, items) in enumerate(groups)]


def alignment_curves(ds, depth=None, rules=None, variables=("delta_alignment", "weight_alignment", "learned_alignment"),
                     logx=True, seeds="mean", sel=None):
    """Alignment angles against time per layer: a row per variable, a column per rule.

    ``depth`` picks the network (default: the deepest). With ``logx`` the x axis
    is ``step + 1`` on a log scale so step 0 and the log-spaced first-epoch
    steps are visible; otherwise it is the epoch. Hover shows both.
    """
    ds = prepare(ds, sel)
    panels = []
    for var in variables:
        if var in ds:  # learned_alignment: files from before 0.4 lack it
            panels += _per_layer(ds, var, depth, rules, logx, False, seeds)
    return style.grid(panels, len(rules_in(ds, rules)))


def gradient_flow(ds, depth=None, rules=None, var="delta_norm", logx=True, logy=True,
                  seeds="mean", sel=None):
    """Error-signal size per layer against time (default ``delta_norm``), per rule.

    Lines that spread apart towards the input show vanishing (or exploding)
    error signals through the stack; log axes by default.
    """
    ds = prepare(ds, sel)
    panels = _per_layer(ds, var, depth, rules, logx, logy, seeds)
    return style.grid(panels, min(3, len(panels)))


def _edges(centres, log: bool):
    """Cell edges around sorted ``centres``: midpoints (geometric on a log axis)."""
    c = np.log(centres) if log else np.asarray(centres, dtype=float)
    half = np.diff(c) / 2 if len(c) > 1 else np.array([0.5])
    e = np.r_[c[0] - half[0], c[:-1] + half, c[-1] + half[-1]]
    return np.exp(e) if log else e


def alignment_heatmap(ds, var="delta_alignment", layer="last", rules=None, sel=None, cols=None):
    """Seed-mean alignment over depth (rows) and time (columns), per rule.

    ``layer`` is an int, ``"last"`` (last hidden column of each network) or
    ``"mean"`` (mean over its hidden columns). Time is numeric: ``updates + 1``
    on a log axis, one cell per logged step reaching halfway (geometrically)
    to its neighbours, so step 0, the log-spaced first epoch and the later
    epochs are all readable; hover shows the step and epoch.
    """
    ds = prepare(ds, sel)
    ds = ds.assign({var: layer_view(ds[var], layer)})
    df = tidy(ds, var, "mean")
    steps = np.sort(df["step"].unique()) if len(df) else np.array([0])
    depths = np.sort(df["n_hidden"].unique()) if len(df) else np.array([1])
    xe, ye = _edges(steps + 1.0, True), _edges(depths, False)
    where = {"last": "last hidden layer", "mean": "mean over hidden layers"}
    where = f"{var.replace('_', ' ')}, {where.get(layer, f'layer {layer}')}"
    common = dict(colorbar=True, cmap="viridis", clim=(0, 90), logx=True, ylabel="depth",
                  xlabel=style.label("updates"), yticks=[int(d) for d in depths])
    all_rules = rules_in(ds, None)
    panels = []
    for rule in rules_in(ds, rules):
        g = df[df["rule"] == rule]
        if g.empty:
            continue
        grid = g.pivot_table(index="n_hidden", columns="step", values=var, dropna=False)
        grid = grid.reindex(index=depths, columns=steps).to_numpy()
        qm = hv.QuadMesh((xe, ye, grid), ["updates", "n_hidden"], hv.Dimension(var, label="angle (deg)"))
        title = f"{rule}: {where}"
        qm = qm.opts(tools=["hover"], title=title, width=420, height=230, backend="bokeh",
                     hooks=[style.title_color(style.rule_color(rule, all_rules))], **common)
        qm = qm.opts(title=title, fig_size=120, aspect=2.5, backend="matplotlib", **common)
        panels.append(qm)
    ncols = cols or (1 if len(panels) > 2 else len(panels))
    return style.grid(panels, ncols).opts(vspace=0.6, backend="matplotlib")


def all_figures(ds, sel=None, depth=None, only=None):
    """The figures (all, or those named in ``only``) as ``{name: object}``.

    Returns
    -------
    figs : dict
        Figure name to HoloViews object, in :data:`FIGURES` order.
    skipped : dict
        Figure name to the reason it was not drawn: ``test_error_vs_depth``
        needs at least two depths.
    """
    ds = prepare(ds, sel)
    build = {
        "test_error_vs_depth": lambda: test_error_vs_depth(ds),
        "learning_curves": lambda: learning_curves(ds),
        "alignment_curves": lambda: alignment_curves(ds, depth=depth),
        "alignment_heatmap": lambda: alignment_heatmap(ds),
        "gradient_flow": lambda: gradient_flow(ds, depth=depth),
    }
    figs, skipped = {}, {}
    for name in FIGURES if only is None else [n for n in FIGURES if n in only]:
        if name == "test_error_vs_depth" and ds.sizes["n_hidden"] < 2:
            skipped[name] = "needs a study with at least two depths"
        else:
            figs[name] = build[name]()
    return figs, skipped


if __name__ == "__main__":  # pragma: no cover - thin wrapper over the CLI
    import sys

    from cortex_fa.cli import main

    if len(sys.argv) != 3:
        sys.exit("usage: python -m cortex_fa.viz.figures STUDY.nc OUTDIR")
    sys.exit(main(["plot", sys.argv[1], "--out", sys.argv[2]]))
