"""The app's "Synapses" tab: W against B and first-column receptive fields, per snapshot.

Built from :mod:`cortex_fa.viz.synapses` over the file as opened (the
dashboard's own copy keeps only the per-step and per-layer variables). A
run selector picks one run that has snapshots and a step selector one of
its snapshot steps; the scatters of every column and the receptive fields
of two runs (bp and fa when the file has both, at the same depth and seed)
are redrawn in place.
"""

from __future__ import annotations

import html

import panel as pn

from cortex_fa.errors import ResultsError
from cortex_fa.snapshots import has_snapshots
from cortex_fa.viz import synapses

CAPTION = ("Each dot is one sampled synapse pair of a column: its forward weight (x) against the feedback "
           "weight that carries the error back along the same path (y). Random feedback starts as a round "
           "cloud; as W aligns with B the cloud tilts onto the dashed diagonal (backprop lies on it). The "
           "title gives the logged weight-alignment angle. Below: column 1's receptive fields (28 x 28 "
           "weight maps, red positive, blue negative) of two runs side by side.")


def _runs(ds) -> dict:
    """Label -> selection for every run of ``ds`` that has snapshots (bp and fa first)."""
    study = synapses.as_study(ds)
    found = {}
    for rule in sorted(study["rule"].values, key=lambda r: (str(r) not in ("bp", "fa"), str(r))):
        for depth in study["depth"].values:
            for seed in study["seed"].values:
                pick = {"rule": rule, "depth": depth, "seed": seed}
                try:
                    synapses.run_view(study, pick)
                except ResultsError:
                    continue
                found[f"{synapses.text(rule)} · depth {int(depth)} · seed {int(seed)}"] = pick
    return found


class SynapseTab:
    """Widgets and the two views of the tab; :attr:`panel` is what the layout shows."""

    def __init__(self, ds):
        self.ds = ds
        self.runs = _runs(ds)
        first = next(iter(self.runs))
        self.run = pn.widgets.Select(name="Run", options=list(self.runs), value=first, width=260)
        self.step = pn.widgets.Select(name="Snapshot (update step)", width=200)
        self.scatters = pn.pane.HoloViews(backend="bokeh", linked_axes=False)
        self.fields = pn.pane.HoloViews(backend="bokeh", linked_axes=False)
        self.note = pn.pane.HTML("", width=600)
        self._steps()
        self.run.param.watch(lambda e: (self._steps(), self.draw()), "value")
        self.step.param.watch(lambda e: self.draw(), "value")
        self.draw()
        self.panel = pn.Column(pn.Row(self.run, self.step), pn.pane.HTML(f"<p>{CAPTION}</p>", width=1100),
                               self.scatters, self.note, self.fields)

    def _steps(self):
        steps = synapses.snapshot_steps(self.ds, self.runs[self.run.value])
        self.step.options = steps
        self.step.value = steps[-1]

    def draw(self):
        pick = self.runs[self.run.value]
        self.scatters.object = synapses.synapse_scatters(self.ds, self.step.value, sel=pick)
        # the other run of the default comparison at the same depth and seed, if it has this step
        others = [p for p in synapses.default_pair(self.ds, depth=int(pick["depth"]))
                  if p["rule"] != pick["rule"] and p["seed"] == pick["seed"]]
        try:
            other = others[0] if others else None
            self.fields.object = synapses.receptive_fields(self.ds, self.ds if other else None, self.step.value,
                                                           sel_a=pick, sel_b=other)
            self.note.object = ""
        except ResultsError as exc:  # the other run lacks this step: show this run alone
            self.fields.object = synapses.receptive_fields(self.ds, None, self.step.value, sel_a=pick)
            self.note.object = f"<p>{html.escape(str(exc))}</p>"


def synapse_tab(ds) -> pn.viewable.Viewable:
    """The tab for ``ds``; a one-paragraph explanation when the file holds no snapshots."""
    if not has_snapshots(ds) or not _runs(ds):
        return pn.pane.HTML(
            '<div class="cfa-synapses-empty"><p><b>Synapses</b>: this file holds no W/B snapshots. '
            "Train with <code>--snapshots 2000</code> (run or sweep) to see feedforward against feedback "
            "weights and receptive fields here.</p></div>", width=600)
    return SynapseTab(ds).panel
