"""Interactive Panel dashboard over one or several results files.

:func:`create_app` is a factory: the server calls it once per browser session,
so every session owns its widgets and views while the (read-only) Datasets are
shared. Each view is a HoloViews pane whose object is rebuilt only when a
widget it depends on changes; the epoch player moves a marker on the time
curves (redrawn with them) and animates alignment across depth.
"""

from __future__ import annotations

import holoviews as hv
import numpy as np
import panel as pn

from cortex_fa.viz import figures, gap, layout, style
from cortex_fa.viz.layout import info_html  # noqa: F401 - its old home; scripts import it from here
from cortex_fa.viz.synapse_tab import SynapseTab
from cortex_fa.viz.data import (LAYER_VARS, STEP_VARS, as_study, extra_dims, layer_view,
                                run_epoch, select, tidy)

ANGLES = ("delta_alignment", "weight_alignment", "update_alignment", "learned_alignment")
# Which widgets each view listens to ("time" is the epoch player).
DEPENDS = {
    "curves": ("metric", "rules", "depth", "layer", "seeds", "logx", "time", "extra"),
    "alignment": ("metric", "rules", "depth", "layer", "seeds", "logx", "time", "extra"),
    "profile": ("metric", "rules", "layer", "seeds", "time", "extra"),
    "heatmap": ("metric", "rules", "layer", "extra"),
    "error": ("rules", "extra"),
    "gap": ("rules", "extra"),
    "flow": ("rules", "depth", "seeds", "logx", "extra"),
}


_widget = layout.widget


class Dashboard(pn.viewable.Viewer):
    """Widgets and linked views for one results Dataset (see :func:`create_app`)."""

    def __init__(self, ds, label: str = "results", **params):
        super().__init__(**params)
        style.ensure_backends()
        self.label = label
        self.info = layout.info_html(ds, label)
        self._quiet = False  # True while widgets are re-optioned programmatically
        self._prepare(ds)
        metrics = [v for v in (*STEP_VARS, *LAYER_VARS) if v in self.ds]
        rules, depths = self._rules(), self.depths
        default = "test_accuracy" if "test_accuracy" in metrics else metrics[0]
        self.w = {
            "metric": _widget(pn.widgets.Select, "Metric", options=metrics, value=default, width=160),
            # Buttons, not MultiChoice: its Choices.js renders option labels as HTML.
            "rules": _widget(pn.widgets.CheckButtonGroup, "Rules", options=rules, value=rules),
            "depth": _widget(pn.widgets.Select, "Depth (hidden columns)", options=depths,
                             value=depths[-1], width=140),
            "layer": _widget(pn.widgets.Select, "Layer", options=self._layers(), value="last",
                             width=120),
            "seeds": _widget(pn.widgets.RadioButtonGroup, "Seeds", value="mean",
                             options={"mean ± 95% CI": "mean", "per seed": "each"}),
            "logx": _widget(pn.widgets.Checkbox, "log time (updates + 1)", value=True),
        }
        self.extra = {d: _widget(pn.widgets.Select, str(d), options=list(self.study[d].values),
                                 width=120)
                      for d in extra_dims(self.study)}
        buttons = {"visible_buttons": ["first", "previous", "pause", "play", "next", "last"]}
        self.player = _widget(pn.widgets.DiscretePlayer, "Epoch", options=[0], value=0,
                              interval=800, loop_policy="once", show_loop_controls=False,
                              width=225, **(buttons if "visible_buttons" in
                                            pn.widgets.DiscretePlayer.param else {}))
        self._sync_time(reset=True)
        self.synapses = SynapseTab(ds, self.player)  # reads the file as opened: snapshots included
        self.figures = {}  # view name -> the HoloViews object on show
        self.panes = {name: pn.pane.HoloViews(backend="bokeh", linked_axes=False)
                      for name in ("curves", "alignment", "profile", "error", "gap")}
        # Multi-panel figures are shown as one pane per panel: Bokeh GridPlots
        # nested in Panel rows lay out unreliably in the browser.
        self.panes["heatmap"] = pn.FlexBox()
        self.panes["flow"] = pn.FlexBox()
        self.header = layout.Header(ds, label)
        for key, widget in self.w.items():
            widget.param.watch(lambda e, key=key: self._quiet or self.refresh(key), "value")
        for widget in self.extra.values():
            widget.param.watch(lambda e: self._quiet or self.refresh("extra"), "value")
        self.player.param.watch(lambda e: self._quiet or self.refresh("time"), "value")
        self.refresh(None)

    def _prepare(self, ds, picks=None) -> None:
        # Keep only what the views draw: per-run strings (config, ...) slow every xarray op.
        keep = [v for v in (*STEP_VARS, *LAYER_VARS, "status", "epoch") if v in ds.data_vars]
        self.study = as_study(ds[keep])
        picks = {d: v for d, v in (picks or {}).items() if d in self.study.dims and v in self.study[d].values}
        self.ds = select(self.study, **picks)
        self.depths = [int(d) for d in self.ds["n_hidden"].values]

    def _rules(self) -> list[str]:
        return [str(r) for r in self.ds["rule"].values]

    def _layers(self) -> dict:
        layers = {"last hidden": "last", "mean over hidden": "mean"}
        layers.update({f"layer {int(v)}": int(v) for v in self.ds["layer"].values})
        return layers

    def update(self, ds, status: str | None = None) -> None:
        """Show new data (a live source grew) keeping the user's selections.

        Rules and depths that appear are added to the selectors (new rules
        switched on: the user cannot have switched them off); the selected
        metric, depth, layer, seeds, player step and extra dims stay as they
        are wherever the new data still has them.
        """
        old_rules = list(self.w["rules"].options)
        self._prepare(ds, {d: w.value for d, w in self.extra.items()})
        rules = self._rules()
        chosen = [r for r in self.w["rules"].value if r in rules] + [r for r in rules if r not in old_rules]
        metrics = [v for v in (*STEP_VARS, *LAYER_VARS) if v in self.ds]
        self._quiet = True
        try:
            self.w["rules"].param.update(options=rules, value=chosen)
            self.w["metric"].param.update(options=metrics, value=self.w["metric"].value
                                          if self.w["metric"].value in metrics else metrics[0])
            self.w["depth"].param.update(options=self.depths, value=self.w["depth"].value
                                         if self.w["depth"].value in self.depths else self.depths[-1])
            layers = self._layers()
            self.w["layer"].param.update(options=layers, value=self.w["layer"].value
                                         if self.w["layer"].value in layers.values() else "last")
            for d, w in self.extra.items():
                if d in self.study.dims:
                    w.options = list(self.study[d].values)
        finally:
            self._quiet = False
        self._sync_time()
        self.header.update(ds, status)
        self.synapses.update(ds)
        self.refresh(None)

    # -- state ------------------------------------------------------------
    def angle_var(self) -> str:
        """The alignment variable shown: the metric if it is an angle, else delta."""
        m = self.w["metric"].value
        return m if m in ANGLES else next((a for a in ANGLES if a in self.ds), "delta_alignment")

    def _sync_time(self, reset: bool = False) -> None:
        """Logged steps of the selected runs and their (mean) epochs -> player options.

        The player keeps its step if the new runs logged it (else, or with
        ``reset``, it goes to the last step).
        """
        ep = run_epoch(self.ds)
        ep = ep.mean([d for d in ep.dims if d != "step"], skipna=True)
        ok = np.isfinite(ep.values)
        self.steps = [int(s) for s in ep["step"].values[ok]]
        self.epoch_of = dict(zip(self.steps, ep.values[ok]))
        keep = self.steps[-1] if reset or self.player.value not in self.steps else self.player.value
        quiet, self._quiet = self._quiet, True
        try:
            self.player.param.update(options={f"{e:.3g}": s for s, e in self.epoch_of.items()},
                                     value=keep)
        finally:
            self._quiet = quiet

    def layer_text(self) -> str:
        """Label of the selected layer option (e.g. "last hidden")."""
        w = self.w["layer"]
        return next(k for k, v in w.options.items() if v == w.value)

    def x_of(self, step: int) -> float:
        """Position of ``step`` on the current time axis."""
        return step + 1.0 if self.w["logx"].value else float(self.epoch_of[step])

    def refresh(self, changed) -> None:
        """Rebuild the views depending on widget ``changed`` (all if None)."""
        if changed == "extra":
            self.ds = select(self.study, **{d: w.value for d, w in self.extra.items()})
            self._sync_time()
        for name, deps in DEPENDS.items():
            if changed is None or changed in deps:
                fig = self.figures[name] = getattr(self, f"_{name}")()
                pane = self.panes[name]
                if isinstance(pane, pn.pane.HoloViews):
                    pane.object = fig
                else:
                    pane.objects = [pn.pane.HoloViews(p, backend="bokeh", linked_axes=False)
                                    for p in (fig if isinstance(fig, hv.Layout) else [fig])]

    # -- views ------------------------------------------------------------
    def _marker(self, x):
        return hv.VLine(x).opts(color="#444", line_dash="dotted", line_width=1.5,
                                backend="bokeh")

    def _curves(self, metric=None, view="curves"):
        w = self.w
        metric = metric or w["metric"].value
        fig = figures.learning_curves(self.ds, metric, rules=w["rules"].value,
                                      depths=[w["depth"].value], seeds=w["seeds"].value,
                                      layer=w["layer"].value, logx=w["logx"].value, facet=False)
        if not fig:
            return hv.Curve([]).opts(title="no data for this selection", backend="bokeh")
        logx = w["logx"].value
        layer = f", {self.layer_text()}" if metric in LAYER_VARS else ""
        title = f"{metric} (depth {w['depth'].value}{layer})"
        # Overlaying the marker drops the overlay's options: set them again.
        xlabel = style.label("updates" if logx else "epoch")
        # A plain VLine redrawn with the view: a DynamicMap marker moved on the server only.
        marker = self._marker(self.x_of(self.player.value))
        return style.panel(fig.last * marker, title, xlabel, style.label(metric), logx=logx,
                           legend="outside", width=480, height=320)

    def _alignment(self):
        """The alignment angle of the chosen layer over training, one line per rule."""
        return self._curves(self.angle_var(), view="alignment")

    def _profile(self):
        """Alignment of the chosen layer across network depth at the player's epoch.

        The seed mean is taken over every step first (:func:`~cortex_fa.viz.data.tidy`),
        so a depth whose seeds have not all reached the player's step shows no mean
        there, as the curves do.
        """
        var, w = self.angle_var(), self.w
        step = self.player.value
        ds = self.ds.assign({var: layer_view(self.ds[var], w["layer"].value)})
        df = tidy(ds, var, w["seeds"].value)
        df = df[df["step"] == step]
        rules = figures.rules_in(self.ds, None)
        items = []
        for rule in figures.rules_in(self.ds, w["rules"].value):
            g = df[df["rule"] == rule]
            if g.empty:
                continue
            color = style.rule_color(rule, rules)
            items += figures.lines([(g, color, rule, False)], "n_hidden", var, w["seeds"].value)
            items.append(style.markers(hv.Scatter(g, "n_hidden", [var], label=rule), color, 6))
        title = (f"{var} across depth, {self.layer_text()}, "
                 f"epoch {self.epoch_of[step]:.3g} (step {step})")
        overlay = hv.Overlay(items) if items else hv.Overlay([hv.Curve([])])
        return style.panel(overlay, title, "depth (hidden columns)", style.label(var),
                           legend="outside", width=480, height=320).opts(
                               ylim=(0, 95), xticks=self.depths, backend="bokeh")

    def _heatmap(self):
        w = self.w
        return figures.alignment_heatmap(self.ds, self.angle_var(), w["layer"].value,
                                         rules=w["rules"].value, cols=3)

    def _error(self):
        if self.ds.sizes["n_hidden"] < 2:
            return hv.Div("<p><i>Test error vs depth needs a study with several depths.</i></p>"
                          ).opts(width=420, height=60)
        return figures.test_error_vs_depth(self.ds, rules=self.w["rules"].value).opts(
            width=580, height=320, backend="bokeh")

    def _gap(self):
        why = gap.cannot_draw(self.ds)
        if why is not None:
            return hv.Div(f"<p><i>The gap to the reference {why}.</i></p>").opts(width=420, height=60)
        return gap.gap_vs_depth(self.ds, rules=self.w["rules"].value).opts(width=640, height=340, backend="bokeh")

    def _flow(self):
        w = self.w
        fig = figures.gradient_flow(self.ds, depth=w["depth"].value, rules=w["rules"].value,
                                    logx=w["logx"].value, seeds=w["seeds"].value)
        # Small enough for three in a row and two rows on a laptop screen.
        return hv.Layout([p.opts(width=360, height=230, backend="bokeh") for p in fig])

    # -- layout -----------------------------------------------------------
    def __panel__(self):
        return layout.dashboard_layout(self)


def _labelled(datasets):
    """Normalise the factory input to a list of (label, Dataset)."""
    if hasattr(datasets, "data_vars"):
        return [(str(datasets.attrs.get("title", "results")), datasets)]
    if isinstance(datasets, dict):
        return [(str(k), v) for k, v in datasets.items()]
    out = []
    for i, item in enumerate(datasets):
        label, ds = item if isinstance(item, tuple) else (f"file {i + 1}", item)
        out.append((str(label), ds))
    return out


def create_app(datasets):
    """Build a fresh dashboard (call once per session).

    Parameters
    ----------
    datasets : xarray.Dataset, list or dict
        One Dataset, a list of Datasets or ``(label, Dataset)`` pairs, or a
        ``{label: Dataset}`` dict. Runs and studies both work.

    Returns
    -------
    panel.layout.Column or panel.layout.Tabs
        The dashboard, or one tab per file when there are several; its
        ``dashboards`` attribute lists the :class:`Dashboard` objects.
    """
    items = [(label, Dashboard(ds, label)) for label, ds in _labelled(datasets)]
    layout = pn.Column(items[0][1]) if len(items) == 1 else pn.Tabs(*items, dynamic=False)
    layout.dashboards = [dash for _, dash in items]  # handles for scripts and tests
    return layout
