"""The Panel app without a browser: build, react to widgets, escape file strings."""

from __future__ import annotations

import html
import json
from pathlib import Path

import numpy as np
import pytest

pn = pytest.importorskip("panel")

from bokeh.models import ColumnDataSource, Span, Title  # noqa: E402
from panel.models.markup import HTML as HTMLModel  # noqa: E402
from factories import make_run_dataset, make_study_dataset  # noqa: E402

from cortex_fa.errors import ConfigError, ResultsError  # noqa: E402
from cortex_fa.viz.app import Dashboard, create_app, info_html  # noqa: E402

SCRIPT = "<script>window.__cfa_xss = 'script'</script>"
IMG = "<img src=x onerror=\"window.__cfa_xss = 'img'; alert('xss')\">"


def payload_run():
    """A valid run file whose free-text attributes carry HTML payloads."""
    ds = make_run_dataset("fa", depth=2, epochs=2)
    config = json.loads(ds.attrs["config"])
    ds.attrs.update(rule=IMG, backend=SCRIPT, status=IMG, created=SCRIPT,
                    config=json.dumps({**config, "note": SCRIPT + IMG}))
    ds["test_accuracy"].attrs["long_name"] = SCRIPT
    return ds


@pytest.fixture(scope="module")
def study():
    return make_study_dataset(rules=("bp", "fa"), depths=(1, 2), seeds=(0, 1), epochs=2)


def sources(root):
    return list(root.select({"type": ColumnDataSource}))


def columns(root, name):
    """Every plotted array called ``name`` in the Bokeh document under ``root``."""
    return [np.asarray(s.data[name], dtype=float) for s in sources(root) if name in s.data]


def titles(root):
    return [t.text for t in root.select({"type": Title})]


def test_study_app_builds_with_every_view(study):
    app = create_app(study)
    root = app.get_root()
    (dash,) = app.dashboards
    assert set(dash.figures) == {"curves", "alignment", "profile", "heatmap", "error", "gap", "flow"}
    assert "test_accuracy (depth 2)" in titles(root)
    assert columns(root, "test_accuracy")


def test_metric_widget_changes_the_plotted_data(study):
    app = create_app(study)
    root = app.get_root()
    dash = app.dashboards[0]
    before = columns(root, "test_loss")
    dash.w["metric"].value = "test_loss"
    after = columns(root, "test_loss")
    assert not before and after
    assert "test_loss (depth 2)" in titles(root)
    want = study["test_loss"].sel(rule="fa", n_hidden=2).mean("seed").values
    want = want[np.isfinite(want)]
    assert any(a.shape == want.shape and np.allclose(a, want) for a in after)


def test_depth_rules_and_seed_widgets_update_the_views(study):
    app = create_app(study)
    root = app.get_root()
    dash = app.dashboards[0]
    dash.w["depth"].value = 1
    assert "test_accuracy (depth 1)" in titles(root)
    dash.w["rules"].value = ["fa"]
    curves = dash.figures["curves"]  # the overlay on show
    assert {el.label for el in curves if el.label} == {"fa"}
    dash.w["seeds"].value = "each"
    per_seed = [el for el in dash.figures["curves"] if type(el).__name__ == "Curve"]
    assert len(per_seed) == 2  # one line per seed, no band


def every_view(dash):
    """One Bokeh root holding all the dashboard's views (the page lays out only the open tab)."""
    import panel as pn

    return pn.Column(*dash.panes.values()).get_root()


def test_epoch_player_moves_the_marker_and_the_depth_profile(study):
    app = create_app(study)
    dash = app.dashboards[0]
    root = every_view(dash)
    first = dash.steps[0]
    dash.player.value = first
    # one marker on each time curve (metric, alignment); the gap view's zero line is a horizontal Span
    spans = [s for s in root.select({"type": Span}) if s.dimension == "height"]
    assert len(spans) == 2 and all(s.location == first + 1 for s in spans)  # log axis: updates + 1
    profile = columns(root, "delta_alignment")
    want = study["delta_alignment"].sel(step=first, rule="fa", layer=1, n_hidden=1).mean("seed")
    assert any(np.isclose(a[0], float(want)) for a in profile if a.size)
    assert any(f"step {first})" in t for t in titles(root))
    dash.w["logx"].value = False
    assert all(s.location == pytest.approx(dash.epoch_of[first]) for s in root.select({"type": Span}))


def test_layer_widget_picks_the_layer_of_the_alignment_views(study):
    dash = Dashboard(study)
    dash.w["metric"].value = "weight_alignment"
    dash.w["layer"].value = 2
    profile = dash.figures["profile"]
    fa = [el for el in profile if el.label == "fa" and type(el).__name__ == "Curve"][0]
    last = dash.steps[-1]
    want = study["weight_alignment"].sel(step=last, rule="fa", layer=2).mean("seed")
    # Layer 2 exists only in the depth-2 network (depth 1 has layers 1 and 2 = readout).
    np.testing.assert_allclose(fa.dimension_values("weight_alignment"), want.values)


def test_edge_selections_do_not_break_the_views(study):
    dash = Dashboard(study)
    dash.w["rules"].value = []  # nothing selected: empty views, no exception
    assert type(dash.figures["curves"]).__name__ == "Curve"  # the "no data" placeholder
    assert len(dash.figures["flow"]) == 0
    dash.w["rules"].value = ["bp", "fa"]
    dash.w["layer"].value = 3  # only the depth-2 network has a layer 3 (its readout)
    dash.w["depth"].value = 1
    for metric in ("weight_alignment", "grad_norm", "wall_time"):
        dash.w["metric"].value = metric
    dash.w["layer"].value = "mean"
    dash.w["seeds"].value = "each"
    dash.player.value = dash.steps[0]
    pn.Column(dash).get_root()


def test_run_file_app_builds_without_errors():
    app = create_app(make_run_dataset("fa", depth=2, epochs=2))
    root = app.get_root()
    dash = app.dashboards[0]
    assert "test_accuracy (depth 2)" in titles(root)
    dash.w["metric"].value = "delta_alignment"
    dash.player.value = dash.steps[1]
    dash.w["seeds"].value = "each"


def test_several_files_become_tabs(study):
    app = create_app([("study.nc", study), ("run.nc", make_run_dataset())])
    assert isinstance(app, pn.Tabs) and len(app.dashboards) == 2
    assert [label for label in app._names] == ["study.nc", "run.nc"]
    app.get_root()


def test_sessions_do_not_share_widgets(study):
    a, b = create_app(study), create_app(study)
    a.dashboards[0].w["metric"].value = "test_loss"
    assert b.dashboards[0].w["metric"].value == "test_accuracy"


def test_file_strings_are_escaped_in_html():
    ds = payload_run()
    text = info_html(ds, "payload.nc")
    assert "<script" not in text and "<img" not in text and "onerror=\"" not in text
    assert html.escape(SCRIPT) in text
    root = create_app([("<b>file</b>", ds)]).get_root()
    # Every HTML model: after Panel's own transport escaping is undone, no payload
    # may remain as live markup (the browser test checks the rendered page).
    markup = list(root.select({"type": HTMLModel}))
    assert any("window.__cfa_xss" in html.unescape(m.text) for m in markup)
    for model in markup:
        shown = html.unescape(model.text)
        assert "<script>window" not in shown and "<img src=x" not in shown


def test_payload_rule_names_only_reach_text_widgets():
    dash = Dashboard(payload_run())
    rules = dash.w["rules"]
    assert rules.options == [IMG] and type(rules).__name__ == "CheckButtonGroup"


def test_serve_refuses_bad_files_and_exposed_addresses_before_serving(tmp_path, capsys):
    from cortex_fa.cli import main
    from cortex_fa.cli.serve import websocket_origins

    assert main(["serve", str(tmp_path / "missing.nc")]) == 2
    (tmp_path / "junk.nc").write_bytes(b"\x89HDF junk")
    assert main(["serve", str(tmp_path / "junk.nc")]) == 2
    assert main(["serve", str(tmp_path / "junk.nc"), "--address", "0.0.0.0"]) == 2
    err = capsys.readouterr().err.strip().splitlines()
    assert len(err) == 3 and all(e.startswith("cortex-fa: error:") for e in err)
    assert "--allow-websocket-origin" in err[2]
    with pytest.raises(ConfigError):
        websocket_origins("192.168.1.5", 5006, [])
    assert websocket_origins("192.168.1.5", 5006, ["lab:5006"])[-1] == "lab:5006"
    assert "warning" in capsys.readouterr().err
    assert websocket_origins("127.0.0.1", 5006, []) == ["127.0.0.1:5006", "localhost:5006"]


def test_serve_app_script_reads_paths_from_args_or_env(tmp_path, monkeypatch):
    from cortex_fa.results import save_results
    from cortex_fa.viz.serve_app import ENV_VAR, build, result_paths

    save_results(make_run_dataset(epochs=1), tmp_path / "run.nc")
    monkeypatch.setattr("sys.argv", ["serve_app.py", str(tmp_path / "run.nc")])
    assert len(build().dashboards) == 1  # what `panel serve serve_app.py --args run.nc` shows

    assert result_paths(["x", "a.nc", "b.nc"], {}) == ["a.nc", "b.nc"]
    assert result_paths(["x"], {ENV_VAR: f"a.nc{__import__('os').pathsep}b.nc"}) == ["a.nc", "b.nc"]
    with pytest.raises(ResultsError):
        result_paths(["x"], {})


def test_the_headline_of_a_study_with_validation_is_the_selected_error():
    """The app's error-vs-depth panel uses the best-validation epoch, as the report does."""
    from cortex_fa.results import open_results
    from cortex_fa.viz.data import final_test_error

    ds = open_results(Path(__file__).resolve().parents[1] / "docs" / "data" / "depth_study_converged.nc")
    dash = create_app(ds).dashboards[0]
    title = dash.figures["error"].opts.get(backend="bokeh").kwargs["title"]
    assert title.startswith("Selected test error vs depth")
    err = final_test_error(ds)
    assert err.attrs["kind"] == "selected"
    drawn = columns(dash.panes["error"].get_root(), "test_error")
    want = err.mean("seed").sel(rule="bp").values
    assert any(a.shape == want.shape and np.allclose(a, want) for a in drawn)


def test_the_error_view_marks_the_verdicts_breaking_depth_and_the_undetermined_one():
    import holoviews as hv

    from cortex_fa.viz.layout import CAPTIONS

    study = make_study_dataset(rules=("bp", "fa", "dfa"), depths=(1, 2, 3), seeds=(0, 1, 2), epochs=2)
    acc = study["test_accuracy"].copy()
    bp = 1.0 - np.array([200, 210, 190]) / 10_000
    end = dict(step=acc.step[-1])
    acc.loc[dict(rule="bp", **end)] = bp
    acc.loc[dict(rule="fa", **end)] = np.stack([bp - 0.001, bp - 0.002, bp - 0.02])  # +10, +20, +200 images
    acc.loc[dict(rule="dfa", **end)] = bp - 0.005  # exactly the margin in every seed: undetermined
    dash = create_app(study.assign(test_accuracy=acc)).dashboards[0]
    fig = dash.figures["error"]
    marks = {s.label: s for s in fig.traverse(lambda x: x, [hv.Scatter])
             if "breaking_depth" in [d.name for d in s.vdims] or s.label == "breaking depth undetermined"}
    assert list(marks["fa"].dimension_values("n_hidden")) == [3]
    assert list(marks["breaking depth undetermined"].dimension_values("n_hidden")) == [1]  # dfa: a ring, no cross
    drawn = columns(dash.panes["error"].get_root(), "n_hidden")
    assert any(list(a) == [3] for a in drawn) and any(list(a) == [1] for a in drawn)
    assert "undetermined" in CAPTIONS["error"] and "falls behind" in CAPTIONS["error"]
    # the gap view: fa's whiskers at its three depths, dfa's open markers; without bp it says why
    gap_fig = dash.figures["gap"]
    assert len(gap_fig.traverse(lambda x: x, [hv.ErrorBars])) == 2
    hollow = {s.label for s in gap_fig.traverse(lambda x: x, [hv.Scatter])
              if s.opts.get("style", backend="bokeh").kwargs.get("fill_alpha") == 0}
    assert hollow == {"dfa"}
    drawn = columns(dash.panes["gap"].get_root(), "n_hidden")  # the hover's depth of every marker
    assert any(sorted(a) == [1, 2, 3] for a in drawn)
    no_bp = create_app(study.assign(test_accuracy=acc).sel(rule=["fa", "dfa"])).dashboards[0]
    assert "reference rule bp" in no_bp.figures["gap"].data


def stopped_early(study, last):
    """``study`` with each seed's step metrics NaN after step ``last[seed]`` (early stopping)."""
    steps = study["step"].values
    out = study.copy()
    for var in ("test_accuracy", "test_loss", "train_accuracy", "train_loss", "delta_alignment", "weight_alignment"):
        da = out[var].copy()
        for seed, stop in last.items():
            da.loc[dict(seed=seed, step=steps[steps > stop])] = np.nan
        out[var] = da
    return out


def test_the_app_draws_no_seed_band_or_mean_where_a_seed_has_stopped():
    import holoviews as hv

    study = stopped_early(make_study_dataset(rules=("bp", "fa"), depths=(1, 2), seeds=(0, 1, 2), epochs=4),
                          {0: 200, 1: 300, 2: 400})
    dash = create_app(study).dashboards[0]
    dash.w["logx"].value = False
    for view in ("curves", "alignment"):
        bands = [part for poly in dash.figures[view].traverse(lambda x: x, [hv.Polygons]) for part in poly.split()]
        assert bands
        for part in bands:
            assert part.dimension_values("epoch").max() <= 2.0
            lo, hi = (0, 180) if view == "alignment" else (0, 1)
            assert lo <= part.dimension_values(1).min() and part.dimension_values(1).max() <= hi
        curves = dash.figures[view].traverse(lambda x: x, [hv.Curve])
        assert max(c.dimension_values("epoch").max() for c in curves if len(c)) == pytest.approx(2.0)
    # The depth profile at the player's step: the seed mean only where every seed reached that step.
    dash.player.value = 400
    assert not any(len(el) for el in dash.figures["profile"].traverse(lambda x: x, [hv.Scatter]))
    dash.player.value = 200
    assert any(len(el) for el in dash.figures["profile"].traverse(lambda x: x, [hv.Scatter]))
    dash.w["seeds"].value = "each"  # per seed: every run to its end
    dash.player.value = 400
    assert any(len(el) for el in dash.figures["profile"].traverse(lambda x: x, [hv.Scatter]))
