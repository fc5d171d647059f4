"""Synapse snapshots (``--snapshots``) and the synapse view.

* The stored pairs are the live matrices at the snapshot steps (captured from
  the same run), for layer-wise, direct and indirect rules and for backprop.
* The angle recomputed from the full matrices at a snapshot step is the logged
  ``weight_alignment`` at that step.
* A run with snapshots trains exactly like one without (the sample has a
  random stream of its own), and the option leaves the config hash alone at 0.
* Files: NetCDF round trip, CF form, size limits, studies of different depths.
* The view: scatters and receptive-field grids render (real MNIST), file
  strings stay text, bad input gives one-line errors.
"""

from __future__ import annotations

import numpy as np
import pytest
import xarray as xr

import cortex_fa as cfa
from cortex_fa import metrics, snapshots
from cortex_fa.combine import combine_runs
from cortex_fa.config import RunConfig
from cortex_fa.errors import ConfigError, ResultsError
from cortex_fa.training import logging_steps

BASE = dict(hidden=(24, 16), epochs=2, batch_size=50, probe_size=100, seed=3, snapshots=150)


def capture(monkeypatch):
    """Record full copies of W and of every feedback matrix whenever a snapshot is taken."""
    seen = {}
    original = snapshots.SnapshotRecorder.take

    def take(self, step, rule, weights, state):
        kinds = self.kinds
        fb = {}
        for l, kind in enumerate(kinds, start=1):
            if kind != snapshots.KINDS["forward_only"]:
                fb[l] = np.array(rule.feedback(weights, state, l))
        seen[step] = ([np.array(W) for W in weights], fb)
        return original(self, step, rule, weights, state)

    monkeypatch.setattr(snapshots.SnapshotRecorder, "take", take)
    return seen


def test_schedule_is_sparse_and_a_subset_of_the_logged_steps():
    logged = logging_steps(100, 3)
    assert snapshots.snapshot_steps(100, 3, logged) == [0, 1, 8, 64, 100, 200, 300]
    assert snapshots.snapshot_steps(100, 3, logging_steps(100, 3, log_early=False)) == [0, 100, 200, 300]
    assert snapshots.snapshot_steps(10, 6, logging_steps(10, 6, log_every=3)) == [0, 1, 8, 30, 60]


@pytest.mark.parametrize("rule", ["fa", "bp", "dfa", "ifa", "kp", "brsf"])
def test_stored_pairs_are_the_live_matrices(rule, tiny_data, monkeypatch):
    seen = capture(monkeypatch)
    ds = cfa.train(rule=rule, data=tiny_data, progress=False, **BASE)
    assert sorted(seen) == ds.snapshot_step.values.tolist() == [0, 1, 8, 12, 24]
    L = ds.sizes["layer"]
    for s, (weights, feedback) in seen.items():
        snap = ds.sel(snapshot_step=s)
        for l in range(1, L + 1):
            kind = int(ds.snapshot_kind.sel(layer=l))
            pre = ds.snapshot_pre.sel(layer=l).values
            post = ds.snapshot_post.sel(layer=l).values
            keep = pre >= 0
            i, j = pre[keep], post[keep]
            fwd = snap.snapshot_forward.sel(layer=l).values[keep]
            fb = snap.snapshot_feedback.sel(layer=l).values[keep]
            if kind == snapshots.KINDS["direct"]:
                path = weights[l]
                for W in weights[l + 1:]:
                    path = path @ W
                np.testing.assert_allclose(fwd, path[i, j], rtol=1e-5, atol=1e-7)
                np.testing.assert_array_equal(fb, feedback[l][j, i])
            else:
                np.testing.assert_array_equal(fwd, weights[l - 1][i, j])
                if kind == snapshots.KINDS["layerwise"]:
                    np.testing.assert_array_equal(fb, feedback[l][j, i])
                else:
                    assert np.isnan(fb).all()
            if rule == "bp" and l > 1:
                np.testing.assert_array_equal(fb, fwd)  # B = W^T: every pair sits on the diagonal
        rf = snap.receptive_field.values  # (unit, row, col): column u of W_1 as an image
        np.testing.assert_array_equal(rf, weights[0][:, : rf.shape[0]].T.reshape(rf.shape))
    expected = {"fa": [0, 1, 1], "bp": [0, 1, 1], "kp": [0, 1, 1], "brsf": [0, 1, 1],
                "dfa": [2, 2, 0], "ifa": [2, 0, 0]}[rule]
    assert ds.snapshot_kind.values.tolist() == expected


@pytest.mark.parametrize("rule", ["fa", "dfa", "usf"])
def test_angle_from_the_full_matrices_is_the_logged_weight_alignment(rule, tiny_data, monkeypatch):
    seen = capture(monkeypatch)
    ds = cfa.train(rule=rule, data=tiny_data, progress=False, **BASE)
    kinds = ds.snapshot_kind.values
    checked = 0
    for s, (weights, feedback) in seen.items():
        for l, G in feedback.items():
            F = weights[l - 1] if kinds[l - 1] == snapshots.KINDS["layerwise"] else metrics.linear_path(weights, l)
            logged = float(ds.weight_alignment.sel(step=s, layer=l))
            assert metrics.angle(G, F.T) == pytest.approx(logged, abs=1e-4)
            checked += 1
    assert checked >= 10
    # the sample's angle estimates the full one (150 pairs: within a few degrees)
    from cortex_fa.viz.synapses import pair_angle

    last = ds.isel(snapshot_step=-1)
    for l in range(2, 4) if rule != "dfa" else range(1, 3):
        sample = pair_angle(last.snapshot_forward.sel(layer=l).values, last.snapshot_feedback.sel(layer=l).values)
        logged = float(ds.weight_alignment.sel(step=int(last.snapshot_step), layer=l))
        assert abs(sample - logged) < 12


@pytest.mark.parametrize("rule", ["fa", "brsf"])  # brsf draws from the run's generator after every batch
def test_a_run_with_snapshots_trains_exactly_like_one_without(rule, tiny_data, monkeypatch):
    finals = []
    import cortex_fa.backends.numpy_backend as nb

    original = nb.compile

    def compile_(network, rule_, config, rng):
        model = original(network, rule_, config, rng)
        finals.append(model)
        return model

    monkeypatch.setattr(nb, "compile", compile_)
    with_ = cfa.train(rule=rule, data=tiny_data, progress=False, **BASE)
    without = cfa.train(rule=rule, data=tiny_data, progress=False, **{**BASE, "snapshots": 0})
    assert "snapshot_forward" not in without and set(without.dims) == {"step", "layer"}
    plain = with_.drop_vars([v for v in with_.variables if v not in without.variables])
    xr.testing.assert_equal(plain.drop_vars("wall_time"), without.drop_vars("wall_time"))
    for a, b in zip(finals[0].weights, finals[1].weights):
        np.testing.assert_array_equal(a, b)
    assert finals[0].streams.state() == finals[1].streams.state()


def test_hash_is_unchanged_at_the_default_and_the_sample_is_seeded():
    assert RunConfig().hash() == RunConfig(snapshots=0).hash()
    assert RunConfig(snapshots=2000).hash() != RunConfig().hash()
    shapes = [(784, 300), (300, 10)]
    a = snapshots.sample_pairs(shapes, 2000, snapshots.sample_generator(1))
    b = snapshots.sample_pairs(shapes, 2000, snapshots.sample_generator(1))
    c = snapshots.sample_pairs(shapes, 2000, snapshots.sample_generator(2))
    assert all(np.array_equal(x[0], y[0]) and np.array_equal(x[1], y[1]) for x, y in zip(a, b))
    assert not np.array_equal(a[0][0], c[0][0])
    # the cap applies to a big column, a small one is stored whole, pairs are distinct
    assert len(a[0][0]) == 2000 and len(a[1][0]) == 3000 - 1000
    assert len({(int(i), int(j)) for i, j in zip(*a[0])}) == 2000
    assert a[0][0].max() < 784 and a[0][1].max() < 300


def test_bad_values_are_refused_in_one_line():
    for value, words in ((-1, ">= 0"), (10**6, "100,000"), (2.5, "integer"), (True, "integer")):
        with pytest.raises(ConfigError, match="snapshots") as info:
            RunConfig(snapshots=value)
        assert words in str(info.value) and "\n" not in str(info.value)


def test_cli_refuses_a_negative_cap_with_exit_2(capsys):
    from cortex_fa.cli import main

    assert main(["run", "--snapshots", "-3", "--out", "x.nc"]) == 2
    err = capsys.readouterr().err.strip().splitlines()
    assert len(err) == 1 and err[0].startswith("cortex-fa: error:") and "snapshots" in err[0]


@pytest.fixture(scope="module")
def files(tmp_path_factory, tiny_data):
    d = tmp_path_factory.mktemp("snap")
    runs = {}
    for rule, hidden, snaps in (("bp", (24,), 150), ("fa", (24,), 150), ("fa", (24, 16), 150),
                                ("dfa", (24, 16), 0)):
        ds = cfa.train(rule=rule, hidden=hidden, epochs=1, batch_size=50, probe_size=100, snapshots=snaps,
                       data=tiny_data, progress=False)
        runs[(rule, len(hidden))] = ds
        cfa.save_results(ds, d / f"{rule}{len(hidden)}.nc")
    return d, runs


def test_netcdf_round_trip(files):
    d, runs = files
    ds = runs[("fa", 2)]
    back = cfa.open_results(d / "fa2.nc")
    back.attrs.pop("history")
    exact = ds.drop_vars("receptive_field")
    xr.testing.assert_identical(exact, back.drop_vars("receptive_field"))
    # receptive fields are packed into 16-bit integers: rounding at most max|W_1| / 65532
    peak = float(np.abs(ds.receptive_field).max())
    assert float(np.abs(back.receptive_field - ds.receptive_field).max()) <= peak / 65532 * 1.01
    import netCDF4

    with netCDF4.Dataset(d / "fa2.nc") as nc:
        assert nc["receptive_field"].dtype == np.int16 and "scale_factor" in nc["receptive_field"].ncattrs()
        assert nc["snapshot_kind"].flag_meanings == "forward_only layerwise direct"


def test_study_keeps_snapshots_padded_and_runs_without_them(files):
    d, runs = files
    study = cfa.open_results(d)  # a directory of run files, combined
    assert {"snapshot_step", "pair", "unit", "pixel_row", "pixel_col"} <= set(study.dims)
    assert study.sizes["rule"] == 3 and study.sizes["layer"] == 3
    assert "snapshot_step" not in study.attrs.get("swept", "")
    one = study.sel(rule="fa", n_hidden=1, seed=0)
    assert (one.snapshot_pre.sel(layer=3) == snapshots.FILL_INDEX).all()  # depth 1 has no layer 3
    assert np.isnan(one.snapshot_forward.sel(layer=3)).all()
    np.testing.assert_array_equal(one.snapshot_forward.sel(layer=2).values,
                                  runs[("fa", 1)].snapshot_forward.sel(layer=2).values)
    assert np.isnan(study.sel(rule="dfa", n_hidden=2, seed=0).snapshot_forward).all()  # trained without
    cfa.save_results(study, d.parent / "study.nc")
    back = cfa.open_results(d.parent / "study.nc")
    np.testing.assert_array_equal(back.snapshot_feedback.values, study.snapshot_feedback.values)


def test_size_limits_count_runs_not_pairs(files):
    d, _ = files
    cfa.open_results(d / "fa2.nc", limits={"runs": 1})  # pair x unit x pixels are inside one run
    with pytest.raises(ResultsError, match="decompressed bytes"):
        cfa.open_results(d / "fa2.nc", limits={"bytes": 100_000})


def test_run_and_study_files_with_snapshots_pass_the_cf_checker(files):
    from test_cf import assert_cf_clean

    d, _ = files
    assert_cf_clean(d / "fa2.nc")
    cfa.save_results(cfa.open_results(d), d.parent / "study_cf.nc")
    assert_cf_clean(d.parent / "study_cf.nc")


# -- the view ------------------------------------------------------------------------------

def test_view_refuses_bad_input_with_a_message(files):
    from cortex_fa.viz import synapses

    d, runs = files
    with pytest.raises(ResultsError, match="--snapshots"):
        synapses.synapse_scatter(runs[("dfa", 2)], 1)
    with pytest.raises(ResultsError, match="columns 1 to 3"):
        synapses.synapse_scatter(runs[("fa", 2)], 4)
    with pytest.raises(ResultsError, match="steps 0, 1, 8, 12"):
        synapses.synapse_scatter(runs[("fa", 2)], 2, snapshot=5)
    study = cfa.open_results(d)
    with pytest.raises(ResultsError, match="rule kp is not in the file"):
        synapses.receptive_fields(study, sel_a={"rule": "kp"})
    with pytest.raises(ValueError, match="n must be"):
        synapses.receptive_fields(runs[("fa", 1)], n=0)


def test_file_strings_stay_text(files):
    from cortex_fa.viz import synapses

    run = runs_with_rule(files[1][("fa", 1)], "<img src=x onerror=alert(1)>$$x$$")
    fig = synapses.synapse_scatter(run, 2)
    title = fig.opts.get(backend="bokeh").kwargs["title"]
    assert "<" not in title and "$" not in title and "img src" in title
    cap = synapses.caption(run, 2)
    assert "&lt;img src=x onerror=alert(1)&gt;" in cap and "<img" not in cap


def runs_with_rule(ds, rule):
    out = ds.copy()
    out.attrs["rule"] = rule
    return out


@pytest.fixture(scope="module")
def mnist_pair(mnist):
    """bp and fa, depth 2, seed 0, on 2,000 real MNIST images, with snapshots."""
    base = RunConfig(hidden=(64, 64), train_subset=2000, epochs=2, batch_size=50, lr=0.1, probe_size=200,
                     snapshots=1000)
    return [cfa.train(base.replace(rule=rule), mnist, progress=False) for rule in ("bp", "fa")]


@pytest.mark.mnist
def test_scatter_and_receptive_fields_render_on_real_mnist(mnist_pair, tmp_path):
    import holoviews as hv

    from cortex_fa.viz import synapses
    from cortex_fa.viz.export import save_figure

    bp, fa = mnist_pair
    assert float(fa.test_accuracy.isel(step=-1)) > 0.6
    study = combine_runs([bp, fa])
    for layer in (1, 2, 3):
        fig = synapses.synapse_scatter(study, layer, sel={"rule": "fa"})
        hv.render(fig, backend="bokeh")
    title = synapses.synapse_scatter(fa, 2).opts.get(backend="bokeh").kwargs["title"]
    assert f"{float(fa.weight_alignment.isel(step=-1).sel(layer=2)):.1f}°" in title
    assert "∠ 0.0°, sample 0.0°" in synapses.synapse_scatter(bp, 3, snapshot=0).opts.get(backend="bokeh").kwargs["title"]
    grid = synapses.receptive_fields(bp, fa, snapshot=40, n=16)
    assert len(grid) == 2
    plot = hv.render(grid, backend="bokeh")
    assert plot is not None
    assert save_figure(grid, tmp_path / "rf", "png").read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"
    html = save_figure(synapses.synapse_scatters(study, sel={"rule": "fa"}), tmp_path / "sc", "html",
                       resources="cdn").read_text()
    assert "Bokeh" in html and "column 3" in html


@pytest.mark.mnist
def test_cli_plot_writes_the_synapse_figures(mnist_pair, tmp_path, capsys):
    from cortex_fa.cli import main

    cfa.save_results(combine_runs(mnist_pair), tmp_path / "study.nc")
    out = tmp_path / "figs"
    assert main(["plot", str(tmp_path / "study.nc"), "--out", str(out), "--resources", "cdn",
                 "--only", "synapses,receptive_fields"]) == 0
    assert sorted(p.name for p in out.iterdir()) == ["receptive_fields.html", "receptive_fields.png",
                                                     "synapses.html", "synapses.png"]
    assert (out / "synapses.png").stat().st_size > 20_000
    capsys.readouterr()
    cfa.save_results(mnist_pair[0].drop_dims(["snapshot_step", "pair", "unit", "pixel_row", "pixel_col"])
                     .drop_vars("snapshot_kind"), tmp_path / "plain.nc")
    assert main(["plot", str(tmp_path / "plain.nc"), "--out", str(tmp_path / "f2"), "--only", "synapses"]) == 0
    assert "skipped synapses: the file has no synapse snapshots" in capsys.readouterr().err
