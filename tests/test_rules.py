"""Learning rules against references: finite differences, FA(B=W^T) == BP, theory."""

from __future__ import annotations

import numpy as np
import pytest

from cortex_fa import kernels, metrics, rules
from cortex_fa import activations as acts
from cortex_fa.config import RunConfig
from cortex_fa.network import Network
from cortex_fa.backends.numpy_backend import NumpyModel


def small_model(rule="bp", activation="tanh", loss="cross_entropy", out="linear", hidden=(7, 5), seed=0, dtype=np.float64, **kw):
    cfg = RunConfig(rule=rule, hidden=hidden, activation=activation, loss=loss, output_activation=out, **kw)
    net = Network.from_config(cfg)
    model = NumpyModel(net, rules.make(rule, cfg.rule_params), cfg, np.random.default_rng(seed))
    model.weights = [W.astype(dtype) for W in model.weights]
    model.biases = [b.astype(dtype) + 0.1 for b in model.biases]
    return cfg, model


def batch(n=6, d=784, seed=1, dtype=np.float64):
    rng = np.random.default_rng(seed)
    x = rng.normal(size=(n, d)).astype(dtype)
    y = kernels.one_hot(rng.integers(0, 10, n), dtype=dtype)
    return x, y


def loss_of(model, cfg, x, y):
    pre, post = kernels.forward(x, model.weights, model.biases, model.activations)
    return kernels.loss_and_error(pre[-1], post[-1], y, cfg.loss, model.activations[-1])[0]


@pytest.mark.parametrize("activation", ["tanh", "relu", "sigmoid", "linear"])
@pytest.mark.parametrize("loss,out", [("cross_entropy", "linear"), ("mse", "sigmoid"), ("mse", "linear")])
def test_bp_matches_finite_differences(activation, loss, out):
    cfg, model = small_model("bp", activation, loss, out)
    x, y = batch()
    pre, post = kernels.forward(x, model.weights, model.biases, model.activations)
    _, e = kernels.loss_and_error(pre[-1], post[-1], y, loss, model.activations[-1])
    deltas = kernels.rule_deltas(model.rule, model.weights, model.state, e, y, pre, post, model.activations)
    dW, db = kernels.weight_gradients(post, deltas)
    rng = np.random.default_rng(3)
    eps = 1e-6
    for l, W in enumerate(model.weights):
        for _ in range(6):
            i, j = rng.integers(W.shape[0]), rng.integers(W.shape[1])
            old = W[i, j]
            W[i, j] = old + eps
            up = loss_of(model, cfg, x, y)
            W[i, j] = old - eps
            down = loss_of(model, cfg, x, y)
            W[i, j] = old
            numeric = (up - down) / (2 * eps)
            assert dW[l][i, j] == pytest.approx(numeric, rel=1e-4, abs=1e-8), (l, i, j)
        b = model.biases[l]
        j = rng.integers(b.shape[0])
        old = b[j]
        b[j] = old + eps
        up = loss_of(model, cfg, x, y)
        b[j] = old - eps
        down = loss_of(model, cfg, x, y)
        b[j] = old
        assert db[l][j] == pytest.approx((up - down) / (2 * eps), rel=1e-4, abs=1e-8)


def test_fa_with_transposed_feedback_equals_bp():
    cfg, fa = small_model("fa", hidden=(16, 12, 8), dtype=np.float32)
    _, bp = small_model("bp", hidden=(16, 12, 8), dtype=np.float32)
    for l in fa.state["B"]:
        fa.state["B"][l] = bp.weights[l - 1].T.copy()
    fa.weights = [W.copy(order="K") for W in bp.weights]  # same layout, so the same rounding
    fa.biases = [b.copy() for b in bp.biases]
    x, y = batch(dtype=np.float32)
    labels = y.argmax(1)
    for _ in range(3):
        # B follows W only if we keep re-syncing: FA's B is fixed, so compare one step at a time
        for l in fa.state["B"]:
            fa.state["B"][l] = fa.weights[l - 1].T.copy()
        fa.train_batch(x, y, labels, 0.1)
        bp.train_batch(x, y, labels, 0.1)
        for Wf, Wb in zip(fa.weights, bp.weights):
            np.testing.assert_array_equal(Wf, Wb)


def test_bp_angles_are_zero():
    cfg, model = small_model("bp")
    x, y = batch()
    m = metrics.probe_metrics(model.rule, model.weights, model.biases, model.activations, model.state, x, y, cfg.loss)
    assert np.isnan(m["weight_alignment"][0])  # B_1 is never used
    np.testing.assert_allclose(m["weight_alignment"][1:], 0, atol=1e-5)
    np.testing.assert_allclose(m["delta_alignment"], 0, atol=1e-5)
    np.testing.assert_allclose(m["update_alignment"], 0, atol=1e-5)


@pytest.mark.parametrize("dist,expected", [("uniform", 30.0), ("normal", 37.0)])
def test_usf_angle_at_init_matches_theory(dist, expected):
    # cos = E|w| / sqrt(E w^2): sqrt(3)/2 for uniform (30 deg), sqrt(2/pi) for Gaussian (37.0 deg)
    cfg, model = small_model("usf", hidden=(400, 300), init_distribution=dist, dtype=np.float32)
    wa = metrics.weight_alignment(model.rule, model.weights, model.state)
    assert np.isnan(wa[0])
    np.testing.assert_allclose(wa[1], expected, atol=1.0)


def test_frsf_angle_is_of_the_feedback_used():
    # sign(W)|R| vs W: cos = (E|w|)^2/(E w^2) = 3/4 for uniform -> 41.4 deg, not the 90 deg of |R| vs W
    cfg, model = small_model("frsf", hidden=(400, 300), dtype=np.float32)
    wa = metrics.weight_alignment(model.rule, model.weights, model.state)
    np.testing.assert_allclose(wa[1], np.degrees(np.arccos(0.75)), atol=1.0)


def test_fa_angle_at_init_is_near_90():
    cfg, model = small_model("fa", hidden=(400, 300), dtype=np.float32)
    wa = metrics.weight_alignment(model.rule, model.weights, model.state)
    assert abs(wa[1] - 90) < 3 and abs(wa[2] - 90) < 10


def test_kp_weight_angle_shrinks(tiny_data):
    from cortex_fa.training import train

    # lr * decay = 0.025 per step: the mismatch W^T - B shrinks ~10x over the 90 steps
    ds = train(rule="kp", hidden=(64, 64), epochs=3, batch_size=20, lr=0.05, rule_params={"decay": 0.5},
               data=tiny_data, progress=False)
    wa = ds.weight_alignment.sel(layer=[2, 3])
    assert (wa.isel(step=0) > 80).all()
    assert (wa.isel(step=-1) < 50).all()
    fa = train(rule="fa", hidden=(64, 64), epochs=3, batch_size=20, lr=0.05, data=tiny_data, progress=False)
    assert (wa.isel(step=-1) < fa.weight_alignment.sel(layer=[2, 3]).isel(step=-1) - 20).all()


def test_dfa_readout_update_equals_bp():
    cfg, dfa = small_model("dfa", hidden=(16, 12), dtype=np.float32)
    x, y = batch(dtype=np.float32)
    pre, post = kernels.forward(x, dfa.weights, dfa.biases, dfa.activations)
    _, e = kernels.loss_and_error(pre[-1], post[-1], y, cfg.loss, dfa.activations[-1])
    d_dfa = kernels.rule_deltas(dfa.rule, dfa.weights, dfa.state, e, y, pre, post, dfa.activations)
    d_bp = kernels.layerwise_deltas(e, lambda l: dfa.weights[l - 1].T, pre, post, dfa.activations)
    np.testing.assert_array_equal(post[-2].T @ d_dfa[-1], post[-2].T @ d_bp[-1])
    # the last hidden column gets e @ D_2 instead of e @ W_3.T: different
    assert not np.allclose(d_dfa[-2], d_bp[-2])


def test_dfa_weight_alignment_uses_linear_path():
    cfg, dfa = small_model("dfa", hidden=(16, 12), dtype=np.float64, activation="linear")
    dfa.state["D"][1] = (dfa.weights[1] @ dfa.weights[2]).T.copy()
    dfa.state["D"][2] = dfa.weights[2].T.copy()
    wa = metrics.weight_alignment(dfa.rule, dfa.weights, dfa.state)
    np.testing.assert_allclose(wa[:2], 0, atol=1e-5)
    assert np.isnan(wa[2])


def test_brsf_redraws_magnitudes_each_batch(tiny_data):
    cfg, model = small_model("brsf", hidden=(16, 12), dtype=np.float32)
    before = {l: m.copy() for l, m in model.state["magnitude"].items()}
    x, y = batch(dtype=np.float32)
    model.train_batch(x, y, y.argmax(1), 0.01)
    for l in before:
        assert not np.array_equal(before[l], model.state["magnitude"][l])
        # the sign still follows W
        B = model.rule.feedback(model.weights, model.state, l)
        assert np.array_equal(np.sign(B), np.sign(model.weights[l - 1].T))


def test_shallow_rule_keeps_hidden_weights_fixed():
    cfg, model = small_model("shallow", hidden=(16,), dtype=np.float32)
    W1, W2 = model.weights[0].copy(), model.weights[1].copy()
    x, y = batch(dtype=np.float32)
    model.train_batch(x, y, y.argmax(1), 0.1)
    np.testing.assert_array_equal(model.weights[0], W1)
    assert not np.array_equal(model.weights[1], W2)


def test_drtp_hidden_deltas_ignore_the_error():
    cfg, model = small_model("drtp", hidden=(16,), dtype=np.float32)
    x, y = batch(dtype=np.float32)
    pre, post = kernels.forward(x, model.weights, model.biases, model.activations)
    e1 = np.zeros_like(y)
    e2 = np.ones_like(y)
    d1 = kernels.rule_deltas(model.rule, model.weights, model.state, e1, y, pre, post, model.activations)
    d2 = kernels.rule_deltas(model.rule, model.weights, model.state, e2, y, pre, post, model.activations)
    np.testing.assert_array_equal(d1[0], d2[0])


def test_activation_derivatives_match_numeric():
    a = np.linspace(-3, 3, 41).reshape(1, -1) + 0.013
    for name, act in acts.ACTIVATIONS.items():
        h = act.forward(a.copy(), np.empty_like(a))
        d = act.derivative(a, h, np.empty_like(a))
        eps = 1e-6
        num = (act.forward(a + eps, np.empty_like(a)) - act.forward(a - eps, np.empty_like(a))) / (2 * eps)
        np.testing.assert_allclose(d, num, rtol=1e-5, atol=1e-7, err_msg=name)
