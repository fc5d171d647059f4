"""Analysis on small hand-built studies whose answers are known in advance."""

from __future__ import annotations

import numpy as np
import pytest
import xarray as xr
from scipy import stats

from cortex_fa import analysis
from cortex_fa.errors import ResultsError

STEPS = np.array([0, 10, 20, 30])  # 10 steps per epoch: epochs 0, 1, 2, 3


def make_study(final_acc: dict, *, depths=(1, 2, 3), seeds=(0, 1, 2), curve=None) -> xr.Dataset:
    """A study whose test accuracy rises linearly to ``final_acc[rule][depth_index][seed]``.

    ``curve`` (rule -> 4 accuracies) overrides the trajectory of every run of a rule.
    """
    rules = list(final_acc)
    shape = (len(rules), len(depths), len(seeds), len(STEPS))
    acc = np.empty(shape)
    for i, rule in enumerate(rules):
        final = np.asarray(final_acc[rule], dtype=float)
        acc[i] = curve[rule] if curve and rule in curve else 0.1 + (final[..., None] - 0.1) * STEPS / STEPS[-1]
    n_layer = max(depths) + 1
    angle = np.full(shape + (n_layer,), np.nan)
    norm = np.full(shape + (n_layer,), np.nan)
    for k, d in enumerate(depths):
        # layer l starts at 90 degrees and falls by 10 * l degrees per epoch
        for l in range(1, d + 2):
            angle[:, k, :, :, l - 1] = 90.0 - 10.0 * l * STEPS / 10
            norm[:, k, :, :, l - 1] = 2.0 ** l  # readout (l = d + 1) is the largest
    dims = ("rule", "n_hidden", "seed", "step")
    ds = xr.Dataset(
        {
            "test_accuracy": (dims, acc),
            "train_loss": (dims, np.ones(shape)),
            "wall_time": (dims, np.broadcast_to(STEPS * 0.5, shape).copy()),
            "delta_alignment": ((*dims, "layer"), angle),
            "weight_alignment": ((*dims, "layer"), angle + 5.0),
            "delta_norm": ((*dims, "layer"), norm),
            "status": (dims[:3], np.full(shape[:3], "ok", dtype="U8")),
        },
        coords={"rule": rules, "n_hidden": list(depths), "seed": list(seeds), "step": STEPS,
                "epoch": ("step", STEPS / 10.0), "layer": np.arange(1, n_layer + 1)},
    )
    return ds


def test_t_interval_matches_scipy():
    mean, lo, hi, n = analysis.t_interval(np.array([1.0, 2.0, 3.0]))
    half = stats.t.ppf(0.975, 2) * 1.0 / np.sqrt(3)
    assert mean == pytest.approx(2.0)
    assert (lo, hi) == (pytest.approx(2.0 - half), pytest.approx(2.0 + half))
    assert n == 3


def test_t_interval_single_value_and_nan():
    mean, lo, hi, n = analysis.t_interval(np.array([[4.0, np.nan, np.nan], [1.0, 3.0, np.nan]]))
    assert mean.tolist() == [4.0, 2.0]
    assert np.isnan(lo[0]) and np.isnan(hi[0]) and n.tolist() == [1, 2]
    assert hi[1] - lo[1] == pytest.approx(2 * stats.t.ppf(0.975, 1) * np.sqrt(2) / np.sqrt(2))


def test_error_summary_mean_and_interval():
    study = make_study({"bp": [[0.98, 0.97, 0.96]] * 3, "fa": [[0.9, 0.9, 0.9]] * 3})
    s = analysis.error_summary(study)
    cell = s.sel(rule="bp", n_hidden=2)
    assert float(cell.final_mean) == pytest.approx(3.0)
    half = stats.t.ppf(0.975, 2) * 1.0 / np.sqrt(3)
    assert float(cell.final_hi) == pytest.approx(3.0 + half)
    assert float(s.sel(rule="fa", n_hidden=1).final_mean) == pytest.approx(10.0)
    assert int(cell.n) == 3


def test_one_seed_gives_nan_interval():
    study = make_study({"bp": [[0.98]] * 3}, seeds=(0,))
    s = analysis.error_summary(study)
    assert float(s.final_mean.sel(rule="bp", n_hidden=1)) == pytest.approx(2.0)
    assert np.isnan(s.final_lo).all() and np.isnan(s.final_hi).all()


def test_oracle_best_error_is_the_test_minimum_not_the_last():
    study = make_study({"bp": [[0.9] * 3] * 3}, curve={"bp": [0.1, 0.95, 0.97, 0.92]})
    errs = analysis.test_errors(study)
    assert float(errs.oracle_best_error.max()) == pytest.approx(3.0)
    assert float(errs.final_error.max()) == pytest.approx(8.0)
    assert np.isnan(errs.selected_error).all()  # no validation split: nothing to select on
    assert "best_error" not in errs  # the test-set minimum only ever goes by its oracle name


def test_diverged_counts_at_chance_and_missing_is_nan():
    study = make_study({"bp": [[0.98] * 3] * 3})
    study["status"][0, 0, 1] = "diverged"
    study["status"][0, 1, 2] = "missing"
    errs = analysis.test_errors(study)
    assert float(errs.final_error[0, 0, 1]) == analysis.CHANCE_ERROR
    assert np.isnan(float(errs.final_error[0, 1, 2]))
    assert int(analysis.error_summary(study).n.sel(rule="bp", n_hidden=2)) == 2


def test_breaking_depth_found_where_paired_difference_is_clear():
    bp = [[0.980, 0.982, 0.978]] * 3
    fa = [[0.980, 0.982, 0.978],   # depth 1: same as bp
          [0.976, 0.978, 0.974],   # depth 2: 0.4 pp worse: within the margin
          [0.950, 0.955, 0.945]]   # depth 3: 3 pp worse in every seed
    noisy = [[0.980, 0.982, 0.978], [0.880, 0.990, 0.890], [0.980, 0.982, 0.978]]  # 7 pp on average, CI spans 0
    bd = analysis.breaking_depth(make_study({"bp": bp, "fa": fa, "usf": noisy}), margin=0.5)
    assert float(bd.sel(rule="fa")) == 3
    assert np.isnan(float(bd.sel(rule="bp")))
    assert np.isnan(float(bd.sel(rule="usf")))


def test_breaking_depth_nan_with_one_seed_and_margin_respected():
    study = make_study({"bp": [[0.98]] * 3, "fa": [[0.90]] * 3}, seeds=(0,))
    assert np.isnan(float(analysis.breaking_depth(study).sel(rule="fa")))
    study = make_study({"bp": [[0.98, 0.98, 0.98]] * 3, "fa": [[0.97, 0.971, 0.969]] * 3})
    assert float(analysis.breaking_depth(study, margin=0.5).sel(rule="fa")) == 1
    assert np.isnan(float(analysis.breaking_depth(study, margin=2.0).sel(rule="fa")))


def test_breaking_depth_needs_the_reference():
    with pytest.raises(ResultsError, match="reference rule 'bp'"):
        analysis.breaking_depth(make_study({"fa": [[0.9] * 3] * 3}))


def test_epochs_and_seconds_to_threshold():
    study = make_study({"bp": [[0.9] * 3] * 3, "fa": [[0.9] * 3] * 3},
                       curve={"bp": [0.1, 0.91, 0.96, 0.975], "fa": [0.1, 0.5, 0.91, 0.93]})
    conv = analysis.convergence(study)
    bp = conv.sel(rule="bp", n_hidden=1, seed=0)
    assert bp.epochs_to.values.tolist() == [1.0, 2.0, 3.0]
    assert bp.seconds_to.values.tolist() == [5.0, 10.0, 15.0]
    fa = conv.sel(rule="fa", n_hidden=3, seed=2)
    assert fa.epochs_to.sel(threshold=0.90) == 2.0
    assert np.isnan(fa.epochs_to.sel(threshold=0.95)) and np.isnan(fa.seconds_to.sel(threshold=0.97))
    assert float(conv.seconds_per_epoch.max()) == pytest.approx(5.0)


def test_alignment_epochs_below_thresholds_per_layer():
    al = analysis.alignment_summary(make_study({"fa": [[0.9] * 3] * 3}), "delta_alignment")
    run = al.sel(rule="fa", n_hidden=2, seed=0)
    # layer l falls 10 * l degrees per epoch from 90 (logged at whole epochs)
    assert run.final.values.tolist()[:3] == [60.0, 30.0, 0.0]
    assert np.isnan(run.final.sel(layer=4))  # padding beyond the readout of a depth-2 network
    below60 = run.epochs_below.sel(angle=60.0).values
    assert np.isnan(below60[0]) and below60[1:3].tolist() == [2.0, 2.0]  # 70, 50 and 60, 30
    assert run.epochs_below.sel(angle=45.0).values[1:3].tolist() == [3.0, 2.0]  # 50, 30 and 60, 30


def test_gradient_flow_relative_to_each_depths_readout():
    gf = analysis.gradient_flow(make_study({"fa": [[0.9] * 3] * 3}))
    assert gf.sel(rule="fa", n_hidden=1, seed=0).values[:2].tolist() == [0.5, 1.0]
    assert gf.sel(rule="fa", n_hidden=3, seed=0).values.tolist() == [0.125, 0.25, 0.5, 1.0]


def test_report_cli_prints_and_writes_tables(tmp_path, capsys):
    from cortex_fa.cli import main
    from cortex_fa.results import save_results

    bp = [[0.980, 0.982, 0.978]] * 3
    fa = [[0.980, 0.982, 0.978], [0.976, 0.978, 0.974], [0.950, 0.955, 0.945]]
    study = make_study({"bp": bp, "fa": fa})
    study["status"][0, 0, 0] = "diverged"  # bp at depth 1, seed 0 counts at chance in the final error
    study["config_hash"] = xr.full_like(study.status, "0123456789abcdef", dtype="U16")
    study["diverged_at_step"] = xr.full_like(study.status, 25, dtype=int)
    study.attrs.update(title="cortex_fa results", cortex_fa_version="0.1.0", Conventions="CF-1.8")
    path = tmp_path / "study.nc"
    save_results(study, path)
    assert main(["report", str(path)]) == 0
    out = capsys.readouterr().out
    assert "Breaking depth vs bp" in out and "rule=bp n_hidden=1 seed=0: diverged at step 25 0123456789abcdef" in out
    md = (tmp_path / "study.report.md").read_text()
    assert "### Final test error" in md
    # fa against bp in images: depth 1 spread wide by bp's diverged seed (-8800, 0, 0), +40 in every seed at
    # depth 2, +300 on average at 3. The verdicts' breaking depth is undetermined: depth 1 could not be decided.
    assert "| fa | 1 | -2933.3 [-15554.4, +9687.8] | -29.33 [-155.54, +96.88] | 3 | undetermined |" in md
    assert "| fa | 2 | +40.0 [+40.0, +40.0] | +0.40 [+0.40, +0.40] | 3 | keeps up |" in md
    assert "| fa | 3 | +300.0 [+225.5, +374.5] | +3.00 [+2.25, +3.75] | 3 | falls behind |" in md
    assert "| fa | undetermined |" in md
    breaking = (tmp_path / "study.breaking_depth.csv").read_text().splitlines()
    assert breaking == ["rule,breaking_depth,reference,metric,margin_images,margin_pp",
                        "fa,undetermined,bp,final,50,0.5"]  # bp is the reference: no row
    verdicts = (tmp_path / "study.verdicts.csv").read_text().splitlines()
    assert verdicts[0] == ("rule,n_hidden,diff_mean,diff_lo,diff_hi,diff_mean_pp,diff_lo_pp,diff_hi_pp,n,verdict,"
                           "reference,metric,margin_images,margin_pp")
    assert verdicts[2] == "fa,2,40.0,40.0,40.0,0.4,0.4,0.4,3,keeps up,bp,final,50,0.5"
    assert (tmp_path / "study.epochs_to_0.95.csv").exists() and (tmp_path / "study.gradient_flow.csv").exists()


def test_epochs_trained_is_the_last_logged_epoch_of_each_run(tmp_path, capsys):
    from cortex_fa.cli import main
    from cortex_fa.results import save_results

    study = make_study({"bp": [[0.98] * 2], "fa": [[0.97] * 2]}, depths=(1,), seeds=(0, 1))
    study["test_accuracy"][1, 0, 0, -1] = np.nan  # fa seed 0 stopped one log early
    study["test_accuracy"][0, 0, 1, 2] = np.nan  # a gap mid-run does not shorten bp seed 1
    trained = analysis.epochs_trained(study).sel(n_hidden=1)
    assert trained.sel(rule="bp").values.tolist() == [STEPS[-1] / 10] * 2
    assert trained.sel(rule="fa").values.tolist() == [STEPS[-2] / 10, STEPS[-1] / 10]
    study.attrs.update(title="cortex_fa results", cortex_fa_version="0.1.0", Conventions="CF-1.8")
    save_results(study, tmp_path / "study.nc")
    assert main(["report", "--no-write", str(tmp_path / "study.nc")]) == 0  # no validation: its own table
    block = capsys.readouterr().out.split("Epochs trained (mean over seeds)\n")[1].splitlines()
    assert block[1].split() == ["bp", f"{STEPS[-1] / 10:.1f}"]
    assert block[2].split() == ["fa", f"{(STEPS[-2] + STEPS[-1]) / 20:.1f}"]


def test_report_leaves_out_angles_that_are_zero_by_construction():
    import sys
    from pathlib import Path

    sys.path.insert(0, str(Path(__file__).parent))
    from factories import make_study_dataset

    from cortex_fa.cli.report import build_tables

    study = make_study_dataset(rules=("bp", "fa"), depths=(1, 2), seeds=(0, 1))
    study["delta_alignment"] = study.delta_alignment.where(study.layer != study.n_hidden + 1, 0.0)  # readout: e itself
    tables = {t.name: t for t in build_tables(study)}
    below = tables["delta_alignment_below_60"]
    rules = below.text.index.get_level_values("rule")
    assert "bp" not in rules and "fa" in rules  # bp is 0 degrees throughout: no row
    for depth in (1, 2):
        row = below.text.loc[("fa", depth)]
        assert row[f"layer {depth + 1}"] == ""  # the readout's delta angle: blank, not "0.00"
        assert row["layer 1"] != ""


def test_report_tables_what_learning_wrote_at_the_end_of_each_run():
    import sys
    from pathlib import Path

    sys.path.insert(0, str(Path(__file__).parent))
    from factories import make_study_dataset

    from cortex_fa.cli.report import build_tables

    study = make_study_dataset(rules=("bp", "fa"), depths=(1, 2), seeds=(0, 1))
    shape = study.weight_alignment.shape
    study["learned_alignment"] = (study.weight_alignment.dims, np.full(shape, 50.0))
    study["weight_change"] = (study.weight_alignment.dims, np.full(shape, 0.2))
    # The last step of fa depth 2 seed 1 is not measured: its final value is the one before
    la = study.learned_alignment.transpose("rule", "n_hidden", "seed", "step", "layer").values.copy()
    dims = ("rule", "n_hidden", "seed", "step", "layer")
    la[1, 1, 1, -1, 0] = np.nan
    la[1, 1, 1, -2, 0] = 70.0
    la[1, 1, 0, -1, 0] = 30.0
    study["learned_alignment"] = (dims, la)
    tables = {t.name: t for t in build_tables(study)}
    learned, change = tables["learned_alignment_final"], tables["weight_change_final"]
    assert learned.text.loc[("fa", 2)]["layer 1"] == "50.0"  # mean of 30 and 70 over the two seeds
    assert change.text.loc[("fa", 2)]["layer 1"] == "0.2"
    assert "weight_change_final" not in {t.name for t in build_tables(study.drop_vars("weight_change"))}
