"""The app's Synapses tab without a browser: runs offered, the epoch player picks the snapshot, live growth."""

from __future__ import annotations

import numpy as np
import pytest

pytest.importorskip("panel")

from cortex_fa.combine import combine_runs  # noqa: E402
from cortex_fa.config import RunConfig  # noqa: E402
from cortex_fa.training import train  # noqa: E402
from cortex_fa.viz.app import create_app  # noqa: E402
from cortex_fa.viz.synapse_tab import EMPTY, SynapseTab, snapshot_at  # noqa: E402


@pytest.fixture(scope="module")
def runs(tiny_data):
    """bp and fa (depth 2) with snapshots, and a dfa run without."""
    base = RunConfig(hidden=(12, 8), epochs=2, batch_size=50, probe_size=50, snapshots=60)
    with_snaps = [train(base.replace(rule=r), tiny_data, progress=False) for r in ("bp", "fa")]
    without = train(base.replace(rule="dfa", snapshots=0), tiny_data, progress=False)
    return with_snaps, without


def scatter_points(tab, layer):
    """The (forward, feedback) values the tab's scatter of ``layer`` shows."""
    import holoviews as hv

    sub = str(layer).translate(str.maketrans("0123456789", "₀₁₂₃₄₅₆₇₈₉"))
    [scatter] = [el for pane in tab.scatters for el in pane.object.traverse(lambda el: el, [hv.Scatter])
                 if el.kdims[0].label.startswith(f"forward Wᵀ{sub}[")]
    return scatter.data


def test_snapshot_at_picks_the_last_one_at_or_before_the_step():
    steps = [0, 1, 8, 12, 24]
    assert [snapshot_at(steps, s) for s in (0, 5, 8, 11, 12, 100, None)] == [0, 1, 8, 8, 12, 24, 0]


def test_the_tab_follows_the_epoch_player(runs):
    (bp, fa), dfa = runs
    dash = create_app(combine_runs([bp, fa, dfa])).dashboards[0]
    tab = dash.synapses
    assert isinstance(tab, SynapseTab)
    assert list(tab.runs) == ["bp · depth 2 · seed 0", "fa · depth 2 · seed 0"]  # dfa has none
    snaps = [int(s) for s in fa.snapshot_step.values]
    assert tab.shown[1] == snaps[-1]  # the player starts at the last logged step
    tab.run.value = "fa · depth 2 · seed 0"
    late = scatter_points(tab, 2).copy()
    dash.player.value = 0
    assert tab.shown == ("fa · depth 2 · seed 0", 0)
    early = scatter_points(tab, 2)
    # column 2's points are its stored sample at that step (column 1 has no feedback synapses)
    want = fa.snapshot_forward.sel(snapshot_step=0, layer=2).values
    want = want[np.isfinite(want)]
    assert np.allclose(np.sort(early.iloc[:, 0].values), np.sort(want))
    assert not np.allclose(early.iloc[:, 0].values, late.iloc[:, 0].values)  # W moved in training
    between = next(s for s in dash.steps if snaps[2] < s < snaps[3]) if any(
        snaps[2] < s < snaps[3] for s in dash.steps) else snaps[2]
    dash.player.value = between
    assert tab.shown[1] == snaps[2]
    assert len(tab.fields) == 2  # fa's receptive fields beside bp's at the same step


def test_a_file_without_snapshots_says_how_to_record_them(runs):
    _, dfa = runs
    dash = create_app(dfa).dashboards[0]
    [pane] = dash.synapses.body.objects
    assert pane.object == EMPTY and "--snapshots" in EMPTY


def test_a_growing_live_file_adds_runs_and_keeps_the_selection(runs):
    (bp, fa), dfa = runs
    dash = create_app(combine_runs([fa, dfa])).dashboards[0]
    tab = dash.synapses
    assert list(tab.runs) == ["fa · depth 2 · seed 0"]
    dash.update(combine_runs([bp, fa, dfa]), "runs done 3")
    assert list(tab.runs) == ["bp · depth 2 · seed 0", "fa · depth 2 · seed 0"]
    assert tab.run.value == "fa · depth 2 · seed 0"  # kept, though bp now sorts first
    first = create_app(dfa).dashboards[0]
    first.update(combine_runs([fa, dfa]), "runs done 2")  # snapshots appear in a live file
    assert first.synapses.body.objects == [first.synapses.views]
    assert len(first.synapses.scatters) == 2  # columns 2 and 3 (column 1 has no feedback synapses)
