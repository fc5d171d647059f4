"""The app's "Synapses" tab: W against B and first-column receptive fields, per snapshot.

Drawn with :mod:`cortex_fa.viz.synapses` from the file as opened (the
dashboard's own copy keeps only the per-step and per-layer variables). A
run selector picks one run that has snapshots; the dashboard's epoch player
picks the time: the tab shows the last snapshot taken at or before the
player's step, so pressing play animates the clouds tilting onto the
diagonal. The receptive fields are of two runs side by side (the selected
one and bp or fa of the same depth and seed, when the file has it).

A live source calls :meth:`SynapseTab.update` with the grown file: new runs
join the selector and the selected run stays selected.
"""

from __future__ import annotations

import html

import panel as pn

from cortex_fa.errors import ResultsError
from cortex_fa.snapshots import KINDS, has_snapshots
from cortex_fa.viz import synapses
from cortex_fa.viz.layout import widget

CAPTION = ("Each dot is one sampled synapse pair of a column: its forward weight (x) against the feedback "
           "weight that carries the error back along the same path (y). Random feedback starts as a round "
           "cloud; as W aligns with B the cloud tilts onto the dashed diagonal (backprop lies on it). The "
           "title gives the logged weight-alignment angle and the angle of the sample (columns without "
           "feedback synapses are left out). The epoch player above picks the snapshot (the last one at or "
           "before its step). Then column 1's receptive fields (28 x 28 weight maps, red positive, blue "
           "negative) of this run and of bp or fa at the same depth and seed.")
SCATTER, FIELDS = (285, 310), (285, 310)  # pixels of one panel: all of depth 2 in 1366 x 768
EMPTY = ('<div class="cfa-synapses-empty"><p><b>Synapses</b>: this file holds no W/B snapshots (yet). '
         "Train with <code>--snapshots 2000</code> (run or sweep) to see feedforward against feedback "
         "weights and receptive fields here.</p></div>")


def runs_with_snapshots(ds) -> dict:
    """Label -> selection for every run of ``ds`` that has snapshots (bp and fa first)."""
    if not has_snapshots(ds):
        return {}
    study = synapses.as_study(ds)
    found = {}
    for rule in sorted(study["rule"].values, key=lambda r: (str(r) not in ("bp", "fa"), str(r))):
        for depth in study["n_hidden"].values:
            for seed in study["seed"].values:
                pick = {"rule": rule, "n_hidden": depth, "seed": seed}
                try:
                    synapses.run_view(study, pick)
                except ResultsError:
                    continue
                found[f"{synapses.text(rule)} · depth {int(depth)} · seed {int(seed)}"] = pick
    return found


def snapshot_at(steps: list[int], step) -> int:
    """The last of the (sorted) snapshot ``steps`` at or before ``step``; the first if none is."""
    earlier = [s for s in steps if step is not None and s <= step]
    return earlier[-1] if earlier else steps[0]


def panes(layout, width: int, height: int) -> list:
    """One HoloViews pane per panel of ``layout``, each ``width`` x ``height`` pixels."""
    return [pn.pane.HoloViews(p.opts(width=width, height=height, toolbar="above", backend="bokeh"),
                              backend="bokeh", linked_axes=False) for p in layout]


class SynapseTab(pn.viewable.Viewer):
    """Run selector, per-column scatters and receptive fields, following ``player``.

    Parameters
    ----------
    ds : xarray.Dataset
        A run or study as opened (with its snapshot variables).
    player : panel widget, optional
        The dashboard's epoch player (its value is a logged step). Without
        one the tab shows each run's last snapshot.
    """

    def __init__(self, ds, player=None, **params):
        super().__init__(**params)
        self.player = player
        self.run = widget(pn.widgets.Select, "Run (with snapshots)", options=[], width=280)
        self.when = pn.pane.HTML("", width=500)
        # One pane per panel in one flowing box (Bokeh GridPlots inside Panel layouts come out
        # squashed); at depth 2 scatters and fields share a row on a laptop screen.
        self.scatters, self.fields, self.box = [], [], pn.FlexBox()
        self.note = pn.pane.HTML("", width=700)
        self.views = pn.Column(pn.Row(self.run, self.when),
                               pn.pane.HTML(f"<p>{html.escape(CAPTION)}</p>", width=1300,
                                            styles={"font-size": "12px", "color": "#444"}),
                               self.box, self.note)
        self.body = pn.Column()
        self.shown = None  # (run label, snapshot step) on show
        self.run.param.watch(lambda e: self.draw(), "value")
        if player is not None:
            player.param.watch(lambda e: self.draw(), "value")
        self.update(ds)

    def update(self, ds) -> None:
        """Show ``ds`` (a grown live file): new runs join the selector, the selected one stays."""
        self.ds = ds
        self.runs = runs_with_snapshots(ds)
        if not self.runs:
            self.body.objects = [pn.pane.HTML(EMPTY, width=600)]
            return
        keep = self.run.value if self.run.value in self.runs else next(iter(self.runs))
        self.run.param.update(options=list(self.runs), value=keep)
        self.shown = None  # the file changed: redraw even at the same run and step
        self.draw()
        if self.body.objects != [self.views]:
            self.body.objects = [self.views]

    def redraw(self) -> None:
        """Build the panels again (the tab has just been opened)."""
        self.shown = None
        self.draw()

    def draw(self) -> None:
        """Redraw for the selected run at the snapshot the player points to (if that changed)."""
        if not self.runs or self.run.value not in self.runs:
            return
        pick = self.runs[self.run.value]
        steps = synapses.snapshot_steps(self.ds, pick)
        step = snapshot_at(steps, self.player.value if self.player is not None else steps[-1])
        if self.shown == (self.run.value, step):
            return  # the player moved between two snapshots
        self.shown = (self.run.value, step)
        self.when.object = (f"<p>snapshot at update step <b>{step}</b> "
                            f"({len(steps)} snapshots: steps {', '.join(map(str, steps))})</p>")
        run = synapses.run_view(self.ds, pick)
        # Columns without feedback synapses (column 1 of layer-wise rules) have no pairs to show.
        paired = [int(l) for l, k in zip(run["layer"].values, run["snapshot_kind"].values)
                  if k >= 0 and k != KINDS["forward_only"]]
        self.scatters = panes([synapses.synapse_scatter(run, l, step) for l in paired], *SCATTER)
        others = [p for p in synapses.default_pair(self.ds, depth=int(pick["n_hidden"]))
                  if p["rule"] != pick["rule"] and p["seed"] == pick["seed"]]
        try:
            other = others[0] if others else None
            self.fields = panes(synapses.receptive_fields(self.ds, self.ds if other else None, step,
                                                          sel_a=pick, sel_b=other), *FIELDS)
            self.note.object = ""
        except ResultsError as exc:  # the other run lacks this step: this run alone
            self.fields = panes(synapses.receptive_fields(self.ds, None, step, sel_a=pick), *FIELDS)
            self.note.object = f"<p>{html.escape(str(exc))}</p>"
        self.box.objects = self.scatters + self.fields

    def __panel__(self):
        return self.body
