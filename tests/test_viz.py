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


def test_error_vs_depth_matches_final_accuracy_and_marks_breaking_depth(study):
    fig = figures.test_error_vs_depth(study)
    (fa,) = [c for c in curves(fig, "fa") if c.kdims[0].name == "n_hidden"]
    final = 100 * (1 - study["test_accuracy"].sel(rule="fa").isel(step=-1).mean("seed"))
    np.testing.assert_allclose(fa.dimension_values("test_error"), final.values)
    from cortex_fa.viz.data import breaking_depth

    bd = breaking_depth(study).sel(rule="fa")
    crosses = [s for s in fig.traverse(lambda x: x, [hv.Scatter])
               if "breaking_depth" in [d.name for d in s.vdims]]
    if np.isfinite(bd):
        assert crosses and crosses[0].dimension_values("n_hidden")[0] == bd
    else:
        assert not crosses


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
