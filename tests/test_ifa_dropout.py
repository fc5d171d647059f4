"""Indirect feedback alignment and dropout against their definitions."""

from __future__ import annotations

import numpy as np
import pytest

from cortex_fa import activations as acts
from cortex_fa import kernels, metrics, rules
from cortex_fa.backends.numpy_backend import NumpyModel
from cortex_fa.config import RunConfig
from cortex_fa.errors import ConfigError
from cortex_fa.network import Network
from cortex_fa.training import train


def model_of(rule, hidden, seed=0, **kw):
    cfg = RunConfig(rule=rule, hidden=hidden, activation="tanh", **kw)
    return cfg, NumpyModel(Network.from_config(cfg), rules.make(rule, cfg.rule_params), cfg, np.random.default_rng(seed))


def probe_batch(n=32, seed=1):
    rng = np.random.default_rng(seed)
    return rng.normal(size=(n, 784)).astype(np.float32), kernels.one_hot(rng.integers(0, 10, n))


@pytest.mark.parametrize("seed", [0, 3])
def test_depth_one_ifa_dfa_and_fa_give_identical_runs(tiny_data, seed):
    runs = {r: train(rule=r, hidden=(24,), epochs=2, batch_size=50, seed=seed, data=tiny_data, progress=False)
            for r in ("ifa", "dfa", "fa")}
    for name in ("test_accuracy", "train_loss", "delta_alignment", "update_alignment", "weight_alignment"):
        np.testing.assert_array_equal(runs["ifa"][name].values, runs["dfa"][name].values, err_msg=name)
        if name != "weight_alignment":
            np.testing.assert_array_equal(runs["ifa"][name].values, runs["fa"][name].values, err_msg=name)
    # the same matrix, filed under the column it feeds (D_1) vs the column it comes from (B_2)
    np.testing.assert_array_equal(runs["ifa"].weight_alignment.sel(layer=1), runs["fa"].weight_alignment.sel(layer=2))


def test_ifa_deltas_follow_the_definition_and_differ_from_dfa():
    _, ifa = model_of("ifa", (20, 16, 12))
    _, dfa = model_of("dfa", (20, 16, 12))
    assert ifa.state["D"].keys() == {1}  # one feedback matrix, into column 1
    np.testing.assert_array_equal(ifa.state["D"][1], dfa.state["D"][1])  # drawn like DFA's D_1
    x, y = probe_batch()
    pre, post = kernels.forward(x, ifa.weights, ifa.biases, ifa.activations)
    e = kernels.loss_and_error(pre[-1], post[-1], y, "cross_entropy", ifa.activations[-1])[1]
    got = kernels.rule_deltas(ifa.rule, ifa.weights, ifa.state, e, y, pre, post, ifa.activations)
    # delta_1 = (e D_1) f'(a_1); delta_l = (delta_{l-1} W_l) f'(a_l), written out in float64
    fp = [1 - np.tanh(a.astype(np.float64)) ** 2 for a in pre[:-1]]
    want = [(e @ ifa.state["D"][1].astype(np.float64)) * fp[0]]
    for l in (2, 3):
        want.append((want[-1] @ ifa.weights[l - 1].astype(np.float64)) * fp[l - 1])
    for g, w in zip(got[:3], want):
        np.testing.assert_allclose(g, w, rtol=1e-4, atol=1e-7)
    np.testing.assert_array_equal(got[3], e)
    dfa_deltas = kernels.rule_deltas(dfa.rule, ifa.weights, dfa.state, e, y, pre, post, ifa.activations)
    np.testing.assert_allclose(got[0], dfa_deltas[0], rtol=1e-6)  # the same first column
    for l in (1, 2):
        assert metrics.angle(got[l], dfa_deltas[l]) > 30  # above it, a different signal


def test_ifa_metrics_are_defined_where_a_feedback_matrix_exists():
    cfg, ifa = model_of("ifa", (20, 16, 12))
    x, y = probe_batch()
    m = metrics.probe_metrics(ifa.rule, ifa.weights, ifa.biases, ifa.activations, ifa.state, x, y, cfg.loss)
    w = m["weight_alignment"]
    assert np.isfinite(w[0]) and np.isnan(w[1:]).all()
    expected = metrics.angle(ifa.state["D"][1], metrics.linear_path(ifa.weights, 1).T)
    assert w[0] == pytest.approx(expected, abs=1e-9)
    assert np.isfinite(m["delta_alignment"]).all() and np.isfinite(m["update_alignment"]).all()
    assert np.isnan(m["feedback_norm_ratio"]).all()
    assert m["delta_alignment"][-1] == 0.0  # the readout learns from e, as in backprop


def test_ifa_learns_at_depth_three(tiny_data):
    ds = train(rule="ifa", hidden=(32, 32, 32), epochs=4, batch_size=50, lr=0.05, data=tiny_data, progress=False)
    acc = ds.test_accuracy.values[np.isfinite(ds.test_accuracy.values)]
    assert acc[-1] > 0.6 and acc[-1] > acc[0]


def test_ifa_learns_on_real_mnist(mnist):
    ds = train(rule="ifa", hidden=(128, 128, 128), epochs=1, train_subset=10000, validation=5000, lr=0.05,
               data=mnist, progress=False)
    assert float(ds.test_accuracy.values[-1]) > 0.85
    assert float(ds.validation_accuracy.values[-1]) > 0.85
    assert ds.delta_alignment.sel(layer=1).values[-1] < ds.delta_alignment.sel(layer=1).values[0]


@pytest.mark.parametrize("options,expect", [
    ({"feedback_init": "zero"}, "sends no signal"),
    ({"rule_params": {"decay": 0.001}}, "rule 'ifa' has no parameter 'decay'"),
    ({"backend": "brian2", "backend_params": {"plasticity": "python"}}, "needs plasticity 'synaptic'"),
])
def test_ifa_refuses_options_it_cannot_honour(options, expect):
    with pytest.raises(ConfigError, match=expect):
        RunConfig(rule="ifa", **options)


# -- dropout ------------------------------------------------------------------------------

def test_dropout_with_a_mask_of_ones_is_bit_identical_to_no_dropout():
    """The dropout code path, with nothing dropped, must change nothing."""
    _, plain = model_of("fa", (24, 16), seed=5)
    _, masked = model_of("fa", (24, 16), seed=5)
    x, y = probe_batch(64)
    labels = y.argmax(1)
    ones = [np.ones((64, n), np.float32) for n in (24, 16)]
    for _ in range(3):
        plain.train_batch(x, y, labels, 0.1)
        drop = [acts.dropped(a, m) for a, m in zip(masked.activations[:-1], ones)] + [masked.activations[-1]]
        ws = masked._workspace(x, drop)
        pre, post = kernels.forward_into(x, masked.weights, masked.biases, drop, ws.pre, list(ws.post))
        e = kernels.loss_and_error(pre[-1], post[-1], y, "cross_entropy", drop[-1])[1]
        deltas = kernels.rule_deltas_into(masked.rule, masked.weights, masked.state, e, y, pre, post, drop,
                                          list(ws.delta), ws.scratch)
        masked._apply_fused(post, deltas, 0.1)
    for a, b in zip(plain.weights, masked.weights):
        np.testing.assert_array_equal(a, b)


def test_zero_rate_draws_nothing_and_changes_nothing(tiny_data):
    a = train(rule="fa", hidden=(16,), epochs=1, batch_size=50, data=tiny_data, progress=False)
    b = train(RunConfig(rule="fa", hidden=(16,), epochs=1, batch_size=50, dropout=0.0, input_dropout=0.0),
              tiny_data, progress=False)
    np.testing.assert_array_equal(a.test_accuracy.values, b.test_accuracy.values)
    np.testing.assert_array_equal(a.delta_alignment.values, b.delta_alignment.values)


def test_dropout_keeps_the_mean_activation_and_silences_dropped_units():
    rng = np.random.default_rng(0)
    a = rng.normal(size=(4000, 50)).astype(np.float32)
    relu = acts.get("relu")
    keep = rng.random(a.shape) >= 0.5
    mask = keep.astype(np.float32) * np.float32(2.0)
    h = acts.dropped(relu, mask).forward(a, np.empty_like(a))
    full = relu.forward(a, np.empty_like(a))
    assert abs(h.mean() - full.mean()) < 0.02 * full.mean()  # inverted dropout: expectation preserved
    assert (h[~keep] == 0).all()
    fp = acts.dropped(relu, mask).derivative(a, h, np.empty_like(a))
    assert (fp[~keep] == 0).all() and np.allclose(fp[keep], 2.0 * (a[keep] > 0))


def test_dropout_training_differs_but_probe_and_test_passes_see_none(tiny_data):
    base = dict(rule="fa", hidden=(32,), epochs=1, batch_size=50, data=tiny_data, progress=False)
    plain = train(**base)
    dropped = train(**base, dropout=0.5)
    assert not np.array_equal(plain.train_loss.values, dropped.train_loss.values)
    # step 0 is before any update: the same weights, so the probe metrics agree exactly
    np.testing.assert_array_equal(plain.delta_alignment.sel(step=0).values, dropped.delta_alignment.sel(step=0).values)
    np.testing.assert_array_equal(plain.grad_norm.sel(step=0).values, dropped.grad_norm.sel(step=0).values)
    # the model's evaluation is deterministic with dropout configured (no mask is drawn)
    cfg, model = model_of("fa", (32,), dropout=0.5)
    state = model.streams.dropout.bit_generator.state
    first = model.evaluate(tiny_data.test_images, tiny_data.test_labels)
    assert model.evaluate(tiny_data.test_images, tiny_data.test_labels) == first
    assert model.streams.dropout.bit_generator.state == state


def test_dropout_is_recorded_and_refused_on_brian2():
    import json

    assert json.loads(RunConfig(rule="fa", dropout=0.5).to_json())["dropout"] == 0.5
    with pytest.raises(ConfigError, match="numpy backend only"):
        RunConfig(rule="fa", dropout=0.5, backend="brian2")
