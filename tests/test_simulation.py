"""The Simulation: compose, run, run on, read weights, evaluate, stop, store and restore.

References: ``train(config)`` (the one-liner must give the same numbers), an
unbroken run (a run stopped, stored, restored or interrupted and continued
must end bit for bit where it would have), and the network's own arrays
(``sim.weights`` must show what the model computes with).
"""

from __future__ import annotations

import os
import signal
import subprocess
import sys
import textwrap

import numpy as np
import pytest
import xarray as xr

import cortex_fa as cfa
from cortex_fa import ConfigError, Network, RunConfig, Simulation
from cortex_fa.callbacks import Callback
from cortex_fa.column import Column, Projection
from cortex_fa.init import Init

BASE = dict(hidden=(24, 16), epochs=2, batch_size=50, lr=0.1)


def same_run(a: xr.Dataset, b: xr.Dataset) -> None:
    """Equal in every variable and coordinate but the training clock."""
    xr.testing.assert_identical(a.drop_vars("wall_time").drop_attrs(), b.drop_vars("wall_time").drop_attrs())
    for key in ("rule", "seed", "status", "config_hash"):
        assert a.attrs[key] == b.attrs[key]


def same_weights(a: Simulation, b: Simulation) -> None:
    xr.testing.assert_identical(a.weights.drop_attrs(), b.weights.drop_attrs())


def test_train_is_a_simulation_run_to_its_end(tiny_data):
    cfg = RunConfig(rule="fa", **BASE)
    sim = Simulation(Network.from_config(cfg), cfg, data=tiny_data, progress=False).run()
    same_run(sim.results, cfa.train(cfg, tiny_data, progress=False))
    assert sim.epoch == 2 and sim.step == 2 * 12 and sim.results.attrs["status"] == "ok"


@pytest.mark.parametrize("optimizer, rule, extra", [
    ("sgd", "fa", {}),
    ("sgd", "kp", {"momentum": 0.9, "rule_params": {"decay": 1e-3}, "weight_decay": 1e-4}),
    ("sgd", "brsf", {"dropout": 0.2}),
    ("adam", "dfa", {"lr": 1e-3, "validation": 100, "patience": 5}),
])
def test_running_on_equals_running_at_once(tiny_data, optimizer, rule, extra):
    cfg = RunConfig(rule=rule, optimizer=optimizer, **{**BASE, **extra})
    whole = Simulation(cfg, data=tiny_data, progress=False).run()
    parts = Simulation(cfg, data=tiny_data, progress=False).run(epochs=1)
    assert parts.epoch == 1 and parts.results.attrs["status"] == "ok"
    parts.run()
    same_run(whole.results, parts.results)
    same_weights(whole, parts)
    assert parts.run().step == whole.step  # at config.epochs: nothing more


@pytest.mark.parametrize("rule, extra", [
    ("fa", {}),
    ("kp", {"momentum": 0.9, "rule_params": {"decay": 1e-3}}),
    ("brsf", {"dropout": 0.2, "snapshots": 50}),
    ("ifa", {"optimizer": "adam", "lr": 1e-3, "validation": 100}),
])
def test_store_and_restore_continue_bit_for_bit(tiny_data, tmp_path, rule, extra):
    cfg = RunConfig(rule=rule, **{**BASE, **extra})
    whole = Simulation(cfg, data=tiny_data, progress=False).run()
    first = Simulation(cfg, data=tiny_data, progress=False).run(epochs=1)
    path = first.store(tmp_path / "ckpt.nc")
    with xr.open_dataset(path) as plain:  # plain xarray reads a checkpoint
        assert "input_to_column1" in plain and plain.attrs["title"] == "cortex_fa checkpoint"
    again = Simulation.restore(path, data=tiny_data, progress=False)
    assert again.step == first.step and again.epoch == 1
    again.run()
    same_run(whole.results, again.results)
    same_weights(whole, again)


def test_store_mid_epoch_and_restore(tiny_data, tmp_path):
    """A callback stops the run inside an epoch; the checkpoint holds the epoch's order and position."""

    class StopAt(Callback):
        def on_log(self, sim):
            if sim.step == 4:
                sim.stop("test")

    cfg = RunConfig(rule="usf", **BASE)
    whole = Simulation(cfg, data=tiny_data, progress=False).run()
    part = Simulation(cfg, data=tiny_data, progress=False).run(callbacks=[StopAt()])
    assert part.step == 4 and part.stop_reason == "test" and part.results.attrs["status"] == "running"
    again = Simulation.restore(part.store(tmp_path / "mid.nc"), data=tiny_data, progress=False).run()
    same_run(whole.results, again.results)
    same_weights(whole, again)


def test_restore_in_a_new_process_on_real_mnist(mnist, tmp_path):
    cfg = RunConfig(rule="fa", hidden=(40, 30), epochs=2, train_subset=3000, batch_size=100, lr=0.1,
                    validation=1000, seed=3)
    whole = Simulation(cfg, data=mnist, progress=False).run()
    Simulation(cfg, data=mnist, progress=False).run(epochs=1).store(tmp_path / "one.nc")
    script = textwrap.dedent(f"""
        import cortex_fa as cfa
        sim = cfa.Simulation.restore({str(tmp_path / 'one.nc')!r}, progress=False).run()
        cfa.save_results(sim.results, {str(tmp_path / 'two.nc')!r})
        sim.weights.to_netcdf({str(tmp_path / 'w.nc')!r})
    """)
    subprocess.run([sys.executable, "-c", script], check=True, timeout=300)
    resumed = cfa.open_results(tmp_path / "two.nc")
    same_run(whole.results, resumed.drop_vars([v for v in resumed.coords if v not in whole.results.coords]))
    with xr.open_dataset(tmp_path / "w.nc") as w:
        xr.testing.assert_identical(w.load().drop_attrs(), whole.weights.drop_attrs())
    assert whole.results.test_accuracy.values[-1] > 0.5  # it learned (chance: 0.1)


def test_weights_are_named_after_populations_and_are_what_the_model_uses(tiny_data):
    cfg = RunConfig(rule="fa", hidden=(20, 12), epochs=1, batch_size=100)
    sim = Simulation(cfg, data=tiny_data, progress=False).run()
    w = sim.weights
    assert set(w.data_vars) == {"input_to_column1", "column1_to_column2", "column2_to_readout",
                                "column2_to_column1", "readout_to_column2",
                                "column1_bias", "column2_bias", "readout_bias"}
    assert w.input_to_column1.dims == ("input", "column1") and w.sizes == {"input": 784, "column1": 20,
                                                                         "column2": 12, "readout": 10}
    assert w.readout_to_column2.dims == ("readout", "column2")  # B_3: carries delta_3 onto column 2
    np.testing.assert_array_equal(w.column1_to_column2.values, sim.model.weights[1])
    np.testing.assert_array_equal(w.readout_to_column2.values, sim.model.state["B"][3])
    w.input_to_column1.values[:] = 0  # a copy: the model is untouched
    assert np.abs(sim.model.weights[0]).sum() > 0


def test_evaluate_takes_uint8_or_normalised_floats(tiny_data):
    from cortex_fa import kernels

    sim = Simulation(RunConfig(rule="bp", hidden=(30,), epochs=1), data=tiny_data, progress=False).run()
    as_uint8 = sim.evaluate(tiny_data.test_images, tiny_data.test_labels)
    as_float = sim.evaluate(kernels.normalise(tiny_data.test_images), tiny_data.test_labels)
    assert as_uint8["accuracy"] == as_float["accuracy"] == sim.results.test_accuracy.values[-1]
    assert as_uint8["loss"] == pytest.approx(as_float["loss"], rel=1e-6)
    with pytest.raises(ValueError, match="784"):
        sim.evaluate(tiny_data.test_images[:, :100], tiny_data.test_labels)


def hand_built(feedback_rule=None, compartment="apical"):
    col1 = Column("column1", 16, "tanh", True, Projection("input", "column1", (784, 16)),
                  Projection("readout", "column1", (10, 16), Init(), compartment, feedback_rule))
    readout = Column("readout", 10, "linear", True, Projection("column1", "readout", (16, 10)))
    return Network((col1, readout))


def test_a_network_composed_by_hand_trains_like_its_mlp_twin(tiny_data):
    cfg = RunConfig(rule="fa", epochs=1, batch_size=50)
    by_hand = Simulation(hand_built(), cfg, data=tiny_data, progress=False).run()
    assert by_hand.config.hidden == (16,)  # the config now describes the network it trained
    twin = Simulation(Network.mlp([16]), cfg.replace(hidden=(16,)), data=tiny_data, progress=False).run()
    same_run(by_hand.results, twin.results)


@pytest.mark.parametrize("build, message", [
    (lambda: Network((Column("column1", 16, feedback=Projection("readout", "column1", (10, 16), compartment="apical")),
                      Column("readout", 10, "linear", feedforward=Projection("column1", "readout", (16, 10))))),
     "column 'column1' has no feedforward projection"),
    (lambda: hand_built(compartment="basal"), "column 'column1': its feedback projection lands on the basal"),
    (lambda: Network((Column("column1", 16, feedforward=Projection("input", "column1", (784, 16))),
                      Column("readout", 10, "linear", feedforward=Projection("column1", "readout", (16, 10))))),
     "column 'column1' has no feedback projection"),
    (lambda: Network((Column("column1", 16, feedforward=Projection("input", "column1", (784, 16)),
                             feedback=Projection("readout", "column1", (10, 16), compartment="apical")),
                      Column("readout", 10, "linear", feedforward=Projection("column1", "readout", (16, 10)),
                             feedback=Projection("column1", "readout", (16, 10), compartment="apical")))),
     "column 'readout' is the readout and takes no feedback"),
])
def test_hand_built_mistakes_name_the_column_and_the_fix(build, message):
    with pytest.raises(ConfigError, match=message):
        build()


def test_a_config_that_contradicts_the_network_is_refused(tiny_data):
    with pytest.raises(ConfigError, match=r"config hidden 240,240 contradicts the network \(16\)"):
        Simulation(hand_built(), RunConfig(hidden=(240, 240)), data=tiny_data)
    with pytest.raises(ConfigError, match="activation 'relu' contradicts"):
        Simulation(hand_built(), RunConfig(activation="relu"), data=tiny_data)
    with pytest.raises(ConfigError, match="rule 'dfa' sends its teaching signal by the direct pathway"):
        Simulation(Network.mlp([16]), RunConfig(rule="dfa"), data=tiny_data)


def test_a_callback_reads_the_simulation_and_stops_it(tiny_data):
    seen = []

    class Watch(Callback):
        def on_log(self, sim):
            seen.append(("log", sim.step))

        def on_epoch_end(self, sim):
            seen.append(("epoch", sim.epoch, round(sim.results.test_accuracy.values[-1], 6)))
            sim.stop("enough")

    sim = Simulation(RunConfig(rule="fa", **{**BASE, "epochs": 5}), data=tiny_data, progress=False)
    sim.run(callbacks=[Watch()])
    assert sim.epoch == 1 and sim.stop_reason == "enough"
    assert [s for kind, s, *_ in seen if kind == "log"] == [0, 1, 2, 4, 8, 12]
    assert seen[-1][:2] == ("epoch", 1)
    legacy = []
    sim.run(epochs=1, on_log=lambda rec: legacy.append(rec.steps[-1]))  # on_log(recorder) keeps working
    assert legacy == [24] and sim.epoch == 2


def test_early_stopping_is_a_callback_and_survives_a_restore(tiny_data, tmp_path):
    cfg = RunConfig(rule="fa", hidden=(8,), epochs=40, batch_size=100, lr=0.5, validation=200, patience=2)
    whole = Simulation(cfg, data=tiny_data, progress=False).run()
    assert whole.stop_reason == "early_stop" and whole.epoch < 40
    assert whole.results.attrs["stopped_early"] == 1
    part = Simulation(cfg, data=tiny_data, progress=False).run(epochs=whole.epoch - 1)
    again = Simulation.restore(part.store(tmp_path / "c.nc"), data=tiny_data, progress=False).run()
    same_run(whole.results, again.results)
    assert again.run().step == whole.step  # stopped early: run() adds nothing


def test_ctrl_c_stops_at_a_batch_boundary_and_the_run_goes_on(tiny_data):
    """SIGINT while training: results so far, status interrupted; run() again ends where an unbroken run does."""

    class CtrlC(Callback):
        def on_log(self, sim):
            if sim.step == 8 and not getattr(self, "sent", False):
                self.sent = True
                os.kill(os.getpid(), signal.SIGINT)

    cfg = RunConfig(rule="fa", **BASE)
    whole = Simulation(cfg, data=tiny_data, progress=False).run()
    before = signal.getsignal(signal.SIGINT)  # Python's, or one a library installed (Brian2 has its own)
    sim = Simulation(cfg, data=tiny_data, progress=False).run(callbacks=[CtrlC()])
    assert sim.status == "interrupted" and sim.results.attrs["status"] == "interrupted"
    assert sim.step == 8 and list(sim.results.step.values) == [0, 1, 2, 4, 8]
    assert signal.getsignal(signal.SIGINT) is before  # the handler is put back
    same_run(whole.results, sim.run().results)


def test_learned_alignment_and_weight_change_against_numpy(tiny_data):
    """Recomputed by hand from W(0), the final W and the feedback used."""
    from cortex_fa.metrics import angle, linear_path

    for rule in ("fa", "dfa"):
        cfg = RunConfig(rule=rule, hidden=(24, 16), epochs=2, batch_size=50, lr=0.1)
        sim = Simulation(cfg, data=tiny_data, progress=False)
        W0 = [W.copy() for W in sim.model.weights]
        sim.run()
        ds = sim.results
        assert (ds.weight_change.sel(step=0) == 0).all()
        W = sim.model.weights
        change = [np.linalg.norm(np.subtract(a, b, dtype=np.float64)) / np.linalg.norm(b.astype(np.float64))
                  for a, b in zip(W, W0)]
        np.testing.assert_allclose(ds.weight_change.isel(step=-1).values, change, rtol=1e-6)  # the change in float32
        last = ds.learned_alignment.isel(step=-1).values
        if rule == "fa":
            expected = [np.nan] + [angle(sim.model.state["B"][l], (W[l - 1] - W0[l - 1]).T) for l in (2, 3)]
        else:
            expected = [angle(sim.model.state["D"][l], (linear_path(W, l) - linear_path(W0, l)).T) for l in (1, 2)]
            expected.append(np.nan)
        np.testing.assert_allclose(last, expected, rtol=1e-9)
        assert np.all(np.asarray(expected)[np.isfinite(expected)] < 85)  # what FA/DFA wrote leans towards B


@pytest.mark.parametrize("extra, reason", [
    ({"epochs": 3, "lr": 0.1}, "epoch_cap"),
    ({"epochs": 30, "validation": 200, "patience": 1, "lr": 0.1}, "early_stop"),
    ({"epochs": 1, "lr": 1e-9}, "stalled_at_chance"),
    ({"epochs": 1, "lr": 1e4, "init_scale": 30.0}, "diverged"),
])
def test_every_run_records_why_it_ended(tiny_data, extra, reason):
    ds = Simulation(RunConfig(rule="bp", hidden=(32,), batch_size=50, **extra), data=tiny_data, progress=False).run().results
    assert ds.attrs["stop_reason"] == reason
