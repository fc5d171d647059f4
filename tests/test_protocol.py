"""The declared protocol: plateau schedule, rule variants, per-cell options, rate choice, chunks, CLI.

References: hand-computed schedules and choices on synthetic studies (the
tie and ineligible cases among them), an unbroken run (a plateau run stopped
and restored ends where it would have), and the committed converged study
(split by depth and combined again, it is unchanged).
"""

from __future__ import annotations

import json

import numpy as np
import pytest
import xarray as xr

from cortex_fa import ConfigError, RunConfig, Simulation
from cortex_fa.schedule import plateau_drops

# -- the plateau schedule -------------------------------------------------------------


@pytest.mark.parametrize("history, patience, drops", [
    ([], 2, 0),
    ([0.5, 0.6, 0.7], 1, 0),                       # always improving
    ([0.5, 0.5], 1, 1),                            # a tie is no improvement
    ([0.5, 0.4, 0.4, 0.4, 0.4], 2, 2),             # a long plateau cuts every `patience` epochs
    ([0.5, 0.4, 0.6, 0.5, 0.5], 2, 1),             # an improvement restarts the count
    ([0.5, float("nan"), float("nan")], 2, 1),     # NaN never improves
    ([0.5, 0.4, 0.4, 0.9, 0.8], 3, 0),
])
def test_plateau_drops_by_hand(history, patience, drops):
    assert plateau_drops(history, patience) == drops


def test_plateau_needs_a_validation_split_and_a_positive_patience():
    with pytest.raises(ConfigError, match="plateau.*validation"):
        RunConfig(lr_schedule="plateau")
    with pytest.raises(ConfigError, match="lr_patience"):
        RunConfig(lr_schedule="plateau", validation=100, lr_patience=0)
    with pytest.raises(ConfigError, match="lr_patience"):
        plateau_drops([0.1], 0)


def test_new_options_at_their_defaults_keep_every_hash():
    cfg = RunConfig(rule="fa", hidden=(8,))
    assert cfg.hash() == cfg.replace(lr_patience=3, label="").hash()
    assert cfg.hash() != cfg.replace(label="fa_x").hash()  # a label is part of the identity
    assert cfg.replace(validation=10, lr_schedule="plateau").hash() != cfg.replace(
        validation=10, lr_schedule="plateau", lr_patience=2).hash()


def test_plateau_cuts_the_rate_when_validation_stalls(tiny_data):
    cfg = RunConfig(rule="fa", hidden=(16,), epochs=12, batch_size=100, lr=0.5, validation=200,
                    lr_schedule="plateau", lr_patience=1, lr_decay=0.5)
    sim = Simulation(cfg, data=tiny_data, progress=False).run()
    drops = plateau_drops(sim.validation_history, 1)
    assert drops >= 1 and sim.lr_drops == drops
    # the rate of an epoch follows the history before it
    from cortex_fa import optim
    assert optim.learning_rate(cfg, 0, 0, 1, drops) == pytest.approx(0.5 * 0.5**drops)


def test_plateau_run_interrupted_and_resumed_equals_an_unbroken_run(tiny_data, tmp_path):
    from test_simulation import same_run, same_weights

    cfg = RunConfig(rule="fa", hidden=(16,), epochs=10, batch_size=100, lr=0.5, validation=200,
                    lr_schedule="plateau", lr_patience=1, lr_decay=0.5, patience=4)
    whole = Simulation(cfg, data=tiny_data, progress=False).run()
    assert whole.lr_drops >= 1
    for stop_after in (2, whole.epoch - 1):
        part = Simulation(cfg, data=tiny_data, progress=False).run(epochs=stop_after)
        again = Simulation.restore(part.store(tmp_path / f"p{stop_after}.nc"), data=tiny_data, progress=False).run()
        same_run(whole.results, again.results)
        same_weights(whole, again)
