"""A learning rule per feedback projection, and random streams that pair seeds across rules.

References: one rule on every projection must be that rule, bit for bit; a
column whose feedback projection is bp must receive backprop's delta
exactly where every projection above it is bp too.
"""

from __future__ import annotations

import numpy as np
import pytest
import xarray as xr

import cortex_fa as cfa
from cortex_fa import ConfigError, Network, RunConfig, Simulation, rules
from cortex_fa.streams import RandomStreams

BASE = dict(hidden=(24, 20, 16), epochs=2, batch_size=50, lr=0.1)


def results(tiny_data, **kw):
    return cfa.train(RunConfig(**{**BASE, **kw}), tiny_data, progress=False)


def same_numbers(a, b):
    xr.testing.assert_identical(a.drop_vars("wall_time").drop_attrs(), b.drop_vars("wall_time").drop_attrs())


@pytest.mark.parametrize("rule, extra", [("bp", {}), ("fa", {}), ("usf", {}), ("frsf", {}),
                                         ("brsf", {}), ("kp", {"rule_params": {"decay": 1e-3}, "momentum": 0.9})])
def test_one_rule_on_every_projection_is_that_rule_bit_for_bit(tiny_data, rule, extra):
    whole = Simulation(RunConfig(rule=rule, **BASE, **extra), data=tiny_data, progress=False).run()
    per_column = Simulation(RunConfig(rule="fa" if rule != "fa" else "bp", column_rules=(rule,) * 3, **BASE, **extra),
                            data=tiny_data, progress=False).run()
    assert type(per_column.rule).__name__ == "ColumnRules"  # not short-cut to the plain rule
    same_numbers(whole.results, per_column.results)
    for a, b in zip(whole.model.weights, per_column.model.weights):
        np.testing.assert_array_equal(a, b)


def test_bp_on_top_gives_the_top_column_backprops_delta_and_the_ones_below_not(tiny_data):
    ds = results(tiny_data, rule="fa", column_rules=("fa", "fa", "bp"))
    last = ds.delta_alignment.isel(step=-1)
    assert float(last.sel(layer=4)) == 0.0  # the readout: e itself
    assert float(last.sel(layer=3)) == 0.0  # column 3 taught through W_4^T: backprop's delta, exactly
    assert (last.sel(layer=[1, 2]) > 5).all()  # below: fa's random B
    assert np.isnan(ds.weight_alignment.isel(step=-1).sel(layer=1))
    assert float(ds.weight_alignment.isel(step=-1).sel(layer=4)) == 0.0  # B_4 = W_4^T
    assert ds.attrs["column_rules"] == "fa,fa,bp" and ds.attrs["rule"] == "fa"


def test_bp_at_the_bottom_only_still_leaves_the_columns_misaligned(tiny_data):
    """bp in column 1 alone carries fa's deltas down exactly: alignment to backprop is not restored."""
    ds = results(tiny_data, rule="fa", column_rules=("bp", "fa", "fa"))
    last = ds.delta_alignment.isel(step=-1)
    assert (last.sel(layer=[1, 2]) > 5).all()
    assert float(ds.weight_alignment.isel(step=-1).sel(layer=2)) == 0.0  # B_2 = W_2^T


def test_per_column_rules_via_hand_built_projections_match_the_shorthand(tiny_data):
    net = Network.mlp([24, 20, 16], column_rules=("usf", "fa", "bp"))
    assert [c.feedback.rule for c in net.columns[:-1]] == ["usf", "fa", "bp"]
    by_network = Simulation(net, RunConfig(rule="fa", epochs=2, batch_size=50, lr=0.1), data=tiny_data,
                            progress=False).run()
    assert by_network.config.column_rules == ("usf", "fa", "bp")
    same_numbers(by_network.results, results(tiny_data, rule="fa", column_rules=("usf", "fa", "bp")))


@pytest.mark.parametrize("kw, message", [
    ({"column_rules": ("fa", "bp")}, "lists 2 rule\\(s\\) for 3 hidden column"),
    ({"column_rules": ("fa", "dfa", "bp")}, "column 2 asks for 'dfa', which is direct"),
    ({"column_rules": ("fa", "fax", "bp")}, r"rule 'fax', which is not known \(did you mean 'fa'\?\)"),
    ({"rule": "dfa", "column_rules": ("fa", "fa", "bp")}, "need a layer-wise rule as the run's rule"),
    ({"column_rules": ("fa", "fa", "bp"), "backend": "brian2"}, "numpy backend only"),
    ({"column_rules": "fa,,bp"}, "column_rules must list one rule name"),
])
def test_bad_column_rules_are_one_line_errors(kw, message):
    with pytest.raises(ConfigError, match=message):
        RunConfig.from_dict({**BASE, **kw})


def test_column_rules_on_the_command_line_and_in_the_file(tmp_path, tiny_data):
    from cortex_fa.cli import main

    assert main(["run", "--column-rules", "fa,bp", "--hidden", "30,20", "--epochs", "1", "--train-subset", "500",
                 "--quiet", "--out", str(tmp_path / "r.nc")]) == 0
    with xr.open_dataset(tmp_path / "r.nc") as plain:  # where plain xarray shows it
        assert plain.attrs["column_rules"] == "fa,bp"
    assert main(["run", "--column-rules", "fa,dfa", "--hidden", "30,20", "--out", str(tmp_path / "x.nc")]) == 2


def test_seeds_pair_across_rules(tiny_data):
    """One seed: the same subset, data order, probe and initial W for every rule; equal loss at step 1."""
    cfg = dict(hidden=(24, 16), epochs=1, batch_size=50, lr=0.1, train_subset=400, seed=7)
    sims = {r: Simulation(RunConfig(rule=r, **cfg), data=tiny_data, progress=False)
            for r in ("bp", "fa", "usf", "dfa", "ifa", "kp", "brsf")}
    first = sims["bp"]
    for rule, sim in sims.items():
        for a, b in zip(sim.model.weights, first.model.weights):
            np.testing.assert_array_equal(a, b, err_msg=rule)
        np.testing.assert_array_equal(sim.train_index, first.train_index)
        np.testing.assert_array_equal(sim.probe.x, first.probe.x)
    losses = {}
    for rule, sim in sims.items():
        sim.run(epochs=1)
        losses[rule] = float(sim.results.train_loss.sel(step=1))  # the first batch, before any update mattered
    assert len(set(losses.values())) == 1, losses
    assert sims["fa"].results.attrs["random_streams"].startswith("per-purpose-v1")


def test_streams_are_independent_and_restorable():
    a, b = RandomStreams(3), RandomStreams(3)
    a.feedback.random(1000)  # drawing feedback moves no other stream
    assert a.data.random() == b.data.random() and a.forward.random() == b.forward.random()
    state = a.state()
    x = a.dropout.random(5)
    a.set_state(state)
    np.testing.assert_array_equal(a.dropout.random(5), x)
    assert RandomStreams(3).data.random() != RandomStreams(4).data.random()


def test_dropout_masks_do_not_move_the_data_order(tiny_data):
    cfg = dict(rule="fa", hidden=(24,), epochs=2, batch_size=50, seed=1)
    plain = Simulation(RunConfig(**cfg), data=tiny_data, progress=False)
    dropped = Simulation(RunConfig(**cfg, dropout=0.5), data=tiny_data, progress=False)
    plain.run(), dropped.run()
    assert plain.streams.data.bit_generator.state == dropped.streams.data.bit_generator.state
    assert plain.streams.dropout.bit_generator.state != dropped.streams.dropout.bit_generator.state


def test_the_composite_rule_reports_its_parts():
    net = Network.mlp([10, 10, 10], column_rules=("kp", "fa", "kp"))
    rule = rules.for_network(net, "fa", {"decay": 1e-3})
    assert rule.label == "kp,fa,kp" and set(rule.parts) == {"kp", "fa"}
    assert rule.parts["kp"].params == {"decay": 1e-3} and rule.changes_feedback()
    with pytest.raises(ConfigError, match="fit none of the rules"):
        rules.for_network(Network.mlp([10, 10], column_rules=("fa", "bp")), "fa", {"decay": 1e-3})
