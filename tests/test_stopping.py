"""Replayed early stopping equals the run that really stopped with that patience."""

from __future__ import annotations

from types import SimpleNamespace

import numpy as np
import pytest
import xarray as xr

from cortex_fa import RunConfig, Simulation, save_results, stopping
from cortex_fa.cli import main
from cortex_fa.errors import ResultsError
from cortex_fa.results import open_results
from cortex_fa.study import combine_runs
from cortex_fa.verdicts import misclassified

N_TEST = 200


@pytest.fixture(scope="module")
def hard_data():
    """Prototypes under heavy noise: validation accuracy creeps and wobbles, so patiences differ."""
    rng = np.random.default_rng(0)
    protos = rng.integers(0, 256, size=(10, 784))

    def draw(n):
        labels = rng.integers(0, 10, n)
        return np.clip(protos[labels] + rng.normal(0, 600, (n, 784)), 0, 255).astype(np.uint8), labels.astype(np.uint8)

    (tr, trl), (te, tel) = draw(1000), draw(N_TEST)
    return SimpleNamespace(train_images=tr, train_labels=trl, test_images=te, test_labels=tel, data_sha256="synthetic")


def test_replay_of_a_hand_made_history():
    # epoch:        1    2    3    4     5    6     7     8
    val = np.array([0.5, 0.6, 0.6, 0.55, 0.7, 0.65, 0.65, 0.65])
    test = np.array([0.4, 0.5, 0.9, 0.9, 0.66, 0.9, 0.9, 0.9])
    # a tie (epoch 3) is no improvement: patience 2 stops at epoch 4, best epoch 2
    assert stopping.replay_run(val, test, 2) == (4.0, 2.0, 0.6, 0.5)
    assert stopping.replay_run(val, test, 3) == (8.0, 5.0, 0.7, 0.66)
    # patience 4 never stops within this history: the run ended first, unless it ended at its cap
    assert np.isnan(stopping.replay_run(val, test, 4)).all()
    assert stopping.replay_run(val, test, 4, ended_by_cap=True) == (8.0, 5.0, 0.7, 0.66)


def test_only_epoch_ends_count_and_a_nan_validation_is_no_improvement():
    # steps inside epoch 1 have no test accuracy (log_early): they are not epochs
    val = np.array([np.nan, np.nan, 0.5, 0.7, np.nan, 0.6])
    test = np.array([np.nan, np.nan, 0.45, 0.68, 0.1, 0.6])
    assert stopping.replay_run(val, test, 2) == (4.0, 2.0, 0.7, 0.68)


@pytest.mark.parametrize("schedule", ["constant", "plateau"])
def test_replay_equals_the_runs_that_really_stopped(hard_data, schedule):
    """One run at patience 8 tells what patience 1, 2 and 3 do, to the epoch and the image."""
    base = dict(rule="fa", hidden=(16,), epochs=40, batch_size=50, lr=0.1, validation=300, lr_schedule=schedule,
                lr_patience=2, seed=3)
    long = Simulation(RunConfig(patience=8, **base), data=hard_data, progress=False).run().results
    replayed = stopping.replay(long, [1, 2, 3], n_test=N_TEST)
    assert replayed["stop_epoch"].dims == ("replay_patience",)
    for p in (1, 2, 3):
        real = Simulation(RunConfig(patience=p, **base), data=hard_data, progress=False).run().results
        got = replayed.sel(replay_patience=p)
        # patience ended it; a run that ends before it learned is labelled stalled_at_chance instead (which
        # one depends on the machine's floating point: these noisy runs start near chance)
        assert real.attrs["stop_reason"] in ("early_stop", "stalled_at_chance")
        assert real.attrs["stopped_epoch"] < base["epochs"]
        assert got["stop_epoch"] == real.attrs["stopped_epoch"]
        assert got["best_epoch"] == real.attrs["best_validation_epoch"]
        assert got["selected_misclassified"] == misclassified(real, "selected", n_test=N_TEST)
        assert got["best_validation_accuracy"] == real["validation_accuracy"].max()
    # the shorter waits stop no later, the replay at the run's own patience is the run itself
    assert (np.diff(replayed["stop_epoch"].values) >= 0).all()
    assert len(set(replayed["stop_epoch"].values)) == 3  # the data make every patience matter
    own = stopping.replay(long, 8, n_test=N_TEST).isel(replay_patience=0)
    assert own["stop_epoch"] == long.attrs["stopped_epoch"]
    assert own["selected_misclassified"] == misclassified(long, "selected", n_test=N_TEST)


def test_replay_over_a_study_keeps_its_dims_and_refuses_what_it_cannot_know(hard_data):
    runs = []
    for seed in (0, 1, 2):
        cfg = RunConfig(rule="fa", hidden=(16,), epochs=12, batch_size=50, lr=0.1, validation=300, patience=3, seed=seed)
        runs.append(Simulation(cfg, data=hard_data, progress=False).run().results)
    study = combine_runs(runs)
    assert "stop_reason" in study and "seed" in study.dims
    assert {"epoch_cap", "stalled_at_chance"} <= set(study["stop_reason"].values.ravel())  # both kinds of end
    out = stopping.replay(study, [1, 3, 5], n_test=N_TEST)
    assert out["stop_epoch"].dims[0] == "replay_patience" and out.sizes["seed"] == 3
    # the replay at the runs' own patience is the runs themselves
    xr.testing.assert_equal(out["selected_misclassified"].sel(replay_patience=3, drop=True),
                            misclassified(study, "selected", n_test=N_TEST).astype(float).rename("selected_misclassified"))
    # a run that early stopping ended at patience 3 never saw 5 epochs without improvement:
    # only a run that reached its epoch cap can say what patience 5 does
    unknown = out.sel(replay_patience=5)["stop_epoch"].isnull()
    assert (unknown == (study["stop_reason"] != "epoch_cap")).all()
    with pytest.raises(ResultsError, match="validation split"):
        stopping.replay(study.drop_vars("validation_accuracy"), 2)
    with pytest.raises(ResultsError, match=">= 1"):
        stopping.replay(study, 0)


@pytest.fixture(scope="module")
def small_study(hard_data, tmp_path_factory):
    """bp and fa, 3 seeds, patience 4: a study file `cortex-fa report` can replay."""
    runs = [Simulation(RunConfig(rule=rule, hidden=(16,), epochs=15, batch_size=50, lr=0.1, validation=300, patience=4,
                                 lr_schedule="plateau", lr_patience=2, seed=seed), data=hard_data, progress=False).run().results
            for rule in ("bp", "fa") for seed in (0, 1, 2)]
    path = tmp_path_factory.mktemp("replay") / "study.nc"
    save_results(combine_runs(runs), path)
    return path


def test_report_replays_shorter_patiences(small_study, capsys):
    assert main(["report", str(small_study), "--replay-patience", "2,4", "--no-write"]) == 0
    out = capsys.readouterr().out
    assert "Early stopping replayed at patience 2" in out and "Early stopping replayed at patience 4" in out
    study = open_results(small_study)
    cost = stopping.replay_cost(study, 4)  # the runs' own patience: no cost, no epoch saved
    assert (cost["cost_mean"] == 0).all() and (cost["epochs_saved"] == 0).all()
    short = stopping.replay_cost(study, 2)
    assert (short["epochs_saved"] >= 0).all() and short["n"].max() == 3
    by_hand = stopping.replay(study, [2, 4])["selected_misclassified"]
    xr.testing.assert_allclose(short["cost_mean"], (by_hand.sel(replay_patience=2, drop=True)
                                                   - by_hand.sel(replay_patience=4, drop=True)).mean("seed"))


@pytest.mark.parametrize("value, message", [
    ("9", "trained with patience 4, so only shorter waits"),
    ("two", "integers >= 1"),
    ("0", "integers >= 1"),
])
def test_report_refuses_a_patience_it_cannot_replay(small_study, capsys, value, message):
    assert main(["report", str(small_study), "--replay-patience", value, "--no-write"]) == 2
    err = capsys.readouterr().err.strip()
    assert message in err and len(err.splitlines()) == 1


def test_stop_reasons_keep_a_swept_option_apart():
    """An ablation of lr_schedule: its constant and plateau runs are counted in rows of their own, never merged."""
    from factories import make_study_dataset

    from cortex_fa.cli.ending_tables import protocol_tables, stop_reasons

    base = make_study_dataset(rules=("bp", "fa"), depths=(7,), seeds=(0, 1, 2))
    reason = xr.full_like(base["status"], "early_stop", dtype=object)
    constant = base.assign(stop_reason=reason.where(base.seed != 2, "epoch_cap"))
    study = xr.concat([constant, base.assign(stop_reason=reason)], "lr_schedule").assign_coords(
        lr_schedule=["constant", "plateau"])
    counts = stop_reasons(study)
    assert counts.sel(lr_schedule="constant", stop_reason="epoch_cap").values.ravel().tolist() == [1, 1]
    assert counts.sel(lr_schedule="plateau", stop_reason="early_stop").values.ravel().tolist() == [3, 3]
    assert (counts.sum("stop_reason") == 3).all()
    (table,) = [t for t in protocol_tables(study) if t.name == "stop_reasons"]
    assert table.data.index.names == ["rule", "depth", "lr_schedule"]
    assert table.data.loc[("fa", 7, "constant")].to_dict() == {"early_stop": 2, "epoch_cap": 1}
