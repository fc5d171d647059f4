"""Hybrid-study analysis and figure: layouts, paired differences, alignment at the selected epoch."""

from __future__ import annotations

import numpy as np
import pytest

import cortex_fa as cfa
from cortex_fa import hybrid
from cortex_fa.study import combine_runs

LAYOUTS = ("fa,fa", "fa,bp", "bp,fa", "bp,bp")


def test_layout_names_the_side_and_k():
    assert hybrid.layout("fa,fa,fa") == ("none", 0)
    assert hybrid.layout("fa,bp,bp") == ("top", 2)
    assert hybrid.layout("bp,fa,fa") == ("bottom", 1)
    assert hybrid.layout("bp,bp,bp") == ("all", 3)
    assert hybrid.layout("bp,fa,bp") == ("mixed", 2)


@pytest.fixture(scope="module")
def study(tiny_data):
    runs = [cfa.train(cfa.RunConfig(rule="fa", hidden=(16, 12), column_rules=tuple(rules.split(",")), epochs=3,
                                    batch_size=50, lr=0.1, validation=100, seed=seed), tiny_data, progress=False)
            for rules in LAYOUTS for seed in (0, 1, 2)]
    return combine_runs(runs)


def test_summary_pairs_seeds_and_reads_the_selected_epoch(study):
    s = hybrid.summary(study)
    assert s.attrs["reference"] == "fa,fa" and list(s.k.values) == [hybrid.layout(v)[1] for v in s.column_rules.values]
    run_dims = [d for d in ("rule", "depth", "n_hidden") if d in study.dims]
    acc, val = study.test_accuracy.squeeze(run_dims), study.validation_accuracy.squeeze(run_dims)
    for layout in LAYOUTS:
        errors, diffs = [], []
        for seed in (0, 1, 2):
            def selected(name):
                v = val.sel(column_rules=name, seed=seed).values
                return 100 * (1 - acc.sel(column_rules=name, seed=seed).values[int(np.nanargmax(v))])
            errors.append(selected(layout))
            diffs.append(selected(layout) - selected("fa,fa"))
        c = s.sel(column_rules=layout)
        assert float(c.error_mean) == pytest.approx(np.mean(errors))
        assert float(c.diff_mean) == pytest.approx(np.mean(diffs), abs=1e-12)
        assert float(c.errors_mean) == pytest.approx(100 * np.mean(errors))
    # bp on top: the top hidden column gets backprop's delta, at any epoch
    assert float(s.delta_alignment.sel(column_rules="fa,bp", layer=2)) == 0.0
    assert float(s.delta_alignment.sel(column_rules="fa,fa", layer=2)) > 5
    table = hybrid.table(study)
    assert table.splitlines()[2].startswith("| fa,fa | none | 0 |") and table.splitlines()[-1].startswith("| bp,bp | all | 2")


def test_figure_renders_for_both_backends(study, tmp_path):
    from cortex_fa.viz import export
    from cortex_fa.viz.hybrid import hybrid_figure

    fig = hybrid_figure(study)
    for fmt in ("png", "html"):
        assert export.save_figure(fig, tmp_path / "hybrid", fmt).stat().st_size > 10_000


def test_a_study_without_the_axis_is_refused(tiny_data):
    from cortex_fa.errors import ResultsError

    runs = [cfa.train(cfa.RunConfig(rule="fa", hidden=(8,), epochs=1, seed=s), tiny_data, progress=False) for s in (0, 1)]
    with pytest.raises(ResultsError, match="no 'column_rules' dim"):
        hybrid.summary(combine_runs(runs))


def test_cortex_fa_plot_writes_the_hybrid_figure(study, tmp_path, capsys):
    from cortex_fa import save_results
    from cortex_fa.cli import main

    save_results(study, tmp_path / "hybrid.nc")
    assert main(["plot", str(tmp_path / "hybrid.nc"), "--only", "hybrid", "--format", "png",
                 "--out", str(tmp_path / "fig")]) == 0
    assert (tmp_path / "fig" / "hybrid.png").stat().st_size > 10_000
