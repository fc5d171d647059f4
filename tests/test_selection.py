"""Model selection on held-out data: the validation split, early stopping, the selected error."""

from __future__ import annotations

import json

import numpy as np
import pytest
import xarray as xr

from cortex_fa import analysis, selection
from cortex_fa.backends import numpy_backend
from cortex_fa.config import RunConfig
from cortex_fa.errors import ConfigError
from cortex_fa.training import best_epoch, train, validation_split


def _recording_batches(monkeypatch):
    """Record the labels of every training batch (the images' identity is their row)."""
    seen = []
    original = numpy_backend.NumpyModel.train_batch

    def spy(self, x, y, labels, lr):
        seen.append(x.copy())
        return original(self, x, y, labels, lr)

    monkeypatch.setattr(numpy_backend.NumpyModel, "train_batch", spy)
    return seen


def test_split_is_the_end_of_the_training_file_for_every_seed():
    pool, val = validation_split(600, 100)
    assert list(val) == list(range(500, 600)) and list(pool) == list(range(500))
    assert validation_split(600, 0)[1].size == 0
    with pytest.raises(ConfigError, match="leaves none"):
        validation_split(600, 600)


@pytest.mark.parametrize("seed", [0, 1])
def test_validation_images_are_never_trained_on(tiny_data, monkeypatch, seed):
    seen = _recording_batches(monkeypatch)
    n_val = 150
    train(rule="fa", hidden=(16,), epochs=2, batch_size=50, validation=n_val, seed=seed, data=tiny_data,
          progress=False, metrics=False)
    trained = np.concatenate(seen)
    from cortex_fa import kernels

    held_out = kernels.normalise(tiny_data.train_images[-n_val:])
    pool = kernels.normalise(tiny_data.train_images[:-n_val])
    # every trained row is a pool image, none is a held-out one (rows compared exactly)
    as_set = lambda a: {r.tobytes() for r in a}  # noqa: E731
    assert as_set(trained) <= as_set(pool)
    assert not (as_set(trained) & as_set(held_out))
    assert len(trained) == 2 * (600 - n_val)


def test_validation_is_logged_at_every_epoch_end_and_recorded(tiny_data):
    ds = train(rule="bp", hidden=(16,), epochs=3, batch_size=50, validation=100, log_every=2,
               data=tiny_data, progress=False)
    ends = ds.step.values[ds.epoch.values == np.round(ds.epoch.values)][1:]
    assert len(ends) == 3  # every epoch end, although log_every=2
    assert np.isfinite(ds.validation_accuracy.sel(step=ends)).all()
    assert np.isnan(ds.validation_accuracy.sel(step=0))
    assert ds.validation_accuracy.attrs["units"] == "1" and "validation" in ds.validation_loss.attrs["long_name"]
    assert ds.attrs["validation_size"] == 100 and ds.attrs["stopped_epoch"] == 3
    assert 1 <= ds.attrs["best_validation_epoch"] <= 3
    assert json.loads(ds.attrs["config"])["validation"] == 100


def test_no_validation_keeps_the_random_stream(tiny_data):
    """validation=0 must give exactly the runs of 0.2 (the split draws nothing)."""
    a = train(rule="fa", hidden=(16,), epochs=1, batch_size=50, data=tiny_data, progress=False)
    b = train(RunConfig(rule="fa", hidden=(16,), epochs=1, batch_size=50, validation=0), tiny_data, progress=False)
    np.testing.assert_array_equal(a.test_accuracy.values, b.test_accuracy.values)
    assert np.isnan(a.validation_accuracy.values).all()
    assert RunConfig(rule="fa").hash() == RunConfig(rule="fa", validation=0, patience=None, dropout=0.0).hash()
    assert RunConfig(rule="fa", validation=10).hash() != RunConfig(rule="fa").hash()


def test_best_epoch_and_patience():
    assert best_epoch([0.5, 0.7, 0.7, 0.6]) == (1, False)  # later ties are not improvements
    assert best_epoch([0.5, 0.7, 0.7, 0.6], patience=2) == (1, True)
    assert best_epoch([0.5, 0.7, 0.7], patience=2) == (1, False)
    assert best_epoch([0.5, 0.7, 0.8], patience=1) == (2, False)


def test_early_stopping_stops_a_plateaued_run(tiny_data):
    """lr so small that nothing moves: validation accuracy is flat from epoch 1, so patience 2 stops at 3."""
    ds = train(rule="bp", hidden=(8,), epochs=10, batch_size=100, lr=1e-12, validation=100, patience=2,
               data=tiny_data, progress=False)
    val = ds.validation_accuracy.values[np.isfinite(ds.validation_accuracy.values)]
    assert np.all(val == val[0])
    assert ds.attrs["stopped_epoch"] == 3 and ds.attrs["stopped_early"] == 1
    assert ds.attrs["best_validation_epoch"] == 1 and ds.attrs["status"] == "ok"
    assert float(ds.epoch.values[-1]) == 3.0
    # a run that keeps improving is not stopped
    ds = train(rule="bp", hidden=(16,), epochs=3, batch_size=50, lr=0.05, validation=100, patience=3,
               data=tiny_data, progress=False)
    assert ds.attrs["stopped_epoch"] == 3 and ds.attrs["stopped_early"] == 0


def _hand_study(val, test, patience=2):
    """A one-rule, one-depth study with given validation/test accuracies at epoch ends 1..n."""
    n = len(val)
    steps = np.arange(1, n + 1) * 10
    shape = (1, 1, len(val[0]) if np.ndim(val) > 1 else 1)
    def var(a):
        a = np.asarray(a, float).T.reshape(1, 1, -1, n) if np.ndim(a) > 1 else np.asarray(a, float).reshape(1, 1, 1, n)
        return (("rule", "n_hidden", "seed", "step"), a)
    seeds = shape[2]
    config = json.dumps({"patience": patience, "epochs": n})
    return xr.Dataset(
        {"validation_accuracy": var(val), "test_accuracy": var(test), "wall_time": var(np.ones_like(np.asarray(val, float))),
         "status": (("rule", "n_hidden", "seed"), np.full((1, 1, seeds), "ok", dtype=object)),
         "config": (("rule", "n_hidden", "seed"), np.full((1, 1, seeds), config, dtype=object))},
        coords={"rule": ["fa"], "n_hidden": [3], "seed": np.arange(seeds), "step": steps, "epoch": ("step", steps / 10.0)},
    )


def test_selected_error_is_the_test_error_at_the_best_validation_epoch():
    val = [0.90, 0.95, 0.97, 0.96, 0.97]
    test = [0.91, 0.94, 0.96, 0.99, 0.95]  # the test maximum (epoch 4) is NOT the selected one
    errs = analysis.test_errors(_hand_study(val, test)).squeeze()
    assert float(errs.selected_error) == pytest.approx(4.0)   # epoch 3: first best validation
    assert float(errs.oracle_best_error) == pytest.approx(1.0)
    assert float(errs.final_error) == pytest.approx(5.0)
    sel = selection.selection(_hand_study(val, test, patience=2)).squeeze()
    assert float(sel.best_validation_epoch) == 3.0 and float(sel.epochs_done) == 5.0
    assert bool(sel.converged)  # two epochs without a better validation accuracy
    assert not selection.selection(_hand_study(val, test, patience=3)).converged.item()


def test_selected_error_per_seed_and_default_metric():
    val = [[0.9, 0.8], [0.95, 0.85], [0.93, 0.9]]  # epochs x seeds: best at epoch 2 and epoch 3
    test = [[0.90, 0.70], [0.96, 0.80], [0.99, 0.93]]
    study = _hand_study(val, test)
    errs = analysis.test_errors(study)
    np.testing.assert_allclose(errs.selected_error.values.ravel(), [4.0, 7.0])
    assert analysis.default_metric(study) == "selected"
    assert analysis.default_metric(study.drop_vars("validation_accuracy")) == "final"


@pytest.mark.parametrize("options,expect", [
    ({"validation": -1}, "validation must be >= 0"),
    ({"validation": 60000}, "leaves no training images"),
    ({"validation": 10000, "train_subset": 55000}, "larger than the 50,000 images left"),
    ({"patience": 0, "validation": 100}, "patience must be >= 1"),
    ({"patience": -3, "validation": 100}, "patience must be >= 1"),
    ({"patience": 3}, "needs a validation split"),
    ({"dropout": 1.0}, "dropout must be in [0, 1)"),
    ({"dropout": -0.1}, "dropout must be >= 0"),
    ({"input_dropout": 1.5}, "input_dropout must be in [0, 1)"),
])
def test_bad_selection_options(options, expect):
    with pytest.raises(ConfigError) as info:
        RunConfig(rule="fa", **options)
    assert expect in str(info.value) and "\n" not in str(info.value)


def _grid_study(best):
    """A study of one rule over init_scale x feedback_scale (and 2 seeds) whose best validation accuracies are ``best``."""
    best = np.asarray(best, dtype=float)  # (w, b)
    acc = np.stack([best * 0.5, best, best * 0.9], axis=-1)[None, :, :, None, :].repeat(2, axis=3)
    dims = ("rule", "init_scale", "feedback_scale", "seed", "step")
    return xr.Dataset({"validation_accuracy": (dims, acc)},
                      coords={"rule": ["fa"], "init_scale": [0.01, 0.2], "feedback_scale": [0.1, 1.0, 10.0],
                              "seed": [0, 1], "step": [0, 1, 2]})


def test_the_joint_choice_is_the_best_cell_where_the_marginal_choices_are_not():
    """w = 0.2 is best on average over b, but the best cell is w = 0.01 at b = 10 (as in Lillicrap's ablation)."""
    study = _grid_study([[0.90, 0.95, 0.99],
                         [0.96, 0.97, 0.97]])
    assert float(selection.choose_option(study, "init_scale").chosen.item()) == 0.2  # marginal: mean over b
    cell = selection.choose_cell(study, ["init_scale", "feedback_scale"])
    assert (float(cell.chosen_init_scale.item()), float(cell.chosen_feedback_scale.item())) == (0.01, 10.0)
    np.testing.assert_allclose(cell.score.sel(rule="fa").values, 100 * np.array([[0.90, 0.95, 0.99],
                                                                                 [0.96, 0.97, 0.97]]))
    # a tie goes to the first cell in grid order; a rule never validated has no choice
    tie = selection.choose_cell(_grid_study([[0.9, 0.97, 0.9], [0.97, 0.9, 0.9]]), ["init_scale", "feedback_scale"])
    assert (float(tie.chosen_init_scale.item()), float(tie.chosen_feedback_scale.item())) == (0.01, 1.0)
    empty = selection.choose_cell(_grid_study(np.full((2, 3), np.nan)), ["init_scale", "feedback_scale"])
    assert np.isnan(float(empty.chosen_init_scale.item()))


def test_the_report_names_the_best_cell_of_a_two_option_grid():
    """On the committed stage 1 of Lillicrap's scale ablation: marginal per-option tables, the best cell named."""
    from pathlib import Path

    from cortex_fa.chunks import combine_chunks
    from cortex_fa.cli.report import build_tables
    from cortex_fa.results import open_results

    folder = Path(__file__).resolve().parent.parent / "docs" / "data" / "lillicrap2016_scales"
    study = combine_chunks([open_results(p) for p in sorted(folder.glob("study_*.nc"))])
    tables = {t.name: t for t in build_tables(study)}
    cell = selection.choose_cell(study, ["init_scale", "feedback_scale"])
    w, b = float(cell.chosen_init_scale.item()), float(cell.chosen_feedback_scale.item())
    assert f"best cell per rule: fa: init_scale={w:g}, feedback_scale={b:g}" in tables["choose_cell"].title
    assert tables["choose_cell"].data.shape == (3, 7)  # w rows, b columns
    marginal = selection.choose_option(study, "init_scale").chosen.item()
    assert marginal != w  # why the joint choice is needed: the marginal w is another one
    page = " ".join((folder.parent.parent / "reproductions.md").read_text().split())
    assert f"would pick w = {marginal:g}, the best w on average over b" in page
    assert "marginal: mean over feedback_scale too" in tables["choose_init_scale"].title
    assert "chosen" not in tables["choose_init_scale"].title
