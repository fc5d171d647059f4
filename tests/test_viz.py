"""Figures from synthetic runs and studies: they build, render, and draw the data."""

from __future__ import annotations

import numpy as np
import pytest

hv = pytest.importorskip("holoviews")

from factories import make_run_dataset, make_study_dataset  # noqa: E402

from cortex_fa.cli import main  # noqa: E402
from cortex_fa.results import save_results  # noqa: E402
from cortex_fa.viz import figures  # noqa: E402
from cortex_fa.viz.data import as_study, layer_view, seed_stats  # noqa: E402


@pytest.fixture(scope="module")
def study():
    return make_study_dataset(rules=("bp", "fa"), depths=(1, 2, 3), seeds=(0, 1, 2), epochs=2)


@pytest.fixture(scope="module")
def run():
    return make_run_dataset("fa", depth=2, epochs=2)


def curves(obj, label=None):
    """All Curve elements in ``obj`` (optionally with this label)."""
    return [c for c in obj.traverse(lambda x: x, [hv.Curve]) if label is None or c.label == label]


def finite(values):
    values = np.asarray(values, dtype=float)
    return values[np.isfinite(values)]


BUILDERS = [figures.test_error_vs_depth, figures.learning_curves, figures.alignment_curves,
            figures.alignment_heatmap, figures.gradient_flow]


@pytest.mark.parametrize("build", BUILDERS, ids=lambda f: f.__name__)
def test_figures_build_and_render_from_a_study(study, build):
    fig = build(study)
    assert curves(fig) or fig.traverse(lambda x: x, [hv.QuadMesh])
    hv.renderer("bokeh").get_plot(fig)  # raises if the options do not fit Bokeh


@pytest.mark.parametrize("build", BUILDERS[1:], ids=lambda f: f.__name__)
def test_figures_build_from_a_single_run(run, build):
    hv.renderer("bokeh").get_plot(build(run))


def test_single_run_skips_the_depth_figure(run):
    figs, skipped = figures.all_figures(run)
    assert "test_error_vs_depth" in skipped and "test_error_vs_depth" not in figs
    assert set(figs) == set(figures.FIGURES) - {"test_error_vs_depth"}


def test_learning_curve_is_the_seed_mean(study):
    panel = figures.learning_curves(study)[2]  # NdLayout keyed by depth
    (fa,) = curves(panel, "fa")
    expected = study["test_accuracy"].sel(rule="fa", n_hidden=2).mean("seed")
    keep = np.isfinite(expected.values)  # test metrics are NaN inside epoch 1
    np.testing.assert_allclose(fa.dimension_values("test_accuracy"), expected.values[keep])
    np.testing.assert_allclose(fa.dimension_values("epoch"), study["epoch"].values[keep])


def test_per_seed_mode_draws_every_seed(study):
    panel = figures.learning_curves(study, seeds="each")[3]
    fa = curves(panel, "fa")
    assert len(fa) == 3
    got = sorted(tuple(c.dimension_values("test_accuracy")) for c in fa)
    want = sorted(tuple(finite(study["test_accuracy"].sel(rule="fa", n_hidden=3, seed=s)))
                  for s in (0, 1, 2))
    np.testing.assert_allclose(got, want)


def test_band_is_a_95_percent_t_interval(study):
    st = seed_stats(study["test_accuracy"].sel(rule="bp", n_hidden=1).dropna("step"))
    x = study["test_accuracy"].sel(rule="bp", n_hidden=1).dropna("step").values  # (seed, step)
    half = 4.302652729911275 * x.std(0, ddof=1) / np.sqrt(3)  # t(0.975, df=2)
    np.testing.assert_allclose(st["hi"] - st["mean"], half)


def test_alignment_curves_plot_each_layer_against_updates(study):
    fig = figures.alignment_curves(study, depth=2, rules=["fa"], logx=True)
    delta = [c for c in curves(fig) if c.vdims[0].name == "delta_alignment"]
    weight = [c for c in curves(fig) if c.vdims[0].name == "weight_alignment"]
    assert sorted(c.label for c in delta) == ["layer 1", "layer 2", "layer 3 (readout)"]
    # Layer 1 has no weight alignment (B_1 is never used): no curve, not a fake one.
    assert sorted(c.label for c in weight) == ["layer 2", "layer 3 (readout)"]
    (l2,) = [c for c in delta if c.label == "layer 2"]
    np.testing.assert_array_equal(l2.dimension_values("updates"), study["step"].values + 1)
    expected = study["delta_alignment"].sel(rule="fa", n_hidden=2, layer=2).mean("seed")
    np.testing.assert_allclose(l2.dimension_values("delta_alignment"), expected.values)


def test_error_vs_depth_matches_final_accuracy(study):
    fig = figures.test_error_vs_depth(study)
    (fa,) = [c for c in curves(fig, "fa") if c.kdims[0].name == "n_hidden"]
    final = 100 * (1 - study["test_accuracy"].sel(rule="fa").isel(step=-1).mean("seed"))
    np.testing.assert_allclose(fa.dimension_values("test_error"), final.values)


def scatters_with(fig, vdim):
    return [s for s in fig.traverse(lambda x: x, [hv.Scatter]) if vdim in [d.name for d in s.vdims]]


def test_error_vs_depth_marks_the_verdicts_breaking_depth_and_rings_an_undetermined_one():
    from factories import make_count_study

    bp = [[200, 210, 190]] * 3
    study = make_count_study({
        "bp": bp,
        "fa": [[205, 212, 195], [208, 215, 193], [400, 420, 410]],  # keeps up, keeps up, falls behind at 5
        "dfa": [[250, 260, 240]] * 3,  # exactly the margin (+50 images) in every seed: undetermined
        "kp": [[205, 212, 195]] * 3,  # keeps up everywhere: none
    })
    fig = figures.test_error_vs_depth(study)
    crosses = scatters_with(fig, "breaking_depth")
    assert [(c.label, list(c.dimension_values("n_hidden"))) for c in crosses] == [("fa", [5])]
    (ring,) = [s for s in fig.traverse(lambda x: x, [hv.Scatter]) if s.label == "breaking depth undetermined"]
    assert list(ring.dimension_values("n_hidden")) == [1]  # dfa's first undetermined depth, no cross
    assert list(ring.dimension_values("verdict")) == ["undetermined"]
    assert ring.opts.get("style", backend="bokeh").kwargs["fill_alpha"] == 0  # open: not a breaking point
    (dfa,) = [c for c in curves(fig, "dfa")]
    assert set(dfa.dimension_values("verdict")) == {"undetermined"}  # hover: the verdict per depth
    title = fig.opts.get(backend="bokeh").kwargs["title"]
    assert "breaking depth vs bp" in title and "50 images = 0.5 pp" in title
    hv.renderer("bokeh").get_plot(fig)
    hv.renderer("matplotlib").get_plot(fig)
    # without the reference: no marks, no verdicts, still a figure
    fig = figures.test_error_vs_depth(study.sel(rule=["fa", "kp"]))
    assert not scatters_with(fig, "breaking_depth") and not scatters_with(fig, "verdict")
    assert "no bp to compare with" in fig.opts.get(backend="bokeh").kwargs["title"]


def test_breaking_depth_of_the_figures_is_the_verdicts_one():
    from factories import make_count_study

    from cortex_fa.viz.data import breaking_depth

    study = make_count_study({"bp": [[200, 210, 190]] * 3, "fa": [[205, 212, 195], [240, 300, 350], [400, 420, 410]]})
    bd = breaking_depth(study)
    assert bd.sel(rule="fa").item() == "undetermined" and bd.sel(rule="bp").item() == "none"
    assert set(breaking_depth(study.sel(rule=["fa"])).values) == {"no data"}


def test_seed_band_stops_at_the_last_common_step_and_stays_inside_0_1():
    """Seeds of different lengths (early stopping), accuracies near 1: no band past the last common step, none above 1."""
    study = make_study_dataset(rules=("bp", "fa"), depths=(1, 2), seeds=(0, 1, 2), epochs=4)
    steps = study["step"].values
    rng = np.random.default_rng(0)
    acc = study["test_accuracy"].copy()
    acc[:] = np.where(np.isfinite(acc), np.clip(0.995 + rng.normal(0, 0.004, acc.shape), 0, 1), np.nan)
    last = {0: 200, 1: 300, 2: 400}  # seed 0 stopped after epoch 2, seed 1 after 3, seed 2 ran all 4
    for seed, stop in last.items():
        acc.loc[dict(seed=seed, step=steps[steps > stop])] = np.nan
    study = study.assign(test_accuracy=acc)
    panel = figures.learning_curves(study, logx=False)[2]
    band = [p for p in panel.traverse(lambda x: x, [hv.Polygons])]
    assert band, "a band is drawn"
    (fa,) = curves(panel, "fa")
    last_epoch = study["epoch"].sel(step=200).item()
    for poly in band:
        for part in poly.split():
            xs, ys = part.dimension_values("epoch"), part.dimension_values("test_accuracy")
            assert xs.max() <= last_epoch + 1e-9, "no band point past the last step every seed reached"
            assert ys.min() >= 0 and ys.max() <= 1, "no band point outside [0, 1]"
    assert fa.dimension_values("epoch").max() == pytest.approx(last_epoch)  # the mean stops with the band
    # unclipped, this t-interval of 3 seeds at 0.995 +- 0.004 would reach past 1
    st = seed_stats(acc.sel(rule="fa", n_hidden=2, step=steps[steps <= 200]).dropna("step"))
    assert float(st["hi"].max()) > 1
    # per-seed mode still shows every run to its end
    each = figures.learning_curves(study, seeds="each", logx=False)[2]
    assert max(c.dimension_values("epoch").max() for c in curves(each, "fa")) == pytest.approx(4.0)


def test_value_range_and_clipped_stats():
    import xarray as xr

    from cortex_fa.viz.data import value_range

    assert value_range("test_accuracy") == (0, 1) and value_range("test_error", "%") == (0, 100)
    assert value_range("delta_alignment", "degree") == (0, 180) and value_range("train_loss")[0] == 0
    da = xr.DataArray([[179.0, 170.0], [1.0, 20.0]], dims=("step", "seed"))
    st = seed_stats(da, bounds=value_range("weight_alignment"))
    assert float(st["hi"][0]) == 180 and float(st["lo"][1]) == 0


def test_heatmap_shows_the_last_hidden_layer_of_each_depth(study):
    fig = figures.alignment_heatmap(study, layer="last", rules=["fa"])
    (hm,) = fig.traverse(lambda x: x, [hv.QuadMesh])
    grid = hm.dimension_values("delta_alignment", flat=False)  # rows: depth, columns: step
    for row, depth in enumerate((1, 2, 3)):
        want = study["delta_alignment"].sel(rule="fa", n_hidden=depth, layer=depth).mean("seed")
        np.testing.assert_allclose(grid[row], want.values)
    # Numeric log time: cell edges enclose updates + 1 of every logged step, step 0 included.
    edges = hm.interface.coords(hm, "updates", edges=True)
    centres = study["step"].values + 1.0
    assert edges[0] < centres[0] and edges[-1] > centres[-1]
    assert all(lo < c < hi for lo, c, hi in zip(edges[:-1], centres, edges[1:]))
    mean = layer_view(as_study(study)["delta_alignment"], "mean").sel(rule="fa", n_hidden=3)
    want = study["delta_alignment"].sel(rule="fa", n_hidden=3, layer=[1, 2, 3]).mean("layer")
    np.testing.assert_allclose(mean, want)


def test_two_dimensional_epoch_is_plotted_per_run():
    # Different epoch lengths make epoch a per-run variable. The batch size is set per
    # rule here (bp 100 steps an epoch, fa 50), so it belongs to the rule: not a dim.
    study = make_study_dataset(rules=("bp", "fa"), depths=(1, 2), seeds=(0,), epochs=2,
                               steps_per_epoch=lambda r, d, s: 100 if r == "bp" else 50)
    assert study["epoch"].ndim > 1 and "batch_size" not in study.dims
    panel = figures.learning_curves(study)[2]
    (fa,) = curves(panel, "fa")
    assert fa.dimension_values("epoch").max() == pytest.approx(2.0)
    assert fa.dimension_values("step").max() == 100
    figures.all_figures(study)


def test_figures_render_with_matplotlib(study, tmp_path):
    from cortex_fa.viz.export import save_figure

    path = save_figure(figures.alignment_heatmap(study), tmp_path / "heat", "png")
    assert path.read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"


def test_cli_plot_writes_html_and_png(study, tmp_path, capsys):
    # Two figures keep the test quick; the run test below writes the other PNGs and
    # test_figures_build_and_render_from_a_study renders all five with Bokeh.
    save_results(study.sel(n_hidden=[1, 2], seed=[0, 1]), tmp_path / "study.nc")
    out = tmp_path / "figs"
    names = ["test_error_vs_depth", "learning_curves"]
    assert main(["plot", str(tmp_path / "study.nc"), "--out", str(out), "--resources", "cdn",
                 "--only", ",".join(names)]) == 0
    for name in names:
        html = (out / f"{name}.html").read_text()
        assert "Bokeh" in html and len(html) > 5_000
        assert (out / f"{name}.png").read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"
        assert (out / f"{name}.png").stat().st_size > 10_000
    assert sorted(p.name for p in out.iterdir()) == sorted(f"{n}.{e}" for n in names
                                                           for e in ("html", "png"))
    assert len(capsys.readouterr().out.splitlines()) == 4


def test_cli_plot_on_a_run_notes_the_skipped_figure(run, tmp_path, capsys):
    save_results(run, tmp_path / "run.nc")
    out = tmp_path / "figs"
    assert main(["plot", str(tmp_path / "run.nc"), "--out", str(out), "--format", "png"]) == 0
    assert "skipped test_error_vs_depth" in capsys.readouterr().err
    assert sorted(p.stem for p in out.glob("*.png")) == sorted(set(figures.FIGURES)
                                                               - {"test_error_vs_depth"})


def test_cli_plot_errors_are_one_line_and_exit_2(tmp_path, study, capsys):
    assert main(["plot", str(tmp_path / "missing.nc")]) == 2
    (tmp_path / "junk.nc").write_text("not netcdf")
    assert main(["plot", str(tmp_path / "junk.nc")]) == 2
    save_results(study, tmp_path / "study.nc")
    assert main(["plot", str(tmp_path / "study.nc"), "--depth", "7"]) == 2
    assert main(["plot", str(tmp_path / "study.nc"), "--only", "heatmap"]) == 2
    err = capsys.readouterr().err.strip().splitlines()
    assert len(err) == 4 and all(line.startswith("cortex-fa: error:") for line in err)


def test_gap_figure_draws_each_verdicts_interval_and_opens_the_undetermined_ones(tmp_path):
    import json

    from factories import make_count_study

    from cortex_fa import verdicts
    from cortex_fa.viz import gap
    from cortex_fa.viz.export import save_figures

    study = make_count_study({
        "bp": [[200, 210, 190]] * 3,
        "fa": [[205, 212, 195], [240, 300, 350], [400, 420, 410]],  # keeps up, undetermined, falls behind
        "dfa": [[250, 260, 240]] * 3,  # exactly +50 images in every seed: undetermined at 0.5 points
    })
    fig = gap.gap_vs_depth(study)
    v = verdicts.verdicts(study)
    bars = fig.traverse(lambda x: x, [hv.ErrorBars])
    assert len(bars) == 2  # fa and dfa, in the study's order; the reference is not drawn
    for rule, bar in zip(("fa", "dfa"), bars):
        c = v.sel(rule=rule)
        y = bar.dimension_values(1)
        np.testing.assert_allclose(y, c.diff_mean_pp.values)
        np.testing.assert_allclose(y - bar.dimension_values(2), c.diff_lo_pp.values)
        np.testing.assert_allclose(y + bar.dimension_values(3), c.diff_hi_pp.values)
        assert np.all(np.abs(bar.dimension_values(0) - c.n_hidden.values) < 0.5)  # dodged, at its own depth
    filled = {(s.label, round(float(d))) for s in fig.traverse(lambda x: x, [hv.Scatter])
              if s.opts.get("style", backend="bokeh").kwargs.get("fill_alpha") != 0
              for d in s.dimension_values("n_hidden")}
    hollow = {(s.label, round(float(d))) for s in fig.traverse(lambda x: x, [hv.Scatter])
              if s.opts.get("style", backend="bokeh").kwargs.get("fill_alpha") == 0
              for d in s.dimension_values("n_hidden")}
    assert filled == {("fa", 1), ("fa", 5)} and hollow == {("fa", 3), ("dfa", 1), ("dfa", 3), ("dfa", 5)}
    (band,) = fig.traverse(lambda x: x, [hv.Area])
    assert sorted(set(band.dimension_values(1)) | set(band.dimension_values(2))) == [-0.5, 0.5]
    assert "3 paired seeds" in fig.opts.get(backend="bokeh").kwargs["title"]
    hv.renderer("bokeh").get_plot(fig)
    hv.renderer("matplotlib").get_plot(fig)

    # a protocol's declared margin is the default: at 100 images dfa's +50 keeps up, and the band widens
    declared = study.assign_attrs(protocol=json.dumps({"margin_images": 100, "reference": "bp"}))
    fig = gap.gap_vs_depth(declared)
    hollow = {s.label for s in fig.traverse(lambda x: x, [hv.Scatter])
              if s.opts.get("style", backend="bokeh").kwargs.get("fill_alpha") == 0}
    assert hollow == {"fa"}
    (band,) = fig.traverse(lambda x: x, [hv.Area])
    assert max(band.dimension_values(1)) == 1.0

    # what it cannot draw, it says, and only when asked for
    assert "reference rule bp" in gap.cannot_draw(study.sel(rule=["fa", "dfa"]))
    assert "at least 2 seeds" in gap.cannot_draw(study.isel(seed=[0]))
    written, skipped = save_figures(study.isel(seed=[0]), tmp_path, formats=("png",), only=[gap.NAME])
    assert written == [] and "at least 2 seeds" in skipped[gap.NAME]
    written, skipped = save_figures(study, tmp_path, formats=("png",), only=[gap.NAME])
    assert [p.name for p in written] == ["gap_vs_depth.png"] and skipped == {}
