"""The dashboard's page: a header, one row of controls, then one tab per question.

Sized for a laptop screen (1366 x 768): every tab's views sit side by side
under the header and controls, each with a short caption saying what it shows
and how to read it. Everything drawn from a file (names, attributes, labels)
is escaped here: a results file is untrusted text.
"""

from __future__ import annotations

import html

import numpy as np
import panel as pn

esc = lambda v: html.escape(str(v), quote=True)  # noqa: E731


def widget(cls, label: str, **params):
    """A widget titled ``label`` (Panel >= 1.5 calls it ``label``, older ones ``name``)."""
    key = "label" if "label" in cls.param else "name"
    return cls(**{key: label}, **params)

CAPTIONS = {
    "error": "Headline test error per rule against the number of hidden columns (band: 95 % "
             "interval over seeds; dots: single seeds). Each depth is compared with backprop in "
             "misclassified test images, seed by seed; hover a point for its verdict (keeps up, "
             "falls behind, ahead, undetermined). ×: breaking depth, the first depth that falls "
             "behind by more than the margin; ○: the breaking depth is undetermined, because this "
             "depth could not be decided. Lower is better.",
    "gap": "Each rule's gap to backprop in points of test error (misclassified test images / 100), "
           "seed by seed and then averaged, with its 95 % interval, against the number of hidden "
           "columns. The grey band is the margin: an interval inside it keeps up, one wholly above it "
           "falls behind, one wholly below it is ahead; an open marker is undetermined (the interval "
           "crosses an edge of the band). A protocol study's own margin and reference are used.",
    "curves": "The chosen metric over training for the chosen depth, one line per rule. Time is "
              "updates + 1 on a log axis, so step 0 and the first epoch are visible; hover for "
              "the epoch. Test metrics are logged at epoch ends only (markers). The mean and its "
              "band stop at the last step every seed reached (early stopping ends seeds at "
              "different epochs); 'per seed' shows each run to its end.",
    "alignment": "Alignment of the chosen layer with backprop over training, one line per rule: "
                 "0° means the rule's signal points where backprop's does, 90° means unrelated. "
                 "Feedback alignment shows up as a fall from ~90° early in the first epoch.",
    "profile": "The same angle across network depth at the epoch of the player (press play to "
               "animate): deeper networks that stay near 90° are where a rule breaks.",
    "heatmap": "Seed-mean alignment angle of the chosen layer for every depth (rows) and logged "
               "step (columns, log time: updates + 1), one panel per rule. Dark = aligned.",
    "flow": "Error-signal size (RMS of delta) per layer over training for the chosen depth, one "
            "panel per rule (title in the rule's colour), input side dark, readout dashed. Lines "
            "that fan out towards the input mean vanishing or exploding error signals.",
}


def caption(name: str, width: int = 560) -> pn.pane.Markdown:
    """The caption of view ``name`` (fixed text: no file content)."""
    return pn.pane.HTML(f"<p>{esc(CAPTIONS[name])}</p>", width=width,
                        styles={"font-size": "12px", "color": "#444", "margin-top": "0"})


def identity(ds, label: str) -> str:
    """One line saying what the file is: rules, depths, seeds, runs per status."""
    parts = []
    for dim, word, attr in (("rule", "rules", "rule"), ("n_hidden", "depths", "depth"), ("seed", "seeds", "seed")):
        if dim in ds.dims:
            values = [str(v) for v in ds[dim].values]
            parts.append(f"{word} {', '.join(values)}")
        elif ds.attrs.get(attr) is not None:  # a run: its attributes
            parts.append(f"{attr} {ds.attrs[attr]}")
    if "status" in ds.data_vars:
        values, counts = np.unique(ds["status"].values.astype(str), return_counts=True)
        parts.append("runs: " + ", ".join(f"{c} {v}" for v, c in zip(values, counts)))
    elif "status" in ds.attrs:
        parts.append(f"status {ds.attrs['status']}")
    if "step" in ds.dims and ds.sizes["step"]:
        epoch = ds["epoch"].values if "epoch" in ds.coords or "epoch" in ds else None
        last = np.nanmax(epoch) if epoch is not None and np.isfinite(epoch).any() else None
        parts.append(f"{ds.sizes['step']} logged steps" + (f", to epoch {last:.3g}" if last else ""))
    return " · ".join(parts)


class Header(pn.viewable.Viewer):
    """The study's name and identity, and (for live sources) its status line."""

    def __init__(self, ds, label: str, **params):
        super().__init__(**params)
        self.label = label
        self.pane = pn.pane.HTML(sizing_mode="stretch_width", margin=(0, 10))
        self.update(ds, None)

    def update(self, ds, status: str | None) -> None:
        """Show ``ds``'s identity and the ``status`` line (None: no status line)."""
        self.ds = ds
        line = (f'<div class="cfa-status" style="color:#0b5394">{esc(status)}</div>'
                if status else "")
        self.pane.object = (f'<div class="cfa-header"><b style="font-size:18px">{esc(self.label)}</b>'
                            f'&nbsp; <span style="color:#555">{esc(identity(ds, self.label))}</span>'
                            f"{line}</div>")

    def set_status(self, status: str | None) -> None:
        self.update(self.ds, status)

    def __panel__(self):
        return self.pane


def info_html(ds, label: str) -> str:
    """Escaped HTML summary of a results file (its attrs are untrusted text)."""
    keys = ("title", "rule", "seed", "status", "n_runs", "swept", "backend", "cortex_fa_version",
            "created", "data_sha256")
    rows = [(k, ds.attrs[k]) for k in keys if k in ds.attrs]
    if "status" in ds.data_vars:  # a study: count runs per status
        values, counts = np.unique(ds["status"].values.astype(str), return_counts=True)
        rows.append(("runs", ", ".join(f"{c} {v}" for v, c in zip(values, counts))))
    rows = "".join(f"<tr><th>{esc(k)}</th><td>{esc(v)}</td></tr>" for k, v in rows)
    dims = ", ".join(f"{esc(d)}={n}" for d, n in ds.sizes.items())
    details = "".join(f"<details><summary>{k}</summary><pre>{esc(ds.attrs[k])}</pre></details>"
                      for k in ("config", "sweep") if ds.attrs.get(k))
    return f"<h3>{esc(label)}</h3><table>{rows}</table><p>dims: {dims}</p>{details}"


def dashboard_layout(dash) -> pn.viewable.Viewable:
    """Header, controls and the tabs of one :class:`~cortex_fa.viz.app.Dashboard`."""
    p = dash.panes
    player = pn.Column("**Epoch** (player)", dash.player, width=240)
    controls = pn.FlexBox(*dash.w.values(), *dash.extra.values(), player)
    views = [
        ("Performance vs depth", pn.Row(pn.Column(p["error"], caption("error", 600)),
                                        pn.Column(p["curves"], caption("curves", 600)))),
        ("Gap to bp", pn.Row(pn.Column(p["gap"], caption("gap", 640)))),
        ("Alignment over training", pn.Row(pn.Column(p["alignment"], caption("alignment", 600)),
                                           pn.Column(p["profile"], caption("profile", 600)))),
        ("Alignment map", pn.Column(caption("heatmap", 1200), p["heatmap"])),
        ("Gradient flow", pn.Column(caption("flow", 1200), p["flow"])),
        ("Synapses", dash.synapses),
        ("File", pn.pane.HTML(dash.info, width=700, styles={"font-size": "12px"})),
    ]
    tabs = pn.Tabs(*views, dynamic=False)
    # Bokeh lays out the synapse panels squashed when they are built in a hidden tab: build
    # them again when the tab is opened.
    synapses_tab = [name for name, _ in views].index("Synapses")
    tabs.param.watch(lambda e: e.new == synapses_tab and dash.synapses.redraw(), "active")
    dash.tabs = tabs
    return pn.Column(dash.header, controls, tabs, sizing_mode="stretch_width")
